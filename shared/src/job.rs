//! The queue job: what the webhook enqueues (SQS FIFO, or the in-process queue) and the
//! responder consumes. One job per inbound message or status update.
//!
//! The job is small and self-describing: no raw payload, media by id only. On the wire it is one
//! flat JSON object, `v` first:
//!
//! ```json
//! {"v":1,"tenant_id":"6f1c…","phone_number_id":"106540352242922","kind":"message",
//!  "wa_message_id":"wamid.HBgM…","from_wa_id":"254712345678","profile_name":"Amina",
//!  "timestamp":1749416383,"message_type":"text","text":"Habari! Mnafungua saa ngapi?"}
//! {"v":1,"tenant_id":"6f1c…","phone_number_id":"106540352242922","kind":"status",
//!  "wa_message_id":"wamid.HBgM…","status":"failed","timestamp":1749416390,
//!  "recipient_id":"254712345678","error_code":131047,"error_title":"Re-engagement message"}
//! ```
//!
//! Absent optional fields are left out, and readers ignore fields they do not know, so adding an
//! optional field keeps `v`. `v` changes when a field changes meaning or a required field is
//! added; a consumer refuses a version it does not know instead of guessing, so the record goes
//! back to the queue and, eventually, to the DLQ, where a newer responder can replay it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::webhook::events::{EventKind, InboundMessage, StatusUpdate, WebhookEvent};

/// The job format version this code writes and reads.
pub const JOB_VERSION: u8 = 1;

// SQS FIFO limits MessageGroupId and MessageDeduplicationId to 128 characters.
const SQS_ID_MAX_LEN: usize = 128;
// 128 bits of SHA-256: collisions between two senders of one tenant are out of reach, and the id
// stays short in consoles.
const GROUP_ID_HEX_LEN: usize = 32;

/// One unit of work for the responder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The format version, [`JOB_VERSION`].
    pub v: u8,
    /// The tenant that owns the business number.
    pub tenant_id: Uuid,
    /// The business number that received the message: which token replies, and from where.
    pub phone_number_id: String,
    /// The message or status, flattened into the job object next to a `kind` tag.
    #[serde(flatten)]
    pub kind: JobKind,
}

/// What the job is about; serialised as `"kind": "message"` or `"kind": "status"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// A customer's message, to be logged and perhaps answered.
    Message(InboundMessage),
    /// A status update, to be recorded on the logged outgoing message; never answered.
    Status(StatusUpdate),
}

/// A queue record that is not a job this code can handle. The text never quotes the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The record is not JSON, or not a job object of a known version.
    #[error("the job is not valid job JSON (line {line}, column {column})")]
    Malformed {
        /// 1-based line where parsing stopped.
        line: usize,
        /// 1-based column where parsing stopped.
        column: usize,
    },
    /// The record has no numeric `v`.
    #[error("the job has no version")]
    MissingVersion,
    /// The record was written in a version this code does not read.
    #[error("the job has version {0}, this code reads version {JOB_VERSION}")]
    UnsupportedVersion(u64),
}

impl From<serde_json::Error> for JobError {
    fn from(err: serde_json::Error) -> Self {
        Self::Malformed {
            line: err.line(),
            column: err.column(),
        }
    }
}

impl Job {
    /// The job for one webhook event of `tenant_id`, at the current version.
    #[must_use]
    pub fn new(tenant_id: Uuid, event: WebhookEvent) -> Self {
        let kind = match event.kind {
            EventKind::Message(message) => JobKind::Message(message),
            EventKind::Status(status) => JobKind::Status(status),
        };
        Self {
            v: JOB_VERSION,
            tenant_id,
            phone_number_id: event.phone_number_id,
            kind,
        }
    }

    /// The SQS FIFO MessageGroupId: one group per tenant and customer, so one customer's
    /// messages are handled in order while no customer (or tenant) holds up another.
    ///
    /// The customer is the sender of a message, or the recipient of a status update; both prefer
    /// the phone number to the business-scoped user id, so a status lands in the same group as
    /// the conversation it belongs to. The group id is the first 32 hex digits of
    /// SHA-256(`tenant_id:customer`): group ids are shown in the AWS console and in CloudTrail,
    /// where a customer's phone number must not appear. A job with no customer id at all gets a
    /// group of its own (keyed by its wamid) rather than sharing one with every other such job.
    #[must_use]
    pub fn group_id(&self) -> String {
        let customer = match &self.kind {
            JobKind::Message(message) => message.sender(),
            JobKind::Status(status) => status.recipient(),
        };
        let key = match customer {
            Some(customer) => format!("{}:{customer}", self.tenant_id),
            None => format!("{}:wamid:{}", self.tenant_id, self.wa_message_id()),
        };
        let mut digest = sha256_hex(&key);
        digest.truncate(GROUP_ID_HEX_LEN);
        digest
    }

    /// The SQS FIFO MessageDeduplicationId: the wamid for a message; `wamid:status` for a status
    /// update, so `delivered` after `sent` is not taken for a duplicate.
    ///
    /// SQS accepts at most 128 characters of ASCII letters, digits and punctuation. A wamid is
    /// base64 behind `wamid.`, so it usually fits; one that is longer or has other characters is
    /// replaced by its SHA-256 in hex (64 characters), which keeps it unique and stable across
    /// Meta's retries.
    #[must_use]
    pub fn dedup_id(&self) -> String {
        match &self.kind {
            JobKind::Message(message) => sqs_safe_id(&message.wa_message_id),
            JobKind::Status(status) => {
                sqs_safe_id(&format!("{}:{}", status.wa_message_id, status.status))
            }
        }
    }

    /// The wamid the job is about (the customer's message, or the business's message whose
    /// status changed).
    #[must_use]
    pub fn wa_message_id(&self) -> &str {
        match &self.kind {
            JobKind::Message(message) => &message.wa_message_id,
            JobKind::Status(status) => &status.wa_message_id,
        }
    }

    /// The job as the queue record body.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job has only string keys and finite numbers")
    }

    /// Reads a queue record body, refusing a version other than [`JOB_VERSION`] before looking
    /// at anything else, so a future format is reported as such and not as garbage.
    ///
    /// # Errors
    /// [`JobError::MissingVersion`] or [`JobError::UnsupportedVersion`] for a record of another
    /// format, [`JobError::Malformed`] for anything else that is not a job.
    pub fn from_json(s: &str) -> Result<Self, JobError> {
        #[derive(Deserialize)]
        struct Version {
            v: Option<serde_json::Value>,
        }
        let version: Version = serde_json::from_str(s)?;
        match version.v.as_ref().and_then(serde_json::Value::as_u64) {
            None => Err(JobError::MissingVersion),
            Some(v) if v != u64::from(JOB_VERSION) => Err(JobError::UnsupportedVersion(v)),
            Some(_) => Ok(serde_json::from_str(s)?),
        }
    }
}

fn sqs_safe_id(id: &str) -> String {
    // `is_ascii_graphic` is exactly SQS's set: letters, digits and the 32 punctuation marks.
    let fits =
        !id.is_empty() && id.len() <= SQS_ID_MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    if fits {
        id.to_owned()
    } else {
        sha256_hex(id)
    }
}

fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::payload::DeliveryStatus;

    const TENANT: Uuid = Uuid::from_u128(0x6f1c_0000_0000_4000_8000_0000_0000_0001);
    const WAMID: &str = "wamid.HBgMMjU0NzEyMzQ1Njc4FQIAEhgUM0FBMEQ0QjQ1RDk2NDcyQjVGOEIA";

    fn message(from: Option<&str>, user_id: Option<&str>, wamid: &str) -> Job {
        Job::new(
            TENANT,
            WebhookEvent {
                phone_number_id: "106540352242922".into(),
                kind: EventKind::Message(InboundMessage {
                    wa_message_id: wamid.into(),
                    from_wa_id: from.map(Into::into),
                    from_user_id: user_id.map(Into::into),
                    profile_name: Some("Amina".into()),
                    timestamp: 1_749_416_383,
                    message_type: "text".into(),
                    text: Some("Habari! Mnafungua saa ngapi? 🎸".into()),
                    reply_id: None,
                    media_id: None,
                    media_mime_type: None,
                    context_message_id: None,
                    referral_source_id: None,
                }),
            },
        )
    }

    fn status(recipient: Option<&str>, user_id: Option<&str>, status: &str) -> Job {
        Job::new(
            TENANT,
            WebhookEvent {
                phone_number_id: "106540352242922".into(),
                kind: EventKind::Status(StatusUpdate {
                    wa_message_id: WAMID.into(),
                    status: DeliveryStatus::from(status.to_owned()),
                    timestamp: 1_749_416_390,
                    recipient_id: recipient.map(Into::into),
                    recipient_user_id: user_id.map(Into::into),
                    error_code: None,
                    error_title: None,
                    pricing_category: None,
                    pricing_billable: None,
                    pricing_type: None,
                    reply_id: None,
                }),
            },
        )
    }

    fn is_sqs_id(id: &str) -> bool {
        (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
    }

    #[test]
    fn a_job_survives_a_round_trip_through_json() {
        for job in [
            message(Some("254712345678"), None, WAMID),
            status(Some("254712345678"), None, "read"),
        ] {
            assert_eq!(Job::from_json(&job.to_json()), Ok(job));
        }
    }

    #[test]
    fn the_json_is_flat_with_a_version_and_a_kind_tag() {
        let value: serde_json::Value =
            serde_json::from_str(&message(Some("254712345678"), None, WAMID).to_json()).unwrap();
        assert_eq!(value["v"], 1);
        assert_eq!(value["kind"], "message");
        assert_eq!(value["wa_message_id"], WAMID);
        assert!(
            value.get("media_id").is_none(),
            "absent fields are left out"
        );
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let json = message(Some("1"), None, WAMID)
            .to_json()
            .replacen("\"v\":1", "\"v\":2", 1);
        assert_eq!(Job::from_json(&json), Err(JobError::UnsupportedVersion(2)));
    }

    #[test]
    fn a_job_without_a_version_is_refused() {
        assert_eq!(
            Job::from_json(r#"{"kind":"message"}"#),
            Err(JobError::MissingVersion)
        );
    }

    #[test]
    fn garbage_is_malformed_and_the_error_does_not_quote_it() {
        let err = Job::from_json(r#"{"v":1,"kind":"message","text":"Habari"}"#).unwrap_err();
        assert!(matches!(err, JobError::Malformed { .. }));
        assert!(!err.to_string().contains("Habari"));
    }

    #[test]
    fn the_group_id_hides_the_phone_number() {
        let group = message(Some("254712345678"), None, WAMID).group_id();
        assert_eq!(group.len(), 32);
        assert!(group.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!group.contains("254712345678"));
    }

    #[test]
    fn messages_of_one_customer_share_a_group_and_other_customers_do_not() {
        let a1 = message(Some("254712345678"), None, "wamid.1").group_id();
        let a2 = message(Some("254712345678"), Some("KE.1"), "wamid.2").group_id();
        let b = message(Some("254700000000"), None, "wamid.3").group_id();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
    }

    #[test]
    fn the_same_customer_of_two_tenants_gets_two_groups() {
        let mut other = message(Some("254712345678"), None, WAMID);
        other.tenant_id = Uuid::from_u128(2);
        assert_ne!(
            other.group_id(),
            message(Some("254712345678"), None, WAMID).group_id()
        );
    }

    #[test]
    fn a_status_lands_in_the_group_of_the_conversation() {
        assert_eq!(
            status(Some("254712345678"), Some("KE.1"), "delivered").group_id(),
            message(Some("254712345678"), Some("KE.1"), "wamid.1").group_id()
        );
        assert_eq!(
            status(None, Some("KE.1"), "read").group_id(),
            message(None, Some("KE.1"), "wamid.1").group_id()
        );
    }

    #[test]
    fn a_job_without_any_customer_id_gets_a_group_of_its_own() {
        let a = message(None, None, "wamid.1");
        let b = message(None, None, "wamid.2");
        assert_ne!(a.group_id(), b.group_id());
        assert!(is_sqs_id(&a.group_id()));
    }

    #[test]
    fn a_short_wamid_is_its_own_dedup_id() {
        assert_eq!(message(Some("1"), None, WAMID).dedup_id(), WAMID);
    }

    #[test]
    fn a_status_dedup_id_is_the_wamid_and_the_status() {
        assert_eq!(
            status(Some("1"), None, "delivered").dedup_id(),
            format!("{WAMID}:delivered")
        );
        assert_ne!(
            status(Some("1"), None, "sent").dedup_id(),
            status(Some("1"), None, "delivered").dedup_id()
        );
    }

    #[test]
    fn a_wamid_longer_than_128_characters_is_hashed() {
        let long = format!("wamid.{}==", "HBgM".repeat(40));
        let dedup = message(Some("1"), None, &long).dedup_id();
        assert_eq!(dedup.len(), 64);
        assert!(is_sqs_id(&dedup));
        assert_eq!(
            dedup,
            message(Some("1"), None, &long).dedup_id(),
            "stable across retries"
        );
    }

    #[test]
    fn a_wamid_with_characters_sqs_refuses_is_hashed() {
        for odd in ["wamid.with space", "wamid.ünïcode", ""] {
            let dedup = message(Some("1"), None, odd).dedup_id();
            assert_eq!(dedup.len(), 64, "{odd:?}");
            assert!(is_sqs_id(&dedup));
        }
    }

    #[test]
    fn a_128_character_wamid_is_kept() {
        let exact = format!("wamid.{}", "A".repeat(122));
        assert_eq!(message(Some("1"), None, &exact).dedup_id(), exact);
    }
}
