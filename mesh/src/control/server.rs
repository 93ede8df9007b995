//! The control plane over the network: `meshctl control-plane` serves the CA, the policy
//! store, the registry and the lab issuer's keys to workloads in other containers, over TLS.
//!
//! Endpoints, all JSON unless noted:
//! - `GET /healthz` and `GET /v1/bundle` (PEM roots) need no token. So does `/v1/jwks`.
//! - Workload endpoints take `Authorization: Bearer <bootstrap token>`:
//!   `POST /v1/csr` signs a CSR for the token's SPIFFE ID only; `POST /v1/register` adds the
//!   caller's workload to the registry; `GET /v1/registry?after=<version>` and
//!   `GET /v1/watch?after=<version>` long-poll until the registry or policy store passes
//!   `version` (or [`LONG_POLL`] ends) and return the whole set.
//! - Every other path is the admin API of [`super::api`] and takes the admin token.

pub mod pki;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::api::{error as error_response, json, text_response as text};
use super::token::{Claims, TokenKey};
use super::{ControlPlane, ControlPlaneOptions};
use crate::authn::issuer::LabIssuer;
use crate::config::{Resource, Snapshot, Spec};
use crate::identity::SpiffeId;
use crate::workload::{ServicePort, ServiceRef, WorkloadMeta};
use pki::{Pki, PkiError};

/// Longest time a watch request waits for a change before it returns the current state.
pub const LONG_POLL: Duration = Duration::from_secs(25);

/// DNS names in the API server's certificate: the compose service name, istiod's name, and
/// loopback for `meshctl` inside the control plane's own container.
pub const SERVER_DNS_NAMES: [&str; 3] = ["control-plane", "istiod", "localhost"];

/// Settings of a networked control plane.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    pub control: ControlPlaneOptions,
    /// Directory that keeps the mesh root and its key across restarts; `None` keeps them in
    /// memory only.
    pub state_dir: Option<PathBuf>,
}

/// A workload as it registers itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub name: String,
    pub namespace: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    pub sidecar: bool,
    /// Address other workloads connect to.
    pub address: IpAddr,
    pub services: Vec<ServiceRegistration>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRegistration {
    pub name: String,
    /// `(service port, workload port, port name)`.
    pub ports: Vec<(u16, u16, String)>,
}

impl Registration {
    /// Describes `meta` at `address`.
    pub fn of(meta: &WorkloadMeta, address: IpAddr) -> Self {
        Self {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            service_account: meta.service_account.clone(),
            labels: meta.labels.clone(),
            sidecar: meta.sidecar,
            address,
            services: meta
                .services
                .iter()
                .map(|s| ServiceRegistration {
                    name: s.name.clone(),
                    ports: s
                        .ports
                        .iter()
                        .map(|p| (p.port, p.target_port, p.name.clone()))
                        .collect(),
                })
                .collect(),
        }
    }

    pub fn meta(&self) -> WorkloadMeta {
        WorkloadMeta {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            service_account: self.service_account.clone(),
            labels: self.labels.clone(),
            services: self
                .services
                .iter()
                .map(|s| ServiceRef {
                    name: s.name.clone(),
                    namespace: self.namespace.clone(),
                    ports: s
                        .ports
                        .iter()
                        .map(|(port, target_port, name)| ServicePort {
                            port: *port,
                            target_port: *target_port,
                            name: name.clone(),
                        })
                        .collect(),
                })
                .collect(),
            sidecar: self.sidecar,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CsrRequest {
    pub csr: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CsrResponse {
    /// Leaf first, then the root, in PEM.
    pub chain: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RegistryState {
    pub version: u64,
    pub workloads: Vec<Registration>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PolicyState {
    pub version: u64,
    /// Every stored resource as Istio YAML, oldest first, separated by `---`.
    pub yaml: String,
}

/// The registry as workloads reported it, versioned for long polls.
struct Workloads {
    entries: Mutex<BTreeMap<(String, String), Registration>>,
    version: watch::Sender<u64>,
}

/// The control plane with its on-disk root, token key and workload registrations.
#[derive(Clone)]
pub struct NetworkControlPlane {
    control: ControlPlane,
    pki: Arc<Pki>,
    tokens: TokenKey,
    workloads: Arc<Workloads>,
}

impl NetworkControlPlane {
    /// Loads or creates the mesh root and builds the control plane around it.
    pub fn new(options: ServerOptions, tokens: TokenKey) -> Result<Self, PkiError> {
        let trust_domain = options.control.trust_domain.clone();
        let pki = match &options.state_dir {
            Some(dir) => Pki::load_or_create(dir, &trust_domain)?,
            None => Pki::generate(&trust_domain)?,
        };
        let mut control = ControlPlane::with_ca(options.control, pki.ca().clone());
        if let Some(dir) = &options.state_dir {
            let path = dir.join("issuer-key.der");
            let issuer = LabIssuer::load_or_create(&path).map_err(|source| PkiError::Io {
                path: path.display().to_string(),
                source,
            })?;
            control = control.with_issuer(issuer);
        }
        let (version, _) = watch::channel(0);
        Ok(Self {
            control,
            pki: Arc::new(pki),
            tokens,
            workloads: Arc::new(Workloads {
                entries: Mutex::new(BTreeMap::new()),
                version,
            }),
        })
    }

    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    /// The mesh root in PEM, which workloads must trust.
    pub fn root_pem(&self) -> &str {
        self.pki.root_pem()
    }

    /// Serves the API over TLS on `listener` until `shutdown` is cancelled.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), PkiError> {
        // The server certificate lives as long as the root, since nothing renews it.
        let (chain, key) = self
            .pki
            .issue_server_cert(&SERVER_DNS_NAMES, Duration::from_secs(365 * 24 * 3600))?;
        let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a freshly issued P-256 certificate matches its key");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, names = ?SERVER_DNS_NAMES, "Control plane listening over TLS");
        }
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "Control plane accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return Ok(()),
            };
            let acceptor = acceptor.clone();
            let this = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let stream = match acceptor.accept(stream).await {
                    Ok(stream) => stream,
                    Err(error) => {
                        debug!(%error, %peer, "Control plane TLS handshake failed");
                        return;
                    }
                };
                let service = service_fn(move |request| {
                    let this = this.clone();
                    async move { Ok::<_, Infallible>(this.handle(request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                tokio::select! {
                    result = connection => {
                        if let Err(error) = result {
                            debug!(%error, %peer, "Control plane connection failed");
                        }
                    }
                    _ = shutdown.cancelled() => {}
                }
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        match (method, path.as_str()) {
            (Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".to_string()),
            (Method::GET, "/v1/bundle") => text(StatusCode::OK, self.pki.root_pem().to_string()),
            (_, "/v1/jwks") => super::api::handle(&self.control, request).await,
            (Method::POST, "/v1/csr") => self.sign(request).await,
            (Method::POST, "/v1/register") => self.register(request).await,
            (Method::GET, "/v1/registry") => {
                if let Err(response) = self.authorize(&request, false) {
                    return *response;
                }
                let after = after_version(&request);
                json(StatusCode::OK, &self.wait_registry(after).await)
            }
            (Method::GET, "/v1/watch") => {
                if let Err(response) = self.authorize(&request, false) {
                    return *response;
                }
                let after = after_version(&request);
                json(StatusCode::OK, &self.wait_policies(after).await)
            }
            _ => {
                if let Err(response) = self.authorize(&request, true) {
                    return *response;
                }
                super::api::handle(&self.control, request).await
            }
        }
    }

    /// Checks the bearer token; `admin_only` rejects workload tokens.
    fn authorize(
        &self,
        request: &Request<Incoming>,
        admin_only: bool,
    ) -> Result<Claims, Box<Response<Full<Bytes>>>> {
        let claims = match bearer(request).map(|token| self.tokens.verify(token)) {
            Some(Ok(claims)) => claims,
            Some(Err(error)) => {
                warn!(path = %request.uri().path(), %error, "Rejected request with an invalid token");
                return Err(Box::new(error_response(
                    StatusCode::UNAUTHORIZED,
                    &format!("invalid token: {error}"),
                )));
            }
            None => {
                return Err(Box::new(error_response(
                    StatusCode::UNAUTHORIZED,
                    "missing bearer token: pass --token or set MESHLAB_TOKEN",
                )))
            }
        };
        if admin_only && claims != Claims::Admin {
            warn!(path = %request.uri().path(), ?claims, "Rejected a workload token on an admin endpoint");
            return Err(Box::new(error_response(
                StatusCode::FORBIDDEN,
                "this endpoint needs the admin token",
            )));
        }
        Ok(claims)
    }

    async fn sign(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let claims = match self.authorize(&request, false) {
            Ok(claims) => claims,
            Err(response) => return *response,
        };
        let Claims::Workload { ns, sa } = claims else {
            return error_response(
                StatusCode::FORBIDDEN,
                "certificates are issued to workload tokens only",
            );
        };
        let body: CsrRequest = match read_json(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let id = SpiffeId::new(&self.control.options.trust_domain, &ns, &sa);
        let lifetime = self.control.svid_lifetime();
        match self.pki.sign_csr(&body.csr, &id, lifetime) {
            Ok(chain) => {
                info!(id = %id, ?lifetime, "SVID issued");
                let chain = chain.iter().map(|der| pem_of(der)).collect();
                json(StatusCode::OK, &CsrResponse { chain })
            }
            Err(error @ PkiError::WrongIdentity { .. }) => {
                warn!(id = %id, %error, "Rejected certificate signing request");
                error_response(StatusCode::FORBIDDEN, &error.to_string())
            }
            Err(error) => {
                warn!(id = %id, %error, "Rejected certificate signing request");
                error_response(StatusCode::BAD_REQUEST, &error.to_string())
            }
        }
    }

    async fn register(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let claims = match self.authorize(&request, false) {
            Ok(claims) => claims,
            Err(response) => return *response,
        };
        let registration: Registration = match read_json(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        if let Claims::Workload { ns, sa } = &claims {
            if *ns != registration.namespace || *sa != registration.service_account {
                warn!(
                    token_namespace = %ns,
                    token_service_account = %sa,
                    namespace = %registration.namespace,
                    service_account = %registration.service_account,
                    "Rejected registration for another service account"
                );
                return error_response(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "the token is for {ns}/{sa}, not {}/{}",
                        registration.namespace, registration.service_account
                    ),
                );
            }
        }
        let meta = Arc::new(registration.meta());
        self.control.registry().register(meta, registration.address);
        let key = (registration.namespace.clone(), registration.name.clone());
        let mut entries = self
            .workloads
            .entries
            .lock()
            .expect("registry lock is never poisoned");
        let changed = entries.get(&key) != Some(&registration);
        if changed {
            info!(
                workload = %registration.name,
                namespace = %registration.namespace,
                address = %registration.address,
                "Workload registered"
            );
        }
        entries.insert(key, registration);
        drop(entries);
        if changed {
            self.workloads.version.send_modify(|v| *v += 1);
        }
        json(
            StatusCode::OK,
            &serde_json::json!({ "version": *self.workloads.version.borrow() }),
        )
    }

    async fn wait_registry(&self, after: Option<u64>) -> RegistryState {
        if let Some(after) = after {
            let mut receiver = self.workloads.version.subscribe();
            let _ = tokio::time::timeout(LONG_POLL, receiver.wait_for(|v| *v != after)).await;
        }
        let entries = self
            .workloads
            .entries
            .lock()
            .expect("registry lock is never poisoned");
        RegistryState {
            version: *self.workloads.version.borrow(),
            workloads: entries.values().cloned().collect(),
        }
    }

    /// Waits until the store's version differs from `after`: a restarted control plane
    /// counts from 1 again, so a workload's version may be ahead of the store's.
    async fn wait_policies(&self, after: Option<u64>) -> PolicyState {
        if let Some(after) = after {
            let mut receiver = self.control.store().subscribe();
            let _ =
                tokio::time::timeout(LONG_POLL, receiver.wait_for(|s| s.version != after)).await;
        }
        let snapshot = self.control.store().snapshot();
        PolicyState {
            version: snapshot.version,
            yaml: snapshot_yaml(&snapshot),
        }
    }
}

/// Arguments of `meshctl control-plane`.
#[derive(Clone, Debug, clap::Args)]
pub struct ControlPlaneArgs {
    /// Address to serve the TLS API on.
    #[arg(long, default_value = "0.0.0.0:15012")]
    pub listen: std::net::SocketAddr,
    /// File with the secret that signs bootstrap and admin tokens (at least 32 bytes).
    #[arg(long, env = "MESHLAB_SECRET_FILE")]
    pub secret_file: PathBuf,
    /// Directory that keeps the mesh root, its key and the applied policies across
    /// restarts; without it they live in memory only.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Where to write the mesh root (PEM) for workloads, e.g. on a shared volume.
    #[arg(long)]
    pub root_cert_out: Option<PathBuf>,
    /// Lifetime of workload certificates in seconds; workloads renew at half-life.
    #[arg(long, default_value_t = 24 * 3600)]
    pub svid_lifetime_secs: u64,
}

const POLICIES_FILE: &str = "policies.yaml";

/// Runs `meshctl control-plane` until Ctrl-C or SIGTERM.
pub async fn run(args: ControlPlaneArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let tokens = super::token::read_key(&args.secret_file)?;
    let options = ServerOptions {
        control: ControlPlaneOptions {
            svid_lifetime: Duration::from_secs(args.svid_lifetime_secs.max(1)),
            ..ControlPlaneOptions::default()
        },
        state_dir: args.state_dir.clone(),
    };
    let server = NetworkControlPlane::new(options, tokens)?;
    if let Some(path) = &args.root_cert_out {
        write_atomically(path, server.root_pem())
            .with_context(|| format!("writing the mesh root to {}", path.display()))?;
        info!(path = %path.display(), "Mesh root written");
    }
    if let Some(dir) = &args.state_dir {
        restore_policies(server.control(), &dir.join(POLICIES_FILE))?;
        spawn_policy_persistence(server.control().clone(), dir.join(POLICIES_FILE));
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the control plane on {}", args.listen))?;
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(server.serve(listener, shutdown.clone()));
    wait_for_signal().await?;
    info!("Control plane stopping");
    shutdown.cancel();
    serving.await.context("control plane task failed")??;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn restore_policies(control: &ControlPlane, path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
    };
    let documents = crate::config::parse_documents(&text, &path.display().to_string())?;
    let count = documents.len();
    control.store().apply(documents);
    info!(path = %path.display(), count, "Policies restored");
    Ok(())
}

/// Writes the policy store to `path` after every change, so a restarted control plane
/// serves the same policies instead of an empty store.
fn spawn_policy_persistence(control: ControlPlane, path: PathBuf) {
    tokio::spawn(async move {
        let mut receiver = control.store().subscribe();
        while receiver.changed().await.is_ok() {
            let snapshot = receiver.borrow_and_update().clone();
            if let Err(error) = write_atomically(&path, &snapshot_yaml(&snapshot)) {
                warn!(path = %path.display(), %error, "Could not save policies");
            }
        }
    });
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path)
}

/// Writes every resource of `snapshot` back as Istio YAML, oldest first, so that a
/// workload re-creating them keeps the store's creation order.
pub fn snapshot_yaml(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for resource in &snapshot.resources {
        match resource_yaml(resource) {
            Ok(text) => {
                out.push_str("---\n");
                out.push_str(&text);
            }
            Err(error) => warn!(
                name = %resource.meta.name,
                namespace = %resource.meta.namespace,
                %error,
                "Could not serialize resource"
            ),
        }
    }
    out
}

fn resource_yaml(resource: &Resource) -> Result<String, serde_yaml::Error> {
    let spec = match &resource.spec {
        Spec::MeshPolicy(spec) | Spec::Policy(spec) => serde_yaml::to_value(spec)?,
        Spec::PeerAuthentication(spec) => serde_yaml::to_value(spec)?,
        Spec::RequestAuthentication(spec) => serde_yaml::to_value(spec)?,
        Spec::AuthorizationPolicy(spec) => serde_yaml::to_value(spec)?,
        Spec::DestinationRule(spec) => serde_yaml::to_value(spec)?,
    };
    let mut metadata = serde_yaml::Mapping::new();
    metadata.insert("name".into(), resource.meta.name.clone().into());
    if !resource.meta.namespace.is_empty() {
        metadata.insert("namespace".into(), resource.meta.namespace.clone().into());
    }
    if !resource.meta.labels.is_empty() {
        metadata.insert(
            "labels".into(),
            serde_yaml::to_value(&resource.meta.labels)?,
        );
    }
    if !resource.meta.annotations.is_empty() {
        metadata.insert(
            "annotations".into(),
            serde_yaml::to_value(&resource.meta.annotations)?,
        );
    }
    let mut document = serde_yaml::Mapping::new();
    document.insert("apiVersion".into(), resource.api_version.clone().into());
    document.insert("kind".into(), resource.kind().as_str().into());
    document.insert("metadata".into(), metadata.into());
    document.insert("spec".into(), strip_nulls(spec));
    serde_yaml::to_string(&document)
}

/// Drops null fields, which Istio's YAML leaves out and some of the parsers reject.
fn strip_nulls(value: serde_yaml::Value) -> serde_yaml::Value {
    match value {
        serde_yaml::Value::Mapping(mapping) => serde_yaml::Value::Mapping(
            mapping
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        serde_yaml::Value::Sequence(items) => {
            serde_yaml::Value::Sequence(items.into_iter().map(strip_nulls).collect())
        }
        other => other,
    }
}

fn bearer(request: &Request<Incoming>) -> Option<&str> {
    request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn after_version(request: &Request<Incoming>) -> Option<u64> {
    request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("after="))
        .and_then(|v| v.parse().ok())
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Response<Full<Bytes>>> {
    let body = super::api::read_body(request).await?;
    serde_json::from_slice(&body).map_err(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            &format!("invalid request body: {e}"),
        )
    })
}

/// PEM text of one DER certificate.
pub fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
