//! Server-side mutual TLS mode of a workload port, from `PeerAuthentication` or the legacy
//! `MeshPolicy` / `Policy`.

use std::fmt;

use crate::config::legacy_policy::LegacyMtlsMode;
use crate::config::peer_authentication::MtlsMode;
use crate::config::{PeerAuthenticationSpec, PolicySpec, Resource, Snapshot, Spec, ROOT_NAMESPACE};
use crate::workload::WorkloadMeta;

/// Connection types the inbound listener accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerMode {
    /// Mutual TLS only; plaintext connections are closed before any HTTP.
    Strict,
    /// Mutual TLS or plaintext, detected per connection.
    Permissive,
    /// Plaintext only.
    Disable,
}

/// The mode of one workload port and the resource that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveMode {
    pub mode: PeerMode,
    pub source: ModeSource,
}

/// The resource that decided an [`EffectiveMode`], as `meshctl describe` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModeSource {
    PeerAuthentication {
        namespace: String,
        name: String,
        scope: PeerAuthenticationScope,
    },
    MeshPolicy {
        name: String,
    },
    Policy {
        namespace: String,
        name: String,
    },
    /// No policy applies: PERMISSIVE.
    Default,
}

/// Scope of a `PeerAuthentication`, from widest to narrowest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAuthenticationScope {
    Mesh,
    Namespace,
    Workload,
    /// A `portLevelMtls` entry for this workload port.
    Port(u16),
}

/// The `PeerAuthentication` resources that apply to a workload, one per scope.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplicablePolicies<'a> {
    pub mesh: Option<&'a Resource>,
    pub namespace: Option<&'a Resource>,
    pub workload: Option<&'a Resource>,
}

/// Resolves the mutual TLS mode of `workload_port` (a container port, not a service port).
///
/// `PeerAuthentication`: the narrowest setting that is not UNSET wins, in the order
/// `portLevelMtls[workload_port]`, the workload policy's mode, the namespace policy, the mesh
/// policy, and PERMISSIVE. See [`applicable_peer_authentications`] for the scopes.
///
/// Legacy policies count only when no `PeerAuthentication` applies to the workload at any
/// scope. No Istio release documents mixing the two APIs for one workload, so meshlab lets
/// the newer API replace the older one entirely. The legacy policy is the one
/// [`legacy_policy_for`] selects: `peers` with `mtls` is STRICT (PERMISSIVE with
/// `mode: PERMISSIVE` or `allowTls: true`), and a policy without an `mtls` peer is DISABLE.
/// With no policy of either API the mode is PERMISSIVE.
pub fn effective_mode(
    snapshot: &Snapshot,
    workload: &WorkloadMeta,
    workload_port: u16,
) -> EffectiveMode {
    let applicable = applicable_peer_authentications(snapshot, workload);
    if applicable.is_empty() {
        return legacy_mode(snapshot, workload, workload_port);
    }

    let scopes = [
        (applicable.mesh, PeerAuthenticationScope::Mesh),
        (applicable.namespace, PeerAuthenticationScope::Namespace),
        (applicable.workload, PeerAuthenticationScope::Workload),
    ];
    let mut decided: Option<EffectiveMode> = None;
    let mut narrowest = None;
    for (resource, scope) in scopes {
        let Some((resource, spec)) = resource.and_then(as_peer_authentication) else {
            continue;
        };
        narrowest = Some(source_of(resource, scope));
        if let Some(mode) = peer_mode(spec.mode()) {
            decided = Some(EffectiveMode {
                mode,
                source: source_of(resource, scope),
            });
        }
    }

    let port_entry = applicable.workload.and_then(as_peer_authentication);
    if let Some((resource, spec)) = port_entry {
        if let Some(mode) = spec.port_mode(workload_port).and_then(peer_mode) {
            let scope = PeerAuthenticationScope::Port(workload_port);
            decided = Some(EffectiveMode {
                mode,
                source: source_of(resource, scope),
            });
        }
    }

    // Every applicable policy left the mode UNSET: the mesh default, named after the
    // narrowest policy so `describe` shows why.
    decided.unwrap_or(EffectiveMode {
        mode: PeerMode::Permissive,
        source: narrowest.unwrap_or(ModeSource::Default),
    })
}

/// Finds the `PeerAuthentication` of each scope that applies to `workload`.
///
/// Mesh scope: in the root namespace without a selector (or with empty `matchLabels`).
/// Namespace scope: in the workload's namespace, not the root one, without a selector.
/// Workload scope: in the workload's namespace, not the root one, with a selector matching
/// the workload's labels. A selector policy in the root namespace applies to nothing. When
/// several policies share a scope, the oldest one counts and the others are ignored.
pub fn applicable_peer_authentications<'a>(
    snapshot: &'a Snapshot,
    workload: &WorkloadMeta,
) -> ApplicablePolicies<'a> {
    let mut applicable = ApplicablePolicies::default();
    // Snapshot resources are oldest first, so the first match of each scope is the one.
    for (resource, spec) in snapshot.peer_authentications() {
        let namespace = resource.meta.namespace.as_str();
        let slot = if namespace == ROOT_NAMESPACE {
            if spec.has_selector() {
                continue;
            }
            &mut applicable.mesh
        } else if namespace != workload.namespace {
            continue;
        } else if !spec.has_selector() {
            &mut applicable.namespace
        } else if spec
            .selector
            .as_ref()
            .is_some_and(|s| s.matches(&workload.labels))
        {
            &mut applicable.workload
        } else {
            continue;
        };
        slot.get_or_insert(resource);
    }
    applicable
}

/// Selects the legacy `MeshPolicy` or `Policy` for a workload port, whether or not a
/// `PeerAuthentication` overrides its `peers` (its `origins` still apply).
///
/// Only services that select the workload and map a service port to `workload_port` count.
/// The first match in this order wins, and a match replaces wider policies entirely:
/// 1. a `Policy` in the service's namespace whose target names the service and that service
///    port, by number or port name;
/// 2. a `Policy` whose target names the service without ports;
/// 3. the `Policy` named `default` in the workload's namespace;
/// 4. the `MeshPolicy`.
///
/// Ties go to the oldest policy.
pub fn legacy_policy_for<'a>(
    snapshot: &'a Snapshot,
    workload: &WorkloadMeta,
    workload_port: u16,
) -> Option<&'a Resource> {
    let service_ports: Vec<_> = workload.service_ports_for(workload_port).collect();
    let policies = || {
        snapshot.resources.iter().filter_map(|r| match &r.spec {
            Spec::Policy(spec) => Some((r.as_ref(), spec)),
            _ => None,
        })
    };

    let by_port = policies().find(|(resource, spec)| {
        service_ports.iter().any(|(service, port)| {
            resource.meta.namespace == service.namespace
                && spec.targets.iter().any(|target| {
                    target.name == service.name
                        && target
                            .ports
                            .iter()
                            .any(|p| p.matches(port.port, &port.name))
                })
        })
    });
    let by_service = || {
        policies().find(|(resource, spec)| {
            service_ports.iter().any(|(service, _)| {
                resource.meta.namespace == service.namespace
                    && spec
                        .targets
                        .iter()
                        .any(|target| target.name == service.name && target.ports.is_empty())
            })
        })
    };
    let by_namespace = || {
        policies().find(|(resource, spec)| {
            resource.meta.namespace == workload.namespace
                && resource.meta.name == "default"
                && spec.targets.is_empty()
        })
    };

    by_port
        .or_else(by_service)
        .or_else(by_namespace)
        .map(|(resource, _)| resource)
        .or_else(|| snapshot.mesh_policy().map(|(resource, _)| resource))
}

fn legacy_mode(snapshot: &Snapshot, workload: &WorkloadMeta, workload_port: u16) -> EffectiveMode {
    let Some(resource) = legacy_policy_for(snapshot, workload, workload_port) else {
        return EffectiveMode {
            mode: PeerMode::Permissive,
            source: ModeSource::Default,
        };
    };
    let (spec, source) = match &resource.spec {
        Spec::MeshPolicy(spec) => (
            spec,
            ModeSource::MeshPolicy {
                name: resource.meta.name.clone(),
            },
        ),
        Spec::Policy(spec) => (
            spec,
            ModeSource::Policy {
                namespace: resource.meta.namespace.clone(),
                name: resource.meta.name.clone(),
            },
        ),
        _ => unreachable!("legacy_policy_for returns only MeshPolicy and Policy resources"),
    };
    EffectiveMode {
        mode: legacy_peer_mode(spec),
        source,
    }
}

fn legacy_peer_mode(spec: &PolicySpec) -> PeerMode {
    match spec.mtls() {
        None => PeerMode::Disable,
        Some(mtls) if mtls.allow_tls || mtls.mode == LegacyMtlsMode::Permissive => {
            PeerMode::Permissive
        }
        Some(_) => PeerMode::Strict,
    }
}

fn peer_mode(mode: MtlsMode) -> Option<PeerMode> {
    match mode {
        MtlsMode::Unset => None,
        MtlsMode::Disable => Some(PeerMode::Disable),
        MtlsMode::Permissive => Some(PeerMode::Permissive),
        MtlsMode::Strict => Some(PeerMode::Strict),
    }
}

fn as_peer_authentication(resource: &Resource) -> Option<(&Resource, &PeerAuthenticationSpec)> {
    match &resource.spec {
        Spec::PeerAuthentication(spec) => Some((resource, spec)),
        _ => None,
    }
}

fn source_of(resource: &Resource, scope: PeerAuthenticationScope) -> ModeSource {
    ModeSource::PeerAuthentication {
        namespace: resource.meta.namespace.clone(),
        name: resource.meta.name.clone(),
        scope,
    }
}

impl ApplicablePolicies<'_> {
    pub fn is_empty(&self) -> bool {
        self.mesh.is_none() && self.namespace.is_none() && self.workload.is_none()
    }
}

impl fmt::Display for PeerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerMode::Strict => "STRICT",
            PeerMode::Permissive => "PERMISSIVE",
            PeerMode::Disable => "DISABLE",
        })
    }
}

impl fmt::Display for ModeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeSource::PeerAuthentication {
                namespace,
                name,
                scope,
            } => {
                write!(f, "PeerAuthentication {namespace}/{name} ")?;
                match scope {
                    PeerAuthenticationScope::Mesh => f.write_str("(mesh)"),
                    PeerAuthenticationScope::Namespace => f.write_str("(namespace)"),
                    PeerAuthenticationScope::Workload => f.write_str("(workload)"),
                    PeerAuthenticationScope::Port(port) => write!(f, "(portLevelMtls {port})"),
                }
            }
            ModeSource::MeshPolicy { name } => write!(f, "MeshPolicy {name}"),
            ModeSource::Policy { namespace, name } => write!(f, "Policy {namespace}/{name}"),
            ModeSource::Default => f.write_str("default (no policy)"),
        }
    }
}

impl fmt::Display for EffectiveMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.mode, self.source)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::config::parse_documents;
    use crate::store::ConfigStore;
    use crate::workload::{ServicePort, ServiceRef};

    /// Applies each YAML text in turn, so earlier texts hold older resources.
    fn snapshot(texts: &[&str]) -> Arc<Snapshot> {
        let store = ConfigStore::new();
        for (i, text) in texts.iter().enumerate() {
            let documents = parse_documents(text, &format!("text {i}")).unwrap();
            store.apply(documents);
        }
        store.snapshot()
    }

    fn workload(namespace: &str, app: &str, service_port: u16, workload_port: u16) -> WorkloadMeta {
        let labels = BTreeMap::from([
            ("app".to_string(), app.to_string()),
            ("version".to_string(), "v1".to_string()),
        ]);
        WorkloadMeta {
            name: format!("{app}-v1"),
            namespace: namespace.to_string(),
            service_account: app.to_string(),
            labels,
            services: vec![ServiceRef {
                name: app.to_string(),
                namespace: namespace.to_string(),
                ports: vec![ServicePort {
                    port: service_port,
                    target_port: workload_port,
                    name: "http".to_string(),
                }],
            }],
            sidecar: true,
        }
    }

    fn productpage() -> WorkloadMeta {
        workload("default", "productpage", 9080, 9080)
    }

    fn details() -> WorkloadMeta {
        workload("default", "details", 9080, 9080)
    }

    /// httpbin in `foo`: service port 8000 forwards to workload port 80.
    fn httpbin() -> WorkloadMeta {
        workload("foo", "httpbin", 8000, 80)
    }

    fn pa(namespace: &str, name: &str, body: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n\
             metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
        )
    }

    fn mesh_policy(body: &str) -> String {
        format!(
            "apiVersion: authentication.istio.io/v1alpha1\nkind: MeshPolicy\n\
             metadata: {{name: default}}\nspec:\n{body}"
        )
    }

    fn policy(namespace: &str, name: &str, body: &str) -> String {
        format!(
            "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\n\
             metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}"
        )
    }

    const STRICT: &str = "  mtls: {mode: STRICT}\n";
    const PERMISSIVE: &str = "  mtls: {mode: PERMISSIVE}\n";
    const DISABLE: &str = "  mtls: {mode: DISABLE}\n";
    const UNSET: &str = "  mtls: {mode: UNSET}\n";
    const PEERS_MTLS: &str = "  peers:\n  - mtls: {}\n";

    fn mode_of(texts: &[&str], workload: &WorkloadMeta, port: u16) -> PeerMode {
        effective_mode(&snapshot(texts), workload, port).mode
    }

    #[test]
    fn no_policy_is_permissive() {
        let result = effective_mode(&snapshot(&[]), &productpage(), 9080);
        assert_eq!(result.mode, PeerMode::Permissive);
        assert_eq!(result.source, ModeSource::Default);
        assert_eq!(result.source.to_string(), "default (no policy)");
    }

    #[test]
    fn mesh_strict_applies_to_every_namespace() {
        let mesh = pa("istio-system", "default", STRICT);
        let result = effective_mode(&snapshot(&[&mesh]), &httpbin(), 80);
        assert_eq!(result.mode, PeerMode::Strict);
        assert_eq!(
            result.source.to_string(),
            "PeerAuthentication istio-system/default (mesh)"
        );
        assert_eq!(mode_of(&[&mesh], &productpage(), 9080), PeerMode::Strict);
    }

    #[test]
    fn mesh_empty_match_labels_is_mesh_scope() {
        let mesh = pa(
            "istio-system",
            "default",
            "  selector: {matchLabels: {}}\n  mtls: {mode: STRICT}\n",
        );
        assert_eq!(mode_of(&[&mesh], &productpage(), 9080), PeerMode::Strict);
    }

    #[test]
    fn namespace_overrides_mesh() {
        let mesh = pa("istio-system", "default", STRICT);
        let foo = pa("foo", "default", PERMISSIVE);
        let texts = [mesh.as_str(), foo.as_str()];
        let result = effective_mode(&snapshot(&texts), &httpbin(), 80);
        assert_eq!(result.mode, PeerMode::Permissive);
        assert_eq!(
            result.source.to_string(),
            "PeerAuthentication foo/default (namespace)"
        );
        assert_eq!(mode_of(&texts, &productpage(), 9080), PeerMode::Strict);
    }

    #[test]
    fn workload_overrides_namespace() {
        let namespace = pa("default", "default", STRICT);
        let selector = "  selector: {matchLabels: {app: details}}\n  mtls: {mode: DISABLE}\n";
        let workload_policy = pa("default", "details", selector);
        let texts = [namespace.as_str(), workload_policy.as_str()];
        let result = effective_mode(&snapshot(&texts), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Disable);
        assert_eq!(
            result.source.to_string(),
            "PeerAuthentication default/details (workload)"
        );
        assert_eq!(mode_of(&texts, &productpage(), 9080), PeerMode::Strict);
    }

    #[test]
    fn unset_namespace_inherits_mesh() {
        let mesh = pa("istio-system", "default", STRICT);
        let unset = pa("default", "default", UNSET);
        let empty = pa("default", "default", "  {}\n");
        assert_eq!(
            mode_of(&[&mesh, &unset], &details(), 9080),
            PeerMode::Strict
        );
        assert_eq!(
            mode_of(&[&mesh, &empty], &details(), 9080),
            PeerMode::Strict
        );
    }

    #[test]
    fn unset_workload_inherits_namespace() {
        let namespace = pa("default", "default", DISABLE);
        let selector = "  selector: {matchLabels: {app: details}}\n  mtls: {mode: UNSET}\n";
        let workload_policy = pa("default", "details", selector);
        let result = effective_mode(&snapshot(&[&namespace, &workload_policy]), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Disable);
        assert_eq!(
            result.source.to_string(),
            "PeerAuthentication default/default (namespace)"
        );
    }

    #[test]
    fn all_unset_is_permissive() {
        let mesh = pa("istio-system", "default", UNSET);
        let namespace = pa("default", "default", UNSET);
        let result = effective_mode(&snapshot(&[&mesh, &namespace]), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Permissive);
    }

    #[test]
    fn port_level_overrides_workload_mode() {
        let body = "  selector: {matchLabels: {app: httpbin}}\n  mtls: {mode: STRICT}\n  \
                    portLevelMtls:\n    80: {mode: DISABLE}\n";
        let texts = [pa("foo", "httpbin", body)];
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let snapshot = snapshot(&texts);
        let on_80 = effective_mode(&snapshot, &httpbin(), 80);
        assert_eq!(on_80.mode, PeerMode::Disable);
        assert_eq!(
            on_80.source.to_string(),
            "PeerAuthentication foo/httpbin (portLevelMtls 80)"
        );
        let on_8080 = effective_mode(&snapshot, &httpbin(), 8080);
        assert_eq!(on_8080.mode, PeerMode::Strict);
    }

    #[test]
    fn port_level_keys_are_workload_ports() {
        // 8000 is httpbin's service port; the entry must not touch workload port 80.
        let body = "  selector: {matchLabels: {app: httpbin}}\n  mtls: {mode: STRICT}\n  \
                    portLevelMtls:\n    \"8000\": {mode: DISABLE}\n";
        let text = pa("foo", "httpbin", body);
        assert_eq!(mode_of(&[&text], &httpbin(), 80), PeerMode::Strict);
    }

    #[test]
    fn port_level_unset_inherits_namespace() {
        let namespace = pa("foo", "default", STRICT);
        let body =
            "  selector: {matchLabels: {app: httpbin}}\n  portLevelMtls:\n    80: {mode: UNSET}\n";
        let workload_policy = pa("foo", "httpbin", body);
        let result = effective_mode(&snapshot(&[&namespace, &workload_policy]), &httpbin(), 80);
        assert_eq!(result.mode, PeerMode::Strict);
        assert_eq!(
            result.source.to_string(),
            "PeerAuthentication foo/default (namespace)"
        );
    }

    #[test]
    fn oldest_namespace_policy_wins() {
        let older = pa("default", "a-strict", STRICT);
        let newer = pa("default", "b-disable", DISABLE);
        let result = effective_mode(&snapshot(&[&newer, &older]), &details(), 9080);
        assert_eq!(
            result.mode,
            PeerMode::Disable,
            "the first applied is the oldest"
        );
        let result = effective_mode(&snapshot(&[&older, &newer]), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Strict);
    }

    #[test]
    fn oldest_workload_policy_wins() {
        let by_app = pa(
            "default",
            "z-by-app",
            "  selector: {matchLabels: {app: details}}\n  mtls: {mode: STRICT}\n",
        );
        let by_version = pa(
            "default",
            "a-by-version",
            "  selector: {matchLabels: {version: v1}}\n  mtls: {mode: DISABLE}\n",
        );
        let result = effective_mode(&snapshot(&[&by_app, &by_version]), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Strict);
        assert_eq!(
            result.source.to_string(),
            "PeerAuthentication default/z-by-app (workload)"
        );
    }

    #[test]
    fn reapplied_policy_keeps_its_age() {
        let store = ConfigStore::new();
        let first = pa("default", "first", STRICT);
        let second = pa("default", "second", DISABLE);
        let changed_first = pa("default", "first", PERMISSIVE);
        for text in [&first, &second, &changed_first] {
            store.apply(parse_documents(text, "test").unwrap());
        }
        let result = effective_mode(&store.snapshot(), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Permissive);
        assert_eq!(
            result.source.to_string(),
            "PeerAuthentication default/first (namespace)"
        );
    }

    #[test]
    fn root_namespace_selector_is_ignored() {
        let mesh = pa("istio-system", "default", STRICT);
        let root_selector = pa(
            "istio-system",
            "productpage",
            "  selector: {matchLabels: {app: productpage}}\n  mtls: {mode: DISABLE}\n",
        );
        assert_eq!(
            mode_of(&[&mesh, &root_selector], &productpage(), 9080),
            PeerMode::Strict
        );
        let alone = effective_mode(&snapshot(&[&root_selector]), &productpage(), 9080);
        assert_eq!(alone.mode, PeerMode::Permissive);
        assert_eq!(alone.source, ModeSource::Default);
    }

    #[test]
    fn selector_must_match_labels() {
        let text = pa(
            "default",
            "ratings",
            "  selector: {matchLabels: {app: ratings}}\n  mtls: {mode: STRICT}\n",
        );
        assert_eq!(mode_of(&[&text], &details(), 9080), PeerMode::Permissive);
    }

    #[test]
    fn other_namespace_policy_is_ignored() {
        let text = pa("foo", "default", STRICT);
        assert_eq!(mode_of(&[&text], &details(), 9080), PeerMode::Permissive);
    }

    #[test]
    fn legacy_mesh_policy_modes() {
        let strict = mesh_policy(PEERS_MTLS);
        let result = effective_mode(&snapshot(&[&strict]), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Strict);
        assert_eq!(result.source.to_string(), "MeshPolicy default");

        let null_mtls = mesh_policy("  peers:\n  - mtls:\n");
        assert_eq!(mode_of(&[&null_mtls], &details(), 9080), PeerMode::Strict);

        let permissive = mesh_policy("  peers:\n  - mtls: {mode: PERMISSIVE}\n");
        assert_eq!(
            mode_of(&[&permissive], &details(), 9080),
            PeerMode::Permissive
        );

        let allow_tls = mesh_policy("  peers:\n  - mtls: {allowTls: true}\n");
        assert_eq!(
            mode_of(&[&allow_tls], &details(), 9080),
            PeerMode::Permissive
        );

        let no_peers = mesh_policy("  {}\n");
        assert_eq!(mode_of(&[&no_peers], &details(), 9080), PeerMode::Disable);
    }

    #[test]
    fn legacy_namespace_policy_overrides_mesh() {
        let mesh = mesh_policy(PEERS_MTLS);
        let namespace = policy(
            "default",
            "default",
            "  peers:\n  - mtls: {mode: PERMISSIVE}\n",
        );
        let result = effective_mode(&snapshot(&[&mesh, &namespace]), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Permissive);
        assert_eq!(result.source.to_string(), "Policy default/default");
        assert_eq!(
            mode_of(&[&mesh, &namespace], &httpbin(), 80),
            PeerMode::Strict
        );
    }

    #[test]
    fn legacy_target_without_peers_disables() {
        // A Policy that only adds origins replaces the STRICT mesh policy for its target.
        let mesh = mesh_policy(PEERS_MTLS);
        let origins_only = policy(
            "default",
            "productpage-jwt",
            "  targets:\n  - name: productpage\n  origins:\n  - jwt:\n      issuer: testing@secure.istio.io\n",
        );
        let texts = [mesh.as_str(), origins_only.as_str()];
        let result = effective_mode(&snapshot(&texts), &productpage(), 9080);
        assert_eq!(result.mode, PeerMode::Disable);
        assert_eq!(result.source.to_string(), "Policy default/productpage-jwt");
        assert_eq!(mode_of(&texts, &details(), 9080), PeerMode::Strict);
    }

    #[test]
    fn legacy_target_port_number_beats_plain_target() {
        let plain = policy(
            "foo",
            "httpbin-any",
            "  targets:\n  - name: httpbin\n  peers:\n  - mtls: {}\n",
        );
        let by_port = policy(
            "foo",
            "httpbin-8000",
            "  targets:\n  - name: httpbin\n    ports:\n    - number: 8000\n",
        );
        let result = effective_mode(&snapshot(&[&plain, &by_port]), &httpbin(), 80);
        assert_eq!(result.mode, PeerMode::Disable);
        assert_eq!(result.source.to_string(), "Policy foo/httpbin-8000");
    }

    #[test]
    fn legacy_target_port_name_matches() {
        let plain = policy(
            "foo",
            "httpbin-any",
            "  targets:\n  - name: httpbin\n  peers:\n  - mtls: {}\n",
        );
        let by_name = policy(
            "foo",
            "httpbin-http",
            "  targets:\n  - name: httpbin\n    ports:\n    - name: http\n  peers:\n  - mtls: {mode: PERMISSIVE}\n",
        );
        let result = effective_mode(&snapshot(&[&plain, &by_name]), &httpbin(), 80);
        assert_eq!(result.mode, PeerMode::Permissive);
        assert_eq!(result.source.to_string(), "Policy foo/httpbin-http");
    }

    #[test]
    fn legacy_target_port_is_service_port() {
        // Port 80 is httpbin's workload port; a target on port 80 names no service port.
        let namespace = policy("foo", "default", PEERS_MTLS);
        let wrong_port = policy(
            "foo",
            "httpbin-80",
            "  targets:\n  - name: httpbin\n    ports:\n    - number: 80\n",
        );
        let result = effective_mode(&snapshot(&[&namespace, &wrong_port]), &httpbin(), 80);
        assert_eq!(result.mode, PeerMode::Strict);
        assert_eq!(result.source.to_string(), "Policy foo/default");
    }

    #[test]
    fn legacy_target_resolves_in_policy_namespace() {
        let other_namespace = policy("default", "httpbin", "  targets:\n  - name: httpbin\n");
        let mesh = mesh_policy(PEERS_MTLS);
        assert_eq!(
            mode_of(&[&mesh, &other_namespace], &httpbin(), 80),
            PeerMode::Strict
        );
    }

    #[test]
    fn legacy_oldest_target_wins() {
        let older = policy(
            "default",
            "z-details",
            "  targets:\n  - name: details\n  peers:\n  - mtls: {}\n",
        );
        let newer = policy("default", "a-details", "  targets:\n  - name: details\n");
        let result = effective_mode(&snapshot(&[&older, &newer]), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Strict);
        assert_eq!(result.source.to_string(), "Policy default/z-details");
    }

    #[test]
    fn peer_authentication_replaces_legacy() {
        let mesh = mesh_policy(PEERS_MTLS);
        let namespace = pa("default", "default", PERMISSIVE);
        let texts = [mesh.as_str(), namespace.as_str()];
        let result = effective_mode(&snapshot(&texts), &details(), 9080);
        assert_eq!(result.mode, PeerMode::Permissive);
        assert_eq!(
            result.source.to_string(),
            "PeerAuthentication default/default (namespace)"
        );
        // No PeerAuthentication applies in foo, so the MeshPolicy still does.
        assert_eq!(mode_of(&texts, &httpbin(), 80), PeerMode::Strict);
    }

    #[test]
    fn unset_peer_authentication_still_replaces_legacy() {
        let mesh = mesh_policy(PEERS_MTLS);
        let namespace = pa("default", "default", UNSET);
        assert_eq!(
            mode_of(&[&mesh, &namespace], &details(), 9080),
            PeerMode::Permissive
        );
    }

    #[test]
    fn legacy_policy_for_ignores_peer_authentication() {
        let origins = policy(
            "default",
            "productpage-jwt",
            "  targets:\n  - name: productpage\n  origins:\n  - jwt: {issuer: testing@secure.istio.io}\n  \
             principalBinding: USE_ORIGIN\n",
        );
        let mesh_pa = pa("istio-system", "default", STRICT);
        let snapshot = snapshot(&[&origins, &mesh_pa]);
        let selected = legacy_policy_for(&snapshot, &productpage(), 9080).expect("policy selected");
        assert_eq!(selected.meta.name, "productpage-jwt");
        assert!(legacy_policy_for(&snapshot, &details(), 9080).is_none());
        assert_eq!(
            effective_mode(&snapshot, &productpage(), 9080).mode,
            PeerMode::Strict
        );
    }
}
