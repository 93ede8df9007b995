//! productpage: the Bookinfo front end.
//!
//! `/productpage` calls details once and reviews up to twice, each try bounded by
//! [`Timeouts::productpage_call`](super::Timeouts::productpage_call), and always returns 200: a failed call
//! shows a red heading and an apology sentence in place of that section. The
//! `/api/v1/products` routes pass the upstream status through instead, and turn a call
//! that got no response into 500. Sign-in keeps the user name in a signed `session`
//! cookie, and only that name is sent onward as `end-user`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::outbound::{self, encode_path_segment};
use super::{json_bytes, json_error, json_response, AppEnv};

mod page;
pub mod propagation;
pub mod session;

pub use page::{DETAILS_ERROR_HEADING, REVIEWS_ERROR_HEADING};

/// Apology shown, and returned as `error`, when details did not return 200.
pub const DETAILS_UNAVAILABLE: &str =
    "Sorry, product details are currently unavailable for this book.";
/// Apology shown, and returned as `error`, when reviews did not return 200.
pub const REVIEWS_UNAVAILABLE: &str =
    "Sorry, product reviews are currently unavailable for this book.";
/// Apology returned as `error` when ratings did not return 200.
pub const RATINGS_UNAVAILABLE: &str =
    "Sorry, product ratings are currently unavailable for this book.";

/// The one product Bookinfo sells.
#[derive(Debug, Serialize)]
struct Product {
    id: u32,
    title: &'static str,
    #[serde(rename = "descriptionHtml")]
    description_html: &'static str,
}

const PRODUCT: Product = Product {
    id: 0,
    title: "The Comedy of Errors",
    description_html: "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.",
};

/// An upstream productpage calls, with its retry count and apology sentence.
#[derive(Clone, Copy, Debug)]
enum Upstream {
    Details,
    Reviews,
    Ratings,
}

impl Upstream {
    fn app(self) -> &'static str {
        match self {
            Upstream::Details => "details",
            Upstream::Reviews => "reviews",
            Upstream::Ratings => "ratings",
        }
    }

    /// Bookinfo tries reviews twice on purpose: the fault-injection task relies on the
    /// page giving up only after two timeouts.
    fn tries(self) -> u32 {
        match self {
            Upstream::Reviews => 2,
            Upstream::Details | Upstream::Ratings => 1,
        }
    }

    fn unavailable(self) -> &'static str {
        match self {
            Upstream::Details => DETAILS_UNAVAILABLE,
            Upstream::Reviews => REVIEWS_UNAVAILABLE,
            Upstream::Ratings => RATINGS_UNAVAILABLE,
        }
    }

    fn url(self, env: &AppEnv, product_id: &str) -> String {
        let base = match self {
            Upstream::Details => env.details_url(),
            Upstream::Reviews => env.reviews_url(),
            Upstream::Ratings => env.ratings_url(),
        };
        format!("{base}/{}/{}", self.app(), encode_path_segment(product_id))
    }
}

/// The outcome of calling one upstream.
enum Fetched {
    /// 200 with a JSON body: the raw bytes and the parsed value.
    Body(Bytes, Value),
    /// Anything else, with the status the API routes return.
    Failed(StatusCode),
}

struct Productpage {
    env: AppEnv,
    /// Outbound results, keyed by destination app and response code (0: no response).
    results: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

/// Builds the productpage router.
pub fn router(env: AppEnv) -> Router {
    let state = Arc::new(Productpage {
        env,
        results: Mutex::default(),
    });
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/health", get(health))
        .route("/login", post(login))
        .route("/logout", get(logout))
        .route("/productpage", get(product_page))
        .route("/api/v1/products", get(products))
        .route("/api/v1/products/{id}", get(product_details))
        .route("/api/v1/products/{id}/reviews", get(product_reviews))
        .route("/api/v1/products/{id}/ratings", get(product_ratings))
        .route("/metrics", get(metrics))
        .with_state(state)
}

// === handlers ===

async fn index(State(state): State<Arc<Productpage>>) -> Html<String> {
    let env = &state.env;
    Html(page::index(
        &env.details_url(),
        &env.reviews_url(),
        &env.ratings_url(),
    ))
}

async fn health() -> &'static str {
    "Product page is healthy"
}

/// The sign-in form. The password field (`passwd`) is accepted and never read.
#[derive(Debug, Deserialize)]
struct LoginForm {
    username: Option<String>,
}

async fn login(headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    let Some(location) = referer(&headers) else {
        return missing_referer();
    };
    // An empty or missing name signs the user out. NOTE: Bookinfo stores an empty name
    // and then sends an empty `end-user` header; here no header is sent.
    let cookie = match form.username.as_deref() {
        Some(user) if !user.is_empty() => {
            tracing::debug!(user, "User signed in");
            session::set_cookie(user)
        }
        _ => session::CLEAR_COOKIE.to_owned(),
    };
    let cookie = HeaderValue::from_str(&cookie).expect("cookie is base64 and ASCII attributes");
    redirect(location, cookie)
}

async fn logout(headers: HeaderMap) -> Response {
    let Some(location) = referer(&headers) else {
        return missing_referer();
    };
    redirect(location, HeaderValue::from_static(session::CLEAR_COOKIE))
}

async fn product_page(State(state): State<Arc<Productpage>>, headers: HeaderMap) -> Response {
    let user = session::user(&headers);
    let outgoing = propagation::forward_headers(&headers, user.as_deref());
    let product_id = PRODUCT.id.to_string();

    let details = state.fetch(Upstream::Details, &product_id, &outgoing).await;
    let reviews = state.fetch(Upstream::Reviews, &product_id, &outgoing).await;

    let body_of = |fetched: &Fetched| match fetched {
        Fetched::Body(_, value) => Some(value.clone()),
        Fetched::Failed(_) => None,
    };
    let (details, reviews) = (body_of(&details), body_of(&reviews));
    Html(page::product(
        &PRODUCT,
        user.as_deref(),
        details.as_ref(),
        reviews.as_ref(),
    ))
    .into_response()
}

async fn products() -> Response {
    json_response(StatusCode::OK, &[PRODUCT])
}

async fn product_details(
    State(state): State<Arc<Productpage>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.api_call(Upstream::Details, &id, &headers).await
}

async fn product_reviews(
    State(state): State<Arc<Productpage>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.api_call(Upstream::Reviews, &id, &headers).await
}

async fn product_ratings(
    State(state): State<Arc<Productpage>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.api_call(Upstream::Ratings, &id, &headers).await
}

async fn metrics(State(state): State<Arc<Productpage>>) -> Response {
    let body = state.render_metrics();
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

// === impl Productpage ===

impl Productpage {
    /// Calls an upstream for an `/api/v1/products` route. Returns the upstream body on
    /// 200, and otherwise `{"error": ...}` with the upstream status, or 500 when no
    /// response came back.
    async fn api_call(&self, upstream: Upstream, id: &str, incoming: &HeaderMap) -> Response {
        let user = session::user(incoming);
        let outgoing = propagation::forward_headers(incoming, user.as_deref());
        match self.fetch(upstream, id, &outgoing).await {
            Fetched::Body(bytes, _) => json_bytes(StatusCode::OK, bytes),
            Fetched::Failed(status) => json_error(status, upstream.unavailable()),
        }
    }

    /// Calls an upstream up to its number of tries, stopping at the first 200.
    async fn fetch(&self, upstream: Upstream, product_id: &str, headers: &HeaderMap) -> Fetched {
        let url = upstream.url(&self.env, product_id);
        let timeout = self.env.timeouts.productpage_call;
        let mut status = StatusCode::INTERNAL_SERVER_ERROR;

        for attempt in 1..=upstream.tries() {
            match outbound::get(&self.env.client, &url, headers.clone(), timeout).await {
                Ok(response) => {
                    self.record(upstream, response.status().as_u16());
                    status = response.status();
                    if status == StatusCode::OK {
                        return parse_body(upstream, response.into_body());
                    }
                    tracing::debug!(
                        url,
                        attempt,
                        status = status.as_u16(),
                        "Upstream rejected call"
                    );
                }
                Err(error) => {
                    self.record(upstream, 0);
                    status = StatusCode::INTERNAL_SERVER_ERROR;
                    tracing::warn!(attempt, error = %outbound::error_chain(&error), "Upstream call failed");
                }
            }
        }
        Fetched::Failed(status)
    }

    fn record(&self, upstream: Upstream, code: u16) {
        let mut results = self.results.lock().expect("metrics lock");
        *results.entry((upstream.app(), code)).or_default() += 1;
    }

    /// Renders the counters in the Prometheus text format, as the Python client names a
    /// counter called `request_result`.
    fn render_metrics(&self) -> String {
        let results = self.results.lock().expect("metrics lock");
        let mut text = String::new();
        text.push_str("# HELP request_result_total Results of requests to upstream apps, by response code (0: no response)\n");
        text.push_str("# TYPE request_result_total counter\n");
        for ((app, code), count) in results.iter() {
            let _ = writeln!(
                text,
                "request_result_total{{destination_app=\"{app}\",response_code=\"{code}\"}} {count}.0"
            );
        }
        text
    }
}

/// Accepts a 200 body only when it is JSON, since the page and the API both need to
/// read it.
fn parse_body(upstream: Upstream, body: Bytes) -> Fetched {
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) => Fetched::Body(body, value),
        Err(error) => {
            tracing::warn!(app = upstream.app(), %error, "Upstream returned invalid JSON");
            Fetched::Failed(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

fn referer(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(header::REFERER)
        .filter(|value| !value.is_empty())
        .cloned()
}

/// Bookinfo redirects to the `Referer` and has no other target, so a request without
/// one is rejected.
fn missing_referer() -> Response {
    (
        StatusCode::BAD_REQUEST,
        "missing Referer header: the redirect after sign-in and sign-out goes to the Referer",
    )
        .into_response()
}

fn redirect(location: HeaderValue, cookie: HeaderValue) -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
    )
        .into_response()
}
