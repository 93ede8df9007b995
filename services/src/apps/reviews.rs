//! The reviews service in its three Bookinfo versions.
//!
//! v1 never calls ratings. v2 and v3 call `GET <ratings>/ratings/<id>` and show black or
//! red stars. When ratings fails, each review carries a rating error and the response
//! status is still 200.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::{copy_headers, json_response, outbound, AppEnv, ReviewsVersion};

/// Headers reviews copies from its request onto the ratings call (Bookinfo's
/// `headers_to_propagate`, which includes the whole B3 set and `end-user`).
pub const FORWARDED_HEADERS: [&str; 20] = [
    "x-request-id",
    "x-ot-span-context",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "traceparent",
    "tracestate",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "sw8",
    "end-user",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
];

/// Sentence shown in place of the stars when ratings did not return 200.
pub const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

const REVIEWS: [(&str, &str); 2] = [
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
    ),
];

struct ReviewsState {
    version: ReviewsVersion,
    env: AppEnv,
}

/// Response body of `/reviews/<id>`, with fields in Bookinfo's order.
#[derive(Debug, Serialize)]
struct ReviewsBody {
    id: String,
    podname: String,
    clustername: String,
    reviews: Vec<Review>,
}

#[derive(Debug, Serialize)]
struct Review {
    reviewer: &'static str,
    text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rating: Option<Rating>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Rating {
    Stars { stars: i64, color: &'static str },
    Error { error: &'static str },
}

/// Builds the reviews router of one version: `/reviews/<id>` and `/health`.
pub fn router(version: ReviewsVersion, env: AppEnv) -> Router {
    let state = Arc::new(ReviewsState { version, env });
    Router::new()
        .route("/health", get(health))
        .route("/reviews/{id}", get(reviews))
        .with_state(state)
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "status": "Reviews is healthy" }),
    )
}

async fn reviews(
    State(state): State<Arc<ReviewsState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    // Bookinfo binds the id to a Java `int`, and JAX-RS rejects a failed conversion
    // with 404.
    let Ok(id) = id.parse::<i32>() else {
        return StatusCode::NOT_FOUND.into_response();
    };

    let star_color = match state.version {
        ReviewsVersion::V1 => None,
        ReviewsVersion::V2 => Some(("black", state.env.timeouts.ratings_black)),
        ReviewsVersion::V3 => Some(("red", state.env.timeouts.ratings_red)),
    };
    let stars = match star_color {
        Some((_, timeout)) => fetch_stars(&state.env, id, &headers, timeout).await,
        None => [None, None],
    };

    let reviews = REVIEWS
        .iter()
        .zip(stars)
        .map(|((reviewer, text), stars)| Review {
            reviewer,
            text,
            rating: star_color.map(|(color, _)| match stars {
                Some(stars) => Rating::Stars { stars, color },
                None => Rating::Error {
                    error: RATINGS_UNAVAILABLE,
                },
            }),
        })
        .collect();

    let body = ReviewsBody {
        id: id.to_string(),
        podname: state.env.pod_name.clone(),
        clustername: state
            .env
            .cluster_name
            .clone()
            .unwrap_or_else(|| "null".to_owned()),
        reviews,
    };
    json_response(StatusCode::OK, &body)
}

/// Fetches the stars of both reviewers; `None` for a reviewer whose rating could not be
/// read.
async fn fetch_stars(
    env: &AppEnv,
    id: i32,
    incoming: &HeaderMap,
    timeout: Duration,
) -> [Option<i64>; 2] {
    let url = format!("{}/ratings/{id}", env.ratings_url());
    let mut headers = HeaderMap::new();
    copy_headers(incoming, &FORWARDED_HEADERS, &mut headers);
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));

    let response = match outbound::get(&env.client, &url, headers, timeout).await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(error = %outbound::error_chain(&error), "Ratings call failed");
            return [None, None];
        }
    };
    if response.status() != StatusCode::OK {
        tracing::warn!(
            url,
            status = response.status().as_u16(),
            "Ratings call rejected"
        );
        return [None, None];
    }
    let ratings = match serde_json::from_slice::<Value>(response.body()) {
        Ok(body) => body.get("ratings").cloned().unwrap_or(Value::Null),
        Err(error) => {
            tracing::warn!(url, %error, "Ratings returned invalid JSON");
            return [None, None];
        }
    };

    // NOTE: Bookinfo reads the stars with `getInt`, which throws on a non-number and
    // then responds with 500. Here such a rating shows the ratings error instead.
    REVIEWS.map(|(reviewer, _)| ratings.get(reviewer).and_then(Value::as_i64))
}
