//! `bookinfo serve WORKLOAD`: one workload and its sidecar in its own container, with its
//! identity, policies and service discovery from a networked control plane.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use mesh::authn::jwks::JwksCache;
use mesh::control::remote::{self, ControlPlaneClient};
use mesh::control::server::Registration;
use mesh::registry::Registry;
use mesh::sidecar::{InboundOptions, MeshContext, OutboundClient, Sidecar};
use mesh::store::ConfigStore;
use mesh::tls::{SvidCell, TrustBundle};
use services::apps::{self, AppEnv, AppKind};
use services::lab::{app_service, bookinfo, inbound_options, MeshHttp, WorkloadSpec, OUTSIDER};
use tracing::{info, warn};

/// Attempts at the first certificate and policy fetch before giving up, one every
/// [`remote::RETRY_INTERVAL`].
const STARTUP_ATTEMPTS: u32 = 30;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Workload to run: a Bookinfo workload (`productpage`, `reviews-v2`, ...), `sleep`,
    /// `httpbin` or `outsider` (no sidecar).
    pub workload: String,
    /// URL of the networked control plane.
    #[arg(
        long,
        env = "MESHLAB_CONTROL_PLANE",
        default_value = "https://control-plane:15012"
    )]
    pub control_plane: String,
    /// File with this workload's bootstrap token (`meshctl bootstrap-token`).
    #[arg(long, env = "MESHLAB_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// Mesh root certificate (PEM), which the control plane writes to a shared volume.
    #[arg(
        long,
        env = "MESHLAB_CA_CERT",
        default_value = "/var/run/meshlab/ca.pem"
    )]
    pub ca_cert: PathBuf,
    /// File with the hex SHA-256 of the admin token; enables `POST /exec` on port 15020.
    #[arg(long, env = "MESHLAB_EXEC_TOKEN_SHA256_FILE")]
    pub exec_token_sha256_file: Option<PathBuf>,
    /// Address other workloads reach this one at; by default the address of the
    /// interface that routes to the control plane.
    #[arg(long)]
    pub address: Option<IpAddr>,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub listen: IpAddr,
}

/// The workloads a container can run.
fn spec_of(name: &str) -> anyhow::Result<WorkloadSpec> {
    let labels = |app: &str| {
        BTreeMap::from([
            ("app".to_string(), app.to_string()),
            ("version".to_string(), "v1".to_string()),
        ])
    };
    let extra = |name: &str, app: AppKind, sidecar: bool, ports: Vec<(u16, u16)>| WorkloadSpec {
        name: name.to_string(),
        namespace: "default".to_string(),
        service_account: name.to_string(),
        labels: labels(name),
        sidecar,
        app,
        service: name.to_string(),
        ports,
    };
    match name {
        "sleep" => return Ok(extra("sleep", AppKind::Sleep, true, vec![(9080, 9080)])),
        "httpbin" => return Ok(extra("httpbin", AppKind::Httpbin, true, vec![(8000, 80)])),
        "tcp-echo" => {
            let ports = vec![(9000, 9000), (9001, 9001)];
            return Ok(extra("tcp-echo", AppKind::TcpEcho, true, ports));
        }
        OUTSIDER => return Ok(extra(OUTSIDER, AppKind::Sleep, false, vec![(9080, 9080)])),
        _ => {}
    }
    let known = bookinfo();
    if let Some(spec) = known
        .iter()
        .find(|s| s.name == name || (s.service == name && s.name.ends_with("-v1")))
    {
        return Ok(spec.clone());
    }
    let names: Vec<String> = known.into_iter().map(|s| s.name).collect();
    bail!(
        "unknown workload {name:?}: expected one of {}, sleep, httpbin, tcp-echo, outsider",
        names.join(", ")
    )
}

/// Runs the workload until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let spec = spec_of(&args.workload)?;
    let meta = spec.meta();
    let token = read_trimmed(&args.token_file)?;
    let root_pem = std::fs::read_to_string(&args.ca_cert)
        .with_context(|| format!("reading the mesh root {}", args.ca_cert.display()))?;
    let client = ControlPlaneClient::new(&args.control_plane, &token, &root_pem)?;
    let address = match args.address {
        Some(address) => address,
        None => local_address(&args.control_plane).await?,
    };
    let exec_sha256 = args
        .exec_token_sha256_file
        .as_deref()
        .map(read_trimmed)
        .transpose()?;

    let svid = if meta.sidecar {
        let id = meta.spiffe_id();
        let svid = retry("fetching the workload certificate", || {
            client.fetch_svid(&id)
        })
        .await?;
        let serial = mesh::tls::serial_of(&svid.chain[0]).unwrap_or_default();
        info!(id = %id, serial = %serial, "SVID issued by the control plane");
        Some(SvidCell::new(&svid))
    } else {
        None
    };
    let context = MeshContext {
        store: ConfigStore::new(),
        registry: Registry::default(),
        bundle: TrustBundle::new(mesh::control::server::pki::parse_pem_certs(&root_pem)),
        jwks: JwksCache::new(),
        policy_version: Default::default(),
    };
    fetch_lab_keys(&client, &context.jwks).await;
    // Policies are in place before the first listener opens, so that no request is
    // served under an empty (allow-all) configuration.
    let version = retry("fetching policies", || {
        remote::sync_policies_once(&client, &context.store, None)
    })
    .await?;
    context
        .policy_version
        .store(version, std::sync::atomic::Ordering::Release);

    let app_kind = spec.app;
    let pod_name = spec.name.clone();
    let make_app = move |outbound: OutboundClient| {
        let env = AppEnv::new(Arc::new(MeshHttp(outbound)), pod_name);
        app_service(apps::router(&app_kind, env))
    };
    let sidecar = Sidecar::start_standalone(
        context.clone(),
        meta.clone(),
        args.listen,
        svid.clone(),
        make_app,
        inbound_options(app_kind, InboundOptions::default()),
        exec_sha256,
    )
    .await
    .with_context(|| format!("starting workload {}", spec.name))?;
    let shutdown = sidecar.shutdown_token();
    if let Some(cell) = svid {
        remote::spawn_rotation(client.clone(), cell, shutdown.clone());
    }
    remote::spawn_policy_sync(
        client.clone(),
        context.store.clone(),
        context.policy_version.clone(),
        Some(version),
        shutdown.clone(),
    );
    remote::spawn_registry_sync(client.clone(), context.registry.clone(), shutdown.clone());
    remote::spawn_registration(client, Registration::of(&meta, address), shutdown);
    info!(workload = %spec.name, %address, listen = %args.listen, "Workload serving");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    info!(workload = %spec.name, "Workload stopping");
    sidecar.shutdown().await;
    Ok(())
}

/// Loads the lab issuer's public keys from the control plane, so that tokens minted with
/// `meshctl token` verify here as they do in the embedded lab.
async fn fetch_lab_keys(client: &ControlPlaneClient, cache: &JwksCache) {
    let fetched = client
        .request(http::Method::GET, "/v1/jwks", Bytes::new())
        .await;
    match fetched {
        Ok((status, body)) if status.is_success() => {
            match mesh::authn::jwks::JwkKeys::parse(&String::from_utf8_lossy(&body)) {
                Ok(keys) => mesh::authn::issuer::register_lab_keys(cache, Arc::new(keys)),
                Err(error) => warn!(%error, "Invalid lab JWKS from the control plane"),
            }
        }
        Ok((status, _)) => warn!(%status, "Fetching the lab JWKS failed; lab tokens will fail"),
        Err(error) => warn!(%error, "Could not fetch the lab JWKS; lab tokens will fail"),
    }
}

async fn retry<T, E, F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut last = None;
    for _ in 0..STARTUP_ATTEMPTS {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => {
                warn!(%error, "{what} failed, retrying");
                last = Some(error);
                tokio::time::sleep(remote::RETRY_INTERVAL).await;
            }
        }
    }
    let error = last.expect("at least one attempt ran");
    Err(anyhow::Error::new(error)
        .context(format!("{what}: gave up after {STARTUP_ATTEMPTS} attempts")))
}

fn read_trimmed(path: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// Finds this container's address: the source address of a route to the control plane.
async fn local_address(control_plane: &str) -> anyhow::Result<IpAddr> {
    let url: http::Uri = control_plane
        .parse()
        .with_context(|| format!("invalid control plane URL {control_plane:?}"))?;
    let host = url.host().context("control plane URL has no host")?;
    let port = url.port_u16().unwrap_or(443);
    let target: SocketAddr = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("no address for {host}"))?;
    // A connected UDP socket sends nothing but tells which local address routes there.
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(target)?;
    Ok(socket.local_addr()?.ip())
}
