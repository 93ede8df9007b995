//! Client-side TLS for an outbound call, from the `DestinationRule` that applies to it.

use std::cmp::Reverse;
use std::fmt;

use crate::config::destination_rule::{ClientTlsSettings, TlsMode};
use crate::config::{DestinationRuleSpec, Resource, Snapshot, ROOT_NAMESPACE};
use crate::workload::ServiceRef;

/// Client TLS decision for one call, and the rule that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTlsDecision {
    pub mode: ClientTls,
    /// `name.namespace` of the deciding `DestinationRule`; `None` when no rule applies.
    pub rule: Option<String>,
}

/// Client TLS settings. File paths are carried as written; loading them is the caller's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientTls {
    /// No rule, or the selected rule (or port entry) has no `tls`: auto mutual TLS decides
    /// from the server's sidecar and peer-authentication mode.
    Auto,
    /// Plaintext.
    Disable,
    /// Mutual TLS with the workload's mesh certificate.
    IstioMutual {
        sni: Option<String>,
        subject_alt_names: Vec<String>,
    },
    /// TLS without a client certificate.
    Simple {
        ca_certificates: Option<String>,
        credential_name: Option<String>,
        sni: Option<String>,
        subject_alt_names: Vec<String>,
        insecure_skip_verify: bool,
    },
    /// Mutual TLS with certificate files named by the rule.
    Mutual {
        client_certificate: Option<String>,
        private_key: Option<String>,
        ca_certificates: Option<String>,
        credential_name: Option<String>,
        sni: Option<String>,
        subject_alt_names: Vec<String>,
        insecure_skip_verify: bool,
    },
}

/// Decides client TLS for a call from a workload in `client_namespace` to `service` on
/// `service_port` (a service port, as `portLevelSettings` uses).
///
/// Rules are looked up in the client's namespace, then the service's namespace, then the root
/// namespace, counting only rules exported to the client's namespace. The first namespace with
/// any rule whose host matches wins. Within it an exact host beats wildcards, and a longer
/// wildcard suffix beats a shorter one. Among rules for the same host, the oldest one's traffic
/// policy is kept. A `portLevelSettings` entry for `service_port` replaces the top-level `tls`
/// entirely, so an entry without `tls` means [`ClientTls::Auto`].
pub fn client_tls(
    snapshot: &Snapshot,
    client_namespace: &str,
    service: &ServiceRef,
    service_port: u16,
) -> ClientTlsDecision {
    let Some((resource, spec)) = select_rule(snapshot, client_namespace, service) else {
        return ClientTlsDecision {
            mode: ClientTls::Auto,
            rule: None,
        };
    };
    ClientTlsDecision {
        mode: tls_for_port(spec, service_port),
        rule: Some(resource.qualified_name()),
    }
}

/// Finds the `DestinationRule` that applies to calls from `client_namespace` to `service`.
pub fn select_rule<'a>(
    snapshot: &'a Snapshot,
    client_namespace: &str,
    service: &ServiceRef,
) -> Option<(&'a Resource, &'a DestinationRuleSpec)> {
    let fqdn = service.fqdn();
    let lookup_order = [client_namespace, service.namespace.as_str(), ROOT_NAMESPACE];
    for (i, namespace) in lookup_order.iter().enumerate() {
        if lookup_order[..i].contains(namespace) {
            continue;
        }
        // Snapshot order is oldest first and `min_by_key` keeps the first of equal keys, so
        // the oldest rule wins among rules for the same host.
        let best = snapshot
            .destination_rules()
            .filter(|(resource, spec)| {
                resource.meta.namespace == *namespace
                    && is_exported_to(spec, namespace, client_namespace)
            })
            .filter_map(|(resource, spec)| {
                let host = resolve_host(&spec.host, namespace);
                host_match_rank(&host, &fqdn).map(|rank| (rank, resource, spec))
            })
            .min_by_key(|(rank, _, _)| *rank);
        if let Some((_, resource, spec)) = best {
            return Some((resource, spec));
        }
    }
    None
}

fn tls_for_port(spec: &DestinationRuleSpec, service_port: u16) -> ClientTls {
    let Some(policy) = &spec.traffic_policy else {
        return ClientTls::Auto;
    };
    let port_entry = policy.port_level_settings.iter().find(|entry| {
        entry
            .port
            .is_some_and(|p| p.number == u32::from(service_port))
    });
    let tls = match port_entry {
        Some(entry) => entry.tls.as_ref(),
        None => policy.tls.as_ref(),
    };
    tls.map_or(ClientTls::Auto, to_client_tls)
}

fn to_client_tls(tls: &ClientTlsSettings) -> ClientTls {
    match tls.mode {
        TlsMode::Disable => ClientTls::Disable,
        TlsMode::IstioMutual => ClientTls::IstioMutual {
            sni: tls.sni.clone(),
            subject_alt_names: tls.subject_alt_names.clone(),
        },
        TlsMode::Simple => ClientTls::Simple {
            ca_certificates: tls.ca_certificates.clone(),
            credential_name: tls.credential_name.clone(),
            sni: tls.sni.clone(),
            subject_alt_names: tls.subject_alt_names.clone(),
            insecure_skip_verify: tls.insecure_skip_verify,
        },
        TlsMode::Mutual => ClientTls::Mutual {
            client_certificate: tls.client_certificate.clone(),
            private_key: tls.private_key.clone(),
            ca_certificates: tls.ca_certificates.clone(),
            credential_name: tls.credential_name.clone(),
            sni: tls.sni.clone(),
            subject_alt_names: tls.subject_alt_names.clone(),
            insecure_skip_verify: tls.insecure_skip_verify,
        },
    }
}

/// `exportTo`: empty or `*` exports everywhere, `.` to the rule's own namespace, `~` nowhere,
/// any other entry to that namespace.
fn is_exported_to(
    spec: &DestinationRuleSpec,
    rule_namespace: &str,
    client_namespace: &str,
) -> bool {
    if spec.export_to.is_empty() {
        return true;
    }
    spec.export_to.iter().any(|entry| match entry.as_str() {
        "*" => true,
        "." => rule_namespace == client_namespace,
        namespace => namespace == client_namespace,
    })
}

/// Resolves a rule's `host` as Kubernetes DNS does: a name without dots is a service in the
/// rule's namespace. Wildcards and names with dots are taken as written.
fn resolve_host(host: &str, rule_namespace: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_string()
    } else {
        format!("{host}.{rule_namespace}.svc.cluster.local")
    }
}

/// Ranks how specifically `host` matches `fqdn`, or returns `None` when it does not. Lower
/// ranks are more specific: an exact name, then wildcards by decreasing suffix length.
fn host_match_rank(host: &str, fqdn: &str) -> Option<HostRank> {
    if host.eq_ignore_ascii_case(fqdn) {
        return Some(HostRank::Exact);
    }
    let suffix = host.strip_prefix('*')?;
    let tail = fqdn
        .len()
        .checked_sub(suffix.len())
        .and_then(|start| fqdn.get(start..));
    let matches = suffix.is_empty()
        || (fqdn.len() > suffix.len() && tail.is_some_and(|t| t.eq_ignore_ascii_case(suffix)));
    matches.then_some(HostRank::Wildcard(Reverse(suffix.len())))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum HostRank {
    Exact,
    Wildcard(Reverse<usize>),
}

impl fmt::Display for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientTls::Auto => "AUTO",
            ClientTls::Disable => "DISABLE",
            ClientTls::IstioMutual { .. } => "ISTIO_MUTUAL",
            ClientTls::Simple { .. } => "SIMPLE",
            ClientTls::Mutual { .. } => "MUTUAL",
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::parse_documents;
    use crate::store::ConfigStore;
    use crate::workload::ServicePort;

    /// Applies each YAML text in turn, so earlier texts hold older resources.
    fn snapshot(texts: &[&str]) -> Arc<Snapshot> {
        let store = ConfigStore::new();
        for (i, text) in texts.iter().enumerate() {
            store.apply(parse_documents(text, &format!("text {i}")).unwrap());
        }
        store.snapshot()
    }

    fn service(name: &str, namespace: &str, port: u16) -> ServiceRef {
        ServiceRef {
            name: name.to_string(),
            namespace: namespace.to_string(),
            ports: vec![ServicePort {
                port,
                target_port: port,
                name: "http".to_string(),
            }],
        }
    }

    fn details() -> ServiceRef {
        service("details", "default", 9080)
    }

    fn rule(namespace: &str, name: &str, host: &str, extra: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\n\
             metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  host: \"{host}\"\n{extra}"
        )
    }

    fn tls(mode: &str) -> String {
        format!("  trafficPolicy:\n    tls:\n      mode: {mode}\n")
    }

    fn decide(
        texts: &[&str],
        client_namespace: &str,
        service: &ServiceRef,
        port: u16,
    ) -> ClientTlsDecision {
        client_tls(&snapshot(texts), client_namespace, service, port)
    }

    fn istio_mutual() -> ClientTls {
        ClientTls::IstioMutual {
            sni: None,
            subject_alt_names: vec![],
        }
    }

    #[test]
    fn no_rule_is_auto() {
        let decision = decide(&[], "default", &details(), 9080);
        assert_eq!(decision.mode, ClientTls::Auto);
        assert_eq!(decision.rule, None);
    }

    #[test]
    fn namespace_wildcard_applies() {
        let text = rule(
            "default",
            "default",
            "*.default.svc.cluster.local",
            &tls("ISTIO_MUTUAL"),
        );
        let decision = decide(&[&text], "default", &details(), 9080);
        assert_eq!(decision.mode, istio_mutual());
        assert_eq!(decision.rule.as_deref(), Some("default.default"));
        let foo = decide(&[&text], "default", &service("httpbin", "foo", 8000), 8000);
        assert_eq!(foo.mode, ClientTls::Auto);
    }

    #[test]
    fn exact_host_beats_wildcard() {
        let wildcard = rule(
            "default",
            "default",
            "*.default.svc.cluster.local",
            &tls("ISTIO_MUTUAL"),
        );
        let exact = rule("default", "details", "details", &tls("DISABLE"));
        let texts = [wildcard.as_str(), exact.as_str()];
        let decision = decide(&texts, "default", &details(), 9080);
        assert_eq!(decision.mode, ClientTls::Disable);
        assert_eq!(decision.rule.as_deref(), Some("details.default"));
        let reviews = decide(
            &texts,
            "default",
            &service("reviews", "default", 9080),
            9080,
        );
        assert_eq!(reviews.mode, istio_mutual());
    }

    #[test]
    fn longer_wildcard_beats_shorter() {
        let short = rule("default", "local", "*.local", &tls("DISABLE"));
        let long = rule(
            "default",
            "default",
            "*.default.svc.cluster.local",
            &tls("ISTIO_MUTUAL"),
        );
        let any = rule("default", "any", "*", &tls("SIMPLE"));
        let decision = decide(&[&short, &any, &long], "default", &details(), 9080);
        assert_eq!(decision.rule.as_deref(), Some("default.default"));
        let decision = decide(&[&any, &short], "default", &details(), 9080);
        assert_eq!(decision.rule.as_deref(), Some("local.default"));
    }

    #[test]
    fn specific_rule_without_tls_is_auto() {
        // A rule for load balancing only still wins the lookup and drops ISTIO_MUTUAL.
        let wildcard = rule(
            "default",
            "default",
            "*.default.svc.cluster.local",
            &tls("ISTIO_MUTUAL"),
        );
        let no_tls = rule(
            "default",
            "details",
            "details",
            "  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n  subsets:\n  - name: v1\n    labels: {version: v1}\n",
        );
        let decision = decide(&[&wildcard, &no_tls], "default", &details(), 9080);
        assert_eq!(decision.mode, ClientTls::Auto);
        assert_eq!(decision.rule.as_deref(), Some("details.default"));
    }

    #[test]
    fn short_host_resolves_in_rule_namespace() {
        // In foo, `details` means details.foo, not the details service in default.
        let in_foo = rule("foo", "details", "details", &tls("DISABLE"));
        let decision = decide(&[&in_foo], "foo", &details(), 9080);
        assert_eq!(decision.mode, ClientTls::Auto);
        let fqdn = rule(
            "foo",
            "details-fqdn",
            "details.default.svc.cluster.local",
            &tls("DISABLE"),
        );
        let decision = decide(&[&fqdn], "foo", &details(), 9080);
        assert_eq!(decision.mode, ClientTls::Disable);
    }

    #[test]
    fn client_namespace_rule_first() {
        let client_side = rule("foo", "all", "*", &tls("DISABLE"));
        let service_side = rule("default", "details", "details", &tls("ISTIO_MUTUAL"));
        let texts = [service_side.as_str(), client_side.as_str()];
        let from_foo = decide(&texts, "foo", &details(), 9080);
        assert_eq!(
            from_foo.mode,
            ClientTls::Disable,
            "the client's namespace wins even with a wildcard"
        );
        assert_eq!(from_foo.rule.as_deref(), Some("all.foo"));
        let from_bar = decide(&texts, "bar", &details(), 9080);
        assert_eq!(from_bar.mode, istio_mutual());
    }

    #[test]
    fn service_namespace_before_root() {
        let root = rule("istio-system", "default", "*.local", &tls("ISTIO_MUTUAL"));
        let service_side = rule("default", "details", "details", &tls("DISABLE"));
        let texts = [root.as_str(), service_side.as_str()];
        assert_eq!(
            decide(&texts, "foo", &details(), 9080).mode,
            ClientTls::Disable
        );
        let reviews = decide(&texts, "foo", &service("reviews", "default", 9080), 9080);
        assert_eq!(reviews.mode, istio_mutual());
        assert_eq!(reviews.rule.as_deref(), Some("default.istio-system"));
    }

    #[test]
    fn export_to_dot_hides_rule() {
        let local = rule(
            "default",
            "details",
            "details",
            &format!("  exportTo: [\".\"]\n{}", tls("DISABLE")),
        );
        assert_eq!(
            decide(&[&local], "default", &details(), 9080).mode,
            ClientTls::Disable
        );
        assert_eq!(
            decide(&[&local], "foo", &details(), 9080).mode,
            ClientTls::Auto
        );
    }

    #[test]
    fn export_to_namespace_list() {
        let listed = rule(
            "default",
            "details",
            "details",
            &format!("  exportTo: [foo]\n{}", tls("DISABLE")),
        );
        assert_eq!(
            decide(&[&listed], "foo", &details(), 9080).mode,
            ClientTls::Disable
        );
        assert_eq!(
            decide(&[&listed], "bar", &details(), 9080).mode,
            ClientTls::Auto
        );
        let everywhere = rule(
            "default",
            "details",
            "details",
            &format!("  exportTo: [\"*\"]\n{}", tls("DISABLE")),
        );
        assert_eq!(
            decide(&[&everywhere], "bar", &details(), 9080).mode,
            ClientTls::Disable
        );
    }

    #[test]
    fn hidden_rule_falls_through_to_root() {
        let hidden = rule(
            "default",
            "details",
            "details",
            &format!("  exportTo: [\".\"]\n{}", tls("DISABLE")),
        );
        let root = rule("istio-system", "default", "*.local", &tls("ISTIO_MUTUAL"));
        assert_eq!(
            decide(&[&hidden, &root], "foo", &details(), 9080).mode,
            istio_mutual()
        );
    }

    #[test]
    fn oldest_rule_for_same_host_wins() {
        let older = rule("default", "z-details", "details", &tls("ISTIO_MUTUAL"));
        let newer = rule(
            "default",
            "a-details",
            "details.default.svc.cluster.local",
            &tls("DISABLE"),
        );
        let decision = decide(&[&older, &newer], "default", &details(), 9080);
        assert_eq!(decision.mode, istio_mutual());
        assert_eq!(decision.rule.as_deref(), Some("z-details.default"));
    }

    #[test]
    fn port_level_settings_replace_tls() {
        let body = "  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n    portLevelSettings:\n    \
                    - port: {number: 9080}\n      tls: {mode: DISABLE}\n    \
                    - port: {number: 9090}\n      loadBalancer: {simple: RANDOM}\n";
        let text = rule("default", "details", "details", body);
        let service = ServiceRef {
            ports: vec![],
            ..details()
        };
        assert_eq!(
            decide(&[&text], "default", &service, 9080).mode,
            ClientTls::Disable
        );
        assert_eq!(
            decide(&[&text], "default", &service, 9090).mode,
            ClientTls::Auto,
            "a port entry without tls does not inherit the top-level tls"
        );
        assert_eq!(
            decide(&[&text], "default", &service, 9091).mode,
            istio_mutual()
        );
    }

    #[test]
    fn settings_are_carried() {
        let body = "  trafficPolicy:\n    tls:\n      mode: MUTUAL\n      clientCertificate: /etc/certs/cert.pem\n      \
                    privateKey: /etc/certs/key.pem\n      caCertificates: /etc/certs/ca.pem\n      sni: details.example\n      \
                    subjectAltNames: [spiffe://cluster.local/ns/default/sa/bookinfo-details]\n";
        let text = rule("default", "details", "details", body);
        let expected = ClientTls::Mutual {
            client_certificate: Some("/etc/certs/cert.pem".to_string()),
            private_key: Some("/etc/certs/key.pem".to_string()),
            ca_certificates: Some("/etc/certs/ca.pem".to_string()),
            credential_name: None,
            sni: Some("details.example".to_string()),
            subject_alt_names: vec![
                "spiffe://cluster.local/ns/default/sa/bookinfo-details".to_string()
            ],
            insecure_skip_verify: false,
        };
        assert_eq!(decide(&[&text], "default", &details(), 9080).mode, expected);

        let simple = rule(
            "default",
            "details",
            "details",
            "  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: true}\n",
        );
        let ClientTls::Simple {
            insecure_skip_verify,
            ..
        } = decide(&[&simple], "default", &details(), 9080).mode
        else {
            panic!("expected SIMPLE");
        };
        assert!(insecure_skip_verify);

        let with_sni = rule(
            "default",
            "details",
            "details",
            "  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL, sni: my.sni}\n",
        );
        let expected = ClientTls::IstioMutual {
            sni: Some("my.sni".to_string()),
            subject_alt_names: vec![],
        };
        assert_eq!(
            decide(&[&with_sni], "default", &details(), 9080).mode,
            expected
        );
    }

    #[test]
    fn host_rank_order() {
        assert_eq!(
            host_match_rank(
                "details.default.svc.cluster.local",
                "details.default.svc.cluster.local"
            ),
            Some(HostRank::Exact)
        );
        assert!(
            host_match_rank("*.svc.cluster.local", "details.default.svc.cluster.local").is_some()
        );
        assert!(
            host_match_rank("*.default.svc.cluster.local", "default.svc.cluster.local").is_none()
        );
        assert!(host_match_rank(
            "reviews.default.svc.cluster.local",
            "details.default.svc.cluster.local"
        )
        .is_none());
        assert!(
            host_match_rank("*.local", "details.default.svc.cluster.local")
                > host_match_rank("*.cluster.local", "details.default.svc.cluster.local")
        );
        assert!(
            host_match_rank("*", "details.default.svc.cluster.local")
                > host_match_rank("*.local", "details.default.svc.cluster.local")
        );
    }
}
