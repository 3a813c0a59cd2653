//! Outbound client for Meta's WhatsApp Cloud API (Graph API): sends text replies, template
//! messages and read receipts with a tenant's token, downloads customers' media (`media`), and
//! sorts Graph's failures into retry / renew token / give up.

mod media;

pub use media::{MediaError, MediaFile, MAX_AUDIO_BYTES, MAX_IMAGE_BYTES};

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Longest text body Graph accepts in one message, counted in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Client for the Graph API's WhatsApp endpoints. Build it once per process (it holds a
/// connection pool) and share it: the token is passed per call because every tenant has its own.
#[derive(Debug, Clone)]
pub struct WhatsAppClient {
    http: reqwest::Client,
    /// For media downloads: redirects only to hosts that may carry the token.
    media_http: reqwest::Client,
    /// The configured base URL's origin, which may carry the token besides Meta's hosts.
    origin: Option<media::Origin>,
    base_url: String,
}

/// Who a message goes to.
#[derive(Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A WhatsApp phone number in international form, digits only (the `wa_id` of webhooks).
    /// Sent as the request's `to` field.
    Phone(String),
    /// A business-scoped user id (BSUID, e.g. `US.13491208655302741918`), the only handle Meta
    /// gives for users who adopted a username and hide their number. Sent as the request's
    /// `recipient` field, in place of `to`.
    UserId(String),
}

// Both forms identify a person, so `Debug` masks them like a phone number.
impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Phone(p) => write!(f, "Phone({})", crate::domain::mask_phone(p)),
            Recipient::UserId(u) => write!(f, "UserId({})", crate::domain::mask_phone(u)),
        }
    }
}

/// Why a send or read receipt failed. `Display` and `Debug` carry Graph's numeric code and the
/// HTTP status only: Graph's `message` text can echo the recipient's number, so it is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: HTTP 429 or 5xx, a throughput or rate limit (Graph codes 4,
    /// 17, 613, 80007, 130429, 131056), a temporary Graph fault (1, 2, 131000, 131001, 131002,
    /// 131016, 131057, 133004), or no answer at all (connection failure, timeout:
    /// `http_status` is `None`). Graph may have accepted a request that timed out, so a retry
    /// can deliver a message twice.
    #[error("WhatsApp send failed, retryable (code {code:?}, http status {http_status:?})")]
    Retryable {
        code: Option<i64>,
        http_status: Option<u16>,
    },
    /// The token is invalid, expired or revoked (Graph code 190, or HTTP 401; `code` is 0 when
    /// a 401 carried no Graph code). Not retried: the tenant must renew its token.
    #[error("WhatsApp token rejected (code {code})")]
    TokenInvalid { code: i64 },
    /// Refused for good: sending it again unchanged fails again. Notably 131047 (the 24-hour
    /// window is closed: only a template may be sent), 131026 (undeliverable), 100 (invalid
    /// parameter), 131051 (unsupported type), 131052, 132xxx (templates), 133xxx (registration,
    /// except 133004), 131048 (spam rate limit: it lifts only once quality recovers, not within a
    /// queue's retry window), permissions (3, 10, 200–299), policy (368, 131031), payment
    /// (131042), and any other code on a 4xx. Also: `http_status` 200 when Graph accepted the
    /// message but its answer could not be read (not retried: the message may have gone out),
    /// and `http_status` 0 when the request could not even be built (e.g. a token holding
    /// characters a header cannot carry).
    #[error("WhatsApp send rejected (code {code:?}, http status {http_status})")]
    Rejected { code: Option<i64>, http_status: u16 },
}

impl SendError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }

    /// Graph's error code, when Graph sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            SendError::Retryable { code, .. } | SendError::Rejected { code, .. } => *code,
            SendError::TokenInvalid { code } => Some(*code),
        }
    }
}

impl WhatsAppClient {
    /// `base_url` is the versioned Graph root, e.g. `https://graph.facebook.com/v25.0` (a
    /// trailing slash is tolerated); `timeout` bounds each HTTP request end to end.
    pub fn new(base_url: impl Into<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("a reqwest client with only a timeout set always builds");
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let origin = media::Origin::of(&base_url);
        Self {
            http,
            media_http: media::media_http(timeout, origin.clone()),
            origin,
            base_url,
        }
    }

    /// Sends `body` as text from the business number `phone_number_id` to `to`.
    ///
    /// A body longer than [`MAX_TEXT_CHARS`] goes out as several messages, cut at a newline or
    /// else a space near the limit (mid-word only when there is none). Only the first part
    /// quotes `reply_to`. Returns the message ids (wamids) Graph assigned, one per part, in
    /// order. If a later part fails, the earlier parts have already been delivered and a retry
    /// of the whole call repeats them.
    pub async fn send_text(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        to: &Recipient,
        body: &str,
        reply_to: Option<&str>,
    ) -> Result<Vec<String>, SendError> {
        self.send_text_tagged(phone_number_id, token, to, body, reply_to, None)
            .await
    }

    /// [`Self::send_text`], each part carrying `tag` as `biz_opaque_callback_data`, which Meta
    /// returns in every status of the message (see [`reply_tag`]).
    pub async fn send_text_tagged(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        to: &Recipient,
        body: &str,
        reply_to: Option<&str>,
        tag: Option<&str>,
    ) -> Result<Vec<String>, SendError> {
        let parts = split_text(body, MAX_TEXT_CHARS);
        let mut ids = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let (to_field, recipient_field) = match to {
                Recipient::Phone(p) => (Some(p.as_str()), None),
                Recipient::UserId(u) => (None, Some(u.as_str())),
            };
            let request = TextMessageRequest {
                messaging_product: "whatsapp",
                recipient_type: "individual",
                to: to_field,
                recipient: recipient_field,
                kind: "text",
                text: TextBody {
                    preview_url: false,
                    body: part,
                },
                context: reply_to
                    .filter(|_| i == 0)
                    .map(|message_id| Context { message_id }),
                biz_opaque_callback_data: tag,
            };
            let response: SendResponse =
                self.post_messages(phone_number_id, token, &request).await?;
            match response.messages.into_iter().next().map(|m| m.id) {
                Some(id) => ids.push(id),
                None => {
                    tracing::warn!(
                        phone_number_id,
                        "Graph accepted a message but returned no message id"
                    );
                    return Err(SendError::Rejected {
                        code: None,
                        http_status: 200,
                    });
                }
            }
        }
        Ok(ids)
    }

    /// Sends the approved template `name` in `language` (e.g. `en`, `en_US`) to `to`, with
    /// `body_parameters` filling the body's `{{1}}`, `{{2}}`, ... in order. A template is the
    /// only message Graph delivers outside the recipient's 24-hour window. `tag` goes as
    /// `biz_opaque_callback_data` (see [`reply_tag`]). Returns the wamid.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_template(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        to: &Recipient,
        name: &str,
        language: &str,
        body_parameters: &[String],
        tag: Option<&str>,
    ) -> Result<String, SendError> {
        let (to_field, recipient_field) = match to {
            Recipient::Phone(p) => (Some(p.as_str()), None),
            Recipient::UserId(u) => (None, Some(u.as_str())),
        };
        let components = if body_parameters.is_empty() {
            Vec::new()
        } else {
            vec![TemplateComponent {
                kind: "body",
                parameters: body_parameters
                    .iter()
                    .map(|text| TemplateParameter { kind: "text", text })
                    .collect(),
            }]
        };
        let request = TemplateMessageRequest {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: to_field,
            recipient: recipient_field,
            kind: "template",
            template: TemplateBody {
                name,
                language: TemplateLanguage { code: language },
                components,
            },
            biz_opaque_callback_data: tag,
        };
        let response: SendResponse = self.post_messages(phone_number_id, token, &request).await?;
        response
            .messages
            .into_iter()
            .next()
            .map(|m| m.id)
            .ok_or_else(|| {
                tracing::warn!(
                    phone_number_id,
                    "Graph accepted a template but returned no message id"
                );
                SendError::Rejected {
                    code: None,
                    http_status: 200,
                }
            })
    }

    /// Marks the inbound message `wa_message_id` as read (blue ticks for the user).
    pub async fn mark_read(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        wa_message_id: &str,
    ) -> Result<(), SendError> {
        let request = MarkReadRequest {
            messaging_product: "whatsapp",
            status: "read",
            message_id: wa_message_id,
        };
        let _: serde_json::Value = self.post_messages(phone_number_id, token, &request).await?;
        Ok(())
    }

    async fn post_messages<B: Serialize, R: serde::de::DeserializeOwned>(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        body: &B,
    ) -> Result<R, SendError> {
        let url = format!("{}/{}/messages", self.base_url, phone_number_id);
        let response = self
            .http
            .post(url)
            .bearer_auth(token.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|e| transport_error(&e, phone_number_id))?;

        let status = response.status();
        if status.is_success() {
            return response.json::<R>().await.map_err(|_| {
                tracing::warn!(
                    phone_number_id,
                    "Graph answered 2xx with an unreadable body"
                );
                SendError::Rejected {
                    code: None,
                    http_status: status.as_u16(),
                }
            });
        }

        // A body that is not Graph's error JSON (a proxy's HTML page, a cut connection) still
        // has a status worth classifying, so a read failure here is not an error of its own.
        let bytes = response.bytes().await.unwrap_or_default();
        let graph = serde_json::from_slice::<GraphErrorBody>(&bytes)
            .ok()
            .map(|b| b.error);
        let code = graph.as_ref().and_then(|e| e.code);
        let subcode = graph.as_ref().and_then(|e| e.error_subcode);
        let error = classify(status.as_u16(), code);
        tracing::warn!(
            phone_number_id,
            http_status = status.as_u16(),
            code,
            subcode,
            fbtrace_id = graph.as_ref().and_then(|e| e.fbtrace_id.as_deref()),
            retryable = error.is_retryable(),
            "Graph API refused a request"
        );
        Err(error)
    }
}

fn transport_error(e: &reqwest::Error, phone_number_id: &str) -> SendError {
    // reqwest's own Display names the URL and its source chain; the flags say enough.
    tracing::warn!(
        phone_number_id,
        timeout = e.is_timeout(),
        connect = e.is_connect(),
        builder = e.is_builder(),
        "Graph API request failed before an answer"
    );
    if e.is_builder() {
        SendError::Rejected {
            code: None,
            http_status: 0,
        }
    } else {
        SendError::Retryable {
            code: None,
            http_status: None,
        }
    }
}

/// Sorts a Graph failure by what the caller should do next. A recognised code decides; an
/// unknown or missing code falls back on the HTTP status.
fn classify(http_status: u16, code: Option<i64>) -> SendError {
    const RETRYABLE_CODES: &[i64] = &[
        1, 2, 4, 17, 613, 80007, 130429, 131000, 131001, 131002, 131016, 131056, 131057, 133004,
    ];
    match code {
        Some(190) => SendError::TokenInvalid { code: 190 },
        Some(c) if RETRYABLE_CODES.contains(&c) => SendError::Retryable {
            code,
            http_status: Some(http_status),
        },
        _ if http_status == 401 => SendError::TokenInvalid {
            code: code.unwrap_or(0),
        },
        // A code we know but do not list above is a 4xx-style refusal even if it came with
        // a 5xx; only code-less or unknown 429/5xx answers are treated as transient.
        Some(c) if is_known_permanent(c) => SendError::Rejected { code, http_status },
        _ if http_status == 429 || http_status >= 500 => SendError::Retryable {
            code,
            http_status: Some(http_status),
        },
        _ => SendError::Rejected { code, http_status },
    }
}

fn is_known_permanent(code: i64) -> bool {
    matches!(
        code,
        0 | 3 | 10 | 33 | 100 | 200..=299 | 368
            | 131008 | 131009 | 131021 | 131026 | 131031 | 131042 | 131045 | 131047
            | 131048 | 131049 | 131050 | 131051 | 131052 | 131053
            | 132000..=132999 | 133000..=133999
    )
}

/// Cuts `text` into pieces of at most `max_chars` characters. Each cut goes at the last newline
/// in the second half of the window, else the last whitespace there, else exactly at the limit;
/// whitespace around a cut is dropped. Looking only in the second half keeps a
/// stray early space from producing a tiny part.
fn split_text(text: &str, max_chars: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        // Byte offset just past the first `max_chars` characters, if there are more than that.
        let Some((limit, _)) = rest.char_indices().nth(max_chars) else {
            parts.push(rest);
            break;
        };
        let window = &rest[..limit];
        let half = window
            .char_indices()
            .nth(max_chars / 2)
            .map_or(0, |(i, _)| i);
        let cut_at = |pred: fn(char) -> bool| {
            window[half..]
                .char_indices()
                .rfind(|&(_, c)| pred(c))
                .map(|(i, c)| (half + i, c.len_utf8()))
        };
        let (end, skip) = cut_at(|c| c == '\n')
            .or_else(|| cut_at(char::is_whitespace))
            .unwrap_or((limit, 0));
        // Whitespace at a cut only pads the edge of a bubble, so it goes.
        parts.push(rest[..end].trim_end());
        rest = rest[end + skip..].trim_start();
    }
    // Graph refuses a blank body, so a run of blank lines at a cut must not become a message
    // of its own (which would fail after the earlier parts had gone out).
    if parts.len() > 1 && parts.iter().any(|p| !p.trim().is_empty()) {
        parts.retain(|p| !p.trim().is_empty());
    }
    parts
}

/// What a recorded reply carries to Meta as `biz_opaque_callback_data`: its row's id, which
/// Meta returns in every status of the message. A status then finds its reply even when the
/// wamid Graph assigned was never recorded (a worker that died between sending and marking, a
/// send Graph timed out on but delivered): migrations/0028_statuses_name_their_reply.sql.
#[must_use]
pub fn reply_tag(reply_id: uuid::Uuid) -> String {
    format!("{REPLY_TAG_PREFIX}{reply_id}")
}

/// The reply a status's `biz_opaque_callback_data` names, when it is one of [`reply_tag`]'s
/// (another tool on the same number may attach its own data: that names nothing).
#[must_use]
pub fn reply_of_tag(tag: &str) -> Option<uuid::Uuid> {
    let id = tag.strip_prefix(REPLY_TAG_PREFIX)?;
    (id.len() == 36).then(|| uuid::Uuid::parse_str(id).ok())?
}

const REPLY_TAG_PREFIX: &str = "alphadome:reply:";

#[derive(Serialize)]
struct TextMessageRequest<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    text: TextBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Context<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
}

#[derive(Serialize)]
struct TextBody<'a> {
    preview_url: bool,
    body: &'a str,
}

#[derive(Serialize)]
struct Context<'a> {
    message_id: &'a str,
}

#[derive(Serialize)]
struct TemplateMessageRequest<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    template: TemplateBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
}

#[derive(Serialize)]
struct TemplateBody<'a> {
    name: &'a str,
    language: TemplateLanguage<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<TemplateComponent<'a>>,
}

#[derive(Serialize)]
struct TemplateLanguage<'a> {
    code: &'a str,
}

#[derive(Serialize)]
struct TemplateComponent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    parameters: Vec<TemplateParameter<'a>>,
}

#[derive(Serialize)]
struct TemplateParameter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Serialize)]
struct MarkReadRequest<'a> {
    messaging_product: &'static str,
    status: &'static str,
    message_id: &'a str,
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

// `message` and `error_data` are deliberately not read: they may echo the user's number.
#[derive(Deserialize)]
struct GraphError {
    code: Option<i64>,
    error_subcode: Option<i64>,
    fbtrace_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_text_is_one_part() {
        assert_eq!(split_text("hello", 10), vec!["hello"]);
        assert_eq!(split_text("", 10), vec![""]);
        assert_eq!(split_text("0123456789", 10), vec!["0123456789"]);
    }

    #[test]
    fn a_long_text_is_cut_at_the_last_newline_then_space() {
        assert_eq!(split_text("aaaa bb\ncc dd", 10), vec!["aaaa bb", "cc dd"]);
        assert_eq!(split_text("aaaa bbbb cc", 10), vec!["aaaa bbbb", "cc"]);
    }

    #[test]
    fn a_text_without_whitespace_is_cut_at_the_limit_on_a_char_boundary() {
        let text = "é".repeat(25);
        let parts = split_text(&text, 10);
        assert_eq!(
            parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn blank_leftovers_at_a_cut_are_not_sent_as_parts_of_their_own() {
        assert_eq!(split_text("0123456789\n\n", 10), vec!["0123456789"]);
        assert_eq!(
            split_text("0123456789\n\nabc", 10),
            vec!["0123456789", "abc"]
        );
    }

    #[test]
    fn an_early_space_does_not_make_a_tiny_part() {
        assert_eq!(
            split_text("a bcdefghijklmn", 10),
            vec!["a bcdefghi", "jklmn"]
        );
    }

    #[test]
    fn codes_are_classified_as_documented() {
        assert!(classify(400, Some(130429)).is_retryable());
        assert!(classify(400, Some(131056)).is_retryable());
        assert!(classify(400, Some(80007)).is_retryable());
        assert!(classify(500, Some(131000)).is_retryable());
        assert!(classify(503, None).is_retryable());
        assert!(classify(429, None).is_retryable());
        assert_eq!(
            classify(401, Some(190)),
            SendError::TokenInvalid { code: 190 }
        );
        assert_eq!(
            classify(400, Some(190)),
            SendError::TokenInvalid { code: 190 }
        );
        assert_eq!(classify(401, None), SendError::TokenInvalid { code: 0 });
        assert!(!classify(400, Some(131047)).is_retryable());
        assert!(!classify(500, Some(131047)).is_retryable());
        assert!(!classify(400, Some(132001)).is_retryable());
        assert!(!classify(400, Some(999_999)).is_retryable());
        assert!(classify(502, Some(999_999)).is_retryable());
    }

    #[test]
    fn a_recipient_debug_masks_the_number() {
        let shown = format!("{:?}", Recipient::Phone("254712345678".into()));
        assert!(!shown.contains("254712345678"), "{shown}");
    }
}
