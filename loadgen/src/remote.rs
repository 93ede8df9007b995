//! The remote lab: a docker compose lab driven over the network. Policies go through the
//! control plane's admin API, and each request is sent by the `from` workload's own
//! container through its agent's `POST /exec`, so it leaves with that workload's address
//! and identity.

use std::time::Duration;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use mesh::control::api::{ApplyRequest, ChangeResponse, WorkloadSummary};
use mesh::control::remote::ControlPlaneClient;
use mesh::sidecar::agent::{
    ExecOutcome, ExecRequest, PolicyVersion, AGENT_PORT, EXEC_PATH, POLICY_VERSION_PATH,
};

use crate::driver::{
    BoxFuture, Exchange, LabDriver, RequestSpec, SendFailure, Timings, WorkloadDecl,
};

/// Longest wait for every workload to apply a policy change; the control plane pushes
/// changes at once, so this only runs out when a workload is cut off.
const POLICY_SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Compose file that defines the remote lab's workloads, named in errors.
const COMPOSE_FILE: &str = "docker-compose.yml";

/// A lab reached over the network.
pub struct RemoteLab {
    control: ControlPlaneClient,
    agents: reqwest::Client,
    token: String,
}

impl RemoteLab {
    /// Connects to the control plane at `url` with the admin token and the mesh root,
    /// taken from `MESHLAB_TOKEN` (or `MESHLAB_TOKEN_FILE`) and `MESHLAB_CA_CERT`.
    pub fn from_env(url: &str) -> anyhow::Result<Self> {
        let token = match std::env::var("MESHLAB_TOKEN") {
            Ok(token) => token,
            Err(_) => {
                let path = std::env::var("MESHLAB_TOKEN_FILE").context(
                    "--lab needs the admin token: set MESHLAB_TOKEN or MESHLAB_TOKEN_FILE",
                )?;
                std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?
            }
        };
        let ca_path = std::env::var("MESHLAB_CA_CERT")
            .context("--lab needs the mesh root: set MESHLAB_CA_CERT")?;
        let root = std::fs::read_to_string(&ca_path)
            .with_context(|| format!("reading the mesh root {ca_path}"))?;
        Self::connect(url, token.trim(), &root)
    }

    pub fn connect(url: &str, token: &str, root_pem: &str) -> anyhow::Result<Self> {
        let control = ControlPlaneClient::new(url, token, root_pem)?;
        // The agents speak plain HTTP, but reqwest wants a TLS configuration all the same;
        // this one trusts nothing.
        let tls = rustls::ClientConfig::builder_with_provider(mesh::tls::provider())
            .with_safe_default_protocol_versions()
            .context("configuring TLS")?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let agents = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the agent client")?;
        Ok(Self {
            control,
            agents,
            token: token.to_string(),
        })
    }

    async fn workloads(&self) -> anyhow::Result<Vec<WorkloadSummary>> {
        let (status, body) = self
            .control
            .request(http::Method::GET, "/v1/workloads", Bytes::new())
            .await?;
        check(status, &body, "listing workloads")?;
        Ok(serde_json::from_slice(&body)?)
    }

    async fn change(&self, path: &str, yaml: &str, origin: &str) -> anyhow::Result<()> {
        let request = ApplyRequest {
            origin: origin.to_string(),
            yaml: yaml.to_string(),
        };
        let body = Bytes::from(serde_json::to_vec(&request)?);
        let (status, body) = self.control.request(http::Method::POST, path, body).await?;
        check(status, &body, origin)?;
        let change: ChangeResponse =
            serde_json::from_slice(&body).context("invalid response from the control plane")?;
        self.wait_for_policy(change.version).await
    }

    /// Waits until every workload enforces the control plane's policy `version`, so that
    /// the next request sees the change, as the embedded lab's next request does.
    async fn wait_for_policy(&self, version: u64) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + POLICY_SYNC_TIMEOUT;
        for workload in self.workloads().await? {
            let url = format!(
                "http://{}:{AGENT_PORT}{POLICY_VERSION_PATH}",
                workload.address
            );
            loop {
                let response = self.agents.get(&url).bearer_auth(&self.token).send().await;
                let applied = match response {
                    Ok(response) if response.status() == reqwest::StatusCode::NOT_FOUND => break,
                    Ok(response) if response.status().is_success() => response
                        .bytes()
                        .await
                        .ok()
                        .and_then(|body| serde_json::from_slice::<PolicyVersion>(&body).ok())
                        .map(|v| v.policy_version)
                        .unwrap_or(0),
                    _ => 0,
                };
                if applied >= version {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "workload {} has not applied policy version {version} after {} s",
                        workload.name,
                        POLICY_SYNC_TIMEOUT.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Finds the workload a request is sent from: by name, or by service name as the
    /// embedded lab does (`productpage` is `productpage-v1`).
    async fn agent_of(&self, from: &str) -> Result<String, SendFailure> {
        let workloads = self
            .workloads()
            .await
            .map_err(|e| SendFailure::Other(format!("{e:#}")))?;
        let (name, namespace) = from.split_once('.').unwrap_or((from, "default"));
        let found = workloads
            .iter()
            .find(|w| w.namespace == namespace && w.name == name)
            .or_else(|| {
                workloads.iter().find(|w| {
                    w.namespace == namespace
                        && w.labels.get("app").map(String::as_str) == Some(name)
                })
            })
            .ok_or_else(|| {
                SendFailure::Other(format!(
                    "workload {from:?} is not running in the remote lab; add it to {COMPOSE_FILE}"
                ))
            })?;
        Ok(format!("http://{}:{AGENT_PORT}{EXEC_PATH}", found.address))
    }

    async fn send_request(&self, spec: RequestSpec) -> Result<Exchange, SendFailure> {
        self.send_exec(spec, false).await
    }

    async fn send_exec(&self, spec: RequestSpec, tcp: bool) -> Result<Exchange, SendFailure> {
        let url = self.agent_of(&spec.from).await?;
        let request = ExecRequest {
            to: spec.to,
            port: spec.port,
            method: spec.method,
            path: spec.path,
            headers: spec.headers,
            body: STANDARD.encode(&spec.body),
            raw: spec.raw_client,
            new_connection: spec.new_connection,
            tcp,
        };
        let response = self
            .agents
            .post(&url)
            .bearer_auth(&self.token)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&request).expect("exec requests serialize"))
            .send()
            .await
            .map_err(|e| SendFailure::Other(format!("calling the agent at {url}: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| SendFailure::Other(format!("reading the agent's answer: {e}")))?;
        if !status.is_success() {
            return Err(SendFailure::Other(format!(
                "agent at {url} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let outcome: ExecOutcome = serde_json::from_slice(&body)
            .map_err(|e| SendFailure::Other(format!("invalid response from the agent: {e}")))?;
        exchange_of(outcome)
    }
}

fn exchange_of(outcome: ExecOutcome) -> Result<Exchange, SendFailure> {
    match outcome {
        ExecOutcome::Response {
            status,
            headers,
            body,
            mtls,
            peer,
            connect_us,
            tls_handshake_us,
            first_byte_us,
            total_us,
            authz_us,
        } => {
            let mut map = http::HeaderMap::new();
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    http::HeaderValue::from_str(&value),
                ) {
                    map.append(name, value);
                }
            }
            let body = STANDARD
                .decode(body.as_bytes())
                .map_err(|_| SendFailure::Other("agent sent a body that is not base64".into()))?;
            Ok(Exchange {
                status,
                headers: map,
                body: Bytes::from(body),
                mtls,
                peer,
                timings: Timings {
                    connect: connect_us.map(Duration::from_micros),
                    tls_handshake: tls_handshake_us.map(Duration::from_micros),
                    first_byte: Duration::from_micros(first_byte_us),
                    total: Duration::from_micros(total_us),
                },
                authz: authz_us.map(Duration::from_micros),
            })
        }
        ExecOutcome::Failure { kind, message } => Err(match kind.as_str() {
            "refused" => SendFailure::Refused,
            "reset" => SendFailure::Reset,
            "tls_handshake" => SendFailure::TlsHandshake(message),
            "timeout" => SendFailure::Timeout,
            _ => SendFailure::Other(message),
        }),
    }
}

fn check(status: http::StatusCode, body: &[u8], what: &str) -> anyhow::Result<()> {
    if status.is_success() {
        return Ok(());
    }
    let message = serde_json::from_slice::<mesh::control::api::ErrorBody>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
    bail!("{what}: control plane responded {status}: {message}")
}

impl LabDriver for RemoteLab {
    /// Checks that every declared workload already runs in the compose lab, since a
    /// remote lab cannot start containers.
    fn add_workloads(&self, decls: Vec<WorkloadDecl>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let running = self.workloads().await?;
            for decl in decls {
                let found = running
                    .iter()
                    .any(|w| w.name == decl.name && w.namespace == decl.namespace);
                if !found {
                    bail!(
                        "workload {}.{} is not in the remote lab: add a service for it to {COMPOSE_FILE}",
                        decl.name,
                        decl.namespace
                    );
                }
            }
            Ok(())
        })
    }

    fn apply<'a>(&'a self, yaml: &'a str, origin: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.change("/v1/apply", yaml, origin))
    }

    fn delete<'a>(&'a self, yaml: &'a str, origin: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(self.change("/v1/delete", yaml, origin))
    }

    /// Drops every policy; the compose lab's workloads stay.
    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let (status, body) = self
                .control
                .request(http::Method::POST, "/v1/reset", Bytes::from_static(b"{}"))
                .await?;
            check(status, &body, "reset")?;
            let change: ChangeResponse =
                serde_json::from_slice(&body).context("invalid response from the control plane")?;
            self.wait_for_policy(change.version).await
        })
    }

    fn send(&self, request: RequestSpec) -> BoxFuture<'_, Result<Exchange, SendFailure>> {
        Box::pin(self.send_request(request))
    }

    fn send_tcp(&self, request: RequestSpec) -> BoxFuture<'_, Result<Exchange, SendFailure>> {
        Box::pin(self.send_exec(request, true))
    }

    /// Mints through the control plane's lab issuer, as `meshctl token` does.
    fn mint_token<'a>(
        &'a self,
        claims: serde_json::Value,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let body = Bytes::from(serde_json::to_vec(&claims)?);
            let (status, body) = self
                .control
                .request(http::Method::POST, "/v1/token", body)
                .await?;
            check(status, &body, "minting a token")?;
            let minted: serde_json::Value =
                serde_json::from_slice(&body).context("invalid response from the control plane")?;
            minted["token"]
                .as_str()
                .map(str::to_string)
                .context("the control plane's response has no token")
        })
    }
}
