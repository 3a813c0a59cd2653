//! Shared set-up of the responder tests: two tenants, moto-held data keys, wiremock servers
//! for the Graph API and OpenAI.
#![allow(dead_code, unused_imports)]

pub use alphadome::domain::{DataType, PhoneNumber, PhoneNumberId, TenantId};
pub use alphadome::job::Job;
pub use alphadome::keys::{KeyBackend, KeyProvider};
pub use alphadome::openai::OpenAiClient;
pub use alphadome::responder::{Outbox, Outcome, Responder, ResponderOptions};
pub use alphadome::store::{NewEntry, NewTemplate, NewTenant, Store, TenantSummary};
pub use alphadome::testing::{spawn_app, StandIns, TestTenant};
pub use alphadome::webhook::{EventKind, InboundMessage, StatusUpdate, WebhookEvent};
pub use alphadome::whatsapp::WhatsAppClient;
pub use secrecy::SecretString;
pub use sqlx::PgPool;
pub use std::sync::{Arc, Mutex};
pub use std::time::Duration;
pub use wiremock::matchers::{body_string_contains, header, method, path};
pub use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const A_PNID: &str = "110000000001";
pub const B_PNID: &str = "110000000002";
pub const A_TOKEN: &str = "EAAGtokenKassangasSECRET";
pub const B_TOKEN: &str = "EAAGtokenSalonSECRET";
pub const A_AI_KEY: &str = "sk-test-kassangas-OWN-key-SECRET";
pub const PLATFORM_AI_KEY: &str = "sk-test-platform-SHARED-key-SECRET";
pub const CUSTOMER: &str = "254711000111";
pub const OWNER: &str = "254702245555";

pub struct World {
    pub responder: Responder,
    pub keys: KeyProvider,
    pub store: Store,
    pub pool: PgPool,
    pub graph: MockServer,
    pub openai: MockServer,
    pub a: TenantSummary,
    pub b: TenantSummary,
}

pub async fn sdk() -> aws_config::SdkConfig {
    alphadome::testing::moto_sdk().await
}

pub fn entry(q: &str, a: &str, kind: &str) -> NewEntry {
    NewEntry {
        question: q.into(),
        answer: a.into(),
        category: None,
        priority: 0,
        data_type: DataType::parse(kind).unwrap(),
    }
}

pub async fn world(pool: PgPool) -> World {
    world_with(
        pool,
        ResponderOptions {
            ai_deadline: Duration::from_millis(1500),
            ..Default::default()
        },
    )
    .await
}

pub async fn world_with(pool: PgPool, options: ResponderOptions) -> World {
    world_on(Store::from_pool(pool.clone()), pool, options).await
}

/// The world over a given store (e.g. one connected with the production options).
pub async fn world_on(store: Store, pool: PgPool, options: ResponderOptions) -> World {
    let graph = MockServer::start().await;
    let openai = MockServer::start().await;
    // The app every process builds; the tenants' data keys in Secrets Manager on moto.
    let mut t = spawn_app(
        pool.clone(),
        StandIns {
            graph: Some(graph.uri()),
            openai: Some(openai.uri()),
            platform_ai_key: Some(PLATFORM_AI_KEY.to_owned()),
        },
    )
    .with_keys(KeyProvider::new(
        KeyBackend::SecretsManager {
            client: aws_sdk_secretsmanager::Client::new(&sdk().await),
            prefix: format!("alphadome-responder-test/{}/", uuid::Uuid::new_v4()),
        },
        Duration::from_secs(60),
    ));
    t.app.store = store.clone();
    let tenant = |name: &'static str,
                  phone: &'static str,
                  pnid: &'static str,
                  token: &'static str,
                  ai: Option<&'static str>| TestTenant {
        name,
        phone,
        phone_number_id: pnid,
        token: Some(token),
        ai_key: ai,
        escalation_phone: Some(OWNER),
        max_messages_per_hour: Some(50),
    };
    let a = t
        .onboard(tenant(
            "Kassangas Music Shop",
            OWNER,
            A_PNID,
            A_TOKEN,
            Some(A_AI_KEY),
        ))
        .await;
    let b = t
        .onboard(tenant("Nyota Salon", "254711000222", B_PNID, B_TOKEN, None))
        .await;
    let keys = t.keys().clone();
    store
        .import_entries(
            a.id,
            &[
                entry(
                    "What are your opening hours?",
                    "We are open Monday to Saturday, 9 AM to 6 PM. Closed Sunday.",
                    "faq",
                ),
                entry(
                    "Can I pay with M-Pesa?",
                    "Yes! Pay via M-Pesa Till 123456.",
                    "faq",
                ),
                entry(
                    "Hello",
                    "Karibu Kassangas Music Shop! How can we help?",
                    "canned",
                ),
            ],
        )
        .await
        .unwrap();
    store
        .import_entries(
            b.id,
            &[entry(
                "Do you do braids?",
                "Yes, box braids from KES 2,500.",
                "faq",
            )],
        )
        .await
        .unwrap();
    for (t, prompt) in [
        (&a, "You sell musical instruments in Nairobi."),
        (&b, "You are a beauty salon in Westlands."),
    ] {
        store
            .set_template(
                t.id,
                &NewTemplate {
                    name: "default".into(),
                    system_prompt: prompt.into(),
                    tone: Some("friendly".into()),
                    model: None,
                    is_default: true,
                },
            )
            .await
            .unwrap();
    }
    let responder = Responder::new(
        store.clone(),
        keys.clone(),
        Outbox::Graph(t.app.whatsapp()),
        // Room for the three attempts within the deadline (500 ms each with the default world).
        OpenAiClient::new(openai.uri(), options.ai_deadline / 3),
        t.app.platform_ai_key().cloned(),
        options,
    );
    World {
        responder,
        keys,
        store,
        pool,
        graph,
        openai,
        a,
        b,
    }
}

/// Graph accepts every send.
pub async fn accept_sends(graph: &MockServer) {
    Mock::given(method("POST"))
        .respond_with(graph_ok())
        .mount(graph)
        .await;
}

/// Graph accepting a send: a fresh wamid per request, as Meta does.
pub fn graph_ok() -> GraphOk {
    GraphOk(Duration::ZERO)
}

pub struct GraphOk(Duration);

impl GraphOk {
    pub fn set_delay(self, d: Duration) -> Self {
        GraphOk(d)
    }
}

impl wiremock::Respond for GraphOk {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": CUSTOMER, "wa_id": CUSTOMER}],
                "messages": [{"id": format!("wamid.out.{}", uuid::Uuid::new_v4().simple())}]
            }))
            .set_delay(self.0)
    }
}

pub fn graph_error(status: u16, code: i64) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(serde_json::json!({
        "error": {"message": "(#131047) Re-engagement message to 254711000111", "type": "OAuthException", "code": code, "fbtrace_id": "x"}
    }))
}

pub fn ai_ok(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
    }))
}

pub fn message(tenant: &TenantSummary, pnid: &str, wamid: &str, text: &str) -> Job {
    message_from(tenant, pnid, wamid, text, CUSTOMER)
}

/// A message from another customer (another conversation, so another FIFO group).
pub fn message_from(
    tenant: &TenantSummary,
    pnid: &str,
    wamid: &str,
    text: &str,
    customer: &str,
) -> Job {
    Job::new(
        tenant.id.0,
        WebhookEvent {
            phone_number_id: pnid.into(),
            kind: EventKind::Message(InboundMessage {
                wa_message_id: wamid.into(),
                from_wa_id: Some(customer.into()),
                from_user_id: None,
                profile_name: Some("Wanjiku".into()),
                timestamp: chrono::Utc::now().timestamp(),
                message_type: "text".into(),
                text: Some(text.into()),
                reply_id: None,
                media_id: None,
                media_mime_type: None,
                context_message_id: None,
                referral_source_id: None,
            }),
        },
    )
}

pub fn status(tenant: &TenantSummary, wamid: &str, st: &str) -> Job {
    Job::new(
        tenant.id.0,
        WebhookEvent {
            phone_number_id: A_PNID.into(),
            kind: EventKind::Status(StatusUpdate {
                wa_message_id: wamid.into(),
                status: st.to_owned().into(),
                timestamp: 1,
                recipient_id: Some(CUSTOMER.into()),
                recipient_user_id: None,
                error_code: None,
                error_title: None,
                pricing_category: None,
                pricing_billable: None,
                pricing_type: None,
                reply_id: None,
            }),
        },
    )
}

pub async fn sends(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.url.path().ends_with("/messages")
                && !String::from_utf8_lossy(&r.body).contains("\"status\":\"read\"")
        })
        .collect()
}

pub fn body(r: &Request) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

pub async fn rows(
    pool: &PgPool,
    tenant: TenantId,
) -> Vec<(
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    uuid::Uuid,
)> {
    sqlx::query_as(
        "select direction, status, reply_source, note, brand_id from public.conversations
          where bot_tenant_id = $1 order by created_at, direction desc",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// An SQS event carrying `jobs` as Lambda's event source mapping delivers them (ids m1, m2, ...).
pub fn sqs_event(jobs: &[Job]) -> aws_lambda_events::event::sqs::SqsEvent {
    let event = serde_json::json!({"Records": jobs.iter().enumerate().map(|(i, j)| serde_json::json!({
        "messageId": format!("m{}", i + 1),
        "receiptHandle": "h",
        "body": j.to_json(),
        "attributes": {"MessageGroupId": j.group_id(), "ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs"
    })).collect::<Vec<_>>()});
    serde_json::from_value(event).unwrap()
}

/// How many replies went out per customer message: Graph's `context.message_id` is the
/// message a reply quotes (the first reply to the customer quotes it).
pub async fn replies_per_message(graph: &MockServer) -> std::collections::BTreeMap<String, usize> {
    let mut per = std::collections::BTreeMap::new();
    for r in sends(graph).await {
        if let Some(id) = body(&r)["context"]["message_id"].as_str() {
            *per.entry(id.to_owned()).or_default() += 1;
        }
    }
    per
}
