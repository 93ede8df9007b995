//! The sidecar: inbound listener (peer authentication, XFCC, authorization) and outbound
//! client (client TLS mode, mutual TLS origination, pooled connections).

pub mod agent;
pub mod inbound;
pub mod outbound;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::authn::jwks::JwksCache;
use crate::control::ControlPlane;
use crate::registry::Registry;
use crate::store::ConfigStore;
use crate::tls::{SvidCell, TrustBundle};
use crate::workload::WorkloadMeta;

pub use inbound::{AppService, Inbound, InboundOptions};
pub use outbound::{ExchangeInfo, OutboundClient, OutboundError, SendOptions};

/// A byte stream: a TCP connection, or TLS over one.
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

/// State every sidecar shares with the control plane: the policy store, service discovery,
/// the mesh roots and JWKS keys.
#[derive(Clone, Debug)]
pub struct MeshContext {
    pub store: ConfigStore,
    pub registry: Registry,
    pub bundle: TrustBundle,
    /// JWKS keys by URI, shared so that each URI is fetched once per mesh.
    pub jwks: JwksCache,
    /// Version of the control plane's policy store that `store` mirrors; stays 0 in the
    /// embedded lab, where `store` is the control plane's own. A remote driver waits for it
    /// before sending, so that a request never races a policy change.
    pub policy_version: Arc<std::sync::atomic::AtomicU64>,
}

/// Body of the 503 that a client sidecar answers when the upstream connection fails,
/// with Envoy's wording so that course handouts match.
pub const UPSTREAM_RESET_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection termination";

/// Body of the 503 for a refused or unreachable upstream.
pub const UPSTREAM_CONNECT_FAILURE_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: connection failure";

/// Limits of one sidecar.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// Time a client has to send its first byte and finish the TLS handshake.
    pub handshake: Duration,
    /// Time to open an upstream connection.
    pub connect: Duration,
    /// Time for a whole upstream request, as Envoy's default route timeout.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            connect: Duration::from_secs(5),
            request: Duration::from_secs(15),
        }
    }
}

/// A running workload's sidecar: its listeners, its outbound client and its identity.
pub struct Sidecar {
    workload: Arc<WorkloadMeta>,
    ip: IpAddr,
    outbound: OutboundClient,
    svid: Option<Arc<SvidCell>>,
    listen: Vec<SocketAddr>,
    shutdown: CancellationToken,
    registry: Registry,
    inbound: Arc<Inbound>,
    /// Listener tasks; each ends (and closes its socket) once `shutdown` is cancelled.
    listeners: Vec<JoinHandle<()>>,
}

impl Sidecar {
    /// Starts `workload` at `ip`: issues its SVID (when it has a sidecar), binds one
    /// listener per workload port, registers it behind its services, and hands `make_app`
    /// the outbound client the app will call other services with.
    pub async fn start(
        control: &ControlPlane,
        workload: WorkloadMeta,
        ip: IpAddr,
        make_app: impl FnOnce(OutboundClient) -> AppService,
        options: InboundOptions,
    ) -> Result<Self, SidecarError> {
        let workload = Arc::new(workload);
        let shutdown = CancellationToken::new();
        let svid = if workload.sidecar {
            let svid = control.issue(&workload.spiffe_id())?;
            let cell = SvidCell::new(&svid);
            control.spawn_rotation(cell.clone(), shutdown.clone());
            Some(cell)
        } else {
            None
        };
        let sidecar = Self::launch(
            control.context().clone(),
            workload.clone(),
            ip,
            svid,
            shutdown,
            make_app,
            options,
            None,
        )
        .await?;
        control.registry().register(workload, ip);
        Ok(sidecar)
    }

    /// Starts `workload` with an SVID obtained elsewhere, as a workload in its own container
    /// does: it listens on `listen_ip` (`0.0.0.0` for every interface) and leaves
    /// registration and certificate renewal to its caller, which stops them with
    /// [`Sidecar::shutdown_token`]. With `exec_admin_sha256` set, the agent port also
    /// serves `POST /exec` to holders of the admin token with that SHA-256.
    pub async fn start_standalone(
        context: MeshContext,
        workload: WorkloadMeta,
        listen_ip: IpAddr,
        svid: Option<Arc<SvidCell>>,
        make_app: impl FnOnce(OutboundClient) -> AppService,
        options: InboundOptions,
        exec_admin_sha256: Option<String>,
    ) -> Result<Self, SidecarError> {
        Self::launch(
            context,
            Arc::new(workload),
            listen_ip,
            svid,
            CancellationToken::new(),
            make_app,
            options,
            exec_admin_sha256,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn launch(
        context: MeshContext,
        workload: Arc<WorkloadMeta>,
        ip: IpAddr,
        svid: Option<Arc<SvidCell>>,
        shutdown: CancellationToken,
        make_app: impl FnOnce(OutboundClient) -> AppService,
        options: InboundOptions,
        exec_admin_sha256: Option<String>,
    ) -> Result<Self, SidecarError> {
        let outbound = OutboundClient::new(
            Some(workload.clone()),
            &workload.namespace,
            ip,
            svid.clone(),
            context.clone(),
            options.timeouts.clone(),
        );
        let app = make_app(outbound.clone());
        let inbound = Inbound::new(
            workload.clone(),
            svid.clone(),
            context.clone(),
            app.clone(),
            options,
        );

        let mut listen = Vec::new();
        let mut listeners = Vec::new();
        for port in workload.target_ports() {
            let addr = SocketAddr::new(ip, port);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| SidecarError::Bind { addr, source })?;
            listen.push(listener.local_addr().unwrap_or(addr));
            listeners.push(tokio::spawn(
                inbound.clone().serve(listener, shutdown.clone()),
            ));
        }
        let exec = exec_admin_sha256.map(|admin_token_sha256| agent::Exec {
            outbound: outbound.clone(),
            registry: context.registry.clone(),
            admin_token_sha256,
            policy_version: context.policy_version.clone(),
        });
        let agent_addr = SocketAddr::new(ip, agent::AGENT_PORT);
        let agent_listener =
            TcpListener::bind(agent_addr)
                .await
                .map_err(|source| SidecarError::Bind {
                    addr: agent_addr,
                    source,
                })?;
        listeners.push(tokio::spawn(agent::serve(
            agent_listener,
            workload.name.clone(),
            app,
            exec,
            shutdown.clone(),
        )));

        info!(
            workload = %workload.name,
            namespace = %workload.namespace,
            id = %svid.as_ref().map(|s| s.id().to_string()).unwrap_or_else(|| "none (no sidecar)".into()),
            addrs = ?listen,
            "Workload started"
        );
        Ok(Self {
            workload,
            ip,
            outbound,
            svid,
            listen,
            shutdown,
            registry: context.registry.clone(),
            inbound,
            listeners,
        })
    }

    pub fn workload(&self) -> &Arc<WorkloadMeta> {
        &self.workload
    }

    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    pub fn outbound(&self) -> &OutboundClient {
        &self.outbound
    }

    pub fn svid(&self) -> Option<&Arc<SvidCell>> {
        self.svid.as_ref()
    }

    /// Counters of the inbound sidecar's authorization decisions.
    pub fn stats(&self) -> &inbound::InboundStats {
        self.inbound.stats()
    }

    /// Token cancelled when the sidecar stops; tasks that belong to the workload watch it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// Deregisters the workload and stops its listeners, connections and renewals.
    pub fn stop(&self) {
        self.registry
            .deregister(&self.workload.namespace, &self.workload.name);
        self.shutdown.cancel();
    }

    /// Stops the workload and waits until its listening sockets are closed, so that its
    /// addresses can be bound again at once.
    pub async fn shutdown(mut self) {
        self.stop();
        for task in self.listeners.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error("could not issue an SVID: {0}")]
    Ca(#[from] crate::identity::ca::CaError),
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
