//! What the responder logs at `info` per FAQ-answered message, in the functions' JSON format:
//! a few short lines (logs are billed per GB ingested; scripts/cost.py uses this figure).

mod common;

use common::*;
use tracing::instrument::WithSubscriber;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_faq_answer_logs_a_few_short_lines_at_info(pool: PgPool) {
    let w = world(pool).await;
    accept_sends(&w.graph).await;
    let invoke = |i: usize| {
        let job = message_from(
            &w.a,
            A_PNID,
            &format!("wamid.logvol.{i}"),
            "What are your opening hours?",
            &format!("2547110003{i:02}"),
        );
        let r = &w.responder;
        async move {
            responder::handle(
                r,
                lambda_runtime::LambdaEvent::new(sqs_event(&[job]), Default::default()),
            )
            .await
            .unwrap()
        }
    };
    // A warm function: the tenant's context is loaded by the first message.
    assert!(invoke(0).await.batch_item_failures.is_empty());
    let logs = Captured::default();
    let writer = logs.clone();
    let dispatch = tracing::Dispatch::new(alphadome::telemetry::json_subscriber(
        "info,sqlx=warn",
        move || writer.clone(),
    ));
    let n = 10;
    for i in 1..=n {
        let out = invoke(i).with_subscriber(dispatch.clone()).await;
        assert!(out.batch_item_failures.is_empty());
    }
    assert_eq!(sends(&w.graph).await.len(), n + 1, "every message answered");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let (bytes, lines) = (text.len() / n, text.lines().count() as f64 / n as f64);
    // The figure scripts/cost.py uses (RESPONDER_LOG_BYTES_MESSAGE); --nocapture shows it.
    eprintln!("responder log at info per FAQ answer: {bytes} bytes in {lines} lines");
    assert!(lines <= 2.0, "{text}");
    assert!(bytes <= 500, "{text}");
}
