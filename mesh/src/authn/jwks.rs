//! JSON Web Key Sets: parsing, fetching from `jwksUri`, and the shared cache.
//!
//! Istio's istiod fetches each `jwksUri` and refreshes it every 20 minutes
//! (`PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`); a URI that cannot be fetched makes every token
//! fail while token-less requests still pass. [`JwksCache`] does the same inside the
//! process: a request waits for a URI's keys only on its very first use (bounded by the
//! rule's `timeout`), and later refreshes run in the background.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Istio's sample JWKS (`security/tools/jwt/samples/jwks.json`, Apache-2.0), served for the
/// sample URIs that Istio's documentation uses so that the lab needs no internet access.
pub const ISTIO_SAMPLE_JWKS: &str = include_str!("../../data/istio-samples/jwks.json");

/// Interval between two fetches of a URI that worked, as istiod's default.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(20 * 60);

/// Interval between two fetches of a URI that failed.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// Time a first fetch may take when the rule sets no `timeout`.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest JWKS document read from a URI.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Host and path around the branch name in Istio's sample JWKS URIs.
const SAMPLE_URI_PREFIX: &str = "https://raw.githubusercontent.com/istio/istio/";
const SAMPLE_URI_SUFFIX: &str = "/security/tools/jwt/samples/jwks.json";

/// Key type and curve of a public key, which decides the algorithms it can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
    Hmac,
}

impl KeyFamily {
    /// Returns the family a JOSE algorithm needs.
    pub fn of_algorithm(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyFamily::Rsa,
            Algorithm::ES256 => KeyFamily::EcP256,
            Algorithm::ES384 => KeyFamily::EcP384,
            Algorithm::EdDSA => KeyFamily::Ed25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
        }
    }
}

/// One usable public key of a JWKS.
pub struct VerificationKey {
    pub kid: Option<String>,
    /// The key's `alg` member, when the JWKS names one.
    pub algorithm: Option<String>,
    pub family: KeyFamily,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

/// The usable keys of a JWKS document.
#[derive(Debug, Default)]
pub struct JwkKeys {
    pub keys: Vec<VerificationKey>,
}

/// Failure to get usable keys from a JWKS.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("invalid JWKS: {0}")]
    Invalid(String),
    #[error("JWKS has no usable public key")]
    NoValidKeys,
    #[error("fetching JWKS from {uri} failed: {reason}")]
    Fetch { uri: String, reason: String },
}

impl JwkKeys {
    /// Parses a JWKS document (`{"keys": [...]}`), or a single JWK as Envoy also accepts.
    /// Keys that cannot be used (unknown type, P-521, bad encoding) are skipped with a
    /// warning, so one bad key does not disable the others.
    pub fn parse(text: &str) -> Result<Self, JwksError> {
        let document: serde_json::Value = serde_json::from_str(text)
            .map_err(|error| JwksError::Invalid(format!("not JSON: {error}")))?;
        let entries = match document.get("keys") {
            Some(serde_json::Value::Array(keys)) => keys.clone(),
            Some(_) => return Err(JwksError::Invalid("keys is not a list".to_string())),
            None if document.get("kty").is_some() => vec![document],
            None => return Err(JwksError::Invalid("missing keys".to_string())),
        };
        let mut keys = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            match parse_key(entry) {
                Ok(key) => keys.push(key),
                Err(reason) => warn!(index, %reason, "Skipping unusable JWKS key"),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoValidKeys);
        }
        Ok(Self { keys })
    }
}

fn parse_key(entry: serde_json::Value) -> Result<VerificationKey, String> {
    let algorithm = entry
        .get("alg")
        .and_then(|alg| alg.as_str())
        .map(str::to_string);
    let jwk: Jwk = serde_json::from_value(entry).map_err(|error| error.to_string())?;
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => KeyFamily::Rsa,
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => KeyFamily::EcP256,
            EllipticCurve::P384 => KeyFamily::EcP384,
            ref other => return Err(format!("unsupported curve {other:?}")),
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => KeyFamily::Ed25519,
            ref other => return Err(format!("unsupported curve {other:?}")),
        },
        AlgorithmParameters::OctetKey(_) => KeyFamily::Hmac,
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|error| error.to_string())?;
    Ok(VerificationKey {
        kid: jwk.common.key_id.clone(),
        algorithm,
        family,
        key,
    })
}

/// Result of the latest fetch of one URI.
struct Fetched {
    keys: Result<Arc<JwkKeys>, JwksError>,
    at: Instant,
}

struct UriEntry {
    latest: ArcSwapOption<Fetched>,
    refreshing: AtomicBool,
    done: watch::Sender<u64>,
}

/// JWKS keys by URI, shared by every sidecar of a mesh. Cheap to clone.
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    entries: Mutex<HashMap<String, Arc<UriEntry>>>,
    /// URIs served from memory (the lab issuer's own JWKS endpoints).
    local: RwLock<HashMap<String, Arc<JwkKeys>>>,
    /// JWKS URI of issuers whose rules may omit `jwksUri` and `jwks`.
    issuer_uris: RwLock<HashMap<String, String>>,
    sample: Arc<JwkKeys>,
    client: Option<reqwest::Client>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uris = self.inner.entries.lock().map(|e| e.len()).unwrap_or(0);
        f.debug_struct("JwksCache")
            .field("uris", &uris)
            .finish_non_exhaustive()
    }
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new()
    }
}

impl JwksCache {
    pub fn new() -> Self {
        let sample = JwkKeys::parse(ISTIO_SAMPLE_JWKS).expect("bundled sample JWKS parses");
        let client = match http_client() {
            Ok(client) => Some(client),
            Err(error) => {
                warn!(%error, "HTTP client for JWKS fetches could not be built, every jwksUri will fail");
                None
            }
        };
        Self {
            inner: Arc::new(CacheInner {
                entries: Mutex::new(HashMap::new()),
                local: RwLock::new(HashMap::new()),
                issuer_uris: RwLock::new(HashMap::new()),
                sample: Arc::new(sample),
                client,
            }),
        }
    }

    /// Serves `keys` for `uri` from memory instead of fetching it.
    pub fn add_local(&self, uri: &str, keys: Arc<JwkKeys>) {
        if let Ok(mut local) = self.inner.local.write() {
            local.insert(uri.to_string(), keys);
        }
    }

    /// Makes rules for `issuer` without `jwksUri` or `jwks` use `uri`.
    pub fn set_issuer_uri(&self, issuer: &str, uri: &str) {
        if let Ok(mut uris) = self.inner.issuer_uris.write() {
            uris.insert(issuer.to_string(), uri.to_string());
        }
    }

    /// Returns the JWKS URI registered for `issuer`, if any.
    pub fn issuer_uri(&self, issuer: &str) -> Option<String> {
        self.inner.issuer_uris.read().ok()?.get(issuer).cloned()
    }

    /// Returns the keys for `uri`. Only the first use of a URI waits for a fetch, at most
    /// `timeout`; after that the latest result is returned at once and a stale one is
    /// refreshed in the background.
    pub async fn get(&self, uri: &str, timeout: Duration) -> Result<Arc<JwkKeys>, JwksError> {
        if let Some(keys) = self.in_memory(uri) {
            return Ok(keys);
        }
        let entry = self.entry(uri);
        if let Some(latest) = entry.latest.load_full() {
            let max_age = if latest.keys.is_ok() {
                REFRESH_INTERVAL
            } else {
                RETRY_INTERVAL
            };
            if latest.at.elapsed() >= max_age {
                self.start_fetch(uri, &entry);
            }
            return latest.keys.clone();
        }

        let mut done = entry.done.subscribe();
        self.start_fetch(uri, &entry);
        let waited = tokio::time::timeout(timeout, async {
            while entry.latest.load().is_none() {
                if done.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        match entry.latest.load_full() {
            Some(latest) => latest.keys.clone(),
            None => {
                let reason = if waited.is_err() {
                    format!("timed out after {timeout:?}")
                } else {
                    "fetch ended without a result".to_string()
                };
                warn!(uri, %reason, "JWKS fetch failed");
                Err(JwksError::Fetch {
                    uri: uri.to_string(),
                    reason,
                })
            }
        }
    }

    fn in_memory(&self, uri: &str) -> Option<Arc<JwkKeys>> {
        if let Some(keys) = self.inner.local.read().ok()?.get(uri) {
            return Some(keys.clone());
        }
        is_istio_sample_uri(uri).then(|| self.inner.sample.clone())
    }

    fn entry(&self, uri: &str) -> Arc<UriEntry> {
        let mut entries = self
            .inner
            .entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .entry(uri.to_string())
            .or_insert_with(|| {
                Arc::new(UriEntry {
                    latest: ArcSwapOption::empty(),
                    refreshing: AtomicBool::new(false),
                    done: watch::channel(0).0,
                })
            })
            .clone()
    }

    fn start_fetch(&self, uri: &str, entry: &Arc<UriEntry>) {
        if entry.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = self.inner.client.clone();
        let uri = uri.to_string();
        let entry = entry.clone();
        tokio::spawn(async move {
            let keys = fetch(client.as_ref(), &uri).await.map(Arc::new);
            match &keys {
                Ok(keys) => info!(uri, keys = keys.keys.len(), "JWKS fetched"),
                Err(error) => {
                    warn!(uri, %error, "JWKS fetch failed, tokens for this issuer will be rejected")
                }
            }
            let previous = entry.latest.load_full();
            // A failed refresh keeps the last working keys, so an outage of the JWKS server does
            // not reject tokens that verified before it; the refresh is retried sooner.
            let keep_previous = keys.is_err()
                && previous
                    .as_ref()
                    .is_some_and(|previous| previous.keys.is_ok());
            if keep_previous {
                if let Some(previous) = previous {
                    entry.latest.store(Some(Arc::new(Fetched {
                        keys: previous.keys.clone(),
                        at: Instant::now()
                            .checked_sub(REFRESH_INTERVAL - RETRY_INTERVAL)
                            .unwrap_or_else(Instant::now),
                    })));
                }
            } else {
                entry.latest.store(Some(Arc::new(Fetched {
                    keys,
                    at: Instant::now(),
                })));
            }
            entry.refreshing.store(false, Ordering::Release);
            entry.done.send_modify(|count| *count += 1);
        });
    }
}

/// True for `https://raw.githubusercontent.com/istio/istio/<branch>/security/tools/jwt/samples/jwks.json`.
pub fn is_istio_sample_uri(uri: &str) -> bool {
    uri.strip_prefix(SAMPLE_URI_PREFIX)
        .and_then(|rest| rest.strip_suffix(SAMPLE_URI_SUFFIX))
        .is_some_and(|branch| !branch.is_empty())
}

fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
    let builder = reqwest::Client::builder()
        .timeout(DEFAULT_FETCH_TIMEOUT)
        .connect_timeout(DEFAULT_FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .no_proxy();
    match tls {
        Ok(tls) => builder.use_preconfigured_tls(tls).build(),
        Err(error) => {
            warn!(%error, "TLS settings for JWKS fetches were rejected, using the defaults");
            builder.build()
        }
    }
}

async fn fetch(client: Option<&reqwest::Client>, uri: &str) -> Result<JwkKeys, JwksError> {
    let failed = |reason: String| JwksError::Fetch {
        uri: uri.to_string(),
        reason,
    };
    let client = client.ok_or_else(|| failed("no HTTP client".to_string()))?;
    debug!(uri, "Fetching JWKS");
    let mut response = client
        .get(uri)
        .send()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("status {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| failed(error.to_string()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JWKS_BYTES {
            return Err(failed(format!("body larger than {MAX_JWKS_BYTES} bytes")));
        }
    }
    let text = String::from_utf8(body).map_err(|_| failed("body is not UTF-8".to_string()))?;
    JwkKeys::parse(&text).map_err(|error| failed(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_uri_any_branch() {
        assert!(is_istio_sample_uri("https://raw.githubusercontent.com/istio/istio/release-1.4/security/tools/jwt/samples/jwks.json"));
        assert!(is_istio_sample_uri("https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json"));
        assert!(!is_istio_sample_uri(
            "https://raw.githubusercontent.com/istio/istio//security/tools/jwt/samples/jwks.json"
        ));
        assert!(!is_istio_sample_uri(
            "https://example.com/security/tools/jwt/samples/jwks.json"
        ));
    }

    #[test]
    fn parse_skips_bad_keys() {
        let text = r#"{"keys":[{"kty":"RSA","n":"!!!","e":"AQAB"},{"kty":"EC","crv":"P-521","x":"AA","y":"AA"},{"kty":"oct","k":"c2VjcmV0"}]}"#;
        let keys = JwkKeys::parse(text).unwrap();
        assert_eq!(keys.keys.len(), 1);
        assert_eq!(keys.keys[0].family, KeyFamily::Hmac);
    }

    #[test]
    fn parse_rejects_empty_and_invalid() {
        assert_eq!(
            JwkKeys::parse(r#"{"keys":[]}"#).unwrap_err(),
            JwksError::NoValidKeys
        );
        assert!(matches!(
            JwkKeys::parse("not json"),
            Err(JwksError::Invalid(_))
        ));
        assert!(matches!(
            JwkKeys::parse(r#"{"keys":{}}"#),
            Err(JwksError::Invalid(_))
        ));
    }

    #[test]
    fn sample_jwks_has_its_kid() {
        let keys = JwkKeys::parse(ISTIO_SAMPLE_JWKS).unwrap();
        assert_eq!(keys.keys.len(), 1);
        assert_eq!(
            keys.keys[0].kid.as_deref(),
            Some("DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ")
        );
        assert_eq!(keys.keys[0].family, KeyFamily::Rsa);
    }
}
