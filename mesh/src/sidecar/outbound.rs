//! Outbound half of the sidecar: the HTTP client a service handler is given.
//!
//! The app sends plain HTTP to a service name. The sidecar resolves it, picks an
//! endpoint, decides the transport from the DestinationRule in force (or auto mTLS), and
//! sends the request over a pooled connection from the workload's own address.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tracing::debug;

use super::{
    AsyncStream, MeshContext, Timeouts, UPSTREAM_CONNECT_FAILURE_BODY, UPSTREAM_RESET_BODY,
};
use crate::client_tls::{client_tls, ClientTls};
use crate::identity::SpiffeId;
use crate::peer_authn::{effective_mode, PeerMode};
use crate::registry::{Endpoint, ServiceEntry};
use crate::tls::{self, SvidCell};
use crate::workload::WorkloadMeta;

/// Idle connections kept per upstream endpoint and transport.
const MAX_IDLE_PER_KEY: usize = 64;

/// Options for sending one request.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendOptions {
    /// Skip the sidecar: plaintext from the workload's address, no identity, no policy.
    pub raw: bool,
    /// Open a fresh connection (with a full handshake) instead of reusing a pooled one.
    pub new_connection: bool,
    /// Offer TLS session resumption on new connections.
    pub resume: bool,
}

/// Transport details and timings of one request, for measurement and scenario checks.
#[derive(Clone, Debug, Default)]
pub struct ExchangeInfo {
    pub endpoint: Option<SocketAddr>,
    /// The connection was mutual TLS with this workload's SVID.
    pub mtls: bool,
    /// Identity this client presented (and the server therefore verified), over mTLS.
    pub client_identity: Option<SpiffeId>,
    /// Identity the server presented, over mTLS.
    pub server_identity: Option<SpiffeId>,
    /// `None` when a pooled connection was reused.
    pub connect: Option<Duration>,
    pub tls_handshake: Option<Duration>,
    pub first_byte: Duration,
    pub total: Duration,
    /// Authorization decision time the server's sidecar reported in `Server-Timing`.
    pub authz: Option<Duration>,
}

/// Failure that left a request without a response.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("invalid request URI {0:?}: expected http://<service>[:port]/path")]
    InvalidUri(String),
    #[error("could not resolve host {0:?}")]
    UnknownHost(String),
    #[error("service {service} has no port {port}")]
    NoSuchPort { service: String, port: u16 },
    #[error("service {0} has no endpoints")]
    NoEndpoints(String),
    #[error("connection to {addr} refused")]
    Refused { addr: SocketAddr },
    #[error("connecting to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("TLS handshake with {addr} failed: {reason}")]
    TlsHandshake { addr: SocketAddr, reason: String },
    #[error("server {addr} presented identity {actual}, expected {expected}")]
    ServerIdentity {
        addr: SocketAddr,
        expected: String,
        actual: String,
    },
    #[error("connection to {addr} was reset before the response: {reason}")]
    Reset { addr: SocketAddr, reason: String },
    #[error("request to {addr} timed out after {after:?}")]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("could not read file {path}: {source}")]
    TlsFiles {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl OutboundError {
    /// Returns the body of the 503 a client sidecar responds with, in Envoy's words.
    fn upstream_body(&self) -> &'static str {
        match self {
            OutboundError::Refused { .. } | OutboundError::Connect { .. } => {
                UPSTREAM_CONNECT_FAILURE_BODY
            }
            _ => UPSTREAM_RESET_BODY,
        }
    }

    /// Errors that mean "no such destination" rather than "the destination failed".
    fn is_resolution(&self) -> bool {
        matches!(
            self,
            OutboundError::InvalidUri(_) | OutboundError::UnknownHost(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Transport {
    Plain,
    /// Mutual TLS with the workload's SVID, checking the server's SPIFFE ID.
    Mesh {
        expected: SpiffeId,
        sni: Option<String>,
    },
    /// One-way TLS (DestinationRule `SIMPLE`).
    Simple {
        sni: Option<String>,
    },
    /// Mutual TLS with certificate files (DestinationRule `MUTUAL`).
    Mutual {
        cert: String,
        key: String,
        ca: Option<String>,
        sni: Option<String>,
    },
}

impl Transport {
    fn is_tls(&self) -> bool {
        !matches!(self, Transport::Plain)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PoolKey {
    addr: SocketAddr,
    transport: Transport,
}

// Hashes the address and the kind of transport only, so a request does not
// hash the strings of its transport. Keys that differ in an identity or SNI
// alone are rare, and `Eq` still distinguishes them.
impl std::hash::Hash for PoolKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        std::mem::discriminant(&self.transport).hash(state);
    }
}

struct PooledConnection {
    sender: SendRequest<Full<Bytes>>,
    info: ConnectionInfo,
}

#[derive(Clone, Debug, Default)]
struct ConnectionInfo {
    mtls: bool,
    client_identity: Option<SpiffeId>,
    server_identity: Option<SpiffeId>,
}

/// The outbound client of one workload. Cheap to clone.
#[derive(Clone)]
pub struct OutboundClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for a client outside the mesh.
    workload: Option<Arc<WorkloadMeta>>,
    namespace: String,
    bind_ip: IpAddr,
    svid: Option<Arc<SvidCell>>,
    mesh: MeshContext,
    timeouts: Timeouts,
    mtls_config: Option<Arc<ClientConfig>>,
    mtls_resume_config: Option<Arc<ClientConfig>>,
    simple_config: Arc<ClientConfig>,
    pool: Mutex<HashMap<PoolKey, Vec<PooledConnection>>>,
}

impl std::fmt::Debug for OutboundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundClient")
            .field("namespace", &self.inner.namespace)
            .field("bind_ip", &self.inner.bind_ip)
            .field(
                "identity",
                &self.inner.svid.as_ref().map(|s| s.id().to_string()),
            )
            .finish()
    }
}

impl OutboundClient {
    /// A client for a workload. With `svid` the client is in the mesh; without, it is a
    /// plain client that still resolves names (a pod in a namespace without injection).
    pub fn new(
        workload: Option<Arc<WorkloadMeta>>,
        namespace: &str,
        bind_ip: IpAddr,
        svid: Option<Arc<SvidCell>>,
        mesh: MeshContext,
        timeouts: Timeouts,
    ) -> Self {
        let mtls_config = svid
            .as_ref()
            .map(|s| tls::client_config(s.clone(), &mesh.bundle, false));
        let mtls_resume_config = svid
            .as_ref()
            .map(|s| tls::client_config(s.clone(), &mesh.bundle, true));
        let simple_config = tls::simple_client_config(&mesh.bundle);
        Self {
            inner: Arc::new(Inner {
                workload,
                namespace: namespace.to_string(),
                bind_ip,
                svid,
                mesh,
                timeouts,
                mtls_config,
                mtls_resume_config,
                simple_config,
                pool: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// True when requests go through a sidecar with an identity.
    pub fn in_mesh(&self) -> bool {
        self.inner.svid.is_some()
    }

    pub fn identity(&self) -> Option<&SpiffeId> {
        self.inner.svid.as_ref().map(|s| s.id())
    }

    pub fn workload(&self) -> Option<&Arc<WorkloadMeta>> {
        self.inner.workload.as_ref()
    }

    /// Sends `request` the way the app's own call would go.
    ///
    /// In the mesh, a failed upstream connection becomes Envoy's 503, as the client's
    /// sidecar answers in Istio; outside it (or with `raw`), it is an error.
    pub async fn send(
        &self,
        request: Request<Bytes>,
        options: SendOptions,
    ) -> Result<(Response<Bytes>, ExchangeInfo), OutboundError> {
        let started = Instant::now();
        match self.try_send(request, options, started).await {
            Ok(ok) => Ok(ok),
            Err(error) if self.in_mesh() && !options.raw && !error.is_resolution() => {
                debug!(%error, "Upstream request failed, responding with 503");
                let mut response =
                    Response::new(Bytes::from_static(error.upstream_body().as_bytes()));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain"),
                );
                let info = ExchangeInfo {
                    first_byte: started.elapsed(),
                    total: started.elapsed(),
                    ..ExchangeInfo::default()
                };
                Ok((response, info))
            }
            Err(error) => Err(error),
        }
    }

    async fn try_send(
        &self,
        request: Request<Bytes>,
        options: SendOptions,
        started: Instant,
    ) -> Result<(Response<Bytes>, ExchangeInfo), OutboundError> {
        let uri = request.uri().clone();
        let host = uri
            .host()
            .ok_or_else(|| OutboundError::InvalidUri(uri.to_string()))?;
        let key = self.route(host, uri.port_u16().unwrap_or(80), options)?;

        let request = into_origin_form(request);
        let pooled = if options.new_connection {
            None
        } else {
            self.take_idle(&key)
        };
        let reused = pooled.is_some();
        let result = match pooled {
            Some(conn) => {
                self.exchange(conn, request.clone(), &key, None, started)
                    .await
            }
            None => {
                let (conn, phases) = self.connect(&key, options).await?;
                self.exchange(conn, request.clone(), &key, Some(phases), started)
                    .await
            }
        };
        match result {
            // A pooled connection may have been closed by the server (a policy change, an
            // idle timeout) just before we used it; retry once on a fresh one, as Envoy does
            // for a reset before any response byte.
            Err(OutboundError::Reset { .. }) if reused => {
                let (conn, phases) = self.connect(&key, options).await?;
                self.exchange(conn, request, &key, Some(phases), started)
                    .await
            }
            other => other,
        }
    }

    /// Resolves `host:service_port` to an endpoint and the transport towards it.
    fn route(
        &self,
        host: &str,
        service_port: u16,
        options: SendOptions,
    ) -> Result<PoolKey, OutboundError> {
        let entry = self
            .inner
            .mesh
            .registry
            .resolve(host, &self.inner.namespace)
            .ok_or_else(|| OutboundError::UnknownHost(host.to_string()))?;
        let target_port = entry
            .service
            .ports
            .iter()
            .find(|p| p.port == service_port)
            .map(|p| p.target_port)
            .ok_or_else(|| OutboundError::NoSuchPort {
                service: entry.service.fqdn(),
                port: service_port,
            })?;
        let endpoint = entry
            .pick()
            .ok_or_else(|| OutboundError::NoEndpoints(entry.service.fqdn()))?
            .clone();
        let addr = SocketAddr::new(endpoint.ip, target_port);
        let transport = self.transport(&entry, &endpoint, service_port, target_port, options)?;
        Ok(PoolKey { addr, transport })
    }

    /// Opens a TCP connection to `host:service_port` through the sidecar (plaintext or mTLS
    /// as the policies decide), for non-HTTP protocols.
    pub async fn connect_tcp(
        &self,
        host: &str,
        service_port: u16,
        options: SendOptions,
    ) -> Result<(Box<dyn AsyncStream>, ExchangeInfo), OutboundError> {
        let key = self.route(host, service_port, options)?;
        let (io, info, (connect, handshake)) = self.open(&key, options).await?;
        let exchange = ExchangeInfo {
            endpoint: Some(key.addr),
            mtls: info.mtls,
            client_identity: info.client_identity,
            server_identity: info.server_identity,
            connect: Some(connect),
            tls_handshake: handshake,
            ..ExchangeInfo::default()
        };
        Ok((io, exchange))
    }

    /// Sends `payload` over a TCP connection to `host:service_port`, half-closes, and
    /// returns everything the server sent until it closed. A connection closed before any
    /// byte came back, as a denied TCP connection is, is [`OutboundError::Reset`].
    pub async fn exchange_tcp(
        &self,
        host: &str,
        service_port: u16,
        payload: &[u8],
        options: SendOptions,
    ) -> Result<(Bytes, ExchangeInfo), OutboundError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let started = Instant::now();
        let (mut stream, mut info) = self.connect_tcp(host, service_port, options).await?;
        let addr = info.endpoint.expect("connect_tcp records the endpoint");
        let timeout = self.inner.timeouts.request;
        let exchange = async {
            stream.write_all(payload).await?;
            stream.shutdown().await?;
            let mut received = Vec::new();
            stream.read_to_end(&mut received).await?;
            Ok::<_, io::Error>(received)
        };
        let closed = |reason: String| OutboundError::Reset { addr, reason };
        let received = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Err(OutboundError::Timeout {
                    addr,
                    after: timeout,
                })
            }
            Ok(Err(error)) => return Err(closed(error.to_string())),
            Ok(Ok(received)) if received.is_empty() => {
                return Err(closed("closed without data".to_string()))
            }
            Ok(Ok(received)) => received,
        };
        info.first_byte = started.elapsed();
        info.total = started.elapsed();
        Ok((Bytes::from(received), info))
    }

    fn transport(
        &self,
        entry: &ServiceEntry,
        endpoint: &Endpoint,
        service_port: u16,
        target_port: u16,
        options: SendOptions,
    ) -> Result<Transport, OutboundError> {
        if options.raw || self.inner.svid.is_none() {
            return Ok(Transport::Plain);
        }
        let snapshot = self.inner.mesh.store.snapshot();
        let decision = client_tls(
            &snapshot,
            &self.inner.namespace,
            &entry.service,
            service_port,
        );
        let expected = endpoint.workload.spiffe_id();
        Ok(match decision.mode {
            ClientTls::Auto => {
                let server_mode = effective_mode(&snapshot, &endpoint.workload, target_port).mode;
                if endpoint.workload.sidecar && server_mode != PeerMode::Disable {
                    Transport::Mesh {
                        expected,
                        sni: Some(default_sni(&entry.service.fqdn(), service_port)),
                    }
                } else {
                    Transport::Plain
                }
            }
            ClientTls::Disable => Transport::Plain,
            ClientTls::IstioMutual { sni, .. } => Transport::Mesh {
                expected,
                sni: sni.or_else(|| Some(default_sni(&entry.service.fqdn(), service_port))),
            },
            ClientTls::Simple { sni, .. } => Transport::Simple { sni },
            ClientTls::Mutual {
                client_certificate,
                private_key,
                ca_certificates,
                sni,
                ..
            } => Transport::Mutual {
                cert: client_certificate.unwrap_or_default(),
                key: private_key.unwrap_or_default(),
                ca: ca_certificates,
                sni,
            },
        })
    }

    fn take_idle(&self, key: &PoolKey) -> Option<PooledConnection> {
        let mut pool = self.inner.pool.lock().expect("pool lock is never poisoned");
        let idle = pool.get_mut(key)?;
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed() && conn.sender.is_ready() {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, key: &PoolKey, conn: PooledConnection) {
        if conn.sender.is_closed() {
            return;
        }
        let mut pool = self.inner.pool.lock().expect("pool lock is never poisoned");
        // `entry` would clone the key, strings and all, on every request.
        let idle = match pool.get_mut(key) {
            Some(idle) => idle,
            None => pool.entry(key.clone()).or_default(),
        };
        if idle.len() < MAX_IDLE_PER_KEY {
            idle.push(conn);
        }
    }

    /// Drops every idle connection, so that the next requests connect afresh.
    pub fn clear_pool(&self) {
        self.inner
            .pool
            .lock()
            .expect("pool lock is never poisoned")
            .clear();
    }

    async fn connect(
        &self,
        key: &PoolKey,
        options: SendOptions,
    ) -> Result<(PooledConnection, (Duration, Option<Duration>)), OutboundError> {
        let addr = key.addr;
        let (io, info, phases) = self.open(key, options).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| OutboundError::Reset {
                addr,
                reason: e.to_string(),
            })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, %addr, "Upstream connection ended with an error");
            }
        });
        Ok((PooledConnection { sender, info }, phases))
    }

    /// Opens the transport of `key`: TCP from the workload's address, then TLS if needed.
    async fn open(
        &self,
        key: &PoolKey,
        options: SendOptions,
    ) -> Result<
        (
            Box<dyn AsyncStream>,
            ConnectionInfo,
            (Duration, Option<Duration>),
        ),
        OutboundError,
    > {
        let addr = key.addr;
        let connect_started = Instant::now();
        let stream = tokio::time::timeout(self.inner.timeouts.connect, self.tcp_connect(addr))
            .await
            .map_err(|_| OutboundError::Timeout {
                addr,
                after: self.inner.timeouts.connect,
            })??;
        let connect_time = connect_started.elapsed();

        let handshake_started = Instant::now();
        let (io, info): (Box<dyn AsyncStream>, ConnectionInfo) = match &key.transport {
            Transport::Plain => (Box::new(stream), ConnectionInfo::default()),
            Transport::Mesh { expected, sni } => {
                let config = if options.resume {
                    self.inner.mtls_resume_config.clone()
                } else {
                    self.inner.mtls_config.clone()
                }
                .expect("mesh transport is only chosen for clients with an SVID");
                let tls = self.handshake(config, sni.as_deref(), stream, addr).await?;
                let server_identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(tls::spiffe_id_of);
                if server_identity.as_ref() != Some(expected) {
                    return Err(OutboundError::ServerIdentity {
                        addr,
                        expected: expected.to_string(),
                        actual: server_identity
                            .map(|id| id.to_string())
                            .unwrap_or_else(|| "none".to_string()),
                    });
                }
                let info = ConnectionInfo {
                    mtls: true,
                    client_identity: self.identity().cloned(),
                    server_identity,
                };
                (Box::new(tls), info)
            }
            Transport::Simple { sni } => {
                let tls = self
                    .handshake(
                        self.inner.simple_config.clone(),
                        sni.as_deref(),
                        stream,
                        addr,
                    )
                    .await?;
                (Box::new(tls), ConnectionInfo::default())
            }
            Transport::Mutual {
                cert,
                key: key_file,
                ca,
                sni,
            } => {
                let config =
                    mutual_config_from_files(cert, key_file, ca.as_deref(), &self.inner.mesh)?;
                let tls = self.handshake(config, sni.as_deref(), stream, addr).await?;
                let server_identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(tls::spiffe_id_of);
                let info = ConnectionInfo {
                    mtls: true,
                    client_identity: None,
                    server_identity,
                };
                (Box::new(tls), info)
            }
        };
        let handshake_time = key.transport.is_tls().then(|| handshake_started.elapsed());
        Ok((io, info, (connect_time, handshake_time)))
    }

    async fn tcp_connect(&self, addr: SocketAddr) -> Result<TcpStream, OutboundError> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|source| OutboundError::Connect { addr, source })?;
        // Connecting from the workload's own address makes `source.ip` and `ipBlocks`
        // mean what they mean in a cluster.
        if self.inner.bind_ip.is_ipv4() == addr.is_ipv4() {
            socket
                .bind(SocketAddr::new(self.inner.bind_ip, 0))
                .map_err(|source| OutboundError::Connect { addr, source })?;
        }
        let stream = socket.connect(addr).await.map_err(|source| {
            if source.kind() == io::ErrorKind::ConnectionRefused {
                OutboundError::Refused { addr }
            } else {
                OutboundError::Connect { addr, source }
            }
        })?;
        stream
            .set_nodelay(true)
            .map_err(|source| OutboundError::Connect { addr, source })?;
        Ok(stream)
    }

    async fn handshake(
        &self,
        config: Arc<ClientConfig>,
        sni: Option<&str>,
        stream: TcpStream,
        addr: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, OutboundError> {
        let server_name = sni
            .and_then(|s| ServerName::try_from(s.to_string()).ok())
            .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
        let connector = TlsConnector::from(config);
        tokio::time::timeout(
            self.inner.timeouts.handshake,
            connector.connect(server_name, stream),
        )
        .await
        .map_err(|_| OutboundError::Timeout {
            addr,
            after: self.inner.timeouts.handshake,
        })?
        .map_err(|e| OutboundError::TlsHandshake {
            addr,
            reason: e.to_string(),
        })
    }

    async fn exchange(
        &self,
        mut conn: PooledConnection,
        request: Request<Bytes>,
        key: &PoolKey,
        phases: Option<(Duration, Option<Duration>)>,
        started: Instant,
    ) -> Result<(Response<Bytes>, ExchangeInfo), OutboundError> {
        let addr = key.addr;
        let timeout = self.inner.timeouts.request;
        let work = async {
            conn.sender
                .ready()
                .await
                .map_err(|e| OutboundError::Reset {
                    addr,
                    reason: e.to_string(),
                })?;
            let response = conn
                .sender
                .send_request(request.map(Full::new))
                .await
                .map_err(|e| OutboundError::Reset {
                    addr,
                    reason: e.to_string(),
                })?;
            let first_byte = started.elapsed();
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| OutboundError::Reset {
                    addr,
                    reason: e.to_string(),
                })?
                .to_bytes();
            Ok::<_, OutboundError>((Response::from_parts(parts, body), first_byte))
        };
        let (response, first_byte) =
            tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| OutboundError::Timeout {
                    addr,
                    after: timeout,
                })??;
        let info = ExchangeInfo {
            endpoint: Some(addr),
            mtls: conn.info.mtls,
            client_identity: conn.info.client_identity.clone(),
            server_identity: conn.info.server_identity.clone(),
            connect: phases.map(|p| p.0),
            tls_handshake: phases.and_then(|p| p.1),
            first_byte,
            total: started.elapsed(),
            authz: authz_timing(response.headers()),
        };
        self.put_idle(key, conn);
        Ok((response, info))
    }
}

/// Istio's default SNI for a mesh upstream: `outbound_.<port>_._.<fqdn>`.
fn default_sni(fqdn: &str, port: u16) -> String {
    format!("outbound_.{port}_._.{fqdn}")
}

/// Rewrites an absolute-form request (`http://details:9080/x`) into origin form with a
/// `Host` header, which is what goes on the wire.
fn into_origin_form(request: Request<Bytes>) -> Request<Bytes> {
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(http::header::HOST, value);
            }
        }
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    parts.uri = path
        .parse()
        .expect("a path and query taken from a valid URI is valid");
    Request::from_parts(parts, body)
}

/// Reads `authz;dur=<ms>` from a `Server-Timing` header.
fn authz_timing(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get_all("server-timing")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|metric| {
            let mut parts = metric.trim().split(';');
            if parts.next()? != "authz" {
                return None;
            }
            parts
                .find_map(|p| p.trim().strip_prefix("dur="))?
                .parse::<f64>()
                .ok()
        })
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
}

fn mutual_config_from_files(
    cert: &str,
    key: &str,
    ca: Option<&str>,
    mesh: &MeshContext,
) -> Result<Arc<ClientConfig>, OutboundError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let read = |path: &str| {
        std::fs::read(path).map_err(|source| OutboundError::TlsFiles {
            path: path.to_string(),
            source,
        })
    };
    let invalid = |path: &str, what: &str| OutboundError::TlsFiles {
        path: path.to_string(),
        source: io::Error::new(io::ErrorKind::InvalidData, what.to_string()),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(cert, "no PEM certificate"))?;
    let private_key = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| invalid(key, "no PEM private key"))?;
    let bundle = match ca {
        Some(ca) => {
            let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(ca)?)
                .collect::<Result<_, _>>()
                .map_err(|_| invalid(ca, "no PEM certificate"))?;
            tls::TrustBundle::new(roots)
        }
        None => mesh.bundle.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(tls::chain_only_verifier(&bundle))
        .with_client_auth_cert(certs, private_key)
        .map_err(|e| invalid(cert, &e.to_string()))?;
    config.alpn_protocols = vec![tls::ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_parses_authz() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "server-timing",
            HeaderValue::from_static("authn;dur=0.1, authz;dur=0.250"),
        );
        assert_eq!(authz_timing(&headers), Some(Duration::from_micros(250)));
    }

    #[test]
    fn origin_form_keeps_host() {
        let req = Request::get("http://details:9080/details/0?x=1")
            .body(Bytes::new())
            .unwrap();
        let req = into_origin_form(req);
        assert_eq!(req.uri().to_string(), "/details/0?x=1");
        assert_eq!(req.headers()[http::header::HOST], "details:9080");
    }
}
