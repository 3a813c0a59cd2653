//! The webhook Lambda handler fed with API Gateway HTTP API (v2) events through lambda_http's
//! own request parsing, over a real SQS FIFO queue (moto) and a real PostgreSQL database.

use alphadome::domain::PhoneNumberId;
use alphadome::ingress::Ingress;
use alphadome::job::{Job, JobKind};
use alphadome::keys::KeyProvider;
use alphadome::store::{Store, TenantSummary};
use alphadome::testing::{moto_sdk, spawn_app, StandIns, TestApp, TestTenant};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use lambda_http::Request;
use secrecy::SecretString;
use sqlx::PgPool;
use std::path::PathBuf;
use std::time::Duration;

use alphadome::testing::{TEST_APP_SECRET as APP_SECRET, TEST_VERIFY_TOKEN as VERIFY_TOKEN};
const KASSANGAS: &str = "110000000001";
const SALON: &str = "110000000002";
/// The number of the fixtures in shared/tests/data/payloads.
const FIXTURE_NUMBER: &str = "106540352242922";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn event(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("events").join(name)).unwrap())
        .unwrap()
}

fn request(ev: &serde_json::Value) -> Request {
    lambda_http::request::from_str(&ev.to_string()).expect("a valid API Gateway v2 event")
}

/// A POST event carrying `body` with the given signature header (None: no header).
fn post(body: &[u8], signature: Option<&str>) -> Request {
    let mut ev = event("webhook-text-message.json");
    ev["body"] = serde_json::Value::String(String::from_utf8(body.to_vec()).unwrap());
    let headers = ev["headers"].as_object_mut().unwrap();
    headers.remove("x-hub-signature-256");
    if let Some(sig) = signature {
        headers.insert("x-hub-signature-256".into(), sig.into());
    }
    request(&ev)
}

fn signed(body: &[u8]) -> Request {
    post(
        body,
        Some(&alphadome::webhook::sign(APP_SECRET.as_bytes(), body)),
    )
}

fn text_payload(pnid: &str, wamid: &str, from: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "254700000001", "phone_number_id": pnid},
            "contacts": [{"profile": {"name": "Wanjiku"}, "wa_id": from}],
            "messages": [{"from": from, "id": wamid, "timestamp": "1795928400", "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap()
}

struct World {
    t: TestApp,
    ingress: Ingress,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    kassangas: TenantSummary,
    salon: TenantSummary,
    store: Store,
    keys: KeyProvider,
}

fn business<'a>(name: &'a str, phone: &'a str, pnid: &'a str, token: &'a str) -> TestTenant<'a> {
    TestTenant {
        name,
        phone,
        phone_number_id: pnid,
        token: Some(token),
        ..Default::default()
    }
}

async fn world(pool: PgPool) -> World {
    world_with_legacy(pool, None).await
}

/// Two businesses on the app every process builds, over a fresh SQS FIFO queue on moto.
async fn world_with_legacy(pool: PgPool, legacy: Option<alphadome::config::LegacyRoute>) -> World {
    let mut t = spawn_app(pool, StandIns::default()).with_sdk(moto_sdk().await);
    if let Some(legacy) = legacy {
        t = t.with_legacy(legacy);
    }
    let kassangas = t
        .onboard(business(
            "Kassangas Music Shop",
            "254702245555",
            KASSANGAS,
            "EAA-110000000001",
        ))
        .await;
    let salon = t
        .onboard(business(
            "Nyota Salon",
            "254711000222",
            SALON,
            "EAA-110000000002",
        ))
        .await;
    let sqs = aws_sdk_sqs::Client::new(&t.app.sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!(
            "alphadome-test-{}.fifo",
            uuid::Uuid::new_v4().simple()
        ))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .expect("moto on 127.0.0.1:5000: run scripts/test-services.sh")
        .queue_url
        .unwrap();
    t.app.settings.reply_queue_url = Some(queue_url.clone());
    let ingress = t.app.ingress(t.app.sqs_queue().unwrap());
    World {
        store: t.store().clone(),
        keys: t.keys().clone(),
        t,
        ingress,
        sqs,
        queue_url,
        kassangas,
        salon,
    }
}

struct Queued {
    job: Job,
    group: String,
    dedup: String,
}

impl World {
    /// The router as the Lambda runs it: `lambda_http` has parsed the API Gateway event
    /// into this request (base64 bodies decoded), and the router answers it.
    async fn call(&self, req: Request) -> (u16, String) {
        use tower::ServiceExt as _;
        let router = self.t.app.router(self.ingress.clone(), None);
        let resp = router.oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Everything on the queue (received and deleted).
    async fn drain(&self) -> Vec<Queued> {
        let mut out = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                let attrs = m.attributes.clone().unwrap_or_default();
                out.push(Queued {
                    job: Job::from_json(m.body().unwrap()).unwrap(),
                    group: attrs[&MessageSystemAttributeName::MessageGroupId].clone(),
                    dedup: attrs[&MessageSystemAttributeName::MessageDeduplicationId].clone(),
                });
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_subscription_handshake_answers_the_challenge_only_for_the_right_token(pool: PgPool) {
    let w = world(pool).await;
    let (status, body) = w.call(request(&event("webhook-verify.json"))).await;
    assert_eq!((status, body.as_str()), (200, "1158201444"));

    let mut wrong = event("webhook-verify.json");
    wrong["rawQueryString"] = "hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1".into();
    wrong["queryStringParameters"] = serde_json::json!({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"});
    assert_eq!(w.call(request(&wrong)).await.0, 403);

    let mut no_mode = event("webhook-verify.json");
    no_mode["queryStringParameters"] =
        serde_json::json!({"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"});
    no_mode["rawQueryString"] = format!("hub.verify_token={VERIFY_TOKEN}&hub.challenge=1").into();
    assert_eq!(w.call(request(&no_mode)).await.0, 403);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_signed_text_message_becomes_one_job_for_the_tenant_that_owns_the_number(pool: PgPool) {
    let w = world(pool).await;
    let (status, _) = w.call(request(&event("webhook-text-message.json"))).await;
    assert_eq!(status, 200);
    let jobs = w.drain().await;
    assert_eq!(jobs.len(), 1);
    let q = &jobs[0];
    assert_eq!(q.job.tenant_id, w.kassangas.id.0);
    assert_eq!(q.job.phone_number_id, KASSANGAS);
    assert_eq!(q.group, q.job.group_id());
    assert!(
        !q.group.contains("254711000111"),
        "no phone number in the group id"
    );
    assert_eq!(q.dedup, "wamid.HBgMMjU0NzExMDAwMTExFQIAEhggQTFBMkEzQTQ=");
    match &q.job.kind {
        JobKind::Message(m) => {
            assert_eq!(
                m.text.as_deref(),
                Some("What time do you open on Saturday?")
            );
            assert_eq!(m.from_wa_id.as_deref(), Some("254711000111"));
        }
        other => panic!("expected a message job, got {other:?}"),
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn escaped_swahili_and_emoji_verify_on_the_exact_bytes_also_when_base64_encoded(
    pool: PgPool,
) {
    let w = world(pool).await;
    for name in [
        "webhook-swahili-message.json",
        "webhook-text-message-base64.json",
    ] {
        assert_eq!(w.call(request(&event(name))).await.0, 200, "{name}");
        let jobs = w.drain().await;
        assert_eq!(jobs.len(), 1, "{name}");
        assert_eq!(jobs[0].job.tenant_id, w.salon.id.0);
        match &jobs[0].job.kind {
            JobKind::Message(m) => {
                assert_eq!(
                    m.text.as_deref(),
                    Some("Habari! Mnafungua saa ngapi? \u{1F3B8} Asante sana")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_status_update_is_written_by_the_webhook_not_enqueued(pool: PgPool) {
    let w = world(pool).await;
    assert_eq!(
        w.call(request(&event("webhook-status-update.json")))
            .await
            .0,
        200
    );
    assert_eq!(w.drain().await.len(), 0, "statuses are not queue jobs");
    // Its message is not recorded here: the status is kept until it is.
    assert_eq!(
        pending_statuses(&w).await,
        vec![(w.kassangas.id.0, "delivered".to_owned())]
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn every_malformed_or_wrong_signature_is_401_and_enqueues_nothing(pool: PgPool) {
    let w = world(pool).await;
    assert_eq!(
        w.call(request(&event("webhook-bad-signature.json"))).await,
        (401, "invalid signature".into())
    );

    let body = text_payload(KASSANGAS, "wamid.sig.1", "254711000111", "hello");
    let good = alphadome::webhook::sign(APP_SECRET.as_bytes(), &body);
    let mut one_byte = body.clone();
    let i = one_byte.iter().position(|b| *b == b'h').unwrap();
    one_byte[i] = b'H';
    let reserialised =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&body).unwrap())
            .unwrap();
    let cases: Vec<(&str, Request)> = vec![
        ("one byte changed", post(&one_byte, Some(&good))),
        ("re-serialised body", post(&reserialised, Some(&good))),
        (
            "uppercase digest",
            post(
                &body,
                Some(&format!(
                    "sha256={}",
                    good["sha256=".len()..].to_uppercase()
                )),
            ),
        ),
        (
            "sha1 prefix",
            post(&body, Some(&format!("sha1={}", &good["sha256=".len()..]))),
        ),
        ("no prefix", post(&body, Some(&good["sha256=".len()..]))),
        ("no header", post(&body, None)),
        ("empty digest", post(&body, Some("sha256="))),
    ];
    for (name, req) in cases {
        assert_eq!(w.call(req).await.0, 401, "{name}");
    }
    assert_eq!(w.drain().await.len(), 0, "nothing was enqueued");
    // The untouched body with the right signature passes, proving the cases above were close.
    assert_eq!(w.call(post(&body, Some(&good))).await.0, 200);
    assert_eq!(w.drain().await.len(), 1);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_oversized_body_is_413_before_anything_else(pool: PgPool) {
    let w = world(pool).await;
    let mut body = text_payload(KASSANGAS, "wamid.big", "254711000111", "x");
    body.resize(alphadome::ingress::MAX_BODY_BYTES + 1, b' ');
    assert_eq!(w.call(signed(&body)).await.0, 413);
    assert_eq!(w.drain().await.len(), 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_number_no_tenant_owns_is_200_with_nothing_enqueued(pool: PgPool) {
    let w = world(pool).await;
    let body = text_payload("119999999999", "wamid.unknown", "254711000111", "hello");
    assert_eq!(w.call(signed(&body)).await.0, 200);
    assert_eq!(w.drain().await.len(), 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_inactive_tenant_gets_nothing_enqueued(pool: PgPool) {
    let w = world(pool).await;
    w.store.set_tenant_active(w.salon.id, false).await.unwrap();
    let body = text_payload(SALON, "wamid.inactive", "254711000111", "hello");
    assert_eq!(w.call(signed(&body)).await.0, 200);
    assert_eq!(w.drain().await.len(), 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_batch_for_two_tenants_yields_two_jobs_in_two_groups_each_with_its_own_tenant(
    pool: PgPool,
) {
    let w = world(pool).await;
    let body = serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "1", "phone_number_id": KASSANGAS},
                "messages": [{"from": "254711000111", "id": "wamid.batch.a", "timestamp": "1", "type": "text", "text": {"body": "a"}}]}}]},
            {"id": "2", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "2", "phone_number_id": SALON},
                "messages": [{"from": "254711000111", "id": "wamid.batch.b", "timestamp": "1", "type": "text", "text": {"body": "b"}}]}}]}
        ]
    }))
    .unwrap();
    assert_eq!(w.call(signed(&body)).await.0, 200);
    let jobs = w.drain().await;
    assert_eq!(jobs.len(), 2);
    let a = jobs
        .iter()
        .find(|q| q.job.wa_message_id() == "wamid.batch.a")
        .unwrap();
    let b = jobs
        .iter()
        .find(|q| q.job.wa_message_id() == "wamid.batch.b")
        .unwrap();
    assert_eq!(a.job.tenant_id, w.kassangas.id.0);
    assert_eq!(b.job.tenant_id, w.salon.id.0);
    assert_ne!(
        a.group, b.group,
        "the same customer of two businesses is two conversations"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_redelivered_payload_yields_no_second_job_within_the_dedup_window(pool: PgPool) {
    let w = world(pool).await;
    for _ in 0..3 {
        assert_eq!(
            w.call(request(&event("webhook-text-message.json"))).await.0,
            200
        );
    }
    assert_eq!(w.drain().await.len(), 1);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn every_documented_message_type_parses_and_is_accepted(pool: PgPool) {
    let w = world(pool).await;
    // The fixtures' business number belongs to Kassangas here, so every event is enqueued.
    sqlx::query("update alphadome.bot_tenants set whatsapp_phone_number_id = $1 where id = $2")
        .bind(FIXTURE_NUMBER)
        .bind(w.kassangas.id)
        .execute(w.store.pool())
        .await
        .unwrap();
    let dir = repo().join("shared/tests/data/payloads");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20);
    let mut expected = std::collections::BTreeSet::new();
    for f in &files {
        let body = std::fs::read(f).unwrap();
        let payload = alphadome::webhook::WebhookPayload::from_slice(&body).unwrap();
        // Fixtures that repeat a wamid are one job: SQS deduplicates them. Statuses are
        // written by the webhook, not enqueued.
        for e in alphadome::webhook::extract_events(&payload) {
            if e.phone_number_id == FIXTURE_NUMBER
                && matches!(e.kind, alphadome::webhook::EventKind::Message(_))
            {
                expected.insert(Job::new(w.kassangas.id.0, e).dedup_id());
            }
        }
        let (status, _) = w.call(signed(&body)).await;
        assert_eq!(status, 200, "{}", f.display());
    }
    let jobs = w.drain().await;
    assert_eq!(jobs.len(), expected.len());
    assert!(jobs.iter().all(|q| q.job.tenant_id == w.kassangas.id.0));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_queue_failure_is_500_so_meta_retries(pool: PgPool) {
    let mut w = world(pool).await;
    let missing = format!("{}-missing.fifo", w.queue_url.trim_end_matches(".fifo"));
    w.t.app.settings.reply_queue_url = Some(missing);
    w.ingress = w.t.app.ingress(w.t.app.sqs_queue().unwrap());
    let (status, body) = w.call(request(&event("webhook-text-message.json"))).await;
    assert_eq!(status, 500);
    assert!(
        !body.contains("sqs") && !body.contains("queue"),
        "no internals in the body: {body}"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_business_with_its_own_meta_app_is_verified_with_its_own_secret_only_for_its_numbers(
    pool: PgPool,
) {
    let w = world(pool).await;
    let own_secret = "salon-own-meta-app-secret";
    w.store
        .set_tenant_secret(
            &w.keys,
            w.salon.id,
            alphadome::crypto::SecretColumn::MetaAppSecret,
            &SecretString::from(own_secret.to_owned()),
        )
        .await
        .unwrap();
    let body = text_payload(SALON, "wamid.own.app", "254711000111", "hi");
    let req = post(
        &body,
        Some(&alphadome::webhook::sign(own_secret.as_bytes(), &body)),
    );
    assert_eq!(w.call(req).await.0, 200);
    assert_eq!(w.drain().await.len(), 1);
    // The salon's secret does not vouch for another tenant's number.
    let body = text_payload(KASSANGAS, "wamid.forged", "254711000111", "hi");
    let req = post(
        &body,
        Some(&alphadome::webhook::sign(own_secret.as_bytes(), &body)),
    );
    assert_eq!(w.call(req).await.0, 401);
    assert_eq!(w.drain().await.len(), 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_legacy_number_is_answered_by_the_tenant_of_the_default_brand(pool: PgPool) {
    let legacy_number = "868405499681303";
    // The brand id is only known after onboarding, so build the world twice.
    let w0 = world(pool.clone()).await;
    let legacy = alphadome::config::LegacyRoute {
        phone_number_id: PhoneNumberId::parse(legacy_number).unwrap(),
        brand_id: w0.kassangas.brand_id,
    };
    let mut w = w0;
    w.t.app.settings.legacy = Some(legacy);
    w.ingress = w.t.app.ingress(w.t.app.sqs_queue().unwrap());
    let body = text_payload(legacy_number, "wamid.legacy", "254711000111", "hi");
    assert_eq!(w.call(signed(&body)).await.0, 200);
    let jobs = w.drain().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job.tenant_id, w.kassangas.id.0);
    assert_eq!(
        jobs[0].job.phone_number_id, legacy_number,
        "the reply goes out from the number that received it"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn another_method_on_the_webhook_is_405(pool: PgPool) {
    let w = world(pool).await;
    let mut ev = event("webhook-text-message.json");
    ev["requestContext"]["http"]["method"] = "PUT".into();
    assert_eq!(w.call(request(&ev)).await.0, 405);
    assert_eq!(w.drain().await.len(), 0);
}

/// Transactions committed in the test database, read after the pool's one connection has
/// flushed its statistics (PostgreSQL flushes a backend's counters at most once a second).
async fn committed(pool: &PgPool) -> i64 {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sqlx::query("select 1").execute(pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("select pg_stat_force_next_flush()")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("select pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_scalar(
        "select xact_commit from pg_stat_database where datname = current_database()",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

/// Calls of our tenant-lookup functions so far (read right after [`committed`] flushed them).
async fn lookups(pool: &PgPool) -> i64 {
    sqlx::query("select pg_stat_clear_snapshot()")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_user_functions
          where schemaname = 'alphadome'
            and funcname in ('resolve_tenant', 'resolve_tenant_by_brand', 'any_tenant_app_secret')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A body with `n` distinct business numbers, each with one message.
fn many_numbers(n: usize) -> Vec<u8> {
    let mut body =
        String::from(r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":["#);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"1","phone_number_id":"{}"}}}}}}"#,
            200_000_000_000u64 + i as u64
        ));
    }
    body.push_str("]}]}");
    body.into_bytes()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_forged_delivery_with_thousands_of_numbers_costs_the_database_almost_nothing(
    pool: PgPool,
) {
    // One connection, so every statement the webhook makes is counted by one backend; the
    // test's own pool (which ran the migrations) is closed so its late statistics flush
    // cannot land inside a measurement.
    // Our backend also counts calls of our SQL functions (track_functions), which only it
    // makes: an exact count of tenant lookups, whatever autovacuum does in the database.
    let options = (*pool.connect_options())
        .clone()
        .options([("track_functions", "all")]);
    pool.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let w = world(pool.clone()).await;
    let body = many_numbers(20_000);
    assert!(body.len() < alphadome::ingress::MAX_BODY_BYTES);
    let forged = alphadome::webhook::sign(b"not-the-app-secret", &body);

    // What measuring costs by itself (its own statements are counted too). Transactions are
    // counted database-wide, where autovacuum and late statistics flushes add a few (up to 6
    // seen on a loaded machine): those bounds allow `NOISE`, against the 20,000 an unbounded
    // webhook makes; the lookups themselves are counted exactly.
    const NOISE: i64 = 20;
    let before = committed(&pool).await;
    let overhead = committed(&pool).await - before;

    // No tenant has its own app secret: at most the one cached yes/no question.
    let before = committed(&pool).await;
    let looked_up = lookups(&pool).await;
    assert_eq!(w.call(post(&body, Some(&forged))).await.0, 401);
    let after = committed(&pool).await;
    assert!(
        lookups(&pool).await - looked_up <= 1,
        "only the cached yes/no question is asked"
    );
    assert!(
        after - before - overhead <= NOISE,
        "{} transactions for a forged delivery",
        after - before - overhead
    );

    // With a tenant on its own Meta app, still only a handful of numbers are looked up.
    w.store
        .set_tenant_secret(
            &w.keys,
            w.salon.id,
            alphadome::crypto::SecretColumn::MetaAppSecret,
            &SecretString::from("salon-own-meta-app-secret".to_owned()),
        )
        .await
        .unwrap();
    w.ingress.forget_routes();
    let before = committed(&pool).await;
    let looked_up = lookups(&pool).await;
    assert_eq!(w.call(post(&body, Some(&forged))).await.0, 401);
    let small = many_numbers(3);
    let forged_small = alphadome::webhook::sign(b"not-the-app-secret", &small);
    assert_eq!(w.call(post(&small, Some(&forged_small))).await.0, 401);
    let after = committed(&pool).await;
    let n = lookups(&pool).await - looked_up;
    assert!(
        (3..=1 + 3).contains(&n),
        "{n} lookups: the 20,000-number body none, the 3-number one its 3 (+ the cached question)"
    );
    assert!(
        after - before - overhead <= NOISE + alphadome::ingress::MAX_UNVERIFIED_NUMBERS as i64,
        "{} transactions for forged deliveries",
        after - before - overhead
    );
    // A malformed header never reaches the database.
    let before = committed(&pool).await;
    let looked_up = lookups(&pool).await;
    assert_eq!(w.call(post(&body, Some("sha256=zz"))).await.0, 401);
    let after = committed(&pool).await;
    assert_eq!(lookups(&pool).await, looked_up, "no lookup at all");
    assert!(
        after - before - overhead <= NOISE,
        "{} transactions",
        after - before - overhead
    );
    assert_eq!(w.drain().await.len(), 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn nul_characters_and_cut_off_emoji_are_cleaned_so_the_message_is_still_answered(
    pool: PgPool,
) {
    let w = world(pool).await;
    let raw = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"1","phone_number_id":"{KASSANGAS}"}},"contacts":[{{"profile":{{"name":"Wan\u0000jiku"}},"wa_id":"254711000111"}}],"messages":[{{"from":"254711000111","id":"wamid.nul","timestamp":"1795928400","type":"text","text":{{"body":"hours?\u0000 \ud83d"}}}}]}}}}]}}]}}"#
    );
    let body = raw.into_bytes();
    assert_eq!(w.call(signed(&body)).await.0, 200);
    let jobs = w.drain().await;
    assert_eq!(jobs.len(), 1);
    match &jobs[0].job.kind {
        JobKind::Message(m) => {
            assert_eq!(m.text.as_deref(), Some("hours? \u{fffd}"));
            assert_eq!(m.profile_name.as_deref(), Some("Wanjiku"));
        }
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// Delivery statuses, written by the webhook itself (one round trip; migration 0023).

fn status_payload(pnid: &str, wamid: &str, status: &str, pricing: bool) -> Vec<u8> {
    let mut st = serde_json::json!({"id": wamid, "status": status, "timestamp": "1795928401",
        "recipient_id": "254711000111"});
    if pricing {
        st["pricing"] = serde_json::json!({"billable": true, "pricing_model": "PMP",
            "category": "utility", "type": "regular"});
    }
    if status == "failed" {
        st["errors"] = serde_json::json!([{"code": 131026, "title": "Message undeliverable"}]);
    }
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "254700000001", "phone_number_id": pnid},
            "statuses": [st]
        }}]}]
    }))
    .unwrap()
}

/// The responder's three round trips for one answered message, through the store's own calls:
/// claim `inbound`, record one reply, record Graph's answer `out` (the reply's wamid).
async fn reply_sent(
    w: &World,
    tenant: &TenantSummary,
    inbound: &str,
    out: Option<&str>,
) -> uuid::Uuid {
    use alphadome::store::{BeginInbound, PlannedReply, RecordReplies};
    let begun = w
        .store
        .begin_inbound_batch(
            tenant.id,
            120,
            6,
            &[BeginInbound {
                wa_message_id: inbound,
                attempt: uuid::Uuid::new_v4(),
                phone: Some("254711000111"),
                user_id: None,
                profile_name: Some("Wanjiku"),
                message_type: "text",
                text: Some("hello"),
                intent: None,
                count_reply: true,
                with_history: false,
                foreseen: None,
            }],
        )
        .await
        .unwrap();
    assert!(begun[0].claimed);
    let replies = [PlannedReply {
        source: "faq",
        text: "We open at 9.".into(),
        to_customer: true,
    }];
    let recorded = w
        .store
        .record_replies_batch(
            tenant.id,
            &[RecordReplies {
                wa_message_id: inbound,
                attempt: uuid::Uuid::new_v4(),
                user_id: begun[0].user_id,
                inbound_status: "answered",
                reply_source: Some("faq"),
                replies: &replies,
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    let id = recorded[0][0].id;
    if let Some(out) = out {
        mark_sent(w, tenant, inbound, id, out).await;
    }
    id
}

async fn mark_sent(w: &World, tenant: &TenantSummary, inbound: &str, id: uuid::Uuid, out: &str) {
    use alphadome::store::{MarkSent, SendResult};
    let results = [SendResult {
        id,
        status: "sent",
        sent_wa_message_id: Some(out.to_owned()),
        error_code: None,
    }];
    w.store
        .mark_sent_batch(
            tenant.id,
            &[MarkSent {
                wa_message_id: inbound,
                results: &results,
                token_invalid: false,
            }],
        )
        .await
        .unwrap();
}

/// The outgoing row's status and error code, read in Postgres.
async fn outgoing(w: &World, id: uuid::Uuid) -> (Option<String>, Option<i32>) {
    sqlx::query_as("select status, error_code from public.conversations where id = $1")
        .bind(id)
        .fetch_one(w.store.pool())
        .await
        .unwrap()
}

/// Today's usage counter `key` of a tenant.
async fn counted(w: &World, tenant: &TenantSummary, key: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(
        "select (counts ->> $2)::bigint from alphadome.bot_usage_daily
          where bot_tenant_id = $1 and day = (now() at time zone 'utc')::date",
    )
    .bind(tenant.id)
    .bind(key)
    .fetch_optional(w.store.pool())
    .await
    .unwrap()
    .flatten()
    .unwrap_or(0)
}

async fn pending_statuses(w: &World) -> Vec<(uuid::Uuid, String)> {
    sqlx::query_as(
        "select bot_tenant_id, status from alphadome.pending_statuses order by received_at, status",
    )
    .fetch_all(w.store.pool())
    .await
    .unwrap()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn statuses_move_a_reply_forward_only_counted_once_and_enqueue_nothing(pool: PgPool) {
    let w = world(pool).await;
    let id = reply_sent(&w, &w.kassangas, "wamid.in.1", Some("wamid.out.1")).await;
    assert_eq!(outgoing(&w, id).await.0.as_deref(), Some("sent"));

    let w = &w;
    let post = |status: &'static str| async move {
        let body = status_payload(KASSANGAS, "wamid.out.1", status, true);
        w.call(signed(&body)).await.0
    };
    assert_eq!(post("delivered").await, 200);
    assert_eq!(outgoing(w, id).await.0.as_deref(), Some("delivered"));
    assert_eq!(post("read").await, 200);
    assert_eq!(outgoing(w, id).await.0.as_deref(), Some("read"));
    // Late and repeated ones never move it back.
    for late in ["delivered", "sent", "read"] {
        assert_eq!(post(late).await, 200);
        assert_eq!(
            outgoing(w, id).await.0.as_deref(),
            Some("read"),
            "after a late {late}"
        );
    }
    // Meta's pricing is counted once per message, however many statuses carry it.
    assert_eq!(counted(w, &w.kassangas, "outbound:utility").await, 1);
    assert_eq!(counted(w, &w.kassangas, "billable:utility").await, 1);
    assert_eq!(w.drain().await.len(), 0, "no status became a queue job");
    assert!(pending_statuses(w).await.is_empty());
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_status_that_comes_before_its_wamid_is_recorded_is_applied_when_it_is(pool: PgPool) {
    let w = world(pool).await;
    // Graph has answered the send and Meta already reports on it, but the responder has not
    // recorded the reply's wamid yet.
    let id = reply_sent(&w, &w.kassangas, "wamid.in.2", None).await;
    for status in ["delivered", "sent"] {
        let body = status_payload(KASSANGAS, "wamid.out.2", status, status == "sent");
        assert_eq!(w.call(signed(&body)).await.0, 200);
    }
    assert_eq!(outgoing(&w, id).await.0.as_deref(), Some("pending"));
    assert_eq!(pending_statuses(&w).await.len(), 2);

    mark_sent(&w, &w.kassangas, "wamid.in.2", id, "wamid.out.2").await;
    assert_eq!(
        outgoing(&w, id).await.0.as_deref(),
        Some("delivered"),
        "the early statuses were applied when the wamid was recorded"
    );
    assert!(pending_statuses(&w).await.is_empty(), "and then forgotten");
    assert_eq!(counted(&w, &w.kassangas, "outbound:utility").await, 1);

    // A failure that comes early is applied (and counted) the same way.
    let id = reply_sent(&w, &w.kassangas, "wamid.in.3", None).await;
    let body = status_payload(KASSANGAS, "wamid.out.3", "failed", false);
    assert_eq!(w.call(signed(&body)).await.0, 200);
    mark_sent(&w, &w.kassangas, "wamid.in.3", id, "wamid.out.3").await;
    assert_eq!(
        outgoing(&w, id).await,
        (Some("failed".into()), Some(131026))
    );
    assert_eq!(counted(&w, &w.kassangas, "failed_sends").await, 1);
    assert_eq!(w.drain().await.len(), 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_status_for_another_tenants_wamid_touches_nothing_of_theirs(pool: PgPool) {
    let w = world(pool).await;
    let id = reply_sent(&w, &w.kassangas, "wamid.in.4", Some("wamid.out.4")).await;
    // Delivered to the salon's number, naming Kassangas' reply.
    let body = status_payload(SALON, "wamid.out.4", "failed", true);
    assert_eq!(w.call(signed(&body)).await.0, 200);
    assert_eq!(outgoing(&w, id).await, (Some("sent".into()), None));
    assert_eq!(counted(&w, &w.kassangas, "failed_sends").await, 0);
    assert_eq!(counted(&w, &w.kassangas, "outbound:utility").await, 0);
    // Kept for the salon, where no such message will ever be recorded (dropped after a day);
    // a later status for Kassangas' reply still applies to it alone.
    assert_eq!(
        pending_statuses(&w).await,
        vec![(w.salon.id.0, "failed".to_owned())]
    );
    let body = status_payload(KASSANGAS, "wamid.out.4", "read", false);
    assert_eq!(w.call(signed(&body)).await.0, 200);
    assert_eq!(outgoing(&w, id).await, (Some("read".into()), None));
    assert_eq!(counted(&w, &w.salon, "failed_sends").await, 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_status_the_database_cannot_take_is_500_so_meta_delivers_it_again(pool: PgPool) {
    let w = world(pool).await;
    // The number's route is cached by a first delivery, so only the status write meets the
    // database that is gone.
    let body = status_payload(KASSANGAS, "wamid.out.5", "delivered", false);
    assert_eq!(w.call(signed(&body)).await.0, 200);
    w.store.pool().close().await;
    let body = status_payload(KASSANGAS, "wamid.out.5", "read", false);
    let (status, reply) = w.call(signed(&body)).await;
    assert_eq!(status, 500);
    assert!(
        !reply.contains("postgres") && !reply.contains("sql"),
        "no internals in the body: {reply}"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_function_url_request_is_served_like_an_http_api_one(pool: PgPool) {
    let w = world(pool).await;
    // The template's default front: a Lambda function URL event (routeKey `$default`, a
    // lambda-url domain, account `anonymous`), parsed by lambda_http as production does.
    let ev = event("webhook-function-url.json");
    assert_eq!(ev["routeKey"], "$default");
    assert_eq!(w.call(request(&ev)).await.0, 200);
    let jobs = w.drain().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job.tenant_id, w.kassangas.id.0);
    // A status through the URL is written, not enqueued.
    assert_eq!(
        w.call(request(&event("webhook-function-url-status.json")))
            .await
            .0,
        200
    );
    assert_eq!(w.drain().await.len(), 0);
    assert_eq!(pending_statuses(&w).await.len(), 1);
    // The signature is checked on the URL's body as on the API's.
    let mut forged = event("webhook-function-url.json");
    forged["body"] = forged["body"]
        .as_str()
        .unwrap()
        .replace("guitar strings", "free guitars")
        .into();
    assert_eq!(w.call(request(&forged)).await.0, 401);
    assert_eq!(w.drain().await.len(), 0);
}

/// Log lines written by the code under test, in the functions' JSON format.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_delivery_logs_one_short_line_at_info_per_message_and_none_per_status(pool: PgPool) {
    use tracing::instrument::WithSubscriber;
    let w = world(pool).await;
    let logs = Captured::default();
    let writer = logs.clone();
    let dispatch = tracing::Dispatch::new(alphadome::telemetry::json_subscriber(
        "info,sqlx=warn",
        move || writer.clone(),
    ));
    let take = || std::mem::take(&mut *logs.0.lock().unwrap());
    let message = w
        .call(request(&event("webhook-text-message.json")))
        .with_subscriber(dispatch.clone())
        .await;
    assert_eq!(message.0, 200);
    let message = String::from_utf8(take()).unwrap();
    let status = w
        .call(request(&event("webhook-status-update.json")))
        .with_subscriber(dispatch.clone())
        .await;
    assert_eq!(status.0, 200);
    let status = String::from_utf8(take()).unwrap();
    // The figures scripts/cost.py uses (WEBHOOK_LOG_BYTES_*); run with --nocapture to see them.
    eprintln!(
        "webhook log bytes at info: message delivery {}, status delivery {}",
        message.len(),
        status.len()
    );
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("webhook delivery"), "{message}");
    assert!(message.len() <= 400, "a short line: {message}");
    assert_eq!(status, "", "a written status logs nothing at info");
    // At debug the status delivery has its line.
    let debug = tracing::Dispatch::new(alphadome::telemetry::json_subscriber("debug,sqlx=warn", {
        let writer = logs.clone();
        move || writer.clone()
    }));
    let again = w
        .call(request(&event("webhook-status-update.json")))
        .with_subscriber(debug)
        .await;
    assert_eq!(again.0, 200);
    assert!(String::from_utf8(take())
        .unwrap()
        .contains("webhook delivery"));
}
