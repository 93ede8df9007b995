//! Cost of one authorization decision as the number of policies grows.
//!
//! Run with `cargo bench -p mesh --bench authz`. Besides criterion's report, the run prints
//! the median cost of a decision with 1000 policies in the mesh divided by the cost with
//! one policy, both measured in the same run.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use http::{HeaderMap, HeaderValue};

use mesh::authz::{HttpAttributes, RequestAttributes, WorkloadAuthorizer};
use mesh::config::{AuthorizationPolicySpec, ObjectMeta, Resource, Snapshot, Spec};
use mesh::identity::SpiffeId;
use mesh::workload::WorkloadMeta;

/// The Istio task's policy for reviews: GET from productpage only.
const REVIEWS_VIEWER: &str = r#"
selector: {matchLabels: {app: reviews}}
action: ALLOW
rules:
- from: [{source: {principals: ["cluster.local/ns/default/sa/bookinfo-productpage"]}}]
  to: [{operation: {methods: ["GET"]}}]
"#;

fn resource(index: usize, namespace: &str, name: String, spec: &str) -> Arc<Resource> {
    let spec: AuthorizationPolicySpec =
        serde_yaml::from_str(spec).expect("benchmark policies are valid YAML");
    Arc::new(Resource {
        api_version: "security.istio.io/v1".into(),
        meta: ObjectMeta {
            name,
            namespace: namespace.into(),
            ..ObjectMeta::default()
        },
        created: index as u64,
        spec: Spec::AuthorizationPolicy(spec),
    })
}

/// Policies on reviews that productpage's request does not match: two DENY policies in
/// reviews' namespace, one mesh-wide, and an AUDIT policy.
const NON_MATCHING_ON_REVIEWS: [(&str, &str, &str); 4] = [
    (
        "default",
        "deny-admin",
        "selector: {matchLabels: {app: reviews}}
action: DENY
rules: [{to: [{operation: {paths: ['/admin*', '/debug/*']}}]}]",
    ),
    (
        "default",
        "deny-plaintext",
        "action: DENY
rules: [{from: [{source: {notPrincipals: ['*']}}], to: [{operation: {ports: ['9080']}}]}]",
    ),
    (
        "istio-system",
        "deny-blocked-ips",
        "action: DENY
rules: [{from: [{source: {ipBlocks: [192.0.2.0/24, 198.51.100.0/24]}}]}]",
    ),
    (
        "default",
        "audit-writes",
        "action: AUDIT
rules: [{to: [{operation: {methods: [POST, PUT, DELETE]}}]}]",
    ),
];

/// Builds ten policies that all select reviews. The request matches only the last ALLOW
/// policy, so every policy is evaluated.
fn ten_policies_on_reviews() -> Snapshot {
    let mut resources: Vec<_> = NON_MATCHING_ON_REVIEWS
        .iter()
        .enumerate()
        .map(|(index, (namespace, name, spec))| resource(index, namespace, name.to_string(), spec))
        .collect();
    for index in resources.len()..9 {
        let spec = format!(
            "selector: {{matchLabels: {{app: reviews}}}}
rules:
- from: [{{source: {{principals: [cluster.local/ns/default/sa/client-{index}]}}}}]
  when: [{{key: 'request.headers[x-tenant]', values: [tenant-{index}]}}]"
        );
        resources.push(resource(
            index,
            "default",
            format!("allow-client-{index}"),
            &spec,
        ));
    }
    resources.push(resource(
        9,
        "default",
        "reviews-viewer".into(),
        REVIEWS_VIEWER,
    ));
    Snapshot {
        version: 1,
        resources,
    }
}

/// Builds a mesh of `total` policies: the reviews viewer policy and `total - 1` policies that
/// select other workloads, in reviews' namespace, in other namespaces and mesh-wide.
fn mesh_with(total: usize) -> Snapshot {
    let mut resources = vec![resource(
        0,
        "default",
        "reviews-viewer".into(),
        REVIEWS_VIEWER,
    )];
    for index in 1..total {
        let namespace = match index % 3 {
            0 => "default".to_string(),
            1 => format!("team-{}", index % 50),
            _ => "istio-system".to_string(),
        };
        let spec = format!(
            "selector: {{matchLabels: {{app: service-{index}}}}}
rules:
- from: [{{source: {{namespaces: [team-{index}]}}}}]
  to: [{{operation: {{methods: [GET], paths: ['/api/*']}}}}]"
        );
        resources.push(resource(
            index,
            &namespace,
            format!("policy-{index}"),
            &spec,
        ));
    }
    Snapshot {
        version: 1,
        resources,
    }
}

fn reviews() -> WorkloadMeta {
    WorkloadMeta {
        name: "reviews-v2".into(),
        namespace: "default".into(),
        service_account: "bookinfo-reviews".into(),
        labels: BTreeMap::from([
            ("app".to_string(), "reviews".to_string()),
            ("version".to_string(), "v2".to_string()),
        ]),
        services: Vec::new(),
        sidecar: true,
    }
}

struct Request {
    peer: SpiffeId,
    headers: HeaderMap,
}

impl Request {
    /// Builds productpage's call to reviews, with the headers a Bookinfo request carries.
    fn productpage_to_reviews() -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            "user-agent",
            HeaderValue::from_static("python-requests/2.31"),
        );
        headers.insert("x-request-id", HeaderValue::from_static("5d1a9c6e-4f0b"));
        headers.insert("x-tenant", HeaderValue::from_static("bookinfo"));
        Self {
            peer: SpiffeId::new("cluster.local", "default", "bookinfo-productpage"),
            headers,
        }
    }

    fn attributes(&self) -> RequestAttributes<'_> {
        RequestAttributes {
            source_ip: [10, 0, 0, 7].into(),
            remote_ip: [10, 0, 0, 7].into(),
            source_principal: Some(&self.peer),
            destination_ip: [10, 0, 0, 9].into(),
            destination_port: 9080,
            sni: Some("outbound_.9080_._.reviews.default.svc.cluster.local"),
            http: Some(HttpAttributes {
                method: "GET",
                host: "reviews:9080",
                path: "/reviews/0",
                headers: &self.headers,
                auth: None,
            }),
        }
    }
}

fn authorizer(snapshot: &Snapshot) -> WorkloadAuthorizer {
    let authorizer = WorkloadAuthorizer::compile(snapshot, &reviews());
    let request = Request::productpage_to_reviews();
    let decision = authorizer.evaluate(&request.attributes());
    assert!(
        decision.allowed,
        "benchmark request must be allowed: {decision}"
    );
    authorizer
}

fn decisions(c: &mut Criterion) {
    let request = Request::productpage_to_reviews();
    let attributes = request.attributes();
    let mut group = c.benchmark_group("authz_decision");
    let cases = [
        ("reviews_1_policy", mesh_with(1)),
        ("reviews_10_policies", ten_policies_on_reviews()),
        ("mesh_10_policies", mesh_with(10)),
        ("mesh_100_policies", mesh_with(100)),
        ("mesh_1000_policies", mesh_with(1000)),
    ];
    for (name, snapshot) in cases {
        let authorizer = authorizer(&snapshot);
        group.bench_function(name, |b| {
            b.iter(|| black_box(authorizer.evaluate(black_box(&attributes))))
        });
    }
    group.finish();
}

/// Returns the median nanoseconds per decision over `rounds` timed batches.
fn median_nanos(authorizer: &WorkloadAuthorizer, rounds: usize, batch: u32) -> f64 {
    let request = Request::productpage_to_reviews();
    let attributes = request.attributes();
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(authorizer.evaluate(black_box(&attributes)));
            }
            start.elapsed().as_nanos() as f64 / f64::from(batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Prints the 1000-policy to 1-policy cost ratio, timing both in alternating rounds so
/// that frequency changes and other load affect both alike.
fn print_growth_ratio() {
    let one = authorizer(&mesh_with(1));
    let thousand = authorizer(&mesh_with(1000));
    let ten = authorizer(&ten_policies_on_reviews());
    let (mut one_ns, mut thousand_ns, mut ten_ns) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        one_ns.push(median_nanos(&one, 21, 20_000));
        thousand_ns.push(median_nanos(&thousand, 21, 20_000));
        ten_ns.push(median_nanos(&ten, 21, 20_000));
    }
    for samples in [&mut one_ns, &mut thousand_ns, &mut ten_ns] {
        samples.sort_by(f64::total_cmp);
    }
    let (one, thousand, ten) = (one_ns[7], thousand_ns[7], ten_ns[7]);
    eprintln!(
        "authz decision p50: 1 policy {one:.1} ns, 10 policies on the workload {ten:.1} ns, \
         1000 policies in the mesh {thousand:.1} ns; ratio 1000/1 = {:.2}",
        thousand / one
    );
}

criterion_group!(benches, decisions);

fn main() {
    benches();
    print_growth_ratio();
    Criterion::default().configure_from_args().final_summary();
}
