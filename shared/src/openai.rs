//! Outbound client for OpenAI-compatible servers: chat completions (with a picture when there
//! is one) and voice-note transcriptions, each one bounded call that retries transient
//! failures a couple of times and always returns by the caller's deadline.

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

/// A picture for the model, as a `data:` URL (`data:image/jpeg;base64,...`). `Debug` shows
/// its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct ImageInput {
    pub data_url: String,
}

impl ImageInput {
    /// The picture `bytes` of type `mime_type` (e.g. `image/jpeg`) as a base64 `data:` URL.
    pub fn from_bytes(mime_type: &str, bytes: &[u8]) -> Self {
        use base64::Engine as _;
        let mime = mime_type.split(';').next().unwrap_or("").trim();
        let mime = if mime.starts_with("image/") {
            mime
        } else {
            "image/jpeg"
        };
        Self {
            data_url: format!(
                "data:{mime};base64,{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ),
        }
    }
}

impl fmt::Debug for ImageInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageInput")
            .field("data_url_chars", &self.data_url.len())
            .finish()
    }
}

/// A voice note to transcribe: its bytes and MIME type (`audio/ogg; codecs=opus`).
#[derive(Clone, Copy)]
pub struct AudioInput<'a> {
    pub bytes: &'a [u8],
    pub mime_type: &'a str,
}

/// What the speech-to-text model heard, and what it cost when the server says. `Debug` shows
/// the text's length only.
#[derive(Clone, PartialEq)]
pub struct Transcript {
    /// The words, trimmed; never empty.
    pub text: String,
    /// Seconds of audio (`usage.seconds`, models billed by duration).
    pub seconds: Option<f64>,
    /// `usage.input_tokens` (models billed by tokens).
    pub input_tokens: Option<u32>,
    /// `usage.output_tokens`.
    pub output_tokens: Option<u32>,
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transcript")
            .field("text_chars", &self.text.chars().count())
            .field("seconds", &self.seconds)
            .field("input_tokens", &self.input_tokens)
            .field("output_tokens", &self.output_tokens)
            .finish()
    }
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
        self.complete_seeing(key, req, None, deadline).await
    }

    /// [`Self::complete`] with a picture: `image` goes as an `image_url` content part (a
    /// `data:` URL) beside the text of the last user message. Same retries and deadline.
    pub async fn complete_seeing(
        &self,
        key: &SecretString,
        req: &ChatRequest<'_>,
        image: Option<&ImageInput>,
        deadline: Duration,
    ) -> Result<ChatReply, AiError> {
        with_retries("AI completion", deadline, || self.attempt(key, req, image)).await
    }

    /// Transcribes a voice note with `POST {base}/audio/transcriptions` (multipart: `file`,
    /// `model`, `response_format=json`). WhatsApp's `audio/ogg` (opus) goes as it is. Same
    /// retries and deadline as [`Self::complete`]; an empty transcript is
    /// [`AiError::Malformed`] (nothing was said).
    pub async fn transcribe(
        &self,
        key: &SecretString,
        model: &str,
        audio: &AudioInput<'_>,
        deadline: Duration,
    ) -> Result<Transcript, AiError> {
        with_retries("transcription", deadline, || {
            self.transcribe_once(key, model, audio)
        })
        .await
    }

    async fn transcribe_once(
        &self,
        key: &SecretString,
        model: &str,
        audio: &AudioInput<'_>,
    ) -> Result<Transcript, Attempt> {
        let mime = audio.mime_type.split(';').next().unwrap_or("").trim();
        let file = reqwest::multipart::Part::bytes(audio.bytes.to_vec())
            .file_name(format!("voice-note.{}", audio_extension(mime)))
            .mime_str(if mime.is_empty() {
                "application/octet-stream"
            } else {
                mime
            })
            .map_err(|_| Attempt::give_up(AiError::Transport))?;
        let form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", model.to_owned())
            .text("response_format", "json");
        let response = self
            .http
            .post(format!("{}/audio/transcriptions", self.base_url))
            .bearer_auth(key.expose_secret())
            .multipart(form)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let response = check_status(response).await?;
        let parsed: TranscriptionBody = response.json().await.map_err(|e| {
            if e.is_timeout() {
                Attempt::retry(AiError::Timeout)
            } else {
                Attempt::give_up(AiError::Malformed)
            }
        })?;
        let text = parsed.text.trim().to_owned();
        if text.is_empty() {
            return Err(Attempt::give_up(AiError::Malformed));
        }
        let usage = parsed.usage.unwrap_or_default();
        Ok(Transcript {
            text,
            seconds: usage.seconds.or(parsed.duration),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
        })
    }

    async fn attempt(
        &self,
        key: &SecretString,
        req: &ChatRequest<'_>,
        image: Option<&ImageInput>,
    ) -> Result<ChatReply, Attempt> {
        let last_user = req.messages.iter().rposition(|m| m.role == Role::User);
        let body = RequestBody {
            model: req.model,
            messages: req
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| WireMessage {
                    message: m,
                    image: image.filter(|_| Some(i) == last_user),
                })
                .collect(),
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

        let response = check_status(response).await?;
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
        Ok(ChatReply {
            text,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cached_tokens: usage.prompt_tokens_details.and_then(|d| d.cached_tokens),
        })
    }
}

/// Runs `attempt` with the client's retries (at most twice, after about 200–400 ms, then
/// 400–800 ms, for failures marked retryable), all of it ending by `deadline`.
async fn with_retries<T, F, Fut>(
    what: &'static str,
    deadline: Duration,
    attempt: F,
) -> Result<T, AiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt>>,
{
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

    let attempts = attempt
        .retry(backoff)
        .when(|e: &Attempt| e.retry)
        .notify(|e: &Attempt, wait: Duration| {
            tracing::info!(call = what, error = %e.error, wait_ms = wait.as_millis() as u64, "retrying");
        });

    match tokio::time::timeout(deadline, attempts).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => {
            tracing::warn!(call = what, error = %e.error, "AI call failed");
            Err(e.error)
        }
        Err(_) => {
            tracing::warn!(
                call = what,
                deadline_ms = deadline.as_millis() as u64,
                "AI call passed its deadline"
            );
            Err(AiError::Timeout)
        }
    }
}

/// A 2xx response as it is; any other status classified (429 throttling and 5xx retried,
/// `insufficient_quota` and other 4xx not).
async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, Attempt> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(response);
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

/// The file extension the transcription server reads the format from.
fn audio_extension(mime: &str) -> &'static str {
    match mime {
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/webm" => "webm",
        _ => "ogg",
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
    messages: Vec<WireMessage<'a>>,
    max_tokens: u32,
    temperature: f32,
}

/// A turn as sent: plain `content`, or (the turn with the picture) content parts.
struct WireMessage<'a> {
    message: &'a ChatMessage,
    image: Option<&'a ImageInput>,
}

impl Serialize for WireMessage<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        use serde_json::json;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("role", &self.message.role)?;
        match self.image {
            None => map.serialize_entry("content", &self.message.content)?,
            Some(image) => map.serialize_entry(
                "content",
                &json!([
                    {"type": "text", "text": self.message.content},
                    {"type": "image_url", "image_url": {"url": image.data_url, "detail": "low"}}
                ]),
            )?,
        }
        map.end()
    }
}

#[derive(Deserialize)]
struct TranscriptionBody {
    #[serde(default)]
    text: String,
    #[serde(default)]
    usage: Option<TranscriptionUsage>,
    /// `verbose_json`'s duration, for servers that answer with it.
    #[serde(default)]
    duration: Option<f64>,
}

/// OpenAI's `usage`: `{"type": "tokens", "input_tokens", "output_tokens", ...}` or
/// `{"type": "duration", "seconds"}`; both read leniently.
#[derive(Deserialize, Default)]
struct TranscriptionUsage {
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
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
