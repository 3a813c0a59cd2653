//! The harness every test crate shares (zero2prod's `spawn_app`): an [`App`] built by the
//! same composition root as production, over a fresh test database, a private key directory,
//! the test platform secrets and the addresses of the stand-ins (Graph, OpenAI) a test runs.
//! Compiled only with the `testing` feature, which only dev-dependencies turn on.

use secrecy::SecretString;
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::app::App;
use crate::config::{PlatformSecrets, Settings};
use crate::domain::{PhoneNumber, PhoneNumberId};
use crate::keys::{KeyBackend, KeyProvider};
use crate::store::{NewTenant, Store, TenantSummary};

/// The Meta app secret test deliveries are signed with (never a real one).
pub const TEST_APP_SECRET: &str = "alphadome-test-app-secret";
/// The webhook verify token of the tests.
pub const TEST_VERIFY_TOKEN: &str = "alphadome-test-verify-token";

/// Where the stand-ins listen, and the platform's AI key if the test wants one.
#[derive(Debug, Clone, Default)]
pub struct StandIns {
    pub graph: Option<String>,
    pub openai: Option<String>,
    pub platform_ai_key: Option<String>,
}

/// A test's application.
pub struct TestApp {
    pub app: App,
    /// The local data-key directory (unless [`TestApp::with_keys`] replaced the provider).
    pub key_dir: PathBuf,
}

/// Builds the app over `pool`: settings from the stand-ins only (nothing read from the
/// process environment), local data keys in a fresh directory, the test platform secrets.
pub fn spawn_app(pool: PgPool, stand_ins: StandIns) -> TestApp {
    let key_dir =
        std::env::temp_dir().join(format!("alphadome-test-keys-{}", uuid::Uuid::new_v4()));
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("KEY_PROVIDER", "local".to_owned()),
        ("LOCAL_KEY_DIR", key_dir.display().to_string()),
    ]);
    if let Some(graph) = &stand_ins.graph {
        vars.insert("WHATSAPP_API_BASE_URL", graph.clone());
    }
    if let Some(openai) = &stand_ins.openai {
        vars.insert("OPENAI_BASE_URL", openai.clone());
    }
    let settings =
        Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings are valid");
    let secrets = PlatformSecrets {
        meta_app_secret: Some(SecretString::from(TEST_APP_SECRET)),
        meta_verify_token: Some(SecretString::from(TEST_VERIFY_TOKEN)),
        openai_api_key: stand_ins.platform_ai_key.map(SecretString::from),
        database_url: None,
        dashboard: Default::default(),
    };
    let keys = KeyProvider::new(
        KeyBackend::LocalDir(key_dir.clone()),
        Duration::from_secs(60),
    );
    TestApp {
        app: App::from_parts(settings, secrets, Store::from_pool(pool), keys),
        key_dir,
    }
}

/// The AWS SDK pointed at moto (`ALPHADOME_TEST_AWS_ENDPOINT`, default 127.0.0.1:5000).
pub async fn moto_sdk() -> aws_config::SdkConfig {
    crate::aws::loader()
        .endpoint_url(
            std::env::var("ALPHADOME_TEST_AWS_ENDPOINT")
                .unwrap_or_else(|_| "http://127.0.0.1:5000".into()),
        )
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}

impl TestApp {
    /// The same app with another key provider (e.g. Secrets Manager on moto).
    pub fn with_keys(mut self, keys: KeyProvider) -> Self {
        self.app.keys = keys;
        self
    }

    /// The same app with another AWS SDK configuration (e.g. [`moto_sdk`]).
    pub fn with_sdk(mut self, sdk: aws_config::SdkConfig) -> Self {
        self.app.sdk = sdk;
        self
    }

    /// The same app with the legacy single-tenant route set.
    pub fn with_legacy(mut self, legacy: crate::config::LegacyRoute) -> Self {
        self.app.settings.legacy = Some(legacy);
        self
    }

    pub fn store(&self) -> &Store {
        &self.app.store
    }

    pub fn keys(&self) -> &KeyProvider {
        &self.app.keys
    }

    /// Onboards a business as the operator's CLI does.
    pub async fn onboard(&self, tenant: TestTenant<'_>) -> TenantSummary {
        self.app
            .store
            .create_tenant(
                &self.app.keys,
                NewTenant {
                    client_name: tenant.name.into(),
                    client_phone: PhoneNumber::parse(tenant.phone).expect("a test phone"),
                    phone_number_id: PhoneNumberId::parse(tenant.phone_number_id)
                        .expect("a test phone_number_id"),
                    contact_name: None,
                    brand_id: None,
                    whatsapp_token: tenant.token.map(|t| SecretString::from(t.to_owned())),
                    ai_api_key: tenant.ai_key.map(|k| SecretString::from(k.to_owned())),
                    meta_app_secret: None,
                    escalation_phone: tenant
                        .escalation_phone
                        .map(|p| PhoneNumber::parse(p).expect("a test phone")),
                    max_messages_per_hour: tenant.max_messages_per_hour,
                },
            )
            .await
            .expect("onboarding a test tenant")
    }
}

/// A business to onboard in a test.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestTenant<'a> {
    pub name: &'a str,
    pub phone: &'a str,
    pub phone_number_id: &'a str,
    pub token: Option<&'a str>,
    pub ai_key: Option<&'a str>,
    pub escalation_phone: Option<&'a str>,
    pub max_messages_per_hour: Option<i32>,
}

/// The `X-Hub-Signature-256` Meta would send for `body` with the test app secret.
pub fn sign(body: &[u8]) -> String {
    crate::webhook::sign(TEST_APP_SECRET.as_bytes(), body)
}
