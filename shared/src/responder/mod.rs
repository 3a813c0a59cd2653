//! The responder: answers each queued message as its tenant, sends the reply with that
//! tenant's token, and logs both messages under the tenant's brand — exactly once.
//!
//! Per message (context cached): `begin_inbound` claims it (round trip 1), the policy decides,
//! `record_replies` writes the replies as pending before anything is sent (2), Graph sends,
//! `mark_sent` records the outcome (3). A retryable failure gives the message back so the
//! queue's retry claims it again; a reply that may already have gone out is never re-sent.

mod context;
pub mod policy;

pub use context::TenantContext;

use chrono::{TimeZone, Utc};
use futures_util::future::{BoxFuture, FutureExt};
use moka::future::Cache;
use secrecy::SecretString;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use crate::crypto::{envelope_version, SecretColumn};
use crate::domain::{mask_phone, PhoneNumber, TenantId};
use crate::intent::{detect_control_intent, ControlIntent};
use crate::job::{Job, JobKind};
use crate::keys::KeyProvider;
use crate::openai::{ChatRequest, OpenAiClient};
use crate::store::{BeginInbound, PlannedReply, RecordReplies, SendResult, Store};
use crate::webhook::{InboundMessage, StatusUpdate};
use crate::whatsapp::{Recipient, SendError, WhatsAppClient};
use policy::{Decision, Facts, Source};

/// Why a job must be tried again (the queue retries it). No message content in the text.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Retry(pub String);

impl From<crate::store::StoreError> for Retry {
    fn from(e: crate::store::StoreError) -> Self {
        Retry(format!("database: {e:#}"))
    }
}

/// How a job ended (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Replies sent (their sources, in order).
    Replied(Vec<&'static str>),
    /// No reply, for this reason.
    Silent(&'static str),
    /// Handled before (or being handled by another worker).
    Duplicate,
    /// A status update was applied (true) or was stale or unknown (false).
    Status(bool),
    /// A reply was refused by Graph for good (logged; not retried).
    SendFailed(&'static str),
    /// The tenant no longer exists.
    UnknownTenant,
}

/// A reply printed instead of sent (`alphadome serve --dry-run`, the demo).
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReply {
    pub tenant_id: TenantId,
    pub business: String,
    pub phone_number_id: String,
    /// Masked recipient.
    pub to: String,
    pub source: &'static str,
    pub text: String,
}

/// Where replies go.
#[derive(Clone)]
pub enum Outbox {
    Graph(WhatsAppClient),
    DryRun(Arc<dyn Fn(DryRunReply) + Send + Sync>),
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct ResponderOptions {
    pub default_model: String,
    pub ai_deadline: Duration,
    pub history_turns: u32,
    /// How long a claim protects a message from a second worker.
    pub lease_seconds: u32,
    pub context_ttl: Duration,
    pub grounding_entries: usize,
}

impl Default for ResponderOptions {
    fn default() -> Self {
        Self {
            default_model: crate::config::DEFAULT_OPENAI_MODEL.to_owned(),
            ai_deadline: Duration::from_secs(10),
            history_turns: 6,
            lease_seconds: 120,
            context_ttl: Duration::from_secs(60),
            grounding_entries: 5,
        }
    }
}

/// One record of a queue batch.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub message_id: String,
    /// SQS's MessageGroupId; derived from the job when absent.
    pub group_id: Option<String>,
    pub body: String,
}

/// What `ask` prints: the answer policy for one message, without sending or logging.
#[derive(Debug, Clone, Serialize)]
pub struct AskAnswer {
    pub source: &'static str,
    pub faq_id: Option<crate::domain::EntryId>,
    pub question: Option<String>,
    pub reply: String,
}

/// The responder, built once per process.
#[derive(Clone)]
pub struct Responder {
    store: Store,
    keys: KeyProvider,
    outbox: Outbox,
    openai: OpenAiClient,
    platform_ai_key: Option<SecretString>,
    options: ResponderOptions,
    contexts: Cache<TenantId, Option<Arc<TenantContext>>>,
}

impl Responder {
    pub fn new(
        store: Store,
        keys: KeyProvider,
        outbox: Outbox,
        openai: OpenAiClient,
        platform_ai_key: Option<SecretString>,
        options: ResponderOptions,
    ) -> Self {
        let contexts = Cache::builder()
            .max_capacity(10_000)
            .time_to_live(options.context_ttl)
            .build();
        Self {
            store,
            keys,
            outbox,
            openai,
            platform_ai_key,
            options,
            contexts,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The same responder with an empty context cache (after settings changed elsewhere).
    pub fn with_fresh_cache(&self) -> Self {
        Self {
            contexts: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(self.options.context_ttl)
                .build(),
            ..self.clone()
        }
    }

    /// The tenant's context (cached; one round trip when cold).
    pub async fn context(&self, tenant: TenantId) -> Result<Option<Arc<TenantContext>>, Retry> {
        let store = self.store.clone();
        self.contexts
            .try_get_with(tenant, async move {
                Ok::<_, crate::store::StoreError>(
                    store
                        .load_tenant_context(tenant)
                        .await?
                        .map(|r| Arc::new(TenantContext::new(r))),
                )
            })
            .await
            .map_err(|e| Retry(format!("loading the tenant context: {e:#}")))
    }

    /// Handles one job. `Err` means: retry it later.
    pub async fn handle_job(&self, job: &Job) -> Result<Outcome, Retry> {
        let tenant = TenantId(job.tenant_id);
        let span = tracing::info_span!("job", tenant_id = %tenant, wa_message_id = %short_id(job.wa_message_id()));
        async move {
            let result = match &job.kind {
                JobKind::Message(m) => self.handle_message(tenant, &job.phone_number_id, m).await,
                JobKind::Status(s) => self.handle_status(tenant, s).await,
            };
            match &result {
                Ok(outcome) => tracing::info!(outcome = ?outcome, "job handled"),
                Err(e) => tracing::warn!(reason = %e, "job will be retried"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn handle_status(&self, tenant: TenantId, s: &StatusUpdate) -> Result<Outcome, Retry> {
        let moved = self
            .store
            .apply_status(tenant, &s.wa_message_id, s.status.as_str(), s.error_code)
            .await?;
        if let Some(code) = s.error_code {
            tracing::warn!(code, "Meta reports a delivery failure");
        }
        Ok(Outcome::Status(moved))
    }

    async fn handle_message(
        &self,
        tenant: TenantId,
        phone_number_id: &str,
        m: &InboundMessage,
    ) -> Result<Outcome, Retry> {
        let Some(ctx) = self.context(tenant).await? else {
            tracing::warn!("job for a tenant that no longer exists; dropped");
            return Ok(Outcome::UnknownTenant);
        };
        let t = &ctx.record.tenant;
        let text = m.text.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let intent = text.and_then(detect_control_intent);
        let faq = match (text, intent) {
            (Some(text), None) => ctx.match_faq(text),
            _ => None,
        };
        // Whether a key exists is enough here; it is opened only if the AI is asked.
        let ai_available = ctx.settings.enable_ai_responses
            && (t.ai_api_key.is_some() || self.platform_ai_key.is_some());
        let bot_enabled = t.is_active && ctx.settings.is_bot_enabled;
        let begin = self
            .store
            .begin_inbound(&BeginInbound {
                tenant_id: tenant,
                wa_message_id: &m.wa_message_id,
                phone: m.from_wa_id.as_deref(),
                user_id: m.from_user_id.as_deref(),
                profile_name: m.profile_name.as_deref(),
                message_type: &m.message_type,
                text: m.text.as_deref(),
                intent: intent.map(|i| match i {
                    ControlIntent::Stop => "stop",
                    ControlIntent::Start => "start",
                    ControlIntent::Human => "human",
                }),
                count_reply: policy::may_reply(bot_enabled, intent),
                with_history: ai_available && faq.is_none() && intent.is_none() && text.is_some(),
                history_turns: self.options.history_turns,
                lease_seconds: self.options.lease_seconds,
            })
            .await?;
        if !begin.claimed {
            return Ok(Outcome::Duplicate);
        }
        let now = Utc::now();
        let facts = Facts {
            tenant_active: t.is_active,
            bot_enabled,
            has_token: t.whatsapp_access_token.is_some()
                || matches!(self.outbox, Outbox::DryRun(_)),
            was_subscribed: begin.was_subscribed,
            paused_until: begin.paused_until,
            replies_this_hour: begin.replies_this_hour,
            max_per_hour: ctx.settings.max_messages_per_hour,
            message_time: Utc.timestamp_opt(m.timestamp, 0).single().unwrap_or(now),
            now,
            text,
            message_type: &m.message_type,
            intent,
            faq,
            ai_available,
        };
        let business = t.client_name.as_str();
        let mut replies: Vec<PlannedReply> = Vec::new();
        let mut source: Option<Source> = None;
        let mut matched = None;
        let mut usage = (None, None);
        let mut pause = None;
        let mut escalate: Option<bool> = None;
        match policy::decide(&facts) {
            Decision::Silent(why) => {
                if matches!(why, policy::Silence::NoToken) {
                    tracing::error!("tenant has no WhatsApp token; cannot reply");
                }
                self.store
                    .record_replies(&RecordReplies {
                        tenant_id: tenant,
                        wa_message_id: &m.wa_message_id,
                        user_id: begin.user_id,
                        inbound_status: "ignored",
                        note: Some(why.note()),
                        reply_source: None,
                        matched_entry_id: None,
                        ai_prompt_tokens: None,
                        ai_completion_tokens: None,
                        pause_minutes: None,
                        replies: &[],
                    })
                    .await?;
                return Ok(Outcome::Silent(why.note()));
            }
            Decision::Control(ControlIntent::Stop) => {
                source = Some(Source::Control);
                replies.push(PlannedReply {
                    source: "control",
                    text: policy::stop_confirmation(business),
                    to_customer: true,
                });
            }
            Decision::Control(_) => {
                source = Some(Source::Control);
                replies.push(PlannedReply {
                    source: "control",
                    text: policy::start_confirmation(business),
                    to_customer: true,
                });
            }
            Decision::Answer(entry) => {
                let s = if entry.data_type == "canned" {
                    Source::Canned
                } else {
                    Source::Faq
                };
                source = Some(s);
                matched = Some(entry.id);
                replies.push(PlannedReply {
                    source: s.as_str(),
                    text: entry.answer.clone(),
                    to_customer: true,
                });
            }
            Decision::AskForText => {
                source = Some(Source::Fallback);
                replies.push(PlannedReply {
                    source: "fallback",
                    text: policy::ask_for_text_reply(),
                    to_customer: true,
                });
            }
            Decision::AskAi => {
                let text = text.unwrap_or_default();
                match self
                    .ask_ai(&ctx, self.ai_key(&ctx).await.as_ref(), &begin.history, text)
                    .await
                {
                    Ok(reply) => {
                        source = Some(Source::Ai);
                        usage = (reply.prompt_tokens, reply.completion_tokens);
                        replies.push(PlannedReply {
                            source: "ai",
                            text: reply.text,
                            to_customer: true,
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "AI failed; handing over to a person");
                        escalate = Some(false);
                    }
                }
            }
            Decision::Escalate { asked } => escalate = Some(asked),
        }
        if let Some(asked) = escalate {
            source = Some(Source::Escalation);
            replies.push(PlannedReply {
                source: "fallback",
                text: policy::handover_reply(business),
                to_customer: true,
            });
            if ctx.settings.escalation_phone.is_some() {
                let customer = m.sender().unwrap_or("unknown");
                replies.push(PlannedReply {
                    source: "escalation",
                    text: policy::escalation_notice(
                        business,
                        customer,
                        m.profile_name.as_deref(),
                        text,
                        asked,
                    ),
                    to_customer: false,
                });
                pause = Some(ctx.settings.escalation_quiet_minutes);
            }
        }
        if begin.first_contact && source != Some(Source::Control) {
            if let Some(welcome) = ctx
                .settings
                .welcome_message
                .as_deref()
                .filter(|w| !w.trim().is_empty())
            {
                replies.insert(
                    0,
                    PlannedReply {
                        source: "welcome",
                        text: welcome.to_owned(),
                        to_customer: true,
                    },
                );
            }
        }
        let recorded = self
            .store
            .record_replies(&RecordReplies {
                tenant_id: tenant,
                wa_message_id: &m.wa_message_id,
                user_id: begin.user_id,
                inbound_status: "answered",
                note: None,
                reply_source: source.map(Source::as_str),
                matched_entry_id: matched,
                ai_prompt_tokens: usage.0,
                ai_completion_tokens: usage.1,
                pause_minutes: pause,
                replies: &replies,
            })
            .await?;
        self.send_all(&ctx, phone_number_id, m, &replies, &recorded)
            .await
    }

    /// Sends the recorded replies, then records what Graph said.
    async fn send_all(
        &self,
        ctx: &TenantContext,
        phone_number_id: &str,
        m: &InboundMessage,
        planned: &[PlannedReply],
        recorded: &[crate::store::RecordedReply],
    ) -> Result<Outcome, Retry> {
        let tenant = ctx.record.tenant.id;
        let token = match &self.outbox {
            Outbox::Graph(_) => Some(self.whatsapp_token(ctx).await?),
            Outbox::DryRun(_) => None,
        };
        let customer = match (&m.from_wa_id, &m.from_user_id) {
            (Some(p), _) => Recipient::Phone(p.clone()),
            (None, Some(u)) => Recipient::UserId(u.clone()),
            (None, None) => Recipient::Phone(String::new()),
        };
        let mut results = Vec::new();
        let mut sent_sources = Vec::new();
        let mut retry: Option<String> = None;
        let mut token_invalid = false;
        let mut refused = None;
        let mut quoted = false;
        for (plan, rec) in planned.iter().zip(recorded) {
            if !rec.send {
                tracing::info!(
                    source = plan.source,
                    "reply recorded by an earlier attempt; not sent again"
                );
                continue;
            }
            let to = if plan.to_customer {
                customer.clone()
            } else {
                match ctx
                    .settings
                    .escalation_phone
                    .as_deref()
                    .map(PhoneNumber::parse)
                {
                    Some(Ok(p)) => Recipient::Phone(p.as_str().to_owned()),
                    _ => continue,
                }
            };
            // The first reply to the customer quotes their message.
            let reply_to = if plan.to_customer && !quoted {
                quoted = true;
                Some(m.wa_message_id.as_str())
            } else {
                None
            };
            let outcome = match (&self.outbox, &token) {
                (Outbox::Graph(client), Some(token)) => {
                    client
                        .send_text(phone_number_id, token, &to, &plan.text, reply_to)
                        .await
                }
                (Outbox::DryRun(print), _) => {
                    print(DryRunReply {
                        tenant_id: tenant,
                        business: ctx.record.tenant.client_name.clone(),
                        phone_number_id: phone_number_id.to_owned(),
                        to: match &to {
                            Recipient::Phone(p) | Recipient::UserId(p) => mask_phone(p),
                        },
                        source: plan.source,
                        text: plan.text.clone(),
                    });
                    Ok(vec![format!(
                        "wamid.dryrun.{}",
                        uuid::Uuid::new_v4().simple()
                    )])
                }
                (Outbox::Graph(_), None) => unreachable!("a Graph outbox always has a token"),
            };
            match outcome {
                Ok(ids) => {
                    sent_sources.push(plan.source);
                    results.push(SendResult {
                        id: rec.id,
                        status: "sent",
                        sent_wa_message_id: ids.into_iter().next(),
                        error_code: None,
                    });
                }
                Err(e) => {
                    let status = if e.is_retryable() { "retry" } else { "failed" };
                    if e.is_retryable() {
                        retry.get_or_insert_with(|| format!("graph: {e}"));
                    }
                    if matches!(e, SendError::TokenInvalid { .. }) {
                        token_invalid = true;
                        tracing::error!(
                            "WhatsApp token rejected (190): tenant flagged for a new token"
                        );
                    } else if !e.is_retryable() {
                        tracing::warn!(error = %e, source = plan.source, "send refused by Graph; not retried");
                    }
                    if refused.is_none() && !e.is_retryable() && plan.to_customer {
                        refused = Some(if token_invalid {
                            "token_invalid"
                        } else {
                            "rejected"
                        });
                    }
                    results.push(SendResult {
                        id: rec.id,
                        status,
                        sent_wa_message_id: None,
                        error_code: e.code(),
                    });
                }
            }
        }
        // The read receipt (blue ticks) goes out while the outcome is written: both are
        // off the customer's critical path and neither depends on the other.
        let read_receipt = async {
            if let (Outbox::Graph(client), Some(token)) = (&self.outbox, &token) {
                if ctx.settings.mark_messages_read && !sent_sources.is_empty() {
                    if let Err(e) = client
                        .mark_read(phone_number_id, token, &m.wa_message_id)
                        .await
                    {
                        tracing::debug!(error = %e, "read receipt failed");
                    }
                }
            }
        };
        let (marked, ()) = tokio::join!(
            self.store
                .mark_sent(tenant, &m.wa_message_id, &results, token_invalid),
            read_receipt
        );
        marked?;
        if token_invalid {
            self.contexts.invalidate(&tenant).await;
        }
        if let Some(reason) = retry {
            return Err(Retry(reason));
        }
        match refused {
            Some(why) if sent_sources.is_empty() => Ok(Outcome::SendFailed(why)),
            _ => Ok(Outcome::Replied(sent_sources)),
        }
    }

    async fn whatsapp_token(&self, ctx: &TenantContext) -> Result<SecretString, Retry> {
        let sealed = ctx
            .record
            .tenant
            .whatsapp_access_token
            .as_deref()
            .ok_or_else(|| Retry("tenant has no WhatsApp token".into()))?;
        self.open(
            ctx.record.tenant.id,
            SecretColumn::WhatsappAccessToken,
            sealed,
        )
        .await
    }

    async fn open(
        &self,
        tenant: TenantId,
        column: SecretColumn,
        sealed: &str,
    ) -> Result<SecretString, Retry> {
        let version =
            envelope_version(sealed).map_err(|e| Retry(format!("{}: {e}", column.as_str())))?;
        let ring = self
            .keys
            .ring_with_version(tenant, version)
            .await
            .map_err(|e| Retry(format!("data key: {e:#}")))?;
        ring.decrypt(column, sealed)
            .map_err(|e| Retry(format!("{}: {e}", column.as_str())))
    }

    /// The tenant's own AI key, else the platform's.
    async fn ai_key(&self, ctx: &TenantContext) -> Option<SecretString> {
        match ctx.record.tenant.ai_api_key.as_deref() {
            Some(sealed) => match self
                .open(ctx.record.tenant.id, SecretColumn::AiApiKey, sealed)
                .await
            {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the tenant's AI key; using the platform key");
                    self.platform_ai_key.clone()
                }
            },
            None => self.platform_ai_key.clone(),
        }
    }

    async fn ask_ai(
        &self,
        ctx: &TenantContext,
        key: Option<&SecretString>,
        history: &[crate::store::Turn],
        text: &str,
    ) -> Result<crate::openai::ChatReply, crate::openai::AiError> {
        let key = key.ok_or(crate::openai::AiError::Rejected { status: 401 })?;
        let template = ctx.record.template.as_ref();
        let grounding = ctx.grounding_for(text, self.options.grounding_entries);
        let messages = policy::build_prompt(
            &ctx.record.tenant.client_name,
            template.map(|t| t.system_prompt.as_str()),
            template.and_then(|t| t.tone.as_deref()),
            &grounding,
            history,
            text,
        );
        let model = template
            .and_then(|t| t.model.as_deref())
            .unwrap_or(&self.options.default_model);
        self.openai
            .complete(
                key,
                &ChatRequest {
                    model,
                    messages: &messages,
                    max_tokens: 300,
                    temperature: 0.3,
                },
                self.options.ai_deadline,
            )
            .await
    }

    /// The answer policy for one message, without claiming, sending or logging
    /// (`alphadome ask`).
    pub async fn ask(&self, tenant: TenantId, text: &str) -> Result<AskAnswer, Retry> {
        let ctx = self
            .context(tenant)
            .await?
            .ok_or_else(|| Retry("no such tenant".into()))?;
        let business = ctx.record.tenant.client_name.clone();
        let intent = detect_control_intent(text);
        match intent {
            Some(ControlIntent::Stop) => {
                return Ok(AskAnswer {
                    source: "control",
                    faq_id: None,
                    question: None,
                    reply: policy::stop_confirmation(&business),
                })
            }
            Some(ControlIntent::Start) => {
                return Ok(AskAnswer {
                    source: "control",
                    faq_id: None,
                    question: None,
                    reply: policy::start_confirmation(&business),
                })
            }
            Some(ControlIntent::Human) => {
                return Ok(AskAnswer {
                    source: "escalation",
                    faq_id: None,
                    question: None,
                    reply: policy::handover_reply(&business),
                })
            }
            None => {}
        }
        if let Some(entry) = ctx.match_faq(text) {
            return Ok(AskAnswer {
                source: if entry.data_type == "canned" {
                    "canned"
                } else {
                    "faq"
                },
                faq_id: Some(entry.id),
                question: Some(entry.question.clone()),
                reply: entry.answer.clone(),
            });
        }
        let key = self.ai_key(&ctx).await;
        if ctx.settings.enable_ai_responses && key.is_some() {
            match self.ask_ai(&ctx, key.as_ref(), &[], text).await {
                Ok(r) => {
                    return Ok(AskAnswer {
                        source: "ai",
                        faq_id: None,
                        question: None,
                        reply: r.text,
                    })
                }
                Err(e) => tracing::warn!(error = %e, "AI failed"),
            }
        }
        Ok(AskAnswer {
            source: "escalation",
            faq_id: None,
            question: None,
            reply: policy::handover_reply(&business),
        })
    }

    /// Handles a FIFO batch: groups run concurrently, records of a group in order. After the
    /// first failure in a group, that record and every later record of the group are reported
    /// failed (so SQS redelivers them in order); returns the failed message ids.
    pub async fn handle_batch(&self, records: Vec<BatchRecord>) -> Vec<String> {
        let mut groups: Vec<(String, Vec<Pending>)> = Vec::new();
        for r in records {
            let job = match Job::from_json(&r.body) {
                Ok(j) => Some(j),
                Err(e) => {
                    tracing::error!(message_id = %r.message_id, error = %e, "queue record is not a job; left for the dead-letter queue");
                    None
                }
            };
            let group = r
                .group_id
                .clone()
                .or_else(|| job.as_ref().map(Job::group_id))
                .unwrap_or_else(|| r.message_id.clone());
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, v)) => v.push((r, job)),
                None => groups.push((group, vec![(r, job)])),
            }
        }
        let runs = groups
            .into_iter()
            .map(|(_, records)| self.run_group(records));
        futures_util::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// One FIFO group of a batch, in order; after the first failure the rest are failed too.
    /// Boxed: the per-message future is large, and the batch nests it in `join_all`.
    fn run_group(&self, records: Vec<Pending>) -> BoxFuture<'_, Vec<String>> {
        async move {
            let mut failed = Vec::new();
            let mut blocked = false;
            for (record, job) in records {
                if blocked {
                    failed.push(record.message_id);
                    continue;
                }
                let ok = match &job {
                    Some(job) => self.handle_job(job).boxed().await.is_ok(),
                    None => false,
                };
                if !ok {
                    blocked = true;
                    failed.push(record.message_id);
                }
            }
            failed
        }
        .boxed()
    }
}

/// A batch record and its job (`None`: the body is not a job this code can read).
type Pending = (BatchRecord, Option<Job>);

/// A wamid shortened for logs (they are ids, not personal data, but long).
fn short_id(id: &str) -> String {
    id.chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}
