//! Verification of Meta's `X-Hub-Signature-256` webhook signature.
//!
//! Meta signs every webhook POST with HMAC-SHA256 over the exact raw body bytes, keyed with the
//! app secret, and sends `sha256=<64 lowercase hex digits>`. Verification must run on the bytes as
//! received: parsing and re-serialising the JSON changes them (key order, whitespace, `\uXXXX`
//! escapes) and the signature no longer matches.
//!
//! Only the exact form Meta sends is accepted. An UPPERCASE (or mixed-case) digest is rejected as
//! malformed even when it encodes the right bytes: Meta never sends one, so such a header did not
//! come from Meta unaltered, and one canonical form leaves nothing to argue about in tests.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The HTTP header Meta puts the signature in (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

const SCHEME_PREFIX: &str = "sha256=";
const DIGEST_HEX_LEN: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook signature was refused. Every case means: answer 401 and do nothing else.
///
/// The error text never contains the secret, the body or the header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request carried no `X-Hub-Signature-256` header.
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    /// The header is present but not of the form `sha256=<64 lowercase hex digits>`.
    #[error("the X-Hub-Signature-256 header is malformed: {0}")]
    Malformed(MalformedSignature),
    /// The header is well formed but the digest is not the HMAC of this body with our app secret.
    #[error("the webhook signature does not match the body")]
    Mismatch,
}

/// What exactly is wrong with a malformed signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedSignature {
    /// No `sha256=` prefix; this includes Meta's legacy `sha1=` header and an empty value.
    #[error("it does not start with sha256=")]
    WrongScheme,
    /// The digest is not 64 characters long (an empty or odd-length digest lands here).
    #[error("the digest is not 64 hex digits long")]
    WrongLength,
    /// The digest has a character other than `0-9a-f` (uppercase hex included).
    #[error("the digest is not lowercase hex")]
    NotLowercaseHex,
}

/// Checks `header` (the raw value of `X-Hub-Signature-256`, `None` when absent) against the
/// HMAC-SHA256 of `body` keyed with the Meta app `secret`.
///
/// The header is taken as bytes because an HTTP header value need not be UTF-8
/// (`http::HeaderValue::as_bytes`). The digest comparison is constant time (`verify_slice`), so
/// the time taken does not tell an attacker how many leading bytes were right.
///
/// # Errors
/// [`SignatureError::Missing`] without a header, [`SignatureError::Malformed`] when it is not
/// `sha256=<64 lowercase hex>`, [`SignatureError::Mismatch`] when the digest is wrong.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let expected = parse_header(header).map_err(SignatureError::Malformed)?;
    let mut mac = new_mac(secret);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Returns the full `X-Hub-Signature-256` header value Meta would send for `body`:
/// `sha256=` followed by the lowercase hex HMAC-SHA256 keyed with `secret`.
///
/// Used by tests, the simulator and the demo to produce requests the webhook accepts.
#[must_use]
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(body);
    format!(
        "{SCHEME_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks only the form of the header (`sha256=<64 lowercase hex>`), without a secret: a
/// malformed header is refused before anything else is done with the request.
///
/// # Errors
/// As [`verify`], without [`SignatureError::Mismatch`].
pub fn check_form(header: Option<&[u8]>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    parse_header(header)
        .map(|_| ())
        .map_err(SignatureError::Malformed)
}

fn new_mac(secret: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed first), so this cannot fail.
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

fn parse_header(header: &[u8]) -> Result<[u8; 32], MalformedSignature> {
    let digest = header
        .strip_prefix(SCHEME_PREFIX.as_bytes())
        .ok_or(MalformedSignature::WrongScheme)?;
    if digest.len() != DIGEST_HEX_LEN {
        return Err(MalformedSignature::WrongLength);
    }
    // `hex::decode` also accepts uppercase; Meta's form is lowercase only, so check first.
    if !digest
        .iter()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(MalformedSignature::NotLowercaseHex);
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(digest, &mut bytes).map_err(|_| MalformedSignature::NotLowercaseHex)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-app-secret";
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;

    #[test]
    fn a_signature_made_with_the_same_secret_verifies() {
        let header = sign(SECRET, BODY);
        assert_eq!(verify(SECRET, BODY, Some(header.as_bytes())), Ok(()));
    }

    #[test]
    fn sign_produces_sha256_prefix_and_64_lowercase_hex_digits() {
        let header = sign(SECRET, BODY);
        let digest = header.strip_prefix("sha256=").unwrap();
        assert_eq!(digest.len(), 64);
        assert!(digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn sign_matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2.
        let header = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signature_made_with_another_secret_is_a_mismatch() {
        let header = sign(b"another-secret", BODY);
        assert_eq!(
            verify(SECRET, BODY, Some(header.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_absent_header_is_missing() {
        assert_eq!(verify(SECRET, BODY, None), Err(SignatureError::Missing));
    }

    #[test]
    fn an_empty_header_value_has_the_wrong_scheme() {
        assert_eq!(
            verify(SECRET, BODY, Some(b"")),
            Err(SignatureError::Malformed(MalformedSignature::WrongScheme))
        );
    }

    #[test]
    fn an_uppercase_digest_of_the_right_bytes_is_rejected() {
        let header = sign(SECRET, BODY)
            .to_uppercase()
            .replacen("SHA256=", "sha256=", 1);
        assert_eq!(
            verify(SECRET, BODY, Some(header.as_bytes())),
            Err(SignatureError::Malformed(
                MalformedSignature::NotLowercaseHex
            ))
        );
    }

    #[test]
    fn error_text_never_contains_the_header_value() {
        let header = format!("sha1={}", "ab".repeat(20));
        let err = verify(SECRET, BODY, Some(header.as_bytes())).unwrap_err();
        assert!(!err.to_string().contains("abab"));
    }
}
