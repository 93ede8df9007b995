//! Istio's security resources as YAML documents, and the versioned store that holds them.
//!
//! SKELETON: the config owner replaces the placeholder specs below with typed models.

pub mod authorization_policy;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use authorization_policy::AuthorizationPolicySpec;

/// Root namespace: policies here apply mesh-wide.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// `selector` / `matchLabels` as Istio writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl WorkloadSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// One stored resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub api_version: String,
    pub meta: ObjectMeta,
    /// Creation order in the store; lower is older. Re-applying keeps it, as Kubernetes keeps
    /// `creationTimestamp`.
    pub created: u64,
    pub spec: Spec,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    AuthorizationPolicy(AuthorizationPolicySpec),
    // The config owner adds: MeshPolicy, Policy, PeerAuthentication, DestinationRule,
    // RequestAuthentication.
}

/// An immutable view of every stored resource at one version.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    /// Sorted by `created`, oldest first.
    pub resources: Vec<Arc<Resource>>,
}

impl Snapshot {
    pub fn authorization_policies(
        &self,
    ) -> impl Iterator<Item = (&Resource, &AuthorizationPolicySpec)> {
        self.resources.iter().filter_map(|r| match &r.spec {
            Spec::AuthorizationPolicy(spec) => Some((r.as_ref(), spec)),
            #[allow(unreachable_patterns)]
            _ => None,
        })
    }
}
