//! The composition root: everything a process builds once from its settings — the platform
//! secret, the database pool, the key provider, the AWS SDK, the Graph and OpenAI clients,
//! the queue — and the webhook core, responder and HTTP router made from them. The Lambdas,
//! `alphadome serve`, `demo`, `loadtest` and the tests all start here.

use secrecy::SecretString;
use std::time::Duration;

use crate::config::{ConfigError, PlatformSecrets, Settings, REPLY_QUEUE_URL};
use crate::ingress::Ingress;
use crate::keys::KeyProvider;
use crate::openai::OpenAiClient;
use crate::queue::JobQueue;
use crate::responder::{Outbox, Responder, ResponderOptions};
use crate::store::Store;
use crate::whatsapp::WhatsAppClient;

/// How long an outbound call to Graph or OpenAI may take before it counts as a failure.
pub const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(8);

/// How a process connects to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseConnect {
    /// Connect (and fail) at start-up: the CLI and `serve` want to know at once.
    Eager,
    /// Connect on first use: a Lambda's init stays short and the first request opens the
    /// connection (it is billed either way, but init has a 10 s limit).
    Lazy,
}

/// What a process asks of the composition root.
#[derive(Debug, Clone, Copy)]
pub struct AppOptions {
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    pub connect: DatabaseConnect,
}

impl AppOptions {
    /// A Lambda function: a small pool, connected on first use.
    pub const fn lambda(max_connections: u32) -> Self {
        Self {
            max_connections,
            connect: DatabaseConnect::Lazy,
        }
    }

    /// A local process (CLI, `serve`): connected at start-up.
    pub const fn local(max_connections: u32) -> Self {
        Self {
            max_connections,
            connect: DatabaseConnect::Eager,
        }
    }
}

/// The services of one process, built once (a Lambda's cold start, the CLI's start).
#[derive(Clone)]
pub struct App {
    pub settings: Settings,
    pub secrets: PlatformSecrets,
    pub sdk: aws_config::SdkConfig,
    pub store: Store,
    pub keys: KeyProvider,
}

impl App {
    /// Reads the settings and the platform secret, then connects to the database.
    pub async fn from_env(options: AppOptions) -> anyhow::Result<Self> {
        let settings = Settings::from_env()?;
        let sdk = crate::aws::load_sdk_config().await;
        let secrets = crate::platform::load_platform_secrets(&settings, Some(&sdk)).await?;
        let url = crate::platform::database_url(&settings, &secrets)?;
        let store = match options.connect {
            DatabaseConnect::Lazy => Store::connect_lazy(&url, options.max_connections)?,
            DatabaseConnect::Eager => Store::connect(&url, options.max_connections).await?,
        };
        let keys = KeyProvider::from_settings(
            &settings.key_provider,
            Some(&sdk),
            settings.tenant_cache_ttl,
        )
        .await;
        Ok(Self {
            settings,
            secrets,
            sdk,
            store,
            keys,
        })
    }

    /// An app over parts the caller already holds (tests, `demo`): no environment read, no
    /// AWS unless `sdk` points somewhere.
    pub fn from_parts(
        settings: Settings,
        secrets: PlatformSecrets,
        store: Store,
        keys: KeyProvider,
    ) -> Self {
        Self {
            settings,
            secrets,
            sdk: aws_config::SdkConfig::builder().build(),
            store,
            keys,
        }
    }

    /// The same app with another AWS SDK configuration (tests point it at moto).
    pub fn with_sdk(self, sdk: aws_config::SdkConfig) -> Self {
        Self { sdk, ..self }
    }

    /// The SQS FIFO queue named by `REPLY_QUEUE_URL`.
    pub fn sqs_queue(&self) -> Result<JobQueue, ConfigError> {
        let url = self
            .settings
            .reply_queue_url
            .clone()
            .ok_or(ConfigError::Missing(REPLY_QUEUE_URL))?;
        Ok(JobQueue::Sqs {
            client: aws_sdk_sqs::Client::new(&self.sdk),
            url,
        })
    }

    /// The webhook's core over the given queue.
    pub fn ingress(&self, queue: JobQueue) -> Ingress {
        Ingress::new(
            self.store.clone(),
            self.keys.clone(),
            queue,
            self.secrets.meta_app_secret.clone(),
            self.secrets.meta_verify_token.clone(),
            self.settings.legacy.clone(),
            self.settings.tenant_cache_ttl,
        )
    }

    /// The responder's tunables from the settings.
    pub fn responder_options(&self) -> ResponderOptions {
        ResponderOptions {
            default_model: self.settings.openai_model.clone(),
            transcribe_model: self.settings.openai_transcribe_model.clone(),
            context_ttl: self.settings.tenant_cache_ttl,
            ai_limits: crate::responder::policy::AiLimits::for_settings(&self.settings),
            ..Default::default()
        }
    }

    /// The responder, sending through `outbox`.
    pub fn responder(&self, outbox: Outbox) -> Responder {
        self.responder_with(outbox, self.responder_options())
    }

    /// The responder with explicit tunables (tests shorten leases and deadlines).
    pub fn responder_with(&self, outbox: Outbox, options: ResponderOptions) -> Responder {
        Responder::new(
            self.store.clone(),
            self.keys.clone(),
            outbox,
            self.openai(),
            self.secrets.openai_api_key.clone(),
            options,
        )
    }

    /// The OpenAI-compatible client of this deployment.
    pub fn openai(&self) -> OpenAiClient {
        OpenAiClient::new(&self.settings.openai_base_url, OUTBOUND_TIMEOUT)
    }

    /// The Graph API client of this deployment.
    pub fn whatsapp(&self) -> WhatsAppClient {
        WhatsAppClient::new(&self.settings.whatsapp_api_base_url, OUTBOUND_TIMEOUT)
    }

    /// The HTTP router (webhook, health, and the surfaces mounted later) over `queue`.
    /// `local_queue` is the in-process queue whose figures `/healthz` reports, if any.
    pub fn router(
        &self,
        ingress: Ingress,
        local_queue: Option<crate::local_queue::LocalQueue>,
    ) -> axum::Router {
        let admin = match self.admin(crate::admin::DevTokens::Refused) {
            Ok(admin) => admin,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the owners' dashboard is not served: its configuration is incomplete");
                None
            }
        };
        self.router_with_admin(ingress, local_queue, admin)
    }

    /// The router with the given dashboard (`alphadome serve` passes one that trusts
    /// development tokens; tests pass their own).
    pub fn router_with_admin(
        &self,
        ingress: Ingress,
        local_queue: Option<crate::local_queue::LocalQueue>,
        admin: Option<crate::admin::AdminState>,
    ) -> axum::Router {
        crate::http::router_with_admin(
            crate::http::HttpState {
                ingress,
                store: self.store.clone(),
                local_queue,
            },
            admin,
        )
    }

    /// The owners' dashboard from the environment: Supabase sign-in when `SUPABASE_URL` is
    /// set; development tokens only when `dev` trusts them (`serve`); else none.
    pub fn admin(
        &self,
        dev: crate::admin::DevTokens,
    ) -> anyhow::Result<Option<crate::admin::AdminState>> {
        use secrecy::ExposeSecret;
        let admin = crate::admin::AdminState::from_lookup(
            |k| {
                std::env::var(k).ok().or_else(|| {
                    self.secrets
                        .dashboard
                        .for_env(k)
                        .map(|s| s.expose_secret().to_owned())
                })
            },
            dev,
            &self.local_key_dir(),
            self.store.pool().clone(),
        )?;
        Ok(admin.map(|a| a.with_actions(self.tenant_actions())))
    }

    /// The path that acts for a tenant on an owner's behalf (reply as a person, resume).
    pub fn tenant_actions(&self) -> crate::admin::conversations::TenantActions {
        crate::admin::conversations::TenantActions {
            store: self.store.clone(),
            keys: self.keys.clone(),
            whatsapp: self.whatsapp(),
            // Never used to send: "Try it" is `ask`'s dry run.
            responder: self.responder(crate::responder::Outbox::DryRun(std::sync::Arc::new(
                |_| {},
            ))),
            ai_limits: crate::responder::policy::AiLimits::for_settings(&self.settings),
            default_model: self.settings.openai_model.clone(),
        }
    }

    /// The router of the admin Lambda: the owners' dashboard (the same routes the core router
    /// mounts under `/admin`). API Gateway sends it `/admin` and `/admin/{proxy+}` only; the
    /// webhook stays with the webhook function. Fails when sign-in is not configured, so a
    /// misconfigured deployment fails its cold start instead of answering 404 to every owner.
    pub fn dashboard_router(&self) -> anyhow::Result<axum::Router> {
        let admin = self
            .admin(crate::admin::DevTokens::Refused)?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the owners' dashboard needs {} (and {})",
                    crate::admin::SUPABASE_URL,
                    crate::admin::SUPABASE_ANON_KEY
                )
            })?;
        Ok(crate::http::admin::routes(admin))
    }

    /// `LOCAL_KEY_DIR` (or its default) even when keys live in AWS: the development signing
    /// key sits beside it.
    pub fn local_key_dir(&self) -> std::path::PathBuf {
        match &self.settings.key_provider {
            crate::config::KeyProviderSetting::Local { dir } => dir.clone(),
            _ => std::env::var(crate::config::LOCAL_KEY_DIR)
                .unwrap_or_else(|_| crate::config::DEFAULT_LOCAL_KEY_DIR.into())
                .into(),
        }
    }

    /// The platform's shared OpenAI key, if any.
    pub fn platform_ai_key(&self) -> Option<&SecretString> {
        self.secrets.openai_api_key.as_ref()
    }
}
