//! Configuration from the environment. Every variable name here is part of the contract in
//! DESIGN.md (people and scripts set them): a missing or bad setting is an error that names
//! the variable, never its value.

use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::{BrandId, PhoneNumberId};

pub const DATABASE_URL: &str = "DATABASE_URL";
pub const REPLY_QUEUE_URL: &str = "REPLY_QUEUE_URL";
pub const PLATFORM_SECRET_ID: &str = "PLATFORM_SECRET_ID";
pub const META_APP_SECRET: &str = "META_APP_SECRET";
pub const META_VERIFY_TOKEN: &str = "META_VERIFY_TOKEN";
pub const OPENAI_API_KEY: &str = "OPENAI_API_KEY";
pub const KEY_PROVIDER: &str = "KEY_PROVIDER";
pub const TENANT_KEY_SECRET_PREFIX: &str = "TENANT_KEY_SECRET_PREFIX";
pub const LOCAL_KEY_DIR: &str = "LOCAL_KEY_DIR";
pub const LEGACY_PHONE_NUMBER_ID: &str = "LEGACY_PHONE_NUMBER_ID";
pub const DEFAULT_BRAND_ID: &str = "DEFAULT_BRAND_ID";
pub const WHATSAPP_API_BASE_URL: &str = "WHATSAPP_API_BASE_URL";
pub const OPENAI_BASE_URL: &str = "OPENAI_BASE_URL";
pub const OPENAI_MODEL: &str = "OPENAI_MODEL";
pub const OPENAI_TRANSCRIBE_MODEL: &str = "OPENAI_TRANSCRIBE_MODEL";
pub const TENANT_CACHE_TTL_SECS: &str = "TENANT_CACHE_TTL_SECS";
pub const OPENAI_ALLOWED_MODELS: &str = "OPENAI_ALLOWED_MODELS";

pub const DEFAULT_WHATSAPP_API_BASE_URL: &str = "https://graph.facebook.com/v25.0";
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";
/// The speech-to-text model voice notes are transcribed with.
pub const DEFAULT_OPENAI_TRANSCRIBE_MODEL: &str = "gpt-4o-mini-transcribe";
pub const DEFAULT_TENANT_KEY_SECRET_PREFIX: &str = "alphadome/tenant-keys/";
pub const DEFAULT_LOCAL_KEY_DIR: &str = ".alphadome/keys";

/// A setting that is missing or unusable; the message names the variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        reason: &'static str,
    },
}

/// Where tenants' data keys live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProviderSetting {
    Aws { prefix: String },
    Local { dir: PathBuf },
}

/// The one number kept on the old single-tenant behaviour, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRoute {
    pub phone_number_id: PhoneNumberId,
    pub brand_id: BrandId,
}

/// Everything the processes read from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: Option<SecretString>,
    pub reply_queue_url: Option<String>,
    pub platform_secret_id: Option<String>,
    pub key_provider: KeyProviderSetting,
    pub legacy: Option<LegacyRoute>,
    pub whatsapp_api_base_url: String,
    pub openai_base_url: String,
    pub openai_model: String,
    /// The speech-to-text model of voice notes (`OPENAI_TRANSCRIBE_MODEL`), on the same server.
    pub openai_transcribe_model: String,
    /// Models a tenant's template may name (`OPENAI_ALLOWED_MODELS`, comma-separated);
    /// `None`: the built-in list.
    pub openai_allowed_models: Option<Vec<String>>,
    pub tenant_cache_ttl: Duration,
    /// Local overrides of the platform secret.
    pub overrides: PlatformSecrets,
}

/// The platform's own secrets: one Secrets Manager secret (JSON) in production, or the
/// environment locally. Each field is optional here; callers require what they use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PlatformSecrets {
    pub meta_app_secret: Option<SecretString>,
    pub meta_verify_token: Option<SecretString>,
    pub openai_api_key: Option<SecretString>,
    pub database_url: Option<SecretString>,
    /// The owners' dashboard's secrets (its keys sit at the top level of the same JSON).
    #[serde(flatten)]
    pub dashboard: DashboardSecrets,
}

/// The secrets of the admin function, from the platform secret when its environment does
/// not set them: `admin_database_url` (the dashboard's login role), `admin_session_key`
/// (64 hex digits), `supabase_anon_key`, `supabase_jwt_secret` (HS256 projects only).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DashboardSecrets {
    pub admin_database_url: Option<SecretString>,
    pub admin_session_key: Option<SecretString>,
    pub supabase_anon_key: Option<SecretString>,
    pub supabase_jwt_secret: Option<SecretString>,
}

impl DashboardSecrets {
    /// The secret stored for the environment variable `name` (`ADMIN_DATABASE_URL` →
    /// `admin_database_url`), if any.
    pub fn for_env(&self, name: &str) -> Option<&SecretString> {
        match name {
            "ADMIN_DATABASE_URL" => self.admin_database_url.as_ref(),
            "ADMIN_SESSION_KEY" => self.admin_session_key.as_ref(),
            "SUPABASE_ANON_KEY" => self.supabase_anon_key.as_ref(),
            "SUPABASE_JWT_SECRET" => self.supabase_jwt_secret.as_ref(),
            _ => None,
        }
    }
}

impl PlatformSecrets {
    /// `self` where set, else `fallback`: environment overrides win over the stored secret.
    pub fn or(self, fallback: PlatformSecrets) -> PlatformSecrets {
        PlatformSecrets {
            meta_app_secret: self.meta_app_secret.or(fallback.meta_app_secret),
            meta_verify_token: self.meta_verify_token.or(fallback.meta_verify_token),
            openai_api_key: self.openai_api_key.or(fallback.openai_api_key),
            database_url: self.database_url.or(fallback.database_url),
            dashboard: fallback.dashboard,
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let in_lambda = get("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let key_provider = match get(KEY_PROVIDER).as_deref() {
            Some("aws") => KeyProviderSetting::Aws {
                prefix: get(TENANT_KEY_SECRET_PREFIX)
                    .unwrap_or_else(|| DEFAULT_TENANT_KEY_SECRET_PREFIX.into()),
            },
            Some("local") => KeyProviderSetting::Local {
                dir: get(LOCAL_KEY_DIR)
                    .unwrap_or_else(|| DEFAULT_LOCAL_KEY_DIR.into())
                    .into(),
            },
            None if in_lambda => KeyProviderSetting::Aws {
                prefix: get(TENANT_KEY_SECRET_PREFIX)
                    .unwrap_or_else(|| DEFAULT_TENANT_KEY_SECRET_PREFIX.into()),
            },
            None => KeyProviderSetting::Local {
                dir: get(LOCAL_KEY_DIR)
                    .unwrap_or_else(|| DEFAULT_LOCAL_KEY_DIR.into())
                    .into(),
            },
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: KEY_PROVIDER,
                    reason: "must be `aws` or `local`",
                })
            }
        };
        let legacy = match (get(LEGACY_PHONE_NUMBER_ID), get(DEFAULT_BRAND_ID)) {
            (Some(id), Some(brand)) => Some(LegacyRoute {
                phone_number_id: PhoneNumberId::parse(&id).map_err(|_| ConfigError::Invalid {
                    name: LEGACY_PHONE_NUMBER_ID,
                    reason: "must be Meta's numeric phone number id",
                })?,
                brand_id: brand.parse().map_err(|_| ConfigError::Invalid {
                    name: DEFAULT_BRAND_ID,
                    reason: "must be a UUID",
                })?,
            }),
            (Some(_), None) => return Err(ConfigError::Missing(DEFAULT_BRAND_ID)),
            _ => None,
        };
        let tenant_cache_ttl = match get(TENANT_CACHE_TTL_SECS) {
            Some(s) => Duration::from_secs(s.parse().map_err(|_| ConfigError::Invalid {
                name: TENANT_CACHE_TTL_SECS,
                reason: "must be a whole number of seconds",
            })?),
            None => Duration::from_secs(60),
        };
        let url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let v = get(name).unwrap_or_else(|| default.to_owned());
            if v.starts_with("http://") || v.starts_with("https://") {
                Ok(v.trim_end_matches('/').to_owned())
            } else {
                Err(ConfigError::Invalid {
                    name,
                    reason: "must be an http(s) URL",
                })
            }
        };
        Ok(Settings {
            database_url: get(DATABASE_URL).map(SecretString::from),
            reply_queue_url: get(REPLY_QUEUE_URL),
            platform_secret_id: get(PLATFORM_SECRET_ID),
            key_provider,
            legacy,
            whatsapp_api_base_url: url(WHATSAPP_API_BASE_URL, DEFAULT_WHATSAPP_API_BASE_URL)?,
            openai_base_url: url(OPENAI_BASE_URL, DEFAULT_OPENAI_BASE_URL)?,
            openai_model: get(OPENAI_MODEL).unwrap_or_else(|| DEFAULT_OPENAI_MODEL.into()),
            openai_transcribe_model: get(OPENAI_TRANSCRIBE_MODEL)
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| DEFAULT_OPENAI_TRANSCRIBE_MODEL.into()),
            openai_allowed_models: get(OPENAI_ALLOWED_MODELS).map(|v| {
                v.split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect()
            }),
            tenant_cache_ttl,
            overrides: PlatformSecrets {
                meta_app_secret: get(META_APP_SECRET).map(SecretString::from),
                meta_verify_token: get(META_VERIFY_TOKEN).map(SecretString::from),
                openai_api_key: get(OPENAI_API_KEY).map(SecretString::from),
                database_url: None,
                dashboard: Default::default(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_platform_secret_carries_the_dashboards_secrets_beside_the_others() {
        use secrecy::ExposeSecret;
        let s: PlatformSecrets = serde_json::from_str(
            r#"{"database_url":"postgres://app","admin_database_url":"postgres://admin",
                "admin_session_key":"ab","supabase_anon_key":"anon","unknown":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(s.database_url.unwrap().expose_secret(), "postgres://app");
        let d = &s.dashboard;
        assert_eq!(
            d.for_env("ADMIN_DATABASE_URL").unwrap().expose_secret(),
            "postgres://admin"
        );
        assert_eq!(
            d.for_env("ADMIN_SESSION_KEY").unwrap().expose_secret(),
            "ab"
        );
        assert_eq!(
            d.for_env("SUPABASE_ANON_KEY").unwrap().expose_secret(),
            "anon"
        );
        assert!(d.for_env("SUPABASE_JWT_SECRET").is_none());
        assert!(d.for_env("DATABASE_URL").is_none());
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_point_at_meta_v25_and_a_local_key_directory() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.whatsapp_api_base_url, "https://graph.facebook.com/v25.0");
        assert_eq!(s.openai_model, "gpt-4o-mini");
        assert_eq!(s.openai_transcribe_model, "gpt-4o-mini-transcribe");
        let s = settings(&[("OPENAI_TRANSCRIBE_MODEL", "whisper-1")]).unwrap();
        assert_eq!(s.openai_transcribe_model, "whisper-1");
        assert_eq!(
            s.key_provider,
            KeyProviderSetting::Local {
                dir: ".alphadome/keys".into()
            }
        );
    }

    #[test]
    fn in_lambda_the_key_provider_defaults_to_secrets_manager() {
        let s = settings(&[("AWS_LAMBDA_FUNCTION_NAME", "responder")]).unwrap();
        assert!(matches!(s.key_provider, KeyProviderSetting::Aws { .. }));
    }

    #[test]
    fn a_bad_setting_names_the_variable_and_not_its_value() {
        let err = settings(&[("KEY_PROVIDER", "vault-secret-xyz")]).unwrap_err();
        assert!(err.to_string().contains("KEY_PROVIDER"));
        assert!(!err.to_string().contains("vault-secret-xyz"));
        let err = settings(&[("LEGACY_PHONE_NUMBER_ID", "123456")]).unwrap_err();
        assert_eq!(err, ConfigError::Missing("DEFAULT_BRAND_ID"));
        let err = settings(&[("WHATSAPP_API_BASE_URL", "graph.local")]).unwrap_err();
        assert!(err.to_string().contains("WHATSAPP_API_BASE_URL"));
    }
}
