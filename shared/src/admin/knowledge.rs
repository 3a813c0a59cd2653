//! The owner's knowledge: entries (FAQ, canned answers, other grounding) and their phrasings,
//! read and written as the owner under row-level security (0010 grants owners insert, update
//! and delete on their own entries; 0017 insert and delete on phrasings, always as `owner`).
//! CSV import uses the CLI's validation (`knowledge_file`) and the operator's upsert
//! (`store::upsert_entries`); "Try it" runs the responder's own dry run (`Responder::ask`);
//! "Unanswered" lists customers' messages the FAQ did not answer.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::auth::Owner;
use super::conversations::TenantActions;
use super::overview::begin_as_owner;
use crate::domain::TenantId;
use crate::knowledge_file::{parse_csv_file, parse_entry};
use crate::responder::AskAnswer;
use crate::store::{upsert_entries, ImportOutcome, NewEntry};

/// Unanswered messages shown (the newest).
pub const UNANSWERED_LIMIT: i64 = 50;

/// One of the owner's numbers (a tenant) as the knowledge pages name it.
#[derive(Debug, Clone)]
pub struct TenantChoice {
    pub id: Uuid,
    pub name: String,
}

/// One entry with its phrasings.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub data_type: String,
    pub question: String,
    pub answer: String,
    pub category: Option<String>,
    pub priority: i32,
    pub is_active: bool,
    pub phrasings: Vec<Phrasing>,
}

#[derive(Debug, Clone)]
pub struct Phrasing {
    pub id: Uuid,
    pub text: String,
    pub generated: bool,
}

/// The knowledge page of one number.
#[derive(Debug, Clone)]
pub struct Knowledge {
    pub tenants: Vec<TenantChoice>,
    pub tenant: TenantChoice,
    pub entries: Vec<Entry>,
}

/// A customer's message the FAQ did not answer.
#[derive(Debug, Clone)]
pub struct Unanswered {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub text: String,
    pub at: DateTime<Utc>,
    /// How it was answered instead: ai, fallback, escalation, or nothing.
    pub source: Option<String>,
}

/// Why a knowledge write was refused; each case is one sentence to the owner.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// Not the owner's (or does not exist): 404.
    #[error("not found")]
    NotFound,
    /// The form or file is wrong; the text says what (and, for a file, which line).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A unique key refused the write: the text for the owner.
fn duplicate_or(e: sqlx::Error, what: &str) -> KnowledgeError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23505") => {
            KnowledgeError::Invalid(format!("{what} already exists."))
        }
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23514") => {
            KnowledgeError::Invalid("That value is not allowed.".into())
        }
        _ => KnowledgeError::Unexpected(anyhow::Error::new(e).context("writing knowledge")),
    }
}

async fn commit(tx: Transaction<'static, Postgres>) -> anyhow::Result<()> {
    tx.commit().await.context("ending the owner's transaction")
}

/// The owner's numbers, by name.
pub async fn owner_tenants(
    tx: &mut Transaction<'static, Postgres>,
) -> anyhow::Result<Vec<TenantChoice>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "select id, client_name from alphadome.bot_tenants order by client_name, id",
    )
    .persistent(false)
    .fetch_all(&mut **tx)
    .await
    .context("reading the owner's numbers")?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| TenantChoice { id, name })
        .collect())
}

/// The knowledge of `tenant` (or the owner's first number), read as the owner; `None` when
/// `tenant` is not one of theirs.
pub async fn read_knowledge(
    pool: &PgPool,
    owner: &Owner,
    tenant: Option<Uuid>,
) -> anyhow::Result<Option<Knowledge>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let tenants = owner_tenants(&mut tx).await?;
    let chosen = match tenant {
        Some(t) => tenants.iter().find(|c| c.id == t).cloned(),
        None => tenants.first().cloned(),
    };
    let Some(chosen) = chosen else {
        commit(tx).await?;
        return Ok(None);
    };
    let entries = fetch_entries(&mut tx, chosen.id, None).await?;
    commit(tx).await?;
    Ok(Some(Knowledge {
        tenants,
        tenant: chosen,
        entries,
    }))
}

type UnansweredRow = (Uuid, Uuid, String, DateTime<Utc>, Option<String>);
type EntryRowT = (
    Uuid,
    Uuid,
    String,
    String,
    String,
    Option<String>,
    i32,
    bool,
);
type PhrasingRowT = (Uuid, Uuid, String, String);

/// Entries of `tenant` (or the one entry `only`), each with its phrasings: two queries.
async fn fetch_entries(
    tx: &mut Transaction<'static, Postgres>,
    tenant: Uuid,
    only: Option<Uuid>,
) -> anyhow::Result<Vec<Entry>> {
    let rows: Vec<EntryRowT> = sqlx::query_as(
        "select id, bot_tenant_id, data_type, question, answer, category, priority, is_active
           from alphadome.bot_training_data
          where bot_tenant_id = $1 and ($2::uuid is null or id = $2)
          order by is_active desc, data_type, priority desc, question",
    )
    .persistent(false)
    .bind(tenant)
    .bind(only)
    .fetch_all(&mut **tx)
    .await
    .context("reading the entries")?;
    let phrasings: Vec<PhrasingRowT> = sqlx::query_as(
        "select id, training_data_id, phrasing, source
           from alphadome.bot_training_phrasings
          where bot_tenant_id = $1 and ($2::uuid is null or training_data_id = $2)
          order by created_at, id",
    )
    .persistent(false)
    .bind(tenant)
    .bind(only)
    .fetch_all(&mut **tx)
    .await
    .context("reading the phrasings")?;
    let mut by_entry: std::collections::HashMap<Uuid, Vec<Phrasing>> =
        std::collections::HashMap::new();
    for (id, entry, text, source) in phrasings {
        by_entry.entry(entry).or_default().push(Phrasing {
            id,
            text,
            generated: source == "generated",
        });
    }
    Ok(rows
        .into_iter()
        .map(
            |(id, tenant_id, data_type, question, answer, category, priority, is_active)| Entry {
                phrasings: by_entry.remove(&id).unwrap_or_default(),
                id,
                tenant_id,
                data_type,
                question,
                answer,
                category,
                priority,
                is_active,
            },
        )
        .collect())
}

/// One entry with its phrasings, read as the owner; `None` when it is not theirs.
pub async fn read_entry(pool: &PgPool, owner: &Owner, id: Uuid) -> anyhow::Result<Option<Entry>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let tenant: Option<Uuid> =
        sqlx::query_scalar("select bot_tenant_id from alphadome.bot_training_data where id = $1")
            .persistent(false)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .context("finding the entry")?;
    let entry = match tenant {
        Some(t) => fetch_entries(&mut tx, t, Some(id)).await?.pop(),
        None => None,
    };
    commit(tx).await?;
    Ok(entry)
}

/// What an owner types into an entry's form.
#[derive(Debug, Clone, Default)]
pub struct EntryForm {
    pub question: String,
    pub answer: String,
    pub category: String,
    pub priority: String,
    pub data_type: String,
}

impl EntryForm {
    /// Checked with the CLI's rules for a file's row.
    pub fn parse(&self) -> Result<NewEntry, KnowledgeError> {
        parse_entry(
            &self.question,
            &self.answer,
            &self.category,
            &self.priority,
            &self.data_type,
        )
        .map_err(KnowledgeError::Invalid)
    }
}

/// Whether `tenant` is one of the owner's numbers, inside their transaction.
async fn owns_tenant(
    tx: &mut Transaction<'static, Postgres>,
    tenant: Uuid,
) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar::<_, i32>("select 1 from alphadome.bot_tenants where id = $1")
            .persistent(false)
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await
            .context("checking the number")?
            .is_some(),
    )
}

/// Adds an entry to one of the owner's numbers; returns its id.
pub async fn add_entry(
    pool: &PgPool,
    owner: &Owner,
    tenant: Uuid,
    form: &EntryForm,
) -> Result<Uuid, KnowledgeError> {
    let e = form.parse()?;
    let mut tx = begin_as_owner(pool, owner).await?;
    if !owns_tenant(&mut tx, tenant).await? {
        return Err(KnowledgeError::NotFound);
    }
    let id: Uuid = sqlx::query_scalar(
        "insert into alphadome.bot_training_data
            (bot_tenant_id, data_type, question, answer, category, priority, is_active)
         values ($1, $2, $3, $4, $5, $6, true) returning id",
    )
    .persistent(false)
    .bind(tenant)
    .bind(e.data_type.as_str())
    .bind(&e.question)
    .bind(&e.answer)
    .bind(&e.category)
    .bind(e.priority)
    .fetch_one(&mut *tx)
    .await
    .map_err(|err| duplicate_or(err, "An entry with that question"))?;
    commit(tx).await?;
    Ok(id)
}

/// Changes an entry's fields.
pub async fn update_entry(
    pool: &PgPool,
    owner: &Owner,
    id: Uuid,
    form: &EntryForm,
) -> Result<(), KnowledgeError> {
    let e = form.parse()?;
    let mut tx = begin_as_owner(pool, owner).await?;
    let done = sqlx::query(
        "update alphadome.bot_training_data
            set data_type = $2, question = $3, answer = $4, category = $5, priority = $6
          where id = $1",
    )
    .persistent(false)
    .bind(id)
    .bind(e.data_type.as_str())
    .bind(&e.question)
    .bind(&e.answer)
    .bind(&e.category)
    .bind(e.priority)
    .execute(&mut *tx)
    .await
    .map_err(|err| duplicate_or(err, "An entry with that question"))?
    .rows_affected();
    commit(tx).await?;
    if done == 0 {
        return Err(KnowledgeError::NotFound);
    }
    Ok(())
}

/// Activates or deactivates an entry (an inactive entry is neither matched nor grounding).
pub async fn set_entry_active(
    pool: &PgPool,
    owner: &Owner,
    id: Uuid,
    active: bool,
) -> Result<(), KnowledgeError> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let done = sqlx::query("update alphadome.bot_training_data set is_active = $2 where id = $1")
        .persistent(false)
        .bind(id)
        .bind(active)
        .execute(&mut *tx)
        .await
        .context("switching the entry")?
        .rows_affected();
    commit(tx).await?;
    if done == 0 {
        return Err(KnowledgeError::NotFound);
    }
    Ok(())
}

/// Deletes an entry (and, by the foreign key, its phrasings); returns its number's id.
pub async fn delete_entry(pool: &PgPool, owner: &Owner, id: Uuid) -> Result<Uuid, KnowledgeError> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let tenant: Option<Uuid> = sqlx::query_scalar(
        "delete from alphadome.bot_training_data where id = $1 returning bot_tenant_id",
    )
    .persistent(false)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .context("deleting the entry")?;
    commit(tx).await?;
    tenant.ok_or(KnowledgeError::NotFound)
}

/// Adds another phrasing to an entry (source `owner`, the column's default).
pub async fn add_phrasing(
    pool: &PgPool,
    owner: &Owner,
    entry: Uuid,
    text: &str,
) -> Result<(), KnowledgeError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 500 {
        return Err(KnowledgeError::Invalid(
            "Write the phrasing in 1 to 500 characters.".into(),
        ));
    }
    let mut tx = begin_as_owner(pool, owner).await?;
    let tenant: Option<Uuid> =
        sqlx::query_scalar("select bot_tenant_id from alphadome.bot_training_data where id = $1")
            .persistent(false)
            .bind(entry)
            .fetch_optional(&mut *tx)
            .await
            .context("finding the entry")?;
    let Some(tenant) = tenant else {
        return Err(KnowledgeError::NotFound);
    };
    sqlx::query(
        "insert into alphadome.bot_training_phrasings (bot_tenant_id, training_data_id, phrasing)
         values ($1, $2, $3)",
    )
    .persistent(false)
    .bind(tenant)
    .bind(entry)
    .bind(text)
    .execute(&mut *tx)
    .await
    .map_err(|err| duplicate_or(err, "That phrasing"))?;
    commit(tx).await?;
    Ok(())
}

/// Deletes a phrasing; returns the entry it belonged to.
pub async fn delete_phrasing(
    pool: &PgPool,
    owner: &Owner,
    id: Uuid,
) -> Result<Uuid, KnowledgeError> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let entry: Option<Uuid> = sqlx::query_scalar(
        "delete from alphadome.bot_training_phrasings where id = $1 returning training_data_id",
    )
    .persistent(false)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .context("deleting the phrasing")?;
    commit(tx).await?;
    entry.ok_or(KnowledgeError::NotFound)
}

/// Imports CSV text into one of the owner's numbers, all or nothing, with the CLI's rules: a
/// bad row is named by its line and nothing is written.
pub async fn import_csv(
    pool: &PgPool,
    owner: &Owner,
    tenant: Uuid,
    text: &str,
) -> Result<ImportOutcome, KnowledgeError> {
    let file = parse_csv_file(text).map_err(|e| KnowledgeError::Invalid(e.to_string()))?;
    let (entries, phrasings) = (file.entries, file.phrasings);
    if entries.is_empty() {
        return Err(KnowledgeError::Invalid("The file has no rows.".into()));
    }
    let mut tx = begin_as_owner(pool, owner).await?;
    if !owns_tenant(&mut tx, tenant).await? {
        return Err(KnowledgeError::NotFound);
    }
    let outcome = upsert_entries(&mut tx, TenantId(tenant), &entries, &phrasings).await?;
    commit(tx).await?;
    Ok(outcome)
}

/// The entries of one of the owner's numbers as CSV, in the import's format; `None` when the
/// number is not theirs.
pub async fn export_csv(
    pool: &PgPool,
    owner: &Owner,
    tenant: Uuid,
) -> anyhow::Result<Option<String>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    if !owns_tenant(&mut tx, tenant).await? {
        commit(tx).await?;
        return Ok(None);
    }
    let entries = fetch_entries(&mut tx, tenant, None).await?;
    commit(tx).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "question",
        "answer",
        "category",
        "priority",
        "data_type",
        "phrasings",
    ])
    .context("writing CSV")?;
    for e in entries.iter().filter(|e| e.is_active) {
        // The import's `phrasings` column: `|`-separated (a phrasing holding `|` is left out
        // rather than split in two).
        let phrasings = e
            .phrasings
            .iter()
            .map(|p| p.text.as_str())
            .filter(|t| !t.contains('|'))
            .collect::<Vec<_>>()
            .join("|");
        w.write_record([
            e.question.as_str(),
            e.answer.as_str(),
            e.category.as_deref().unwrap_or(""),
            &e.priority.to_string(),
            e.data_type.as_str(),
            &phrasings,
        ])
        .context("writing CSV")?;
    }
    let bytes = w.into_inner().context("writing CSV")?;
    Ok(Some(String::from_utf8(bytes).context("CSV is UTF-8")?))
}

/// The newest customers' messages of one of the owner's numbers that the FAQ did not answer.
pub async fn list_unanswered(
    pool: &PgPool,
    owner: &Owner,
    tenant: Uuid,
) -> anyhow::Result<Vec<Unanswered>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let rows: Vec<UnansweredRow> = sqlx::query_as(
        "select id, bot_tenant_id, message_text, created_at, reply_source
           from public.conversations
          where bot_tenant_id = $1 and direction = 'incoming' and message_text is not null
            and (reply_source is null or reply_source in ('ai', 'fallback', 'escalation'))
          order by created_at desc
          limit $2",
    )
    .persistent(false)
    .bind(tenant)
    .bind(UNANSWERED_LIMIT)
    .fetch_all(&mut *tx)
    .await
    .context("listing unanswered messages")?;
    commit(tx).await?;
    Ok(rows
        .into_iter()
        .map(|(id, tenant_id, text, at, source)| Unanswered {
            id,
            tenant_id,
            text,
            at,
            source,
        })
        .collect())
}

/// One unanswered message and the entries it could become a phrasing of; `None` when the
/// message is not the owner's.
pub async fn read_unanswered(
    pool: &PgPool,
    owner: &Owner,
    id: Uuid,
) -> anyhow::Result<Option<(Unanswered, Vec<Entry>)>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let row: Option<UnansweredRow> = sqlx::query_as(
        "select id, bot_tenant_id, message_text, created_at, reply_source
           from public.conversations
          where id = $1 and direction = 'incoming' and message_text is not null",
    )
    .persistent(false)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
    .context("reading the message")?;
    let Some((id, tenant_id, text, at, source)) = row else {
        commit(tx).await?;
        return Ok(None);
    };
    let entries = fetch_entries(&mut tx, tenant_id, None).await?;
    commit(tx).await?;
    Ok(Some((
        Unanswered {
            id,
            tenant_id,
            text,
            at,
            source,
        },
        entries,
    )))
}

impl TenantActions {
    /// "Try it": what the assistant of `tenant` would answer `text` now, and why — the very
    /// dry run of `alphadome ask` (nothing claimed, sent or logged). The number is checked as
    /// the owner first; the context is read fresh, so an entry just edited is used.
    pub async fn try_message(
        &self,
        pool: &PgPool,
        owner: &Owner,
        tenant: Uuid,
        text: &str,
    ) -> Result<AskAnswer, KnowledgeError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 1_000 {
            return Err(KnowledgeError::Invalid(
                "Write a message of 1 to 1,000 characters.".into(),
            ));
        }
        let mut tx = begin_as_owner(pool, owner).await?;
        let mine = owns_tenant(&mut tx, tenant).await?;
        commit(tx).await?;
        if !mine {
            return Err(KnowledgeError::NotFound);
        }
        self.responder
            .with_fresh_cache()
            .ask(TenantId(tenant), text)
            .await
            .map_err(|e| KnowledgeError::Unexpected(anyhow::anyhow!("the dry run failed: {e}")))
    }
}
