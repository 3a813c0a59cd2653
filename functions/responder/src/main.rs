//! The responder Lambda: builds its services once per cold start, then answers SQS batches.

use alphadome::responder::Outbox;
use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alphadome::telemetry::init(alphadome::telemetry::LogFormat::Json);
    let services = alphadome::ingress::Services::from_env_with(4, true).await?;
    let responder = services.responder(Outbox::Graph(services.whatsapp()));
    run(service_fn(|event| responder::handle(&responder, event))).await
}
