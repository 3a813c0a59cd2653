//! The webhook Lambda: builds its services once per cold start, then serves API Gateway.

use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    alphadome::telemetry::init(alphadome::telemetry::LogFormat::Json);
    let services = alphadome::ingress::Services::from_env_with(2, true).await?;
    let ingress = services.ingress(services.sqs_queue()?);
    run(service_fn(|req| webhook::handle(&ingress, req))).await
}
