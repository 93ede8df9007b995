//! A minimal HTTP/1.1 client for load outside the mesh.
//!
//! The request is serialized once and written as is for every request, and
//! each worker reuses one read buffer, so the load loop allocates nothing per
//! request. It reads `Content-Length`, chunked and close-delimited bodies and
//! does no pipelining, like wrk.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::driver::{BoxFuture, SendFailure, Timings};
use crate::load::{Sample, Sender};

use head::{chunked_body_end, parse_head, Framing, Head};

mod head;

/// Initial capacity of each worker's read buffer.
const READ_BUFFER: usize = 16 * 1024;

/// Invalid target URL or request.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("resolving {host:?} failed: {source}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid header {0:?}: expected `Name: value`")]
    InvalidHeader(String),
    #[error("invalid method {0:?}: expected an HTTP method such as GET or POST")]
    InvalidMethod(String),
    #[error("header {0:?} is not allowed: the load client sets the body's framing itself (Content-Length from --body)")]
    FramingHeader(String),
}

/// The address and serialized request of a plain HTTP load run.
#[derive(Debug)]
pub struct HttpTarget {
    addr: SocketAddr,
    /// The whole serialized request, head and body.
    request: Bytes,
    new_connection: bool,
    /// Responses to HEAD have a head only, whatever their framing fields announce.
    head_only: bool,
}

impl HttpTarget {
    /// Resolves `url` (an `http://` URL) and serializes the request once.
    pub async fn new(
        url: &str,
        method: &str,
        headers: &[String],
        body: &[u8],
        new_connection: bool,
    ) -> Result<HttpTarget, TargetError> {
        let invalid = |reason: &str| TargetError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid(
                "only http:// is supported outside the mesh; use --as WORKLOAD for mTLS",
            ));
        }
        let host = uri.host().ok_or_else(|| invalid("missing host"))?;
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "user information in the URL is not supported; send credentials with -H 'Authorization: ...'",
            ));
        }
        // `http::Uri` accepts any digits after the colon, and an empty port.
        let port = match authority.as_str().rsplit_once(':') {
            Some((_, port)) if !authority.as_str().ends_with(']') => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?,
            _ => 80,
        };
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| TargetError::InvalidMethod(method.to_owned()))?;
        let host_for_lookup = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((host_for_lookup, port))
            .await
            .map_err(|source| TargetError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .next()
            .ok_or_else(|| TargetError::Resolve {
                host: host.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            })?;

        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let request = serialize_request(
            method.as_str(),
            authority.as_str(),
            path,
            headers,
            body,
            new_connection,
        )?;
        Ok(HttpTarget {
            addr,
            request,
            new_connection,
            head_only: method == http::Method::HEAD,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn serialize_request(
    method: &str,
    authority: &str,
    path: &str,
    headers: &[String],
    body: &[u8],
    close: bool,
) -> Result<Bytes, TargetError> {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    let mut has_host = false;
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| TargetError::InvalidHeader(header.clone()))?;
        let name = name.trim();
        let valid_name = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
        if !valid_name || header.contains(['\r', '\n']) {
            return Err(TargetError::InvalidHeader(header.clone()));
        }
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            return Err(TargetError::FramingHeader(header.clone()));
        }
        has_host |= name.eq_ignore_ascii_case("host");
        head.push_str(&format!("{name}: {}\r\n", value.trim()));
    }
    if !has_host {
        head.push_str(&format!("Host: {authority}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    Ok(Bytes::from(request))
}

/// One worker's connection to an [`HttpTarget`].
pub struct HttpSender {
    target: Arc<HttpTarget>,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl HttpSender {
    pub fn new(target: Arc<HttpTarget>) -> HttpSender {
        HttpSender {
            target,
            stream: None,
            buffer: Vec::with_capacity(READ_BUFFER),
        }
    }

    async fn exchange(&mut self) -> Result<Sample, SendFailure> {
        let started = Instant::now();
        // Taking the stream out means a request abandoned at a timeout never
        // leaves a half-read connection behind for the next one.
        let kept = if self.target.new_connection {
            None
        } else {
            self.stream.take()
        };
        if let Some(stream) = kept {
            match self.exchange_on(stream, started, None).await {
                Ok(sample) => return Ok(sample),
                // A kept connection the server closed while idle fails on
                // the first read; retry once on a new one, as browsers do.
                Err(Attempt::Stale) => {}
                Err(Attempt::Failed(failure)) => return Err(failure),
            }
        }
        let connect_started = Instant::now();
        let stream = TcpStream::connect(self.target.addr)
            .await
            .map_err(failure_of)?;
        let connect = connect_started.elapsed();
        stream.set_nodelay(true).map_err(failure_of)?;
        match self.exchange_on(stream, started, Some(connect)).await {
            Ok(sample) => Ok(sample),
            Err(Attempt::Stale) => Err(SendFailure::Reset),
            Err(Attempt::Failed(failure)) => Err(failure),
        }
    }

    async fn exchange_on(
        &mut self,
        mut stream: TcpStream,
        started: Instant,
        connect: Option<Duration>,
    ) -> Result<Sample, Attempt> {
        let reused = connect.is_none();
        if let Err(error) = stream.write_all(&self.target.request).await {
            return Err(if reused {
                Attempt::Stale
            } else {
                Attempt::Failed(failure_of(error))
            });
        }

        self.buffer.clear();
        let mut first_byte = None;
        let mut head: Option<Head> = None;
        loop {
            let read = stream.read_buf(&mut self.buffer).await.map_err(|error| {
                match reused && self.buffer.is_empty() {
                    true => Attempt::Stale,
                    false => Attempt::Failed(failure_of(error)),
                }
            })?;
            if first_byte.is_none() {
                first_byte = Some(started.elapsed());
            }
            let at_eof = read == 0;
            if at_eof && self.buffer.is_empty() {
                return Err(if reused {
                    Attempt::Stale
                } else {
                    Attempt::Failed(SendFailure::Reset)
                });
            }
            if head.is_none() {
                head = self.parse_final_head().map_err(Attempt::Failed)?;
            }
            let Some(parsed) = &head else {
                if at_eof {
                    return Err(Attempt::Failed(SendFailure::Reset));
                }
                continue;
            };
            let body = &self.buffer[parsed.length..];
            let complete = match parsed.framing {
                Framing::Length(length) => body.len() >= length,
                Framing::Chunked => chunked_body_end(body).map_err(Attempt::Failed)?.is_some(),
                Framing::UntilClose => at_eof,
            };
            if complete {
                break;
            }
            if at_eof {
                return Err(Attempt::Failed(SendFailure::Reset));
            }
        }

        let parsed = head.expect("the loop ends only with a parsed head");
        let keep = parsed.keep_alive && !self.target.new_connection;
        if keep {
            self.stream = Some(stream);
        }
        Ok(Sample {
            status: parsed.status,
            timings: Timings {
                connect,
                tls_handshake: None,
                first_byte: first_byte.unwrap_or_default(),
                total: started.elapsed(),
            },
            authn: parsed.authn,
            authz: parsed.authz,
        })
    }
}

impl HttpSender {
    /// Parses the final response head in the buffer, dropping any interim
    /// 1xx responses before it (100 Continue, 103 Early Hints: RFC 9110,
    /// section 15.2). 101 ends HTTP on the connection, so it counts as final.
    fn parse_final_head(&mut self) -> Result<Option<Head>, SendFailure> {
        loop {
            let Some(mut head) = parse_head(&self.buffer)? else {
                return Ok(None);
            };
            if (100..200).contains(&head.status) && head.status != 101 {
                self.buffer.drain(..head.length);
                continue;
            }
            if self.target.head_only {
                head.framing = Framing::Length(0);
            }
            return Ok(Some(head));
        }
    }
}

impl Sender for HttpSender {
    fn send(&mut self) -> BoxFuture<'_, Result<Sample, SendFailure>> {
        Box::pin(self.exchange())
    }
}

enum Attempt {
    /// A kept connection turned out closed before any response byte.
    Stale,
    Failed(SendFailure),
}

fn failure_of(error: io::Error) -> SendFailure {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => SendFailure::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => SendFailure::Reset,
        io::ErrorKind::TimedOut => SendFailure::Timeout,
        _ => SendFailure::Other(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_serialized_with_host() {
        let headers = vec!["X-Test: 1".to_owned()];

        let request =
            serialize_request("POST", "127.0.0.1:8080", "/a?b=1", &headers, b"xy", true).unwrap();

        assert_eq!(
            &request[..],
            b"POST /a?b=1 HTTP/1.1\r\nX-Test: 1\r\nHost: 127.0.0.1:8080\r\n\
              Content-Length: 2\r\nConnection: close\r\n\r\nxy"
        );
        let bad = vec!["no colon".to_owned()];
        assert!(serialize_request("GET", "h", "/", &bad, b"", false).is_err());
    }
}
