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
    /// How many phrasings the entry has (`bot_training_phrasings`), all sources.
    pub phrasings: i64,
    /// How many of them `alphadome faq expand` wrote.
    pub generated_phrasings: i64,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ImportOutcome {
    pub inserted: u64,
    pub updated: u64,
    /// Phrasings added (a phrasing the entry already has is not added twice).
    pub phrasings_added: u64,
}

/// Who wrote a phrasing (`bot_training_phrasings.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhrasingSource {
    /// The owner or operator (a knowledge file, the dashboard).
    Owner,
    /// `alphadome faq expand`: reviewable and deletable by the owner.
    Generated,
}

impl PhrasingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Generated => "generated",
        }
    }
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
        self.import_entries_with_phrasings(tenant, entries, &[])
            .await
    }

    /// Imports entries and their phrasings all or nothing. `phrasings[i]` belongs to
    /// `entries[i]` (missing = none); they are added as the owner's, beside the phrasings the
    /// entry already has (a re-import adds only new ones, compared case-insensitively).
    pub async fn import_entries_with_phrasings(
        &self,
        tenant: TenantId,
        entries: &[NewEntry],
        phrasings: &[Vec<String>],
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.begin_for_tenant(tenant).await?;
        let outcome = upsert_entries(&mut tx, tenant, entries, phrasings).await?;
        tx.commit().await.context("committing the import")?;
        Ok(outcome)
    }

    /// Adds phrasings to one entry in one transaction; a phrasing the entry already has
    /// (case-insensitively) is skipped. Returns the phrasings actually added.
    pub async fn add_phrasings(
        &self,
        tenant: TenantId,
        entry: EntryId,
        phrasings: &[String],
        source: PhrasingSource,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_for_tenant(tenant).await?;
        let added: Vec<String> = sqlx::query_scalar(
            "insert into alphadome.bot_training_phrasings
                (bot_tenant_id, training_data_id, phrasing, source)
             select $1, $2, p, $4 from unnest($3::text[]) with ordinality as u(p, n)
             order by n
             on conflict do nothing
             returning phrasing",
        )
        .persistent(false)
        .bind(tenant)
        .bind(entry)
        .bind(phrasings)
        .bind(source.as_str())
        .fetch_all(&mut *tx)
        .await
        .context("adding phrasings")?;
        tx.commit().await.context("committing the phrasings")?;
        Ok(added)
    }

    /// The tenant's entries, highest priority first.
    pub async fn list_entries(&self, tenant: TenantId) -> Result<Vec<EntryRow>, StoreError> {
        let mut tx = self.begin_for_tenant(tenant).await?;
        let rows = sqlx::query_as::<_, EntryRow>(
            "select d.id, d.data_type, d.question, d.answer, d.category, d.priority, d.is_active,
                    coalesce(p.n, 0) as phrasings, coalesce(p.generated, 0) as generated_phrasings
               from alphadome.bot_training_data d
               left join (select training_data_id, count(*) as n,
                                 count(*) filter (where source = 'generated') as generated
                            from alphadome.bot_training_phrasings
                           where bot_tenant_id = $1
                           group by training_data_id) p on p.training_data_id = d.id
              where d.bot_tenant_id = $1
              order by d.priority desc, d.data_type, d.question",
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
    phrasings: &[Vec<String>],
) -> anyhow::Result<ImportOutcome> {
    let mut outcome = ImportOutcome {
        inserted: 0,
        updated: 0,
        phrasings_added: 0,
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
    let (mut p_questions, mut p_types, mut p_texts) = (Vec::new(), Vec::new(), Vec::new());
    for (e, list) in entries.iter().zip(phrasings) {
        for p in list {
            p_questions.push(e.question.trim());
            p_types.push(e.data_type.as_str());
            p_texts.push(p.trim());
        }
    }
    if !p_texts.is_empty() {
        // One statement for every phrasing of the file, found by the entry's key. `source`
        // keeps its default ('owner'): an owner may not set it (0017's column grants).
        let added = sqlx::query(
            "insert into alphadome.bot_training_phrasings
                (bot_tenant_id, training_data_id, phrasing)
             select $1, d.id, u.p
               from unnest($2::text[], $3::text[], $4::text[]) as u(q, t, p)
               join alphadome.bot_training_data d
                 on d.bot_tenant_id = $1 and d.data_type = u.t and d.question = u.q
             on conflict do nothing",
        )
        .persistent(false)
        .bind(tenant)
        .bind(&p_questions)
        .bind(&p_types)
        .bind(&p_texts)
        .execute(&mut *conn)
        .await
        .context("importing phrasings")?;
        outcome.phrasings_added = added.rows_affected();
    }
    Ok(outcome)
}
