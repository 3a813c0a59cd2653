//! The responder: answers each queued message as its tenant, sends the reply with that
//! tenant's token, and logs both messages under the tenant's brand — exactly once.
//!
//! Per tenant in a batch of jobs (context cached): `begin_inbound_batch` claims its messages
//! (round trip 1), the policy decides each, `record_replies_batch` writes the replies as
//! pending before anything is sent (2), Graph sends, `mark_sent_batch` records what Graph
//! said (3) — three round trips whether the batch holds one message or fifty. A retryable
//! failure gives the message back so the queue's retry claims it again; a reply that may
//! already have gone out is never re-sent.

mod context;
pub mod policy;

pub use context::TenantContext;

use chrono::{TimeZone, Utc};
use futures_util::future::FutureExt;
use moka::future::Cache;
use secrecy::SecretString;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use crate::crypto::{envelope_version, SecretColumn};
use crate::domain::{mask_phone, PhoneNumber, TenantId};
use crate::intent::{detect_control_intent, ControlIntent};
use crate::job::{Job, JobKind};
use crate::keys::KeyProvider;
use crate::openai::{ChatRequest, OpenAiClient};
use crate::store::{
    BeginInbound, EntryRecord, Inbound, MarkSent, PlannedReply, RecordReplies, RecordedReply,
    SendResult, Store,
};
use crate::webhook::{InboundMessage, StatusUpdate};
use crate::whatsapp::{Recipient, SendError, WhatsAppClient};
use policy::{Decision, Facts, Source};

/// Why a job must be tried again (the queue retries it). No message content in the text.
#[derive(Debug, Clone, thiserror::Error)]
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
        self.handle_jobs(std::slice::from_ref(job))
            .await
            .pop()
            .expect("one result per job")
    }

    /// Handles jobs of distinct conversations together (the heads of a queue batch's FIFO
    /// groups). The messages of one tenant share each database round trip — one claim, one
    /// record, one outcome write for all of them — and tenants run concurrently. One result
    /// per job, in order; `Err` means: retry that job later.
    pub async fn handle_jobs(&self, jobs: &[Job]) -> Vec<Result<Outcome, Retry>> {
        let mut tenants: Vec<(TenantId, Vec<usize>)> = Vec::new();
        let mut statuses = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let tenant = TenantId(job.tenant_id);
            match &job.kind {
                JobKind::Message(_) => match tenants.iter_mut().find(|(t, _)| *t == tenant) {
                    Some((_, of_tenant)) => of_tenant.push(i),
                    None => tenants.push((tenant, vec![i])),
                },
                JobKind::Status(s) => statuses.push((i, tenant, s)),
            }
        }
        let message_runs = tenants.into_iter().map(|(tenant, indexes)| {
            async move {
                let batch: Vec<&Job> = indexes.iter().map(|&i| &jobs[i]).collect();
                let results = self.handle_messages(tenant, &batch).await;
                (indexes, results)
            }
            .boxed()
        });
        let status_runs = statuses.into_iter().map(|(i, tenant, s)| {
            async move {
                let result = self
                    .handle_status(tenant, s)
                    .instrument(job_span(&jobs[i]))
                    .await;
                (vec![i], vec![result])
            }
            .boxed()
        });
        let parts = futures_util::future::join_all(message_runs.chain(status_runs)).await;
        jobs.iter()
            .zip(in_job_order(jobs.len(), parts))
            .map(|(job, result)| {
                let _in_job = job_span(job).entered();
                match &result {
                    Ok(outcome) => tracing::info!(outcome = ?outcome, "job handled"),
                    Err(e) => tracing::warn!(reason = %e, "job will be retried"),
                }
                result
            })
            .collect()
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

    /// One tenant's messages, in one or two runs of the steps.
    async fn handle_messages(
        &self,
        tenant: TenantId,
        jobs: &[&Job],
    ) -> Vec<Result<Outcome, Retry>> {
        let every = |r: Result<Outcome, Retry>| jobs.iter().map(|_| r.clone()).collect();
        let ctx = match self.context(tenant).await {
            Ok(Some(ctx)) => ctx,
            Ok(None) => {
                tracing::warn!(tenant_id = %tenant, jobs = jobs.len(), "jobs for a tenant that no longer exists; dropped");
                return every(Ok(Outcome::UnknownTenant));
            }
            Err(e) => return every(Err(e)),
        };
        let ctx: &TenantContext = &ctx;
        // Messages the AI may answer go through the steps apart from the rest, so a quick FAQ
        // answer never waits for another customer's AI call (one more set of round trips, only
        // when a batch holds both kinds).
        let mut runs: [(Vec<usize>, Vec<Incoming<'_>>); 2] = Default::default();
        for (i, job) in jobs.iter().enumerate() {
            let msg = self.prepare(ctx, job);
            let run = &mut runs[usize::from(msg.may_ask_ai())];
            run.0.push(i);
            run.1.push(msg);
        }
        let parts =
            futures_util::future::join_all(runs.into_iter().filter(|(at, _)| !at.is_empty()).map(
                |(at, messages)| async move {
                    let results = self.run_steps(tenant, ctx, &messages).await;
                    (at, results)
                },
            ))
            .await;
        in_job_order(jobs.len(), parts)
    }

    /// The steps for some of one tenant's messages: claim all, decide each, record all, send
    /// each, record what Graph said for all. One result per message, in order.
    async fn run_steps(
        &self,
        tenant: TenantId,
        ctx: &TenantContext,
        messages: &[Incoming<'_>],
    ) -> Vec<Result<Outcome, Retry>> {
        let every = |r: Result<Outcome, Retry>| messages.iter().map(|_| r.clone()).collect();
        let claims: Vec<BeginInbound<'_>> = messages.iter().map(Incoming::claim).collect();
        let begins = match self
            .store
            .begin_inbound_batch(
                tenant,
                self.options.lease_seconds,
                self.options.history_turns,
                &claims,
            )
            .await
        {
            Ok(begins) => begins,
            Err(e) => return every(Err(e.into())),
        };

        // Decide; the AI, when asked, answers several customers at once.
        let plans: Vec<Option<Plan>> =
            futures_util::future::join_all(messages.iter().zip(&begins).map(|(msg, begin)| {
                async move {
                    match begin.claimed {
                        true => Some(
                            self.plan(ctx, msg, begin)
                                .instrument(msg.span.clone())
                                .await,
                        ),
                        false => None,
                    }
                }
                .boxed()
            }))
            .await;
        let records: Vec<RecordReplies<'_>> = messages
            .iter()
            .zip(&begins)
            .zip(&plans)
            .filter_map(|((msg, begin), plan)| Some(plan.as_ref()?.record(msg, begin)))
            .collect();
        let recorded = match self.store.record_replies_batch(tenant, &records).await {
            Ok(recorded) => recorded,
            Err(e) => {
                let e = Retry::from(e);
                return plans
                    .iter()
                    .map(|plan| match plan {
                        Some(_) => Err(e.clone()),
                        None => Ok(Outcome::Duplicate),
                    })
                    .collect();
            }
        };
        let mut recorded = recorded.into_iter();
        let steps: Vec<Step> = plans
            .into_iter()
            .map(|plan| match plan {
                None => Step::Done(Ok(Outcome::Duplicate)),
                Some(Plan {
                    silent: Some(why), ..
                }) => {
                    recorded.next();
                    Step::Done(Ok(Outcome::Silent(why)))
                }
                Some(plan) => Step::Send(plan, recorded.next().unwrap_or_default()),
            })
            .collect();

        // The token is opened once for the batch, and only when something is to be sent.
        let token = match &self.outbox {
            Outbox::Graph(_) if steps.iter().any(|s| matches!(s, Step::Send(..))) => {
                match self.whatsapp_token(ctx).await {
                    Ok(token) => Some(token),
                    Err(e) => {
                        return steps
                            .into_iter()
                            .map(|s| match s {
                                Step::Done(r) => r,
                                Step::Send(..) => Err(e.clone()),
                            })
                            .collect()
                    }
                }
            }
            _ => None,
        };
        let deliveries: Vec<Option<Delivery>> =
            futures_util::future::join_all(messages.iter().zip(&steps).map(|(msg, step)| {
                let token = token.as_ref();
                async move {
                    match step {
                        Step::Send(plan, recorded) => Some(
                            self.send_replies(ctx, token, msg, &plan.replies, recorded)
                                .instrument(msg.span.clone())
                                .await,
                        ),
                        Step::Done(_) => None,
                    }
                }
                .boxed()
            }))
            .await;

        // What Graph said, written once for the batch; read receipts go out meanwhile: both
        // are off the customers' critical path and neither depends on the other.
        let marks: Vec<MarkSent<'_>> = messages
            .iter()
            .zip(&deliveries)
            .filter_map(|(msg, d)| {
                let d = d.as_ref()?;
                (!d.results.is_empty() || d.token_invalid).then(|| MarkSent {
                    wa_message_id: &msg.m.wa_message_id,
                    results: &d.results,
                    token_invalid: d.token_invalid,
                })
            })
            .collect();
        let receipts =
            futures_util::future::join_all(messages.iter().zip(&deliveries).map(|(msg, d)| {
                let read = d.as_ref().is_some_and(|d| !d.sent_sources.is_empty());
                self.send_read_receipt(ctx, token.as_ref(), msg, read)
            }));
        let (marked, _) = tokio::join!(self.store.mark_sent_batch(tenant, &marks), receipts);
        if deliveries.iter().flatten().any(|d| d.token_invalid) {
            self.contexts.invalidate(&tenant).await;
        }
        let marked = marked.map_err(Retry::from);
        steps
            .into_iter()
            .zip(deliveries)
            .map(|(step, delivery)| match (step, delivery) {
                (Step::Done(r), _) => r,
                (Step::Send(..), Some(d)) => {
                    marked.as_ref().map_err(Clone::clone)?;
                    d.outcome()
                }
                (Step::Send(..), None) => unreachable!("every send has a delivery"),
            })
            .collect()
    }

    /// What is known of a message before it is claimed.
    fn prepare<'a>(&self, ctx: &'a TenantContext, job: &'a Job) -> Incoming<'a> {
        let JobKind::Message(m) = &job.kind else {
            unreachable!("only message jobs are prepared")
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
        Incoming {
            phone_number_id: &job.phone_number_id,
            m,
            text,
            intent,
            faq,
            ai_available,
            bot_enabled: t.is_active && ctx.settings.is_bot_enabled,
            span: job_span(job),
        }
    }

    /// The policy's decision for a claimed message, as the replies to record.
    async fn plan(&self, ctx: &TenantContext, msg: &Incoming<'_>, begin: &Inbound) -> Plan {
        let t = &ctx.record.tenant;
        let m = msg.m;
        let now = Utc::now();
        let facts = Facts {
            tenant_active: t.is_active,
            bot_enabled: msg.bot_enabled,
            has_token: t.whatsapp_access_token.is_some()
                || matches!(self.outbox, Outbox::DryRun(_)),
            was_subscribed: begin.was_subscribed,
            paused_until: begin.paused_until,
            replies_this_hour: begin.replies_this_hour,
            max_per_hour: ctx.settings.max_messages_per_hour,
            message_time: Utc.timestamp_opt(m.timestamp, 0).single().unwrap_or(now),
            now,
            text: msg.text,
            message_type: &m.message_type,
            intent: msg.intent,
            faq: msg.faq,
            ai_available: msg.ai_available,
        };
        let business = t.client_name.as_str();
        let mut plan = Plan::default();
        let mut escalate: Option<bool> = None;
        match policy::decide(&facts) {
            Decision::Silent(why) => {
                if matches!(why, policy::Silence::NoToken) {
                    tracing::error!("tenant has no WhatsApp token; cannot reply");
                }
                plan.silent = Some(why.note());
                return plan;
            }
            Decision::Control(ControlIntent::Stop) => {
                plan.reply(Source::Control, policy::stop_confirmation(business));
            }
            Decision::Control(_) => {
                plan.reply(Source::Control, policy::start_confirmation(business));
            }
            Decision::Answer(entry) => {
                let s = if entry.data_type == "canned" {
                    Source::Canned
                } else {
                    Source::Faq
                };
                plan.matched = Some(entry.id);
                plan.reply(s, entry.answer.clone());
            }
            Decision::AskForText => {
                plan.reply(Source::Fallback, policy::ask_for_text_reply());
            }
            Decision::AskAi => {
                let text = msg.text.unwrap_or_default();
                match self
                    .ask_ai(ctx, self.ai_key(ctx).await.as_ref(), &begin.history, text)
                    .await
                {
                    Ok(reply) => {
                        plan.usage = (reply.prompt_tokens, reply.completion_tokens);
                        plan.reply(Source::Ai, reply.text);
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
            plan.source = Some(Source::Escalation);
            plan.replies.push(PlannedReply {
                source: "fallback",
                text: policy::handover_reply(business),
                to_customer: true,
            });
            if ctx.settings.escalation_phone.is_some() {
                let customer = m.sender().unwrap_or("unknown");
                plan.replies.push(PlannedReply {
                    source: "escalation",
                    text: policy::escalation_notice(
                        business,
                        customer,
                        m.profile_name.as_deref(),
                        msg.text,
                        asked,
                    ),
                    to_customer: false,
                });
                plan.pause = Some(ctx.settings.escalation_quiet_minutes);
            }
        }
        if begin.first_contact && plan.source != Some(Source::Control) {
            if let Some(welcome) = ctx
                .settings
                .welcome_message
                .as_deref()
                .filter(|w| !w.trim().is_empty())
            {
                plan.replies.insert(
                    0,
                    PlannedReply {
                        source: "welcome",
                        text: welcome.to_owned(),
                        to_customer: true,
                    },
                );
            }
        }
        plan
    }

    /// Sends one message's recorded replies; what Graph said is written by the caller.
    async fn send_replies(
        &self,
        ctx: &TenantContext,
        token: Option<&SecretString>,
        msg: &Incoming<'_>,
        planned: &[PlannedReply],
        recorded: &[RecordedReply],
    ) -> Delivery {
        let tenant = ctx.record.tenant.id;
        let (m, phone_number_id) = (msg.m, msg.phone_number_id);
        let customer = match (&m.from_wa_id, &m.from_user_id) {
            (Some(p), _) => Recipient::Phone(p.clone()),
            (None, Some(u)) => Recipient::UserId(u.clone()),
            (None, None) => Recipient::Phone(String::new()),
        };
        let mut d = Delivery::default();
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
            let outcome = match (&self.outbox, token) {
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
                    d.sent_sources.push(plan.source);
                    d.results.push(SendResult {
                        id: rec.id,
                        status: "sent",
                        sent_wa_message_id: ids.into_iter().next(),
                        error_code: None,
                    });
                }
                Err(e) => {
                    let status = if e.is_retryable() { "retry" } else { "failed" };
                    if e.is_retryable() {
                        d.retry.get_or_insert_with(|| format!("graph: {e}"));
                    }
                    if matches!(e, SendError::TokenInvalid { .. }) {
                        d.token_invalid = true;
                        tracing::error!(
                            "WhatsApp token rejected (190): tenant flagged for a new token"
                        );
                    } else if !e.is_retryable() {
                        tracing::warn!(error = %e, source = plan.source, "send refused by Graph; not retried");
                    }
                    if d.refused.is_none() && !e.is_retryable() && plan.to_customer {
                        d.refused = Some(if d.token_invalid {
                            "token_invalid"
                        } else {
                            "rejected"
                        });
                    }
                    d.results.push(SendResult {
                        id: rec.id,
                        status,
                        sent_wa_message_id: None,
                        error_code: e.code(),
                    });
                }
            }
        }
        d
    }

    /// Blue ticks on a message that got an answer, when the tenant wants them.
    async fn send_read_receipt(
        &self,
        ctx: &TenantContext,
        token: Option<&SecretString>,
        msg: &Incoming<'_>,
        answered: bool,
    ) {
        if let (Outbox::Graph(client), Some(token)) = (&self.outbox, token) {
            if answered && ctx.settings.mark_messages_read {
                if let Err(e) = client
                    .mark_read(msg.phone_number_id, token, &msg.m.wa_message_id)
                    .instrument(msg.span.clone())
                    .await
                {
                    let _in_job = msg.span.enter();
                    tracing::debug!(error = %e, "read receipt failed");
                }
            }
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

    /// Handles a FIFO batch in waves: wave k holds the k-th record of every group still
    /// going, and [`Self::handle_jobs`] handles a wave together, so records of a group run in
    /// order and groups share the database round trips. After the first failure in a group,
    /// that record and every later record of the group are reported failed (so SQS
    /// redelivers them in order); returns the failed message ids.
    pub async fn handle_batch(&self, records: Vec<BatchRecord>) -> Vec<String> {
        let mut groups: Vec<(String, VecDeque<Pending>)> = Vec::new();
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
                Some((_, v)) => v.push_back((r, job)),
                None => groups.push((group, VecDeque::from([(r, job)]))),
            }
        }
        let mut failed = Vec::new();
        loop {
            let mut wave: Vec<(usize, String, Job)> = Vec::new();
            for (g, (_, records)) in groups.iter_mut().enumerate() {
                match records.pop_front() {
                    Some((record, Some(job))) => wave.push((g, record.message_id, job)),
                    Some((record, None)) => {
                        failed.push(record.message_id);
                        failed.extend(records.drain(..).map(|(r, _)| r.message_id));
                    }
                    None => {}
                }
            }
            if wave.is_empty() {
                return failed;
            }
            let jobs: Vec<Job> = wave.iter().map(|(_, _, job)| job.clone()).collect();
            let results = self.handle_jobs(&jobs).await;
            for ((g, message_id, _), result) in wave.into_iter().zip(results) {
                if result.is_err() {
                    failed.push(message_id);
                    failed.extend(groups[g].1.drain(..).map(|(r, _)| r.message_id));
                }
            }
        }
    }
}

/// A batch record and its job (`None`: the body is not a job this code can read).
type Pending = (BatchRecord, Option<Job>);

/// A message between the steps of [`Responder::handle_messages`].
struct Incoming<'a> {
    phone_number_id: &'a str,
    m: &'a InboundMessage,
    text: Option<&'a str>,
    intent: Option<ControlIntent>,
    faq: Option<&'a EntryRecord>,
    ai_available: bool,
    bot_enabled: bool,
    span: tracing::Span,
}

impl Incoming<'_> {
    fn claim(&self) -> BeginInbound<'_> {
        let m = self.m;
        BeginInbound {
            wa_message_id: &m.wa_message_id,
            phone: m.from_wa_id.as_deref(),
            user_id: m.from_user_id.as_deref(),
            profile_name: m.profile_name.as_deref(),
            message_type: &m.message_type,
            text: m.text.as_deref(),
            intent: self.intent.map(|i| match i {
                ControlIntent::Stop => "stop",
                ControlIntent::Start => "start",
                ControlIntent::Human => "human",
            }),
            count_reply: policy::may_reply(self.bot_enabled, self.intent),
            with_history: self.may_ask_ai(),
        }
    }

    /// Whether the policy may hand this message to the AI (then its history is fetched too).
    fn may_ask_ai(&self) -> bool {
        self.ai_available && self.faq.is_none() && self.intent.is_none() && self.text.is_some()
    }
}

/// What the policy decided for one claimed message.
#[derive(Default)]
struct Plan {
    /// No reply, for this reason (the message is recorded as ignored).
    silent: Option<&'static str>,
    source: Option<Source>,
    matched: Option<crate::domain::EntryId>,
    usage: (Option<u32>, Option<u32>),
    pause: Option<i32>,
    replies: Vec<PlannedReply>,
}

impl Plan {
    fn reply(&mut self, source: Source, text: String) {
        self.source = Some(source);
        self.replies.push(PlannedReply {
            source: source.as_str(),
            text,
            to_customer: true,
        });
    }

    fn record<'a>(&'a self, msg: &'a Incoming<'_>, begin: &Inbound) -> RecordReplies<'a> {
        RecordReplies {
            wa_message_id: &msg.m.wa_message_id,
            user_id: begin.user_id,
            inbound_status: if self.silent.is_some() {
                "ignored"
            } else {
                "answered"
            },
            note: self.silent,
            reply_source: self.source.map(Source::as_str),
            matched_entry_id: self.matched,
            ai_prompt_tokens: self.usage.0,
            ai_completion_tokens: self.usage.1,
            pause_minutes: self.pause,
            replies: &self.replies,
        }
    }
}

/// Where a message stands after its replies are recorded.
enum Step {
    Done(Result<Outcome, Retry>),
    Send(Plan, Vec<RecordedReply>),
}

/// What Graph said about one message's replies.
#[derive(Default)]
struct Delivery {
    results: Vec<SendResult>,
    sent_sources: Vec<&'static str>,
    retry: Option<String>,
    token_invalid: bool,
    refused: Option<&'static str>,
}

impl Delivery {
    fn outcome(self) -> Result<Outcome, Retry> {
        if let Some(reason) = self.retry {
            return Err(Retry(reason));
        }
        match self.refused {
            Some(why) if self.sent_sources.is_empty() => Ok(Outcome::SendFailed(why)),
            _ => Ok(Outcome::Replied(self.sent_sources)),
        }
    }
}

/// Puts results computed for subsets of a batch back in the batch's order: each part is the
/// batch positions it covers and their results.
fn in_job_order<R>(len: usize, parts: impl IntoIterator<Item = (Vec<usize>, Vec<R>)>) -> Vec<R> {
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(len).collect();
    for (positions, results) in parts {
        for (i, r) in positions.into_iter().zip(results) {
            slots[i] = Some(r);
        }
    }
    slots
        .into_iter()
        .map(|r| r.expect("every job has a result"))
        .collect()
}

/// The span a job's log lines go under: ids only.
fn job_span(job: &Job) -> tracing::Span {
    tracing::info_span!("job", tenant_id = %TenantId(job.tenant_id), wa_message_id = %short_id(job.wa_message_id()))
}

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
