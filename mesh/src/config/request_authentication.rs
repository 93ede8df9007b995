//! `security.istio.io` `RequestAuthentication` (v1beta1 and v1), as written in YAML.

use serde::{Deserialize, Serialize};

use super::{FieldError, WorkloadSelector};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthenticationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
    /// Gateway API attachment (Istio 1.20+); accepted so that modern YAML parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_refs: Option<Vec<serde_json::Value>>,
}

/// One accepted issuer and where to find its tokens and keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    /// Required; `Option` so that a missing issuer is reported with its path by [`validate`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Inline JWKS document (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    #[serde(default)]
    pub from_headers: Vec<JwtHeader>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    #[serde(default)]
    pub forward_original_token: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// JWKS fetch timeout as a protobuf duration, such as `5s` or `1.5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default)]
    pub space_delimited_claims: Vec<String>,
}

/// A header that carries the token, with the prefix to strip (such as `"Bearer "`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    pub name: String,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

pub(crate) fn validate(spec: &RequestAuthenticationSpec) -> Result<(), FieldError> {
    for (i, rule) in spec.jwt_rules.iter().enumerate() {
        let path = format!("spec.jwtRules[{i}]");
        if rule.issuer.as_deref().unwrap_or_default().is_empty() {
            return Err(FieldError::new(format!("{path}.issuer"), "missing issuer")
                .with_hint("set issuer to the token's iss claim"));
        }
        if rule.jwks.is_some() && rule.jwks_uri.is_some() {
            return Err(FieldError::new(
                path,
                "set either jwksUri or jwks, not both",
            ));
        }
        for (j, header) in rule.from_headers.iter().enumerate() {
            if header.name.is_empty() {
                return Err(FieldError::new(
                    format!("{path}.fromHeaders[{j}].name"),
                    "must not be empty",
                ));
            }
        }
        for (j, output) in rule.output_claim_to_headers.iter().enumerate() {
            if output.header.is_empty() || output.claim.is_empty() {
                return Err(FieldError::new(
                    format!("{path}.outputClaimToHeaders[{j}]"),
                    "header and claim must not be empty",
                ));
            }
        }
        if let Some(timeout) = &rule.timeout {
            if !is_protobuf_duration(timeout) {
                return Err(FieldError::new(
                    format!("{path}.timeout"),
                    format!("invalid duration {timeout:?}, expected seconds such as \"5s\""),
                ));
            }
        }
    }
    Ok(())
}

/// True for the protobuf JSON form of a duration: decimal seconds with an `s` suffix.
fn is_protobuf_duration(text: &str) -> bool {
    text.strip_suffix('s')
        .and_then(|seconds| seconds.parse::<f64>().ok())
        .is_some_and(|seconds| seconds.is_finite() && seconds >= 0.0)
}
