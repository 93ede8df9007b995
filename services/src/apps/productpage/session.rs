//! The signed `session` cookie that carries the signed-in user name.
//!
//! The value is `<payload>.<signature>`: the payload is the JSON object `{"user": NAME}`
//! in unpadded URL-safe base64, and the signature is HMAC-SHA256 over the encoded payload,
//! also in unpadded URL-safe base64. Bookinfo keeps its key in the source as well, so a
//! trainee who reads the code can forge a session, and one who does not cannot.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{header, HeaderMap};
use ring::hmac;
use serde::{Deserialize, Serialize};

/// Name of the session cookie, as in Flask.
pub const COOKIE_NAME: &str = "session";

/// HMAC key of the session cookie, fixed in the source like Bookinfo's Flask secret.
const SESSION_KEY: &[u8] = b"meshlab bookinfo productpage session key";

/// `Set-Cookie` value that makes the browser drop the session.
pub(super) const CLEAR_COOKIE: &str =
    "session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Path=/";

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    user: String,
}

fn key() -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, SESSION_KEY)
}

/// Builds the signed cookie value for `user`.
pub fn sign(user: &str) -> String {
    let payload = serde_json::to_vec(&Payload {
        user: user.to_owned(),
    })
    .expect("session payload serializes");
    let encoded = URL_SAFE_NO_PAD.encode(payload);
    let tag = hmac::sign(&key(), encoded.as_bytes());
    format!("{encoded}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Returns the user of a cookie value, or `None` when it is malformed or its signature
/// does not verify.
pub fn verify(value: &str) -> Option<String> {
    let (encoded, signature) = value.split_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    hmac::verify(&key(), encoded.as_bytes(), &signature).ok()?;
    let payload = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    let payload: Payload = serde_json::from_slice(&payload).ok()?;
    Some(payload.user)
}

/// Builds the `Set-Cookie` value that stores `user` in the session.
pub(super) fn set_cookie(user: &str) -> String {
    format!("{COOKIE_NAME}={}; HttpOnly; Path=/", sign(user))
}

/// Returns the signed-in user of a request.
///
/// Like Flask, an invalid or tampered cookie counts as no session rather than an error.
pub(super) fn user(headers: &HeaderMap) -> Option<String> {
    let cookies = headers
        .get_all(header::COOKIE)
        .into_iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'));
    for cookie in cookies {
        let Some((name, value)) = cookie.trim().split_once('=') else {
            continue;
        };
        if name != COOKIE_NAME {
            continue;
        }
        match verify(value) {
            Some(user) => return Some(user),
            None => tracing::debug!("Ignored session cookie with an invalid signature"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn sign_verify_round_trip() {
        assert_eq!(verify(&sign("jason")).as_deref(), Some("jason"));
        assert_eq!(
            verify(&sign("a \"quoted\" name")).as_deref(),
            Some("a \"quoted\" name")
        );
    }

    #[test]
    fn verify_rejects_tampering() {
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"user":"admin"}"#);
        let (_, signature) = sign("jason")
            .split_once('.')
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .unwrap();
        assert_eq!(verify(&format!("{forged_payload}.{signature}")), None);
        assert_eq!(verify("no-dot"), None);
        assert_eq!(verify("abc.***"), None);
        assert_eq!(verify(""), None);
    }

    #[test]
    fn user_from_cookie_header() {
        let mut headers = HeaderMap::new();
        let value = format!("theme=dark; session={}; other=1", sign("jason"));
        headers.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        assert_eq!(user(&headers).as_deref(), Some("jason"));
    }

    #[test]
    fn user_absent_for_bad_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("session=garbage"));
        assert_eq!(user(&headers), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_bytes(b"session=\xff\xfe").unwrap(),
        );
        assert_eq!(user(&headers), None);
    }
}
