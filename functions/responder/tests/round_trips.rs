//! The database budget per answered message: three round trips once the tenant's context is
//! cached (claim, record, mark sent), one more when it is not. Its own test binary, so no
//! other test's queries run in between.

mod common;

use common::*;
use std::sync::atomic::Ordering;

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_answered_message_costs_three_round_trips_warm_and_four_cold(pool: PgPool) {
    let w = world(pool).await;
    Mock::given(method("POST"))
        .respond_with(graph_ok())
        .mount(&w.graph)
        .await;
    let counter = &alphadome::store::literal::ROUND_TRIPS;

    let before = counter.load(Ordering::SeqCst);
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.rt1",
            "Can I pay with M-Pesa?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    assert_eq!(
        counter.load(Ordering::SeqCst) - before,
        4,
        "cold: context + claim + record + mark sent"
    );

    let before = counter.load(Ordering::SeqCst);
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.rt2",
            "What are your opening hours?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    assert_eq!(
        counter.load(Ordering::SeqCst) - before,
        3,
        "warm: claim + record + mark sent"
    );

    let before = counter.load(Ordering::SeqCst);
    assert_eq!(
        w.responder
            .handle_job(&message(
                &w.a,
                A_PNID,
                "wamid.rt2",
                "What are your opening hours?"
            ))
            .await
            .unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(
        counter.load(Ordering::SeqCst) - before,
        1,
        "a duplicate costs one"
    );
}
