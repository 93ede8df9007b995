//! One outbound GET with a deadline, shared by productpage and reviews.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};

use crate::upstream::{BoxError, HttpClient};

/// Failure to get any response from an upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("invalid upstream url {url:?}")]
    InvalidUrl {
        url: String,
        #[source]
        source: http::Error,
    },
    #[error("request to {url} failed")]
    Send {
        url: String,
        #[source]
        source: BoxError,
    },
    #[error("request to {url} timed out after {timeout:?}")]
    TimedOut { url: String, timeout: Duration },
}

/// Sends `GET url` with `headers` and waits at most `timeout` for the whole response.
pub(crate) async fn get(
    client: &HttpClient,
    url: &str,
    headers: HeaderMap,
    timeout: Duration,
) -> Result<Response<Bytes>, CallError> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .body(Bytes::new())
        .map_err(|source| CallError::InvalidUrl {
            url: url.to_owned(),
            source,
        })?;
    *request.headers_mut() = headers;

    match tokio::time::timeout(timeout, client.send(request)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(source)) => Err(CallError::Send {
            url: url.to_owned(),
            source,
        }),
        Err(_elapsed) => Err(CallError::TimedOut {
            url: url.to_owned(),
            timeout,
        }),
    }
}

/// Percent-encodes one path segment so that any product id forms a valid URI.
pub(crate) fn encode_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Formats an error with its sources, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved() {
        assert_eq!(encode_path_segment("0"), "0");
        assert_eq!(encode_path_segment("a-b.c_d~"), "a-b.c_d~");
    }

    #[test]
    fn encode_escapes_reserved_and_utf8() {
        assert_eq!(encode_path_segment("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }
}
