//! The owner's usage page: the last 30 days from `alphadome.bot_usage_daily` (written by the
//! pipeline's own calls) and this month's totals against the operator's budgets, read as the
//! owner under row-level security like every dashboard page.

use anyhow::Context;
use chrono::NaiveDate;
use sqlx::PgPool;

use super::auth::Owner;
use super::overview::begin_as_owner;

/// One day of one business (all its numbers added up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayUsage {
    pub day: Option<NaiveDate>,
    pub received: i64,
    pub faq: i64,
    pub ai: i64,
    pub handovers: i64,
    pub ai_tokens: i64,
    pub failed_sends: i64,
}

/// What the usage page shows.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// The last 30 days, oldest first, one entry per day (zero days included).
    pub days: Vec<DayUsage>,
    /// This month so far.
    pub month: DayUsage,
    pub month_messages_out: i64,
    pub ai_budget: Option<i64>,
    pub message_budget: Option<i64>,
}

impl Usage {
    /// The larger share of a budget used this month, in percent (`None`: no budget).
    pub fn budget_percent(&self) -> Option<i64> {
        let ai = self
            .ai_budget
            .map(|b| self.month.ai_tokens.saturating_mul(100) / b.max(1));
        let messages = self
            .message_budget
            .map(|b| self.month_messages_out.saturating_mul(100) / b.max(1));
        ai.into_iter().chain(messages).max()
    }
}

/// Reads the usage page as `owner`.
pub async fn read_usage(pool: &PgPool, owner: &Owner) -> anyhow::Result<Usage> {
    let mut tx = begin_as_owner(pool, owner).await?;
    let counter = |k: &str| format!("coalesce(sum((u.counts ->> '{k}')::bigint), 0)::bigint");
    let sql = format!(
        "select d.day::date, {}, {}, {}, {}, {} + {}, {}
           from generate_series((now() at time zone 'utc')::date - 29,
                                (now() at time zone 'utc')::date, interval '1 day') d(day)
           left join alphadome.bot_usage_daily u on u.day = d.day::date
          group by d.day order by d.day",
        counter("received"),
        counter("reply:faq"),
        counter("reply:ai"),
        counter("handovers"),
        counter("ai_prompt_tokens"),
        counter("ai_completion_tokens"),
        counter("failed_sends"),
    );
    type Row = (NaiveDate, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Row> = sqlx::query_as(&sql)
        .persistent(false)
        .fetch_all(&mut *tx)
        .await
        .context("reading the owner's usage")?;
    let days: Vec<DayUsage> = rows
        .into_iter()
        .map(
            |(day, received, faq, ai, handovers, ai_tokens, failed_sends)| DayUsage {
                day: Some(day),
                received,
                faq,
                ai,
                handovers,
                ai_tokens,
                failed_sends,
            },
        )
        .collect();
    let month_sql = format!(
        "select {}, {}, {}, {}, {} + {}, {}, {}
           from alphadome.bot_usage_daily u
          where u.day >= date_trunc('month', now() at time zone 'utc')::date",
        counter("received"),
        counter("reply:faq"),
        counter("reply:ai"),
        counter("handovers"),
        counter("ai_prompt_tokens"),
        counter("ai_completion_tokens"),
        counter("failed_sends"),
        counter("messages_out"),
    );
    let (received, faq, ai, handovers, ai_tokens, failed_sends, messages_out): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(&month_sql)
        .persistent(false)
        .fetch_one(&mut *tx)
        .await
        .context("reading this month's usage")?;
    let budgets: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
        "select sum(b.monthly_ai_tokens)::bigint, sum(b.monthly_messages)::bigint
           from alphadome.bot_budgets b",
    )
    .persistent(false)
    .fetch_optional(&mut *tx)
    .await
    .context("reading the budgets")?;
    tx.commit()
        .await
        .context("ending the owner's transaction")?;
    let (ai_budget, message_budget) = budgets.unwrap_or_default();
    Ok(Usage {
        days,
        month: DayUsage {
            day: None,
            received,
            faq,
            ai,
            handovers,
            ai_tokens,
            failed_sends,
        },
        month_messages_out: messages_out,
        ai_budget,
        message_budget,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_percent_is_the_larger_share_used() {
        let mut u = Usage {
            month: DayUsage {
                ai_tokens: 850,
                ..Default::default()
            },
            month_messages_out: 10,
            ai_budget: Some(1_000),
            message_budget: Some(100),
            ..Default::default()
        };
        assert_eq!(u.budget_percent(), Some(85));
        u.ai_budget = None;
        assert_eq!(u.budget_percent(), Some(10));
        u.message_budget = None;
        assert_eq!(u.budget_percent(), None);
    }
}
