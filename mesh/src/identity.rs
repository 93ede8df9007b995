//! Workload identity: SPIFFE IDs and the mesh CA that signs them into SVIDs.

pub mod ca;

use std::fmt;
use std::str::FromStr;

/// Trust domain of the lab, as in a default Istio install.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A workload's SPIFFE ID, `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    pub fn new(
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        service_account: impl Into<String>,
    ) -> Self {
        Self {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }

    /// The principal that policies name: the URI without its `spiffe://` scheme.
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }

    pub fn uri(&self) -> String {
        format!("spiffe://{}", self.principal())
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.principal())
    }
}

/// Error for a URI that is not an Istio-shaped SPIFFE ID.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid SPIFFE ID {0:?}: expected spiffe://<trust domain>/ns/<namespace>/sa/<service account>"
)]
pub struct InvalidSpiffeId(pub String);

impl FromStr for SpiffeId {
    type Err = InvalidSpiffeId;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidSpiffeId(uri.to_string());
        let rest = uri.strip_prefix("spiffe://").ok_or_else(invalid)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty() => {
                Ok(SpiffeId::new(*td, *ns, *sa))
            }
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_id_round_trip() {
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
            .parse()
            .unwrap();
        assert_eq!(id.namespace, "default");
        assert_eq!(
            id.principal(),
            "cluster.local/ns/default/sa/bookinfo-productpage"
        );
        assert_eq!(id.to_string(), id.uri());
    }

    #[test]
    fn spiffe_id_rejects_other_shapes() {
        for bad in [
            "cluster.local/ns/a/sa/b",
            "spiffe://td/ns/a",
            "spiffe://td/ns//sa/b",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad}");
        }
    }
}
