//! `alphadome loadtest`: the whole pipeline under load, against a running `serve --dry-run` and
//! its real PostgreSQL. It onboards (or reuses) load-test tenants with FAQs, pre-signs unique
//! messages spread over tenants and customers, posts them concurrently, then watches the
//! database until every message has its one logged reply. It reports end-to-end throughput,
//! webhook latency, and whether any message was answered twice.

use std::time::{Duration, Instant};

use alphadome::config::Settings;
use alphadome::domain::{PhoneNumber, PhoneNumberId, TenantId};
use alphadome::keys::{KeyBackend, KeyProvider};
use alphadome::store::{NewTenant, Store, StoreError};
use anyhow::{anyhow, bail, Context as _};
use futures_util::StreamExt as _;
use secrecy::{ExposeSecret, SecretString};

use crate::meta::{signature, TextMessage};

/// How the load test runs.
#[derive(Debug, Clone)]
pub struct LoadTest {
    pub url: String,
    pub tenants: usize,
    pub messages: usize,
    pub concurrency: usize,
    /// Distinct customers per tenant (conversations: a customer's messages are handled in order).
    pub customers_per_tenant: usize,
    /// Only create the tenants, then stop (start `serve` after this).
    pub setup_only: bool,
    /// Give up waiting for replies after this long without progress.
    pub stall_timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub messages: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub post_seconds: f64,
    pub end_to_end_seconds: f64,
    pub messages_per_second: f64,
    pub webhook_p50_ms: f64,
    pub webhook_p99_ms: f64,
    pub webhook_max_ms: f64,
    pub replied: i64,
    pub answered_twice: i64,
    pub faq_replies: i64,
}

/// The phone_number_id of load-test tenant `i` (1-based): `120000000001`, ...
pub fn load_phone_number_id(i: usize) -> String {
    format!("12{:010}", i)
}

/// The fixed id of load-test tenant `i`.
pub fn load_tenant_id(i: usize) -> TenantId {
    format!(
        "8a3f1c2e-0000-4000-8000-{:012}",
        120_000_000_000u64 + i as u64
    )
    .parse()
    .expect("a well-formed uuid")
}

/// Questions each load-test FAQ answers (the Kassangas demo FAQ), asked as written.
const QUESTIONS: &[&str] = &[
    "What are your opening hours?",
    "Where are you located?",
    "How can I pay?",
    "Do you deliver?",
    "Do you repair musical instruments?",
    "How much is a guitar?",
    "How much is a keyboard?",
    "Do you offer music lessons?",
    "Can I pay in installments?",
    "Do you hire out sound equipment?",
];

/// Creates the load-test tenants that do not exist yet; returns (created, reused).
pub async fn ensure_tenants(
    store: &Store,
    keys: &KeyProvider,
    n: usize,
) -> anyhow::Result<(usize, usize)> {
    let entries = alphadome::knowledge_file::parse_csv(crate::demo::KASSANGAS.faq_embedded)
        .context("the embedded demo FAQ")?;
    let (mut created, mut reused) = (0, 0);
    for i in 1..=n {
        let id = load_tenant_id(i);
        let pnid = load_phone_number_id(i);
        match store.find_tenant(&id.to_string()).await {
            Ok(_) => reused += 1,
            Err(StoreError::NotFound(_)) => {
                store
                    .create_tenant_with_id(
                        keys,
                        id,
                        NewTenant {
                            client_name: format!("Load Test Shop {i}"),
                            client_phone: PhoneNumber::parse(&format!("2547990{i:05}"))?,
                            phone_number_id: PhoneNumberId::parse(&pnid)?,
                            contact_name: None,
                            brand_id: None,
                            whatsapp_token: Some(SecretString::from(format!(
                                "loadtest-placeholder-token-{i}"
                            ))),
                            ai_api_key: None,
                            meta_app_secret: None,
                            escalation_phone: None,
                            // The load is the point: the hourly cap must not silence it.
                            max_messages_per_hour: Some(i32::MAX),
                        },
                    )
                    .await
                    .with_context(|| format!("creating load-test tenant {i} ({pnid})"))?;
                created += 1;
            }
            Err(e) => return Err(e.into()),
        }
        store
            .import_entries(id, &entries)
            .await
            .with_context(|| format!("importing the FAQ of load-test tenant {i}"))?;
    }
    Ok((created, reused))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// (messages with a sent reply, messages with 2+ replies, faq replies) among `wamids`.
async fn count_replies(store: &Store, wamids: &[String]) -> anyhow::Result<(i64, i64, i64)> {
    let mut tx = store
        .pool()
        .begin()
        .await
        .context("opening a transaction")?;
    let row: (i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where sent > 0), count(*) filter (where n > 1),
                coalesce(sum(faq), 0)::bigint
           from (select count(*) as n,
                        count(*) filter (where status = 'sent') as sent,
                        count(*) filter (where reply_source = 'faq') as faq
                   from public.conversations
                  where direction = 'outgoing' and in_reply_to = any($1)
                  group by in_reply_to) per_message",
    )
    .persistent(false)
    .bind(wamids)
    .fetch_one(&mut *tx)
    .await
    .context("counting the logged replies")?;
    tx.commit().await.context("committing")?;
    Ok(row)
}

/// Jobs the server's in-process queue has handled (from `/healthz`), if it reports them.
async fn handled(client: &reqwest::Client, health_url: &str) -> Option<u64> {
    let health: serde_json::Value = client
        .get(health_url)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    health["queue"]["processed"].as_u64()
}

/// Runs the load test (or only its set-up), printing progress and the report.
pub async fn run(lt: LoadTest) -> anyhow::Result<Option<LoadReport>> {
    if lt.tenants == 0 || lt.messages == 0 || lt.concurrency == 0 {
        bail!("--tenants, --messages and --concurrency must be at least 1");
    }
    let settings = Settings::from_env()?;
    let url = crate::demo::require_database_url(&settings)?;
    alphadome::store::migrate(&url).await?;
    let store = Store::connect(&url, 4).await?;
    let keys = KeyProvider::new(
        KeyBackend::LocalDir(crate::demo::key_dir(&settings)),
        Duration::from_secs(60),
    );
    let (created, reused) = ensure_tenants(&store, &keys, lt.tenants).await?;
    eprintln!(
        "load-test tenants: {created} created, {reused} reused (phone_number_id {}..{})",
        load_phone_number_id(1),
        load_phone_number_id(lt.tenants)
    );
    if lt.setup_only {
        eprintln!(
            "set-up done. Now start the server (it pre-warms its routes with these tenants), e.g.\n  RUST_LOG=warn META_APP_SECRET=... alphadome serve --dry-run > /dev/null\nthen run this command again without --setup-only."
        );
        return Ok(None);
    }
    if created > 0 {
        eprintln!(
            "note: tenants were just created; a `serve` started earlier learns them on first use"
        );
    }
    let secrets = alphadome::platform::load_platform_secrets(&settings, None).await?;
    let secret = secrets.meta_app_secret.ok_or_else(|| {
        anyhow!("META_APP_SECRET is not set: use the app secret `serve` verifies with")
    })?;

    // Pre-sign everything: the clock measures the pipeline, not this.
    let run = uuid::Uuid::new_v4();
    let run_tag = (run.as_u128() % 1000) as u32;
    let customers = lt.customers_per_tenant.max(1);
    let now = chrono::Utc::now().timestamp();
    let mut wamids = Vec::with_capacity(lt.messages);
    let mut requests = Vec::with_capacity(lt.messages);
    for i in 0..lt.messages {
        let tenant = i % lt.tenants + 1;
        let customer = (i / lt.tenants) % customers;
        let pnid = load_phone_number_id(tenant);
        let from = format!("254{run_tag:03}{:03}{customer:04}", tenant % 1000);
        let wamid = format!("wamid.load.{}.{i}", run.simple());
        let body = TextMessage {
            phone_number_id: &pnid,
            display_phone_number: "254700000009",
            wa_message_id: &wamid,
            from: &from,
            profile_name: "Load Test",
            text: QUESTIONS[i % QUESTIONS.len()],
            timestamp: now,
        }
        .to_body();
        let sig = signature(secret.expose_secret().as_bytes(), &body);
        wamids.push(wamid);
        requests.push((body, sig));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(lt.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    // One request first: fail fast with a clear reason when nothing listens or the secret differs.
    let probe = client
        .get(lt.url.replace("/webhook", "/healthz"))
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "cannot reach {}: {e} (start `alphadome serve --dry-run` first)",
                lt.url
            )
        })?;
    if !probe.status().is_success() {
        bail!("the server's /healthz answered {}", probe.status());
    }
    let health_url = Some(lt.url.replace("/webhook", "/healthz"));
    // An SQS-backed server has no in-process counter: fall back to the database.
    let health_url = match &health_url {
        Some(url) if handled(&client, url).await.is_some() => health_url,
        _ => None,
    };
    let baseline = match &health_url {
        Some(url) => handled(&client, url).await.unwrap_or(0),
        None => 0,
    };

    eprintln!(
        "posting {} messages to {} with {} connections ({} tenants, {} customers each)...",
        lt.messages, lt.url, lt.concurrency, lt.tenants, customers
    );
    let started = Instant::now();
    let url = lt.url.clone();
    let results: Vec<(u16, f64)> = futures_util::stream::iter(requests)
        .map(|(body, sig)| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let t = Instant::now();
                let status = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header(alphadome::webhook::SIGNATURE_HEADER, sig)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                (status, t.elapsed().as_secs_f64() * 1000.0)
            }
        })
        .buffer_unordered(lt.concurrency)
        .collect()
        .await;
    let post_seconds = started.elapsed().as_secs_f64();
    let accepted = results
        .iter()
        .filter(|(s, _)| (200..300).contains(s))
        .count();
    let mut latencies: Vec<f64> = results.iter().map(|(_, l)| *l).collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    eprintln!(
        "posted in {post_seconds:.2}s ({:.0}/s), {accepted} accepted; waiting for the replies...",
        lt.messages as f64 / post_seconds
    );

    // Watch the server's own counter (cheap), not the database: a heavy poll would compete
    // with the pipeline it measures. The database is checked once everything is handled.
    let mut last_seen = baseline;
    let mut last_progress = Instant::now();
    let end = loop {
        let processed = match &health_url {
            Some(url) => handled(&client, url).await.unwrap_or(last_seen),
            None => baseline + count_replies(&store, &wamids).await?.0 as u64,
        };
        if processed >= baseline + accepted as u64 {
            break started.elapsed();
        }
        if processed > last_seen {
            last_seen = processed;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > lt.stall_timeout {
            eprintln!(
                "no progress for {}s; stopping the wait",
                lt.stall_timeout.as_secs()
            );
            break started.elapsed();
        }
        let pause = if health_url.is_some() { 10 } else { 250 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    };
    // A duplicate could land after the last first reply: look once more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (replied, twice, faq) = count_replies(&store, &wamids).await?;
    let e2e = end.as_secs_f64();
    let report = LoadReport {
        messages: lt.messages,
        accepted,
        rejected: lt.messages - accepted,
        post_seconds,
        end_to_end_seconds: e2e,
        messages_per_second: replied as f64 / e2e,
        webhook_p50_ms: percentile(&latencies, 50.0),
        webhook_p99_ms: percentile(&latencies, 99.0),
        webhook_max_ms: latencies.last().copied().unwrap_or(0.0),
        replied,
        answered_twice: twice,
        faq_replies: faq,
    };
    println!(
        "messages:        {} posted, {} accepted, {} rejected\nwebhook latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({:.0} posts/s)\nend to end:      {} replies logged in {:.2}s (first post -> last reply) = {:.0} messages/second\nexactly once:    {} ({} messages with 2+ replies, {} of {} replies from the FAQ)",
        report.messages,
        report.accepted,
        report.rejected,
        report.webhook_p50_ms,
        report.webhook_p99_ms,
        report.webhook_max_ms,
        lt.messages as f64 / post_seconds,
        report.replied,
        report.end_to_end_seconds,
        report.messages_per_second,
        if report.answered_twice == 0 && report.replied == report.accepted as i64 {
            "OK"
        } else {
            "FAILED"
        },
        report.answered_twice,
        report.faq_replies,
        report.replied,
    );
    if report.answered_twice > 0 || report.replied < report.accepted as i64 || report.rejected > 0 {
        bail!("the load test found lost, rejected or duplicated replies");
    }
    Ok(Some(report))
}
