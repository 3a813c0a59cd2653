//! Tenants: onboarding, listing, switching on and off, key rotation, and the one lookup that
//! crosses tenants (routing a business number to its tenant).

use anyhow::Context as _;
use secrecy::SecretString;
use serde::Serialize;
use sqlx::Row;

use super::{conflict_or, Store, StoreError};
use crate::crypto::{envelope_version, DataKey, KeyRing, SecretColumn};
use crate::domain::{BrandId, PhoneNumber, PhoneNumberId, TenantId};
use crate::keys::KeyProvider;

/// What the operator gives to onboard a business.
#[derive(Debug)]
pub struct NewTenant {
    pub client_name: String,
    pub client_phone: PhoneNumber,
    pub phone_number_id: PhoneNumberId,
    pub contact_name: Option<String>,
    /// Reuse this brand (e.g. the legacy DEFAULT_BRAND_ID); else a new brand is created.
    pub brand_id: Option<BrandId>,
    pub whatsapp_token: Option<SecretString>,
    pub ai_api_key: Option<SecretString>,
    pub meta_app_secret: Option<SecretString>,
    pub escalation_phone: Option<PhoneNumber>,
    pub max_messages_per_hour: Option<i32>,
}

/// A tenant as the operator sees it: no secret, only whether each is set.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    pub id: TenantId,
    pub client_name: String,
    pub client_phone: String,
    pub phone_number_id: String,
    pub brand_id: BrandId,
    pub contact_name: Option<String>,
    pub is_active: bool,
    pub is_verified: bool,
    pub needs_token_refresh: bool,
    pub has_whatsapp_token: bool,
    pub has_ai_key: bool,
    pub has_app_secret: bool,
    pub key_version: i32,
    pub is_bot_enabled: Option<bool>,
    pub max_messages_per_hour: Option<i32>,
    pub enable_ai_responses: Option<bool>,
    pub faq_entries: i64,
    /// What the operator must fix (`no_whatsapp_token`, `whatsapp_token_unreadable`,
    /// `ai_key_unreadable`), set by the responder when a job failed for good because of it.
    pub attention: Option<String>,
    pub attention_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether hand-over notices go to a phone at all.
    pub has_escalation_phone: bool,
    /// The approved template a refused hand-over notice is retried as (name, language).
    pub escalation_template_name: Option<String>,
    pub escalation_template_language: Option<String>,
    /// Voice notes are transcribed and answered (off: the customer is asked to type).
    pub voice_notes_enabled: Option<bool>,
    /// Pictures are shown to the AI (off: the customer is asked for words).
    pub pictures_enabled: Option<bool>,
}

/// What routing needs to know about the tenant that owns a business number.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRoute {
    pub tenant_id: TenantId,
    pub brand_id: BrandId,
    pub is_active: bool,
    /// The tenant's own Meta app secret (ciphertext), when it uses its own app.
    pub meta_app_secret: Option<String>,
    pub key_version: i32,
}

const SUMMARY_SELECT: &str = r#"
    select t.id, t.client_name, t.client_phone, t.whatsapp_phone_number_id, t.brand_id,
           t.point_of_contact_name, t.is_active, t.is_verified, t.needs_token_refresh,
           t.whatsapp_access_token is not null as has_whatsapp_token,
           t.ai_api_key is not null as has_ai_key,
           t.meta_app_secret is not null as has_app_secret,
           t.key_version, s.is_bot_enabled, s.max_messages_per_hour, s.enable_ai_responses,
           (select count(*) from alphadome.bot_training_data d
             where d.bot_tenant_id = t.id and d.is_active) as faq_entries,
           t.attention, t.attention_at,
           coalesce(s.escalation_phone is not null, false) as has_escalation_phone,
           s.escalation_template_name, s.escalation_template_language,
           s.voice_notes_enabled, s.pictures_enabled
    from alphadome.bot_tenants t
    left join alphadome.bot_control_settings s on s.bot_tenant_id = t.id
"#;

fn summary_from_row(r: &sqlx::postgres::PgRow) -> Result<TenantSummary, sqlx::Error> {
    Ok(TenantSummary {
        id: r.try_get("id")?,
        client_name: r.try_get("client_name")?,
        client_phone: r.try_get("client_phone")?,
        phone_number_id: r.try_get("whatsapp_phone_number_id")?,
        brand_id: r.try_get("brand_id")?,
        contact_name: r.try_get("point_of_contact_name")?,
        is_active: r.try_get("is_active")?,
        is_verified: r.try_get("is_verified")?,
        needs_token_refresh: r.try_get("needs_token_refresh")?,
        has_whatsapp_token: r.try_get("has_whatsapp_token")?,
        has_ai_key: r.try_get("has_ai_key")?,
        has_app_secret: r.try_get("has_app_secret")?,
        key_version: r.try_get("key_version")?,
        is_bot_enabled: r.try_get("is_bot_enabled")?,
        max_messages_per_hour: r.try_get("max_messages_per_hour")?,
        enable_ai_responses: r.try_get("enable_ai_responses")?,
        faq_entries: r.try_get("faq_entries")?,
        attention: r.try_get("attention")?,
        attention_at: r.try_get("attention_at")?,
        has_escalation_phone: r.try_get("has_escalation_phone")?,
        escalation_template_name: r.try_get("escalation_template_name")?,
        escalation_template_language: r.try_get("escalation_template_language")?,
        voice_notes_enabled: r.try_get("voice_notes_enabled")?,
        pictures_enabled: r.try_get("pictures_enabled")?,
    })
}

fn describe_tenant_conflict(constraint: &str) -> Option<String> {
    match constraint {
        "bot_tenants_whatsapp_phone_number_id_key" => {
            Some("a tenant with this phone_number_id already exists".into())
        }
        "bot_tenants_client_phone_key" => {
            Some("a tenant with this client phone already exists".into())
        }
        "bot_tenants_pkey" => Some("a tenant with this id already exists".into()),
        _ => None,
    }
}

impl Store {
    /// Onboards a business: brand (new or reused), tenant, settings, data key, and its
    /// secrets sealed under that key, all or nothing.
    pub async fn create_tenant(
        &self,
        keys: &KeyProvider,
        new: NewTenant,
    ) -> Result<TenantSummary, StoreError> {
        self.create_tenant_with_id(keys, TenantId::new(), new).await
    }

    /// As [`Store::create_tenant`], with the id chosen by the caller (idempotent set-ups).
    pub async fn create_tenant_with_id(
        &self,
        keys: &KeyProvider,
        tenant_id: TenantId,
        new: NewTenant,
    ) -> Result<TenantSummary, StoreError> {
        let mut tx = self.pool.begin().await.context("opening a transaction")?;
        let brand_id = match new.brand_id {
            Some(brand) => {
                sqlx::query("insert into public.brands (id, name) values ($1, $2) on conflict (id) do nothing")
                    .persistent(false)
                    .bind(brand)
                    .bind(&new.client_name)
                    .execute(&mut *tx)
                    .await
                    .context("ensuring the brand")?;
                brand
            }
            None => {
                let brand = BrandId::new();
                sqlx::query("insert into public.brands (id, name) values ($1, $2)")
                    .persistent(false)
                    .bind(brand)
                    .bind(&new.client_name)
                    .execute(&mut *tx)
                    .await
                    .context("creating the brand")?;
                brand
            }
        };
        sqlx::query(
            "insert into alphadome.bot_tenants
               (id, client_name, client_phone, point_of_contact_name, brand_id, whatsapp_phone_number_id)
             values ($1, $2, $3, $4, $5, $6)",
        )
        .persistent(false)
        .bind(tenant_id)
        .bind(new.client_name.trim())
        .bind(new.client_phone.as_str())
        .bind(&new.contact_name)
        .bind(brand_id)
        .bind(new.phone_number_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, describe_tenant_conflict))?;
        sqlx::query(
            "insert into alphadome.bot_control_settings (bot_tenant_id, escalation_phone, max_messages_per_hour)
             values ($1, $2, coalesce($3, 200))",
        )
        .persistent(false)
        .bind(tenant_id)
        .bind(new.escalation_phone.as_ref().map(|p| p.as_str()))
        .bind(new.max_messages_per_hour)
        .execute(&mut *tx)
        .await
        .context("creating the tenant's settings")?;

        let ring = keys.ensure_ring(tenant_id).await?;
        let seal = |col, s: &Option<SecretString>| s.as_ref().map(|s| ring.encrypt(col, s));
        sqlx::query(
            "update alphadome.bot_tenants
                set whatsapp_access_token = $2, ai_api_key = $3, meta_app_secret = $4, key_version = $5
              where id = $1",
        )
        .persistent(false)
        .bind(tenant_id)
        .bind(seal(SecretColumn::WhatsappAccessToken, &new.whatsapp_token))
        .bind(seal(SecretColumn::AiApiKey, &new.ai_api_key))
        .bind(seal(SecretColumn::MetaAppSecret, &new.meta_app_secret))
        .bind(ring.current as i32)
        .execute(&mut *tx)
        .await
        .context("storing the tenant's sealed secrets")?;
        tx.commit().await.context("committing the new tenant")?;
        self.tenant_summary(tenant_id).await
    }

    /// Every tenant, oldest first (operator view; no secrets).
    pub async fn list_tenants(&self) -> Result<Vec<TenantSummary>, StoreError> {
        let sql = format!("{SUMMARY_SELECT} order by t.created_at, t.id");
        // Inside a transaction: a parameterised query must not span two pooled server connections.
        let mut tx = self.pool.begin().await.context("opening a transaction")?;
        let rows = sqlx::query(&sql)
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
            .context("listing tenants")?;
        tx.commit().await.context("committing")?;
        rows.iter()
            .map(|r| {
                summary_from_row(r)
                    .context("reading a tenant")
                    .map_err(Into::into)
            })
            .collect()
    }

    pub async fn tenant_summary(&self, tenant_id: TenantId) -> Result<TenantSummary, StoreError> {
        let sql = format!("{SUMMARY_SELECT} where t.id = $1");
        let mut tx = self.pool.begin().await.context("opening a transaction")?;
        let row = sqlx::query(&sql)
            .persistent(false)
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await
            .context("reading a tenant")?
            .ok_or_else(|| StoreError::NotFound(format!("no tenant {tenant_id}")))?;
        tx.commit().await.context("committing")?;
        Ok(summary_from_row(&row).context("reading a tenant")?)
    }

    /// Finds a tenant by its id or its phone_number_id, as the operator types it.
    pub async fn find_tenant(&self, reference: &str) -> Result<TenantId, StoreError> {
        let reference = reference.trim();
        if let Ok(id) = reference.parse::<TenantId>() {
            let mut tx = self.pool.begin().await.context("opening a transaction")?;
            let found: Option<TenantId> =
                sqlx::query_scalar("select id from alphadome.bot_tenants where id = $1")
                    .persistent(false)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("finding the tenant")?;
            tx.commit().await.context("committing")?;
            return found.ok_or_else(|| StoreError::NotFound(format!("no tenant with id {id}")));
        }
        let route = match PhoneNumberId::parse(reference) {
            Ok(pnid) => self.resolve_tenant(&pnid).await?,
            Err(_) => None,
        };
        route
            .map(|r| r.tenant_id)
            .ok_or_else(|| StoreError::NotFound("no tenant with that id or phone_number_id".into()))
    }

    /// Routes a business number to its tenant through the narrow security-definer function.
    pub async fn resolve_tenant(
        &self,
        phone_number_id: &PhoneNumberId,
    ) -> Result<Option<TenantRoute>, StoreError> {
        // Digits only (validated by the type), so the literal is safe: one simple query.
        self.fetch_route(&format!(
            "alphadome.resolve_tenant('{}')",
            phone_number_id.as_str()
        ))
        .await
    }

    /// The tenant of the legacy deployment's brand (legacy single-tenant mode).
    pub async fn resolve_tenant_by_brand(
        &self,
        brand_id: BrandId,
    ) -> Result<Option<TenantRoute>, StoreError> {
        self.fetch_route(&format!(
            "alphadome.resolve_tenant_by_brand('{}'::uuid)",
            brand_id.0
        ))
        .await
    }

    async fn fetch_route(&self, function_call: &str) -> Result<Option<TenantRoute>, StoreError> {
        let expr = format!("select coalesce(jsonb_agg(r), '[]'::jsonb) from {function_call} r");
        let sql = super::literal::json_select(&expr);
        let json = super::literal::fetch_json(&self.pool, &sql)
            .await
            .context("resolving the tenant of a business number")?;
        #[derive(serde::Deserialize)]
        struct Raw {
            bot_tenant_id: TenantId,
            brand_id: BrandId,
            is_active: bool,
            meta_app_secret: Option<String>,
            key_version: i32,
        }
        let rows: Vec<Raw> =
            serde_json::from_value(json.unwrap_or_default()).context("reading the route")?;
        Ok(rows.into_iter().next().map(|r| TenantRoute {
            tenant_id: r.bot_tenant_id,
            brand_id: r.brand_id,
            is_active: r.is_active,
            meta_app_secret: r.meta_app_secret,
            key_version: r.key_version,
        }))
    }

    /// Switches a tenant's bot on or off (`tenant enable|disable`).
    pub async fn set_tenant_active(
        &self,
        tenant_id: TenantId,
        active: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_for_tenant(tenant_id).await?;
        let done = sqlx::query("update alphadome.bot_tenants set is_active = $2 where id = $1")
            .persistent(false)
            .bind(tenant_id)
            .bind(active)
            .execute(&mut *tx)
            .await
            .context("updating the tenant")?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("no tenant {tenant_id}")));
        }
        tx.commit().await.context("committing")?;
        Ok(())
    }

    /// Sets (or with `None`, removes) the approved template a refused hand-over notice is
    /// retried as: its name and language as approved in the tenant's WhatsApp Manager.
    pub async fn set_escalation_template(
        &self,
        tenant_id: TenantId,
        template: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "update alphadome.bot_control_settings
                set escalation_template_name = $2, escalation_template_language = $3
              where bot_tenant_id = $1",
        )
        .persistent(false)
        .bind(tenant_id)
        .bind(template.map(|t| t.0))
        .bind(template.map(|t| t.1))
        .execute(self.pool())
        .await
        .context("setting the escalation template")?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!(
                "no settings for tenant {tenant_id}"
            )));
        }
        Ok(())
    }

    /// Turns voice notes and pictures on or off for a tenant (`None` leaves a switch as it is).
    pub async fn set_media(
        &self,
        tenant_id: TenantId,
        voice_notes: Option<bool>,
        pictures: Option<bool>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "update alphadome.bot_control_settings
                set voice_notes_enabled = coalesce($2, voice_notes_enabled),
                    pictures_enabled = coalesce($3, pictures_enabled)
              where bot_tenant_id = $1",
        )
        .persistent(false)
        .bind(tenant_id)
        .bind(voice_notes)
        .bind(pictures)
        .execute(self.pool())
        .await
        .context("setting the media switches")?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!(
                "no settings for tenant {tenant_id}"
            )));
        }
        Ok(())
    }

    /// Replaces one of a tenant's secrets, sealed under the tenant's current key.
    ///
    /// Runs under the tenant row's lock like a rotation (see [`Store::rotate_tenant_key`]), so
    /// it never seals under a version a concurrent `rotate-key --retire-old` is removing.
    pub async fn set_tenant_secret(
        &self,
        keys: &KeyProvider,
        tenant_id: TenantId,
        column: SecretColumn,
        value: &SecretString,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_for_tenant(tenant_id).await?;
        let locked = lock_secrets(&mut tx, tenant_id).await?;
        // Read past the cache, under the lock: every writer of the ring holds this lock too.
        let ring = keys.ensure_ring(tenant_id).await?;
        let mut sealed = reseal(&ring, &ring, &locked, Some(column))?;
        sealed[column_index(column)] = Some(ring.encrypt(column, value));
        // The column name comes from our own enum, never from input.
        let refresh = if column == SecretColumn::WhatsappAccessToken {
            ", needs_token_refresh = false"
        } else {
            ""
        };
        store_sealed(&mut tx, tenant_id, &locked, &sealed, ring.current, refresh).await?;
        tx.commit().await.context("committing")?;
        Ok(())
    }

    /// Rotates a tenant's data key: a new key version is stored first (old versions stay, so
    /// every reader can still open every row), then each secret is re-sealed under it in one
    /// transaction. With `retire_old`, versions no row uses any more are then removed.
    ///
    /// Compare-and-swap against concurrent rotations and `set-secret`: the tenant row is locked
    /// (`for update`) before the key ring is read, the ring changes only while that lock is
    /// held, the sealed columns are re-read inside the transaction and written back only where
    /// `key_version` is still the one read. Retiring happens after the re-seal committed, in a
    /// second locked transaction that keeps every version a sealed column still uses.
    pub async fn rotate_tenant_key(
        &self,
        keys: &KeyProvider,
        tenant_id: TenantId,
        retire_old: bool,
    ) -> Result<u32, StoreError> {
        let mut tx = self.begin_for_tenant(tenant_id).await?;
        let locked = lock_secrets(&mut tx, tenant_id).await?;
        let old_ring: KeyRing = keys.ensure_ring(tenant_id).await?;
        let mut ring = old_ring.clone();
        let version = ring.rotate();
        // Saved before the re-seal commits: if the commit fails, the ring only has one unused
        // version more, and every stored ciphertext still opens.
        keys.save(&ring).await?;
        let sealed = reseal(&old_ring, &ring, &locked, None)?;
        store_sealed(&mut tx, tenant_id, &locked, &sealed, version, "").await?;
        tx.commit().await.context("committing the rotation")?;

        if retire_old {
            self.retire_unused_key_versions(keys, tenant_id).await?;
        }
        Ok(version)
    }

    /// Removes from the tenant's ring every version that neither is current nor seals one of
    /// its columns, under the tenant row's lock.
    async fn retire_unused_key_versions(
        &self,
        keys: &KeyProvider,
        tenant_id: TenantId,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_for_tenant(tenant_id).await?;
        let locked = lock_secrets(&mut tx, tenant_id).await?;
        let ring = keys.ensure_ring(tenant_id).await?;
        let mut in_use = vec![ring.current];
        for env in locked.sealed.iter().flatten() {
            in_use.push(envelope_version(env).context("reading a sealed column's key version")?);
        }
        let kept: std::collections::BTreeMap<u32, DataKey> = ring
            .versions()
            .filter(|(v, _)| in_use.contains(v))
            .map(|(v, k)| (v, k.clone()))
            .collect();
        if kept.len() < ring.versions().count() {
            let retired = KeyRing::from_parts(tenant_id, ring.current, kept)
                .context("building the retired ring")?;
            keys.save(&retired).await?;
        }
        tx.commit().await.context("committing")?;
        Ok(())
    }
}

/// The tenant's sealed columns (in [`SECRET_COLUMNS`] order) and key version, read with the
/// row locked until the transaction ends.
struct LockedSecrets {
    key_version: i32,
    sealed: [Option<String>; 3],
}

const SECRET_COLUMNS: [SecretColumn; 3] = [
    SecretColumn::WhatsappAccessToken,
    SecretColumn::AiApiKey,
    SecretColumn::MetaAppSecret,
];

fn column_index(column: SecretColumn) -> usize {
    SECRET_COLUMNS
        .iter()
        .position(|c| *c == column)
        .expect("every secret column is listed")
}

async fn lock_secrets(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    tenant_id: TenantId,
) -> Result<LockedSecrets, StoreError> {
    let row = sqlx::query(
        "select key_version, whatsapp_access_token, ai_api_key, meta_app_secret
           from alphadome.bot_tenants where id = $1 for update",
    )
    .persistent(false)
    .bind(tenant_id)
    .fetch_optional(&mut **tx)
    .await
    .context("locking the tenant's secrets")?
    .ok_or_else(|| StoreError::NotFound(format!("no tenant {tenant_id}")))?;
    let mut sealed: [Option<String>; 3] = Default::default();
    for (slot, column) in sealed.iter_mut().zip(SECRET_COLUMNS) {
        *slot = row.try_get(column.as_str()).context("reading a secret")?;
    }
    Ok(LockedSecrets {
        key_version: row
            .try_get("key_version")
            .context("reading the key version")?,
        sealed,
    })
}

/// Every sealed column under `to`'s current key: opened with `from` and sealed again where it
/// is under another version, kept as it is otherwise. `replacing` is about to be overwritten,
/// so it is neither opened nor required to open (replacing a broken secret must work).
fn reseal(
    from: &KeyRing,
    to: &KeyRing,
    locked: &LockedSecrets,
    replacing: Option<SecretColumn>,
) -> Result<[Option<String>; 3], StoreError> {
    let mut out: [Option<String>; 3] = Default::default();
    for ((slot, column), current) in out.iter_mut().zip(SECRET_COLUMNS).zip(&locked.sealed) {
        *slot = match current {
            _ if replacing == Some(column) => None,
            Some(env) if envelope_version(env).ok() == Some(to.current) => Some(env.clone()),
            Some(env) => match from.decrypt(column, env) {
                Ok(plain) => Some(to.encrypt(column, &plain)),
                // Replacing one secret must not depend on another one being readable: an
                // envelope that does not open stays as it is (its version is kept on retiring).
                Err(_) if replacing.is_some() => Some(env.clone()),
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("opening {} for re-encryption", column.as_str()))
                        .into())
                }
            },
            None => None,
        };
    }
    Ok(out)
}

/// Writes the sealed columns and their key version, only if `key_version` is still the one
/// read under the lock (compare-and-swap; the lock makes a mismatch a bug, not a race).
async fn store_sealed(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    tenant_id: TenantId,
    locked: &LockedSecrets,
    sealed: &[Option<String>; 3],
    version: u32,
    extra: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "update alphadome.bot_tenants
            set whatsapp_access_token = $2, ai_api_key = $3, meta_app_secret = $4, key_version = $5{extra}
          where id = $1 and key_version = $6"
    );
    let done = sqlx::query(&sql)
        .persistent(false)
        .bind(tenant_id)
        .bind(&sealed[0])
        .bind(&sealed[1])
        .bind(&sealed[2])
        .bind(version as i32)
        .bind(locked.key_version)
        .execute(&mut **tx)
        .await
        .context("storing sealed secrets")?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "tenant {tenant_id}: its key version changed while its secrets were re-sealed; nothing was stored, run the command again"
        )));
    }
    Ok(())
}
