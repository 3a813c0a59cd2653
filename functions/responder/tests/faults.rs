//! Faults stay where they happen: a panic fails one job, a message the database refuses
//! fails alone, a tenant whose configuration is wrong is flagged and its jobs fail for good
//! (no redelivery), a tenant's AI key that will not open never falls back to the platform's
//! key, and a template cannot pick a model outside the platform's allowlist.

mod common;

use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};

const PANIC_CUSTOMER: &str = "254711000999";

/// A dry-run outbox that panics when it would send to `PANIC_CUSTOMER` and counts the rest.
fn panicking_outbox(sent: Arc<AtomicUsize>) -> Outbox {
    let masked = alphadome::domain::mask_phone(PANIC_CUSTOMER);
    Outbox::DryRun(Arc::new(move |r: alphadome::responder::DryRunReply| {
        if r.to == masked {
            panic!("injected fault");
        }
        sent.fetch_add(1, Ordering::SeqCst);
    }))
}

async fn inbound_status(pool: &PgPool, wamid: &str) -> (Option<String>, Option<String>) {
    sqlx::query_as("select status, note from public.conversations where wa_message_id = $1")
        .bind(wamid)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn attention(pool: &PgPool, tenant: TenantId) -> Option<String> {
    sqlx::query_scalar("select attention from alphadome.bot_tenants where id = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_panic_fails_only_the_record_that_caused_it_and_the_rest_of_the_batch_is_answered(
    pool: PgPool,
) {
    let w = world(pool).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let responder = w.responder.with_outbox(panicking_outbox(sent.clone()));
    let jobs = [
        message_from(
            &w.a,
            A_PNID,
            "wamid.p1",
            "Can I pay with M-Pesa?",
            "254711000101",
        ),
        message_from(
            &w.a,
            A_PNID,
            "wamid.p2",
            "Can I pay with M-Pesa?",
            PANIC_CUSTOMER,
        ),
        message_from(
            &w.a,
            A_PNID,
            "wamid.p3",
            "What are your opening hours?",
            "254711000103",
        ),
        message_from(
            &w.b,
            B_PNID,
            "wamid.p4",
            "Do you do braids?",
            "254711000104",
        ),
    ];
    let resp = responder::handle(
        &responder,
        lambda_runtime::LambdaEvent::new(sqs_event(&jobs), Default::default()),
    )
    .await
    .unwrap();
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        vec!["m2"],
        "only the panicking record is redelivered"
    );
    assert_eq!(
        sent.load(Ordering::SeqCst),
        3,
        "the other three were answered"
    );
    for wamid in ["wamid.p1", "wamid.p3", "wamid.p4"] {
        assert_eq!(
            inbound_status(&w.pool, wamid).await.0.as_deref(),
            Some("answered"),
            "{wamid}"
        );
    }
    // SQS redelivers m2 to a healthy responder: it completes, and the reply that may have
    // been on its way when the panic struck is not sent a second time.
    let healthy = Arc::new(AtomicUsize::new(0));
    let counting = healthy.clone();
    let responder = w.responder.with_outbox(Outbox::DryRun(Arc::new(move |_| {
        counting.fetch_add(1, Ordering::SeqCst);
    })));
    let resp = responder::handle(
        &responder,
        lambda_runtime::LambdaEvent::new(sqs_event(&jobs[1..2]), Default::default()),
    )
    .await
    .unwrap();
    assert!(resp.batch_item_failures.is_empty());
    assert_eq!(healthy.load(Ordering::SeqCst), 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_message_the_database_refuses_fails_alone_and_the_other_customers_are_answered(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    // A NUL reaches the responder only from a job written before ingress removed it; the
    // database cannot store it.
    let jobs = [
        message_from(
            &w.a,
            A_PNID,
            "wamid.n1",
            "Can I pay with M-Pesa?",
            "254711000201",
        ),
        message_from(
            &w.a,
            A_PNID,
            "wamid.n2",
            "Can I pay\0 with M-Pesa?",
            "254711000202",
        ),
        message_from(
            &w.a,
            A_PNID,
            "wamid.n3",
            "What are your opening hours?",
            "254711000203",
        ),
    ];
    let results = w.responder.handle_jobs(&jobs).await;
    assert_eq!(results[0].as_ref().unwrap(), &Outcome::Replied(vec!["faq"]));
    assert_eq!(
        results[1].as_ref().unwrap(),
        &Outcome::Failed("refused_by_database"),
        "failed for good: redelivery cannot help"
    );
    assert_eq!(results[2].as_ref().unwrap(), &Outcome::Replied(vec!["faq"]));
    assert_eq!(sends(&w.graph).await.len(), 2);
}

/// FAQ answers are recorded with their claims (migrations/0030_claim_and_record_foreseen.sql);
/// when the record of another message of the batch is refused, those replies were never sent:
/// they are given back with the claims, and the one-by-one run sends each once.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_record_the_database_refuses_fails_alone_and_the_answers_recorded_with_their_claims_go_out(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    // The database refuses the hand-over's reply, as it would a value it cannot store.
    sqlx::raw_sql(
        "create function public.refuse_fallback() returns trigger language plpgsql as
           $$ begin raise exception 'simulated refusal'; end $$;
         create trigger refuse_fallback before insert on public.conversations for each row
           when (new.reply_source = 'fallback') execute function public.refuse_fallback();",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    let jobs = [
        message_from(
            &w.a,
            A_PNID,
            "wamid.rr1",
            "Can I pay with M-Pesa?",
            "254711000211",
        ),
        message_from(
            &w.a,
            A_PNID,
            "wamid.rr2",
            "nataka kuongea na mtu tafadhali",
            "254711000212",
        ),
        message_from(
            &w.a,
            A_PNID,
            "wamid.rr3",
            "What are your opening hours?",
            "254711000213",
        ),
    ];
    let results = w.responder.handle_jobs(&jobs).await;
    assert_eq!(results[0].as_ref().unwrap(), &Outcome::Replied(vec!["faq"]));
    assert_eq!(
        results[1].as_ref().unwrap(),
        &Outcome::Failed("refused_by_database")
    );
    assert_eq!(results[2].as_ref().unwrap(), &Outcome::Replied(vec!["faq"]));
    let per = replies_per_message(&w.graph).await;
    assert_eq!(per.get("wamid.rr1"), Some(&1), "{per:?}");
    assert_eq!(per.get("wamid.rr3"), Some(&1), "{per:?}");
    assert_eq!(sends(&w.graph).await.len(), 2);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_token_no_key_opens_fails_for_good_and_flags_the_tenant_for_the_operator(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    // Tenant B's sealed token copied into A's row: bound to B, it does not open for A.
    sqlx::query(
        "update alphadome.bot_tenants a set whatsapp_access_token = b.whatsapp_access_token
           from alphadome.bot_tenants b where a.id = $1 and b.id = $2",
    )
    .bind(w.a.id)
    .bind(w.b.id)
    .execute(&w.pool)
    .await
    .unwrap();
    let responder = w.responder.with_fresh_cache();
    let out = responder
        .handle_job(&message(&w.a, A_PNID, "wamid.t1", "Can I pay with M-Pesa?"))
        .await;
    assert_eq!(
        out.unwrap(),
        Outcome::Failed("whatsapp_token_unreadable"),
        "not an error: SQS must not redeliver it five times into the DLQ"
    );
    assert!(
        sends(&w.graph).await.is_empty(),
        "nothing sent with a wrong token"
    );
    assert_eq!(
        attention(&w.pool, w.a.id).await.as_deref(),
        Some("whatsapp_token_unreadable")
    );
    assert_eq!(attention(&w.pool, w.b.id).await, None);
    let outgoing: Vec<String> = sqlx::query_scalar(
        "select status from public.conversations where bot_tenant_id = $1 and direction = 'outgoing'",
    )
    .bind(w.a.id)
    .fetch_all(&w.pool)
    .await
    .unwrap();
    assert_eq!(outgoing, vec!["failed".to_owned()]);

    // The operator replaces the token: the flag clears.
    w.store
        .set_tenant_secret(
            &w.keys,
            w.a.id,
            alphadome::crypto::SecretColumn::WhatsappAccessToken,
            &SecretString::from(A_TOKEN.to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(attention(&w.pool, w.a.id).await, None);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_tenant_ai_key_that_will_not_open_hands_over_and_never_uses_the_platform_key(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    Mock::given(method("POST"))
        .respond_with(ai_ok("An answer on the platform's bill"))
        .mount(&w.openai)
        .await;
    // A's token ciphertext in its AI key column: the associated data differs, it cannot open.
    sqlx::query(
        "update alphadome.bot_tenants set ai_api_key = whatsapp_access_token where id = $1",
    )
    .bind(w.a.id)
    .execute(&w.pool)
    .await
    .unwrap();
    let responder = w.responder.with_fresh_cache();
    let out = responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.k1",
            "Do you have a left-handed bass guitar in stock?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback", "escalation"]));
    assert!(
        w.openai
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the platform key was not used in its place"
    );
    assert_eq!(
        attention(&w.pool, w.a.id).await.as_deref(),
        Some("ai_key_unreadable")
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_template_cannot_choose_a_model_outside_the_platform_allowlist_and_prompts_are_capped(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    Mock::given(method("POST"))
        .respond_with(ai_ok("We have two in stock."))
        .mount(&w.openai)
        .await;
    w.store
        .set_template(
            w.a.id,
            &NewTemplate {
                name: "default".into(),
                system_prompt: "x".repeat(50_000),
                tone: None,
                model: Some("o1-pro-very-expensive".into()),
                is_default: true,
            },
        )
        .await
        .unwrap();
    let responder = w.responder.with_fresh_cache();
    let long_question = format!("Do you have a bass guitar? {}", "really ".repeat(2_000));
    let out = responder
        .handle_job(&message(&w.a, A_PNID, "wamid.m1", &long_question))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["ai"]));
    let requests = w.openai.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let req: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(req["model"], "gpt-4o-mini");
    assert!(req["max_tokens"].as_u64().unwrap() <= 300);
    let chars: usize = req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").chars().count())
        .sum();
    assert!(chars < 10_000, "the prompt was capped ({chars} characters)");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn ask_runs_the_same_policy_and_says_which_rule_would_keep_the_assistant_silent(
    pool: PgPool,
) {
    let w = world(pool).await;
    let a = w
        .responder
        .ask(w.a.id, "Can I pay with M-Pesa?")
        .await
        .unwrap();
    assert_eq!((a.source, a.stopped_by), ("faq", None));
    sqlx::query(
        "update alphadome.bot_control_settings set is_bot_enabled = false where bot_tenant_id = $1",
    )
    .bind(w.a.id)
    .execute(&w.pool)
    .await
    .unwrap();
    let a = w
        .responder
        .with_fresh_cache()
        .ask(w.a.id, "Can I pay with M-Pesa?")
        .await
        .unwrap();
    assert_eq!(a.stopped_by, Some("bot_disabled"));
    assert_eq!(a.source, "faq");
    assert!(a.reply.contains("M-Pesa Till"));
    sqlx::query("update alphadome.bot_control_settings set is_bot_enabled = true, max_messages_per_hour = 1 where bot_tenant_id = $1")
        .bind(w.a.id)
        .execute(&w.pool)
        .await
        .unwrap();
    accept_sends(&w.graph).await;
    let responder = w.responder.with_fresh_cache();
    responder
        .handle_job(&message(&w.a, A_PNID, "wamid.c1", "Hello"))
        .await
        .unwrap();
    let a = responder
        .ask(w.a.id, "Can I pay with M-Pesa?")
        .await
        .unwrap();
    assert_eq!(a.stopped_by, Some("hourly_limit"));
}
