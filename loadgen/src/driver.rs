//! What the scenario runner needs from a lab, whether embedded or reached over the network.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use mesh::sidecar::{ExchangeInfo, OutboundError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A workload a scenario adds beyond Bookinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadDecl {
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    pub sidecar: bool,
    /// App to run: productpage, details, reviews, ratings, httpbin, sleep, tcp-echo.
    pub app: String,
    /// Service port to workload port.
    pub ports: Vec<(u16, u16)>,
}

/// One request a scenario sends from a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    /// `name`, `name.namespace`, or `outsider`.
    pub from: String,
    /// `svc` or `svc.namespace`.
    pub to: String,
    /// Service port; `None` means the service's first port.
    pub port: Option<u16>,
    pub method: String,
    /// Path with its query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Skip the caller's own sidecar: plaintext from the caller's address, no identity.
    pub raw_client: bool,
    /// Open a new connection (and a full handshake) for this request.
    pub new_connection: bool,
}

/// A response and how it travelled.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// The caller's connection to the server used mutual TLS.
    pub mtls: bool,
    /// The principal the server authenticated the caller as, when `mtls`.
    pub peer: Option<String>,
    pub timings: Timings,
    /// Authorization decision time reported by the server's sidecar, if any.
    pub authz: Option<Duration>,
}

/// Phases of one request; connect and handshake are `None` on a reused connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    pub connect: Option<Duration>,
    pub tls_handshake: Option<Duration>,
    pub first_byte: Duration,
    pub total: Duration,
}

/// No response came back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    #[error("connection reset")]
    Reset,
    #[error("connection refused")]
    Refused,
    #[error("TLS handshake failed: {0}")]
    TlsHandshake(String),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Other(String),
}

impl From<&ExchangeInfo> for Timings {
    fn from(info: &ExchangeInfo) -> Timings {
        Timings {
            connect: info.connect,
            tls_handshake: info.tls_handshake,
            first_byte: info.first_byte,
            total: info.total,
        }
    }
}

impl From<OutboundError> for SendFailure {
    fn from(error: OutboundError) -> SendFailure {
        match error {
            OutboundError::Refused { .. } => SendFailure::Refused,
            OutboundError::Reset { .. } => SendFailure::Reset,
            OutboundError::TlsHandshake { reason, .. } => SendFailure::TlsHandshake(reason),
            OutboundError::Timeout { .. } => SendFailure::Timeout,
            other => SendFailure::Other(other.to_string()),
        }
    }
}

impl SendFailure {
    /// The name scenarios use in `expect.failure`.
    pub fn kind(&self) -> &'static str {
        match self {
            SendFailure::Reset => "reset",
            SendFailure::Refused => "refused",
            SendFailure::TlsHandshake(_) => "tls_handshake",
            SendFailure::Timeout => "timeout",
            SendFailure::Other(_) => "other",
        }
    }
}

/// A running lab the runner drives.
pub trait LabDriver: Send + Sync {
    /// Starts the workloads, each with its service, identity and sidecar.
    fn add_workloads(&self, decls: Vec<WorkloadDecl>) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Applies every document of `yaml` atomically; `origin` names the file in errors.
    fn apply<'a>(&'a self, yaml: &'a str, origin: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    fn delete<'a>(&'a self, yaml: &'a str, origin: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Drops every policy and every workload added beyond Bookinfo.
    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    fn send(&self, request: RequestSpec) -> BoxFuture<'_, Result<Exchange, SendFailure>>;
    /// Opens a TCP connection from the caller to the service, writes the request body,
    /// half-closes and returns what the server sent back (`status` 0). A connection closed
    /// without a byte is [`SendFailure::Reset`], as a denied TCP connection looks to `nc`.
    fn send_tcp(&self, request: RequestSpec) -> BoxFuture<'_, Result<Exchange, SendFailure>> {
        let _ = request;
        Box::pin(async {
            Err(SendFailure::Other(
                "this lab does not support TCP requests".to_string(),
            ))
        })
    }
    /// Mints a JWT from a scenario's `jwt:` mapping (`sub`, `iss`, `aud`, `expires`,
    /// `exp`, `claims`, and any other key as a claim); the lab issuer signs unless `iss`
    /// names Istio's sample issuer.
    fn mint_token<'a>(
        &'a self,
        claims: serde_json::Value,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        let _ = claims;
        Box::pin(async { Err(anyhow::anyhow!("this lab cannot mint tokens")) })
    }
}
