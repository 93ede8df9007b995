//! Checking a request's outcome against a step's `expect:` mapping.

use serde::Serialize;
use serde_json::{json, Value};

use crate::driver::{Exchange, SendFailure};
use crate::scenario::Expect;

/// Maximum body characters copied into a check's `actual` value.
const BODY_EXCERPT_CHARS: usize = 500;

/// One expectation of a step, compared with what happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// The expectation key, such as `status`, `body_contains` or
    /// `upstream_headers.x-user`.
    pub expectation: String,
    pub expected: Value,
    /// Observed value, from the first repetition that failed, else from the first one.
    pub actual: Value,
    pub passed: bool,
    /// Repetitions on which this check failed.
    pub failed_repetitions: u32,
}

impl Check {
    fn new(expectation: impl Into<String>, expected: Value, actual: Value, passed: bool) -> Check {
        Check {
            expectation: expectation.into(),
            expected,
            actual,
            passed,
            failed_repetitions: u32::from(!passed),
        }
    }

    /// Folds the same check from a later repetition into this one.
    pub fn absorb(&mut self, later: Check) {
        if later.passed {
            return;
        }
        if self.passed {
            self.actual = later.actual;
            self.passed = false;
        }
        self.failed_repetitions += 1;
    }
}

/// Compares one request's outcome with every expectation that is set.
pub fn evaluate(expect: &Expect, outcome: &Result<Exchange, SendFailure>) -> Vec<Check> {
    let mut checks = Vec::new();

    if expect.connection.is_some() || expect.failure.is_some() {
        checks.push(Check::new(
            "connection",
            json!("failed"),
            connection_state(outcome),
            outcome.is_err(),
        ));
    }
    if let Some(kind) = expect.failure {
        let passed = matches!(outcome, Err(failure) if failure.kind() == kind.as_str());
        checks.push(Check::new(
            "failure",
            json!(kind.as_str()),
            connection_state(outcome),
            passed,
        ));
    }

    match outcome {
        Ok(exchange) => check_response(expect, Some(exchange), &Value::Null, &mut checks),
        Err(failure) => {
            let missing = json!(format!("connection failed: {failure}"));
            check_response(expect, None, &missing, &mut checks);
        }
    }
    checks
}

/// Adds the checks that need a response; without one, each fails with
/// `missing` as its actual value.
fn check_response(
    expect: &Expect,
    exchange: Option<&Exchange>,
    missing: &Value,
    checks: &mut Vec<Check>,
) {
    let mut add = |name: String, expected: Value, actual: Option<(Value, bool)>| {
        let check = match actual {
            Some((actual, passed)) => Check::new(name, expected, actual, passed),
            None => Check::new(name, expected, missing.clone(), false),
        };
        checks.push(check);
    };
    let body = exchange.map(|exchange| String::from_utf8_lossy(&exchange.body));

    if let Some(status) = expect.status {
        let actual = exchange.map(|exchange| (json!(exchange.status), exchange.status == status));
        add("status".into(), json!(status), actual);
    }
    if let Some(expected) = &expect.body {
        let actual = body
            .as_ref()
            .map(|body| (json!(excerpt(body)), body == expected));
        add("body".into(), json!(expected), actual);
    }
    for needle in expect.body_contains.iter().flat_map(|list| list.items()) {
        let actual = body
            .as_ref()
            .map(|body| (json!(excerpt(body)), body.contains(needle)));
        add("body_contains".into(), json!(needle), actual);
    }
    for needle in expect
        .body_not_contains
        .iter()
        .flat_map(|list| list.items())
    {
        let actual = body
            .as_ref()
            .map(|body| (json!(excerpt(body)), !body.contains(needle)));
        add("body_not_contains".into(), json!(needle), actual);
    }
    if let Some(mtls) = expect.mtls {
        let actual = exchange.map(|exchange| (json!(exchange.mtls), exchange.mtls == mtls));
        add("mtls".into(), json!(mtls), actual);
    }
    if let Some(peer) = &expect.peer {
        let actual = exchange.map(|exchange| {
            (
                json!(exchange.peer),
                exchange.peer.as_deref() == Some(peer.as_str()),
            )
        });
        add("peer".into(), json!(peer), actual);
    }
    for (name, expected) in expect.upstream_headers.iter().flatten() {
        let actual = body.as_ref().map(|body| {
            let actual = upstream_header(body, name);
            let passed = header_matches(expected.as_deref(), &actual);
            (actual, passed)
        });
        add(format!("upstream_headers.{name}"), json!(expected), actual);
    }
    for (name, expected) in expect.response_headers.iter().flatten() {
        let actual = exchange.map(|exchange| {
            let actual = response_header(&exchange.headers, name);
            let passed = header_matches(expected.as_deref(), &actual);
            (actual, passed)
        });
        add(format!("response_headers.{name}"), json!(expected), actual);
    }
}

fn connection_state(outcome: &Result<Exchange, SendFailure>) -> Value {
    match outcome {
        Ok(exchange) => json!(format!("response {}", exchange.status)),
        Err(failure) => json!(format!("failed ({}): {failure}", failure.kind())),
    }
}

/// Compares a header value: it matches the actual value or one element of an
/// actual list, and an expected `None` matches only an absent header.
fn header_matches(expected: Option<&str>, actual: &Value) -> bool {
    match (expected, actual) {
        (None, Value::Null) => true,
        (Some(expected), Value::String(actual)) => actual == expected,
        (Some(expected), Value::Array(values)) => values.iter().any(|value| value == expected),
        _ => false,
    }
}

/// Reads a header from an httpbin-style JSON echo; names compare
/// case-insensitively. Returns null when the header is absent.
fn upstream_header(body: &str, name: &str) -> Value {
    let echo: Value = match serde_json::from_str(body) {
        Ok(echo) => echo,
        Err(_) => return json!({ "error": "body is not JSON", "body": excerpt(body) }),
    };
    let Some(headers) = echo.get("headers").and_then(Value::as_object) else {
        return json!({ "error": "body has no \"headers\" object", "body": excerpt(body) });
    };
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.clone())
        .unwrap_or(Value::Null)
}

/// Returns one header's value, every value as a list when it repeats, or null.
fn response_header(headers: &http::HeaderMap, name: &str) -> Value {
    let values: Vec<Value> = headers
        .get_all(name)
        .iter()
        .map(|value| json!(String::from_utf8_lossy(value.as_bytes())))
        .collect();
    match values.len() {
        0 => Value::Null,
        1 => values.into_iter().next().unwrap_or(Value::Null),
        _ => Value::Array(values),
    }
}

fn excerpt(body: &str) -> String {
    if body.chars().count() <= BODY_EXCERPT_CHARS {
        return body.to_owned();
    }
    let mut cut: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests;
