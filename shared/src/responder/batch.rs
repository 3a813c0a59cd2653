//! An SQS batch in FIFO waves: wave k holds the k-th record of every message group still
//! going, so records of one conversation run in order while groups share database round trips.
//!
//! A batch may carry a deadline (a Lambda invocation's, or `serve`'s consumer's batch
//! timeout): a wave is started only while the time left covers [`ResponderOptions::wave_budget`]
//! (the first wave always starts). Records never started are handed back untouched — no
//! claim was taken, so there is nothing to release — and the caller makes them visible again
//! at once ([`crate::queue::make_visible_now`]).
//!
//! [`ResponderOptions::wave_budget`]: super::ResponderOptions::wave_budget

use std::collections::VecDeque;
use std::time::Instant;

use super::Responder;
use crate::job::Job;

/// One record of a queue batch.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub message_id: String,
    /// SQS's MessageGroupId; derived from the job when absent.
    pub group_id: Option<String>,
    pub body: String,
}

/// What became of a batch's records that were not done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Records that failed, or follow a failure in their group: left for redelivery.
    pub failed: Vec<String>,
    /// Records not started because the deadline could not cover another wave (and the
    /// records after them in their groups). No claim was taken for them.
    pub not_started: Vec<String>,
}

impl BatchOutcome {
    /// Every record to report as a batch item failure (failed, then not started).
    pub fn into_failures(self) -> Vec<String> {
        let mut all = self.failed;
        all.extend(self.not_started);
        all
    }
}

/// A batch record and its job (`None`: the body is not a job this code can read).
type Pending = (BatchRecord, Option<Job>);

impl Responder {
    /// Handles a FIFO batch in waves: wave k holds the k-th record of every group still
    /// going, and [`Self::handle_jobs`] handles a wave together, so records of a group run in
    /// order and groups share the database round trips. After the first failure in a group,
    /// that record and every later record of the group are reported failed (so SQS
    /// redelivers them in order); returns the failed message ids.
    pub async fn handle_batch(&self, records: Vec<BatchRecord>) -> Vec<String> {
        self.handle_batch_until(records, None).await.into_failures()
    }

    /// [`Self::handle_batch`] with a deadline: no wave after the first starts unless the time
    /// left before `deadline` covers the wave budget; the records it would have held, and
    /// those after them, come back in [`BatchOutcome::not_started`].
    pub async fn handle_batch_until(
        &self,
        records: Vec<BatchRecord>,
        deadline: Option<Instant>,
    ) -> BatchOutcome {
        let mut groups: Vec<(String, VecDeque<Pending>)> = Vec::new();
        for r in records {
            let job = match Job::from_json(&r.body) {
                Ok(j) => Some(j),
                Err(e) => {
                    // A job this build cannot read is most likely from a newer webhook during a
                    // deploy: redelivery (and, at worst, a redrive from the DLQ) answers it.
                    tracing::error!(message_id = %r.message_id, error = %e, "queue record is not a job; left for redelivery");
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
        let mut outcome = BatchOutcome::default();
        let mut first_wave = true;
        loop {
            if !first_wave && !self.time_for_a_wave(deadline) {
                outcome.not_started.extend(
                    groups
                        .iter_mut()
                        .flat_map(|(_, records)| records.drain(..).map(|(r, _)| r.message_id)),
                );
                if !outcome.not_started.is_empty() {
                    tracing::warn!(
                        not_started = outcome.not_started.len(),
                        "the batch's deadline cannot cover another wave; records handed back unstarted"
                    );
                }
                return outcome;
            }
            first_wave = false;
            let mut wave: Vec<(usize, String, Job)> = Vec::new();
            for (g, (_, records)) in groups.iter_mut().enumerate() {
                match records.pop_front() {
                    Some((record, Some(job))) => wave.push((g, record.message_id, job)),
                    Some((record, None)) => {
                        outcome.failed.push(record.message_id);
                        outcome
                            .failed
                            .extend(records.drain(..).map(|(r, _)| r.message_id));
                    }
                    None => {}
                }
            }
            if wave.is_empty() {
                return outcome;
            }
            let jobs: Vec<Job> = wave.iter().map(|(_, _, job)| job.clone()).collect();
            let results = self.handle_jobs(&jobs).await;
            for ((g, message_id, _), result) in wave.into_iter().zip(results) {
                if result.is_err() {
                    outcome.failed.push(message_id);
                    outcome
                        .failed
                        .extend(groups[g].1.drain(..).map(|(r, _)| r.message_id));
                }
            }
        }
    }

    /// Whether the time left before `deadline` covers one more wave.
    fn time_for_a_wave(&self, deadline: Option<Instant>) -> bool {
        deadline.is_none_or(|d| {
            d.checked_duration_since(Instant::now())
                .is_some_and(|left| left >= self.options.wave_budget)
        })
    }
}
