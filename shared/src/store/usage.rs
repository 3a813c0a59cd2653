//! Usage per tenant per day (written by the pipeline's own calls, see
//! migrations/0012_usage.sql), cost estimates from the operator's price table, monthly
//! budgets, and the last failed deliveries: what `alphadome usage` and `tenant show` read.

use anyhow::Context as _;
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::BTreeMap;

use super::{Store, StoreError};
use crate::domain::TenantId;

/// Replies by how they were produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepliesBySource {
    pub faq: i64,
    pub canned: i64,
    pub ai: i64,
    pub fallback: i64,
    pub escalation: i64,
    pub person: i64,
    pub control: i64,
}

/// One tenant's usage on one UTC day (or, with `day` = "total", over a range).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageDay {
    pub tenant_id: Option<TenantId>,
    pub day: String,
    pub received: i64,
    pub replies: RepliesBySource,
    pub handovers: i64,
    pub cap_hits: i64,
    pub opt_outs: i64,
    pub ai_calls: i64,
    pub ai_prompt_tokens: i64,
    pub ai_completion_tokens: i64,
    pub ai_cached_tokens: i64,
    pub failed_sends: i64,
    /// An ESTIMATE from `alphadome.platform_prices`, not a bill.
    pub est_cost_usd: f64,
    pub messages_out: i64,
    pub received_by_type: BTreeMap<String, i64>,
    pub failed_by_code: BTreeMap<String, i64>,
    pub outbound_by_category: BTreeMap<String, i64>,
    pub billable_by_category: BTreeMap<String, i64>,
    /// Every counter as stored, for fields not named above.
    pub counts: BTreeMap<String, i64>,
}

/// Prices for estimates: item → USD (per million tokens for AI and transcription tokens, per
/// second for `transcription_seconds`, per billable message for `meta:<category>`).
pub type Prices = BTreeMap<String, f64>;

impl UsageDay {
    /// Builds a day from its stored counters, estimating its cost with `prices`.
    #[must_use]
    pub fn from_counts(
        tenant_id: Option<TenantId>,
        day: String,
        counts: BTreeMap<String, i64>,
        prices: &Prices,
    ) -> Self {
        let n = |k: &str| counts.get(k).copied().unwrap_or(0);
        let with_prefix = |p: &str| -> BTreeMap<String, i64> {
            counts
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(p).map(|rest| (rest.to_owned(), *v)))
                .collect()
        };
        let price = |k: &str| prices.get(k).copied().unwrap_or(0.0);
        let (prompt, cached, completion) = (
            n("ai_prompt_tokens"),
            n("ai_cached_tokens"),
            n("ai_completion_tokens"),
        );
        let billable = with_prefix("billable:");
        // Cached tokens are part of the prompt tokens, at their own (lower) price.
        let mut cost = ((prompt - cached).max(0) as f64 * price("ai_prompt_tokens")
            + cached as f64 * price("ai_cached_tokens")
            + completion as f64 * price("ai_completion_tokens"))
            / 1_000_000.0;
        // Voice notes: by tokens when the server reported them that day, else by duration
        // (a transcription reports one or the other; a day mixing both is under-counted).
        let (t_in, t_out) = (
            n("transcription_input_tokens"),
            n("transcription_output_tokens"),
        );
        if t_in + t_out > 0 {
            cost += (t_in as f64 * price("transcription_input_tokens")
                + t_out as f64 * price("transcription_output_tokens"))
                / 1_000_000.0;
        } else {
            cost += n("transcription_seconds") as f64 * price("transcription_seconds");
        }
        for (category, count) in &billable {
            cost += *count as f64 * price(&format!("meta:{category}"));
        }
        Self {
            tenant_id,
            day,
            received: n("received"),
            replies: RepliesBySource {
                faq: n("reply:faq"),
                canned: n("reply:canned"),
                ai: n("reply:ai"),
                fallback: n("reply:fallback"),
                escalation: n("reply:escalation"),
                person: n("reply:person"),
                control: n("reply:control"),
            },
            handovers: n("handovers"),
            cap_hits: n("cap_hits"),
            opt_outs: n("opt_outs"),
            ai_calls: n("ai_calls"),
            ai_prompt_tokens: prompt,
            ai_completion_tokens: completion,
            ai_cached_tokens: cached,
            failed_sends: n("failed_sends"),
            est_cost_usd: (cost * 1_000_000.0).round() / 1_000_000.0,
            messages_out: n("messages_out"),
            received_by_type: with_prefix("received:"),
            failed_by_code: with_prefix("failed:"),
            outbound_by_category: with_prefix("outbound:"),
            billable_by_category: billable,
            counts,
        }
    }
}

/// Adds counters key by key.
pub fn add_counts(into: &mut BTreeMap<String, i64>, from: &BTreeMap<String, i64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// A tenant's monthly budgets and this month's use of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    pub monthly_ai_tokens: Option<i64>,
    pub monthly_messages: Option<i64>,
    pub ai_tokens_used: i64,
    pub messages_used: i64,
    /// The larger use in percent of its budget (none without a budget).
    pub percent: Option<i64>,
    /// 100 % reached: the AI is stopped for this tenant until next month.
    pub ai_stopped: bool,
    /// The 80 % notice went out this month.
    pub notified_this_month: bool,
}

/// One failed outgoing message, newest first in [`Store::recent_failures`].
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct FailedSend {
    pub at: chrono::DateTime<chrono::Utc>,
    pub reply_source: Option<String>,
    pub error_code: Option<i32>,
    pub error_title: Option<String>,
}

/// Last days' totals per tenant, for `tenant list`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RecentUsage {
    pub tenant_id: TenantId,
    pub messages: i64,
    pub ai_tokens: i64,
}

/// Budgets, this month's AI tokens and messages, and whether the 80 % notice went out.
type BudgetRow = (Option<i64>, Option<i64>, i64, i64, bool);

fn to_counts(v: serde_json::Value) -> BTreeMap<String, i64> {
    match v {
        serde_json::Value::Object(m) => m
            .into_iter()
            .filter_map(|(k, v)| v.as_i64().map(|n| (k, n)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

impl Store {
    /// The operator's price table for estimates.
    pub async fn prices(&self) -> Result<Prices, StoreError> {
        let rows: Vec<(String, f64)> =
            sqlx::query_as("select item, usd::float8 from alphadome.platform_prices")
                .persistent(false)
                .fetch_all(self.pool())
                .await
                .context("reading alphadome.platform_prices")?;
        Ok(rows.into_iter().collect())
    }

    /// Usage rows per tenant per day in `[from, to]`, ordered by tenant then day (the
    /// operator's view: every tenant, or one).
    pub async fn usage_days(
        &self,
        tenant: Option<TenantId>,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<UsageDay>, StoreError> {
        let prices = self.prices().await?;
        let rows: Vec<(TenantId, NaiveDate, serde_json::Value)> = sqlx::query_as(
            "select bot_tenant_id, day, counts from alphadome.bot_usage_daily
              where ($1::uuid is null or bot_tenant_id = $1) and day between $2 and $3
              order by bot_tenant_id, day",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .persistent(false)
        .fetch_all(self.pool())
        .await
        .context("reading alphadome.bot_usage_daily")?;
        Ok(rows
            .into_iter()
            .map(|(t, day, counts)| {
                UsageDay::from_counts(Some(t), day.to_string(), to_counts(counts), &prices)
            })
            .collect())
    }

    /// Sets a tenant's monthly budgets (None: no limit). Takes effect on the next batch.
    pub async fn set_budget(
        &self,
        tenant: TenantId,
        ai_tokens: Option<i64>,
        messages: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into alphadome.bot_budgets (bot_tenant_id, monthly_ai_tokens, monthly_messages)
             values ($1, $2, $3)
             on conflict (bot_tenant_id) do update
                set monthly_ai_tokens = excluded.monthly_ai_tokens,
                    monthly_messages = excluded.monthly_messages,
                    updated_at = now()",
        )
        .bind(tenant)
        .bind(ai_tokens)
        .bind(messages)
        .persistent(false)
        .execute(self.pool())
        .await
        .context("setting the budget")?;
        Ok(())
    }

    /// A tenant's budgets and this month's use (None: no budget set).
    pub async fn budget_status(
        &self,
        tenant: TenantId,
    ) -> Result<Option<BudgetStatus>, StoreError> {
        let row: Option<BudgetRow> = sqlx::query_as(
            "select b.monthly_ai_tokens, b.monthly_messages,
                    coalesce(sum(coalesce((u.counts ->> 'ai_prompt_tokens')::bigint, 0)
                                 + coalesce((u.counts ->> 'ai_completion_tokens')::bigint, 0)), 0)::bigint,
                    coalesce(sum(coalesce((u.counts ->> 'messages_out')::bigint, 0)), 0)::bigint,
                    coalesce(b.notified_month = date_trunc('month', now() at time zone 'utc')::date, false)
               from alphadome.bot_budgets b
               left join alphadome.bot_usage_daily u
                 on u.bot_tenant_id = b.bot_tenant_id
                and u.day >= date_trunc('month', now() at time zone 'utc')::date
              where b.bot_tenant_id = $1
              group by b.bot_tenant_id, b.monthly_ai_tokens, b.monthly_messages, b.notified_month",
        )
        .bind(tenant)
        .persistent(false)
        .fetch_optional(self.pool())
        .await
        .context("reading the budget")?;
        Ok(
            row.map(|(ai_budget, msg_budget, ai_used, msgs_used, notified)| {
                let ratio = |used: i64, budget: Option<i64>| budget.map(|b| used as f64 / b as f64);
                let ratio = match (ratio(ai_used, ai_budget), ratio(msgs_used, msg_budget)) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                BudgetStatus {
                    monthly_ai_tokens: ai_budget,
                    monthly_messages: msg_budget,
                    ai_tokens_used: ai_used,
                    messages_used: msgs_used,
                    percent: ratio.map(|r| (r * 100.0).floor() as i64),
                    ai_stopped: ratio.is_some_and(|r| r >= 1.0),
                    notified_this_month: notified,
                }
            }),
        )
    }

    /// The tenant's last failed outgoing messages, newest first.
    pub async fn recent_failures(
        &self,
        tenant: TenantId,
        limit: i64,
    ) -> Result<Vec<FailedSend>, StoreError> {
        Ok(sqlx::query_as(
            "select coalesce(status_updated_at, created_at) as at, reply_source, error_code, error_title
               from public.conversations
              where bot_tenant_id = $1 and direction = 'outgoing' and status = 'failed'
              order by coalesce(status_updated_at, created_at) desc
              limit $2",
        )
        .bind(tenant)
        .bind(limit)
        .persistent(false)
        .fetch_all(self.pool())
        .await
        .context("reading failed sends")?)
    }

    /// Messages (received + sent) and AI tokens per tenant over the last `days` days.
    pub async fn recent_usage(&self, days: i32) -> Result<Vec<RecentUsage>, StoreError> {
        Ok(sqlx::query_as(
            "select bot_tenant_id as tenant_id,
                    coalesce(sum(coalesce((counts ->> 'received')::bigint, 0)
                                 + coalesce((counts ->> 'messages_out')::bigint, 0)), 0)::bigint as messages,
                    coalesce(sum(coalesce((counts ->> 'ai_prompt_tokens')::bigint, 0)
                                 + coalesce((counts ->> 'ai_completion_tokens')::bigint, 0)), 0)::bigint as ai_tokens
               from alphadome.bot_usage_daily
              where day > (now() at time zone 'utc')::date - $1
              group by bot_tenant_id",
        )
        .bind(days)
        .persistent(false)
        .fetch_all(self.pool())
        .await
        .context("reading recent usage")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        [
            ("ai_prompt_tokens", 0.15),
            ("ai_cached_tokens", 0.075),
            ("ai_completion_tokens", 0.60),
            ("transcription_input_tokens", 3.0),
            ("transcription_output_tokens", 5.0),
            ("transcription_seconds", 0.0001),
            ("meta:utility", 0.004),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn day(counts: &[(&str, i64)]) -> UsageDay {
        let counts = counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        UsageDay::from_counts(None, "2026-11-30".into(), counts, &prices())
    }

    #[test]
    fn voice_notes_are_priced_by_tokens_or_else_by_seconds() {
        let tokens = day(&[
            ("transcription_input_tokens", 1_000),
            ("transcription_output_tokens", 200),
            ("transcription_seconds", 60),
        ]);
        assert!((tokens.est_cost_usd - (1_000.0 * 3.0 + 200.0 * 5.0) / 1e6).abs() < 1e-9);
        let seconds = day(&[("transcription_seconds", 60)]);
        assert!((seconds.est_cost_usd - 0.006).abs() < 1e-9);
    }

    #[test]
    fn ai_tokens_and_billable_messages_add_up() {
        let d = day(&[
            ("ai_prompt_tokens", 80),
            ("ai_cached_tokens", 40),
            ("ai_completion_tokens", 30),
            ("billable:utility", 1),
        ]);
        let want = (40.0 * 0.15 + 40.0 * 0.075 + 30.0 * 0.60) / 1e6 + 0.004;
        assert!((d.est_cost_usd - want).abs() < 1e-9, "{}", d.est_cost_usd);
    }
}
