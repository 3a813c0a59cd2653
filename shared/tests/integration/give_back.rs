//! migrations/0026_unsent_replies_given_back.sql: what an attempt whose call's answer was lost
//! left undone goes back as `retry` — only its own claims and the replies it made sendable.

use crate::helpers::{local_keys, seed_two_tenants};
use crate::lean_path::{call, claim};
use alphadome::store::Store;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

fn record(tenant: Uuid, wamid: &str, user: &Value, attempt: Uuid) -> Value {
    json!({"tenant_id": tenant, "items": [{
        "wa_message_id": wamid, "user_id": user, "attempt": attempt,
        "inbound_status": "answered", "reply_source": "faq",
        "replies": [{"source": "faq", "text": "We open at 9.", "to_customer": true}]
    }]})
}

/// A claim by the attempt `attempt`.
fn claim_as(tenant: Uuid, wamid: &str, attempt: Uuid) -> Value {
    let mut c = claim(tenant, wamid);
    c["items"][0]["attempt"] = json!(attempt);
    c
}

fn give_back(tenant: Uuid, wamid: &str, attempt: Uuid) -> Value {
    json!({"tenant_id": tenant, "attempt": attempt, "wa_message_ids": [wamid]})
}

/// The status of the message and of its replies.
async fn statuses(pool: &PgPool, wamid: &str) -> (String, Vec<String>) {
    let inbound: String = sqlx::query_scalar(
        "select status from public.conversations where wa_message_id = $1 and direction = 'incoming'",
    )
    .bind(wamid)
    .fetch_one(pool)
    .await
    .unwrap();
    let replies: Vec<String> = sqlx::query_scalar(
        "select status from public.conversations where in_reply_to = $1 and direction = 'outgoing'",
    )
    .bind(wamid)
    .fetch_all(pool)
    .await
    .unwrap();
    (inbound, replies)
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn replies_a_lost_record_call_left_pending_go_back_and_the_redelivery_sends_them(
    pool: PgPool,
) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let t = s.a.id.0;
    let mut conn = pool.acquire().await.unwrap().detach();

    let (claimed, _) = call(&mut conn, "begin_inbound_batch", &claim(t, "wamid.g.1")).await;
    let user = claimed["results"][0]["user_id"].clone();
    let lost = Uuid::new_v4();
    let (recorded, _) = call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.g.1", &user, lost),
    )
    .await;
    assert_eq!(recorded["results"][0]["replies"][0]["send"], true);
    assert_eq!(
        statuses(&pool, "wamid.g.1").await,
        ("answered".into(), vec!["pending".into()])
    );

    // Another tenant cannot give it back, nor can another attempt.
    let other = s.b.id.0;
    let (none, _) = call(
        &mut conn,
        "give_back_unsent",
        &give_back(other, "wamid.g.1", lost),
    )
    .await;
    assert_eq!(none, json!({"replies": 0, "messages": 0}));
    let (none, _) = call(
        &mut conn,
        "give_back_unsent",
        &give_back(t, "wamid.g.1", Uuid::new_v4()),
    )
    .await;
    assert_eq!(none, json!({"replies": 0, "messages": 0}));
    assert_eq!(
        statuses(&pool, "wamid.g.1").await,
        ("answered".into(), vec!["pending".into()])
    );

    // The call whose answer was lost gives back what it recorded.
    let (given, _) = call(
        &mut conn,
        "give_back_unsent",
        &give_back(t, "wamid.g.1", lost),
    )
    .await;
    assert_eq!(given, json!({"replies": 1, "messages": 1}));
    assert_eq!(
        statuses(&pool, "wamid.g.1").await,
        ("retry".into(), vec!["retry".into()])
    );

    // The redelivery claims the message and sends the same reply row, counted once.
    let (again, _) = call(&mut conn, "begin_inbound_batch", &claim(t, "wamid.g.1")).await;
    assert_eq!(again["results"][0]["claimed"], true);
    let (resent, _) = call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.g.1", &user, Uuid::new_v4()),
    )
    .await;
    assert_eq!(resent["results"][0]["replies"][0]["send"], true);
    assert_eq!(
        resent["results"][0]["replies"][0]["id"],
        recorded["results"][0]["replies"][0]["id"]
    );
    let messages_out: i64 = sqlx::query_scalar(
        "select (counts ->> 'messages_out')::bigint from alphadome.bot_usage_daily where bot_tenant_id = $1",
    )
    .bind(t)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(messages_out, 1);
}

/// A worker that outlived its lease: the first attempt's reply is `pending` (its send may
/// have gone out); the second attempt finds it and does not send it. If the second call's
/// answer is lost, giving it back must leave the first attempt's reply alone.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_reply_another_attempt_made_pending_is_never_given_back(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let t = s.a.id.0;
    let mut conn = pool.acquire().await.unwrap().detach();

    let (claimed, _) = call(&mut conn, "begin_inbound_batch", &claim(t, "wamid.g.2")).await;
    let user = claimed["results"][0]["user_id"].clone();
    let first = Uuid::new_v4();
    call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.g.2", &user, first),
    )
    .await;
    let second = Uuid::new_v4();
    let (found, _) = call(
        &mut conn,
        "record_replies_batch",
        &record(t, "wamid.g.2", &user, second),
    )
    .await;
    assert_eq!(found["results"][0]["replies"][0]["send"], false);

    let (none, _) = call(
        &mut conn,
        "give_back_unsent",
        &give_back(t, "wamid.g.2", second),
    )
    .await;
    assert_eq!(none, json!({"replies": 0, "messages": 0}));
    assert_eq!(
        statuses(&pool, "wamid.g.2").await,
        ("answered".into(), vec!["pending".into()])
    );
}

/// A claim whose answer was lost, or a record that never committed: the attempt's claim is
/// released at once instead of waiting out its lease — but never a claim another worker
/// holds now (a claim taken over after the lease carries that worker's attempt).
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn only_the_attempts_own_unrecorded_claim_is_released(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let t = s.a.id.0;
    let mut conn = pool.acquire().await.unwrap().detach();

    let mine = Uuid::new_v4();
    call(
        &mut conn,
        "begin_inbound_batch",
        &claim_as(t, "wamid.g.3", mine),
    )
    .await;
    let (none, _) = call(
        &mut conn,
        "give_back_unsent",
        &give_back(t, "wamid.g.3", Uuid::new_v4()),
    )
    .await;
    assert_eq!(none, json!({"replies": 0, "messages": 0}));
    assert_eq!(
        statuses(&pool, "wamid.g.3").await,
        ("processing".into(), vec![])
    );

    let (given, _) = call(
        &mut conn,
        "give_back_unsent",
        &give_back(t, "wamid.g.3", mine),
    )
    .await;
    assert_eq!(given, json!({"replies": 0, "messages": 1}));
    assert_eq!(statuses(&pool, "wamid.g.3").await, ("retry".into(), vec![]));

    // Claimed again by another worker: the first attempt can no longer release it.
    let theirs = Uuid::new_v4();
    let (again, _) = call(
        &mut conn,
        "begin_inbound_batch",
        &claim_as(t, "wamid.g.3", theirs),
    )
    .await;
    assert_eq!(again["results"][0]["claimed"], true);
    let (none, _) = call(
        &mut conn,
        "give_back_unsent",
        &give_back(t, "wamid.g.3", mine),
    )
    .await;
    assert_eq!(none, json!({"replies": 0, "messages": 0}));
    assert_eq!(
        statuses(&pool, "wamid.g.3").await,
        ("processing".into(), vec![])
    );
}

/// migrations/0027_release_by_attempt.sql: a claim given back after a panic or an "again"
/// (release_inbound_batch) is the attempt's own only. A message another worker took over after
/// the lease ran out stays with that worker; before, the first attempt's release turned it to
/// `retry`, for a third delivery to claim while the second was still answering.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_release_gives_back_only_the_claims_the_attempt_still_holds(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    let t = s.a.id.0;
    let mut conn = pool.acquire().await.unwrap().detach();
    let release = |attempt: Uuid| json!({"tenant_id": t, "attempt": attempt, "wa_message_ids": ["wamid.r.1"]});

    let first = Uuid::new_v4();
    call(
        &mut conn,
        "begin_inbound_batch",
        &claim_as(t, "wamid.r.1", first),
    )
    .await;
    // The first worker stalls past its lease; another takes the message over.
    sqlx::query(
        "update public.conversations set status_updated_at = now() - interval '1 hour' where wa_message_id = 'wamid.r.1'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let second = Uuid::new_v4();
    let (taken, _) = call(
        &mut conn,
        "begin_inbound_batch",
        &claim_as(t, "wamid.r.1", second),
    )
    .await;
    assert_eq!(taken["results"][0]["claimed"], true);

    // The first worker panics and releases what it claimed: nothing of the second's moves.
    let (none, _) = call(&mut conn, "release_inbound_batch", &release(first)).await;
    assert_eq!(none, json!({"released": 0}));
    assert_eq!(
        statuses(&pool, "wamid.r.1").await,
        ("processing".into(), vec![])
    );
    let (again, _) = call(
        &mut conn,
        "begin_inbound_batch",
        &claim_as(t, "wamid.r.1", Uuid::new_v4()),
    )
    .await;
    assert_eq!(
        again["results"][0]["claimed"], false,
        "a third delivery waits"
    );

    // The second worker's own release gives the message back at once.
    let (mine, _) = call(&mut conn, "release_inbound_batch", &release(second)).await;
    assert_eq!(mine, json!({"released": 1}));
    assert_eq!(statuses(&pool, "wamid.r.1").await, ("retry".into(), vec![]));
}
