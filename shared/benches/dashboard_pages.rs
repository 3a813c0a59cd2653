//! Server time of each owners' dashboard page for a business with 20,000 conversations (one
//! customer each, a question and its reply; every 20th handed over, every 10th answered by
//! the AI) and 500 knowledge entries with a phrasing each, through the router as `serve` and
//! the admin Lambda run it: session check, the owner's RLS transaction(s), rendering.
//! A second business with its own rows shares the tables, as in production.
//!
//! Run (PostgreSQL on 127.0.0.1:5432; the database `alphadome_bench_dashboard` is rebuilt
//! and kept afterwards for EXPLAIN, see README):
//! `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p alphadome --bench dashboard_pages`
//! Prints p50 / p95 / max per page from 200 sequential requests, then criterion's estimates.

use alphadome::admin::auth::DevKey;
use alphadome::admin::conversations::TenantActions;
use alphadome::admin::AdminState;
use alphadome::domain::{DataType, PhoneNumber, PhoneNumberId};
use alphadome::keys::{KeyBackend, KeyProvider};
use alphadome::openai::OpenAiClient;
use alphadome::responder::{Outbox, Responder, ResponderOptions};
use alphadome::store::{NewEntry, NewTenant, Store};
use alphadome::whatsapp::WhatsAppClient;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use secrecy::SecretString;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const CUSTOMERS: i64 = 20_000;
const ENTRIES: usize = 500;
const DB: &str = "alphadome_bench_dashboard";
const CSRF: &str = "bench-csrf-token-0123456789abcdefghijklmnop";

struct Setup {
    router: Router,
    cookie: String,
    pages: Vec<(&'static str, String)>,
    tenant: uuid::Uuid,
}

async fn setup() -> Setup {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let server = base.rsplit_once('/').map(|(s, _)| s.to_owned()).unwrap();
    let admin = sqlx::PgPool::connect(&base)
        .await
        .expect("DATABASE_URL reachable");
    sqlx::query(&format!("drop database if exists {DB} with (force)"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("create database {DB}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = SecretString::from(format!("{server}/{DB}"));
    alphadome::store::migrate(&url).await.unwrap();
    let store = Store::connect(&url, 8).await.unwrap();
    let dir = std::env::temp_dir().join(format!("alphadome-bench-keys-{}", std::process::id()));
    let keys = KeyProvider::new(KeyBackend::LocalDir(dir), Duration::from_secs(60));
    let mut tenants = Vec::new();
    for (name, phone, pnid) in [
        ("Kassangas Music Shop", "254702245555", "110000000001"),
        ("Nyota Salon", "254711000222", "110000000002"),
    ] {
        tenants.push(
            store
                .create_tenant(
                    &keys,
                    NewTenant {
                        client_name: name.into(),
                        client_phone: PhoneNumber::parse(phone).unwrap(),
                        phone_number_id: PhoneNumberId::parse(pnid).unwrap(),
                        contact_name: None,
                        brand_id: None,
                        whatsapp_token: Some(SecretString::from("EAAGbench")),
                        ai_api_key: None,
                        meta_app_secret: None,
                        escalation_phone: None,
                        max_messages_per_hour: None,
                    },
                )
                .await
                .unwrap(),
        );
    }
    for (t, n) in tenants.iter().zip([ENTRIES, 50]) {
        let entries: Vec<NewEntry> = (0..n)
            .map(|i| NewEntry {
                question: format!("Do you stock model {i} of the Yamaha keyboard range?"),
                answer: format!("Yes, model {i} is in stock at KSh {}.", 10_000 + i),
                category: Some("stock".into()),
                priority: (i % 5) as i32,
                data_type: DataType::parse(if i % 25 == 0 { "canned" } else { "faq" }).unwrap(),
            })
            .collect();
        store.import_entries(t.id, &entries).await.unwrap();
        let customers = if n == ENTRIES { CUSTOMERS } else { 2_000 };
        // Customers, their question and its reply, spread over the last two weeks.
        sqlx::query(
            "insert into public.users (id, phone, full_name, brand_id, bot_tenant_id, last_inbound_at, bot_paused_until)
             select md5($1::text || i)::uuid, '2547' || lpad(i::text, 8, '0'), 'Customer ' || i, $2, $1,
                    now() - i * interval '1 minute',
                    case when i % 200 = 0 then now() + interval '1 hour' end
               from generate_series(1, $3::int) i",
        )
        .bind(t.id)
        .bind(t.brand_id)
        .bind(customers)
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "insert into public.conversations
                (brand_id, bot_tenant_id, user_id, direction, message_text, message_type, status,
                 reply_source, wa_message_id, in_reply_to, created_at)
             select $2, $1,
                    -- A hand-over notice goes to the owner: no customer on the row.
                    case when d.direction = 'outgoing' and i % 20 = 0 then null
                         else md5($1::text || i)::uuid end,
                    d.direction,
                    case d.direction when 'incoming' then 'Do you have model ' || i || ' in stock?'
                                     else 'Yes, model ' || i || ' is in stock.' end,
                    'text', case d.direction when 'incoming' then 'answered' else 'delivered' end,
                    case when i % 20 = 0 then 'escalation' when i % 10 = 0 then 'ai' else 'faq' end,
                    case d.direction when 'incoming' then 'wamid.in.' || $1 || '.' || i
                                     else 'wamid.out.' || $1 || '.' || i end,
                    case d.direction when 'outgoing' then 'wamid.in.' || $1 || '.' || i end,
                    now() - i * interval '1 minute' + d.delay
               from generate_series(1, $3::int) i
               cross join (values ('incoming', interval '0'), ('outgoing', interval '1 second')) d(direction, delay)",
        )
        .bind(t.id)
        .bind(t.brand_id)
        .bind(customers)
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "insert into alphadome.bot_training_phrasings (bot_tenant_id, training_data_id, phrasing, source)
             select bot_tenant_id, id, 'mna ' || question, 'generated'
               from alphadome.bot_training_data where bot_tenant_id = $1",
        )
        .bind(t.id)
        .execute(store.pool())
        .await
        .unwrap();
    }
    sqlx::query("analyze").execute(store.pool()).await.unwrap();

    let a = &tenants[0];
    let dev = DevKey::from_secret(SecretString::from("cd".repeat(32)));
    let responder = Responder::new(
        store.clone(),
        keys.clone(),
        Outbox::DryRun(std::sync::Arc::new(|_| {})),
        OpenAiClient::new("http://127.0.0.1:9", Duration::from_secs(1)),
        None,
        ResponderOptions::default(),
    );
    let actions = TenantActions {
        store: store.clone(),
        keys,
        whatsapp: WhatsAppClient::new("http://127.0.0.1:9", Duration::from_secs(1)),
        responder,
        ai_limits: Default::default(),
        default_model: "gpt-4o-mini".into(),
    };
    let router = alphadome::http::admin::routes(
        AdminState::development(dev.clone(), store.pool().clone()).with_actions(actions),
    );
    // Sign in once, as a browser does.
    let token = dev.issue(a.brand_id.0, None, Duration::from_secs(3600));
    let response = router
        .clone()
        .oneshot(
            Request::post("/admin/session")
                .header(header::HOST, "127.0.0.1")
                .header(header::COOKIE, format!("alphadome_csrf={CSRF}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "access_token={token}&csrf_token={CSRF}"
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let session = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("alphadome_session="))
        .unwrap();
    let session = session.split(';').next().unwrap().to_owned();
    let cookie = format!("{session}; alphadome_csrf={CSRF}");

    let customer: uuid::Uuid = sqlx::query_scalar(
        "select id from public.users where bot_tenant_id = $1 and full_name = 'Customer 7'",
    )
    .bind(a.id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    let entry: uuid::Uuid = sqlx::query_scalar(
        "select id from alphadome.bot_training_data where bot_tenant_id = $1 order by question limit 1",
    )
    .bind(a.id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    let unanswered: uuid::Uuid = sqlx::query_scalar(
        "select id from public.conversations where bot_tenant_id = $1 and direction = 'incoming'
            and reply_source = 'ai' order by created_at desc limit 1",
    )
    .bind(a.id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    let pages = vec![
        ("overview", "/admin".to_owned()),
        ("conversations", "/admin/conversations".to_owned()),
        (
            "conversations search",
            "/admin/conversations?q=00012345".to_owned(),
        ),
        ("transcript", format!("/admin/conversations/{customer}")),
        ("hand-overs", "/admin/handovers".to_owned()),
        ("knowledge", "/admin/knowledge".to_owned()),
        ("entry", format!("/admin/knowledge/entries/{entry}")),
        ("unanswered", "/admin/knowledge/unanswered".to_owned()),
        ("teach", format!("/admin/knowledge/unanswered/{unanswered}")),
        (
            "export.csv",
            format!("/admin/knowledge/export.csv?tenant={}", a.id.0),
        ),
        ("assistant", "/admin/assistant".to_owned()),
        ("settings", "/admin/settings".to_owned()),
        ("usage", "/admin/usage".to_owned()),
    ];
    Setup {
        router,
        cookie,
        pages,
        tenant: a.id.0,
    }
}

async fn get(s: &Setup, uri: &str) {
    let response = s
        .router
        .clone()
        .oneshot(
            Request::get(uri)
                .header(header::HOST, "127.0.0.1")
                .header(header::COOKIE, &s.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
}

/// "Try it": the dry run over 500 entries (FAQ match; no AI key, so no network).
async fn try_it(s: &Setup) {
    let response = s
        .router
        .clone()
        .oneshot(
            Request::post("/admin/knowledge/try")
                .header(header::HOST, "127.0.0.1")
                .header(header::COOKIE, &s.cookie)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "tenant_id={}&text=do+you+stock+model+42+of+the+yamaha+keyboard&csrf_token={CSRF}",
                    s.tenant
                )))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
}

fn percentiles(mut d: Vec<Duration>) -> (f64, f64, f64) {
    d.sort();
    let ms = |x: Duration| x.as_secs_f64() * 1e3;
    (
        ms(d[d.len() / 2]),
        ms(d[(d.len() * 95).div_ceil(100) - 1]),
        ms(d[d.len() - 1]),
    )
}

fn dashboard_pages(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(setup());
    println!(
        "page                   p50 ms   p95 ms   max ms   (200 requests each, after 20 warm-up)"
    );
    let mut rows = Vec::new();
    for (name, uri) in &s.pages {
        let samples = rt.block_on(async {
            for _ in 0..20 {
                get(&s, uri).await;
            }
            let mut d = Vec::with_capacity(200);
            for _ in 0..200 {
                let t = Instant::now();
                get(&s, uri).await;
                d.push(t.elapsed());
            }
            d
        });
        rows.push((name.to_string(), percentiles(samples)));
    }
    let samples = rt.block_on(async {
        for _ in 0..20 {
            try_it(&s).await;
        }
        let mut d = Vec::with_capacity(200);
        for _ in 0..200 {
            let t = Instant::now();
            try_it(&s).await;
            d.push(t.elapsed());
        }
        d
    });
    rows.push(("try it (POST)".into(), percentiles(samples)));
    for (name, (p50, p95, max)) in &rows {
        println!("{name:<22} {p50:>7.2}  {p95:>7.2}  {max:>7.2}");
    }

    let mut group = c.benchmark_group("dashboard_pages");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    for (name, uri) in &s.pages {
        group.bench_function(*name, |b| b.to_async(&rt).iter(|| get(&s, uri)));
    }
    group.bench_function("try it", |b| b.to_async(&rt).iter(|| try_it(&s)));
    group.finish();
}

criterion_group!(benches, dashboard_pages);
criterion_main!(benches);
