//! The owner's conversations: customers by latest message and one customer's transcript,
//! read as the owner (row-level security decides what exists); the assistant's switch,
//! written as the owner; and the one write an owner cannot make under RLS — replying as a
//! person, which sends with the tenant's WhatsApp token — made on the server's own path,
//! acting for the tenant the owner's read proved is theirs.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

use super::auth::Owner;
use super::overview::begin_as_owner;
use crate::crypto::SecretColumn;
use crate::domain::TenantId;
use crate::keys::KeyProvider;
use crate::store::Store;
use crate::whatsapp::{Recipient, SendError, WhatsAppClient, MAX_TEXT_CHARS};

/// Customers per page of the list.
pub const PAGE_SIZE: i64 = 25;
/// Messages shown in a transcript (the newest).
pub const TRANSCRIPT_LIMIT: i64 = 200;
/// How long after a customer's last message a free-form reply may be sent (Meta's rule).
pub const SERVICE_WINDOW_HOURS: i64 = 24;

/// One line of the list: a customer and their latest message.
#[derive(Debug, Clone)]
pub struct CustomerLine {
    pub user_id: Uuid,
    pub name: Option<String>,
    pub phone: Option<String>,
    /// The list's order: the customer's latest message to the business.
    pub sort_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub last_direction: String,
    pub last_text: Option<String>,
    pub last_type: Option<String>,
    pub paused: bool,
}

/// Where the next page starts: after the customer whose latest message is `at`, id `id`
/// (keyset pagination: stable while new messages arrive, no offset scans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// The cursor as a URL value: `<microseconds since the epoch>.<uuid>`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.at.timestamp_micros(), self.id)
    }

    /// Parses [`Cursor::encode`]'s output; anything else is `None` (the first page).
    pub fn parse(s: &str) -> Option<Self> {
        let (micros, id) = s.split_once('.')?;
        Some(Self {
            at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// A page of the list.
#[derive(Debug, Clone, Default)]
pub struct CustomerPage {
    pub customers: Vec<CustomerLine>,
    pub next: Option<Cursor>,
}

/// What a search box holds: the last digits of a number, or part of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    Digits(String),
    Name(String),
}

impl Search {
    /// `None` for an empty box.
    pub fn parse(q: &str) -> Option<Self> {
        let q = q.trim();
        if q.is_empty() {
            return None;
        }
        let digits: String = q.chars().filter(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty()
            && q.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-'))
        {
            Some(Search::Digits(digits))
        } else {
            Some(Search::Name(q.chars().take(100).collect()))
        }
    }
}

/// `s` with LIKE's wildcards and escape character taken literally.
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// One page of the owner's customers, newest conversation first.
pub async fn list_customers(
    pool: &PgPool,
    owner: &Owner,
    search: Option<&Search>,
    after: Option<Cursor>,
) -> anyhow::Result<CustomerPage> {
    let (name, digits) = match search {
        Some(Search::Name(n)) => (Some(format!("%{}%", like_escape(n))), None),
        Some(Search::Digits(d)) => (None, Some(format!("%{d}"))),
        None => (None, None),
    };
    let mut tx = begin_as_owner(pool, owner).await?;
    type Row = (
        Uuid,
        Option<String>,
        Option<String>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        DateTime<Utc>,
        String,
        Option<String>,
        Option<String>,
    );
    // One ordered index scan per number of the owner's (users_tenant_latest_idx, migration
    // 0018): customers by their latest message to the business, the page's rows only, never
    // the whole history. Owners have a number or two; their pages are merged here.
    let tenants: Vec<Uuid> = sqlx::query_scalar("select id from alphadome.bot_tenants order by id")
        .persistent(false)
        .fetch_all(&mut *tx)
        .await
        .context("reading the owner's numbers")?;
    let mut rows: Vec<Row> = Vec::new();
    for tenant in tenants {
        let mut page: Vec<Row> = sqlx::query_as(
            "select u.id, u.full_name, u.phone, u.bot_paused_until,
                    coalesce(u.last_inbound_at, timestamptz '1970-01-01 00:00:00+00'), l.created_at,
                    coalesce(l.direction, ''), l.message_text, l.message_type
             from public.users u
             cross join lateral (
                 select c.created_at, c.direction, c.message_text, c.message_type
                 from public.conversations c
                 where c.user_id = u.id and c.bot_tenant_id = u.bot_tenant_id
                 order by c.created_at desc
                 limit 1) l
             where u.bot_tenant_id = $6
               and ($1::text is null or u.full_name ilike $1)
               and ($2::text is null or u.phone like $2 or u.wa_user_id like $2)
               and ($3::timestamptz is null
                    or (coalesce(u.last_inbound_at, timestamptz '1970-01-01 00:00:00+00'), u.id) < ($3, $4))
             order by coalesce(u.last_inbound_at, timestamptz '1970-01-01 00:00:00+00') desc, u.id desc
             limit $5",
        )
        .persistent(false)
        .bind(&name)
        .bind(&digits)
        .bind(after.map(|c| c.at))
        .bind(after.map(|c| c.id))
        .bind(PAGE_SIZE + 1)
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await
        .context("listing the owner's customers")?;
        rows.append(&mut page);
    }
    rows.sort_by_key(|r| std::cmp::Reverse((r.4, r.0)));
    rows.truncate(PAGE_SIZE as usize + 1);
    tx.commit()
        .await
        .context("ending the owner's transaction")?;
    let now = Utc::now();
    let mut customers: Vec<CustomerLine> = rows
        .into_iter()
        .map(
            |(user_id, name, phone, paused_until, sort_at, last_at, dir, text, kind)| {
                CustomerLine {
                    user_id,
                    name,
                    phone,
                    sort_at,
                    last_at,
                    last_direction: dir,
                    last_text: text,
                    last_type: kind,
                    paused: paused_until.is_some_and(|p| p > now),
                }
            },
        )
        .collect();
    let next = if customers.len() as i64 > PAGE_SIZE {
        customers.truncate(PAGE_SIZE as usize);
        customers.last().map(|c| Cursor {
            at: c.sort_at,
            id: c.user_id,
        })
    } else {
        None
    };
    Ok(CustomerPage { customers, next })
}

/// One customer as the transcript page shows them.
#[derive(Debug, Clone)]
pub struct Customer {
    pub user_id: Uuid,
    pub tenant_id: TenantId,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub wa_user_id: Option<String>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub paused_until: Option<DateTime<Utc>>,
    pub business: String,
    pub assistant_enabled: bool,
}

impl Customer {
    /// Whether a free-form reply may be sent now (the customer wrote within 24 hours).
    pub fn window_open(&self, now: DateTime<Utc>) -> bool {
        self.last_inbound_at
            .is_some_and(|t| now - t < Duration::hours(SERVICE_WINDOW_HOURS))
    }

    /// Whether the assistant is paused for this customer now.
    pub fn paused(&self, now: DateTime<Utc>) -> bool {
        self.paused_until.is_some_and(|p| p > now)
    }
}

/// One message of a transcript.
#[derive(Debug, Clone)]
pub struct MessageLine {
    pub at: DateTime<Utc>,
    pub direction: String,
    pub text: Option<String>,
    pub message_type: Option<String>,
    pub status: Option<String>,
    pub reply_source: Option<String>,
    pub error_code: Option<i32>,
    pub error_title: Option<String>,
}

/// The customer `user_id`, read as the owner: `None` when it is not the owner's (or does not
/// exist — the two are the same answer).
pub async fn read_customer(
    pool: &PgPool,
    owner: &Owner,
    user_id: Uuid,
) -> anyhow::Result<Option<Customer>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let customer = fetch_customer(&mut tx, user_id).await?;
    tx.commit()
        .await
        .context("ending the owner's transaction")?;
    Ok(customer)
}

async fn fetch_customer(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    user_id: Uuid,
) -> anyhow::Result<Option<Customer>> {
    type Row = (
        Uuid,
        Uuid,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        String,
        Option<bool>,
    );
    let row: Option<Row> = sqlx::query_as(
        "select u.id, t.id, u.full_name, u.phone, u.wa_user_id, u.last_inbound_at,
                u.bot_paused_until, t.client_name, s.is_bot_enabled
         from public.users u
         join alphadome.bot_tenants t on t.id = u.bot_tenant_id
         left join alphadome.bot_control_settings s on s.bot_tenant_id = t.id
         where u.id = $1",
    )
    .persistent(false)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await
    .context("reading the customer")?;
    Ok(row.map(
        |(
            user_id,
            tenant,
            name,
            phone,
            wa_user_id,
            last_inbound_at,
            paused_until,
            business,
            on,
        )| {
            Customer {
                user_id,
                tenant_id: TenantId(tenant),
                name,
                phone,
                wa_user_id,
                last_inbound_at,
                paused_until,
                business,
                assistant_enabled: on.unwrap_or(true),
            }
        },
    ))
}

/// The customer and their newest messages (oldest first), read as the owner.
pub async fn read_transcript(
    pool: &PgPool,
    owner: &Owner,
    user_id: Uuid,
) -> anyhow::Result<Option<(Customer, Vec<MessageLine>)>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let Some(customer) = fetch_customer(&mut tx, user_id).await? else {
        tx.commit()
            .await
            .context("ending the owner's transaction")?;
        return Ok(None);
    };
    type Row = (
        DateTime<Utc>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "select created_at, direction, message_text, message_type, status, reply_source,
                error_code, error_title
         from public.conversations
         where user_id = $1 and bot_tenant_id = $2
         order by created_at desc, direction desc
         limit $3",
    )
    .persistent(false)
    .bind(user_id)
    .bind(customer.tenant_id)
    .bind(TRANSCRIPT_LIMIT)
    .fetch_all(&mut *tx)
    .await
    .context("reading the transcript")?;
    tx.commit()
        .await
        .context("ending the owner's transaction")?;
    let mut messages: Vec<MessageLine> = rows
        .into_iter()
        .map(
            |(at, direction, text, message_type, status, reply_source, error_code, error_title)| {
                MessageLine {
                    at,
                    direction: direction.unwrap_or_default(),
                    text,
                    message_type,
                    status,
                    reply_source,
                    error_code,
                    error_title,
                }
            },
        )
        .collect();
    messages.reverse();
    Ok(Some((customer, messages)))
}

/// Switches the assistant on or off, as the owner, for one of their numbers (`tenant`) or all
/// of them. Returns how many numbers changed; 0 means none of the owner's matched.
pub async fn set_assistant_enabled(
    pool: &PgPool,
    owner: &Owner,
    tenant: Option<Uuid>,
    enabled: bool,
) -> anyhow::Result<u64> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let done = sqlx::query(
        "update alphadome.bot_control_settings set is_bot_enabled = $1
         where ($2::uuid is null or bot_tenant_id = $2)",
    )
    .persistent(false)
    .bind(enabled)
    .bind(tenant)
    .execute(&mut *tx)
    .await
    .context("switching the assistant")?
    .rows_affected();
    tx.commit()
        .await
        .context("ending the owner's transaction")?;
    Ok(done)
}

/// Why a reply as a person did not go out. Each case is one sentence to the owner.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The customer is not the owner's (or does not exist): 404.
    #[error("no such customer")]
    NotFound,
    /// The customer last wrote more than 24 hours ago: only a template may be sent.
    #[error("the 24-hour window is closed")]
    WindowClosed,
    /// Nothing to send, or more than WhatsApp takes in one message.
    #[error("the message is empty or too long")]
    BadText,
    /// The number has no usable WhatsApp token (missing, unreadable, or refused by Meta).
    #[error("the WhatsApp token cannot be used")]
    Token,
    /// Meta refused or did not answer; the row is recorded as failed.
    #[error("WhatsApp did not take the message: {0}")]
    Send(SendError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The server's path that acts for a tenant on an owner's behalf: replying as a person (the
/// tenant's token is opened here, used once, and never rendered) and resuming the assistant.
#[derive(Clone)]
pub struct TenantActions {
    pub store: Store,
    pub keys: KeyProvider,
    pub whatsapp: WhatsAppClient,
    /// The responder's dry run ("Try it"); it never sends.
    pub responder: crate::responder::Responder,
    /// The models an owner may choose (the platform's allowlist) and the default.
    pub ai_limits: crate::responder::policy::AiLimits,
    pub default_model: String,
}

impl TenantActions {
    /// Sends `text` to the customer `user_id` as the business, logs it as `person` and pauses
    /// the assistant for that customer until resumed. The customer is looked up as the owner
    /// first (RLS): only a customer the owner can read is acted on.
    pub async fn reply_as_person(
        &self,
        pool: &PgPool,
        owner: &Owner,
        user_id: Uuid,
        text: &str,
    ) -> Result<(), ReplyError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
            return Err(ReplyError::BadText);
        }
        let customer = read_customer(pool, owner, user_id)
            .await?
            .ok_or(ReplyError::NotFound)?;
        if !customer.window_open(Utc::now()) {
            return Err(ReplyError::WindowClosed);
        }
        let to = match (&customer.phone, &customer.wa_user_id) {
            (Some(p), _) => Recipient::Phone(p.clone()),
            (None, Some(u)) => Recipient::UserId(u.clone()),
            (None, None) => return Err(ReplyError::NotFound),
        };
        let tenant = customer.tenant_id;
        let context = self
            .store
            .load_tenant_context(tenant)
            .await
            .context("loading the tenant")?
            .ok_or(ReplyError::NotFound)?;
        let token = self
            .open_token(
                tenant,
                context.tenant.whatsapp_access_token.as_deref(),
                context.tenant.key_version,
            )
            .await?;

        let row = self.record_pending(tenant, user_id, text).await?;
        // Tagged with its row, as the assistant's replies are: Meta's first status names it,
        // so a send whose mark was lost (Graph timed out after delivering, the page's request
        // ended) is still recorded as sent (migrations/0028_statuses_name_their_reply.sql).
        let sent = self
            .whatsapp
            .send_text_tagged(
                &context.tenant.whatsapp_phone_number_id,
                &token,
                &to,
                text,
                None,
                Some(&crate::whatsapp::reply_tag(row)),
            )
            .await;
        let result = match &sent {
            Ok(ids) => {
                serde_json::json!({"id": row, "status": "sent", "sent_wa_message_id": ids.first()})
            }
            Err(e) => serde_json::json!({"id": row, "status": "failed", "error_code": e.code()}),
        };
        let token_invalid = matches!(sent, Err(SendError::TokenInvalid { .. }));
        self.record_sent(tenant, result, token_invalid).await?;
        match sent {
            Ok(_) => Ok(()),
            Err(SendError::TokenInvalid { .. }) => Err(ReplyError::Token),
            Err(e) => Err(ReplyError::Send(e)),
        }
    }

    /// Resumes the assistant for the customer `user_id` (looked up as the owner first).
    pub async fn resume(
        &self,
        pool: &PgPool,
        owner: &Owner,
        user_id: Uuid,
    ) -> Result<(), ReplyError> {
        let customer = read_customer(pool, owner, user_id)
            .await?
            .ok_or(ReplyError::NotFound)?;
        let mut tx = self.store.begin_for_tenant(customer.tenant_id).await?;
        let out: serde_json::Value =
            sqlx::query_scalar("select alphadome.resume_assistant_for($1)")
                .persistent(false)
                .bind(serde_json::json!({"user_id": user_id}))
                .fetch_one(&mut *tx)
                .await
                .context("resuming the assistant")?;
        tx.commit().await.context("committing the resume")?;
        if out["resumed"] == serde_json::Value::Bool(true) {
            Ok(())
        } else {
            Err(ReplyError::NotFound)
        }
    }

    async fn open_token(
        &self,
        tenant: TenantId,
        sealed: Option<&str>,
        key_version: i32,
    ) -> Result<SecretString, ReplyError> {
        let sealed = sealed.ok_or(ReplyError::Token)?;
        let version = u32::try_from(key_version).map_err(|_| ReplyError::Token)?;
        let ring = self
            .keys
            .ring_with_version(tenant, version)
            .await
            .context("reading the tenant's data key")?;
        ring.decrypt(SecretColumn::WhatsappAccessToken, sealed)
            .map_err(|_| ReplyError::Token)
    }

    async fn record_pending(
        &self,
        tenant: TenantId,
        user_id: Uuid,
        text: &str,
    ) -> Result<Uuid, ReplyError> {
        let mut tx = self.store.begin_for_tenant(tenant).await?;
        let out: serde_json::Value = sqlx::query_scalar("select alphadome.record_person_reply($1)")
            .persistent(false)
            .bind(serde_json::json!({"user_id": user_id, "text": text}))
            .fetch_one(&mut *tx)
            .await
            .context("recording the reply")?;
        tx.commit().await.context("committing the reply")?;
        out["id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or(ReplyError::NotFound)
    }

    async fn record_sent(
        &self,
        tenant: TenantId,
        result: serde_json::Value,
        token_invalid: bool,
    ) -> anyhow::Result<()> {
        let mut tx = self.store.begin_for_tenant(tenant).await?;
        sqlx::query("select alphadome.mark_sent_batch($1)")
            .persistent(false)
            .bind(serde_json::json!({
                "tenant_id": tenant,
                "items": [{"results": [result], "token_invalid": token_invalid}],
            }))
            .execute(&mut *tx)
            .await
            .context("recording the send")?;
        tx.commit().await.context("committing the send")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_url_form() {
        let c = Cursor {
            at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::parse(&c.encode()), Some(c));
        assert_eq!(Cursor::parse("nonsense"), None);
        assert_eq!(Cursor::parse("12.not-a-uuid"), None);
    }

    #[test]
    fn digits_search_by_number_and_anything_else_by_name() {
        assert_eq!(Search::parse(" 0111 "), Some(Search::Digits("0111".into())));
        assert_eq!(
            Search::parse("+254 711"),
            Some(Search::Digits("254711".into()))
        );
        assert_eq!(
            Search::parse("Wanjiku"),
            Some(Search::Name("Wanjiku".into()))
        );
        assert_eq!(Search::parse("  "), None);
        assert_eq!(like_escape("50%_off\\"), "50\\%\\_off\\\\");
    }

    #[test]
    fn the_window_is_open_for_24_hours_after_the_customer_wrote() {
        let now = Utc::now();
        let mut c = Customer {
            user_id: Uuid::new_v4(),
            tenant_id: TenantId(Uuid::new_v4()),
            name: None,
            phone: None,
            wa_user_id: None,
            last_inbound_at: Some(now - Duration::hours(23)),
            paused_until: None,
            business: String::new(),
            assistant_enabled: true,
        };
        assert!(c.window_open(now));
        c.last_inbound_at = Some(now - Duration::hours(25));
        assert!(!c.window_open(now));
        c.last_inbound_at = None;
        assert!(!c.window_open(now));
    }
}
