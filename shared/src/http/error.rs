//! Errors at the HTTP edge: each becomes one status code and a fixed body here, and nowhere
//! else. Nothing internal reaches a response.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ingress::WebhookError;

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The webhook refused or could not take the request (see [`WebhookError`] for what
    /// Meta sees for each case).
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

impl HttpError {
    /// The status code the caller sees.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Webhook(e) => match e {
                WebhookError::Forbidden => StatusCode::FORBIDDEN,
                WebhookError::InvalidSignature => StatusCode::UNAUTHORIZED,
                WebhookError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                WebhookError::BadRequest => StatusCode::BAD_REQUEST,
                WebhookError::Unavailable => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.to_string(),
        )
            .into_response()
    }
}
