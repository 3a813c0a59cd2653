//! The one HTTP surface: an axum `Router` serving Meta's webhook (`GET/POST /webhook`) and
//! `GET /healthz`. The webhook Lambda runs it with `lambda_http::run`, `alphadome serve`
//! with `axum::serve`; the owners' dashboard (`/admin`, [`admin`]) is merged in when configured.
//! Handlers only translate: the decisions are the core's, and errors become status codes in
//! one place ([`error`]).

pub mod admin;
mod error;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

use crate::ingress::{Ingress, MAX_BODY_BYTES};
use crate::local_queue::LocalQueue;
use crate::store::Store;
use crate::webhook::SIGNATURE_HEADER;

pub use error::HttpError;

/// What the router serves from.
#[derive(Clone)]
pub struct HttpState {
    pub ingress: Ingress,
    pub store: Store,
    /// The in-process queue of `alphadome serve` (its figures go into `/healthz`).
    pub local_queue: Option<LocalQueue>,
}

/// The router without the dashboard. Bodies over Meta's cap are refused with 413 before they
/// are read whole.
pub fn router(state: HttpState) -> Router {
    router_with_admin(state, None)
}

/// The router, with the owners' dashboard under `/admin` when `admin` is given (Supabase
/// sign-in, or development tokens in `alphadome serve`); without it `/admin` is not served.
pub fn router_with_admin(state: HttpState, admin: Option<crate::admin::AdminState>) -> Router {
    let core = Router::new()
        .route("/webhook", get(verify).post(receive))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    match admin {
        Some(admin) => core.merge(admin::routes(admin)),
        None => core,
    }
}

/// GET /webhook: Meta's subscription handshake; the challenge is echoed as plain text.
async fn verify(
    State(state): State<HttpState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    let challenge = state
        .ingress
        .verify_subscription(|k| params.get(k).cloned())?;
    Ok(text(StatusCode::OK, challenge))
}

/// POST /webhook: one signed delivery.
async fn receive(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    let signature = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    state.ingress.receive(signature, &body).await?;
    Ok(text(StatusCode::OK, "ok".into()))
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `/healthz`'s answer.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    database: &'static str,
    queue: QueueHealth,
}

#[derive(Debug, Serialize)]
struct QueueHealth {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parked: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    processed: Option<u64>,
}

/// GET /healthz: the database answers within 2 s (503 otherwise); the in-process queue's
/// figures; `degraded` when jobs were parked.
async fn healthz(State(state): State<HttpState>) -> Response {
    let db_ok = tokio::time::timeout(Duration::from_secs(2), async {
        let mut tx = state.store.pool().begin().await?;
        sqlx::query("select 1")
            .persistent(false)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    })
    .await
    .is_ok_and(|r| r.is_ok());
    let queue = match &state.local_queue {
        Some(q) => QueueHealth {
            kind: "in-process",
            pending: Some(q.pending()),
            parked: Some(q.parked().len()),
            processed: Some(q.processed()),
        },
        None => QueueHealth {
            kind: "sqs",
            pending: None,
            parked: None,
            processed: None,
        },
    };
    let parked = queue.parked.unwrap_or(0);
    let health = Health {
        status: match (db_ok, parked) {
            (false, _) => "unavailable",
            (true, 0) => "ok",
            (true, _) => "degraded",
        },
        database: if db_ok { "reachable" } else { "unreachable" },
        queue,
    };
    let status = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}
