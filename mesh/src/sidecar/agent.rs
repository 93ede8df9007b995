//! The sidecar agent's health port, as Istio's pilot-agent serves it on 15020.
//!
//! Istio rewrites Kubernetes HTTP probes to this port because the kubelet has no mesh
//! certificate: under STRICT or deny-all the app's own port would refuse the probe. The
//! agent calls the app in-process, past peer authentication and authorization, and
//! answers with the app's status code only.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::inbound::{call_app, AppBody, AppService};

pub mod exec;

pub use exec::{Exec, ExecOutcome, ExecRequest, PolicyVersion, EXEC_PATH, POLICY_VERSION_PATH};

/// Port of the agent's health endpoints.
pub const AGENT_PORT: u16 = 15020;

/// Serves `/healthz/ready` and `/app-health/<workload>/livez|readyz`, and `POST /exec`
/// when `exec` is set, until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    workload: String,
    app: AppService,
    exec: Option<Exec>,
    shutdown: CancellationToken,
) {
    let workload: Arc<str> = workload.into();
    let exec = exec.map(Arc::new);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = shutdown.cancelled() => return,
        };
        let app = app.clone();
        let workload = workload.clone();
        let exec = exec.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let app = app.clone();
                let workload = workload.clone();
                let exec = exec.clone();
                async move {
                    if request.uri().path() == EXEC_PATH
                        || request.uri().path() == exec::POLICY_VERSION_PATH
                    {
                        return Ok::<_, Infallible>(exec::handle(exec.as_deref(), request).await);
                    }
                    let path = request.uri().path().to_string();
                    Ok::<_, Infallible>(probe(workload, app, path).await)
                }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%error, "Health probe connection failed");
            }
        });
    }
}

async fn probe(workload: Arc<str>, app: AppService, path: String) -> Response<Full<Bytes>> {
    let status = if path == "/healthz/ready" {
        StatusCode::OK
    } else {
        match path
            .strip_prefix("/app-health/")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((name, "livez" | "readyz")) if name == &*workload => app_health(app).await,
            _ => StatusCode::NOT_FOUND,
        }
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

async fn app_health(app: AppService) -> StatusCode {
    let body: AppBody = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let request = Request::get("/health")
        .header(http::header::HOST, "localhost")
        .body(body)
        .expect("a static request is valid");
    call_app(app, request).await.status()
}
