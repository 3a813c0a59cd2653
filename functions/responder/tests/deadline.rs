//! The responder never runs into the function's timeout: under the invocation's deadline it
//! starts no wave the time left cannot cover, reports the records it did not start as batch
//! item failures without claiming them, and makes them visible again at once (moto's SQS),
//! so the next delivery answers each exactly once — counted at the Graph stand-in.

mod common;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::*;

/// Graph's text sends, as (context message id, body), read receipts left out.
async fn answered(graph: &MockServer) -> Vec<(String, String)> {
    sends(graph)
        .await
        .iter()
        .map(|r| {
            let b = body(r);
            (
                b["context"]["message_id"].as_str().unwrap_or("").to_owned(),
                b["text"]["body"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// A FIFO queue on moto with a visibility timeout long enough that only a hand-back can
/// bring a record back within the test.
async fn queue(sdk: &aws_config::SdkConfig) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let url = sqs
        .create_queue()
        .queue_name(format!("deadline-{}.fifo", uuid::Uuid::new_v4().simple()))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "120")
        .send()
        .await
        .expect("moto on 127.0.0.1:5000: run scripts/test-services.sh")
        .queue_url
        .unwrap();
    (sqs, url)
}

/// Receives what the queue has visible now, as Lambda's event source mapping delivers it.
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> aws_lambda_events::event::sqs::SqsEvent {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
        .send()
        .await
        .unwrap();
    let records: Vec<serde_json::Value> = out
        .messages()
        .iter()
        .map(|m| {
            serde_json::json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": {"MessageGroupId": m.attributes().and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))},
                "messageAttributes": {},
                "eventSource": "aws:sqs"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// An invocation context whose deadline is `left` from now.
fn context_with(left: Duration) -> lambda_runtime::Context {
    let mut ctx = lambda_runtime::Context::default();
    ctx.deadline = (std::time::SystemTime::now() + left)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ctx
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn records_a_short_deadline_leaves_unstarted_are_handed_back_unclaimed_and_answered_once_next_time(
    pool: PgPool,
) {
    let w = world_with(
        pool,
        ResponderOptions {
            ai_deadline: Duration::from_millis(1500),
            wave_budget: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .await;
    accept_sends(&w.graph).await;
    let (sqs, url) = queue(&sdk().await).await;
    // One customer's three messages (one FIFO group: three waves) and another customer's one.
    let jobs = [
        message(&w.a, A_PNID, "wamid.d1", "Can I pay with M-Pesa?"),
        message(&w.a, A_PNID, "wamid.d2", "What are your opening hours?"),
        message(&w.a, A_PNID, "wamid.d3", "Hello"),
        message_from(
            &w.b,
            B_PNID,
            "wamid.d4",
            "Do you do braids?",
            "254711000333",
        ),
    ];
    alphadome::queue::JobQueue::Sqs {
        client: sqs.clone(),
        url: url.clone(),
    }
    .enqueue(&jobs)
    .await
    .unwrap();
    let event = receive(&sqs, &url).await;
    assert_eq!(event.records.len(), 4);
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    let handles: Vec<String> = event
        .records
        .iter()
        .map(|r| r.receipt_handle.clone().unwrap())
        .collect();
    let reply_queue = responder::ReplyQueue {
        client: sqs.clone(),
        url: url.clone(),
    };

    // 2 s left, 5 s needed per wave: the first wave runs, the second does not start.
    let resp = responder::handle_with(
        &w.responder,
        Some(&reply_queue),
        lambda_runtime::LambdaEvent::new(event, context_with(Duration::from_secs(2))),
    )
    .await
    .unwrap();
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec![ids[1].as_str(), ids[2].as_str()]);
    let first: Vec<String> = answered(&w.graph)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(first.len(), 2);
    assert!(first.contains(&"wamid.d1".to_owned()) && first.contains(&"wamid.d4".to_owned()));
    // Not started means not claimed: nothing to release, no lease to wait out.
    let claimed: i64 = sqlx::query_scalar(
        "select count(*) from public.conversations where wa_message_id in ('wamid.d2', 'wamid.d3')",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(claimed, 0, "records not started took no claim");

    // The event source mapping deletes what succeeded (the group's first record must go
    // before FIFO hands out the rest of the group).
    for (id, handle) in ids.iter().zip(&handles) {
        if !failed.contains(&id.as_str()) {
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(handle)
                .send()
                .await
                .unwrap();
        }
    }
    // Handed back at once: received again now, not after the 120 s visibility timeout.
    let again = receive(&sqs, &url).await;
    let again_ids: Vec<String> = again
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(again_ids, vec![ids[1].clone(), ids[2].clone()]);
    let resp = responder::handle_with(
        &w.responder,
        Some(&reply_queue),
        lambda_runtime::LambdaEvent::new(again, context_with(Duration::from_secs(60))),
    )
    .await
    .unwrap();
    assert!(resp.batch_item_failures.is_empty());

    // Counted at Graph: each message answered exactly once, d2 before d3.
    let all = answered(&w.graph).await;
    let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
    for (id, _) in &all {
        *per.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(
        per,
        [
            ("wamid.d1", 1),
            ("wamid.d2", 1),
            ("wamid.d3", 1),
            ("wamid.d4", 1)
        ]
        .into_iter()
        .collect()
    );
    let order: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    let pos = |id| order.iter().position(|o| *o == id).unwrap();
    assert!(pos("wamid.d2") < pos("wamid.d3"), "the group's order holds");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn without_a_deadline_every_wave_runs(pool: PgPool) {
    let w = world_with(
        pool,
        ResponderOptions {
            ai_deadline: Duration::from_millis(1500),
            wave_budget: Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .await;
    accept_sends(&w.graph).await;
    let jobs = [
        message(&w.a, A_PNID, "wamid.n1", "Can I pay with M-Pesa?"),
        message(&w.a, A_PNID, "wamid.n2", "What are your opening hours?"),
    ];
    // The default context (deadline 0: none given) runs the whole batch.
    let resp = responder::handle(
        &w.responder,
        lambda_runtime::LambdaEvent::new(sqs_event(&jobs), Default::default()),
    )
    .await
    .unwrap();
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(answered(&w.graph).await.len(), 2);
}
