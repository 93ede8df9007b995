//! Authorization of inbound requests with Istio's `AuthorizationPolicy` semantics.
//!
//! [`WorkloadAuthorizer::compile`] selects the policies that apply to one workload and
//! compiles their rules into matchers; [`WorkloadAuthorizer::evaluate`] then decides each
//! request in Istio's order:
//!
//! 1. any matching `DENY` policy denies;
//! 2. with no `ALLOW` policy on the workload, the request is allowed;
//! 3. a matching `ALLOW` policy allows;
//! 4. anything else is denied.
//!
//! `AUDIT` policies and policies annotated `istio.io/dry-run: "true"` are evaluated and
//! reported in [`Decision::audited`] but never change the outcome. `CUSTOM` policies need
//! an external authorizer, which meshlab does not have: validation rejects them and
//! evaluation ignores them.

mod matcher;
mod policy;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use tracing::debug;

pub use matcher::normalize_path;

use crate::config::authorization_policy::Action;
use crate::config::{AuthorizationPolicySpec, Resource, Snapshot, ROOT_NAMESPACE};
use crate::identity::SpiffeId;
use crate::workload::WorkloadMeta;
use policy::{CompiledPolicy, RequestView};

pub(crate) use matcher::{is_path_template, parse_ip_block, parse_port};
pub(crate) use policy::{parse_service_account, Attribute};

/// Annotation that puts a policy in shadow mode: evaluated and reported, never enforced.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// Attributes of one request or TCP connection, as the sidecar authorizes it.
#[derive(Clone, Debug)]
pub struct RequestAttributes<'a> {
    /// Address of the direct peer (`source.ip`, `ipBlocks`).
    pub source_ip: IpAddr,
    /// Address of the original client (`remote.ip`, `remoteIpBlocks`); the direct peer's
    /// address when no proxy sits in between.
    pub remote_ip: IpAddr,
    /// The peer's identity; `Some` only over mutual TLS.
    pub source_principal: Option<&'a SpiffeId>,
    pub destination_ip: IpAddr,
    /// Workload (container) port of the connection, which `ports` compares.
    pub destination_port: u16,
    /// SNI of the inbound TLS connection; `Some` only over mutual TLS.
    pub sni: Option<&'a str>,
    /// Request-level attributes; `None` for a TCP connection.
    pub http: Option<HttpAttributes<'a>>,
}

/// Attributes of an HTTP request.
#[derive(Clone, Debug)]
pub struct HttpAttributes<'a> {
    pub method: &'a str,
    /// `:authority` or `Host`, possibly with a port.
    pub host: &'a str,
    /// Request target as received, query string included; matching normalizes it.
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The validated JWT, when the request carried one.
    pub auth: Option<&'a RequestAuth>,
}

/// The end-user identity from a validated JWT.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestAuth {
    /// `<iss>/<sub>`, the value `requestPrincipals` compares.
    pub principal: Option<String>,
    /// The `aud` claim as a list.
    pub audiences: Vec<String>,
    /// The `azp` claim.
    pub presenter: Option<String>,
    /// The whole JWT payload.
    pub claims: serde_json::Value,
}

/// One policy that applies to a workload, as `meshctl describe` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySummary {
    pub name: String,
    pub namespace: String,
    pub action: Action,
    pub rules: usize,
    /// Annotated `istio.io/dry-run: "true"`: evaluated and reported, never enforced.
    pub dry_run: bool,
}

/// Reason for a decision: the policy and rule that matched, or the default that applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecisionReason {
    /// A DENY policy matched; `policy` is `namespace/name`, `rule` the index in `rules`.
    DeniedByPolicy { policy: Arc<str>, rule: usize },
    /// An ALLOW policy matched.
    AllowedByPolicy { policy: Arc<str>, rule: usize },
    /// No DENY policy matched and no ALLOW policy applies to the workload.
    NoAllowPolicy,
    /// ALLOW policies apply to the workload, but none matched.
    NoAllowMatched,
}

/// The outcome of authorizing one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: DecisionReason,
    /// AUDIT policies that matched, as `namespace/name`, and matching dry-run policies, as
    /// `namespace/name (dry-run ACTION)`.
    pub audited: Vec<String>,
}

/// The policies that apply to one workload, compiled for one snapshot version.
///
/// Cheap to share behind an `Arc`; rebuild it when the snapshot changes.
#[derive(Debug, Default)]
pub struct WorkloadAuthorizer {
    /// Enforced DENY policies, oldest first.
    deny: Vec<CompiledPolicy>,
    /// Enforced ALLOW policies, oldest first.
    allow: Vec<CompiledPolicy>,
    /// AUDIT and dry-run policies with the label `Decision::audited` reports.
    audit: Vec<(CompiledPolicy, String)>,
    summaries: Vec<PolicySummary>,
}

// === impl WorkloadAuthorizer ===

impl WorkloadAuthorizer {
    /// Compiles every policy of `snapshot` that applies to `workload`.
    ///
    /// A policy applies when it is in the workload's namespace or in the root namespace
    /// (`istio-system`, mesh-wide) and has no selector or a selector matching the
    /// workload's labels. Policies attached with `targetRef(s)` apply to gateways, never
    /// to sidecars, and are skipped.
    pub fn compile(snapshot: &Snapshot, workload: &WorkloadMeta) -> Self {
        let mut authorizer = Self::default();
        for (resource, spec) in snapshot.authorization_policies() {
            if !applies_to(resource, spec, workload) {
                continue;
            }
            authorizer.add(resource, spec);
        }
        debug!(
            workload = %workload.name,
            namespace = %workload.namespace,
            snapshot.version = snapshot.version,
            policies = authorizer.summaries.len(),
            "Authorization policies compiled"
        );
        authorizer
    }

    fn add(&mut self, resource: &Resource, spec: &AuthorizationPolicySpec) {
        let meta = &resource.meta;
        let action = spec.action.unwrap_or_default();
        let rules = spec.rules.as_deref().unwrap_or_default();
        let dry_run = meta
            .annotations
            .get(DRY_RUN_ANNOTATION)
            .is_some_and(|value| parse_go_bool(value));
        self.summaries.push(PolicySummary {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            action,
            rules: rules.len(),
            dry_run,
        });
        if action == Action::Custom {
            return;
        }
        let id: Arc<str> = format!("{}/{}", meta.namespace, meta.name).into();
        let compiled = CompiledPolicy::compile(id.clone(), &meta.namespace, action, rules);
        match (action, dry_run) {
            (_, true) => {
                let label = format!("{id} (dry-run {})", action_name(action));
                self.audit.push((compiled, label));
            }
            (Action::Audit, false) => self.audit.push((compiled, id.to_string())),
            (Action::Deny, false) => self.deny.push(compiled),
            _ => self.allow.push(compiled),
        }
    }

    /// Decides whether `request` may reach the workload.
    pub fn evaluate(&self, request: &RequestAttributes<'_>) -> Decision {
        let view = RequestView::new(request);
        let audited: Vec<String> = self
            .audit
            .iter()
            .filter(|(policy, _)| policy.first_match(&view).is_some())
            .map(|(_, label)| label.clone())
            .collect();
        let decide = |allowed, reason| Decision {
            allowed,
            reason,
            audited,
        };
        for policy in &self.deny {
            if let Some(rule) = policy.first_match(&view) {
                let policy = policy.id.clone();
                return decide(false, DecisionReason::DeniedByPolicy { policy, rule });
            }
        }
        if self.allow.is_empty() {
            return decide(true, DecisionReason::NoAllowPolicy);
        }
        for policy in &self.allow {
            if let Some(rule) = policy.first_match(&view) {
                let policy = policy.id.clone();
                return decide(true, DecisionReason::AllowedByPolicy { policy, rule });
            }
        }
        decide(false, DecisionReason::NoAllowMatched)
    }

    /// Returns the policies that apply to the workload, oldest first, dry-run and CUSTOM
    /// ones included.
    pub fn policies(&self) -> &[PolicySummary] {
        &self.summaries
    }
}

fn applies_to(
    resource: &Resource,
    spec: &AuthorizationPolicySpec,
    workload: &WorkloadMeta,
) -> bool {
    let namespace = resource.meta.namespace.as_str();
    if namespace != workload.namespace && namespace != ROOT_NAMESPACE {
        return false;
    }
    if spec.target_ref.is_some() || spec.target_refs.as_ref().is_some_and(|r| !r.is_empty()) {
        return false;
    }
    spec.selector
        .as_ref()
        .is_none_or(|selector| selector.matches(&workload.labels))
}

/// Parses a boolean the way Go's `strconv.ParseBool` does, which is how Istio reads the
/// dry-run annotation; anything else counts as false.
fn parse_go_bool(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Allow => "ALLOW",
        Action::Deny => "DENY",
        Action::Audit => "AUDIT",
        Action::Custom => "CUSTOM",
    }
}

// === impl Decision ===

impl fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecisionReason::DeniedByPolicy { policy, rule } => {
                write!(f, "DENY policy {policy} matched rule {rule}")
            }
            DecisionReason::AllowedByPolicy { policy, rule } => {
                write!(f, "ALLOW policy {policy} matched rule {rule}")
            }
            DecisionReason::NoAllowPolicy => f.write_str("no ALLOW policy applies"),
            DecisionReason::NoAllowMatched => f.write_str("no ALLOW policy matched"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = if self.allowed { "allowed" } else { "denied" };
        write!(f, "{outcome}: {}", self.reason)?;
        if !self.audited.is_empty() {
            write!(f, "; audited by {}", self.audited.join(", "))?;
        }
        Ok(())
    }
}
