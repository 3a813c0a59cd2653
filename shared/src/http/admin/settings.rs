//! The Assistant and Settings pages over HTTP. Reads and writes run as the owner under
//! row-level security; the model and the WhatsApp token go through `TenantActions`' narrow
//! paths after the owner's read proved the number is theirs.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use super::{error_page, html_response, redirect, signed_in, signed_in_post_for, SignedIn};
use crate::admin::html;
use crate::admin::settings::{self, AssistantForm, SettingsError, SettingsForm};
use crate::admin::AdminState;

fn not_found(me: SignedIn) -> Response {
    html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Assistant,
    Settings,
}

/// The Assistant or Settings page of `tenant` with a message.
async fn page(
    state: &AdminState,
    me: SignedIn,
    which: Which,
    tenant: Option<Uuid>,
    status: StatusCode,
    ok: Option<&str>,
    error: Option<&str>,
) -> Response {
    match settings::read_settings(&state.pool, &me.owner, tenant).await {
        Ok(Some(v)) => {
            let body = match which {
                Which::Assistant => {
                    let (models, default) = match &state.actions {
                        Some(a) => (a.model_choices(), a.default_model.clone()),
                        None => (Vec::new(), String::new()),
                    };
                    html::assistant_page(&me.csrf, &v, models, &default, ok, error)
                }
                Which::Settings => html::settings_page(&me.csrf, &v, ok, error),
            };
            html_response(status, body, me.cookies)
        }
        Ok(None) => not_found(me),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading the owner's settings failed");
            error_page(me.cookies)
        }
    }
}

async fn refused(
    state: &AdminState,
    me: SignedIn,
    which: Which,
    tenant: Uuid,
    e: SettingsError,
) -> Response {
    match e {
        SettingsError::NotFound => not_found(me),
        SettingsError::Invalid(why) => {
            page(
                state,
                me,
                which,
                Some(tenant),
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&why),
            )
            .await
        }
        SettingsError::Unexpected(e) => {
            tracing::error!(error = %format!("{e:#}"), "saving the owner's settings failed");
            error_page(me.cookies)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct TenantQuery {
    tenant: Option<String>,
    done: Option<String>,
}

fn parse_tenant(q: &TenantQuery) -> Result<Option<Uuid>, ()> {
    match q.tenant.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => Uuid::parse_str(t).map(Some).map_err(|_| ()),
    }
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done {
        Some("saved") => Some("Saved. The assistant uses it within a minute."),
        Some("token") => Some("The new token is stored, sealed. It will not be shown again."),
        Some("switched") => Some("Switched."),
        _ => None,
    }
}

async fn show(state: AdminState, headers: HeaderMap, q: TenantQuery, which: Which) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Ok(tenant) = parse_tenant(&q) else {
        return not_found(me);
    };
    let ok = done_message(q.done.as_deref());
    page(&state, me, which, tenant, StatusCode::OK, ok, None).await
}

/// GET /admin/assistant?tenant=
pub(super) async fn show_assistant(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<TenantQuery>,
) -> Response {
    show(state, headers, q, Which::Assistant).await
}

/// GET /admin/settings?tenant=
pub(super) async fn show_settings(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<TenantQuery>,
) -> Response {
    show(state, headers, q, Which::Settings).await
}

#[derive(Deserialize)]
pub(super) struct AssistantPost {
    tenant_id: Option<String>,
    system_prompt: Option<String>,
    tone: Option<String>,
    welcome_message: Option<String>,
    model: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/assistant/settings: instructions, tone, welcome message, model.
pub(super) async fn save_assistant(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<AssistantPost>,
) -> Response {
    let (me, tenant) = match signed_in_post_for(
        &state,
        &headers,
        form.csrf_token.as_deref(),
        form.tenant_id.as_deref(),
    )
    .await
    {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(actions) = state.actions.clone() else {
        return error_page(me.cookies);
    };
    let input = AssistantForm {
        system_prompt: form.system_prompt.unwrap_or_default(),
        tone: form.tone.unwrap_or_default(),
        welcome_message: form.welcome_message.unwrap_or_default(),
        model: form.model.unwrap_or_default(),
    };
    match settings::save_assistant(&state.pool, &me.owner, &actions, tenant, &input).await {
        Ok(()) => redirect(
            &format!("/admin/assistant?tenant={tenant}&done=saved"),
            me.cookies,
        ),
        Err(e) => refused(&state, me, Which::Assistant, tenant, e).await,
    }
}

#[derive(Deserialize)]
pub(super) struct SettingsPost {
    tenant_id: Option<String>,
    max_messages_per_hour: Option<String>,
    escalation_phone: Option<String>,
    escalation_quiet_minutes: Option<String>,
    ai_enabled: Option<String>,
    mark_messages_read: Option<String>,
    voice_notes_enabled: Option<String>,
    pictures_enabled: Option<String>,
    escalation_template_name: Option<String>,
    escalation_template_language: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/settings
pub(super) async fn save_settings(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<SettingsPost>,
) -> Response {
    let (me, tenant) = match signed_in_post_for(
        &state,
        &headers,
        form.csrf_token.as_deref(),
        form.tenant_id.as_deref(),
    )
    .await
    {
        Ok(found) => found,
        Err(page) => return page,
    };
    let on = |v: &Option<String>| v.as_deref() == Some("on");
    let input = SettingsForm {
        max_messages_per_hour: form.max_messages_per_hour.clone().unwrap_or_default(),
        escalation_phone: form.escalation_phone.clone().unwrap_or_default(),
        escalation_quiet_minutes: form.escalation_quiet_minutes.clone().unwrap_or_default(),
        ai_enabled: on(&form.ai_enabled),
        mark_messages_read: on(&form.mark_messages_read),
        voice_notes_enabled: on(&form.voice_notes_enabled),
        pictures_enabled: on(&form.pictures_enabled),
        escalation_template_name: form.escalation_template_name.clone().unwrap_or_default(),
        escalation_template_language: form
            .escalation_template_language
            .clone()
            .unwrap_or_default(),
    };
    match settings::save_settings(&state.pool, &me.owner, tenant, &input).await {
        Ok(()) => redirect(
            &format!("/admin/settings?tenant={tenant}&done=saved"),
            me.cookies,
        ),
        Err(e) => refused(&state, me, Which::Settings, tenant, e).await,
    }
}

#[derive(Deserialize)]
pub(super) struct TokenPost {
    tenant_id: Option<String>,
    token: Option<SecretString>,
    csrf_token: Option<String>,
}

/// POST /admin/settings/token: replaces the number's WhatsApp token (write-only).
pub(super) async fn replace_token(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<TokenPost>,
) -> Response {
    let (me, tenant) = match signed_in_post_for(
        &state,
        &headers,
        form.csrf_token.as_deref(),
        form.tenant_id.as_deref(),
    )
    .await
    {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(actions) = state.actions.clone() else {
        return error_page(me.cookies);
    };
    let token = form
        .token
        .unwrap_or_else(|| SecretString::from(String::new()));
    match actions
        .replace_whatsapp_token(&state.pool, &me.owner, tenant, &token)
        .await
    {
        Ok(()) => redirect(
            &format!("/admin/settings?tenant={tenant}&done=token"),
            me.cookies,
        ),
        Err(e) => refused(&state, me, Which::Settings, tenant, e).await,
    }
}
