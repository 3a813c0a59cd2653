//! Moving the original single-tenant deployment (one `server.js` with one token, one key and
//! every log under `DEFAULT_BRAND_ID`) onto the platform as its first tenant, keeping its
//! brand so its history stays its own.

use anyhow::Context as _;
use secrecy::SecretString;

use crate::config::ConfigError;
use crate::domain::{BrandId, PhoneNumber, PhoneNumberId};
use crate::keys::KeyProvider;
use crate::store::{NewTenant, Store, StoreError, TenantSummary};

/// The old deployment's environment names.
pub const WHATSAPP_TOKEN: &str = "WHATSAPP_TOKEN";
pub const WHATSAPP_PHONE_NUMBER_ID: &str = "WHATSAPP_PHONE_NUMBER_ID";

/// The old configuration, read from its environment variables.
#[derive(Debug)]
pub struct LegacyConfig {
    pub whatsapp_token: SecretString,
    pub phone_number_id: PhoneNumberId,
    pub openai_api_key: Option<SecretString>,
    pub brand_id: BrandId,
}

impl LegacyConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let whatsapp_token = get(WHATSAPP_TOKEN).ok_or(ConfigError::Missing(WHATSAPP_TOKEN))?;
        let phone_number_id =
            get(WHATSAPP_PHONE_NUMBER_ID).ok_or(ConfigError::Missing(WHATSAPP_PHONE_NUMBER_ID))?;
        let brand = get(crate::config::DEFAULT_BRAND_ID)
            .ok_or(ConfigError::Missing(crate::config::DEFAULT_BRAND_ID))?;
        Ok(Self {
            whatsapp_token: SecretString::from(whatsapp_token),
            phone_number_id: PhoneNumberId::parse(&phone_number_id).map_err(|_| {
                ConfigError::Invalid {
                    name: WHATSAPP_PHONE_NUMBER_ID,
                    reason: "must be Meta's numeric phone number id",
                }
            })?,
            openai_api_key: get(crate::config::OPENAI_API_KEY).map(SecretString::from),
            brand_id: brand.parse().map_err(|_| ConfigError::Invalid {
                name: crate::config::DEFAULT_BRAND_ID,
                reason: "must be a UUID",
            })?,
        })
    }
}

/// The outcome of a legacy import.
#[derive(Debug, serde::Serialize)]
pub struct LegacyImport {
    pub tenant: TenantSummary,
    /// Earlier conversation rows of the brand now tagged with the tenant.
    pub conversations_adopted: u64,
}

/// Creates the first tenant from the old configuration, reusing its brand, and tags the
/// brand's existing conversation history with the new tenant.
pub async fn import_legacy_tenant(
    store: &Store,
    keys: &KeyProvider,
    legacy: LegacyConfig,
    client_name: String,
    client_phone: PhoneNumber,
    contact_name: Option<String>,
) -> Result<LegacyImport, StoreError> {
    let tenant = store
        .create_tenant(
            keys,
            NewTenant {
                client_name,
                client_phone,
                phone_number_id: legacy.phone_number_id,
                contact_name,
                brand_id: Some(legacy.brand_id),
                whatsapp_token: Some(legacy.whatsapp_token),
                ai_api_key: legacy.openai_api_key,
                meta_app_secret: None,
                escalation_phone: None,
                max_messages_per_hour: None,
            },
        )
        .await?;
    let adopted = sqlx::query(
        "update public.conversations set bot_tenant_id = $1
          where brand_id = $2 and bot_tenant_id is null",
    )
    .persistent(false)
    .bind(tenant.id)
    .bind(tenant.brand_id)
    .execute(store.pool())
    .await
    .context("tagging the brand's earlier conversations")?
    .rows_affected();
    // A single autocommit statement with parameters is fine here: the legacy import runs
    // once, on a direct (session) connection, as README's deploy steps say.
    Ok(LegacyImport {
        tenant,
        conversations_adopted: adopted,
    })
}
