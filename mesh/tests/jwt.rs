//! End-user authentication through real sidecars on loopback: RequestAuthentication,
//! legacy origins, JWKS fetching and authorization on token claims, with tokens signed by
//! Istio's sample key and by keys made in the test.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mesh::authn::issuer::MintRequest;
use mesh::config::parse_documents;
use mesh::control::{ControlPlane, ControlPlaneOptions};
use mesh::sidecar::{AppService, InboundOptions, OutboundClient, SendOptions, Sidecar, Timeouts};
use mesh::workload::{ServicePort, ServiceRef, WorkloadMeta};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

const SAMPLE_KEY: &str = include_str!("../data/istio-samples/key.pem");
const SAMPLE_JWKS: &str = include_str!("../data/istio-samples/jwks.json");
const SAMPLE_KID: &str = "DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ";
const SAMPLE_ISSUER: &str = "testing@secure.istio.io";
const DEMO_JWT: &str = include_str!("../data/istio-samples/demo.jwt");
const GROUPS_JWT: &str = include_str!("../data/istio-samples/groups-scope.jwt");
const PORT: u16 = 8080;

/// Each test gets its own /24 in 127.0.0.0/8 so tests can run in parallel.
fn subnet() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    Ipv4Addr::new(127, 150 + (pid % 50) as u8, (n % 250) as u8 + 1, 0)
}

fn ip(subnet: Ipv4Addr, host: u8) -> IpAddr {
    let o = subnet.octets();
    IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], host))
}

fn workload(name: &str, namespace: &str) -> WorkloadMeta {
    WorkloadMeta {
        name: name.to_string(),
        namespace: namespace.to_string(),
        service_account: name.to_string(),
        labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        services: vec![ServiceRef {
            name: name.to_string(),
            namespace: namespace.to_string(),
            ports: vec![ServicePort {
                port: PORT,
                target_port: PORT,
                name: "http".to_string(),
            }],
        }],
        sidecar: true,
    }
}

/// An app that answers with the request headers it received, one `name: value` a line.
fn headers_app() -> AppService {
    AppService::new(tower::service_fn(
        |request: Request<mesh::sidecar::inbound::AppBody>| async move {
            let mut text = String::new();
            for (name, value) in request.headers() {
                text.push_str(&format!(
                    "{}: {}\n",
                    name,
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            let body = Full::new(Bytes::from(text))
                .map_err(|never| match never {})
                .boxed_unsync();
            Ok::<_, Infallible>(Response::new(body))
        },
    ))
}

struct Mesh {
    control: ControlPlane,
    subnet: Ipv4Addr,
    sidecars: Vec<Sidecar>,
}

impl Mesh {
    fn new() -> Self {
        Self {
            control: ControlPlane::new(ControlPlaneOptions::default()),
            subnet: subnet(),
            sidecars: Vec::new(),
        }
    }

    async fn start(&mut self, host: u8, meta: WorkloadMeta) -> OutboundClient {
        let options = InboundOptions {
            timeouts: Timeouts {
                handshake: Duration::from_millis(500),
                ..Timeouts::default()
            },
            ..InboundOptions::default()
        };
        let sidecar = Sidecar::start(
            &self.control,
            meta,
            ip(self.subnet, host),
            |_| headers_app(),
            options,
        )
        .await
        .expect("workload starts");
        let client = sidecar.outbound().clone();
        self.sidecars.push(sidecar);
        client
    }

    fn outsider(&self) -> OutboundClient {
        OutboundClient::new(
            None,
            "default",
            ip(self.subnet, 250),
            None,
            self.control.context().clone(),
            Timeouts::default(),
        )
    }

    fn apply(&self, yaml: &str) {
        let docs = parse_documents(yaml, "test.yaml").expect("test policy is valid");
        self.control.store().apply(docs);
    }

    fn reset(&self) {
        self.control.store().reset();
    }

    /// Starts a client workload and an `echo` server in namespace `default`.
    async fn pair() -> (Mesh, OutboundClient) {
        let mut mesh = Mesh::new();
        mesh.start(1, workload("echo", "default")).await;
        let client = mesh.start(2, workload("client", "default")).await;
        (mesh, client)
    }
}

struct Reply {
    status: u16,
    body: String,
    headers: http::HeaderMap,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(client: &OutboundClient, method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Bytes::new()).unwrap();
    let (response, _) = client
        .send(request, SendOptions::default())
        .await
        .unwrap_or_else(|error| panic!("{method} {url} failed: {error}"));
    Reply {
        status: response.status().as_u16(),
        body: String::from_utf8_lossy(response.body()).into_owned(),
        headers: response.headers().clone(),
    }
}

async fn get(client: &OutboundClient, path: &str, token: Option<&str>) -> Reply {
    let url = format!("http://echo:{PORT}{path}");
    match token {
        Some(token) => {
            let bearer = format!("Bearer {token}");
            send(client, "GET", &url, &[("authorization", bearer.as_str())]).await
        }
        None => send(client, "GET", &url, &[]).await,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs `claims` with Istio's sample RSA key, as the sample JWKS expects.
fn sample_token(claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(SAMPLE_KID.to_string());
    let key = EncodingKey::from_rsa_pem(SAMPLE_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn sample_claims(extra: Value) -> Value {
    let mut claims = json!({"iss": SAMPLE_ISSUER, "sub": "alice", "exp": now() + 600});
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

/// A fresh P-256 key with its JWKS.
struct EcKey {
    encoding: EncodingKey,
    jwks: String,
}

impl EcKey {
    fn generate(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": b64.encode(&point[1..33]), "y": b64.encode(&point[33..65]),
        }]})
        .to_string();
        Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwks,
        }
    }

    fn sign(&self, kid: &str, claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }
}

/// Serves `body` at every path of a loopback HTTP server; returns its base URL and a hit
/// counter.
async fn serve_jwks(body: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        for _ in 0..1000 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}

fn request_authn(name: &str, namespace: &str, selector: &str, rules: &str) -> String {
    format!(
        "
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  {selector}
  jwtRules:
{rules}"
    )
}

/// A jwtRules entry for Istio's sample issuer with the sample JWKS inline.
fn sample_rule(extra: &str) -> String {
    format!("  - issuer: {SAMPLE_ISSUER}\n    jwks: '{SAMPLE_JWKS}'\n{extra}")
}

const REQUIRE_PRINCIPAL: &str = "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - from:
    - source:
        requestPrincipals: ['*']
";

#[tokio::test]
async fn missing_token_passes_authentication() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&request_authn(
        "echo",
        "default",
        "selector: {matchLabels: {app: echo}}",
        &sample_rule(""),
    ));

    let reply = get(&client, "/", None).await;
    assert_eq!(reply.status, 200);
    let timing = reply.headers.get_all("server-timing");
    assert!(timing
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("authn;dur=")));

    mesh.apply(REQUIRE_PRINCIPAL);
    let reply = get(&client, "/", None).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, "RBAC: access denied");
    assert_eq!(reply.header("www-authenticate"), None);

    let reply = get(&client, "/", Some(DEMO_JWT.trim())).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn failure_table_bodies() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&request_authn("echo", "default", "", &sample_rule("")));
    let demo = DEMO_JWT.trim();
    let (head, payload, signature) = {
        let parts: Vec<&str> = demo.split('.').collect();
        (parts[0], parts[1], parts[2])
    };
    let flipped = format!(
        "{head}.{payload}.{}{}",
        if signature.starts_with('A') { "B" } else { "A" },
        &signature[1..]
    );
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    let mut unknown_kid_header = Header::new(Algorithm::RS256);
    unknown_kid_header.kid = Some("another-kid".to_string());
    let unknown_kid = jsonwebtoken::encode(
        &unknown_kid_header,
        &sample_claims(json!({})),
        &EncodingKey::from_rsa_pem(SAMPLE_KEY.as_bytes()).unwrap(),
    )
    .unwrap();

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "two parts",
            "invalidToken".into(),
            "Jwt is not in the form of Header.Payload.Signature",
        ),
        (
            "four parts",
            "a.b.c.d".into(),
            "Jwt is not in the form of Header.Payload.Signature",
        ),
        (
            "undecodable",
            "some.invalid.token".into(),
            "Jwt header is an invalid Base64url input or an invalid JSON",
        ),
        (
            "bad payload",
            format!("{head}.bm90IGpzb24.{signature}"),
            "Jwt payload is an invalid Base64url input or an invalid JSON",
        ),
        (
            "unknown issuer",
            sample_token(sample_claims(json!({"iss": "other@example.com"}))),
            "Jwt issuer is not configured",
        ),
        ("bad signature", flipped, "Jwt verification fails"),
        (
            "expired",
            sample_token(sample_claims(json!({"exp": now() - 120}))),
            "Jwt is expired",
        ),
        (
            "not yet valid",
            sample_token(sample_claims(json!({"nbf": now() + 600}))),
            "Jwt not yet valid",
        ),
        (
            "unknown kid",
            unknown_kid,
            "Jwks doesn't have key to match kid or alg from Jwt",
        ),
        ("alg none", alg_none, "Jwt header [alg] is not supported"),
    ];
    for (case, token, body) in cases {
        let reply = get(&client, "/some/path?q=1", Some(&token)).await;
        assert_eq!(reply.status, 401, "{case}");
        assert_eq!(reply.body, body, "{case}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(
                format!("Bearer realm=\"http://echo:{PORT}/some/path\", error=\"invalid_token\"")
                    .as_str()
            ),
            "{case}"
        );
    }

    // Envoy allows 60 s of clock skew on both exp and nbf.
    let just_expired = sample_token(sample_claims(json!({"exp": now() - 5})));
    assert_eq!(get(&client, "/", Some(&just_expired)).await.status, 200);
    let almost_valid = sample_token(sample_claims(json!({"nbf": now() + 5})));
    assert_eq!(get(&client, "/", Some(&almost_valid)).await.status, 200);
    let no_exp = sample_token(json!({"iss": SAMPLE_ISSUER, "sub": "x"}));
    assert_eq!(get(&client, "/", Some(&no_exp)).await.status, 200);
}

#[tokio::test]
async fn audience_mismatch_is_403() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&request_authn(
        "echo",
        "default",
        "",
        &sample_rule("    audiences: [svc-a, svc-b]\n"),
    ));

    let wrong = sample_token(sample_claims(json!({"aud": "other"})));
    let reply = get(&client, "/", Some(&wrong)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, "Audiences in Jwt are not allowed");
    assert_eq!(reply.header("www-authenticate"), None);

    let missing = sample_token(sample_claims(json!({})));
    assert_eq!(get(&client, "/", Some(&missing)).await.status, 403);

    let listed = sample_token(sample_claims(json!({"aud": ["x", "svc-b"]})));
    assert_eq!(get(&client, "/", Some(&listed)).await.status, 200);
}

#[tokio::test]
async fn token_header_removed_unless_forwarded() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&request_authn("echo", "default", "", &sample_rule("")));
    let token = sample_token(sample_claims(json!({})));

    let reply = get(&client, "/", Some(&token)).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.body.contains("authorization:"), "{}", reply.body);

    mesh.apply(&request_authn(
        "echo",
        "default",
        "",
        &sample_rule("    forwardOriginalToken: true\n"),
    ));
    let reply = get(&client, "/", Some(&token)).await;
    assert!(
        reply
            .body
            .contains(&format!("authorization: Bearer {token}")),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn outputs_replace_forged_headers() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&request_authn(
        "echo",
        "default",
        "",
        &sample_rule(
            "    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - {header: x-jwt-foo, claim: foo}
    - {header: x-jwt-nested, claim: a.b}
    - {header: x-jwt-number, claim: n}
",
        ),
    ));
    let url = format!("http://echo:{PORT}/");

    let forged = [("x-jwt-foo", "forged"), ("x-jwt-payload", "forged")];
    let reply = send(&client, "GET", &url, &forged).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.body.contains("forged"), "{}", reply.body);

    let token = sample_token(sample_claims(
        json!({"foo": "bar", "a": {"b": "deep"}, "n": 7}),
    ));
    let bearer = format!("Bearer {token}");
    let mut headers = forged.to_vec();
    headers.push(("authorization", bearer.as_str()));
    let reply = send(&client, "GET", &url, &headers).await;
    let payload = token.split('.').nth(1).unwrap();
    assert!(reply.body.contains("x-jwt-foo: bar\n"), "{}", reply.body);
    assert!(
        reply.body.contains("x-jwt-nested: deep\n"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("x-jwt-number: 7\n"), "{}", reply.body);
    assert!(
        reply.body.contains(&format!("x-jwt-payload: {payload}\n")),
        "{}",
        reply.body
    );
    assert!(!reply.body.contains("forged"), "{}", reply.body);
}

#[tokio::test]
async fn custom_locations_replace_defaults() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&request_authn(
        "echo",
        "default",
        "",
        &sample_rule(
            "    fromHeaders: [{name: x-token, prefix: 'Tok '}]
    fromParams: [tk]
",
        ),
    ));
    mesh.apply(REQUIRE_PRINCIPAL);
    let token = sample_token(sample_claims(json!({})));
    let url = format!("http://echo:{PORT}/");

    let bearer = format!("Bearer {token}");
    let reply = send(&client, "GET", &url, &[("authorization", bearer.as_str())]).await;
    assert_eq!(
        reply.status, 403,
        "Authorization is not a location any more"
    );

    let prefixed = format!("Tok {token}");
    let reply = send(&client, "GET", &url, &[("x-token", prefixed.as_str())]).await;
    assert_eq!(reply.status, 200);

    let reply = send(&client, "GET", &url, &[("x-token", token.as_str())]).await;
    assert_eq!(
        reply.status, 403,
        "a value without the prefix is not a token"
    );

    let reply = send(&client, "GET", &format!("{url}?tk={token}"), &[]).await;
    assert_eq!(reply.status, 200);

    let reply = send(&client, "GET", &format!("{url}?access_token={token}"), &[]).await;
    assert_eq!(reply.status, 403, "access_token is a default location only");
}

#[tokio::test]
async fn rules_merge_with_root_namespace() {
    let mut mesh = Mesh::new();
    mesh.start(1, workload("echo", "default")).await;
    let client = mesh.start(2, workload("client", "default")).await;
    mesh.start(3, workload("echo", "other")).await;
    mesh.apply(&request_authn(
        "mesh-wide",
        "istio-system",
        "selector: {matchLabels: {app: echo}}",
        &sample_rule(""),
    ));
    mesh.apply(&request_authn(
        "lab",
        "default",
        "",
        "  - issuer: meshlab@cluster.local\n",
    ));
    let lab_token = mesh
        .control
        .mint_token(&MintRequest {
            sub: Some("bob".to_string()),
            ..MintRequest::default()
        })
        .unwrap();
    let sample = sample_token(sample_claims(json!({})));

    assert_eq!(get(&client, "/", Some(&sample)).await.status, 200);
    assert_eq!(get(&client, "/", Some(&lab_token)).await.status, 200);

    let other = |token: String| {
        let client = client.clone();
        async move {
            let bearer = format!("Bearer {token}");
            let url = format!("http://echo.other:{PORT}/");
            send(&client, "GET", &url, &[("authorization", bearer.as_str())]).await
        }
    };
    assert_eq!(other(sample.clone()).await.status, 200);
    let reply = other(lab_token).await;
    assert_eq!(
        reply.status, 401,
        "the default namespace rule does not reach other"
    );
    assert_eq!(reply.body, "Jwt issuer is not configured");

    // Two resources naming one issuer combine: either audience list accepts.
    mesh.apply(&request_authn(
        "aud-a",
        "default",
        "",
        &sample_rule("    audiences: [a]\n"),
    ));
    mesh.apply(&request_authn(
        "aud-b",
        "default",
        "",
        &sample_rule("    audiences: [b]\n"),
    ));
    let for_b = sample_token(sample_claims(json!({"aud": "b"})));
    assert_eq!(get(&client, "/", Some(&for_b)).await.status, 200);
}

#[tokio::test]
async fn jwks_uri_fetched_once_and_cached() {
    let (mesh, client) = Mesh::pair().await;
    let key = EcKey::generate("k1");
    let (base, hits) = serve_jwks(key.jwks.clone()).await;
    mesh.apply(&request_authn(
        "echo",
        "default",
        "",
        &format!("  - issuer: issuer-a\n    jwksUri: {base}/jwks.json\n"),
    ));
    mesh.apply(REQUIRE_PRINCIPAL);

    for sub in ["a", "b", "c"] {
        let token = key.sign(
            "k1",
            json!({"iss": "issuer-a", "sub": sub, "exp": now() + 60}),
        );
        assert_eq!(get(&client, "/", Some(&token)).await.status, 200);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let other_key = EcKey::generate("k1");
    let forged = other_key.sign("k1", json!({"iss": "issuer-a", "sub": "x"}));
    let reply = get(&client, "/", Some(&forged)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, "Jwt verification fails");
}

#[tokio::test]
async fn unreachable_jwks_rejects_tokens_only() {
    let (mesh, client) = Mesh::pair().await;
    // Bind and drop a listener so that the port is closed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    mesh.apply(&request_authn(
        "echo",
        "default",
        "",
        &format!("  - issuer: issuer-a\n    jwksUri: http://{closed}/jwks.json\n    timeout: 2s\n"),
    ));
    let key = EcKey::generate("k1");
    let token = key.sign("k1", json!({"iss": "issuer-a", "sub": "a"}));

    let reply = get(&client, "/", Some(&token)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, "Jwks remote fetch is failed");
    assert_eq!(get(&client, "/", None).await.status, 200);
    assert_eq!(get(&client, "/", Some(&token)).await.status, 401);
}

#[tokio::test]
async fn bad_inputs_get_401() {
    let (mesh, client) = Mesh::pair().await;
    let bad_and_good = format!(
        r#"{{"keys":[{{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}},{}]}}"#,
        &SAMPLE_JWKS[SAMPLE_JWKS.find('[').unwrap() + 1..SAMPLE_JWKS.rfind(']').unwrap()]
    );
    mesh.apply(&request_authn(
        "echo",
        "default",
        "",
        &format!(
            "  - issuer: {SAMPLE_ISSUER}\n    jwks: '{bad_and_good}'\n  - issuer: only-bad\n    jwks: '{{\"keys\":[{{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}}]}}'\n"
        ),
    ));
    let good = sample_token(sample_claims(json!({})));

    // A bad key next to a good one leaves the good one usable.
    assert_eq!(get(&client, "/", Some(&good)).await.status, 200);

    let only_bad = sample_token(sample_claims(json!({"iss": "only-bad"})));
    let reply = get(&client, "/", Some(&only_bad)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, "Jwks doesn't have any valid public key");

    // Every token must verify: a good one in the header and a bad one in the query fail.
    let url = format!("http://echo:{PORT}/?access_token=deadbeef");
    let bearer = format!("Bearer {good}");
    let reply = send(&client, "GET", &url, &[("authorization", bearer.as_str())]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.body,
        "Jwt is not in the form of Header.Payload.Signature"
    );

    // An HMAC token keyed with the RSA key's public modulus must not pass or crash.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &sample_claims(json!({})),
        &EncodingKey::from_secret(b"AQAB"),
    )
    .unwrap();
    let reply = get(&client, "/", Some(&hs)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.body,
        "Jwks doesn't have key to match kid or alg from Jwt"
    );

    // A 100 KB token is larger than the sidecar reads for a request head.
    let huge = format!("Bearer {}", "a".repeat(100 * 1024));
    let url = format!("http://echo:{PORT}/");
    let request = Request::get(&url)
        .header("authorization", huge)
        .body(Bytes::new())
        .unwrap();
    let result = client.send(request, SendOptions::default()).await;
    if let Ok((response, _)) = result {
        assert_ne!(response.status().as_u16(), 200);
    }
    assert_eq!(get(&client, "/", Some(&good)).await.status, 200);
}

#[tokio::test]
async fn cors_preflight_skips_jwt() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&request_authn("echo", "default", "", &sample_rule("")));
    let url = format!("http://echo:{PORT}/");
    let preflight = [
        ("origin", "http://example.com"),
        ("access-control-request-method", "GET"),
        ("authorization", "Bearer deadbeef"),
    ];
    assert_eq!(send(&client, "OPTIONS", &url, &preflight).await.status, 200);
    let plain_options = [("authorization", "Bearer deadbeef")];
    assert_eq!(
        send(&client, "OPTIONS", &url, &plain_options).await.status,
        401
    );
}

#[tokio::test]
async fn authz_reads_token_attributes() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&request_authn("echo", "default", "", &sample_rule("")));
    mesh.apply(
        "
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: claims, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - to: [{operation: {paths: [/groups]}}]
    when: [{key: 'request.auth.claims[groups]', values: [group2]}]
  - to: [{operation: {paths: [/nested]}}]
    when: [{key: 'request.auth.claims[org][team]', values: [blue]}]
  - to: [{operation: {paths: [/aud]}}]
    when:
    - {key: request.auth.audiences, values: [web]}
    - {key: request.auth.presenter, values: [cli]}
  - to: [{operation: {paths: [/principal]}}]
    from: [{source: {requestPrincipals: ['testing@secure.istio.io/testing@secure.istio.io']}}]
",
    );

    assert_eq!(
        get(&client, "/groups", Some(GROUPS_JWT.trim()))
            .await
            .status,
        200
    );
    assert_eq!(
        get(&client, "/groups", Some(DEMO_JWT.trim())).await.status,
        403
    );
    let nested = sample_token(sample_claims(json!({"org": {"team": "blue"}})));
    assert_eq!(get(&client, "/nested", Some(&nested)).await.status, 200);
    let flat = sample_token(sample_claims(json!({"team": "blue"})));
    assert_eq!(get(&client, "/nested", Some(&flat)).await.status, 403);
    let aud = sample_token(sample_claims(json!({"aud": "web", "azp": "cli"})));
    assert_eq!(get(&client, "/aud", Some(&aud)).await.status, 200);
    let no_azp = sample_token(sample_claims(json!({"aud": "web"})));
    assert_eq!(get(&client, "/aud", Some(&no_azp)).await.status, 403);
    assert_eq!(
        get(&client, "/principal", Some(DEMO_JWT.trim()))
            .await
            .status,
        200
    );
    let alice = sample_token(sample_claims(json!({})));
    assert_eq!(get(&client, "/principal", Some(&alice)).await.status, 403);
}

fn legacy_policy(extra: &str) -> String {
    format!(
        "
apiVersion: authentication.istio.io/v1alpha1
kind: Policy
metadata: {{name: echo-authn, namespace: default}}
spec:
  targets: [{{name: echo}}]
  origins:
  - jwt:
      issuer: {SAMPLE_ISSUER}
      jwksUri: https://raw.githubusercontent.com/istio/istio/release-1.4/security/tools/jwt/samples/jwks.json
{extra}"
    )
}

#[tokio::test]
async fn legacy_origin_requires_token() {
    let (mesh, client) = Mesh::pair().await;
    // A STRICT mesh, but the service Policy without peers turns mTLS off for echo.
    mesh.apply(
        "
apiVersion: authentication.istio.io/v1alpha1
kind: MeshPolicy
metadata: {name: default}
spec:
  peers: [{mtls: {}}]
",
    );
    mesh.apply(&legacy_policy(""));
    let outsider = mesh.outsider();

    for caller in [&client, &outsider] {
        let reply = get(caller, "/", None).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body, "Origin authentication failed.");
        assert_eq!(reply.header("www-authenticate"), None);

        let reply = get(caller, "/", Some(DEMO_JWT.trim())).await;
        assert_eq!(reply.status, 200);
        assert!(
            reply.body.contains("authorization: Bearer"),
            "legacy forwards the token"
        );

        let expired = sample_token(sample_claims(json!({"exp": now() - 600})));
        let reply = get(caller, "/", Some(&expired)).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body, "Origin authentication failed.");
    }
}

#[tokio::test]
async fn legacy_principal_binding() {
    let (mesh, client) = Mesh::pair().await;
    let authz = "
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: by-principal, namespace: default}
spec:
  selector: {matchLabels: {app: echo}}
  rules:
  - to: [{operation: {paths: [/origin]}}]
    when: [{key: request.auth.principal, values: ['testing@secure.istio.io/testing@secure.istio.io']}]
  - to: [{operation: {paths: [/peer]}}]
    when: [{key: request.auth.principal, values: [cluster.local/ns/default/sa/client]}]
  - to: [{operation: {paths: [/claims]}}]
    when: [{key: 'request.auth.claims[foo]', values: [bar]}]
";
    mesh.apply(authz);
    let demo = DEMO_JWT.trim();

    mesh.apply(&legacy_policy(
        "  principalBinding: USE_ORIGIN\n  peers: [{mtls: {}}]\n",
    ));
    assert_eq!(get(&client, "/origin", Some(demo)).await.status, 200);
    assert_eq!(get(&client, "/peer", Some(demo)).await.status, 403);
    assert_eq!(get(&client, "/claims", Some(demo)).await.status, 200);

    mesh.apply(&legacy_policy(
        "  principalBinding: USE_PEER\n  peers: [{mtls: {}}]\n",
    ));
    assert_eq!(get(&client, "/origin", Some(demo)).await.status, 403);
    assert_eq!(get(&client, "/peer", Some(demo)).await.status, 200);
    assert_eq!(get(&client, "/claims", Some(demo)).await.status, 200);
}

#[tokio::test]
async fn legacy_trigger_rules_and_optional() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&legacy_policy(
        "      trigger_rules:
      - excluded_paths: [{exact: /api/health}]
        included_paths: [{prefix: /api}]
",
    ));
    assert_eq!(get(&client, "/api/health", None).await.status, 200);
    assert_eq!(get(&client, "/api/items", None).await.status, 401);
    assert_eq!(get(&client, "/other", None).await.status, 200);
    assert_eq!(
        get(&client, "/api/items", Some(DEMO_JWT.trim()))
            .await
            .status,
        200
    );

    mesh.reset();
    mesh.apply(&legacy_policy("  originIsOptional: true\n"));
    assert_eq!(get(&client, "/", None).await.status, 200);
    assert_eq!(get(&client, "/", Some("deadbeef")).await.status, 200);
}

#[tokio::test]
async fn lab_issuer_jwks_served_by_api() {
    let control = ControlPlane::new(ControlPlaneOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(mesh::control::api::serve(
        control.clone(),
        listener,
        shutdown.clone(),
    ));

    let body = http_get(addr, "/v1/jwks").await;
    let jwks: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], control.issuer().kid());
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert_eq!(http_get(addr, "/.well-known/jwks.json").await, body);
    shutdown.cancel();
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn request_authentication_takes_precedence_over_origins() {
    let (mesh, client) = Mesh::pair().await;
    mesh.apply(&legacy_policy(""));
    let reply = get(&client, "/", None).await;
    assert_eq!(reply.status, 401, "origins alone require a token");

    // With a RequestAuthentication on the same workload, only it applies, as in Istio
    // 1.5 where the v1beta1 resource wins: a missing token passes authentication.
    mesh.apply(&request_authn(
        "echo",
        "default",
        "selector: {matchLabels: {app: echo}}",
        &sample_rule(""),
    ));
    let reply = get(&client, "/", None).await;
    assert_eq!(reply.status, 200);
    let reply = get(&client, "/", Some(DEMO_JWT.trim())).await;
    assert_eq!(reply.status, 200);
    let expired = sample_token(sample_claims(json!({"exp": now() - 600})));
    let reply = get(&client, "/", Some(&expired)).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, "Jwt is expired");
}
