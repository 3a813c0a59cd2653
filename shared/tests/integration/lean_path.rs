//! migrations/0025_leaner_lambda_path.sql: which of a message's transactions wait for the WAL
//! flush, and where its usage is counted. Called as the pipeline calls them, one transaction
//! per call, on one connection so the transaction's own settings can be read before commit.

use crate::helpers::{local_keys, seed_two_tenants};
use alphadome::store::Store;
use serde_json::{json, Value};
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

/// Runs `select alphadome.<function>(<arg>)` in a transaction of its own and returns its
/// result and the transaction's `synchronous_commit` as the commit will see it.
pub(crate) async fn call(conn: &mut PgConnection, function: &str, arg: &Value) -> (Value, String) {
    call_with(conn, None, function, arg).await
}

/// [`call`], after `set local <setting>` when one is given: as the combined message does when
/// a barrier flushes its calls (`synchronous_commit = off`).
async fn call_with(
    conn: &mut PgConnection,
    setting: Option<&str>,
    function: &str,
    arg: &Value,
) -> (Value, String) {
    let mut tx = conn.begin().await.unwrap();
    if let Some(setting) = setting {
        sqlx::raw_sql(&format!("set local {setting}"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let out: Value = sqlx::query_scalar(&format!("select alphadome.{function}($1::jsonb)"))
        .bind(arg)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let sync: String = sqlx::query_scalar("select current_setting('synchronous_commit')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (out, sync)
}

pub(crate) fn claim(tenant: Uuid, wamid: &str) -> Value {
    json!({"tenant_id": tenant, "items": [{
        "wa_message_id": wamid, "phone": "254700000001", "profile_name": "Wanjiku",
        "message_type": "text", "text": "hello", "count_reply": true, "with_history": false
    }]})
}

fn record(tenant: Uuid, wamid: &str, user: &Value) -> Value {
    json!({"tenant_id": tenant, "items": [{
        "wa_message_id": wamid, "user_id": user, "inbound_status": "answered",
        "reply_source": "faq", "replies": [{"source": "faq", "text": "We open at 9.", "to_customer": true}]
    }]})
}

fn mark(tenant: Uuid, wamid: &str, reply: &Value, status: &str) -> Value {
    json!({"tenant_id": tenant, "items": [{
        "wa_message_id": wamid, "token_invalid": false,
        "results": [{"id": reply, "status": status, "sent_wa_message_id": format!("wamid.out.{status}")}]
    }]})
}

async fn received(pool: &PgPool, tenant: Uuid) -> (i64, i64) {
    let counts: Option<Value> =
        sqlx::query_scalar("select counts from alphadome.bot_usage_daily where bot_tenant_id = $1")
            .bind(tenant)
            .fetch_optional(pool)
            .await
            .unwrap();
    let n = |k: &str| {
        counts
            .as_ref()
            .and_then(|c| c[k].as_i64())
            .unwrap_or_default()
    };
    (n("received"), n("received:text"))
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn only_the_record_before_the_send_and_a_handed_back_mark_wait_for_the_disk(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let t = s.a.id.0;
    let mut conn = pool.acquire().await.unwrap().detach();

    let (claimed, sync) = call(&mut conn, "begin_inbound_batch", &claim(t, "wamid.d.1")).await;
    assert_eq!(claimed["results"][0]["claimed"], true);
    assert_eq!(
        sync, "off",
        "the claim: made durable by the record after it"
    );

    let user = claimed["results"][0]["user_id"].clone();
    let (recorded, sync) = call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.d.1", &user),
    )
    .await;
    assert_eq!(
        sync, "on",
        "the record precedes the send: it must be on disk"
    );
    let reply = recorded["results"][0]["replies"][0]["id"].clone();
    assert_eq!(recorded["results"][0]["replies"][0]["send"], true);

    let (_, sync) = call(
        &mut conn,
        "mark_sent_batch",
        &mark(t, "wamid.d.1", &reply, "retry"),
    )
    .await;
    assert_eq!(
        sync, "on",
        "a send handed back for a retry must not be lost"
    );
    let (_, sync) = call(&mut conn, "begin_inbound_batch", &claim(t, "wamid.d.1")).await;
    assert_eq!(sync, "off");
    let (again, _) = call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.d.1", &user),
    )
    .await;
    assert_eq!(
        again["results"][0]["replies"][0]["send"], true,
        "the retry sends"
    );
    let (_, sync) = call(
        &mut conn,
        "mark_sent_batch",
        &mark(t, "wamid.d.1", &reply, "sent"),
    )
    .await;
    assert_eq!(
        sync, "off",
        "a clean mark: the reply left, losing the mark re-sends nothing"
    );

    // The setting is the transaction's own: the connection's next work waits for the disk.
    let after: String = sqlx::query_scalar("select current_setting('synchronous_commit')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(after, "on");
    let status: String =
        sqlx::query_scalar("select status from public.conversations where id = $1::text::uuid")
            .bind(reply.as_str().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "sent");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_message_is_counted_received_once_at_its_first_outcome(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let t = s.a.id.0;
    let mut conn = pool.acquire().await.unwrap().detach();

    // The seed counts one message of tenant A already.
    let (a0, a0_text) = received(&pool, t).await;
    let b0 = received(&pool, s.b.id.0).await;
    let delta = |(n, text): (i64, i64)| (n - a0, text - a0_text);

    let (claimed, _) = call(&mut conn, "begin_inbound_batch", &claim(t, "wamid.r.1")).await;
    assert_eq!(
        delta(received(&pool, t).await),
        (0, 0),
        "a claim alone writes no usage"
    );
    let user = claimed["results"][0]["user_id"].clone();
    let (recorded, _) = call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.r.1", &user),
    )
    .await;
    assert_eq!(delta(received(&pool, t).await), (1, 1));

    // Handed back and handled again: still one message received.
    let reply = recorded["results"][0]["replies"][0]["id"].clone();
    call(
        &mut conn,
        "mark_sent_batch",
        &mark(t, "wamid.r.1", &reply, "retry"),
    )
    .await;
    let (again, _) = call(&mut conn, "begin_inbound_batch", &claim(t, "wamid.r.1")).await;
    assert_eq!(again["results"][0]["claimed"], true);
    call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.r.1", &user),
    )
    .await;
    assert_eq!(delta(received(&pool, t).await), (1, 1));

    // A second message of the same customer counts; the other business counts nothing.
    call(&mut conn, "begin_inbound_batch", &claim(t, "wamid.r.2")).await;
    call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.r.2", &user),
    )
    .await;
    assert_eq!(delta(received(&pool, t).await), (2, 2));
    assert_eq!(received(&pool, s.b.id.0).await, b0);
}

/// A claim carrying a foreseen answer (migrations/0030_claim_and_record_foreseen.sql).
fn claim_foreseen(tenant: Uuid, wamid: &str, cap: i32) -> Value {
    let mut c = claim(tenant, wamid);
    c["items"][0]["foreseen"] = json!({
        "cap": cap, "first_contact_too": true,
        "record": {"inbound_status": "answered", "reply_source": "faq",
                   "replies": [{"source": "faq", "text": "We open at 9.", "to_customer": true}]}
    });
    c
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_claim_that_records_its_answer_waits_for_the_disk_unless_a_barrier_covers_it(
    pool: PgPool,
) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let t = s.a.id.0;
    let mut conn = pool.acquire().await.unwrap().detach();

    // Recorded with the claim: sendable replies, so the commit is a record's.
    let (out, sync) = call(
        &mut conn,
        "begin_inbound_batch",
        &claim_foreseen(t, "wamid.f.1", 10),
    )
    .await;
    let replies = &out["results"][0]["recorded"];
    assert_eq!(replies[0]["send"], true, "{out}");
    assert_eq!(replies[0]["source"], "faq");
    assert_eq!(sync, "on", "replies recorded as sendable must be on disk");
    let status: String = sqlx::query_scalar(
        "select status from public.conversations where wa_message_id = 'wamid.f.1'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "answered");

    // Over the cap the assumption fails: claimed only, decided after the claim.
    let (out, sync) = call(
        &mut conn,
        "begin_inbound_batch",
        &claim_foreseen(t, "wamid.f.2", 1),
    )
    .await;
    assert_eq!(out["results"][0]["claimed"], true);
    assert!(out["results"][0]["recorded"].is_null(), "{out}");
    assert_eq!(sync, "off", "a bare claim needs no flush");
    let replies: i64 = sqlx::query_scalar(
        "select count(*) from public.conversations where in_reply_to = 'wamid.f.2'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(replies, 0);

    // Inside a combined message the barrier after it flushes it.
    let (out, sync) = call_with(
        &mut conn,
        Some("synchronous_commit = off"),
        "begin_inbound_batch",
        &claim_foreseen(t, "wamid.f.3", 10),
    )
    .await;
    assert_eq!(out["results"][0]["recorded"][0]["send"], true, "{out}");
    assert_eq!(sync, "off");
}
