//! Hand-overs: conversations waiting for a person, read as the owner under row-level
//! security. A customer waits when the assistant is paused for them (an escalation's quiet
//! period, or the owner replied as a person) or when the assistant handed them over after the
//! owner last marked them done. "Mark done" is written on the tenant's path
//! (`alphadome.mark_handover_done`, migration 0018) after the owner's read proved the customer
//! is theirs, like resuming the assistant.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::auth::Owner;
use super::conversations::{read_customer, ReplyError, TenantActions};
use super::overview::begin_as_owner;

/// Hand-overs shown on the page (the oldest).
pub const HANDOVER_LIMIT: i64 = 100;

/// One conversation waiting for a person.
#[derive(Debug, Clone)]
pub struct Handover {
    pub user_id: Uuid,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub business: String,
    /// Since when it waits: the latest hand-over, else the customer's last message.
    pub since: Option<DateTime<Utc>>,
    pub paused_until: Option<DateTime<Utc>>,
    pub escalated: bool,
    pub last_message: Option<String>,
}

/// The rows waiting for a person, as SQL shared by the list and the count. Reads only the
/// tenant's escalation notices (a partial index; the notice goes to the owner, so its
/// customer is the one of the message it answers) and its paused customers (another).
const WAITING: &str = "
    with notice as (
        select o.created_at,
               (select i.user_id from public.conversations i
                 where i.wa_message_id = o.in_reply_to and i.direction = 'incoming') as user_id
          from public.conversations o
         where o.reply_source = 'escalation' and o.direction = 'outgoing'),
    esc as (
        select n.user_id, max(n.created_at) as at
          from notice n
         where n.user_id is not null
         group by n.user_id),
    waiting as (
        select u.id, u.full_name, u.phone, u.bot_tenant_id, u.bot_paused_until,
               u.last_inbound_at, esc.at as escalated_at
          from public.users u
          join esc on esc.user_id = u.id
         where esc.at > coalesce(u.handover_done_at, '-infinity')
        union
        select u.id, u.full_name, u.phone, u.bot_tenant_id, u.bot_paused_until,
               u.last_inbound_at,
               (select e.at from esc e where e.user_id = u.id)
          from public.users u
         where u.bot_paused_until is not null and u.bot_paused_until > now())";

/// How many conversations wait for a person, inside the owner's transaction.
pub async fn count_open(tx: &mut Transaction<'static, Postgres>) -> anyhow::Result<i64> {
    sqlx::query_scalar(&format!("{WAITING} select count(*) from waiting"))
        .persistent(false)
        .fetch_one(&mut **tx)
        .await
        .context("counting the hand-overs")
}

/// The conversations waiting for a person, oldest first, read as the owner.
pub async fn list_handovers(pool: &PgPool, owner: &Owner) -> anyhow::Result<Vec<Handover>> {
    let mut tx = begin_as_owner(pool, owner).await?;
    type Row = (
        Uuid,
        Option<String>,
        Option<String>,
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "{WAITING}
         select w.id, w.full_name, w.phone, t.client_name,
                coalesce(w.escalated_at, w.last_inbound_at), w.bot_paused_until, w.escalated_at,
                (select c.message_text from public.conversations c
                  where c.user_id = w.id and c.bot_tenant_id = w.bot_tenant_id
                    and c.direction = 'incoming'
                  order by c.created_at desc limit 1)
           from waiting w
           join alphadome.bot_tenants t on t.id = w.bot_tenant_id
          order by coalesce(w.escalated_at, w.last_inbound_at) asc nulls first, w.id
          limit $1"
    ))
    .persistent(false)
    .bind(HANDOVER_LIMIT)
    .fetch_all(&mut *tx)
    .await
    .context("listing the hand-overs")?;
    tx.commit()
        .await
        .context("ending the owner's transaction")?;
    let now = Utc::now();
    Ok(rows
        .into_iter()
        .map(
            |(user_id, name, phone, business, since, paused_until, escalated_at, last)| Handover {
                user_id,
                name,
                phone,
                business,
                since,
                paused_until: paused_until.filter(|p| *p > now),
                escalated: escalated_at.is_some(),
                last_message: last,
            },
        )
        .collect())
}

impl TenantActions {
    /// Marks the hand-over of customer `user_id` done (looked up as the owner first): the
    /// assistant answers them again and the hand-over leaves the list.
    pub async fn mark_handover_done(
        &self,
        pool: &PgPool,
        owner: &Owner,
        user_id: Uuid,
    ) -> Result<(), ReplyError> {
        let customer = read_customer(pool, owner, user_id)
            .await?
            .ok_or(ReplyError::NotFound)?;
        let mut tx = self.store.begin_for_tenant(customer.tenant_id).await?;
        let out: serde_json::Value = sqlx::query_scalar("select alphadome.mark_handover_done($1)")
            .persistent(false)
            .bind(serde_json::json!({"user_id": user_id}))
            .fetch_one(&mut *tx)
            .await
            .context("marking the hand-over done")?;
        tx.commit().await.context("committing the hand-over")?;
        if out["done"] == serde_json::Value::Bool(true) {
            Ok(())
        } else {
            Err(ReplyError::NotFound)
        }
    }
}
