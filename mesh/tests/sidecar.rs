//! The sidecar against real peers on loopback: peer authentication modes, client TLS
//! modes, XFCC, bad peers, certificate rotation and live policy changes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use mesh::config::parse_documents;
use mesh::control::{ControlPlane, ControlPlaneOptions};
use mesh::identity::ca::Ca;
use mesh::identity::SpiffeId;
use mesh::sidecar::{AppService, InboundOptions, OutboundClient, SendOptions, Sidecar, Timeouts};
use mesh::workload::{ServicePort, ServiceRef, WorkloadMeta};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Each test gets its own /24 in 127.0.0.0/8 so tests can run in parallel.
fn subnet() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ipv4Addr::new(127, 200 + (pid % 50) as u8, (n % 250) as u8 + 1, 0)
}

fn ip(subnet: Ipv4Addr, host: u8) -> IpAddr {
    let o = subnet.octets();
    IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], host))
}

fn workload(name: &str, namespace: &str, port: u16, sidecar: bool) -> WorkloadMeta {
    WorkloadMeta {
        name: name.to_string(),
        namespace: namespace.to_string(),
        service_account: name.to_string(),
        labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        services: vec![ServiceRef {
            name: name.to_string(),
            namespace: namespace.to_string(),
            ports: vec![ServicePort {
                port,
                target_port: port,
                name: "http".to_string(),
            }],
        }],
        sidecar,
    }
}

/// An app that echoes the XFCC header it received, or `none`.
fn echo_app() -> AppService {
    AppService::new(tower::service_fn(
        |request: Request<mesh::sidecar::inbound::AppBody>| async move {
            let xfcc = request
                .headers()
                .get("x-forwarded-client-cert")
                .map(|v| v.to_str().unwrap_or("invalid").to_string())
                .unwrap_or_else(|| "none".to_string());
            let body = Full::new(Bytes::from(xfcc))
                .map_err(|never| match never {})
                .boxed_unsync();
            Ok::<_, Infallible>(Response::new(body))
        },
    ))
}

struct Mesh {
    control: ControlPlane,
    subnet: Ipv4Addr,
    sidecars: Vec<Sidecar>,
}

impl Mesh {
    fn new() -> Self {
        Self::with_lifetime(Duration::from_secs(3600))
    }

    fn with_lifetime(svid_lifetime: Duration) -> Self {
        let control = ControlPlane::new(ControlPlaneOptions {
            svid_lifetime,
            ..ControlPlaneOptions::default()
        });
        Self {
            control,
            subnet: subnet(),
            sidecars: Vec::new(),
        }
    }

    async fn start(&mut self, host: u8, meta: WorkloadMeta) -> OutboundClient {
        let options = InboundOptions {
            timeouts: Timeouts {
                handshake: Duration::from_millis(500),
                ..Timeouts::default()
            },
            ..InboundOptions::default()
        };
        let sidecar = Sidecar::start(
            &self.control,
            meta,
            ip(self.subnet, host),
            |_| echo_app(),
            options,
        )
        .await
        .expect("workload starts");
        let client = sidecar.outbound().clone();
        self.sidecars.push(sidecar);
        client
    }

    fn outsider(&self) -> OutboundClient {
        OutboundClient::new(
            None,
            "default",
            ip(self.subnet, 250),
            None,
            self.control.context().clone(),
            Timeouts::default(),
        )
    }

    fn apply(&self, yaml: &str) {
        let docs = parse_documents(yaml, "test.yaml").expect("test policy is valid");
        self.control.store().apply(docs);
    }

    fn addr(&self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::new(ip(self.subnet, host), port)
    }
}

async fn get(client: &OutboundClient, url: &str) -> Result<(u16, String, bool), String> {
    get_with(client, url, SendOptions::default()).await
}

async fn get_with(
    client: &OutboundClient,
    url: &str,
    options: SendOptions,
) -> Result<(u16, String, bool), String> {
    let request = Request::get(url).body(Bytes::new()).unwrap();
    match client.send(request, options).await {
        Ok((response, info)) => Ok((
            response.status().as_u16(),
            String::from_utf8_lossy(response.body()).into_owned(),
            info.mtls,
        )),
        Err(error) => Err(error.to_string()),
    }
}

const MESH_STRICT: &str = "
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
";

#[tokio::test]
async fn permissive_serves_plaintext_and_mtls() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;

    let (status, body, mtls) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(status, 200);
    assert!(mtls, "auto mTLS upgrades a sidecar client");
    assert!(
        body.starts_with("By=spiffe://cluster.local/ns/default/sa/server;Hash="),
        "{body}"
    );
    assert!(
        body.ends_with(";Subject=\"\";URI=spiffe://cluster.local/ns/default/sa/client"),
        "{body}"
    );

    let (status, body, mtls) = get(&mesh.outsider(), "http://server:9080/").await.unwrap();
    assert_eq!(status, 200);
    assert!(!mtls);
    assert_eq!(body, "none");
}

#[tokio::test]
async fn forged_xfcc_is_removed() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let request = Request::get("http://server:9080/")
        .header(
            "x-forwarded-client-cert",
            "URI=spiffe://cluster.local/ns/default/sa/admin",
        )
        .body(Bytes::new())
        .unwrap();
    let (response, _) = mesh
        .outsider()
        .send(request, SendOptions::default())
        .await
        .unwrap();
    assert_eq!(response.body().as_ref(), b"none");
}

#[tokio::test]
async fn strict_resets_plaintext_before_http() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);

    let error = get(&mesh.outsider(), "http://server:9080/")
        .await
        .unwrap_err();
    assert!(error.contains("reset"), "{error}");

    let mut stream = TcpStream::connect(mesh.addr(1, 9080)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: server\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = stream.read_to_end(&mut buf).await;
    assert!(
        buf.is_empty(),
        "no HTTP answer: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(read.is_err() || read.unwrap() == 0);
}

#[tokio::test]
async fn strict_accepts_mesh_clients() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    let (status, _, mtls) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(status, 200);
    assert!(mtls);
}

#[tokio::test]
async fn strict_rejects_tls_without_client_cert() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    let config = mesh::tls::simple_client_config(&mesh.control.context().bundle);
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = TcpStream::connect(mesh.addr(1, 9080)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("server.default.svc.cluster.local").unwrap();
    let result = async {
        let mut tls = connector.connect(name, stream).await?;
        // TLS 1.3 clients learn of a rejected certificate only on their first read.
        tls.write_all(b"GET / HTTP/1.1\r\nHost: server\r\n\r\n")
            .await?;
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await?;
        Ok::<usize, std::io::Error>(n)
    }
    .await;
    assert!(matches!(result, Err(_) | Ok(0)), "{result:?}");
}

#[tokio::test]
async fn foreign_ca_certificate_is_rejected() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);

    let rogue_ca = Ca::new("cluster.local");
    let rogue = rogue_ca
        .issue(
            &SpiffeId::new("cluster.local", "default", "client"),
            Duration::from_secs(60),
        )
        .unwrap();
    let rogue_bundle = mesh::tls::TrustBundle::new([rogue_ca.root(), mesh.control.ca().root()]);
    let config = mesh::tls::client_config(mesh::tls::SvidCell::new(&rogue), &rogue_bundle, false);
    let stream = TcpStream::connect(mesh.addr(1, 9080)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("server").unwrap();
    let result = async {
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: server\r\n\r\n")
            .await?;
        let mut buf = [0u8; 64];
        tls.read(&mut buf).await
    }
    .await;
    assert!(matches!(result, Err(_) | Ok(0)), "{result:?}");

    let (status, _, _) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(status, 200, "the server keeps serving legitimate clients");
}

#[tokio::test]
async fn bad_peers_do_not_stop_the_server() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    let addr = mesh.addr(1, 9080);

    // Garbage that is neither TLS nor HTTP.
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(&[0xff, 0x00, 0x13, 0x37, 0x0a, 0x0d, 0x0a, 0x0d, 0x0a])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), garbage.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");

    // A TLS record header and then silence: the handshake times out.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut [0u8; 16])).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "stalled handshake is closed: {closed:?}"
    );

    // A client that connects and never sends anything.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut [0u8; 16])).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "silent client is closed: {closed:?}"
    );

    // An oversized request head gets a 4xx, not a crash.
    let mut big = TcpStream::connect(addr).await.unwrap();
    let header = format!(
        "GET / HTTP/1.1\r\nHost: server\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let _ = big.write_all(header.as_bytes()).await;
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), big.read(&mut buf)).await;
    if let Ok(Ok(n)) = n {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 431"), "{text}");
    }

    let (status, _, mtls) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(status, 200);
    assert!(mtls);
}

#[tokio::test]
async fn destination_rule_disable_against_strict_gives_503() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    mesh.apply(
        "
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: server, namespace: default}
spec:
  host: server
  trafficPolicy: {tls: {mode: DISABLE}}
",
    );
    let (status, body, mtls) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(status, 503);
    assert!(!mtls);
    assert!(
        body.starts_with("upstream connect error or disconnect/reset before headers"),
        "{body}"
    );
}

#[tokio::test]
async fn istio_mutual_against_disabled_server_gives_503() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(
        "
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: DISABLE}}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: all, namespace: default}
spec:
  host: '*.default.svc.cluster.local'
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
",
    );
    let (status, _, _) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(status, 503);
}

#[tokio::test]
async fn auto_mtls_sends_plaintext_to_disabled_and_sidecarless() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    mesh.start(3, workload("plain", "default", 9080, false))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;

    let (status, body, mtls) = get(&client, "http://plain:9080/").await.unwrap();
    assert_eq!((status, mtls), (200, false));
    assert_eq!(body, "none");

    mesh.apply(
        "
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: DISABLE}}
",
    );
    let (status, _, mtls) = get_with(
        &client,
        "http://server:9080/",
        SendOptions {
            new_connection: true,
            ..SendOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((status, mtls), (200, false));
}

#[tokio::test]
async fn strict_closes_live_plaintext_connections() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let outsider = mesh.outsider();
    let (status, _, _) = get(&outsider, "http://server:9080/").await.unwrap();
    assert_eq!(status, 200);

    // Keep a raw keep-alive connection open across the policy change.
    let mut stream = TcpStream::connect(mesh.addr(1, 9080)).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: server\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    mesh.apply(MESH_STRICT);
    let closed = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "connection closed within 1 s: {closed:?}"
    );
    assert!(get(&outsider, "http://server:9080/").await.is_err());
}

#[tokio::test]
async fn svids_rotate_without_dropping_traffic() {
    let mut mesh = Mesh::with_lifetime(Duration::from_secs(2));
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    let first = mesh.sidecars[0].svid().unwrap().leaf();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut requests = 0;
    while tokio::time::Instant::now() < deadline {
        let options = SendOptions {
            new_connection: requests % 2 == 0,
            ..SendOptions::default()
        };
        let (status, _, mtls) = get_with(&client, "http://server:9080/", options)
            .await
            .unwrap();
        assert_eq!((status, mtls), (200, true), "request {requests}");
        requests += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = mesh.sidecars[0].svid().unwrap().leaf();
    assert_ne!(first, last, "the server SVID was renewed");
    assert!(requests > 20);
}

#[tokio::test]
async fn health_probes_pass_deny_all() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    mesh.apply(
        "
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec: {}
",
    );
    let (status, body, _) = get(&client, "http://server:9080/health").await.unwrap();
    assert_eq!(status, 403);
    assert_eq!(body, "RBAC: access denied");

    // The agent port answers for the kubelet, which has no mesh certificate.
    let agent = mesh.addr(1, mesh::sidecar::agent::AGENT_PORT);
    for path in [
        "/healthz/ready",
        "/app-health/server/readyz",
        "/app-health/server/livez",
    ] {
        let mut stream = TcpStream::connect(agent).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{path}: {response}");
    }
    let mut stream = TcpStream::connect(agent).await.unwrap();
    stream
        .write_all(b"GET /app-health/other/readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

#[tokio::test]
async fn authz_decisions_are_counted_and_timed() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(
        "
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: only-client, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/client]}}]
",
    );
    let request = Request::get("http://server:9080/")
        .body(Bytes::new())
        .unwrap();
    let (response, info) = client.send(request, SendOptions::default()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(info.authz.is_some(), "Server-Timing carries the authz time");

    let (status, body, _) = get(&mesh.outsider(), "http://server:9080/").await.unwrap();
    assert_eq!((status, body.as_str()), (403, "RBAC: access denied"));

    let stats = mesh.sidecars[0].stats();
    assert_eq!(stats.allowed.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(stats.denied.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// PEM text for a DER blob, as the files a `MUTUAL` DestinationRule names.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Writes an SVID from `ca` to files and returns their paths (cert, key, ca).
fn write_svid_files(ca: &Ca, id: &SpiffeId, dir: &std::path::Path) -> (String, String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let svid = ca.issue(id, Duration::from_secs(600)).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let root = dir.join("root.pem");
    std::fs::write(&cert, pem("CERTIFICATE", &svid.chain[0])).unwrap();
    std::fs::write(&key, pem("PRIVATE KEY", svid.key.secret_pkcs8_der())).unwrap();
    std::fs::write(&root, ca.root_pem()).unwrap();
    let path = |p: std::path::PathBuf| p.display().to_string();
    (path(cert), path(key), path(root))
}

fn destination_rule(tls: &str) -> String {
    format!(
        "
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {{name: server, namespace: default}}
spec:
  host: server.default.svc.cluster.local
  trafficPolicy:
    tls: {tls}
"
    )
}

#[tokio::test]
async fn simple_tls_against_strict_gives_503() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    mesh.apply(&destination_rule("{mode: SIMPLE}"));
    let (status, body, _) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(status, 503, "STRICT requires a client certificate: {body}");
}

#[tokio::test]
async fn mutual_with_mesh_signed_files_works() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    let dir = std::env::temp_dir().join(format!(
        "meshlab-mutual-{}-{}",
        std::process::id(),
        mesh.subnet
    ));
    let id = SpiffeId::new("cluster.local", "default", "files");
    let (cert, key, root) = write_svid_files(mesh.control.ca(), &id, &dir);
    mesh.apply(&destination_rule(&format!(
        "{{mode: MUTUAL, clientCertificate: {cert}, privateKey: {key}, caCertificates: {root}}}"
    )));
    let (status, body, mtls) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!((status, mtls), (200, true), "{body}");
    assert!(
        body.ends_with("URI=spiffe://cluster.local/ns/default/sa/files"),
        "{body}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn mutual_with_foreign_files_gives_503() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    let dir = std::env::temp_dir().join(format!(
        "meshlab-foreign-{}-{}",
        std::process::id(),
        mesh.subnet
    ));
    let foreign = Ca::new("cluster.local");
    let id = SpiffeId::new("cluster.local", "default", "client");
    let (cert, key, _) = write_svid_files(&foreign, &id, &dir);
    let mesh_root = dir.join("mesh-root.pem");
    std::fs::write(&mesh_root, mesh.control.ca().root_pem()).unwrap();
    mesh.apply(&destination_rule(&format!(
        "{{mode: MUTUAL, clientCertificate: {cert}, privateKey: {key}, caCertificates: {}}}",
        mesh_root.display()
    )));
    let (status, _, _) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(
        status, 503,
        "the server rejects a certificate from another CA"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn port_level_settings_override_the_rule() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    mesh.apply(
        "
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: server, namespace: default}
spec:
  host: server
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 9080}
      tls: {mode: DISABLE}
",
    );
    let (status, _, mtls) = get(&client, "http://server:9080/").await.unwrap();
    assert_eq!(
        (status, mtls),
        (503, false),
        "the port entry's DISABLE wins over ISTIO_MUTUAL"
    );
}

#[tokio::test]
async fn workload_port_level_mtls_disables_one_port() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    let client = mesh
        .start(2, workload("client", "default", 9080, true))
        .await;
    mesh.apply(MESH_STRICT);
    mesh.apply(
        "
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: server, namespace: default}
spec:
  selector: {matchLabels: {app: server}}
  mtls: {mode: STRICT}
  portLevelMtls:
    9080: {mode: DISABLE}
",
    );
    let (status, _, mtls) = get(&mesh.outsider(), "http://server:9080/").await.unwrap();
    assert_eq!(
        (status, mtls),
        (200, false),
        "plaintext is accepted on the DISABLE port"
    );
    let (status, _, mtls) = get_with(
        &client,
        "http://server:9080/",
        SendOptions {
            new_connection: true,
            ..SendOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (status, mtls),
        (200, false),
        "auto mTLS sends plaintext to a DISABLE port"
    );
}

/// Sends raw request bytes to `addr` and returns the status line.
async fn raw_status(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response)).await;
    response.lines().next().unwrap_or("").to_string()
}

#[tokio::test]
async fn hosts_rules_see_the_request_authority() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("server", "default", 9080, true))
        .await;
    mesh.apply(
        "
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: deny-server-host, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {hosts: [server.default.svc.cluster.local, 'server.default.svc.cluster.local:*']}}]
",
    );
    let addr = mesh.addr(1, 9080);
    let absolute = "GET http://server.default.svc.cluster.local/ HTTP/1.1\r\nHost: evil\r\nConnection: close\r\n\r\n";
    assert_eq!(
        raw_status(addr, absolute).await,
        "HTTP/1.1 403 Forbidden",
        "the URI's authority wins over Host"
    );

    let cased = "GET / HTTP/1.1\r\nHost: Server.Default.SVC.cluster.local:9080\r\nConnection: close\r\n\r\n";
    assert_eq!(
        raw_status(addr, cased).await,
        "HTTP/1.1 403 Forbidden",
        "hosts ignore case"
    );

    let two_hosts = "GET / HTTP/1.1\r\nHost: evil\r\nHost: server.default.svc.cluster.local\r\nConnection: close\r\n\r\n";
    assert_eq!(
        raw_status(addr, two_hosts).await,
        "HTTP/1.1 400 Bad Request"
    );

    let no_host = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_status(addr, no_host).await, "HTTP/1.1 400 Bad Request");

    let other = "GET / HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n";
    assert_eq!(raw_status(addr, other).await, "HTTP/1.1 200 OK");
}
