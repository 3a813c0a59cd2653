//! The owner's session cookie and CSRF tokens. The cookie holds the Supabase tokens sealed
//! with AES-256-GCM under a server key: the browser can neither read them nor forge or alter
//! a session (any changed byte fails authentication and reads as "signed out").

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Binds a sealed cookie to its purpose: a ciphertext made for anything else fails to open.
const AAD: &[u8] = b"alphadome-admin-session-v1";
const NONCE_LEN: usize = 12;

/// What the session cookie carries.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(..)")
    }
}

/// The server's key for session cookies.
#[derive(Clone)]
pub struct SessionKey(Arc<Aes256Gcm>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(Arc::new(Aes256Gcm::new(&key.into())))
    }

    /// A key for this process only (sessions end when it stops).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::new(key)
    }

    /// The cookie value for `session`.
    pub fn seal(&self, session: &Session) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(session).expect("a session serialises");
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .expect("AES-GCM encryption of a small message cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The session in a cookie value, or `None` for anything this key did not seal.
    pub fn open(&self, value: &str) -> Option<Session> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// A fresh CSRF token (the double-submitted value: cookie and form field).
pub fn new_csrf_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether the form's CSRF token matches the cookie's, in constant time.
pub fn csrf_matches(cookie: Option<&str>, form: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    match (cookie, form) {
        (Some(c), Some(f)) if !c.is_empty() && c.len() == f.len() => {
            c.as_bytes().ct_eq(f.as_bytes()).into()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            access_token: "header.payload.signature".into(),
            refresh_token: Some("refresh".into()),
        }
    }

    #[test]
    fn a_sealed_session_opens_with_its_key_only() {
        let key = SessionKey::random();
        let sealed = key.seal(&session());
        assert_eq!(key.open(&sealed), Some(session()));
        assert_eq!(SessionKey::random().open(&sealed), None);
    }

    #[test]
    fn the_sealed_cookie_does_not_show_the_token() {
        let sealed = SessionKey::random().seal(&session());
        let bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("payload"));
        assert!(!sealed.contains("payload"));
    }

    #[test]
    fn every_changed_byte_of_a_sealed_session_is_refused() {
        let key = SessionKey::random();
        let mut bytes = URL_SAFE_NO_PAD.decode(key.seal(&session())).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            assert_eq!(key.open(&URL_SAFE_NO_PAD.encode(&bytes)), None, "byte {i}");
            bytes[i] ^= 0x01;
        }
    }

    #[test]
    fn csrf_tokens_must_be_present_and_equal() {
        assert!(csrf_matches(Some("abc"), Some("abc")));
        assert!(!csrf_matches(Some("abc"), Some("abd")));
        assert!(!csrf_matches(Some("abc"), None));
        assert!(!csrf_matches(None, Some("abc")));
        assert!(!csrf_matches(Some(""), Some("")));
    }
}
