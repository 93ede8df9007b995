//! Scenario files: the YAML format, its defaults and its validation.
//!
//! A scenario names extra workloads and a list of steps. Every key is checked:
//! an unknown key, a step with no action or two actions, or a missing policy or
//! token file is a [`ScenarioError`] naming the file, the step (numbered from 1)
//! and the field. Files a step refers to are read at load time, relative to the
//! scenario file, so a run never stops half-way on a missing file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::driver::WorkloadDecl;

/// Apps a workload can run.
pub const KNOWN_APPS: &[&str] = &[
    "productpage",
    "details",
    "reviews",
    "ratings",
    "httpbin",
    "sleep",
    "tcp-echo",
];

/// Maximum `repeat` of a request step.
pub const MAX_REPEAT: u32 = 10_000;

/// Maximum concurrent connections of a load step.
pub const MAX_CONNECTIONS: u32 = 1_000;

/// Load step duration when neither `duration` nor `requests` is set.
pub const DEFAULT_LOAD_DURATION: Duration = Duration::from_secs(5);

/// Upper bound on a load step's duration, also applied to `requests`-only steps.
pub const MAX_LOAD_DURATION: Duration = Duration::from_secs(600);

/// A scenario file that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: reading scenario", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: listing scenarios", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `location` is `top level`, `step N: field.path` or `workload N: field`.
    #[error("{}: {location}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        location: String,
        message: String,
    },
}

/// A validated scenario, with every referenced file already read.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    /// The file the scenario came from, as given on the command line.
    pub file: PathBuf,
    pub workloads: Vec<WorkloadDecl>,
    pub steps: Vec<Step>,
}

/// One step of a scenario.
#[derive(Clone, Debug)]
pub struct Step {
    /// Optional label shown in place of the generated summary.
    pub name: Option<String>,
    pub action: Action,
}

/// The action of a step; each step has exactly one.
#[derive(Clone, Debug)]
pub enum Action {
    /// Applies policy YAML, from `apply: FILE` or `policy: |`.
    Apply(PolicyChange),
    /// Deletes policy YAML, from `delete: FILE` or `delete_policy: |`.
    Delete(PolicyChange),
    /// Drops every policy and every workload the scenario added.
    Reset,
    Request(Box<RequestStep>),
    Load(Box<LoadStep>),
}

/// Policy YAML to apply or delete.
#[derive(Clone, Debug)]
pub struct PolicyChange {
    /// The file path as written in the scenario, or `<scenario> step N inline
    /// policy` for inline YAML; the lab names it in errors.
    pub origin: String,
    pub yaml: String,
    /// When set, the step passes only if the lab rejects the YAML with an
    /// error containing this text.
    pub expect_error: Option<String>,
}

/// A request step: what to send and what must come back.
#[derive(Clone, Debug)]
pub struct RequestStep {
    pub request: Request,
    pub expect: Expect,
    /// Token read from `request.token`, trailing newline removed.
    pub token_from_file: Option<String>,
}

/// The `request:` mapping.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub from: String,
    pub to: String,
    pub port: Option<u16>,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default = "default_repeat")]
    pub repeat: u32,
    /// Claims for a token minted by the lab issuer.
    pub jwt: Option<serde_json::Map<String, serde_json::Value>>,
    /// File holding a token, relative to the scenario.
    pub token: Option<String>,
    pub token_raw: Option<String>,
    pub token_location: Option<TokenLocation>,
    pub client: Option<ClientMode>,
    #[serde(default)]
    pub new_connection: bool,
}

/// Application protocol of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Http,
    Tcp,
}

/// Client mode of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientMode {
    /// Skips the caller's own sidecar: plaintext, no identity.
    Raw,
}

/// Token placement: a header with an optional literal prefix, or a query
/// parameter. Without `token_location` a token is sent as
/// `Authorization: Bearer <token>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLocation {
    pub header: Option<String>,
    /// Literal text before the token, such as `"Bearer "`; empty by default.
    pub prefix: Option<String>,
    pub query: Option<String>,
}

/// The `expect:` mapping of a request step; unset fields are not checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: Option<u16>,
    pub connection: Option<ConnectionState>,
    /// Implies `connection: failed`.
    pub failure: Option<FailureKind>,
    pub body: Option<String>,
    pub body_contains: Option<OneOrMany>,
    pub body_not_contains: Option<OneOrMany>,
    pub mtls: Option<bool>,
    pub peer: Option<String>,
    /// Headers the application received, read from an httpbin-style JSON echo
    /// (`{"headers": {...}}`). A null value means the header must be absent.
    pub upstream_headers: Option<BTreeMap<String, Option<String>>>,
    /// Response headers; a null value means the header must be absent.
    pub response_headers: Option<BTreeMap<String, Option<String>>>,
}

/// Expected state of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    Failed,
}

/// Reason a connection failed, as named by `SendFailure::kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Reset,
    TlsHandshake,
    Refused,
    Timeout,
}

impl FailureKind {
    /// The name `SendFailure::kind` returns for this failure.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Reset => "reset",
            FailureKind::TlsHandshake => "tls_handshake",
            FailureKind::Refused => "refused",
            FailureKind::Timeout => "timeout",
        }
    }
}

/// A string or a list of strings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// Returns the strings as a list.
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(item) => vec![item.as_str()],
            OneOrMany::Many(items) => items.iter().map(String::as_str).collect(),
        }
    }
}

/// The `load:` mapping.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadStep {
    pub from: String,
    pub to: String,
    pub port: Option<u16>,
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Total requests per second across connections; 0 means as fast as possible.
    #[serde(default)]
    pub qps: f64,
    /// Concurrent connections, each sending one request at a time; 1 by default.
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Humantime duration such as `5s`.
    #[serde(default, deserialize_with = "deserialize_duration")]
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    #[serde(default)]
    pub new_connection: bool,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl LoadStep {
    /// Returns how long the step may send: `duration`, else the hard cap when
    /// `requests` bounds it, else the default.
    pub fn time_limit(&self) -> Duration {
        match (self.duration, self.requests) {
            (Some(duration), _) => duration,
            (None, Some(_)) => MAX_LOAD_DURATION,
            (None, None) => DEFAULT_LOAD_DURATION,
        }
    }
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_repeat() -> u32 {
    1
}

fn default_connections() -> u32 {
    1
}

fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text)
        .map(Some)
        .map_err(|error| serde::de::Error::custom(format!("invalid duration {text:?}: {error}")))
}

// === raw file model ===

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    description: Option<String>,
    #[serde(default)]
    workloads: Vec<RawWorkload>,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWorkload {
    name: String,
    namespace: Option<String>,
    service_account: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    sidecar: Option<bool>,
    app: Option<String>,
    ports: Option<BTreeMap<u16, u16>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Option<String>,
    apply: Option<String>,
    policy: Option<String>,
    delete: Option<String>,
    delete_policy: Option<String>,
    reset: Option<bool>,
    request: Option<Request>,
    load: Option<LoadStep>,
    expect: Option<Expect>,
    expect_error: Option<String>,
}

// === loading ===

/// Reads and validates one scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses scenario YAML; `path` locates referenced files and names errors.
pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let raw: RawScenario =
        serde_path_to_error::deserialize(deserializer).map_err(|error| ScenarioError::Invalid {
            path: path.to_owned(),
            location: describe_path(error.path()),
            message: strip_yaml_path(error.inner().to_string(), error.path()),
        })?;

    let base = path.parent().unwrap_or(Path::new("."));
    let invalid = |location: String, message: String| ScenarioError::Invalid {
        path: path.to_owned(),
        location,
        message,
    };

    let mut workloads = Vec::with_capacity(raw.workloads.len());
    for (index, workload) in raw.workloads.into_iter().enumerate() {
        let decl = workload_decl(workload).map_err(|(field, message)| {
            invalid(format!("workload {}: {field}", index + 1), message)
        })?;
        workloads.push(decl);
    }

    let mut steps = Vec::with_capacity(raw.steps.len());
    for (index, step) in raw.steps.into_iter().enumerate() {
        let inline_origin = format!("{} step {} inline policy", path.display(), index + 1);
        let step = build_step(step, base, inline_origin)
            .map_err(|(field, message)| invalid(format!("step {}: {field}", index + 1), message))?;
        steps.push(step);
    }

    Ok(Scenario {
        name: raw.name,
        description: raw.description,
        file: path.to_owned(),
        workloads,
        steps,
    })
}

/// Lists the scenarios a command-line path names: the file itself, or every
/// `*.yaml` file directly inside a directory, sorted by name.
pub fn scenario_files(path: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let read_dir_error = |source| ScenarioError::ReadDir {
        path: path.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_dir_error)? {
        let entry_path = entry.map_err(read_dir_error)?.path();
        let is_yaml = entry_path.extension().is_some_and(|ext| ext == "yaml");
        if is_yaml && entry_path.is_file() {
            files.push(entry_path);
        }
    }
    files.sort();
    Ok(files)
}

/// Turns a serde path such as `steps[2].request.methd` into `step 3: request.methd`.
fn describe_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;

    let segments: Vec<&Segment> = path.iter().collect();
    let (prefix, rest) = match segments.as_slice() {
        [Segment::Map { key }, Segment::Seq { index }, rest @ ..] if key == "steps" => {
            (format!("step {}", index + 1), rest)
        }
        [Segment::Map { key }, Segment::Seq { index }, rest @ ..] if key == "workloads" => {
            (format!("workload {}", index + 1), rest)
        }
        _ => (String::new(), segments.as_slice()),
    };
    let field = rest
        .iter()
        .map(|segment| segment.to_string())
        .collect::<Vec<_>>()
        .join(".")
        .replace(".[", "[");

    match (prefix.is_empty(), field.is_empty()) {
        (true, true) => "top level".to_owned(),
        (true, false) => field,
        (false, true) => prefix,
        (false, false) => format!("{prefix}: {field}"),
    }
}

/// Drops the `steps[0].load: ` prefix serde_yaml puts on some messages, since
/// the location already names the field.
fn strip_yaml_path(message: String, path: &serde_path_to_error::Path) -> String {
    let full_path = path.to_string();
    match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.is_empty() && full_path.starts_with(prefix) => {
            rest.to_owned()
        }
        _ => message,
    }
}

type FieldError = (&'static str, String);

fn workload_decl(raw: RawWorkload) -> Result<WorkloadDecl, FieldError> {
    if raw.name.is_empty() {
        return Err(("name", "must not be empty".to_owned()));
    }
    let app = match raw.app {
        Some(app) if KNOWN_APPS.contains(&app.as_str()) => app,
        Some(app) => {
            let known = KNOWN_APPS.join(", ");
            return Err((
                "app",
                format!("unknown app {app:?}; expected one of {known}"),
            ));
        }
        None if KNOWN_APPS.contains(&raw.name.as_str()) => raw.name.clone(),
        None => "sleep".to_owned(),
    };
    let labels = raw.labels.unwrap_or_else(|| {
        BTreeMap::from([
            ("app".to_owned(), raw.name.clone()),
            ("version".to_owned(), "v1".to_owned()),
        ])
    });
    let ports = match raw.ports {
        Some(ports) if ports.is_empty() => return Err(("ports", "must not be empty".to_owned())),
        Some(ports) => ports.into_iter().collect(),
        None if app == "httpbin" => vec![(8000, 80)],
        None => vec![(9080, 9080)],
    };

    Ok(WorkloadDecl {
        service_account: raw.service_account.unwrap_or_else(|| raw.name.clone()),
        namespace: raw.namespace.unwrap_or_else(|| "default".to_owned()),
        name: raw.name,
        labels,
        sidecar: raw.sidecar.unwrap_or(true),
        app,
        ports,
    })
}

fn build_step(raw: RawStep, base: &Path, inline_origin: String) -> Result<Step, FieldError> {
    let present: Vec<&'static str> = [
        ("apply", raw.apply.is_some()),
        ("policy", raw.policy.is_some()),
        ("delete", raw.delete.is_some()),
        ("delete_policy", raw.delete_policy.is_some()),
        ("reset", raw.reset.is_some()),
        ("request", raw.request.is_some()),
        ("load", raw.load.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, is_set)| is_set.then_some(key))
    .collect();

    match present.as_slice() {
        [] => {
            return Err((
                "step",
                "no action; expected one of apply, policy, delete, delete_policy, reset, \
                 request, load"
                    .to_owned(),
            ))
        }
        [_] => {}
        several => {
            let keys = several.join(", ");
            return Err(("step", format!("more than one action: {keys}")));
        }
    }
    let action_key = present[0];

    if raw.expect.is_some() && action_key != "request" {
        return Err((
            "expect",
            format!("only allowed with request, not {action_key}"),
        ));
    }
    let is_policy_change = matches!(action_key, "apply" | "policy" | "delete" | "delete_policy");
    if raw.expect_error.is_some() && !is_policy_change {
        return Err((
            "expect_error",
            format!("only allowed with apply, policy, delete or delete_policy, not {action_key}"),
        ));
    }

    let action = match raw {
        RawStep {
            apply: Some(file), ..
        } => Action::Apply(policy_from_file("apply", &file, base, raw.expect_error)?),
        RawStep {
            delete: Some(file), ..
        } => Action::Delete(policy_from_file("delete", &file, base, raw.expect_error)?),
        RawStep {
            policy: Some(yaml), ..
        } => Action::Apply(PolicyChange {
            origin: inline_origin,
            yaml,
            expect_error: raw.expect_error,
        }),
        RawStep {
            delete_policy: Some(yaml),
            ..
        } => Action::Delete(PolicyChange {
            origin: inline_origin,
            yaml,
            expect_error: raw.expect_error,
        }),
        RawStep {
            reset: Some(true), ..
        } => Action::Reset,
        RawStep {
            reset: Some(false), ..
        } => {
            return Err((
                "reset",
                "must be true; remove the step to skip it".to_owned(),
            ))
        }
        RawStep {
            request: Some(request),
            ..
        } => {
            let expect = raw.expect.unwrap_or_default();
            Action::Request(Box::new(request_step(request, expect, base)?))
        }
        RawStep {
            load: Some(load), ..
        } => Action::Load(Box::new(validate_load(load)?)),
        _ => unreachable!("exactly one action key is set"),
    };

    Ok(Step {
        name: raw.name,
        action,
    })
}

fn policy_from_file(
    field: &'static str,
    file: &str,
    base: &Path,
    expect_error: Option<String>,
) -> Result<PolicyChange, FieldError> {
    let yaml = std::fs::read_to_string(base.join(file))
        .map_err(|error| (field, format!("reading {file}: {error}")))?;
    Ok(PolicyChange {
        origin: file.to_owned(),
        yaml,
        expect_error,
    })
}

fn request_step(request: Request, expect: Expect, base: &Path) -> Result<RequestStep, FieldError> {
    validate_method(&request.method).map_err(|message| ("request.method", message))?;
    validate_path(&request.path).map_err(|message| ("request.path", message))?;
    if request.repeat == 0 || request.repeat > MAX_REPEAT {
        let message = format!("must be between 1 and {MAX_REPEAT}, got {}", request.repeat);
        return Err(("request.repeat", message));
    }

    let token_sources = [
        request.jwt.is_some(),
        request.token.is_some(),
        request.token_raw.is_some(),
    ];
    let token_count = token_sources.iter().filter(|is_set| **is_set).count();
    if token_count > 1 {
        let message = "set only one of jwt, token and token_raw".to_owned();
        return Err(("request", message));
    }
    if let Some(location) = &request.token_location {
        if token_count == 0 {
            let message = "needs one of jwt, token or token_raw".to_owned();
            return Err(("request.token_location", message));
        }
        validate_token_location(location).map_err(|message| ("request.token_location", message))?;
    }

    validate_expect(&expect)?;

    let token_from_file = match &request.token {
        Some(file) => {
            let text = std::fs::read_to_string(base.join(file))
                .map_err(|error| ("request.token", format!("reading {file}: {error}")))?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        None => None,
    };

    Ok(RequestStep {
        request,
        expect,
        token_from_file,
    })
}

fn validate_token_location(location: &TokenLocation) -> Result<(), String> {
    match (&location.header, &location.query) {
        (Some(_), Some(_)) => Err("set header or query, not both".to_owned()),
        (None, None) => Err("needs header or query".to_owned()),
        (None, Some(_)) if location.prefix.is_some() => {
            Err("prefix is only allowed with header".to_owned())
        }
        _ => Ok(()),
    }
}

fn validate_expect(expect: &Expect) -> Result<(), FieldError> {
    let expects_failure = expect.connection.is_some() || expect.failure.is_some();
    let response_fields = [
        ("status", expect.status.is_some()),
        ("body", expect.body.is_some()),
        ("body_contains", expect.body_contains.is_some()),
        ("body_not_contains", expect.body_not_contains.is_some()),
        ("mtls", expect.mtls.is_some()),
        ("peer", expect.peer.is_some()),
        ("upstream_headers", expect.upstream_headers.is_some()),
        ("response_headers", expect.response_headers.is_some()),
    ];
    if expects_failure {
        if let Some((field, _)) = response_fields.iter().find(|(_, is_set)| *is_set) {
            let message = format!("{field} cannot be checked when the connection must fail");
            return Err(("expect", message));
        }
    }
    Ok(())
}

fn validate_load(load: LoadStep) -> Result<LoadStep, FieldError> {
    validate_method(&load.method).map_err(|message| ("load.method", message))?;
    validate_path(&load.path).map_err(|message| ("load.path", message))?;
    if !load.qps.is_finite() || load.qps < 0.0 {
        return Err(("load.qps", format!("must be 0 or more, got {}", load.qps)));
    }
    if load.connections == 0 || load.connections > MAX_CONNECTIONS {
        let message = format!(
            "must be between 1 and {MAX_CONNECTIONS}, got {}",
            load.connections
        );
        return Err(("load.connections", message));
    }
    if let Some(duration) = load.duration {
        if duration.is_zero() || duration > MAX_LOAD_DURATION {
            let max = humantime::format_duration(MAX_LOAD_DURATION);
            let got = humantime::format_duration(duration);
            return Err((
                "load.duration",
                format!("must be above 0 and at most {max}, got {got}"),
            ));
        }
    }
    if load.requests == Some(0) {
        return Err(("load.requests", "must be at least 1".to_owned()));
    }
    Ok(load)
}

fn validate_method(method: &str) -> Result<(), String> {
    http::Method::from_bytes(method.as_bytes())
        .map(drop)
        .map_err(|_| format!("invalid HTTP method {method:?}"))
}

fn validate_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(format!("must start with '/', got {path:?}"))
    }
}

#[cfg(test)]
mod tests;
