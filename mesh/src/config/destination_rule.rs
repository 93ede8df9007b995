//! `networking.istio.io` `DestinationRule` (v1alpha3, v1beta1 and v1), as written in YAML.
//!
//! Only client TLS is enforced. The load-balancing, connection-pool and outlier-detection
//! fields are accepted and stored as raw JSON but have no effect, because course YAML sets
//! them next to `tls` and must still apply.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::FieldError;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRuleSpec {
    /// Service host: a short name (resolved in the rule's namespace), an FQDN, or a wildcard
    /// with a leading `*`.
    #[serde(default)]
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    pub subsets: Vec<Subset>,
    /// Namespaces that see the rule: `.` for its own, `*` for all; empty means all.
    #[serde(default)]
    pub export_to: Vec<String>,
}

/// `trafficPolicy`. Fields other than `tls` and `portLevelSettings` are kept but not applied.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    #[serde(default)]
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// One `portLevelSettings` entry. Its `tls` replaces the top-level `tls` for the port, even
/// when absent.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// A **service** port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    pub number: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSettings {
    #[serde(default)]
    pub mode: TlsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    #[serde(default)]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Client TLS mode; DISABLE is the protobuf zero value, so `tls: {}` means plaintext.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    #[default]
    Disable,
    Simple,
    Mutual,
    IstioMutual,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subset {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

pub(crate) fn validate(spec: &DestinationRuleSpec) -> Result<(), FieldError> {
    if spec.host.is_empty() {
        return Err(FieldError::new("spec.host", "missing host")
            .with_hint("set host to the service name, such as reviews"));
    }
    validate_host(&spec.host)?;
    if let Some(policy) = &spec.traffic_policy {
        validate_traffic_policy(policy, "spec.trafficPolicy")?;
    }
    for (i, subset) in spec.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        if subset.name.is_empty() {
            return Err(FieldError::new(
                format!("{path}.name"),
                "missing subset name",
            ));
        }
        if spec.subsets[..i].iter().any(|s| s.name == subset.name) {
            return Err(FieldError::new(
                format!("{path}.name"),
                format!("duplicate subset name {:?}", subset.name),
            ));
        }
        if let Some(policy) = &subset.traffic_policy {
            validate_traffic_policy(policy, &format!("{path}.trafficPolicy"))?;
        }
    }
    Ok(())
}

/// Wildcards are allowed only as a leading `*` label: `*`, `*.local`,
/// `*.default.svc.cluster.local`.
fn validate_host(host: &str) -> Result<(), FieldError> {
    let rest = host.strip_prefix('*').unwrap_or(host);
    let bad_wildcard =
        rest.contains('*') || (host.starts_with('*') && !rest.is_empty() && !rest.starts_with('.'));
    if bad_wildcard {
        return Err(FieldError::new(
            "spec.host",
            format!("invalid host {host:?}: a wildcard is only allowed as a leading \"*.\""),
        ));
    }
    Ok(())
}

fn validate_traffic_policy(policy: &TrafficPolicy, path: &str) -> Result<(), FieldError> {
    if let Some(tls) = &policy.tls {
        validate_tls(tls, &format!("{path}.tls"))?;
    }
    for (i, entry) in policy.port_level_settings.iter().enumerate() {
        let entry_path = format!("{path}.portLevelSettings[{i}]");
        let Some(port) = entry.port else {
            return Err(FieldError::new(
                format!("{entry_path}.port"),
                "missing port",
            ));
        };
        if !(1..=65535).contains(&port.number) {
            return Err(FieldError::new(
                format!("{entry_path}.port.number"),
                format!("port {} is out of range 1..65535", port.number),
            ));
        }
        if let Some(tls) = &entry.tls {
            validate_tls(tls, &format!("{entry_path}.tls"))?;
        }
    }
    Ok(())
}

fn validate_tls(tls: &ClientTlsSettings, path: &str) -> Result<(), FieldError> {
    match tls.mode {
        TlsMode::IstioMutual => {
            let files = [
                ("clientCertificate", &tls.client_certificate),
                ("privateKey", &tls.private_key),
                ("caCertificates", &tls.ca_certificates),
                ("credentialName", &tls.credential_name),
            ];
            if let Some((field, _)) = files.iter().find(|(_, value)| value.is_some()) {
                return Err(FieldError::new(
                    format!("{path}.{field}"),
                    "must not be set with mode ISTIO_MUTUAL, which uses the workload's mesh certificate",
                )
                .with_hint("remove the certificate fields, or use mode MUTUAL"));
            }
        }
        TlsMode::Mutual if tls.credential_name.is_none() => {
            if tls.client_certificate.is_none() {
                return Err(FieldError::new(
                    format!("{path}.clientCertificate"),
                    "mode MUTUAL requires clientCertificate and privateKey, or credentialName",
                ));
            }
            if tls.private_key.is_none() {
                return Err(FieldError::new(
                    format!("{path}.privateKey"),
                    "mode MUTUAL requires clientCertificate and privateKey, or credentialName",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}
