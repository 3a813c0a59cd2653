//! The webhook's decisions, independent of how HTTP arrives (Lambda or `alphadome serve`):
//! answer Meta's subscription handshake, verify each POST's signature on the raw bytes,
//! route every message to the tenant that owns the receiving number, enqueue one job per
//! message, and write delivery statuses straight to Postgres (one round trip per tenant in a
//! delivery; a status that comes before its message's wamid is recorded is kept and applied
//! when it is: migrations/0023_webhook_statuses.sql). Meta gets 200 only once every job is
//! enqueued and every status written.

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
use crate::webhook::{self, extract_events, StatusUpdate, WebhookPayload};

/// Meta sends payloads of up to 3 MB; anything larger is refused before it is read further.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Most distinct business numbers whose tenants' own app secrets are tried on a delivery the
/// platform's app did not sign. A tenant's Meta app sends its own numbers' messages; more
/// than this in one unverified body is an attacker making us work before authentication.
pub const MAX_UNVERIFIED_NUMBERS: usize = 4;

/// Why the webhook refused a request or could not take it. Each case is one status code at
/// the HTTP edge (`crate::http`); the text is fixed words, never internal detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The subscription handshake had a wrong or missing verify token: 403.
    #[error("forbidden")]
    Forbidden,
    /// The signature is missing, malformed or does not match: 401, and nothing else happened.
    #[error("invalid signature")]
    InvalidSignature,
    /// The body is over [`MAX_BODY_BYTES`]: 413.
    #[error("payload too large")]
    PayloadTooLarge,
    /// Signed by the platform's app but not a webhook payload: 400 (Meta would not retry it
    /// differently).
    #[error("bad request")]
    BadRequest,
    /// The database or the queue failed: 500, so Meta retries the delivery.
    #[error("temporarily unavailable")]
    Unavailable,
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
    any_app_secret: Cache<(), bool>,
}

/// How a request ended, for the one log line per request.
#[derive(Debug, Default)]
struct Outcome {
    tenants: Vec<TenantId>,
    messages: usize,
    statuses: usize,
    /// Statuses kept until their message's wamid is recorded.
    early_statuses: usize,
    unknown_numbers: usize,
    inactive: usize,
}

/// A delivery, verified and routed: the jobs to enqueue and the statuses to write.
#[derive(Debug, Default)]
struct Accepted {
    jobs: Vec<Job>,
    statuses: Vec<(TenantId, StatusUpdate)>,
}

impl WebhookError {
    /// One word for the request's log line.
    pub fn as_word(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::InvalidSignature => "invalid_signature",
            Self::PayloadTooLarge => "too_large",
            Self::BadRequest => "bad_request",
            Self::Unavailable => "unavailable",
        }
    }
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
            any_app_secret: Cache::builder()
                .max_capacity(1)
                .time_to_live(route_ttl)
                .build(),
        }
    }

    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    /// GET: Meta's subscription handshake. `param` looks up a query parameter; the answer
    /// is the challenge to echo.
    pub fn verify_subscription(
        &self,
        param: impl Fn(&str) -> Option<String>,
    ) -> Result<String, WebhookError> {
        let (Some(mode), Some(token), Some(challenge)) = (
            param("hub.mode"),
            param("hub.verify_token"),
            param("hub.challenge"),
        ) else {
            return Err(WebhookError::Forbidden);
        };
        let Some(expected) = &self.verify_token else {
            tracing::warn!("subscription handshake refused: no verify token is configured");
            return Err(WebhookError::Forbidden);
        };
        let matches: bool = token
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes())
            .into();
        if mode == "subscribe" && matches {
            tracing::info!("subscription handshake accepted");
            Ok(challenge)
        } else {
            tracing::warn!("subscription handshake refused");
            Err(WebhookError::Forbidden)
        }
    }

    /// POST: one delivery from Meta. `Ok` once every job it carries is on the queue.
    pub async fn receive(&self, signature: Option<&[u8]>, body: &[u8]) -> Result<(), WebhookError> {
        let started = Instant::now();
        let (reply, outcome) = self.receive_inner(signature, body).await;
        let tenants: Vec<String> = outcome.tenants.iter().map(|t| t.to_string()).collect();
        macro_rules! delivery_line {
            ($level:ident) => {
                tracing::$level!(
                    result = match &reply {
                        Ok(()) => "accepted",
                        Err(e) => e.as_word(),
                    },
                    tenants = ?tenants,
                    messages = outcome.messages,
                    statuses = outcome.statuses,
                    early_statuses = outcome.early_statuses,
                    unknown_numbers = outcome.unknown_numbers,
                    inactive_tenants = outcome.inactive,
                    bytes = body.len(),
                    latency_us = started.elapsed().as_micros() as u64,
                    "webhook delivery"
                )
            };
        }
        // Three of four deliveries are Meta's status callbacks: written and done, they log at
        // debug, so `info` costs one line per customer message (logs are billed per GB).
        if reply.is_ok() && outcome.messages == 0 && outcome.unknown_numbers == 0 {
            delivery_line!(debug);
        } else {
            delivery_line!(info);
        }
        reply
    }

    async fn receive_inner(
        &self,
        signature: Option<&[u8]>,
        body: &[u8],
    ) -> (Result<(), WebhookError>, Outcome) {
        let mut outcome = Outcome::default();
        let Accepted { jobs, statuses } = match self.accept(signature, body, &mut outcome).await {
            Ok(accepted) => accepted,
            Err(e) => return (Err(e), outcome),
        };
        let enqueue = async {
            if jobs.is_empty() {
                return Ok(());
            }
            self.queue.enqueue(&jobs).await.map_err(|e| {
                tracing::error!(error = %e, jobs = jobs.len(), "enqueue failed; Meta will retry");
                WebhookError::Unavailable
            })
        };
        let (enqueued, written) = tokio::join!(enqueue, self.write_statuses(&statuses));
        let reply = enqueued.and(written.map(|early| outcome.early_statuses = early));
        (reply, outcome)
    }

    /// Writes a delivery's statuses, one round trip per tenant (tenants concurrently); returns
    /// how many were kept for a wamid not recorded yet. Any failure: `Unavailable`, so Meta
    /// delivers again (writing a status twice moves and counts nothing twice).
    async fn write_statuses(
        &self,
        statuses: &[(TenantId, StatusUpdate)],
    ) -> Result<usize, WebhookError> {
        let mut tenants: Vec<(TenantId, Vec<&StatusUpdate>)> = Vec::new();
        for (tenant, status) in statuses {
            match tenants.iter_mut().find(|(t, _)| t == tenant) {
                Some((_, of_tenant)) => of_tenant.push(status),
                None => tenants.push((*tenant, vec![status])),
            }
        }
        let written = futures_util::future::join_all(
            tenants
                .iter()
                .map(|(tenant, updates)| self.store.apply_statuses(*tenant, updates)),
        )
        .await;
        let mut early = 0;
        for ((tenant, updates), result) in tenants.iter().zip(written) {
            match result {
                Ok(results) => early += results.iter().filter(|r| r.pending).count(),
                Err(e) => {
                    tracing::error!(tenant_id = %tenant, statuses = updates.len(), error = %format!("{e:#}"), "writing statuses failed; Meta will retry");
                    return Err(WebhookError::Unavailable);
                }
            }
        }
        Ok(early)
    }

    /// Verifies, parses and routes a delivery into the message jobs it yields, without
    /// enqueueing them or writing its statuses (the webhook's whole CPU path; benchmarked on
    /// its own).
    pub async fn jobs_for(
        &self,
        signature: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Vec<Job>, WebhookError> {
        Ok(self
            .accept(signature, body, &mut Outcome::default())
            .await?
            .jobs)
    }

    /// Pre-warms the routing cache, e.g. with every tenant at start-up.
    pub async fn remember_route(&self, phone_number_id: &str, route: Option<TenantRoute>) {
        self.routes
            .insert(phone_number_id.to_owned(), route.map(Arc::new))
            .await;
    }

    /// Forgets cached routes (after the operator changed a tenant in this process).
    pub fn forget_routes(&self) {
        self.routes.invalidate_all();
        self.any_app_secret.invalidate_all();
    }

    async fn accept(
        &self,
        signature: Option<&[u8]>,
        body: &[u8],
        outcome: &mut Outcome,
    ) -> Result<Accepted, WebhookError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(WebhookError::PayloadTooLarge);
        }
        // A missing or malformed header is refused before anything else is done.
        if let Err(e) = webhook::check_form(signature) {
            tracing::warn!(reason = %e, "signature refused");
            return Err(WebhookError::InvalidSignature);
        }
        // The platform's own app signs almost every delivery: check it before parsing anything.
        let platform_ok = self.app_secret.as_ref().is_some_and(|secret| {
            webhook::verify(secret.expose_secret().as_bytes(), body, signature).is_ok()
        });
        let payload = match WebhookPayload::from_slice(body) {
            Ok(p) => p,
            Err(e) if platform_ok => {
                tracing::error!(error = %e, "signed payload does not parse");
                return Err(WebhookError::BadRequest);
            }
            Err(_) => {
                tracing::warn!(reason = "mismatch", "signature refused");
                return Err(WebhookError::InvalidSignature);
            }
        };
        let numbers = webhook::phone_number_ids(&payload);
        // Otherwise the delivery may come from a tenant's own Meta app. Before authentication
        // the database is asked about a handful of numbers at most, and about none when no
        // tenant has its own app secret.
        if !platform_ok
            && (numbers.len() > MAX_UNVERIFIED_NUMBERS || !self.any_tenant_app_secret().await?)
        {
            tracing::warn!(
                reason = "mismatch",
                numbers = numbers.len(),
                "signature refused"
            );
            return Err(WebhookError::InvalidSignature);
        }

        // Route every distinct number once.
        let mut routes: BTreeMap<String, Option<Arc<TenantRoute>>> = BTreeMap::new();
        for pnid in numbers {
            match self.route(pnid).await {
                Ok(route) => {
                    routes.insert(pnid.to_owned(), route);
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "tenant routing failed");
                    return Err(WebhookError::Unavailable);
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
                return Err(WebhookError::InvalidSignature);
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

        let mut accepted = Accepted::default();
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
                    if !outcome.tenants.contains(&route.tenant_id) {
                        outcome.tenants.push(route.tenant_id);
                    }
                    match event.kind {
                        webhook::EventKind::Message(_) => {
                            outcome.messages += 1;
                            accepted.jobs.push(Job::new(route.tenant_id.0, event));
                        }
                        webhook::EventKind::Status(status) => {
                            outcome.statuses += 1;
                            accepted.statuses.push((route.tenant_id, status));
                        }
                    }
                }
            }
        }
        Ok(accepted)
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

    /// Whether any tenant has its own Meta app secret (cached like a route: one query per
    /// TTL at most, and only for deliveries the platform's app did not sign).
    async fn any_tenant_app_secret(&self) -> Result<bool, WebhookError> {
        let store = self.store.clone();
        self.any_app_secret
            .try_get_with((), async move { store.any_tenant_app_secret().await })
            .await
            .map_err(|e| {
                tracing::error!(error = %format!("{e:#}"), "tenant app secret lookup failed");
                WebhookError::Unavailable
            })
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
