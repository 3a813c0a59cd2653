//! The platform's own secrets (Meta app secret, verify token, shared OpenAI key, database
//! URL): one Secrets Manager secret holding JSON in production (`PLATFORM_SECRET_ID`);
//! environment variables override it locally.

use anyhow::{anyhow, Context};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{PlatformSecrets, Settings};

/// Loads the platform secret (when `PLATFORM_SECRET_ID` is set) and applies the overrides.
pub async fn load_platform_secrets(
    settings: &Settings,
    sdk: Option<&aws_config::SdkConfig>,
) -> anyhow::Result<PlatformSecrets> {
    let stored = match &settings.platform_secret_id {
        None => PlatformSecrets::default(),
        Some(id) => {
            let client = match sdk {
                Some(sdk) => aws_sdk_secretsmanager::Client::new(sdk),
                None => aws_sdk_secretsmanager::Client::new(&crate::aws::load_sdk_config().await),
            };
            let out = client
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| anyhow!(aws_sdk_secretsmanager::error::DisplayErrorContext(e)))
                .context("reading the platform secret (PLATFORM_SECRET_ID)")?;
            let text = out.secret_string().ok_or_else(|| {
                anyhow!("the platform secret (PLATFORM_SECRET_ID) has no string value")
            })?;
            // The error never quotes the document: it holds secrets.
            serde_json::from_str::<PlatformSecrets>(text).map_err(|_| {
                anyhow!("the platform secret (PLATFORM_SECRET_ID) is not a JSON object of strings")
            })?
        }
    };
    Ok(without_blanks(settings.overrides.clone().or(stored)))
}

/// An operator who pasted the template's placeholder leaves empty strings: treat them as unset.
fn without_blanks(s: PlatformSecrets) -> PlatformSecrets {
    let keep = |v: Option<SecretString>| v.filter(|v| !v.expose_secret().trim().is_empty());
    PlatformSecrets {
        meta_app_secret: keep(s.meta_app_secret),
        meta_verify_token: keep(s.meta_verify_token),
        openai_api_key: keep(s.openai_api_key),
        database_url: keep(s.database_url),
        dashboard: crate::config::DashboardSecrets {
            admin_database_url: keep(s.dashboard.admin_database_url),
            admin_session_key: keep(s.dashboard.admin_session_key),
            supabase_anon_key: keep(s.dashboard.supabase_anon_key),
            supabase_jwt_secret: keep(s.dashboard.supabase_jwt_secret),
        },
    }
}

/// The database URL: `DATABASE_URL`, else the platform secret's `database_url`.
pub fn database_url(
    settings: &Settings,
    secrets: &PlatformSecrets,
) -> anyhow::Result<SecretString> {
    settings
        .database_url
        .clone()
        .or_else(|| secrets.database_url.clone())
        .ok_or_else(|| anyhow!("DATABASE_URL is not set (nor database_url in the platform secret)"))
}
