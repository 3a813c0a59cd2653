//! Logs carry ids, counts and outcomes only: never a token, key, full phone number or message
//! text. Its own test binary, so one global subscriber sees every log line of the run.

mod common;

use common::*;

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn no_token_key_full_phone_number_or_message_text_reaches_a_log_line(pool: PgPool) {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = {
        let logs = logs.clone();
        move || LogWriter(logs.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(writer)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // The production connection options (the test pool's own would log statements).
    let db: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let store = Store::connect(&SecretString::from(url), 4).await.unwrap();
    let w = world_on(
        store,
        pool,
        ResponderOptions {
            ai_deadline: Duration::from_millis(1500),
            ..Default::default()
        },
    )
    .await;
    Mock::given(method("POST"))
        .and(header(
            "authorization",
            format!("Bearer {A_TOKEN}").as_str(),
        ))
        .respond_with(graph_error(400, 131047))
        .mount(&w.graph)
        .await;
    accept_sends(&w.graph).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&w.openai)
        .await;
    let secret_text = "my secret question about ukulele prices";
    let _ = w
        .responder
        .handle_job(&message(&w.a, A_PNID, "wamid.log1", secret_text))
        .await;
    let _ = w
        .responder
        .handle_job(&message(
            &w.b,
            B_PNID,
            "wamid.log2",
            "Do you do braids for my wedding?",
        ))
        .await;
    let _ = w
        .responder
        .handle_job(&message(
            &w.b,
            B_PNID,
            "wamid.log3",
            "nataka kuongea na mtu",
        ))
        .await;

    // A voice note: its signed media URL and its transcript stay out of the logs too.
    let media_url = format!("{}/files/VOICE1?mid=1&hash=SIGNEDMEDIAHASH", w.graph.uri());
    Mock::given(method("GET"))
        .and(path("/VOICE1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "url": media_url, "mime_type": "audio/ogg", "id": "VOICE1"
        })))
        .mount(&w.graph)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/VOICE1"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(b"OggS-voice".to_vec(), "audio/ogg"))
        .mount(&w.graph)
        .await;
    Mock::given(method("POST"))
        .and(path("/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "text": "a spoken secret about cello strings"
        })))
        .mount(&w.openai)
        .await;
    let mut voice = message_from(&w.a, A_PNID, "wamid.log4", "", "254711000999");
    if let alphadome::job::JobKind::Message(m) = &mut voice.kind {
        m.message_type = "audio".into();
        m.text = None;
        m.media_id = Some("VOICE1".into());
    }
    let _ = w.responder.handle_job(&voice).await;
    assert_eq!(
        w.openai
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/audio/transcriptions")
            .count(),
        1,
        "the voice note was transcribed"
    );

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.contains("job handled"), "logs were captured: {text}");
    for (i, forbidden) in [
        A_TOKEN,
        B_TOKEN,
        A_AI_KEY,
        PLATFORM_AI_KEY,
        CUSTOMER,
        OWNER,
        secret_text,
        "braids for my wedding",
        "kuongea",
        "SIGNEDMEDIAHASH",
        "cello strings",
    ]
    .iter()
    .enumerate()
    {
        // On failure, name the kind of leak and the offending log target, not the secret.
        let leak = text.lines().find(|l| l.contains(forbidden)).map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["target"].as_str().map(str::to_owned))
                .unwrap_or_default()
        });
        assert!(
            leak.is_none(),
            "forbidden item #{i} appears in a log line from {leak:?}"
        );
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
