//! `alphadome soak`, CI-sized: 200 signed messages through two `serve` processes (the
//! webhook with a consumer, and a consumer-only one), SQS FIFO on moto (127.0.0.1:5000,
//! `scripts/test-services.sh`) behind the soak's switchable proxy, and the Graph and OpenAI
//! stand-ins, without faults. Every message must be answered exactly once at the Graph
//! stand-in. The run with faults is `scripts/soak.sh` (README, "Faults and soak").

use std::time::{Duration, Instant};

use alphadome_cli::soak::{run, SoakOptions};
use secrecy::SecretString;
use sqlx::PgPool;

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_small_soak_without_faults_answers_every_message_exactly_once(pool: PgPool) {
    let db = pool
        .connect_options()
        .get_database()
        .expect("sqlx::test names its database")
        .to_owned();
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let base = server.split('?').next().unwrap_or_default();
    let (server, _) = base.rsplit_once('/').expect("DATABASE_URL has a database");
    let database_url = SecretString::from(format!("{server}/{db}"));
    // The `serve` processes verify signatures with it; `run` reads it here.
    std::env::set_var("META_APP_SECRET", alphadome::testing::TEST_APP_SECRET);
    let moto = std::env::var("ALPHADOME_TEST_AWS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    let run_dir = std::env::temp_dir().join(format!("alphadome-soak-smoke-{db}"));

    let t = Instant::now();
    let report = run(SoakOptions {
        messages: 200,
        tenants: 4,
        customers_per_tenant: 20,
        rate: 50.0,
        ai_every: 5,
        per_delivery: 10,
        exe: env!("CARGO_BIN_EXE_alphadome").into(),
        database_url,
        moto,
        pg_restart: None,
        run_dir: run_dir.clone(),
        faults: false,
        statuses: true,
        visibility_timeout_s: 45,
        lease_s: 15,
        batch_timeout_s: 30,
        max_receive_count: 5,
        stall_timeout: Duration::from_secs(30),
    })
    .await
    .expect("the soak found no lost or duplicated message");
    let _ = std::fs::remove_dir_all(&run_dir);

    assert_eq!(report.accepted, 200, "{report:?}");
    assert_eq!(report.answered_once, 200, "{report:?}");
    assert_eq!(report.answered_twice_after_graph_timeout, 0, "{report:?}");
    assert_eq!(report.duplicates + report.lost, 0, "{report:?}");
    // Meta's `sent` status of every delivered reply, each accepted by the webhook.
    assert_eq!(
        report.statuses_posted as usize, report.graph_requests,
        "{report:?}"
    );
    assert_eq!(
        report.statuses_accepted, report.statuses_posted,
        "{report:?}"
    );
    // Each found its reply — whether it came before or after the responder recorded the
    // wamid — and none is left waiting.
    let (kept, unsent): (i64, i64) = sqlx::query_as(
        "select (select count(*) from alphadome.pending_statuses),
                (select count(*) from public.conversations
                  where direction = 'outgoing' and (wa_message_id is null or status <> 'sent'))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((kept, unsent), (0, 0), "{report:?}");
    assert_eq!(
        report.ai_answers, 40,
        "every 5th message answered by the AI"
    );
    eprintln!("soak smoke: {:?}", t.elapsed());
}
