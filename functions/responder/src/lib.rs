//! The responder Lambda's translation layer: an SQS batch in, the core's per-record results
//! out as partial batch failures. No decision is made here.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use alphadome::responder::{BatchRecord, Responder};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};

/// The reply queue, for handing back records the invocation's deadline left unstarted.
#[derive(Clone)]
pub struct ReplyQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

/// Handles one SQS batch; failed records are returned for SQS to redeliver.
pub async fn handle(
    responder: &Responder,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    handle_with(responder, None, event).await
}

/// [`handle`] under the invocation's deadline: records no wave could start in time are
/// reported as failures and, with `queue`, made visible again at once (they were never
/// claimed, so nothing is to be released).
pub async fn handle_with(
    responder: &Responder,
    queue: Option<&ReplyQueue>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let deadline = deadline_of(&event.context);
    let mut handles = HashMap::new();
    let records = event
        .payload
        .records
        .into_iter()
        .map(|r| {
            let message_id = r.message_id.unwrap_or_default();
            if let Some(h) = r.receipt_handle {
                handles.insert(message_id.clone(), h);
            }
            BatchRecord {
                message_id,
                group_id: r.attributes.get("MessageGroupId").cloned(),
                body: r.body.unwrap_or_default(),
            }
        })
        .collect();
    let outcome = responder.handle_batch_until(records, deadline).await;
    if let (Some(q), false) = (queue, outcome.not_started.is_empty()) {
        let unstarted: Vec<&str> = outcome
            .not_started
            .iter()
            .filter_map(|id| handles.get(id).map(String::as_str))
            .collect();
        if let Err(e) =
            alphadome::sqs_consumer::make_visible_now(&q.client, &q.url, &unstarted).await
        {
            tracing::warn!(error = %format!("{e:#}"), records = unstarted.len(), "could not hand unstarted records back; they return after the visibility timeout");
        }
    }
    let mut response = SqsBatchResponse::default();
    for id in outcome.into_failures() {
        response.add_failure(id);
    }
    Ok(response)
}

/// The invocation's deadline as an `Instant` (none when the runtime gave none: a test's
/// default context).
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<Instant> {
    if context.deadline == 0 {
        return None;
    }
    let left = context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Some(Instant::now() + left)
}
