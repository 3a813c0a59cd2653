//! The database budget per answered message: two round trips for an FAQ answer once the
//! tenant's context is cached (the claim, which records the answer, and the mark sent), one
//! more when it is not, one more when the answer depends on the claim (a welcome on a first
//! contact, the AI); and two for a batch, shared by its tenants. Its own test binary, its tests one at a time, so no other test's queries run in
//! between.

mod common;

use common::*;
use std::sync::atomic::Ordering;

/// The round-trip counter is global: these tests take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What `work` returned, and the database round trips it made.
async fn counting<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let counter = &alphadome::store::literal::ROUND_TRIPS;
    let start = counter.load(Ordering::SeqCst);
    let out = work.await;
    (out, counter.load(Ordering::SeqCst) - start)
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_faq_answer_costs_two_round_trips_warm_and_three_cold(pool: PgPool) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = world(pool).await;
    accept_sends(&w.graph).await;

    let (out, trips) = counting(w.responder.handle_job(&message(
        &w.a,
        A_PNID,
        "wamid.rt1",
        "Can I pay with M-Pesa?",
    )))
    .await;
    assert_eq!(out.unwrap(), Outcome::Replied(vec!["faq"]));
    assert_eq!(trips, 3, "cold: context + claim and record + mark sent");

    let (out, trips) = counting(w.responder.handle_job(&message(
        &w.a,
        A_PNID,
        "wamid.rt2",
        "What are your opening hours?",
    )))
    .await;
    assert_eq!(out.unwrap(), Outcome::Replied(vec!["faq"]));
    assert_eq!(trips, 2, "warm: claim and record + mark sent");

    let (out, trips) = counting(w.responder.handle_job(&message(
        &w.a,
        A_PNID,
        "wamid.rt2",
        "What are your opening hours?",
    )))
    .await;
    assert_eq!(out.unwrap(), Outcome::Duplicate);
    assert_eq!(trips, 1, "a duplicate costs one");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_batch_costs_two_round_trips_whatever_its_size_and_about_two_whatever_its_tenants(
    pool: PgPool,
) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    // Warm both tenants' contexts.
    w.responder
        .handle_job(&message(&w.a, A_PNID, "wamid.w1", "Hello"))
        .await
        .unwrap();
    w.responder
        .handle_job(&message(&w.b, B_PNID, "wamid.w2", "Hello"))
        .await
        .unwrap();

    let a_batch: Vec<Job> = (0..8)
        .map(|i| {
            message_from(
                &w.a,
                A_PNID,
                &format!("wamid.ba{i}"),
                "Can I pay with M-Pesa?",
                &format!("2547110009{i:02}"),
            )
        })
        .collect();
    let (results, trips) = counting(w.responder.handle_jobs(&a_batch)).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap() == &Outcome::Replied(vec!["faq"])));
    assert_eq!(trips, 2, "eight messages, one tenant");

    let mixed: Vec<Job> = (0..6)
        .map(|i| {
            let (t, pnid, text) = if i % 2 == 0 {
                (&w.a, A_PNID, "What are your opening hours?")
            } else {
                (&w.b, B_PNID, "Do you do braids?")
            };
            message_from(
                t,
                pnid,
                &format!("wamid.bm{i}"),
                text,
                &format!("2547110008{i:02}"),
            )
        })
        .collect();
    let (results, trips) = counting(w.responder.handle_jobs(&mixed)).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap() == &Outcome::Replied(vec!["faq"])));
    // Each tenant's call is its own transaction, but calls made together share a round trip
    // (store/coalesce.rs): the claims (recording the answers) go together; the two
    // mark-sent calls go together when both tenants' sends end in the same poll, else one
    // after the other. Two per tenant, four, without the sharing.
    assert!(
        (2..=3).contains(&trips),
        "two tenants share the claim round trip: {trips}"
    );
}
