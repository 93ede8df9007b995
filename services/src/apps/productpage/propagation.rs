//! The header set productpage sends with each call to details, reviews and ratings.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::apps::copy_headers;

/// Headers copied verbatim from the incoming request. `end-user` is deliberately absent:
/// productpage sets it from the session only, so a client cannot choose it.
pub const COPIED_HEADERS: [&str; 14] = [
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
];

const END_USER: HeaderName = HeaderName::from_static("end-user");
const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Builds the outbound headers: the B3 context, `end-user` from the session, then the
/// copied headers.
pub(super) fn forward_headers(incoming: &HeaderMap, user: Option<&str>) -> HeaderMap {
    let mut outgoing = HeaderMap::new();

    if let Some(context) = B3Context::extract(incoming) {
        context.inject(&mut outgoing);
    }

    if let Some(user) = user.filter(|user| !user.is_empty()) {
        match HeaderValue::from_str(user) {
            Ok(value) => {
                outgoing.insert(END_USER, value);
            }
            Err(_) => tracing::debug!("Session user is not a valid header value"),
        }
    }

    copy_headers(incoming, &COPIED_HEADERS, &mut outgoing);
    outgoing
}

/// A trace context read from B3 multi-headers, as OpenTelemetry's B3 propagator reads it.
#[derive(Debug, PartialEq, Eq)]
struct B3Context {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

impl B3Context {
    /// Extracts the context; `None` unless both ids are well-formed and non-zero, in which
    /// case productpage adds no B3 headers at all.
    fn extract(headers: &HeaderMap) -> Option<Self> {
        let text = |name: &HeaderName| headers.get(name).and_then(|value| value.to_str().ok());

        let trace_id = text(&B3_TRACE_ID)?;
        let span_id = text(&B3_SPAN_ID)?;
        if !is_hex(trace_id, &[16, 32]) || !is_hex(span_id, &[16]) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace_id, 16).ok()?;
        let span_id = u64::from_str_radix(span_id, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }

        // A debug flag implies sampling, which the propagator then sends as `sampled: 1`.
        let sampled = matches!(text(&B3_SAMPLED), Some("1" | "true" | "True" | "d"))
            || text(&B3_FLAGS) == Some("1");
        Some(B3Context {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// Writes the context back. The propagator always writes a 128-bit trace id, so a
    /// 64-bit incoming id goes out zero-padded to 32 hex digits, and it never writes
    /// `x-b3-parentspanid` or `x-b3-flags`.
    fn inject(&self, headers: &mut HeaderMap) {
        let trace_id = format!("{:032x}", self.trace_id);
        let span_id = format!("{:016x}", self.span_id);
        headers.insert(
            B3_TRACE_ID,
            HeaderValue::from_str(&trace_id).expect("hex is a valid header value"),
        );
        headers.insert(
            B3_SPAN_ID,
            HeaderValue::from_str(&span_id).expect("hex is a valid header value"),
        );
        let sampled = if self.sampled { "1" } else { "0" };
        headers.insert(B3_SAMPLED, HeaderValue::from_static(sampled));
    }
}

fn is_hex(text: &str, lengths: &[usize]) -> bool {
    lengths.contains(&text.len()) && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn b3_reinjected_without_parent() {
        let incoming = headers(&[
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-parentspanid", "0020000000000001"),
            ("x-b3-sampled", "1"),
        ]);
        let outgoing = forward_headers(&incoming, None);
        assert_eq!(outgoing["x-b3-traceid"], "463ac35c9f6413ad48485a3953bb6124");
        assert_eq!(outgoing["x-b3-spanid"], "a2fb4a1d1a96d312");
        assert_eq!(outgoing["x-b3-sampled"], "1");
        assert!(outgoing.get("x-b3-parentspanid").is_none());
        assert!(outgoing.get("x-b3-flags").is_none());
    }

    #[test]
    fn b3_short_trace_id_padded() {
        let incoming = headers(&[
            ("x-b3-traceid", "48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-flags", "1"),
        ]);
        let outgoing = forward_headers(&incoming, None);
        assert_eq!(outgoing["x-b3-traceid"], "000000000000000048485a3953bb6124");
        assert_eq!(outgoing["x-b3-sampled"], "1");
    }

    #[test]
    fn b3_unsampled_without_flag() {
        let incoming = headers(&[
            ("x-b3-traceid", "48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ]);
        let outgoing = forward_headers(&incoming, None);
        assert_eq!(outgoing["x-b3-sampled"], "0");
    }

    #[test]
    fn b3_invalid_adds_nothing() {
        for pairs in [
            &[("x-b3-traceid", "xyz"), ("x-b3-spanid", "a2fb4a1d1a96d312")][..],
            &[("x-b3-traceid", "48485a3953bb6124")][..],
            &[
                ("x-b3-traceid", "0000000000000000"),
                ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ][..],
            &[("x-b3-sampled", "1")][..],
        ] {
            let outgoing = forward_headers(&headers(pairs), None);
            assert!(outgoing.is_empty(), "{pairs:?} gave {outgoing:?}");
        }
    }

    #[test]
    fn end_user_only_from_session() {
        let incoming = headers(&[("end-user", "mallory"), ("x-request-id", "r1")]);
        let anonymous = forward_headers(&incoming, None);
        assert!(anonymous.get("end-user").is_none());
        assert_eq!(anonymous["x-request-id"], "r1");

        let signed_in = forward_headers(&incoming, Some("jason"));
        let end_users: Vec<_> = signed_in.get_all("end-user").iter().collect();
        assert_eq!(end_users, ["jason"]);
    }

    #[test]
    fn unlisted_headers_dropped() {
        let incoming = headers(&[
            ("x-forwarded-client-cert", "By=spiffe://x"),
            ("accept", "text/html"),
            ("authorization", "Bearer t"),
        ]);
        let outgoing = forward_headers(&incoming, None);
        assert_eq!(outgoing.len(), 1);
        assert_eq!(outgoing["authorization"], "Bearer t");
    }
}
