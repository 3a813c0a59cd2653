//! Hand-overs that arrive: the owner's notice goes as free text, and when Graph refuses it
//! because the owner's 24-hour window is closed (131047) it goes again as the tenant's
//! approved template. Its own test binary, so one global subscriber sees the log lines.

mod common;

use common::*;
use std::sync::OnceLock;

/// Every log line of this binary (the subscriber is global, so set once).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let logs = logs.clone();
            move || LogWriter(logs.clone())
        };
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(writer)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Tenant A with the AI off (so an unanswered question is handed over) and Graph refusing
/// free text to the owner as outside their window; everything else is accepted.
async fn owner_window_closed(pool: PgPool) -> World {
    let w = world(pool).await;
    sqlx::query("update alphadome.bot_control_settings set enable_ai_responses = false where bot_tenant_id = $1")
        .bind(w.a.id)
        .execute(&w.pool)
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(body_string_contains(format!("\"to\":\"{OWNER}\"").as_str()))
        // A text message (a template's parameters are typed "text" too).
        .and(body_string_contains("\"preview_url\""))
        .respond_with(graph_error(400, 131047))
        .with_priority(1)
        .mount(&w.graph)
        .await;
    accept_sends(&w.graph).await;
    w
}

async fn escalation_row(pool: &PgPool, wamid: &str) -> (String, Option<i32>) {
    sqlx::query_as(
        "select status, error_code from public.conversations
          where in_reply_to = $1 and reply_source = 'escalation'",
    )
    .bind(wamid)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_notice_refused_outside_the_owners_window_is_sent_again_as_the_tenants_template(
    pool: PgPool,
) {
    let _ = logs();
    let w = owner_window_closed(pool).await;
    w.store
        .set_escalation_template(w.a.id, Some(("handover_notice", "en")))
        .await
        .unwrap();
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.tpl1",
            "Do you buy second-hand\npianos?",
        ))
        .await
        .unwrap();
    assert_eq!(out, Outcome::Replied(vec!["fallback", "escalation"]));

    let sent = sends(&w.graph).await;
    assert_eq!(sent.len(), 3, "customer reply, refused notice, template");
    assert_eq!(body(&sent[0])["to"], CUSTOMER);
    assert_eq!(body(&sent[1])["type"], "text");
    let tpl = body(&sent[2]);
    assert_eq!(sent[2].url.path(), format!("/{A_PNID}/messages"));
    assert_eq!(
        sent[2].headers["authorization"],
        format!("Bearer {A_TOKEN}").as_str()
    );
    assert_eq!(tpl["type"], "template");
    assert_eq!(tpl["to"], OWNER);
    assert_eq!(tpl["template"]["name"], "handover_notice");
    assert_eq!(tpl["template"]["language"]["code"], "en");
    // The template is the notice's reply row, tagged as the refused text was: Meta's statuses
    // of either name the same row.
    assert_eq!(
        tpl["biz_opaque_callback_data"],
        body(&sent[1])["biz_opaque_callback_data"]
    );
    assert!(tpl["biz_opaque_callback_data"]
        .as_str()
        .and_then(alphadome::whatsapp::reply_of_tag)
        .is_some());
    assert_eq!(
        tpl["template"]["components"],
        serde_json::json!([{"type": "body", "parameters": [
            {"type": "text", "text": "Kassangas Music Shop"},
            {"type": "text", "text": format!("Wanjiku (+{CUSTOMER})")},
            {"type": "text", "text": "Do you buy second-hand pianos?"},
        ]}])
    );
    assert_eq!(
        escalation_row(&w.pool, "wamid.tpl1").await,
        ("sent".to_owned(), None)
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn without_a_template_a_refused_notice_is_logged_and_the_customers_reply_is_unaffected(
    pool: PgPool,
) {
    let logs = logs();
    let w = owner_window_closed(pool).await;
    let out = w
        .responder
        .handle_job(&message(
            &w.a,
            A_PNID,
            "wamid.tpl2",
            "Do you buy second-hand pianos?",
        ))
        .await
        .unwrap();
    assert_eq!(
        out,
        Outcome::Replied(vec!["fallback"]),
        "the customer was answered"
    );
    let sent = sends(&w.graph).await;
    assert_eq!(sent.len(), 2, "no template without one configured");
    assert_eq!(body(&sent[0])["to"], CUSTOMER);
    assert!(sent.iter().all(|r| body(r)["type"] == "text"));
    assert_eq!(
        escalation_row(&w.pool, "wamid.tpl2").await,
        ("failed".to_owned(), Some(131047))
    );
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("has no escalation template"),
        "the operator can see why the owner was not told"
    );
    // `tenant show` then warns about it.
    let t = w.store.tenant_summary(w.a.id).await.unwrap();
    assert!(t.has_escalation_phone && t.escalation_template_name.is_none());
}
