//! The admin Lambda: the owners' dashboard. Builds its services once per cold start, then
//! serves API Gateway's `/admin` and `/admin/{proxy+}` through the core's dashboard routes.

use alphadome::app::{App, AppOptions};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    alphadome::telemetry::init(alphadome::telemetry::LogFormat::Json);
    let app = App::from_env(AppOptions::lambda(2)).await?;
    lambda_http::run(app.dashboard_router()?).await
}
