//! An echo server with the httpbin routes the Istio security tasks use.
//!
//! Responses are pretty-printed JSON with sorted keys, and header names appear in
//! httpbin's Title-Case form (`X-Forwarded-Client-Cert`), so the output reads like the
//! task pages. Unlike httpbin, `/headers` and the other echoes list every request header:
//! httpbin hides proxy headers such as `X-Request-Id` and `X-Forwarded-For` unless
//! `show_env` is set, but the lab needs to see what the sidecar added.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Path, Query, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, patch, post, put};
use axum::{Form, Router};
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

/// Largest request body echoed back.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Builds the httpbin router.
pub fn router() -> Router {
    Router::new()
        .route("/headers", get(headers))
        .route("/ip", get(ip))
        .route("/user-agent", get(user_agent))
        .route("/get", get(get_echo))
        .route("/post", post(body_echo))
        .route("/put", put(body_echo))
        .route("/patch", patch(body_echo))
        .route("/delete", delete(body_echo))
        .route("/anything", any(anything))
        .route("/anything/{*rest}", any(anything))
        .route("/status/{code}", any(status))
}

async fn headers(parts: Parts) -> Response {
    pretty_json(&json!({ "headers": title_case_headers(&parts.headers) }))
}

async fn ip(parts: Parts) -> Response {
    pretty_json(&json!({ "origin": origin(&parts) }))
}

async fn user_agent(parts: Parts) -> Response {
    let agent = parts
        .headers
        .get(header::USER_AGENT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    pretty_json(&json!({ "user-agent": agent }))
}

async fn get_echo(parts: Parts) -> Response {
    pretty_json(&json!({
        "args": query_args(&parts),
        "headers": title_case_headers(&parts.headers),
        "origin": origin(&parts),
        "url": request_url(&parts),
    }))
}

/// Echoes a request with its body, as httpbin's `/post`, `/put`, `/patch` and `/delete`.
async fn body_echo(request: Request) -> Response {
    match describe_with_body(request, false).await {
        Ok(description) => pretty_json(&description),
        Err(response) => response,
    }
}

/// Echoes any request, adding the method to what [`body_echo`] returns.
async fn anything(request: Request) -> Response {
    match describe_with_body(request, true).await {
        Ok(description) => pretty_json(&description),
        Err(response) => response,
    }
}

async fn status(Path(code): Path<String>) -> Response {
    // NOTE: httpbin also accepts a weighted list such as `200:0.5,503`; only a single
    // code is supported here.
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|code| (100..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok());
    match status {
        Some(status) => status.into_response(),
        None => (StatusCode::BAD_REQUEST, "Invalid status code").into_response(),
    }
}

async fn describe_with_body(request: Request, with_method: bool) -> Result<Value, Response> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            tracing::debug!(%error, "Rejected request body");
            (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response()
        })?;

    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let (data, form) = if is_form {
        (String::new(), parse_form(body.clone()).await)
    } else {
        (String::from_utf8_lossy(&body).into_owned(), Map::new())
    };
    let json_body = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);

    let mut description = json!({
        "args": query_args(&parts),
        "data": data,
        "files": {},
        "form": form,
        "headers": title_case_headers(&parts.headers),
        "json": json_body,
        "origin": origin(&parts),
        "url": request_url(&parts),
    });
    if with_method {
        description["method"] = Value::String(parts.method.to_string());
    }
    Ok(description)
}

fn pretty_json(value: &Value) -> Response {
    let mut body = serde_json::to_vec_pretty(value).expect("JSON values serialize");
    body.push(b'\n');
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Maps each header to httpbin's Title-Case name, joining repeated values with commas.
fn title_case_headers(headers: &HeaderMap) -> Map<String, Value> {
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        joined
            .entry(title_case(name.as_str()))
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    joined
        .into_iter()
        .map(|(name, value)| (name, Value::String(value)))
        .collect()
}

/// Converts `x-forwarded-client-cert` to `X-Forwarded-Client-Cert`.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Collects query arguments: a string for a single value, a list for repeated ones.
fn query_args(parts: &Parts) -> Map<String, Value> {
    let pairs = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default();
    group_pairs(pairs)
}

async fn parse_form(body: Bytes) -> Map<String, Value> {
    // `Form` reads the query string of GET requests, so the request must be a POST.
    let request = Request::builder()
        .method(http::Method::POST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("static form request is valid");
    match Form::<Vec<(String, String)>>::from_request(request, &()).await {
        Ok(Form(pairs)) => group_pairs(pairs),
        Err(error) => {
            tracing::debug!(%error, "Ignored malformed form body");
            Map::new()
        }
    }
}

fn group_pairs(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut grouped = Map::new();
    for (key, value) in pairs {
        match grouped.get_mut(&key) {
            None => {
                grouped.insert(key, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value)]);
            }
        }
    }
    grouped
}

/// Returns the client address the way httpbin does: `X-Forwarded-For` when present,
/// otherwise the peer address, or an empty string when the server did not record it.
fn origin(parts: &Parts) -> String {
    if let Some(forwarded) = parts.headers.get("x-forwarded-for") {
        return String::from_utf8_lossy(forwarded.as_bytes()).into_owned();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string())
        .unwrap_or_default()
}

fn request_url(parts: &Parts) -> String {
    let host = parts
        .headers
        .get(header::HOST)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|authority| authority.to_string()))
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/");
    format!("http://{host}{path_and_query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_case_names() {
        assert_eq!(
            title_case("x-forwarded-client-cert"),
            "X-Forwarded-Client-Cert"
        );
        assert_eq!(title_case("host"), "Host");
        assert_eq!(title_case("x-b3-traceid"), "X-B3-Traceid");
    }

    #[test]
    fn repeated_args_become_lists() {
        let grouped = group_pairs(vec![
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("a".into(), "3".into()),
            ("a".into(), "4".into()),
        ]);
        assert_eq!(grouped["a"], json!(["1", "3", "4"]));
        assert_eq!(grouped["b"], json!("2"));
    }
}
