//! Usage per tenant per day, written by the pipeline's own calls; monthly budgets; owners
//! seeing only their own usage; and the round trips, counted by PostgreSQL itself.

mod common;

use common::*;
use std::collections::BTreeMap;

/// Today's counters of a tenant, as stored.
async fn today(pool: &PgPool, tenant: TenantId) -> BTreeMap<String, i64> {
    let counts: Option<serde_json::Value> = sqlx::query_scalar(
        "select counts from alphadome.bot_usage_daily
          where bot_tenant_id = $1 and day = (now() at time zone 'utc')::date",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await
    .unwrap();
    serde_json::from_value(counts.unwrap_or_else(|| serde_json::json!({}))).unwrap()
}

fn n(counts: &BTreeMap<String, i64>, k: &str) -> i64 {
    counts.get(k).copied().unwrap_or(0)
}

fn ai_ok_cached(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                  "prompt_tokens_details": {"cached_tokens": 40}}
    }))
}

fn status_with_pricing(
    tenant: &TenantSummary,
    wamid: &str,
    st: &str,
    category: &str,
    billable: bool,
) -> Job {
    Job::new(
        tenant.id.0,
        WebhookEvent {
            phone_number_id: A_PNID.into(),
            kind: EventKind::Status(StatusUpdate {
                wa_message_id: wamid.into(),
                status: st.to_owned().into(),
                timestamp: 1,
                recipient_id: Some(CUSTOMER.into()),
                recipient_user_id: None,
                error_code: None,
                error_title: None,
                pricing_category: Some(category.into()),
                pricing_billable: Some(billable),
                pricing_type: Some("regular".into()),
                reply_id: None,
            }),
        },
    )
}

async fn sent_wamid(pool: &PgPool, inbound: &str) -> String {
    sqlx::query_scalar(
        "select wa_message_id from public.conversations
          where in_reply_to = $1 and direction = 'outgoing' and status = 'sent' limit 1",
    )
    .bind(inbound)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn each_kind_of_message_is_counted_once_in_the_tenants_day(pool: PgPool) {
    let w = world(pool).await;
    // Graph refuses one customer for good (outside the 24-hour window); accepts the rest.
    Mock::given(method("POST"))
        .and(body_string_contains("254711000999"))
        .respond_with(graph_error(400, 131047))
        .with_priority(1)
        .mount(&w.graph)
        .await;
    Mock::given(method("POST"))
        .respond_with(graph_ok())
        .with_priority(2)
        .mount(&w.graph)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok_cached("Tuna ukulele za KES 6,000."))
        .mount(&w.openai)
        .await;
    let r = &w.responder;

    let faq = message(&w.a, A_PNID, "wamid.u.faq", "Can I pay with M-Pesa?");
    assert_eq!(
        r.handle_job(&faq).await.unwrap(),
        Outcome::Replied(vec!["faq"])
    );
    let ai = message_from(
        &w.a,
        A_PNID,
        "wamid.u.ai",
        "mnauza ukulele?",
        "254711000201",
    );
    assert_eq!(
        r.handle_job(&ai).await.unwrap(),
        Outcome::Replied(vec!["ai"])
    );
    let human = message_from(
        &w.a,
        A_PNID,
        "wamid.u.human",
        "I want to talk to a human",
        "254711000202",
    );
    assert_eq!(
        r.handle_job(&human).await.unwrap(),
        Outcome::Replied(vec!["fallback", "escalation"])
    );
    let stop = message_from(&w.a, A_PNID, "wamid.u.stop", "STOP", "254711000203");
    assert_eq!(
        r.handle_job(&stop).await.unwrap(),
        Outcome::Replied(vec!["control"])
    );
    let refused = message_from(
        &w.a,
        A_PNID,
        "wamid.u.refused",
        "Can I pay with M-Pesa?",
        "254711000999",
    );
    assert!(matches!(
        r.handle_job(&refused).await.unwrap(),
        Outcome::SendFailed(_)
    ));

    // The hourly cap: the next message is over it.
    sqlx::query("update alphadome.bot_control_settings set max_messages_per_hour = 1 where bot_tenant_id = $1")
        .bind(w.a.id)
        .execute(&w.pool)
        .await
        .unwrap();
    let r = r.with_fresh_cache();
    let capped = message_from(
        &w.a,
        A_PNID,
        "wamid.u.cap",
        "Can I pay with M-Pesa?",
        "254711000204",
    );
    assert_eq!(
        r.handle_job(&capped).await.unwrap(),
        Outcome::Silent("hourly_limit")
    );

    // Duplicates and redeliveries count nothing more.
    assert_eq!(r.handle_job(&faq).await.unwrap(), Outcome::Duplicate);

    // Meta's statuses for the FAQ answer: the pricing category is counted once per message,
    // whatever the number and order of statuses carrying it.
    let out = sent_wamid(&w.pool, "wamid.u.faq").await;
    for st in ["delivered", "sent", "read"] {
        r.handle_job(&status_with_pricing(&w.a, &out, st, "service", false))
            .await
            .unwrap();
    }
    let ai_out = sent_wamid(&w.pool, "wamid.u.ai").await;
    r.handle_job(&status_with_pricing(
        &w.a,
        &ai_out,
        "delivered",
        "utility",
        true,
    ))
    .await
    .unwrap();
    // A delivery Meta reports failed afterwards, with its reason kept on the row.
    let human_out = sent_wamid(&w.pool, "wamid.u.human").await;
    let mut failed = status(&w.a, &human_out, "failed");
    if let alphadome::job::JobKind::Status(s) = &mut failed.kind {
        s.error_code = Some(131026);
        s.error_title = Some("Message undeliverable".into());
    }
    r.handle_job(&failed).await.unwrap();
    r.handle_job(&failed).await.unwrap();

    let c = today(&w.pool, w.a.id).await;
    assert_eq!(n(&c, "received"), 6, "{c:?}");
    assert_eq!(n(&c, "received:text"), 6, "{c:?}");
    assert_eq!(n(&c, "reply:faq"), 2, "{c:?}");
    assert_eq!(n(&c, "reply:ai"), 1, "{c:?}");
    assert_eq!(n(&c, "reply:fallback"), 1, "{c:?}");
    assert_eq!(n(&c, "reply:escalation"), 1, "{c:?}");
    assert_eq!(n(&c, "reply:control"), 1, "{c:?}");
    assert_eq!(n(&c, "messages_out"), 6, "{c:?}");
    assert_eq!(n(&c, "handovers"), 1, "{c:?}");
    assert_eq!(n(&c, "cap_hits"), 1, "{c:?}");
    assert_eq!(n(&c, "opt_outs"), 1, "{c:?}");
    assert_eq!(n(&c, "ai_calls"), 1, "{c:?}");
    assert_eq!(n(&c, "ai_prompt_tokens"), 120, "{c:?}");
    assert_eq!(n(&c, "ai_completion_tokens"), 30, "{c:?}");
    assert_eq!(n(&c, "ai_cached_tokens"), 40, "{c:?}");
    assert_eq!(
        n(&c, "failed_sends"),
        2,
        "one refused by Graph, one failed by Meta: {c:?}"
    );
    assert_eq!(n(&c, "failed:131047"), 1, "{c:?}");
    assert_eq!(n(&c, "failed:131026"), 1, "{c:?}");
    assert_eq!(n(&c, "outbound:service"), 1, "{c:?}");
    assert_eq!(n(&c, "billable:service"), 0, "{c:?}");
    assert_eq!(n(&c, "outbound:utility"), 1, "{c:?}");
    assert_eq!(n(&c, "billable:utility"), 1, "{c:?}");

    // Each message keeps its tokens, its delivery reason and its pricing.
    let cached: Option<i32> = sqlx::query_scalar(
        "select ai_cached_tokens from public.conversations where wa_message_id = 'wamid.u.ai'",
    )
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(cached, Some(40));
    let (code, title): (Option<i32>, Option<String>) = sqlx::query_as(
        "select error_code, error_title from public.conversations where wa_message_id = $1",
    )
    .bind(&human_out)
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(
        (code, title.as_deref()),
        (Some(131026), Some("Message undeliverable"))
    );
    let (cat, billable, st): (Option<String>, Option<bool>, String) = sqlx::query_as(
        "select pricing_category, pricing_billable, status from public.conversations where wa_message_id = $1",
    )
    .bind(&out)
    .fetch_one(&w.pool)
    .await
    .unwrap();
    assert_eq!(
        (cat.as_deref(), billable, st.as_str()),
        (Some("service"), Some(false), "read")
    );

    // The other tenant's day holds none of it.
    assert!(today(&w.pool, w.b.id).await.is_empty());

    // The operator's report: est_cost_usd from the price table (an estimate).
    let days = w
        .store
        .usage_days(
            Some(w.a.id),
            chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2100, 1, 1).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    let expected = (80.0 * 0.15 + 40.0 * 0.075 + 30.0 * 0.60) / 1e6 + 0.004;
    assert!(
        (days[0].est_cost_usd - expected).abs() < 1e-9,
        "{}",
        days[0].est_cost_usd
    );
}

async fn owner_texts(graph: &MockServer) -> Vec<String> {
    sends(graph)
        .await
        .iter()
        .map(body)
        .filter(|b| b["to"] == OWNER)
        .map(|b| b["text"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn at_80_percent_the_owner_is_told_once_and_at_100_percent_the_ai_stops_until_next_month(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok("Tuna ukulele."))
        .mount(&w.openai)
        .await;
    // Each AI answer costs 150 tokens.
    w.store.set_budget(w.a.id, Some(180), None).await.unwrap();
    let r = &w.responder;
    let ask = |i: u32| {
        message_from(
            &w.a,
            A_PNID,
            &format!("wamid.b{i}"),
            "mnauza ukulele?",
            &format!("25471100030{i}"),
        )
    };
    let ai_calls = || async { w.openai.received_requests().await.unwrap().len() };

    // 0 % -> the AI answers (150 tokens: 83 %).
    assert_eq!(
        r.handle_job(&ask(1)).await.unwrap(),
        Outcome::Replied(vec!["ai"])
    );
    // 83 % -> the AI still answers, and the owner is told.
    assert_eq!(
        r.handle_job(&ask(2)).await.unwrap(),
        Outcome::Replied(vec!["ai", "budget"])
    );
    assert_eq!(ai_calls().await, 2);
    let told = owner_texts(&w.graph).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("83%"), "{told:?}");

    // 166 % -> the AI stops: the question is handed over, OpenAI is not called.
    assert_eq!(
        r.handle_job(&ask(3)).await.unwrap(),
        Outcome::Replied(vec!["fallback", "escalation"])
    );
    assert_eq!(
        r.handle_job(&ask(4)).await.unwrap(),
        Outcome::Replied(vec!["fallback", "escalation"])
    );
    assert_eq!(ai_calls().await, 2, "no AI call over the budget");
    // FAQ answers go on.
    let faq = message_from(
        &w.a,
        A_PNID,
        "wamid.bfaq",
        "Can I pay with M-Pesa?",
        "254711000399",
    );
    assert_eq!(
        r.handle_job(&faq).await.unwrap(),
        Outcome::Replied(vec!["faq"])
    );
    // The notice went out once.
    let notices = owner_texts(&w.graph)
        .await
        .into_iter()
        .filter(|t| t.contains("budget"))
        .count();
    assert_eq!(notices, 1);
    let status = w.store.budget_status(w.a.id).await.unwrap().unwrap();
    assert!(
        status.ai_stopped && status.notified_this_month,
        "{status:?}"
    );
    assert_eq!(n(&today(&w.pool, w.a.id).await, "ai_budget_stops"), 2);
    // The other tenant has no budget: untouched.
    assert!(w.store.budget_status(w.b.id).await.unwrap().is_none());

    // A new month: last month's use no longer counts, and the notice may go out again.
    sqlx::query("update alphadome.bot_usage_daily set day = day - 40 where bot_tenant_id = $1")
        .bind(w.a.id)
        .execute(&w.pool)
        .await
        .unwrap();
    sqlx::query("update alphadome.bot_budgets set notified_month = (notified_month - interval '1 month')::date where bot_tenant_id = $1")
        .bind(w.a.id)
        .execute(&w.pool)
        .await
        .unwrap();
    assert_eq!(
        r.handle_job(&ask(5)).await.unwrap(),
        Outcome::Replied(vec!["ai"])
    );
    assert_eq!(ai_calls().await, 3);
}

/// An FAQ answer is recorded with its claim (migrations/0030_claim_and_record_foreseen.sql),
/// but not when the claim hands out the month's budget notice: the notice is one of that
/// message's replies, so the message is decided after its claim and the owner is told.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_budget_notice_goes_out_with_an_faq_answer(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok("Tuna ukulele."))
        .mount(&w.openai)
        .await;
    // One AI answer (150 tokens) takes the month to 83 %.
    w.store.set_budget(w.a.id, Some(180), None).await.unwrap();
    let r = &w.responder;
    assert_eq!(
        r.handle_job(&message_from(
            &w.a,
            A_PNID,
            "wamid.n1",
            "mnauza ukulele?",
            "254711000601"
        ))
        .await
        .unwrap(),
        Outcome::Replied(vec!["ai"])
    );
    let faq = |i: u32| {
        message_from(
            &w.a,
            A_PNID,
            &format!("wamid.nf{i}"),
            "Can I pay with M-Pesa?",
            &format!("25471100061{i}"),
        )
    };
    assert_eq!(
        r.handle_job(&faq(1)).await.unwrap(),
        Outcome::Replied(vec!["faq", "budget"])
    );
    assert_eq!(
        r.handle_job(&faq(2)).await.unwrap(),
        Outcome::Replied(vec!["faq"])
    );
    let told = owner_texts(&w.graph).await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("83%"), "{told:?}");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_sees_only_its_own_brands_usage_and_budgets_and_writes_none(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    w.store.set_budget(w.a.id, Some(1000), None).await.unwrap();
    w.store.set_budget(w.b.id, Some(1000), None).await.unwrap();
    w.responder
        .handle_job(&message(&w.a, A_PNID, "wamid.o1", "Can I pay with M-Pesa?"))
        .await
        .unwrap();
    w.responder
        .handle_job(&message(&w.b, B_PNID, "wamid.o2", "Do you do braids?"))
        .await
        .unwrap();

    for table in ["alphadome.bot_usage_daily", "alphadome.bot_budgets"] {
        let mut tx = w.pool.begin().await.unwrap();
        sqlx::query("select set_config('request.jwt.claims', $1, true)")
            .bind(
                serde_json::json!({"sub": "u1", "app_metadata": {"brand_id": w.a.brand_id}})
                    .to_string(),
            )
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("set local role authenticated")
            .execute(&mut *tx)
            .await
            .unwrap();
        let seen: Vec<uuid::Uuid> =
            sqlx::query_scalar(&format!("select bot_tenant_id from {table}"))
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert_eq!(seen, vec![w.a.id.0], "{table}: only A's rows");
        let wrote = sqlx::query(&format!(
            "update {table} set bot_tenant_id = bot_tenant_id where bot_tenant_id = $1"
        ))
        .bind(w.a.id)
        .execute(&mut *tx)
        .await;
        assert!(wrote.is_err(), "{table}: an owner writes no usage");
        tx.rollback().await.unwrap();
    }
    // Prices are the operator's.
    let mut tx = w.pool.begin().await.unwrap();
    sqlx::query("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(sqlx::query("select * from alphadome.platform_prices")
        .fetch_all(&mut *tx)
        .await
        .is_err());
    tx.rollback().await.unwrap();

    // The functions' role acting for A sees only A's usage, and cannot write B's day.
    let mut tx = w.pool.begin().await.unwrap();
    sqlx::query("select alphadome.act_for_tenant($1)")
        .bind(w.a.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("select count(*) from alphadome.bot_usage_daily")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 1);
    let planted = sqlx::query(
        "insert into alphadome.bot_usage_daily (bot_tenant_id, day, counts) values ($1, '2001-01-01', '{}')",
    )
    .bind(w.b.id)
    .execute(&mut *tx)
    .await;
    assert!(
        planted.is_err(),
        "the functions' role writes only its tenant's usage"
    );
}

/// Transactions committed in this database, read after the backends flushed their
/// statistics (PostgreSQL flushes a backend's counters at most once a second).
async fn committed(pool: &PgPool) -> i64 {
    tokio::time::sleep(Duration::from_millis(1100)).await;
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

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn counting_usage_adds_no_round_trip_as_postgres_counts_them(pool: PgPool) {
    // One connection, so every statement lands in one backend whose statistics we flush;
    // the migrating pool is closed so its late flush cannot land inside a measurement.
    let options = (*pool.connect_options()).clone();
    pool.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let w = world(pool.clone()).await;
    accept_sends(&w.graph).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ai_ok("Tuna ukulele."))
        .mount(&w.openai)
        .await;
    w.store
        .set_budget(w.a.id, Some(1_000_000), Some(1_000_000))
        .await
        .unwrap();
    // Warm the tenant's context.
    w.responder
        .handle_job(&message_from(
            &w.a,
            A_PNID,
            "wamid.rw",
            "Hello",
            "254711000501",
        ))
        .await
        .unwrap();
    // What an interval costs besides the work: the measure's own statements, and one more
    // commit PostgreSQL counts in any interval where rows were written (seen with one plain
    // INSERT: 2). Calibrated with a single one-statement write, so `interval - overhead` is
    // the number of transactions the work made.
    committed(&pool).await;
    let before = committed(&pool).await;
    sqlx::raw_sql(
        "insert into alphadome.platform_prices (item, usd, unit) values ('calibration', 0, 'none') returning item",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let overhead = committed(&pool).await - before - 1;

    let before = committed(&pool).await;
    let out = w
        .responder
        .handle_job(&message_from(
            &w.a,
            A_PNID,
            "wamid.rf",
            "Can I pay with M-Pesa?",
            "254711000502",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    let faq = committed(&pool).await - before - overhead;

    let before = committed(&pool).await;
    let out = w
        .responder
        .handle_job(&message_from(
            &w.a,
            A_PNID,
            "wamid.ra",
            "mnauza ukulele?",
            "254711000503",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["ai"]));
    let ai = committed(&pool).await - before - overhead;

    // A batch of one tenant mixing a FAQ answer and an AI answer: the responder runs the
    // two kinds apart (so a FAQ answer never waits for the AI), three round trips each.
    let mixed = vec![
        message_from(
            &w.a,
            A_PNID,
            "wamid.rm1",
            "Can I pay with M-Pesa?",
            "254711000504",
        ),
        message_from(&w.a, A_PNID, "wamid.rm2", "mnauza gitaa?", "254711000505"),
    ];
    let before = committed(&pool).await;
    let outs = w.responder.handle_jobs(&mixed).await;
    assert!(outs.iter().all(Result::is_ok));
    let mixed_trips = committed(&pool).await - before - overhead;

    // The counts were written by those same transactions.
    let c = today(&pool, w.a.id).await;
    assert_eq!(n(&c, "received"), 5, "{c:?}");
    println!("transactions per answered message, counted by PostgreSQL: faq={faq} ai={ai} mixed-batch-of-2={mixed_trips}");
    assert_eq!(
        faq, 2,
        "a FAQ answer, warm: claim recording the answer + mark sent"
    );
    assert_eq!(
        ai, 3,
        "an AI answer, warm, with a budget set: claim + record + mark sent"
    );
    assert_eq!(
        mixed_trips, 5,
        "a mixed batch runs its FAQ and AI messages apart: 2 + 3"
    );
}
