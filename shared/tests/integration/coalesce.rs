//! Several tenants' pipeline calls made at the same time go to the database as one message,
//! `begin; <call>; commit;` per call (store/coalesce.rs). Each call must still run in a
//! transaction of its own — the functions act for one tenant per transaction and refuse a
//! second — and one call the database refuses must fail alone: the calls before it stay
//! committed, those after it run again, and the connection is usable afterwards. Through
//! PgBouncer in transaction mode, as Supabase's pooler.

use crate::helpers::{bouncer_url, local_keys, seed_two_tenants};
use alphadome::domain::TenantId;
use alphadome::store::{BeginInbound, PlannedReply, RecordReplies, Store};
use sqlx::PgPool;

fn inbound<'a>(wamid: &'a str, phone: &'a str) -> BeginInbound<'a> {
    BeginInbound {
        wa_message_id: wamid,
        attempt: uuid::Uuid::new_v4(),
        phone: Some(phone),
        user_id: None,
        profile_name: Some("Customer"),
        message_type: "text",
        text: Some("hello"),
        intent: None,
        count_reply: true,
        with_history: false,
        foreseen: None,
    }
}

fn record<'a>(
    wamid: &'a str,
    attempt: uuid::Uuid,
    replies: &'a [PlannedReply],
) -> RecordReplies<'a> {
    RecordReplies {
        wa_message_id: wamid,
        attempt,
        inbound_status: "answered",
        reply_source: Some("faq"),
        replies,
        ..Default::default()
    }
}

/// A store on `connections` connections through PgBouncer in transaction mode, to the test's
/// database.
async fn through_bouncer(pool: &PgPool, connections: u32) -> Store {
    let db: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(pool)
        .await
        .unwrap();
    Store::connect(&bouncer_url(&db), connections)
        .await
        .expect("PgBouncer on 6432: run scripts/test-services.sh")
}

/// The status of the reply recorded for `wamid` (None: no reply row).
async fn reply_status(pool: &PgPool, wamid: &str) -> Option<String> {
    sqlx::query_scalar(
        "select status from public.conversations where in_reply_to = $1 and direction = 'outgoing'",
    )
    .bind(wamid)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// The tenant whose conversation row holds `wamid` (None: no row).
async fn owner_of(pool: &PgPool, wamid: &str) -> Option<uuid::Uuid> {
    sqlx::query_scalar("select bot_tenant_id from public.conversations where wa_message_id = $1")
        .bind(wamid)
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn calls_made_together_keep_one_transaction_each_and_a_refused_one_fails_alone(pool: PgPool) {
    // One connection: the combined message and everything after it share it.
    let store = through_bouncer(&pool, 1).await;
    let s = seed_two_tenants(&store, &local_keys()).await;
    let nobody = TenantId(uuid::Uuid::new_v4());

    let a_claim = [inbound("wamid.together.a", "254700000001")];
    let lost_claim = [inbound("wamid.together.lost", "254700000002")];
    let b_claim = [inbound("wamid.together.b", "254700000003")];
    let (a, lost, b) = tokio::join!(
        store.begin_inbound_batch(s.a.id, 120, 6, &a_claim),
        store.begin_inbound_batch(nobody, 120, 6, &lost_claim),
        store.begin_inbound_batch(s.b.id, 120, 6, &b_claim),
    );
    assert!(a.expect("the call before the refused one")[0].claimed);
    let refused = lost.expect_err("a tenant that does not exist is refused");
    assert!(
        refused.is_refusal(),
        "the database's own refusal: {refused:#}"
    );
    assert!(b.expect("the call after the refused one runs again")[0].claimed);
    assert_eq!(owner_of(&pool, "wamid.together.a").await, Some(s.a.id.0));
    assert_eq!(owner_of(&pool, "wamid.together.b").await, Some(s.b.id.0));
    assert_eq!(owner_of(&pool, "wamid.together.lost").await, None);

    // The aborted transaction was ended: the same connection answers the next calls.
    let again = [inbound("wamid.together.a2", "254700000001")];
    let out = store
        .begin_inbound_batch(s.a.id, 120, 6, &again)
        .await
        .expect("the connection is usable after a refused call");
    assert!(out[0].claimed);
    assert!(store.load_tenant_context(s.b.id).await.unwrap().is_some());
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn many_tenants_calls_at_once_each_land_in_their_own_tenant(pool: PgPool) {
    let store = through_bouncer(&pool, 2).await;
    let s = seed_two_tenants(&store, &local_keys()).await;
    let wamids: Vec<String> = (0..40).map(|i| format!("wamid.many.{i}")).collect();
    let claims: Vec<[BeginInbound<'_>; 1]> = wamids
        .iter()
        .map(|w| [inbound(w, "254700000009")])
        .collect();
    let calls = claims.iter().enumerate().map(|(i, c)| {
        let t = if i % 2 == 0 { s.a.id } else { s.b.id };
        store.begin_inbound_batch(t, 120, 6, c)
    });
    let out = futures_util::future::join_all(calls).await;
    for (i, r) in out.into_iter().enumerate() {
        assert!(r.unwrap()[0].claimed, "call {i}");
        let want = if i % 2 == 0 { s.a.id.0 } else { s.b.id.0 };
        assert_eq!(owner_of(&pool, &wamids[i]).await, Some(want), "call {i}");
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_caller_that_gives_up_first_never_stalls_the_calls_after_it(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let s = seed_two_tenants(&store, &local_keys()).await;
    // The first call of a round is polled once (it queues itself and yields to let others
    // join), then dropped, as when Meta hangs up on the webhook or a timeout fires.
    let dropped = [inbound("wamid.dropped", "254700000001")];
    let gave_up =
        futures_util::FutureExt::now_or_never(store.begin_inbound_batch(s.a.id, 120, 6, &dropped));
    assert!(gave_up.is_none(), "the first call was dropped while queued");
    let next = [inbound("wamid.after-dropped", "254700000002")];
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        store.begin_inbound_batch(s.b.id, 120, 6, &next),
    )
    .await
    .expect("a later call is answered, not stalled behind the dropped one")
    .unwrap();
    assert!(out[0].claimed);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn durable_calls_made_together_share_one_flush_and_a_refused_one_still_fails_alone(
    pool: PgPool,
) {
    // One connection: the combined message, the barrier run after the refusal and the calls
    // run again all share it.
    let store = through_bouncer(&pool, 1).await;
    let s = seed_two_tenants(&store, &local_keys()).await;
    let nobody = TenantId(uuid::Uuid::new_v4());
    let mut claims = Vec::new();
    for (tenant, wamid, phone) in [
        (s.a.id, "wamid.flush.a", "254700000001"),
        (s.b.id, "wamid.flush.b", "254700000002"),
        (s.a.id, "wamid.flush.c", "254700000003"),
    ] {
        let claim = [inbound(wamid, phone)];
        let out = store
            .begin_inbound_batch(tenant, 120, 6, &claim)
            .await
            .unwrap();
        assert!(out[0].claimed);
        claims.push(claim[0].attempt);
    }
    let replies = [PlannedReply {
        source: "faq",
        text: "We open at 9.".into(),
        to_customer: true,
    }];
    // Four records at once, the second for a business that does not exist: the message holds
    // four durable calls, so it ends with the barrier; the refusal stops it after the first.
    let a = [record("wamid.flush.a", claims[0], &replies)];
    let lost = [record("wamid.flush.lost", claims[0], &replies)];
    let b = [record("wamid.flush.b", claims[1], &replies)];
    let c = [record("wamid.flush.c", claims[2], &replies)];
    let (a, lost, b, c) = tokio::join!(
        store.record_replies_batch(s.a.id, &a),
        store.record_replies_batch(nobody, &lost),
        store.record_replies_batch(s.b.id, &b),
        store.record_replies_batch(s.a.id, &c),
    );
    let refused = lost.expect_err("a business that does not exist is refused");
    assert!(refused.is_refusal(), "{refused:#}");
    for (name, out) in [("before", a), ("after", b), ("after, again", c)] {
        let out = out.unwrap_or_else(|e| panic!("the call {name} the refused one: {e:#}"));
        assert!(out[0][0].send, "{name}: the reply is to be sent");
    }
    for wamid in ["wamid.flush.a", "wamid.flush.b", "wamid.flush.c"] {
        assert_eq!(
            reply_status(&pool, wamid).await.as_deref(),
            Some("pending"),
            "{wamid}"
        );
    }
    assert_eq!(reply_status(&pool, "wamid.flush.lost").await, None);
    // Nothing is left set on the connection: the next call commits as its function says.
    let next = [inbound("wamid.flush.next", "254700000004")];
    assert!(
        store
            .begin_inbound_batch(s.b.id, 120, 6, &next)
            .await
            .unwrap()[0]
            .claimed
    );
}
