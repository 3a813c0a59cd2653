//! `alphadome usage` output: one row per tenant per day, then one total row per tenant, as
//! text or CSV (the JSON array holds the daily rows only). Costs are estimates from the
//! operator's price table (`alphadome.platform_prices`).

use alphadome::store::{add_counts, Prices, UsageDay};
use std::collections::BTreeMap;

/// One total per tenant, over the days given (in their order of first appearance).
#[must_use]
pub fn totals(days: &[UsageDay], prices: &Prices) -> Vec<UsageDay> {
    let mut order = Vec::new();
    let mut sums: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for d in days {
        let key = d.tenant_id.map(|t| t.to_string()).unwrap_or_default();
        if !sums.contains_key(&key) {
            order.push((key.clone(), d.tenant_id));
        }
        add_counts(sums.entry(key).or_default(), &d.counts);
    }
    order
        .into_iter()
        .map(|(key, tenant)| {
            UsageDay::from_counts(
                tenant,
                "total".into(),
                sums.remove(&key).unwrap_or_default(),
                prices,
            )
        })
        .collect()
}

const COLUMNS: [&str; 21] = [
    "tenant_id",
    "day",
    "received",
    "faq",
    "canned",
    "ai",
    "fallback",
    "escalation",
    "person",
    "control",
    "handovers",
    "cap_hits",
    "opt_outs",
    "ai_calls",
    "ai_prompt_tokens",
    "ai_completion_tokens",
    "ai_cached_tokens",
    "failed_sends",
    "messages_out",
    "billable_out",
    "est_cost_usd",
];

fn cells(d: &UsageDay) -> Vec<String> {
    let r = &d.replies;
    let mut v = vec![
        d.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        d.day.clone(),
    ];
    v.extend(
        [
            d.received,
            r.faq,
            r.canned,
            r.ai,
            r.fallback,
            r.escalation,
            r.person,
            r.control,
            d.handovers,
            d.cap_hits,
            d.opt_outs,
            d.ai_calls,
            d.ai_prompt_tokens,
            d.ai_completion_tokens,
            d.ai_cached_tokens,
            d.failed_sends,
            d.messages_out,
            d.billable_by_category.values().sum(),
        ]
        .iter()
        .map(i64::to_string),
    );
    v.push(format!("{:.6}", d.est_cost_usd));
    v
}

/// CSV: a header, the daily rows, then one `total` row per tenant.
#[must_use]
pub fn to_csv(days: &[UsageDay], prices: &Prices) -> String {
    let mut s = COLUMNS.join(",");
    s.push('\n');
    for d in days.iter().chain(totals(days, prices).iter()) {
        s.push_str(&cells(d).join(","));
        s.push('\n');
    }
    s
}

/// A table for people, with the estimate labelled as such.
#[must_use]
pub fn to_text(days: &[UsageDay], prices: &Prices) -> String {
    if days.is_empty() {
        return "no usage recorded in this period".into();
    }
    let mut s = format!(
        "{:<36}  {:<10}  {:>6}  {:>6}  {:>5}  {:>5}  {:>6}  {:>5}  {:>5}  {:>10}  {:>6}  {:>10}\n",
        "tenant",
        "day",
        "recv",
        "sent",
        "faq",
        "ai",
        "hand",
        "cap",
        "fail",
        "ai tokens",
        "bill",
        "est. USD*"
    );
    for d in days.iter().chain(totals(days, prices).iter()) {
        s.push_str(&format!(
            "{:<36}  {:<10}  {:>6}  {:>6}  {:>5}  {:>5}  {:>6}  {:>5}  {:>5}  {:>10}  {:>6}  {:>10.4}\n",
            d.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
            d.day,
            d.received,
            d.messages_out,
            d.replies.faq + d.replies.canned,
            d.replies.ai,
            d.handovers,
            d.cap_hits,
            d.failed_sends,
            d.ai_prompt_tokens + d.ai_completion_tokens,
            d.billable_by_category.values().sum::<i64>(),
            d.est_cost_usd,
        ));
    }
    s.push_str("* estimates from alphadome.platform_prices (AI per million tokens, Meta per billable message); real bills come from OpenAI and Meta");
    s
}
