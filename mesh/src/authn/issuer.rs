//! The lab's token issuer: an ES256 key made when the control plane starts, and Istio's
//! public sample RSA key for tokens that the sample JWKS accepts.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jwks::{JwkKeys, JwksCache};

/// `iss` of tokens minted with the lab key.
pub const LAB_ISSUER: &str = "meshlab@cluster.local";

/// `iss` of Istio's sample tokens (`demo.jwt`, `groups-scope.jwt`).
pub const ISTIO_SAMPLE_ISSUER: &str = "testing@secure.istio.io";

/// `kid` of the key in Istio's sample JWKS.
pub const ISTIO_SAMPLE_KID: &str = "DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ";

/// Istio's sample RSA private key (PKCS#1 PEM, Apache-2.0). It is public test material.
pub const ISTIO_SAMPLE_KEY_PEM: &str = include_str!("../../data/istio-samples/key.pem");

/// Paths of the control plane API that serve the lab issuer's JWKS.
pub const JWKS_PATHS: [&str; 2] = ["/v1/jwks", "/.well-known/jwks.json"];

/// Control plane authorities whose JWKS URIs are served from memory, so that sidecars
/// never call their own control plane over the network: the default API address and the
/// names istiod has in Kubernetes.
const LOCAL_AUTHORITIES: [&str; 5] = [
    "127.0.0.1:15012",
    "localhost:15012",
    "istiod:15012",
    "istiod.istio-system.svc:15012",
    "istiod.istio-system.svc.cluster.local:15012",
];

/// Lifetime of a minted token when the request sets neither `exp` nor `expires`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Contents of a minted token. Keys other than the named ones become claims, so a
/// scenario can write `{sub: alice, foo: bar}`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct MintRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Issuer; the lab issuer when unset. [`ISTIO_SAMPLE_ISSUER`] signs with Istio's sample
    /// key, any other issuer with the lab key.
    #[serde(default, alias = "issuer", skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// A string or a list of strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Value>,
    /// Lifetime from now, such as `1h`, or `-5m` for a token that has already expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Absolute `exp` (Unix seconds); wins over `expires`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub claims: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("invalid expires {0:?}: expected a duration such as 1h, 30s or -5m")]
    InvalidExpires(String),
    #[error("invalid aud: expected a string or a list of strings")]
    InvalidAudience,
    #[error("signing the token failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The control plane's signing keys.
pub struct LabIssuer {
    key: EncodingKey,
    kid: String,
    jwks: String,
    keys: Arc<JwkKeys>,
    sample_key: EncodingKey,
}

impl std::fmt::Debug for LabIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl LabIssuer {
    /// Makes a fresh P-256 key. ES256 because ring cannot generate RSA keys.
    pub fn generate() -> Self {
        Self::from_pkcs8(&Self::generate_pkcs8()).expect("ring reads the key it generated")
    }

    fn generate_pkcs8() -> Vec<u8> {
        let rng = SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("ring generates P-256 keys")
            .as_ref()
            .to_vec()
    }

    /// Loads the signing key kept at `path` (PKCS#8 DER), or creates and saves one, so that
    /// a restarted control plane keeps signing with the key its workloads already trust.
    pub fn load_or_create(path: &std::path::Path) -> std::io::Result<Self> {
        let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        match std::fs::read(path) {
            Ok(der) => Self::from_pkcs8(&der)
                .map_err(|e| invalid(format!("{}: not a P-256 PKCS#8 key: {e}", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let der = Self::generate_pkcs8();
                write_private(path, &der)?;
                Self::from_pkcs8(&der).map_err(|e| invalid(e.to_string()))
            }
            Err(error) => Err(error),
        }
    }

    /// Builds the issuer around a P-256 PKCS#8 key.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ring::error::KeyRejected> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)?;
        // The public key is the uncompressed point 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let x = b64.encode(&point[1..33]);
        let y = b64.encode(&point[33..65]);
        // RFC 7638 thumbprint: the required members in lexicographic order, no spaces.
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = b64.encode(Sha256::digest(thumbprint.as_bytes()));
        let jwks = serde_json::json!({
            "keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}]
        })
        .to_string();
        let keys = Arc::new(JwkKeys::parse(&jwks).expect("the lab JWKS parses"));
        let sample_key = EncodingKey::from_rsa_pem(ISTIO_SAMPLE_KEY_PEM.as_bytes())
            .expect("the bundled sample key is a valid RSA PEM");
        Ok(Self {
            key: EncodingKey::from_ec_der(pkcs8),
            kid,
            jwks,
            keys,
            sample_key,
        })
    }

    /// Returns the JWKS document with the lab's public key.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Makes `cache` serve the control plane's JWKS URIs from memory, and use them for
    /// rules with issuer [`LAB_ISSUER`] and no key source.
    pub fn register(&self, cache: &JwksCache) {
        register_lab_keys(cache, self.keys.clone());
    }

    /// Mints a signed token.
    pub fn mint(&self, request: &MintRequest) -> Result<String, MintError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let issuer = request
            .iss
            .clone()
            .unwrap_or_else(|| LAB_ISSUER.to_string());
        let mut claims = request.extra.clone();
        claims.extend(request.claims.clone());
        claims.insert("iss".into(), Value::String(issuer.clone()));
        if let Some(sub) = &request.sub {
            claims.insert("sub".into(), Value::String(sub.clone()));
        }
        if let Some(aud) = &request.aud {
            let valid = match aud {
                Value::String(_) => true,
                Value::Array(list) => list.iter().all(Value::is_string),
                _ => false,
            };
            if !valid {
                return Err(MintError::InvalidAudience);
            }
            claims.insert("aud".into(), aud.clone());
        }
        let exp = match (request.exp, &request.expires) {
            (Some(exp), _) => exp,
            (None, Some(text)) => now + parse_signed_duration(text)?,
            (None, None) => now + DEFAULT_TOKEN_LIFETIME.as_secs() as i64,
        };
        claims.entry("iat").or_insert(Value::from(now));
        claims.insert("exp".into(), Value::from(exp));
        if let Some(nbf) = request.nbf {
            claims.insert("nbf".into(), Value::from(nbf));
        }

        let (algorithm, kid, key) = if issuer == ISTIO_SAMPLE_ISSUER {
            (Algorithm::RS256, ISTIO_SAMPLE_KID, &self.sample_key)
        } else {
            (Algorithm::ES256, self.kid.as_str(), &self.key)
        };
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.to_string());
        Ok(jsonwebtoken::encode(&header, &claims, key)?)
    }
}

/// Parses `1h`, `90s` or `-5m` into signed seconds.
pub fn parse_signed_duration(text: &str) -> Result<i64, MintError> {
    let trimmed = text.trim();
    let (sign, magnitude) = match trimmed.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, trimmed),
    };
    let duration = humantime::parse_duration(magnitude.trim())
        .map_err(|_| MintError::InvalidExpires(text.to_string()))?;
    Ok(sign * duration.as_secs() as i64)
}

/// Writes `bytes` to `path` readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// Makes `cache` serve the control plane's JWKS URIs from memory with `keys`, and use
/// them for rules with issuer [`LAB_ISSUER`] and no key source. A workload in its own
/// container calls it with the keys it fetched from the control plane's `/v1/jwks`.
pub fn register_lab_keys(cache: &JwksCache, keys: Arc<JwkKeys>) {
    for authority in LOCAL_AUTHORITIES {
        for path in JWKS_PATHS {
            cache.add_local(&format!("http://{authority}{path}"), keys.clone());
        }
    }
    cache.set_issuer_uri(
        LAB_ISSUER,
        &format!("http://{}{}", LOCAL_AUTHORITIES[0], JWKS_PATHS[0]),
    );
}

#[cfg(test)]
mod tests {

    #[test]
    fn stored_key_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("meshlab-issuer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("issuer-key.der");
        let _ = std::fs::remove_file(&path);
        let first = LabIssuer::load_or_create(&path).unwrap();
        let again = LabIssuer::load_or_create(&path).unwrap();
        assert_eq!(first.kid(), again.kid(), "the stored key is reused");
        assert_ne!(first.kid(), LabIssuer::generate().kid());
        std::fs::write(&path, b"not a key").unwrap();
        let error = LabIssuer::load_or_create(&path).unwrap_err().to_string();
        assert!(error.contains("issuer-key.der"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }
    use super::*;

    #[test]
    fn signed_duration_parses_negative() {
        assert_eq!(parse_signed_duration("1h").unwrap(), 3600);
        assert_eq!(parse_signed_duration("-5m").unwrap(), -300);
        assert!(parse_signed_duration("soon").is_err());
    }

    #[test]
    fn mint_with_sample_key_reproduces_demo_jwt() {
        let issuer = LabIssuer::generate();
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"foo":"bar","iat":1532389700,"sub":"testing@secure.istio.io"}"#,
        )
        .unwrap();
        let request = MintRequest {
            iss: Some(ISTIO_SAMPLE_ISSUER.to_string()),
            exp: Some(4685989700),
            claims,
            ..MintRequest::default()
        };
        let token = issuer.mint(&request).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["foo"], "bar");
        assert_eq!(value["iss"], ISTIO_SAMPLE_ISSUER);
        assert_eq!(value["exp"], 4685989700i64);
    }
}
