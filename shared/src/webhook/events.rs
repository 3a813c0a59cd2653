//! Turns a parsed webhook payload into the events the product acts on: one per inbound message
//! and one per delivery status, each tagged with the business number that received it.
//!
//! Every entry and every `messages` change is walked: Meta batches several business accounts,
//! numbers and messages into one POST, and handling only the first would silently drop the rest.

use serde::{Deserialize, Serialize};

use crate::webhook::payload::{
    ApiError, Contact, DeliveryStatus, Media, Message, MessagesValue, Status, WebhookPayload,
};

/// Something that happened on one business number.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The business number that received the message (or sent the message whose status this is):
    /// `value.metadata.phone_number_id`, the key that routes the event to a tenant. It is never
    /// the customer's number.
    pub phone_number_id: String,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of event the webhook enqueues.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A customer sent the business a message.
    Message(InboundMessage),
    /// A message the business sent changed status.
    Status(StatusUpdate),
}

/// A customer's message, reduced to what the responder needs. Media is referenced by id, never
/// carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// The wamid: the idempotency key.
    pub wa_message_id: String,
    /// The customer's phone number (WhatsApp id), when Meta shares it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_wa_id: Option<String>,
    /// The customer's business-scoped user id, when Meta sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user_id: Option<String>,
    /// The customer's WhatsApp profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    /// When Meta received the message, unix seconds.
    pub timestamp: i64,
    /// Meta's message type, verbatim (`text`, `image`, `interactive`, ...).
    pub message_type: String,
    /// What the customer said, for the types that say something: the text body, a button's or
    /// list row's title, a media caption, a reaction's emoji, a location's name and address, an
    /// order's note. `None` for system messages: their body is Meta's, not the customer's.
    /// Whether any of it is answered is the policy's call, made on `message_type` first
    /// (`responder::policy::content_of`): a reaction's emoji is kept here, never answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The id of the choice the customer made: a template button's payload, or the id of an
    /// interactive reply button or list row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_id: Option<String>,
    /// The media id to download, for image, audio, video, document and sticker messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// The media's MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_mime_type: Option<String>,
    /// The wamid this message replies to (`context.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_message_id: Option<String>,
    /// The click-to-WhatsApp ad or post the conversation started from (`referral.source_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral_source_id: Option<String>,
}

impl InboundMessage {
    /// Who sent the message: the phone number when Meta shares it, else the business-scoped
    /// user id. Phone first because status updates for a message sent to a phone number carry
    /// the phone (`recipient_id`) but, when the send failed, no user id.
    #[must_use]
    pub fn sender(&self) -> Option<&str> {
        self.from_wa_id.as_deref().or(self.from_user_id.as_deref())
    }
}

/// A status update of a message the business sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The wamid of the business's message.
    pub wa_message_id: String,
    /// `sent`, `delivered`, `read`, `failed` or another status Meta added.
    pub status: DeliveryStatus,
    /// When it happened, unix seconds.
    pub timestamp: i64,
    /// The customer's phone number (or a group id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    /// The customer's business-scoped user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    /// The first error's code, for a failed message (e.g. 131047: outside the 24-hour window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// The first error's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_title: Option<String>,
    /// Meta's pricing category (`service`, `marketing`, `utility`, `authentication`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_category: Option<String>,
    /// Whether Meta charges for the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_billable: Option<bool>,
    /// Meta's pricing type (`regular`, `free_customer_service`, `free_entry_point`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing_type: Option<String>,
    /// The reply the message was, named by the tag the responder sent with it
    /// ([`crate::whatsapp::reply_tag`]); none for messages sent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_id: Option<uuid::Uuid>,
}

impl StatusUpdate {
    /// Who the message went to: the phone number when present, else the business-scoped user id
    /// (the same preference as [`InboundMessage::sender`], so both land in one conversation).
    #[must_use]
    pub fn recipient(&self) -> Option<&str> {
        self.recipient_id
            .as_deref()
            .or(self.recipient_user_id.as_deref())
    }
}

/// Every inbound message and every status update in `payload`, in payload order, each with the
/// `phone_number_id` of its business number. Changes of fields other than `messages` yield
/// nothing; so do value-level `errors` (see [`value_errors`]).
#[must_use]
pub fn extract_events(payload: &WebhookPayload) -> Vec<WebhookEvent> {
    let mut events = Vec::new();
    for value in messages_values(payload) {
        let phone_number_id = &value.metadata.phone_number_id;
        events.extend(value.messages.iter().map(|message| WebhookEvent {
            phone_number_id: phone_number_id.clone(),
            kind: EventKind::Message(to_inbound_message(message, &value.contacts)),
        }));
        events.extend(value.statuses.iter().map(|status| WebhookEvent {
            phone_number_id: phone_number_id.clone(),
            kind: EventKind::Status(to_status_update(status)),
        }));
    }
    for event in &mut events {
        event.remove_nul();
    }
    events
}

impl WebhookEvent {
    /// Removes U+0000, which JSON may carry (`\u0000`) but Postgres `text` and `jsonb` cannot
    /// hold: one such character would make the database refuse the message.
    fn remove_nul(&mut self) {
        fn clean(s: &mut String) {
            if s.contains('\0') {
                s.retain(|c| c != '\0');
            }
        }
        fn clean_opt(s: &mut Option<String>) {
            if let Some(s) = s {
                clean(s);
            }
        }
        clean(&mut self.phone_number_id);
        match &mut self.kind {
            EventKind::Message(m) => {
                clean(&mut m.wa_message_id);
                clean(&mut m.message_type);
                for f in [
                    &mut m.from_wa_id,
                    &mut m.from_user_id,
                    &mut m.profile_name,
                    &mut m.text,
                    &mut m.reply_id,
                    &mut m.media_id,
                    &mut m.media_mime_type,
                    &mut m.context_message_id,
                    &mut m.referral_source_id,
                ] {
                    clean_opt(f);
                }
            }
            EventKind::Status(st) => {
                clean(&mut st.wa_message_id);
                for f in [
                    &mut st.recipient_id,
                    &mut st.recipient_user_id,
                    &mut st.error_title,
                ] {
                    clean_opt(f);
                }
            }
        }
    }
}

/// The distinct business numbers (`phone_number_id`) of the `messages` changes in `payload`, in
/// order of first appearance: enough to resolve tenants before handling anything.
#[must_use]
pub fn phone_number_ids(payload: &WebhookPayload) -> Vec<&str> {
    let mut ids: Vec<&str> = Vec::new();
    for value in messages_values(payload) {
        let id = value.metadata.phone_number_id.as_str();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The value-level `errors` of `messages` changes (system- or account-level problems, e.g.
/// 130429 rate limit), each with its business number, so the webhook can log them.
#[must_use]
pub fn value_errors(payload: &WebhookPayload) -> Vec<(&str, &ApiError)> {
    messages_values(payload)
        .flat_map(|value| {
            let id = value.metadata.phone_number_id.as_str();
            value.errors.iter().map(move |error| (id, error))
        })
        .collect()
}

fn messages_values(payload: &WebhookPayload) -> impl Iterator<Item = &MessagesValue> {
    payload
        .entry
        .iter()
        .flat_map(|entry| entry.changes.iter())
        .filter_map(|change| change.messages())
}

fn to_inbound_message(message: &Message, contacts: &[Contact]) -> InboundMessage {
    let media = media_of(message);
    InboundMessage {
        wa_message_id: message.id.clone(),
        from_wa_id: message.from.clone(),
        from_user_id: message.from_user_id.clone(),
        profile_name: contact_of(message, contacts)
            .and_then(|contact| contact.profile.as_ref())
            .and_then(|profile| profile.name.clone()),
        timestamp: message.timestamp,
        message_type: message.message_type.clone(),
        text: text_of(message, media),
        reply_id: reply_id_of(message),
        media_id: media.and_then(|media| media.id.clone()),
        media_mime_type: media.and_then(|media| media.mime_type.clone()),
        context_message_id: message
            .context
            .as_ref()
            .and_then(|context| context.id.clone()),
        referral_source_id: message
            .referral
            .as_ref()
            .and_then(|referral| referral.source_id.clone()),
    }
}

fn to_status_update(status: &Status) -> StatusUpdate {
    let first_error = status.errors.first();
    StatusUpdate {
        wa_message_id: status.id.clone(),
        status: status.status.clone(),
        timestamp: status.timestamp,
        recipient_id: status.recipient_id.clone(),
        recipient_user_id: status.recipient_user_id.clone(),
        error_code: first_error.and_then(|error| error.code),
        error_title: first_error.and_then(|error| error.title.clone()),
        pricing_category: status.pricing.as_ref().and_then(|p| p.category.clone()),
        pricing_billable: status.pricing.as_ref().and_then(|p| p.billable),
        pricing_type: status.pricing.as_ref().and_then(|p| p.pricing_type.clone()),
        reply_id: status
            .biz_opaque_callback_data
            .as_deref()
            .and_then(crate::whatsapp::reply_of_tag),
    }
}

// Meta's `wa_id` and the `from` number can differ (some countries' numbers are rewritten), so
// when no contact matches by id and there is exactly one contact, it is the sender's.
fn contact_of<'a>(message: &Message, contacts: &'a [Contact]) -> Option<&'a Contact> {
    let same = |ours: &Option<String>, theirs: &Option<String>| matches!((ours, theirs), (Some(a), Some(b)) if a == b);
    contacts
        .iter()
        .find(|contact| {
            same(&message.from, &contact.wa_id) || same(&message.from_user_id, &contact.user_id)
        })
        .or(match contacts {
            [only] => Some(only),
            _ => None,
        })
}

fn media_of(message: &Message) -> Option<&Media> {
    match message.message_type.as_str() {
        "image" => message.image.as_ref(),
        "audio" => message.audio.as_ref(),
        "video" => message.video.as_ref(),
        "document" => message.document.as_ref(),
        "sticker" => message.sticker.as_ref(),
        _ => None,
    }
}

fn text_of(message: &Message, media: Option<&Media>) -> Option<String> {
    match message.message_type.as_str() {
        "text" => message.text.as_ref()?.body.clone(),
        "button" => message.button.as_ref()?.text.clone(),
        "interactive" => {
            let interactive = message.interactive.as_ref()?;
            interactive
                .button_reply
                .as_ref()
                .and_then(|reply| reply.title.clone())
                .or_else(|| {
                    interactive
                        .list_reply
                        .as_ref()
                        .and_then(|reply| reply.title.clone())
                })
        }
        "image" | "audio" | "video" | "document" | "sticker" => media?.caption.clone(),
        "reaction" => message.reaction.as_ref()?.emoji.clone(),
        "location" => {
            let location = message.location.as_ref()?;
            let parts: Vec<&str> = [&location.name, &location.address]
                .into_iter()
                .filter_map(|part| part.as_deref())
                .filter(|part| !part.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        "order" => message.order.as_ref()?.text.clone(),
        _ => None,
    }
}

fn reply_id_of(message: &Message) -> Option<String> {
    match message.message_type.as_str() {
        "button" => message.button.as_ref()?.payload.clone(),
        "interactive" => {
            let interactive = message.interactive.as_ref()?;
            interactive
                .button_reply
                .as_ref()
                .and_then(|reply| reply.id.clone())
                .or_else(|| {
                    interactive
                        .list_reply
                        .as_ref()
                        .and_then(|reply| reply.id.clone())
                })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(value: serde_json::Value) -> WebhookPayload {
        serde_json::from_value(value).unwrap()
    }

    fn one_message(contacts: serde_json::Value, message: serde_json::Value) -> WebhookPayload {
        payload(json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "1", "changes": [{ "field": "messages", "value": {
                "metadata": { "phone_number_id": "111" },
                "contacts": contacts,
                "messages": [message]
            }}]}]
        }))
    }

    fn only_message(payload: &WebhookPayload) -> InboundMessage {
        match extract_events(payload).as_slice() {
            [WebhookEvent {
                kind: EventKind::Message(message),
                ..
            }] => message.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn the_profile_name_is_taken_from_the_contact_with_the_senders_id() {
        let payload = one_message(
            json!([
                { "profile": { "name": "Other" }, "wa_id": "255700000002" },
                { "profile": { "name": "Amina" }, "wa_id": "255700000001" }
            ]),
            json!({ "id": "wamid.A", "from": "255700000001", "timestamp": "1", "type": "text" }),
        );
        assert_eq!(
            only_message(&payload).profile_name.as_deref(),
            Some("Amina")
        );
    }

    #[test]
    fn the_profile_name_is_matched_by_user_id_when_the_phone_is_withheld() {
        let payload = one_message(
            json!([
                { "profile": { "name": "Other" }, "user_id": "KE.2" },
                { "profile": { "name": "Baraka" }, "user_id": "KE.1" }
            ]),
            json!({ "id": "wamid.A", "from_user_id": "KE.1", "timestamp": "1", "type": "text" }),
        );
        let message = only_message(&payload);
        assert_eq!(message.profile_name.as_deref(), Some("Baraka"));
        assert_eq!(message.sender(), Some("KE.1"));
    }

    #[test]
    fn a_single_contact_whose_wa_id_differs_from_the_sender_still_names_the_sender() {
        let payload = one_message(
            json!([{ "profile": { "name": "Lupita" }, "wa_id": "5215512345678" }]),
            json!({ "id": "wamid.A", "from": "525512345678", "timestamp": "1", "type": "text" }),
        );
        assert_eq!(
            only_message(&payload).profile_name.as_deref(),
            Some("Lupita")
        );
    }

    #[test]
    fn with_several_unmatched_contacts_no_name_is_guessed() {
        let payload = one_message(
            json!([{ "profile": { "name": "A" }, "wa_id": "1" }, { "profile": { "name": "B" }, "wa_id": "2" }]),
            json!({ "id": "wamid.A", "from": "3", "timestamp": "1", "type": "text" }),
        );
        assert_eq!(only_message(&payload).profile_name, None);
    }

    #[test]
    fn a_location_without_name_or_address_has_no_text() {
        let payload = one_message(
            json!([]),
            json!({ "id": "wamid.A", "from": "1", "timestamp": "1", "type": "location",
                    "location": { "latitude": -1.28, "longitude": 36.82 } }),
        );
        assert_eq!(only_message(&payload).text, None);
    }

    #[test]
    fn the_sender_prefers_the_phone_number_over_the_user_id() {
        let payload = one_message(
            json!([]),
            json!({ "id": "wamid.A", "from": "2547", "from_user_id": "KE.1", "timestamp": "1", "type": "text" }),
        );
        assert_eq!(only_message(&payload).sender(), Some("2547"));
    }
}
