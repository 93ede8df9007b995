//! The `sleep` client workload. The lab sends its outbound requests on its behalf, so
//! it serves nothing but a health check.

use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::StatusCode;

use super::json_response;

/// Builds the sleep router: `/health` only, 404 elsewhere.
pub fn router() -> Router {
    Router::new().route("/health", get(health))
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "status": "Sleep is healthy" }),
    )
}
