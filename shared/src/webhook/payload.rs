//! The serde model of a WhatsApp Cloud API webhook POST body (Graph API v25.0).
//!
//! Meta's shape: `object`, then `entry[]` (one per WhatsApp Business Account), each with
//! `changes[]`, each with a `field` and a `value`. Only `field == "messages"` carries customer
//! messages and delivery statuses, so only those values are modelled; every other field's value
//! is kept as raw JSON and ignored downstream.
//!
//! Parsing policy, because a payload that fails to parse loses every message in it:
//! - unknown fields are ignored everywhere (serde's default);
//! - the message `type` and the status value are kept as Meta sent them, so new types and
//!   statuses parse;
//! - identity fields the product cannot work without are required: the routing key
//!   `metadata.phone_number_id`, a message's or status's `id` and `timestamp`, a message's `type`;
//! - each content sub-object (`text`, `image`, `interactive`, `context`, `referral`, ...) is
//!   lenient: if Meta changes its shape it becomes `None` (or an empty list) instead of failing
//!   the whole delivery;
//! - phone numbers are optional: since the 2026 username rollout a sender may be known only by
//!   its business-scoped user id (`from_user_id`, `contacts[].user_id`).

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};

/// A whole webhook POST body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WebhookPayload {
    /// `whatsapp_business_account` for WhatsApp webhooks.
    pub object: String,
    /// One entry per WhatsApp Business Account; Meta may batch several in one POST.
    #[serde(default)]
    pub entry: Vec<Entry>,
}

impl WebhookPayload {
    /// Parses a raw webhook body.
    ///
    /// Prefer this to `serde_json::from_slice`: serde's error text quotes the offending value,
    /// which may be a customer's message or phone number, while [`PayloadError`] keeps only the
    /// position and category.
    ///
    /// # Errors
    /// A [`PayloadError`] when the body is not JSON or lacks a field the product needs (see the
    /// module's parsing policy).
    pub fn from_slice(body: &[u8]) -> Result<Self, PayloadError> {
        match serde_json::from_slice(body) {
            Ok(p) => Ok(p),
            // A lone UTF-16 surrogate (`\ud83d` without its pair: a cut-off emoji) is valid
            // for Meta's encoder but not for serde_json or Postgres. Rather than refuse every
            // message of the delivery, such escapes become U+FFFD and parsing is tried again.
            Err(e) => match super::repair::replace_lone_surrogates(body) {
                Some(fixed) => serde_json::from_slice(&fixed).map_err(PayloadError::from),
                None => Err(PayloadError::from(e)),
            },
        }
    }
}

/// A body that is not a Cloud API webhook payload. Its text names only where parsing stopped,
/// never the content, so it is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the webhook body is not a Cloud API payload ({category} error at line {line}, column {column})")]
pub struct PayloadError {
    /// `syntax`, `data`, `eof` or `io`, after `serde_json::error::Category`.
    pub category: &'static str,
    /// 1-based line where parsing stopped.
    pub line: usize,
    /// 1-based column where parsing stopped.
    pub column: usize,
}

impl From<serde_json::Error> for PayloadError {
    fn from(err: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let category = match err.classify() {
            Category::Io => "io",
            Category::Syntax => "syntax",
            Category::Data => "data",
            Category::Eof => "eof",
        };
        Self {
            category,
            line: err.line(),
            column: err.column(),
        }
    }
}

/// One `entry[]` element.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Entry {
    /// The WhatsApp Business Account id (not the phone number id).
    pub id: String,
    /// Every change in this entry; all of them must be handled, not just the first.
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// One `changes[]` element: the subscribed `field` and its `value`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawChange")]
pub struct Change {
    /// The webhook field, e.g. `messages`, `account_update`, `message_template_status_update`.
    pub field: String,
    /// The value, typed only for `messages`.
    pub value: ChangeValue,
}

impl Change {
    /// The value of a `messages` change; `None` for every other field.
    #[must_use]
    pub fn messages(&self) -> Option<&MessagesValue> {
        match &self.value {
            ChangeValue::Messages(value) => Some(value),
            ChangeValue::Other(_) => None,
        }
    }
}

/// The value of a change, typed according to its field.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeValue {
    /// `field == "messages"`: inbound messages, statuses and errors of one business number.
    Messages(MessagesValue),
    /// Any other field (template status, account updates, calls, ...), kept raw.
    Other(serde_json::Value),
}

// `field` may come after `value` (Meta puts it last), so the value is buffered before it can be
// typed by field.
#[derive(Deserialize)]
struct RawChange {
    field: String,
    #[serde(default)]
    value: serde_json::Value,
}

impl TryFrom<RawChange> for Change {
    type Error = serde_json::Error;

    fn try_from(raw: RawChange) -> Result<Self, Self::Error> {
        let value = if raw.field == "messages" {
            ChangeValue::Messages(serde_json::from_value(raw.value)?)
        } else {
            ChangeValue::Other(raw.value)
        };
        Ok(Self {
            field: raw.field,
            value,
        })
    }
}

/// The `value` of a `messages` change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessagesValue {
    /// Always `whatsapp`.
    #[serde(default)]
    pub messaging_product: Option<String>,
    /// The business number the change is about.
    pub metadata: Metadata,
    /// Profiles of the senders of `messages` (absent for system messages and failed statuses).
    #[serde(default, deserialize_with = "lenient_vec")]
    pub contacts: Vec<Contact>,
    /// Inbound messages from customers.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// Delivery statuses of messages the business sent.
    #[serde(default)]
    pub statuses: Vec<Status>,
    /// System- or account-level problems not tied to one message.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub errors: Vec<ApiError>,
}

/// The business phone number that received (or sent) the messages.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Metadata {
    /// The number as displayed, digits only.
    #[serde(default)]
    pub display_phone_number: Option<String>,
    /// The Graph id of the business number: the routing key to a tenant.
    pub phone_number_id: String,
}

/// One `contacts[]` element: who sent a message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Contact {
    /// The sender's WhatsApp profile.
    #[serde(default, deserialize_with = "lenient")]
    pub profile: Option<Profile>,
    /// The sender's phone number (WhatsApp id); omitted when it is withheld (usernames, 2026).
    #[serde(default)]
    pub wa_id: Option<String>,
    /// The business-scoped user id (BSUID), e.g. `US.13491208655302741918`.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The parent BSUID, present only for linked business portfolios.
    #[serde(default)]
    pub parent_user_id: Option<String>,
    /// Present only when the identity change check is enabled.
    #[serde(default)]
    pub identity_key_hash: Option<String>,
}

/// `contacts[].profile`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Profile {
    /// The name the customer set in WhatsApp.
    #[serde(default)]
    pub name: Option<String>,
    /// The customer's WhatsApp username, when they adopted one.
    #[serde(default)]
    pub username: Option<String>,
}

/// One `messages[]` element: a message a customer sent to the business.
///
/// `message_type` says which of the optional content objects is set. Unknown types parse, with
/// no content object.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Message {
    /// The WhatsApp message id (`wamid.…`): the idempotency key.
    pub id: String,
    /// The sender's phone number; absent when the customer's number is withheld.
    #[serde(default)]
    pub from: Option<String>,
    /// The sender's business-scoped user id.
    #[serde(default)]
    pub from_user_id: Option<String>,
    /// The sender's parent business-scoped user id.
    #[serde(default)]
    pub from_parent_user_id: Option<String>,
    /// Set when the message was sent in a group.
    #[serde(default)]
    pub group_id: Option<String>,
    /// When Meta received the message, in unix seconds (sent as a string).
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: i64,
    /// `text`, `image`, `interactive`, ... as Meta sent it.
    #[serde(rename = "type")]
    pub message_type: String,
    /// `type == "text"`.
    #[serde(default, deserialize_with = "lenient")]
    pub text: Option<Text>,
    /// `type == "image"`.
    #[serde(default, deserialize_with = "lenient")]
    pub image: Option<Media>,
    /// `type == "audio"`; `voice` tells a voice note from an audio file.
    #[serde(default, deserialize_with = "lenient")]
    pub audio: Option<Media>,
    /// `type == "video"`.
    #[serde(default, deserialize_with = "lenient")]
    pub video: Option<Media>,
    /// `type == "document"`.
    #[serde(default, deserialize_with = "lenient")]
    pub document: Option<Media>,
    /// `type == "sticker"`.
    #[serde(default, deserialize_with = "lenient")]
    pub sticker: Option<Media>,
    /// `type == "location"`.
    #[serde(default, deserialize_with = "lenient")]
    pub location: Option<Location>,
    /// `type == "contacts"`: shared contact cards, kept raw (their schema is large and we only
    /// store them).
    #[serde(default, deserialize_with = "lenient_vec")]
    pub contacts: Vec<serde_json::Value>,
    /// `type == "interactive"`: a reply to a button, list or flow the business sent.
    #[serde(default, deserialize_with = "lenient")]
    pub interactive: Option<Interactive>,
    /// `type == "button"`: a quick-reply button of a template was tapped.
    #[serde(default, deserialize_with = "lenient")]
    pub button: Option<Button>,
    /// `type == "reaction"`.
    #[serde(default, deserialize_with = "lenient")]
    pub reaction: Option<Reaction>,
    /// `type == "order"`.
    #[serde(default, deserialize_with = "lenient")]
    pub order: Option<Order>,
    /// `type == "system"`: the customer changed number or user id.
    #[serde(default, deserialize_with = "lenient")]
    pub system: Option<System>,
    /// `type == "unsupported"`: what the customer actually sent.
    #[serde(default, deserialize_with = "lenient")]
    pub unsupported: Option<Unsupported>,
    /// Set when the message replies to, or was forwarded from, another message.
    #[serde(default, deserialize_with = "lenient")]
    pub context: Option<Context>,
    /// Set on the first message after the customer tapped a click-to-WhatsApp ad.
    #[serde(default, deserialize_with = "lenient")]
    pub referral: Option<Referral>,
    /// Why Meta could not deliver the content (`unsupported` / `unknown` types).
    #[serde(default, deserialize_with = "lenient_vec")]
    pub errors: Vec<ApiError>,
}

/// `messages[].text`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Text {
    /// What the customer typed.
    #[serde(default)]
    pub body: Option<String>,
}

/// A media object (`image`, `audio`, `video`, `document`, `sticker`). The bytes are fetched
/// later from the Graph API by `id`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Media {
    /// The media id to download with.
    #[serde(default)]
    pub id: Option<String>,
    /// e.g. `image/jpeg`, `audio/ogg; codecs=opus`.
    #[serde(default)]
    pub mime_type: Option<String>,
    /// SHA-256 of the media file.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The customer's caption (image, video, document).
    #[serde(default)]
    pub caption: Option<String>,
    /// The original file name (document).
    #[serde(default)]
    pub filename: Option<String>,
    /// `true` for a voice note (audio).
    #[serde(default)]
    pub voice: Option<bool>,
    /// `true` for an animated sticker.
    #[serde(default)]
    pub animated: Option<bool>,
}

/// `messages[].location`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Location {
    /// Degrees.
    #[serde(default)]
    pub latitude: Option<f64>,
    /// Degrees.
    #[serde(default)]
    pub longitude: Option<f64>,
    /// Place name, when the customer picked a place.
    #[serde(default)]
    pub name: Option<String>,
    /// Place address, when the customer picked a place.
    #[serde(default)]
    pub address: Option<String>,
    /// Place URL, when there is one.
    #[serde(default)]
    pub url: Option<String>,
}

/// `messages[].interactive`: the customer's answer to an interactive message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Interactive {
    /// `button_reply`, `list_reply` or `nfm_reply`.
    #[serde(rename = "type", default)]
    pub interactive_type: Option<String>,
    /// The reply button tapped.
    #[serde(default, deserialize_with = "lenient")]
    pub button_reply: Option<ButtonReply>,
    /// The list row chosen.
    #[serde(default, deserialize_with = "lenient")]
    pub list_reply: Option<ListReply>,
    /// A completed WhatsApp Flow.
    #[serde(default, deserialize_with = "lenient")]
    pub nfm_reply: Option<NfmReply>,
}

/// `interactive.button_reply`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ButtonReply {
    /// The id the business gave the button.
    #[serde(default)]
    pub id: Option<String>,
    /// The button's label, as the customer saw it.
    #[serde(default)]
    pub title: Option<String>,
}

/// `interactive.list_reply`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListReply {
    /// The id the business gave the row.
    #[serde(default)]
    pub id: Option<String>,
    /// The row's title.
    #[serde(default)]
    pub title: Option<String>,
    /// The row's description.
    #[serde(default)]
    pub description: Option<String>,
}

/// `interactive.nfm_reply`: a WhatsApp Flow response.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NfmReply {
    /// Usually `flow`.
    #[serde(default)]
    pub name: Option<String>,
    /// Usually `Sent`.
    #[serde(default)]
    pub body: Option<String>,
    /// The flow's answers, a JSON document encoded as a string.
    #[serde(default)]
    pub response_json: Option<String>,
}

/// `messages[].button`: a template's quick-reply button was tapped.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Button {
    /// The payload the business set on the button.
    #[serde(default)]
    pub payload: Option<String>,
    /// The button's label.
    #[serde(default)]
    pub text: Option<String>,
}

/// `messages[].reaction`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Reaction {
    /// The message reacted to.
    #[serde(default)]
    pub message_id: Option<String>,
    /// The emoji; absent when the customer removed their reaction.
    #[serde(default)]
    pub emoji: Option<String>,
}

/// `messages[].order`: a cart sent from a catalog message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Order {
    /// The catalog the products come from.
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// The customer's note with the order.
    #[serde(default)]
    pub text: Option<String>,
    /// The items in the cart.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub product_items: Vec<ProductItem>,
}

/// `order.product_items[]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProductItem {
    /// The business's SKU.
    #[serde(default)]
    pub product_retailer_id: Option<String>,
    /// How many.
    #[serde(default)]
    pub quantity: Option<f64>,
    /// Unit price.
    #[serde(default)]
    pub item_price: Option<f64>,
    /// ISO 4217 code.
    #[serde(default)]
    pub currency: Option<String>,
}

/// `messages[].system`: the customer's identity changed. Not something to answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct System {
    /// A sentence Meta wrote, containing phone numbers.
    #[serde(default)]
    pub body: Option<String>,
    /// `user_changed_number`, `user_changed_user_id`, ...
    #[serde(rename = "type", default)]
    pub system_type: Option<String>,
    /// The customer's new WhatsApp id (current docs).
    #[serde(default)]
    pub wa_id: Option<String>,
    /// The customer's new WhatsApp id (older payloads).
    #[serde(default)]
    pub new_wa_id: Option<String>,
    /// The customer (older payloads).
    #[serde(default)]
    pub customer: Option<String>,
    /// The customer's new business-scoped user id, for `user_changed_user_id`.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// `messages[].unsupported`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Unsupported {
    /// What was sent instead, e.g. `edit`, `poll_creation`.
    #[serde(rename = "type", default)]
    pub unsupported_type: Option<String>,
}

/// `messages[].context`: the message this one replies to or was forwarded from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Context {
    /// Who sent the quoted message (the business number for a reply to us).
    #[serde(default)]
    pub from: Option<String>,
    /// The wamid of the quoted message.
    #[serde(default)]
    pub id: Option<String>,
    /// The message was forwarded.
    #[serde(default)]
    pub forwarded: Option<bool>,
    /// The message was forwarded more than five times.
    #[serde(default)]
    pub frequently_forwarded: Option<bool>,
    /// Set when the customer asked about a product ("Message business" on a product).
    #[serde(default, deserialize_with = "lenient")]
    pub referred_product: Option<ReferredProduct>,
}

/// `context.referred_product`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReferredProduct {
    /// The catalog.
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// The business's SKU.
    #[serde(default)]
    pub product_retailer_id: Option<String>,
}

/// `messages[].referral`: the click-to-WhatsApp ad or post the conversation started from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Referral {
    /// The ad's or post's URL.
    #[serde(default)]
    pub source_url: Option<String>,
    /// `ad` or `post`.
    #[serde(default)]
    pub source_type: Option<String>,
    /// The ad's or post's id.
    #[serde(default)]
    pub source_id: Option<String>,
    /// The ad's headline.
    #[serde(default)]
    pub headline: Option<String>,
    /// The ad's body.
    #[serde(default)]
    pub body: Option<String>,
    /// `image` or `video`.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The ad's image.
    #[serde(default)]
    pub image_url: Option<String>,
    /// The ad's video.
    #[serde(default)]
    pub video_url: Option<String>,
    /// The ad video's thumbnail.
    #[serde(default)]
    pub thumbnail_url: Option<String>,
    /// The click id, for the Conversions API.
    #[serde(default)]
    pub ctwa_clid: Option<String>,
    /// The ad's greeting, when it had one.
    #[serde(default, deserialize_with = "lenient")]
    pub welcome_message: Option<WelcomeMessage>,
}

/// `referral.welcome_message`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WelcomeMessage {
    /// The greeting text.
    #[serde(default)]
    pub text: Option<String>,
}

/// One `statuses[]` element: what happened to a message the business sent.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Status {
    /// The wamid of the business's message.
    pub id: String,
    /// `sent`, `delivered`, `read`, `failed`, or anything newer.
    pub status: DeliveryStatus,
    /// When it happened, in unix seconds (sent as a string).
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: i64,
    /// The customer's phone number (or group id); may be absent for a business-scoped recipient.
    #[serde(default)]
    pub recipient_id: Option<String>,
    /// The customer's business-scoped user id (absent on a failed send to a phone number).
    #[serde(default)]
    pub recipient_user_id: Option<String>,
    /// The customer's parent business-scoped user id.
    #[serde(default)]
    pub recipient_parent_user_id: Option<String>,
    /// `individual` or `group`.
    #[serde(default)]
    pub recipient_type: Option<String>,
    /// The opaque string the business attached when sending.
    #[serde(default)]
    pub biz_opaque_callback_data: Option<String>,
    /// The conversation the message was billed in (older pricing model).
    #[serde(default, deserialize_with = "lenient")]
    pub conversation: Option<Conversation>,
    /// How the message is priced.
    #[serde(default, deserialize_with = "lenient")]
    pub pricing: Option<Pricing>,
    /// Why it failed (`status == "failed"`).
    #[serde(default, deserialize_with = "lenient_vec")]
    pub errors: Vec<ApiError>,
}

/// The delivery status of a message the business sent.
///
/// Serialised as Meta's lowercase string; statuses this code does not know (`deleted`,
/// `warning`, `played`, ...) are kept verbatim in `Other` rather than failing the payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum DeliveryStatus {
    /// Accepted by WhatsApp and in transit.
    Sent,
    /// On the customer's device.
    Delivered,
    /// Opened by the customer.
    Read,
    /// Could not be sent or delivered; the status carries `errors`.
    Failed,
    /// Any other status, as Meta spelled it.
    Other(String),
}

impl DeliveryStatus {
    /// Meta's spelling of this status.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Other(other) => other,
        }
    }
}

impl From<String> for DeliveryStatus {
    fn from(status: String) -> Self {
        match status.as_str() {
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            _ => Self::Other(status),
        }
    }
}

impl From<DeliveryStatus> for String {
    fn from(status: DeliveryStatus) -> Self {
        match status {
            DeliveryStatus::Other(other) => other,
            known => known.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `statuses[].conversation`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Conversation {
    /// The conversation id.
    #[serde(default)]
    pub id: Option<String>,
    /// When the conversation window closes, unix seconds as a string.
    #[serde(default)]
    pub expiration_timestamp: Option<String>,
    /// What opened the conversation.
    #[serde(default, deserialize_with = "lenient")]
    pub origin: Option<ConversationOrigin>,
}

/// `conversation.origin`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConversationOrigin {
    /// `service`, `marketing`, `utility`, `authentication`, `referral_conversion`, ...
    #[serde(rename = "type", default)]
    pub origin_type: Option<String>,
}

/// `statuses[].pricing`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pricing {
    /// Whether the message is charged.
    #[serde(default)]
    pub billable: Option<bool>,
    /// `CBP` (per conversation, older) or `PMP` (per message).
    #[serde(default)]
    pub pricing_model: Option<String>,
    /// `service`, `marketing`, `utility`, `authentication`, ...
    #[serde(default)]
    pub category: Option<String>,
    /// `regular`, `free_customer_service`, `free_entry_point`, ...
    #[serde(rename = "type", default)]
    pub pricing_type: Option<String>,
}

/// An error object as Meta puts it in `statuses[].errors`, `messages[].errors` and
/// `value.errors`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiError {
    /// Meta's error code, e.g. `131047` (outside the 24-hour window), `131051` (unsupported).
    #[serde(default)]
    pub code: Option<i64>,
    /// A short English title.
    #[serde(default)]
    pub title: Option<String>,
    /// A longer English message (newer payloads; often equal to the title).
    #[serde(default)]
    pub message: Option<String>,
    /// Older payloads put the explanation here.
    #[serde(default)]
    pub details: Option<String>,
    /// The explanation (newer payloads).
    #[serde(default, deserialize_with = "lenient")]
    pub error_data: Option<ErrorData>,
    /// A link to Meta's error code page.
    #[serde(default)]
    pub href: Option<String>,
}

/// `errors[].error_data`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorData {
    /// What went wrong, in English.
    #[serde(default)]
    pub details: Option<String>,
}

// A content object whose shape Meta changed becomes `None` instead of failing the whole
// delivery: the message still reaches the responder with its id, sender and type.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

fn lenient_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(lenient(deserializer)?.unwrap_or_default())
}

// Meta documents timestamps as strings of unix seconds; a bare number is accepted too so that a
// hand-written test payload or a future change of Meta's does not drop a delivery.
fn unix_seconds<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: Deserializer<'de>,
{
    struct UnixSeconds;

    impl serde::de::Visitor<'_> for UnixSeconds {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("unix seconds as a string of digits or an integer")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
            v.parse()
                .map_err(|_| E::custom("timestamp is not a whole number of seconds"))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("timestamp out of range"))
        }
    }

    deserializer.deserialize_any(UnixSeconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<WebhookPayload, serde_json::Error> {
        serde_json::from_value(value)
    }

    fn messages_value(message: serde_json::Value) -> serde_json::Value {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "1", "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550000000", "phone_number_id": "111" },
                    "messages": [message]
                },
                "field": "messages"
            }]}]
        })
    }

    #[test]
    fn a_timestamp_given_as_a_number_is_accepted() {
        let payload = parse(messages_value(json!({
            "id": "wamid.A", "from": "1", "timestamp": 1749416383, "type": "text",
            "text": { "body": "hi" }
        })))
        .unwrap();
        let message = &payload.entry[0].changes[0].messages().unwrap().messages[0];
        assert_eq!(message.timestamp, 1_749_416_383);
    }

    #[test]
    fn a_timestamp_that_is_not_a_number_fails_the_payload() {
        let result = parse(messages_value(json!({
            "id": "wamid.A", "from": "1", "timestamp": "yesterday", "type": "text"
        })));
        assert!(result.is_err());
    }

    #[test]
    fn a_content_object_of_an_unexpected_shape_becomes_none() {
        let payload = parse(messages_value(json!({
            "id": "wamid.A", "from": "1", "timestamp": "1", "type": "text", "text": "not an object"
        })))
        .unwrap();
        let message = &payload.entry[0].changes[0].messages().unwrap().messages[0];
        assert_eq!(message.text, None);
        assert_eq!(message.message_type, "text");
    }

    #[test]
    fn the_value_of_another_field_is_kept_raw_whatever_its_shape() {
        let payload = parse(json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "1", "changes": [{
                "value": { "event": "APPROVED", "messages": "a string, not a list" },
                "field": "message_template_status_update"
            }]}]
        }))
        .unwrap();
        let change = &payload.entry[0].changes[0];
        assert!(change.messages().is_none());
        assert!(matches!(change.value, ChangeValue::Other(_)));
    }

    #[test]
    fn a_messages_change_without_a_phone_number_id_fails_the_payload() {
        let result = parse(json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "1", "changes": [{ "value": { "metadata": {} }, "field": "messages" }]}]
        }));
        assert!(result.is_err());
    }

    #[test]
    fn delivery_statuses_round_trip_through_their_string_form() {
        for status in ["sent", "delivered", "read", "failed", "deleted", "played"] {
            let parsed = DeliveryStatus::from(status.to_owned());
            assert_eq!(parsed.as_str(), status);
            assert_eq!(String::from(parsed), status);
        }
        assert_eq!(
            DeliveryStatus::from("failed".to_owned()),
            DeliveryStatus::Failed
        );
        assert_eq!(
            DeliveryStatus::from("deleted".to_owned()),
            DeliveryStatus::Other("deleted".into())
        );
    }

    #[test]
    fn a_payload_error_does_not_quote_the_offending_value() {
        let body = br#"{"object": "whatsapp_business_account", "entry": "Habari secret text"}"#;
        let err = WebhookPayload::from_slice(body).unwrap_err();
        assert_eq!(err.category, "data");
        assert!(!err.to_string().contains("Habari"));
    }
}
