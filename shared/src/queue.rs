//! The reply queue between the webhook and the responder: SQS FIFO in production, an
//! in-process queue for `alphadome serve`. Enqueueing either succeeds for every job or
//! reports failure, so the webhook can tell Meta to retry.

use anyhow::anyhow;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::job::Job;

/// Why jobs could not be enqueued. No job content in the text.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue refused {failed} of {total} jobs")]
    Partial { failed: usize, total: usize },
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
}

/// Where jobs go.
#[derive(Clone)]
pub enum JobQueue {
    Sqs {
        client: aws_sdk_sqs::Client,
        url: String,
    },
    Local(crate::local_queue::LocalQueue),
}

impl JobQueue {
    pub fn describe(&self) -> String {
        match self {
            Self::Sqs { url, .. } => format!("sqs {url}"),
            Self::Local(_) => "in-process".to_owned(),
        }
    }

    /// Enqueues every job, in order; SQS batches of ten.
    pub async fn enqueue(&self, jobs: &[Job]) -> Result<(), QueueError> {
        match self {
            Self::Local(q) => {
                for job in jobs {
                    q.push(job.clone())
                        .map_err(|e| QueueError::Unavailable(e.to_string()))?;
                }
                Ok(())
            }
            Self::Sqs { client, url } => {
                for chunk in jobs.chunks(10) {
                    let entries = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, job)| {
                            SendMessageBatchRequestEntry::builder()
                                .id(format!("m{i}"))
                                .message_body(job.to_json())
                                .message_group_id(job.group_id())
                                .message_deduplication_id(job.dedup_id())
                                .build()
                                .map_err(|e| QueueError::Unavailable(e.to_string()))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let out = client
                        .send_message_batch()
                        .queue_url(url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| {
                            QueueError::Unavailable(format!(
                                "{:#}",
                                anyhow!(aws_sdk_sqs::error::DisplayErrorContext(e))
                            ))
                        })?;
                    if !out.failed().is_empty() {
                        return Err(QueueError::Partial {
                            failed: out.failed().len(),
                            total: chunk.len(),
                        });
                    }
                }
                Ok(())
            }
        }
    }
}
