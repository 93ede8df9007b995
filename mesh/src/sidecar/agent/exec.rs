//! `POST /exec` on the agent port: sends one request through this workload's outbound
//! client and returns how it went, as `kubectl exec <pod> -- curl` does in a cluster. The
//! remote scenario runner uses it so that a request "from sleep" really leaves the sleep
//! container with sleep's identity.
//!
//! The caller must present the admin token; the agent stores only its SHA-256.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::control::token::token_sha256;
use crate::registry::Registry;
use crate::sidecar::{ExchangeInfo, OutboundClient, OutboundError, SendOptions};

/// Path of the exec endpoint on the agent port.
pub const EXEC_PATH: &str = "/exec";

const MAX_BODY: usize = 4 * 1024 * 1024;

/// Dependencies of the exec endpoint: the workload's outbound client, its view of the
/// registry (to find a service's first port) and the admin token's hash.
#[derive(Clone, Debug)]
pub struct Exec {
    pub outbound: OutboundClient,
    pub registry: Registry,
    /// Hex SHA-256 of the admin token, as [`token_sha256`] computes it.
    pub admin_token_sha256: String,
    /// The control plane's policy version this workload has applied.
    pub policy_version: Arc<std::sync::atomic::AtomicU64>,
}

/// Path that returns `{"policy_version": N}`, the control plane's policy version this
/// workload enforces; admin token required.
pub const POLICY_VERSION_PATH: &str = "/exec/policy-version";

/// The policy version this workload enforces, as JSON.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub policy_version: u64,
}

/// One request to send.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExecRequest {
    /// `svc` or `svc.namespace`.
    pub to: String,
    /// Service port; `None` means the service's first port.
    pub port: Option<u16>,
    pub method: String,
    /// Path with its query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Request body, base64.
    pub body: String,
    /// Skip the sidecar: plaintext, no identity.
    pub raw: bool,
    pub new_connection: bool,
    /// Send `body` over a TCP connection instead of HTTP; the reply comes back as the body
    /// with status 0.
    #[serde(default)]
    pub tcp: bool,
}

/// Outcome of one exec request: a response, or the failure that prevented one.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ExecOutcome {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        /// Response body, base64.
        body: String,
        mtls: bool,
        /// Principal the server authenticated this workload as, over mTLS.
        peer: Option<String>,
        connect_us: Option<u64>,
        tls_handshake_us: Option<u64>,
        first_byte_us: u64,
        total_us: u64,
        authz_us: Option<u64>,
    },
    Failure {
        /// `refused`, `reset`, `tls_handshake`, `timeout` or `other`.
        kind: String,
        message: String,
    },
}

pub(super) async fn handle(
    exec: Option<&Exec>,
    request: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let Some(exec) = exec else {
        return reply(
            StatusCode::NOT_FOUND,
            "exec is not enabled on this workload",
        );
    };
    let presented = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Comparing hashes keeps the comparison independent of how much of the token matches.
    if presented.map(token_sha256).as_deref() != Some(exec.admin_token_sha256.as_str()) {
        warn!("Rejected exec request without the admin token");
        return reply(StatusCode::UNAUTHORIZED, "exec needs the admin token");
    }
    if request.uri().path() == POLICY_VERSION_PATH {
        let version = PolicyVersion {
            policy_version: exec
                .policy_version
                .load(std::sync::atomic::Ordering::Acquire),
        };
        let body = serde_json::to_vec(&version).expect("versions serialize to JSON");
        return Response::new(Full::new(Bytes::from(body)));
    }
    if request.method() != http::Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return reply(
                StatusCode::BAD_REQUEST,
                &format!("could not read request body: {error}"),
            )
        }
    };
    let spec: ExecRequest = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(error) => {
            return reply(
                StatusCode::BAD_REQUEST,
                &format!("invalid exec request: {error}"),
            )
        }
    };
    let outcome = send(exec, spec).await;
    let body = serde_json::to_vec(&outcome).expect("exec outcomes serialize to JSON");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Sends `spec` through `exec`'s outbound client.
pub async fn send(exec: &Exec, spec: ExecRequest) -> ExecOutcome {
    match try_send(exec, spec).await {
        Ok(outcome) => outcome,
        Err(error) => failure(error),
    }
}

async fn try_send(exec: &Exec, spec: ExecRequest) -> Result<ExecOutcome, OutboundError> {
    let namespace = exec
        .outbound
        .workload()
        .map(|w| w.namespace.clone())
        .unwrap_or_else(|| "default".to_string());
    let port = match spec.port {
        Some(port) => port,
        None => exec
            .registry
            .resolve(&spec.to, &namespace)
            .and_then(|entry| entry.service.ports.first().map(|p| p.port))
            .ok_or_else(|| OutboundError::UnknownHost(spec.to.clone()))?,
    };
    if spec.tcp {
        return send_tcp(exec, &spec, port).await;
    }
    let path = if spec.path.starts_with('/') {
        spec.path.clone()
    } else {
        format!("/{}", spec.path)
    };
    let uri = format!("http://{}:{}{}", spec.to, port, path);
    let mut builder = Request::builder().method(spec.method.as_str()).uri(&uri);
    for (name, value) in &spec.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = STANDARD
        .decode(spec.body.as_bytes())
        .map_err(|_| OutboundError::InvalidUri(format!("{uri} (request body is not base64)")))?;
    let request = builder
        .body(Bytes::from(body))
        .map_err(|_| OutboundError::InvalidUri(uri.clone()))?;
    let options = SendOptions {
        raw: spec.raw,
        new_connection: spec.new_connection,
        resume: false,
    };
    let (response, info) = exec.outbound.send(request, options).await?;
    debug!(%uri, status = %response.status(), "Exec request sent");
    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(response_outcome(
        parts.status.as_u16(),
        headers,
        &body,
        info,
    ))
}

async fn send_tcp(
    exec: &Exec,
    spec: &ExecRequest,
    port: u16,
) -> Result<ExecOutcome, OutboundError> {
    let payload = STANDARD.decode(spec.body.as_bytes()).map_err(|_| {
        OutboundError::InvalidUri(format!("{}:{port} (request body is not base64)", spec.to))
    })?;
    let options = SendOptions {
        raw: spec.raw,
        new_connection: true,
        resume: false,
    };
    let (body, info) = exec
        .outbound
        .exchange_tcp(&spec.to, port, &payload, options)
        .await?;
    // TCP has no status; 0 marks that none came.
    Ok(response_outcome(0, Vec::new(), &body, info))
}

/// Builds the outcome of a request that got a reply, with the sidecar's timings.
fn response_outcome(
    status: u16,
    headers: Vec<(String, String)>,
    body: &[u8],
    info: ExchangeInfo,
) -> ExecOutcome {
    ExecOutcome::Response {
        status,
        headers,
        body: STANDARD.encode(body),
        mtls: info.mtls,
        peer: info
            .mtls
            .then(|| info.client_identity.map(|id| id.principal()))
            .flatten(),
        connect_us: info.connect.map(micros),
        tls_handshake_us: info.tls_handshake.map(micros),
        first_byte_us: micros(info.first_byte),
        total_us: micros(info.total),
        authz_us: info.authz.map(micros),
    }
}

fn failure(error: OutboundError) -> ExecOutcome {
    let kind = match &error {
        OutboundError::Refused { .. } => "refused",
        OutboundError::Reset { .. } => "reset",
        OutboundError::TlsHandshake { .. } => "tls_handshake",
        OutboundError::Timeout { .. } => "timeout",
        _ => "other",
    };
    let message = match &error {
        OutboundError::TlsHandshake { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    ExecOutcome::Failure {
        kind: kind.to_string(),
        message,
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn reply(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
