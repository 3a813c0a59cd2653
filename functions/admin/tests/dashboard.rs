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
        .contains("&lt;script&gt;alert(1)&lt;/script&gt; hi"));
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
           select $1, $2, '2547110' || lpad(g::text, 5, '0'), 'Customer ' || g, now()
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
