//! Voice notes and pictures, end to end: the responder against real PostgreSQL, the Graph
//! stand-in serving the media (and checking the token it is asked with) and the OpenAI
//! stand-in transcribing and looking (and checking what it is sent).

mod common;

use common::*;
use wiremock::matchers::query_param;

/// A fake Ogg/Opus voice note: what matters is that the bytes arrive unchanged.
const VOICE: &[u8] = b"OggS\x00\x02fake-opus-voice-note-bytes";
/// A fake JPEG.
const PICTURE: &[u8] = b"\xff\xd8\xff\xe0fake-jpeg-of-a-guitar";

/// A voice note or picture as the webhook builds it.
fn media_message(
    tenant: &TenantSummary,
    wamid: &str,
    message_type: &str,
    media_id: &str,
    caption: Option<&str>,
) -> Job {
    let mut job = message(tenant, A_PNID, wamid, "");
    if let alphadome::job::JobKind::Message(m) = &mut job.kind {
        m.message_type = message_type.into();
        m.text = caption.map(str::to_owned);
        m.media_id = Some(media_id.into());
        m.media_mime_type = Some(match message_type {
            "audio" => "audio/ogg; codecs=opus".into(),
            _ => "image/jpeg".into(),
        });
    }
    job
}

/// Graph serves `media_id` at `file_url` (answered by whatever mock the test mounts there).
async fn serve_media_info(
    graph: &MockServer,
    media_id: &str,
    file_url: &str,
    mime: &str,
    size: usize,
) {
    Mock::given(method("GET"))
        .and(path(format!("/{media_id}")))
        .and(query_param("phone_number_id", A_PNID))
        .and(header(
            "authorization",
            format!("Bearer {A_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messaging_product": "whatsapp",
            "url": file_url,
            "mime_type": mime,
            "sha256": "abc",
            "file_size": size,
            "id": media_id
        })))
        .mount(graph)
        .await;
}

/// Graph serves the media's bytes at `/files/{media_id}`, only with tenant A's token.
async fn serve_media_file(graph: &MockServer, media_id: &str, bytes: &[u8], mime: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/files/{media_id}")))
        .and(header(
            "authorization",
            format!("Bearer {A_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_raw(bytes.to_vec(), mime))
        .mount(graph)
        .await;
}

async fn serve_voice_note(graph: &MockServer, media_id: &str) {
    let url = format!("{}/files/{media_id}", graph.uri());
    serve_media_info(graph, media_id, &url, "audio/ogg; codecs=opus", VOICE.len()).await;
    serve_media_file(graph, media_id, VOICE, "audio/ogg").await;
}

fn transcribed(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "text": text,
        "usage": {"type": "tokens", "input_tokens": 57, "output_tokens": 9, "total_tokens": 66,
                  "input_token_details": {"text_tokens": 0, "audio_tokens": 57}}
    }))
}

async fn requests_to(server: &MockServer, suffix: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().ends_with(suffix))
        .collect()
}

fn auth(r: &Request) -> String {
    r.headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The incoming row of `wamid`: its text, whether it is a transcript, its status.
async fn incoming(pool: &PgPool, wamid: &str) -> (Option<String>, bool, Option<String>) {
    sqlx::query_as(
        "select message_text, is_transcript, status from public.conversations
          where wa_message_id = $1 and direction = 'incoming'",
    )
    .bind(wamid)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn count(pool: &PgPool, tenant: TenantId, key: &str) -> i64 {
    sqlx::query_scalar(
        "select coalesce(sum((counts ->> $2)::bigint), 0)::bigint from alphadome.bot_usage_daily
          where bot_tenant_id = $1",
    )
    .bind(tenant)
    .bind(key)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn set_switch(w: &World, column: &str, on: bool) {
    sqlx::query(&format!(
        "update alphadome.bot_control_settings set {column} = $2 where bot_tenant_id = $1"
    ))
    .bind(w.a.id)
    .bind(on)
    .execute(&w.pool)
    .await
    .unwrap();
}

fn customer_texts(sent: &[Request]) -> Vec<String> {
    sent.iter()
        .filter(|r| body(r)["to"] == CUSTOMER)
        .map(|r| {
            body(r)["text"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_voice_note_is_fetched_with_the_tenants_token_transcribed_and_answered_from_the_faq(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    serve_voice_note(&w.graph, "MEDIA1").await;
    Mock::given(method("POST"))
        .and(path("/audio/transcriptions"))
        .respond_with(transcribed(
            "Naweza kulipa na M-Pesa? Can I pay with M-Pesa?",
        ))
        .mount(&w.openai)
        .await;

    let out = w
        .responder
        .handle_job(&media_message(
            &w.a,
            "wamid.voice1",
            "audio",
            "MEDIA1",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    let texts = customer_texts(&sends(&w.graph).await);
    assert_eq!(texts, vec!["Yes! Pay via M-Pesa Till 123456."]);

    // Both media requests carried the tenant's own token.
    let media: Vec<Request> = w
        .graph
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "GET")
        .collect();
    assert_eq!(media.len(), 2, "GET /MEDIA1, then its URL");
    assert!(media.iter().all(|r| auth(r) == format!("Bearer {A_TOKEN}")));

    // One multipart transcription with the tenant's own key, the default model, the audio as is.
    let asked = requests_to(&w.openai, "/audio/transcriptions").await;
    assert_eq!(asked.len(), 1);
    assert_eq!(auth(&asked[0]), format!("Bearer {A_AI_KEY}"));
    let content_type = asked[0]
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("multipart/form-data"),
        "{content_type}"
    );
    let form = String::from_utf8_lossy(&asked[0].body).into_owned();
    assert!(
        form.contains("name=\"model\"\r\n\r\ngpt-4o-mini-transcribe\r\n"),
        "{form}"
    );
    assert!(form.contains("filename=\"voice-note.ogg\""), "{form}");
    assert!(form.contains("Content-Type: audio/ogg"), "{form}");
    assert!(
        asked[0].body.windows(VOICE.len()).any(|w| w == VOICE),
        "the audio went unchanged"
    );
    assert!(requests_to(&w.openai, "/chat/completions").await.is_empty());

    // Logged as the incoming message's text, marked as a transcript; counted.
    let (text, is_transcript, status) = incoming(&w.pool, "wamid.voice1").await;
    assert_eq!(
        text.as_deref(),
        Some("Naweza kulipa na M-Pesa? Can I pay with M-Pesa?")
    );
    assert!(is_transcript);
    assert_eq!(status.as_deref(), Some("answered"));
    assert_eq!(count(&w.pool, w.a.id, "transcriptions").await, 1);
    assert_eq!(
        count(&w.pool, w.a.id, "transcription_input_tokens").await,
        57
    );
    assert_eq!(
        count(&w.pool, w.a.id, "transcription_output_tokens").await,
        9
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_voice_note_the_faq_cannot_answer_goes_to_the_ai_as_its_transcript(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    serve_voice_note(&w.graph, "MEDIA2").await;
    Mock::given(method("POST"))
        .and(path("/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "text": "Mko na violin ya watoto?",
            "usage": {"type": "duration", "seconds": 3.2}
        })))
        .mount(&w.openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok("Ndiyo, tuna violin za watoto kuanzia KES 9,000."))
        .mount(&w.openai)
        .await;
    let out = w
        .responder
        .handle_job(&media_message(
            &w.a,
            "wamid.voice2",
            "audio",
            "MEDIA2",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["ai"]));
    let chat = requests_to(&w.openai, "/chat/completions").await;
    assert_eq!(chat.len(), 1);
    let messages = body(&chat[0])["messages"].as_array().unwrap().clone();
    assert_eq!(
        messages.last().unwrap()["content"],
        "Mko na violin ya watoto?"
    );
    assert!(messages[0]["content"]
        .as_str()
        .unwrap()
        .contains("You sell musical instruments in Nairobi."));
    assert_eq!(count(&w.pool, w.a.id, "transcription_seconds").await, 4);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_voice_note_asks_the_customer_to_type_when_switched_off_or_not_transcribable(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    serve_voice_note(&w.graph, "MEDIA3").await;
    // The server refuses the audio for good (e.g. a format it does not take).
    Mock::given(method("POST"))
        .and(path("/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": {"message": "Invalid file format.", "type": "invalid_request_error"}
        })))
        .mount(&w.openai)
        .await;
    let out = w
        .responder
        .handle_job(&media_message(
            &w.a,
            "wamid.voice3",
            "audio",
            "MEDIA3",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback"]));
    assert_eq!(
        requests_to(&w.openai, "/audio/transcriptions").await.len(),
        1
    );

    // Switched off: nothing is downloaded or transcribed.
    set_switch(&w, "voice_notes_enabled", false).await;
    let responder = w.responder.with_fresh_cache();
    let before = w.graph.received_requests().await.unwrap().len();
    let out = responder
        .handle_job(&media_message(
            &w.a,
            "wamid.voice4",
            "audio",
            "MEDIA3",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback"]));
    let after: Vec<Request> = w.graph.received_requests().await.unwrap();
    assert!(
        after[before..].iter().all(|r| r.method.as_str() == "POST"),
        "no media request"
    );
    assert_eq!(
        requests_to(&w.openai, "/audio/transcriptions").await.len(),
        1
    );

    let texts = customer_texts(&sends(&w.graph).await);
    assert_eq!(texts.len(), 2);
    assert!(texts.iter().all(|t| t.contains("voice note")), "{texts:?}");
    let sent: Vec<Request> = sends(&w.graph).await;
    assert!(
        sent.iter().all(|r| body(r)["to"] == CUSTOMER),
        "no owner notice"
    );
    let (text, is_transcript, _) = incoming(&w.pool, "wamid.voice3").await;
    assert_eq!((text, is_transcript), (None, false));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_transient_transcription_failure_retries_the_job_and_an_old_one_asks_to_type(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    serve_voice_note(&w.graph, "MEDIA5").await;
    Mock::given(method("POST"))
        .and(path("/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .mount(&w.openai)
        .await;
    Mock::given(method("POST"))
        .and(path("/audio/transcriptions"))
        .respond_with(transcribed("What are your opening hours?"))
        .mount(&w.openai)
        .await;
    let job = media_message(&w.a, "wamid.voice5", "audio", "MEDIA5", None);
    // Three attempts within the call, all 503: the job is given back for the queue to retry.
    let first = w.responder.handle_job(&job).await;
    assert!(first.is_err(), "{first:?}");
    assert!(sends(&w.graph).await.is_empty(), "nothing sent yet");
    let (_, _, status) = incoming(&w.pool, "wamid.voice5").await;
    assert_eq!(status.as_deref(), Some("retry"), "the claim was given back");
    // The redelivery transcribes and answers.
    let out = w.responder.handle_job(&job).await.unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    assert_eq!(
        customer_texts(&sends(&w.graph).await),
        vec!["We are open Monday to Saturday, 9 AM to 6 PM. Closed Sunday."]
    );

    // A voice note older than the retry window is not retried for ever: the customer is
    // asked to type (never silence, never the dead-letter queue).
    Mock::given(method("POST"))
        .and(path("/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&w.openai)
        .await;
    let mut old = media_message(&w.a, "wamid.voice6", "audio", "MEDIA5", None);
    if let alphadome::job::JobKind::Message(m) = &mut old.kind {
        m.timestamp -= 6 * 60;
    }
    let out = w.responder.handle_job(&old).await.unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback"]));
    assert!(customer_texts(&sends(&w.graph).await)[1].contains("voice note"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_tenant_ai_key_that_will_not_open_is_never_replaced_by_the_platform_key_for_a_voice_note(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    serve_voice_note(&w.graph, "MEDIA7").await;
    Mock::given(method("POST"))
        .respond_with(transcribed("Can I pay with M-Pesa?"))
        .mount(&w.openai)
        .await;
    sqlx::query(
        "update alphadome.bot_tenants set ai_api_key = whatsapp_access_token where id = $1",
    )
    .bind(w.a.id)
    .execute(&w.pool)
    .await
    .unwrap();
    let out = w
        .responder
        .with_fresh_cache()
        .handle_job(&media_message(
            &w.a,
            "wamid.voice7",
            "audio",
            "MEDIA7",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback"]));
    assert!(w.openai.received_requests().await.unwrap().is_empty());
    let attention: Option<String> =
        sqlx::query_scalar("select attention from alphadome.bot_tenants where id = $1")
            .bind(w.a.id)
            .fetch_one(&w.pool)
            .await
            .unwrap();
    assert_eq!(attention.as_deref(), Some("ai_key_unreadable"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_token_never_reaches_a_host_outside_meta_not_even_through_a_redirect(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(VOICE.to_vec(), "audio/ogg"))
        .mount(&elsewhere)
        .await;
    Mock::given(method("POST"))
        .respond_with(transcribed("Can I pay with M-Pesa?"))
        .mount(&w.openai)
        .await;
    // 1. Graph answers a URL on another host.
    serve_media_info(
        &w.graph,
        "MEDIA8",
        &format!("{}/files/MEDIA8", elsewhere.uri()),
        "audio/ogg",
        VOICE.len(),
    )
    .await;
    // 2. Graph answers its own URL, which redirects to another host.
    let own = format!("{}/files/MEDIA9", w.graph.uri());
    serve_media_info(&w.graph, "MEDIA9", &own, "audio/ogg", VOICE.len()).await;
    Mock::given(method("GET"))
        .and(path("/files/MEDIA9"))
        .respond_with(ResponseTemplate::new(302).insert_header(
            "location",
            format!("{}/files/MEDIA9", elsewhere.uri()).as_str(),
        ))
        .mount(&w.graph)
        .await;
    for (wamid, media) in [("wamid.voice8", "MEDIA8"), ("wamid.voice9", "MEDIA9")] {
        let out = w
            .responder
            .handle_job(&media_message(&w.a, wamid, "audio", media, None))
            .await
            .unwrap();
        assert_eq!(out, Outcome::Replied(vec!["fallback"]), "{media}");
    }
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "no request at all, so no token, reached the other host"
    );
    assert!(w.openai.received_requests().await.unwrap().is_empty());
    assert!(customer_texts(&sends(&w.graph).await)
        .iter()
        .all(|t| t.contains("voice note")));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_voice_note_over_16_mb_is_not_downloaded(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    let url = format!("{}/files/BIG", w.graph.uri());
    serve_media_info(&w.graph, "BIG", &url, "audio/ogg", 17 * 1024 * 1024).await;
    serve_media_file(&w.graph, "BIG", VOICE, "audio/ogg").await;
    let out = w
        .responder
        .handle_job(&media_message(&w.a, "wamid.big", "audio", "BIG", None))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback"]));
    assert!(
        requests_to(&w.graph, "/files/BIG").await.is_empty(),
        "refused on the declared size, before the download"
    );
    assert!(w.openai.received_requests().await.unwrap().is_empty());
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_picture_goes_to_the_model_as_an_image_part_with_the_tenants_prompt_and_grounding(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    w.store
        .import_entries(
            w.a.id,
            &[entry(
                "Yamaha F310 acoustic guitar",
                "In stock: Yamaha F310, KES 18,500.",
                "product",
            )],
        )
        .await
        .unwrap();
    let url = format!("{}/files/PIC1", w.graph.uri());
    serve_media_info(&w.graph, "PIC1", &url, "image/jpeg", PICTURE.len()).await;
    serve_media_file(&w.graph, "PIC1", PICTURE, "image/jpeg").await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok("Yes, that's the Yamaha F310 - KES 18,500, in stock."))
        .mount(&w.openai)
        .await;
    let responder = w.responder.with_fresh_cache();
    let out = responder
        .handle_job(&media_message(
            &w.a,
            "wamid.pic1",
            "image",
            "PIC1",
            Some("Do you have this guitar?"),
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["ai"]));
    let chat = requests_to(&w.openai, "/chat/completions").await;
    assert_eq!(chat.len(), 1);
    assert_eq!(auth(&chat[0]), format!("Bearer {A_AI_KEY}"));
    let b = body(&chat[0]);
    let system = b["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("You sell musical instruments in Nairobi."));
    assert!(
        system.contains("Yamaha F310"),
        "grounded in the tenant's facts"
    );
    let last = b["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "text");
    assert_eq!(last["content"][0]["text"], "Do you have this guitar?");
    assert_eq!(last["content"][1]["type"], "image_url");
    use base64::Engine as _;
    let expected = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(PICTURE)
    );
    assert_eq!(last["content"][1]["image_url"]["url"], expected.as_str());
    assert_eq!(count(&w.pool, w.a.id, "image_inputs").await, 1);

    // A picture without a caption is looked at too; with the switch off it asks for words.
    let out = responder
        .handle_job(&media_message(&w.a, "wamid.pic2", "image", "PIC1", None))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["ai"]));
    let chat = requests_to(&w.openai, "/chat/completions").await;
    let last = body(&chat[1])["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"][1]["type"], "image_url");

    set_switch(&w, "pictures_enabled", false).await;
    let responder = w.responder.with_fresh_cache();
    let media_before = requests_to(&w.graph, "/files/PIC1").await.len();
    let out = responder
        .handle_job(&media_message(&w.a, "wamid.pic3", "image", "PIC1", None))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback"]));
    // A caption is still answered as text, without the picture.
    let out = responder
        .handle_job(&media_message(
            &w.a,
            "wamid.pic4",
            "image",
            "PIC1",
            Some("Can I pay with M-Pesa?"),
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    assert_eq!(
        requests_to(&w.graph, "/files/PIC1").await.len(),
        media_before
    );
    assert_eq!(requests_to(&w.openai, "/chat/completions").await.len(), 2);
}
