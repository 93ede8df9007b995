//! `authentication.istio.io/v1alpha1` `MeshPolicy` and `Policy` (Istio 1.0 to 1.5), as written
//! in YAML.
//!
//! Istio read these with a protobuf JSON decoder, which accepts both the camelCase and the
//! original snake_case field names. Courses use both (`trigger_rules`, `excluded_paths`), so
//! every field here has a snake_case alias.

use serde::{Deserialize, Deserializer, Serialize};

use super::FieldError;

/// `spec` of a `MeshPolicy` or `Policy`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// Services the policy applies to; empty for the namespace (or mesh) policy.
    #[serde(default)]
    pub targets: Vec<TargetSelector>,
    /// Peer authentication methods. An empty list means the workload accepts plaintext only.
    #[serde(default)]
    pub peers: Vec<PeerAuthenticationMethod>,
    #[serde(default, alias = "peer_is_optional")]
    pub peer_is_optional: bool,
    #[serde(default)]
    pub origins: Vec<OriginAuthenticationMethod>,
    #[serde(default, alias = "origin_is_optional")]
    pub origin_is_optional: bool,
    #[serde(default, alias = "principal_binding")]
    pub principal_binding: PrincipalBinding,
}

/// A service the policy targets: a short name resolved in the policy's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetSelector {
    pub name: String,
    /// Service ports; empty means every port of the service.
    #[serde(default)]
    pub ports: Vec<PortSelector>,
}

/// A service port, by number or by port name (exactly one of the two).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One entry of `peers`: `mtls` or the deprecated peer `jwt`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthenticationMethod {
    /// `Some` whenever the key is present: `mtls: {}`, `mtls:` and `mtls: null` all mean mutual
    /// TLS with the default (STRICT) mode.
    #[serde(
        default,
        deserialize_with = "present_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub mtls: Option<MutualTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Jwt>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MutualTls {
    /// Deprecated spelling of `mode: PERMISSIVE`.
    #[serde(default, alias = "allow_tls")]
    pub allow_tls: bool,
    #[serde(default)]
    pub mode: LegacyMtlsMode,
}

/// Legacy mutual TLS mode. STRICT is the protobuf zero value, so an empty `mtls` is STRICT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LegacyMtlsMode {
    #[default]
    Strict,
    Permissive,
}

/// One entry of `origins`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OriginAuthenticationMethod {
    pub jwt: Jwt,
}

/// A legacy JWT method (origin or peer).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Jwt {
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default, alias = "jwks_uri", skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    #[serde(default, alias = "jwt_headers")]
    pub jwt_headers: Vec<String>,
    #[serde(default, alias = "jwt_params")]
    pub jwt_params: Vec<String>,
    #[serde(default, alias = "trigger_rules")]
    pub trigger_rules: Vec<TriggerRule>,
}

/// When the JWT requirement applies: the path is in none of `excluded_paths` and, if
/// `included_paths` is non-empty, in one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerRule {
    #[serde(default, alias = "excluded_paths")]
    pub excluded_paths: Vec<StringMatch>,
    #[serde(default, alias = "included_paths")]
    pub included_paths: Vec<StringMatch>,
}

/// A path matcher: `{exact: /x}`, `{prefix: /x}`, `{suffix: /x}` or `{regex: ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", try_from = "StringMatchFields")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(String),
}

/// The YAML form of [`StringMatch`]: a mapping with exactly one key. serde_yaml reads enums
/// only from tagged values, so the mapping is read as a struct and converted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StringMatchFields {
    exact: Option<String>,
    prefix: Option<String>,
    suffix: Option<String>,
    regex: Option<String>,
}

impl TryFrom<StringMatchFields> for StringMatch {
    type Error = String;

    fn try_from(fields: StringMatchFields) -> Result<Self, String> {
        let set = [
            fields.exact.map(StringMatch::Exact),
            fields.prefix.map(StringMatch::Prefix),
            fields.suffix.map(StringMatch::Suffix),
            fields.regex.map(StringMatch::Regex),
        ];
        let mut set = set.into_iter().flatten();
        match (set.next(), set.next()) {
            (Some(only), None) => Ok(only),
            (None, _) => Err("missing exact, prefix, suffix or regex".to_string()),
            (Some(_), Some(_)) => {
                Err("set only one of exact, prefix, suffix and regex".to_string())
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PrincipalBinding {
    /// `request.auth.principal` is the peer identity.
    #[default]
    UsePeer,
    /// `request.auth.principal` is the origin JWT's `iss/sub`.
    UseOrigin,
}

impl PolicySpec {
    /// Returns the mutual TLS entry of `peers`, if any. Without one the workload accepts
    /// plaintext only.
    pub fn mtls(&self) -> Option<&MutualTls> {
        self.peers.iter().find_map(|peer| peer.mtls.as_ref())
    }
}

impl PortSelector {
    /// True when this selector names the service port `number` or the port called `name`.
    pub fn matches(&self, number: u16, name: &str) -> bool {
        match (&self.number, &self.name) {
            (Some(n), _) => *n == u32::from(number),
            (None, Some(n)) => !name.is_empty() && n == name,
            (None, None) => false,
        }
    }
}

/// Checks a `MeshPolicy` or `Policy` beyond its schema, including Istio 1.4's naming rules.
/// Paths are relative to the document root because the rules involve `metadata.name`.
pub(crate) fn validate(
    spec: &PolicySpec,
    name: &str,
    is_mesh_policy: bool,
) -> Result<(), FieldError> {
    if is_mesh_policy {
        if name != "default" {
            return Err(FieldError::new(
                "metadata.name",
                format!("MeshPolicy must be named default, got {name:?}"),
            )
            .with_hint("rename it to default; there is one MeshPolicy per mesh"));
        }
        if !spec.targets.is_empty() {
            return Err(
                FieldError::new("spec.targets", "MeshPolicy must not have targets").with_hint(
                    "put service-specific settings in a Policy in the service's namespace",
                ),
            );
        }
    } else if spec.targets.is_empty() && name != "default" {
        return Err(FieldError::new(
            "metadata.name",
            format!("a Policy without targets must be named default, got {name:?}"),
        )
        .with_hint("name it default, or add targets"));
    } else if !spec.targets.is_empty() && name == "default" {
        return Err(FieldError::new(
            "spec.targets",
            "a Policy named default must not have targets",
        )
        .with_hint("give the service-specific Policy another name"));
    }

    for (i, target) in spec.targets.iter().enumerate() {
        if target.name.is_empty() {
            return Err(FieldError::new(
                format!("spec.targets[{i}].name"),
                "must not be empty",
            ));
        }
        for (j, port) in target.ports.iter().enumerate() {
            validate_port_selector(port, &format!("spec.targets[{i}].ports[{j}]"))?;
        }
    }

    for (i, origin) in spec.origins.iter().enumerate() {
        validate_jwt(&origin.jwt, &format!("spec.origins[{i}].jwt"))?;
    }
    for (i, peer) in spec.peers.iter().enumerate() {
        match (&peer.mtls, &peer.jwt) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    format!("spec.peers[{i}]"),
                    "set either mtls or jwt, not both",
                ))
            }
            (None, None) => {
                return Err(
                    FieldError::new(format!("spec.peers[{i}]"), "missing mtls or jwt")
                        .with_hint("write `- mtls: {}` for mutual TLS"),
                )
            }
            (None, Some(jwt)) => validate_jwt(jwt, &format!("spec.peers[{i}].jwt"))?,
            (Some(_), None) => {}
        }
    }
    Ok(())
}

fn validate_port_selector(port: &PortSelector, path: &str) -> Result<(), FieldError> {
    match (&port.number, &port.name) {
        (Some(_), Some(_)) => Err(FieldError::new(path, "set either number or name, not both")),
        (None, None) => Err(FieldError::new(path, "missing number or name")),
        (Some(n), None) if !(1..=65535).contains(n) => Err(FieldError::new(
            format!("{path}.number"),
            format!("port {n} is out of range 1..65535"),
        )),
        (None, Some(name)) if name.is_empty() => {
            Err(FieldError::new(format!("{path}.name"), "must not be empty"))
        }
        _ => Ok(()),
    }
}

fn validate_jwt(jwt: &Jwt, path: &str) -> Result<(), FieldError> {
    if jwt.issuer.is_empty() {
        return Err(FieldError::new(format!("{path}.issuer"), "missing issuer"));
    }
    if jwt.jwks.is_some() && jwt.jwks_uri.is_some() {
        return Err(FieldError::new(
            path,
            "set either jwksUri or jwks, not both",
        ));
    }
    Ok(())
}

/// Deserializes a present key as `Some`, treating an explicit null as the default value.
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(
        Option::<T>::deserialize(deserializer)?.unwrap_or_default(),
    ))
}
