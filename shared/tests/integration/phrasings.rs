//! Phrasings (several ways of asking one entry's question): loaded with the tenant's context
//! in its one round trip, used by the responder's FAQ match, kept to their own tenant, and
//! written by `faq expand` from the model's answer (the OpenAI stand-in).

use std::sync::Arc;

use alphadome::app::App;
use alphadome::config::{PlatformSecrets, Settings};
use alphadome::domain::TenantId;
use alphadome::responder::Outbox;
use alphadome::store::{NewTemplate, PhrasingSource, Store};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;
use wiremock::matchers::{body_partial_json, body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{entry, local_keys, new_tenant};

/// The app over `pool`, its AI calls going to `openai` (if any).
fn spawn_app(pool: PgPool, openai: Option<String>, platform_key: Option<&str>) -> App {
    let settings = Settings::from_lookup(|k| match k {
        "OPENAI_BASE_URL" => openai.clone(),
        _ => None,
    })
    .unwrap();
    let secrets = PlatformSecrets {
        openai_api_key: platform_key.map(|k| SecretString::from(k.to_owned())),
        ..Default::default()
    };
    App::from_parts(settings, secrets, Store::from_pool(pool), local_keys())
}

/// A message no question of the shop says in any way the matcher knows.
const NEW_WAY: &str = "ile ya nyuzi sita";

async fn shop(app: &App, name: &str, pnid: &str, ai_key: Option<&str>) -> TenantId {
    let phone = format!("254700{pnid:0>6.6}");
    let mut new = new_tenant(name, &phone, pnid, "test-token");
    new.ai_api_key = ai_key.map(|k| SecretString::from(k.to_owned()));
    let t = app.store.create_tenant(&app.keys, new).await.unwrap();
    app.store
        .import_entries(
            t.id,
            &[
                entry("How much is a guitar?", "From KES 8,500."),
                entry("What are your opening hours?", "Mon-Sat 9-6."),
                entry("Do you deliver?", "Yes, within Nairobi."),
            ],
        )
        .await
        .unwrap();
    t.id
}

async fn entry_id(app: &App, tenant: TenantId, question: &str) -> alphadome::domain::EntryId {
    let rows = app.store.list_entries(tenant).await.unwrap();
    rows.into_iter()
        .find(|e| e.question == question)
        .unwrap()
        .id
}

/// What the responder's dry run answers (a fresh context each time).
async fn ask(app: &App, tenant: TenantId, text: &str) -> (&'static str, Option<String>) {
    let responder = app.responder(Outbox::DryRun(Arc::new(|_| {})));
    let a = responder.ask(tenant, text).await.unwrap();
    (a.source, a.question)
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_phrasing_makes_the_responder_answer_a_message_it_did_not_answer_before_and_only_for_its_tenant(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone(), None, None);
    let a = shop(&app, "Shop A", "111111111", None).await;
    let b = shop(&app, "Shop B", "222222222", None).await;
    assert_ne!(ask(&app, a, NEW_WAY).await.0, "faq");
    assert_ne!(ask(&app, b, NEW_WAY).await.0, "faq");

    // Another tenant's phrasing, on its own copy of the same question, changes nothing here.
    let b_guitar = entry_id(&app, b, "How much is a guitar?").await;
    let added = app
        .store
        .add_phrasings(b, b_guitar, &[NEW_WAY.to_string()], PhrasingSource::Owner)
        .await
        .unwrap();
    assert_eq!(added, [NEW_WAY]);
    assert_eq!(
        ask(&app, b, NEW_WAY).await,
        ("faq", Some("How much is a guitar?".into()))
    );
    assert_ne!(ask(&app, a, NEW_WAY).await.0, "faq");

    let a_guitar = entry_id(&app, a, "How much is a guitar?").await;
    app.store
        .add_phrasings(
            a,
            a_guitar,
            &[NEW_WAY.to_uppercase()],
            PhrasingSource::Owner,
        )
        .await
        .unwrap();
    assert_eq!(
        ask(&app, a, NEW_WAY).await,
        ("faq", Some("How much is a guitar?".into()))
    );
    // The question's own words still answer, and the context holds each entry's phrasings.
    assert_eq!(ask(&app, a, "What are your opening hours?").await.0, "faq");
    let ctx = app.store.load_tenant_context(a).await.unwrap().unwrap();
    let with: Vec<_> = ctx
        .training
        .iter()
        .filter(|e| !e.phrasings.is_empty())
        .collect();
    assert_eq!(with.len(), 1);
    assert_eq!(with[0].phrasings, [NEW_WAY.to_uppercase()]);

    // The same phrasing again, in another case, is not added twice.
    let again = app
        .store
        .add_phrasings(a, a_guitar, &[NEW_WAY.to_string()], PhrasingSource::Owner)
        .await
        .unwrap();
    assert!(again.is_empty());
    let listed = app.store.list_entries(a).await.unwrap();
    let guitar = listed.iter().find(|e| e.id == a_guitar).unwrap();
    assert_eq!((guitar.phrasings, guitar.generated_phrasings), (1, 0));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_import_adds_the_files_phrasings_once_and_keeps_them_on_reimport(pool: PgPool) {
    let app = spawn_app(pool.clone(), None, None);
    let a = shop(&app, "Shop A", "111111111", None).await;
    let file = alphadome::knowledge_file::parse_csv_file(&format!(
        "question,answer,phrasings\nHow much is a guitar?,From KES 8500,{NEW_WAY}|bei ya gitaa\n\
         Do you sell drums?,Yes,\n"
    ))
    .unwrap();
    let out = app
        .store
        .import_entries_with_phrasings(a, &file.entries, &file.phrasings)
        .await
        .unwrap();
    assert_eq!((out.inserted, out.updated, out.phrasings_added), (1, 1, 2));
    let again = app
        .store
        .import_entries_with_phrasings(a, &file.entries, &file.phrasings)
        .await
        .unwrap();
    assert_eq!(again.phrasings_added, 0);
    assert_eq!(
        ask(&app, a, NEW_WAY).await,
        ("faq", Some("How much is a guitar?".into()))
    );
}

fn completion(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}
    }))
}

async fn generated(pool: &PgPool, tenant: TenantId) -> Vec<(String, String)> {
    sqlx::query_as(
        "select d.question, p.phrasing from alphadome.bot_training_phrasings p
           join alphadome.bot_training_data d on d.id = p.training_data_id
          where p.bot_tenant_id = $1 and p.source = 'generated'
          order by d.question, p.phrasing",
    )
    .bind(tenant.0)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn faq_expand_stores_the_models_phrasings_with_the_tenants_key_and_model_and_skips_a_malformed_answer(
    pool: PgPool,
) {
    let openai = MockServer::start().await;
    let app = spawn_app(pool.clone(), Some(openai.uri()), Some("sk-platform"));
    let a = shop(&app, "Shop A", "111111111", Some("sk-tenant-a")).await;
    app.store
        .set_template(
            a,
            &NewTemplate {
                name: "main".into(),
                system_prompt: "You are Shop A.".into(),
                tone: None,
                model: Some("gpt-shop-a".into()),
                is_default: true,
            },
        )
        .await
        .unwrap();
    // Only the tenant's key and model are answered; anything else gets a 500 (and fails).
    let tenant_call = || {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .and(header("authorization", "Bearer sk-tenant-a"))
            .and(body_partial_json(json!({"model": "gpt-shop-a"})))
    };
    tenant_call()
        .and(body_string_contains("How much is a guitar?"))
        .respond_with(completion(
            r#"{"phrasings": ["bei ya gitaa", "hw much guitar", "How much is a guitar?", "ile ya nyuzi sita", "BEI YA GITAA"]}"#,
        ))
        .mount(&openai)
        .await;
    tenant_call()
        .and(body_string_contains("Do you deliver?"))
        .respond_with(completion("Sure! Here are some ways: mnadeliver?"))
        .mount(&openai)
        .await;
    tenant_call()
        .and(body_string_contains("opening hours"))
        .respond_with(completion(r#"{"phrasings": ["mnafungua saa ngapi"]}"#))
        .mount(&openai)
        .await;

    let dry = alphadome::phrasings::expand_phrasings(&app, a, true)
        .await
        .unwrap();
    assert_eq!((dry.added, dry.skipped), (4, 1));
    assert!(
        generated(&pool, a).await.is_empty(),
        "a dry run stores nothing"
    );

    let report = alphadome::phrasings::expand_phrasings(&app, a, false)
        .await
        .unwrap();
    assert_eq!(report.model, "gpt-shop-a");
    assert_eq!((report.added, report.skipped), (4, 1));
    let skipped = report.entries.iter().find(|e| e.skipped.is_some()).unwrap();
    assert_eq!(skipped.question, "Do you deliver?");
    assert_eq!(
        skipped.skipped.as_deref(),
        Some("the model's answer is not JSON")
    );
    assert_eq!(
        generated(&pool, a).await,
        [
            (
                "How much is a guitar?".to_string(),
                "bei ya gitaa".to_string()
            ),
            ("How much is a guitar?".into(), "hw much guitar".into()),
            ("How much is a guitar?".into(), "ile ya nyuzi sita".into()),
            (
                "What are your opening hours?".into(),
                "mnafungua saa ngapi".into()
            ),
        ]
    );
    assert_eq!(openai.received_requests().await.unwrap().len(), 6);

    // Re-running adds only what is new (here: nothing), and the phrasings answer customers.
    let again = alphadome::phrasings::expand_phrasings(&app, a, false)
        .await
        .unwrap();
    assert_eq!(again.added, 0);
    assert_eq!(generated(&pool, a).await.len(), 4);
    assert_eq!(
        ask(&app, a, NEW_WAY).await,
        ("faq", Some("How much is a guitar?".into()))
    );
    let listed = app.store.list_entries(a).await.unwrap();
    let guitar = listed
        .iter()
        .find(|e| e.question == "How much is a guitar?")
        .unwrap();
    assert_eq!((guitar.phrasings, guitar.generated_phrasings), (3, 3));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn faq_expand_uses_the_platform_key_without_a_tenant_key_and_stops_on_a_refusal(
    pool: PgPool,
) {
    let openai = MockServer::start().await;
    let app = spawn_app(pool.clone(), Some(openai.uri()), Some("sk-platform"));
    let a = shop(&app, "Shop A", "111111111", None).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header("authorization", "Bearer sk-platform"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&openai)
        .await;
    let err = alphadome::phrasings::expand_phrasings(&app, a, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 401"), "{err}");
    assert_eq!(openai.received_requests().await.unwrap().len(), 1);
    assert!(generated(&pool, a).await.is_empty());
}
