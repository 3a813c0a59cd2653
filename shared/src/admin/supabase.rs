//! Supabase Auth's REST API, as the sign-in page uses it: password sign-in, refresh and
//! sign-out, each with the project's anon key. One client, built once, with a timeout and a
//! base URL that tests point at a local stand-in.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

use super::session::Session;

/// Why a call to Supabase Auth did not give tokens.
#[derive(Debug, thiserror::Error)]
pub enum AuthApiError {
    /// Wrong e-mail or password, an unknown user, a revoked refresh token: the caller says
    /// only that sign-in did not work.
    #[error("the credentials were refused")]
    Refused,
    /// Supabase could not be reached or answered with something else.
    #[error("the sign-in service is unavailable")]
    Unavailable,
}

/// A Supabase project's Auth API.
#[derive(Clone)]
pub struct SupabaseAuth {
    base: String,
    anon_key: SecretString,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: Option<String>,
}

impl SupabaseAuth {
    /// `supabase_url` is the project URL (`https://<ref>.supabase.co`).
    pub fn new(supabase_url: &str, anon_key: SecretString, timeout: Duration) -> Self {
        Self {
            base: supabase_url.trim_end_matches('/').to_owned(),
            anon_key,
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("a reqwest client with rustls builds"),
        }
    }

    /// The project URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The HTTP client (shared with the JWKS reader).
    pub fn http(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// `POST /auth/v1/token?grant_type=password`.
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<Session, AuthApiError> {
        self.token(
            "password",
            serde_json::json!({"email": email, "password": password.expose_secret()}),
        )
        .await
    }

    /// `POST /auth/v1/token?grant_type=refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, AuthApiError> {
        self.token(
            "refresh_token",
            serde_json::json!({"refresh_token": refresh_token}),
        )
        .await
    }

    /// `POST /auth/v1/otp`: e-mails a one-time code to `email`. `create_user: false`, so no
    /// account is made for an unknown address; the caller says the same thing either way.
    pub async fn send_email_code(&self, email: &str) -> Result<(), AuthApiError> {
        let response = self
            .http
            .post(format!("{}/auth/v1/otp", self.base))
            .header("apikey", self.anon_key.expose_secret())
            .json(&serde_json::json!({"email": email, "create_user": false}))
            .send()
            .await
            .map_err(|_| AuthApiError::Unavailable)?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            // An unknown address, a malformed one, too many requests for it: refused, and
            // the page does not say which.
            400 | 401 | 403 | 404 | 422 | 429 => Err(AuthApiError::Refused),
            _ => Err(AuthApiError::Unavailable),
        }
    }

    /// `POST /auth/v1/verify` with `type: email`: the e-mailed code becomes a session.
    pub async fn verify_email_code(
        &self,
        email: &str,
        code: &SecretString,
    ) -> Result<Session, AuthApiError> {
        let response = self
            .http
            .post(format!("{}/auth/v1/verify", self.base))
            .header("apikey", self.anon_key.expose_secret())
            .json(&serde_json::json!({"type": "email", "email": email, "token": code.expose_secret()}))
            .send()
            .await
            .map_err(|_| AuthApiError::Unavailable)?;
        Self::session_from(response).await
    }

    /// `POST /auth/v1/logout`: revokes the session's refresh tokens.
    pub async fn sign_out(&self, access_token: &str) -> Result<(), AuthApiError> {
        let response = self
            .http
            .post(format!("{}/auth/v1/logout", self.base))
            .header("apikey", self.anon_key.expose_secret())
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|_| AuthApiError::Unavailable)?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            // Already signed out or expired: nothing left to revoke.
            401 | 403 | 404 => Ok(()),
            _ => Err(AuthApiError::Unavailable),
        }
    }

    async fn token(&self, grant: &str, body: serde_json::Value) -> Result<Session, AuthApiError> {
        let response = self
            .http
            .post(format!("{}/auth/v1/token", self.base))
            .query(&[("grant_type", grant)])
            .header("apikey", self.anon_key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|_| AuthApiError::Unavailable)?;
        Self::session_from(response).await
    }

    /// The tokens of a successful answer; a refusal or anything else as an error.
    async fn session_from(response: reqwest::Response) -> Result<Session, AuthApiError> {
        match response.status().as_u16() {
            200..=299 => {
                let t: TokenResponse = response
                    .json()
                    .await
                    .map_err(|_| AuthApiError::Unavailable)?;
                Ok(Session {
                    access_token: t.access_token,
                    refresh_token: t.refresh_token,
                })
            }
            400 | 401 | 403 | 422 => Err(AuthApiError::Refused),
            _ => Err(AuthApiError::Unavailable),
        }
    }
}
