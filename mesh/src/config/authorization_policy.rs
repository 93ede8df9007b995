//! `security.istio.io` `AuthorizationPolicy` (v1beta1 and v1), as written in YAML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::WorkloadSelector;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Only for `action: CUSTOM`, which meshlab rejects at apply time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<serde_json::Value>,
    /// `None` and `Some(vec![])` both mean "no rules": an ALLOW policy that matches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_refs: Option<Vec<serde_json::Value>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    #[default]
    Allow,
    Deny,
    Audit,
    Custom,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<From>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<To>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Vec<Condition>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct From {
    #[serde(default)]
    pub source: Source,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct To {
    #[serde(default)]
    pub operation: Operation,
}

/// Source fields; `None` means "not set" (any value, including absent).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    pub principals: Option<Vec<String>>,
    pub not_principals: Option<Vec<String>>,
    pub request_principals: Option<Vec<String>>,
    pub not_request_principals: Option<Vec<String>>,
    pub namespaces: Option<Vec<String>>,
    pub not_namespaces: Option<Vec<String>>,
    pub service_accounts: Option<Vec<String>>,
    pub not_service_accounts: Option<Vec<String>>,
    pub ip_blocks: Option<Vec<String>>,
    pub not_ip_blocks: Option<Vec<String>>,
    pub remote_ip_blocks: Option<Vec<String>>,
    pub not_remote_ip_blocks: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    pub hosts: Option<Vec<String>>,
    pub not_hosts: Option<Vec<String>>,
    pub ports: Option<Vec<String>>,
    pub not_ports: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub not_methods: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub not_paths: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    pub key: String,
    pub values: Option<Vec<String>>,
    pub not_values: Option<Vec<String>>,
}

/// Labels a policy's `selector.matchLabels` requires, for callers that only need the map.
pub type MatchLabels = BTreeMap<String, String>;

/// A validation failure, located by its field path inside the document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Path from the document root, e.g. `spec.rules[0].from[0].source.ipBlocks[1]`.
    pub path: String,
    pub message: String,
}

impl FieldError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Checks `spec` the way Istio's validation does, plus what meshlab cannot enforce, and
/// returns the first problem found.
///
/// Istio's own validation (as of 1.25) rejects, and so does this function:
/// - a selector label with an empty key or a `*`;
/// - an empty `from`, `to`, `source` or `operation`, and empty strings in any list;
/// - invalid IPs, CIDR ranges and ports, and malformed path templates;
/// - `serviceAccounts` combined with `principals` or `namespaces` in one source;
/// - `when` entries with an unknown key or with neither `values` nor `notValues`.
///
/// Rejected because meshlab cannot enforce them: `action: CUSTOM` and `provider` (there
/// is no external authorizer), `targetRef` and `targetRefs` (meshlab has sidecars only,
/// no gateways or waypoints), and `experimental.envoy.filters.*` keys.
///
/// Accepted: a DENY policy without `rules`, which matches nothing and so denies nothing
/// (the store logs a warning). Methods in lower case, which Istio only warns about.
/// They never match, because method matching is case-sensitive. A `*` in the middle of a
/// path is accepted too, and matches a literal `*`.
pub fn validate(spec: &AuthorizationPolicySpec) -> Result<(), FieldError> {
    validate_attachment(spec)?;
    let rules = spec.rules.as_deref().unwrap_or_default();
    for (index, rule) in rules.iter().enumerate() {
        validate_rule(rule, &format!("spec.rules[{index}]"))?;
    }
    Ok(())
}

fn validate_attachment(spec: &AuthorizationPolicySpec) -> Result<(), FieldError> {
    const NO_CUSTOM: &str = "CUSTOM is not supported by meshlab, which has no external \
                             authorizer: use ALLOW or DENY";
    const NO_TARGET_REF: &str = "not supported by meshlab, which runs sidecars only: use \
                                 selector to pick workloads";
    if spec.action == Some(Action::Custom) {
        return Err(FieldError::new("spec.action", NO_CUSTOM));
    }
    if spec.provider.is_some() {
        return Err(FieldError::new("spec.provider", NO_CUSTOM));
    }
    if spec.target_ref.is_some() {
        return Err(FieldError::new("spec.targetRef", NO_TARGET_REF));
    }
    if spec.target_refs.is_some() {
        return Err(FieldError::new("spec.targetRefs", NO_TARGET_REF));
    }
    if let Some(selector) = &spec.selector {
        for (key, value) in &selector.match_labels {
            let path = format!("spec.selector.matchLabels[{key}]");
            if key.is_empty() {
                return Err(FieldError::new(path, "empty label key"));
            }
            if key.contains('*') || value.contains('*') {
                return Err(FieldError::new(
                    path,
                    format!("wildcards are not supported in selectors, found {key}={value}"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_rule(rule: &Rule, path: &str) -> Result<(), FieldError> {
    if let Some(from) = &rule.from {
        if from.is_empty() {
            return Err(FieldError::new(format!("{path}.from"), "must not be empty"));
        }
        for (index, entry) in from.iter().enumerate() {
            validate_source(&entry.source, &format!("{path}.from[{index}].source"))?;
        }
    }
    if let Some(to) = &rule.to {
        if to.is_empty() {
            return Err(FieldError::new(format!("{path}.to"), "must not be empty"));
        }
        for (index, entry) in to.iter().enumerate() {
            validate_operation(&entry.operation, &format!("{path}.to[{index}].operation"))?;
        }
    }
    for (index, condition) in rule.when.iter().flatten().enumerate() {
        validate_condition(condition, &format!("{path}.when[{index}]"))?;
    }
    Ok(())
}

/// A field name with its values; `None` and an empty list both mean "not set".
type NamedList<'a> = (&'a str, &'a Option<Vec<String>>);

fn is_set(values: &Option<Vec<String>>) -> bool {
    values.as_ref().is_some_and(|v| !v.is_empty())
}

fn validate_source(source: &Source, path: &str) -> Result<(), FieldError> {
    let lists: [NamedList<'_>; 12] = [
        ("principals", &source.principals),
        ("notPrincipals", &source.not_principals),
        ("requestPrincipals", &source.request_principals),
        ("notRequestPrincipals", &source.not_request_principals),
        ("namespaces", &source.namespaces),
        ("notNamespaces", &source.not_namespaces),
        ("serviceAccounts", &source.service_accounts),
        ("notServiceAccounts", &source.not_service_accounts),
        ("ipBlocks", &source.ip_blocks),
        ("notIpBlocks", &source.not_ip_blocks),
        ("remoteIpBlocks", &source.remote_ip_blocks),
        ("notRemoteIpBlocks", &source.not_remote_ip_blocks),
    ];
    if !lists.iter().any(|(_, values)| is_set(values)) {
        return Err(FieldError::new(path, "must not be empty"));
    }
    let identity_fields = [
        &source.principals,
        &source.not_principals,
        &source.namespaces,
        &source.not_namespaces,
    ];
    if identity_fields.iter().any(|values| is_set(values))
        && (is_set(&source.service_accounts) || is_set(&source.not_service_accounts))
    {
        return Err(FieldError::new(
            path,
            "cannot set serviceAccounts together with principals or namespaces",
        ));
    }
    for (name, values) in lists {
        for (index, value) in values.iter().flatten().enumerate() {
            let value_path = format!("{path}.{name}[{index}]");
            check_not_empty(value, &value_path)?;
            let checked = match name {
                "ipBlocks" | "notIpBlocks" | "remoteIpBlocks" | "notRemoteIpBlocks" => {
                    crate::authz::parse_ip_block(value).map(drop)
                }
                // The namespace only fills in a bare name, so any valid one will do here.
                "serviceAccounts" | "notServiceAccounts" => {
                    crate::authz::parse_service_account(value, "default").map(drop)
                }
                _ => Ok(()),
            };
            checked.map_err(|message| FieldError::new(value_path, message))?;
        }
    }
    Ok(())
}

fn validate_operation(operation: &Operation, path: &str) -> Result<(), FieldError> {
    let lists: [NamedList<'_>; 8] = [
        ("hosts", &operation.hosts),
        ("notHosts", &operation.not_hosts),
        ("ports", &operation.ports),
        ("notPorts", &operation.not_ports),
        ("methods", &operation.methods),
        ("notMethods", &operation.not_methods),
        ("paths", &operation.paths),
        ("notPaths", &operation.not_paths),
    ];
    if !lists.iter().any(|(_, values)| is_set(values)) {
        return Err(FieldError::new(path, "must not be empty"));
    }
    for (name, values) in lists {
        for (index, value) in values.iter().flatten().enumerate() {
            let value_path = format!("{path}.{name}[{index}]");
            check_not_empty(value, &value_path)?;
            let checked = match name {
                "ports" | "notPorts" => crate::authz::parse_port(value).map(drop),
                "paths" | "notPaths" => validate_path_template(value),
                _ => Ok(()),
            };
            checked.map_err(|message| FieldError::new(value_path, message))?;
        }
    }
    Ok(())
}

/// Checks a path that uses `{*}` or `{**}`: no other `*`, `{` or `}`, each operator is
/// a whole segment, and `{**}` is the last operator.
fn validate_path_template(path: &str) -> Result<(), String> {
    if !crate::authz::is_path_template(path) {
        return Ok(());
    }
    let invalid = |reason: &str| Err(format!("invalid path template {path:?}: {reason}"));
    let segments: Vec<&str> = path.split('/').collect();
    let mut seen_any = false;
    for segment in &segments {
        match *segment {
            "{*}" | "{**}" if seen_any => return invalid("{**} must be the last operator"),
            "{**}" => seen_any = true,
            "{*}" => {}
            other if other.contains(['*', '{', '}']) => {
                return invalid(
                    "an operator must be a whole segment, with no other `*`, `{` or `}`",
                )
            }
            _ => {}
        }
    }
    Ok(())
}

fn validate_condition(condition: &Condition, path: &str) -> Result<(), FieldError> {
    if condition.key.is_empty() {
        return Err(FieldError::new(format!("{path}.key"), "must not be empty"));
    }
    crate::authz::Attribute::parse(&condition.key)
        .map_err(|message| FieldError::new(format!("{path}.key"), message))?;
    if !is_set(&condition.values) && !is_set(&condition.not_values) {
        return Err(FieldError::new(
            path,
            format!(
                "at least one of values or notValues must be set for key {}",
                condition.key
            ),
        ));
    }
    let lists = [
        ("values", &condition.values),
        ("notValues", &condition.not_values),
    ];
    for (name, values) in lists {
        for (index, value) in values.iter().flatten().enumerate() {
            let value_path = format!("{path}.{name}[{index}]");
            check_not_empty(value, &value_path)?;
            let checked = match condition.key.as_str() {
                "source.ip" | "remote.ip" | "destination.ip" => {
                    crate::authz::parse_ip_block(value).map(drop)
                }
                "destination.port" => crate::authz::parse_port(value).map(drop),
                "source.serviceAccount" => {
                    crate::authz::parse_service_account(value, "default").map(drop)
                }
                _ => Ok(()),
            };
            checked.map_err(|message| FieldError::new(value_path, message))?;
        }
    }
    Ok(())
}

fn check_not_empty(value: &str, path: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(path, "empty value not allowed"));
    }
    Ok(())
}
