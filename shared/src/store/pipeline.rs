//! The responder's hot path: one round trip per step for all the messages of one tenant in a
//! queue batch, each a SQL function that acts for that tenant (see
//! migrations/0009_batched_pipeline.sql).

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::coalesce::Durability;
use super::literal::{json_select, quote_literal};
use super::{Store, StoreError};
use crate::domain::{CustomerId, EntryId, TenantId};
use crate::webhook::StatusUpdate;

/// Input of `alphadome.begin_inbound`.
#[derive(Debug, Serialize)]
pub struct BeginInbound<'a> {
    pub wa_message_id: &'a str,
    /// The responder's attempt at this message, stamped on the claim: what
    /// [`Store::give_back_unsent`] gives back when a call's answer is lost.
    pub attempt: uuid::Uuid,
    pub phone: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub profile_name: Option<&'a str>,
    pub message_type: &'a str,
    pub text: Option<&'a str>,
    /// `stop`, `start` or `human`.
    pub intent: Option<&'static str>,
    pub count_reply: bool,
    pub with_history: bool,
    /// The outcome decided before the claim, recorded with it when the facts it assumed
    /// hold (migrations/0030_claim_and_record_foreseen.sql).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreseen: Option<Foreseen<'a>>,
}

/// An outcome decided before the claim, on assumed facts: a subscribed customer, not paused,
/// within `cap` replies this hour, and not on a first contact (unless `first_contact_too`).
#[derive(Debug, Serialize)]
pub struct Foreseen<'a> {
    /// The record's input; the claim fills in the customer.
    pub record: RecordReplies<'a>,
    pub cap: i32,
    /// A first contact changes nothing in this outcome.
    pub first_contact_too: bool,
}

/// One earlier turn of the conversation.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Turn {
    pub direction: String,
    pub text: String,
}

/// What `begin_inbound` established.
#[derive(Debug, Clone, Deserialize)]
pub struct Inbound {
    pub claimed: bool,
    #[serde(default)]
    pub user_id: Option<CustomerId>,
    #[serde(default)]
    pub first_contact: bool,
    #[serde(default = "yes")]
    pub was_subscribed: bool,
    #[serde(default)]
    pub paused_until: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub replies_this_hour: Option<i32>,
    #[serde(default)]
    pub history: Vec<Turn>,
    /// This month's AI tokens or messages reached the tenant's budget: the AI stops (FAQ
    /// answers and hand-overs go on). False without a budget.
    #[serde(default)]
    pub ai_budget_exhausted: bool,
    /// Set on one message per month, once usage passed 80 % of a budget: tell the owner.
    #[serde(default)]
    pub budget_notice: bool,
    /// The larger of the two budgets' use, in percent (none without a budget).
    #[serde(default)]
    pub budget_percent: Option<i64>,
    /// The foreseen outcome was recorded with the claim: these are its replies, and the
    /// message is not recorded again.
    #[serde(default)]
    pub recorded: Option<Vec<RecordedReply>>,
}

fn yes() -> bool {
    true
}

/// A reply about to be sent.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedReply {
    pub source: &'static str,
    pub text: String,
    pub to_customer: bool,
}

/// Input of `alphadome.record_replies`.
#[derive(Debug, Default, Serialize)]
pub struct RecordReplies<'a> {
    pub wa_message_id: &'a str,
    /// The responder's attempt at this message (the claim's), stamped on the replies the
    /// record makes sendable: what [`Store::give_back_unsent`] gives back when a call's answer
    /// is lost.
    pub attempt: uuid::Uuid,
    pub user_id: Option<CustomerId>,
    pub inbound_status: &'static str,
    pub note: Option<&'static str>,
    pub reply_source: Option<&'static str>,
    pub matched_entry_id: Option<EntryId>,
    pub ai_prompt_tokens: Option<u32>,
    pub ai_completion_tokens: Option<u32>,
    /// Prompt tokens OpenAI served from its cache (part of `ai_prompt_tokens`).
    pub ai_cached_tokens: Option<u32>,
    /// How many times the AI was called for this message (0 or 1), counted in the day's usage.
    pub ai_calls: u32,
    /// The AI would have been asked but the tenant's budget is spent (counted once).
    pub budget_stop: bool,
    pub pause_minutes: Option<i32>,
    pub replies: &'a [PlannedReply],
    /// A voice note's transcript: written as the incoming message's text, marked as one
    /// (`is_transcript`, migration 0019).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<&'a str>,
    /// Voice notes sent to the speech-to-text model for this message (0 or 1), with the
    /// seconds and tokens the server reported: counted in the day's usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub transcriptions: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription_input_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription_output_tokens: Option<u32>,
    /// Pictures shown to the chat model for this message (0 or 1).
    #[serde(skip_serializing_if = "is_zero")]
    pub image_inputs: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A recorded reply: send it only when `send` is true.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedReply {
    pub id: uuid::Uuid,
    pub source: String,
    pub send: bool,
}

#[derive(Deserialize)]
struct Recorded {
    replies: Vec<RecordedReply>,
}

/// Input of `alphadome.record_sent`: what Graph said about one message's replies.
#[derive(Debug, Serialize)]
pub struct MarkSent<'a> {
    /// The inbound message the replies answer.
    pub wa_message_id: &'a str,
    pub results: &'a [SendResult],
    pub token_invalid: bool,
}

/// What Graph said about one send.
#[derive(Debug, Clone, Serialize)]
pub struct SendResult {
    pub id: uuid::Uuid,
    /// `sent`, `retry` or `failed`.
    pub status: &'static str,
    pub sent_wa_message_id: Option<String>,
    pub error_code: Option<i64>,
}

#[derive(Serialize)]
struct ApplyStatus<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<TenantId>,
    wa_message_id: &'a str,
    status: &'a str,
    error_code: Option<i64>,
    error_title: Option<&'a str>,
    pricing_category: Option<&'a str>,
    pricing_billable: Option<bool>,
    pricing_type: Option<&'a str>,
    /// The reply the status names (migrations/0028_statuses_name_their_reply.sql).
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_id: Option<uuid::Uuid>,
}

pub(super) async fn call<T: Serialize>(
    store: &Store,
    function: &'static str,
    input: &T,
) -> Result<serde_json::Value, StoreError> {
    call_as(store, function, input, Durability::Durable).await
}

/// [`call`] with the durability the call needs (see [`Durability`]).
async fn call_as<T: Serialize>(
    store: &Store,
    function: &'static str,
    input: &T,
    durability: Durability,
) -> Result<serde_json::Value, StoreError> {
    let json = serde_json::to_string(input).context("encoding the call")?;
    let sql = json_select(&format!(
        "alphadome.{function}({}::jsonb)",
        quote_literal(&json)?
    ));
    let out = store
        .fetch_doc_as(sql, durability)
        .await
        .with_context(|| format!("calling alphadome.{function}"))?;
    Ok(out.unwrap_or(serde_json::Value::Null))
}

/// A batch call's input: one tenant, its items in order.
#[derive(Serialize)]
struct Batch<'a, T> {
    tenant_id: TenantId,
    #[serde(skip_serializing_if = "Option::is_none")]
    lease_seconds: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history_turns: Option<u32>,
    items: &'a [T],
}

#[derive(Deserialize)]
struct BatchResults<T> {
    results: Vec<T>,
}

/// Calls a batch function and checks that it answered every item.
async fn call_batch<T: Serialize, R: serde::de::DeserializeOwned>(
    store: &Store,
    function: &'static str,
    batch: &Batch<'_, T>,
    durability: Durability,
) -> Result<Vec<R>, StoreError> {
    let v = call_as(store, function, batch, durability).await?;
    let out: BatchResults<R> =
        serde_json::from_value(v).with_context(|| format!("decoding alphadome.{function}"))?;
    if out.results.len() != batch.items.len() {
        return Err(anyhow::anyhow!(
            "alphadome.{function} answered {} of {} items",
            out.results.len(),
            batch.items.len()
        )
        .into());
    }
    Ok(out.results)
}

impl Store {
    /// Claims a tenant's inbound messages, records their customers and the hourly count
    /// (round trip 1, whatever the number of messages). Results are in the items' order.
    pub async fn begin_inbound_batch(
        &self,
        tenant_id: TenantId,
        lease_seconds: u32,
        history_turns: u32,
        items: &[BeginInbound<'_>],
    ) -> Result<Vec<Inbound>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let batch = Batch {
            tenant_id,
            lease_seconds: Some(lease_seconds),
            history_turns: Some(history_turns),
            items,
        };
        // The claim commits asynchronously (migrations/0025_leaner_lambda_path.sql): the
        // record's flush covers it. A claim that may record replies is a record.
        let durability = if items.iter().any(|i| i.foreseen.is_some()) {
            Durability::Durable
        } else {
            Durability::Lazy
        };
        call_batch(self, "begin_inbound_batch", &batch, durability).await
    }

    /// Records outcomes and replies before sending (round trip 2). For each item, its
    /// replies in order: send only those with `send`.
    pub async fn record_replies_batch(
        &self,
        tenant_id: TenantId,
        items: &[RecordReplies<'_>],
    ) -> Result<Vec<Vec<RecordedReply>>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let batch = Batch {
            tenant_id,
            lease_seconds: None,
            history_turns: None,
            items,
        };
        let out: Vec<Recorded> =
            call_batch(self, "record_replies_batch", &batch, Durability::Durable).await?;
        Ok(out.into_iter().map(|r| r.replies).collect())
    }

    /// Gives back what the attempt `attempt` left undone for these messages, when the answer
    /// of one of its calls was lost and nothing was sent
    /// (migrations/0026_unsent_replies_given_back.sql): the replies it made `pending` and
    /// their messages become `retry`, and so do the messages it claimed but never recorded.
    /// What another attempt claimed or made `pending` stays as it is.
    pub async fn give_back_unsent(
        &self,
        tenant_id: TenantId,
        attempt: uuid::Uuid,
        wa_message_ids: &[&str],
    ) -> Result<GivenBack, StoreError> {
        if wa_message_ids.is_empty() {
            return Ok(GivenBack::default());
        }
        let input = serde_json::json!({
            "tenant_id": tenant_id,
            "attempt": attempt,
            "wa_message_ids": wa_message_ids,
        });
        let v = call(self, "give_back_unsent", &input).await?;
        Ok(serde_json::from_value(v).context("decoding alphadome.give_back_unsent")?)
    }

    /// Records what Graph said (round trip 3).
    pub async fn mark_sent_batch(
        &self,
        tenant_id: TenantId,
        items: &[MarkSent<'_>],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            tenant_id,
            lease_seconds: None,
            history_turns: None,
            items,
        };
        // A clean mark commits asynchronously; one that hands a send back stays durable.
        let durability = if items
            .iter()
            .flat_map(|i| i.results)
            .any(|r| r.status == "retry")
        {
            Durability::Durable
        } else {
            Durability::Lazy
        };
        let _: Vec<serde_json::Value> =
            call_batch(self, "mark_sent_batch", &batch, durability).await?;
        Ok(())
    }

    /// Applies a delivery status to the outgoing message it is about, with Meta's error and
    /// pricing, and counts it in the day's usage; returns whether the status moved.
    pub async fn apply_status(
        &self,
        tenant_id: TenantId,
        update: &StatusUpdate,
    ) -> Result<bool, StoreError> {
        let input = ApplyStatus::new(Some(tenant_id), update);
        let v = call(self, "apply_status", &input).await?;
        Ok(v.get("updated").and_then(|n| n.as_i64()).unwrap_or(0) > 0)
    }

    /// The webhook's write: every status of one tenant in a delivery, in one round trip
    /// (migrations/0023_webhook_statuses.sql). Each moves its outgoing message forward only;
    /// one whose wamid is not recorded yet is kept and applied when it is. Results in order.
    pub async fn apply_statuses(
        &self,
        tenant_id: TenantId,
        updates: &[&StatusUpdate],
    ) -> Result<Vec<StatusApplied>, StoreError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let items: Vec<ApplyStatus<'_>> =
            updates.iter().map(|u| ApplyStatus::new(None, u)).collect();
        let batch = Batch {
            tenant_id,
            lease_seconds: None,
            history_turns: None,
            items: &items,
        };
        call_batch(self, "apply_statuses", &batch, Durability::Durable).await
    }
}

impl<'a> ApplyStatus<'a> {
    fn new(tenant_id: Option<TenantId>, update: &'a StatusUpdate) -> Self {
        ApplyStatus {
            tenant_id,
            wa_message_id: &update.wa_message_id,
            status: update.status.as_str(),
            error_code: update.error_code,
            error_title: update.error_title.as_deref(),
            pricing_category: update.pricing_category.as_deref(),
            pricing_billable: update.pricing_billable,
            pricing_type: update.pricing_type.as_deref(),
            reply_id: update.reply_id,
        }
    }
}

/// What [`Store::give_back_unsent`] gave back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct GivenBack {
    /// Messages whose unsent replies went back to `retry`.
    pub replies: i64,
}

/// What became of one status the webhook wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct StatusApplied {
    /// 1 when the message's status moved forward, else 0.
    pub updated: i32,
    /// Kept until the message's wamid is recorded.
    pub pending: bool,
}
