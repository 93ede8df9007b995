//! Inbound half of the sidecar: the workload's listener.
//!
//! Each accepted connection is classified by its first byte (a TLS handshake record
//! starts with 0x16) and admitted according to the peer authentication mode in force for
//! the workload port: STRICT drops plaintext before any HTTP is read, PERMISSIVE serves
//! both on one port, DISABLE serves plaintext only. Requests then pass the sidecar's HTTP
//! checks before reaching the app, which sees plain HTTP with the caller's identity in
//! `X-Forwarded-Client-Cert`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{AsyncStream, MeshContext, Timeouts};
use crate::authn::{AuthnIdentity, WorkloadAuthenticator};
use crate::authz::{HttpAttributes, RequestAttributes, WorkloadAuthorizer};
use crate::identity::SpiffeId;
use crate::peer_authn::{effective_mode, PeerMode};
use crate::tls::{self, SvidCell};
use crate::workload::WorkloadMeta;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Body type of requests to and responses from the app.
pub type AppBody = UnsyncBoxBody<Bytes, BoxError>;

/// The app behind the sidecar, as a tower service over plain HTTP.
pub type AppService =
    tower::util::BoxCloneSyncService<Request<AppBody>, Response<AppBody>, Infallible>;

/// Largest request head the sidecar reads; Envoy's default in Istio is 60 KiB, after
/// which the client gets 431.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

const XFCC: &str = "x-forwarded-client-cert";

/// Settings of an inbound listener.
#[derive(Clone, Debug, Default)]
pub struct InboundOptions {
    pub timeouts: Timeouts,
    /// Handler for the workload's TCP ports (service ports named `tcp` or `tcp-*`, Istio's
    /// naming convention); without one, connections to those ports are closed.
    pub tcp_app: Option<TcpApp>,
}

/// Future of a [`TcpApp`] serving one connection.
pub type TcpAppFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A non-HTTP app: takes over an admitted, authorized connection.
#[derive(Clone)]
pub struct TcpApp(pub Arc<dyn Fn(Box<dyn AsyncStream>) -> TcpAppFuture + Send + Sync>);

impl std::fmt::Debug for TcpApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TcpApp")
    }
}

/// Facts the listener learned about a connection before any HTTP.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer_addr: SocketAddr,
    pub local_addr: SocketAddr,
    pub mtls: bool,
    /// Verified client identity, over mTLS only.
    pub peer_id: Option<SpiffeId>,
    /// The `x-forwarded-client-cert` value for every request on this
    /// connection, over mTLS only. It is built once per connection, because
    /// its parts (both identities, the client certificate's hash) are fixed
    /// for the connection's life.
    pub xfcc: Option<HeaderValue>,
    pub sni: Option<String>,
}

impl ConnectionInfo {
    /// Builds the attributes that authorization matches for a request on
    /// this connection; `http` is `None` for a TCP connection as a whole.
    fn request_attributes<'a>(&'a self, http: Option<HttpAttributes<'a>>) -> RequestAttributes<'a> {
        RequestAttributes {
            source_ip: self.peer_addr.ip(),
            remote_ip: self.peer_addr.ip(),
            source_principal: self.peer_id.as_ref(),
            destination_ip: self.local_addr.ip(),
            destination_port: self.local_addr.port(),
            sni: self.sni.as_deref(),
            http,
        }
    }
}

/// A workload's inbound sidecar.
pub struct Inbound {
    workload: Arc<WorkloadMeta>,
    /// `None` for a workload without a sidecar: plain HTTP straight to the app.
    svid: Option<Arc<SvidCell>>,
    server_config: Option<Arc<ServerConfig>>,
    mesh: MeshContext,
    app: AppService,
    options: InboundOptions,
    /// Authorizer compiled for the snapshot version it is paired with.
    authorizer: ArcSwap<(u64, Arc<WorkloadAuthorizer>)>,
    /// Keeps a flood of denied requests from flooding the log.
    denial_log: LogLimiter,
    /// JWT authenticator compiled for the snapshot version it is paired with.
    authenticator: ArcSwap<(u64, Arc<WorkloadAuthenticator>)>,
    stats: InboundStats,
}

/// Denials logged per second; the rest are counted and reported in one line.
const DENIAL_LOGS_PER_SECOND: u64 = 20;

/// A per-second budget of log lines.
#[derive(Debug, Default)]
struct LogLimiter {
    /// Seconds since the Unix epoch of the current window.
    window: AtomicU64,
    logged: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// True when this event may be logged; starts a new window every second and then
    /// reports how many events the previous ones suppressed.
    fn admit(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if self.window.swap(now, Ordering::Relaxed) != now {
            self.logged.store(0, Ordering::Relaxed);
            let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
            if suppressed > 0 {
                info!(suppressed, "Denials not logged in the last window");
            }
        }
        if self.logged.fetch_add(1, Ordering::Relaxed) < DENIAL_LOGS_PER_SECOND {
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Counters of authorization outcomes, for `meshctl describe` and reports.
#[derive(Debug, Default)]
pub struct InboundStats {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
}

impl Inbound {
    pub fn new(
        workload: Arc<WorkloadMeta>,
        svid: Option<Arc<SvidCell>>,
        mesh: MeshContext,
        app: AppService,
        options: InboundOptions,
    ) -> Arc<Self> {
        let server_config = svid
            .as_ref()
            .map(|svid| tls::server_config(svid.clone(), &mesh.bundle));
        let snapshot = mesh.store.snapshot();
        let authorizer = Arc::new(WorkloadAuthorizer::compile(&snapshot, &workload));
        let authenticator = Arc::new(WorkloadAuthenticator::compile(
            &snapshot, &workload, &mesh.jwks,
        ));
        Arc::new(Self {
            workload,
            svid,
            server_config,
            mesh,
            app,
            options,
            authorizer: ArcSwap::from_pointee((snapshot.version, authorizer)),
            authenticator: ArcSwap::from_pointee((snapshot.version, authenticator)),
            stats: InboundStats::default(),
            denial_log: LogLimiter::default(),
        })
    }

    pub fn stats(&self) -> &InboundStats {
        &self.stats
    }

    /// The authorizer for the current snapshot, recompiled only when the store changed.
    fn authorizer(&self) -> Arc<WorkloadAuthorizer> {
        let cached = self.authorizer.load();
        let snapshot = self.mesh.store.snapshot();
        if cached.0 == snapshot.version {
            return cached.1.clone();
        }
        let compiled = Arc::new(WorkloadAuthorizer::compile(&snapshot, &self.workload));
        self.authorizer
            .store(Arc::new((snapshot.version, compiled.clone())));
        compiled
    }

    /// The JWT authenticator for the current snapshot, recompiled only when the store
    /// changed.
    fn authenticator(&self) -> Arc<WorkloadAuthenticator> {
        let cached = self.authenticator.load();
        let snapshot = self.mesh.store.snapshot();
        if cached.0 == snapshot.version {
            return cached.1.clone();
        }
        let compiled = Arc::new(WorkloadAuthenticator::compile(
            &snapshot,
            &self.workload,
            &self.mesh.jwks,
        ));
        self.authenticator
            .store(Arc::new((snapshot.version, compiled.clone())));
        compiled
    }

    pub fn workload(&self) -> &Arc<WorkloadMeta> {
        &self.workload
    }

    /// Accepts connections until `shutdown` is cancelled.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let local = listener.local_addr().ok();
        debug!(workload = %self.workload.name, addr = ?local, "Inbound listener started");
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.cancelled() => break,
            };
            match accepted {
                Ok((stream, peer_addr)) => {
                    let this = self.clone();
                    let shutdown = shutdown.clone();
                    tokio::spawn(async move {
                        this.handle_connection(stream, peer_addr, shutdown).await;
                    });
                }
                Err(error) => {
                    // Running out of file descriptors is the usual cause; back off briefly
                    // rather than spin.
                    warn!(%error, workload = %self.workload.name, "Accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn mode_for(&self, port: u16) -> PeerMode {
        if self.svid.is_none() {
            return PeerMode::Disable;
        }
        let snapshot = self.mesh.store.snapshot();
        effective_mode(&snapshot, &self.workload, port).mode
    }

    async fn handle_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer_addr: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let Ok(local_addr) = stream.local_addr() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let workload = self.workload.name.as_str();
        let mode = self.mode_for(local_addr.port());

        let mut first = [0u8; 1];
        let peeked =
            tokio::time::timeout(self.options.timeouts.handshake, stream.peek(&mut first)).await;
        let is_tls = match peeked {
            Ok(Ok(1)) => first[0] == 0x16,
            Ok(Ok(_)) => return,
            Ok(Err(error)) => {
                debug!(%error, %peer_addr, workload, "Connection failed before its first byte");
                return;
            }
            Err(_) => {
                debug!(%peer_addr, workload, "Client sent nothing in time, closing");
                return;
            }
        };

        match (mode, is_tls) {
            (PeerMode::Strict, false) => {
                // Dropping a socket with unread bytes makes the kernel send a reset, which
                // is what a plaintext client of a STRICT Istio sidecar sees (curl exit 56).
                debug!(%peer_addr, workload, "Plaintext connection rejected, peer authentication is STRICT");
            }
            (PeerMode::Disable, true) if self.svid.is_some() => {
                debug!(%peer_addr, workload, "TLS connection rejected, peer authentication is DISABLE");
            }
            (_, true) if self.server_config.is_some() => {
                self.serve_tls(stream, peer_addr, local_addr, shutdown)
                    .await;
            }
            _ => {
                let info = ConnectionInfo {
                    peer_addr,
                    local_addr,
                    mtls: false,
                    peer_id: None,
                    xfcc: None,
                    sni: None,
                };
                self.serve_stream(Box::new(stream), Arc::new(info), shutdown)
                    .await;
            }
        }
    }

    /// Hands an admitted connection to the HTTP server or, on a TCP port, to the TCP app.
    async fn serve_stream(
        self: Arc<Self>,
        stream: Box<dyn AsyncStream>,
        info: Arc<ConnectionInfo>,
        shutdown: CancellationToken,
    ) {
        let port = info.local_addr.port();
        let is_tcp = self
            .workload
            .service_ports_for(port)
            .any(|(_, service_port)| service_port.is_tcp());
        if is_tcp {
            self.serve_tcp(stream, &info).await;
        } else {
            self.serve_http(TokioIo::new(stream), info, shutdown).await;
        }
    }

    /// Authorizes a TCP connection as a whole (HTTP-only rule fields cannot match) and
    /// closes it without a byte when denied, as Envoy's network RBAC filter does.
    async fn serve_tcp(&self, stream: Box<dyn AsyncStream>, info: &ConnectionInfo) {
        if self.svid.is_some() {
            let attributes = info.request_attributes(None);
            let decision = self.authorizer().evaluate(&attributes);
            if !decision.allowed {
                self.stats.denied.fetch_add(1, Ordering::Relaxed);
                if self.denial_log.admit() {
                    info!(
                        workload = %self.workload.name,
                        namespace = %self.workload.namespace,
                        peer.principal = %info.peer_id.as_ref().map(|id| id.principal()).unwrap_or_else(|| "none (plaintext)".to_string()),
                        peer.addr = %info.peer_addr,
                        %decision,
                        "Connection denied"
                    );
                }
                return;
            }
            self.stats.allowed.fetch_add(1, Ordering::Relaxed);
        }
        match &self.options.tcp_app {
            Some(app) => (app.0)(stream).await,
            None => {
                debug!(workload = %self.workload.name, port = info.local_addr.port(), "No TCP app on this port, closing")
            }
        }
    }

    async fn serve_tls(
        self: Arc<Self>,
        stream: TcpStream,
        peer_addr: SocketAddr,
        local_addr: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let config = self
            .server_config
            .clone()
            .expect("serve_tls runs only for workloads with a sidecar");
        let acceptor = TlsAcceptor::from(config);
        let handshake =
            tokio::time::timeout(self.options.timeouts.handshake, acceptor.accept(stream)).await;
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                debug!(%error, %peer_addr, workload = %self.workload.name, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer_addr, workload = %self.workload.name, "TLS handshake timed out");
                return;
            }
        };
        let connection = tls.get_ref().1;
        let leaf = connection
            .peer_certificates()
            .and_then(|certs| certs.first());
        let peer_id = leaf.and_then(tls::spiffe_id_of);
        let Some(leaf) = leaf else {
            debug!(%peer_addr, "TLS client sent no certificate, closing");
            return;
        };
        if peer_id.is_none() {
            debug!(%peer_addr, "Client certificate has no SPIFFE ID, closing");
            return;
        }
        let xfcc = self.svid.as_ref().and_then(|svid| {
            let peer = peer_id.as_ref()?;
            xfcc_value(svid.id(), peer, leaf.as_ref())
        });
        let info = ConnectionInfo {
            peer_addr,
            local_addr,
            mtls: true,
            peer_id,
            xfcc,
            sni: connection.server_name().map(str::to_string),
        };
        self.serve_stream(Box::new(tls), Arc::new(info), shutdown)
            .await;
    }

    async fn serve_http<I>(
        self: Arc<Self>,
        io: TokioIo<I>,
        info: Arc<ConnectionInfo>,
        shutdown: CancellationToken,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let this = self.clone();
        let conn_info = info.clone();
        let service =
            service_fn(move |request| this.clone().handle_request(conn_info.clone(), request));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.options.timeouts.handshake)
            .max_buf_size(MAX_REQUEST_HEAD)
            .serve_connection(io, service);
        tokio::pin!(connection);

        let mut policy = self.mesh.store.subscribe();
        let mut watching = self.svid.is_some();
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        debug!(%error, peer = %info.peer_addr, workload = %self.workload.name, "Connection ended with an error");
                    }
                    break;
                }
                changed = policy.changed(), if watching && !closing => {
                    if changed.is_err() {
                        watching = false;
                        continue;
                    }
                    if !self.still_admitted(&info) {
                        // Envoy drains listeners whose filter chains changed; closing keeps a
                        // live connection from outliving the policy that admitted it.
                        debug!(peer = %info.peer_addr, workload = %self.workload.name, "Peer authentication changed, closing connection");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
                _ = shutdown.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }

    fn still_admitted(&self, info: &ConnectionInfo) -> bool {
        match self.mode_for(info.local_addr.port()) {
            PeerMode::Strict => info.mtls,
            PeerMode::Permissive => true,
            PeerMode::Disable => !info.mtls,
        }
    }

    async fn handle_request(
        self: Arc<Self>,
        info: Arc<ConnectionInfo>,
        mut request: Request<Incoming>,
    ) -> Result<Response<AppBody>, Infallible> {
        if self.svid.is_none() {
            return Ok(call_app(self.app.clone(), box_request(request)).await);
        }
        Self::set_xfcc(&info, request.headers_mut());
        if let Err(message) = normalize_authority(&mut request) {
            debug!(peer.addr = %info.peer_addr, workload = %self.workload.name, message, "Invalid request authority");
            return Ok(text_response(StatusCode::BAD_REQUEST, message));
        }

        let authn_started = Instant::now();
        let authenticator = self.authenticator();
        let authenticated = if authenticator.is_empty() {
            Ok(None)
        } else {
            let method = request.method().clone();
            let uri = request.uri().clone();
            authenticator
                .authenticate(
                    &method,
                    &uri,
                    request.headers_mut(),
                    info.local_addr.port(),
                    info.peer_id.as_ref(),
                )
                .await
        };
        let authn_time = authn_started.elapsed();
        let identity = match authenticated {
            Ok(identity) => identity,
            Err(rejection) => {
                if self.denial_log.admit() {
                    info!(
                        workload = %self.workload.name,
                        namespace = %self.workload.namespace,
                        peer.addr = %info.peer_addr,
                        method = %request.method(),
                        path = request.uri().path(),
                        status = rejection.status.as_u16(),
                        reason = %rejection.reason,
                        "Request authentication failed"
                    );
                }
                let mut response = text_response(rejection.status, rejection.body);
                if let Some(value) = rejection
                    .www_authenticate
                    .and_then(|value| HeaderValue::from_str(&value).ok())
                {
                    response
                        .headers_mut()
                        .insert(http::header::WWW_AUTHENTICATE, value);
                }
                add_authn_timing(&mut response, authn_time);
                return Ok(response);
            }
        };

        let started = Instant::now();
        let authorizer = self.authorizer();
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let path = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let attributes = info.request_attributes(Some(HttpAttributes {
            method: request.method().as_str(),
            host,
            path,
            headers: request.headers(),
            auth: identity.as_ref().map(AuthnIdentity::auth),
        }));
        let decision = authorizer.evaluate(&attributes);
        let authz_time = started.elapsed();
        // Formatted only when a log line is written, not on every request.
        let principal = PeerPrincipal(info.peer_id.as_ref());
        if !decision.allowed {
            self.stats.denied.fetch_add(1, Ordering::Relaxed);
            if self.denial_log.admit() {
                info!(
                    workload = %self.workload.name,
                    namespace = %self.workload.namespace,
                    peer.principal = %principal,
                    peer.addr = %info.peer_addr,
                    method = %request.method(),
                    path,
                    %decision,
                    "Request denied"
                );
            }
            let mut response = text_response(StatusCode::FORBIDDEN, "RBAC: access denied");
            add_authn_timing(&mut response, authn_time);
            add_server_timing(&mut response, authz_time);
            return Ok(response);
        }
        self.stats.allowed.fetch_add(1, Ordering::Relaxed);
        debug!(workload = %self.workload.name, peer.principal = %principal, path, %decision, "Request allowed");

        request.extensions_mut().insert(info.clone());
        let mut response = call_app(self.app.clone(), box_request(request)).await;
        add_authn_timing(&mut response, authn_time);
        add_server_timing(&mut response, authz_time);
        Ok(response)
    }

    /// Replaces any client-sent XFCC with the sidecar's own, so that only an identity
    /// proven by a certificate reaches the app.
    fn set_xfcc(info: &ConnectionInfo, headers: &mut http::HeaderMap) {
        headers.remove(XFCC);
        if let Some(value) = &info.xfcc {
            headers.insert(XFCC, value.clone());
        }
    }
}

/// A request's peer principal in log lines: the SPIFFE ID without its
/// scheme, or a note that the connection was plaintext.
struct PeerPrincipal<'a>(Option<&'a SpiffeId>);

impl std::fmt::Display for PeerPrincipal<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => write!(
                f,
                "{}/ns/{}/sa/{}",
                id.trust_domain, id.namespace, id.service_account
            ),
            None => f.write_str("none (plaintext)"),
        }
    }
}

/// Builds Envoy's XFCC value for a client certificate: the server's identity
/// (`By`), the hex SHA-256 of the client leaf certificate's DER (`Hash`), and
/// the client's identity (`URI`).
fn xfcc_value(server: &SpiffeId, client: &SpiffeId, client_leaf_der: &[u8]) -> Option<HeaderValue> {
    let value = format!(
        "By={};Hash={};Subject=\"\";URI={}",
        server.uri(),
        hex::encode(Sha256::digest(client_leaf_der)),
        client.uri()
    );
    HeaderValue::from_str(&value).ok()
}

/// Calls the app; the boxed future keeps the compiler from having to prove `Send` for
/// every lifetime of the request body's error type.
pub fn call_app(
    mut app: AppService,
    request: Request<AppBody>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<AppBody>> + Send>> {
    Box::pin(async move {
        if let Err(never) =
            std::future::poll_fn(|cx| tower::Service::poll_ready(&mut app, cx)).await
        {
            match never {}
        }
        match tower::Service::call(&mut app, request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    })
}

/// Makes the `Host` header the request's one authority, as Envoy's `:authority` is, so that
/// `hosts` rules and the app see the same value. An absolute-form target's authority wins
/// over `Host` (RFC 9112 §3.2.2); several `Host` headers, or none on HTTP/1.1, are invalid
/// (RFC 9112 §3.2).
fn normalize_authority<B>(request: &mut Request<B>) -> Result<(), &'static str> {
    let hosts = request.headers().get_all(http::header::HOST).iter().count();
    if hosts > 1 {
        return Err("Bad Request: more than one Host header");
    }
    if let Some(authority) = request.uri().authority() {
        let value = HeaderValue::from_str(authority.as_str())
            .map_err(|_| "Bad Request: invalid authority")?;
        request.headers_mut().insert(http::header::HOST, value);
        return Ok(());
    }
    if hosts == 0 && request.version() == http::Version::HTTP_11 {
        return Err("Bad Request: missing Host header");
    }
    Ok(())
}

fn box_request(request: Request<Incoming>) -> Request<AppBody> {
    request.map(|body| body.map_err(box_error).boxed_unsync())
}

fn box_error(error: hyper::Error) -> BoxError {
    Box::new(error)
}

/// Reports the authorization decision time in a standard `Server-Timing` header, which the
/// client's sidecar and the loadgen read.
fn add_server_timing(response: &mut Response<AppBody>, authz: std::time::Duration) {
    let value = format!("authz;dur={:.3}", authz.as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append("server-timing", value);
    }
}

/// Reports the JWT authentication time in `Server-Timing`, next to `authz`.
fn add_authn_timing(response: &mut Response<AppBody>, authn: std::time::Duration) {
    let value = format!("authn;dur={:.3}", authn.as_secs_f64() * 1000.0);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append("server-timing", value);
    }
}

/// A small text response from the sidecar itself.
pub fn text_response(status: StatusCode, body: &'static str) -> Response<AppBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
}
