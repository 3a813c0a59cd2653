//! A tenant's whole context (tenant, default template, active knowledge, settings), loaded
//! in one round trip through `alphadome.tenant_context`, which acts for that tenant.

use anyhow::Context as _;
use serde::Deserialize;

use super::{Store, StoreError};
use crate::domain::{BrandId, EntryId, TenantId};

/// The tenant row as the pipeline needs it. Secrets stay sealed here.
#[derive(Debug, Clone, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub client_name: String,
    pub brand_id: BrandId,
    pub whatsapp_phone_number_id: String,
    pub whatsapp_access_token: Option<String>,
    pub ai_api_key: Option<String>,
    pub key_version: i32,
    pub is_active: bool,
    pub needs_token_refresh: bool,
}

/// The default template.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplateRecord {
    pub template_name: String,
    pub system_prompt: String,
    pub tone: Option<String>,
    pub model: Option<String>,
}

/// One active knowledge entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EntryRecord {
    pub id: EntryId,
    pub data_type: String,
    pub question: String,
    pub answer: String,
    pub category: Option<String>,
    pub priority: i32,
    /// Other ways customers ask the question (`bot_training_phrasings`), loaded with the
    /// entry in the same round trip.
    #[serde(default)]
    pub phrasings: Vec<String>,
}

/// The tenant's switches.
#[derive(Debug, Clone, Deserialize)]
pub struct SettingsRecord {
    pub is_bot_enabled: bool,
    pub max_messages_per_hour: i32,
    pub enable_ai_responses: bool,
    pub escalation_phone: Option<String>,
    pub escalation_quiet_minutes: i32,
    pub welcome_message: Option<String>,
    pub mark_messages_read: bool,
    /// The approved template a refused (131047) hand-over notice is retried as.
    #[serde(default)]
    pub escalation_template_name: Option<String>,
    #[serde(default)]
    pub escalation_template_language: Option<String>,
    /// Voice notes are transcribed and answered (with an AI key, the tenant's or the
    /// platform's); off: the customer is asked to type.
    #[serde(default = "yes")]
    pub voice_notes_enabled: bool,
    /// Pictures are shown to the chat model (with the AI on and a key); off: a caption is
    /// answered as text, a bare picture gets a request for words.
    #[serde(default = "yes")]
    pub pictures_enabled: bool,
}

fn yes() -> bool {
    true
}

impl SettingsRecord {
    /// The hand-over template's name and language, when both are set.
    pub fn escalation_template(&self) -> Option<(&str, &str)> {
        match (
            self.escalation_template_name.as_deref(),
            self.escalation_template_language.as_deref(),
        ) {
            (Some(name), Some(language)) => Some((name, language)),
            _ => None,
        }
    }
}

impl Default for SettingsRecord {
    fn default() -> Self {
        Self {
            is_bot_enabled: true,
            max_messages_per_hour: 200,
            enable_ai_responses: true,
            escalation_phone: None,
            escalation_quiet_minutes: 60,
            welcome_message: None,
            mark_messages_read: true,
            escalation_template_name: None,
            escalation_template_language: None,
            voice_notes_enabled: true,
            pictures_enabled: true,
        }
    }
}

/// Everything the responder needs to answer as one tenant.
#[derive(Debug, Clone, Deserialize)]
pub struct TenantContextRecord {
    pub tenant: TenantRecord,
    pub template: Option<TemplateRecord>,
    pub settings: Option<SettingsRecord>,
    pub training: Vec<EntryRecord>,
}

impl Store {
    /// Loads a tenant's context in one round trip; `None` if the tenant does not exist.
    pub async fn load_tenant_context(
        &self,
        tenant: TenantId,
    ) -> Result<Option<TenantContextRecord>, StoreError> {
        // A typed UUID, so the literal is safe; see `literal` for why this is a simple query.
        let call = format!("alphadome.tenant_context('{}'::uuid)", tenant.0);
        let json = self
            .fetch_doc(super::literal::json_select(&call))
            .await
            .context("loading the tenant context")?;
        match json {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => Ok(Some(
                serde_json::from_value(v).context("decoding the tenant context")?,
            )),
        }
    }
}
