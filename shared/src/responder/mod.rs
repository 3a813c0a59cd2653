//! The responder: answers each queued message as its tenant, sends the reply with that
//! tenant's token, and logs both messages under the tenant's brand — exactly once.
//!
//! Per tenant in a batch of jobs (context cached): `begin_inbound_batch` claims its messages
//! (round trip 1), the policy decides each, `record_replies_batch` writes the replies as
//! pending before anything is sent (2), Graph sends, `mark_sent_batch` records what Graph
//! said (3) — three round trips whether the batch holds one message or fifty. A retryable
//! failure gives the message back so the queue's retry claims it again; a reply that may
//! already have gone out is never re-sent.
//!
//! The rooms: `batch` orders an SQS batch into waves of FIFO groups; `steps` runs the
//! database steps for one tenant's messages (and keeps a panic or a refused message to
//! itself); `plan` turns the facts of a message into the replies to record (the same code
//! answers `alphadome ask`); `send` sends them with the tenant's token; `handover` retries
//! an owner's notice refused outside their 24-hour window as the tenant's template.

mod batch;
mod context;
mod handover;
mod plan;
pub mod policy;
mod send;
mod steps;

pub use batch::{BatchOutcome, BatchRecord};
pub use context::TenantContext;

use futures_util::future::FutureExt;
use moka::future::Cache;
use secrecy::SecretString;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use crate::domain::TenantId;
use crate::job::{Job, JobKind};
use crate::keys::KeyProvider;
use crate::openai::OpenAiClient;
use crate::store::Store;
use crate::webhook::StatusUpdate;
use crate::whatsapp::WhatsAppClient;
use plan::Incoming;

/// A transient failure: the job must be tried again (the queue redelivers it): database or
/// network trouble, Graph 429/5xx, a panic. Permanent failures are not errors: they are
/// recorded and end as [`Outcome::Failed`]. No message content in the text.
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
    /// Failed for good and recorded as failed, with this reason (the tenant's configuration,
    /// or a message the database refuses). Redelivering would fail the same way.
    Failed(&'static str),
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
    /// What one tenant may spend of an AI call.
    pub ai_limits: policy::AiLimits,
    /// The time one wave of a batch may need at worst (an AI call, a send, the database
    /// steps): under a deadline, a wave starts only while this much time is left.
    pub wave_budget: Duration,
    /// The speech-to-text model of voice notes (`OPENAI_TRANSCRIBE_MODEL`).
    pub transcribe_model: String,
    /// How long fetching a voice note or picture from Graph may take, both requests.
    pub media_deadline: Duration,
    /// How long a transcription may take, retries included.
    pub transcribe_deadline: Duration,
    /// While a voice note or picture is younger than this, a transient failure to fetch or
    /// transcribe it retries the job (the queue redelivers it); after it, the customer gets
    /// the polite request for words instead, so a voice note never ends in silence (SQS:
    /// 5 receives 180 s apart outlast it).
    pub media_retry_window: Duration,
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
            ai_limits: policy::AiLimits::default(),
            wave_budget: default_wave_budget(Duration::from_secs(10)),
            transcribe_model: crate::config::DEFAULT_OPENAI_TRANSCRIBE_MODEL.to_owned(),
            media_deadline: Duration::from_secs(6),
            transcribe_deadline: Duration::from_secs(8),
            media_retry_window: Duration::from_secs(5 * 60),
        }
    }
}

/// The wave budget for an AI deadline: the AI call, one send's timeout, and 2 s for the
/// database steps.
pub fn default_wave_budget(ai_deadline: Duration) -> Duration {
    ai_deadline + crate::app::OUTBOUND_TIMEOUT + Duration::from_secs(2)
}

/// What `ask` prints: the answer policy for one message, without sending or logging.
#[derive(Debug, Clone, Serialize)]
pub struct AskAnswer {
    pub source: &'static str,
    pub faq_id: Option<crate::domain::EntryId>,
    pub question: Option<String>,
    pub reply: String,
    /// The rule that would keep the assistant silent right now (`bot_disabled`,
    /// `hourly_limit`, `tenant_inactive`, `no_whatsapp_token`, ...): `reply` is then what
    /// it would say once that rule no longer applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<&'static str>,
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

    pub fn options(&self) -> &ResponderOptions {
        &self.options
    }

    /// The same responder sending through another outbox.
    pub fn with_outbox(&self, outbox: Outbox) -> Self {
        Self {
            outbox,
            ..self.clone()
        }
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
                let result = std::panic::AssertUnwindSafe(
                    self.handle_status(tenant, s).instrument(job_span(&jobs[i])),
                )
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(Retry("the responder panicked".into())));
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
        let moved = self.store.apply_status(tenant, s).await?;
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
                // Boxed: the steps' future is deep, and unboxed its type exceeds the
                // compiler's layout depth in release builds.
                |(at, messages)| {
                    async move {
                        let results = self.run_guarded(tenant, ctx, &messages).await;
                        (at, results)
                    }
                    .boxed()
                },
            ))
            .await;
        in_job_order(jobs.len(), parts)
    }
}

/// Puts results computed for subsets of a batch back in the batch's order: each part is the
/// batch positions it covers and their results.
pub(crate) fn in_job_order<R>(
    len: usize,
    parts: impl IntoIterator<Item = (Vec<usize>, Vec<R>)>,
) -> Vec<R> {
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
pub(crate) fn job_span(job: &Job) -> tracing::Span {
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
