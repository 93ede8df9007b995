//! HTML of the landing page and the product page.
//!
//! Every value that comes from a request or an upstream is escaped, except the product
//! description, which Bookinfo defines as HTML and renders unescaped.

use std::fmt::Write;

use serde_json::Value;

use super::{Product, DETAILS_UNAVAILABLE, REVIEWS_UNAVAILABLE};

/// Heading that replaces the Book Details section when details did not return 200.
pub const DETAILS_ERROR_HEADING: &str = "Error fetching product details!";
/// Heading that replaces the Book Reviews section when reviews did not return 200.
pub const REVIEWS_ERROR_HEADING: &str = "Error fetching product reviews!";

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Simple Bookstore App</title>
</head>
<body>
"#;

/// Renders `/` and `/index.html`: the service tree and two links to the product page.
pub(super) fn index(details_url: &str, reviews_url: &str, ratings_url: &str) -> String {
    let mut html = String::from(HEAD);
    html.push_str("<h3>Hello! This is a simple bookstore application consisting of three services as shown below</h3>\n");
    html.push_str("<table class=\"service-tree\">\n");
    html.push_str("<tr><th>name</th><th>endpoint</th><th>children</th></tr>\n");
    let _ = writeln!(
        html,
        "<tr><td>productpage</td><td>productpage</td><td><table>\n\
         <tr><td>{}</td><td>details</td><td></td></tr>\n\
         <tr><td>{}</td><td>reviews</td><td><table>\
         <tr><td>{}</td><td>ratings</td><td></td></tr></table></td></tr>\n\
         </table></td></tr>",
        escape(details_url),
        escape(reviews_url),
        escape(ratings_url),
    );
    html.push_str("</table>\n");
    html.push_str("<p>Click on one of the links below to auto generate a request to the backend as a real user or a tester</p>\n");
    html.push_str("<p><a href=\"/productpage?u=normal\">Normal user</a></p>\n");
    html.push_str("<p><a href=\"/productpage?u=test\">Test user</a></p>\n");
    html.push_str("</body>\n</html>\n");
    html
}

/// Renders `/productpage`. `details` and `reviews` are the upstream JSON bodies, or
/// `None` when that call failed.
pub(super) fn product(
    product: &Product,
    user: Option<&str>,
    details: Option<&Value>,
    reviews: Option<&Value>,
) -> String {
    let mut html = String::from(HEAD);
    write_nav(&mut html, user);

    let _ = writeln!(
        html,
        "<main>\n<h1 class=\"title\">{}</h1>\n<p class=\"description\">Summary: {}</p>",
        escape(product.title),
        product.description_html,
    );

    html.push_str("<section id=\"details\">\n");
    match details {
        Some(details) => write_details(&mut html, details),
        None => write_error(&mut html, DETAILS_ERROR_HEADING, DETAILS_UNAVAILABLE),
    }
    html.push_str("</section>\n");

    html.push_str("<section id=\"reviews\">\n");
    match reviews {
        Some(reviews) => write_reviews(&mut html, reviews),
        None => write_error(&mut html, REVIEWS_ERROR_HEADING, REVIEWS_UNAVAILABLE),
    }
    html.push_str("</section>\n</main>\n</body>\n</html>\n");
    html
}

fn write_nav(html: &mut String, user: Option<&str>) {
    html.push_str("<nav>\n<a class=\"brand\" href=\"#\">BookInfo Sample</a>\n");
    match user.filter(|user| !user.is_empty()) {
        Some(user) => {
            let _ = writeln!(
                html,
                "<span class=\"user\">{}</span> <a href=\"logout\">Sign out</a>",
                escape(user)
            );
        }
        None => {
            html.push_str(
                "<details class=\"login\"><summary>Sign in</summary>\n\
                 <form method=\"post\" action=\"login\" name=\"login_form\">\n\
                 <input type=\"text\" name=\"username\" placeholder=\"User Name\">\n\
                 <input type=\"password\" name=\"passwd\" placeholder=\"Password\">\n\
                 <button type=\"submit\">Sign in</button>\n\
                 </form></details>\n",
            );
        }
    }
    html.push_str("</nav>\n");
}

fn write_error(html: &mut String, heading: &str, sentence: &str) {
    let _ = writeln!(
        html,
        "<h4 class=\"text-red-500\">{heading}</h4>\n<p>{sentence}</p>"
    );
}

fn write_details(html: &mut String, details: &Value) {
    html.push_str("<h4>Book Details</h4>\n<table class=\"book-details\">\n");
    html.push_str("<tr><th>ISBN-10</th><th>Publisher</th><th>Pages</th><th>Type</th><th>Language</th></tr>\n<tr>");
    for key in ["ISBN-10", "publisher", "pages", "type", "language"] {
        let _ = write!(
            html,
            "<td>{}</td>",
            escape(&display_value(details.get(key)))
        );
    }
    html.push_str("</tr>\n</table>\n");
}

fn write_reviews(html: &mut String, reviews: &Value) {
    html.push_str("<h4>Book Reviews</h4>\n");
    let empty = Vec::new();
    let items = reviews
        .get("reviews")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for review in items {
        write_review(html, review);
    }

    let podname = display_value(reviews.get("podname"));
    let clustername = display_value(reviews.get("clustername"));
    let _ = write!(
        html,
        "<p class=\"served-by\">Reviews served by: {}",
        escape(&podname)
    );
    // reviews reports an unset cluster name as the string "null", which the page hides.
    if !clustername.is_empty() && clustername != "null" {
        let _ = write!(html, " on cluster {}", escape(&clustername));
    }
    html.push_str("</p>\n");
}

fn write_review(html: &mut String, review: &Value) {
    let _ = writeln!(
        html,
        "<blockquote class=\"review\">\n<p>{}</p>\n<small>{}</small>",
        escape(&display_value(review.get("text"))),
        escape(&display_value(review.get("reviewer"))),
    );

    let rating = review.get("rating");
    let stars = rating.and_then(|rating| rating.get("stars"));
    let error = rating.and_then(|rating| rating.get("error"));
    if let Some(stars) = stars.and_then(Value::as_i64).filter(|stars| *stars != 0) {
        // Clamping keeps an odd stored rating from drawing thousands of stars.
        let filled = stars.clamp(0, 5) as usize;
        let color = display_value(rating.and_then(|rating| rating.get("color")));
        let _ = write!(html, "<div class=\"stars text-{}-500\">", escape(&color));
        html.push_str(&"<span class=\"star-full\">&#9733;</span>".repeat(filled));
        html.push_str(&"<span class=\"star-empty\">&#9734;</span>".repeat(5 - filled));
        html.push_str("</div>\n");
    } else if let Some(error) = error {
        let _ = writeln!(
            html,
            "<p class=\"rating-error text-red-500\"><i>{}</i></p>",
            escape(&display_value(Some(error)))
        );
    }
    html.push_str("</blockquote>\n");
}

/// Formats a JSON value the way a template prints it: strings bare, others as JSON.
fn display_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&#34;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::PRODUCT;
    use super::*;

    #[test]
    fn escape_markup() {
        assert_eq!(
            escape(r#"<b a="1">&'x'</b>"#),
            "&lt;b a=&#34;1&#34;&gt;&amp;&#39;x&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn stars_filled_and_empty() {
        let reviews = json!({
            "podname": "reviews-v3-1",
            "clustername": "null",
            "reviews": [{ "reviewer": "R", "text": "t", "rating": { "stars": 4, "color": "red" } }]
        });
        let html = product(&PRODUCT, None, None, Some(&reviews));
        assert!(html.contains("<div class=\"stars text-red-500\">"));
        assert_eq!(html.matches("star-full").count(), 4);
        assert_eq!(html.matches("star-empty").count(), 1);
        assert!(html.contains("Reviews served by: reviews-v3-1</p>"));
        assert!(!html.contains("on cluster"));
    }

    #[test]
    fn zero_stars_draw_nothing() {
        let reviews = json!({
            "reviews": [{ "reviewer": "R", "text": "t", "rating": { "stars": 0, "color": "black" } }]
        });
        let html = product(&PRODUCT, None, None, Some(&reviews));
        assert!(!html.contains("star-full"));
        assert!(!html.contains("star-empty"));
    }

    #[test]
    fn stars_clamped_to_five() {
        let reviews = json!({
            "reviews": [{ "reviewer": "R", "text": "t", "rating": { "stars": 1000, "color": "black" } }]
        });
        let html = product(&PRODUCT, None, None, Some(&reviews));
        assert_eq!(html.matches("star-full").count(), 5);
        assert_eq!(html.matches("star-empty").count(), 0);
    }

    #[test]
    fn cluster_name_shown_when_set() {
        let reviews = json!({ "podname": "p", "clustername": "east", "reviews": [] });
        let html = product(&PRODUCT, None, None, Some(&reviews));
        assert!(html.contains("Reviews served by: p on cluster east</p>"));
    }

    #[test]
    fn reviewer_text_escaped() {
        let reviews = json!({
            "reviews": [{ "reviewer": "<script>x</script>", "text": "a & b" }]
        });
        let html = product(&PRODUCT, Some("<i>eve</i>"), None, Some(&reviews));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(html.contains("a &amp; b"));
        assert!(html.contains("&lt;i&gt;eve&lt;/i&gt;"));
        assert!(!html.contains("<script>"));
    }
}
