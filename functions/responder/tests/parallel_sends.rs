//! One queue batch, many customers: their replies go to Graph at once, so a batch of ten
//! waits about one Graph latency, not ten; one customer's replies stay in order.
//!
//! The Graph stand-in holds every send until the sends it expects are all in flight (or a
//! few seconds have passed) and records how many it held at once. The assertions are on that
//! count and on the order sends arrived in — never on wall time.

mod common;

use axum::extract::State;
use axum::routing::post;
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A Graph API that holds sends until `expect` have arrived.
struct Gate {
    expect: usize,
    arrived: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    /// (recipient, text) of every text send, in arrival order.
    texts: Mutex<Vec<(String, String)>>,
}

async fn graph(State(gate): State<Arc<Gate>>, body: String) -> axum::Json<serde_json::Value> {
    let reply = serde_json::json!({"messaging_product": "whatsapp",
        "messages": [{"id": format!("wamid.out.{}", uuid::Uuid::new_v4().simple())}]});
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if sent["type"] != "text" {
        // Read receipts are not what the customers wait for.
        return axum::Json(reply);
    }
    gate.texts.lock().unwrap().push((
        sent["to"].as_str().unwrap_or_default().to_owned(),
        sent["text"]["body"].as_str().unwrap_or_default().to_owned(),
    ));
    let now = gate.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    gate.most_in_flight.fetch_max(now, Ordering::SeqCst);
    gate.arrived.fetch_add(1, Ordering::SeqCst);
    // Sequential sends never get here together: each is let go after the deadline instead.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while gate.arrived.load(Ordering::SeqCst) < gate.expect
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gate.in_flight.fetch_sub(1, Ordering::SeqCst);
    axum::Json(reply)
}

/// The world, with its Graph client pointed at a gate expecting `expect` sends.
async fn gated_world(pool: PgPool, expect: usize) -> (World, Arc<Gate>) {
    let mut w = world(pool).await;
    let gate = Arc::new(Gate {
        expect,
        arrived: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        most_in_flight: AtomicUsize::new(0),
        texts: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/{pnid}/messages", post(graph))
        .with_state(gate.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    w.responder = Responder::new(
        w.store.clone(),
        w.keys.clone(),
        Outbox::Graph(WhatsAppClient::new(
            format!("http://{addr}"),
            Duration::from_secs(10),
        )),
        OpenAiClient::new(w.openai.uri(), Duration::from_millis(500)),
        None,
        ResponderOptions::default(),
    );
    (w, gate)
}

async fn handle(w: &World, jobs: &[Job]) -> usize {
    let resp = responder::handle(
        &w.responder,
        lambda_runtime::LambdaEvent::new(sqs_event(jobs), Default::default()),
    )
    .await
    .unwrap();
    resp.batch_item_failures.len()
}

fn customer(i: usize) -> String {
    format!("2547110002{i:02}")
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_batch_of_ten_customers_sends_all_ten_replies_at_once(pool: PgPool) {
    let (w, gate) = gated_world(pool, 10).await;
    let jobs: Vec<Job> = (0..10)
        .map(|i| {
            message_from(
                &w.a,
                A_PNID,
                &format!("wamid.par.{i}"),
                "What are your opening hours?",
                &customer(i),
            )
        })
        .collect();
    assert_eq!(handle(&w, &jobs).await, 0, "every record answered");
    let texts = gate.texts.lock().unwrap().clone();
    assert_eq!(texts.len(), 10, "one reply per customer");
    assert_eq!(
        gate.most_in_flight.load(Ordering::SeqCst),
        10,
        "the ten replies were at Graph together"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn one_customers_two_messages_in_a_batch_are_answered_in_order(pool: PgPool) {
    // Nine customers; the first of them sent two messages. The first wave holds one message
    // of each customer (nine at once); the second message's reply follows the first's.
    let (w, gate) = gated_world(pool, 9).await;
    let mut jobs: Vec<Job> = (0..9)
        .map(|i| {
            message_from(
                &w.a,
                A_PNID,
                &format!("wamid.ord.{i}"),
                "What are your opening hours?",
                &customer(i),
            )
        })
        .collect();
    jobs.insert(
        1,
        message_from(
            &w.a,
            A_PNID,
            "wamid.ord.second",
            "Can I pay with M-Pesa?",
            &customer(0),
        ),
    );
    assert_eq!(handle(&w, &jobs).await, 0);
    let texts = gate.texts.lock().unwrap().clone();
    assert_eq!(texts.len(), 10);
    assert_eq!(gate.most_in_flight.load(Ordering::SeqCst), 9);
    let first: Vec<&str> = texts
        .iter()
        .filter(|(to, _)| *to == customer(0))
        .map(|(_, text)| text.as_str())
        .collect();
    assert_eq!(first.len(), 2);
    assert!(first[0].contains("Monday"), "{first:?}");
    assert!(first[1].contains("M-Pesa"), "{first:?}");
    assert_eq!(
        texts.last().unwrap().0,
        customer(0),
        "the second message waited for the first wave"
    );
}
