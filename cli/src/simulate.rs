//! `alphadome simulate`: posts one customer message to a running webhook exactly as Meta would
//! (payload shape, ASCII-escaped JSON, `X-Hub-Signature-256` from the app secret).

use std::time::Duration;

use alphadome::config::Settings;
use alphadome::domain::{PhoneNumber, PhoneNumberId, TenantId};
use alphadome::store::Store;
use anyhow::{anyhow, bail, Context as _};
use secrecy::ExposeSecret;

use crate::meta::{signature, TextMessage};

/// The webhook `serve` listens on by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000/webhook";

/// What to send.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// Tenant id or phone_number_id.
    pub tenant: String,
    pub url: String,
    /// The customer's number, digits with country code.
    pub from: String,
    pub text: String,
}

/// What the webhook answered.
#[derive(Debug, Clone)]
pub struct Posted {
    pub status: u16,
    pub body: String,
    pub wa_message_id: String,
}

/// The business number of a tenant reference: a phone_number_id as is, a tenant id through the
/// database.
async fn phone_number_id(settings: &Settings, tenant: &str) -> anyhow::Result<String> {
    let tenant = tenant.trim();
    if let Ok(id) = tenant.parse::<TenantId>() {
        let url = crate::demo::require_database_url(settings)?;
        let store = Store::connect(&url, 1).await?;
        let summary = store.tenant_summary(id).await?;
        return Ok(summary.phone_number_id);
    }
    PhoneNumberId::parse(tenant)
        .map(|p| p.as_str().to_owned())
        .map_err(|_| anyhow!("--tenant must be a tenant id or a phone_number_id (digits)"))
}

/// Builds, signs and posts the message.
pub async fn simulate(sim: &Simulation) -> anyhow::Result<Posted> {
    let settings = Settings::from_env()?;
    let secrets = alphadome::platform::load_platform_secrets(&settings, None).await?;
    let secret = secrets.meta_app_secret.ok_or_else(|| {
        anyhow!("META_APP_SECRET is not set: export the app secret `serve` verifies with (the demo's is alphadome-test-app-secret)")
    })?;
    let from = PhoneNumber::parse(&sim.from).context("--from")?;
    let pnid = phone_number_id(&settings, &sim.tenant).await?;
    let wa_message_id = format!("wamid.sim.{}", uuid::Uuid::new_v4().simple());
    let body = TextMessage {
        phone_number_id: &pnid,
        display_phone_number: "254700000001",
        wa_message_id: &wa_message_id,
        from: from.as_str(),
        profile_name: "Simulated Customer",
        text: &sim.text,
        timestamp: chrono::Utc::now().timestamp(),
    }
    .to_body();
    let sig = signature(secret.expose_secret().as_bytes(), &body);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let response = client
        .post(&sim.url)
        .header("content-type", "application/json")
        .header(alphadome::webhook::SIGNATURE_HEADER, sig)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot reach {}: {e} (is `alphadome serve` running?)",
                sim.url
            )
        })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    Ok(Posted {
        status,
        body,
        wa_message_id,
    })
}

/// `simulate` for the command line: prints the outcome, fails on a non-2xx answer.
pub async fn run(sim: Simulation) -> anyhow::Result<()> {
    let posted = simulate(&sim).await?;
    println!(
        "POST {} -> {} {} (message {})",
        sim.url,
        posted.status,
        posted.body.trim(),
        posted.wa_message_id
    );
    if !(200..300).contains(&posted.status) {
        bail!("the webhook answered {}", posted.status);
    }
    Ok(())
}
