//! The AWS SDK configuration shared by every client: our own rustls+ring HTTP client (the
//! workspace's one TLS stack), the standard environment (`AWS_REGION`, `AWS_ENDPOINT_URL`,
//! credentials), and timeouts that fit inside a Lambda invocation.
//!
//! The client trusts Amazon Trust Services' roots, compiled in, rather than the machine's
//! certificate store: AWS endpoints chain to those roots, and reading and parsing the
//! system's bundle and directory (several hundred certificates) was the largest single
//! cost of a cold start. An `https` custom endpoint outside AWS (a TLS emulator, a proxy
//! with its own CA) gets the machine's store, as before.

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext, TrustStore};
use std::time::Duration;

/// Amazon Trust Services' root CAs (Amazon Root CA 1–4, Starfield Services Root CA G2):
/// <https://www.amazontrust.com/repository/>.
pub const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// Which roots the AWS SDK's TLS connections trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsTrust {
    /// Amazon Trust Services' roots only (no file read at start-up).
    AmazonRoots,
    /// The machine's certificate store: an `https` endpoint outside AWS is configured.
    Native,
}

impl AwsTrust {
    /// The choice for these environment variables: native only when some `AWS_ENDPOINT_URL*`
    /// points at an `https` host that is not AWS's.
    pub fn for_env<K: AsRef<str>, V: AsRef<str>>(vars: impl IntoIterator<Item = (K, V)>) -> Self {
        let foreign_tls = vars.into_iter().any(|(k, v)| {
            let v = v.as_ref();
            k.as_ref().starts_with("AWS_ENDPOINT_URL")
                && v.starts_with("https://")
                && !is_aws_host(v)
        });
        if foreign_tls {
            Self::Native
        } else {
            Self::AmazonRoots
        }
    }
}

fn is_aws_host(url: &str) -> bool {
    let host = url
        .trim_start_matches("https://")
        .split(['/', ':', '?'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    [".amazonaws.com", ".amazonaws.com.cn", ".api.aws"]
        .iter()
        .any(|suffix| host.ends_with(suffix))
}

/// The HTTP client every AWS SDK client uses: rustls with ring, like the rest of the workspace.
pub fn http_client() -> aws_sdk_sqs::config::SharedHttpClient {
    http_client_trusting(AwsTrust::for_env(std::env::vars()))
}

/// The HTTP client with the given trust.
pub fn http_client_trusting(trust: AwsTrust) -> aws_sdk_sqs::config::SharedHttpClient {
    let builder =
        aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring));
    match trust {
        AwsTrust::Native => builder.build_https(),
        AwsTrust::AmazonRoots => {
            let store = TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS);
            let context = TlsContext::builder()
                .with_trust_store(store)
                .build()
                .expect("a trust store of PEM certificates is a valid TLS context");
            builder.tls_context(context).build_https()
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_amazon_roots_are_five_valid_certificates() {
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> =
            rustls_pki_types::CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS)
                .collect::<Result<_, _>>()
                .expect("valid PEM");
        assert_eq!(certs.len(), 5);
        let mut roots = rustls::RootCertStore::empty();
        let (valid, invalid) = roots.add_parsable_certificates(certs);
        assert_eq!((valid, invalid), (5, 0));
    }

    #[test]
    fn only_an_https_endpoint_outside_aws_brings_back_the_machines_certificate_store() {
        assert_eq!(
            AwsTrust::for_env(std::iter::empty::<(&str, &str)>()),
            AwsTrust::AmazonRoots
        );
        assert_eq!(
            AwsTrust::for_env([("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]),
            AwsTrust::AmazonRoots,
            "plain http: no TLS at all"
        );
        assert_eq!(
            AwsTrust::for_env([(
                "AWS_ENDPOINT_URL_SQS",
                "https://sqs.eu-west-1.amazonaws.com"
            )]),
            AwsTrust::AmazonRoots
        );
        assert_eq!(
            AwsTrust::for_env([(
                "AWS_ENDPOINT_URL",
                "https://vpce-0a1b.sqs.us-east-1.vpce.amazonaws.com:443/"
            )]),
            AwsTrust::AmazonRoots
        );
        assert_eq!(
            AwsTrust::for_env([("AWS_ENDPOINT_URL", "https://localstack.internal:4566")]),
            AwsTrust::Native
        );
        assert_eq!(
            AwsTrust::for_env([("AWS_REGION", "https://not-an-endpoint.example")]),
            AwsTrust::AmazonRoots
        );
    }
}
