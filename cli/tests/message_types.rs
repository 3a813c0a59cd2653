//! What each WhatsApp message type gets, through the whole pipeline of `alphadome serve`:
//! the sample payloads of `shared/tests/data/payloads/`, signed and posted to the webhook,
//! queued, answered by the responder with the AI on (the platform's key) against the Graph
//! and OpenAI stand-ins, and logged in PostgreSQL. The README's table "What each message
//! type gets" is this test's expectation.

use std::time::{Duration, Instant};

use alphadome::store::Store;
use alphadome_cli::demo::{ensure_business, KASSANGAS};
use alphadome_cli::meta::signature;
use alphadome_cli::serve::{run_server, ServeOptions};
use sqlx::PgPool;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use alphadome::testing::{spawn_app, StandIns, TEST_APP_SECRET};

const AI_ANSWER: &str = "An answer from the model.";

/// What a message's incoming row says once handled: (status, reply source, note).
type Handled<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

/// A fixture payload as Kassangas would receive it now: its business number, a fresh
/// timestamp, a wamid and a customer of its own (so one type's hand-over pause does not
/// silence the next).
fn fixture(name: &str, n: usize) -> (Vec<u8>, String) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/tests/data/payloads")
        .join(format!("{name}.json"));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let wamid = format!("wamid.types.{name}");
    let customer = format!("2547000000{n:02}");
    let value = &mut v["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = KASSANGAS.phone_number_id.into();
    value["contacts"] = serde_json::json!([{"profile": {"name": "Amina"}, "wa_id": customer}]);
    let messages = value["messages"].as_array_mut().unwrap();
    assert_eq!(messages.len(), 1, "{name}");
    let m = messages[0].as_object_mut().unwrap();
    m.insert("id".into(), wamid.clone().into());
    m.insert("from".into(), customer.into());
    m.remove("from_user_id");
    m.insert(
        "timestamp".into(),
        chrono::Utc::now().timestamp().to_string().into(),
    );
    (serde_json::to_vec(&v).unwrap(), wamid)
}

/// (status, reply_source, note) of the incoming row of `wamid`, once it is final.
async fn outcome(store: &Store, wamid: &str) -> Option<(String, Option<String>, Option<String>)> {
    let mut tx = store.pool().begin().await.unwrap();
    let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "select status, reply_source, note from public.conversations
          where wa_message_id = $1 and direction = 'incoming'",
    )
    .persistent(false)
    .bind(wamid)
    .fetch_optional(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    row.filter(|(status, ..)| status != "processing")
}

async fn replies_to(store: &Store, wamid: &str) -> i64 {
    let mut tx = store.pool().begin().await.unwrap();
    let n: i64 =
        sqlx::query_scalar("select count(*) from public.conversations where in_reply_to = $1")
            .persistent(false)
            .bind(wamid)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    n
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn every_message_type_gets_its_defined_answer_through_serve_and_a_reaction_gets_nothing(
    pool: PgPool,
) {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/[0-9]+/messages$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messaging_product": "whatsapp",
            "messages": [{"id": format!("wamid.sent.{}", uuid::Uuid::new_v4().simple())}]
        })))
        .mount(&graph)
        .await;
    // No media is served: a voice note cannot be fetched, so it gets the request to type.
    let openai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": AI_ANSWER}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}
        })))
        .mount(&openai)
        .await;
    let t = spawn_app(
        pool,
        StandIns {
            graph: Some(graph.uri()),
            openai: Some(openai.uri()),
            platform_ai_key: Some("sk-test-platform-key".into()),
        },
    );
    ensure_business(t.store(), t.keys(), &KASSANGAS)
        .await
        .unwrap();
    let store = t.store().clone();
    let services = t.app;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run_server(&services, ServeOptions::default(), listener, async {
            let _ = stopped.await;
        })
        .await
    });

    // (fixture, status, reply source ("ai": the FAQ or the AI), note)
    let answered = |source: &'static str| ("answered", Some(source), None);
    let nothing = ("ignored", None, Some("not_answerable"));
    let expected: Vec<(&str, Handled)> = vec![
        ("text", answered("ai")),
        ("interactive_button_reply", answered("ai")),
        ("interactive_list_reply", answered("ai")),
        ("button", answered("ai")),
        ("image", answered("ai")),
        ("video", answered("ai")),
        ("document", answered("ai")),
        ("audio", answered("fallback")),
        ("location", answered("ai")),
        ("contacts", answered("fallback")),
        ("order", answered("escalation")),
        ("reaction", nothing),
        ("sticker", nothing),
        ("system", nothing),
        ("unsupported_with_errors", nothing),
        ("unknown_type_and_unknown_fields", nothing),
    ];
    let http = reqwest::Client::new();
    let mut wamids = Vec::new();
    for (n, (name, _)) in expected.iter().enumerate() {
        let (body, wamid) = fixture(name, n);
        let status = http
            .post(format!("{base}/webhook"))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                signature(TEST_APP_SECRET.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{name}");
        wamids.push(wamid);
    }

    let started = Instant::now();
    for ((name, want), wamid) in expected.iter().zip(&wamids) {
        let got = loop {
            if let Some(got) = outcome(&store, wamid).await {
                break got;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name} was not handled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Words are answered by the FAQ when it knows the answer, else by the AI.
        let source = match got.1.as_deref() {
            Some("faq" | "canned") if want.1 == Some("ai") => Some("ai"),
            other => other,
        };
        let got = (got.0.as_str(), source, got.2.as_deref());
        assert_eq!(got, *want, "{name}");
    }

    // The reaction (a 👍 on one of our replies): no reply row, nothing to Graph about it, and
    // its emoji never reached the model.
    let reaction = &wamids[11];
    assert_eq!(replies_to(&store, reaction).await, 0);
    let to_graph = graph.received_requests().await.unwrap();
    assert!(to_graph
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.body).contains(reaction.as_str())));
    let to_openai = openai.received_requests().await.unwrap();
    assert!(!to_openai.is_empty(), "the AI answered the other types");
    assert!(to_openai
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.body).contains('\u{1f44d}')
            && !String::from_utf8_lossy(&r.body).contains("\\ud83d\\udc4d")));
    // Only the order pinged the owner.
    let notices = to_graph
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(KASSANGAS.escalation_phone))
        .count();
    assert_eq!(notices, 1);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
