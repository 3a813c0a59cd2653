//! The owners' dashboard (issue 12): sign-in, the owner's session and the pages. Handlers live
//! in `crate::http::admin`; this module holds the decisions (who is signed in, what the
//! cookie holds, what an owner may read) and the page templates.

pub mod auth;
pub mod conversations;
pub mod handovers;
pub mod html;
pub mod knowledge;
pub mod overview;
pub mod session;
pub mod settings;
pub mod supabase;
pub mod usage;

use secrecy::SecretString;
use sqlx::PgPool;
use std::path::Path;
use std::time::Duration;

use auth::{DevKey, Verifier};
use session::SessionKey;
use supabase::SupabaseAuth;

pub const SUPABASE_URL: &str = "SUPABASE_URL";
pub const SUPABASE_ANON_KEY: &str = "SUPABASE_ANON_KEY";
pub const SUPABASE_JWT_SECRET: &str = "SUPABASE_JWT_SECRET";
pub const ADMIN_DATABASE_URL: &str = "ADMIN_DATABASE_URL";
/// 32 bytes, hex: the key of session cookies, shared by every instance of the admin
/// function. Without it each process makes its own, and sessions end with the process.
pub const ADMIN_SESSION_KEY: &str = "ADMIN_SESSION_KEY";

/// How long a call to Supabase Auth may take.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(8);

/// Everything the dashboard's handlers need. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub verifier: Verifier,
    /// Supabase Auth, when configured; `None` in local development.
    pub supabase: Option<SupabaseAuth>,
    pub session_key: SessionKey,
    /// Connections that become `authenticated` for each request.
    pub pool: PgPool,
    /// The server's path that acts for a tenant (replying as a person, resuming the
    /// assistant); `None`: those actions say they are unavailable.
    pub actions: Option<conversations::TenantActions>,
}

/// Whether development tokens may be trusted (only `alphadome serve` without Supabase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevTokens {
    Trusted,
    Refused,
}

impl AdminState {
    /// The dashboard of a Supabase project.
    pub fn supabase(
        supabase_url: &str,
        anon_key: SecretString,
        jwt_secret: Option<SecretString>,
        session_key: SessionKey,
        pool: PgPool,
    ) -> Self {
        let auth = SupabaseAuth::new(supabase_url, anon_key, AUTH_TIMEOUT);
        let verifier = match jwt_secret {
            Some(secret) => Verifier::supabase_hs256(supabase_url, secret),
            None => Verifier::supabase_jwks(supabase_url, auth.http()),
        };
        Self {
            verifier,
            supabase: Some(auth),
            session_key,
            pool,
            actions: None,
        }
    }

    /// The local dashboard: development tokens signed by `key`.
    pub fn development(key: DevKey, pool: PgPool) -> Self {
        Self {
            session_key: SessionKey::new(key.derive("alphadome admin session cookie v1")),
            verifier: Verifier::development(key),
            supabase: None,
            pool,
            actions: None,
        }
    }

    /// The same dashboard, able to act for the owner's tenants through `actions`.
    pub fn with_actions(self, actions: conversations::TenantActions) -> Self {
        Self {
            actions: Some(actions),
            ..self
        }
    }

    /// From the environment: Supabase when `SUPABASE_URL` is set; else, if `dev` trusts them,
    /// development tokens with the key beside `local_key_dir`; else no dashboard (`None`).
    /// `pool` is used unless `ADMIN_DATABASE_URL` names the dashboard's own login role.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        dev: DevTokens,
        local_key_dir: &Path,
        pool: PgPool,
    ) -> anyhow::Result<Option<Self>> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if get(SUPABASE_URL).is_none() && dev == DevTokens::Refused {
            return Ok(None);
        }
        let pool = match get(ADMIN_DATABASE_URL) {
            Some(url) => crate::store::Store::connect_lazy(&SecretString::from(url), 4)?
                .pool()
                .clone(),
            None => pool,
        };
        match get(SUPABASE_URL) {
            Some(url) => {
                let anon = get(SUPABASE_ANON_KEY).ok_or_else(|| {
                    anyhow::anyhow!("{SUPABASE_ANON_KEY} is required when {SUPABASE_URL} is set")
                })?;
                let session_key = match get(ADMIN_SESSION_KEY) {
                    Some(hex_key) => {
                        let bytes: [u8; 32] = hex::decode(hex_key.trim())
                            .ok()
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| {
                                anyhow::anyhow!("{ADMIN_SESSION_KEY} must be 64 hex digits")
                            })?;
                        SessionKey::new(bytes)
                    }
                    None => {
                        tracing::warn!("ADMIN_SESSION_KEY is not set: owners' sessions last only as long as this process");
                        SessionKey::random()
                    }
                };
                Ok(Some(Self::supabase(
                    &url,
                    SecretString::from(anon),
                    get(SUPABASE_JWT_SECRET).map(SecretString::from),
                    session_key,
                    pool,
                )))
            }
            None if dev == DevTokens::Trusted => {
                let key = DevKey::load_or_create(&DevKey::path_for(local_key_dir))?;
                Ok(Some(Self::development(key, pool)))
            }
            None => Ok(None),
        }
    }
}
