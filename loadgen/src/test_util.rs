//! A scripted lab for testing the runner, the checks and the load engine
//! without starting any workload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

use crate::driver::{
    BoxFuture, Exchange, LabDriver, RequestSpec, SendFailure, Timings, WorkloadDecl,
};

/// What the scripted lab does with the `n`th request (from 0).
pub type Responder = Box<dyn Fn(u64, &RequestSpec) -> Reply + Send + Sync>;

/// A scripted reply: wait `delay` on the tokio clock, then return `result`.
pub struct Reply {
    pub delay: Duration,
    pub result: Result<Exchange, SendFailure>,
}

impl Reply {
    pub fn status(status: u16, delay: Duration) -> Reply {
        Reply {
            delay,
            result: Ok(exchange(status, "")),
        }
    }

    pub fn failure(failure: SendFailure) -> Reply {
        Reply {
            delay: Duration::ZERO,
            result: Err(failure),
        }
    }
}

/// Builds a plaintext response with timings left at zero.
pub fn exchange(status: u16, body: &str) -> Exchange {
    Exchange {
        status,
        headers: http::HeaderMap::new(),
        body: Bytes::copy_from_slice(body.as_bytes()),
        mtls: false,
        peer: None,
        timings: Timings::default(),
        authz: None,
    }
}

/// A lab whose requests follow a [`Responder`] and whose other calls are
/// recorded; policy YAML containing `INVALID` is rejected.
pub struct ScriptedLab {
    responder: Responder,
    sent: AtomicU64,
    pub calls: Mutex<Vec<String>>,
    pub requests: Mutex<Vec<RequestSpec>>,
}

impl ScriptedLab {
    pub fn new(responder: impl Fn(u64, &RequestSpec) -> Reply + Send + Sync + 'static) -> Self {
        ScriptedLab {
            responder: Box::new(responder),
            sent: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Creates a lab that returns `status` for every request at once.
    pub fn answering(status: u16) -> Self {
        ScriptedLab::new(move |_, _| Reply::status(status, Duration::ZERO))
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn sent_requests(&self) -> Vec<RequestSpec> {
        self.requests.lock().unwrap().clone()
    }

    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
}

impl LabDriver for ScriptedLab {
    fn add_workloads(&self, decls: Vec<WorkloadDecl>) -> BoxFuture<'_, anyhow::Result<()>> {
        let names: Vec<String> = decls.iter().map(|decl| decl.name.clone()).collect();
        self.record(format!("add_workloads {}", names.join(",")));
        Box::pin(async { Ok(()) })
    }

    fn apply<'a>(&'a self, yaml: &'a str, origin: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.record(format!("apply {origin}"));
        Box::pin(async move {
            if yaml.contains("INVALID") {
                anyhow::bail!("{origin}: document 1: spec.action: unknown value \"INVALID\"");
            }
            Ok(())
        })
    }

    fn delete<'a>(&'a self, _yaml: &'a str, origin: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.record(format!("delete {origin}"));
        Box::pin(async { Ok(()) })
    }

    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        self.record("reset".to_owned());
        Box::pin(async { Ok(()) })
    }

    fn send(&self, request: RequestSpec) -> BoxFuture<'_, Result<Exchange, SendFailure>> {
        let index = self.sent.fetch_add(1, Ordering::Relaxed);
        let reply = (self.responder)(index, &request);
        self.requests.lock().unwrap().push(request);
        Box::pin(async move {
            tokio::time::sleep(reply.delay).await;
            reply.result.map(|mut exchange| {
                exchange.timings.first_byte = reply.delay;
                exchange.timings.total = reply.delay;
                exchange
            })
        })
    }
}
