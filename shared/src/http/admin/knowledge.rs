//! The Knowledge pages over HTTP: entries and their phrasings, CSV import and export, "Try
//! it" and "Unanswered". Every read and write runs as the owner under row-level security;
//! "Try it" runs the responder's dry run after the owner's read proved the number is theirs.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use uuid::Uuid;

use super::{error_page, html_response, redirect, signed_in, signed_in_post, SignedIn};
use crate::admin::html::{self, TriedAnswer};
use crate::admin::knowledge::{self, EntryForm, KnowledgeError};
use crate::admin::AdminState;

fn not_found(me: SignedIn) -> Response {
    html_response(StatusCode::NOT_FOUND, html::not_found_page(), me.cookies)
}

fn parse_id(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s.trim()).ok()
}

/// What the knowledge page says above its sections.
#[derive(Default)]
struct Notes<'a> {
    ok: Option<&'a str>,
    error: Option<&'a str>,
    /// The message "Try it" ran, and what the assistant would answer.
    tried: &'a str,
    answer: Option<TriedAnswer>,
}

/// The knowledge page with its notes and a status.
async fn knowledge_response(
    state: &AdminState,
    me: SignedIn,
    tenant: Option<Uuid>,
    status: StatusCode,
    notes: Notes<'_>,
) -> Response {
    match knowledge::read_knowledge(&state.pool, &me.owner, tenant).await {
        Ok(Some(k)) => html_response(
            status,
            html::knowledge_page(
                &me.csrf,
                &k,
                notes.ok,
                notes.error,
                notes.tried,
                notes.answer,
            ),
            me.cookies,
        ),
        Ok(None) => not_found(me),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading the owner's knowledge failed");
            error_page(me.cookies)
        }
    }
}

/// A refused write: 404, or the page again saying what is wrong (422).
async fn refused(
    state: &AdminState,
    me: SignedIn,
    tenant: Option<Uuid>,
    e: KnowledgeError,
) -> Response {
    match e {
        KnowledgeError::NotFound => not_found(me),
        KnowledgeError::Invalid(why) => {
            knowledge_response(
                state,
                me,
                tenant,
                StatusCode::UNPROCESSABLE_ENTITY,
                Notes {
                    error: Some(&why),
                    ..Default::default()
                },
            )
            .await
        }
        KnowledgeError::Unexpected(e) => {
            tracing::error!(error = %format!("{e:#}"), "a knowledge write failed");
            error_page(me.cookies)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct TenantQuery {
    tenant: Option<String>,
    done: Option<String>,
}

fn done_message(done: Option<&str>) -> Option<&'static str> {
    match done {
        Some("added") => Some("Added. The assistant uses it from the next message."),
        Some("deleted") => Some("Deleted."),
        Some("imported") => Some("Imported."),
        Some("phrasing") => Some("Phrasing added."),
        Some("saved") => Some("Saved. The assistant uses it from the next message."),
        _ => None,
    }
}

/// GET /admin/knowledge?tenant=: entries, "Try it", add, import.
pub(super) async fn show_knowledge(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<TenantQuery>,
) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let tenant = match q.tenant.as_deref() {
        None | Some("") => None,
        Some(t) => match parse_id(t) {
            Some(t) => Some(t),
            None => return not_found(me),
        },
    };
    let ok = done_message(q.done.as_deref());
    knowledge_response(
        &state,
        me,
        tenant,
        StatusCode::OK,
        Notes {
            ok,
            ..Default::default()
        },
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct TryForm {
    tenant_id: Option<String>,
    text: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/knowledge/try: what the assistant would answer, and why (a dry run).
pub(super) async fn try_message(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<TryForm>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(tenant) = form.tenant_id.as_deref().and_then(parse_id) else {
        return not_found(me);
    };
    let Some(actions) = state.actions.clone() else {
        return error_page(me.cookies);
    };
    let text = form.text.unwrap_or_default();
    match actions
        .try_message(&state.pool, &me.owner, tenant, &text)
        .await
    {
        Ok(answer) => {
            knowledge_response(
                &state,
                me,
                Some(tenant),
                StatusCode::OK,
                Notes {
                    tried: text.trim(),
                    answer: Some(TriedAnswer::from_ask(&answer)),
                    ..Default::default()
                },
            )
            .await
        }
        Err(e) => refused(&state, me, Some(tenant), e).await,
    }
}

#[derive(Deserialize)]
pub(super) struct EntryPost {
    tenant_id: Option<String>,
    question: Option<String>,
    answer: Option<String>,
    category: Option<String>,
    priority: Option<String>,
    data_type: Option<String>,
    csrf_token: Option<String>,
}

impl EntryPost {
    fn form(&self) -> EntryForm {
        EntryForm {
            question: self.question.clone().unwrap_or_default(),
            answer: self.answer.clone().unwrap_or_default(),
            category: self.category.clone().unwrap_or_default(),
            priority: self.priority.clone().unwrap_or_default(),
            data_type: self.data_type.clone().unwrap_or_default(),
        }
    }
}

/// POST /admin/knowledge/entries: a new entry on one of the owner's numbers.
pub(super) async fn add_entry(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<EntryPost>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(tenant) = form.tenant_id.as_deref().and_then(parse_id) else {
        return not_found(me);
    };
    match knowledge::add_entry(&state.pool, &me.owner, tenant, &form.form()).await {
        Ok(id) => redirect(
            &format!("/admin/knowledge/entries/{id}?done=added"),
            me.cookies,
        ),
        Err(e) => refused(&state, me, Some(tenant), e).await,
    }
}

/// The entry page with a message.
async fn entry_response(
    state: &AdminState,
    me: SignedIn,
    id: Uuid,
    status: StatusCode,
    ok: Option<&str>,
    error: Option<&str>,
) -> Response {
    match knowledge::read_entry(&state.pool, &me.owner, id).await {
        Ok(Some(e)) => html_response(
            status,
            html::entry_page(&me.csrf, &e, ok, error),
            me.cookies,
        ),
        Ok(None) => not_found(me),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading an entry failed");
            error_page(me.cookies)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct DoneQuery {
    done: Option<String>,
}

/// GET /admin/knowledge/entries/{id}
pub(super) async fn show_entry(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(id) = parse_id(&id) else {
        return not_found(me);
    };
    let ok = done_message(q.done.as_deref());
    entry_response(&state, me, id, StatusCode::OK, ok, None).await
}

/// What a refused write on an entry's page answers.
async fn entry_refused(state: &AdminState, me: SignedIn, id: Uuid, e: KnowledgeError) -> Response {
    match e {
        KnowledgeError::NotFound => not_found(me),
        KnowledgeError::Invalid(why) => {
            entry_response(
                state,
                me,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&why),
            )
            .await
        }
        KnowledgeError::Unexpected(e) => {
            tracing::error!(error = %format!("{e:#}"), "a knowledge write failed");
            error_page(me.cookies)
        }
    }
}

/// POST /admin/knowledge/entries/{id}: saves the entry's fields.
pub(super) async fn update_entry(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<EntryPost>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(id) = parse_id(&id) else {
        return not_found(me);
    };
    match knowledge::update_entry(&state.pool, &me.owner, id, &form.form()).await {
        Ok(()) => redirect(
            &format!("/admin/knowledge/entries/{id}?done=saved"),
            me.cookies,
        ),
        Err(e) => entry_refused(&state, me, id, e).await,
    }
}

#[derive(Deserialize)]
pub(super) struct ActiveForm {
    active: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/knowledge/entries/{id}/active: on or off.
pub(super) async fn set_entry_active(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ActiveForm>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let (Some(id), Some(active)) = (
        parse_id(&id),
        match form.active.as_deref() {
            Some("on") => Some(true),
            Some("off") => Some(false),
            _ => None,
        },
    ) else {
        return not_found(me);
    };
    match knowledge::set_entry_active(&state.pool, &me.owner, id, active).await {
        Ok(()) => redirect(
            &format!("/admin/knowledge/entries/{id}?done=saved"),
            me.cookies,
        ),
        Err(e) => entry_refused(&state, me, id, e).await,
    }
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    csrf_token: Option<String>,
}

/// POST /admin/knowledge/entries/{id}/delete
pub(super) async fn delete_entry(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(id) = parse_id(&id) else {
        return not_found(me);
    };
    match knowledge::delete_entry(&state.pool, &me.owner, id).await {
        Ok(tenant) => redirect(
            &format!("/admin/knowledge?tenant={tenant}&done=deleted"),
            me.cookies,
        ),
        Err(e) => entry_refused(&state, me, id, e).await,
    }
}

#[derive(Deserialize)]
pub(super) struct PhrasingForm {
    entry_id: Option<String>,
    phrasing: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/knowledge/phrasings: another way customers ask an entry's question.
pub(super) async fn add_phrasing(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<PhrasingForm>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(entry) = form.entry_id.as_deref().and_then(parse_id) else {
        return not_found(me);
    };
    let text = form.phrasing.unwrap_or_default();
    match knowledge::add_phrasing(&state.pool, &me.owner, entry, &text).await {
        Ok(()) => redirect(
            &format!("/admin/knowledge/entries/{entry}?done=phrasing"),
            me.cookies,
        ),
        Err(e) => entry_refused(&state, me, entry, e).await,
    }
}

/// POST /admin/knowledge/phrasings/{id}/delete
pub(super) async fn delete_phrasing(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(id) = parse_id(&id) else {
        return not_found(me);
    };
    match knowledge::delete_phrasing(&state.pool, &me.owner, id).await {
        Ok(entry) => redirect(
            &format!("/admin/knowledge/entries/{entry}?done=deleted"),
            me.cookies,
        ),
        Err(KnowledgeError::NotFound) => not_found(me),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "deleting a phrasing failed");
            error_page(me.cookies)
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ImportForm {
    tenant_id: Option<String>,
    csv: Option<String>,
    csrf_token: Option<String>,
}

/// POST /admin/knowledge/import: CSV, all or nothing, a bad row named by its line.
pub(super) async fn import_csv(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<ImportForm>,
) -> Response {
    let me = match signed_in_post(&state, &headers, form.csrf_token.as_deref()).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(tenant) = form.tenant_id.as_deref().and_then(parse_id) else {
        return not_found(me);
    };
    let text = form.csv.unwrap_or_default();
    match knowledge::import_csv(&state.pool, &me.owner, tenant, &text).await {
        Ok(o) => {
            let msg = format!(
                "Imported {} entries ({} new, {} updated).",
                o.inserted + o.updated,
                o.inserted,
                o.updated
            );
            knowledge_response(
                &state,
                me,
                Some(tenant),
                StatusCode::OK,
                Notes {
                    ok: Some(&msg),
                    ..Default::default()
                },
            )
            .await
        }
        Err(KnowledgeError::Invalid(why)) => {
            let why = format!("Nothing was imported: {why}.");
            knowledge_response(
                &state,
                me,
                Some(tenant),
                StatusCode::UNPROCESSABLE_ENTITY,
                Notes {
                    error: Some(&why),
                    ..Default::default()
                },
            )
            .await
        }
        Err(e) => refused(&state, me, Some(tenant), e).await,
    }
}

/// GET /admin/knowledge/export.csv?tenant=: the active entries in the import's format.
pub(super) async fn export_csv(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<TenantQuery>,
) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(tenant) = q.tenant.as_deref().and_then(parse_id) else {
        return not_found(me);
    };
    match knowledge::export_csv(&state.pool, &me.owner, tenant).await {
        Ok(Some(csv)) => {
            let mut response = (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"knowledge.csv\"",
                    ),
                ],
                csv,
            )
                .into_response();
            for c in me.cookies {
                response.headers_mut().append(header::SET_COOKIE, c);
            }
            response
        }
        Ok(None) => not_found(me),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "exporting knowledge failed");
            error_page(me.cookies)
        }
    }
}

/// GET /admin/knowledge/unanswered?tenant=
pub(super) async fn show_unanswered(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<TenantQuery>,
) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    // The owner's chosen number, or their first.
    let k = match q.tenant.as_deref() {
        Some(t) if !t.is_empty() => match parse_id(t) {
            Some(t) => knowledge::read_knowledge(&state.pool, &me.owner, Some(t)).await,
            None => return not_found(me),
        },
        _ => knowledge::read_knowledge(&state.pool, &me.owner, None).await,
    };
    let tenant = match k {
        Ok(Some(k)) => k.tenant.id,
        Ok(None) => return not_found(me),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading the owner's numbers failed");
            return error_page(me.cookies);
        }
    };
    match knowledge::list_unanswered(&state.pool, &me.owner, tenant).await {
        Ok(items) => html_response(
            StatusCode::OK,
            html::unanswered_page(tenant, &items),
            me.cookies,
        ),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "listing unanswered messages failed");
            error_page(me.cookies)
        }
    }
}

/// GET /admin/knowledge/unanswered/{id}: add it as a new FAQ or as a phrasing.
pub(super) async fn show_teach(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let me = match signed_in(&state, &headers).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let Some(id) = parse_id(&id) else {
        return not_found(me);
    };
    match knowledge::read_unanswered(&state.pool, &me.owner, id).await {
        Ok(Some((u, entries))) => html_response(
            StatusCode::OK,
            html::teach_page(&me.csrf, &u, &entries),
            me.cookies,
        ),
        Ok(None) => not_found(me),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading an unanswered message failed");
            error_page(me.cookies)
        }
    }
}

/// The body limit of the import (a CSV of a few hundred entries).
pub(super) const IMPORT_BODY_LIMIT: usize = 1024 * 1024;
