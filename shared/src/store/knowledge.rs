//! A tenant's prompts (templates) and knowledge (FAQ, canned answers, other grounding).
//! Every query here runs inside a transaction that acts for that one tenant.

use anyhow::Context as _;
use serde::Serialize;

use super::{Store, StoreError};
use crate::domain::{DataType, EntryId, TenantId};

/// A template as the operator sets it.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub name: String,
    pub system_prompt: String,
    pub tone: Option<String>,
    pub model: Option<String>,
    pub is_default: bool,
}

/// One knowledge entry to import.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    pub question: String,
    pub answer: String,
    pub category: Option<String>,
    pub priority: i32,
    pub data_type: DataType,
}

/// A stored knowledge entry.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EntryRow {
    pub id: EntryId,
    pub data_type: String,
    pub question: String,
    pub answer: String,
    pub category: Option<String>,
    pub priority: i32,
    pub is_active: bool,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ImportOutcome {
    pub inserted: u64,
    pub updated: u64,
}

impl Store {
    /// Creates or replaces a template by name; a new default replaces the old default.
    pub async fn set_template(
        &self,
        tenant: TenantId,
        t: &NewTemplate,
    ) -> Result<uuid::Uuid, StoreError> {
        let mut tx = self.begin_for_tenant(tenant).await?;
        if t.is_default {
            sqlx::query(
                "update alphadome.bot_templates set is_default = false
                  where bot_tenant_id = $1 and is_default and template_name <> $2",
            )
            .persistent(false)
            .bind(tenant)
            .bind(&t.name)
            .execute(&mut *tx)
            .await
            .context("clearing the previous default template")?;
        }
        let id: uuid::Uuid = sqlx::query_scalar(
            "insert into alphadome.bot_templates
                (bot_tenant_id, template_name, system_prompt, tone, model, is_default, is_active)
             values ($1, $2, $3, $4, $5, $6, true)
             on conflict (bot_tenant_id, template_name) do update
                set system_prompt = excluded.system_prompt, tone = excluded.tone,
                    model = excluded.model,
                    is_default = excluded.is_default or alphadome.bot_templates.is_default,
                    is_active = true
             returning id",
        )
        .persistent(false)
        .bind(tenant)
        .bind(t.name.trim())
        .bind(&t.system_prompt)
        .bind(&t.tone)
        .bind(&t.model)
        .bind(t.is_default)
        .fetch_one(&mut *tx)
        .await
        .context("storing the template")?;
        tx.commit().await.context("committing the template")?;
        Ok(id)
    }

    /// Imports entries all or nothing: each (data_type, question) is inserted or updated.
    pub async fn import_entries(
        &self,
        tenant: TenantId,
        entries: &[NewEntry],
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.begin_for_tenant(tenant).await?;
        let outcome = upsert_entries(&mut tx, tenant, entries).await?;
        tx.commit().await.context("committing the import")?;
        Ok(outcome)
    }

    /// The tenant's entries, highest priority first.
    pub async fn list_entries(&self, tenant: TenantId) -> Result<Vec<EntryRow>, StoreError> {
        let mut tx = self.begin_for_tenant(tenant).await?;
        let rows = sqlx::query_as::<_, EntryRow>(
            "select id, data_type, question, answer, category, priority, is_active
               from alphadome.bot_training_data
              where bot_tenant_id = $1
              order by priority desc, data_type, question",
        )
        .persistent(false)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await
        .context("listing knowledge entries")?;
        tx.commit().await.context("committing")?;
        Ok(rows)
    }
}

/// Inserts or updates `entries` of `tenant` in one statement, inside the caller's transaction:
/// the operator's import (acting for the tenant) and the owner's (as `authenticated`, under
/// row-level security) share it.
pub async fn upsert_entries(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    entries: &[NewEntry],
) -> anyhow::Result<ImportOutcome> {
    let mut outcome = ImportOutcome {
        inserted: 0,
        updated: 0,
    };
    // One statement for the whole file: arrays in, `xmax = 0` tells inserts from updates.
    let questions: Vec<&str> = entries.iter().map(|e| e.question.trim()).collect();
    let answers: Vec<&str> = entries.iter().map(|e| e.answer.trim()).collect();
    let categories: Vec<Option<&str>> = entries.iter().map(|e| e.category.as_deref()).collect();
    let priorities: Vec<i32> = entries.iter().map(|e| e.priority).collect();
    let types: Vec<&str> = entries.iter().map(|e| e.data_type.as_str()).collect();
    let inserted_flags: Vec<bool> = sqlx::query_scalar(
        "insert into alphadome.bot_training_data
            (bot_tenant_id, question, answer, category, priority, data_type, is_active)
         select $1, q, a, c, p, d, true
           from unnest($2::text[], $3::text[], $4::text[], $5::int4[], $6::text[]) as u(q, a, c, p, d)
         on conflict (bot_tenant_id, data_type, question) do update
            set answer = excluded.answer, category = excluded.category,
                priority = excluded.priority, is_active = true
         returning (xmax = 0)",
    )
    .persistent(false)
    .bind(tenant)
    .bind(&questions)
    .bind(&answers)
    .bind(&categories)
    .bind(&priorities)
    .bind(&types)
    .fetch_all(&mut *conn)
    .await
    .context("importing knowledge entries")?;
    for inserted in inserted_flags {
        if inserted {
            outcome.inserted += 1;
        } else {
            outcome.updated += 1;
        }
    }
    Ok(outcome)
}
