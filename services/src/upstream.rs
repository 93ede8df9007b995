//! The outbound HTTP client a service handler is given.
//!
//! Services speak plain HTTP to names such as `http://details:9080/details/0`, as they
//! would in Kubernetes. Whatever implements [`HttpSend`] (the mesh sidecar's outbound
//! client in the lab) resolves the name and decides how the bytes travel.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, BoxError>> + Send + 'a>>;

/// Sends one HTTP request and returns the whole response.
///
/// An `Err` means no response came back at all (connection refused, reset, timed out);
/// a sidecar that answers on behalf of an unreachable upstream (Envoy's 503) returns `Ok`.
pub trait HttpSend: Send + Sync + 'static {
    fn send(&self, request: http::Request<Bytes>) -> SendFuture<'_>;
}

/// Shared handle to an outbound client.
pub type HttpClient = Arc<dyn HttpSend>;
