//! Tenant secrets at rest: AES-256-GCM with a key version and associated data that binds
//! each ciphertext to its tenant and column.
//!
//! Envelope stored in the database: `v<version>.<base64(nonce ‖ ciphertext ‖ tag)>`.
//! Associated data: `alphadome/<tenant id>/<column>`, so a ciphertext copied into another
//! tenant's row, or into another column, fails to decrypt instead of leaking.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::collections::BTreeMap;
use std::fmt;

use crate::domain::TenantId;

const NONCE_LEN: usize = 12;

/// The column a secret lives in; part of the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretColumn {
    WhatsappAccessToken,
    AiApiKey,
    MetaAppSecret,
}

impl SecretColumn {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WhatsappAccessToken => "whatsapp_access_token",
            Self::AiApiKey => "ai_api_key",
            Self::MetaAppSecret => "meta_app_secret",
        }
    }
}

/// Why a secret could not be sealed or opened. Never carries key or plaintext material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext envelope is malformed")]
    Malformed,
    #[error("no data key of version {0} for this tenant")]
    UnknownKeyVersion(u32),
    #[error("ciphertext does not decrypt for this tenant and column")]
    Decrypt,
    #[error("a data key must be 32 bytes of base64")]
    BadKey,
}

/// One 256-bit data key. Zeroed on drop, never printed.
pub struct DataKey(SecretBox<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        let mut bytes = Box::new([0u8; 32]);
        bytes.copy_from_slice(&key);
        Self(SecretBox::new(bytes))
    }

    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let bytes = B64.decode(s.trim()).map_err(|_| CryptoError::BadKey)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self(SecretBox::new(Box::new(arr))))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.expose_secret())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.expose_secret()))
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        Self(SecretBox::new(Box::new(*self.0.expose_secret())))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// A tenant's data keys by version. New secrets are sealed under `current`; any version
/// still present opens, which is what lets rotation proceed row by row.
#[derive(Clone, Debug)]
pub struct KeyRing {
    pub tenant_id: TenantId,
    pub current: u32,
    keys: BTreeMap<u32, DataKey>,
}

impl KeyRing {
    /// A ring with one fresh key, version 1.
    pub fn generate(tenant_id: TenantId) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, DataKey::generate());
        Self {
            tenant_id,
            current: 1,
            keys,
        }
    }

    pub fn from_parts(
        tenant_id: TenantId,
        current: u32,
        keys: BTreeMap<u32, DataKey>,
    ) -> Result<Self, CryptoError> {
        if !keys.contains_key(&current) {
            return Err(CryptoError::UnknownKeyVersion(current));
        }
        Ok(Self {
            tenant_id,
            current,
            keys,
        })
    }

    pub fn versions(&self) -> impl Iterator<Item = (u32, &DataKey)> {
        self.keys.iter().map(|(v, k)| (*v, k))
    }

    pub fn has_version(&self, version: u32) -> bool {
        self.keys.contains_key(&version)
    }

    /// Adds a fresh key as the new current version; older versions stay so they still open.
    pub fn rotate(&mut self) -> u32 {
        let next = self.keys.keys().next_back().copied().unwrap_or(0) + 1;
        self.keys.insert(next, DataKey::generate());
        self.current = next;
        next
    }

    /// Drops every version but the current one (once no row uses them any more).
    pub fn retire_old_versions(&mut self) {
        let current = self.current;
        self.keys.retain(|v, _| *v == current);
    }

    fn aad(&self, column: SecretColumn) -> String {
        format!("alphadome/{}/{}", self.tenant_id, column.as_str())
    }

    /// Seals `plaintext` for this tenant and column under the current key.
    pub fn encrypt(&self, column: SecretColumn, plaintext: &SecretString) -> String {
        let key = &self.keys[&self.current];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = self.aad(column);
        let sealed = key
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("v{}.{}", self.current, B64.encode(out))
    }

    /// Opens an envelope sealed for this tenant and column.
    pub fn decrypt(
        &self,
        column: SecretColumn,
        envelope: &str,
    ) -> Result<SecretString, CryptoError> {
        let (version, bytes) = parse_envelope(envelope)?;
        let key = self
            .keys
            .get(&version)
            .ok_or(CryptoError::UnknownKeyVersion(version))?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = self.aad(column);
        let plain = key
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        let text = String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)?;
        Ok(SecretString::from(text))
    }
}

/// The key version an envelope was sealed under.
pub fn envelope_version(envelope: &str) -> Result<u32, CryptoError> {
    parse_envelope(envelope).map(|(v, _)| v)
}

fn parse_envelope(envelope: &str) -> Result<(u32, Vec<u8>), CryptoError> {
    let rest = envelope.strip_prefix('v').ok_or(CryptoError::Malformed)?;
    let (version, body) = rest.split_once('.').ok_or(CryptoError::Malformed)?;
    let version: u32 = version.parse().map_err(|_| CryptoError::Malformed)?;
    let bytes = B64.decode(body).map_err(|_| CryptoError::Malformed)?;
    Ok((version, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_sealed_token_opens_for_the_same_tenant_and_column() {
        let ring = KeyRing::generate(TenantId::new());
        let env = ring.encrypt(SecretColumn::WhatsappAccessToken, &secret("EAAG-token"));
        assert!(env.starts_with("v1."));
        assert!(!env.contains("EAAG"));
        let back = ring
            .decrypt(SecretColumn::WhatsappAccessToken, &env)
            .unwrap();
        assert_eq!(back.expose_secret(), "EAAG-token");
    }

    #[test]
    fn a_ciphertext_copied_to_another_tenant_does_not_open() {
        let a = KeyRing::generate(TenantId::new());
        let env = a.encrypt(SecretColumn::WhatsappAccessToken, &secret("token-a"));
        // Same key material, other tenant: only the associated data differs.
        let b = KeyRing::from_parts(TenantId::new(), 1, a.keys.clone()).unwrap();
        assert_eq!(
            b.decrypt(SecretColumn::WhatsappAccessToken, &env)
                .unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_column_does_not_open() {
        let a = KeyRing::generate(TenantId::new());
        let env = a.encrypt(SecretColumn::WhatsappAccessToken, &secret("token-a"));
        assert_eq!(
            a.decrypt(SecretColumn::AiApiKey, &env).unwrap_err(),
            CryptoError::Decrypt
        );
    }

    #[test]
    fn a_flipped_byte_fails_to_decrypt() {
        let a = KeyRing::generate(TenantId::new());
        let env = a.encrypt(SecretColumn::AiApiKey, &secret("sk-test"));
        let (_, mut bytes) = parse_envelope(&env).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 0x01;
            let tampered = format!("v1.{}", B64.encode(&bytes));
            assert_eq!(
                a.decrypt(SecretColumn::AiApiKey, &tampered).unwrap_err(),
                CryptoError::Decrypt
            );
            bytes[i] ^= 0x01;
        }
    }

    #[test]
    fn two_encryptions_of_the_same_token_differ() {
        let a = KeyRing::generate(TenantId::new());
        let x = a.encrypt(SecretColumn::AiApiKey, &secret("same"));
        let y = a.encrypt(SecretColumn::AiApiKey, &secret("same"));
        assert_ne!(x, y);
    }

    #[test]
    fn after_rotation_old_ciphertexts_still_open_and_new_ones_use_the_new_version() {
        let mut a = KeyRing::generate(TenantId::new());
        let old = a.encrypt(SecretColumn::AiApiKey, &secret("old"));
        assert_eq!(a.rotate(), 2);
        let new = a.encrypt(SecretColumn::AiApiKey, &secret("new"));
        assert_eq!(envelope_version(&new).unwrap(), 2);
        assert_eq!(
            a.decrypt(SecretColumn::AiApiKey, &old)
                .unwrap()
                .expose_secret(),
            "old"
        );
        a.retire_old_versions();
        assert_eq!(
            a.decrypt(SecretColumn::AiApiKey, &old).unwrap_err(),
            CryptoError::UnknownKeyVersion(1)
        );
        assert_eq!(
            a.decrypt(SecretColumn::AiApiKey, &new)
                .unwrap()
                .expose_secret(),
            "new"
        );
    }

    #[test]
    fn garbage_envelopes_are_malformed_not_panics() {
        let a = KeyRing::generate(TenantId::new());
        for bad in [
            "", "v", "v1", "v1.", "vx.AAAA", "1.AAAA", "v1.!!!!", "v1.AAAA",
        ] {
            assert!(a.decrypt(SecretColumn::AiApiKey, bad).is_err(), "{bad}");
        }
    }
}
