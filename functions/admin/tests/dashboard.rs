//! The owners' conversations, reply as a person and assistant switch, through the router as
//! a browser uses it: two businesses in a real database (a fresh one per test), their
//! customers' messages handled by the real responder, a wiremock stand-in for Graph, an owner
//! signed in with a development token, cookies carried from response to request.

use alphadome::admin::auth::DevKey;
use alphadome::admin::AdminState;
use alphadome::domain::DataType;
use alphadome::job::Job;
use alphadome::responder::{Outbox, Outcome, Responder};
use alphadome::store::{NewEntry, TenantSummary};
use alphadome::testing::{spawn_app, StandIns, TestApp, TestTenant};
use alphadome::webhook::{EventKind, InboundMessage, WebhookEvent};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use secrecy::SecretString;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;
use tower::ServiceExt;
use uuid::Uuid;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const A_PNID: &str = "110000000001";
const B_PNID: &str = "110000000002";
const A_TOKEN: &str = "EAAGtokenKassangasSECRET";
const B_TOKEN: &str = "EAAGtokenSalonSECRET";
const A_CUSTOMER: &str = "254711000111";
const B_CUSTOMER: &str = "254722000999";
const HOST: &str = "admin.example.com";

struct World {
    t: TestApp,
    graph: MockServer,
    a: TenantSummary,
    b: TenantSummary,
    dev: DevKey,
    router: Router,
}

/// Graph accepting every send with a fresh wamid, as Meta does.
struct GraphOk;

impl wiremock::Respond for GraphOk {
    fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messaging_product": "whatsapp",
            "messages": [{"id": format!("wamid.out.{}", Uuid::new_v4().simple())}]
        }))
    }
}

async fn world(pool: PgPool) -> World {
    let graph = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(GraphOk)
        .mount(&graph)
        .await;
    let t = spawn_app(
        pool.clone(),
        StandIns {
            graph: Some(graph.uri()),
            ..Default::default()
        },
    );
    let a = t
        .onboard(TestTenant {
            name: "Kassangas Music Shop",
            phone: "254702245555",
            phone_number_id: A_PNID,
            token: Some(A_TOKEN),
            ..Default::default()
        })
        .await;
    let b = t
        .onboard(TestTenant {
            name: "Nyota Salon",
            phone: "254711000222",
            phone_number_id: B_PNID,
            token: Some(B_TOKEN),
            ..Default::default()
        })
        .await;
    for tenant in [&a, &b] {
        t.store()
            .import_entries(
                tenant.id,
                &[NewEntry {
                    question: "What are your opening hours?".into(),
                    answer: "Monday to Saturday, 9 to 6.".into(),
                    category: None,
                    priority: 0,
                    data_type: DataType::parse("faq").unwrap(),
                }],
            )
            .await
            .unwrap();
    }
    let dev = DevKey::from_secret(SecretString::from("ab".repeat(32)));
    let router = alphadome::http::admin::routes(
        AdminState::development(dev.clone(), pool).with_actions(t.app.tenant_actions()),
    );
    World {
        t,
        graph,
        a,
        b,
        dev,
        router,
    }
}

impl World {
    /// A responder as the Lambda builds it, with an empty tenant cache.
    fn responder(&self) -> Responder {
        self.t
            .app
            .responder(Outbox::Graph(self.t.app.whatsapp()))
            .with_fresh_cache()
    }

    /// A customer's message, handled by the responder.
    async fn customer_writes(
        &self,
        tenant: &TenantSummary,
        pnid: &str,
        from: &str,
        name: &str,
        text: &str,
    ) -> Outcome {
        let job = Job::new(
            tenant.id.0,
            WebhookEvent {
                phone_number_id: pnid.into(),
                kind: EventKind::Message(InboundMessage {
                    wa_message_id: format!("wamid.in.{}", Uuid::new_v4().simple()),
                    from_wa_id: Some(from.into()),
                    from_user_id: None,
                    profile_name: Some(name.into()),
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
        );
        self.responder().handle_job(&job).await.unwrap()
    }

    async fn customer_id(&self, tenant: &TenantSummary) -> Uuid {
        sqlx::query_scalar("select id from public.users where bot_tenant_id = $1")
            .bind(tenant.id)
            .fetch_one(self.t.store().pool())
            .await
            .unwrap()
    }

    /// An owner of `tenant`'s business, signed in.
    async fn owner_of(&self, tenant: &TenantSummary) -> Browser {
        let mut browser = Browser::default();
        let token = self
            .dev
            .issue(tenant.brand_id.0, None, Duration::from_secs(600));
        let csrf = browser.csrf(&self.router).await;
        let page = browser
            .post(
                &self.router,
                "/admin/session",
                &[("access_token", &token), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        browser
    }

    /// What Graph received: (path, Authorization header, body).
    async fn sends(&self) -> Vec<(String, String, serde_json::Value)> {
        self.graph
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                (
                    r.url.path().to_owned(),
                    r.headers
                        .get("authorization")
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default(),
                    serde_json::from_slice(&r.body).unwrap(),
                )
            })
            .collect()
    }
}

/// A browser: keeps cookies between requests.
#[derive(Default)]
struct Browser {
    jar: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    body: String,
}

impl Browser {
    async fn send(&mut self, router: &Router, request: Request<Body>) -> Page {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        for c in response.headers().get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if c.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.into(), value.into());
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Page {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, router: &Router, uri: &str) -> Page {
        let request = Request::get(uri)
            .header(header::HOST, HOST)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        self.send(router, request).await
    }

    async fn post(&mut self, router: &Router, uri: &str, form: &[(&str, &str)]) -> Page {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", alphadome::admin::html::url_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = Request::post(uri)
            .header(header::HOST, HOST)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        self.send(router, request).await
    }

    /// The CSRF token the pages' forms carry (the double-submitted cookie's value).
    async fn csrf(&mut self, router: &Router) -> String {
        if let Some(token) = self.jar.get("alphadome_csrf") {
            return token.clone();
        }
        let page = self.get(router, "/admin/login").await;
        let marker = "name=\"csrf_token\" value=\"";
        let start = page.body.find(marker).expect("a CSRF field") + marker.len();
        page.body[start..].split('"').next().unwrap().to_owned()
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_sees_only_their_own_conversations_and_another_business_customer_is_404(
    pool: PgPool,
) {
    let w = world(pool).await;
    w.customer_writes(
        &w.a,
        A_PNID,
        A_CUSTOMER,
        "Wanjiku",
        "<script>alert(1)</script> hi",
    )
    .await;
    w.customer_writes(&w.b, B_PNID, B_CUSTOMER, "Achieng", "Do you do braids?")
        .await;
    let a_customer = w.customer_id(&w.a).await;
    let b_customer = w.customer_id(&w.b).await;
    let mut owner = w.owner_of(&w.a).await;

    let list = owner.get(&w.router, "/admin/conversations").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Wanjiku") && list.body.contains(A_CUSTOMER));
    assert!(list
        .body
        .contains(&format!("/admin/conversations/{a_customer}")));
    assert!(!list.body.contains("Achieng") && !list.body.contains(&b_customer.to_string()));
    assert!(!list.body.contains("<script>alert"));

    // Search by name and by the number's last digits.
    let found = owner.get(&w.router, "/admin/conversations?q=wanj").await;
    assert!(found.body.contains("Wanjiku"));
    let found = owner.get(&w.router, "/admin/conversations?q=0111").await;
    assert!(found.body.contains("Wanjiku"));
    let none = owner.get(&w.router, "/admin/conversations?q=Achieng").await;
    // (The box repeats the search; no customer of B's is listed.)
    assert!(!none.body.contains(B_CUSTOMER) && none.body.contains("No customer matches"));
    let none = owner.get(&w.router, "/admin/conversations?q=0999").await;
    assert!(!none.body.contains(B_CUSTOMER));

    // The transcript: the customer's markup is text; the reply shows its source and status.
    let transcript = owner
        .get(&w.router, &format!("/admin/conversations/{a_customer}"))
        .await;
    assert_eq!(transcript.status, StatusCode::OK);
    assert!(transcript
        .body
        .contains("&#60;script&#62;alert(1)&#60;/script&#62; hi"));
    assert!(!transcript.body.contains("<script"));
    assert!(!transcript.body.contains(A_TOKEN));

    // Another business's customer, in every URL: 404, and nothing sent or changed.
    let sends_before = w.sends().await.len();
    let other = owner
        .get(&w.router, &format!("/admin/conversations/{b_customer}"))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(!other.body.contains("Achieng") && !other.body.contains("braids"));
    let csrf = owner.csrf(&w.router).await;
    let reply = owner
        .post(
            &w.router,
            &format!("/admin/conversations/{b_customer}/reply"),
            &[("text", "hijacked"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let resume = owner
        .post(
            &w.router,
            &format!("/admin/conversations/{b_customer}/resume"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(resume.status, StatusCode::NOT_FOUND);
    assert_eq!(w.sends().await.len(), sends_before);
    let b_rows: i64 = sqlx::query_scalar(
        "select count(*) from public.conversations where bot_tenant_id = $1 and reply_source = 'person'",
    )
    .bind(w.b.id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!(b_rows, 0);
    // Not an id at all: the same 404.
    let junk = owner
        .get(&w.router, "/admin/conversations/not-a-uuid")
        .await;
    assert_eq!(junk.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_reply_as_a_person_goes_out_with_the_tenants_token_and_silences_the_assistant_until_resumed(
    pool: PgPool,
) {
    let w = world(pool).await;
    let first = w
        .customer_writes(
            &w.a,
            A_PNID,
            A_CUSTOMER,
            "Wanjiku",
            "What are your opening hours?",
        )
        .await;
    assert_eq!(first, Outcome::Replied(vec!["faq"]));
    let customer = w.customer_id(&w.a).await;
    let mut owner = w.owner_of(&w.a).await;
    let csrf = owner.csrf(&w.router).await;

    let sent = owner
        .post(
            &w.router,
            &format!("/admin/conversations/{customer}/reply"),
            &[
                ("text", "Habari! Gideon here, I'll bring the guitar myself."),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);

    // Graph got it at A's number, with A's token, for A's customer.
    let sends = w.sends().await;
    let (path, auth, body) = sends.last().unwrap();
    assert_eq!(path, &format!("/{A_PNID}/messages"));
    assert_eq!(auth, &format!("Bearer {A_TOKEN}"));
    assert_eq!(body["to"], A_CUSTOMER);
    assert_eq!(
        body["text"]["body"],
        "Habari! Gideon here, I'll bring the guitar myself."
    );

    // Logged as the person's, sent.
    let (source, status, wamid): (String, String, Option<String>) = sqlx::query_as(
        "select reply_source, status, wa_message_id from public.conversations
          where bot_tenant_id = $1 and direction = 'outgoing' order by created_at desc limit 1",
    )
    .bind(w.a.id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!((source.as_str(), status.as_str()), ("person", "sent"));
    assert!(wamid.unwrap().starts_with("wamid.out."));
    // Tagged with its row, so Meta's statuses name it even if the mark is lost.
    let row: uuid::Uuid = sqlx::query_scalar(
        "select id from public.conversations
          where bot_tenant_id = $1 and reply_source = 'person'",
    )
    .bind(w.a.id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!(
        body["biz_opaque_callback_data"],
        alphadome::whatsapp::reply_tag(row)
    );
    // The customer writes again: the assistant stays quiet, nothing more is sent.
    let before = w.sends().await.len();
    let next = w
        .customer_writes(
            &w.a,
            A_PNID,
            A_CUSTOMER,
            "Wanjiku",
            "What are your opening hours?",
        )
        .await;
    assert_eq!(next, Outcome::Silent("paused_for_human"));
    assert_eq!(w.sends().await.len(), before);

    // The pages say so, and offer to resume.
    let page = owner
        .get(
            &w.router,
            &format!("/admin/conversations/{customer}?done=sent"),
        )
        .await;
    assert!(page.body.contains("you · sent"), "{}", page.body);
    assert!(page.body.contains("FAQ · sent"));
    assert!(page.body.contains("Resume assistant"));
    assert!(!page.body.contains(A_TOKEN));
    let listed = owner.get(&w.router, "/admin/conversations").await;
    assert!(listed.body.contains("assistant paused"));

    // Resumed: the assistant answers again.
    let resumed = owner
        .post(
            &w.router,
            &format!("/admin/conversations/{customer}/resume"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(resumed.status, StatusCode::SEE_OTHER);
    let after = w
        .customer_writes(
            &w.a,
            A_PNID,
            A_CUSTOMER,
            "Wanjiku",
            "What are your opening hours?",
        )
        .await;
    assert_eq!(after, Outcome::Replied(vec!["faq"]));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_reply_outside_the_24_hour_window_is_refused_and_says_so(pool: PgPool) {
    let w = world(pool).await;
    w.customer_writes(&w.a, A_PNID, A_CUSTOMER, "Wanjiku", "hello")
        .await;
    let customer = w.customer_id(&w.a).await;
    sqlx::query(
        "update public.users set last_inbound_at = now() - interval '25 hours' where id = $1",
    )
    .bind(customer)
    .execute(w.t.store().pool())
    .await
    .unwrap();
    let mut owner = w.owner_of(&w.a).await;
    let page = owner
        .get(&w.router, &format!("/admin/conversations/{customer}"))
        .await;
    assert!(page.body.contains("24-hour window is closed"));
    assert!(!page.body.contains("name=\"text\""));
    let before = w.sends().await.len();
    let csrf = owner.csrf(&w.router).await;
    let refused = owner
        .post(
            &w.router,
            &format!("/admin/conversations/{customer}/reply"),
            &[("text", "are you there?"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused
        .body
        .contains("Not sent: the 24-hour window is closed"));
    assert_eq!(w.sends().await.len(), before);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn switching_the_assistant_off_leaves_the_next_message_unanswered(pool: PgPool) {
    let w = world(pool).await;
    let mut owner = w.owner_of(&w.a).await;
    let overview = owner.get(&w.router, "/admin").await;
    assert!(overview.body.contains("Switch the assistant off"));
    let csrf = owner.csrf(&w.router).await;

    // Another business's number: 404, and it stays on.
    let other = owner
        .post(
            &w.router,
            "/admin/assistant",
            &[
                ("tenant_id", &w.b.id.0.to_string()),
                ("enabled", "off"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);

    let off = owner
        .post(
            &w.router,
            "/admin/assistant",
            &[
                ("tenant_id", &w.a.id.0.to_string()),
                ("enabled", "off"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    let switches: Vec<(Uuid, bool)> = sqlx::query_as(
        "select bot_tenant_id, is_bot_enabled from alphadome.bot_control_settings order by bot_tenant_id",
    )
    .fetch_all(w.t.store().pool())
    .await
    .unwrap();
    for (tenant, on) in switches {
        assert_eq!(on, tenant != w.a.id.0, "only A's assistant is off");
    }
    assert!(owner
        .get(&w.router, "/admin")
        .await
        .body
        .contains("Switch the assistant on"));

    let out = w
        .customer_writes(
            &w.a,
            A_PNID,
            A_CUSTOMER,
            "Wanjiku",
            "What are your opening hours?",
        )
        .await;
    assert_eq!(out, Outcome::Silent("bot_disabled"));
    assert!(w.sends().await.is_empty());
    // B's customers are still answered.
    let out = w
        .customer_writes(
            &w.b,
            B_PNID,
            B_CUSTOMER,
            "Achieng",
            "What are your opening hours?",
        )
        .await;
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn posts_without_a_matching_csrf_token_are_refused_and_change_nothing(pool: PgPool) {
    let w = world(pool).await;
    w.customer_writes(&w.a, A_PNID, A_CUSTOMER, "Wanjiku", "hello")
        .await;
    let customer = w.customer_id(&w.a).await;
    let mut owner = w.owner_of(&w.a).await;
    let before = w.sends().await.len();
    let tenant = w.a.id.0.to_string();
    for token in [None, Some("x".repeat(43))] {
        let with = |mut form: Vec<(&'static str, String)>| {
            if let Some(t) = &token {
                form.push(("csrf_token", t.clone()));
            }
            form
        };
        let posts = [
            (
                format!("/admin/conversations/{customer}/reply"),
                with(vec![("text", "forged".to_owned())]),
            ),
            (
                format!("/admin/conversations/{customer}/resume"),
                with(vec![]),
            ),
            (
                "/admin/assistant".to_owned(),
                with(vec![
                    ("tenant_id", tenant.clone()),
                    ("enabled", "off".to_owned()),
                ]),
            ),
        ];
        for (uri, form) in posts {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = owner.post(&w.router, &uri, &form).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{uri}");
        }
    }
    assert_eq!(w.sends().await.len(), before);
    let on: bool = sqlx::query_scalar(
        "select is_bot_enabled from alphadome.bot_control_settings where bot_tenant_id = $1",
    )
    .bind(w.a.id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert!(on);
    let person: i64 = sqlx::query_scalar(
        "select count(*) from public.conversations where reply_source = 'person'",
    )
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!(person, 0);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_list_pages_through_every_customer_once_newest_first(pool: PgPool) {
    let w = world(pool).await;
    // 30 customers of A's and one of B's, written straight into the tables (as the pipeline
    // would have), each with a distinct time of latest message.
    sqlx::query(
        "with c as (
           insert into public.users (bot_tenant_id, brand_id, phone, full_name, last_inbound_at)
           select $1, $2, '2547110' || lpad(g::text, 5, '0'), 'Customer ' || g, now() - g * interval '1 minute'
           from generate_series(1, 30) g
           returning id, phone)
         insert into public.conversations (bot_tenant_id, brand_id, user_id, direction, message_text,
                                           wa_message_id, created_at)
         select $1, $2, c.id, 'incoming', 'Habari', 'wamid.page.' || c.phone,
                now() - (right(c.phone, 5)::int * interval '1 minute')
         from c",
    )
    .bind(w.a.id)
    .bind(w.a.brand_id)
    .execute(w.t.store().pool())
    .await
    .unwrap();
    w.customer_writes(&w.b, B_PNID, B_CUSTOMER, "Achieng", "hello")
        .await;
    let mut owner = w.owner_of(&w.a).await;

    let first = owner.get(&w.router, "/admin/conversations").await;
    let marker = "/admin/conversations?after=";
    let start = first.body.find(marker).expect("a link to older ones") + marker.len();
    let next = first.body[start..].split('"').next().unwrap().to_owned();
    let second = owner.get(&w.router, &format!("{marker}{next}")).await;
    assert!(!second.body.contains(marker), "two pages in all");

    let numbers = |body: &str| -> Vec<u32> {
        body.match_indices("2547110")
            .map(|(i, _)| body[i + 7..i + 12].parse().unwrap())
            .collect()
    };
    let (one, two) = (numbers(&first.body), numbers(&second.body));
    assert_eq!(one.len(), 25);
    assert_eq!(two.len(), 5);
    let all: Vec<u32> = one.into_iter().chain(two).collect();
    assert_eq!(
        all,
        (1..=30).collect::<Vec<u32>>(),
        "newest first, each once"
    );
    assert!(!first.body.contains(B_CUSTOMER) && !second.body.contains(B_CUSTOMER));
}

// ----- hand-overs, knowledge, assistant, settings ---------------------------------------------

impl World {
    async fn scalar_i64(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(self.t.store().pool())
            .await
            .unwrap()
    }

    /// The id of the tenant's (only) knowledge entry.
    async fn entry_of(&self, tenant: &TenantSummary) -> Uuid {
        sqlx::query_scalar(
            "select id from alphadome.bot_training_data where bot_tenant_id = $1 order by created_at limit 1",
        )
        .bind(tenant.id)
        .fetch_one(self.t.store().pool())
        .await
        .unwrap()
    }

    /// What the last text message sent to Graph said (read receipts carry no text).
    async fn last_sent_text(&self) -> String {
        let sends = self.sends().await;
        let (_, _, body) = sends
            .iter()
            .rev()
            .find(|(_, _, b)| b["type"] == "text")
            .expect("a text was sent");
        body["text"]["body"].as_str().unwrap_or_default().to_owned()
    }
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_handovers_page_lists_the_owners_waiting_customers_oldest_first_and_mark_done_resumes(
    pool: PgPool,
) {
    let w = world(pool).await;
    sqlx::query("update alphadome.bot_control_settings set escalation_phone = '254700000001'")
        .execute(w.t.store().pool())
        .await
        .unwrap();
    let out = w
        .customer_writes(
            &w.a,
            A_PNID,
            A_CUSTOMER,
            "Wanjiku",
            "I want to talk to a human",
        )
        .await;
    assert!(
        matches!(out, Outcome::Replied(ref s) if s.contains(&"escalation")),
        "{out:?}"
    );
    w.customer_writes(
        &w.b,
        B_PNID,
        B_CUSTOMER,
        "Achieng",
        "I want to talk to a human",
    )
    .await;
    let a_customer = w.customer_id(&w.a).await;
    let b_customer = w.customer_id(&w.b).await;
    let mut owner = w.owner_of(&w.a).await;

    let page = owner.get(&w.router, "/admin/handovers").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Wanjiku") && page.body.contains("handed over"));
    assert!(page
        .body
        .contains(&format!("/admin/handovers/{a_customer}/done")));
    assert!(!page.body.contains("Achieng") && !page.body.contains(&b_customer.to_string()));
    let overview = owner.get(&w.router, "/admin").await;
    assert!(
        overview.body.contains("waiting for you"),
        "{}",
        overview.body
    );

    // B's customer: 404, still waiting.
    let csrf = owner.csrf(&w.router).await;
    let other = owner
        .post(
            &w.router,
            &format!("/admin/handovers/{b_customer}/done"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let b_done: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("select handover_done_at from public.users where id = $1")
            .bind(b_customer)
            .fetch_one(w.t.store().pool())
            .await
            .unwrap();
    assert!(b_done.is_none());

    // Without the CSRF token: refused, nothing changes.
    let forged = owner
        .post(
            &w.router,
            &format!("/admin/handovers/{a_customer}/done"),
            &[],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let done = owner
        .post(
            &w.router,
            &format!("/admin/handovers/{a_customer}/done"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let (paused, done_at): (
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as("select bot_paused_until, handover_done_at from public.users where id = $1")
        .bind(a_customer)
        .fetch_one(w.t.store().pool())
        .await
        .unwrap();
    assert!(paused.is_none() && done_at.is_some());
    let page = owner.get(&w.router, "/admin/handovers?done=1").await;
    assert!(page.body.contains("Nobody is waiting"), "{}", page.body);
    // The assistant answers that customer again.
    let again = w
        .customer_writes(
            &w.a,
            A_PNID,
            A_CUSTOMER,
            "Wanjiku",
            "What are your opening hours?",
        )
        .await;
    assert_eq!(again, Outcome::Replied(vec!["faq"]));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_edited_faq_answer_is_what_the_next_customer_gets_and_try_it_says_so(pool: PgPool) {
    let w = world(pool).await;
    let entry = w.entry_of(&w.a).await;
    let mut owner = w.owner_of(&w.a).await;
    let csrf = owner.csrf(&w.router).await;

    let page = owner.get(&w.router, "/admin/knowledge").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("What are your opening hours?"));
    assert!(page
        .body
        .contains(&format!("/admin/knowledge/entries/{entry}")));

    let saved = owner
        .post(
            &w.router,
            &format!("/admin/knowledge/entries/{entry}"),
            &[
                ("question", "What are your opening hours?"),
                ("answer", "Every day 8 to 8 <b>now</b>."),
                ("data_type", "faq"),
                ("category", "hours"),
                ("priority", "5"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let shown = owner
        .get(&w.router, &format!("/admin/knowledge/entries/{entry}"))
        .await;
    assert!(
        shown
            .body
            .contains("Every day 8 to 8 &#60;b&#62;now&#60;/b&#62;."),
        "{}",
        shown.body
    );

    // "Try it": the dry run gives the new answer and says where it came from.
    let tried = owner
        .post(
            &w.router,
            "/admin/knowledge/try",
            &[
                ("tenant_id", &w.a.id.0.to_string()),
                ("text", "what are your opening hours"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(tried.status, StatusCode::OK);
    assert!(tried.body.contains("From your FAQ"), "{}", tried.body);
    assert!(tried.body.contains("Every day 8 to 8"));
    assert_eq!(w.sends().await.len(), 0, "the dry run sends nothing");

    // A customer of A's gets it, counted at the Graph stand-in.
    let out = w
        .customer_writes(
            &w.a,
            A_PNID,
            A_CUSTOMER,
            "Wanjiku",
            "What are your opening hours?",
        )
        .await;
    assert_eq!(out, Outcome::Replied(vec!["faq"]));
    assert_eq!(w.last_sent_text().await, "Every day 8 to 8 <b>now</b>.");
    // B's answer is untouched.
    w.customer_writes(
        &w.b,
        B_PNID,
        B_CUSTOMER,
        "Achieng",
        "What are your opening hours?",
    )
    .await;
    assert_eq!(w.last_sent_text().await, "Monday to Saturday, 9 to 6.");
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_manages_only_their_own_entries_and_phrasings(pool: PgPool) {
    let w = world(pool).await;
    let b_entry = w.entry_of(&w.b).await;
    let mut owner = w.owner_of(&w.a).await;
    let csrf = owner.csrf(&w.router).await;
    let a = w.a.id.0.to_string();
    let b = w.b.id.0.to_string();

    // Add to A: lands in A's rows.
    let added = owner
        .post(
            &w.router,
            "/admin/knowledge/entries",
            &[
                ("tenant_id", &a),
                ("question", "Do you deliver?"),
                ("answer", "Yes, within Nairobi."),
                ("data_type", "faq"),
                ("priority", ""),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let new_id: Uuid = sqlx::query_scalar(
        "select id from alphadome.bot_training_data where question = 'Do you deliver?'",
    )
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    let tenant_of: Uuid =
        sqlx::query_scalar("select bot_tenant_id from alphadome.bot_training_data where id = $1")
            .bind(new_id)
            .fetch_one(w.t.store().pool())
            .await
            .unwrap();
    assert_eq!(tenant_of, w.a.id.0);
    // The same question again: a clear error, nothing added.
    let dup = owner
        .post(
            &w.router,
            "/admin/knowledge/entries",
            &[
                ("tenant_id", &a),
                ("question", "Do you deliver?"),
                ("answer", "Again"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(dup.body.contains("already exists"));
    // An empty answer: named, nothing added.
    let bad = owner
        .post(
            &w.router,
            "/admin/knowledge/entries",
            &[
                ("tenant_id", &a),
                ("question", "Q"),
                ("answer", " "),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("answer is empty"));

    // Phrasings: add (as `owner`), listed, deleted.
    let p = owner
        .post(
            &w.router,
            "/admin/knowledge/phrasings",
            &[
                ("entry_id", &new_id.to_string()),
                ("phrasing", "mnaleta?"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let (pid, source): (Uuid, String) = sqlx::query_as(
        "select id, source from alphadome.bot_training_phrasings where training_data_id = $1",
    )
    .bind(new_id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!(source, "owner");
    // A generated phrasing is marked as such.
    sqlx::query(
        "insert into alphadome.bot_training_phrasings (bot_tenant_id, training_data_id, phrasing, source)
         values ($1, $2, 'do you bring it', 'generated')",
    )
    .bind(w.a.id)
    .bind(new_id)
    .execute(w.t.store().pool())
    .await
    .unwrap();
    let shown = owner
        .get(&w.router, &format!("/admin/knowledge/entries/{new_id}"))
        .await;
    assert!(shown.body.contains("mnaleta?") && shown.body.contains("generated"));
    let del = owner
        .post(
            &w.router,
            &format!("/admin/knowledge/phrasings/{pid}/delete"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(del.status, StatusCode::SEE_OTHER);

    // Deactivate, then delete.
    let off = owner
        .post(
            &w.router,
            &format!("/admin/knowledge/entries/{new_id}/active"),
            &[("active", "off"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER);
    let active: bool =
        sqlx::query_scalar("select is_active from alphadome.bot_training_data where id = $1")
            .bind(new_id)
            .fetch_one(w.t.store().pool())
            .await
            .unwrap();
    assert!(!active);
    let gone = owner
        .post(
            &w.router,
            &format!("/admin/knowledge/entries/{new_id}/delete"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert_eq!(
        w.scalar_i64(
            "select count(*) from alphadome.bot_training_data where question = 'Do you deliver?'"
        )
        .await,
        0
    );

    // B's entry and number, in every URL and form: 404, B's rows unchanged.
    let b_before: (String, bool) =
        sqlx::query_as("select answer, is_active from alphadome.bot_training_data where id = $1")
            .bind(b_entry)
            .fetch_one(w.t.store().pool())
            .await
            .unwrap();
    let be = b_entry.to_string();
    assert_eq!(
        owner
            .get(&w.router, &format!("/admin/knowledge/entries/{be}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner
            .get(&w.router, &format!("/admin/knowledge?tenant={b}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner
            .get(
                &w.router,
                &format!("/admin/knowledge/export.csv?tenant={b}")
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        owner
            .get(
                &w.router,
                &format!("/admin/knowledge/unanswered?tenant={b}")
            )
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/admin/knowledge/entries/{be}"),
            vec![("question", "hijacked"), ("answer", "hijacked")],
        ),
        (
            format!("/admin/knowledge/entries/{be}/active"),
            vec![("active", "off")],
        ),
        (format!("/admin/knowledge/entries/{be}/delete"), vec![]),
        (
            "/admin/knowledge/phrasings".into(),
            vec![("entry_id", be.as_str()), ("phrasing", "hijacked")],
        ),
        (
            "/admin/knowledge/entries".into(),
            vec![
                ("tenant_id", b.as_str()),
                ("question", "hijacked"),
                ("answer", "x"),
            ],
        ),
        (
            "/admin/knowledge/import".into(),
            vec![
                ("tenant_id", b.as_str()),
                ("csv", "question,answer\nhijacked,x\n"),
            ],
        ),
        (
            "/admin/knowledge/try".into(),
            vec![("tenant_id", b.as_str()), ("text", "hello")],
        ),
    ];
    for (uri, mut form) in posts {
        form.push(("csrf_token", &csrf));
        let page = owner.post(&w.router, &uri, &form).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{uri}");
        // And without the CSRF token: 403 before anything else.
        form.pop();
        let page = owner.post(&w.router, &uri, &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{uri}");
    }
    let b_after: (String, bool) =
        sqlx::query_as("select answer, is_active from alphadome.bot_training_data where id = $1")
            .bind(b_entry)
            .fetch_one(w.t.store().pool())
            .await
            .unwrap();
    assert_eq!(b_before, b_after);
    assert_eq!(
        w.scalar_i64(
            "select count(*) from alphadome.bot_training_data where question = 'hijacked'"
        )
        .await,
        0
    );
    assert_eq!(
        w.scalar_i64("select count(*) from alphadome.bot_training_phrasings")
            .await,
        0,
        "the deleted entry took its phrasings along; none of B's was added"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_csv_import_names_a_bad_row_and_imports_nothing_and_the_export_reads_back(pool: PgPool) {
    let w = world(pool).await;
    let mut owner = w.owner_of(&w.a).await;
    let csrf = owner.csrf(&w.router).await;
    let a = w.a.id.0.to_string();
    let count = "select count(*) from alphadome.bot_training_data";
    let before = w.scalar_i64(count).await;

    let bad = "question,answer,category,priority,data_type\n\
               Do you sell drums?,Yes,,1,faq\n\
               Do you repair amps?,,,,faq\n";
    let page = owner
        .post(
            &w.router,
            "/admin/knowledge/import",
            &[("tenant_id", &a), ("csv", bad), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body.contains("line 3: answer is empty"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Nothing was imported"));
    assert_eq!(w.scalar_i64(count).await, before);

    let good = "question,answer,category,priority,data_type,phrasings\n\
                Do you sell drums?,\"Yes, Yamaha and Pearl.\",instruments,1,faq,mnauza drums|drum set bei\n\
                What are your opening hours?,Monday to Saturday 9 to 7.,,0,faq,\n";
    let page = owner
        .post(
            &w.router,
            "/admin/knowledge/import",
            &[("tenant_id", &a), ("csv", good), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Imported 2 entries (1 new, 1 updated)"),
        "{}",
        page.body
    );
    assert_eq!(w.scalar_i64(count).await, before + 1);

    let csv = owner
        .get(
            &w.router,
            &format!("/admin/knowledge/export.csv?tenant={a}"),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv
        .body
        .starts_with("question,answer,category,priority,data_type,phrasings\n"));
    assert!(csv
        .body
        .contains("Do you sell drums?,\"Yes, Yamaha and Pearl.\",instruments,1,faq,"));
    assert!(csv.body.contains("mnauza drums"), "{}", csv.body);
    assert!(csv.body.contains("drum set bei"), "{}", csv.body);
    assert!(
        !csv.body.contains("Monday to Saturday, 9 to 6."),
        "B's entry or the old answer"
    );
    // The export imports back as it is.
    let again = alphadome::knowledge_file::parse_csv_file(&csv.body).unwrap();
    assert_eq!(again.entries.len(), 2);
    assert_eq!(
        again.phrasing_count(),
        2,
        "the phrasings come back with the export"
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_unanswered_message_of_the_owners_becomes_a_phrasing_or_a_new_faq(pool: PgPool) {
    let w = world(pool).await;
    let entry = w.entry_of(&w.a).await;
    w.customer_writes(
        &w.a,
        A_PNID,
        A_CUSTOMER,
        "Wanjiku",
        "Mnauza violin za watoto",
    )
    .await;
    w.customer_writes(
        &w.b,
        B_PNID,
        B_CUSTOMER,
        "Achieng",
        "Do you do braids on Sunday?",
    )
    .await;
    let (a_msg, b_msg): (Uuid, Uuid) = sqlx::query_as(
        "select (select id from public.conversations where bot_tenant_id = $1 and direction = 'incoming'),
                (select id from public.conversations where bot_tenant_id = $2 and direction = 'incoming')",
    )
    .bind(w.a.id)
    .bind(w.b.id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    let mut owner = w.owner_of(&w.a).await;
    let list = owner.get(&w.router, "/admin/knowledge/unanswered").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.body.contains("Mnauza violin za watoto"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("braids"));
    assert_eq!(
        owner
            .get(&w.router, &format!("/admin/knowledge/unanswered/{b_msg}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let teach = owner
        .get(&w.router, &format!("/admin/knowledge/unanswered/{a_msg}"))
        .await;
    assert_eq!(teach.status, StatusCode::OK);
    assert!(
        teach.body.contains("Add as a new FAQ") && teach.body.contains("Add as another phrasing")
    );
    assert!(teach.body.contains(&entry.to_string()));

    let csrf = owner.csrf(&w.router).await;
    let added = owner
        .post(
            &w.router,
            "/admin/knowledge/phrasings",
            &[
                ("entry_id", &entry.to_string()),
                ("phrasing", "Mnauza violin za watoto"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let (tenant, source): (Uuid, String) = sqlx::query_as(
        "select bot_tenant_id, source from alphadome.bot_training_phrasings where training_data_id = $1",
    )
    .bind(entry)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!((tenant, source.as_str()), (w.a.id.0, "owner"));

    // As a new FAQ instead: lands in A's entries.
    let faq = owner
        .post(
            &w.router,
            "/admin/knowledge/entries",
            &[
                ("tenant_id", &w.a.id.0.to_string()),
                ("question", "Do you open on Sunday?"),
                ("answer", "No, we rest on Sunday."),
                ("data_type", "faq"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(faq.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_assistant_page_saves_the_prompt_and_only_an_allowed_model(pool: PgPool) {
    let w = world(pool).await;
    let mut owner = w.owner_of(&w.a).await;
    let csrf = owner.csrf(&w.router).await;
    let a = w.a.id.0.to_string();
    let page = owner.get(&w.router, "/admin/assistant").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("gpt-4o-mini"));

    let form = |model: &'static str| {
        vec![
            ("tenant_id", a.clone()),
            (
                "system_prompt",
                "You are Kassangas' helper. Be brief.".to_owned(),
            ),
            ("tone", "warm".to_owned()),
            ("welcome_message", "Karibu Kassangas!".to_owned()),
            ("model", model.to_owned()),
            ("csrf_token", csrf.clone()),
        ]
    };
    let post = |f: Vec<(&'static str, String)>| {
        let f: Vec<(&'static str, String)> = f;
        f
    };
    let outside = post(form("gpt-5-turbo-deluxe"));
    let outside: Vec<(&str, &str)> = outside.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = owner
        .post(&w.router, "/admin/assistant/settings", &outside)
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Choose one of the models offered"));
    assert_eq!(
        w.scalar_i64("select count(*) from alphadome.bot_templates where model is not null")
            .await,
        0
    );

    let ok = post(form("gpt-4.1-mini"));
    let ok: Vec<(&str, &str)> = ok.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = owner
        .post(&w.router, "/admin/assistant/settings", &ok)
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let (prompt, tone, model, tenant): (String, Option<String>, Option<String>, Uuid) =
        sqlx::query_as(
            "select system_prompt, tone, model, bot_tenant_id from alphadome.bot_templates where is_default",
        )
        .fetch_one(w.t.store().pool())
        .await
        .unwrap();
    assert_eq!(tenant, w.a.id.0);
    assert_eq!(prompt, "You are Kassangas' helper. Be brief.");
    assert_eq!(
        (tone.as_deref(), model.as_deref()),
        (Some("warm"), Some("gpt-4.1-mini"))
    );
    let welcome: Option<String> = sqlx::query_scalar(
        "select welcome_message from alphadome.bot_control_settings where bot_tenant_id = $1",
    )
    .bind(w.a.id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!(welcome.as_deref(), Some("Karibu Kassangas!"));

    // The owner's own role still cannot write a model directly (0010 withholds the column).
    let mut tx = w.t.store().pool().begin().await.unwrap();
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .bind(serde_json::json!({"role": "authenticated", "app_metadata": {"brand_id": w.a.brand_id.0}}).to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    let direct = sqlx::query("update alphadome.bot_templates set model = 'anything'")
        .execute(&mut *tx)
        .await;
    assert!(direct.is_err(), "owners have no update (model)");
    drop(tx);

    // B's number: 404, no template of B's written.
    let b = w.b.id.0.to_string();
    let other: Vec<(&str, &str)> = vec![
        ("tenant_id", &b),
        ("system_prompt", "hijacked"),
        ("model", ""),
        ("csrf_token", &csrf),
    ];
    let page = owner
        .post(&w.router, "/admin/assistant/settings", &other)
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(
        owner
            .get(&w.router, &format!("/admin/assistant?tenant={b}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.scalar_i64(
            "select count(*) from alphadome.bot_templates where system_prompt = 'hijacked'"
        )
        .await,
        0
    );
    let forged = owner
        .post(&w.router, "/admin/assistant/settings", &other[..3])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn settings_are_saved_within_the_platforms_bounds_for_the_owners_number_only(pool: PgPool) {
    let w = world(pool).await;
    let mut owner = w.owner_of(&w.a).await;
    let csrf = owner.csrf(&w.router).await;
    let a = w.a.id.0.to_string();
    let page = owner.get(&w.router, "/admin/settings").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("up to 1000"));

    let form = |tenant: &str, cap: &str| -> Vec<(String, String)> {
        vec![
            ("tenant_id".into(), tenant.into()),
            ("max_messages_per_hour".into(), cap.into()),
            ("escalation_phone".into(), "+254 700 000 123".into()),
            ("escalation_quiet_minutes".into(), "30".into()),
            ("mark_messages_read".into(), "on".into()),
            ("pictures_enabled".into(), "on".into()),
            ("escalation_template_name".into(), "handover_notice".into()),
            ("escalation_template_language".into(), "en".into()),
            ("csrf_token".into(), csrf.clone()),
        ]
    };
    let send = |f: &Vec<(String, String)>| -> Vec<(String, String)> { f.clone() };
    let too_many = send(&form(&a, "5000"));
    let too_many: Vec<(&str, &str)> = too_many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let refused = owner.post(&w.router, "/admin/settings", &too_many).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("at most 1000"));

    let fine = send(&form(&a, "300"));
    let fine: Vec<(&str, &str)> = fine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let saved = owner.post(&w.router, "/admin/settings", &fine).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    type S = (
        i32,
        Option<String>,
        i32,
        bool,
        bool,
        bool,
        bool,
        Option<String>,
        Option<String>,
    );
    let s: S = sqlx::query_as(
        "select max_messages_per_hour, escalation_phone, escalation_quiet_minutes,
                enable_ai_responses, mark_messages_read, voice_notes_enabled, pictures_enabled,
                escalation_template_name, escalation_template_language
           from alphadome.bot_control_settings where bot_tenant_id = $1",
    )
    .bind(w.a.id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!(
        s,
        (
            300,
            Some("254700000123".into()),
            30,
            false,
            true,
            false,
            true,
            Some("handover_notice".into()),
            Some("en".into())
        )
    );
    // B's number: 404, B's row unchanged.
    let other = send(&form(&w.b.id.0.to_string(), "300"));
    let other: Vec<(&str, &str)> = other
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        owner
            .post(&w.router, "/admin/settings", &other)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let b_cap: i32 = sqlx::query_scalar(
        "select max_messages_per_hour from alphadome.bot_control_settings where bot_tenant_id = $1",
    )
    .bind(w.b.id)
    .fetch_one(w.t.store().pool())
    .await
    .unwrap();
    assert_eq!(b_cap, 200);
    let forged: Vec<(&str, &str)> = fine[..fine.len() - 1].to_vec();
    assert_eq!(
        owner
            .post(&w.router, "/admin/settings", &forged)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_replaces_their_own_whatsapp_token_and_never_another_business(pool: PgPool) {
    let w = world(pool).await;
    let sealed = |tenant: &TenantSummary| {
        let pool = w.t.store().pool().clone();
        let id = tenant.id;
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "select whatsapp_access_token from alphadome.bot_tenants where id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let b_before = sealed(&w.b).await;
    let mut owner = w.owner_of(&w.a).await;
    let csrf = owner.csrf(&w.router).await;
    const NEW: &str = "EAAGnewKassangasTOKEN2026";

    // B's number: 404, B's sealed token unchanged.
    let other = owner
        .post(
            &w.router,
            "/admin/settings/token",
            &[
                ("tenant_id", &w.b.id.0.to_string()),
                ("token", NEW),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(sealed(&w.b).await, b_before);
    // Without the CSRF token: refused.
    let forged = owner
        .post(
            &w.router,
            "/admin/settings/token",
            &[("tenant_id", &w.a.id.0.to_string()), ("token", NEW)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let replaced = owner
        .post(
            &w.router,
            "/admin/settings/token",
            &[
                ("tenant_id", &w.a.id.0.to_string()),
                ("token", NEW),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::SEE_OTHER, "{}", replaced.body);
    let page = owner.get(&w.router, "/admin/settings?done=token").await;
    assert!(
        page.body.contains("never shown again") || page.body.contains("will not be shown again")
    );
    assert!(!page.body.contains(NEW) && !page.body.contains(A_TOKEN));
    let a_sealed = sealed(&w.a).await.unwrap();
    assert!(a_sealed.starts_with('v') && !a_sealed.contains(NEW));

    // The next reply goes out with the new token.
    w.customer_writes(
        &w.a,
        A_PNID,
        A_CUSTOMER,
        "Wanjiku",
        "What are your opening hours?",
    )
    .await;
    let sends = w.sends().await;
    let (_, auth, _) = sends.last().unwrap();
    assert_eq!(auth, &format!("Bearer {NEW}"));
}
