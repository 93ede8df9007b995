//! JWT extraction and verification with the failure texts of Envoy's `jwt_authn` filter.
//!
//! Checks run in Envoy's order: the token's form, its issuer, `exp`/`nbf` with 60 s of
//! clock skew, the audiences, then the signature against the issuer's JWKS. A token that
//! passed is cached by its bytes until it expires, so a repeated token costs one lookup.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use http::{HeaderMap, HeaderName, StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::jwks::{JwkKeys, JwksCache, JwksError, KeyFamily};
use crate::authz::RequestAuth;

/// Allowed clock difference on `exp` and `nbf`, in seconds, as Envoy's fixed default.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Maximum time a verified token is served from the cache, so that a key removed from a
/// JWKS stops being accepted within this bound.
const CACHE_TTL_SECS: u64 = 300;

/// Entries the token cache keeps before it drops expired ones, or all of them.
const CACHE_CAPACITY: usize = 10_000;

/// Base64url as JWTs use it; padding is tolerated because some issuers add it.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Reason a token was rejected. [`JwtError::body`] is the `jwt_verify_lib` status text that
/// Envoy sends as the response body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is not three dot-separated parts")]
    BadFormat,
    #[error("token header is not base64url JSON: {0}")]
    BadHeader(String),
    #[error("token payload is not base64url JSON: {0}")]
    BadPayload(String),
    #[error("token algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
    #[error("token issuer {0:?} is not configured")]
    UnknownIssuer(String),
    #[error("token expired at {0}")]
    Expired(u64),
    #[error("token is not valid before {0}")]
    NotYetValid(u64),
    #[error("token audiences {0:?} are not allowed")]
    AudienceNotAllowed(Vec<String>),
    #[error("JWKS has no key matching the token's kid or alg")]
    NoMatchingKey,
    #[error("token signature does not verify")]
    VerificationFailed,
    #[error("{0}")]
    Jwks(JwksError),
}

impl JwtError {
    /// Returns Envoy's response body for this failure.
    pub fn body(&self) -> &'static str {
        match self {
            JwtError::BadFormat => "Jwt is not in the form of Header.Payload.Signature",
            JwtError::BadHeader(_) => "Jwt header is an invalid Base64url input or an invalid JSON",
            JwtError::BadPayload(_) => {
                "Jwt payload is an invalid Base64url input or an invalid JSON"
            }
            // NOTE: wording not checked against jwt_verify_lib, unlike the other bodies.
            JwtError::UnsupportedAlgorithm(_) => "Jwt header [alg] is not supported",
            JwtError::UnknownIssuer(_) => "Jwt issuer is not configured",
            JwtError::Expired(_) => "Jwt is expired",
            JwtError::NotYetValid(_) => "Jwt not yet valid",
            JwtError::AudienceNotAllowed(_) => "Audiences in Jwt are not allowed",
            JwtError::NoMatchingKey => "Jwks doesn't have key to match kid or alg from Jwt",
            JwtError::VerificationFailed => "Jwt verification fails",
            JwtError::Jwks(JwksError::Fetch { .. }) => "Jwks remote fetch is failed",
            JwtError::Jwks(JwksError::Invalid(_)) => "Jwks is an invalid JSON",
            JwtError::Jwks(JwksError::NoValidKeys) => "Jwks doesn't have any valid public key",
        }
    }

    /// Returns 403 for an audience mismatch and 401 for every other failure, as Envoy does.
    pub fn status(&self) -> StatusCode {
        match self {
            JwtError::AudienceNotAllowed(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Token location of a provider.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A header, with the prefix (such as `Bearer `) that must precede the token.
    Header { name: HeaderName, prefix: String },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// Key source of a provider.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// Inline `jwks`, parsed when the policy was compiled.
    Inline(Result<Arc<JwkKeys>, JwksError>),
    /// `jwksUri`, fetched through the shared cache.
    Uri { uri: String, timeout: Duration },
    /// Neither was set and the issuer has no known JWKS.
    Missing,
}

/// One accepted issuer: a `jwtRules` entry or a legacy origin `jwt`.
#[derive(Clone, Debug)]
pub struct Provider {
    pub issuer: String,
    /// Allowed `aud` values; empty means any audience.
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub locations: Vec<Location>,
    /// Keep the token header for the app after validation.
    pub forward: bool,
    /// Header that receives the base64url payload.
    pub payload_header: Option<HeaderName>,
    /// Headers that receive a claim each; the claim path is split on `.` for nesting.
    pub claim_headers: Vec<(HeaderName, String)>,
    /// `Kind namespace/name` of the resource that defined the provider, for logs.
    pub source: String,
}

impl Provider {
    /// Returns the locations used when a rule configures none: `Authorization: Bearer` and
    /// the `access_token` query parameter.
    pub fn default_locations() -> Vec<Location> {
        vec![
            Location::Header {
                name: http::header::AUTHORIZATION,
                prefix: "Bearer ".to_string(),
            },
            Location::Param("access_token".to_string()),
        ]
    }
}

/// A token that passed verification.
#[derive(Debug)]
pub struct VerifiedJwt {
    pub auth: RequestAuth,
    /// The token's payload segment, for `outputPayloadToHeader`.
    pub payload: String,
    /// Index of the provider that accepted the token.
    pub provider: usize,
}

/// A token found in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtractedToken {
    pub token: String,
    pub location: Location,
}

struct CacheEntry {
    verified: Arc<VerifiedJwt>,
    /// Unix time after which the entry must not be used.
    valid_until: u64,
}

/// Verifies tokens against a fixed list of providers, with a cache of verified tokens.
pub struct JwtVerifier {
    providers: Vec<Provider>,
    jwks: JwksCache,
    cache: RwLock<HashMap<Box<str>, CacheEntry>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    pub fn new(providers: Vec<Provider>, jwks: JwksCache) -> Self {
        Self {
            providers,
            jwks,
            cache: RwLock::new(HashMap::new()),
        }
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Finds every token at the providers' locations. A header value without the
    /// location's prefix is not a token there, as Envoy's extractor skips it.
    pub fn extract(&self, uri: &http::Uri, headers: &HeaderMap) -> Vec<ExtractedToken> {
        let mut locations: Vec<&Location> = Vec::new();
        for location in self.providers.iter().flat_map(|p| &p.locations) {
            if !locations.contains(&location) {
                locations.push(location);
            }
        }
        let mut tokens: Vec<ExtractedToken> = Vec::new();
        let mut push = |token: &str, location: &Location| {
            let token = token.trim();
            if token.is_empty() {
                return;
            }
            let found = ExtractedToken {
                token: token.to_string(),
                location: location.clone(),
            };
            if !tokens.contains(&found) {
                tokens.push(found);
            }
        };
        for location in locations {
            match location {
                Location::Header { name, prefix } => {
                    for value in headers.get_all(name) {
                        let Ok(value) = value.to_str() else { continue };
                        if let Some(token) = strip_prefix_ignore_case(value, prefix) {
                            push(token, location);
                        }
                    }
                }
                Location::Param(param) => {
                    for (key, value) in query_pairs(uri.query().unwrap_or("")) {
                        if key == *param {
                            push(&value, location);
                        }
                    }
                }
                Location::Cookie(cookie) => {
                    for value in headers.get_all(http::header::COOKIE) {
                        let Ok(value) = value.to_str() else { continue };
                        for pair in value.split(';') {
                            if let Some((key, token)) = pair.trim().split_once('=') {
                                if key == cookie {
                                    push(token, location);
                                }
                            }
                        }
                    }
                }
            }
        }
        tokens
    }

    /// Verifies `token` against the providers whose issuer equals its `iss`; it passes when
    /// any of them accepts it.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedJwt>, JwtError> {
        let now = unix_now();
        if let Some(verified) = self.cached(token, now) {
            return Ok(verified);
        }
        let parsed = ParsedToken::parse(token)?;
        let issuer = parsed
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut first_error = None;
        for (index, provider) in self.providers.iter().enumerate() {
            if provider.issuer != issuer {
                continue;
            }
            match self.verify_with(provider, &parsed, now).await {
                Ok(()) => {
                    let verified = Arc::new(VerifiedJwt {
                        auth: request_auth(&parsed.claims),
                        payload: parsed.payload.to_string(),
                        provider: index,
                    });
                    self.remember(token, &verified, parsed.expiry(), now);
                    return Ok(verified);
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| JwtError::UnknownIssuer(issuer.to_string())))
    }

    async fn verify_with(
        &self,
        provider: &Provider,
        parsed: &ParsedToken<'_>,
        now: u64,
    ) -> Result<(), JwtError> {
        parsed.check_time(now)?;
        if !provider.audiences.is_empty() {
            let audiences = audiences_of(&parsed.claims);
            if !audiences.iter().any(|aud| provider.audiences.contains(aud)) {
                return Err(JwtError::AudienceNotAllowed(audiences));
            }
        }
        let algorithm = Algorithm::from_str(&parsed.algorithm)
            .map_err(|_| JwtError::UnsupportedAlgorithm(parsed.algorithm.clone()))?;
        let keys = match &provider.keys {
            KeySource::Inline(keys) => keys.clone().map_err(JwtError::Jwks)?,
            KeySource::Uri { uri, timeout } => {
                self.jwks.get(uri, *timeout).await.map_err(JwtError::Jwks)?
            }
            KeySource::Missing => {
                return Err(JwtError::Jwks(JwksError::Fetch {
                    uri: String::new(),
                    reason: format!("no jwksUri or jwks for issuer {}", provider.issuer),
                }))
            }
        };
        verify_signature(parsed, algorithm, &keys)
    }

    fn cached(&self, token: &str, now: u64) -> Option<Arc<VerifiedJwt>> {
        let cache = self.cache.read().ok()?;
        let entry = cache.get(token)?;
        (now <= entry.valid_until).then(|| entry.verified.clone())
    }

    fn remember(&self, token: &str, verified: &Arc<VerifiedJwt>, expiry: Option<u64>, now: u64) {
        let mut valid_until = now + CACHE_TTL_SECS;
        if let Some(exp) = expiry {
            valid_until = valid_until.min(exp.saturating_add(CLOCK_SKEW_SECS));
        }
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, entry| entry.valid_until >= now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            token.into(),
            CacheEntry {
                verified: verified.clone(),
                valid_until,
            },
        );
    }
}

fn verify_signature(
    parsed: &ParsedToken<'_>,
    algorithm: Algorithm,
    keys: &JwkKeys,
) -> Result<(), JwtError> {
    let family = KeyFamily::of_algorithm(algorithm);
    let candidates = keys.keys.iter().filter(|key| {
        // Checking the family first also keeps an HMAC algorithm away from an RSA key,
        // which jsonwebtoken 9 cannot handle.
        key.family == family
            && key
                .algorithm
                .as_deref()
                .is_none_or(|alg| alg == parsed.algorithm)
            && match (&parsed.kid, &key.kid) {
                (Some(wanted), Some(kid)) => wanted == kid,
                _ => true,
            }
    });
    let mut tried = false;
    for key in candidates {
        tried = true;
        let valid = jsonwebtoken::crypto::verify(
            parsed.signature,
            parsed.signing_input.as_bytes(),
            &key.key,
            algorithm,
        )
        .unwrap_or(false);
        if valid {
            return Ok(());
        }
    }
    if tried {
        Err(JwtError::VerificationFailed)
    } else {
        Err(JwtError::NoMatchingKey)
    }
}

/// A token split and decoded, not yet verified.
struct ParsedToken<'a> {
    algorithm: String,
    kid: Option<String>,
    claims: serde_json::Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> ParsedToken<'a> {
    fn parse(token: &'a str) -> Result<Self, JwtError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::BadFormat);
        };
        let header_json: Value = decode_json(header).map_err(JwtError::BadHeader)?;
        let algorithm = header_json
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| JwtError::BadHeader("missing alg".to_string()))?
            .to_string();
        let kid = header_json
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let claims = match decode_json(payload).map_err(JwtError::BadPayload)? {
            Value::Object(claims) => claims,
            _ => return Err(JwtError::BadPayload("not a JSON object".to_string())),
        };
        Ok(Self {
            algorithm,
            kid,
            claims,
            signing_input: &token[..header.len() + 1 + payload.len()],
            payload,
            signature,
        })
    }

    fn expiry(&self) -> Option<u64> {
        self.claims.get("exp").and_then(Value::as_u64)
    }

    fn check_time(&self, now: u64) -> Result<(), JwtError> {
        if let Some(exp) = self.claims.get("exp") {
            let exp = time_claim(exp).ok_or_else(|| JwtError::BadPayload("exp".to_string()))?;
            if now > exp.saturating_add(CLOCK_SKEW_SECS) {
                return Err(JwtError::Expired(exp));
            }
        }
        if let Some(nbf) = self.claims.get("nbf") {
            let nbf = time_claim(nbf).ok_or_else(|| JwtError::BadPayload("nbf".to_string()))?;
            if nbf > now.saturating_add(CLOCK_SKEW_SECS) {
                return Err(JwtError::NotYetValid(nbf));
            }
        }
        Ok(())
    }
}

/// Reads a NumericDate; fractions are truncated and negative times count as 0.
fn time_claim(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_f64().map(|f| f.max(0.0) as u64))
}

fn decode_json(segment: &str) -> Result<Value, String> {
    let bytes = BASE64URL
        .decode(segment)
        .map_err(|error| format!("invalid base64url: {error}"))?;
    serde_json::from_slice(&bytes).map_err(|error| format!("invalid JSON: {error}"))
}

/// Builds the identity that authorization matches from a token's claims.
pub fn request_auth(claims: &serde_json::Map<String, Value>) -> RequestAuth {
    let iss = claims.get("iss").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    RequestAuth {
        // Without `sub` there is no request principal, so `requestPrincipals: ["*"]`
        // does not match, as in Istio.
        principal: iss.zip(sub).map(|(iss, sub)| format!("{iss}/{sub}")),
        audiences: audiences_of(claims),
        presenter: claims
            .get("azp")
            .and_then(Value::as_str)
            .map(str::to_string),
        claims: Value::Object(claims.clone()),
    }
}

fn audiences_of(claims: &serde_json::Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Returns a claim as header text: strings as they are, numbers and booleans in JSON form.
/// `path` is split on `.` to reach nested claims.
pub fn claim_as_header(claims: &Value, path: &str) -> Option<String> {
    let mut value = claims;
    for key in path.split('.') {
        value = value.get(key)?;
    }
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn strip_prefix_ignore_case<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// Splits a query string into decoded `(key, value)` pairs.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(decoded) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(decoded);
                i += 3;
                continue;
            }
        }
        out.push(if byte == b'+' { b' ' } else { byte });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decode_handles_escapes_and_ends() {
        assert_eq!(percent_decode("a%2Eb"), "a.b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("a+b"), "a b");
    }

    #[test]
    fn parse_rejects_bad_forms() {
        assert_eq!(
            ParsedToken::parse("deadbeef").err(),
            Some(JwtError::BadFormat)
        );
        assert_eq!(
            ParsedToken::parse("a.b.c.d").err(),
            Some(JwtError::BadFormat)
        );
        assert!(matches!(
            ParsedToken::parse("some.invalid.token"),
            Err(JwtError::BadHeader(_))
        ));
    }

    #[test]
    fn claim_header_reads_nested_values() {
        let claims = serde_json::json!({"a": {"b": "x", "n": 3, "t": true, "l": [1]}});
        assert_eq!(claim_as_header(&claims, "a.b").as_deref(), Some("x"));
        assert_eq!(claim_as_header(&claims, "a.n").as_deref(), Some("3"));
        assert_eq!(claim_as_header(&claims, "a.t").as_deref(), Some("true"));
        assert_eq!(claim_as_header(&claims, "a.l"), None);
        assert_eq!(claim_as_header(&claims, "a.missing"), None);
    }

    #[test]
    fn prefix_match_ignores_case() {
        assert_eq!(
            strip_prefix_ignore_case("bearer abc", "Bearer "),
            Some("abc")
        );
        assert_eq!(strip_prefix_ignore_case("abc", "Bearer "), None);
        assert_eq!(strip_prefix_ignore_case("abc", ""), Some("abc"));
    }
}
