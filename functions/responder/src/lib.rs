//! The responder Lambda's translation layer: an SQS batch in, the core's per-record results
//! out as partial batch failures. No decision is made here.

use alphadome::responder::{BatchRecord, Responder};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};

/// Handles one SQS batch; failed records are returned for SQS to redeliver.
pub async fn handle(
    responder: &Responder,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let records = event
        .payload
        .records
        .into_iter()
        .map(|r| BatchRecord {
            message_id: r.message_id.unwrap_or_default(),
            group_id: r.attributes.get("MessageGroupId").cloned(),
            body: r.body.unwrap_or_default(),
        })
        .collect();
    let mut response = SqsBatchResponse::default();
    for id in responder.handle_batch(records).await {
        response.add_failure(id);
    }
    Ok(response)
}
