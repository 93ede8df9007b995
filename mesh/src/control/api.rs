//! The control plane's HTTP API, which `meshctl` uses.
//!
//! JSON over HTTP/1.1 on loopback:
//! - `POST /v1/apply` and `POST /v1/delete` take `{"origin": "<file name>", "yaml": "<documents>"}`;
//!   a file with one invalid document is rejected whole with 400 and changes nothing.
//! - `POST /v1/reset` drops every resource.
//! - `GET /v1/resources` lists stored resources; `GET /v1/workloads` lists workloads.
//! - `GET /v1/describe/<namespace>/<workload>` explains the policies in force for one workload.
//! - `GET /v1/jwks` and `GET /.well-known/jwks.json` serve the lab token issuer's JWKS;
//!   `POST /v1/token` takes a [`MintRequest`] and returns `{"token": "<JWT>"}`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::ControlPlane;
use crate::authn::issuer::MintRequest;
use crate::config::{parse_documents, Snapshot};
use crate::describe;

/// Largest request body the API reads.
const MAX_BODY: usize = 4 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct ApplyRequest {
    /// File name, shown in error messages.
    pub origin: String,
    pub yaml: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeResponse {
    pub version: u64,
    /// `Kind namespace/name` of each document in the request.
    pub resources: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResourceSummary {
    pub kind: String,
    pub api_version: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ResourceList {
    pub version: u64,
    pub resources: Vec<ResourceSummary>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WorkloadSummary {
    pub name: String,
    pub namespace: String,
    pub address: String,
    pub identity: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(control: ControlPlane, listener: TcpListener, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "Control plane API listening");
    }
    let control = Arc::new(control);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "Control plane accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let control = control.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let control = control.clone();
                async move { Ok::<_, Infallible>(handle(&control, request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%error, %peer, "Control plane connection failed");
            }
        });
    }
}

pub(crate) async fn handle(
    control: &ControlPlane,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match (method, path.as_str()) {
        (Method::POST, "/v1/apply") => change(control, request, Change::Apply).await,
        (Method::POST, "/v1/delete") => change(control, request, Change::Delete).await,
        (Method::POST, "/v1/reset") => {
            control.store().reset();
            info!("Every resource deleted");
            json(
                StatusCode::OK,
                &ChangeResponse {
                    version: control.store().snapshot().version,
                    resources: Vec::new(),
                },
            )
        }
        (Method::GET, "/v1/jwks" | "/.well-known/jwks.json") => {
            let mut response = text_response(StatusCode::OK, control.issuer().jwks().to_string());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response
        }
        (Method::POST, "/v1/token") => mint_token(control, request).await,
        (Method::GET, "/v1/resources") => json(StatusCode::OK, &list(&control.store().snapshot())),
        (Method::GET, "/v1/workloads") => json(StatusCode::OK, &workloads(control)),
        (Method::GET, p) if p.starts_with("/v1/describe/") => {
            let rest = &p["/v1/describe/".len()..];
            let Some((namespace, name)) = rest.split_once('/') else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "expected /v1/describe/<namespace>/<workload>",
                );
            };
            match describe::describe(control, namespace, name) {
                Some(text) => text_response(StatusCode::OK, text),
                None => error(
                    StatusCode::NOT_FOUND,
                    &format!("workload {name} not found in namespace {namespace}"),
                ),
            }
        }
        _ => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
    }
}

/// Reply of `POST /v1/token`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
}

/// Mints a lab token from a [`MintRequest`] body.
async fn mint_token(control: &ControlPlane, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mint: MintRequest = match serde_json::from_slice(&body) {
        Ok(mint) => mint,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid token request: {e}"),
            )
        }
    };
    match control.mint_token(&mint) {
        Ok(token) => {
            info!(sub = ?mint.sub, iss = ?mint.iss, "Token minted");
            json(StatusCode::OK, &TokenResponse { token })
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

enum Change {
    Apply,
    Delete,
}

async fn change(
    control: &ControlPlane,
    request: Request<Incoming>,
    change: Change,
) -> Response<Full<Bytes>> {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request: ApplyRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("invalid request body: {e}"),
            )
        }
    };
    // Parsing is CPU work; keep it off the threads that serve the sidecars.
    let origin = request.origin;
    let yaml = request.yaml;
    let parse_origin = origin.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        parse_documents(&yaml, &parse_origin).map_err(Box::new)
    })
    .await;
    let docs = match parsed.unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic())) {
        Ok(docs) if docs.is_empty() => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("{origin}: no resources in the file"),
            )
        }
        Ok(docs) => docs,
        Err(e) => {
            warn!(%origin, error = %e, "Rejected policy file");
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
    };
    let resources: Vec<String> = docs
        .iter()
        .map(|d| {
            if d.meta.namespace.is_empty() {
                format!("{} {}", d.kind().as_str(), d.meta.name)
            } else {
                format!("{} {}/{}", d.kind().as_str(), d.meta.namespace, d.meta.name)
            }
        })
        .collect();
    let version = match change {
        Change::Apply => control.store().apply(docs),
        Change::Delete => control.store().delete(&docs),
    };
    info!(%origin, version, resources = ?resources, "Policy store changed");
    json(StatusCode::OK, &ChangeResponse { version, resources })
}

fn list(snapshot: &Snapshot) -> ResourceList {
    ResourceList {
        version: snapshot.version,
        resources: snapshot
            .resources
            .iter()
            .map(|r| ResourceSummary {
                kind: r.spec.kind().as_str().to_string(),
                api_version: r.api_version.clone(),
                namespace: r.meta.namespace.clone(),
                name: r.meta.name.clone(),
            })
            .collect(),
    }
}

fn workloads(control: &ControlPlane) -> Vec<WorkloadSummary> {
    control
        .registry()
        .workloads()
        .into_iter()
        .map(|(w, ip)| WorkloadSummary {
            name: w.name.clone(),
            namespace: w.namespace.clone(),
            address: ip.to_string(),
            identity: w.sidecar.then(|| w.spiffe_id().to_string()),
            labels: w.labels.clone(),
        })
        .collect()
}

/// Reads a request body of at most [`MAX_BODY`] bytes, or returns the error response.
pub(crate) async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "could not read the request body ({e}): at most {MAX_BODY} bytes are accepted"
            ),
        )),
    }
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).expect("API types serialize to JSON");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn text_response(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &ErrorBody {
            error: message.to_string(),
        },
    )
}
