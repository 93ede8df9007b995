use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use serde_json::json;

use super::*;
use crate::config::authorization_policy::{validate, FieldError};
use crate::config::{ObjectMeta, Spec};

// === fixtures ===

/// One policy document: namespace, name, annotations and the YAML of its `spec`.
struct Doc {
    namespace: &'static str,
    name: &'static str,
    annotations: &'static [(&'static str, &'static str)],
    spec: &'static str,
}

fn doc(namespace: &'static str, name: &'static str, spec: &'static str) -> Doc {
    Doc {
        namespace,
        name,
        annotations: &[],
        spec,
    }
}

fn snapshot(docs: &[Doc]) -> Snapshot {
    let resources = docs
        .iter()
        .enumerate()
        .map(|(index, doc)| {
            let spec: AuthorizationPolicySpec = serde_yaml::from_str(doc.spec)
                .unwrap_or_else(|e| panic!("spec of {} must parse: {e}", doc.name));
            Arc::new(Resource {
                api_version: "security.istio.io/v1".into(),
                meta: ObjectMeta {
                    name: doc.name.into(),
                    namespace: doc.namespace.into(),
                    annotations: doc
                        .annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..ObjectMeta::default()
                },
                created: index as u64,
                spec: Spec::AuthorizationPolicy(spec),
            })
        })
        .collect();
    Snapshot {
        version: 1,
        resources,
    }
}

fn workload(namespace: &str, app: &str) -> WorkloadMeta {
    WorkloadMeta {
        name: format!("{app}-v1"),
        namespace: namespace.into(),
        service_account: format!("bookinfo-{app}"),
        labels: BTreeMap::from([
            ("app".to_string(), app.to_string()),
            ("version".to_string(), "v1".to_string()),
        ]),
        services: Vec::new(),
        sidecar: true,
    }
}

fn reviews() -> WorkloadMeta {
    workload("default", "reviews")
}

/// An owned request from which `RequestAttributes` borrow.
#[derive(Clone)]
struct TestRequest {
    source_ip: IpAddr,
    remote_ip: IpAddr,
    peer: Option<SpiffeId>,
    destination_ip: IpAddr,
    port: u16,
    sni: Option<String>,
    http: Option<TestHttp>,
}

#[derive(Clone)]
struct TestHttp {
    method: String,
    host: String,
    path: String,
    headers: HeaderMap,
    auth: Option<RequestAuth>,
}

/// Builds a plaintext `GET /` from 10.0.0.1 to reviews on 10.0.0.9:9080.
fn plain() -> TestRequest {
    TestRequest {
        source_ip: "10.0.0.1".parse().unwrap(),
        remote_ip: "10.0.0.1".parse().unwrap(),
        peer: None,
        destination_ip: "10.0.0.9".parse().unwrap(),
        port: 9080,
        sni: None,
        http: Some(TestHttp {
            method: "GET".into(),
            host: "reviews:9080".into(),
            path: "/".into(),
            headers: HeaderMap::new(),
            auth: None,
        }),
    }
}

/// Builds the same request over mutual TLS from `namespace`/`service_account`.
fn from(namespace: &str, service_account: &str) -> TestRequest {
    let mut request = plain();
    request.peer = Some(SpiffeId::new("cluster.local", namespace, service_account));
    request.sni = Some("outbound_.9080_._.reviews.default.svc.cluster.local".into());
    request
}

fn productpage() -> TestRequest {
    from("default", "bookinfo-productpage")
}

impl TestRequest {
    fn http_mut(&mut self) -> &mut TestHttp {
        self.http.as_mut().expect("request must be HTTP")
    }

    fn method(mut self, method: &str) -> Self {
        self.http_mut().method = method.into();
        self
    }

    fn path(mut self, path: &str) -> Self {
        self.http_mut().path = path.into();
        self
    }

    fn host(mut self, host: &str) -> Self {
        self.http_mut().host = host.into();
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        let value = HeaderValue::from_str(value).unwrap();
        self.http_mut().headers.append(name, value);
        self
    }

    fn jwt(mut self, claims: serde_json::Value) -> Self {
        let principal = match (claims["iss"].as_str(), claims["sub"].as_str()) {
            (Some(iss), Some(sub)) => Some(format!("{iss}/{sub}")),
            _ => None,
        };
        let audiences = match &claims["aud"] {
            serde_json::Value::String(aud) => vec![aud.clone()],
            serde_json::Value::Array(auds) => auds
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        let presenter = claims["azp"].as_str().map(String::from);
        self.http_mut().auth = Some(RequestAuth {
            principal,
            audiences,
            presenter,
            claims,
        });
        self
    }

    fn tcp(mut self) -> Self {
        self.http = None;
        self
    }

    fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    fn source_ip(mut self, ip: &str) -> Self {
        self.source_ip = ip.parse().unwrap();
        self
    }

    fn remote_ip(mut self, ip: &str) -> Self {
        self.remote_ip = ip.parse().unwrap();
        self
    }

    fn attributes(&self) -> RequestAttributes<'_> {
        RequestAttributes {
            source_ip: self.source_ip,
            remote_ip: self.remote_ip,
            source_principal: self.peer.as_ref(),
            destination_ip: self.destination_ip,
            destination_port: self.port,
            sni: self.sni.as_deref(),
            http: self.http.as_ref().map(|http| HttpAttributes {
                method: &http.method,
                host: &http.host,
                path: &http.path,
                headers: &http.headers,
                auth: http.auth.as_ref(),
            }),
        }
    }
}

fn decide_for(docs: &[Doc], workload: &WorkloadMeta, request: &TestRequest) -> Decision {
    WorkloadAuthorizer::compile(&snapshot(docs), workload).evaluate(&request.attributes())
}

/// Returns the decision for the `reviews` workload in `default` under one policy in `default`.
fn decide(spec: &'static str, request: &TestRequest) -> Decision {
    decide_for(&[doc("default", "policy", spec)], &reviews(), request)
}

fn allowed(spec: &'static str, request: &TestRequest) -> bool {
    decide(spec, request).allowed
}

fn denied_by(policy: &str, rule: usize) -> DecisionReason {
    DecisionReason::DeniedByPolicy {
        policy: policy.into(),
        rule,
    }
}

fn allowed_by(policy: &str, rule: usize) -> DecisionReason {
    DecisionReason::AllowedByPolicy {
        policy: policy.into(),
        rule,
    }
}

/// An ALLOW policy whose single rule is `rule` (YAML of one rule, indented for `rules:`).
macro_rules! allow_rule {
    ($rule:literal) => {
        concat!("rules:\n", $rule)
    };
}

macro_rules! deny_rule {
    ($rule:literal) => {
        concat!("action: DENY\nrules:\n", $rule)
    };
}

// === scope and order ===

#[test]
fn no_policies_allows() {
    let decision = decide_for(&[], &reviews(), &plain());
    assert!(decision.allowed);
    assert_eq!(decision.reason, DecisionReason::NoAllowPolicy);
    assert!(decision.audited.is_empty());
}

#[test]
fn empty_spec_denies_everything() {
    let decision = decide("{}", &productpage());
    assert!(!decision.allowed);
    assert_eq!(decision.reason, DecisionReason::NoAllowMatched);
}

#[test]
fn allow_without_rules_denies_everything() {
    let spec = "selector: {matchLabels: {app: reviews}}\naction: ALLOW";
    assert!(!allowed(spec, &productpage()));
    assert!(!allowed("rules: []", &productpage()));
}

#[test]
fn deny_without_rules_has_no_effect() {
    assert!(allowed("action: DENY", &plain()));
    assert!(allowed("action: DENY\nrules: []", &plain()));
}

#[test]
fn empty_rule_matches_everything() {
    let decision = decide("rules: [{}]", &plain());
    assert_eq!(decision.reason, allowed_by("default/policy", 0));
    let decision = decide("action: DENY\nrules: [{}]", &productpage());
    assert_eq!(decision.reason, denied_by("default/policy", 0));
}

#[test]
fn selector_limits_scope() {
    let other = "selector: {matchLabels: {app: ratings}}";
    assert!(
        allowed(other, &plain()),
        "policy for ratings must not apply"
    );
    let mine = "selector: {matchLabels: {app: reviews, version: v1}}";
    assert!(!allowed(mine, &plain()), "policy for reviews v1 must apply");
    let wrong_version = "selector: {matchLabels: {app: reviews, version: v2}}";
    assert!(allowed(wrong_version, &plain()));
}

#[test]
fn other_namespace_policy_ignored() {
    let docs = [doc("foo", "deny-all", "{}")];
    assert!(decide_for(&docs, &reviews(), &plain()).allowed);
}

#[test]
fn root_namespace_applies_mesh_wide() {
    let docs = [doc("istio-system", "deny-all", "{}")];
    assert!(!decide_for(&docs, &reviews(), &plain()).allowed);
    assert!(!decide_for(&docs, &workload("foo", "httpbin"), &plain()).allowed);
}

#[test]
fn root_namespace_selector_matches_every_namespace() {
    let docs = [doc(
        "istio-system",
        "httpbin-only",
        "selector: {matchLabels: {app: httpbin}}",
    )];
    assert!(!decide_for(&docs, &workload("foo", "httpbin"), &plain()).allowed);
    assert!(!decide_for(&docs, &workload("bar", "httpbin"), &plain()).allowed);
    assert!(decide_for(&docs, &reviews(), &plain()).allowed);
}

#[test]
fn target_ref_policy_ignored_by_sidecars() {
    let spec = "targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]";
    assert!(allowed(spec, &plain()));
}

#[test]
fn deny_evaluated_before_allow() {
    let docs = [
        doc("default", "allow-all", "rules: [{}]"),
        doc(
            "default",
            "deny-get",
            "action: DENY\nrules: [{to: [{operation: {methods: [GET]}}]}]",
        ),
    ];
    let decision = decide_for(&docs, &reviews(), &plain());
    assert!(!decision.allowed);
    assert_eq!(decision.reason, denied_by("default/deny-get", 0));
    let post = decide_for(&docs, &reviews(), &plain().method("POST"));
    assert_eq!(post.reason, allowed_by("default/allow-all", 0));
}

#[test]
fn any_allow_policy_suffices() {
    let docs = [
        doc("default", "from-ratings", "rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-ratings]}}]}]"),
        doc("default", "from-productpage", "rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage]}}]}]"),
    ];
    let decision = decide_for(&docs, &reviews(), &productpage());
    assert_eq!(decision.reason, allowed_by("default/from-productpage", 0));
    let decision = decide_for(&docs, &reviews(), &from("default", "sleep"));
    assert_eq!(decision.reason, DecisionReason::NoAllowMatched);
}

#[test]
fn deny_only_policies_allow_the_rest() {
    let spec = deny_rule!("- to: [{operation: {paths: [/admin]}}]");
    let decision = decide(spec, &plain());
    assert!(decision.allowed);
    assert_eq!(decision.reason, DecisionReason::NoAllowPolicy);
}

#[test]
fn reason_names_first_matching_rule() {
    let spec = allow_rule!(
        "- to: [{operation: {methods: [POST]}}]\n- to: [{operation: {methods: [GET]}}]\n- {}"
    );
    assert_eq!(
        decide(spec, &plain()).reason,
        allowed_by("default/policy", 1)
    );
}

#[test]
fn audit_reports_without_enforcing() {
    let docs = [
        doc(
            "default",
            "audit-get",
            "action: AUDIT\nrules: [{to: [{operation: {methods: [GET]}}]}]",
        ),
        doc(
            "default",
            "audit-post",
            "action: AUDIT\nrules: [{to: [{operation: {methods: [POST]}}]}]",
        ),
    ];
    let decision = decide_for(&docs, &reviews(), &plain());
    assert!(decision.allowed);
    assert_eq!(
        decision.reason,
        DecisionReason::NoAllowPolicy,
        "an AUDIT policy is not an ALLOW policy"
    );
    assert_eq!(decision.audited, vec!["default/audit-get".to_string()]);
}

#[test]
fn audit_reported_on_denied_request() {
    let docs = [
        doc("default", "audit-all", "action: AUDIT\nrules: [{}]"),
        doc("default", "deny-all", "action: DENY\nrules: [{}]"),
    ];
    let decision = decide_for(&docs, &reviews(), &plain());
    assert!(!decision.allowed);
    assert_eq!(decision.audited, vec!["default/audit-all".to_string()]);
}

#[test]
fn dry_run_deny_not_enforced() {
    let docs = [Doc {
        annotations: &[("istio.io/dry-run", "true")],
        ..doc(
            "default",
            "deny-get",
            "action: DENY\nrules: [{to: [{operation: {methods: [GET]}}]}]",
        )
    }];
    let decision = decide_for(&docs, &reviews(), &plain());
    assert!(decision.allowed);
    assert_eq!(decision.reason, DecisionReason::NoAllowPolicy);
    assert_eq!(
        decision.audited,
        vec!["default/deny-get (dry-run DENY)".to_string()]
    );
    let post = decide_for(&docs, &reviews(), &plain().method("POST"));
    assert!(post.audited.is_empty());
}

#[test]
fn dry_run_allow_does_not_create_default_deny() {
    let docs = [Doc {
        annotations: &[("istio.io/dry-run", "true")],
        ..doc("default", "allow-nothing", "{}")
    }];
    let decision = decide_for(&docs, &reviews(), &plain());
    assert!(decision.allowed);
    assert_eq!(decision.reason, DecisionReason::NoAllowPolicy);
}

#[test]
fn dry_run_false_enforces() {
    let docs = [Doc {
        annotations: &[("istio.io/dry-run", "false")],
        ..doc("default", "allow-nothing", "{}")
    }];
    assert!(!decide_for(&docs, &reviews(), &plain()).allowed);
}

#[test]
fn custom_policy_never_matches() {
    let spec = "action: CUSTOM\nprovider: {name: ext-authz}\nrules: [{}]";
    let decision = decide(spec, &plain());
    assert!(decision.allowed);
    assert_eq!(decision.reason, DecisionReason::NoAllowPolicy);
}

#[test]
fn policies_lists_summaries() {
    let docs = [
        doc(
            "istio-system",
            "mesh-audit",
            "action: AUDIT\nrules: [{}, {}]",
        ),
        doc("default", "allow-nothing", "{}"),
        Doc {
            annotations: &[("istio.io/dry-run", "true")],
            ..doc("default", "shadow", "action: DENY\nrules: [{}]")
        },
        doc(
            "default",
            "ratings-only",
            "selector: {matchLabels: {app: ratings}}",
        ),
    ];
    let authorizer = WorkloadAuthorizer::compile(&snapshot(&docs), &reviews());
    let summaries = authorizer.policies();
    assert_eq!(summaries.len(), 3);
    assert_eq!(
        summaries[0],
        PolicySummary {
            name: "mesh-audit".into(),
            namespace: "istio-system".into(),
            action: Action::Audit,
            rules: 2,
            dry_run: false,
        }
    );
    assert_eq!(summaries[1].name, "allow-nothing");
    assert_eq!(summaries[1].action, Action::Allow);
    assert_eq!(summaries[1].rules, 0);
    assert!(summaries[2].dry_run);
}

#[test]
fn decision_display() {
    let spec = "action: DENY\nrules: [{}]";
    let docs = [
        doc("default", "audit", "action: AUDIT\nrules: [{}]"),
        doc("default", "deny", spec),
    ];
    let decision = decide_for(&docs, &reviews(), &plain());
    assert_eq!(
        decision.to_string(),
        "denied: DENY policy default/deny matched rule 0; audited by default/audit"
    );
    assert_eq!(
        decide("{}", &plain()).to_string(),
        "denied: no ALLOW policy matched"
    );
    assert_eq!(
        decide_for(&[], &reviews(), &plain()).to_string(),
        "allowed: no ALLOW policy applies"
    );
}

// === rule structure ===

#[test]
fn from_entries_are_alternatives() {
    let spec = allow_rule!(
        "- from:\n  - source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage]}\n  - source: {namespaces: [test]}"
    );
    assert!(allowed(spec, &productpage()));
    assert!(allowed(spec, &from("test", "anyone")));
    assert!(!allowed(spec, &from("default", "sleep")));
}

#[test]
fn rule_needs_from_to_and_when() {
    let spec = allow_rule!(
        "- from: [{source: {namespaces: [default]}}]\n  to: [{operation: {methods: [GET]}}]\n  when: [{key: 'request.headers[x-user]', values: [alice]}]"
    );
    let good = productpage().header("x-user", "alice");
    assert!(allowed(spec, &good));
    assert!(
        !allowed(spec, &good.clone().method("POST")),
        "to must match"
    );
    assert!(!allowed(spec, &productpage()), "when must match");
    assert!(
        !allowed(spec, &from("other", "x").header("x-user", "alice")),
        "from must match"
    );
}

#[test]
fn every_when_condition_must_match() {
    let spec = allow_rule!(
        "- when:\n  - {key: 'request.headers[a]', values: ['1']}\n  - {key: 'request.headers[b]', values: ['2']}"
    );
    assert!(allowed(spec, &plain().header("a", "1").header("b", "2")));
    assert!(!allowed(spec, &plain().header("a", "1")));
}

#[test]
fn fields_in_one_source_all_apply() {
    let spec = allow_rule!(
        "- from: [{source: {namespaces: [default], notPrincipals: [cluster.local/ns/default/sa/sleep]}}]"
    );
    assert!(allowed(spec, &productpage()));
    assert!(!allowed(spec, &from("default", "sleep")));
    assert!(!allowed(spec, &from("foo", "bookinfo-productpage")));
}

#[test]
fn two_rules_written_as_separate_items() {
    // `- from` and `- to` as two list items are two rules, so either one allows.
    let spec = allow_rule!(
        "- from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-productpage]}}]\n- to: [{operation: {methods: [GET]}}]"
    );
    assert!(allowed(spec, &from("default", "sleep")));
}

// === string matching and peer identity ===

#[test]
fn principal_match_forms() {
    let cases = [
        ("cluster.local/ns/default/sa/bookinfo-productpage", true),
        ("cluster.local/ns/default/sa/bookinfo-productpag", false),
        ("cluster.local/ns/default/*", true),
        ("cluster.local/ns/foo/*", false),
        ("*/sa/bookinfo-productpage", true),
        ("*productpage", true),
        ("*", true),
        (
            "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
            false,
        ),
        ("cluster.local/*/default/sa/bookinfo-productpage", false),
    ];
    for (value, expected) in cases {
        let spec = format!("rules: [{{from: [{{source: {{principals: [\"{value}\"]}}}}]}}]");
        let spec: &'static str = Box::leak(spec.into_boxed_str());
        assert_eq!(
            allowed(spec, &productpage()),
            expected,
            "principals: [{value}]"
        );
    }
}

#[test]
fn peer_fields_absent_on_plaintext() {
    let positive = [
        "principals: ['*']",
        "namespaces: ['*']",
        "serviceAccounts: [default/bookinfo-productpage]",
    ];
    for field in positive {
        let spec = format!("rules: [{{from: [{{source: {{{field}}}}}]}}]");
        let spec: &'static str = Box::leak(spec.into_boxed_str());
        assert!(!allowed(spec, &plain()), "{field} must not match plaintext");
        assert!(allowed(spec, &productpage()), "{field} must match mTLS");
    }
    let negative = ["notPrincipals: ['*']", "notNamespaces: ['*']"];
    for field in negative {
        let spec = format!("rules: [{{from: [{{source: {{{field}}}}}]}}]");
        let spec: &'static str = Box::leak(spec.into_boxed_str());
        assert!(allowed(spec, &plain()), "{field} must match plaintext");
        assert!(
            !allowed(spec, &productpage()),
            "{field} must not match mTLS"
        );
    }
}

#[test]
fn deny_plaintext_with_not_principals() {
    let spec = deny_rule!("- from: [{source: {notPrincipals: ['*']}}]");
    assert!(!allowed(spec, &plain()));
    assert!(allowed(spec, &productpage()));
}

#[test]
fn namespace_wildcards_anywhere() {
    let cases = [
        ("default", true),
        ("def*", true),
        ("*ault", true),
        ("d*t", true),
        ("d*u*t", true),
        ("foo*", false),
        ("*", true),
        ("defaul", false),
    ];
    for (value, expected) in cases {
        let spec = format!("rules: [{{from: [{{source: {{namespaces: [\"{value}\"]}}}}]}}]");
        let spec: &'static str = Box::leak(spec.into_boxed_str());
        assert_eq!(
            allowed(spec, &productpage()),
            expected,
            "namespaces: [{value}]"
        );
    }
}

#[test]
fn service_accounts_qualified_and_bare() {
    let spec = allow_rule!("- from: [{source: {serviceAccounts: [bookinfo-productpage]}}]");
    assert!(
        allowed(spec, &productpage()),
        "bare name uses the policy namespace"
    );
    assert!(!allowed(spec, &from("foo", "bookinfo-productpage")));
    let spec = allow_rule!("- from: [{source: {serviceAccounts: [foo/sleep]}}]");
    assert!(allowed(spec, &from("foo", "sleep")));
    assert!(!allowed(spec, &from("default", "sleep")));
    let spec = allow_rule!("- from: [{source: {notServiceAccounts: [foo/sleep]}}]");
    assert!(!allowed(spec, &from("foo", "sleep")));
    assert!(allowed(spec, &productpage()));
}

#[test]
fn ip_blocks_match_source_ip() {
    let spec = allow_rule!("- from: [{source: {ipBlocks: [10.0.0.0/24, 192.168.1.7]}}]");
    assert!(allowed(spec, &plain().source_ip("10.0.0.200")));
    assert!(allowed(spec, &plain().source_ip("192.168.1.7")));
    assert!(!allowed(spec, &plain().source_ip("192.168.1.8")));
    assert!(!allowed(spec, &plain().source_ip("10.0.1.1")));
    assert!(
        allowed(spec, &plain().source_ip("::ffff:10.0.0.3")),
        "IPv4-mapped IPv6 counts as IPv4"
    );
    assert!(!allowed(spec, &plain().source_ip("::1")));
    assert!(
        !allowed(spec, &plain().source_ip("172.16.0.1").remote_ip("10.0.0.1")),
        "ipBlocks reads the direct peer"
    );
}

#[test]
fn not_ip_blocks_exclude() {
    let spec = deny_rule!("- from: [{source: {notIpBlocks: [127.0.0.0/8]}}]");
    assert!(allowed(spec, &plain().source_ip("127.0.0.1")));
    assert!(!allowed(spec, &plain().source_ip("10.0.0.1")));
}

#[test]
fn remote_ip_blocks_match_remote_ip() {
    let spec = allow_rule!("- from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]");
    assert!(allowed(spec, &plain().remote_ip("203.0.113.5")));
    assert!(!allowed(spec, &plain().source_ip("203.0.113.5")));
    let spec = allow_rule!("- from: [{source: {notRemoteIpBlocks: [203.0.113.0/24]}}]");
    assert!(!allowed(spec, &plain().remote_ip("203.0.113.5")));
}

#[test]
fn request_principals_match_jwt() {
    let token = json!({"iss": "testing@secure.istio.io", "sub": "testing@secure.istio.io"});
    let with_jwt = plain().jwt(token);
    let cases = [
        ("'*'", true),
        ("testing@secure.istio.io/testing@secure.istio.io", true),
        ("testing@secure.istio.io/*", true),
        ("'*/testing@secure.istio.io'", true),
        ("other/testing@secure.istio.io", false),
    ];
    for (value, expected) in cases {
        let spec = format!("rules: [{{from: [{{source: {{requestPrincipals: [{value}]}}}}]}}]");
        let spec: &'static str = Box::leak(spec.into_boxed_str());
        assert_eq!(
            allowed(spec, &with_jwt),
            expected,
            "requestPrincipals: [{value}]"
        );
        assert!(
            !allowed(spec, &plain()),
            "{value} must not match without a JWT"
        );
    }
    let spec = deny_rule!("- from: [{source: {notRequestPrincipals: ['*']}}]");
    assert!(
        !allowed(spec, &plain()),
        "a request without a JWT is denied"
    );
    assert!(allowed(spec, &with_jwt));
}

#[test]
fn request_principal_is_not_peer() {
    let spec = allow_rule!(
        "- from: [{source: {requestPrincipals: [cluster.local/ns/default/sa/bookinfo-productpage]}}]"
    );
    assert!(!allowed(spec, &productpage()));
}

// === operations ===

#[test]
fn methods_case_sensitive() {
    let spec = allow_rule!("- to: [{operation: {methods: [GET, HEAD]}}]");
    assert!(allowed(spec, &plain()));
    assert!(allowed(spec, &plain().method("HEAD")));
    assert!(!allowed(spec, &plain().method("get")));
    assert!(!allowed(spec, &plain().method("POST")));
    let lower = allow_rule!("- to: [{operation: {methods: [get]}}]");
    assert!(!allowed(lower, &plain()));
}

#[test]
fn not_methods_exclude() {
    let spec = allow_rule!("- to: [{operation: {notMethods: [DELETE]}}]");
    assert!(allowed(spec, &plain()));
    assert!(!allowed(spec, &plain().method("DELETE")));
}

#[test]
fn hosts_case_insensitive_with_port() {
    let spec = allow_rule!("- to: [{operation: {hosts: [reviews.default.svc.cluster.local, 'Reviews:*', '*.example.COM']}}]");
    assert!(allowed(
        spec,
        &plain().host("REVIEWS.default.svc.cluster.local")
    ));
    assert!(allowed(spec, &plain().host("reviews:9080")));
    assert!(allowed(spec, &plain().host("api.Example.com")));
    assert!(!allowed(
        spec,
        &plain().host("reviews.default.svc.cluster.local:9080")
    ));
    assert!(!allowed(spec, &plain().host("ratings:9080")));
}

#[test]
fn ports_match_workload_port() {
    let spec = allow_rule!("- to: [{operation: {ports: ['9080']}}]");
    assert!(allowed(spec, &plain()));
    assert!(!allowed(spec, &plain().port(8080)));
    let spec = allow_rule!("- to: [{operation: {notPorts: ['15021']}}]");
    assert!(allowed(spec, &plain()));
    assert!(!allowed(spec, &plain().port(15021)));
}

#[test]
fn paths_ignore_query_string() {
    let spec = deny_rule!("- to: [{operation: {paths: ['/deny*']}}]");
    assert!(!allowed(spec, &plain().path("/deny?x=1")));
    assert!(!allowed(spec, &plain().path("/denyall")));
    assert!(allowed(spec, &plain().path("/allow/deny")));
    let spec = allow_rule!("- to: [{operation: {paths: [/allow]}}]");
    assert!(allowed(spec, &plain().path("/allow?x=1")));
    assert!(allowed(spec, &plain().path("/allow#top")));
    assert!(!allowed(spec, &plain().path("/allow/")));
}

#[test]
fn paths_match_forms() {
    let cases = [
        ("/reviews/*", "/reviews/0", true),
        ("'*/0'", "/reviews/0", true),
        ("'*'", "/", true),
        ("/reviews/*/x", "/reviews/0/x", false),
        ("/reviews/*/x", "/reviews/*/x", true),
        ("/Reviews/0", "/reviews/0", false),
    ];
    for (pattern, path, expected) in cases {
        let spec = format!("rules: [{{to: [{{operation: {{paths: [{pattern}]}}}}]}}]");
        let spec: &'static str = Box::leak(spec.into_boxed_str());
        assert_eq!(
            allowed(spec, &plain().path(path)),
            expected,
            "{pattern} vs {path}"
        );
    }
}

#[test]
fn paths_normalized_before_matching() {
    let spec = deny_rule!("- to: [{operation: {paths: ['/admin*']}}]");
    let bypasses = [
        "/public/../admin",
        "/./admin",
        "/%61dmin",
        "/public%2F..%2F../admin",
        "/public\\..\\admin",
        "/public/%2e%2e/admin",
        "/../../admin",
    ];
    for path in bypasses {
        let expected_denied = path != "/public%2F..%2F../admin";
        assert_eq!(
            !allowed(spec, &plain().path(path)),
            expected_denied,
            "path {path}"
        );
    }
}

#[test]
fn normalize_path_cases() {
    let cases = [
        ("/", "/"),
        ("/a/b?c=d", "/a/b"),
        ("/a/./b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/..", "/"),
        ("/%7Euser/%41", "/~user/A"),
        ("/a%2Fb", "/a%2Fb"),
        ("/a%20b", "/a%20b"),
        ("/a\\b", "/a/b"),
        ("/a//b", "/a//b"),
        ("http://host:9080/x/../y?q", "/y"),
        ("http://host", "/"),
        ("*", "*"),
        ("/caf%C3%A9/ü", "/caf%C3%A9/ü"),
    ];
    for (target, expected) in cases {
        assert_eq!(normalize_path(target), expected, "target {target}");
    }
}

#[test]
fn path_templates_match_segments() {
    let cases = [
        ("/foo/{*}", "/foo/bar", true),
        ("/foo/{*}", "/foo/bar/baz", false),
        ("/foo/{*}", "/foo/", false),
        ("/foo/{*}/bar/{**}", "/foo/buzz/bar/", true),
        ("/foo/{*}/bar/{**}", "/foo/buzz/bar/baz/qux", true),
        ("/foo/{*}/bar/{**}", "/foo/buzz/baz/", false),
        ("/foo/{**}", "/foo/a/b/c", true),
        ("/foo/{**}/", "/foo//", true),
        ("/{*}/reviews", "/api/reviews?x=1", true),
    ];
    for (template, path, expected) in cases {
        let spec = format!("rules: [{{to: [{{operation: {{paths: ['{template}']}}}}]}}]");
        let spec: &'static str = Box::leak(spec.into_boxed_str());
        assert_eq!(
            allowed(spec, &plain().path(path)),
            expected,
            "{template} vs {path}"
        );
    }
}

// === when conditions ===

#[test]
fn header_name_case_insensitive() {
    let spec = allow_rule!("- when: [{key: 'request.headers[X-Token]', values: [admin]}]");
    assert!(allowed(spec, &plain().header("x-token", "admin")));
    assert!(
        !allowed(spec, &plain().header("x-token", "Admin")),
        "values are case-sensitive"
    );
    assert!(!allowed(spec, &plain()));
}

#[test]
fn repeated_headers_joined_with_comma() {
    let spec = allow_rule!("- when: [{key: 'request.headers[x-group]', values: ['a,b']}]");
    assert!(allowed(
        spec,
        &plain().header("x-group", "a").header("x-group", "b")
    ));
    assert!(!allowed(spec, &plain().header("x-group", "a")));
    let prefix = allow_rule!("- when: [{key: 'request.headers[x-group]', values: ['a*']}]");
    assert!(allowed(
        prefix,
        &plain().header("x-group", "a").header("x-group", "b")
    ));
}

#[test]
fn not_values_hold_for_absent_attribute() {
    let spec = deny_rule!("- when: [{key: 'request.headers[x-user]', notValues: [admin]}]");
    assert!(
        !allowed(spec, &plain()),
        "missing header is not equal to admin"
    );
    assert!(!allowed(spec, &plain().header("x-user", "bob")));
    assert!(allowed(spec, &plain().header("x-user", "admin")));
}

#[test]
fn values_and_not_values_combined() {
    let spec = allow_rule!(
        "- when: [{key: 'request.headers[x-user]', values: ['*'], notValues: [mallory]}]"
    );
    assert!(allowed(spec, &plain().header("x-user", "alice")));
    assert!(!allowed(spec, &plain().header("x-user", "mallory")));
    assert!(!allowed(spec, &plain()));
}

#[test]
fn ip_conditions() {
    let spec = allow_rule!("- when: [{key: source.ip, values: [10.0.0.0/16]}]");
    assert!(allowed(spec, &plain()));
    assert!(!allowed(spec, &plain().source_ip("10.1.0.1")));
    let spec = allow_rule!("- when: [{key: remote.ip, values: [203.0.113.9]}]");
    assert!(allowed(spec, &plain().remote_ip("203.0.113.9")));
    assert!(!allowed(spec, &plain()));
    let spec = allow_rule!("- when: [{key: destination.ip, notValues: [10.0.0.9]}]");
    assert!(!allowed(spec, &plain()));
}

#[test]
fn destination_port_condition() {
    let spec = allow_rule!("- when: [{key: destination.port, values: ['9080', '9443']}]");
    assert!(allowed(spec, &plain()));
    assert!(!allowed(spec, &plain().port(8080)));
}

#[test]
fn peer_conditions() {
    let spec =
        allow_rule!("- when: [{key: source.principal, values: ['cluster.local/ns/default/*']}]");
    assert!(allowed(spec, &productpage()));
    assert!(!allowed(spec, &plain()));
    let spec = allow_rule!("- when: [{key: source.namespace, values: ['de*lt']}]");
    assert!(allowed(spec, &productpage()));
    assert!(!allowed(spec, &from("foo", "x")));
    let spec = allow_rule!("- when: [{key: source.namespace, notValues: [foo]}]");
    assert!(allowed(spec, &plain()), "absent namespace is not foo");
    let spec = allow_rule!(
        "- when: [{key: source.serviceAccount, values: [default/bookinfo-productpage]}]"
    );
    assert!(allowed(spec, &productpage()));
    assert!(!allowed(spec, &from("default", "sleep")));
    let spec = allow_rule!("- when: [{key: source.trustDomain, values: [cluster.local]}]");
    assert!(allowed(spec, &productpage()));
    assert!(!allowed(spec, &plain()));
}

#[test]
fn sni_condition() {
    let spec = allow_rule!(
        "- when: [{key: connection.sni, values: ['*.reviews.default.svc.cluster.local']}]"
    );
    assert!(allowed(spec, &productpage()));
    assert!(!allowed(spec, &plain()), "plaintext has no SNI");
}

#[test]
fn auth_conditions() {
    let token = json!({
        "iss": "https://issuer.example/realms/lab",
        "sub": "alice",
        "aud": ["bookinfo", "ratings"],
        "azp": "frontend",
    });
    let request = plain().jwt(token);
    let spec = allow_rule!("- when: [{key: request.auth.principal, values: ['https://issuer.example/realms/lab/alice']}]");
    assert!(allowed(spec, &request));
    assert!(!allowed(spec, &plain()));
    let spec = allow_rule!("- when: [{key: request.auth.audiences, values: [ratings]}]");
    assert!(allowed(spec, &request), "any audience matches");
    let spec = allow_rule!("- when: [{key: request.auth.audiences, values: [details]}]");
    assert!(!allowed(spec, &request));
    let spec = allow_rule!("- when: [{key: request.auth.presenter, values: [frontend]}]");
    assert!(allowed(spec, &request));
}

#[test]
fn claim_conditions() {
    let token = json!({
        "iss": "testing@secure.istio.io",
        "sub": "testing@secure.istio.io",
        "groups": ["group1", "group2"],
        "scope": "read write",
        "role": "admin editor",
        "level": 3,
        "admin": true,
        "foo.com/name": "x",
        "org": {"team": {"name": "mesh"}, "tags": ["a", 7]},
    });
    let request = plain().jwt(token);
    let cases = [
        ("request.auth.claims[groups]", "group2", true),
        ("request.auth.claims[groups]", "group3", false),
        ("request.auth.claims[scope]", "write", true),
        ("request.auth.claims[scope]", "read write", false),
        ("request.auth.claims[role]", "admin", false),
        ("request.auth.claims[role]", "admin editor", true),
        ("request.auth.claims[level]", "3", false),
        ("request.auth.claims[admin]", "true", false),
        ("request.auth.claims[foo.com/name]", "x", true),
        ("request.auth.claims[org][team][name]", "mesh", true),
        ("request.auth.claims[org][team]", "mesh", false),
        ("request.auth.claims[org][tags]", "a", true),
        ("request.auth.claims[org][tags]", "7", false),
        ("request.auth.claims[missing]", "x", false),
        ("request.auth.claims[iss]", "testing@*", true),
    ];
    for (key, value, expected) in cases {
        let spec = format!("rules: [{{when: [{{key: '{key}', values: ['{value}']}}]}}]");
        let spec: &'static str = Box::leak(spec.into_boxed_str());
        assert_eq!(allowed(spec, &request), expected, "{key} = {value}");
    }
    let spec = deny_rule!("- when: [{key: 'request.auth.claims[level]', notValues: ['3']}]");
    assert!(
        !allowed(spec, &request),
        "a non-string claim never equals a value"
    );
}

// === TCP connections ===

#[test]
fn tcp_allow_rule_with_http_field_dropped() {
    let spec = allow_rule!("- to: [{operation: {ports: ['9080'], methods: [GET]}}]");
    assert!(allowed(spec, &plain()));
    assert!(
        !allowed(spec, &plain().tcp()),
        "the whole ALLOW rule is dropped"
    );
    let spec = allow_rule!(
        "- from: [{source: {requestPrincipals: ['*']}}, {source: {ipBlocks: [10.0.0.0/8]}}]"
    );
    assert!(!allowed(spec, &plain().tcp()));
    let spec = allow_rule!("- to: [{operation: {ports: ['9080']}}]\n  when: [{key: 'request.headers[x]', notValues: [y]}]");
    assert!(!allowed(spec, &plain().tcp()));
}

#[test]
fn tcp_allow_rule_without_http_fields() {
    let spec = allow_rule!("- from: [{source: {principals: [cluster.local/ns/default/sa/sleep]}}]\n  to: [{operation: {ports: ['27017']}}]");
    assert!(allowed(spec, &from("default", "sleep").tcp().port(27017)));
    assert!(!allowed(spec, &from("default", "other").tcp().port(27017)));
}

#[test]
fn tcp_deny_drops_only_http_field() {
    let spec = deny_rule!("- to: [{operation: {methods: [GET]}}]");
    assert!(
        !allowed(spec, &plain().tcp()),
        "DENY on methods blocks all TCP"
    );
    assert!(allowed(spec, &plain().method("POST")));
    let scoped = deny_rule!("- to: [{operation: {methods: [GET], ports: ['9080']}}]");
    assert!(!allowed(scoped, &plain().tcp()));
    assert!(
        allowed(scoped, &plain().tcp().port(27017)),
        "ports keep the rule narrow"
    );
    let when = deny_rule!("- from: [{source: {namespaces: [default]}}]\n  when: [{key: 'request.auth.claims[groups]', values: [x]}]");
    assert!(!allowed(when, &productpage().tcp()));
    assert!(allowed(when, &from("foo", "x").tcp()));
}

#[test]
fn tcp_audit_drops_only_http_field() {
    let docs = [doc(
        "default",
        "audit",
        "action: AUDIT\nrules: [{to: [{operation: {paths: [/x]}}]}]",
    )];
    let decision = decide_for(&docs, &reviews(), &plain().tcp());
    assert_eq!(decision.audited, vec!["default/audit".to_string()]);
}

// === invalid values that skip validation ===

#[test]
fn invalid_values_follow_action() {
    let allow = allow_rule!("- from: [{source: {ipBlocks: [not-an-ip]}}]");
    assert!(
        !allowed(allow, &plain()),
        "ALLOW rule with a bad CIDR never matches"
    );
    let deny = deny_rule!(
        "- from: [{source: {ipBlocks: [not-an-ip]}}]\n  to: [{operation: {paths: [/admin]}}]"
    );
    assert!(
        !allowed(deny, &plain().path("/admin")),
        "DENY ignores the bad field"
    );
    assert!(allowed(deny, &plain().path("/ok")));
}

#[test]
fn unknown_when_key_disables_rule() {
    let deny = deny_rule!("- when: [{key: request.weird, values: [x]}]");
    assert!(allowed(deny, &plain()));
    let allow = allow_rule!("- when: [{key: request.weird, values: [x]}]");
    assert!(!allowed(allow, &plain()));
}

// === course policies ===

fn course_spec(file: &str) -> (String, AuthorizationPolicySpec) {
    let path = format!(
        "{}/../scenarios/policies/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let document: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        document["kind"].as_str(),
        Some("AuthorizationPolicy"),
        "{file}"
    );
    assert_eq!(
        document["metadata"]["namespace"].as_str(),
        Some("default"),
        "{file}"
    );
    let name = document["metadata"]["name"].as_str().unwrap().to_string();
    let spec =
        serde_yaml::from_value(document["spec"].clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    (name, spec)
}

fn course_snapshot(files: &[&str]) -> Snapshot {
    let resources = files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            let (name, spec) = course_spec(file);
            validate(&spec).unwrap_or_else(|e| panic!("{file}: {e}"));
            Arc::new(Resource {
                api_version: "security.istio.io/v1".into(),
                meta: ObjectMeta {
                    name,
                    namespace: "default".into(),
                    ..ObjectMeta::default()
                },
                created: index as u64,
                spec: Spec::AuthorizationPolicy(spec),
            })
        })
        .collect();
    Snapshot {
        version: 1,
        resources,
    }
}

fn bookinfo_call(snapshot: &Snapshot, server: &str, client: Option<&str>, method: &str) -> bool {
    let request = match client {
        Some(client) => from("default", &format!("bookinfo-{client}")),
        None => plain(),
    };
    WorkloadAuthorizer::compile(snapshot, &workload("default", server))
        .evaluate(&request.method(method).attributes())
        .allowed
}

#[test]
fn course_http_task_policies() {
    let snapshot = course_snapshot(&[
        "authz-deny-all.yaml",
        "authz-productpage-viewer.yaml",
        "authz-details-viewer.yaml",
        "authz-reviews-viewer.yaml",
        "authz-ratings-viewer.yaml",
    ]);
    assert!(bookinfo_call(&snapshot, "productpage", None, "GET"));
    assert!(!bookinfo_call(&snapshot, "productpage", None, "POST"));
    assert!(bookinfo_call(
        &snapshot,
        "details",
        Some("productpage"),
        "GET"
    ));
    assert!(!bookinfo_call(&snapshot, "details", Some("reviews"), "GET"));
    assert!(!bookinfo_call(&snapshot, "details", None, "GET"));
    assert!(bookinfo_call(
        &snapshot,
        "reviews",
        Some("productpage"),
        "GET"
    ));
    assert!(bookinfo_call(&snapshot, "ratings", Some("reviews"), "GET"));
    assert!(!bookinfo_call(
        &snapshot,
        "ratings",
        Some("productpage"),
        "GET"
    ));
}

#[test]
fn course_deny_all_alone() {
    let snapshot = course_snapshot(&["authz-deny-all.yaml"]);
    for server in ["productpage", "details", "reviews", "ratings"] {
        assert!(
            !bookinfo_call(&snapshot, server, Some("productpage"), "GET"),
            "{server}"
        );
    }
}

#[test]
fn course_reviews_policies() {
    let deny = course_snapshot(&["authz-reviews-deny.yaml"]);
    assert!(!bookinfo_call(&deny, "reviews", Some("productpage"), "GET"));
    assert!(bookinfo_call(&deny, "details", Some("productpage"), "GET"));
    let allow = course_snapshot(&["authz-reviews-allow-productpage.yaml"]);
    assert!(bookinfo_call(&allow, "reviews", Some("productpage"), "GET"));
    assert!(!bookinfo_call(
        &allow,
        "reviews",
        Some("productpage"),
        "POST"
    ));
    assert!(!bookinfo_call(&allow, "reviews", None, "GET"));
}

// === validation ===

fn validation_error(spec: &str) -> FieldError {
    let spec: AuthorizationPolicySpec = serde_yaml::from_str(spec).expect("spec must parse");
    validate(&spec).expect_err("spec must be rejected")
}

fn assert_valid(spec: &str) {
    let parsed: AuthorizationPolicySpec = serde_yaml::from_str(spec).expect("spec must parse");
    if let Err(error) = validate(&parsed) {
        panic!("{spec} must be valid: {error}");
    }
}

#[test]
fn validate_accepts_common_forms() {
    assert_valid("{}");
    assert_valid("rules: [{}]");
    assert_valid("action: DENY\nrules: [{}]");
    assert_valid("action: AUDIT\nrules: [{to: [{operation: {paths: [/x]}}]}]");
    assert_valid("rules: [{to: [{operation: {methods: [get]}}]}]");
    assert_valid("rules: [{to: [{operation: {paths: ['/a/*/b']}}]}]");
    assert_valid("rules: [{to: [{operation: {paths: ['/foo/{*}/bar/{**}']}}]}]");
    assert_valid("rules: [{to: [{operation: {ports: ['0', '65535']}}]}]");
    assert_valid("rules: [{when: [{key: 'request.auth.claims[a][b]', values: [x]}]}]");
    assert_valid("rules: [{when: [{key: 'request.headers[User-Agent]', notValues: [curl*]}]}]");
    assert_valid("rules: [{from: [{source: {serviceAccounts: [sleep, foo/bar], ipBlocks: ['::1', 10.0.0.0/8]}}]}]");
}

#[test]
fn validate_rejects_custom() {
    let error = validation_error("action: CUSTOM\nprovider: {name: ext}\nrules: [{}]");
    assert_eq!(error.path, "spec.action");
    assert!(error.message.contains("CUSTOM is not supported"), "{error}");
    let error = validation_error("provider: {name: ext}\nrules: [{}]");
    assert_eq!(error.path, "spec.provider");
}

#[test]
fn validate_rejects_target_refs() {
    let error = validation_error("targetRef: {kind: Gateway, name: gw}");
    assert_eq!(error.path, "spec.targetRef");
    assert!(error.message.contains("not supported"), "{error}");
    let error = validation_error("targetRefs: [{kind: Service, name: reviews}]");
    assert_eq!(error.path, "spec.targetRefs");
}

#[test]
fn validate_rejects_bad_ip_blocks() {
    let error =
        validation_error("rules: [{from: [{source: {ipBlocks: [10.0.0.1, 10.0.0.0/33]}}]}]");
    assert_eq!(error.path, "spec.rules[0].from[0].source.ipBlocks[1]");
    assert!(error.message.contains("10.0.0.0/33"), "{error}");
    let error =
        validation_error("rules: [{}, {from: [{source: {notRemoteIpBlocks: [host.local]}}]}]");
    assert_eq!(
        error.path,
        "spec.rules[1].from[0].source.notRemoteIpBlocks[0]"
    );
}

#[test]
fn validate_rejects_bad_ports() {
    for port in ["65536", "80a", "-1", "http"] {
        let spec = format!("rules: [{{to: [{{operation: {{ports: ['{port}']}}}}]}}]");
        let error = validation_error(&spec);
        assert_eq!(
            error.path, "spec.rules[0].to[0].operation.ports[0]",
            "{port}"
        );
    }
    let error = validation_error("rules: [{when: [{key: destination.port, values: ['99999']}]}]");
    assert_eq!(error.path, "spec.rules[0].when[0].values[0]");
}

#[test]
fn validate_rejects_bad_when() {
    let error = validation_error("rules: [{when: [{key: request.method, values: [GET]}]}]");
    assert_eq!(error.path, "spec.rules[0].when[0].key");
    assert!(
        error.message.contains("source.ip"),
        "lists supported keys: {error}"
    );

    let error = validation_error("rules: [{when: [{key: source.ip}]}]");
    assert_eq!(error.path, "spec.rules[0].when[0]");
    assert!(error.message.contains("values or notValues"), "{error}");

    let error = validation_error("rules: [{when: [{key: source.ip, values: [], notValues: []}]}]");
    assert_eq!(error.path, "spec.rules[0].when[0]");

    let error = validation_error("rules: [{when: [{key: remote.ip, notValues: [1.2.3.4/99]}]}]");
    assert_eq!(error.path, "spec.rules[0].when[0].notValues[0]");

    for key in [
        "request.headers[]",
        "request.headers",
        "request.auth.claims[a",
        "request.auth.claims[a]b",
    ] {
        let spec = format!("rules: [{{when: [{{key: '{key}', values: [x]}}]}}]");
        assert_eq!(
            validation_error(&spec).path,
            "spec.rules[0].when[0].key",
            "{key}"
        );
    }

    let error = validation_error(
        "rules: [{when: [{key: 'experimental.envoy.filters.a[b]', values: [x]}]}]",
    );
    assert!(
        error.message.contains("not supported") || error.message.contains("unsupported"),
        "{error}"
    );
}

#[test]
fn validate_rejects_empty_values() {
    let error = validation_error("rules: [{from: [{source: {principals: ['a', '']}}]}]");
    assert_eq!(error.path, "spec.rules[0].from[0].source.principals[1]");
    let error = validation_error("rules: [{to: [{operation: {methods: ['']}}]}]");
    assert_eq!(error.path, "spec.rules[0].to[0].operation.methods[0]");
    let error = validation_error("rules: [{when: [{key: source.principal, values: ['']}]}]");
    assert_eq!(error.path, "spec.rules[0].when[0].values[0]");
}

#[test]
fn validate_rejects_empty_structures() {
    assert_eq!(
        validation_error("rules: [{from: []}]").path,
        "spec.rules[0].from"
    );
    assert_eq!(
        validation_error("rules: [{to: []}]").path,
        "spec.rules[0].to"
    );
    assert_eq!(
        validation_error("rules: [{from: [{source: {}}]}]").path,
        "spec.rules[0].from[0].source"
    );
    assert_eq!(
        validation_error("rules: [{to: [{operation: {paths: []}}]}]").path,
        "spec.rules[0].to[0].operation"
    );
}

#[test]
fn validate_accepts_deny_without_rules() {
    // It matches nothing, so it denies nothing; the store logs a warning.
    assert_valid("action: DENY");
}

#[test]
fn validate_rejects_service_accounts_mix() {
    let error =
        validation_error("rules: [{from: [{source: {serviceAccounts: [a], notNamespaces: [b]}}]}]");
    assert_eq!(error.path, "spec.rules[0].from[0].source");
    assert!(error.message.contains("serviceAccounts"), "{error}");
    let error = validation_error("rules: [{from: [{source: {serviceAccounts: ['ns/*']}}]}]");
    assert_eq!(
        error.path,
        "spec.rules[0].from[0].source.serviceAccounts[0]"
    );
    let error = validation_error("rules: [{from: [{source: {serviceAccounts: [a/b/c]}}]}]");
    assert_eq!(
        error.path,
        "spec.rules[0].from[0].source.serviceAccounts[0]"
    );
}

#[test]
fn validate_rejects_bad_path_templates() {
    for path in [
        "/{**}/foo/{*}",
        "/foo/{*}.txt",
        "/*/baz/{*}",
        "/foo/{bar}/{*}",
        "/{**}/{**}",
    ] {
        let spec = format!("rules: [{{to: [{{operation: {{notPaths: ['{path}']}}}}]}}]");
        let error = validation_error(&spec);
        assert_eq!(
            error.path, "spec.rules[0].to[0].operation.notPaths[0]",
            "{path}"
        );
    }
}

#[test]
fn validate_rejects_wildcard_selector() {
    let error = validation_error("selector: {matchLabels: {app: 'rev*'}}");
    assert_eq!(error.path, "spec.selector.matchLabels[app]");
}

#[test]
fn field_error_display() {
    let error = validation_error("rules: [{to: [{operation: {ports: [x]}}]}]");
    assert_eq!(
        error.to_string(),
        "spec.rules[0].to[0].operation.ports[0]: invalid port \"x\": expected decimal digits"
    );
}
