//! What the responder and the webhook record outside the three hot-path steps, each only
//! when something went wrong (or, for the app-secret check, once per cache TTL): claims
//! given back, tenants flagged for the operator, and the questions `ask` needs answered.

use anyhow::Context as _;
use serde::Serialize;

use super::literal::{fetch_json, json_select};
use super::pipeline::call;
use super::{Store, StoreError};
use crate::domain::TenantId;

/// A problem with a tenant's configuration that no retry can fix: the operator must act
/// (`alphadome tenant show` and `tenant list` say so; `set-secret` or `rotate-key` clears it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantProblem {
    /// The tenant has no WhatsApp token: nothing can be sent.
    NoWhatsappToken,
    /// The sealed WhatsApp token does not open with any of the tenant's data keys.
    WhatsappTokenUnreadable,
    /// The tenant's own AI key does not open: its customers are handed over to a person.
    AiKeyUnreadable,
}

impl TenantProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoWhatsappToken => "no_whatsapp_token",
            Self::WhatsappTokenUnreadable => "whatsapp_token_unreadable",
            Self::AiKeyUnreadable => "ai_key_unreadable",
        }
    }

    /// What the operator should do, in one line.
    pub fn advice(code: &str) -> &'static str {
        match code {
            "no_whatsapp_token" | "whatsapp_token_unreadable" => {
                "replace the WhatsApp token: alphadome tenant set-secret T --whatsapp-token-file F"
            }
            "ai_key_unreadable" => {
                "replace the AI key: alphadome tenant set-secret T --ai-key-file F"
            }
            _ => "see the responder's logs",
        }
    }
}

impl StoreError {
    /// Whether the database refused the request for what it carries (a value it cannot
    /// store, a broken constraint, a row a policy refuses, an exception our SQL raised)
    /// rather than for being unreachable or busy: retrying the same input fails again.
    pub fn is_refusal(&self) -> bool {
        let Self::Unexpected(e) = self else {
            return matches!(self, Self::Conflict(_));
        };
        e.chain().any(|cause| {
            if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>() {
                let code = db.code().unwrap_or_default();
                code.starts_with("22")
                    || code.starts_with("23")
                    || code == "42501"
                    || code == "P0001"
            } else {
                cause.to_string().contains("NUL character")
            }
        })
    }
}

#[derive(Serialize)]
struct Release<'a> {
    tenant_id: TenantId,
    attempt: uuid::Uuid,
    wa_message_ids: &'a [&'a str],
}

#[derive(Serialize)]
struct Flag {
    tenant_id: TenantId,
    problem: &'static str,
}

impl Store {
    /// Gives the inbound messages the attempt `attempt` still holds (`processing`) back as
    /// `retry`, so the next attempt claims them at once instead of waiting out the lease. A
    /// claim another worker took over after the lease stays theirs
    /// (migrations/0027_release_by_attempt.sql).
    pub async fn release_claims(
        &self,
        tenant_id: TenantId,
        attempt: uuid::Uuid,
        wa_message_ids: &[&str],
    ) -> Result<(), StoreError> {
        if wa_message_ids.is_empty() {
            return Ok(());
        }
        call(
            self,
            "release_inbound_batch",
            &Release {
                tenant_id,
                attempt,
                wa_message_ids,
            },
        )
        .await?;
        Ok(())
    }

    /// Flags the tenant for the operator.
    pub async fn flag_tenant(
        &self,
        tenant_id: TenantId,
        problem: TenantProblem,
    ) -> Result<(), StoreError> {
        call(
            self,
            "flag_tenant",
            &Flag {
                tenant_id,
                problem: problem.as_str(),
            },
        )
        .await?;
        Ok(())
    }

    /// Whether any tenant has its own Meta app secret (through a narrow security-definer
    /// function: the answer is one boolean).
    pub async fn any_tenant_app_secret(&self) -> Result<bool, StoreError> {
        let sql = json_select("to_jsonb(alphadome.any_tenant_app_secret())");
        let v = fetch_json(self.pool(), &sql)
            .await
            .context("asking whether any tenant has its own app secret")?;
        Ok(v.and_then(|v| v.as_bool()).unwrap_or(false))
    }

    /// Replies counted against the tenant's cap in the current hour.
    pub async fn replies_this_hour(&self, tenant_id: TenantId) -> Result<i32, StoreError> {
        let mut tx = self.begin_for_tenant(tenant_id).await?;
        let n: Option<i32> = sqlx::query_scalar(
            "select replies from alphadome.bot_usage_counters \
             where bot_tenant_id = alphadome.current_tenant_id() \
               and hour_start = date_trunc('hour', now())",
        )
        .persistent(false)
        .fetch_optional(&mut *tx)
        .await
        .context("reading the hourly counter")?;
        tx.commit().await.context("committing")?;
        Ok(n.unwrap_or(0))
    }
}
