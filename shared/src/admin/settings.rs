//! The Assistant and Settings pages: the default template's prompt, tone and model, the
//! welcome message, and the control settings — read and written as the owner under
//! row-level security — plus the two changes an owner cannot make under RLS, each on a narrow
//! server path after the owner's read proved the number is theirs: the model (checked
//! against the platform's allowlist here; 0010 keeps `model` from owners, so a direct write
//! with the owner's token cannot choose one, and the responder ignores a model outside the
//! allowlist anyway) and replacing the WhatsApp token (sealed with the tenant's data key by
//! the CLI's own `set_tenant_secret`, never shown again).

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::auth::Owner;
use super::conversations::TenantActions;
use super::knowledge::{owner_tenants, TenantChoice};
use super::overview::begin_as_owner;
use crate::crypto::SecretColumn;
use crate::domain::TenantId;

/// The longest system prompt the AI is given (`AiLimits::max_system_prompt_chars`).
pub const MAX_PROMPT_CHARS: usize = 4_000;
pub const MAX_TONE_CHARS: usize = 100;
pub const MAX_WELCOME_CHARS: usize = 1_024;

/// What the Assistant and Settings pages show for one number.
#[derive(Debug, Clone, Default)]
pub struct TenantSettings {
    pub tenant_id: Uuid,
    pub name: String,
    pub system_prompt: String,
    pub tone: String,
    pub model: Option<String>,
    pub welcome_message: String,
    pub assistant_enabled: bool,
    pub ai_enabled: bool,
    pub max_messages_per_hour: i32,
    pub platform_max: i32,
    pub escalation_phone: String,
    pub escalation_quiet_minutes: i32,
    pub mark_messages_read: bool,
    pub voice_notes_enabled: bool,
    pub pictures_enabled: bool,
    pub escalation_template_name: String,
    pub escalation_template_language: String,
    pub needs_token_refresh: bool,
}

/// One number's settings and the owner's numbers.
#[derive(Debug, Clone)]
pub struct SettingsView {
    pub tenants: Vec<TenantChoice>,
    pub s: TenantSettings,
}

/// Why a settings change was refused; each case is one sentence to the owner.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

async fn commit(tx: Transaction<'static, Postgres>) -> anyhow::Result<()> {
    tx.commit().await.context("ending the owner's transaction")
}

#[derive(sqlx::FromRow)]
struct SettingsRow {
    tenant_id: Uuid,
    name: String,
    needs_token_refresh: bool,
    system_prompt: Option<String>,
    tone: Option<String>,
    model: Option<String>,
    welcome_message: Option<String>,
    is_bot_enabled: Option<bool>,
    enable_ai_responses: Option<bool>,
    max_messages_per_hour: Option<i32>,
    escalation_phone: Option<String>,
    escalation_quiet_minutes: Option<i32>,
    mark_messages_read: Option<bool>,
    voice_notes_enabled: Option<bool>,
    pictures_enabled: Option<bool>,
    escalation_template_name: Option<String>,
    escalation_template_language: Option<String>,
    platform_max: i32,
}

/// The settings of `tenant` (or the owner's first number), read as the owner.
pub async fn read_settings(
    pool: &PgPool,
    owner: &Owner,
    tenant: Option<Uuid>,
) -> anyhow::Result<Option<SettingsView>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let tenants = owner_tenants(&mut tx).await?;
    let Some(chosen) = (match tenant {
        Some(t) => tenants.iter().find(|c| c.id == t).cloned(),
        None => tenants.first().cloned(),
    }) else {
        commit(tx).await?;
        return Ok(None);
    };
    let row: SettingsRow = sqlx::query_as(
        "select t.id as tenant_id, t.client_name as name, t.needs_token_refresh,
                tp.system_prompt, tp.tone, tp.model, s.welcome_message,
                s.is_bot_enabled, s.enable_ai_responses, s.max_messages_per_hour,
                s.escalation_phone, s.escalation_quiet_minutes, s.mark_messages_read,
                s.voice_notes_enabled, s.pictures_enabled,
                s.escalation_template_name, s.escalation_template_language,
                alphadome.platform_max_messages_per_hour() as platform_max
           from alphadome.bot_tenants t
           left join alphadome.bot_control_settings s on s.bot_tenant_id = t.id
           left join alphadome.bot_templates tp on tp.bot_tenant_id = t.id and tp.is_default
          where t.id = $1",
    )
    .persistent(false)
    .bind(chosen.id)
    .fetch_one(&mut *tx)
    .await
    .context("reading the settings")?;
    commit(tx).await?;
    Ok(Some(SettingsView {
        tenants,
        s: TenantSettings {
            tenant_id: row.tenant_id,
            name: row.name,
            system_prompt: row.system_prompt.unwrap_or_default(),
            tone: row.tone.unwrap_or_default(),
            model: row.model,
            welcome_message: row.welcome_message.unwrap_or_default(),
            assistant_enabled: row.is_bot_enabled.unwrap_or(true),
            ai_enabled: row.enable_ai_responses.unwrap_or(true),
            max_messages_per_hour: row.max_messages_per_hour.unwrap_or(200),
            platform_max: row.platform_max,
            escalation_phone: row.escalation_phone.unwrap_or_default(),
            escalation_quiet_minutes: row.escalation_quiet_minutes.unwrap_or(60),
            mark_messages_read: row.mark_messages_read.unwrap_or(true),
            voice_notes_enabled: row.voice_notes_enabled.unwrap_or(true),
            pictures_enabled: row.pictures_enabled.unwrap_or(true),
            escalation_template_name: row.escalation_template_name.unwrap_or_default(),
            escalation_template_language: row.escalation_template_language.unwrap_or_default(),
            needs_token_refresh: row.needs_token_refresh,
        },
    }))
}

/// What the Assistant page's form holds.
#[derive(Debug, Clone, Default)]
pub struct AssistantForm {
    pub system_prompt: String,
    pub tone: String,
    pub welcome_message: String,
    /// Empty: the platform's default model.
    pub model: String,
}

/// Saves the prompt, tone and welcome message as the owner (the default template is created
/// when there is none), then the model on the tenant's path if it changed.
pub async fn save_assistant(
    pool: &PgPool,
    owner: &Owner,
    actions: &TenantActions,
    tenant: Uuid,
    form: &AssistantForm,
) -> Result<(), SettingsError> {
    let prompt = form.system_prompt.trim();
    let tone = form.tone.trim();
    let welcome = form.welcome_message.trim();
    let model = form.model.trim();
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(SettingsError::Invalid(format!(
            "The instructions may be at most {MAX_PROMPT_CHARS} characters."
        )));
    }
    if tone.chars().count() > MAX_TONE_CHARS {
        return Err(SettingsError::Invalid(format!(
            "The tone may be at most {MAX_TONE_CHARS} characters."
        )));
    }
    if welcome.chars().count() > MAX_WELCOME_CHARS {
        return Err(SettingsError::Invalid(format!(
            "The welcome message may be at most {MAX_WELCOME_CHARS} characters."
        )));
    }
    if !model.is_empty() && !actions.model_allowed(model) {
        return Err(SettingsError::Invalid(
            "Choose one of the models offered.".into(),
        ));
    }
    let mut tx = begin_as_owner(pool, owner).await?;
    let current: Option<(Uuid, Option<String>)> = sqlx::query_as(
        "select id, model from alphadome.bot_templates where bot_tenant_id = $1 and is_default",
    )
    .persistent(false)
    .bind(tenant)
    .fetch_optional(&mut *tx)
    .await
    .context("reading the template")?;
    // Distinguish "no such number" from "no default template yet".
    let owned: bool =
        sqlx::query_scalar("select exists (select 1 from alphadome.bot_tenants where id = $1)")
            .persistent(false)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .context("checking the number")?;
    if !owned {
        return Err(SettingsError::NotFound);
    }
    let tone_value = (!tone.is_empty()).then_some(tone);
    let template_id = match &current {
        Some((id, _)) => {
            sqlx::query(
                "update alphadome.bot_templates set system_prompt = $2, tone = $3 where id = $1",
            )
            .persistent(false)
            .bind(id)
            .bind(prompt)
            .bind(tone_value)
            .execute(&mut *tx)
            .await
            .context("saving the template")?;
            *id
        }
        None => sqlx::query_scalar(
            "insert into alphadome.bot_templates
                (bot_tenant_id, template_name, system_prompt, tone, is_default, is_active)
             values ($1, 'default', $2, $3, true, true)
             on conflict (bot_tenant_id, template_name) do update
                set system_prompt = excluded.system_prompt, tone = excluded.tone,
                    is_default = true, is_active = true
             returning id",
        )
        .persistent(false)
        .bind(tenant)
        .bind(prompt)
        .bind(tone_value)
        .fetch_one(&mut *tx)
        .await
        .context("creating the template")?,
    };
    sqlx::query(
        "update alphadome.bot_control_settings set welcome_message = $2 where bot_tenant_id = $1",
    )
    .persistent(false)
    .bind(tenant)
    .bind((!welcome.is_empty()).then_some(welcome))
    .execute(&mut *tx)
    .await
    .context("saving the welcome message")?;
    commit(tx).await?;
    let old_model = current.and_then(|(_, m)| m).unwrap_or_default();
    if old_model != model {
        actions
            .set_model(
                TenantId(tenant),
                template_id,
                (!model.is_empty()).then_some(model),
            )
            .await?;
    }
    Ok(())
}

/// What the Settings page's form holds (checkboxes: present means on).
#[derive(Debug, Clone, Default)]
pub struct SettingsForm {
    pub max_messages_per_hour: String,
    pub escalation_phone: String,
    pub escalation_quiet_minutes: String,
    pub ai_enabled: bool,
    pub mark_messages_read: bool,
    pub voice_notes_enabled: bool,
    pub pictures_enabled: bool,
    pub escalation_template_name: String,
    pub escalation_template_language: String,
}

/// Saves the control settings as the owner. The database holds the bounds too (the cap's
/// policy in 0010, the phone's and template's checks in 0002 / 0014); they are checked here
/// first so that the owner reads which field is wrong.
pub async fn save_settings(
    pool: &PgPool,
    owner: &Owner,
    tenant: Uuid,
    form: &SettingsForm,
) -> Result<(), SettingsError> {
    let invalid = |s: &str| SettingsError::Invalid(s.to_owned());
    let cap: i32 = form
        .max_messages_per_hour
        .trim()
        .parse()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(|| invalid("The hourly cap must be a whole number above 0."))?;
    let quiet: i32 = form
        .escalation_quiet_minutes
        .trim()
        .parse()
        .ok()
        .filter(|m| (0..=10_080).contains(m))
        .ok_or_else(|| invalid("Quiet minutes must be a whole number from 0 to 10080 (a week)."))?;
    let phone: String = form
        .escalation_phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '+' | '-'))
        .collect();
    if !phone.is_empty() && !is_full_number(&phone) {
        return Err(invalid(
            "The escalation phone must be a full number with its country code, e.g. 254702245555.",
        ));
    }
    let tname = form.escalation_template_name.trim();
    let tlang = form.escalation_template_language.trim();
    if tname.is_empty() != tlang.is_empty() {
        return Err(invalid(
            "Give the hand-over template's name and language together, or neither.",
        ));
    }
    if !tname.is_empty() && !is_template_name(tname) {
        return Err(invalid(
            "A template name is lowercase letters, digits and underscores, as in WhatsApp Manager.",
        ));
    }
    let mut tx = begin_as_owner(pool, owner).await?;
    let max: i32 = sqlx::query_scalar(
        "select greatest(alphadome.platform_max_messages_per_hour(), coalesce(max(s.max_messages_per_hour), 0))
           from alphadome.bot_control_settings s where s.bot_tenant_id = $1",
    )
    .persistent(false)
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await
    .context("reading the cap's bound")?;
    if cap > max {
        return Err(SettingsError::Invalid(format!(
            "The hourly cap may be at most {max}; ask the Alphadome team for more."
        )));
    }
    let done = sqlx::query(
        "update alphadome.bot_control_settings
            set max_messages_per_hour = $2, escalation_phone = $3, escalation_quiet_minutes = $4,
                enable_ai_responses = $5, mark_messages_read = $6, voice_notes_enabled = $7,
                pictures_enabled = $8, escalation_template_name = $9,
                escalation_template_language = $10
          where bot_tenant_id = $1",
    )
    .persistent(false)
    .bind(tenant)
    .bind(cap)
    .bind((!phone.is_empty()).then_some(&phone))
    .bind(quiet)
    .bind(form.ai_enabled)
    .bind(form.mark_messages_read)
    .bind(form.voice_notes_enabled)
    .bind(form.pictures_enabled)
    .bind((!tname.is_empty()).then_some(tname))
    .bind((!tlang.is_empty()).then_some(tlang))
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23514") => invalid(
            "One of the values is not allowed; check the template language (e.g. en, en_US).",
        ),
        sqlx::Error::Database(d) if d.code().as_deref() == Some("42501") => {
            invalid("The hourly cap is above what the platform allows.")
        }
        _ => SettingsError::Unexpected(anyhow::Error::new(e).context("saving the settings")),
    })?
    .rows_affected();
    commit(tx).await?;
    if done == 0 {
        return Err(SettingsError::NotFound);
    }
    Ok(())
}

/// A number with its country code, as the database's check wants it (8 to 15 digits, no
/// leading zero).
fn is_full_number(digits: &str) -> bool {
    (8..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A WhatsApp template name: lowercase letters, digits and underscores, at most 512.
fn is_template_name(name: &str) -> bool {
    name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `tenant` is one of the owner's numbers (their read, under RLS).
pub async fn owner_has_tenant(pool: &PgPool, owner: &Owner, tenant: Uuid) -> anyhow::Result<bool> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let found: bool =
        sqlx::query_scalar("select exists (select 1 from alphadome.bot_tenants where id = $1)")
            .persistent(false)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await
            .context("checking the number")?;
    commit(tx).await?;
    Ok(found)
}

/// The longest token accepted (Meta's are a few hundred characters).
const MAX_TOKEN_CHARS: usize = 2_048;

impl TenantActions {
    /// Whether an owner may choose `model`: the platform's allowlist (`OPENAI_ALLOWED_MODELS`)
    /// or the default model.
    pub fn model_allowed(&self, model: &str) -> bool {
        self.ai_limits.allows(model, &self.default_model)
    }

    /// The models offered on the Assistant page, the default first.
    pub fn model_choices(&self) -> Vec<String> {
        let mut out = vec![self.default_model.clone()];
        for m in &self.ai_limits.allowed_models {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    /// Sets the model of a template on the tenant's path (owners have no `update (model)`),
    /// after [`save_assistant`] checked the number as the owner and the model against the
    /// allowlist.
    async fn set_model(
        &self,
        tenant: TenantId,
        template: Uuid,
        model: Option<&str>,
    ) -> Result<(), SettingsError> {
        if let Some(m) = model {
            if !self.model_allowed(m) {
                return Err(SettingsError::Invalid(
                    "Choose one of the models offered.".into(),
                ));
            }
        }
        let mut tx = self.store.begin_for_tenant(tenant).await?;
        sqlx::query("update alphadome.bot_templates set model = $2 where id = $1")
            .persistent(false)
            .bind(template)
            .bind(model)
            .execute(&mut *tx)
            .await
            .context("setting the model")?;
        tx.commit().await.context("committing the model")?;
        Ok(())
    }

    /// Replaces the WhatsApp token of `tenant`, which the owner's read proves is theirs: sealed
    /// under the tenant's data key exactly as `alphadome tenant set-secret` does, and never
    /// rendered or logged.
    pub async fn replace_whatsapp_token(
        &self,
        pool: &PgPool,
        owner: &Owner,
        tenant: Uuid,
        token: &SecretString,
    ) -> Result<(), SettingsError> {
        let t = token.expose_secret().trim();
        if t.is_empty()
            || t.chars().count() > MAX_TOKEN_CHARS
            || t.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(SettingsError::Invalid(
                "Paste the whole token, without spaces.".into(),
            ));
        }
        if !owner_has_tenant(pool, owner, tenant).await? {
            return Err(SettingsError::NotFound);
        }
        self.store
            .set_tenant_secret(
                &self.keys,
                TenantId(tenant),
                SecretColumn::WhatsappAccessToken,
                &SecretString::from(t.to_owned()),
            )
            .await
            .map_err(|e| SettingsError::Unexpected(anyhow::anyhow!("sealing the token: {e}")))?;
        Ok(())
    }
}
