//! Throughput of the Lambda path: SQS-shaped batches of 10 records handed to
//! `Responder::handle_batch` (what the responder Lambda calls per event) by several concurrent
//! callers, each standing for one warm Lambda instance with its own pool of 4 connections and
//! its own caches, through PgBouncer in transaction mode (as Supabase's pooler), replies sent
//! to a local Graph stand-in that counts them. After the measurement every message must have
//! been answered exactly once, counted at the stand-in, or the bench fails.
//!
//! Needs PostgreSQL and PgBouncer (`./scripts/test-services.sh`); (re)creates the database
//! `alphadome_bench_lambda`. Run: `cargo bench -p alphadome --bench lambda_path`.
//! Knobs (environment): `LAMBDA_BENCH_CALLERS` (concurrent instances, default 8),
//! `LAMBDA_BENCH_TENANTS` (default 20), `LAMBDA_BENCH_TENANTS_PER_BATCH` (how many tenants
//! the 10 records of one batch belong to, default 10: each record another business, the
//! fewest shared round trips).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alphadome::domain::{PhoneNumber, PhoneNumberId, TenantId};
use alphadome::job::Job;
use alphadome::keys::{KeyBackend, KeyProvider};
use alphadome::openai::OpenAiClient;
use alphadome::responder::{BatchRecord, Outbox, Responder, ResponderOptions};
use alphadome::store::{NewEntry, NewTenant, Store};
use alphadome::webhook::{EventKind, InboundMessage, WebhookEvent};
use alphadome::whatsapp::WhatsAppClient;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use secrecy::SecretString;

const DATABASE: &str = "alphadome_bench_lambda";
/// SQS hands Lambda at most 10 records per batch.
const BATCH: usize = 10;
/// Batches each caller handles, one after the other, per measured round.
const BATCHES_PER_CALLER: usize = 4;
const QUESTIONS: &[(&str, &str)] = &[
    (
        "What are your opening hours?",
        "Monday to Saturday, 9 AM to 6 PM.",
    ),
    ("Can I pay with M-Pesa?", "Yes, Till 123456."),
    (
        "Do you deliver?",
        "Yes, within Nairobi the same day for KES 300.",
    ),
    ("Where are you located?", "Moi Avenue, Nairobi CBD."),
    (
        "Do you offer music lessons?",
        "Yes, guitar and piano on Saturdays.",
    ),
];

/// Earlier exchanges of the 2,000 customers of every business the bench writes as (see
/// [`World::batch`]).
const HISTORY: &str = "
insert into public.users (bot_tenant_id, brand_id, phone, full_name, last_inbound_at)
select t.id, t.brand_id, '2547' || lpad(g::text, 8, '0'), 'Wanjiku', now() - interval '2 days'
from alphadome.bot_tenants t, generate_series(0, 1999) g;
insert into public.conversations (brand_id, bot_tenant_id, user_id, direction, message_text,
    wa_message_id, message_type, status, reply_source, in_reply_to, created_at)
select u.brand_id, u.bot_tenant_id, u.id, d.direction, 'Earlier message',
       case when d.direction = 'incoming' then 'wamid.past.' || u.id || '.' || k end,
       'text', 'read', case when d.direction = 'outgoing' then 'faq' end,
       case when d.direction = 'outgoing' then 'wamid.past.' || u.id || '.' || k end,
       now() - interval '2 days' + k * interval '1 minute'
from public.users u, generate_series(1, 2) k,
     (values ('incoming'), ('outgoing')) d(direction);
analyze;
";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The Graph stand-in's count: replies per customer message (the message a reply quotes).
#[derive(Default)]
struct Counted {
    replies: Mutex<HashMap<String, u32>>,
    unquoted: AtomicU64,
    sent: AtomicU64,
}

async fn graph(
    axum::extract::State(counted): axum::extract::State<Arc<Counted>>,
    body: axum::body::Bytes,
) -> axum::Json<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if doc["status"] == "read" {
        return axum::Json(serde_json::json!({"success": true}));
    }
    let n = counted.sent.fetch_add(1, Ordering::Relaxed);
    match doc["context"]["message_id"].as_str() {
        Some(id) => {
            *counted
                .replies
                .lock()
                .unwrap()
                .entry(id.to_owned())
                .or_default() += 1
        }
        None => {
            counted.unquoted.fetch_add(1, Ordering::Relaxed);
        }
    }
    axum::Json(serde_json::json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": doc["to"], "wa_id": doc["to"]}],
        "messages": [{"id": format!("wamid.out.{n}")}]
    }))
}

struct World {
    callers: Vec<Responder>,
    tenants: Vec<(TenantId, String)>,
    tenants_per_batch: usize,
    next: AtomicU64,
    counted: Arc<Counted>,
    failed: AtomicU64,
}

impl World {
    /// The next batch a Lambda instance receives: 10 records of distinct conversations,
    /// spread over `tenants_per_batch` businesses.
    fn batch(&self) -> Vec<BatchRecord> {
        let first = self.next.fetch_add(BATCH as u64, Ordering::Relaxed);
        let batch_no = (first / BATCH as u64) as usize;
        (0..BATCH)
            .map(|j| {
                let n = first + j as u64;
                let tenant = (batch_no * self.tenants_per_batch + j % self.tenants_per_batch)
                    % self.tenants.len();
                let (id, pnid) = &self.tenants[tenant];
                // Ten different customers per batch, whatever businesses it holds (so ten
                // conversations, one wave); they come back: 2,000 per business, all with
                // history (see HISTORY).
                let customer = format!("2547{:08}", (batch_no + j * 200) % 2_000);
                let job = Job::new(
                    id.0,
                    WebhookEvent {
                        phone_number_id: pnid.clone(),
                        kind: EventKind::Message(InboundMessage {
                            wa_message_id: format!("wamid.bench.{n}"),
                            from_wa_id: Some(customer),
                            from_user_id: None,
                            profile_name: Some("Wanjiku".into()),
                            timestamp: chrono::Utc::now().timestamp(),
                            message_type: "text".into(),
                            text: Some(QUESTIONS[n as usize % QUESTIONS.len()].0.into()),
                            reply_id: None,
                            media_id: None,
                            media_mime_type: None,
                            context_message_id: None,
                            referral_source_id: None,
                        }),
                    },
                );
                BatchRecord {
                    message_id: format!("sqs-{n}"),
                    group_id: Some(job.group_id()),
                    body: job.to_json(),
                }
            })
            .collect()
    }

    /// One round: every caller handles its batches one after the other, all callers at once.
    async fn round(&self) {
        let runs = self.callers.iter().map(|responder| async move {
            for _ in 0..BATCHES_PER_CALLER {
                let failed = responder.handle_batch(self.batch()).await;
                self.failed
                    .fetch_add(failed.len() as u64, Ordering::Relaxed);
            }
        });
        futures_util::future::join_all(runs).await;
    }
}

async fn setup() -> World {
    let callers = env_or("LAMBDA_BENCH_CALLERS", 8);
    let tenants = env_or("LAMBDA_BENCH_TENANTS", 20);
    let tenants_per_batch = env_or("LAMBDA_BENCH_TENANTS_PER_BATCH", 10).clamp(1, BATCH);
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let server = admin.rsplit_once('/').expect("DATABASE_URL ends in /db").0;
    let bouncer = std::env::var("ALPHADOME_TEST_PGBOUNCER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6432".into());

    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("PostgreSQL: run ./scripts/test-services.sh");
    for statement in [
        format!("drop database if exists {DATABASE} with (force)"),
        format!("create database {DATABASE}"),
    ] {
        sqlx::raw_sql(&statement).execute(&mut conn).await.unwrap();
    }
    let operator = Store::connect(&SecretString::from(format!("{server}/{DATABASE}")), 4)
        .await
        .unwrap();
    alphadome::store::MIGRATOR
        .run(operator.pool())
        .await
        .unwrap();
    let key_dir = std::env::temp_dir().join(format!("alphadome-bench-keys-{}", std::process::id()));
    let keys = || {
        KeyProvider::new(
            KeyBackend::LocalDir(key_dir.clone()),
            Duration::from_secs(600),
        )
    };
    let entries: Vec<NewEntry> = QUESTIONS
        .iter()
        .map(|(q, a)| NewEntry {
            question: (*q).into(),
            answer: (*a).into(),
            category: None,
            priority: 0,
            data_type: alphadome::domain::DataType::faq(),
        })
        .collect();
    let mut ids = Vec::new();
    for i in 1..=tenants {
        let pnid = format!("13{i:010}");
        let t = operator
            .create_tenant(
                &keys(),
                NewTenant {
                    client_name: format!("Bench Shop {i}"),
                    client_phone: PhoneNumber::parse(&format!("2547980{i:05}")).unwrap(),
                    phone_number_id: PhoneNumberId::parse(&pnid).unwrap(),
                    contact_name: None,
                    brand_id: None,
                    whatsapp_token: Some(SecretString::from(format!("bench-token-{i}"))),
                    ai_api_key: None,
                    meta_app_secret: None,
                    escalation_phone: None,
                    max_messages_per_hour: Some(i32::MAX),
                },
            )
            .await
            .unwrap();
        operator.import_entries(t.id, &entries).await.unwrap();
        ids.push((t.id, pnid));
    }
    // A business's history, as production has it: the customers the bench writes as already
    // known, two earlier exchanges each, and the planner's statistics of a table in use (a
    // fresh, empty table lets PostgreSQL cache plans that scan a whole tenant's rows later).
    sqlx::raw_sql(HISTORY)
        .execute(operator.pool())
        .await
        .unwrap();
    operator.pool().close().await;

    let counted = Arc::new(Counted::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph_url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(graph)
        .with_state(counted.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut responders = Vec::new();
    for _ in 0..callers {
        // One warm Lambda instance: `AppOptions::lambda(4)`, through the pooler.
        let store = Store::connect(&SecretString::from(format!("{bouncer}/{DATABASE}")), 4)
            .await
            .expect("PgBouncer on 6432: run ./scripts/test-services.sh");
        responders.push(Responder::new(
            store,
            keys(),
            Outbox::Graph(WhatsAppClient::new(&graph_url, Duration::from_secs(8))),
            OpenAiClient::new("http://127.0.0.1:9", Duration::from_secs(1)),
            None,
            ResponderOptions::default(),
        ));
    }
    World {
        callers: responders,
        tenants: ids,
        tenants_per_batch,
        next: AtomicU64::new(0),
        counted,
        failed: AtomicU64::new(0),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let world = Arc::new(rt.block_on(setup()));
    let per_round = (world.callers.len() * BATCHES_PER_CALLER * BATCH) as u64;
    let mut group = c.benchmark_group("lambda path");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(per_round));
    group.bench_function(
        format!(
            "handle_batch via PgBouncer, {} callers x {BATCHES_PER_CALLER} batches of {BATCH}, {} tenants ({} per batch)",
            world.callers.len(),
            world.tenants.len(),
            world.tenants_per_batch
        ),
        |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let world = world.clone();
                async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        world.round().await;
                    }
                    start.elapsed()
                }
            })
        },
    );
    group.finish();

    // Exactly once, counted where the replies land.
    let messages = world.next.load(Ordering::Relaxed);
    let replies = world.counted.replies.lock().unwrap();
    let twice = replies.values().filter(|&&n| n > 1).count();
    let missing = (0..messages)
        .filter(|n| !replies.contains_key(&format!("wamid.bench.{n}")))
        .count();
    let failed = world.failed.load(Ordering::Relaxed);
    let unquoted = world.counted.unquoted.load(Ordering::Relaxed);
    println!(
        "lambda path: {messages} messages, {} replies at the Graph stand-in, {twice} answered twice, {missing} unanswered, {failed} records reported failed, {unquoted} other sends",
        world.counted.sent.load(Ordering::Relaxed)
    );
    assert!(
        twice == 0 && missing == 0 && failed == 0 && unquoted == 0,
        "not exactly once"
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
