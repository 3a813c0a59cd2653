//! Meta's WhatsApp Cloud API webhook, as pure code: verify the signature on the raw body, parse
//! the payload, turn it into per-message events. No I/O happens here.
//!
//! The order of use in the webhook function:
//! 1. [`signature::verify`] on the raw body bytes (401 on any error, nothing else happens);
//! 2. [`WebhookPayload::from_slice`] on the same bytes;
//! 3. [`events::phone_number_ids`] to resolve tenants, then [`events::extract_events`] to build
//!    one [`crate::job::Job`] per event.

pub mod events;
pub mod payload;
mod repair;
pub mod signature;

pub use events::{
    extract_events, phone_number_ids, value_errors, EventKind, InboundMessage, StatusUpdate,
    WebhookEvent,
};
pub use payload::{DeliveryStatus, PayloadError, WebhookPayload};
pub use signature::{
    check_form, sign, verify, MalformedSignature, SignatureError, SIGNATURE_HEADER,
};
