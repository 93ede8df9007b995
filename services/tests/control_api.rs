//! `meshctl` against a running lab: policies applied through the control plane API take
//! effect for new connections at once, a bad file changes nothing, and `describe` explains
//! the result.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use mesh::ctl::{run, Cli};
use services::lab::{Lab, LabOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct Running {
    lab: Lab,
    api: String,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start() -> Running {
    let lab = Lab::start(LabOptions {
        base_ip: None,
        ..LabOptions::default()
    })
    .await
    .expect("lab starts");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    tokio::spawn(mesh::control::api::serve(
        lab.control().clone(),
        listener,
        shutdown.clone(),
    ));
    Running { lab, api, shutdown }
}

async fn meshctl(api: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut argv = vec!["meshctl", "--control-plane", api];
    argv.extend_from_slice(args);
    run(Cli::try_parse_from(argv)?).await
}

fn policy(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/policies");
    root.join(name).display().to_string()
}

/// Sends a plaintext GET as a client outside the mesh; `None` when no HTTP answer came.
async fn plaintext_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1)?.parse().ok()
}

fn details_addr(lab: &Lab) -> SocketAddr {
    let (_, ip) = lab
        .workloads()
        .into_iter()
        .find(|(spec, _)| spec.name == "details-v1")
        .expect("Bookinfo runs details-v1");
    SocketAddr::new(ip, 9080)
}

#[tokio::test]
async fn apply_and_delete_take_effect_live() {
    let running = start().await;
    let details = details_addr(&running.lab);
    assert_eq!(plaintext_status(details, "/details/0").await, Some(200));

    let out = meshctl(&running.api, &["apply", "-f", &policy("mtls-strict.yaml")])
        .await
        .unwrap();
    assert!(out.contains("MeshPolicy default applied"), "{out}");
    assert!(
        out.contains("DestinationRule default/default applied"),
        "{out}"
    );
    assert_eq!(
        plaintext_status(details, "/details/0").await,
        None,
        "STRICT cuts plaintext off"
    );

    let listing = meshctl(&running.api, &["get"]).await.unwrap();
    assert!(listing.contains("MeshPolicy"), "{listing}");
    assert!(listing.contains("DestinationRule"), "{listing}");

    let described = meshctl(&running.api, &["describe", "details"])
        .await
        .unwrap();
    assert!(
        described.contains("9080   STRICT   MeshPolicy default"),
        "{described}"
    );
    assert!(
        described.contains("ISTIO_MUTUAL") || described.contains("default.default"),
        "{described}"
    );

    meshctl(&running.api, &["delete", "-f", &policy("mtls-strict.yaml")])
        .await
        .unwrap();
    assert_eq!(plaintext_status(details, "/details/0").await, Some(200));
}

#[tokio::test]
async fn bad_file_is_rejected_whole() {
    let running = start().await;
    let dir = std::env::temp_dir().join(format!("meshctl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("two-docs.yaml");
    std::fs::write(
        &file,
        "apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: broken, namespace: default}
spec: {mtls: {mode: STRCT}}
",
    )
    .unwrap();
    let error = meshctl(&running.api, &["apply", "-f", file.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("two-docs.yaml"), "{error}");
    assert!(error.contains("document 2"), "{error}");
    assert!(error.contains("spec.mtls.mode"), "{error}");
    assert!(
        running.lab.control().store().snapshot().is_empty(),
        "nothing was applied"
    );
    assert_eq!(
        plaintext_status(details_addr(&running.lab), "/details/0").await,
        Some(200)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn unreachable_control_plane_is_explained() {
    let error = meshctl("http://127.0.0.1:1", &["get"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("could not reach the control plane"),
        "{error}"
    );
}

#[tokio::test]
async fn empty_inputs_are_rejected() {
    let running = start().await;
    let dir = std::env::temp_dir().join(format!("meshctl-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let error = meshctl(&running.api, &["apply", "-f", dir.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no *.yaml"), "{error}");

    let only_separator = dir.join("separator.yaml");
    std::fs::write(&only_separator, "---\n").unwrap();
    let error = meshctl(
        &running.api,
        &["apply", "-f", only_separator.to_str().unwrap()],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("no resources"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn token_rejects_claims_set_by_flags() {
    let running = start().await;
    for claim in ["exp=0", "iss=evil", "sub=x", "aud=a", "=v"] {
        let error = meshctl(&running.api, &["token", "--claim", claim])
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid --claim"), "{claim}: {error}");
    }
    let token = meshctl(
        &running.api,
        &["token", "--sub", "alice", "--claim", "groups=[\"a\"]"],
    )
    .await
    .unwrap();
    assert_eq!(token.trim().split('.').count(), 3, "{token}");
}

#[tokio::test]
async fn describe_lists_jwt_rules() {
    let running = start().await;
    let described = meshctl(&running.api, &["describe", "productpage"])
        .await
        .unwrap();
    assert!(
        described.contains("none: requests are not checked for tokens"),
        "{described}"
    );

    meshctl(
        &running.api,
        &["apply", "-f", &policy("jwt-productpage-authn.yaml")],
    )
    .await
    .unwrap();
    let described = meshctl(&running.api, &["describe", "productpage"])
        .await
        .unwrap();
    assert!(described.contains("testing@secure.istio.io"), "{described}");
    assert!(described.contains("USE_ORIGIN"), "{described}");

    meshctl(
        &running.api,
        &["apply", "-f", &policy("jwt-productpage-requestauthn.yaml")],
    )
    .await
    .unwrap();
    let described = meshctl(&running.api, &["describe", "productpage"])
        .await
        .unwrap();
    assert!(described.contains("RequestAuthentication"), "{described}");
    assert!(
        described.contains("legacy origins, if any, are ignored"),
        "{described}"
    );
}
