//! The workload side of the networked control plane: fetch an SVID with a CSR, keep it
//! renewed, mirror the policy store and the registry, and register the workload.
//!
//! Every loop keeps the last good state when the control plane is unreachable and retries
//! every [`RETRY_INTERVAL`], so traffic goes on while the control plane is down and the
//! workload catches up once it returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::server::{
    pki::parse_pem_certs, CsrRequest, CsrResponse, PolicyState, Registration, RegistryState,
    LONG_POLL,
};
use crate::config::{parse_documents, Document};
use crate::identity::ca::{generate_csr, Svid};
use crate::identity::SpiffeId;
use crate::registry::Registry;
use crate::store::ConfigStore;
use crate::tls::{SvidCell, TrustBundle};

/// Pause between attempts while the control plane is unreachable.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// How often a workload registers again, so that a restarted control plane (whose
/// registry lives in memory) learns every workload within this interval.
pub const REREGISTER_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid control plane URL {0:?}: expected https://host:port")]
    InvalidUrl(String),
    #[error("no certificate in the mesh root PEM")]
    NoRoot,
    #[error("control plane request {path} failed: {source}")]
    Http {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("control plane rejected {path} with {status}: {message}")]
    Rejected {
        path: String,
        status: u16,
        message: String,
    },
    #[error("invalid certificate from the control plane: {0}")]
    InvalidCertificate(String),
    #[error("creating the CSR failed: {0}")]
    Csr(#[from] crate::identity::ca::CaError),
}

/// An HTTPS client of the control plane API, trusting only the mesh root.
#[derive(Clone, Debug)]
pub struct ControlPlaneClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ControlPlaneClient {
    /// Creates a client for `base_url` (`https://control-plane:15012`) that presents
    /// `token` and trusts only `root_pem`.
    pub fn new(base_url: &str, token: &str, root_pem: &str) -> Result<Self, RemoteError> {
        Self::with_resolve(base_url, token, root_pem, None)
    }

    /// Like [`ControlPlaneClient::new`], but connects to `address` whatever the URL's host
    /// resolves to, which lets a test on loopback check the `control-plane` DNS name.
    pub fn with_resolve(
        base_url: &str,
        token: &str,
        root_pem: &str,
        address: Option<std::net::SocketAddr>,
    ) -> Result<Self, RemoteError> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|_| RemoteError::InvalidUrl(base_url.to_string()))?;
        if url.scheme() != "https" {
            return Err(RemoteError::InvalidUrl(base_url.to_string()));
        }
        let roots = parse_pem_certs(root_pem);
        if roots.is_empty() {
            return Err(RemoteError::NoRoot);
        }
        let bundle = TrustBundle::new(roots);
        let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(bundle.roots().clone())
            .with_no_client_auth();
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .connect_timeout(Duration::from_secs(5))
            .timeout(LONG_POLL + Duration::from_secs(10));
        if let (Some(address), Some(host)) = (address, url.host_str()) {
            builder = builder.resolve(host, address);
        }
        let http = builder.build().map_err(|source| RemoteError::Http {
            path: String::new(),
            source,
        })?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
        })
    }

    /// Requests an SVID for `id`: creates a key and CSR here, so the key never leaves
    /// the workload.
    pub async fn fetch_svid(&self, id: &SpiffeId) -> Result<Svid, RemoteError> {
        let (key, csr) = generate_csr(id)?;
        let response: CsrResponse = self.post("/v1/csr", &CsrRequest { csr }).await?;
        let chain: Vec<CertificateDer<'static>> = response
            .chain
            .iter()
            .flat_map(|pem| parse_pem_certs(pem))
            .collect();
        let leaf = chain
            .first()
            .ok_or_else(|| RemoteError::InvalidCertificate("empty chain".into()))?;
        let not_after = not_after_of(leaf)?;
        Ok(Svid {
            id: id.clone(),
            chain,
            key: Arc::new(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_after,
        })
    }

    pub async fn register(&self, registration: &Registration) -> Result<(), RemoteError> {
        let _: serde_json::Value = self.post("/v1/register", registration).await?;
        Ok(())
    }

    /// Returns the registry once its version differs from `after` (at once for `None`).
    pub async fn registry(&self, after: Option<u64>) -> Result<RegistryState, RemoteError> {
        self.get(&with_after("/v1/registry", after)).await
    }

    /// Returns the policies once the store version differs from `after` (at once for
    /// `None`).
    pub async fn policies(&self, after: Option<u64>) -> Result<PolicyState, RemoteError> {
        self.get(&with_after("/v1/watch", after)).await
    }

    /// Sends one admin API request and returns the status and body, whatever the status.
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        body: bytes::Bytes,
    ) -> Result<(http::StatusCode, bytes::Bytes), RemoteError> {
        let http = |source| RemoteError::Http {
            path: path.to_string(),
            source,
        };
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(http)?;
        let status = response.status();
        let body = response.bytes().await.map_err(http)?;
        Ok((status, body))
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(path, request).await
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, RemoteError> {
        let body = serde_json::to_vec(body).expect("API types serialize to JSON");
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(path, request).await
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, RemoteError> {
        let http = |source| RemoteError::Http {
            path: path.to_string(),
            source,
        };
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(http)?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<super::api::ErrorBody>(&text)
                .map(|e| e.error)
                .unwrap_or(text);
            return Err(RemoteError::Rejected {
                path: path.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        let body = response.bytes().await.map_err(http)?;
        serde_json::from_slice(&body).map_err(|e| RemoteError::Rejected {
            path: path.to_string(),
            status: status.as_u16(),
            message: format!("invalid response body: {e}"),
        })
    }
}

fn with_after(path: &str, after: Option<u64>) -> String {
    match after {
        Some(version) => format!("{path}?after={version}"),
        None => path.to_string(),
    }
}

fn not_after_of(leaf: &CertificateDer<'_>) -> Result<SystemTime, RemoteError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| RemoteError::InvalidCertificate(e.to_string()))?;
    let seconds = cert.validity().not_after.timestamp();
    let seconds =
        u64::try_from(seconds).map_err(|_| RemoteError::InvalidCertificate("expired".into()))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Renews `cell`'s SVID at half its remaining lifetime until `shutdown`, retrying every
/// [`RETRY_INTERVAL`] while the control plane is unreachable; the old SVID stays in use
/// until a new one arrives.
pub fn spawn_rotation(
    client: ControlPlaneClient,
    cell: Arc<SvidCell>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let wait = if failing {
                RETRY_INTERVAL
            } else {
                let remaining = cell
                    .not_after()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                (remaining / 2).max(Duration::from_millis(100))
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
            match client.fetch_svid(cell.id()).await {
                Ok(svid) => {
                    cell.replace(&svid);
                    info!(id = %cell.id(), "SVID renewed");
                    failing = false;
                }
                Err(error) => {
                    warn!(%error, id = %cell.id(), "SVID renewal failed, keeping the current one");
                    failing = true;
                }
            }
        }
    });
}

/// Registers `registration` now and again every [`REREGISTER_INTERVAL`] until `shutdown`.
pub fn spawn_registration(
    client: ControlPlaneClient,
    registration: Registration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut registered = false;
        loop {
            match client.register(&registration).await {
                Ok(()) if !registered => {
                    info!(workload = %registration.name, address = %registration.address, "Workload registered");
                    registered = true;
                }
                Ok(()) => {}
                Err(error) => {
                    warn!(%error, workload = %registration.name, "Registration failed, retrying");
                    registered = false;
                }
            }
            let wait = if registered {
                REREGISTER_INTERVAL
            } else {
                RETRY_INTERVAL
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    });
}

/// Fetches the policies once and loads them into `store`; returns the version loaded.
pub async fn sync_policies_once(
    client: &ControlPlaneClient,
    store: &ConfigStore,
    after: Option<u64>,
) -> Result<u64, RemoteError> {
    let state = client.policies(after).await?;
    if after == Some(state.version) {
        return Ok(state.version);
    }
    match parse_documents(&state.yaml, "control plane snapshot") {
        Ok(documents) => {
            replace_documents(store, documents);
            info!(
                version = state.version,
                "Policies loaded from the control plane"
            );
        }
        Err(error) => warn!(
            version = state.version,
            %error,
            "Invalid policy snapshot from the control plane, keeping the last good one"
        ),
    }
    Ok(state.version)
}

/// Mirrors the control plane's policy store into `store` until `shutdown`.
pub fn spawn_policy_sync(
    client: ControlPlaneClient,
    store: ConfigStore,
    synced: Arc<std::sync::atomic::AtomicU64>,
    mut version: Option<u64>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let result = tokio::select! {
                result = sync_policies_once(&client, &store, version) => result,
                _ = shutdown.cancelled() => return,
            };
            match result {
                Ok(new) => {
                    version = Some(new);
                    synced.store(new, std::sync::atomic::Ordering::Release);
                }
                Err(error) => {
                    debug!(%error, "Policy watch failed, keeping the last good policies");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_INTERVAL) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    });
}

/// Mirrors the control plane's registry into `registry` until `shutdown`.
///
/// Workloads are added and updated but never removed here: a restarted control plane
/// starts with an empty registry, and dropping every endpoint until the workloads register
/// again would cut traffic. NOTE: a removed workload therefore stays resolvable (and
/// refuses connections) until this workload restarts.
pub fn spawn_registry_sync(
    client: ControlPlaneClient,
    registry: Registry,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut known: BTreeMap<(String, String), Registration> = BTreeMap::new();
        let mut version = None;
        loop {
            let result = tokio::select! {
                result = client.registry(version) => result,
                _ = shutdown.cancelled() => return,
            };
            match result {
                Ok(state) => {
                    version = Some(state.version);
                    for registration in state.workloads {
                        let key = (registration.namespace.clone(), registration.name.clone());
                        if known.get(&key) == Some(&registration) {
                            continue;
                        }
                        registry.register(Arc::new(registration.meta()), registration.address);
                        debug!(workload = %registration.name, address = %registration.address, "Endpoint updated");
                        known.insert(key, registration);
                    }
                }
                Err(error) => {
                    debug!(%error, "Registry watch failed, keeping the last known endpoints");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_INTERVAL) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        }
    });
}

/// Makes `store` hold exactly `documents`, in their order of creation, in one snapshot.
pub fn replace_documents(store: &ConfigStore, documents: Vec<Document>) {
    store.replace(documents);
}
