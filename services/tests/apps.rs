//! The Bookinfo apps over real HTTP: each router is served on a loopback port, and
//! productpage and reviews reach their upstreams through an `HttpSend` that maps
//! `details:9080` and the other service names to the test's own listeners.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use services::apps::{self, AppEnv, AppKind, ReviewsVersion};
use services::upstream::{BoxError, HttpClient, HttpSend, SendFuture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// === test plumbing ===

/// Serves `router` on an ephemeral loopback port, recording peer addresses.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    addr
}

/// Returns an address where nothing listens, so connecting is refused.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Sends one request over a fresh connection to `addr` and reads the whole response.
async fn send_to(
    addr: SocketAddr,
    request: http::Request<Bytes>,
) -> Result<http::Response<Bytes>, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);

    let (mut parts, body) = request.into_parts();
    if let Some(authority) = parts.uri.authority() {
        let host = http::HeaderValue::from_str(authority.as_str())?;
        parts.headers.insert(http::header::HOST, host);
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    parts.uri = path.parse()?;

    let response = sender
        .send_request(http::Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(http::Response::from_parts(parts, body))
}

/// An outbound client that resolves service names to test listeners.
struct NameMap {
    routes: HashMap<String, SocketAddr>,
}

impl HttpSend for NameMap {
    fn send(&self, request: http::Request<Bytes>) -> SendFuture<'_> {
        Box::pin(async move {
            let authority = request
                .uri()
                .authority()
                .map(|authority| authority.as_str().to_owned())
                .unwrap_or_default();
            let addr = *self
                .routes
                .get(&authority)
                .ok_or_else(|| format!("no route to {authority}"))?;
            send_to(addr, request).await
        })
    }
}

fn client(routes: &[(&str, SocketAddr)]) -> HttpClient {
    let routes = routes
        .iter()
        .map(|(name, addr)| (name.to_string(), *addr))
        .collect();
    Arc::new(NameMap { routes })
}

fn fast_env(client: HttpClient, pod_name: &str) -> AppEnv {
    let mut env = AppEnv::new(client, pod_name);
    env.timeouts.productpage_call = Duration::from_millis(500);
    env.timeouts.ratings_black = Duration::from_millis(500);
    env.timeouts.ratings_red = Duration::from_millis(300);
    env
}

async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Response<Bytes> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Bytes::from(body.to_owned())).unwrap();
    send_to(addr, request).await.unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> http::Response<Bytes> {
    call(addr, Method::GET, path, &[], "").await
}

fn body_text(response: &http::Response<Bytes>) -> String {
    String::from_utf8(response.body().to_vec()).unwrap()
}

fn body_json(response: &http::Response<Bytes>) -> Value {
    serde_json::from_slice(response.body()).unwrap()
}

fn content_type(response: &http::Response<Bytes>) -> &str {
    response.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
}

/// One scripted response of a [`Scripted`] backend.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    body: &'static str,
    delay: Duration,
}

fn reply(status: StatusCode, body: &'static str) -> Reply {
    Reply {
        status,
        body,
        delay: Duration::ZERO,
    }
}

const RBAC_DENIED: &str = "RBAC: access denied";

/// A backend that responds to its n-th request with the n-th reply (the last one repeats)
/// and records each request's path and headers.
#[derive(Clone, Default)]
struct Scripted {
    hits: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

impl Scripted {
    async fn start(replies: Vec<Reply>) -> (Self, SocketAddr) {
        let probe = Scripted::default();
        let recorder = probe.clone();
        let router = Router::new().fallback(move |request: Request| {
            let recorder = recorder.clone();
            let replies = replies.clone();
            async move {
                let index = recorder.hits.fetch_add(1, Ordering::SeqCst);
                recorder
                    .seen
                    .lock()
                    .unwrap()
                    .push((request.uri().path().to_owned(), request.headers().clone()));
                let reply = replies[index.min(replies.len() - 1)].clone();
                tokio::time::sleep(reply.delay).await;
                (reply.status, reply.body)
            }
        });
        let addr = serve(router).await;
        (probe, addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn request(&self, index: usize) -> (String, HeaderMap) {
        self.seen.lock().unwrap()[index].clone()
    }
}

const DETAILS_JSON: &str = r#"{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}"#;

/// Starts ratings, reviews of `version` and details, and returns productpage's client.
async fn bookinfo(version: ReviewsVersion) -> HttpClient {
    let ratings = serve(apps::ratings::router()).await;
    let ratings_client = client(&[("ratings:9080", ratings)]);
    let reviews_env = fast_env(ratings_client.clone(), "reviews-v-test");
    let reviews = serve(apps::reviews::router(version, reviews_env)).await;
    let details = serve(apps::details::router()).await;
    client(&[
        ("details:9080", details),
        ("reviews:9080", reviews),
        ("ratings:9080", ratings),
    ])
}

async fn productpage(client: HttpClient) -> SocketAddr {
    serve(apps::router(
        &AppKind::Productpage,
        fast_env(client, "productpage-test"),
    ))
    .await
}

// === app kinds ===

#[test]
fn app_kind_names() {
    let cases = [
        ("productpage", AppKind::Productpage),
        ("details", AppKind::Details),
        ("reviews", AppKind::Reviews(ReviewsVersion::V1)),
        ("reviews-v1", AppKind::Reviews(ReviewsVersion::V1)),
        ("reviews-v2", AppKind::Reviews(ReviewsVersion::V2)),
        ("reviews-v3", AppKind::Reviews(ReviewsVersion::V3)),
        ("ratings", AppKind::Ratings),
        ("httpbin", AppKind::Httpbin),
        ("sleep", AppKind::Sleep),
    ];
    for (name, kind) in cases {
        assert_eq!(name.parse::<AppKind>().unwrap(), kind, "{name}");
    }
}

#[test]
fn app_kind_unknown_lists_names() {
    let error = "reviews-v4".parse::<AppKind>().unwrap_err().to_string();
    assert!(error.contains("\"reviews-v4\""), "{error}");
    assert!(error.contains("productpage"), "{error}");
    assert!(error.contains("reviews-v3"), "{error}");
    assert!(error.contains("sleep"), "{error}");
}

// === details ===

#[tokio::test]
async fn details_book_in_order() {
    let addr = serve(apps::details::router()).await;

    let response = get(addr, "/details/0").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    assert_eq!(body_text(&response), DETAILS_JSON);

    let nested = get(addr, "/details/x/5").await;
    assert_eq!(nested.status(), StatusCode::OK);
    assert_eq!(body_json(&nested)["id"], 5);
}

#[tokio::test]
async fn details_non_numeric_400() {
    let addr = serve(apps::details::router()).await;
    for path in ["/details/abc", "/details/0x1f", "/details", "/details/%FF"] {
        let response = get(addr, path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(content_type(&response), "application/json", "{path}");
        assert_eq!(
            body_json(&response),
            json!({ "error": "please provide numeric product id" }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn details_health_json() {
    let addr = serve(apps::details::router()).await;
    let response = get(addr, "/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_json(&response),
        json!({ "status": "Details is healthy" })
    );
}

#[tokio::test]
async fn details_raw_non_utf8_path_4xx() {
    let addr = serve(apps::details::router()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /details/\xff\xfe HTTP/1.1\r\nHost: details\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let status_line = String::from_utf8_lossy(&answer);
    assert!(status_line.starts_with("HTTP/1.1 4"), "{status_line}");
}

// === ratings ===

#[tokio::test]
async fn ratings_default_and_health() {
    let addr = serve(apps::ratings::router()).await;

    let response = get(addr, "/ratings/7").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    assert_eq!(
        body_json(&response),
        json!({ "id": 7, "ratings": { "Reviewer1": 5, "Reviewer2": 4 } })
    );

    let health = get(addr, "/health").await;
    assert_eq!(
        body_json(&health),
        json!({ "status": "Ratings is healthy" })
    );
}

#[tokio::test]
async fn ratings_nan_400() {
    let addr = serve(apps::ratings::router()).await;
    for path in ["/ratings/abc", "/ratings/"] {
        let response = get(addr, path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            body_json(&response),
            json!({ "error": "please provide numeric product ID" }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn ratings_post_stores_in_memory() {
    let addr = serve(apps::ratings::router()).await;
    let posted = call(
        addr,
        Method::POST,
        "/ratings/3",
        &[],
        r#"{"Reviewer1": 1, "Reviewer2": 2}"#,
    )
    .await;
    assert_eq!(posted.status(), StatusCode::OK);
    let expected = json!({ "id": 3, "ratings": { "Reviewer1": 1, "Reviewer2": 2 } });
    assert_eq!(body_json(&posted), expected);

    assert_eq!(body_json(&get(addr, "/ratings/3").await), expected);
    assert_eq!(
        body_json(&get(addr, "/ratings/4").await)["ratings"]["Reviewer1"],
        5
    );

    let invalid = call(addr, Method::POST, "/ratings/3", &[], "{not json").await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        body_json(&invalid),
        json!({ "error": "please provide valid ratings JSON" })
    );
    assert_eq!(body_json(&get(addr, "/ratings/3").await), expected);
}

// === reviews ===

#[tokio::test]
async fn reviews_v1_without_rating() {
    let (ratings, ratings_addr) = Scripted::start(vec![reply(StatusCode::OK, "{}")]).await;
    let env = fast_env(client(&[("ratings:9080", ratings_addr)]), "reviews-v1-abc");
    let addr = serve(apps::reviews::router(ReviewsVersion::V1, env)).await;

    let response = get(addr, "/reviews/0").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    let text = body_text(&response);
    assert!(
        text.starts_with(
            r#"{"id":"0","podname":"reviews-v1-abc","clustername":"null","reviews":["#
        ),
        "{text}"
    );
    let body = body_json(&response);
    let reviews = body["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 2);
    assert_eq!(reviews[0]["reviewer"], "Reviewer1");
    assert_eq!(reviews[1]["reviewer"], "Reviewer2");
    assert!(reviews.iter().all(|review| review.get("rating").is_none()));
    assert_eq!(ratings.hits(), 0);
}

#[tokio::test]
async fn reviews_non_numeric_404() {
    let env = fast_env(client(&[]), "reviews-v1");
    let addr = serve(apps::reviews::router(ReviewsVersion::V1, env)).await;
    assert_eq!(
        get(addr, "/reviews/abc").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(addr, "/reviews/99999999999").await.status(),
        StatusCode::NOT_FOUND
    );
    let health = get(addr, "/health").await;
    assert_eq!(
        body_json(&health),
        json!({ "status": "Reviews is healthy" })
    );
}

#[tokio::test]
async fn reviews_v2_black_stars() {
    let ratings = serve(apps::ratings::router()).await;
    let mut env = fast_env(client(&[("ratings:9080", ratings)]), "reviews-v2-xyz");
    env.cluster_name = Some("east".to_owned());
    let addr = serve(apps::reviews::router(ReviewsVersion::V2, env)).await;

    let body = body_json(&get(addr, "/reviews/007").await);
    assert_eq!(body["id"], "7");
    assert_eq!(body["clustername"], "east");
    assert_eq!(
        body["reviews"][0]["rating"],
        json!({ "stars": 5, "color": "black" })
    );
    assert_eq!(
        body["reviews"][1]["rating"],
        json!({ "stars": 4, "color": "black" })
    );
}

#[tokio::test]
async fn reviews_v3_red_stars_and_forwarding() {
    let (ratings, ratings_addr) = Scripted::start(vec![reply(
        StatusCode::OK,
        r#"{"id":0,"ratings":{"Reviewer1":2,"Reviewer2":3}}"#,
    )])
    .await;
    let env = fast_env(client(&[("ratings:9080", ratings_addr)]), "reviews-v3");
    let addr = serve(apps::reviews::router(ReviewsVersion::V3, env)).await;

    let headers = [
        ("end-user", "jason"),
        ("x-request-id", "req-1"),
        ("authorization", "Bearer abc"),
        ("x-b3-parentspanid", "0000000000000001"),
        (
            "x-forwarded-client-cert",
            "By=spiffe://cluster.local/ns/default/sa/x",
        ),
    ];
    let body = body_json(&call(addr, Method::GET, "/reviews/0", &headers, "").await);
    assert_eq!(
        body["reviews"][0]["rating"],
        json!({ "stars": 2, "color": "red" })
    );
    assert_eq!(
        body["reviews"][1]["rating"],
        json!({ "stars": 3, "color": "red" })
    );

    assert_eq!(ratings.hits(), 1);
    let (path, seen) = ratings.request(0);
    assert_eq!(path, "/ratings/0");
    assert_eq!(seen["end-user"], "jason");
    assert_eq!(seen["x-request-id"], "req-1");
    assert_eq!(seen["authorization"], "Bearer abc");
    assert_eq!(seen["x-b3-parentspanid"], "0000000000000001");
    assert!(seen.get("x-forwarded-client-cert").is_none());
}

#[tokio::test]
async fn reviews_ratings_denied_error() {
    let (_, ratings_addr) = Scripted::start(vec![reply(StatusCode::FORBIDDEN, RBAC_DENIED)]).await;
    let env = fast_env(client(&[("ratings:9080", ratings_addr)]), "reviews-v2");
    let addr = serve(apps::reviews::router(ReviewsVersion::V2, env)).await;

    let response = get(addr, "/reviews/0").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(&response);
    let unavailable = json!({ "error": "Ratings service is currently unavailable" });
    assert_eq!(body["reviews"][0]["rating"], unavailable);
    assert_eq!(body["reviews"][1]["rating"], unavailable);
}

#[tokio::test]
async fn reviews_ratings_timeout_error() {
    let slow = Reply {
        status: StatusCode::OK,
        body: r#"{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}"#,
        delay: Duration::from_secs(2),
    };
    let (_, ratings_addr) = Scripted::start(vec![slow]).await;
    let env = fast_env(client(&[("ratings:9080", ratings_addr)]), "reviews-v3");
    let addr = serve(apps::reviews::router(ReviewsVersion::V3, env)).await;

    let started = tokio::time::Instant::now();
    let body = body_json(&get(addr, "/reviews/0").await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        body["reviews"][0]["rating"]["error"],
        "Ratings service is currently unavailable"
    );
}

#[tokio::test]
async fn reviews_ratings_refused_and_partial() {
    let env = fast_env(client(&[("ratings:9080", dead_addr().await)]), "reviews-v2");
    let addr = serve(apps::reviews::router(ReviewsVersion::V2, env)).await;
    let body = body_json(&get(addr, "/reviews/0").await);
    assert_eq!(
        body["reviews"][1]["rating"]["error"],
        "Ratings service is currently unavailable"
    );

    let (_, partial) = Scripted::start(vec![reply(
        StatusCode::OK,
        r#"{"ratings":{"Reviewer2":1}}"#,
    )])
    .await;
    let env = fast_env(client(&[("ratings:9080", partial)]), "reviews-v2");
    let addr = serve(apps::reviews::router(ReviewsVersion::V2, env)).await;
    let body = body_json(&get(addr, "/reviews/0").await);
    assert_eq!(
        body["reviews"][0]["rating"]["error"],
        "Ratings service is currently unavailable"
    );
    assert_eq!(
        body["reviews"][1]["rating"],
        json!({ "stars": 1, "color": "black" })
    );
}

// === productpage: the page ===

#[tokio::test]
async fn page_full_with_black_stars() {
    let addr = productpage(bookinfo(ReviewsVersion::V2).await).await;
    let response = get(addr, "/productpage").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(content_type(&response).starts_with("text/html"));

    let html = body_text(&response);
    assert!(html.contains("The Comedy of Errors"));
    assert!(
        html.contains("<b>William Shakespeare's</b>"),
        "description must be unescaped"
    );
    assert!(html.contains("Book Details"));
    assert!(html.contains(
        "<td>1234567890</td><td>PublisherA</td><td>200</td><td>paperback</td><td>English</td>"
    ));
    assert!(html.contains("Book Reviews"));
    assert!(html.contains("An extremely entertaining play by Shakespeare."));
    assert!(html.contains("text-black-500"));
    assert_eq!(html.matches("star-full").count(), 9);
    assert_eq!(html.matches("star-empty").count(), 1);
    assert!(html.contains("Reviews served by: reviews-v-test"));
    assert!(!html.contains("Error fetching"));
}

#[tokio::test]
async fn page_v1_no_stars() {
    let addr = productpage(bookinfo(ReviewsVersion::V1).await).await;
    let html = body_text(&get(addr, "/productpage").await);
    assert!(html.contains("Book Reviews"));
    assert!(!html.contains("star-full"));
    assert!(!html.contains("Ratings service is currently unavailable"));
}

#[tokio::test]
async fn page_ratings_denied_shows_error() {
    let (_, ratings) = Scripted::start(vec![reply(StatusCode::FORBIDDEN, RBAC_DENIED)]).await;
    let reviews_env = fast_env(client(&[("ratings:9080", ratings)]), "reviews-v3");
    let reviews = serve(apps::reviews::router(ReviewsVersion::V3, reviews_env)).await;
    let details = serve(apps::details::router()).await;
    let addr = productpage(client(&[
        ("details:9080", details),
        ("reviews:9080", reviews),
    ]))
    .await;

    let html = body_text(&get(addr, "/productpage").await);
    assert_eq!(
        html.matches("Ratings service is currently unavailable")
            .count(),
        2
    );
    assert!(!html.contains("star-full"));
    assert!(html.contains("Book Details"));
}

#[tokio::test]
async fn page_both_denied_fallbacks() {
    let (details, details_addr) =
        Scripted::start(vec![reply(StatusCode::FORBIDDEN, RBAC_DENIED)]).await;
    let (reviews, reviews_addr) =
        Scripted::start(vec![reply(StatusCode::FORBIDDEN, RBAC_DENIED)]).await;
    let addr = productpage(client(&[
        ("details:9080", details_addr),
        ("reviews:9080", reviews_addr),
    ]))
    .await;

    let response = get(addr, "/productpage").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = body_text(&response);
    assert!(html.contains("Error fetching product details!"));
    assert!(html.contains("Sorry, product details are currently unavailable for this book."));
    assert!(html.contains("Error fetching product reviews!"));
    assert!(html.contains("Sorry, product reviews are currently unavailable for this book."));
    assert!(!html.contains("Book Details"));
    assert!(!html.contains(RBAC_DENIED));
    assert_eq!(details.hits(), 1);
    assert_eq!(reviews.hits(), 2);
}

#[tokio::test]
async fn page_details_unavailable_reviews_fine() {
    let (_, details_addr) = Scripted::start(vec![reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers",
    )])
    .await;
    let reviews_env = fast_env(client(&[]), "reviews-v1");
    let reviews = serve(apps::reviews::router(ReviewsVersion::V1, reviews_env)).await;
    let addr = productpage(client(&[
        ("details:9080", details_addr),
        ("reviews:9080", reviews),
    ]))
    .await;

    let html = body_text(&get(addr, "/productpage").await);
    assert!(html.contains("Error fetching product details!"));
    assert!(html.contains("Book Reviews"));
    assert!(!html.contains("Error fetching product reviews!"));
}

#[tokio::test]
async fn page_no_answer_fallbacks() {
    let addr = productpage(client(&[
        ("details:9080", dead_addr().await),
        ("reviews:9080", dead_addr().await),
    ]))
    .await;
    let response = get(addr, "/productpage").await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = body_text(&response);
    assert!(html.contains("Error fetching product details!"));
    assert!(html.contains("Error fetching product reviews!"));
}

#[tokio::test]
async fn page_reviews_second_try_succeeds() {
    let details = serve(apps::details::router()).await;
    let (reviews, reviews_addr) = Scripted::start(vec![
        reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream"),
        reply(
            StatusCode::OK,
            r#"{"id":"0","podname":"flaky-1","clustername":"null","reviews":[]}"#,
        ),
    ])
    .await;
    let addr = productpage(client(&[
        ("details:9080", details),
        ("reviews:9080", reviews_addr),
    ]))
    .await;

    let html = body_text(&get(addr, "/productpage").await);
    assert_eq!(reviews.hits(), 2);
    assert!(html.contains("Book Reviews"));
    assert!(html.contains("Reviews served by: flaky-1"));
    assert!(!html.contains("Error fetching product reviews!"));
}

#[tokio::test]
async fn page_reviews_timeout_twice() {
    let details = serve(apps::details::router()).await;
    let slow = Reply {
        status: StatusCode::OK,
        body: r#"{"reviews":[]}"#,
        delay: Duration::from_secs(3),
    };
    let (reviews, reviews_addr) = Scripted::start(vec![slow]).await;
    let addr = productpage(client(&[
        ("details:9080", details),
        ("reviews:9080", reviews_addr),
    ]))
    .await;

    let started = tokio::time::Instant::now();
    let html = body_text(&get(addr, "/productpage").await);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(reviews.hits(), 2);
    assert!(html.contains("Error fetching product reviews!"));
}

#[tokio::test]
async fn page_index_and_health() {
    let addr = productpage(client(&[])).await;
    for path in ["/", "/index.html"] {
        let response = get(addr, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let html = body_text(&response);
        assert!(html.contains("href=\"/productpage?u=normal\""), "{path}");
        assert!(html.contains("href=\"/productpage?u=test\""), "{path}");
        assert!(html.contains("http://details:9080"), "{path}");
    }

    let health = get(addr, "/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(content_type(&health).starts_with("text/plain"));
    assert_eq!(body_text(&health), "Product page is healthy");
}

#[tokio::test]
async fn page_unknown_routes() {
    let addr = productpage(client(&[])).await;
    assert_eq!(get(addr, "/nothing").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(addr, "/login").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    let post = call(addr, Method::POST, "/productpage", &[], "").await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

// === productpage: API routes ===

#[tokio::test]
async fn api_products_list() {
    let addr = productpage(client(&[])).await;
    let response = get(addr, "/api/v1/products").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    let text = body_text(&response);
    assert!(
        text.starts_with(r#"[{"id":0,"title":"The Comedy of Errors","descriptionHtml":"<a href="#),
        "{text}"
    );
    let body = body_json(&response);
    assert_eq!(body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn api_passes_bodies_through() {
    let addr = productpage(bookinfo(ReviewsVersion::V3).await).await;

    let details = get(addr, "/api/v1/products/0").await;
    assert_eq!(details.status(), StatusCode::OK);
    assert_eq!(content_type(&details), "application/json");
    assert_eq!(body_text(&details), DETAILS_JSON);

    let reviews = body_json(&get(addr, "/api/v1/products/0/reviews").await);
    assert_eq!(
        reviews["reviews"][0]["rating"],
        json!({ "stars": 5, "color": "red" })
    );

    let ratings = body_json(&get(addr, "/api/v1/products/0/ratings").await);
    assert_eq!(
        ratings,
        json!({ "id": 0, "ratings": { "Reviewer1": 5, "Reviewer2": 4 } })
    );
}

#[tokio::test]
async fn api_upstream_status_passed() {
    let (_, denied) = Scripted::start(vec![reply(StatusCode::FORBIDDEN, RBAC_DENIED)]).await;
    let details = serve(apps::details::router()).await;
    let addr = productpage(client(&[
        ("details:9080", details),
        ("reviews:9080", denied),
        ("ratings:9080", denied),
    ]))
    .await;

    let bad_id = get(addr, "/api/v1/products/abc").await;
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        body_json(&bad_id),
        json!({ "error": "Sorry, product details are currently unavailable for this book." })
    );

    let reviews = get(addr, "/api/v1/products/0/reviews").await;
    assert_eq!(reviews.status(), StatusCode::FORBIDDEN);
    assert_eq!(content_type(&reviews), "application/json");
    assert_eq!(
        body_json(&reviews),
        json!({ "error": "Sorry, product reviews are currently unavailable for this book." })
    );

    let ratings = get(addr, "/api/v1/products/0/ratings").await;
    assert_eq!(ratings.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        body_json(&ratings),
        json!({ "error": "Sorry, product ratings are currently unavailable for this book." })
    );
}

#[tokio::test]
async fn api_no_answer_500() {
    let dead = dead_addr().await;
    let addr = productpage(client(&[("details:9080", dead), ("reviews:9080", dead)])).await;
    for path in [
        "/api/v1/products/0",
        "/api/v1/products/0/reviews",
        "/api/v1/products/0/ratings",
    ] {
        let response = get(addr, path).await;
        assert_eq!(
            response.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}"
        );
        assert!(
            body_json(&response)["error"]
                .as_str()
                .unwrap()
                .starts_with("Sorry, product "),
            "{path}"
        );
    }
}

#[tokio::test]
async fn api_id_encoded_for_upstream() {
    let (details, details_addr) = Scripted::start(vec![reply(StatusCode::OK, "{}")]).await;
    let addr = productpage(client(&[("details:9080", details_addr)])).await;
    let response = get(addr, "/api/v1/products/a%20b").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(details.request(0).0, "/details/a%20b");

    let invalid_utf8 = get(addr, "/api/v1/products/%FF").await;
    assert!(
        invalid_utf8.status().is_client_error(),
        "{}",
        invalid_utf8.status()
    );
}

// === productpage: sessions and header propagation ===

/// Signs in through `POST /login` and returns the `session=...` cookie pair.
async fn sign_in(addr: SocketAddr, user: &str) -> String {
    let response = call(
        addr,
        Method::POST,
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("referer", "http://bookinfo.local/productpage"),
        ],
        &format!("username={user}&passwd=anything"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        response.headers()["location"],
        "http://bookinfo.local/productpage"
    );
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn login_sets_signed_session() {
    let addr = productpage(bookinfo(ReviewsVersion::V1).await).await;
    let cookie = sign_in(addr, "jason").await;
    assert!(cookie.starts_with("session="), "{cookie}");

    let html = body_text(
        &call(
            addr,
            Method::GET,
            "/productpage",
            &[("cookie", &cookie)],
            "",
        )
        .await,
    );
    assert!(html.contains("<span class=\"user\">jason</span>"));
    assert!(html.contains("Sign out"));

    let anonymous = body_text(&get(addr, "/productpage").await);
    assert!(!anonymous.contains("jason"));
    assert!(anonymous.contains("name=\"username\""));
}

#[tokio::test]
async fn logout_clears_session() {
    let addr = productpage(client(&[])).await;
    let response = call(
        addr,
        Method::GET,
        "/logout",
        &[("referer", "/productpage")],
        "",
    )
    .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], "/productpage");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("session=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
}

#[tokio::test]
async fn login_malformed_requests_4xx() {
    let addr = productpage(client(&[])).await;

    let no_referer = call(
        addr,
        Method::POST,
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        "username=jason",
    )
    .await;
    assert_eq!(no_referer.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(&no_referer).contains("Referer"));
    assert!(no_referer.headers().get("set-cookie").is_none());

    let not_a_form = call(
        addr,
        Method::POST,
        "/login",
        &[
            ("content-type", "application/json"),
            ("referer", "/productpage"),
        ],
        r#"{"username":"jason"}"#,
    )
    .await;
    assert!(
        not_a_form.status().is_client_error(),
        "{}",
        not_a_form.status()
    );

    let bad_form = call(
        addr,
        Method::POST,
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("referer", "/productpage"),
        ],
        "username=a&username=b",
    )
    .await;
    assert!(bad_form.status().is_client_error(), "{}", bad_form.status());
    assert!(bad_form.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn propagation_to_details_and_reviews() {
    let (details, details_addr) = Scripted::start(vec![reply(StatusCode::OK, DETAILS_JSON)]).await;
    let (reviews, reviews_addr) =
        Scripted::start(vec![reply(StatusCode::OK, r#"{"reviews":[]}"#)]).await;
    let addr = productpage(client(&[
        ("details:9080", details_addr),
        ("reviews:9080", reviews_addr),
    ]))
    .await;
    let session = sign_in(addr, "jason").await;
    let cookie = format!("{session}; theme=dark");

    let headers = [
        ("cookie", cookie.as_str()),
        ("end-user", "mallory"),
        ("x-request-id", "9f3c0d1e"),
        ("authorization", "Bearer token-1"),
        ("user-agent", "curl/8.0"),
        ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-parentspanid", "0020000000000001"),
        ("x-b3-sampled", "1"),
        (
            "x-forwarded-client-cert",
            "By=spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
        ),
        ("accept-language", "en"),
    ];
    let response = call(addr, Method::GET, "/productpage", &headers, "").await;
    assert_eq!(response.status(), StatusCode::OK);

    for (name, probe) in [("details", &details), ("reviews", &reviews)] {
        let (path, seen) = probe.request(0);
        assert_eq!(path, format!("/{name}/0"));
        let end_users: Vec<_> = seen.get_all("end-user").iter().collect();
        assert_eq!(end_users, ["jason"], "{name}");
        assert_eq!(seen["x-request-id"], "9f3c0d1e", "{name}");
        assert_eq!(seen["authorization"], "Bearer token-1", "{name}");
        assert_eq!(seen["user-agent"], "curl/8.0", "{name}");
        assert_eq!(seen["cookie"], cookie.as_str(), "{name}");
        assert_eq!(
            seen["x-b3-traceid"], "463ac35c9f6413ad48485a3953bb6124",
            "{name}"
        );
        assert_eq!(seen["x-b3-spanid"], "a2fb4a1d1a96d312", "{name}");
        assert_eq!(seen["x-b3-sampled"], "1", "{name}");
        assert!(seen.get("x-b3-parentspanid").is_none(), "{name}");
        assert!(seen.get("x-forwarded-client-cert").is_none(), "{name}");
        assert!(seen.get("accept-language").is_none(), "{name}");
    }
}

#[tokio::test]
async fn propagation_forged_cookie_anonymous() {
    let (details, details_addr) = Scripted::start(vec![reply(StatusCode::OK, DETAILS_JSON)]).await;
    let addr = productpage(client(&[("details:9080", details_addr)])).await;
    let session = sign_in(addr, "jason").await;
    let signature = session.rsplit_once('.').unwrap().1;
    // A payload naming another user, carrying jason's signature.
    let forged = format!("session=eyJ1c2VyIjoiYWRtaW4ifQ.{signature}");

    for cookie in [forged.as_str(), "session=garbage", "session="] {
        let headers = [("cookie", cookie), ("end-user", "admin")];
        let response = call(addr, Method::GET, "/api/v1/products/0", &headers, "").await;
        assert_eq!(response.status(), StatusCode::OK, "{cookie}");
    }
    assert_eq!(details.hits(), 3);
    for index in 0..3 {
        let (_, seen) = details.request(index);
        assert!(seen.get("end-user").is_none(), "request {index}");
    }
}

// === productpage: metrics ===

#[tokio::test]
async fn metrics_count_outbound_results() {
    let details = serve(apps::details::router()).await;
    let (_, reviews) = Scripted::start(vec![reply(
        StatusCode::SERVICE_UNAVAILABLE,
        "no healthy upstream",
    )])
    .await;
    let addr = productpage(client(&[
        ("details:9080", details),
        ("reviews:9080", reviews),
        ("ratings:9080", dead_addr().await),
    ]))
    .await;
    get(addr, "/productpage").await;
    get(addr, "/api/v1/products/0/ratings").await;

    let response = get(addr, "/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(content_type(&response).starts_with("text/plain"));
    let text = body_text(&response);
    assert!(
        text.contains("# TYPE request_result_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "request_result_total{destination_app=\"details\",response_code=\"200\"} 1.0\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "request_result_total{destination_app=\"reviews\",response_code=\"503\"} 2.0\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "request_result_total{destination_app=\"ratings\",response_code=\"0\"} 1.0\n"
        ),
        "{text}"
    );
}

// === httpbin and sleep ===

async fn httpbin() -> SocketAddr {
    serve(apps::router(
        &AppKind::Httpbin,
        AppEnv::new(client(&[]), "httpbin"),
    ))
    .await
}

#[tokio::test]
async fn httpbin_headers_title_case() {
    let addr = httpbin().await;
    let xfcc = "By=spiffe://cluster.local/ns/foo/sa/httpbin;Hash=abc;Subject=\"\";URI=spiffe://cluster.local/ns/foo/sa/sleep";
    let response = call(
        addr,
        Method::GET,
        "/headers",
        &[
            ("x-forwarded-client-cert", xfcc),
            ("x-b3-sampled", "0"),
            ("x-token", "a"),
            ("x-token", "b"),
        ],
        "",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    let headers = &body_json(&response)["headers"];
    assert_eq!(headers["X-Forwarded-Client-Cert"], xfcc);
    assert_eq!(headers["X-B3-Sampled"], "0");
    assert_eq!(headers["X-Token"], "a,b");
    assert_eq!(headers["Host"], addr.to_string());
}

#[tokio::test]
async fn httpbin_get_and_ip() {
    let addr = httpbin().await;
    let body = body_json(&get(addr, "/get?a=1&b=2&b=3").await);
    assert_eq!(body["args"], json!({ "a": "1", "b": ["2", "3"] }));
    assert_eq!(body["origin"], "127.0.0.1");
    assert_eq!(body["url"], format!("http://{addr}/get?a=1&b=2&b=3"));
    assert!(body["headers"].is_object());

    assert_eq!(
        body_json(&get(addr, "/ip").await),
        json!({ "origin": "127.0.0.1" })
    );
    let forwarded = call(
        addr,
        Method::GET,
        "/ip",
        &[("x-forwarded-for", "10.0.0.9")],
        "",
    )
    .await;
    assert_eq!(body_json(&forwarded), json!({ "origin": "10.0.0.9" }));
}

#[tokio::test]
async fn httpbin_status_codes() {
    let addr = httpbin().await;
    for code in [200u16, 201, 403, 418, 503] {
        let response = get(addr, &format!("/status/{code}")).await;
        assert_eq!(response.status().as_u16(), code);
    }
    let post = call(addr, Method::POST, "/status/202", &[], "").await;
    assert_eq!(post.status(), StatusCode::ACCEPTED);
    assert_eq!(
        get(addr, "/status/abc").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(addr, "/status/99").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn httpbin_anything_echo() {
    let addr = httpbin().await;
    let response = call(
        addr,
        Method::PUT,
        "/anything/some/path?x=1",
        &[("content-type", "application/json")],
        r#"{"k": [1, 2]}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(&response);
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["args"], json!({ "x": "1" }));
    assert_eq!(body["json"], json!({ "k": [1, 2] }));
    assert_eq!(body["data"], r#"{"k": [1, 2]}"#);
    assert_eq!(body["url"], format!("http://{addr}/anything/some/path?x=1"));
    assert_eq!(body["headers"]["Content-Type"], "application/json");

    let form = call(
        addr,
        Method::POST,
        "/post",
        &[("content-type", "application/x-www-form-urlencoded")],
        "user=jason&group=a&group=b",
    )
    .await;
    let body = body_json(&form);
    assert_eq!(
        body["form"],
        json!({ "user": "jason", "group": ["a", "b"] })
    );
    assert_eq!(body["data"], "");
    assert!(body.get("method").is_none());

    assert_eq!(
        get(addr, "/post").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(get(addr, "/nothing").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sleep_serves_health_only() {
    let addr = serve(apps::router(
        &AppKind::Sleep,
        AppEnv::new(client(&[]), "sleep"),
    ))
    .await;
    let health = get(addr, "/health").await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(body_json(&health), json!({ "status": "Sleep is healthy" }));
    assert_eq!(get(addr, "/headers").await.status(), StatusCode::NOT_FOUND);
}
