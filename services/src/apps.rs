//! Bookinfo and the helper workloads as plain HTTP applications.
//!
//! Each app is an axum [`Router`] with no mesh code: it serves plain HTTP and calls other services by name (`http://details:9080/details/0`) through the
//! [`HttpClient`] it is given. The behaviour follows the Istio Bookinfo sample
//! (`samples/bookinfo/src` in `istio/istio`) closely enough that the Istio security tasks
//! show the same pages, statuses and error sentences.
//!
//! Layout:
//! - [`productpage`]: the HTML page, the `/api/v1/products` routes, login and metrics
//! - [`details`], [`reviews`], [`ratings`]: the three backends
//! - [`httpbin`]: an echo server for the authentication and authorization tasks
//! - [`sleep`]: a client workload that only serves `/health`
//! - [`tcp_echo`]: a plain TCP echo server for TCP authorization

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::upstream::HttpClient;

pub mod details;
pub mod httpbin;
mod outbound;
pub mod productpage;
pub mod ratings;
pub mod reviews;
pub mod sleep;
pub mod tcp_echo;

/// The workload an app router implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AppKind {
    Productpage,
    Details,
    Reviews(ReviewsVersion),
    Ratings,
    Httpbin,
    Sleep,
    /// Plain TCP: see [`tcp_echo`]; its HTTP router serves only `/health`.
    TcpEcho,
}

/// The three Bookinfo reviews builds, which differ only in how they show ratings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReviewsVersion {
    /// No ratings: the `rating` key is absent and ratings is never called.
    V1,
    /// Black stars, waiting up to [`Timeouts::ratings_black`] for ratings.
    V2,
    /// Red stars, waiting up to [`Timeouts::ratings_red`] for ratings.
    V3,
}

/// Error for an app name that [`AppKind::from_str`] does not recognise.
#[derive(Debug, thiserror::Error)]
#[error("unknown app {name:?}: expected one of {}", AppKind::NAMES.join(", "))]
pub struct UnknownAppKind {
    pub name: String,
}

impl AppKind {
    /// Every name [`AppKind::from_str`] accepts; `reviews` alone means `reviews-v1`.
    pub const NAMES: [&'static str; 10] = [
        "productpage",
        "details",
        "reviews",
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
        "ratings",
        "httpbin",
        "sleep",
        "tcp-echo",
    ];

    /// Returns the Kubernetes `app` label value of this workload.
    pub fn app_label(&self) -> &'static str {
        match self {
            AppKind::Productpage => "productpage",
            AppKind::Details => "details",
            AppKind::Reviews(_) => "reviews",
            AppKind::Ratings => "ratings",
            AppKind::Httpbin => "httpbin",
            AppKind::Sleep => "sleep",
            AppKind::TcpEcho => "tcp-echo",
        }
    }
}

impl FromStr for AppKind {
    type Err = UnknownAppKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let kind = match name {
            "productpage" => AppKind::Productpage,
            "details" => AppKind::Details,
            "reviews" | "reviews-v1" => AppKind::Reviews(ReviewsVersion::V1),
            "reviews-v2" => AppKind::Reviews(ReviewsVersion::V2),
            "reviews-v3" => AppKind::Reviews(ReviewsVersion::V3),
            "ratings" => AppKind::Ratings,
            "httpbin" => AppKind::Httpbin,
            "sleep" => AppKind::Sleep,
            "tcp-echo" => AppKind::TcpEcho,
            _ => {
                return Err(UnknownAppKind {
                    name: name.to_owned(),
                })
            }
        };
        Ok(kind)
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppKind::Reviews(ReviewsVersion::V1) => f.write_str("reviews-v1"),
            AppKind::Reviews(ReviewsVersion::V2) => f.write_str("reviews-v2"),
            AppKind::Reviews(ReviewsVersion::V3) => f.write_str("reviews-v3"),
            other => f.write_str(other.app_label()),
        }
    }
}

/// Outbound call deadlines, each applied to one try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// productpage's wait for details, reviews and ratings (Bookinfo: 3 s).
    pub productpage_call: Duration,
    /// reviews v2's wait for ratings (Bookinfo: 10 s).
    pub ratings_black: Duration,
    /// reviews v3's wait for ratings (Bookinfo: 2.5 s).
    pub ratings_red: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            productpage_call: Duration::from_secs(3),
            ratings_black: Duration::from_secs(10),
            ratings_red: Duration::from_millis(2500),
        }
    }
}

/// Settings an app reads from its environment in Bookinfo, plus its outbound client.
#[derive(Clone)]
pub struct AppEnv {
    pub client: HttpClient,
    /// Pod name (`HOSTNAME`), reported by reviews as `podname` and shown by productpage.
    pub pod_name: String,
    /// `CLUSTER_NAME`; reviews reports an unset value as the string `null`.
    pub cluster_name: Option<String>,
    /// `SERVICES_DOMAIN`, appended to every upstream host name after a dot.
    pub services_domain: Option<String>,
    pub details_host: String,
    pub reviews_host: String,
    pub ratings_host: String,
    pub details_port: u16,
    pub reviews_port: u16,
    pub ratings_port: u16,
    pub timeouts: Timeouts,
}

impl AppEnv {
    /// Creates settings with Bookinfo's defaults: bare service names on port 9080.
    pub fn new(client: HttpClient, pod_name: impl Into<String>) -> Self {
        AppEnv {
            client,
            pod_name: pod_name.into(),
            cluster_name: None,
            services_domain: None,
            details_host: "details".to_owned(),
            reviews_host: "reviews".to_owned(),
            ratings_host: "ratings".to_owned(),
            details_port: 9080,
            reviews_port: 9080,
            ratings_port: 9080,
            timeouts: Timeouts::default(),
        }
    }

    /// Builds `http://<host>[.<SERVICES_DOMAIN>]:<port>`, the base URL Bookinfo uses.
    fn service_url(&self, host: &str, port: u16) -> String {
        match &self.services_domain {
            Some(domain) => format!("http://{host}.{domain}:{port}"),
            None => format!("http://{host}:{port}"),
        }
    }

    pub(crate) fn details_url(&self) -> String {
        self.service_url(&self.details_host, self.details_port)
    }

    pub(crate) fn reviews_url(&self) -> String {
        self.service_url(&self.reviews_host, self.reviews_port)
    }

    pub(crate) fn ratings_url(&self) -> String {
        self.service_url(&self.ratings_host, self.ratings_port)
    }
}

impl fmt::Debug for AppEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppEnv")
            .field("pod_name", &self.pod_name)
            .field("cluster_name", &self.cluster_name)
            .field("services_domain", &self.services_domain)
            .field("details_url", &self.details_url())
            .field("reviews_url", &self.reviews_url())
            .field("ratings_url", &self.ratings_url())
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// Builds the router of one workload.
pub fn router(kind: &AppKind, env: AppEnv) -> Router {
    match kind {
        AppKind::Productpage => productpage::router(env),
        AppKind::Details => details::router(),
        AppKind::Reviews(version) => reviews::router(*version, env),
        AppKind::Ratings => ratings::router(),
        AppKind::Httpbin => httpbin::router(),
        AppKind::Sleep => sleep::router(),
        AppKind::TcpEcho => tcp_echo::router(),
    }
}

/// Builds an `application/json` response from already serialized bytes.
pub(crate) fn json_bytes(
    status: StatusCode,
    body: impl Into<Bytes>,
) -> http::Response<axum::body::Body> {
    let mut response = http::Response::new(axum::body::Body::from(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Builds an `application/json` response from a value.
pub(crate) fn json_response(
    status: StatusCode,
    value: &impl serde::Serialize,
) -> http::Response<axum::body::Body> {
    let body = serde_json::to_vec(value).expect("app response types serialize to JSON");
    json_bytes(status, body)
}

/// Builds the `{"error": <message>}` body Bookinfo uses for every failure.
pub(crate) fn json_error(status: StatusCode, message: &str) -> http::Response<axum::body::Body> {
    json_response(status, &serde_json::json!({ "error": message }))
}

/// Copies every value of each listed header from `incoming` into `outgoing`.
pub(crate) fn copy_headers(incoming: &HeaderMap, names: &[&'static str], outgoing: &mut HeaderMap) {
    for name in names {
        for value in incoming.get_all(*name) {
            outgoing.append(header::HeaderName::from_static(name), value.clone());
        }
    }
}
