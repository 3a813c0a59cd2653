//! The dashboard's pages and actions for a signed-in owner: every read and the switches run
//! as `authenticated` under row-level security; replying as a person is the one action that
//! acts for the tenant (it needs the tenant's token).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;
use uuid::Uuid;

use super::{
    error_page, html_response, redirect, signed_in, signed_in_post, signed_in_post_for, CsrfForm,
    SignedIn,
};
use crate::admin::conversations::{self, Cursor, ReplyError, Search};
use crate::admin::html::Flash;
use crate::admin::{handovers, html, overview, AdminState};

/// GET /admin: the overview, read as the owner.
pub(super) async fn show_overview(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let usage = crate::admin::usage::read_usage(&state.pool, &me.owner).await;
    match (overview::read_overview(&state.pool, &me.owner).await, usage) {
        (Ok(o), Ok(u)) => html_response(
            StatusCode::OK,
            html::overview_page(&me.csrf, &o, html::budget_banner(&u)),
            me.cookies,
        ),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %format!("{e:#}"), "reading the owner's overview failed");
            error_page(me.cookies)
        }
    }
}

/// GET /admin/usage: the last 30 days and this month against the budgets, read as the owner.
pub(super) async fn show_usage(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    match crate::admin::usage::read_usage(&state.pool, &me.owner).await {
        Ok(u) => html_response(StatusCode::OK, html::usage_page(&u), me.cookies),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading the owner's usage failed");
            error_page(me.cookies)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    q: Option<String>,
    after: Option<String>,
}

/// GET /admin/conversations: customers by latest message, searchable, a page at a time.
pub(super) async fn show_conversations(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let q = query.q.unwrap_or_default();
    let search = Search::parse(&q);
    let after = query.after.as_deref().and_then(Cursor::parse);
    match conversations::list_customers(&state.pool, &me.owner, search.as_ref(), after).await {
        Ok(page) => html_response(
            StatusCode::OK,
            html::conversations_page(q.trim(), &page),
            me.cookies,
        ),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "listing the owner's conversations failed");
            error_page(me.cookies)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct TranscriptQuery {
    done: Option<String>,
}

/// Renders one customer's transcript as the owner, with `flash` above the reply box.
async fn transcript_response(
    state: &AdminState,
    me: SignedIn,
    user_id: Uuid,
    status: StatusCode,
    flash: Flash,
) -> Response {
    match conversations::read_transcript(&state.pool, &me.owner, user_id).await {
        Ok(Some((customer, messages))) => html_response(
            status,
            html::transcript_page(
                &me.csrf,
                &customer,
                &messages,
                flash,
                state.actions.is_some(),
            ),
            me.cookies,
        ),
        Ok(None) => html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading a transcript failed");
            error_page(me.cookies)
        }
    }
}

/// GET /admin/conversations/{user_id}: one customer's conversation; another business's
/// customer (or any id that is not the owner's) is 404.
pub(super) async fn show_transcript(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    Query(query): Query<TranscriptQuery>,
) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Ok(user_id) = Uuid::parse_str(&user_id) else {
        return html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies);
    };
    let flash = match query.done.as_deref() {
        Some("sent") => Flash::Sent,
        Some("resumed") => Flash::Resumed,
        _ => Flash::None,
    };
    transcript_response(&state, me, user_id, StatusCode::OK, flash).await
}

#[derive(Deserialize)]
pub(super) struct ReplyForm {
    text: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/conversations/{user_id}/reply: the owner's own message to the customer, sent
/// with the number's token inside the 24-hour window; the assistant then stays quiet with this
/// customer until resumed.
pub(super) async fn reply_as_person(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    Form(form): Form<ReplyForm>,
) -> Response {
    let (me, user_id) = match signed_in_post_for(
        &state,
        &headers,
        form.csrf_token.as_deref(),
        Some(&user_id),
    )
    .await
    {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(actions) = state.actions.clone() else {
        return transcript_response(
            &state,
            me,
            user_id,
            StatusCode::SERVICE_UNAVAILABLE,
            Flash::Unavailable,
        )
        .await;
    };
    let text = form.text.unwrap_or_default();
    let (status, flash) = match actions
        .reply_as_person(&state.pool, &me.owner, user_id, &text)
        .await
    {
        Ok(()) => {
            return redirect(
                &format!("/admin/conversations/{user_id}?done=sent"),
                me.cookies,
            )
        }
        Err(ReplyError::NotFound) => {
            return html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies)
        }
        Err(ReplyError::WindowClosed) => (StatusCode::CONFLICT, Flash::WindowClosed),
        Err(ReplyError::BadText) => (StatusCode::UNPROCESSABLE_ENTITY, Flash::BadText),
        Err(ReplyError::Token) => (StatusCode::BAD_GATEWAY, Flash::TokenProblem),
        Err(ReplyError::Send(e)) => {
            tracing::warn!(error = %e, "an owner's reply was not accepted by WhatsApp");
            (StatusCode::BAD_GATEWAY, Flash::SendFailed)
        }
        Err(ReplyError::Unexpected(e)) => {
            tracing::error!(error = %format!("{e:#}"), "an owner's reply failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Flash::Unavailable)
        }
    };
    transcript_response(&state, me, user_id, status, flash).await
}

/// POST /admin/conversations/{user_id}/resume: the assistant answers this customer again.
pub(super) async fn resume_assistant(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (me, user_id) = match signed_in_post_for(
        &state,
        &headers,
        form.csrf_token.as_deref(),
        Some(&user_id),
    )
    .await
    {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(actions) = state.actions.clone() else {
        return transcript_response(
            &state,
            me,
            user_id,
            StatusCode::SERVICE_UNAVAILABLE,
            Flash::Unavailable,
        )
        .await;
    };
    match actions.resume(&state.pool, &me.owner, user_id).await {
        Ok(()) => redirect(
            &format!("/admin/conversations/{user_id}?done=resumed"),
            me.cookies,
        ),
        Err(ReplyError::NotFound) => {
            html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "resuming the assistant failed");
            error_page(me.cookies)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct AssistantForm {
    tenant_id: Option<String>,
    enabled: Option<String>,
    /// `assistant`: back to the Assistant page instead of the overview.
    back: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/assistant: switches the assistant of one of the owner's numbers (or all of
/// them, without `tenant_id`) on or off, written as the owner under RLS.
pub(super) async fn switch_assistant(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<AssistantForm>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let enabled = match form.enabled.as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => {
            return html_response(
                StatusCode::BAD_REQUEST,
                html::message_page(
                    "Not changed",
                    "Nothing changed",
                    &[],
                    Some(("/admin", "Back to the overview")),
                ),
                me.cookies,
            )
        }
    };
    let tenant = match form.tenant_id.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match Uuid::parse_str(t) {
            Ok(t) => Some(t),
            Err(_) => {
                return html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies)
            }
        },
    };
    match conversations::set_assistant_enabled(&state.pool, &me.owner, tenant, enabled).await {
        Ok(0) => html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies),
        Ok(_) => match (form.back.as_deref(), tenant) {
            (Some("assistant"), Some(t)) => redirect(
                &format!("/admin/assistant?tenant={t}&done=switched"),
                me.cookies,
            ),
            _ => redirect("/admin", me.cookies),
        },
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "switching the assistant failed");
            error_page(me.cookies)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct DoneQuery {
    done: Option<String>,
}

/// GET /admin/handovers: conversations waiting for a person, oldest first.
pub(super) async fn show_handovers(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(query): Query<DoneQuery>,
) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    match handovers::list_handovers(&state.pool, &me.owner).await {
        Ok(items) => html_response(
            StatusCode::OK,
            html::handovers_page(&me.csrf, &items, query.done.is_some()),
            me.cookies,
        ),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "listing the hand-overs failed");
            error_page(me.cookies)
        }
    }
}

/// POST /admin/handovers/{user_id}/done: the owner took care of it; the assistant answers
/// that customer again.
pub(super) async fn mark_handover_done(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (me, user_id) = match signed_in_post_for(
        &state,
        &headers,
        form.csrf_token.as_deref(),
        Some(&user_id),
    )
    .await
    {
        Ok(found) => found,
        Err(page) => return page,
    };
    let Some(actions) = state.actions.clone() else {
        return error_page(me.cookies);
    };
    match actions
        .mark_handover_done(&state.pool, &me.owner, user_id)
        .await
    {
        Ok(()) => redirect("/admin/handovers?done=1", me.cookies),
        Err(ReplyError::NotFound) => {
            html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "marking a hand-over done failed");
            error_page(me.cookies)
        }
    }
}
