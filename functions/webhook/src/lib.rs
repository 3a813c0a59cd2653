//! The webhook Lambda's wiring: the core's HTTP router over the SQS queue. `lambda_http`
//! turns each API Gateway event into an `http::Request` and hands it to the router, which
//! makes every decision (see `alphadome::http`).

use alphadome::app::App;

/// The router the webhook Lambda serves: `/webhook` and `/healthz`, enqueueing to SQS.
pub fn router(app: &App) -> anyhow::Result<axum::Router> {
    let ingress = app.ingress(app.sqs_queue()?);
    Ok(app.router(ingress, None))
}
