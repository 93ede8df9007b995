//! Multi-document YAML files into typed, validated [`Document`]s.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_path_to_error::Segment;
use serde_yaml::{Mapping, Value};

use super::{
    authorization_policy, destination_rule, legacy_policy, peer_authentication,
    request_authentication, ConfigError, FieldError, Kind, ObjectMeta, Resource, Spec,
};

/// Namespace of a namespaced resource whose metadata names none, as `kubectl` assumes.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A parsed and validated resource that is not stored yet, so it has no creation order.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub api_version: String,
    pub meta: ObjectMeta,
    pub spec: Spec,
}

impl Document {
    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    pub fn into_resource(self, created: u64) -> Resource {
        Resource {
            api_version: self.api_version,
            meta: self.meta,
            created,
            spec: self.spec,
        }
    }
}

/// Parses every document of a YAML stream (`---` separated) into validated documents.
///
/// Empty documents are skipped, and a `kind: List` document contributes its `items`. `origin`
/// names the source in errors, usually the file path.
///
/// # Errors
///
/// The first invalid document rejects the whole stream: broken YAML, an unsupported
/// `apiVersion`/`kind` pair, a missing `metadata.name`, an unknown field, an invalid value,
/// or a failed semantic check.
// A large error is fine here: parsing happens once per file, not per request.
#[allow(clippy::result_large_err)]
pub fn parse_documents(source: &str, origin: &str) -> Result<Vec<Document>, ConfigError> {
    check_size_and_depth(source).map_err(|problem| problem.locate(origin, 0))?;
    let mut documents = Vec::new();
    for (index, deserializer) in serde_yaml::Deserializer::from_str(source).enumerate() {
        let number = index + 1;
        let located = |problem: Problem| problem.locate(origin, number);

        // serde_yaml repeats a syntax error for every later document, so stop at the first.
        let value = Value::deserialize(deserializer)
            .map_err(|error| located(Problem::new("", format!("invalid YAML: {error}"))))?;
        if value.is_null() {
            continue;
        }
        parse_object(value, "", &mut documents).map_err(located)?;
    }
    Ok(documents)
}

/// Largest policy file accepted, close to Kubernetes' 1.5 MiB object limit.
pub const MAX_SOURCE_BYTES: usize = 1536 * 1024;

/// Deepest nesting of YAML flow collections (`[`, `{`) accepted. Istio's resources need
/// fewer than ten levels; serde_yaml's parser slows down quadratically on deep nesting, so
/// a hostile file is refused before it is parsed.
const MAX_FLOW_DEPTH: usize = 64;

/// Rejects a source that is too large or nested too deeply to parse cheaply.
fn check_size_and_depth(source: &str) -> Result<(), Problem> {
    if source.len() > MAX_SOURCE_BYTES {
        let mut problem = Problem::new(
            "",
            format!(
                "file is {} bytes, larger than the {} bytes a policy file may have",
                source.len(),
                MAX_SOURCE_BYTES
            ),
        );
        problem.hint = Some("split it into several files".to_string());
        return Err(problem);
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut comment = false;
    for c in source.chars() {
        match (quote, c) {
            // Ending quotes at a line break over-counts brackets inside multi-line quoted
            // strings, which policies do not have, but never lets a stray apostrophe in a
            // plain scalar hide the brackets that follow it.
            (_, '\n') => {
                comment = false;
                quote = None;
            }
            _ if comment => {}
            (None, '#') => comment = true,
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '[' | '{') => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(Problem::new(
                        "",
                        format!("YAML nested more than {MAX_FLOW_DEPTH} levels deep"),
                    ));
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A problem inside one document, before the file and document number are attached.
#[derive(Debug)]
struct Problem {
    resource: Option<String>,
    path: String,
    message: String,
    hint: Option<String>,
}

impl Problem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            resource: None,
            path: path.into(),
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    fn locate(self, origin: &str, document: usize) -> ConfigError {
        ConfigError {
            origin: origin.to_string(),
            document,
            resource: self.resource,
            path: self.path,
            message: self.message,
            hint: self.hint,
        }
    }
}

impl From<FieldError> for Problem {
    fn from(error: FieldError) -> Self {
        Self {
            resource: None,
            path: error.document_path(),
            message: error.message,
            hint: error.hint,
        }
    }
}

/// The top level of a document. `status`, which `kubectl get -o yaml` adds, is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<Value>,
    spec: Option<Value>,
    items: Option<Vec<Value>>,
    #[serde(rename = "status")]
    _status: Option<IgnoredAny>,
}

/// `metadata` with the fields Kubernetes adds on its own, which are accepted and ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(rename = "uid")]
    _uid: Option<IgnoredAny>,
    #[serde(rename = "creationTimestamp")]
    _creation_timestamp: Option<IgnoredAny>,
    #[serde(rename = "resourceVersion")]
    _resource_version: Option<IgnoredAny>,
    #[serde(rename = "generation")]
    _generation: Option<IgnoredAny>,
    #[serde(rename = "generateName")]
    _generate_name: Option<IgnoredAny>,
    #[serde(rename = "managedFields")]
    _managed_fields: Option<IgnoredAny>,
    #[serde(rename = "selfLink")]
    _self_link: Option<IgnoredAny>,
    #[serde(rename = "finalizers")]
    _finalizers: Option<IgnoredAny>,
    #[serde(rename = "ownerReferences")]
    _owner_references: Option<IgnoredAny>,
}

fn parse_object(value: Value, prefix: &str, out: &mut Vec<Document>) -> Result<(), Problem> {
    let resource = resource_label(&value);
    parse_object_unlabelled(value, prefix, out).map_err(|mut problem| {
        problem.resource = problem.resource.or(resource);
        problem
    })
}

fn parse_object_unlabelled(
    value: Value,
    prefix: &str,
    out: &mut Vec<Document>,
) -> Result<(), Problem> {
    if !value.is_mapping() {
        let message = "expected a mapping with apiVersion, kind, metadata and spec";
        return Err(Problem::new(prefix.trim_end_matches('.'), message));
    }
    let envelope: Envelope = from_value(value, prefix)?;

    let Some(kind) = envelope.kind else {
        return Err(Problem::new(format!("{prefix}kind"), "missing kind"));
    };
    if kind == "List" {
        let Some(items) = envelope.items else {
            return Err(Problem::new(format!("{prefix}items"), "a List needs items"));
        };
        for (i, item) in items.into_iter().enumerate() {
            parse_object(item, &format!("{prefix}items[{i}]."), out)?;
        }
        return Ok(());
    }
    if envelope.items.is_some() {
        return Err(Problem::new(
            format!("{prefix}items"),
            "only a List has items",
        ));
    }
    let Some(api_version) = envelope.api_version else {
        return Err(Problem::new(
            format!("{prefix}apiVersion"),
            "missing apiVersion",
        ));
    };
    let kind = lookup_kind(&api_version, &kind, prefix)?;

    let meta = parse_metadata(envelope.metadata, kind, prefix)?;
    let spec_value = envelope
        .spec
        .unwrap_or_else(|| Value::Mapping(Mapping::new()));
    let spec = parse_spec(kind, spec_value, &format!("{prefix}spec"))?;
    validate(&spec, &meta).map_err(|error| {
        let mut problem = Problem::from(error);
        problem.path = format!("{prefix}{}", problem.path);
        problem
    })?;

    out.push(Document {
        api_version,
        meta,
        spec,
    });
    Ok(())
}

fn lookup_kind(api_version: &str, kind: &str, prefix: &str) -> Result<Kind, Problem> {
    if let Some(found) = Kind::from_type(api_version, kind) {
        return Ok(found);
    }
    let supported: Vec<String> = Kind::SUPPORTED
        .iter()
        .map(|(version, k)| format!("{version} {k}"))
        .collect();
    let supported = supported.join(", ");
    let versions: Vec<&str> = Kind::SUPPORTED
        .iter()
        .filter(|(_, k)| k.as_str() == kind)
        .map(|(version, _)| *version)
        .collect();
    if versions.is_empty() {
        let names: Vec<&str> = Kind::SUPPORTED.iter().map(|(_, k)| k.as_str()).collect();
        let problem = Problem::new(
            format!("{prefix}kind"),
            format!("unsupported kind {kind:?}; supported: {supported}"),
        );
        return Err(match closest(kind, &names) {
            Some(name) => problem.hint(format!("did you mean {name}?")),
            None => problem,
        });
    }
    Err(Problem::new(
        format!("{prefix}apiVersion"),
        format!("unsupported apiVersion {api_version:?} for kind {kind}"),
    )
    .hint(format!("use one of {}", versions.join(", "))))
}

fn parse_metadata(value: Option<Value>, kind: Kind, prefix: &str) -> Result<ObjectMeta, Problem> {
    let path = format!("{prefix}metadata");
    let Some(value) = value else {
        return Err(Problem::new(path, "missing metadata"));
    };
    let metadata: Metadata = from_value(value, &format!("{path}."))?;
    let name = metadata.name.unwrap_or_default();
    if name.is_empty() {
        return Err(Problem::new(format!("{path}.name"), "missing name"));
    }
    let namespace = if kind.is_cluster_scoped() {
        String::new()
    } else {
        metadata
            .namespace
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
    };
    Ok(ObjectMeta {
        name,
        namespace,
        annotations: metadata.annotations,
        labels: metadata.labels,
    })
}

fn parse_spec(kind: Kind, value: Value, path: &str) -> Result<Spec, Problem> {
    let value = stringify_keys(value);
    let prefix = format!("{path}.");
    Ok(match kind {
        Kind::MeshPolicy => Spec::MeshPolicy(from_value(value, &prefix)?),
        Kind::Policy => Spec::Policy(from_value(value, &prefix)?),
        Kind::PeerAuthentication => Spec::PeerAuthentication(from_value(value, &prefix)?),
        Kind::RequestAuthentication => Spec::RequestAuthentication(from_value(value, &prefix)?),
        Kind::AuthorizationPolicy => Spec::AuthorizationPolicy(from_value(value, &prefix)?),
        Kind::DestinationRule => Spec::DestinationRule(from_value(value, &prefix)?),
    })
}

/// Runs the checks of each kind beyond its schema.
fn validate(spec: &Spec, meta: &ObjectMeta) -> Result<(), FieldError> {
    match spec {
        Spec::MeshPolicy(policy) => legacy_policy::validate(policy, &meta.name, true),
        Spec::Policy(policy) => legacy_policy::validate(policy, &meta.name, false),
        Spec::PeerAuthentication(policy) => peer_authentication::validate(policy),
        Spec::RequestAuthentication(policy) => request_authentication::validate(policy),
        Spec::AuthorizationPolicy(policy) => {
            authorization_policy::validate(policy).map_err(|error| {
                let path = error.path.strip_prefix("spec.").unwrap_or(&error.path);
                FieldError::new(path, error.message)
            })?;
            let no_rules = policy.rules.as_ref().is_none_or(Vec::is_empty);
            if policy.action == Some(authorization_policy::Action::Deny) && no_rules {
                tracing::warn!(
                    policy = %meta.name,
                    namespace = %meta.namespace,
                    "DENY policy without rules matches nothing; add `rules: [{{}}]` to deny every request"
                );
            }
            Ok(())
        }
        Spec::DestinationRule(rule) => destination_rule::validate(rule),
    }
}

/// Deserializes `value`, reporting the failing field as a path under `prefix`.
fn from_value<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let mut path = prefix.to_string();
        for segment in error.path().iter() {
            match segment {
                Segment::Seq { index } => {
                    if path.ends_with('.') {
                        path.pop();
                    }
                    path.push_str(&format!("[{index}]."));
                }
                Segment::Map { key } | Segment::Enum { variant: key } => {
                    path.push_str(key);
                    path.push('.');
                }
                Segment::Unknown => path.push_str("?."),
            }
        }
        let path = path.trim_end_matches('.').to_string();
        let raw = error.into_inner().to_string();
        let hint = suggestion(&raw);
        let problem = Problem::new(path, tidy_message(&raw));
        match hint {
            Some(hint) => problem.hint(hint),
            None => problem,
        }
    })
}

/// Turns numeric and boolean mapping keys into strings, so paths name them (`portLevelMtls.80`)
/// and string-keyed maps accept them.
fn stringify_keys(value: Value) -> Value {
    match value {
        Value::Mapping(mapping) => {
            let converted = mapping.into_iter().map(|(key, value)| {
                let key = match key {
                    Value::Number(n) => Value::String(n.to_string()),
                    Value::Bool(b) => Value::String(b.to_string()),
                    other => other,
                };
                (key, stringify_keys(value))
            });
            Value::Mapping(converted.collect())
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(stringify_keys).collect()),
        Value::Tagged(tagged) => stringify_keys(tagged.value),
        other => other,
    }
}

/// `Kind namespace/name` (or `Kind name` without a namespace) read leniently from a document
/// that may still fail to parse.
fn resource_label(value: &Value) -> Option<String> {
    let kind = value.get("kind")?.as_str()?;
    let metadata = value.get("metadata");
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str);
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty());
    let cluster_scoped = Kind::SUPPORTED
        .iter()
        .any(|(_, k)| k.as_str() == kind && k.is_cluster_scoped());
    Some(match (name, cluster_scoped) {
        (None, _) => kind.to_string(),
        (Some(name), true) => format!("{kind} {name}"),
        (Some(name), false) => {
            format!("{kind} {}/{name}", namespace.unwrap_or(DEFAULT_NAMESPACE))
        }
    })
}

/// Rewrites serde's backquoted messages: the offending value is quoted, the expected values
/// are listed bare. ``unknown variant `STRCT`, expected one of `UNSET`, `STRICT` `` becomes
/// `unknown variant "STRCT", expected one of UNSET, STRICT`.
fn tidy_message(message: &str) -> String {
    // serde names the Rust type in "expected struct PeerMtls", but the reader wrote YAML.
    let message = match message.find("expected struct ") {
        Some(at) => format!("{}expected a mapping", &message[..at]),
        None => message.to_string(),
    };
    let message = message.as_str();
    let mut parts = message.splitn(3, '`');
    let (Some(head), Some(value), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return message.replace('`', "");
    };
    format!("{head}\"{value}\"{}", rest.replace('`', ""))
}

/// Builds a "did you mean" hint for serde's unknown-variant and unknown-field messages.
fn suggestion(message: &str) -> Option<String> {
    let is_unknown = message.starts_with("unknown variant") || message.starts_with("unknown field");
    if !is_unknown {
        return None;
    }
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    let (found, expected) = quoted.split_first()?;
    closest(found, expected).map(|name| format!("did you mean {name}?"))
}

/// Finds the candidate closest to `found` by edit distance (case-insensitive), if it is close
/// enough to be a typo.
fn closest<'a>(found: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let found = found.to_ascii_lowercase();
    candidates
        .iter()
        .map(|candidate| {
            (
                edit_distance(&found, &candidate.to_ascii_lowercase()),
                *candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= 2.min(candidate.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            let deletion = previous[j + 1] + 1;
            let insertion = current[j] + 1;
            current.push(substitution.min(deletion).min(insertion));
        }
        previous = current;
    }
    previous[b.len()]
}
