//! What each WhatsApp message type gets, end to end: the responder against real PostgreSQL
//! and the Graph and OpenAI stand-ins, with messages shaped as the webhook builds them.

mod common;

use common::*;

/// A message of `message_type` from the customer, with the webhook's `text` and `reply_id`.
fn typed(
    tenant: &TenantSummary,
    wamid: &str,
    message_type: &str,
    text: Option<&str>,
    reply_id: Option<&str>,
) -> Job {
    Job::new(
        tenant.id.0,
        WebhookEvent {
            phone_number_id: A_PNID.into(),
            kind: EventKind::Message(InboundMessage {
                wa_message_id: wamid.into(),
                from_wa_id: Some(CUSTOMER.into()),
                from_user_id: None,
                profile_name: Some("Wanjiku".into()),
                timestamp: chrono::Utc::now().timestamp(),
                message_type: message_type.into(),
                text: text.map(str::to_owned),
                reply_id: reply_id.map(str::to_owned),
                media_id: None,
                media_mime_type: None,
                context_message_id: Some("wamid.ours".into()),
                referral_source_id: None,
            }),
        },
    )
}

async fn set_ai(w: &World, on: bool) {
    sqlx::query(
        "update alphadome.bot_control_settings set enable_ai_responses = $2 where bot_tenant_id = $1",
    )
    .bind(w.a.id)
    .bind(on)
    .execute(&w.pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_reaction_with_its_emoji_gets_no_reply_no_graph_call_and_no_owner_notice(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    // With the AI off an unanswerable text is handed over (the owner pinged); with it on the
    // AI is asked. A reaction must reach neither.
    for (ai, wamid) in [(false, "wamid.react1"), (true, "wamid.react2")] {
        set_ai(&w, ai).await;
        let out = w
            .responder
            .handle_job(&typed(&w.a, wamid, "reaction", Some("👍"), None))
            .await
            .unwrap();
        assert_eq!(out, Outcome::Silent("not_answerable"), "ai on: {ai}");
    }
    assert!(
        w.graph.received_requests().await.unwrap().is_empty(),
        "no reply, no owner notice, no read receipt"
    );
    assert!(w.openai.received_requests().await.unwrap().is_empty());
    let rows = rows(&w.pool, w.a.id).await;
    assert_eq!(rows.len(), 2, "recorded, nothing sent");
    assert!(rows.iter().all(|r| r.0 == "incoming"
        && r.1.as_deref() == Some("ignored")
        && r.3.as_deref() == Some("not_answerable")));
    // Not counted against the hourly cap, and the conversation is not paused: the customer's
    // next question is answered.
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.after",
            "Can I pay with M-Pesa?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_tapped_button_or_list_row_is_answered_from_the_faq_by_its_title(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    w.store
        .import_entries(
            w.a.id,
            &[entry(
                "Book a lesson",
                "Guitar lessons are KES 1,500 an hour; reply with a day and time to book.",
                "faq",
            )],
        )
        .await
        .unwrap();
    let out = w
        .responder
        .handle_job(&typed(
            &w.a,
            "wamid.tap",
            "interactive",
            Some("Book a lesson"),
            Some("book_lesson"),
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    let out = w
        .responder
        .handle_job(&typed(
            &w.a,
            "wamid.tpl",
            "button",
            Some("Opening hours"),
            Some("HOURS"),
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    let sent = sends(&w.graph).await;
    assert_eq!(sent.len(), 2);
    assert!(body(&sent[0])["text"]["body"]
        .as_str()
        .unwrap()
        .contains("KES 1,500"));
    assert_eq!(body(&sent[0])["context"]["message_id"], "wamid.tap");
    assert!(body(&sent[1])["text"]["body"]
        .as_str()
        .unwrap()
        .contains("Monday to Saturday"));
    assert!(w.openai.received_requests().await.unwrap().is_empty());
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_voice_note_or_bare_picture_asks_for_words_and_an_order_goes_to_a_person(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    let out = w
        .responder
        .handle_job(&typed(&w.a, "wamid.voice", "audio", None, None))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback"]));
    let out = w
        .responder
        .handle_job(&typed(&w.a, "wamid.pic", "image", None, None))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback"]));
    let sent = sends(&w.graph).await;
    assert_eq!(sent.len(), 2, "no owner notice for media");
    assert!(sent.iter().all(|r| body(r)["to"] == CUSTOMER));
    assert!(body(&sent[0])["text"]["body"]
        .as_str()
        .unwrap()
        .contains("voice note"));

    let out = w
        .responder
        .handle_job(&typed(
            &w.a,
            "wamid.order",
            "order",
            Some("Please deliver after 5pm"),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback", "escalation"]));
    let sent = sends(&w.graph).await;
    let notice = body(&sent[3])["text"]["body"].as_str().unwrap().to_owned();
    assert_eq!(body(&sent[3])["to"], OWNER);
    assert!(notice.contains("order") && notice.contains("deliver after 5pm"));
    assert!(w.openai.received_requests().await.unwrap().is_empty());
}
