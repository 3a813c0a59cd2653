//! The AWS SDK configuration shared by every client: our own rustls+ring HTTP client (the
//! workspace's one TLS stack), the standard environment (`AWS_REGION`, `AWS_ENDPOINT_URL`,
//! credentials), and timeouts that fit inside a Lambda invocation.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use std::time::Duration;

/// The HTTP client every AWS SDK client uses: rustls with ring, like the rest of the workspace.
pub fn http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Loads the SDK configuration from the environment, once per process.
pub async fn load_sdk_config() -> SdkConfig {
    loader().load().await
}

/// The configuration loader with our HTTP client and timeouts, for callers that add to it.
pub fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(6))
                .build(),
        )
}
