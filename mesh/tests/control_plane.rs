//! The networked control plane on loopback: CSR signing, token checks and policy watch.

use std::time::Duration;

use mesh::control::remote::{ControlPlaneClient, RemoteError};
use mesh::control::server::{NetworkControlPlane, ServerOptions};
use mesh::control::token::{Claims, TokenKey};
use mesh::identity::ca::generate_csr;
use mesh::identity::SpiffeId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const STRICT: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
metadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}\n";

struct Running {
    key: TokenKey,
    root: String,
    addr: std::net::SocketAddr,
    server: NetworkControlPlane,
    shutdown: CancellationToken,
}

async fn start() -> Running {
    let key = TokenKey::new(&[7u8; 32]).unwrap();
    let server = NetworkControlPlane::new(ServerOptions::default(), key.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.clone().serve(listener, shutdown.clone()));
    Running {
        key,
        root: server.root_pem().to_string(),
        addr,
        server,
        shutdown,
    }
}

fn client(lab: &Running, token: &str) -> ControlPlaneClient {
    // Connects by the `control-plane` DNS name, which the server certificate must carry.
    ControlPlaneClient::with_resolve(
        &format!("https://control-plane:{}", lab.addr.port()),
        token,
        &lab.root,
        Some(lab.addr),
    )
    .unwrap()
}

fn workload_token(lab: &Running, sa: &str) -> String {
    lab.key.mint(&Claims::Workload {
        ns: "default".into(),
        sa: sa.into(),
    })
}

#[tokio::test]
async fn csr_signed_for_token_identity() {
    let lab = start().await;
    let id = SpiffeId::new("cluster.local", "default", "sleep");
    let svid = client(&lab, &workload_token(&lab, "sleep"))
        .fetch_svid(&id)
        .await
        .unwrap();
    assert_eq!(svid.chain.len(), 2);
    let peer = mesh::tls::spiffe_id_of(&svid.chain[0]).unwrap();
    assert_eq!(peer, id);
    lab.shutdown.cancel();
}

#[tokio::test]
async fn csr_for_other_identity_rejected() {
    let lab = start().await;
    let other = SpiffeId::new("cluster.local", "istio-system", "admin");
    let error = client(&lab, &workload_token(&lab, "sleep"))
        .fetch_svid(&other)
        .await
        .unwrap_err();
    match error {
        RemoteError::Rejected {
            status, message, ..
        } => {
            assert_eq!(status, 403);
            assert!(message.contains("istio-system/sa/admin"), "{message}");
        }
        other => panic!("expected a rejection, got {other}"),
    }
    lab.shutdown.cancel();
}

#[tokio::test]
async fn token_for_other_account_rejected() {
    let lab = start().await;
    let details = SpiffeId::new("cluster.local", "default", "bookinfo-details");
    let error = client(&lab, &workload_token(&lab, "sleep"))
        .fetch_svid(&details)
        .await
        .unwrap_err();
    assert!(
        matches!(error, RemoteError::Rejected { status: 403, .. }),
        "{error}"
    );
    lab.shutdown.cancel();
}

#[tokio::test]
async fn forged_token_rejected() {
    let lab = start().await;
    let forged = TokenKey::new(&[8u8; 32]).unwrap().mint(&Claims::Workload {
        ns: "default".into(),
        sa: "sleep".into(),
    });
    let id = SpiffeId::new("cluster.local", "default", "sleep");
    let error = client(&lab, &forged).fetch_svid(&id).await.unwrap_err();
    assert!(
        matches!(error, RemoteError::Rejected { status: 401, .. }),
        "{error}"
    );
    lab.shutdown.cancel();
}

#[tokio::test]
async fn workload_token_cannot_apply() {
    let lab = start().await;
    let (status, _) = client(&lab, &workload_token(&lab, "sleep"))
        .request(
            http::Method::POST,
            "/v1/reset",
            bytes::Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    lab.shutdown.cancel();
}

#[tokio::test]
async fn watch_delivers_new_snapshot() {
    let lab = start().await;
    let watcher = client(&lab, &workload_token(&lab, "sleep"));
    let first = watcher.policies(None).await.unwrap();
    let store = mesh::store::ConfigStore::new();
    let waiting = tokio::spawn({
        let watcher = watcher.clone();
        let store = store.clone();
        async move {
            mesh::control::remote::sync_policies_once(&watcher, &store, Some(first.version)).await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "watch returned before any change");
    let documents = mesh::config::parse_documents(STRICT, "strict.yaml").unwrap();
    lab.server.control().store().apply(documents);
    let version = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(version > first.version);
    let snapshot = store.snapshot();
    assert_eq!(snapshot.resources.len(), 1);
    assert_eq!(snapshot.resources[0].meta.namespace, "istio-system");
    lab.shutdown.cancel();
}

#[tokio::test]
async fn csr_is_real_pem() {
    // The CSR helper the workload uses must name the identity it asks for.
    let id = SpiffeId::new("cluster.local", "default", "sleep");
    let (_, pem) = generate_csr(&id).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
}
