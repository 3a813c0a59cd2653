//! The webhook's decisions, independent of how HTTP arrives (Lambda or `alphadome serve`):
//! answer Meta's subscription handshake, verify each POST's signature on the raw bytes,
//! route every message to the tenant that owns the receiving number, and enqueue one job per
//! message and per status update. Meta gets 200 only once every job is enqueued.

use moka::future::Cache;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

use crate::config::LegacyRoute;
use crate::crypto::SecretColumn;
use crate::domain::{PhoneNumberId, TenantId};
use crate::job::Job;
use crate::keys::KeyProvider;
use crate::queue::JobQueue;
use crate::store::{Store, TenantRoute};
use crate::webhook::{self, extract_events, WebhookPayload};

/// Meta sends payloads of up to 3 MB; anything larger is refused before it is read further.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What goes back to the caller. Bodies are fixed words, never internal detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
        }
    }
}

/// Everything the webhook needs, built once per process.
#[derive(Clone)]
pub struct Ingress {
    store: Store,
    keys: KeyProvider,
    queue: JobQueue,
    app_secret: Option<SecretString>,
    verify_token: Option<SecretString>,
    legacy: Option<LegacyRoute>,
    routes: Cache<String, Option<Arc<TenantRoute>>>,
}

/// How a request ended, for the one log line per request.
#[derive(Debug, Default)]
struct Outcome {
    tenants: Vec<TenantId>,
    messages: usize,
    statuses: usize,
    unknown_numbers: usize,
    inactive: usize,
}

impl Ingress {
    pub fn new(
        store: Store,
        keys: KeyProvider,
        queue: JobQueue,
        app_secret: Option<SecretString>,
        verify_token: Option<SecretString>,
        legacy: Option<LegacyRoute>,
        route_ttl: Duration,
    ) -> Self {
        Self {
            store,
            keys,
            queue,
            app_secret,
            verify_token,
            legacy,
            routes: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(route_ttl)
                .build(),
        }
    }

    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    /// GET: Meta's subscription handshake. `param` looks up a query parameter.
    pub fn verify_subscription(&self, param: impl Fn(&str) -> Option<String>) -> Reply {
        let (Some(mode), Some(token), Some(challenge)) = (
            param("hub.mode"),
            param("hub.verify_token"),
            param("hub.challenge"),
        ) else {
            return Reply::new(403, "forbidden");
        };
        let Some(expected) = &self.verify_token else {
            tracing::warn!("subscription handshake refused: no verify token is configured");
            return Reply::new(403, "forbidden");
        };
        let matches: bool = token
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes())
            .into();
        if mode == "subscribe" && matches {
            tracing::info!("subscription handshake accepted");
            Reply {
                status: 200,
                body: challenge,
            }
        } else {
            tracing::warn!("subscription handshake refused");
            Reply::new(403, "forbidden")
        }
    }

    /// POST: one delivery from Meta.
    pub async fn receive(&self, signature: Option<&[u8]>, body: &[u8]) -> Reply {
        let started = Instant::now();
        let (reply, outcome) = self.receive_inner(signature, body).await;
        let tenants: Vec<String> = outcome.tenants.iter().map(|t| t.to_string()).collect();
        tracing::info!(
            status = reply.status,
            tenants = ?tenants,
            messages = outcome.messages,
            statuses = outcome.statuses,
            unknown_numbers = outcome.unknown_numbers,
            inactive_tenants = outcome.inactive,
            bytes = body.len(),
            latency_us = started.elapsed().as_micros() as u64,
            "webhook delivery"
        );
        reply
    }

    async fn receive_inner(&self, signature: Option<&[u8]>, body: &[u8]) -> (Reply, Outcome) {
        let mut outcome = Outcome::default();
        let jobs = match self.accept(signature, body, &mut outcome).await {
            Ok(jobs) => jobs,
            Err(reply) => return (reply, outcome),
        };
        if jobs.is_empty() {
            return (Reply::new(200, "ok"), outcome);
        }
        match self.queue.enqueue(&jobs).await {
            Ok(()) => (Reply::new(200, "ok"), outcome),
            Err(e) => {
                tracing::error!(error = %e, jobs = jobs.len(), "enqueue failed; Meta will retry");
                (Reply::new(500, "temporarily unavailable"), outcome)
            }
        }
    }

    /// Verifies, parses and routes a delivery into the jobs it yields, without enqueueing
    /// them (the webhook's whole CPU path; benchmarked on its own).
    pub async fn jobs_for(&self, signature: Option<&[u8]>, body: &[u8]) -> Result<Vec<Job>, Reply> {
        self.accept(signature, body, &mut Outcome::default()).await
    }

    /// Pre-warms the routing cache, e.g. with every tenant at start-up.
    pub async fn remember_route(&self, phone_number_id: &str, route: Option<TenantRoute>) {
        self.routes
            .insert(phone_number_id.to_owned(), route.map(Arc::new))
            .await;
    }

    async fn accept(
        &self,
        signature: Option<&[u8]>,
        body: &[u8],
        outcome: &mut Outcome,
    ) -> Result<Vec<Job>, Reply> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Reply::new(413, "payload too large"));
        }
        if signature.is_none() {
            tracing::warn!(reason = "missing", "signature refused");
            return Err(Reply::new(401, "invalid signature"));
        }
        // The platform's own app signs almost every delivery: check it before parsing anything.
        let platform_ok = match &self.app_secret {
            Some(secret) => {
                match webhook::verify(secret.expose_secret().as_bytes(), body, signature) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::debug!(reason = %e, "not signed by the platform app");
                        false
                    }
                }
            }
            None => false,
        };
        // Otherwise the delivery may come from a tenant's own Meta app: parsing just enough to
        // find its numbers is the least we can do to know whose secret to check.
        let payload = match WebhookPayload::from_slice(body) {
            Ok(p) => Some(p),
            Err(e) if platform_ok => {
                tracing::error!(error = %e, "signed payload does not parse");
                return Err(Reply::new(400, "bad request"));
            }
            Err(_) => None,
        };
        let Some(payload) = payload else {
            tracing::warn!(reason = "mismatch", "signature refused");
            return Err(Reply::new(401, "invalid signature"));
        };

        // Route every distinct number once.
        let mut routes: BTreeMap<String, Option<Arc<TenantRoute>>> = BTreeMap::new();
        for pnid in webhook::phone_number_ids(&payload) {
            if routes.contains_key(pnid) {
                continue;
            }
            match self.route(pnid).await {
                Ok(route) => {
                    routes.insert(pnid.to_owned(), route);
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "tenant routing failed");
                    return Err(Reply::new(500, "temporarily unavailable"));
                }
            }
        }

        // Which numbers this signature vouches for.
        let trusted: Vec<String> = if platform_ok {
            routes.keys().cloned().collect()
        } else {
            let mut trusted = Vec::new();
            for (pnid, route) in &routes {
                let Some(route) = route else { continue };
                let Some(sealed) = &route.meta_app_secret else {
                    continue;
                };
                match self.tenant_app_secret(route, sealed).await {
                    Ok(secret) => {
                        if webhook::verify(secret.expose_secret().as_bytes(), body, signature)
                            .is_ok()
                        {
                            trusted.push(pnid.clone());
                        }
                    }
                    Err(e) => {
                        tracing::error!(tenant_id = %route.tenant_id, error = %format!("{e:#}"), "cannot open tenant app secret")
                    }
                }
            }
            if trusted.is_empty() {
                tracing::warn!(reason = "mismatch", "signature refused");
                return Err(Reply::new(401, "invalid signature"));
            }
            trusted
        };

        for (pnid, err) in webhook::value_errors(&payload) {
            tracing::warn!(
                phone_number_id = pnid,
                code = err.code,
                "Meta reported an error on a business number"
            );
        }

        let mut jobs = Vec::new();
        for event in extract_events(&payload) {
            if !trusted.contains(&event.phone_number_id) {
                continue;
            }
            match routes.get(&event.phone_number_id).cloned().flatten() {
                None => {
                    outcome.unknown_numbers += 1;
                    tracing::warn!(phone_number_id = %event.phone_number_id, "message for a number no tenant owns; ignored");
                }
                Some(route) if !route.is_active => {
                    outcome.inactive += 1;
                    tracing::info!(tenant_id = %route.tenant_id, "tenant is inactive; event not enqueued");
                }
                Some(route) => {
                    match &event.kind {
                        webhook::EventKind::Message(_) => outcome.messages += 1,
                        webhook::EventKind::Status(_) => outcome.statuses += 1,
                    }
                    if !outcome.tenants.contains(&route.tenant_id) {
                        outcome.tenants.push(route.tenant_id);
                    }
                    jobs.push(Job::new(route.tenant_id.0, event));
                }
            }
        }
        Ok(jobs)
    }

    /// The tenant that owns a number (cached; unknown numbers are cached too).
    async fn route(&self, pnid: &str) -> anyhow::Result<Option<Arc<TenantRoute>>> {
        let Ok(parsed) = PhoneNumberId::parse(pnid) else {
            return Ok(None);
        };
        let (store, legacy) = (self.store.clone(), self.legacy.clone());
        self.routes
            .try_get_with(pnid.to_owned(), async move {
                let mut route = store.resolve_tenant(&parsed).await?;
                if route.is_none() {
                    if let Some(legacy) = legacy.filter(|l| l.phone_number_id == parsed) {
                        route = store.resolve_tenant_by_brand(legacy.brand_id).await?;
                    }
                }
                Ok::<_, anyhow::Error>(route.map(Arc::new))
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }

    async fn tenant_app_secret(
        &self,
        route: &TenantRoute,
        sealed: &str,
    ) -> anyhow::Result<SecretString> {
        let version = crate::crypto::envelope_version(sealed)?;
        let ring = self
            .keys
            .ring_with_version(route.tenant_id, version)
            .await?;
        Ok(ring.decrypt(SecretColumn::MetaAppSecret, sealed)?)
    }
}

/// The services a process builds once from its settings (cold start).
pub struct Services {
    pub settings: crate::config::Settings,
    pub secrets: crate::config::PlatformSecrets,
    pub sdk: aws_config::SdkConfig,
    pub store: Store,
    pub keys: KeyProvider,
}

impl Services {
    /// Reads the settings, the platform secret and connects to the database.
    pub async fn from_env(max_connections: u32) -> anyhow::Result<Self> {
        Self::from_env_with(max_connections, false).await
    }

    /// As [`Services::from_env`]; with `lazy_database` the pool connects on first use (Lambda
    /// init stays short, and the first request opens the connection).
    pub async fn from_env_with(max_connections: u32, lazy_database: bool) -> anyhow::Result<Self> {
        let settings = crate::config::Settings::from_env()?;
        let sdk = crate::aws::load_sdk_config().await;
        let secrets = crate::platform::load_platform_secrets(&settings, Some(&sdk)).await?;
        let url = crate::platform::database_url(&settings, &secrets)?;
        let store = if lazy_database {
            Store::connect_lazy(&url, max_connections)?
        } else {
            Store::connect(&url, max_connections).await?
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

    /// The SQS queue named by REPLY_QUEUE_URL.
    pub fn sqs_queue(&self) -> anyhow::Result<JobQueue> {
        let url =
            self.settings
                .reply_queue_url
                .clone()
                .ok_or(crate::config::ConfigError::Missing(
                    crate::config::REPLY_QUEUE_URL,
                ))?;
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
}

impl Services {
    /// The responder over these services, sending through Graph or printing (dry run).
    pub fn responder(&self, outbox: crate::responder::Outbox) -> crate::responder::Responder {
        let options = crate::responder::ResponderOptions {
            default_model: self.settings.openai_model.clone(),
            context_ttl: self.settings.tenant_cache_ttl,
            ..Default::default()
        };
        crate::responder::Responder::new(
            self.store.clone(),
            self.keys.clone(),
            outbox,
            crate::openai::OpenAiClient::new(
                &self.settings.openai_base_url,
                Duration::from_secs(8),
            ),
            self.secrets.openai_api_key.clone(),
            options,
        )
    }

    /// The Graph API client for this deployment.
    pub fn whatsapp(&self) -> crate::whatsapp::WhatsAppClient {
        crate::whatsapp::WhatsAppClient::new(
            &self.settings.whatsapp_api_base_url,
            Duration::from_secs(8),
        )
    }
}
