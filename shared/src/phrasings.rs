//! `alphadome faq expand`: asks the tenant's AI model, once per active FAQ or canned entry, for
//! other ways customers ask that entry's question (English, Swahili, Sheng, WhatsApp
//! shorthand), and stores them as the entry's `generated` phrasings, which the matcher uses
//! like the question and the owner can review and delete.
//!
//! This runs offline, from the operator's CLI: the answer path never calls a model for
//! matching. A model answer that does not parse skips its entry (nothing of it is stored);
//! each entry's phrasings are stored in one transaction.

use std::collections::HashSet;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;

use crate::app::App;
use crate::crypto::{envelope_version, SecretColumn};
use crate::domain::{EntryId, TenantId};
use crate::openai::{AiError, ChatMessage, ChatRequest, Role};
use crate::store::{EntryRecord, PhrasingSource};

/// At most this many generated phrasings are kept per entry and run.
pub const MAX_NEW_PER_ENTRY: usize = 12;
/// A phrasing longer than this is not how a customer asks on WhatsApp.
pub const MAX_PHRASING_CHARS: usize = 160;
/// The answer is shown to the model for context, cut to this length.
const ANSWER_CONTEXT_CHARS: usize = 600;
/// One model call, retries included.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

const SYSTEM_PROMPT: &str = "You help a small Kenyan business answer WhatsApp messages. \
Given one question from its FAQ, write other ways its customers ask that same question: \
in English, in Swahili, in Sheng, mixed, and in WhatsApp shorthand (\"hw much\", \"u\", \"pls\"), \
some short and informal, some with a typo. Keep the meaning exactly: only messages whose \
answer is this entry's answer. No greetings, no names, no numbers that are not in the question. \
Answer with a JSON object only, no prose and no code fence: {\"phrasings\": [\"...\", \"...\"]} \
with at most 12 strings.";

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error("no such tenant")]
    NoTenant,
    #[error("no AI key: the tenant has none and the platform's (OPENAI_API_KEY) is not set")]
    NoKey,
    #[error("the tenant's AI key cannot be opened: {0}")]
    KeyUnreadable(String),
    /// The provider refused for good (bad key, no access to the model): every further entry
    /// would be refused too.
    #[error("{0}; nothing more was asked")]
    Refused(AiError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What happened to one entry.
#[derive(Debug, Clone, Serialize)]
pub struct EntryExpansion {
    pub entry_id: EntryId,
    pub question: String,
    /// Phrasings stored (or, in a dry run, that would be).
    pub added: Vec<String>,
    /// Why nothing was stored for this entry, when it was skipped.
    pub skipped: Option<String>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ExpandReport {
    pub tenant_id: TenantId,
    pub model: String,
    pub dry_run: bool,
    pub entries: Vec<EntryExpansion>,
    /// Phrasings added over all entries.
    pub added: usize,
    /// Entries skipped.
    pub skipped: usize,
}

/// Asks the model for phrasings of every active FAQ and canned entry of `tenant` and stores
/// the new ones (unless `dry_run`). The tenant's own AI key is used when it has one, else the
/// platform's; the model is the tenant's default template's, else the deployment's.
pub async fn expand_phrasings(
    app: &App,
    tenant: TenantId,
    dry_run: bool,
) -> Result<ExpandReport, ExpandError> {
    let ctx = app
        .store
        .load_tenant_context(tenant)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}"))?
        .ok_or(ExpandError::NoTenant)?;
    let key = ai_key(app, tenant, ctx.tenant.ai_api_key.as_deref()).await?;
    let model = ctx
        .template
        .as_ref()
        .and_then(|t| t.model.as_deref())
        .filter(|m| !m.trim().is_empty())
        .unwrap_or(&app.settings.openai_model)
        .to_owned();
    let client = app.openai();
    let mut report = ExpandReport {
        tenant_id: tenant,
        model: model.clone(),
        dry_run,
        entries: Vec::new(),
        added: 0,
        skipped: 0,
    };
    for entry in ctx
        .training
        .iter()
        .filter(|e| e.data_type == "faq" || e.data_type == "canned")
    {
        let messages = prompt(&ctx.tenant.client_name, entry);
        let req = ChatRequest {
            model: &model,
            messages: &messages,
            max_tokens: 700,
            temperature: 0.7,
        };
        let outcome = match client.complete(&key, &req, CALL_DEADLINE).await {
            Ok(reply) => parse_phrasings(&reply.text)
                .map(|found| select_new(entry, found))
                .map_err(str::to_owned),
            Err(e @ AiError::Rejected { .. }) => return Err(ExpandError::Refused(e)),
            Err(e) => Err(e.to_string()),
        };
        let mut done = EntryExpansion {
            entry_id: entry.id,
            question: entry.question.clone(),
            added: Vec::new(),
            skipped: None,
        };
        match outcome {
            Ok(new) if dry_run || new.is_empty() => done.added = new,
            Ok(new) => {
                done.added = app
                    .store
                    .add_phrasings(tenant, entry.id, &new, PhrasingSource::Generated)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:#}"))?;
            }
            Err(why) => {
                tracing::warn!(entry_id = %entry.id.0, reason = %why, "entry skipped by faq expand");
                done.skipped = Some(why);
                report.skipped += 1;
            }
        }
        report.added += done.added.len();
        report.entries.push(done);
    }
    Ok(report)
}

async fn ai_key(
    app: &App,
    tenant: TenantId,
    sealed: Option<&str>,
) -> Result<SecretString, ExpandError> {
    let Some(sealed) = sealed else {
        return app.platform_ai_key().cloned().ok_or(ExpandError::NoKey);
    };
    let version =
        envelope_version(sealed).map_err(|e| ExpandError::KeyUnreadable(e.to_string()))?;
    let ring = app
        .keys
        .ring_with_version(tenant, version)
        .await
        .map_err(|e| ExpandError::KeyUnreadable(format!("{e:#}")))?;
    ring.decrypt(SecretColumn::AiApiKey, sealed)
        .map_err(|e| ExpandError::KeyUnreadable(e.to_string()))
}

fn prompt(business: &str, entry: &EntryRecord) -> Vec<ChatMessage> {
    let answer: String = entry.answer.chars().take(ANSWER_CONTEXT_CHARS).collect();
    let user = serde_json::json!({
        "business": business,
        "question": entry.question,
        "answer": answer,
        "already_known": entry.phrasings,
    });
    vec![
        ChatMessage {
            role: Role::System,
            content: SYSTEM_PROMPT.to_owned(),
        },
        ChatMessage {
            role: Role::User,
            content: user.to_string(),
        },
    ]
}

/// The phrasings of a model answer: exactly `{"phrasings": [strings]}` (a surrounding code
/// fence is tolerated). Anything else is refused with a reason that quotes none of it.
pub fn parse_phrasings(text: &str) -> Result<Vec<String>, &'static str> {
    let mut body = text.trim();
    if let Some(rest) = body.strip_prefix("```") {
        body = rest.trim_start_matches("json").trim();
        body = body.strip_suffix("```").unwrap_or(body).trim();
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|_| "the model's answer is not JSON")?;
    let list = value
        .as_object()
        .and_then(|o| o.get("phrasings"))
        .and_then(|p| p.as_array())
        .ok_or("the model's answer has no \"phrasings\" list")?;
    list.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or("the model's \"phrasings\" holds something other than text")
        })
        .collect()
}

/// The model's phrasings worth adding: whitespace tidied, sensible lengths, none the entry
/// already has (its question included, case-insensitively), at most [`MAX_NEW_PER_ENTRY`].
pub fn select_new(entry: &EntryRecord, found: Vec<String>) -> Vec<String> {
    let mut seen: HashSet<String> = entry
        .phrasings
        .iter()
        .chain(std::iter::once(&entry.question))
        .map(|p| p.trim().to_lowercase())
        .collect();
    let mut out = Vec::new();
    for p in found {
        let p = p.split_whitespace().collect::<Vec<_>>().join(" ");
        let chars = p.chars().count();
        if !(2..=MAX_PHRASING_CHARS).contains(&chars) || !p.chars().any(char::is_alphabetic) {
            continue;
        }
        if seen.insert(p.to_lowercase()) {
            out.push(p);
        }
        if out.len() == MAX_NEW_PER_ENTRY {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(phrasings: &[&str]) -> EntryRecord {
        EntryRecord {
            id: EntryId::new(),
            data_type: "faq".into(),
            question: "How much is a guitar?".into(),
            answer: "From KES 8,500.".into(),
            category: None,
            priority: 0,
            phrasings: phrasings.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_json_object_with_a_phrasings_list_parses_and_anything_else_is_refused() {
        assert_eq!(
            parse_phrasings(r#"{"phrasings": ["bei ya gitaa", "hw much guitar"]}"#).unwrap(),
            ["bei ya gitaa", "hw much guitar"]
        );
        assert_eq!(
            parse_phrasings("```json\n{\"phrasings\": [\"a b\"]}\n```").unwrap(),
            ["a b"]
        );
        assert!(parse_phrasings("Sure! Here are some: bei ya gitaa").is_err());
        assert!(parse_phrasings(r#"["bei ya gitaa"]"#).is_err());
        assert!(parse_phrasings(r#"{"phrasings": ["ok", 3]}"#).is_err());
        assert!(parse_phrasings(r#"{"phrasings": "bei ya gitaa"}"#).is_err());
    }

    #[test]
    fn new_phrasings_are_tidied_deduplicated_and_capped() {
        let e = entry(&["Bei ya gitaa"]);
        let found = vec![
            "  bei   ya GITAA ".to_string(),
            "how much is a guitar?".to_string(),
            "hw much  guitar".to_string(),
            "HW MUCH GUITAR".to_string(),
            "?".to_string(),
            "x".repeat(MAX_PHRASING_CHARS + 1),
        ];
        assert_eq!(select_new(&e, found), ["hw much guitar"]);
        let many: Vec<String> = (0..30).map(|i| format!("guitar price {i}")).collect();
        assert_eq!(select_new(&e, many).len(), MAX_NEW_PER_ENTRY);
    }
}
