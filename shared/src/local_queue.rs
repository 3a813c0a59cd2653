//! The in-process queue of `alphadome serve`: the same semantics the responder gets from SQS
//! FIFO, without AWS. Jobs of one conversation (group) run one at a time, in order; groups
//! run concurrently, and a worker hands the heads of up to `max_batch` ready groups to the
//! handler at once (as Lambda receives a batch of SQS records). A job that fails is retried with exponential backoff while the rest of
//! its group waits; after the last attempt it is parked (the local dead-letter queue) and
//! reported, never silently dropped. `drain` stops intake and waits for in-flight work.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::{mpsc, Notify};

use crate::job::Job;

/// What handling one job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Done,
    /// Try again later (the reason is for the log: no message content in it).
    Retry(String),
}

/// The job handler: gets jobs of distinct conversations, returns one result per job, in order.
pub type Handler =
    Arc<dyn Fn(Vec<Job>) -> Pin<Box<dyn Future<Output = Vec<Handled>> + Send>> + Send + Sync>;

/// Retry policy, the local twin of SQS's visibility timeout and maxReceiveCount.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// A job that used up its attempts.
#[derive(Debug, Clone)]
pub struct ParkedJob {
    pub job: Job,
    pub attempts: u32,
    pub last_error: String,
}

#[derive(Default)]
struct State {
    groups: HashMap<String, VecDeque<(Job, u32)>>,
    /// Groups with a worker on them (or a retry pending): never scheduled twice.
    busy: std::collections::HashSet<String>,
    pending: usize,
    closed: bool,
    parked: Vec<ParkedJob>,
    processed: u64,
}

/// Handle to the queue; cheap to clone.
#[derive(Clone)]
pub struct LocalQueue {
    state: Arc<Mutex<State>>,
    ready: mpsc::UnboundedSender<String>,
    idle: Arc<Notify>,
}

/// The queue refuses new jobs once draining began.
#[derive(Debug, thiserror::Error)]
#[error("the in-process queue is shutting down")]
pub struct QueueClosed;

impl LocalQueue {
    /// Starts `workers` workers that run `handler` on up to `max_batch` jobs at a time.
    pub fn start(handler: Handler, workers: usize, max_batch: usize, policy: RetryPolicy) -> Self {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        let queue = Self {
            state: Arc::default(),
            ready: tx,
            idle: Arc::new(Notify::new()),
        };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let (queue, rx, handler) = (queue.clone(), rx.clone(), handler.clone());
            tokio::spawn(async move {
                loop {
                    let mut groups = Vec::new();
                    {
                        let mut rx = rx.lock().await;
                        match rx.recv().await {
                            Some(g) => groups.push(g),
                            None => return,
                        }
                        // Whatever else is ready joins the batch; nothing waits for it.
                        while groups.len() < max_batch.max(1) {
                            match rx.try_recv() {
                                Ok(g) => groups.push(g),
                                Err(_) => break,
                            }
                        }
                    }
                    queue.run_heads(groups, &handler, policy).await;
                }
            });
        }
        queue
    }

    /// Appends a job to its conversation.
    pub fn push(&self, job: Job) -> Result<(), QueueClosed> {
        let group = job.group_id();
        let schedule = {
            let mut st = self.state.lock().expect("queue state poisoned");
            if st.closed {
                return Err(QueueClosed);
            }
            st.groups
                .entry(group.clone())
                .or_default()
                .push_back((job, 0));
            st.pending += 1;
            st.busy.insert(group.clone())
        };
        if schedule {
            let _ = self.ready.send(group);
        }
        Ok(())
    }

    /// Runs the head job of each group, together. A group with more jobs goes back to the
    /// ready list; one whose head failed waits out its backoff first.
    async fn run_heads(&self, groups: Vec<String>, handler: &Handler, policy: RetryPolicy) {
        let heads: Vec<(String, Job, u32)> = {
            let mut st = self.state.lock().expect("queue state poisoned");
            groups
                .into_iter()
                .filter_map(
                    |group| match st.groups.get(&group).and_then(|q| q.front().cloned()) {
                        Some((job, attempts)) => Some((group, job, attempts)),
                        None => {
                            st.groups.remove(&group);
                            st.busy.remove(&group);
                            None
                        }
                    },
                )
                .collect()
        };
        if heads.is_empty() {
            return;
        }
        // A panicking handler fails this batch's jobs (they are retried like any failure)
        // and never the worker: its groups would otherwise stay busy for good.
        let jobs = heads.iter().map(|(_, job, _)| job.clone()).collect();
        let results = match std::panic::AssertUnwindSafe(handler(jobs))
            .catch_unwind()
            .await
        {
            Ok(results) => results,
            Err(_) => {
                tracing::error!(
                    jobs = heads.len(),
                    "the job handler panicked; its jobs will be retried"
                );
                Vec::new()
            }
        };
        let mut results = results.into_iter();
        for (group, job, attempts) in heads {
            let result = results.next().unwrap_or_else(|| {
                Handled::Retry("the handler returned no result (or panicked)".into())
            });
            match result {
                Handled::Done => self.finish_head(&group, None),
                Handled::Retry(reason) => {
                    let attempts = attempts + 1;
                    if attempts >= policy.max_attempts {
                        tracing::error!(
                            group, attempts, reason = %reason,
                            "job parked after its last attempt (see `parked`); the conversation goes on"
                        );
                        self.finish_head(
                            &group,
                            Some(ParkedJob {
                                job,
                                attempts,
                                last_error: reason,
                            }),
                        );
                        continue;
                    }
                    let backoff = policy
                        .first_backoff
                        .saturating_mul(2u32.saturating_pow(attempts - 1))
                        .min(policy.max_backoff);
                    tracing::warn!(group, attempts, backoff_ms = backoff.as_millis() as u64, reason = %reason, "job will be retried");
                    {
                        let mut st = self.state.lock().expect("queue state poisoned");
                        if let Some(front) = st.groups.get_mut(&group).and_then(|q| q.front_mut()) {
                            front.1 = attempts;
                        }
                    }
                    // The group waits; the worker goes back to other groups.
                    let ready = self.ready.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(backoff).await;
                        let _ = ready.send(group);
                    });
                }
            }
        }
    }

    /// Removes a group's head; the group goes back to the ready list if it has more jobs, and
    /// stops being busy otherwise (both under the lock, so a job pushed meanwhile is never
    /// stranded).
    fn finish_head(&self, group: &str, parked: Option<ParkedJob>) {
        let mut st = self.state.lock().expect("queue state poisoned");
        let more = match st.groups.get_mut(group) {
            Some(q) => {
                q.pop_front();
                !q.is_empty()
            }
            None => false,
        };
        if more {
            let _ = self.ready.send(group.to_owned());
        } else {
            st.groups.remove(group);
            st.busy.remove(group);
        }
        st.pending -= 1;
        st.processed += 1;
        if let Some(p) = parked {
            st.parked.push(p);
        }
        if st.pending == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Jobs waiting or in flight.
    pub fn pending(&self) -> usize {
        self.state.lock().expect("queue state poisoned").pending
    }

    /// Jobs handled (done or parked) since start.
    pub fn processed(&self) -> u64 {
        self.state.lock().expect("queue state poisoned").processed
    }

    /// Jobs that used up their attempts.
    pub fn parked(&self) -> Vec<ParkedJob> {
        self.state
            .lock()
            .expect("queue state poisoned")
            .parked
            .clone()
    }

    /// Waits until nothing is pending (without closing).
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.pending() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Stops intake and waits up to `timeout` for in-flight and queued work; returns how many
    /// jobs were still pending when it gave up (0 when drained).
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.state.lock().expect("queue state poisoned").closed = true;
        let _ = tokio::time::timeout(timeout, self.wait_idle()).await;
        self.pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{EventKind, InboundMessage, WebhookEvent};

    fn job(customer: &str, n: u32) -> Job {
        Job::new(
            uuid::Uuid::nil(),
            WebhookEvent {
                phone_number_id: "110000000001".into(),
                kind: EventKind::Message(InboundMessage {
                    wa_message_id: format!("wamid.{customer}.{n}"),
                    from_wa_id: Some(customer.into()),
                    from_user_id: None,
                    profile_name: None,
                    timestamp: 0,
                    message_type: "text".into(),
                    text: Some("hello".into()),
                    reply_id: None,
                    media_id: None,
                    media_mime_type: None,
                    context_message_id: None,
                    referral_source_id: None,
                }),
            },
        )
    }

    /// A handler that records each batch's wamids, answers `Done` except for the customer
    /// `fails`, and takes a little time so that work piles up behind it.
    fn recording(batches: Arc<Mutex<Vec<Vec<String>>>>, fails: &'static str) -> Handler {
        Arc::new(move |jobs: Vec<Job>| {
            let batches = batches.clone();
            Box::pin(async move {
                batches
                    .lock()
                    .unwrap()
                    .push(jobs.iter().map(|j| j.wa_message_id().to_owned()).collect());
                tokio::time::sleep(Duration::from_millis(20)).await;
                jobs.iter()
                    .map(|j| match j.wa_message_id().contains(fails) {
                        true => Handled::Retry("graph: 503".into()),
                        false => Handled::Done,
                    })
                    .collect()
            })
        })
    }

    #[tokio::test]
    async fn a_worker_takes_the_heads_of_ready_conversations_together_each_in_order() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let queue = LocalQueue::start(
            recording(batches.clone(), "none"),
            1,
            10,
            RetryPolicy::default(),
        );
        for n in 0..4 {
            for customer in ["254700000001", "254700000002", "254700000003"] {
                queue.push(job(customer, n)).unwrap();
            }
        }
        tokio::time::timeout(Duration::from_secs(10), queue.wait_idle())
            .await
            .expect("the queue drains");
        let batches = batches.lock().unwrap().clone();
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 12);
        assert!(
            batches.iter().any(|b| b.len() > 1),
            "batches formed: {batches:?}"
        );
        for batch in &batches {
            let mut customers: Vec<&str> = batch.iter().map(|w| &w[6..18]).collect();
            customers.sort_unstable();
            customers.dedup();
            assert_eq!(
                customers.len(),
                batch.len(),
                "one job per conversation: {batch:?}"
            );
        }
        for customer in ["254700000001", "254700000002", "254700000003"] {
            let order: Vec<&String> = batches
                .iter()
                .flatten()
                .filter(|w| w.contains(customer))
                .collect();
            let expected: Vec<String> = (0..4).map(|n| format!("wamid.{customer}.{n}")).collect();
            assert_eq!(order, expected.iter().collect::<Vec<_>>(), "in order");
        }
        assert_eq!(queue.processed(), 12);
        assert!(queue.parked().is_empty());
    }

    #[tokio::test]
    async fn a_failing_job_is_retried_then_parked_while_its_batch_mates_finish() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let policy = RetryPolicy {
            max_attempts: 3,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        };
        let queue = LocalQueue::start(recording(batches.clone(), "254700000009.0"), 2, 10, policy);
        queue.push(job("254700000009", 0)).unwrap();
        queue.push(job("254700000009", 1)).unwrap();
        queue.push(job("254700000001", 0)).unwrap();
        queue.push(job("254700000001", 1)).unwrap();
        tokio::time::timeout(Duration::from_secs(10), queue.wait_idle())
            .await
            .expect("the queue drains");
        let parked = queue.parked();
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].job.wa_message_id(), "wamid.254700000009.0");
        assert_eq!(parked[0].attempts, 3);
        assert_eq!(parked[0].last_error, "graph: 503");
        let seen: Vec<String> = batches.lock().unwrap().iter().flatten().cloned().collect();
        assert_eq!(
            seen.iter().filter(|w| w.ends_with("9.0")).count(),
            3,
            "three attempts"
        );
        let first_try = seen.iter().position(|w| w.ends_with("9.0")).unwrap();
        let next = seen.iter().position(|w| w.ends_with("9.1")).unwrap();
        assert!(
            next > first_try,
            "the conversation's next job waited behind the failing one"
        );
        assert_eq!(queue.processed(), 4, "the rest was done, nothing lost");
    }

    #[tokio::test]
    async fn a_handler_that_panics_costs_a_retry_not_the_worker_and_the_conversation_goes_on() {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = calls.clone();
        // Panics on its first call only.
        let handler: Handler = Arc::new(move |jobs: Vec<Job>| {
            let first = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            Box::pin(async move {
                if first {
                    panic!("injected fault");
                }
                jobs.iter().map(|_| Handled::Done).collect()
            })
        });
        let policy = RetryPolicy {
            max_attempts: 3,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        };
        // One worker: if the panic killed it, nothing would ever drain.
        let queue = LocalQueue::start(handler, 1, 10, policy);
        queue.push(job("254700000001", 0)).unwrap();
        queue.push(job("254700000001", 1)).unwrap();
        queue.push(job("254700000002", 0)).unwrap();
        tokio::time::timeout(Duration::from_secs(10), queue.wait_idle())
            .await
            .expect("the worker survived and the queue drained");
        assert_eq!(queue.processed(), 3);
        assert!(queue.parked().is_empty(), "retried, then done");
    }
}
