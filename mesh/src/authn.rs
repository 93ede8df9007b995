//! End-user authentication of inbound requests with JWTs: `RequestAuthentication`
//! (v1beta1 and v1) and the `origins` of legacy `Policy` resources.
//!
//! [`WorkloadAuthenticator::compile`] gathers the rules that apply to one workload: every
//! `RequestAuthentication` in the workload's namespace whose selector matches (or that has
//! none), merged with those in the root namespace `istio-system`, whose selectors match
//! workloads in any namespace; and, per workload port, the legacy policy in force there.
//! [`WorkloadAuthenticator::authenticate`] then checks each request:
//!
//! - no token: the request passes with no request principal (modern rules);
//! - a bad token: 401 with Envoy's body text, or 403 for an audience mismatch;
//! - legacy origins: a missing or bad token gets 401 `Origin authentication failed.`.
//!
//! CORS preflight requests skip every check, as Envoy's JWT filter lets them through.

pub mod issuer;
pub mod jwks;
pub mod jwt;
pub mod legacy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use tracing::warn;

use crate::authz::RequestAuth;
use crate::config::{RequestAuthenticationSpec, Resource, Snapshot, Spec, ROOT_NAMESPACE};
use crate::identity::SpiffeId;
use crate::peer_authn::legacy_policy_for;
use crate::workload::WorkloadMeta;
use jwks::{JwkKeys, JwksCache, DEFAULT_FETCH_TIMEOUT};
use jwt::{claim_as_header, JwtVerifier, KeySource, Location, Provider, VerifiedJwt};
use legacy::LegacyOrigins;

/// Response the sidecar sends itself because authentication failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    /// Response body, with Envoy's or Istio's wording.
    pub body: &'static str,
    /// `WWW-Authenticate` value, set for 401s of `RequestAuthentication`.
    pub www_authenticate: Option<String>,
    /// Detail for the log, never sent to the client.
    pub reason: String,
}

/// The end-user identity of an authenticated request.
#[derive(Clone, Debug)]
pub enum AuthnIdentity {
    /// Straight from the verified token, shared with the token cache.
    Shared(Arc<VerifiedJwt>),
    /// Built for this request, such as a legacy `USE_PEER` binding.
    Owned(Box<RequestAuth>),
}

impl AuthnIdentity {
    pub fn auth(&self) -> &RequestAuth {
        match self {
            AuthnIdentity::Shared(verified) => &verified.auth,
            AuthnIdentity::Owned(auth) => auth,
        }
    }
}

/// JWT rules compiled for one workload and one snapshot.
#[derive(Debug, Default)]
pub struct WorkloadAuthenticator {
    modern: Option<JwtVerifier>,
    /// Headers that outputs write, removed from every request so clients cannot forge them.
    output_headers: Vec<HeaderName>,
    legacy: HashMap<u16, Arc<LegacyOrigins>>,
}

impl WorkloadAuthenticator {
    /// Compiles the `RequestAuthentication` rules and legacy origins that apply to
    /// `workload`.
    pub fn compile(snapshot: &Snapshot, workload: &WorkloadMeta, jwks: &JwksCache) -> Self {
        let mut providers = Vec::new();
        for (resource, spec) in snapshot.request_authentications() {
            if applies_to(resource, spec, workload) {
                providers.extend(modern_providers(resource, spec, jwks));
            }
        }
        let mut output_headers: Vec<HeaderName> = Vec::new();
        for provider in &providers {
            let names = provider
                .payload_header
                .iter()
                .chain(provider.claim_headers.iter().map(|(name, _)| name));
            for name in names {
                if !output_headers.contains(name) {
                    output_headers.push(name.clone());
                }
            }
        }
        let modern = (!providers.is_empty()).then(|| JwtVerifier::new(providers, jwks.clone()));

        let mut legacy = HashMap::new();
        let ports = workload
            .services
            .iter()
            .flat_map(|service| service.ports.iter().map(|port| port.target_port));
        for port in ports {
            if legacy.contains_key(&port) {
                continue;
            }
            let Some(resource) = legacy_policy_for(snapshot, workload, port) else {
                continue;
            };
            let (Spec::Policy(spec) | Spec::MeshPolicy(spec)) = &resource.spec else {
                continue;
            };
            if let Some(origins) = LegacyOrigins::compile(resource, spec, jwks) {
                legacy.insert(port, Arc::new(origins));
            }
        }
        Self {
            modern,
            output_headers,
            legacy,
        }
    }

    /// True when no rule applies, so requests pass untouched.
    pub fn is_empty(&self) -> bool {
        self.modern.is_none() && self.legacy.is_empty()
    }

    /// Authenticates one request that arrived on workload port `port`. On success the
    /// token headers of non-forwarding rules are removed and the outputs are set; the
    /// identity is `None` when the request carried no token.
    pub async fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        port: u16,
        peer: Option<&SpiffeId>,
    ) -> Result<Option<AuthnIdentity>, Rejection> {
        if self.is_empty() || is_cors_preflight(method, headers) {
            return Ok(None);
        }
        for name in &self.output_headers {
            headers.remove(name);
        }
        // Istio 1.5, the one release that read both APIs, let the v1beta1 resource take
        // precedence for a workload, so legacy `origins` apply only where no
        // RequestAuthentication does.
        if let Some(verifier) = &self.modern {
            return authenticate_modern(verifier, uri, headers).await;
        }
        match self.legacy.get(&port) {
            Some(origins) => origins.authenticate(uri, headers, peer).await,
            None => Ok(None),
        }
    }
}

async fn authenticate_modern(
    verifier: &JwtVerifier,
    uri: &Uri,
    headers: &mut HeaderMap,
) -> Result<Option<AuthnIdentity>, Rejection> {
    let tokens = verifier.extract(uri, headers);
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut verified_tokens = Vec::with_capacity(tokens.len());
    // Every token in the request must verify, so one bad token rejects the request.
    for extracted in &tokens {
        match verifier.verify(&extracted.token).await {
            Ok(verified) => verified_tokens.push((extracted, verified)),
            Err(error) => {
                let status = error.status();
                let www_authenticate = (status == StatusCode::UNAUTHORIZED).then(|| {
                    format!(
                        "Bearer realm=\"http://{}{}\", error=\"invalid_token\"",
                        host_of(uri, headers),
                        uri.path()
                    )
                });
                return Err(Rejection {
                    status,
                    body: error.body(),
                    www_authenticate,
                    reason: error.to_string(),
                });
            }
        }
    }

    for (extracted, verified) in &verified_tokens {
        let provider = &verifier.providers()[verified.provider];
        if let Location::Header { name, .. } = &extracted.location {
            if !provider.forward {
                headers.remove(name);
            }
        }
        if let Some(name) = &provider.payload_header {
            if let Ok(value) = HeaderValue::from_str(&verified.payload) {
                headers.insert(name.clone(), value);
            }
        }
        for (name, claim) in &provider.claim_headers {
            let value = claim_as_header(&verified.auth.claims, claim)
                .and_then(|text| HeaderValue::from_str(&text).ok());
            if let Some(value) = value {
                headers.insert(name.clone(), value);
            }
        }
    }
    // Istio leaves the principal undefined when several tokens verify; the first wins.
    Ok(verified_tokens
        .into_iter()
        .next()
        .map(|(_, verified)| AuthnIdentity::Shared(verified)))
}

/// True for an `OPTIONS` request with `Origin` and `Access-Control-Request-Method`.
fn is_cors_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn host_of<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    headers
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// True when `resource` selects `workload`: a policy in the workload's namespace or in the
/// root namespace whose selector matches the workload's labels, or that has no selector.
fn applies_to(
    resource: &Resource,
    spec: &RequestAuthenticationSpec,
    workload: &WorkloadMeta,
) -> bool {
    let namespace = resource.meta.namespace.as_str();
    if namespace != workload.namespace && namespace != ROOT_NAMESPACE {
        return false;
    }
    spec.selector
        .as_ref()
        .is_none_or(|selector| selector.matches(&workload.labels))
}

fn modern_providers(
    resource: &Resource,
    spec: &RequestAuthenticationSpec,
    jwks: &JwksCache,
) -> Vec<Provider> {
    let source = format!(
        "RequestAuthentication {}/{}",
        resource.meta.namespace, resource.meta.name
    );
    let mut providers = Vec::new();
    for rule in &spec.jwt_rules {
        let issuer = rule.issuer.clone().unwrap_or_default();
        let mut locations = Vec::new();
        for header in &rule.from_headers {
            if let Some(name) = header_name(&header.name, &source) {
                locations.push(Location::Header {
                    name,
                    prefix: header.prefix.clone(),
                });
            }
        }
        locations.extend(rule.from_params.iter().cloned().map(Location::Param));
        locations.extend(rule.from_cookies.iter().cloned().map(Location::Cookie));
        if locations.is_empty() {
            locations = Provider::default_locations();
        }
        let timeout = rule.timeout.as_deref().and_then(parse_protobuf_duration);
        providers.push(Provider {
            keys: key_source(
                &issuer,
                rule.jwks.as_deref(),
                rule.jwks_uri.as_deref(),
                timeout,
                &source,
                jwks,
            ),
            issuer,
            audiences: rule.audiences.clone(),
            locations,
            forward: rule.forward_original_token,
            payload_header: rule
                .output_payload_to_header
                .as_deref()
                .and_then(|name| header_name(name, &source)),
            claim_headers: rule
                .output_claim_to_headers
                .iter()
                .filter_map(|output| {
                    header_name(&output.header, &source).map(|name| (name, output.claim.clone()))
                })
                .collect(),
            source: source.clone(),
        });
    }
    providers
}

/// Picks where a rule's keys come from: inline `jwks`, `jwksUri`, or the JWKS registered
/// for the issuer (the lab issuer's own).
pub(crate) fn key_source(
    issuer: &str,
    inline: Option<&str>,
    uri: Option<&str>,
    timeout: Option<Duration>,
    source: &str,
    jwks: &JwksCache,
) -> KeySource {
    let timeout = timeout.unwrap_or(DEFAULT_FETCH_TIMEOUT);
    if let Some(text) = inline {
        let keys = JwkKeys::parse(text).map(Arc::new);
        if let Err(error) = &keys {
            warn!(policy = source, issuer, %error, "Inline JWKS is unusable, tokens of this issuer will be rejected");
        }
        return KeySource::Inline(keys);
    }
    let registered = jwks.issuer_uri(issuer);
    if let Some(uri) = uri.or(registered.as_deref()) {
        return KeySource::Uri {
            uri: uri.to_string(),
            timeout,
        };
    }
    warn!(
        policy = source,
        issuer, "Rule has no jwksUri or jwks, tokens of this issuer will be rejected"
    );
    KeySource::Missing
}

fn header_name(name: &str, source: &str) -> Option<HeaderName> {
    match HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
        Ok(name) => Some(name),
        Err(_) => {
            warn!(
                policy = source,
                header = name,
                "Invalid header name ignored"
            );
            None
        }
    }
}

/// Parses `5s` or `1.5s`; validation has already rejected other forms.
fn parse_protobuf_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}
