//! `alphadome serve` with `REPLY_QUEUE_URL`: the Lambda path on one machine. Signed deliveries
//! go webhook → SQS FIFO (moto) → the consumer (long poll, batches of ≤ 10, the responder
//! Lambda's batch handler) → a wiremock Graph stand-in, which counts every reply; the queue
//! has a dead-letter queue through its redrive policy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alphadome::job::Job;
use alphadome::queue::JobQueue;
use alphadome::sqs_consumer::{ConsumerOptions, SqsConsumer};
use alphadome::testing::{moto_sdk, spawn_app, StandIns, TestApp, TEST_APP_SECRET};
use alphadome_cli::demo::{ensure_business, KASSANGAS, NYOTA};
use alphadome_cli::meta::{signature, TextMessage};
use alphadome_cli::serve::{run_server, ServeOptions};
use aws_sdk_sqs::types::QueueAttributeName;
use sqlx::PgPool;
use wiremock::matchers::{body_string_contains, method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn graph_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "messaging_product": "whatsapp",
        "messages": [{"id": format!("wamid.sent.{}", uuid::Uuid::new_v4().simple())}]
    }))
}

/// A Graph stand-in accepting every send (after `delay`), each with a fresh wamid.
async fn graph(delay: Duration) -> MockServer {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/[0-9]+/messages$"))
        .respond_with(move |_: &wiremock::Request| graph_ok().set_delay(delay))
        .mount(&graph)
        .await;
    graph
}

/// Text replies Graph received: the customer message each quotes, counted. Read receipts and
/// sends Graph refused are left out (`accepted` = answered with 200).
async fn answered(graph: &MockServer) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for r in graph.received_requests().await.unwrap_or_default() {
        let Ok(b) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
            continue;
        };
        if b["type"] != "text" {
            continue;
        }
        if let Some(id) = b["context"]["message_id"].as_str() {
            *per.entry(id.to_owned()).or_default() += 1;
        }
    }
    per
}

/// A FIFO queue and its dead-letter queue on moto: `max_receives` receives, then the DLQ.
async fn queue_pair(
    sqs: &aws_sdk_sqs::Client,
    visibility_s: u32,
    max_receives: u32,
) -> (String, String) {
    let name = uuid::Uuid::new_v4().simple().to_string();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("dlq-{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("moto on 127.0.0.1:5000: run scripts/test-services.sh")
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let url = sqs
        .create_queue()
        .queue_name(format!("replies-{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_s.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives})
                .to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (url, dlq)
}

/// Messages visible and in flight on a queue.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let a = out.attributes().unwrap();
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse().ok()).unwrap_or(0);
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// The demo businesses on a test app over moto whose replies go to `graph`.
async fn app_over_moto(pool: PgPool, graph: &MockServer, queue_url: &str) -> TestApp {
    let mut t = spawn_app(
        pool,
        StandIns {
            graph: Some(graph.uri()),
            ..Default::default()
        },
    )
    .with_sdk(moto_sdk().await);
    t.app.settings.reply_queue_url = Some(queue_url.to_owned());
    for business in [&KASSANGAS, &NYOTA] {
        ensure_business(t.store(), t.keys(), business)
            .await
            .unwrap();
    }
    t
}

fn delivery(pnid: &str, wamid: &str, from: &str, text: &str) -> Vec<u8> {
    TextMessage {
        phone_number_id: pnid,
        display_phone_number: "254700000002",
        wa_message_id: wamid,
        from,
        profile_name: "Wanjiku",
        text,
        timestamp: chrono::Utc::now().timestamp(),
    }
    .to_body()
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Short timings for the tests: a 1 s long poll, a 2 s lease, and a batch deadline (25 s)
/// that covers the default wave budget (20 s), so no record is handed back.
fn options(pollers: usize) -> ServeOptions {
    ServeOptions {
        consumer: ConsumerOptions {
            pollers,
            wait_seconds: 1,
            batch_timeout: Duration::from_secs(25),
            ..Default::default()
        },
        lease_seconds: Some(2),
        ..Default::default()
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn serve_with_a_queue_answers_every_webhook_message_exactly_once_through_sqs(pool: PgPool) {
    let graph = graph(Duration::ZERO).await;
    let sdk = moto_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (url, dlq) = queue_pair(&sqs, 30, 3).await;
    let t = app_over_moto(pool, &graph, &url).await;
    let app = t.app;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        run_server(&app, options(3), listener, async {
            let _ = stopped.await;
        })
        .await
    });

    // 4 customers of each business, 4 messages each: 32 messages in 8 FIFO groups.
    let http = reqwest::Client::new();
    // Questions each business's FAQ answers (an unanswered one would pause the customer).
    let questions = [
        [
            "What are your opening hours?",
            "Where are you located?",
            "How can I pay?",
            "Do you deliver?",
        ],
        [
            "What are your opening hours?",
            "Where is the salon?",
            "How much are braids?",
            "What payment methods do you accept?",
        ],
    ];
    let mut wamids = Vec::new();
    #[allow(clippy::needless_range_loop)] // `round` indexes both businesses' questions
    for round in 0..4 {
        for (b, business) in [&KASSANGAS, &NYOTA].iter().enumerate() {
            for c in 0..4 {
                let wamid = format!("wamid.sqs.{b}.{c}.{round}");
                let body = delivery(
                    business.phone_number_id,
                    &wamid,
                    &format!("2547110{b}{c:04}"),
                    questions[b][round],
                );
                let res = http
                    .post(format!("{base}/webhook"))
                    .header("content-type", "application/json")
                    .header(
                        "x-hub-signature-256",
                        signature(TEST_APP_SECRET.as_bytes(), &body),
                    )
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                wamids.push(wamid);
            }
        }
    }
    eventually(
        "every message answered",
        Duration::from_secs(60),
        || async { answered(&graph).await.len() == wamids.len() },
    )
    .await;
    // Nothing more arrives: no duplicate after a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let per = answered(&graph).await;
    assert_eq!(per.len(), 32);
    assert!(
        per.values().all(|&n| n == 1),
        "each message answered exactly once at Graph: {per:?}"
    );
    assert!(wamids.iter().all(|w| per.contains_key(w)));
    eventually("the queue is empty", Duration::from_secs(10), || async {
        queue_depth(&sqs, &url).await == (0, 0)
    })
    .await;
    assert_eq!(queue_depth(&sqs, &dlq).await, (0, 0), "nothing in the DLQ");

    let _ = stop.send(());
    let report = tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("serve stops")
        .unwrap()
        .unwrap();
    assert_eq!(report.processed, 32, "every record deleted once");
}

/// A consumer of `url` with short timings.
fn consumer(t: &TestApp, url: &str, batch_timeout: Duration, lease: u32) -> SqsConsumer {
    let mut tunables = t.app.responder_options();
    tunables.lease_seconds = lease;
    SqsConsumer::new(
        aws_sdk_sqs::Client::new(&t.app.sdk),
        url,
        t.app.responder_with(
            alphadome::responder::Outbox::Graph(t.app.whatsapp()),
            tunables,
        ),
        ConsumerOptions {
            pollers: 2,
            wait_seconds: 1,
            batch_timeout,
            ..Default::default()
        },
    )
}

/// Jobs as the webhook builds them, through the real ingress (no HTTP needed).
async fn jobs_for(t: &TestApp, deliveries: &[Vec<u8>]) -> Vec<Job> {
    let mut jobs = Vec::new();
    for body in deliveries {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        let change = &value["entry"][0]["changes"][0]["value"];
        let m = &change["messages"][0];
        let pnid = change["metadata"]["phone_number_id"].as_str().unwrap();
        let tenant = t.store().find_tenant(pnid).await.unwrap();
        jobs.push(Job::new(
            tenant.0,
            alphadome::webhook::WebhookEvent {
                phone_number_id: pnid.into(),
                kind: alphadome::webhook::EventKind::Message(alphadome::webhook::InboundMessage {
                    wa_message_id: m["id"].as_str().unwrap().into(),
                    from_wa_id: Some(m["from"].as_str().unwrap().into()),
                    from_user_id: None,
                    profile_name: Some("Wanjiku".into()),
                    timestamp: chrono::Utc::now().timestamp(),
                    message_type: "text".into(),
                    text: Some(m["text"]["body"].as_str().unwrap().into()),
                    reply_id: None,
                    media_id: None,
                    media_mime_type: None,
                    context_message_id: None,
                    referral_source_id: None,
                }),
            },
        ));
    }
    jobs
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_record_that_always_fails_ends_in_the_dead_letter_queue_after_max_receive_count(
    pool: PgPool,
) {
    let graph = MockServer::start().await;
    // Graph refuses every send to one customer with a retryable 503: a poison record.
    Mock::given(method("POST"))
        .and(body_string_contains("254711000999"))
        .respond_with(ResponseTemplate::new(503).set_body_json(serde_json::json!({
            "error": {"message": "Service unavailable", "code": 131000}
        })))
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .respond_with(|_: &wiremock::Request| graph_ok())
        .mount(&graph)
        .await;
    let sdk = moto_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (url, dlq) = queue_pair(&sqs, 2, 2).await;
    let t = app_over_moto(pool, &graph, &url).await;
    let jobs = jobs_for(
        &t,
        &[
            delivery(
                KASSANGAS.phone_number_id,
                "wamid.poison",
                "254711000999",
                "Do you deliver?",
            ),
            delivery(
                KASSANGAS.phone_number_id,
                "wamid.fine",
                "254711000111",
                "Do you deliver?",
            ),
        ],
    )
    .await;
    JobQueue::Sqs {
        client: sqs.clone(),
        url: url.clone(),
    }
    .enqueue(&jobs)
    .await
    .unwrap();
    let c = consumer(&t, &url, Duration::from_secs(1), 1);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn({
        let c = c.clone();
        async move { c.run(stopped).await }
    });
    eventually(
        "the poison record is moved to the DLQ",
        Duration::from_secs(30),
        || async { queue_depth(&sqs, &dlq).await.0 == 1 },
    )
    .await;
    let _ = stop.send(true);
    let counts = running.await.unwrap();

    let per = answered(&graph).await;
    assert_eq!(
        per.get("wamid.fine"),
        Some(&1),
        "the other customer answered once"
    );
    let attempts = graph
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("254711000999"))
        .count();
    assert_eq!(attempts, 2, "tried once per receive, maxReceiveCount = 2");
    assert_eq!(counts.failed, 2);
    let dead = sqs.receive_message().queue_url(&dlq).send().await.unwrap();
    let job = Job::from_json(dead.messages()[0].body().unwrap()).unwrap();
    assert_eq!(job.wa_message_id(), "wamid.poison");
    assert_eq!(queue_depth(&sqs, &url).await, (0, 0));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn records_a_batch_deadline_leaves_unstarted_come_back_at_once_and_are_answered_once(
    pool: PgPool,
) {
    let graph = graph(Duration::ZERO).await;
    let sdk = moto_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    // A 60 s visibility timeout: only a hand-back brings a record back within the test. Each
    // hand-back still counts as a receive: 10 receives cover a group of up to 10 records.
    let (url, dlq) = queue_pair(&sqs, 60, 10).await;
    let t = app_over_moto(pool, &graph, &url).await;
    // One customer's four messages: one FIFO group, four waves in one batch.
    let deliveries: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            delivery(
                NYOTA.phone_number_id,
                &format!("wamid.wave.{i}"),
                "254711000111",
                "How much are knotless braids?",
            )
        })
        .collect();
    let jobs = jobs_for(&t, &deliveries).await;
    JobQueue::Sqs {
        client: sqs.clone(),
        url: url.clone(),
    }
    .enqueue(&jobs)
    .await
    .unwrap();
    // A batch deadline of 1 s against the default wave budget (20 s): one wave per batch.
    let c = consumer(&t, &url, Duration::from_secs(1), 5);
    let started = Instant::now();
    let first = c.poll_once().await.unwrap();
    assert_eq!(first.failed, Vec::<String>::new());
    assert_eq!(first.not_started.len(), 3, "three records handed back");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn({
        let c = c.clone();
        async move { c.run(stopped).await }
    });
    eventually("all four answered", Duration::from_secs(20), || async {
        answered(&graph).await.len() == 4
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "back at once, not after the visibility timeout"
    );
    let _ = stop.send(true);
    running.await.unwrap();
    let per = answered(&graph).await;
    assert!(per.values().all(|&n| n == 1), "{per:?}");
    let stats = c.stats().counts();
    assert!(
        stats.handed_back >= 6,
        "three, then two, then one: {stats:?}"
    );
    assert_eq!(queue_depth(&sqs, &url).await, (0, 0));
    assert_eq!(queue_depth(&sqs, &dlq).await, (0, 0));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn on_shutdown_a_consumer_finishes_the_batch_it_holds(pool: PgPool) {
    // Graph takes 1.5 s per send: the stop arrives mid-batch.
    let graph = graph(Duration::from_millis(1500)).await;
    let sdk = moto_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (url, _dlq) = queue_pair(&sqs, 30, 5).await;
    let t = app_over_moto(pool, &graph, &url).await;
    let jobs = jobs_for(
        &t,
        &[delivery(
            KASSANGAS.phone_number_id,
            "wamid.inflight",
            "254711000111",
            "Do you deliver?",
        )],
    )
    .await;
    JobQueue::Sqs {
        client: sqs.clone(),
        url: url.clone(),
    }
    .enqueue(&jobs)
    .await
    .unwrap();
    let c = consumer(&t, &url, Duration::from_secs(5), 5);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn({
        let c = c.clone();
        async move { c.run(stopped).await }
    });
    eventually("the send is in flight", Duration::from_secs(10), || async {
        !graph
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    let _ = stop.send(true);
    let counts = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the consumer stops")
        .unwrap();
    assert_eq!(
        counts.deleted, 1,
        "the batch in hand was finished and deleted"
    );
    assert_eq!(answered(&graph).await.get("wamid.inflight"), Some(&1));
    assert_eq!(
        queue_depth(&sqs, &url).await,
        (0, 0),
        "nothing left in flight"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn serve_refuses_a_queue_whose_visibility_timeout_does_not_cover_lease_and_batch(
    pool: PgPool,
) {
    let graph = graph(Duration::ZERO).await;
    let sqs = aws_sdk_sqs::Client::new(&moto_sdk().await);
    let (url, _) = queue_pair(&sqs, 26, 5).await;
    let t = app_over_moto(pool, &graph, &url).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = run_server(&t.app, options(1), listener, async {})
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("VisibilityTimeout (26 s)"),
        "{err:#}"
    );
}
