//! Bootstrap and admin tokens of the networked control plane.
//!
//! A bootstrap token plays the part of a Kubernetes service-account token: it names one
//! namespace and service account, and the CA signs only that workload's SPIFFE ID. Both
//! kinds are `<base64url claims>.<base64url HMAC-SHA256 of the claims>` under the control
//! plane's secret, so anyone holding the secret can mint them (`meshctl bootstrap-token`,
//! `meshctl admin-token`) and the control plane needs no token database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// Smallest secret the control plane accepts, in bytes: HMAC-SHA256's output size.
pub const MIN_SECRET_LEN: usize = 32;

/// What a token grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Claims {
    /// A workload running as service account `sa` in namespace `ns`.
    Workload { ns: String, sa: String },
    /// Full access to the policy store, the registry and the agents' exec endpoints.
    Admin,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("control plane secret is too short: {0} bytes, expected at least {MIN_SECRET_LEN}")]
    ShortSecret(usize),
    #[error("malformed token: expected <claims>.<signature> in base64url")]
    Malformed,
    #[error("invalid token signature")]
    BadSignature,
    #[error("invalid token claims: {0}")]
    BadClaims(String),
}

/// Signs and verifies tokens with one HMAC key.
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// Creates a key from the control plane's secret; surrounding whitespace is ignored so
    /// that a secret file may end in a newline.
    pub fn new(secret: &[u8]) -> Result<Self, TokenError> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::ShortSecret(secret.len()));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// Mints a token carrying `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).expect("claims serialize to JSON");
        let signature = hmac::sign(&self.key, &payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// Checks `token`'s signature (in constant time) and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let (payload, signature) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, &payload, &signature).map_err(|_| TokenError::BadSignature)?;
        serde_json::from_slice(&payload).map_err(|e| TokenError::BadClaims(e.to_string()))
    }
}

/// Hex SHA-256 of a token: what a workload's agent stores to check the admin token without
/// holding the token itself.
pub fn token_sha256(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// Arguments of `meshctl bootstrap-token`.
#[derive(Clone, Debug, clap::Args)]
pub struct BootstrapTokenArgs {
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    #[arg(long)]
    pub service_account: String,
    /// File with the control plane's secret (at least 32 bytes).
    #[arg(long, env = "MESHLAB_SECRET_FILE")]
    pub secret_file: std::path::PathBuf,
}

impl BootstrapTokenArgs {
    /// Mints the token; returns it with a trailing newline.
    pub fn run(self) -> anyhow::Result<String> {
        let key = read_key(&self.secret_file)?;
        let token = key.mint(&Claims::Workload {
            ns: self.namespace,
            sa: self.service_account,
        });
        Ok(format!("{token}\n"))
    }
}

/// Arguments of `meshctl admin-token`.
#[derive(Clone, Debug, clap::Args)]
pub struct AdminTokenArgs {
    /// File with the control plane's secret (at least 32 bytes).
    #[arg(long, env = "MESHLAB_SECRET_FILE")]
    pub secret_file: std::path::PathBuf,
    /// Print the token's hex SHA-256, which workloads need to check it, instead of the
    /// token.
    #[arg(long)]
    pub sha256: bool,
}

impl AdminTokenArgs {
    /// Mints the token (or its hash); returns it with a trailing newline.
    pub fn run(self) -> anyhow::Result<String> {
        let token = read_key(&self.secret_file)?.mint(&Claims::Admin);
        if self.sha256 {
            Ok(format!("{}\n", token_sha256(&token)))
        } else {
            Ok(format!("{token}\n"))
        }
    }
}

/// Reads the control plane's secret from `path`.
pub fn read_key(path: &std::path::Path) -> anyhow::Result<TokenKey> {
    use anyhow::Context;
    let secret =
        std::fs::read(path).with_context(|| format!("reading secret file {}", path.display()))?;
    TokenKey::new(&secret).with_context(|| format!("secret file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> TokenKey {
        TokenKey::new(&[byte; 32]).unwrap()
    }

    #[test]
    fn round_trip_workload() {
        let claims = Claims::Workload {
            ns: "default".into(),
            sa: "sleep".into(),
        };
        let token = key(1).mint(&claims);
        assert_eq!(key(1).verify(&token), Ok(claims));
    }

    #[test]
    fn other_secret_rejected() {
        let token = key(1).mint(&Claims::Admin);
        assert_eq!(key(2).verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn edited_claims_rejected() {
        let token = key(1).mint(&Claims::Workload {
            ns: "default".into(),
            sa: "sleep".into(),
        });
        let (_, signature) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"role":"admin"}"#);
        assert_eq!(
            key(1).verify(&format!("{forged}.{signature}")),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn garbage_rejected() {
        assert_eq!(key(1).verify("no-dot"), Err(TokenError::Malformed));
        assert_eq!(key(1).verify("a.!!"), Err(TokenError::Malformed));
    }

    #[test]
    fn short_secret_rejected() {
        assert_eq!(
            TokenKey::new(b"short\n").unwrap_err(),
            TokenError::ShortSecret(5)
        );
    }
}
