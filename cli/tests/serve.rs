//! `alphadome serve` in-process: real HTTP on a loopback port, a fresh migrated PostgreSQL
//! database per test, the in-process queue and responder, and a wiremock server standing in
//! for Meta's Graph API.

use std::time::{Duration, Instant};

use alphadome::local_queue::RetryPolicy;
use alphadome::store::Store;
use alphadome_cli::demo::{ensure_business, KASSANGAS, NYOTA};
use alphadome_cli::meta::{signature, TextMessage};
use alphadome_cli::serve::{run_server, ServeOptions, ServeReport};
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use alphadome::testing::{
    spawn_app, StandIns, TEST_APP_SECRET as APP_SECRET, TEST_VERIFY_TOKEN as VERIFY_TOKEN,
};
const CUSTOMER: &str = "254711000111";

struct TestServer {
    base: String,
    graph: MockServer,
    store: Store,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<ServeReport>>,
}

/// Graph answers every send with `response`.
async fn graph_answering(response: ResponseTemplate) -> MockServer {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/[0-9]+/messages$"))
        .respond_with(response)
        .mount(&graph)
        .await;
    graph
}

fn graph_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
        "messages": [{"id": format!("wamid.sent.{}", uuid::Uuid::new_v4().simple())}]
    }))
}

/// Starts `serve` on a free port over the test database, with both demo businesses.
async fn spawn_server(pool: PgPool, graph: MockServer, options: ServeOptions) -> TestServer {
    let t = spawn_app(
        pool,
        StandIns {
            graph: Some(graph.uri()),
            ..Default::default()
        },
    );
    for business in [&KASSANGAS, &NYOTA] {
        ensure_business(t.store(), t.keys(), business)
            .await
            .unwrap();
    }
    let store = t.store().clone();
    let services = t.app;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run_server(&services, options, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    TestServer {
        base,
        graph,
        store,
        http: reqwest::Client::new(),
        stop: Some(stop),
        task,
    }
}

impl TestServer {
    async fn post_signed(&self, body: &[u8]) -> reqwest::Response {
        self.post(body, Some(signature(APP_SECRET.as_bytes(), body)))
            .await
    }

    async fn post(&self, body: &[u8], signature: Option<String>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/webhook", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("x-hub-signature-256", sig);
        }
        req.send().await.unwrap()
    }

    async fn health(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/healthz", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Text messages Graph received (read receipts left out).
    async fn sent_texts(&self) -> Vec<Request> {
        self.graph
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .map(|b| b["type"] == "text")
                    .unwrap_or(false)
            })
            .collect()
    }

    async fn shutdown(mut self) -> ServeReport {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap()
    }
}

fn message(pnid: &str, wamid: &str, text: &str) -> Vec<u8> {
    TextMessage {
        phone_number_id: pnid,
        display_phone_number: "254700000002",
        wa_message_id: wamid,
        from: CUSTOMER,
        profile_name: "Wanjiku",
        text,
        timestamp: chrono::Utc::now().timestamp(),
    }
    .to_body()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// (direction, status) of every conversation row about `wamid`.
async fn rows_about(store: &Store, wamid: &str) -> Vec<(String, String)> {
    let mut tx = store.pool().begin().await.unwrap();
    let rows = sqlx::query_as(
        "select direction, status from public.conversations
          where wa_message_id = $1 or in_reply_to = $1 order by direction",
    )
    .persistent(false)
    .bind(wamid)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    rows
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn serve_answers_the_subscription_handshake_only_with_the_right_verify_token(pool: PgPool) {
    let server = spawn_server(pool, graph_answering(graph_ok()).await, Default::default()).await;
    let get = |token: &str| {
        server
            .http
            .get(format!(
                "{}/webhook?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
                server.base
            ))
            .send()
    };
    let ok = get(VERIFY_TOKEN).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = get("not-the-token").await.unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(!wrong.text().await.unwrap().contains("1158201444"));
    server.shutdown().await;
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn serve_rejects_a_delivery_with_a_bad_or_missing_signature_and_queues_nothing(pool: PgPool) {
    let server = spawn_server(pool, graph_answering(graph_ok()).await, Default::default()).await;
    let body = message(NYOTA.phone_number_id, "wamid.bad.sig", "Mko wapi?");
    let forged = signature(b"some-other-secret", &body);
    assert_eq!(server.post(&body, Some(forged)).await.status(), 401);
    assert_eq!(server.post(&body, None).await.status(), 401);
    let health = server.health().await;
    assert_eq!(health["queue"]["processed"], 0);
    assert_eq!(health["queue"]["pending"], 0);
    assert!(rows_about(&server.store, "wamid.bad.sig").await.is_empty());
    assert!(server.sent_texts().await.is_empty());
    server.shutdown().await;
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn serve_refuses_a_body_over_the_size_cap_with_413_from_the_core(pool: PgPool) {
    let server = spawn_server(pool, graph_answering(graph_ok()).await, Default::default()).await;
    let body = vec![b' '; alphadome::ingress::MAX_BODY_BYTES + 1];
    assert_eq!(server.post_signed(&body).await.status(), 413);
    server.shutdown().await;
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn serve_answers_a_signed_message_through_graph_with_the_receiving_tenants_token_and_number(
    pool: PgPool,
) {
    let server = spawn_server(pool, graph_answering(graph_ok()).await, Default::default()).await;
    let wamid = "wamid.serve.e2e.1";
    let body = message(
        NYOTA.phone_number_id,
        wamid,
        "How much are knotless braids?",
    );
    let answer = server.post_signed(&body).await;
    assert_eq!(answer.status(), 200);

    eventually("Graph receives the reply", || async {
        !server.sent_texts().await.is_empty()
    })
    .await;
    let sent = server.sent_texts().await;
    assert_eq!(sent.len(), 1, "exactly one reply");
    let reply = &sent[0];
    assert_eq!(reply.url.path(), "/110000000002/messages");
    assert_eq!(
        reply
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer demo-placeholder-whatsapp-token-110000000002"
    );
    let json: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["to"], CUSTOMER);
    assert!(json["text"]["body"]
        .as_str()
        .unwrap()
        .contains("knotless braids from KES 3,500"));
    assert_eq!(json["context"]["message_id"], wamid);

    eventually("the reply is logged as sent", || async {
        rows_about(&server.store, wamid).await
            == vec![
                ("incoming".to_owned(), "answered".to_owned()),
                ("outgoing".to_owned(), "sent".to_owned()),
            ]
    })
    .await;
    let health = server.health().await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"], "reachable");
    assert_eq!(health["queue"]["kind"], "in-process");
    let report = server.shutdown().await;
    assert_eq!(
        report,
        ServeReport {
            left: 0,
            parked: 0,
            processed: 1
        }
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_reply_graph_keeps_refusing_with_500_is_retried_then_parked_and_reported_not_lost(
    pool: PgPool,
) {
    let options = ServeOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
        },
        ..Default::default()
    };
    let server = spawn_server(
        pool,
        graph_answering(ResponseTemplate::new(500)).await,
        options,
    )
    .await;
    let wamid = "wamid.serve.parked.1";
    let body = message(KASSANGAS.phone_number_id, wamid, "Do you deliver?");
    assert_eq!(server.post_signed(&body).await.status(), 200);

    eventually("/healthz reports the parked job", || async {
        server.health().await["queue"]["parked"] == 1
    })
    .await;
    let health = server.health().await;
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["queue"]["pending"], 0);
    assert_eq!(
        server.sent_texts().await.len(),
        3,
        "one send per attempt, three attempts"
    );
    let rows = rows_about(&server.store, wamid).await;
    assert!(
        rows.iter().any(|(d, _)| d == "incoming"),
        "the message is logged"
    );
    assert!(
        !rows.iter().any(|(d, s)| d == "outgoing" && s == "sent"),
        "nothing claims to have been sent: {rows:?}"
    );
    let report = server.shutdown().await;
    assert_eq!(report.parked, 1);
    assert_eq!(report.left, 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn shutdown_lets_a_job_already_in_flight_finish_before_the_server_stops(pool: PgPool) {
    // Graph takes its time: the job is still sending when shutdown begins.
    let graph = graph_answering(graph_ok().set_delay(Duration::from_millis(800))).await;
    let server = spawn_server(pool, graph, Default::default()).await;
    let wamid = "wamid.serve.drain.1";
    let body = message(KASSANGAS.phone_number_id, wamid, "Where are you located?");
    assert_eq!(server.post_signed(&body).await.status(), 200);
    eventually("the send is in flight", || async {
        !server
            .graph
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    })
    .await;
    assert_eq!(server.health().await["queue"]["pending"], 1);

    let store = server.store.clone();
    let report = server.shutdown().await;
    assert_eq!(
        report,
        ServeReport {
            left: 0,
            parked: 0,
            processed: 1
        }
    );
    assert_eq!(
        rows_about(&store, wamid).await,
        vec![
            ("incoming".to_owned(), "answered".to_owned()),
            ("outgoing".to_owned(), "sent".to_owned()),
        ]
    );
}
