//! `meshctl describe WORKLOAD`: the policies in force for one workload, as
//! `istioctl x describe pod` and `istioctl authn tls-check` show them.

use std::fmt::Write;

use crate::authz::WorkloadAuthorizer;
use crate::client_tls::{client_tls, ClientTls};
use crate::config::legacy_policy::PrincipalBinding;
use crate::config::{Snapshot, Spec, ROOT_NAMESPACE};
use crate::control::ControlPlane;
use crate::ctl::format_table;
use crate::peer_authn::{effective_mode, legacy_policy_for, PeerMode};
use crate::workload::WorkloadMeta;

/// Describes workload `name` in `namespace` (a service name stands for its first
/// workload); `None` when there is no such workload.
pub fn describe(control: &ControlPlane, namespace: &str, name: &str) -> Option<String> {
    let workloads = control.registry().workloads();
    let (workload, ip) = workloads
        .iter()
        .find(|(w, _)| w.namespace == namespace && w.name == name)
        .or_else(|| {
            workloads.iter().find(|(w, _)| {
                w.namespace == namespace && w.services.iter().any(|s| s.name == name)
            })
        })?;
    let snapshot = control.store().snapshot();
    let mut out = String::new();

    let _ = writeln!(
        out,
        "Workload:   {} (namespace {})",
        workload.name, workload.namespace
    );
    let _ = writeln!(out, "Address:    {ip}");
    let identity = if workload.sidecar {
        workload.spiffe_id().to_string()
    } else {
        "none: no sidecar, plaintext only, no policy enforced".to_string()
    };
    let _ = writeln!(out, "Identity:   {identity}");
    let labels: Vec<String> = workload
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(out, "Labels:     {}", labels.join(", "));
    let services: Vec<String> = workload
        .services
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .map(move |p| format!("{}:{} -> {}", s.name, p.port, p.target_port))
        })
        .collect();
    let _ = writeln!(out, "Services:   {}", services.join(", "));

    if workload.sidecar {
        let _ = writeln!(out, "\nPeer authentication (inbound):");
        let mut rows = vec![vec![
            "PORT".to_string(),
            "MODE".to_string(),
            "FROM".to_string(),
        ]];
        for port in workload.target_ports() {
            let mode = effective_mode(&snapshot, workload, port);
            rows.push(vec![
                port.to_string(),
                mode_name(mode.mode).to_string(),
                mode.source.to_string(),
            ]);
        }
        out.push_str(&indent(&format_table(&rows)));

        let _ = writeln!(out, "\nClient TLS (outbound):");
        let mut rows = vec![[
            "HOST:PORT",
            "CLIENT",
            "SERVER",
            "STATUS",
            "DESTINATION RULE",
        ]
        .map(String::from)
        .to_vec()];
        for entry in control.registry().services() {
            for port in &entry.service.ports {
                let decision =
                    client_tls(&snapshot, &workload.namespace, &entry.service, port.port);
                let server_modes: Vec<PeerMode> = entry
                    .endpoints
                    .iter()
                    .map(|e| {
                        if e.workload.sidecar {
                            effective_mode(&snapshot, &e.workload, port.target_port).mode
                        } else {
                            PeerMode::Disable
                        }
                    })
                    .collect();
                let server = server_column(&server_modes);
                let (client, status) = client_and_status(&decision.mode, &entry, &server_modes);
                rows.push(vec![
                    format!("{}:{}", entry.service.fqdn(), port.port),
                    client,
                    server,
                    status.to_string(),
                    decision.rule.clone().unwrap_or_else(|| "-".to_string()),
                ]);
            }
        }
        out.push_str(&indent(&format_table(&rows)));

        let authorizer = WorkloadAuthorizer::compile(&snapshot, workload);
        let _ = writeln!(out, "\nAuthorization policies:");
        if authorizer.policies().is_empty() {
            let _ = writeln!(out, "  none: every request is allowed");
        } else {
            let mut rows = vec![["ACTION", "POLICY", "RULES"].map(String::from).to_vec()];
            for policy in authorizer.policies() {
                let action = if policy.dry_run {
                    format!("{:?} (dry-run)", policy.action).to_uppercase()
                } else {
                    format!("{:?}", policy.action).to_uppercase()
                };
                rows.push(vec![
                    action,
                    format!("{}.{}", policy.name, policy.namespace),
                    policy.rules.to_string(),
                ]);
            }
            out.push_str(&indent(&format_table(&rows)));
        }
        describe_request_authentication(&mut out, &snapshot, workload);
    }
    let _ = writeln!(out, "\n(store version {})", snapshot.version);
    Some(out)
}

/// Lists the JWT rules that apply: RequestAuthentications in the workload's namespace or
/// the root namespace whose selector matches, else the legacy `origins` per port.
fn describe_request_authentication(out: &mut String, snapshot: &Snapshot, workload: &WorkloadMeta) {
    let _ = writeln!(out, "\nRequest authentication (JWT):");
    let modern: Vec<Vec<String>> = snapshot
        .request_authentications()
        .filter(|(resource, spec)| {
            let in_scope = resource.meta.namespace == workload.namespace
                || resource.meta.namespace == ROOT_NAMESPACE;
            in_scope
                && spec
                    .selector
                    .as_ref()
                    .is_none_or(|selector| selector.matches(&workload.labels))
        })
        .map(|(resource, spec)| {
            let issuers: Vec<&str> = spec
                .jwt_rules
                .iter()
                .filter_map(|rule| rule.issuer.as_deref())
                .collect();
            vec![
                "RequestAuthentication".to_string(),
                resource.qualified_name(),
                issuers.join(", "),
            ]
        })
        .collect();
    if !modern.is_empty() {
        let mut rows = vec![["KIND", "NAME", "ISSUERS"].map(String::from).to_vec()];
        rows.extend(modern);
        out.push_str(&indent(&format_table(&rows)));
        let _ = writeln!(
            out,
            "  legacy origins, if any, are ignored for this workload"
        );
        return;
    }
    let mut rows = vec![["PORT", "POLICY", "ISSUERS", "BINDING"]
        .map(String::from)
        .to_vec()];
    for port in workload.target_ports() {
        let Some(resource) = legacy_policy_for(snapshot, workload, port) else {
            continue;
        };
        let (Spec::Policy(spec) | Spec::MeshPolicy(spec)) = &resource.spec else {
            continue;
        };
        if spec.origins.is_empty() {
            continue;
        }
        let issuers: Vec<&str> = spec.origins.iter().map(|o| o.jwt.issuer.as_str()).collect();
        rows.push(vec![
            port.to_string(),
            resource.qualified_name(),
            issuers.join(", "),
            match spec.principal_binding {
                PrincipalBinding::UsePeer => "USE_PEER",
                PrincipalBinding::UseOrigin => "USE_ORIGIN",
            }
            .to_string(),
        ]);
    }
    if rows.len() == 1 {
        let _ = writeln!(out, "  none: requests are not checked for tokens");
    } else {
        out.push_str(&indent(&format_table(&rows)));
    }
}

fn mode_name(mode: PeerMode) -> &'static str {
    match mode {
        PeerMode::Strict => "STRICT",
        PeerMode::Permissive => "PERMISSIVE",
        PeerMode::Disable => "DISABLE",
    }
}

/// `mTLS`, `HTTP` or `HTTP/mTLS` as `istioctl authn tls-check` printed the server side.
fn server_column(modes: &[PeerMode]) -> String {
    let mut kinds: Vec<&str> = modes
        .iter()
        .map(|m| match m {
            PeerMode::Strict => "mTLS",
            PeerMode::Permissive => "HTTP/mTLS",
            PeerMode::Disable => "HTTP",
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds.join(",")
}

/// The client column and the tls-check status: OK, CONFLICT or AUTO.
fn client_and_status(
    mode: &ClientTls,
    entry: &crate::registry::ServiceEntry,
    server_modes: &[PeerMode],
) -> (String, &'static str) {
    let client_mtls = match mode {
        ClientTls::Auto => {
            let sidecars = entry.endpoints.iter().all(|e| e.workload.sidecar);
            let any_disabled = server_modes.contains(&PeerMode::Disable);
            let client = if sidecars && !any_disabled {
                "auto: mTLS"
            } else {
                "auto: HTTP"
            };
            return (client.to_string(), "AUTO");
        }
        ClientTls::Disable => false,
        ClientTls::IstioMutual { .. } | ClientTls::Mutual { .. } => true,
        ClientTls::Simple { .. } => return ("TLS (SIMPLE)".to_string(), "CONFLICT"),
    };
    let conflict = server_modes.iter().any(|m| match m {
        PeerMode::Strict => !client_mtls,
        PeerMode::Disable => client_mtls,
        PeerMode::Permissive => false,
    });
    let client = if client_mtls { "mTLS" } else { "HTTP" };
    (client.to_string(), if conflict { "CONFLICT" } else { "OK" })
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
