//! The embedded lab: Bookinfo on an in-process mesh, driven directly.

use std::str::FromStr;

use mesh::sidecar::{ExchangeInfo, SendOptions};
use services::apps::AppKind;
use services::lab::{Lab, LabOptions, WorkloadSpec};

use crate::driver::{
    BoxFuture, Exchange, LabDriver, RequestSpec, SendFailure, Timings, WorkloadDecl,
};

/// A lab started in this process.
pub struct EmbeddedLab {
    lab: Lab,
}

impl EmbeddedLab {
    /// Starts Bookinfo at the default layout (productpage on 127.0.0.10:9080, ...).
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(LabOptions::default()).await
    }

    pub async fn start_with(options: LabOptions) -> anyhow::Result<Self> {
        let base = options.base_ip;
        let lab = Lab::start(options).await.map_err(|error| {
            anyhow::anyhow!(
                "starting the embedded lab{}: {error}; if `bookinfo up` or another lab is running, stop it first",
                base.map(|b| format!(" at {b}")).unwrap_or_default()
            )
        })?;
        Ok(Self { lab })
    }

    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    fn parse(&self, yaml: &str, origin: &str) -> anyhow::Result<Vec<mesh::config::Document>> {
        Ok(mesh::config::parse_documents(yaml, origin)?)
    }
}

impl LabDriver for EmbeddedLab {
    fn add_workloads(&self, decls: Vec<WorkloadDecl>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            for decl in decls {
                let app = AppKind::from_str(&decl.app)?;
                let spec = WorkloadSpec {
                    service: decl.name.clone(),
                    name: decl.name,
                    namespace: decl.namespace,
                    service_account: decl.service_account,
                    labels: decl.labels,
                    sidecar: decl.sidecar,
                    app,
                    ports: decl.ports,
                };
                self.lab.add(spec).await?;
            }
            Ok(())
        })
    }

    fn apply<'a>(&'a self, yaml: &'a str, origin: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let docs = self.parse(yaml, origin)?;
            self.lab.control().store().apply(docs);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, yaml: &'a str, origin: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let docs = self.parse(yaml, origin)?;
            self.lab.control().store().delete(&docs);
            Ok(())
        })
    }

    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.lab.reset_workloads().await;
            self.lab.control().store().reset();
            Ok(())
        })
    }

    fn send(&self, request: RequestSpec) -> BoxFuture<'_, Result<Exchange, SendFailure>> {
        Box::pin(async move { self.send_request(request).await })
    }

    fn send_tcp(&self, request: RequestSpec) -> BoxFuture<'_, Result<Exchange, SendFailure>> {
        Box::pin(async move { self.send_tcp_request(request).await })
    }

    fn mint_token<'a>(
        &'a self,
        claims: serde_json::Value,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let request: mesh::authn::issuer::MintRequest = serde_json::from_value(claims)
                .map_err(|error| anyhow::anyhow!("invalid jwt: {error}"))?;
            Ok(self.lab.control().mint_token(&request)?)
        })
    }
}

impl EmbeddedLab {
    async fn send_request(&self, spec: RequestSpec) -> Result<Exchange, SendFailure> {
        let client = self.lab.client(&spec.from).ok_or_else(|| {
            SendFailure::Other(format!("unknown workload {:?} in `from`", spec.from))
        })?;
        let namespace = client
            .workload()
            .map(|w| w.namespace.clone())
            .unwrap_or_else(|| "default".to_string());
        let port = match spec.port {
            Some(port) => port,
            None => self
                .lab
                .control()
                .registry()
                .resolve(&spec.to, &namespace)
                .and_then(|entry| entry.service.ports.first().map(|p| p.port))
                .ok_or_else(|| {
                    SendFailure::Other(format!("unknown service {:?} in `to`", spec.to))
                })?,
        };
        let path = if spec.path.starts_with('/') {
            spec.path.clone()
        } else {
            format!("/{}", spec.path)
        };
        let mut builder = http::Request::builder()
            .method(spec.method.as_str())
            .uri(format!("http://{}:{}{}", spec.to, port, path));
        for (name, value) in &spec.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(spec.body.clone())
            .map_err(|e| SendFailure::Other(format!("invalid request: {e}")))?;
        let options = SendOptions {
            raw: spec.raw_client,
            new_connection: spec.new_connection,
            resume: false,
        };
        let (response, info) = client.send(request, options).await?;
        let (parts, body) = response.into_parts();
        Ok(exchange_of(
            parts.status.as_u16(),
            parts.headers,
            body,
            info,
        ))
    }

    async fn send_tcp_request(&self, spec: RequestSpec) -> Result<Exchange, SendFailure> {
        let client = self.lab.client(&spec.from).ok_or_else(|| {
            SendFailure::Other(format!("unknown workload {:?} in `from`", spec.from))
        })?;
        let port = spec
            .port
            .ok_or_else(|| SendFailure::Other("a TCP request needs `port`".to_string()))?;
        let options = SendOptions {
            raw: spec.raw_client,
            new_connection: true,
            resume: false,
        };
        let (body, info) = client
            .exchange_tcp(&spec.to, port, &spec.body, options)
            .await?;
        // TCP has no status; 0 tells a scenario's `status` check that none came.
        Ok(exchange_of(0, http::HeaderMap::new(), body, info))
    }
}

/// The runner's view of a response and the sidecar's account of how it travelled.
fn exchange_of(
    status: u16,
    headers: http::HeaderMap,
    body: bytes::Bytes,
    info: ExchangeInfo,
) -> Exchange {
    Exchange {
        status,
        headers,
        body,
        mtls: info.mtls,
        peer: info
            .mtls
            .then(|| info.client_identity.as_ref().map(|id| id.principal()))
            .flatten(),
        timings: Timings::from(&info),
        authz: info.authz,
    }
}
