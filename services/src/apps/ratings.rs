//! The ratings service (Bookinfo ratings v1): two fixed ratings per product, or the
//! ratings last POSTed for that product, kept in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::{json_error, json_response};

/// Ratings stored by `POST /ratings/<id>`, keyed by product id.
type Store = Arc<Mutex<HashMap<i64, Value>>>;

/// Builds the ratings router: `GET` and `POST /ratings/<id>`, and `/health`.
pub fn router() -> Router {
    let store: Store = Arc::default();
    Router::new()
        .route("/health", get(health))
        .route("/ratings/", get(get_ratings).post(post_ratings))
        .route("/ratings/{*rest}", get(get_ratings).post(post_ratings))
        .with_state(store)
}

async fn health() -> Response {
    json_response(StatusCode::OK, &json!({ "status": "Ratings is healthy" }))
}

async fn get_ratings(State(store): State<Store>, request: Request) -> Response {
    let Some(id) = parse_product_id(request.uri().path()) else {
        return json_error(StatusCode::BAD_REQUEST, "please provide numeric product ID");
    };
    let stored = store.lock().expect("ratings store lock").get(&id).cloned();
    json_response(
        StatusCode::OK,
        &stored.unwrap_or_else(|| default_ratings(id)),
    )
}

async fn post_ratings(State(store): State<Store>, request: Request) -> Response {
    let Some(id) = parse_product_id(request.uri().path()) else {
        return json_error(StatusCode::BAD_REQUEST, "please provide numeric product ID");
    };
    let body: Bytes = match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => {
            tracing::debug!(%error, "Rejected ratings body");
            return json_error(StatusCode::BAD_REQUEST, "please provide valid ratings JSON");
        }
    };
    let Ok(ratings) = serde_json::from_slice::<Value>(&body) else {
        return json_error(StatusCode::BAD_REQUEST, "please provide valid ratings JSON");
    };

    let stored = json!({ "id": id, "ratings": ratings });
    {
        let mut products = store.lock().expect("ratings store lock");
        // Bookinfo keeps every product it is sent; a cap keeps a loop of POSTs with fresh
        // ids from exhausting the lab's memory.
        if products.len() >= MAX_STORED_PRODUCTS && !products.contains_key(&id) {
            return json_error(
                StatusCode::INSUFFICIENT_STORAGE,
                "ratings store is full; restart ratings to clear it",
            );
        }
        products.insert(id, stored.clone());
    }
    tracing::debug!(product.id = id, "Stored ratings");
    json_response(StatusCode::OK, &stored)
}

/// Most products whose ratings are kept: with bodies of at most 64 KiB, at most 64 MiB.
const MAX_STORED_PRODUCTS: usize = 1_000;

/// Largest POST body accepted, far above any ratings object.
const MAX_BODY_BYTES: usize = 64 * 1024;

fn default_ratings(id: i64) -> Value {
    json!({ "id": id, "ratings": { "Reviewer1": 5, "Reviewer2": 4 } })
}

/// Parses the last path segment the way JavaScript's `parseInt` does: optional
/// whitespace and sign, then the leading decimal digits; anything after them is ignored.
fn parse_product_id(path: &str) -> Option<i64> {
    let segment = path.rsplit('/').next()?.trim_start();
    let (negative, rest) = match segment.as_bytes().first() {
        Some(b'-') => (true, &segment[1..]),
        Some(b'+') => (false, &segment[1..]),
        _ => (false, segment),
    };
    let digit_count = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digit_count == 0 {
        return None;
    }
    // NOTE: parseInt returns imprecise floats for ids beyond 2^53; those get 400 here
    // once they overflow i64.
    let magnitude: i64 = rest[..digit_count].parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_id_like_parse_int() {
        assert_eq!(parse_product_id("/ratings/0"), Some(0));
        assert_eq!(parse_product_id("/ratings/12abc"), Some(12));
        assert_eq!(parse_product_id("/ratings/-4"), Some(-4));
        assert_eq!(parse_product_id("/ratings/x/9"), Some(9));
    }

    #[test]
    fn product_id_nan_cases() {
        assert_eq!(parse_product_id("/ratings/"), None);
        assert_eq!(parse_product_id("/ratings/abc"), None);
        assert_eq!(parse_product_id("/ratings/5/"), None);
        assert_eq!(parse_product_id("/ratings/-"), None);
        assert_eq!(parse_product_id("/ratings/%FF"), None);
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use tower::ServiceExt;

    async fn post(app: &Router, id: usize) -> StatusCode {
        let request = http::Request::post(format!("/ratings/{id}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"Reviewer1": 1}"#))
            .unwrap();
        app.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn store_is_bounded() {
        let app = router();
        for id in 0..MAX_STORED_PRODUCTS {
            assert_eq!(post(&app, id).await, StatusCode::OK, "product {id}");
        }
        assert_eq!(
            post(&app, MAX_STORED_PRODUCTS).await,
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            post(&app, 0).await,
            StatusCode::OK,
            "a stored product can be updated"
        );
    }
}
