//! The details service: the same book for every product id.
//!
//! Bookinfo's details (Ruby WEBrick) parses the last path segment under `/details` with
//! Ruby's `Integer()`, which also accepts hexadecimal (`0x1f`), octal (leading `0`) and
//! underscores. This version accepts plain decimal only, with an optional sign, so `010`
//! is 10 here and `0x1f` is rejected with 400.

use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde::Serialize;

use super::{json_error, json_response};

/// The book object, with fields in the order Bookinfo sends them.
#[derive(Debug, Serialize)]
struct Book {
    id: i64,
    author: &'static str,
    year: u32,
    #[serde(rename = "type")]
    binding: &'static str,
    pages: u32,
    publisher: &'static str,
    language: &'static str,
    #[serde(rename = "ISBN-10")]
    isbn_10: &'static str,
    #[serde(rename = "ISBN-13")]
    isbn_13: &'static str,
}

/// Builds the details router: `/details/<anything>` and `/health`.
pub fn router() -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/details", get(book))
        .route("/details/", get(book))
        .route("/details/{*rest}", get(book))
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "status": "Details is healthy" }),
    )
}

async fn book(request: Request) -> Response {
    let path = request.uri().path();
    match parse_product_id(path) {
        Some(id) => json_response(StatusCode::OK, &book_for(id)),
        None => {
            tracing::debug!(path, "Rejected non-numeric product id");
            json_error(StatusCode::BAD_REQUEST, "please provide numeric product id")
        }
    }
}

/// Parses the last non-empty path segment as a decimal integer, as Ruby's `split('/')`
/// drops trailing empty segments.
fn parse_product_id(path: &str) -> Option<i64> {
    let segment = path.split('/').rev().find(|segment| !segment.is_empty())?;
    let digits = segment
        .strip_prefix('-')
        .or_else(|| segment.strip_prefix('+'))
        .unwrap_or(segment);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // NOTE: Ruby integers are unbounded, so ids beyond i64 get 200 there and 400 here.
    segment.parse().ok()
}

fn book_for(id: i64) -> Book {
    Book {
        id,
        author: "William Shakespeare",
        year: 1595,
        binding: "paperback",
        pages: 200,
        publisher: "PublisherA",
        language: "English",
        isbn_10: "1234567890",
        isbn_13: "123-1234567890",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_id_from_last_segment() {
        assert_eq!(parse_product_id("/details/0"), Some(0));
        assert_eq!(parse_product_id("/details/x/5"), Some(5));
        assert_eq!(parse_product_id("/details/7/"), Some(7));
        assert_eq!(parse_product_id("/details/-3"), Some(-3));
        assert_eq!(parse_product_id("/details/+3"), Some(3));
    }

    #[test]
    fn product_id_rejects_non_decimal() {
        assert_eq!(parse_product_id("/details"), None);
        assert_eq!(parse_product_id("/details/"), None);
        assert_eq!(parse_product_id("/details/abc"), None);
        assert_eq!(parse_product_id("/details/0x1f"), None);
        assert_eq!(parse_product_id("/details/1.5"), None);
        assert_eq!(parse_product_id("/details/-"), None);
        assert_eq!(parse_product_id("/details/%FF"), None);
        assert_eq!(parse_product_id("/details/99999999999999999999"), None);
    }

    #[test]
    fn book_keys_in_bookinfo_order() {
        let json = serde_json::to_string(&book_for(4)).unwrap();
        assert_eq!(
            json,
            r#"{"id":4,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}"#
        );
    }
}
