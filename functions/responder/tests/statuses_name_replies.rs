//! Every reply goes to Graph tagged with its row's id (`biz_opaque_callback_data`), which Meta
//! returns in the message's statuses (migrations/0028_statuses_name_their_reply.sql). A status
//! whose wamid was never recorded finds its reply by that tag: a reply sent by a worker that
//! could not write what Graph said is recorded as sent, and a send Graph answered 500 to but
//! Meta delivered is not sent a second time by the redelivery. Counted at the Graph stand-in.

mod common;

use common::*;

/// Meta's status for a message the business sent, carrying what the send was tagged with.
fn status_tagged(tenant: &TenantSummary, wamid: &str, st: &str, tag: Option<&str>) -> Job {
    let mut job = status(tenant, wamid, st);
    if let alphadome::job::JobKind::Status(s) = &mut job.kind {
        s.reply_id = tag.and_then(alphadome::whatsapp::reply_of_tag);
    }
    job
}

/// The reply to `wamid`: its id, status and recorded wamid.
async fn reply(pool: &PgPool, wamid: &str) -> (uuid::Uuid, String, Option<String>) {
    sqlx::query_as(
        "select id, status, wa_message_id from public.conversations
          where in_reply_to = $1 and direction = 'outgoing'",
    )
    .bind(wamid)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The tag of the `n`th send at the stand-in.
async fn tag_of_send(graph: &MockServer, n: usize) -> String {
    let sent = sends(graph).await;
    body(&sent[n])["biz_opaque_callback_data"]
        .as_str()
        .expect("every reply carries its tag")
        .to_owned()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_reply_sent_by_a_worker_that_could_not_record_it_is_recorded_by_metas_status(
    pool: PgPool,
) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    // The write after the send fails (a lost connection): the reply went out, stays `pending`
    // and no wamid is recorded.
    sqlx::raw_sql(
        "create function public.fail_sent() returns trigger language plpgsql as
           $$ begin raise exception 'simulated log failure'; end $$;
         create trigger fail_sent before update on public.conversations for each row
           when (new.status = 'sent') execute function public.fail_sent();",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    let job = message(&w.a, A_PNID, "wamid.tag.1", "What are your opening hours?");
    assert!(w.responder.handle_job(&job).await.is_err());
    sqlx::raw_sql("drop trigger fail_sent on public.conversations")
        .execute(&w.pool)
        .await
        .unwrap();
    let (id, status, wamid) = reply(&w.pool, "wamid.tag.1").await;
    assert_eq!((status.as_str(), wamid), ("pending", None));
    let tag = tag_of_send(&w.graph, 0).await;
    assert_eq!(alphadome::whatsapp::reply_of_tag(&tag), Some(id));

    // Meta's `sent` names the reply: its wamid is recorded and it is sent.
    w.responder
        .handle_job(&status_tagged(&w.a, "wamid.meta.1", "sent", Some(&tag)))
        .await
        .unwrap();
    assert_eq!(
        reply(&w.pool, "wamid.tag.1").await,
        (id, "sent".to_owned(), Some("wamid.meta.1".to_owned()))
    );
    // Later statuses find it by wamid alone.
    w.responder
        .handle_job(&status_tagged(&w.a, "wamid.meta.1", "delivered", None))
        .await
        .unwrap();
    assert_eq!(reply(&w.pool, "wamid.tag.1").await.1, "delivered");
    // The redelivery of the message sends nothing.
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(sends(&w.graph).await.len(), 1);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_send_graph_failed_but_meta_delivered_is_not_sent_again_once_its_status_came(
    pool: PgPool,
) {
    let w = world(pool).await;
    // Graph answers 500 (or times out) although Meta delivers the message.
    Mock::given(method("POST"))
        .respond_with(graph_error(500, 1))
        .mount(&w.graph)
        .await;
    let job = message(&w.a, A_PNID, "wamid.tag.2", "Can I pay with M-Pesa?");
    assert!(w.responder.handle_job(&job).await.is_err(), "retried later");
    let (id, status, _) = reply(&w.pool, "wamid.tag.2").await;
    assert_eq!(status, "retry");
    let tag = tag_of_send(&w.graph, 0).await;
    let attempts = sends(&w.graph).await.len();

    // Meta's status for the delivered message arrives before the redelivery.
    w.responder
        .handle_job(&status_tagged(
            &w.a,
            "wamid.meta.2",
            "delivered",
            Some(&tag),
        ))
        .await
        .unwrap();
    assert_eq!(
        reply(&w.pool, "wamid.tag.2").await,
        (id, "delivered".to_owned(), Some("wamid.meta.2".to_owned()))
    );

    // The redelivery claims the message and finds its reply delivered: nothing is sent.
    w.graph.reset().await;
    accept_sends(&w.graph).await;
    w.responder.handle_job(&job).await.unwrap();
    assert_eq!(
        sends(&w.graph).await.len(),
        0,
        "after {attempts} refused attempt(s)"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_status_naming_another_business_reply_or_one_already_recorded_adopts_nothing(
    pool: PgPool,
) {
    let w = world(pool).await;
    Mock::given(method("POST"))
        .respond_with(graph_error(500, 1))
        .mount(&w.graph)
        .await;
    // Nyota Salon's reply, left `retry` without a wamid.
    let theirs = message_from(&w.b, B_PNID, "wamid.tag.b", "Do you do braids?", CUSTOMER);
    assert!(w.responder.handle_job(&theirs).await.is_err());
    let (b_id, _, _) = reply(&w.pool, "wamid.tag.b").await;
    let b_tag = alphadome::whatsapp::reply_tag(b_id);

    // A status on Kassangas's number naming Nyota's reply: kept, Nyota's row untouched.
    w.responder
        .handle_job(&status_tagged(&w.a, "wamid.meta.x", "sent", Some(&b_tag)))
        .await
        .unwrap();
    assert_eq!(
        reply(&w.pool, "wamid.tag.b").await,
        (b_id, "retry".to_owned(), None)
    );

    // A second wamid naming a reply whose wamid is already recorded changes nothing.
    w.graph.reset().await;
    accept_sends(&w.graph).await;
    let ours = message(&w.a, A_PNID, "wamid.tag.3", "Can I pay with M-Pesa?");
    w.responder.handle_job(&ours).await.unwrap();
    let (a_id, _, recorded) = reply(&w.pool, "wamid.tag.3").await;
    let recorded = recorded.expect("marked");
    w.responder
        .handle_job(&status_tagged(
            &w.a,
            "wamid.meta.other",
            "read",
            Some(&alphadome::whatsapp::reply_tag(a_id)),
        ))
        .await
        .unwrap();
    assert_eq!(
        reply(&w.pool, "wamid.tag.3").await,
        (a_id, "sent".to_owned(), Some(recorded))
    );
}
