//! The responder Lambda: builds its services once per cold start, then answers SQS batches.

use alphadome::app::{App, AppOptions};
use alphadome::responder::Outbox;
use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alphadome::telemetry::init(alphadome::telemetry::LogFormat::Json);
    let app = App::from_env(AppOptions::lambda(4)).await?;
    let responder = app.responder(Outbox::Graph(app.whatsapp()));
    // With the queue's URL, records the deadline left unstarted reappear at once.
    let queue = app
        .settings
        .reply_queue_url
        .clone()
        .map(|url| responder::ReplyQueue {
            client: aws_sdk_sqs::Client::new(&app.sdk),
            url,
        });
    run(service_fn(|event| {
        responder::handle_with(&responder, queue.as_ref(), event)
    }))
    .await
}
