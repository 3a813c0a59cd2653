//! The responder against real PostgreSQL, moto (Secrets Manager holds the tenants' data keys)
//! and two local HTTP servers standing in for the Graph API and OpenAI, which check the
//! requests they receive.

mod common;

use common::*;

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn each_tenant_answers_from_its_own_faq_with_its_own_token_and_number_under_its_own_brand(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;

    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.a1",
            "wat tym u open on saturday?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    let out = w
        .responder
        .handle_job(&message(&w.b, B_PNID, "wamid.b1", "Do you do box braids?"))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));

    let sent = sends(&w.graph).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].url.path(), format!("/{A_PNID}/messages"));
    assert_eq!(
        sent[0].headers["authorization"],
        format!("Bearer {A_TOKEN}").as_str()
    );
    assert_eq!(body(&sent[0])["to"], CUSTOMER);
    assert!(body(&sent[0])["text"]["body"]
        .as_str()
        .unwrap()
        .contains("Monday to Saturday"));
    assert_eq!(body(&sent[0])["context"]["message_id"], "wamid.a1");
    assert_eq!(sent[1].url.path(), format!("/{B_PNID}/messages"));
    assert_eq!(
        sent[1].headers["authorization"],
        format!("Bearer {B_TOKEN}").as_str()
    );
    assert!(body(&sent[1])["text"]["body"]
        .as_str()
        .unwrap()
        .contains("box braids"));

    let a_rows = rows(&w.pool, w.a.id).await;
    assert_eq!(a_rows.len(), 2);
    assert!(a_rows.iter().all(|r| r.4 == w.a.brand_id.0));
    assert!(a_rows.iter().any(|r| r.0 == "outgoing"
        && r.1.as_deref() == Some("sent")
        && r.2.as_deref() == Some("faq")));
    assert!(a_rows
        .iter()
        .any(|r| r.0 == "incoming" && r.1.as_deref() == Some("answered")));
    let b_rows = rows(&w.pool, w.b.id).await;
    assert!(b_rows.iter().all(|r| r.4 == w.b.brand_id.0));
    // The customer was recorded once per business, under each business's brand.
    let customers: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("select brand_id, phone from public.users order by brand_id")
            .fetch_all(&w.pool)
            .await
            .unwrap();
    assert_eq!(customers.len(), 2);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_ai_answers_with_the_tenants_own_prompt_and_key_or_the_platform_key(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok("Tuna gitaa za KES 15,000."))
        .mount(&w.openai)
        .await;

    let out = w
        .responder
        .handle_job(&message(&w.a, A_PNID, "wamid.ai.a", "mnauza ukulele?"))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["ai"]));
    let out = w
        .responder
        .handle_job(&message(
            &w.b,
            B_PNID,
            "wamid.ai.b",
            "can I bring my own hair extensions?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["ai"]));

    let calls = w.openai.received_requests().await.unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].headers["authorization"],
        format!("Bearer {A_AI_KEY}").as_str()
    );
    let a_req = body(&calls[0]);
    let system = a_req["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("You sell musical instruments in Nairobi.") && system.contains("Kassangas")
    );
    assert!(!system.contains("salon"), "no other tenant's prompt");
    assert_eq!(
        a_req["messages"].as_array().unwrap().last().unwrap()["content"],
        "mnauza ukulele?"
    );
    assert_eq!(a_req["model"], "gpt-4o-mini");
    assert_eq!(
        calls[1].headers["authorization"],
        format!("Bearer {PLATFORM_AI_KEY}").as_str()
    );
    let b_system = body(&calls[1])["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(b_system.contains("beauty salon") && !b_system.contains("Kassangas"));
    assert!(
        !b_system.contains("M-Pesa Till 123456"),
        "no other tenant's FAQ as grounding"
    );

    let sent = sends(&w.graph).await;
    assert_eq!(body(&sent[0])["text"]["body"], "Tuna gitaa za KES 15,000.");
    let tokens: (Option<i32>, Option<i32>) = sqlx::query_as(
        "select ai_prompt_tokens, ai_completion_tokens from public.conversations where in_reply_to = 'wamid.ai.a'",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(tokens, (Some(120), Some(30)));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_same_job_delivered_twice_or_concurrently_is_answered_once(pool: PgPool) {
    let w = world(pool).await;
    Mock::given(method("POST"))
        .respond_with(graph_ok().set_delay(Duration::from_millis(100)))
        .mount(&w.graph)
        .await;
    let job = message(&w.a, A_PNID, "wamid.dup", "Can I pay with M-Pesa?");
    let runs = (0..5).map(|_| w.responder.handle_job(&job));
    let outcomes = futures_util::future::join_all(runs).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Outcome::Replied(_))))
            .count(),
        1
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Outcome::Duplicate)))
            .count(),
        4
    );
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(sends(&w.graph).await.len(), 1);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_reply_sent_whose_log_write_failed_is_not_sent_again_on_retry(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    // Make the write after the send fail, as a lost connection would.
    sqlx::raw_sql(
        "create function public.fail_sent() returns trigger language plpgsql as
           $$ begin raise exception 'simulated log failure'; end $$;
         create trigger fail_sent before update on public.conversations for each row
           when (new.status = 'sent') execute function public.fail_sent();",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    let job = message(&w.a, A_PNID, "wamid.crash", "Can I pay with M-Pesa?");
    assert!(
        w.responder.handle_job(&job).await.is_err(),
        "the failed log write asks for a retry"
    );
    assert_eq!(sends(&w.graph).await.len(), 1);
    sqlx::raw_sql("drop trigger fail_sent on public.conversations")
        .execute(&w.pool)
        .await
        .unwrap();
    // The retry finds the reply recorded as pending (maybe sent): nothing goes out twice.
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(sends(&w.graph).await.len(), 1);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_disabled_bot_logs_the_message_and_does_not_reply(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    sqlx::query(
        "update alphadome.bot_control_settings set is_bot_enabled = false where bot_tenant_id = $1",
    )
    .bind(w.a.id)
    .execute(&w.pool)
    .await
    .unwrap();
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.off",
            "Can I pay with M-Pesa?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Silent("bot_disabled"));
    assert!(sends(&w.graph).await.is_empty());
    let r = rows(&w.pool, w.a.id).await;
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].1.as_deref(), r[0].3.as_deref()),
        (Some("ignored"), Some("bot_disabled"))
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn without_ai_an_unanswered_question_gets_a_fallback_and_the_owner_is_told_then_the_bot_stays_quiet(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    sqlx::query("update alphadome.bot_control_settings set enable_ai_responses = false where bot_tenant_id = $1")
        .bind(w.a.id)
        .execute(&w.pool)
        .await
        .unwrap();
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.esc",
            "Do you buy second-hand pianos?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback", "escalation"]));
    let sent = sends(&w.graph).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(body(&sent[0])["to"], CUSTOMER);
    assert_eq!(body(&sent[1])["to"], OWNER);
    let notice = body(&sent[1])["text"]["body"].as_str().unwrap().to_owned();
    assert!(
        notice.contains(CUSTOMER) && notice.contains("second-hand pianos"),
        "the owner sees who and what"
    );
    assert!(w.openai.received_requests().await.unwrap().is_empty());
    // The conversation is now the owner's: the bot stays quiet for the quiet period.
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.esc2",
            "Can I pay with M-Pesa?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Silent("paused_for_human"));
    assert_eq!(sends(&w.graph).await.len(), 2);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_customer_asking_for_a_person_is_handed_over(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.human",
            "nataka kuongea na mtu tafadhali",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback", "escalation"]));
    assert!(w.openai.received_requests().await.unwrap().is_empty());
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn over_the_hourly_cap_no_reply_is_sent(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    sqlx::query("update alphadome.bot_control_settings set max_messages_per_hour = 2 where bot_tenant_id = $1")
        .bind(w.a.id)
        .execute(&w.pool)
        .await
        .unwrap();
    let w = World {
        responder: w.responder.with_fresh_cache(),
        ..w
    };
    for i in 0..2 {
        let out = w
            .responder
            .handle_job(&message(
                &w.a,
                A_PNID,
                &format!("wamid.cap{i}"),
                "Can I pay with M-Pesa?",
            ))
            .await
            .unwrap();
        assert_eq!(out, Outcome::Replied(vec!["faq"]));
    }
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.cap2",
            "Can I pay with M-Pesa?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Silent("hourly_limit"));
    assert_eq!(sends(&w.graph).await.len(), 2);
    // The other tenant has its own counter.
    accept_sends(&w.graph).await;
    let out = w
        .responder
        .handle_job(&message(&w.b, B_PNID, "wamid.capb", "Do you do braids?"))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_ai_failure_or_timeout_falls_back_and_escalates_without_a_hot_loop(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&w.openai)
        .await;
    let out = w
        .responder
        .handle_job(&message(&w.a, A_PNID, "wamid.ai500", "mnauza ukulele?"))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback", "escalation"]));
    assert_eq!(
        w.openai.received_requests().await.unwrap().len(),
        3,
        "bounded retries, then give up"
    );

    w.openai.reset().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok("late").set_delay(Duration::from_secs(5)))
        .mount(&w.openai)
        .await;
    let started = std::time::Instant::now();
    let out = w
        .responder
        .handle_job(&message(
            &w.b,
            B_PNID,
            "wamid.aislow",
            "can I bring my own hair?",
        ))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the AI deadline bounds the wait"
    );
    assert!(matches!(out, Outcome::Replied(ref s) if s[0] == "fallback"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn graph_rate_limits_are_retried_window_closed_is_not_and_an_expired_token_flags_the_tenant(
    pool: PgPool,
) {
    let w = world(pool).await;
    // 429: retried; the retry sends once and succeeds.
    Mock::given(method("POST"))
        .respond_with(graph_error(429, 130429))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&w.graph)
        .await;
    Mock::given(method("POST"))
        .respond_with(graph_ok())
        .with_priority(2)
        .mount(&w.graph)
        .await;
    let job = message(&w.a, A_PNID, "wamid.429", "Can I pay with M-Pesa?");
    assert!(w.responder.handle_job(&job).await.is_err());
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Replied(vec!["faq"])
    );
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(sends(&w.graph).await.len(), 2, "one refused, one delivered");

    // 131047: outside the window, not retried.
    w.graph.reset().await;
    Mock::given(method("POST"))
        .respond_with(graph_error(400, 131047))
        .mount(&w.graph)
        .await;
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.131047",
            "Can I pay with M-Pesa?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::SendFailed("rejected"));
    let code: Option<i32> = sqlx::query_scalar(
        "select error_code from public.conversations where in_reply_to = 'wamid.131047'",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(code, Some(131047));

    // 190: the token is dead; not retried, the tenant is flagged.
    w.graph.reset().await;
    Mock::given(method("POST"))
        .respond_with(graph_error(401, 190))
        .mount(&w.graph)
        .await;
    let out = w
        .responder
        .handle_job(&message(&w.b, B_PNID, "wamid.190", "Do you do braids?"))
        .await
        .unwrap();
    assert_eq!(out, Outcome::SendFailed("token_invalid"));
    assert!(
        w.store
            .tenant_summary(w.b.id)
            .await
            .unwrap()
            .needs_token_refresh
    );
    assert!(
        !w.store
            .tenant_summary(w.a.id)
            .await
            .unwrap()
            .needs_token_refresh
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn in_a_fifo_batch_a_failure_fails_the_rest_of_its_group_only(pool: PgPool) {
    let w = world(pool).await;
    Mock::given(method("POST"))
        .and(body_string_contains("Monday to Saturday"))
        .respond_with(graph_error(503, 131000))
        .mount(&w.graph)
        .await;
    accept_sends(&w.graph).await;
    let jobs = [
        message(&w.a, A_PNID, "wamid.f1", "Can I pay with M-Pesa?"),
        message(&w.a, A_PNID, "wamid.f2", "What are your opening hours?"),
        message(&w.a, A_PNID, "wamid.f3", "Hello"),
        message(&w.b, B_PNID, "wamid.f4", "Do you do braids?"),
    ];
    let event = sqs_event(&jobs);
    let resp = responder::handle(
        &w.responder,
        lambda_runtime::LambdaEvent::new(event, Default::default()),
    )
    .await
    .unwrap();
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["m2", "m3"]);
    let bodies: Vec<String> = sends(&w.graph)
        .await
        .iter()
        .map(|r| body(r)["text"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("M-Pesa Till")),
        "record 1 answered"
    );
    assert!(
        bodies.iter().any(|b| b.contains("box braids")),
        "the other group went on"
    );
    assert!(
        !bodies.iter().any(|b| b.contains("Karibu")),
        "record 3 waited behind record 2"
    );

    // SQS redelivers 2 and 3; 1 is not redone.
    w.graph.reset().await;
    accept_sends(&w.graph).await;
    let redelivered = [&jobs[1], &jobs[2], &jobs[0]];
    let event = serde_json::json!({"Records": redelivered.iter().enumerate().map(|(i, j)| serde_json::json!({
        "messageId": format!("r{}", i + 1), "receiptHandle": "h", "body": j.to_json(),
        "attributes": {"MessageGroupId": j.group_id()}, "messageAttributes": {}, "eventSource": "aws:sqs"
    })).collect::<Vec<_>>()});
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(event).unwrap();
    let resp = responder::handle(
        &w.responder,
        lambda_runtime::LambdaEvent::new(event, Default::default()),
    )
    .await
    .unwrap();
    assert!(resp.batch_item_failures.is_empty());
    let bodies: Vec<String> = sends(&w.graph)
        .await
        .iter()
        .map(|r| body(r)["text"]["body"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(!bodies.iter().any(|b| b.contains("M-Pesa Till")));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn status_updates_move_delivery_forward_only_and_never_reply(pool: PgPool) {
    let w = world(pool).await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"messages": [{"id": "wamid.reply.1"}]})),
        )
        .mount(&w.graph)
        .await;
    w.responder
        .handle_job(&message(&w.a, A_PNID, "wamid.st", "Can I pay with M-Pesa?"))
        .await
        .unwrap();
    let status_of = || async {
        sqlx::query_scalar::<_, String>(
            "select status from public.conversations where wa_message_id = 'wamid.reply.1'",
        )
        .fetch_one(&w.pool)
        .await
        .unwrap()
    };
    assert_eq!(status_of().await, "sent");
    assert_eq!(
        w.responder
            .handle_job(&status(&w.a, "wamid.reply.1", "read"))
            .await
            .unwrap(),
        Outcome::Status(true)
    );
    assert_eq!(status_of().await, "read");
    assert_eq!(
        w.responder
            .handle_job(&status(&w.a, "wamid.reply.1", "delivered"))
            .await
            .unwrap(),
        Outcome::Status(false)
    );
    assert_eq!(
        w.responder
            .handle_job(&status(&w.a, "wamid.reply.1", "sent"))
            .await
            .unwrap(),
        Outcome::Status(false)
    );
    assert_eq!(status_of().await, "read");
    // A status for another tenant's message changes nothing (RLS scopes the update).
    assert_eq!(
        w.responder
            .handle_job(&status(&w.b, "wamid.reply.1", "failed"))
            .await
            .unwrap(),
        Outcome::Status(false)
    );
    assert_eq!(status_of().await, "read");
    assert_eq!(
        sends(&w.graph).await.len(),
        1,
        "statuses never trigger a reply"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn stop_is_confirmed_once_then_silence_until_start_for_that_tenant_only(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    let r = &w.responder;
    assert_eq!(
        r.handle_job(&message(&w.a, A_PNID, "wamid.s1", "STOP"))
            .await
            .unwrap(),
        Outcome::Replied(vec!["control"])
    );
    assert_eq!(
        r.handle_job(&message(&w.a, A_PNID, "wamid.s2", "Can I pay with M-Pesa?"))
            .await
            .unwrap(),
        Outcome::Silent("unsubscribed")
    );
    assert_eq!(
        r.handle_job(&message(&w.a, A_PNID, "wamid.s3", "acha"))
            .await
            .unwrap(),
        Outcome::Silent("unsubscribed")
    );
    // Another business is not affected.
    assert_eq!(
        r.handle_job(&message(&w.b, B_PNID, "wamid.s4", "Do you do braids?"))
            .await
            .unwrap(),
        Outcome::Replied(vec!["faq"])
    );
    assert_eq!(
        r.handle_job(&message(&w.a, A_PNID, "wamid.s5", "START"))
            .await
            .unwrap(),
        Outcome::Replied(vec!["control"])
    );
    assert_eq!(
        r.handle_job(&message(&w.a, A_PNID, "wamid.s6", "Can I pay with M-Pesa?"))
            .await
            .unwrap(),
        Outcome::Replied(vec!["faq"])
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_first_message_gets_the_welcome_message_once(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    sqlx::query("update alphadome.bot_control_settings set welcome_message = 'Karibu! Welcome to Kassangas.' where bot_tenant_id = $1")
        .bind(w.a.id)
        .execute(&w.pool)
        .await
        .unwrap();
    let w2 = World {
        responder: w.responder.with_fresh_cache(),
        ..w
    };
    let out = w2
        .responder
        .handle_job(&message(
            &w2.a,
            A_PNID,
            "wamid.w1",
            "Can I pay with M-Pesa?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["welcome", "faq"]));
    let out = w2
        .responder
        .handle_job(&message(
            &w2.a,
            A_PNID,
            "wamid.w2",
            "Can I pay with M-Pesa?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_batch_of_two_tenants_messages_gets_one_result_per_job_each_answered_as_its_tenant(
    pool: PgPool,
) {
    const OTHER: &str = "254711000222";
    const FAILING: &str = "254711000333";
    let w = world(pool).await;
    mount_graph_failing_for(&w.graph, FAILING).await;
    // Handled before: in the batch it is a duplicate.
    let earlier = message(&w.a, A_PNID, "wamid.bt0", "What are your opening hours?");
    w.responder.handle_job(&earlier).await.unwrap();
    w.graph.reset().await;
    mount_graph_failing_for(&w.graph, FAILING).await;

    let jobs = vec![
        message_from(&w.a, A_PNID, "wamid.bt1", "Can I pay with M-Pesa?", OTHER),
        message(&w.b, B_PNID, "wamid.bt2", "Do you do braids?"),
        message_from(
            &w.a,
            A_PNID,
            "wamid.bt3",
            "What are your opening hours?",
            FAILING,
        ),
        earlier,
        message(&w.a, A_PNID, "wamid.bt4", "nataka kuongea na mtu"),
    ];
    let results = w.responder.handle_jobs(&jobs).await;
    assert_eq!(results.len(), jobs.len());
    assert_eq!(results[0].as_ref().unwrap(), &Outcome::Replied(vec!["faq"]));
    assert_eq!(results[1].as_ref().unwrap(), &Outcome::Replied(vec!["faq"]));
    assert!(
        results[2].is_err(),
        "Graph's 503 for that customer: retry that job only"
    );
    assert_eq!(results[3].as_ref().unwrap(), &Outcome::Duplicate);
    assert!(
        matches!(results[4].as_ref().unwrap(), Outcome::Replied(s) if s.contains(&"fallback")),
        "a request for a person is handed over: {:?}",
        results[4]
    );

    // Each send went out with its own tenant's token and answer.
    for r in sends(&w.graph).await {
        let b = body(&r);
        let auth = r
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let text = b["text"]["body"].as_str().unwrap_or_default().to_owned();
        if text.contains("box braids") {
            assert_eq!(auth, format!("Bearer {B_TOKEN}"));
            assert!(r.url.path().contains(B_PNID));
        } else {
            assert_eq!(auth, format!("Bearer {A_TOKEN}"), "tenant A's send: {text}");
            assert!(r.url.path().contains(A_PNID));
        }
    }
    let a_rows = rows(&w.pool, w.a.id).await;
    let b_rows = rows(&w.pool, w.b.id).await;
    assert!(
        a_rows.iter().all(|r| r.4 == w.a.brand_id.0),
        "tenant A's rows carry its brand"
    );
    assert!(
        b_rows.iter().all(|r| r.4 == w.b.brand_id.0),
        "tenant B's rows carry its brand"
    );
    assert_eq!(
        b_rows
            .iter()
            .map(|r| (r.0.as_str(), r.1.as_deref()))
            .collect::<Vec<_>>(),
        vec![("incoming", Some("answered")), ("outgoing", Some("sent"))]
    );
    let failed: Option<String> = sqlx::query_scalar(
        "select status from public.conversations where wa_message_id = 'wamid.bt3'",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(
        failed.as_deref(),
        Some("retry"),
        "given back for the queue's retry"
    );

    // The retry of the failed job alone answers it, once.
    w.graph.reset().await;
    accept_sends(&w.graph).await;
    assert_eq!(
        w.responder.handle_job(&jobs[2]).await.unwrap(),
        Outcome::Replied(vec!["faq"])
    );
    assert_eq!(
        w.responder
            .handle_jobs(&jobs[..2])
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        vec![Outcome::Duplicate, Outcome::Duplicate]
    );
}

/// Graph answers every send, except with 503 for one recipient.
async fn mount_graph_failing_for(graph: &MockServer, recipient: &str) {
    Mock::given(method("POST"))
        .and(body_string_contains(recipient))
        .respond_with(graph_error(503, 131000))
        .mount(graph)
        .await;
    accept_sends(graph).await;
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn in_a_batch_a_faq_answer_does_not_wait_for_another_customers_ai_call(pool: PgPool) {
    let w = world_with(
        pool,
        ResponderOptions {
            ai_deadline: Duration::from_secs(8),
            ..Default::default()
        },
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok("Tuna ukulele za KES 6,500.").set_delay(Duration::from_millis(1500)))
        .mount(&w.openai)
        .await;
    accept_sends(&w.graph).await;
    let jobs = vec![
        message_from(
            &w.a,
            A_PNID,
            "wamid.slow",
            "mnauza ukulele?",
            "254711000444",
        ),
        message_from(
            &w.a,
            A_PNID,
            "wamid.quick",
            "Can I pay with M-Pesa?",
            "254711000555",
        ),
    ];
    let responder = w.responder.clone();
    let batch = tokio::spawn(async move { responder.handle_jobs(&jobs).await });

    // The FAQ reply goes out while the other customer's AI call is still in flight.
    let faq_sent = async {
        loop {
            let sent = sends(&w.graph).await;
            if sent.iter().any(|r| {
                body(r)["text"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("M-Pesa Till")
            }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), faq_sent)
        .await
        .expect("the FAQ reply waited for the AI");
    assert!(!batch.is_finished(), "the AI call was still running");
    let results = batch.await.unwrap();
    assert_eq!(results[0].as_ref().unwrap(), &Outcome::Replied(vec!["ai"]));
    assert_eq!(results[1].as_ref().unwrap(), &Outcome::Replied(vec!["faq"]));
}
