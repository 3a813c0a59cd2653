//! Outbound client for OpenAI-compatible chat-completions servers: one bounded call that
//! retries transient failures a couple of times and always returns by the caller's deadline.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Client for `POST {base}/chat/completions`. Build it once per process and share it; the API
/// key is passed per call because tenants may bring their own.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    base_url: String,
}

/// Who wrote a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions: the tenant's prompt, tone and grounding.
    System,
    /// The WhatsApp user.
    User,
    /// The assistant's earlier replies.
    Assistant,
}

/// One turn of the conversation sent to the model. `Debug` shows the content's length only.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// What was written.
    pub content: String,
}

/// What to ask the model.
#[derive(Clone, Copy)]
pub struct ChatRequest<'a> {
    /// Model name, e.g. `gpt-4o-mini`.
    pub model: &'a str,
    /// The conversation, oldest first, usually starting with a system message.
    pub messages: &'a [ChatMessage],
    /// Upper bound on the reply's length in tokens (sent as `max_tokens`).
    pub max_tokens: u32,
    /// Sampling temperature, 0 to 2.
    pub temperature: f32,
}

/// The model's answer and what it cost, when the server reports usage. `Debug` shows the
/// text's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct ChatReply {
    /// The first choice's text, trimmed; never empty.
    pub text: String,
    /// Tokens in the request, from `usage.prompt_tokens`.
    pub prompt_tokens: Option<u32>,
    /// Tokens in the reply, from `usage.completion_tokens`.
    pub completion_tokens: Option<u32>,
    /// Prompt tokens served from OpenAI's cache, from `usage.prompt_tokens_details.cached_tokens`.
    pub cached_tokens: Option<u32>,
}

// Conversation text is a user's words: a `{:?}` in a log line must not reveal it.
impl fmt::Debug for ChatMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatMessage")
            .field("role", &self.role)
            .field("content_chars", &self.content.chars().count())
            .finish()
    }
}

impl fmt::Debug for ChatReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatReply")
            .field("text_chars", &self.text.chars().count())
            .field("prompt_tokens", &self.prompt_tokens)
            .field("completion_tokens", &self.completion_tokens)
            .field("cached_tokens", &self.cached_tokens)
            .finish()
    }
}

/// Why no reply came back. `Display` never includes the server's body (it can quote the
/// prompt) nor the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AiError {
    /// The deadline passed, or the last attempt timed out.
    #[error("AI completion timed out")]
    Timeout,
    /// HTTP 429 on every attempt: the provider is throttling this key.
    #[error("AI provider rate limited the request")]
    RateLimited,
    /// HTTP 5xx on the last attempt.
    #[error("AI provider failed with HTTP {status}")]
    Server { status: u16 },
    /// Refused for good, not retried: any 4xx other than a throttling 429 (bad or revoked key
    /// 401, no access to the model 403/404, invalid request 400), and a 429 whose error code is
    /// `insufficient_quota` (the account is out of credit: waiting will not help).
    #[error("AI provider rejected the request with HTTP {status}")]
    Rejected { status: u16 },
    /// No answer: connection refused or reset, DNS failure, or a request that could not be
    /// built (e.g. a key holding characters a header cannot carry).
    #[error("AI provider could not be reached")]
    Transport,
    /// HTTP 2xx, but no choice, no text, or a body that is not a chat completion.
    #[error("AI provider answered without a usable reply")]
    Malformed,
}

impl OpenAiClient {
    /// `base_url` is the API root, e.g. `https://api.openai.com/v1` (a trailing slash is
    /// tolerated); `per_attempt_timeout` bounds each HTTP attempt, retries included separately.
    pub fn new(base_url: impl Into<String>, per_attempt_timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(per_attempt_timeout)
            .build()
            .expect("a reqwest client with only a timeout set always builds");
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        Self { http, base_url }
    }

    /// Asks the model for the next assistant turn.
    ///
    /// Retries at most twice (after about 200–400 ms, then 400–800 ms) on 429, 5xx, transport
    /// failures and per-attempt timeouts; never on other 4xx or a malformed 2xx. The whole
    /// call, retries and waits included, ends by `deadline` with [`AiError::Timeout`].
    pub async fn complete(
        &self,
        key: &SecretString,
        req: &ChatRequest<'_>,
        deadline: Duration,
    ) -> Result<ChatReply, AiError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_factor(2.0)
            .with_max_delay(Duration::from_millis(800))
            .with_max_times(2)
            .with_jitter()
            // backon's own random seed needs its `std` feature, which the workspace leaves off;
            // without a seed every process would wait the same "random" delays.
            .with_jitter_seed(
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish(),
            );

        let attempts = (|| self.attempt(key, req))
            .retry(backoff)
            .when(|e: &Attempt| e.retry)
            .notify(|e: &Attempt, wait: Duration| {
                tracing::info!(error = %e.error, wait_ms = wait.as_millis() as u64, "retrying AI completion");
            });

        match tokio::time::timeout(deadline, attempts).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                tracing::warn!(error = %e.error, "AI completion failed");
                Err(e.error)
            }
            Err(_) => {
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "AI completion passed its deadline"
                );
                Err(AiError::Timeout)
            }
        }
    }

    async fn attempt(
        &self,
        key: &SecretString,
        req: &ChatRequest<'_>,
    ) -> Result<ChatReply, Attempt> {
        let body = RequestBody {
            model: req.model,
            messages: req.messages,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
        };
        let response = self
            .http
            .post(format!("{}/chat/completions", self.base_url))
            .bearer_auth(key.expose_secret())
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;

        let status = response.status().as_u16();
        if response.status().is_success() {
            let parsed: ResponseBody = response.json().await.map_err(|e| {
                // A body cut off by the per-attempt timeout is a timeout, not a bad answer.
                if e.is_timeout() {
                    Attempt::retry(AiError::Timeout)
                } else {
                    Attempt::give_up(AiError::Malformed)
                }
            })?;
            let text = parsed
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.message.content)
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .ok_or(Attempt::give_up(AiError::Malformed))?;
            let usage = parsed.usage.unwrap_or_default();
            return Ok(ChatReply {
                text,
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                cached_tokens: usage.prompt_tokens_details.and_then(|d| d.cached_tokens),
            });
        }

        match status {
            429 => {
                let bytes = response.bytes().await.unwrap_or_default();
                let code = serde_json::from_slice::<ErrorBody>(&bytes)
                    .ok()
                    .and_then(|b| b.error.code.or(b.error.kind));
                if code.as_deref() == Some("insufficient_quota") {
                    Err(Attempt::give_up(AiError::Rejected { status }))
                } else {
                    Err(Attempt::retry(AiError::RateLimited))
                }
            }
            500..=599 => Err(Attempt::retry(AiError::Server { status })),
            _ => Err(Attempt::give_up(AiError::Rejected { status })),
        }
    }
}

fn transport_error(e: &reqwest::Error) -> Attempt {
    if e.is_timeout() {
        Attempt::retry(AiError::Timeout)
    } else if e.is_builder() {
        Attempt::give_up(AiError::Transport)
    } else {
        Attempt::retry(AiError::Transport)
    }
}

/// One attempt's failure and whether another attempt may fix it.
struct Attempt {
    error: AiError,
    retry: bool,
}

impl Attempt {
    fn retry(error: AiError) -> Self {
        Self { error, retry: true }
    }
    fn give_up(error: AiError) -> Self {
        Self {
            error,
            retry: false,
        }
    }
}

#[derive(Serialize)]
struct RequestBody<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    max_tokens: u32,
    temperature: f32,
}

#[derive(Deserialize)]
struct ResponseBody {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: AssistantMessage,
}

#[derive(Deserialize)]
struct AssistantMessage {
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize, Default)]
struct PromptTokensDetails {
    cached_tokens: Option<u32>,
}

// Only the machine-readable fields: `message` may quote the request.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}
