//! Who an owner is: verification of Supabase Auth access tokens (the project's JWKS, or the
//! legacy HS256 secret) and, locally, of development tokens signed by a key only `serve`
//! trusts. The brand comes from `app_metadata.brand_id` or a top-level `brand_id` (an auth
//! hook's claim), never from `user_metadata`, which the user can edit.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The audience Supabase Auth puts in a signed-in user's access token.
pub const AUDIENCE: &str = "authenticated";
/// The issuer of development tokens (`alphadome admin token`).
pub const DEV_ISSUER: &str = "alphadome-dev";
/// How long a fetched JWKS is trusted before it is read again.
pub const JWKS_TTL: Duration = Duration::from_secs(600);
/// The least time between two reads of the JWKS forced by an unknown `kid`: a stream of
/// tokens with made-up key ids must not turn into a stream of requests to Supabase.
pub const JWKS_FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp`.
const LEEWAY_SECS: u64 = 30;

/// Why a token was refused. Callers only branch on `Expired` (a refresh may help); every
/// other case means "signed out".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
    #[error("the signing keys could not be read")]
    KeysUnavailable,
}

/// A verified owner.
#[derive(Debug, Clone)]
pub struct Owner {
    /// `sub`: the Supabase user id.
    pub user_id: String,
    pub email: Option<String>,
    /// The owner's business, when the token carries one.
    pub brand_id: Option<Uuid>,
    /// The verified claims, exactly as signed: they become `request.jwt.claims`.
    pub claims: Value,
}

/// The development signing key of a local installation: an HS256 secret created once, kept in
/// a file readable by its owner only, never printed.
#[derive(Clone)]
pub struct DevKey {
    secret: Arc<SecretString>,
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevKey(..)")
    }
}

impl DevKey {
    /// Where the key lives for a given `LOCAL_KEY_DIR`: beside it, in its parent
    /// (`.alphadome/keys` → `.alphadome/dev-jwt.key`).
    pub fn path_for(local_key_dir: &Path) -> PathBuf {
        let parent = local_key_dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        parent.join("dev-jwt.key")
    }

    /// Reads the key at `path`, creating it (0600) on first use.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::io::Write;
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut f) => f
                    .write_all(hex::encode(bytes).as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?,
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the development key {}", path.display()))?;
        let text = text.trim();
        anyhow::ensure!(
            text.len() >= 64 && hex::decode(text).is_ok(),
            "the development key {} is malformed: delete it to make a new one",
            path.display()
        );
        Ok(Self::from_secret(SecretString::from(text.to_owned())))
    }

    /// A key from a secret the caller holds (tests).
    pub fn from_secret(secret: SecretString) -> Self {
        Self {
            secret: Arc::new(secret),
        }
    }

    /// A development access token for `brand_id`, shaped like Supabase's.
    pub fn issue(&self, brand_id: Uuid, email: Option<&str>, ttl: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": DEV_ISSUER,
            "aud": AUDIENCE,
            "sub": Uuid::new_v4(),
            "email": email,
            "role": "authenticated",
            "iat": now,
            "exp": now + ttl.as_secs() as i64,
            "app_metadata": {"brand_id": brand_id, "provider": "alphadome-dev"},
            "user_metadata": {},
        });
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.expose_secret().as_bytes()),
        )
        .expect("HS256 signing of a JSON object cannot fail")
    }

    /// Bytes derived from this key for another purpose (the local session cookie key).
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
                .expect("HMAC takes keys of any length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Where the keys that sign access tokens come from.
enum KeySource {
    /// Supabase's asymmetric keys (ES256/RS256), from its JWKS endpoint.
    Jwks(JwksCache),
    /// A Supabase project still signing with HS256.
    Hs256(SecretString),
    /// `alphadome serve` without Supabase.
    Dev(DevKey),
}

/// The JWKS, cached for [`JWKS_TTL`] and read again when a token names an unknown key.
struct JwksCache {
    url: String,
    http: reqwest::Client,
    cache: moka::future::Cache<(), Arc<JwkSet>>,
    last_forced: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksCache {
    async fn get(&self) -> Result<Arc<JwkSet>, TokenError> {
        self.cache
            .try_get_with((), self.fetch())
            .await
            .map_err(|_| TokenError::KeysUnavailable)
    }

    async fn fetch(&self) -> anyhow::Result<Arc<JwkSet>> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(Arc::new(set))
    }

    /// Reads the JWKS again, at most once per [`JWKS_FORCED_REFRESH_INTERVAL`].
    async fn refresh_for_unknown_kid(&self) -> Result<Arc<JwkSet>, TokenError> {
        let mut last = self.last_forced.lock().await;
        if last.is_some_and(|t| t.elapsed() < JWKS_FORCED_REFRESH_INTERVAL) {
            return self.get().await;
        }
        *last = Some(Instant::now());
        self.cache.invalidate(&()).await;
        self.get().await
    }
}

/// Verifies owners' access tokens. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    issuer: String,
    source: Arc<KeySource>,
}

impl Verifier {
    /// Tokens of the Supabase project at `supabase_url`, verified against its JWKS.
    pub fn supabase_jwks(supabase_url: &str, http: reqwest::Client) -> Self {
        let base = supabase_url.trim_end_matches('/');
        Self {
            issuer: format!("{base}/auth/v1"),
            source: Arc::new(KeySource::Jwks(JwksCache {
                url: format!("{base}/auth/v1/.well-known/jwks.json"),
                http,
                cache: moka::future::Cache::builder()
                    .max_capacity(1)
                    .time_to_live(JWKS_TTL)
                    .build(),
                last_forced: tokio::sync::Mutex::new(None),
            })),
        }
    }

    /// Tokens of a Supabase project still signing with HS256 (`SUPABASE_JWT_SECRET`).
    pub fn supabase_hs256(supabase_url: &str, secret: SecretString) -> Self {
        Self {
            issuer: format!("{}/auth/v1", supabase_url.trim_end_matches('/')),
            source: Arc::new(KeySource::Hs256(secret)),
        }
    }

    /// Development tokens (`alphadome admin token`): only for `serve` without Supabase.
    pub fn development(key: DevKey) -> Self {
        Self {
            issuer: DEV_ISSUER.into(),
            source: Arc::new(KeySource::Dev(key)),
        }
    }

    /// Verifies signature, algorithm, `iss`, `aud` and `exp`, and reads the owner.
    pub async fn verify(&self, token: &str) -> Result<Owner, TokenError> {
        // `alg: none` (and anything else jsonwebtoken does not know) fails here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let (key, alg) = match self.source.as_ref() {
            KeySource::Hs256(secret) => (
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                Algorithm::HS256,
            ),
            KeySource::Dev(dev) => (
                DecodingKey::from_secret(dev.secret.expose_secret().as_bytes()),
                Algorithm::HS256,
            ),
            KeySource::Jwks(jwks) => {
                // Only asymmetric algorithms: an HS256 token "signed" with a public key is
                // the classic confusion attack.
                if !matches!(header.alg, Algorithm::ES256 | Algorithm::RS256) {
                    return Err(TokenError::Invalid);
                }
                let kid = header.kid.as_deref().ok_or(TokenError::Invalid)?;
                let mut set = jwks.get().await?;
                if set.find(kid).is_none() {
                    set = jwks.refresh_for_unknown_kid().await?;
                }
                let jwk = set.find(kid).ok_or(TokenError::Invalid)?;
                if jwk
                    .common
                    .key_algorithm
                    .is_some_and(|a| a.to_string() != format!("{:?}", header.alg))
                {
                    return Err(TokenError::Invalid);
                }
                (
                    DecodingKey::from_jwk(jwk).map_err(|_| TokenError::Invalid)?,
                    header.alg,
                )
            }
        };
        if header.alg != alg && !matches!(self.source.as_ref(), KeySource::Jwks(_)) {
            return Err(TokenError::Invalid);
        }
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        Ok(owner_from_claims(data.claims))
    }
}

/// Reads the owner from verified claims. The brand: `app_metadata.brand_id`, else a
/// top-level `brand_id`; `user_metadata` is never read.
fn owner_from_claims(claims: Value) -> Owner {
    let brand = claims
        .get("app_metadata")
        .and_then(|m| m.get("brand_id"))
        .or_else(|| claims.get("brand_id"))
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    Owner {
        user_id: claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        email: claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_owned),
        brand_id: brand,
        claims,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> (DevKey, Verifier) {
        let key = DevKey::from_secret(SecretString::from("0".repeat(64)));
        (key.clone(), Verifier::development(key))
    }

    #[tokio::test]
    async fn a_development_token_verifies_and_carries_its_brand() {
        let (key, verifier) = dev();
        let brand = Uuid::new_v4();
        let token = key.issue(brand, Some("o@example.com"), Duration::from_secs(60));
        let owner = verifier.verify(&token).await.unwrap();
        assert_eq!(owner.brand_id, Some(brand));
        assert_eq!(owner.email.as_deref(), Some("o@example.com"));
    }

    #[tokio::test]
    async fn a_brand_in_user_metadata_is_ignored() {
        let owner = owner_from_claims(serde_json::json!({
            "sub": "u", "user_metadata": {"brand_id": Uuid::new_v4()}
        }));
        assert_eq!(owner.brand_id, None);
    }

    #[tokio::test]
    async fn a_development_token_from_another_key_is_refused() {
        let (_, verifier) = dev();
        let other = DevKey::from_secret(SecretString::from("1".repeat(64)));
        let token = other.issue(Uuid::new_v4(), None, Duration::from_secs(60));
        assert_eq!(
            verifier.verify(&token).await.unwrap_err(),
            TokenError::Invalid
        );
    }

    #[tokio::test]
    async fn a_project_on_hs256_verifies_with_its_secret_and_checks_the_issuer() {
        let secret = "super-secret-jwt-token-with-at-least-32-characters";
        let verifier =
            Verifier::supabase_hs256("https://ref.supabase.co/", SecretString::from(secret));
        let now = chrono::Utc::now().timestamp();
        let brand = Uuid::new_v4();
        let sign = |iss: &str| {
            let claims = serde_json::json!({
                "iss": iss, "aud": AUDIENCE, "sub": "u", "exp": now + 60,
                "app_metadata": {"brand_id": brand},
            });
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        };
        let owner = verifier
            .verify(&sign("https://ref.supabase.co/auth/v1"))
            .await
            .unwrap();
        assert_eq!(owner.brand_id, Some(brand));
        assert_eq!(
            verifier.verify(&sign(DEV_ISSUER)).await.unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn the_development_key_lives_beside_the_local_key_dir() {
        assert_eq!(
            DevKey::path_for(Path::new(".alphadome/keys")),
            PathBuf::from(".alphadome/dev-jwt.key")
        );
        assert_eq!(
            DevKey::path_for(Path::new("keys")),
            PathBuf::from("./dev-jwt.key")
        );
    }
}
