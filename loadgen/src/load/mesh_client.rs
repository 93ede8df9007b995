//! Load from inside the mesh: requests go through a workload's own sidecar,
//! with its SPIFFE identity, as that workload's app would send them.

use std::sync::Arc;

use bytes::Bytes;
use mesh::sidecar::{OutboundClient, SendOptions};

use crate::driver::{BoxFuture, SendFailure, Timings};
use crate::load::http_client::TargetError;
use crate::load::{Sample, Sender};
use crate::measure::server_timing;

/// The request every worker of a mesh load run sends.
#[derive(Debug)]
pub struct MeshTarget {
    client: OutboundClient,
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
    body: Bytes,
    options: SendOptions,
}

impl MeshTarget {
    /// Prepares `method url` with `headers` (`Name: value`) for `client`.
    pub fn new(
        client: OutboundClient,
        url: &str,
        method: &str,
        headers: &[String],
        body: Bytes,
        options: SendOptions,
    ) -> Result<MeshTarget, TargetError> {
        let invalid = |reason: &str| TargetError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(invalid(
                "expected http://<service>[:port]/path, as the app would call it",
            ));
        }
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| invalid(&format!("invalid method {method:?}")))?;
        let mut header_map = http::HeaderMap::new();
        for header in headers {
            let invalid_header = || TargetError::InvalidHeader(header.clone());
            let (name, value) = header.split_once(':').ok_or_else(invalid_header)?;
            let name = http::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| invalid_header())?;
            let value = http::HeaderValue::from_str(value.trim()).map_err(|_| invalid_header())?;
            header_map.append(name, value);
        }
        Ok(MeshTarget {
            client,
            method,
            uri,
            headers: header_map,
            body,
            options,
        })
    }

    fn request(&self) -> http::Request<Bytes> {
        let mut request = http::Request::new(self.body.clone());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// One worker's sender. The workload's sidecar pools connections itself, so
/// concurrent workers end up on separate connections.
pub struct MeshSender {
    target: Arc<MeshTarget>,
}

impl MeshSender {
    pub fn new(target: Arc<MeshTarget>) -> MeshSender {
        MeshSender { target }
    }
}

impl Sender for MeshSender {
    fn send(&mut self) -> BoxFuture<'_, Result<Sample, SendFailure>> {
        Box::pin(async move {
            let target = &self.target;
            let (response, info) = target.client.send(target.request(), target.options).await?;
            Ok(Sample {
                status: response.status().as_u16(),
                timings: Timings::from(&info),
                authn: server_timing(response.headers(), "authn"),
                authz: info.authz,
            })
        })
    }
}
