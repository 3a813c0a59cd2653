//! Consuming the reply queue as Lambda's event source mapping does for the responder, so
//! the whole production path runs in one process (`alphadome serve` with `REPLY_QUEUE_URL`).
//!
//! Each poller long-polls SQS for up to ten records, hands them to the very batch handler
//! the responder Lambda calls ([`Responder::handle_batch_until`], under a deadline as a
//! function's timeout would set), deletes the records that are done (`DeleteMessageBatch`),
//! makes the records the deadline left unstarted visible again at once
//! (`ChangeMessageVisibilityBatch` to 0) and leaves failed records alone: they reappear after
//! the queue's visibility timeout, and the queue's redrive policy moves a record received
//! `maxReceiveCount` times to the dead-letter queue. Several pollers run at once, as Lambda
//! runs several invocations. On shutdown a poller abandons its long poll and finishes the
//! batch it holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName,
};
use serde::Serialize;

use crate::responder::{BatchOutcome, BatchRecord, Responder};

/// With short polling (`wait_seconds` 0), the pause after an empty receive, doubled after
/// each further empty one up to [`IDLE_PAUSE_MAX`]. An emulator's receive costs work in
/// proportion to the queue's depth (moto's does), and a FIFO queue whose message groups are
/// all in flight answers empty however many records wait behind them: polling it twice a
/// second per poller kept moto busy with empty answers.
const IDLE_PAUSE_MIN: Duration = Duration::from_millis(250);
const IDLE_PAUSE_MAX: Duration = Duration::from_secs(4);

/// How the consumer polls.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Pollers running at once (Lambda's concurrent invocations).
    pub pollers: usize,
    /// Long-poll wait per receive, 0 to 20 seconds (Lambda's event source mapping waits 20).
    pub wait_seconds: i32,
    /// Records per batch, 1 to 10 (FIFO queues allow at most 10).
    pub max_messages: i32,
    /// The deadline of a batch from its receipt, as a function's timeout: no wave starts
    /// unless the time left covers the responder's wave budget.
    pub batch_timeout: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            pollers: 2,
            wait_seconds: 20,
            max_messages: 10,
            // The responder function's timeout in template.yaml.
            batch_timeout: Duration::from_secs(30),
        }
    }
}

/// What the consumers did since start (for the log and the tests).
#[derive(Debug, Default)]
pub struct ConsumerStats {
    pub batches: AtomicU64,
    pub received: AtomicU64,
    pub deleted: AtomicU64,
    pub failed: AtomicU64,
    pub handed_back: AtomicU64,
    pub queue_errors: AtomicU64,
}

/// A snapshot of [`ConsumerStats`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ConsumerCounts {
    pub batches: u64,
    pub received: u64,
    pub deleted: u64,
    /// Records left for redelivery after a failure.
    pub failed: u64,
    /// Records the deadline left unstarted, made visible again at once.
    pub handed_back: u64,
    /// Receive, delete or visibility calls that failed.
    pub queue_errors: u64,
}

impl ConsumerStats {
    pub fn counts(&self) -> ConsumerCounts {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConsumerCounts {
            batches: n(&self.batches),
            received: n(&self.received),
            deleted: n(&self.deleted),
            failed: n(&self.failed),
            handed_back: n(&self.handed_back),
            queue_errors: n(&self.queue_errors),
        }
    }
}

/// The queue's settings that decide whether consuming it is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFacts {
    pub visibility_timeout: Duration,
    /// The redrive policy's `maxReceiveCount`, when the queue has a dead-letter queue.
    pub max_receive_count: Option<u32>,
}

impl QueueFacts {
    /// Refuses a queue whose visibility timeout is shorter than the claim lease plus the
    /// batch timeout: a record would come back while the claim its first receipt took still
    /// holds, be taken for a duplicate and deleted, and a consumer that died holding that
    /// claim would leave the message unanswered. (The template's 180 s cover 120 + 30.)
    pub fn check(&self, lease: Duration, batch_timeout: Duration) -> anyhow::Result<()> {
        if self.visibility_timeout < lease + batch_timeout {
            anyhow::bail!(
                "the queue's VisibilityTimeout ({} s) must be at least the claim lease ({} s) plus the batch timeout ({} s): a redelivered record would find its claim still held",
                self.visibility_timeout.as_secs(),
                lease.as_secs(),
                batch_timeout.as_secs()
            );
        }
        Ok(())
    }
}

/// The consumer of one queue.
#[derive(Clone)]
pub struct SqsConsumer {
    client: aws_sdk_sqs::Client,
    url: String,
    responder: Responder,
    options: ConsumerOptions,
    stats: Arc<ConsumerStats>,
}

/// A received record: what the batch handler reads, and the handle to settle it with.
struct Received {
    record: BatchRecord,
    receipt_handle: String,
}

impl SqsConsumer {
    pub fn new(
        client: aws_sdk_sqs::Client,
        url: impl Into<String>,
        responder: Responder,
        options: ConsumerOptions,
    ) -> Self {
        Self {
            client,
            url: url.into(),
            responder,
            options,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> Arc<ConsumerStats> {
        self.stats.clone()
    }

    pub fn options(&self) -> &ConsumerOptions {
        &self.options
    }

    /// Reads the queue's visibility timeout and redrive policy.
    pub async fn queue_facts(&self) -> anyhow::Result<QueueFacts> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))
            .context("reading the queue's attributes")?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let visibility_timeout = attrs
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
            .ok_or_else(|| anyhow!("the queue reports no VisibilityTimeout"))?;
        let max_receive_count = attrs
            .get(&QueueAttributeName::RedrivePolicy)
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| match &p["maxReceiveCount"] {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .and_then(|n| u32::try_from(n).ok());
        Ok(QueueFacts {
            visibility_timeout,
            max_receive_count,
        })
    }

    /// Runs the pollers until `shutdown` turns true; each finishes the batch it holds.
    pub async fn run(&self, shutdown: tokio::sync::watch::Receiver<bool>) -> ConsumerCounts {
        let pollers = (0..self.options.pollers.max(1)).map(|n| {
            let (me, mut stop) = (self.clone(), shutdown.clone());
            tokio::spawn(async move {
                let mut backoff = Duration::from_millis(200);
                let mut idle = IDLE_PAUSE_MIN;
                loop {
                    if *stop.borrow() {
                        return;
                    }
                    let received = tokio::select! {
                        r = me.receive() => r,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    match received {
                        Ok(records) => {
                            backoff = Duration::from_millis(200);
                            if !records.is_empty() {
                                idle = IDLE_PAUSE_MIN;
                                me.settle(records).await;
                            } else if me.options.wait_seconds <= 0 {
                                // Short polling: pause between empty receives, longer after
                                // each empty one (a FIFO queue whose groups are all in flight
                                // answers empty however deep it is).
                                tokio::select! {
                                    _ = tokio::time::sleep(idle) => {}
                                    _ = stop.wait_for(|s| *s) => return,
                                }
                                idle = (idle * 2).min(IDLE_PAUSE_MAX);
                            }
                        }
                        Err(e) => {
                            me.stats.queue_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(poller = n, error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "receiving from the queue failed");
                            tokio::select! {
                                _ = tokio::time::sleep(backoff) => {}
                                _ = stop.wait_for(|s| *s) => return,
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            })
        });
        for p in futures_util::future::join_all(pollers).await {
            if let Err(e) = p {
                tracing::error!(error = %e, "a queue poller stopped abnormally");
            }
        }
        self.stats.counts()
    }

    /// One receive and its batch: the unit a test drives by hand. Returns what the batch
    /// handler reported (empty when the queue had nothing).
    pub async fn poll_once(&self) -> anyhow::Result<BatchOutcome> {
        let records = self.receive().await?;
        if records.is_empty() {
            return Ok(BatchOutcome::default());
        }
        Ok(self.settle(records).await)
    }

    /// One long poll.
    async fn receive(&self) -> anyhow::Result<Vec<Received>> {
        let wait = self.options.wait_seconds.clamp(0, 20);
        // The SDK's attempt timeout (a few seconds) would cut a long poll short.
        let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_attempt_timeout(Duration::from_secs(wait as u64 + 5))
            .operation_timeout(Duration::from_secs(wait as u64 + 10))
            .build();
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(self.options.max_messages.clamp(1, 10))
            .wait_time_seconds(wait)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::new().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let group_id = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .cloned();
                Some(Received {
                    record: BatchRecord {
                        message_id: m.message_id?,
                        group_id,
                        body: m.body.unwrap_or_default(),
                    },
                    receipt_handle: m.receipt_handle?,
                })
            })
            .collect())
    }

    /// Runs the batch handler over `records` under the batch deadline, then deletes what is
    /// done and makes what was not started visible again; failed records are left to reappear
    /// after the visibility timeout.
    async fn settle(&self, records: Vec<Received>) -> BatchOutcome {
        let deadline = Instant::now() + self.options.batch_timeout;
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .received
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let mut handles: HashMap<String, String> = records
            .iter()
            .map(|r| (r.record.message_id.clone(), r.receipt_handle.clone()))
            .collect();
        let order: Vec<String> = records
            .iter()
            .map(|r| r.record.message_id.clone())
            .collect();
        let outcome = self
            .responder
            .handle_batch_until(
                records.into_iter().map(|r| r.record).collect(),
                Some(deadline),
            )
            .await;
        let mut take = |ids: &[String]| -> Vec<(String, String)> {
            ids.iter()
                .filter_map(|id| handles.remove(id).map(|h| (id.clone(), h)))
                .collect()
        };
        let failed = take(&outcome.failed);
        let not_started = take(&outcome.not_started);
        let done: Vec<(String, String)> = order
            .iter()
            .filter_map(|id| handles.remove(id).map(|h| (id.clone(), h)))
            .collect();
        self.stats
            .failed
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        if let Err(e) = delete_batch(&self.client, &self.url, &done).await {
            // The records come back after the visibility timeout; their claims make them
            // duplicates then, deleted without a second answer.
            self.stats.queue_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %format!("{e:#}"), records = done.len(), "deleting handled records failed; they return as duplicates");
        } else {
            self.stats
                .deleted
                .fetch_add(done.len() as u64, Ordering::Relaxed);
        }
        if !not_started.is_empty() {
            let handles: Vec<&str> = not_started.iter().map(|(_, h)| h.as_str()).collect();
            match make_visible_now(&self.client, &self.url, &handles).await {
                Ok(()) => {
                    self.stats
                        .handed_back
                        .fetch_add(not_started.len() as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    self.stats.queue_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %format!("{e:#}"), records = not_started.len(), "could not hand records back; they return after the visibility timeout");
                }
            }
        }
        outcome
    }
}

/// Deletes handled records (`(message id, receipt handle)`), ten per call.
async fn delete_batch(
    client: &aws_sdk_sqs::Client,
    url: &str,
    records: &[(String, String)],
) -> anyhow::Result<()> {
    for chunk in records.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, handle))| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("d{i}"))
                    .receipt_handle(handle)
                    .build()
                    .map_err(|e| anyhow!("{e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = client
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        if !out.failed().is_empty() {
            anyhow::bail!(
                "the queue refused to delete {} of {} records",
                out.failed().len(),
                chunk.len()
            );
        }
    }
    Ok(())
}

/// Makes received records visible again at once (`ChangeMessageVisibilityBatch` to 0), ten
/// per call: records a batch's deadline left unstarted are received again by the next poll
/// instead of after the visibility timeout. SQS has counted their receipt all the same
/// (`ApproximateReceiveCount` toward the redrive policy's `maxReceiveCount`).
pub async fn make_visible_now(
    client: &aws_sdk_sqs::Client,
    url: &str,
    receipt_handles: &[&str],
) -> anyhow::Result<()> {
    for chunk in receipt_handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("v{i}"))
                    .receipt_handle(*handle)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| anyhow!("{e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let out = client
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        if !out.failed().is_empty() {
            anyhow::bail!(
                "the queue refused to change the visibility of {} of {} records",
                out.failed().len(),
                chunk.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_whose_visibility_timeout_does_not_cover_lease_and_batch_is_refused() {
        let facts = |s| QueueFacts {
            visibility_timeout: Duration::from_secs(s),
            max_receive_count: Some(5),
        };
        let (lease, batch) = (Duration::from_secs(120), Duration::from_secs(30));
        assert!(
            facts(180).check(lease, batch).is_ok(),
            "the template's queue"
        );
        assert!(facts(150).check(lease, batch).is_ok());
        let refused = facts(149).check(lease, batch).unwrap_err().to_string();
        assert!(refused.contains("VisibilityTimeout (149 s)"), "{refused}");
    }
}
