use http::{HeaderMap, HeaderValue};
use serde_json::json;

use super::*;
use crate::scenario::{ConnectionState, FailureKind, OneOrMany};
use crate::test_util::exchange;

fn only_check(expect: &Expect, outcome: &Result<Exchange, SendFailure>) -> Check {
    let mut checks = evaluate(expect, outcome);
    assert_eq!(checks.len(), 1, "{checks:?}");
    checks.remove(0)
}

fn httpbin_echo(headers: serde_json::Value) -> Exchange {
    exchange(200, &json!({ "headers": headers }).to_string())
}

#[test]
fn no_expectations_no_checks() {
    assert!(evaluate(&Expect::default(), &Ok(exchange(500, ""))).is_empty());
}

#[test]
fn status_pass_and_fail() {
    let expect = Expect {
        status: Some(200),
        ..Expect::default()
    };

    let passed = only_check(&expect, &Ok(exchange(200, "")));
    let failed = only_check(&expect, &Ok(exchange(403, "")));

    assert!(passed.passed);
    assert_eq!(failed.expectation, "status");
    assert_eq!(failed.expected, json!(200));
    assert_eq!(failed.actual, json!(403));
    assert!(!failed.passed);
    assert_eq!(failed.failed_repetitions, 1);
}

#[test]
fn status_fails_without_response() {
    let expect = Expect {
        status: Some(200),
        ..Expect::default()
    };

    let check = only_check(&expect, &Err(SendFailure::Reset));

    assert!(!check.passed);
    assert_eq!(check.actual, json!("connection failed: connection reset"));
}

#[test]
fn connection_failed_pass_and_fail() {
    let expect = Expect {
        connection: Some(ConnectionState::Failed),
        ..Expect::default()
    };

    let passed = only_check(&expect, &Err(SendFailure::Refused));
    let failed = only_check(&expect, &Ok(exchange(200, "")));

    assert!(passed.passed);
    assert_eq!(passed.actual, json!("failed (refused): connection refused"));
    assert!(!failed.passed);
    assert_eq!(failed.actual, json!("response 200"));
}

#[test]
fn failure_kind_must_match() {
    let expect = Expect {
        connection: Some(ConnectionState::Failed),
        failure: Some(FailureKind::Reset),
        ..Expect::default()
    };

    let reset = evaluate(&expect, &Err(SendFailure::Reset));
    let handshake = evaluate(&expect, &Err(SendFailure::TlsHandshake("bad cert".into())));

    assert!(reset.iter().all(|check| check.passed), "{reset:?}");
    assert_eq!(handshake.len(), 2);
    assert!(handshake[0].passed, "the connection did fail");
    assert_eq!(handshake[1].expectation, "failure");
    assert!(!handshake[1].passed);
}

#[test]
fn failure_alone_implies_connection_failed() {
    let expect = Expect {
        failure: Some(FailureKind::Timeout),
        ..Expect::default()
    };

    let checks = evaluate(&expect, &Ok(exchange(200, "")));

    let names: Vec<&str> = checks
        .iter()
        .map(|check| check.expectation.as_str())
        .collect();
    assert_eq!(names, ["connection", "failure"]);
    assert!(checks.iter().all(|check| !check.passed));
}

#[test]
fn body_exact() {
    let expect = Expect {
        body: Some("RBAC: access denied".into()),
        ..Expect::default()
    };

    assert!(only_check(&expect, &Ok(exchange(403, "RBAC: access denied"))).passed);
    assert!(!only_check(&expect, &Ok(exchange(403, "RBAC: access denied\n"))).passed);
}

#[test]
fn body_contains_each_item() {
    let expect = Expect {
        body_contains: Some(OneOrMany::Many(vec![
            "Book Details".into(),
            "Book Reviews".into(),
        ])),
        ..Expect::default()
    };

    let checks = evaluate(&expect, &Ok(exchange(200, "<h4>Book Details</h4>")));

    assert_eq!(checks.len(), 2);
    assert!(checks[0].passed);
    assert!(!checks[1].passed);
    assert_eq!(checks[1].expected, json!("Book Reviews"));
    assert_eq!(checks[1].actual, json!("<h4>Book Details</h4>"));
}

#[test]
fn body_not_contains_single() {
    let expect = Expect {
        body_not_contains: Some(OneOrMany::One("Error fetching".into())),
        ..Expect::default()
    };

    assert!(only_check(&expect, &Ok(exchange(200, "all good"))).passed);
    assert!(
        !only_check(
            &expect,
            &Ok(exchange(200, "Error fetching product details"))
        )
        .passed
    );
}

#[test]
fn long_body_excerpted() {
    let expect = Expect {
        body_contains: Some(OneOrMany::One("needle".into())),
        ..Expect::default()
    };
    let body = "x".repeat(2 * BODY_EXCERPT_CHARS);

    let check = only_check(&expect, &Ok(exchange(200, &body)));

    let actual = check.actual.as_str().unwrap();
    assert_eq!(actual.chars().count(), BODY_EXCERPT_CHARS + 1);
    assert!(actual.ends_with('…'));
}

#[test]
fn mtls_and_peer() {
    let expect = Expect {
        mtls: Some(true),
        peer: Some("cluster.local/ns/default/sa/sleep".into()),
        ..Expect::default()
    };
    let mut secured = exchange(200, "");
    secured.mtls = true;
    secured.peer = Some("cluster.local/ns/default/sa/sleep".into());
    let mut other_peer = secured.clone();
    other_peer.peer = Some("cluster.local/ns/default/sa/outsider".into());

    let plaintext = evaluate(&expect, &Ok(exchange(200, "")));
    let matching = evaluate(&expect, &Ok(secured));
    let mismatched = evaluate(&expect, &Ok(other_peer));

    assert!(matching.iter().all(|check| check.passed), "{matching:?}");
    assert!(!plaintext[0].passed);
    assert_eq!(plaintext[1].actual, json!(null));
    assert!(!plaintext[1].passed);
    assert!(mismatched[0].passed);
    assert!(!mismatched[1].passed);
    assert_eq!(
        mismatched[1].actual,
        json!("cluster.local/ns/default/sa/outsider")
    );
}

#[test]
fn upstream_headers_case_insensitive() {
    let expect = Expect {
        upstream_headers: Some(
            [("x-user".to_owned(), Some("alice".to_owned()))]
                .into_iter()
                .collect(),
        ),
        ..Expect::default()
    };

    let passed = only_check(&expect, &Ok(httpbin_echo(json!({ "X-User": "alice" }))));
    let list = only_check(
        &expect,
        &Ok(httpbin_echo(json!({ "X-User": ["bob", "alice"] }))),
    );
    let wrong = only_check(&expect, &Ok(httpbin_echo(json!({ "X-User": "bob" }))));
    let absent = only_check(&expect, &Ok(httpbin_echo(json!({}))));

    assert_eq!(passed.expectation, "upstream_headers.x-user");
    assert!(passed.passed);
    assert!(list.passed);
    assert!(!wrong.passed);
    assert_eq!(wrong.actual, json!("bob"));
    assert!(!absent.passed);
    assert_eq!(absent.actual, json!(null));
}

#[test]
fn upstream_header_null_means_absent() {
    let expect = Expect {
        upstream_headers: Some([("authorization".to_owned(), None)].into_iter().collect()),
        ..Expect::default()
    };

    let absent = only_check(&expect, &Ok(httpbin_echo(json!({ "Host": "httpbin" }))));
    let present = only_check(
        &expect,
        &Ok(httpbin_echo(json!({ "Authorization": "Bearer x" }))),
    );

    assert!(absent.passed);
    assert!(!present.passed);
}

#[test]
fn upstream_headers_need_json_echo() {
    let expect = Expect {
        upstream_headers: Some([("x-user".to_owned(), None)].into_iter().collect()),
        ..Expect::default()
    };

    let check = only_check(&expect, &Ok(exchange(200, "<html>")));

    assert!(
        !check.passed,
        "a non-JSON body must not count as an absent header"
    );
    assert_eq!(check.actual["error"], json!("body is not JSON"));
}

#[test]
fn response_headers_pass_and_fail() {
    let expect = Expect {
        response_headers: Some(
            [
                (
                    "www-authenticate".to_owned(),
                    Some("Bearer realm=\"x\"".to_owned()),
                ),
                ("x-envoy-upstream".to_owned(), None),
            ]
            .into_iter()
            .collect(),
        ),
        ..Expect::default()
    };
    let mut response = exchange(401, "");
    let mut headers = HeaderMap::new();
    headers.insert(
        "WWW-Authenticate",
        HeaderValue::from_static("Bearer realm=\"x\""),
    );
    response.headers = headers;

    let with_header = evaluate(&expect, &Ok(response));
    let without = evaluate(&expect, &Ok(exchange(401, "")));

    assert!(
        with_header.iter().all(|check| check.passed),
        "{with_header:?}"
    );
    assert!(!without[0].passed);
    assert!(without[1].passed);
}

#[test]
fn absorb_keeps_first_failure() {
    let expect = Expect {
        status: Some(200),
        ..Expect::default()
    };
    let mut kept = only_check(&expect, &Ok(exchange(200, "")));

    kept.absorb(only_check(&expect, &Ok(exchange(503, ""))));
    kept.absorb(only_check(&expect, &Ok(exchange(200, ""))));
    kept.absorb(only_check(&expect, &Ok(exchange(403, ""))));

    assert!(!kept.passed);
    assert_eq!(kept.actual, json!(503));
    assert_eq!(kept.failed_repetitions, 2);
}
