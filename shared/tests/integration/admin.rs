//! The owners' sign-in (issue 12) through the router, as a browser would use it: a stand-in
//! for Supabase Auth (wiremock) serves the JWKS of a test ES256 key and the token and logout
//! endpoints; two businesses in a real database; cookies carried from response to request.

use crate::helpers::{local_keys, seed_two_tenants, Seeded};
use alphadome::admin::auth::DevKey;
use alphadome::admin::session::SessionKey;
use alphadome::admin::AdminState;
use alphadome::store::Store;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::BTreeMap;
use tower::ServiceExt;
use uuid::Uuid;
use wiremock::matchers::{body_json, header as has_header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ANON_KEY: &str = "anon-key-for-tests";
const EMAIL: &str = "gideon@kassangas.example";
const PASSWORD: &str = "correct horse battery staple";
const HOST: &str = "admin.example.com";

/// A test signing key and its public JWK.
struct TestKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn test_key(kid: &str) -> TestKey {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref(); // 0x04 || X || Y
    TestKey {
        kid: kid.into(),
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
    }
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// The claims Supabase Auth issues for a signed-in owner of `brand`.
fn claims(supabase: &MockServer, brand: Uuid) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": format!("{}/auth/v1", supabase.uri()),
        "aud": "authenticated",
        "sub": Uuid::new_v4(),
        "email": EMAIL,
        "role": "authenticated",
        "iat": now,
        "exp": now + 3600,
        "app_metadata": {"brand_id": brand, "provider": "email"},
        "user_metadata": {},
    })
}

fn sign(key: &TestKey, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&h, claims, &key.encoding).unwrap()
}

/// A router with the dashboard of the stand-in Supabase project, over `pool`.
fn supabase_router(supabase: &MockServer, pool: &PgPool) -> Router {
    alphadome::http::admin::routes(AdminState::supabase(
        &supabase.uri(),
        SecretString::from(ANON_KEY),
        None,
        SessionKey::random(),
        pool.clone(),
    ))
}

async fn stand_in(keys: &[&TestKey]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/auth/v1/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(keys)))
        .mount(&server)
        .await;
    server
}

async fn seeded(pool: &PgPool) -> Seeded {
    seed_two_tenants(&Store::from_pool(pool.clone()), &local_keys()).await
}

/// A browser: keeps cookies between requests.
#[derive(Default)]
struct Browser {
    jar: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

impl Browser {
    async fn send(&mut self, router: &Router, request: Request<Body>) -> Page {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for c in headers.get_all(header::SET_COOKIE) {
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
            headers,
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
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
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

    /// Opens the sign-in page and returns the CSRF token its form carries.
    async fn csrf(&mut self, router: &Router) -> String {
        let page = self.get(router, "/admin/login").await;
        assert_eq!(page.status, StatusCode::OK);
        let marker = "name=\"csrf_token\" value=\"";
        let start = page.body.find(marker).expect("a CSRF field") + marker.len();
        let token = page.body[start..].split('"').next().unwrap().to_owned();
        assert_eq!(self.jar.get("alphadome_csrf"), Some(&token));
        token
    }

    /// POST /admin/session with an access token (the endpoint every sign-in completes through).
    async fn sign_in_with_token(
        &mut self,
        router: &Router,
        access: &str,
        refresh: Option<&str>,
    ) -> Page {
        let csrf = self.csrf(router).await;
        let mut form = vec![("access_token", access), ("csrf_token", csrf.as_str())];
        if let Some(r) = refresh {
            form.push(("refresh_token", r));
        }
        self.post(router, "/admin/session", &form).await
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn assert_signed_out(page: &Page) {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/admin/login"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_signs_in_with_a_password_and_sees_only_their_business(pool: PgPool) {
    let s = seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let access = sign(&key, &claims(&supabase, s.a.brand_id.0));
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .and(query_param("grant_type", "password"))
        .and(has_header("apikey", ANON_KEY))
        .and(body_json(json!({"email": EMAIL, "password": PASSWORD})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": access, "refresh_token": "r1"})),
        )
        .expect(1)
        .mount(&supabase)
        .await;
    let router = supabase_router(&supabase, &pool);
    let mut browser = Browser::default();

    let before = browser.get(&router, "/admin").await;
    assert_signed_out(&before);

    let csrf = browser.csrf(&router).await;
    let signed_in = browser
        .post(
            &router,
            "/admin/login",
            &[
                ("email", EMAIL),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), Some("/admin"));
    let session = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("alphadome_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/admin"] {
        assert!(
            session.contains(attribute),
            "{attribute} missing: {session}"
        );
    }
    // The browser cannot read the tokens.
    assert!(!session.contains(&access[..40]) && !session.contains("r1;"));

    let overview = browser.get(&router, "/admin").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.body.contains("Kassangas Music Shop"));
    assert!(!overview.body.contains("Mama Njeri Salon"));
    // A's one message today, not B's as well: counted under row-level security.
    assert!(
        overview.body.contains("<b>1</b>messages received"),
        "{}",
        overview.body
    );
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        let got = overview.headers.get(name).unwrap().to_str().unwrap();
        assert!(got.contains(value), "{name}: {got}");
    }
    assert!(!overview.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("unsafe-inline"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer(pool: PgPool) {
    seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "Invalid login credentials"}),
        ))
        .mount(&supabase)
        .await;
    let router = supabase_router(&supabase, &pool);
    let mut answers = Vec::new();
    for email in [EMAIL, "nobody@example.com"] {
        let mut browser = Browser::default();
        let csrf = browser.csrf(&router).await;
        let page = browser
            .post(
                &router,
                "/admin/login",
                &[
                    ("email", email),
                    ("password", "wrong"),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(!browser.jar.contains_key("alphadome_session"));
        answers.push(page.body.replace(&csrf, "CSRF"));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(!answers[0].contains("Invalid login credentials"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn tokens_that_are_expired_foreign_or_forged_are_refused(pool: PgPool) {
    let s = seeded(&pool).await;
    let key = test_key("k1");
    let stranger = test_key("k1"); // same kid, a key Supabase never published
                                   // The JWKS also carries a symmetric key: HS256 stays refused even then (not only because
                                   // an EC public key cannot verify an HMAC).
    let supabase = MockServer::start().await;
    let mut set = jwks(&[&key]);
    set["keys"].as_array_mut().unwrap().push(json!({
        "kty": "oct", "alg": "HS256", "kid": "sym", "k": URL_SAFE_NO_PAD.encode(ANON_KEY)
    }));
    Mock::given(method("GET"))
        .and(path("/auth/v1/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(set))
        .mount(&supabase)
        .await;
    let router = supabase_router(&supabase, &pool);
    let good = claims(&supabase, s.a.brand_id.0);
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        c
    };
    let now = chrono::Utc::now().timestamp();
    let none_token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    let hs256_token = |kid: &str| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(ANON_KEY.as_bytes())).unwrap()
    };
    let cases = [
        ("expired", sign(&key, &with("exp", json!(now - 3600)))),
        (
            "wrong issuer",
            sign(&key, &with("iss", json!("https://evil.example/auth/v1"))),
        ),
        ("wrong audience", sign(&key, &with("aud", json!("anon")))),
        ("no audience", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("aud");
            sign(&key, &c)
        }),
        ("alg none", none_token),
        ("HS256 under the EC key's kid", hs256_token("k1")),
        ("HS256 under a symmetric JWK", hs256_token("sym")),
        ("signed by another key", sign(&stranger, &good)),
        ("a changed payload", {
            let t = sign(&key, &good);
            let parts: Vec<&str> = t.split('.').collect();
            let forged = with("app_metadata", json!({"brand_id": s.b.brand_id.0}));
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(forged.to_string()),
                parts[2]
            )
        }),
    ];
    for (what, token) in cases {
        let mut browser = Browser::default();
        let page = browser.sign_in_with_token(&router, &token, None).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{what} was accepted");
        assert!(!browser.jar.contains_key("alphadome_session"), "{what}");
        assert_signed_out(&browser.get(&router, "/admin").await);
    }
    // The control: the good token signs in.
    let mut browser = Browser::default();
    let page = browser
        .sign_in_with_token(&router, &sign(&key, &good), None)
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_brand_in_user_metadata_shows_no_business(pool: PgPool) {
    let s = seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let router = supabase_router(&supabase, &pool);
    let mut c = claims(&supabase, s.a.brand_id.0);
    c["app_metadata"] = json!({"provider": "email"});
    c["user_metadata"] = json!({"brand_id": s.a.brand_id.0});
    let mut browser = Browser::default();
    let page = browser
        .sign_in_with_token(&router, &sign(&key, &c), None)
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let overview = browser.get(&router, "/admin").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("not linked to a business"));
    assert!(!overview.body.contains("Kassangas"));
    // A top-level brand_id (an auth hook's claim) is honoured.
    let mut hooked = claims(&supabase, s.a.brand_id.0);
    hooked["app_metadata"] = json!({"provider": "email"});
    hooked["brand_id"] = json!(s.a.brand_id.0);
    let mut browser = Browser::default();
    browser
        .sign_in_with_token(&router, &sign(&key, &hooked), None)
        .await;
    let overview = browser.get(&router, "/admin").await;
    assert!(overview.body.contains("Kassangas Music Shop"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_unknown_key_id_makes_the_jwks_be_read_again(pool: PgPool) {
    let s = seeded(&pool).await;
    let old = test_key("old");
    let new = test_key("new");
    let supabase = MockServer::start().await;
    // First read: only the old key; every later read: both (Supabase rotated).
    Mock::given(method("GET"))
        .and(path("/auth/v1/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&old])))
        .up_to_n_times(1)
        .mount(&supabase)
        .await;
    Mock::given(method("GET"))
        .and(path("/auth/v1/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&old, &new])))
        .mount(&supabase)
        .await;
    let router = supabase_router(&supabase, &pool);
    let c = claims(&supabase, s.a.brand_id.0);
    let mut browser = Browser::default();
    assert_eq!(
        browser
            .sign_in_with_token(&router, &sign(&old, &c), None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(browser.get(&router, "/admin").await.status, StatusCode::OK);
    let jwks_reads = || async {
        supabase
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method.as_str() == "GET")
            .count()
    };
    assert_eq!(jwks_reads().await, 1, "the JWKS is cached");
    let mut browser = Browser::default();
    assert_eq!(
        browser
            .sign_in_with_token(&router, &sign(&new, &c), None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        jwks_reads().await,
        2,
        "an unknown kid re-reads the JWKS once"
    );
    // Made-up key ids do not turn into a stream of requests to Supabase.
    for i in 0..5 {
        let mut browser = Browser::default();
        let page = browser
            .sign_in_with_token(&router, &sign(&test_key(&format!("made-up-{i}")), &c), None)
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    assert!(jwks_reads().await <= 3, "{} JWKS reads", jwks_reads().await);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn posts_without_the_csrf_token_are_forbidden(pool: PgPool) {
    let s = seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let router = supabase_router(&supabase, &pool);
    let token = sign(&key, &claims(&supabase, s.a.brand_id.0));
    let mut browser = Browser::default();
    let csrf = browser.csrf(&router).await;
    let wrong = "x".repeat(csrf.len());
    for form in [
        vec![("access_token", token.as_str())],
        vec![
            ("access_token", token.as_str()),
            ("csrf_token", wrong.as_str()),
        ],
    ] {
        let page = browser.post(&router, "/admin/session", &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(!browser.jar.contains_key("alphadome_session"));
    }
    let page = browser
        .post(
            &router,
            "/admin/login",
            &[("email", EMAIL), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Signed in, a sign-out without the token does not sign out.
    browser.sign_in_with_token(&router, &token, None).await;
    let page = browser.post(&router, "/admin/logout", &[]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(browser.get(&router, "/admin").await.status, StatusCode::OK);
    // A form token without the cookie (another site's form) is refused too.
    let mut other = Browser::default();
    let page = other
        .post(
            &router,
            "/admin/session",
            &[("access_token", &token), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_session_cookie_with_any_changed_byte_is_signed_out(pool: PgPool) {
    let s = seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let router = supabase_router(&supabase, &pool);
    let token = sign(&key, &claims(&supabase, s.a.brand_id.0));
    let mut browser = Browser::default();
    browser.sign_in_with_token(&router, &token, None).await;
    assert_eq!(browser.get(&router, "/admin").await.status, StatusCode::OK);
    let sealed = browser.jar["alphadome_session"].clone();
    let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("authenticated"));
    for i in [0, bytes.len() / 2, bytes.len() - 1] {
        bytes[i] ^= 0x20;
        browser
            .jar
            .insert("alphadome_session".into(), URL_SAFE_NO_PAD.encode(&bytes));
        assert_signed_out(&browser.get(&router, "/admin").await);
        bytes[i] ^= 0x20;
    }
    // The raw token as a cookie (a forged, unsealed session) is not accepted either.
    browser.jar.insert("alphadome_session".into(), token);
    assert_signed_out(&browser.get(&router, "/admin").await);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn sign_out_revokes_at_supabase_and_clears_the_cookie(pool: PgPool) {
    let s = seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let token = sign(&key, &claims(&supabase, s.a.brand_id.0));
    Mock::given(method("POST"))
        .and(path("/auth/v1/logout"))
        .and(has_header("apikey", ANON_KEY))
        .and(has_header(
            "authorization",
            format!("Bearer {token}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&supabase)
        .await;
    let router = supabase_router(&supabase, &pool);
    let mut browser = Browser::default();
    browser
        .sign_in_with_token(&router, &token, Some("r1"))
        .await;
    let overview = browser.get(&router, "/admin").await;
    assert_eq!(overview.status, StatusCode::OK);
    let csrf = browser.jar["alphadome_csrf"].clone();
    let out = browser
        .post(&router, "/admin/logout", &[("csrf_token", &csrf)])
        .await;
    assert_signed_out(&out);
    assert!(out
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("alphadome_session=;") && c.contains("Max-Age=0")));
    assert_signed_out(&browser.get(&router, "/admin").await);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_expired_access_token_is_refreshed_with_the_refresh_token(pool: PgPool) {
    let s = seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let mut expired = claims(&supabase, s.a.brand_id.0);
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 600);
    let fresh = sign(&key, &claims(&supabase, s.a.brand_id.0));
    Mock::given(method("POST"))
        .and(path("/auth/v1/token"))
        .and(query_param("grant_type", "refresh_token"))
        .and(has_header("apikey", ANON_KEY))
        .and(body_json(json!({"refresh_token": "r1"})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": fresh, "refresh_token": "r2"})),
        )
        .expect(1)
        .mount(&supabase)
        .await;
    let router = supabase_router(&supabase, &pool);
    let mut browser = Browser::default();
    let page = browser
        .sign_in_with_token(&router, &sign(&key, &expired), Some("r1"))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let overview = browser.get(&router, "/admin").await;
    assert!(overview.body.contains("Kassangas Music Shop"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn a_business_name_with_markup_is_shown_as_text(pool: PgPool) {
    let s = seeded(&pool).await;
    sqlx::query("update public.brands set name = $1 where id = $2")
        .bind("Kassangas <script>alert(1)</script>")
        .bind(s.a.brand_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update alphadome.bot_tenants set client_name = $1 where id = $2")
        .bind("<img src=x onerror=alert(2)>")
        .bind(s.a.id)
        .execute(&pool)
        .await
        .unwrap();
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let router = supabase_router(&supabase, &pool);
    let mut browser = Browser::default();
    browser
        .sign_in_with_token(
            &router,
            &sign(&key, &claims(&supabase, s.a.brand_id.0)),
            None,
        )
        .await;
    let overview = browser.get(&router, "/admin").await;
    assert_eq!(overview.status, StatusCode::OK);
    // Escaped by the template engine (askama writes numeric character references).
    assert!(overview
        .body
        .contains("Kassangas &#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(overview
        .body
        .contains("&#60;img src=x onerror=alert(2)&#62;"));
    assert!(!overview.body.contains("<script") && !overview.body.contains("<img"));
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn development_tokens_sign_in_locally_and_nowhere_else(pool: PgPool) {
    let s = seeded(&pool).await;
    let dev = DevKey::from_secret(SecretString::from("ab".repeat(32)));
    let token = dev.issue(
        s.b.brand_id.0,
        Some("njeri@example.com"),
        std::time::Duration::from_secs(60),
    );
    let local = alphadome::http::admin::routes(AdminState::development(dev.clone(), pool.clone()));
    let mut browser = Browser::default();
    let page = browser.sign_in_with_token(&local, &token, None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let overview = browser.get(&local, "/admin").await;
    assert!(overview.body.contains("Mama Njeri Salon"));
    assert!(!overview.body.contains("Kassangas"));
    // The sign-in page is the paste-a-token form, never a password form.
    let login = browser.get(&local, "/admin/login").await;
    assert!(login.body.contains("name=\"access_token\"") && !login.body.contains("password"));

    // A deployment configured for Supabase does not trust it.
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let router = supabase_router(&supabase, &pool);
    let mut browser = Browser::default();
    let page = browser.sign_in_with_token(&router, &token, None).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
}

/// The one router (webhook, health and dashboard), as `serve` and the Lambdas build it.
fn core_router(pool: &PgPool, admin: Option<AdminState>) -> Router {
    let store = Store::from_pool(pool.clone());
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build(),
    );
    let ingress = alphadome::ingress::Ingress::new(
        store.clone(),
        local_keys(),
        alphadome::queue::JobQueue::Sqs {
            client: sqs,
            url: "unused".into(),
        },
        None,
        None,
        None,
        std::time::Duration::from_secs(60),
    );
    alphadome::http::router_with_admin(
        alphadome::http::HttpState {
            ingress,
            store,
            local_queue: None,
        },
        admin,
    )
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_core_router_serves_the_dashboard_only_when_sign_in_is_configured(pool: PgPool) {
    let s = seeded(&pool).await;
    let dev = DevKey::from_secret(SecretString::from("cd".repeat(32)));
    let with = core_router(
        &pool,
        Some(AdminState::development(dev.clone(), pool.clone())),
    );
    let mut browser = Browser::default();
    let token = dev.issue(s.a.brand_id.0, None, std::time::Duration::from_secs(60));
    assert_eq!(
        browser.sign_in_with_token(&with, &token, None).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(browser
        .get(&with, "/admin")
        .await
        .body
        .contains("Kassangas Music Shop"));
    assert_eq!(browser.get(&with, "/healthz").await.status, StatusCode::OK);
    let css = browser.get(&with, "/admin/assets/admin.css").await;
    assert!(css.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));

    let without = core_router(&pool, None);
    let mut browser = Browser::default();
    assert_eq!(
        browser.get(&without, "/admin/login").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        browser.get(&without, "/healthz").await.status,
        StatusCode::OK
    );
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_recommended_dashboard_login_role_reads_only_as_the_owner(pool: PgPool) {
    let s = seeded(&pool).await;
    // The role the README tells operators to create for ADMIN_DATABASE_URL.
    sqlx::raw_sql(
        "do $$ begin
           if not exists (select 1 from pg_roles where rolname = 'alphadome_admin_test') then
             create role alphadome_admin_test login noinherit;
           end if;
         exception when duplicate_object or unique_violation then null;
         end $$;
         grant authenticated to alphadome_admin_test;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let db: String = sqlx::query_scalar("select current_database()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let server = base
        .rsplit_once('/')
        .unwrap()
        .0
        .replace("postgres@", "alphadome_admin_test@");
    let admin_pool = PgPool::connect(&format!("{server}/{db}")).await.unwrap();
    // On its own the login role reaches nothing.
    let direct = sqlx::query("select count(*) from alphadome.bot_tenants")
        .execute(&admin_pool)
        .await;
    assert!(direct
        .unwrap_err()
        .to_string()
        .contains("permission denied"));

    let dev = DevKey::from_secret(SecretString::from("ef".repeat(32)));
    let router =
        alphadome::http::admin::routes(AdminState::development(dev.clone(), admin_pool.clone()));
    let mut browser = Browser::default();
    let token = dev.issue(s.a.brand_id.0, None, std::time::Duration::from_secs(60));
    browser.sign_in_with_token(&router, &token, None).await;
    let overview = browser.get(&router, "/admin").await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.body.contains("Kassangas Music Shop"));
    assert!(!overview.body.contains("Mama Njeri Salon"));
    assert!(overview.body.contains("<b>1</b>messages received"));
    admin_pool.close().await;
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn the_usage_page_shows_the_owners_own_days_and_warns_at_80_percent_of_the_budget(
    pool: PgPool,
) {
    let s = seeded(&pool).await;
    // As the pipeline writes them: A's day and budget, and B's much busier day.
    for (tenant, counts) in [
        (
            s.a.id,
            json!({"received": 7, "reply:faq": 5, "reply:ai": 1, "ai_prompt_tokens": 800, "ai_completion_tokens": 50}),
        ),
        (s.b.id, json!({"received": 993, "reply:faq": 990})),
    ] {
        sqlx::query(
            "insert into alphadome.bot_usage_daily (bot_tenant_id, day, counts)
             values ($1, (now() at time zone 'utc')::date, $2)
             on conflict (bot_tenant_id, day) do update set counts = excluded.counts",
        )
        .bind(tenant)
        .bind(&counts)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "insert into alphadome.bot_budgets (bot_tenant_id, monthly_ai_tokens) values ($1, 1000)",
    )
    .bind(s.a.id)
    .execute(&pool)
    .await
    .unwrap();
    let dev = DevKey::from_secret(SecretString::from("cd".repeat(32)));
    let token = dev.issue(s.a.brand_id.0, None, std::time::Duration::from_secs(60));
    let local = alphadome::http::admin::routes(AdminState::development(dev, pool.clone()));
    let mut browser = Browser::default();
    browser.sign_in_with_token(&local, &token, None).await;

    let usage = browser.get(&local, "/admin/usage").await;
    assert_eq!(usage.status, StatusCode::OK);
    assert!(usage.body.contains("<svg"), "a server-rendered chart");
    assert!(
        usage.body.contains("<b>7</b>messages received"),
        "{}",
        usage.body
    );
    assert!(
        usage.body.contains("850 / 1000"),
        "AI tokens against the budget"
    );
    assert!(usage.body.contains("85% of this month"), "the 80 % warning");
    assert!(
        !usage.body.contains("993"),
        "never another business's figures"
    );
    let overview = browser.get(&local, "/admin").await;
    assert!(
        overview.body.contains("85% of this month"),
        "the overview warns too"
    );

    // Signed out: no usage.
    let mut stranger = Browser::default();
    assert_signed_out(&stranger.get(&local, "/admin/usage").await);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn an_owner_signs_in_with_a_code_sent_by_email(pool: PgPool) {
    let s = seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    let access = sign(&key, &claims(&supabase, s.a.brand_id.0));
    Mock::given(method("POST"))
        .and(path("/auth/v1/otp"))
        .and(has_header("apikey", ANON_KEY))
        .and(body_json(json!({"email": EMAIL, "create_user": false})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&supabase)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/verify"))
        .and(has_header("apikey", ANON_KEY))
        .and(body_json(
            json!({"type": "email", "email": EMAIL, "token": "123456"}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": access, "refresh_token": "r1"})),
        )
        .expect(1)
        .mount(&supabase)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/verify"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"error_code": "otp_expired", "msg": "Token has expired or is invalid"}),
        ))
        .mount(&supabase)
        .await;
    let router = supabase_router(&supabase, &pool);
    let mut browser = Browser::default();
    let login = browser.get(&router, "/admin/login").await;
    assert!(login.body.contains("action=\"/admin/login/code\""));
    let csrf = browser.csrf(&router).await;

    let sent = browser
        .post(
            &router,
            "/admin/login/code",
            &[("email", EMAIL), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert!(sent.body.contains("action=\"/admin/login/verify\""));

    // A wrong code: refused, no session, Supabase's words not repeated.
    let wrong = browser
        .post(
            &router,
            "/admin/login/verify",
            &[("email", EMAIL), ("code", "000000"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(!browser.jar.contains_key("alphadome_session"));
    assert!(!wrong.body.contains("expired or is invalid"));

    let signed_in = browser
        .post(
            &router,
            "/admin/login/verify",
            &[
                ("email", EMAIL),
                ("code", " 123 456 "),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
    assert_eq!(signed_in.location(), Some("/admin"));
    let overview = browser.get(&router, "/admin").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("Kassangas Music Shop"));

    // Without the CSRF token neither step runs.
    let mut stranger = Browser::default();
    let forged = stranger
        .post(&router, "/admin/login/code", &[("email", EMAIL)])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "alphadome::store::MIGRATOR")]
async fn asking_for_a_code_says_the_same_whether_or_not_the_email_has_an_account(pool: PgPool) {
    seeded(&pool).await;
    let key = test_key("k1");
    let supabase = stand_in(&[&key]).await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/otp"))
        .and(body_json(json!({"email": EMAIL, "create_user": false})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&supabase)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/v1/otp"))
        .respond_with(ResponseTemplate::new(422).set_body_json(
            json!({"error_code": "otp_disabled", "msg": "Signups not allowed for otp"}),
        ))
        .mount(&supabase)
        .await;
    let router = supabase_router(&supabase, &pool);
    let mut answers = Vec::new();
    for email in [EMAIL, "nobody@example.com"] {
        let mut browser = Browser::default();
        let csrf = browser.csrf(&router).await;
        let page = browser
            .post(
                &router,
                "/admin/login/code",
                &[("email", email), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        answers.push(page.body.replace(&csrf, "CSRF").replace(email, "EMAIL"));
    }
    assert_eq!(answers[0], answers[1]);
    assert!(!answers[0].contains("Signups not allowed"));
    let asked = supabase.received_requests().await.unwrap();
    assert_eq!(
        asked
            .iter()
            .filter(|r| r.url.path() == "/auth/v1/otp")
            .count(),
        2
    );
}
