//! An SQS batch in FIFO waves: wave k holds the k-th record of every message group still
//! going, so records of one conversation run in order while groups share database round trips.

use std::collections::VecDeque;

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

/// A batch record and its job (`None`: the body is not a job this code can read).
type Pending = (BatchRecord, Option<Job>);

impl Responder {
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
