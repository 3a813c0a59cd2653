//! The responder's hot path: one round trip per step, each a SQL function that acts for the
//! job's tenant (see migrations/0006_message_pipeline.sql).

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::literal::{fetch_json, json_select, quote_literal};
use super::{Store, StoreError};
use crate::domain::{CustomerId, EntryId, TenantId};

/// Input of `alphadome.begin_inbound`.
#[derive(Debug, Serialize)]
pub struct BeginInbound<'a> {
    pub tenant_id: TenantId,
    pub wa_message_id: &'a str,
    pub phone: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub profile_name: Option<&'a str>,
    pub message_type: &'a str,
    pub text: Option<&'a str>,
    /// `stop`, `start` or `human`.
    pub intent: Option<&'static str>,
    pub count_reply: bool,
    pub with_history: bool,
    pub history_turns: u32,
    pub lease_seconds: u32,
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
#[derive(Debug, Serialize)]
pub struct RecordReplies<'a> {
    pub tenant_id: TenantId,
    pub wa_message_id: &'a str,
    pub user_id: Option<CustomerId>,
    pub inbound_status: &'static str,
    pub note: Option<&'static str>,
    pub reply_source: Option<&'static str>,
    pub matched_entry_id: Option<EntryId>,
    pub ai_prompt_tokens: Option<u32>,
    pub ai_completion_tokens: Option<u32>,
    pub pause_minutes: Option<i32>,
    pub replies: &'a [PlannedReply],
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
struct MarkSent<'a> {
    tenant_id: TenantId,
    wa_message_id: &'a str,
    results: &'a [SendResult],
    token_invalid: bool,
}

#[derive(Serialize)]
struct ApplyStatus<'a> {
    tenant_id: TenantId,
    wa_message_id: &'a str,
    status: &'a str,
    error_code: Option<i64>,
}

async fn call<T: Serialize>(
    store: &Store,
    function: &'static str,
    input: &T,
) -> Result<serde_json::Value, StoreError> {
    let json = serde_json::to_string(input).context("encoding the call")?;
    let expr = format!("alphadome.{function}({}::jsonb)", quote_literal(&json)?);
    let sql = json_select(&expr);
    let out = fetch_json(store.pool(), &sql)
        .await
        .with_context(|| format!("calling alphadome.{function}"))?;
    Ok(out.unwrap_or(serde_json::Value::Null))
}

impl Store {
    /// Claims an inbound message, records its customer and the hourly count (round trip 1).
    pub async fn begin_inbound(&self, input: &BeginInbound<'_>) -> Result<Inbound, StoreError> {
        let v = call(self, "begin_inbound", input).await?;
        Ok(serde_json::from_value(v).context("decoding begin_inbound")?)
    }

    /// Records the outcome and the replies before sending (round trip 2).
    pub async fn record_replies(
        &self,
        input: &RecordReplies<'_>,
    ) -> Result<Vec<RecordedReply>, StoreError> {
        let v = call(self, "record_replies", input).await?;
        let r: Recorded = serde_json::from_value(v).context("decoding record_replies")?;
        Ok(r.replies)
    }

    /// Records what Graph said (round trip 3).
    pub async fn mark_sent(
        &self,
        tenant_id: TenantId,
        inbound_wa_message_id: &str,
        results: &[SendResult],
        token_invalid: bool,
    ) -> Result<(), StoreError> {
        call(
            self,
            "mark_sent",
            &MarkSent {
                tenant_id,
                wa_message_id: inbound_wa_message_id,
                results,
                token_invalid,
            },
        )
        .await?;
        Ok(())
    }

    /// Applies a delivery status to the outgoing message it is about; returns whether it moved.
    pub async fn apply_status(
        &self,
        tenant_id: TenantId,
        wa_message_id: &str,
        status: &str,
        error_code: Option<i64>,
    ) -> Result<bool, StoreError> {
        let v = call(
            self,
            "apply_status",
            &ApplyStatus {
                tenant_id,
                wa_message_id,
                status,
                error_code,
            },
        )
        .await?;
        Ok(v.get("updated").and_then(|n| n.as_i64()).unwrap_or(0) > 0)
    }
}
