//! The responder's warm per-message CPU path, without network: decode the queue job, detect
//! control intents, match the tenant's FAQ (100 entries), decide, and build the reply.
//! Database and Graph time are not in it (see README for round trips per message).
//! Run: `cargo bench -p alphadome --bench responder_path`.

use alphadome::job::{Job, JobKind};
use alphadome::responder::policy::{decide, Decision, Facts};
use alphadome::responder::TenantContext;
use alphadome::store::{EntryRecord, SettingsRecord, TenantContextRecord, TenantRecord};
use criterion::{criterion_group, criterion_main, Criterion};

fn context() -> TenantContext {
    let tenants: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/faq_eval/tenants.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut training = Vec::new();
    for t in tenants.as_array().unwrap() {
        for e in t["entries"].as_array().unwrap() {
            training.push(EntryRecord {
                id: alphadome::domain::EntryId::new(),
                data_type: e["data_type"].as_str().unwrap_or("faq").to_owned(),
                question: e["question"].as_str().unwrap().to_owned(),
                answer: e["answer"].as_str().unwrap().to_owned(),
                category: e["category"].as_str().map(str::to_owned),
                priority: e["priority"].as_i64().unwrap_or(0) as i32,
                phrasings: Vec::new(),
            });
        }
    }
    let mut i = 0;
    while training.len() < 100 {
        i += 1;
        training.push(EntryRecord {
            id: alphadome::domain::EntryId::new(),
            data_type: "faq".into(),
            question: format!("Do you stock model {i} guitar strings?"),
            answer: format!("Yes, model {i} strings are in stock."),
            category: None,
            priority: 0,
            phrasings: Vec::new(),
        });
    }
    training.truncate(100);
    TenantContext::new(TenantContextRecord {
        tenant: TenantRecord {
            id: alphadome::domain::TenantId::new(),
            client_name: "Kassangas Music Shop".into(),
            brand_id: alphadome::domain::BrandId::new(),
            whatsapp_phone_number_id: "110000000001".into(),
            whatsapp_access_token: Some("v1.x".into()),
            ai_api_key: None,
            key_version: 1,
            is_active: true,
            needs_token_refresh: false,
        },
        template: None,
        settings: Some(SettingsRecord::default()),
        training,
    })
}

fn bench(c: &mut Criterion) {
    let ctx = context();
    let bodies: Vec<String> = ["wat tym u open", "mnafungua saa ngapi", "naeza lipa na mpesa", "do you repair keyboards?", "how much is a drum set"]
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::json!({"v": 1, "tenant_id": ctx.record.tenant.id, "phone_number_id": "110000000001", "kind": "message",
                "wa_message_id": format!("wamid.bench.{i}"), "from_wa_id": "254711000111", "timestamp": chrono::Utc::now().timestamp(),
                "message_type": "text", "text": text})
            .to_string()
        })
        .collect();
    let mut n = 0usize;
    c.bench_function(
        "responder warm path (decode+intent+faq+decide), 100 entries",
        |b| {
            b.iter(|| {
                n = (n + 1) % bodies.len();
                let job = Job::from_json(&bodies[n]).unwrap();
                let JobKind::Message(m) = &job.kind else {
                    unreachable!()
                };
                let text = m.text.as_deref();
                let intent = text.and_then(alphadome::intent::detect_control_intent);
                let faq = text.and_then(|t| ctx.match_faq(t));
                let now = chrono::Utc::now();
                let facts = Facts {
                    tenant_active: true,
                    bot_enabled: true,
                    has_token: true,
                    was_subscribed: true,
                    paused_until: None,
                    replies_this_hour: Some(1),
                    max_per_hour: 200,
                    message_time: now,
                    now,
                    text,
                    message_type: &m.message_type,
                    intent,
                    faq,
                    ai_available: true,
                    can_transcribe: false,
                    can_see_pictures: false,
                };
                match decide(&facts) {
                    Decision::Answer(e) => e.answer.len(),
                    _ => 0,
                }
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
