//! The webhook Lambda: builds its services once per cold start, then serves API Gateway
//! through the core's router.

use alphadome::app::{App, AppOptions};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    alphadome::telemetry::init(alphadome::telemetry::LogFormat::Json);
    let app = App::from_env(AppOptions::lambda(2)).await?;
    lambda_http::run(webhook::router(&app)?).await
}
