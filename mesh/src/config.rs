//! Istio's security resources as YAML documents, and the immutable snapshots the store
//! publishes.
//!
//! Layout: each resource kind has a module with its serde model and its checks beyond serde
//! (`legacy_policy`, `peer_authentication`, `request_authentication`,
//! `authorization_policy`, `destination_rule`). `parse` turns a multi-document YAML file
//! into [`Document`]s, or into one [`ConfigError`] naming the file, document and field path.

pub mod authorization_policy;
pub mod destination_rule;
pub mod legacy_policy;
pub mod parse;
pub mod peer_authentication;
pub mod request_authentication;

mod error;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use authorization_policy::AuthorizationPolicySpec;
pub use destination_rule::DestinationRuleSpec;
pub use error::{ConfigError, FieldError};
pub use legacy_policy::PolicySpec;
pub use parse::{parse_documents, Document};
pub use peer_authentication::PeerAuthenticationSpec;
pub use request_authentication::RequestAuthenticationSpec;

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

    /// True when the selector names no label, so it selects every workload in its scope.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty()
    }
}

/// The `metadata` of a stored resource. Cluster-scoped kinds (`MeshPolicy`) have an empty
/// namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
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

impl Resource {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// Returns `name.namespace`, the form `istioctl` prints for namespaced resources, or the
    /// bare name for cluster-scoped ones.
    pub fn qualified_name(&self) -> String {
        if self.meta.namespace.is_empty() {
            self.meta.name.clone()
        } else {
            format!("{}.{}", self.meta.name, self.meta.namespace)
        }
    }
}

/// The typed `spec` of a resource, one variant per supported kind.
// Resources live behind `Arc` in snapshots, so the variants' size difference costs little.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Spec {
    /// `authentication.istio.io/v1alpha1` `MeshPolicy`: the cluster-wide legacy policy.
    MeshPolicy(PolicySpec),
    /// `authentication.istio.io/v1alpha1` `Policy`: a namespace or service legacy policy.
    Policy(PolicySpec),
    PeerAuthentication(PeerAuthenticationSpec),
    RequestAuthentication(RequestAuthenticationSpec),
    AuthorizationPolicy(AuthorizationPolicySpec),
    DestinationRule(DestinationRuleSpec),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::MeshPolicy(_) => Kind::MeshPolicy,
            Spec::Policy(_) => Kind::Policy,
            Spec::PeerAuthentication(_) => Kind::PeerAuthentication,
            Spec::RequestAuthentication(_) => Kind::RequestAuthentication,
            Spec::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            Spec::DestinationRule(_) => Kind::DestinationRule,
        }
    }
}

/// A supported resource kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    MeshPolicy,
    Policy,
    PeerAuthentication,
    RequestAuthentication,
    AuthorizationPolicy,
    DestinationRule,
}

impl Kind {
    /// Every supported `apiVersion` and `kind` pair.
    pub const SUPPORTED: &'static [(&'static str, Kind)] = &[
        ("authentication.istio.io/v1alpha1", Kind::MeshPolicy),
        ("authentication.istio.io/v1alpha1", Kind::Policy),
        ("security.istio.io/v1beta1", Kind::PeerAuthentication),
        ("security.istio.io/v1", Kind::PeerAuthentication),
        ("security.istio.io/v1beta1", Kind::RequestAuthentication),
        ("security.istio.io/v1", Kind::RequestAuthentication),
        ("security.istio.io/v1beta1", Kind::AuthorizationPolicy),
        ("security.istio.io/v1", Kind::AuthorizationPolicy),
        ("networking.istio.io/v1alpha3", Kind::DestinationRule),
        ("networking.istio.io/v1beta1", Kind::DestinationRule),
        ("networking.istio.io/v1", Kind::DestinationRule),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MeshPolicy => "MeshPolicy",
            Kind::Policy => "Policy",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::RequestAuthentication => "RequestAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::DestinationRule => "DestinationRule",
        }
    }

    /// Looks up a kind by its `apiVersion` and `kind` fields. Returns `None` when the pair is
    /// not supported.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::SUPPORTED
            .iter()
            .find(|(version, k)| *version == api_version && k.as_str() == kind)
            .map(|(_, k)| *k)
    }

    /// True for kinds without a namespace, which are stored with an empty one.
    pub fn is_cluster_scoped(self) -> bool {
        self == Kind::MeshPolicy
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An immutable view of every stored resource at one version.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    /// Sorted by `created`, oldest first.
    pub resources: Vec<Arc<Resource>>,
}

// === impl Snapshot ===

impl Snapshot {
    /// Finds a resource by its key. Cluster-scoped kinds take an empty namespace.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Resource> {
        self.resources
            .iter()
            .map(Arc::as_ref)
            .find(|r| r.kind() == kind && r.meta.namespace == namespace && r.meta.name == name)
    }

    /// Resources of one kind, oldest first.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Resource> {
        self.resources
            .iter()
            .map(Arc::as_ref)
            .filter(move |r| r.kind() == kind)
    }

    pub fn authorization_policies(
        &self,
    ) -> impl Iterator<Item = (&Resource, &AuthorizationPolicySpec)> {
        self.resources.iter().filter_map(|r| match &r.spec {
            Spec::AuthorizationPolicy(spec) => Some((r.as_ref(), spec)),
            _ => None,
        })
    }

    pub fn peer_authentications(
        &self,
    ) -> impl Iterator<Item = (&Resource, &PeerAuthenticationSpec)> {
        self.resources.iter().filter_map(|r| match &r.spec {
            Spec::PeerAuthentication(spec) => Some((r.as_ref(), spec)),
            _ => None,
        })
    }

    pub fn request_authentications(
        &self,
    ) -> impl Iterator<Item = (&Resource, &RequestAuthenticationSpec)> {
        self.resources.iter().filter_map(|r| match &r.spec {
            Spec::RequestAuthentication(spec) => Some((r.as_ref(), spec)),
            _ => None,
        })
    }

    pub fn destination_rules(&self) -> impl Iterator<Item = (&Resource, &DestinationRuleSpec)> {
        self.resources.iter().filter_map(|r| match &r.spec {
            Spec::DestinationRule(spec) => Some((r.as_ref(), spec)),
            _ => None,
        })
    }

    /// `MeshPolicy` and `Policy` resources together, oldest first.
    pub fn legacy_policies(&self) -> impl Iterator<Item = (&Resource, &PolicySpec)> {
        self.resources.iter().filter_map(|r| match &r.spec {
            Spec::MeshPolicy(spec) | Spec::Policy(spec) => Some((r.as_ref(), spec)),
            _ => None,
        })
    }

    /// Returns the `MeshPolicy`, if one is stored. Validation admits only one, named `default`.
    pub fn mesh_policy(&self) -> Option<(&Resource, &PolicySpec)> {
        self.resources.iter().find_map(|r| match &r.spec {
            Spec::MeshPolicy(spec) => Some((r.as_ref(), spec)),
            _ => None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}
