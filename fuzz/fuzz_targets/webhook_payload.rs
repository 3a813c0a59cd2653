//! Webhook payload parsing and event extraction: whatever body arrives (after the signature
//! check), parsing returns a result and every event becomes a job whose FIFO ids SQS accepts
//! and whose JSON reads back as the same job.
#![no_main]

use alphadome::job::Job;
use alphadome::webhook::{extract_events, phone_number_ids, value_errors, WebhookPayload};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

fuzz_target!(|body: &[u8]| {
    let Ok(payload) = WebhookPayload::from_slice(body) else {
        return;
    };
    let _ = phone_number_ids(&payload);
    let _ = value_errors(&payload);
    for event in extract_events(&payload) {
        let job = Job::new(Uuid::nil(), event);
        let (group, dedup) = (job.group_id(), job.dedup_id());
        // SQS FIFO: 1..=128 characters of printable ASCII.
        assert!((1..=128).contains(&group.len()) && group.bytes().all(|b| b.is_ascii_graphic()));
        assert!((1..=128).contains(&dedup.len()) && dedup.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(Job::from_json(&job.to_json()), Ok(job));
    }
});
