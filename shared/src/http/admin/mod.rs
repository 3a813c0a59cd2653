//! The owners' dashboard over HTTP: `GET /admin` (overview), `GET/POST /admin/login`,
//! `POST /admin/session`, `POST /admin/logout`, the conversations (`GET /admin/conversations`,
//! `GET /admin/conversations/{user_id}`, `POST .../reply`, `POST .../resume`), the assistant's
//! switch (`POST /admin/assistant`) and the stylesheet. Handlers only parse, call
//! `crate::admin` and render; every POST checks its CSRF token first; every response carries
//! the security headers.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::admin::auth::{Owner, TokenError};
use crate::admin::session::{csrf_matches, new_csrf_token, Session};
use crate::admin::supabase::{AuthApiError, SupabaseAuth};
use crate::admin::{html, AdminState};
use pages::{
    mark_handover_done, reply_as_person, resume_assistant, show_conversations, show_handovers,
    show_overview, show_transcript, show_usage, switch_assistant,
};

mod knowledge;
mod pages;
mod settings;

/// The session cookie (sealed Supabase tokens).
pub const SESSION_COOKIE: &str = "alphadome_session";
/// The CSRF cookie; every form repeats its value in `csrf_token`.
pub const CSRF_COOKIE: &str = "alphadome_csrf";
/// The Content-Security-Policy of every dashboard response: nothing inline, nothing foreign.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";
/// How long the session cookie lives; the tokens inside decide whether it is still good.
const SESSION_MAX_AGE_SECS: u64 = 7 * 24 * 3600;

/// The dashboard's routes, with their own state; merged into the one router.
pub fn routes(state: AdminState) -> Router {
    Router::new()
        .route("/admin", get(show_overview))
        .route("/admin/login", get(show_login).post(sign_in_with_password))
        .route("/admin/login/code", post(send_sign_in_code))
        .route("/admin/login/verify", post(sign_in_with_code))
        .route("/admin/session", post(create_session))
        .route("/admin/logout", post(sign_out))
        .route("/admin/conversations", get(show_conversations))
        .route("/admin/conversations/{user_id}", get(show_transcript))
        .route(
            "/admin/conversations/{user_id}/reply",
            post(reply_as_person),
        )
        .route(
            "/admin/conversations/{user_id}/resume",
            post(resume_assistant),
        )
        .route(
            "/admin/assistant",
            get(settings::show_assistant).post(switch_assistant),
        )
        .route("/admin/assistant/settings", post(settings::save_assistant))
        .route(
            "/admin/settings",
            get(settings::show_settings).post(settings::save_settings),
        )
        .route("/admin/settings/token", post(settings::replace_token))
        .route("/admin/knowledge", get(knowledge::show_knowledge))
        .route("/admin/knowledge/try", post(knowledge::try_message))
        .route("/admin/knowledge/entries", post(knowledge::add_entry))
        .route(
            "/admin/knowledge/entries/{id}",
            get(knowledge::show_entry).post(knowledge::update_entry),
        )
        .route(
            "/admin/knowledge/entries/{id}/active",
            post(knowledge::set_entry_active),
        )
        .route(
            "/admin/knowledge/entries/{id}/delete",
            post(knowledge::delete_entry),
        )
        .route("/admin/knowledge/phrasings", post(knowledge::add_phrasing))
        .route(
            "/admin/knowledge/phrasings/{id}/delete",
            post(knowledge::delete_phrasing),
        )
        .route(
            "/admin/knowledge/import",
            post(knowledge::import_csv).layer(DefaultBodyLimit::max(knowledge::IMPORT_BODY_LIMIT)),
        )
        .route("/admin/knowledge/export.csv", get(knowledge::export_csv))
        .route(
            "/admin/knowledge/unanswered",
            get(knowledge::show_unanswered),
        )
        .route(
            "/admin/knowledge/unanswered/{id}",
            get(knowledge::show_teach),
        )
        .route("/admin/usage", get(show_usage))
        .route("/admin/handovers", get(show_handovers))
        .route("/admin/handovers/{user_id}/done", post(mark_handover_done))
        .route("/admin/assets/admin.css", get(stylesheet))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::map_response(add_security_headers))
        .with_state(state)
}

async fn add_security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::STYLESHEET,
    )
        .into_response()
}

// ----- cookies ------------------------------------------------------------------------------

/// The value of cookie `name` in the request.
fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether the request came to a loopback host (plain-HTTP development): the only place our
/// cookies go without `Secure`.
fn is_loopback(headers: &HeaderMap) -> bool {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or("").to_owned()
    };
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]")
}

fn cookie(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: u64,
    same_site: &str,
) -> HeaderValue {
    let secure = if is_loopback(headers) { "" } else { "; Secure" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/admin; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are base64url")
}

fn session_cookie(headers: &HeaderMap, state: &AdminState, session: &Session) -> HeaderValue {
    cookie(
        headers,
        SESSION_COOKIE,
        &state.session_key.seal(session),
        SESSION_MAX_AGE_SECS,
        "Lax",
    )
}

fn cleared_session_cookie(headers: &HeaderMap) -> HeaderValue {
    cookie(headers, SESSION_COOKIE, "", 0, "Lax")
}

/// The request's CSRF token, or a new one with the cookie that carries it.
fn csrf_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match read_cookie(headers, CSRF_COOKIE).filter(|t| t.len() >= 32) {
        Some(token) => (token, None),
        None => {
            let token = new_csrf_token();
            let set = cookie(headers, CSRF_COOKIE, &token, SESSION_MAX_AGE_SECS, "Strict");
            (token, Some(set))
        }
    }
}

fn csrf_ok(headers: &HeaderMap, form_token: Option<&str>) -> bool {
    csrf_matches(read_cookie(headers, CSRF_COOKIE).as_deref(), form_token)
}

// ----- responses ----------------------------------------------------------------------------

fn html_response(status: StatusCode, body: String, cookies: Vec<HeaderValue>) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

fn redirect(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = match HeaderValue::from_str(to) {
        Ok(to) => (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    for c in cookies {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

fn csrf_refused() -> Response {
    html_response(
        StatusCode::FORBIDDEN,
        html::message_page(
            "Form expired",
            "This form has expired",
            &["Please go back, reload the page and try again."],
            Some(("/admin/login", "Sign in")),
        ),
        vec![],
    )
}

/// The sign-in form this deployment offers.
fn login_mode(state: &AdminState) -> html::LoginMode {
    if state.supabase.is_some() {
        html::LoginMode::Supabase
    } else {
        html::LoginMode::Development
    }
}

fn login_with_error(
    headers: &HeaderMap,
    state: &AdminState,
    status: StatusCode,
    error: &str,
) -> Response {
    let (csrf, set) = csrf_token(headers);
    html_response(
        status,
        html::login_page(&csrf, login_mode(state), Some(error), None),
        set.into_iter().collect(),
    )
}

/// What every sign-in failure says: never whether the e-mail exists.
const SIGN_IN_REFUSED: &str = "That did not work. Check your e-mail and password and try again.";
const TOKEN_REFUSED: &str = "That sign-in did not work. Please sign in again.";
const UNAVAILABLE: &str = "Sign-in is unavailable right now. Please try again in a minute.";

// ----- authentication -----------------------------------------------------------------------

enum AuthFailure {
    SignedOut,
    Unavailable,
}

/// The owner of `session`, refreshing an expired access token when a refresh token and
/// Supabase are there; `Some(new)` when the session changed and its cookie must be re-sent.
async fn authenticate(
    state: &AdminState,
    session: Session,
) -> Result<(Owner, Option<Session>), AuthFailure> {
    match state.verifier.verify(&session.access_token).await {
        Ok(owner) => Ok((owner, None)),
        Err(TokenError::Expired) => {
            let (Some(auth), Some(refresh)) = (&state.supabase, &session.refresh_token) else {
                return Err(AuthFailure::SignedOut);
            };
            let fresh = auth.refresh(refresh).await.map_err(|e| match e {
                AuthApiError::Refused => AuthFailure::SignedOut,
                AuthApiError::Unavailable => AuthFailure::Unavailable,
            })?;
            match state.verifier.verify(&fresh.access_token).await {
                Ok(owner) => Ok((owner, Some(fresh))),
                Err(TokenError::KeysUnavailable) => Err(AuthFailure::Unavailable),
                Err(_) => Err(AuthFailure::SignedOut),
            }
        }
        Err(TokenError::KeysUnavailable) => Err(AuthFailure::Unavailable),
        Err(TokenError::Invalid) => Err(AuthFailure::SignedOut),
    }
}

// ----- handlers -----------------------------------------------------------------------------

/// GET /admin/login
async fn show_login(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let (csrf, set) = csrf_token(&headers);
    html_response(
        StatusCode::OK,
        html::login_page(&csrf, login_mode(&state), None, None),
        set.into_iter().collect(),
    )
}

#[derive(Deserialize)]
struct SessionForm {
    access_token: Option<String>,
    refresh_token: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/session: an access token (and refresh token) from any sign-in becomes the
/// session cookie.
async fn create_session(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<SessionForm>,
) -> Response {
    if !csrf_ok(&headers, form.csrf_token.as_deref()) {
        return csrf_refused();
    }
    let Some(access_token) = form
        .access_token
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
    else {
        return login_with_error(&headers, &state, StatusCode::UNAUTHORIZED, TOKEN_REFUSED);
    };
    let session = Session {
        access_token,
        refresh_token: form.refresh_token.filter(|t| !t.is_empty()),
    };
    start_session(&state, &headers, session).await
}

/// Verifies `session` and, if good, sets its cookie (and a fresh CSRF token) and goes to the
/// overview.
async fn start_session(state: &AdminState, headers: &HeaderMap, session: Session) -> Response {
    match authenticate(state, session.clone()).await {
        Ok((_, refreshed)) => {
            let session = refreshed.unwrap_or(session);
            let csrf = cookie(
                headers,
                CSRF_COOKIE,
                &new_csrf_token(),
                SESSION_MAX_AGE_SECS,
                "Strict",
            );
            redirect(
                "/admin",
                vec![session_cookie(headers, state, &session), csrf],
            )
        }
        Err(AuthFailure::SignedOut) => {
            login_with_error(headers, state, StatusCode::UNAUTHORIZED, TOKEN_REFUSED)
        }
        Err(AuthFailure::Unavailable) => {
            login_with_error(headers, state, StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
        }
    }
}

/// The start of every owner's POST: the CSRF token first, then the session.
async fn signed_in_post(
    state: &AdminState,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<SignedIn, Response> {
    if !csrf_ok(headers, csrf) {
        return Err(csrf_refused());
    }
    signed_in(state, headers).await
}

/// [`signed_in_post`] and the id of what the POST acts on (a number, a customer): anything
/// that does not parse is a 404.
async fn signed_in_post_for(
    state: &AdminState,
    headers: &HeaderMap,
    csrf: Option<&str>,
    id: Option<&str>,
) -> Result<(SignedIn, Uuid), Response> {
    let me = signed_in_post(state, headers, csrf).await?;
    match id.and_then(|id| Uuid::parse_str(id.trim()).ok()) {
        Some(id) => Ok((me, id)),
        None => Err(html_response(
            StatusCode::NOT_FOUND,
            html::not_found_page(),
            me.cookies,
        )),
    }
}

/// The preamble of every sign-in post that goes to Supabase Auth: the CSRF check, then the
/// project's client (without one, production sign-in does not exist here: 404).
#[allow(clippy::result_large_err)] // a Response, as every handler returns
fn supabase_post(
    state: &AdminState,
    headers: &HeaderMap,
    csrf: Option<&str>,
) -> Result<SupabaseAuth, Response> {
    if !csrf_ok(headers, csrf) {
        return Err(csrf_refused());
    }
    state
        .supabase
        .clone()
        .ok_or_else(|| login_with_error(headers, state, StatusCode::NOT_FOUND, TOKEN_REFUSED))
}

#[derive(Deserialize)]
struct PasswordForm {
    email: Option<String>,
    password: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/login: e-mail and password, checked by Supabase Auth.
async fn sign_in_with_password(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let auth = match supabase_post(&state, &headers, form.csrf_token.as_deref()) {
        Ok(auth) => auth,
        Err(page) => return page,
    };
    let (Some(email), Some(password)) = (
        form.email
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty()),
        form.password
            .filter(|p| !p.is_empty())
            .map(SecretString::from),
    ) else {
        return login_with_error(&headers, &state, StatusCode::UNAUTHORIZED, SIGN_IN_REFUSED);
    };
    match auth.sign_in_with_password(&email, &password).await {
        Ok(session) => start_session(&state, &headers, session).await,
        Err(AuthApiError::Refused) => {
            login_with_error(&headers, &state, StatusCode::UNAUTHORIZED, SIGN_IN_REFUSED)
        }
        Err(AuthApiError::Unavailable) => login_with_error(
            &headers,
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
        ),
    }
}

#[derive(Deserialize)]
struct CodeRequestForm {
    email: Option<String>,
    csrf_token: Option<String>,
}

/// What the page says after a code was asked for, whether or not the address has an account.
const CODE_SENT: &str =
    "If that address belongs to an account, a sign-in code is on its way. Enter it below.";
/// What every refused code says.
const CODE_REFUSED: &str = "That code did not work. Check it, or ask for a new one.";

/// POST /admin/login/code: asks Supabase Auth to e-mail a one-time code. The page that
/// follows is the same whether or not the address has an account.
async fn send_sign_in_code(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<CodeRequestForm>,
) -> Response {
    let auth = match supabase_post(&state, &headers, form.csrf_token.as_deref()) {
        Ok(auth) => auth,
        Err(page) => return page,
    };
    let Some(email) = form
        .email
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty() && e.len() <= 320)
    else {
        return login_with_error(
            &headers,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            SIGN_IN_REFUSED,
        );
    };
    match auth.send_email_code(&email).await {
        Ok(()) | Err(AuthApiError::Refused) => {
            let (csrf, set) = csrf_token(&headers);
            html_response(
                StatusCode::OK,
                html::login_page(&csrf, html::LoginMode::Code(email), None, Some(CODE_SENT)),
                set.into_iter().collect(),
            )
        }
        Err(AuthApiError::Unavailable) => login_with_error(
            &headers,
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
        ),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    email: Option<String>,
    code: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/login/verify: the e-mailed code, checked by Supabase Auth (`type: email`).
async fn sign_in_with_code(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let auth = match supabase_post(&state, &headers, form.csrf_token.as_deref()) {
        Ok(auth) => auth,
        Err(page) => return page,
    };
    let email = form.email.map(|e| e.trim().to_owned()).unwrap_or_default();
    let code: String = form
        .code
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let refused = |status| {
        let (csrf, set) = csrf_token(&headers);
        html_response(
            status,
            html::login_page(
                &csrf,
                html::LoginMode::Code(email.clone()),
                Some(CODE_REFUSED),
                None,
            ),
            set.into_iter().collect(),
        )
    };
    if email.is_empty() || code.is_empty() || code.len() > 64 {
        return refused(StatusCode::UNAUTHORIZED);
    }
    match auth
        .verify_email_code(&email, &SecretString::from(code))
        .await
    {
        Ok(session) => start_session(&state, &headers, session).await,
        Err(AuthApiError::Refused) => refused(StatusCode::UNAUTHORIZED),
        Err(AuthApiError::Unavailable) => login_with_error(
            &headers,
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
        ),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf_token: Option<String>,
}

/// POST /admin/logout: revokes at Supabase (when configured) and clears the cookie.
async fn sign_out(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&headers, form.csrf_token.as_deref()) {
        return csrf_refused();
    }
    let session = read_cookie(&headers, SESSION_COOKIE).and_then(|v| state.session_key.open(&v));
    if let (Some(auth), Some(session)) = (&state.supabase, session) {
        if auth.sign_out(&session.access_token).await.is_err() {
            tracing::warn!(
                "sign-out: Supabase could not revoke the session; the cookie is cleared anyway"
            );
        }
    }
    redirect("/admin/login", vec![cleared_session_cookie(&headers)])
}

/// A verified owner with a business, and what every page's response needs.
struct SignedIn {
    owner: Owner,
    csrf: String,
    cookies: Vec<HeaderValue>,
}

fn unavailable_page() -> Response {
    html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        html::message_page("Unavailable", "Unavailable", &[UNAVAILABLE], None),
        vec![],
    )
}

fn error_page(cookies: Vec<HeaderValue>) -> Response {
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        html::message_page(
            "Something went wrong",
            "Something went wrong",
            &["Please try again in a minute."],
            Some(("/admin", "Back to the overview")),
        ),
        cookies,
    )
}

/// The signed-in owner of the request, or the response that replaces the page: the sign-in
/// page when signed out, a polite page when the account has no business, 503 when sign-in
/// cannot be checked now.
async fn signed_in(state: &AdminState, headers: &HeaderMap) -> Result<SignedIn, Response> {
    let Some(session) =
        read_cookie(headers, SESSION_COOKIE).and_then(|v| state.session_key.open(&v))
    else {
        return Err(redirect("/admin/login", vec![]));
    };
    let (owner, refreshed) = match authenticate(state, session).await {
        Ok(ok) => ok,
        Err(AuthFailure::SignedOut) => {
            return Err(redirect(
                "/admin/login",
                vec![cleared_session_cookie(headers)],
            ))
        }
        Err(AuthFailure::Unavailable) => return Err(unavailable_page()),
    };
    let (csrf, set_csrf) = csrf_token(headers);
    let mut cookies: Vec<HeaderValue> = set_csrf.into_iter().collect();
    if let Some(fresh) = &refreshed {
        cookies.push(session_cookie(headers, state, fresh));
    }
    if owner.brand_id.is_none() {
        return Err(html_response(
            StatusCode::OK,
            html::no_brand_page(&csrf, owner.email.as_deref()),
            cookies,
        ));
    }
    Ok(SignedIn {
        owner,
        csrf,
        cookies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_except_on_a_loopback_host() {
        let mut h = HeaderMap::new();
        for (host, secure) in [
            ("localhost:3000", false),
            ("127.0.0.1:3000", false),
            ("[::1]:3000", false),
            ("admin.example.com", true),
            ("localhost.example.com", true),
        ] {
            h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            let c = cookie(&h, "n", "v", 1, "Lax");
            assert_eq!(c.to_str().unwrap().ends_with("; Secure"), secure, "{host}");
            assert!(c.to_str().unwrap().contains("HttpOnly"));
        }
    }

    #[test]
    fn a_cookie_is_read_by_its_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("x_alphadome_csrf=evil; alphadome_csrf=good"),
        );
        assert_eq!(read_cookie(&h, CSRF_COOKIE).as_deref(), Some("good"));
    }
}
