//! Origin authentication of legacy `Policy` and `MeshPolicy` resources (Istio 1.0 to 1.5).
//!
//! Unlike `RequestAuthentication`, a legacy policy with `origins` requires a token: a
//! missing or invalid one gets 401 `Origin authentication failed.` unless
//! `originIsOptional` is set or no trigger rule matches the path. The token stays in the
//! request for the app, and `principalBinding` decides whether `request.auth.principal`
//! is the token's `iss/sub` or the peer's identity.

use std::sync::Arc;

use http::{HeaderMap, Uri};
use regex::Regex;
use tracing::{debug, warn};

use super::jwks::JwksCache;
use super::jwt::{JwtVerifier, Location, Provider};
use super::{key_source, AuthnIdentity, Rejection};
use crate::config::legacy_policy::{Jwt, PrincipalBinding, StringMatch, TriggerRule};
use crate::config::{PolicySpec, Resource};
use crate::identity::SpiffeId;

/// Body of the 401 that Istio's authn filter sends.
pub const ORIGIN_FAILED_BODY: &str = "Origin authentication failed.";

/// The origin methods of the legacy policy in force on one workload port.
#[derive(Debug)]
pub struct LegacyOrigins {
    verifier: JwtVerifier,
    /// Trigger rules of each provider, in provider order.
    triggers: Vec<Vec<CompiledTrigger>>,
    optional: bool,
    binding: PrincipalBinding,
    /// `Kind namespace/name` of the policy, for logs.
    pub source: String,
}

#[derive(Debug)]
struct CompiledTrigger {
    excluded: Vec<PathMatch>,
    included: Vec<PathMatch>,
}

#[derive(Debug)]
enum PathMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Regex(Option<Regex>),
}

impl PathMatch {
    fn compile(matcher: &StringMatch, source: &str) -> Self {
        match matcher {
            StringMatch::Exact(value) => PathMatch::Exact(value.clone()),
            StringMatch::Prefix(value) => PathMatch::Prefix(value.clone()),
            StringMatch::Suffix(value) => PathMatch::Suffix(value.clone()),
            StringMatch::Regex(pattern) => match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => PathMatch::Regex(Some(regex)),
                Err(error) => {
                    warn!(policy = source, pattern, %error, "Invalid trigger rule regex never matches");
                    PathMatch::Regex(None)
                }
            },
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(value) => path == value,
            PathMatch::Prefix(value) => path.starts_with(value.as_str()),
            PathMatch::Suffix(value) => path.ends_with(value.as_str()),
            PathMatch::Regex(regex) => regex.as_ref().is_some_and(|r| r.is_match(path)),
        }
    }
}

impl CompiledTrigger {
    fn matches(&self, path: &str) -> bool {
        !self.excluded.iter().any(|m| m.matches(path))
            && (self.included.is_empty() || self.included.iter().any(|m| m.matches(path)))
    }
}

impl LegacyOrigins {
    /// Compiles the `origins` of `resource`; `None` when it has none.
    pub fn compile(resource: &Resource, spec: &PolicySpec, jwks: &JwksCache) -> Option<Self> {
        if spec.origins.is_empty() {
            return None;
        }
        let source = format!(
            "{} {}/{}",
            resource.kind(),
            resource.meta.namespace,
            resource.meta.name
        );
        let providers = spec
            .origins
            .iter()
            .map(|origin| provider(&origin.jwt, &source, jwks))
            .collect();
        let triggers = spec
            .origins
            .iter()
            .map(|origin| compile_triggers(&origin.jwt.trigger_rules, &source))
            .collect();
        Some(Self {
            verifier: JwtVerifier::new(providers, jwks.clone()),
            triggers,
            optional: spec.origin_is_optional,
            binding: spec.principal_binding,
            source,
        })
    }

    /// Authenticates the request's origin. `Ok(None)` means no origin applies or an
    /// optional origin is missing.
    pub async fn authenticate(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        peer: Option<&SpiffeId>,
    ) -> Result<Option<AuthnIdentity>, Rejection> {
        let path = uri.path();
        // A provider without trigger rules always applies; with rules, any matching rule
        // makes it apply.
        let triggered: Vec<bool> = self
            .triggers
            .iter()
            .map(|rules| rules.is_empty() || rules.iter().any(|rule| rule.matches(path)))
            .collect();
        if !triggered.iter().any(|t| *t) {
            debug!(policy = %self.source, path, "No origin trigger rule matches, origin authentication skipped");
            return Ok(None);
        }

        let tokens = self.verifier.extract(uri, headers);
        let mut failure = if tokens.is_empty() {
            "missing token".to_string()
        } else {
            String::new()
        };
        for extracted in &tokens {
            match self.verifier.verify(&extracted.token).await {
                Ok(verified) if triggered[verified.provider] => {
                    let identity = match self.binding {
                        PrincipalBinding::UseOrigin => AuthnIdentity::Shared(verified),
                        PrincipalBinding::UsePeer => {
                            let mut auth = verified.auth.clone();
                            auth.principal = peer.map(SpiffeId::principal);
                            AuthnIdentity::Owned(Box::new(auth))
                        }
                    };
                    return Ok(Some(identity));
                }
                Ok(_) => failure = "token issuer is not required on this path".to_string(),
                Err(error) => failure = error.to_string(),
            }
        }
        if self.optional {
            debug!(policy = %self.source, reason = %failure, "Optional origin not authenticated");
            return Ok(None);
        }
        Err(Rejection {
            status: http::StatusCode::UNAUTHORIZED,
            body: ORIGIN_FAILED_BODY,
            www_authenticate: None,
            reason: format!("{}: {failure}", self.source),
        })
    }
}

fn compile_triggers(rules: &[TriggerRule], source: &str) -> Vec<CompiledTrigger> {
    rules
        .iter()
        .map(|rule| CompiledTrigger {
            excluded: rule
                .excluded_paths
                .iter()
                .map(|m| PathMatch::compile(m, source))
                .collect(),
            included: rule
                .included_paths
                .iter()
                .map(|m| PathMatch::compile(m, source))
                .collect(),
        })
        .collect()
}

fn provider(jwt: &Jwt, source: &str, jwks: &JwksCache) -> Provider {
    let mut locations = Vec::new();
    for name in &jwt.jwt_headers {
        let Ok(header) = http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else {
            warn!(policy = source, header = %name, "Invalid jwtHeaders entry ignored");
            continue;
        };
        // Tokens in Authorization always carry the Bearer scheme; other headers hold the
        // bare token.
        let prefix = if header == http::header::AUTHORIZATION {
            "Bearer "
        } else {
            ""
        };
        locations.push(Location::Header {
            name: header,
            prefix: prefix.to_string(),
        });
    }
    locations.extend(jwt.jwt_params.iter().cloned().map(Location::Param));
    if locations.is_empty() {
        locations = Provider::default_locations();
    }
    Provider {
        issuer: jwt.issuer.clone(),
        audiences: jwt.audiences.clone(),
        keys: key_source(
            &jwt.issuer,
            jwt.jwks.as_deref(),
            jwt.jwks_uri.as_deref(),
            None,
            source,
            jwks,
        ),
        locations,
        forward: true,
        payload_header: None,
        claim_headers: Vec::new(),
        source: source.to_string(),
    }
}

/// Shared handle so that an authenticator can be cloned cheaply per port.
pub type SharedLegacyOrigins = Arc<LegacyOrigins>;
