//! Each fault of the production path on its own, counted where it lands (requests at the
//! Graph stand-in, jobs on the SQS queue of moto, rows in Postgres): a worker that dies
//! holding a claim, one that outlives its lease, the database going away, Secrets Manager
//! going away, SQS refusing one entry of a batch. The services are cut with proxies the test
//! owns; the machine's Postgres and moto keep running for everyone else.

mod common;

use common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use alphadome::keys::KeyBackend;
use alphadome::responder::BatchRecord;
use alphadome::testing::{moto_sdk, TestApp};
use aws_sdk_sqs::types::QueueAttributeName;

/// A TCP proxy the test can cut. While it is down, open connections are closed and new ones
/// are accepted and closed at once: what a client sees of a server that has gone away.
struct Cut {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cut {
    async fn to(target: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cut = Cut {
            addr: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            open: Arc::default(),
        };
        let (up, open) = (cut.up.clone(), cut.open.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().unwrap().push(relay.abort_handle());
            }
        });
        cut
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for relay in self.open.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A TCP proxy in front of Postgres that, once, lets the call containing `needle` through and
/// then closes the connection without passing on its answer: the call ran and committed, and
/// the client saw the connection fail (what a database restart or a network cut between
/// commit and answer looks like).
struct LoseAnswer {
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
}

impl LoseAnswer {
    async fn to(target: SocketAddr, needle: &'static [u8]) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = LoseAnswer {
            addr: listener.local_addr().unwrap(),
            armed: Arc::new(AtomicBool::new(true)),
        };
        let armed = proxy.armed.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let armed = armed.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
                    let mut lose_next_answer = false;
                    loop {
                        tokio::select! {
                            n = from_client.read(&mut up) => {
                                let n = match n { Ok(0) | Err(_) => break, Ok(n) => n };
                                if up[..n].windows(needle.len()).any(|w| w == needle)
                                    && armed.swap(false, Ordering::SeqCst)
                                {
                                    lose_next_answer = true;
                                }
                                if to_server.write_all(&up[..n]).await.is_err() { break }
                            }
                            n = from_server.read(&mut down) => {
                                let n = match n { Ok(0) | Err(_) => break, Ok(n) => n };
                                // Postgres answers a combined call after its last statement
                                // (the commit): dropped, with both connections.
                                if lose_next_answer { break }
                                if to_client.write_all(&down[..n]).await.is_err() { break }
                            }
                        }
                    }
                });
            }
        });
        proxy
    }
}

/// A responder whose database connections go through a [`LoseAnswer`] proxy for `needle`.
async fn through_lose_answer(
    w: &World,
    pool: &PgPool,
    needle: &'static [u8],
) -> (LoseAnswer, Responder) {
    let postgres: SocketAddr = format!(
        "{}:{}",
        pool.connect_options().get_host(),
        pool.connect_options().get_port()
    )
    .parse()
    .expect("the test database on an IP address");
    let proxy = LoseAnswer::to(postgres, needle).await;
    let database = pool.connect_options().get_database().unwrap().to_owned();
    // In the clear, so the proxy can see which call passes.
    let url = SecretString::from(format!(
        "postgres://postgres@{}/{database}?sslmode=disable",
        proxy.addr
    ));
    let responder = Responder::new(
        Store::connect_lazy(&url, 4).unwrap(),
        w.keys.clone(),
        Outbox::Graph(WhatsAppClient::new(w.graph.uri(), Duration::from_secs(8))),
        OpenAiClient::new(w.openai.uri(), Duration::from_secs(2)),
        Some(SecretString::from(PLATFORM_AI_KEY)),
        ResponderOptions::default(),
    );
    (proxy, responder)
}

fn moto_addr() -> SocketAddr {
    let endpoint = std::env::var("ALPHADOME_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("ALPHADOME_TEST_AWS_ENDPOINT is http://host:port")
}

/// The AWS SDK of the tests, sent through `endpoint` instead of moto's own address.
async fn sdk_via(endpoint: String) -> aws_config::SdkConfig {
    moto_sdk()
        .await
        .into_builder()
        .endpoint_url(endpoint)
        .build()
}

/// A fresh SQS FIFO queue on moto (content-based deduplication off: the jobs carry theirs).
async fn fifo_queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(format!(
            "alphadome-faults-{}.fifo",
            uuid::Uuid::new_v4().simple()
        ))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .expect("moto on 127.0.0.1:5000: run scripts/test-services.sh")
        .queue_url
        .unwrap()
}

/// Everything on the queue, received and deleted, as the records of Lambda's batches.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<BatchRecord> {
    let mut out = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            let group = m.attributes().and_then(|a| {
                a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId)
                    .cloned()
            });
            out.push(BatchRecord {
                message_id: m.message_id().unwrap().to_owned(),
                group_id: group,
                body: m.body().unwrap().to_owned(),
            });
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// One delivery from Meta: a text message from each customer to the number `pnid`.
fn delivery(pnid: &str, messages: &[(&str, &str, &str)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "254700000001", "phone_number_id": pnid},
            "contacts": messages.iter().map(|(_, from, _)| serde_json::json!({"profile": {"name": "Wanjiku"}, "wa_id": from})).collect::<Vec<_>>(),
            "messages": messages.iter().map(|(wamid, from, text)| serde_json::json!({
                "from": from, "id": wamid, "timestamp": chrono::Utc::now().timestamp().to_string(),
                "type": "text", "text": {"body": text}
            })).collect::<Vec<_>>()
        }}]}]
    }))
    .unwrap()
}

/// Meta's POST to the webhook through the router every process serves; the status code.
async fn post_webhook(router: &axum::Router, body: &[u8]) -> u16 {
    use tower::ServiceExt as _;
    let request = axum::http::Request::post("/webhook")
        .header("content-type", "application/json")
        .header("x-hub-signature-256", alphadome::testing::sign(body))
        .body(axum::body::Body::from(body.to_vec()))
        .unwrap();
    router
        .clone()
        .oneshot(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The webhook of one process (its own caches: a cold Lambda) over `pool`, enqueueing to
/// the SQS queue `url` through `sdk`.
fn webhook(pool: PgPool, sdk: aws_config::SdkConfig, url: &str) -> axum::Router {
    let mut t = spawn_app(pool, StandIns::default()).with_sdk(sdk);
    t.app.settings.reply_queue_url = Some(url.to_owned());
    t.app
        .router(t.app.ingress(t.app.sqs_queue().unwrap()), None)
}

async fn inbound_status(pool: &PgPool, wamid: &str) -> Option<String> {
    sqlx::query_scalar(
        "select status from public.conversations where wa_message_id = $1 and direction = 'incoming'",
    )
    .bind(wamid)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// Waits (up to 20 s) until a worker holds the claim of `wamid`.
async fn until_claimed(pool: &PgPool, wamid: &str) {
    for _ in 0..400 {
        if inbound_status(pool, wamid).await.as_deref() == Some("processing") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no worker claimed {wamid}");
}

/// An AI stand-in that answers after `delay` (a slow model, or a worker about to stall).
async fn slow_ai(openai: &MockServer, delay: Duration) {
    Mock::given(method("POST"))
        .respond_with(ai_ok("We deliver pianos across Kenya within a week.").set_delay(delay))
        .mount(openai)
        .await;
}

const NOT_IN_THE_FAQ: &str = "Do you deliver pianos to Mombasa?";

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_claim_held_by_a_dead_worker_is_taken_over_after_the_lease_and_answered_once(
    pool: PgPool,
) {
    let w = world_with(
        pool,
        ResponderOptions {
            ai_deadline: Duration::from_secs(15),
            lease_seconds: 3,
            ..Default::default()
        },
    )
    .await;
    accept_sends(&w.graph).await;
    // The first AI call hangs: the worker making it dies there (a Lambda killed at its
    // timeout, a crashed process) with the message claimed and nothing recorded.
    Mock::given(method("POST"))
        .respond_with(ai_ok("never").set_delay(Duration::from_secs(60)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&w.openai)
        .await;
    slow_ai(&w.openai, Duration::ZERO).await;
    let job = message(&w.a, A_PNID, "wamid.lease.dead", NOT_IN_THE_FAQ);
    let dead = tokio::spawn({
        let (responder, job) = (w.responder.clone(), job.clone());
        async move { responder.handle_job(&job).await }
    });
    until_claimed(&w.pool, "wamid.lease.dead").await;
    while w
        .openai
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dead.abort();
    assert!(dead.await.unwrap_err().is_cancelled());

    // Within the lease the claim keeps a redelivery away: nothing is sent.
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Duplicate
    );
    assert!(sends(&w.graph).await.is_empty());

    // After it, the next delivery takes the claim over and answers; later ones are duplicates.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Replied(vec!["ai"])
    );
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(sends(&w.graph).await.len(), 1, "answered exactly once");
    assert_eq!(
        inbound_status(&w.pool, "wamid.lease.dead").await.as_deref(),
        Some("answered")
    );
}

/// The guard of `record_outcome` (migrations/0012_usage.sql): a reply an earlier attempt
/// recorded as `pending` may have reached the customer, so it is never sent again; only one
/// given back as `retry` is. A plain redelivery never reaches that guard (the message is
/// already answered, so the claim refuses it); a worker that outlived its lease does.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_pending_reply_whose_log_write_failed_is_not_sent_again_by_the_worker_that_took_over_the_lease(
    pool: PgPool,
) {
    let w = world_with(
        pool,
        ResponderOptions {
            ai_deadline: Duration::from_secs(15),
            lease_seconds: 2,
            ..Default::default()
        },
    )
    .await;
    accept_sends(&w.graph).await;
    // Every AI answer takes 4 s: the first worker is still waiting when its lease runs out.
    slow_ai(&w.openai, Duration::from_secs(4)).await;
    // The write after each send fails, as a lost connection would: the reply the first
    // recorder sends stays `pending` (it went out, but nothing says so).
    sqlx::raw_sql(
        "create function public.fail_sent() returns trigger language plpgsql as
           $$ begin raise exception 'simulated log failure'; end $$;
         create trigger fail_sent before update on public.conversations for each row
           when (new.status = 'sent') execute function public.fail_sent();",
    )
    .execute(&w.pool)
    .await
    .unwrap();
    let job = message(&w.a, A_PNID, "wamid.lease.slow", NOT_IN_THE_FAQ);
    let first = tokio::spawn({
        let (responder, job) = (w.responder.clone(), job.clone());
        async move { responder.handle_job(&job).await }
    });
    until_claimed(&w.pool, "wamid.lease.slow").await;
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    // SQS redelivers after the visibility timeout; the lease has run out, so this worker
    // claims the message while the first one still waits for the AI.
    let second = w.responder.handle_job(&job).await;
    let first = first.await.unwrap();
    // Whichever recorded second found the other's reply `pending` and did not send it.
    assert_eq!(
        sends(&w.graph).await.len(),
        1,
        "one reply, whatever the order: {first:?} / {second:?}"
    );
    let replies: Vec<(String,)> = sqlx::query_as(
        "select status from public.conversations where in_reply_to = 'wamid.lease.slow'",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    assert_eq!(replies, vec![("pending".to_owned(),)]);
    // Later redeliveries find the message answered.
    sqlx::raw_sql("drop trigger fail_sent on public.conversations")
        .execute(&w.pool)
        .await
        .unwrap();
    assert_eq!(
        w.responder.handle_job(&job).await.unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(sends(&w.graph).await.len(), 1);
}

/// The record of the replies committed, but its answer never came back (the connection
/// failed between the commit and the answer). The responder sent nothing, so it gives the
/// `pending` replies back (migrations/0026_unsent_replies_given_back.sql): the redelivery
/// claims the message again and sends the same reply, once. Before, the redelivery found the
/// message answered and the customer never got a reply. (An AI answer: an FAQ answer is
/// recorded with the claim, see the next test.)
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_record_whose_answer_was_lost_after_its_commit_is_given_back_and_the_redelivery_answers_once(
    pool: PgPool,
) {
    let w = world(pool.clone()).await;
    accept_sends(&w.graph).await;
    let (proxy, responder) =
        through_lose_answer(&w, &pool, b"alphadome.record_replies_batch(").await;
    slow_ai(&w.openai, Duration::ZERO).await;
    let job = message(&w.a, A_PNID, "wamid.lost.answer", NOT_IN_THE_FAQ);

    let first = responder.handle_job(&job).await;
    assert!(first.is_err(), "the record call failed: {first:?}");
    assert!(
        !proxy.armed.load(Ordering::SeqCst),
        "the record call went through"
    );
    assert!(sends(&w.graph).await.is_empty());
    // The record had committed; what it recorded is given back for the redelivery.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select direction, status from public.conversations
          where wa_message_id = 'wamid.lost.answer' or in_reply_to = 'wamid.lost.answer'
          order by direction desc",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("outgoing".to_owned(), "retry".to_owned()),
            ("incoming".to_owned(), "retry".to_owned())
        ]
    );

    // SQS redelivers: answered, once; later redeliveries change nothing.
    assert!(matches!(
        responder.handle_job(&job).await,
        Ok(Outcome::Replied(_))
    ));
    assert_eq!(
        responder.handle_job(&job).await.unwrap(),
        Outcome::Duplicate
    );
    let per = replies_per_message(&w.graph).await;
    assert_eq!(per.get("wamid.lost.answer"), Some(&1), "{per:?}");
    assert_eq!(sends(&w.graph).await.len(), 1);
}

/// The same with an FAQ answer in the batch, recorded with its claim: the lost record gives
/// it back too, and the redelivery answers both messages once.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_lost_record_gives_back_the_answers_recorded_with_the_claims_of_its_batch(pool: PgPool) {
    let w = world(pool.clone()).await;
    accept_sends(&w.graph).await;
    let (proxy, responder) =
        through_lose_answer(&w, &pool, b"alphadome.record_replies_batch(").await;
    let jobs = [
        message_from(
            &w.a,
            A_PNID,
            "wamid.lost.faq",
            "Can I pay with M-Pesa?",
            "254711000221",
        ),
        message_from(
            &w.a,
            A_PNID,
            "wamid.lost.human",
            "nataka kuongea na mtu tafadhali",
            "254711000222",
        ),
    ];

    let first = responder.handle_jobs(&jobs).await;
    assert!(
        first.iter().all(Result::is_err),
        "both are redelivered: {first:?}"
    );
    assert!(
        !proxy.armed.load(Ordering::SeqCst),
        "the record call went through"
    );
    assert!(sends(&w.graph).await.is_empty());
    for wamid in ["wamid.lost.faq", "wamid.lost.human"] {
        assert_eq!(
            inbound_status(&w.pool, wamid).await.as_deref(),
            Some("retry"),
            "{wamid}"
        );
    }

    let again = responder.handle_jobs(&jobs).await;
    assert!(
        again.iter().all(|r| matches!(r, Ok(Outcome::Replied(_)))),
        "{again:?}"
    );
    let per = replies_per_message(&w.graph).await;
    assert_eq!(per.get("wamid.lost.faq"), Some(&1), "{per:?}");
    assert_eq!(per.get("wamid.lost.human"), Some(&1), "{per:?}");
}

/// The claim committed but its answer was lost: the attempt gives its claim back, so the
/// redelivery answers at once instead of after the lease (2 minutes by default). The FAQ
/// answer was recorded with the claim (migrations/0030_claim_and_record_foreseen.sql): its
/// `pending` reply is given back too, and sent once by the redelivery.
#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_claim_whose_answer_was_lost_is_given_back_and_the_redelivery_answers_without_waiting_out_the_lease(
    pool: PgPool,
) {
    let w = world(pool.clone()).await;
    accept_sends(&w.graph).await;
    let (proxy, responder) =
        through_lose_answer(&w, &pool, b"alphadome.begin_inbound_batch(").await;
    let job = message(&w.a, A_PNID, "wamid.lost.claim", "Can I pay with M-Pesa?");

    let first = responder.handle_job(&job).await;
    assert!(first.is_err(), "the claim call failed: {first:?}");
    assert!(
        !proxy.armed.load(Ordering::SeqCst),
        "the claim call went through"
    );
    assert_eq!(
        inbound_status(&w.pool, "wamid.lost.claim").await.as_deref(),
        Some("retry")
    );
    let reply: Vec<(String,)> = sqlx::query_as(
        "select status from public.conversations where in_reply_to = 'wamid.lost.claim'",
    )
    .fetch_all(&w.pool)
    .await
    .unwrap();
    assert_eq!(
        reply,
        vec![("retry".to_owned(),)],
        "recorded with the claim, given back"
    );
    assert!(sends(&w.graph).await.is_empty());
    assert!(matches!(
        responder.handle_job(&job).await,
        Ok(Outcome::Replied(_))
    ));
    assert_eq!(
        replies_per_message(&w.graph).await.get("wamid.lost.claim"),
        Some(&1)
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn while_the_database_is_down_the_webhook_answers_500_and_the_responder_retries_then_everything_is_answered_once(
    pool: PgPool,
) {
    let w = world(pool.clone()).await;
    accept_sends(&w.graph).await;
    let postgres: SocketAddr = format!(
        "{}:{}",
        pool.connect_options().get_host(),
        pool.connect_options().get_port()
    )
    .parse()
    .expect("the test database on an IP address");
    let cut = Cut::to(postgres).await;
    let database = pool.connect_options().get_database().unwrap().to_owned();
    // The processes' pools, with the production options, reach Postgres through the proxy.
    let url = SecretString::from(format!("postgres://postgres@{}/{database}", cut.addr));
    let store = Store::connect_lazy(&url, 4).unwrap();
    let responder = Responder::new(
        store.clone(),
        w.keys.clone(),
        Outbox::Graph(WhatsAppClient::new(w.graph.uri(), Duration::from_secs(8))),
        OpenAiClient::new(w.openai.uri(), Duration::from_secs(2)),
        Some(SecretString::from(PLATFORM_AI_KEY)),
        ResponderOptions::default(),
    );
    let sdk = moto_sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue = fifo_queue(&sqs).await;
    let faq = "Can I pay with M-Pesa?";
    let before: Vec<(String, String)> = (1..=3)
        .map(|i| (format!("wamid.db.before.{i}"), format!("25471100100{i}")))
        .collect();
    let during: Vec<(String, String)> = (1..=3)
        .map(|i| (format!("wamid.db.during.{i}"), format!("25471100200{i}")))
        .collect();
    let as_messages = |m: &[(String, String)]| -> Vec<u8> {
        let m: Vec<(&str, &str, &str)> = m
            .iter()
            .map(|(w, c)| (w.as_str(), c.as_str(), faq))
            .collect();
        delivery(A_PNID, &m)
    };

    // Before the outage: three messages are on the queue.
    let warm = webhook(store.pool().clone(), sdk.clone(), &queue);
    assert_eq!(post_webhook(&warm, &as_messages(&before)).await, 200);
    let queued_before = drain(&sqs, &queue).await;
    assert_eq!(queued_before.len(), 3);

    cut.down();
    // A webhook that has not seen the number yet cannot route: 500, so Meta retries; nothing
    // is enqueued.
    let cold = webhook(store.pool().clone(), sdk.clone(), &queue);
    assert_eq!(post_webhook(&cold, &as_messages(&during)).await, 500);
    assert!(drain(&sqs, &queue).await.is_empty());
    // The responder reports every record failed (SQS redelivers them); nothing is sent.
    let failed = responder.handle_batch(queued_before.clone()).await;
    assert_eq!(failed.len(), 3, "every record is retried");
    assert!(sends(&w.graph).await.is_empty());

    cut.up();
    // Meta retries the delivery, SQS redelivers the records: all answered, once each.
    assert_eq!(post_webhook(&cold, &as_messages(&during)).await, 200);
    let queued_after = drain(&sqs, &queue).await;
    assert_eq!(queued_after.len(), 3);
    assert!(responder
        .handle_batch(queued_before.clone())
        .await
        .is_empty());
    assert!(responder
        .handle_batch(queued_after.clone())
        .await
        .is_empty());
    // More redeliveries and a second retry from Meta change nothing. (SQS drops that
    // retry's jobs for 5 minutes; moto forgets deleted messages and enqueues them again, so
    // here they reach the responder, whose claim is the guard that outlives the window.)
    assert_eq!(post_webhook(&cold, &as_messages(&during)).await, 200);
    let late = drain(&sqs, &queue).await;
    let again: Vec<BatchRecord> = queued_before
        .into_iter()
        .chain(queued_after)
        .chain(late)
        .collect();
    assert!(responder.handle_batch(again).await.is_empty());
    let per = replies_per_message(&w.graph).await;
    let expected: Vec<&String> = before.iter().chain(&during).map(|(w, _)| w).collect();
    assert_eq!(per.len(), 6, "{per:?}");
    for wamid in expected {
        assert_eq!(per.get(wamid), Some(&1), "{wamid} answered once: {per:?}");
    }
    assert_eq!(sends(&w.graph).await.len(), 6);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn while_secrets_manager_is_unreachable_replies_wait_and_go_out_once_it_is_back_and_the_tenant_is_not_flagged(
    pool: PgPool,
) {
    let w = world(pool.clone()).await;
    accept_sends(&w.graph).await;
    slow_ai(&w.openai, Duration::ZERO).await;
    // A business whose data key lives in Secrets Manager behind a proxy the test cuts.
    let cut = Cut::to(moto_addr()).await;
    let backend = KeyBackend::SecretsManager {
        client: aws_sdk_secretsmanager::Client::new(&sdk_via(format!("http://{}", cut.addr)).await),
        prefix: format!("alphadome-faults/{}/", uuid::Uuid::new_v4()),
    };
    let t: TestApp = spawn_app(
        pool.clone(),
        StandIns {
            graph: Some(w.graph.uri()),
            openai: Some(w.openai.uri()),
            platform_ai_key: Some(PLATFORM_AI_KEY.to_owned()),
        },
    )
    .with_keys(KeyProvider::new(backend.clone(), Duration::from_secs(60)));
    let shop = t
        .onboard(TestTenant {
            name: "Duka la Muziki",
            phone: "254722000333",
            phone_number_id: "110000000003",
            token: Some("EAAGtokenDukaSECRET"),
            ai_key: Some("sk-test-duka-OWN-key-SECRET"),
            escalation_phone: Some("254722000333"),
            max_messages_per_hour: Some(50),
        })
        .await;
    w.store
        .import_entries(
            shop.id,
            &[entry("Can I pay with M-Pesa?", "Yes, Till 654321.", "faq")],
        )
        .await
        .unwrap();
    // A process that has not read the key yet (a cold Lambda).
    let t = t.with_keys(KeyProvider::new(backend, Duration::from_secs(60)));
    let responder = t.app.responder_with(
        Outbox::Graph(t.app.whatsapp()),
        ResponderOptions {
            ai_deadline: Duration::from_secs(3),
            ..Default::default()
        },
    );
    let jobs = [
        message_from(
            &shop,
            "110000000003",
            "wamid.sm.faq",
            "Can I pay with M-Pesa?",
            "254711000301",
        ),
        message_from(
            &shop,
            "110000000003",
            "wamid.sm.ai",
            NOT_IN_THE_FAQ,
            "254711000302",
        ),
    ];
    let records: Vec<BatchRecord> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| BatchRecord {
            message_id: format!("m{i}"),
            group_id: Some(j.group_id()),
            body: j.to_json(),
        })
        .collect();

    cut.down();
    let failed = responder.handle_batch(records.clone()).await;
    assert_eq!(
        failed,
        vec!["m0".to_owned(), "m1".to_owned()],
        "both retried"
    );
    assert!(sends(&w.graph).await.is_empty());
    let (attention, needs_token): (Option<String>, bool) = sqlx::query_as(
        "select attention, needs_token_refresh from alphadome.bot_tenants where id = $1",
    )
    .bind(shop.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (attention, needs_token),
        (None, false),
        "a transient fault flags nothing"
    );
    let failed_rows: i64 = sqlx::query_scalar(
        "select count(*) from public.conversations where bot_tenant_id = $1 and status = 'failed'",
    )
    .bind(shop.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(failed_rows, 0, "nothing recorded as failed for good");

    cut.up();
    assert!(responder.handle_batch(records.clone()).await.is_empty());
    assert!(responder.handle_batch(records).await.is_empty());
    let sent = sends(&w.graph).await;
    let mut to: Vec<String> = sent
        .iter()
        .map(|r| body(r)["to"].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(
        to,
        vec!["254711000301".to_owned(), "254711000302".to_owned()],
        "each customer answered once, nobody handed over"
    );
    assert!(
        sent.iter().any(|r| body(r)["text"]["body"]
            .as_str()
            .unwrap()
            .contains("pianos across Kenya")),
        "the AI answered"
    );
    let attention: Option<String> =
        sqlx::query_scalar("select attention from alphadome.bot_tenants where id = $1")
            .bind(shop.id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attention, None);
}

/// An HTTP stand-in in front of moto that makes SQS refuse one entry of the next
/// `SendMessageBatch`, as SQS does (`Failed` in a 200 answer): the entry is taken out of the
/// request moto receives and reported failed in the answer the SDK reads.
struct RefuseOneEntry {
    moto: String,
    http: reqwest::Client,
    armed: AtomicBool,
}

async fn refuse_one_entry(
    axum::extract::State(s): axum::extract::State<Arc<RefuseOneEntry>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let mut body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
    let batch = parts
        .headers
        .get("x-amz-target")
        .is_some_and(|t| t.as_bytes().ends_with(b".SendMessageBatch"));
    let mut refused = None;
    if batch && s.armed.swap(false, Ordering::SeqCst) {
        let mut doc: serde_json::Value =
            serde_json::from_slice(&body).expect("the SDK speaks SQS's JSON protocol");
        let entries = doc["Entries"].as_array_mut().unwrap();
        refused = Some(entries.remove(1)["Id"].clone());
        body = serde_json::to_vec(&doc).unwrap();
    }
    let mut forward = s
        .http
        .post(format!("{}{}", s.moto, parts.uri.path()))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let answer = forward.send().await.unwrap();
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let mut bytes = answer.bytes().await.unwrap().to_vec();
    if let Some(id) = refused {
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let failed = doc
            .as_object_mut()
            .unwrap()
            .entry("Failed")
            .or_insert(serde_json::json!([]));
        failed.as_array_mut().unwrap().push(serde_json::json!({
            "Id": id, "SenderFault": false, "Code": "InternalError",
            "Message": "We encountered an internal error. Please try again."
        }));
        bytes = serde_json::to_vec(&doc).unwrap();
    }
    let mut response = axum::response::Response::new(axum::body::Body::from(bytes));
    *response.status_mut() = axum::http::StatusCode::from_u16(status.as_u16()).unwrap();
    if let Some(ct) = content_type {
        response.headers_mut().insert(
            "content-type",
            axum::http::HeaderValue::from_bytes(ct.as_bytes()).unwrap(),
        );
    }
    response
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_batch_sqs_partly_refuses_is_500_and_meta_retry_enqueues_only_duplicates_sqs_drops(
    pool: PgPool,
) {
    let w = world(pool.clone()).await;
    accept_sends(&w.graph).await;
    let refuser = Arc::new(RefuseOneEntry {
        moto: format!("http://{}", moto_addr()),
        http: reqwest::Client::new(),
        armed: AtomicBool::new(true),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(refuse_one_entry)
        .with_state(refuser.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sdk = sdk_via(format!("http://{proxy}")).await;
    let sqs = aws_sdk_sqs::Client::new(&moto_sdk().await);
    let queue = fifo_queue(&sqs).await;
    let router = webhook(pool.clone(), sdk, &queue);
    let body = delivery(
        A_PNID,
        &[
            ("wamid.sqs.1", "254711000401", "Can I pay with M-Pesa?"),
            ("wamid.sqs.2", "254711000402", "Can I pay with M-Pesa?"),
            ("wamid.sqs.3", "254711000403", "Can I pay with M-Pesa?"),
        ],
    );

    // SQS takes two of the three jobs and refuses one: the webhook answers 500.
    assert_eq!(post_webhook(&router, &body).await, 500);
    assert!(
        !refuser.armed.load(Ordering::SeqCst),
        "the batch went through the proxy"
    );
    // Meta retries the whole delivery; SQS drops the two it already holds (same dedup id).
    assert_eq!(post_webhook(&router, &body).await, 200);
    let queued = drain(&sqs, &queue).await;
    let mut wamids: Vec<String> = queued
        .iter()
        .map(|r| Job::from_json(&r.body).unwrap().wa_message_id().to_owned())
        .collect();
    wamids.sort();
    assert_eq!(wamids, ["wamid.sqs.1", "wamid.sqs.2", "wamid.sqs.3"]);
    // And the responder answers each once.
    assert!(w.responder.handle_batch(queued).await.is_empty());
    let per = replies_per_message(&w.graph).await;
    assert_eq!(
        per.into_iter().collect::<Vec<_>>(),
        [
            ("wamid.sqs.1".to_owned(), 1),
            ("wamid.sqs.2".to_owned(), 1),
            ("wamid.sqs.3".to_owned(), 1)
        ]
    );
}
