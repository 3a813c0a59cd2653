//! The database steps for some of one tenant's messages — claim all, decide each, record
//! all, send each, record what Graph said for all — and the guards around them: a panic
//! or a message the database refuses fails that message alone; the rest are answered.

use futures_util::future::FutureExt;
use std::panic::AssertUnwindSafe;
use tracing::Instrument;

use super::plan::{Foresight, Incoming, Plan};
use super::send::{Delivery, OpenError};
use super::{Outbox, Outcome, Responder, Retry, TenantContext};
use crate::domain::TenantId;
use crate::store::{
    BeginInbound, Inbound, MarkSent, RecordReplies, RecordedReply, SendResult, TenantProblem,
};

/// Where one claimed message stands after planning.
enum Planned {
    NotClaimed,
    /// Claimed and recorded at once, with the outcome foreseen for it.
    Recorded,
    Plan(Plan),
    /// Try this message again later: planning panicked, or a transient failure the plan
    /// cannot answer around (a voice note the network could not fetch or transcribe yet).
    Again(String),
}

/// A step the database refused for a reason that lies in the messages themselves (a value
/// it cannot store, a row a policy refuses): retrying the same batch would fail again.
#[derive(Debug)]
struct Refused {
    step: &'static str,
    /// The store's error, which names the call and the database's reason, never the data.
    reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.reason)
    }
}

impl Responder {
    /// [`Self::run_steps`] under guard. A panic releases the run's claims and the messages
    /// run again one by one, so only the one that panics fails (and is redelivered); a
    /// batch the database refuses is split the same way, and a single message it refuses is
    /// failed for good (redelivery cannot help) while the others are answered.
    pub(super) async fn run_guarded(
        &self,
        tenant: TenantId,
        ctx: &TenantContext,
        messages: &[Incoming<'_>],
    ) -> Vec<Result<Outcome, Retry>> {
        match self.run_caught(tenant, ctx, messages).await {
            Ok(Ok(results)) => return results,
            Ok(Err(refused)) if messages.len() == 1 => {
                let _in_job = messages[0].span.enter();
                tracing::error!(reason = %refused, "the database refuses this message; failed without retry");
                return vec![Ok(Outcome::Failed("refused_by_database"))];
            }
            Ok(Err(refused)) => {
                tracing::warn!(jobs = messages.len(), reason = %refused, "the database refused a batch; running its messages one by one");
            }
            Err(attempt) if messages.len() == 1 => {
                self.release(tenant, attempt, &ids(messages)).await;
                return vec![Err(Retry("the responder panicked".into()))];
            }
            Err(attempt) => {
                self.release(tenant, attempt, &ids(messages)).await;
            }
        }
        let mut results = Vec::with_capacity(messages.len());
        for one in messages.chunks(1) {
            results.push(match self.run_caught(tenant, ctx, one).await {
                Ok(Ok(mut r)) => r.pop().unwrap_or(Err(Retry("no result".into()))),
                Ok(Err(refused)) => {
                    let _in_job = one[0].span.enter();
                    tracing::error!(reason = %refused, "the database refuses this message; failed without retry");
                    Ok(Outcome::Failed("refused_by_database"))
                }
                Err(attempt) => {
                    self.release(tenant, attempt, &ids(one)).await;
                    Err(Retry("the responder panicked".into()))
                }
            });
        }
        results
    }

    /// Runs the steps as one attempt, turning a panic into `Err(attempt)` (logged, without
    /// its message: a panic text may quote data), so that what the attempt claimed can be
    /// given back.
    async fn run_caught(
        &self,
        tenant: TenantId,
        ctx: &TenantContext,
        messages: &[Incoming<'_>],
    ) -> Result<Result<Vec<Result<Outcome, Retry>>, Refused>, uuid::Uuid> {
        // This attempt's id, stamped on its claims and on the replies it makes sendable: if a
        // call's answer is lost, or the run panics, exactly those are given back.
        let attempt = uuid::Uuid::new_v4();
        AssertUnwindSafe(self.run_steps(tenant, ctx, messages, attempt).boxed())
            .catch_unwind()
            .await
            .map_err(|_| {
                tracing::error!(tenant_id = %tenant, jobs = messages.len(), "the responder panicked while handling these messages");
                attempt
            })
    }

    /// Gives the claims the attempt still holds back (status `retry`), so the next attempt
    /// claims them at once.
    async fn release(&self, tenant: TenantId, attempt: uuid::Uuid, wa_message_ids: &[&str]) {
        if let Err(e) = self
            .store
            .release_claims(tenant, attempt, wa_message_ids)
            .await
        {
            tracing::warn!(error = %format!("{e:#}"), "could not release claims; they expire with their lease");
        }
    }

    /// After a claim or record call that failed without an answer (a lost connection, a
    /// restarting database): nothing was sent, so what the call may have committed for this
    /// attempt goes back as `retry` — the replies it recorded as `pending` with their
    /// messages, and claims it never recorded. Without this the redelivery would find the
    /// messages answered, their replies never sent (or claimed, until the lease runs out).
    /// The same after a refused record, for the replies recorded with the claims.
    /// Tried for a few seconds (the database may be coming back); after that they stay as
    /// they are, and an unrecorded claim expires with its lease.
    async fn give_back(&self, tenant: TenantId, attempt: uuid::Uuid, messages: &[Incoming<'_>]) {
        use backon::Retryable as _;
        let ids = ids(messages);
        let backoff = backon::ConstantBuilder::default()
            .with_delay(std::time::Duration::from_millis(500))
            .with_max_times(usize::MAX);
        let retried = (|| self.store.give_back_unsent(tenant, attempt, &ids))
            .retry(backoff)
            .when(|e| !e.is_refusal());
        // Bounded as a whole: one attempt can wait the pool's acquire timeout, and the wave
        // budget leaves room for this and no more.
        let given = tokio::time::timeout(GIVE_BACK_WITHIN, retried)
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!("the database did not come back in time").into())
            });
        match given {
            Ok(given) => {
                if given.replies > 0 {
                    tracing::warn!(tenant_id = %tenant, jobs = given.replies, "replies recorded by this attempt and never sent were given back for the redelivery");
                }
            }
            Err(e) => {
                tracing::error!(tenant_id = %tenant, jobs = ids.len(), error = %format!("{e:#}"), "could not give back what a failed call left; its claims expire with their lease, its replies stay pending");
            }
        }
    }

    /// Decides one claimed message; a panic while planning fails that message only.
    async fn plan_caught(
        &self,
        ctx: &TenantContext,
        msg: &Incoming<'_>,
        begin: &Inbound,
    ) -> Planned {
        match AssertUnwindSafe(self.plan(ctx, msg, begin).instrument(msg.span.clone()))
            .catch_unwind()
            .await
        {
            Ok(Plan {
                retry: Some(why), ..
            }) => Planned::Again(why),
            Ok(plan) => Planned::Plan(plan),
            Err(_) => {
                let _in_job = msg.span.enter();
                tracing::error!("the responder panicked while deciding this message");
                Planned::Again("the responder panicked".into())
            }
        }
    }

    /// Records a problem with the tenant's configuration for the operator (`tenant show`).
    async fn flag(&self, tenant: TenantId, problem: TenantProblem) {
        tracing::error!(tenant_id = %tenant, problem = problem.as_str(), "tenant flagged for the operator");
        if let Err(e) = self.store.flag_tenant(tenant, problem).await {
            tracing::warn!(error = %format!("{e:#}"), "could not flag the tenant");
        }
    }

    /// Replies recorded but the token will not open. Transient (the key store is
    /// unreachable): they are given back as `retry`, so the redelivery sends them. Permanent
    /// (no token, or one no key opens): they are recorded as failed and the tenant flagged.
    async fn unsendable(
        &self,
        tenant: TenantId,
        messages: &[Incoming<'_>],
        steps: Vec<Step>,
        e: OpenError,
    ) -> Vec<Result<Outcome, Retry>> {
        let status = match &e {
            OpenError::Transient(_) => "retry",
            OpenError::Permanent(_) => "failed",
        };
        let results: Vec<Vec<SendResult>> = steps
            .iter()
            .map(|s| match s {
                Step::Send(_, recorded) => recorded
                    .iter()
                    .filter(|r| r.send)
                    .map(|r| SendResult {
                        id: r.id,
                        status,
                        sent_wa_message_id: None,
                        error_code: None,
                    })
                    .collect(),
                Step::Done(_) => Vec::new(),
            })
            .collect();
        let marks: Vec<MarkSent<'_>> = messages
            .iter()
            .zip(&results)
            .filter(|(_, r)| !r.is_empty())
            .map(|(msg, r)| MarkSent {
                wa_message_id: &msg.m.wa_message_id,
                results: r,
                token_invalid: false,
            })
            .collect();
        let marked = self.store.mark_sent_batch(tenant, &marks).await;
        if let OpenError::Permanent(problem) = &e {
            self.flag(tenant, *problem).await;
        }
        steps
            .into_iter()
            .map(|s| match s {
                Step::Done(r) => r,
                Step::Send(..) => match (&e, &marked) {
                    (_, Err(db)) => Err(Retry(format!("database: {db:#}"))),
                    (OpenError::Transient(why), Ok(())) => Err(Retry(why.clone())),
                    (OpenError::Permanent(p), Ok(())) => Ok(Outcome::Failed(p.as_str())),
                },
            })
            .collect()
    }

    /// The steps for some of one tenant's messages: claim all, decide each, record all, send
    /// each, record what Graph said for all. One result per message, in order.
    async fn run_steps(
        &self,
        tenant: TenantId,
        ctx: &TenantContext,
        messages: &[Incoming<'_>],
        attempt: uuid::Uuid,
    ) -> Result<Vec<Result<Outcome, Retry>>, Refused> {
        let every = |r: Result<Outcome, Retry>| Ok(messages.iter().map(|_| r.clone()).collect());
        // An answer the claim cannot change is decided first and goes with the claim, which
        // records it when the facts it assumes hold: one call fewer for that message.
        let foresights: Vec<Option<Foresight>> =
            messages.iter().map(|m| self.foresee(ctx, m)).collect();
        let claims: Vec<BeginInbound<'_>> = messages
            .iter()
            .zip(&foresights)
            .map(|(m, f)| m.claim(attempt, f.as_ref()))
            .collect();
        let mut begins = match self
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
            // Nothing was claimed: the call is one transaction.
            Err(e) if e.is_refusal() => {
                return Err(Refused {
                    step: "claim",
                    reason: format!("{e:#}"),
                })
            }
            Err(e) => {
                // The claim may have committed with its answer lost: the messages would wait
                // out the lease. Nothing was decided or sent; the claims go back at once.
                self.give_back(tenant, attempt, messages).await;
                return every(Err(e.into()));
            }
        };

        // The messages recorded with their claims, with their replies.
        let foreseen: Vec<Option<(Plan, Vec<RecordedReply>)>> = foresights
            .into_iter()
            .zip(begins.iter_mut())
            .map(|(f, begin)| Some((f?.plan, begin.recorded.take()?)))
            .collect();

        // Decide the others; the AI, when asked, answers several customers at once.
        // A panic while planning one message fails that message only.
        let planned: Vec<Planned> =
            futures_util::future::join_all(messages.iter().zip(&begins).zip(&foreseen).map(
                |((msg, begin), foreseen)| {
                    async move {
                        match (begin.claimed, foreseen) {
                            (false, _) => Planned::NotClaimed,
                            (true, Some(_)) => Planned::Recorded,
                            (true, None) => self.plan_caught(ctx, msg, begin).await,
                        }
                    }
                    .boxed()
                },
            ))
            .await;
        // Messages to try again are given back now, so the redelivery claims them at once.
        let again_ids: Vec<&str> = messages
            .iter()
            .zip(&planned)
            .filter(|(_, p)| matches!(p, Planned::Again(_)))
            .map(|(m, _)| m.m.wa_message_id.as_str())
            .collect();
        self.release(tenant, attempt, &again_ids).await;
        let (plans, again): (Vec<Option<Plan>>, Vec<Option<String>>) = planned
            .into_iter()
            .map(|p| match p {
                Planned::Plan(plan) => (Some(plan), None),
                Planned::Again(why) => (None, Some(why)),
                Planned::NotClaimed | Planned::Recorded => (None, None),
            })
            .unzip();
        let records: Vec<RecordReplies<'_>> = messages
            .iter()
            .zip(&begins)
            .zip(&plans)
            .filter_map(|((msg, begin), plan)| Some(plan.as_ref()?.record(msg, begin, attempt)))
            .collect();
        if let Some(problem) = plans.iter().flatten().find_map(|p| p.problem) {
            self.flag(tenant, problem).await;
        }
        let recorded = match self.store.record_replies_batch(tenant, &records).await {
            Ok(recorded) => recorded,
            Err(e) => {
                let refused = e.is_refusal();
                let e = Retry::from(e);
                if refused {
                    // Nothing was written (the call is one transaction): give the claims
                    // back, so the one-by-one run claims them again at once — and the
                    // replies recorded with them, none of which was sent.
                    self.give_back(tenant, attempt, messages).await;
                    return Err(Refused {
                        step: "record",
                        reason: e.0,
                    });
                }
                // The call may have committed with its answer lost. Nothing was sent: what
                // it recorded goes back, so the redelivery answers the messages.
                self.give_back(tenant, attempt, messages).await;
                return Ok(plans
                    .iter()
                    .zip(&again)
                    .zip(&foreseen)
                    .map(|((plan, again), foreseen)| match (plan, again, foreseen) {
                        (Some(_), _, _) | (None, None, Some(_)) => Err(e.clone()),
                        (None, Some(why), _) => Err(Retry(why.clone())),
                        (None, None, None) => Ok(Outcome::Duplicate),
                    })
                    .collect());
            }
        };
        let mut recorded = recorded.into_iter();
        let steps: Vec<Step> = plans
            .into_iter()
            .zip(again)
            .zip(foreseen)
            .map(|((plan, again), foreseen)| match (plan, again, foreseen) {
                (None, _, Some((plan, recorded))) => Step::Send(plan, recorded),
                (None, Some(why), None) => Step::Done(Err(Retry(why))),
                (None, None, None) => Step::Done(Ok(Outcome::Duplicate)),
                (
                    Some(Plan {
                        silent: Some(why), ..
                    }),
                    _,
                    _,
                ) => {
                    recorded.next();
                    Step::Done(Ok(Outcome::Silent(why)))
                }
                (Some(plan), _, _) => Step::Send(plan, recorded.next().unwrap_or_default()),
            })
            .collect();

        // The token is opened once for the batch, and only when something is to be sent.
        let token = match &self.outbox {
            Outbox::Graph(_) if steps.iter().any(|s| matches!(s, Step::Send(..))) => {
                match self.whatsapp_token(ctx).await {
                    Ok(token) => Some(token),
                    Err(e) => return Ok(self.unsendable(tenant, messages, steps, e).await),
                }
            }
            _ => None,
        };
        let deliveries: Vec<Option<Delivery>> =
            futures_util::future::join_all(messages.iter().zip(&steps).map(|(msg, step)| {
                let token = token.as_ref();
                async move {
                    match step {
                        // A panic while sending fails this message only. Its replies stay
                        // `pending` (one may have gone out), so the redelivery sends none twice.
                        Step::Send(plan, recorded) => Some(
                            AssertUnwindSafe(
                                self.send_replies(ctx, token, msg, &plan.replies, recorded)
                                    .instrument(msg.span.clone()),
                            )
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| {
                                let _in_job = msg.span.enter();
                                tracing::error!(
                                    "the responder panicked while sending to this customer"
                                );
                                Delivery {
                                    retry: Some("the responder panicked".into()),
                                    ..Delivery::default()
                                }
                            }),
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
        Ok(steps
            .into_iter()
            .zip(deliveries)
            .map(|(step, delivery)| match (step, delivery) {
                (Step::Done(r), _) => r,
                (Step::Send(..), Some(d)) => {
                    marked.as_ref().map_err(Clone::clone)?;
                    d.outcome()
                }
                (Step::Send(..), None) => Err(Retry("a reply was not sent".into())),
            })
            .collect())
    }
}

/// The messages' wamids, as the store's calls take them.
fn ids<'a>(messages: &'a [Incoming<'_>]) -> Vec<&'a str> {
    messages
        .iter()
        .map(|m| m.m.wa_message_id.as_str())
        .collect()
}

/// How long [`Responder::give_back`] keeps trying, half a second apart: a database restarting
/// for a few seconds is waited out, well within the claims' lease. A wave whose claim or
/// record failed sends nothing, so the send's share of `ResponderOptions::wave_budget` covers
/// this time.
const GIVE_BACK_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Where a message stands after its replies are recorded.
pub(super) enum Step {
    Done(Result<Outcome, Retry>),
    Send(Plan, Vec<RecordedReply>),
}
