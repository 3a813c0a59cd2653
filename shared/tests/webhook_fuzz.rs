//! Robustness of the webhook's pure code against hostile or broken input: whatever arrives,
//! verifying, parsing, extracting events and building jobs return a result and never panic.
//!
//! Property tests rather than cargo-fuzz (which needs a nightly toolchain): random bytes, random
//! JSON documents built from Meta's field names, and the real fixtures with fields dropped or
//! replaced at random. Case counts are kept moderate so the file runs in seconds in debug.

use std::path::PathBuf;

use alphadome::job::Job;
use alphadome::webhook::payload::WebhookPayload;
use alphadome::webhook::signature::{sign, verify};
use alphadome::webhook::{extract_events, phone_number_ids, value_errors};
use proptest::prelude::*;
use serde_json::{Map, Value};
use uuid::Uuid;

const SECRET: &[u8] = b"fuzz-app-secret";

// Everything the webhook function does with a body after reading it, minus the I/O.
fn handle(body: &[u8]) {
    let _ = verify(SECRET, body, Some(sign(SECRET, body).as_bytes()));
    let Ok(payload) = WebhookPayload::from_slice(body) else {
        return;
    };
    let _ = phone_number_ids(&payload);
    let _ = value_errors(&payload);
    for event in extract_events(&payload) {
        let job = Job::new(Uuid::nil(), event);
        let (group, dedup) = (job.group_id(), job.dedup_id());
        assert!((1..=128).contains(&group.len()) && group.bytes().all(|b| b.is_ascii_graphic()));
        assert!((1..=128).contains(&dedup.len()) && dedup.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(Job::from_json(&job.to_json()), Ok(job));
    }
}

fn fixtures() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/payloads");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap())
        .collect()
}

// Meta's own field names, so random documents reach deep into the typed model instead of being
// rejected at the top.
const FIELD_NAMES: &[&str] = &[
    "object",
    "entry",
    "id",
    "changes",
    "field",
    "value",
    "messaging_product",
    "metadata",
    "display_phone_number",
    "phone_number_id",
    "contacts",
    "profile",
    "name",
    "wa_id",
    "user_id",
    "messages",
    "from",
    "from_user_id",
    "timestamp",
    "type",
    "text",
    "body",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "caption",
    "mime_type",
    "location",
    "latitude",
    "interactive",
    "button_reply",
    "list_reply",
    "title",
    "button",
    "payload",
    "reaction",
    "emoji",
    "order",
    "product_items",
    "system",
    "context",
    "referral",
    "source_id",
    "statuses",
    "status",
    "recipient_id",
    "recipient_user_id",
    "errors",
    "code",
    "error_data",
    "details",
    "pricing",
    "conversation",
    "origin",
];

const STRING_VALUES: &[&str] = &[
    "whatsapp_business_account",
    "messages",
    "text",
    "image",
    "interactive",
    "button_reply",
    "list_reply",
    "failed",
    "delivered",
    "1749416383",
    "-1",
    "99999999999999999999",
    "",
    "wamid.HBgM==",
    "Habari! 🎸",
    "\u{0}",
    "106540352242922",
];

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELD_NAMES).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("JSON has no NaN or infinity", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        prop::sample::select(STRING_VALUES).prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(8, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Drop,
    Replace(Value),
}

fn arb_mutation() -> impl Strategy<Value = (Vec<usize>, Mutation)> {
    let mutation = prop_oneof![
        1 => Just(Mutation::Drop),
        2 => arb_leaf().prop_map(Mutation::Replace),
        1 => arb_json().prop_map(Mutation::Replace),
    ];
    // Mostly deep paths: the content fields, where Meta's changes happen, sit 8 to 11 levels down.
    let path_len = prop_oneof![1 => 1usize..6, 4 => 6usize..16];
    (
        path_len.prop_flat_map(|len| prop::collection::vec(any::<usize>(), len)),
        mutation,
    )
}

// Walks `path` (each step picks a child by index modulo the number of children) and drops or
// replaces the node reached; a path that ends early at a leaf replaces that leaf.
fn mutate(value: &mut Value, path: &[usize], mutation: &Mutation) {
    let Some((&step, rest)) = path.split_first() else {
        return;
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(step % map.len())
                .cloned()
                .expect("index is in range");
            if rest.is_empty() {
                match mutation {
                    Mutation::Drop => {
                        map.remove(&key);
                    }
                    Mutation::Replace(new) => {
                        map.insert(key, new.clone());
                    }
                }
            } else {
                mutate(map.get_mut(&key).expect("key exists"), rest, mutation);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let at = step % items.len();
            if rest.is_empty() {
                match mutation {
                    Mutation::Drop => {
                        items.remove(at);
                    }
                    Mutation::Replace(new) => items[at] = new.clone(),
                }
            } else {
                mutate(&mut items[at], rest, mutation);
            }
        }
        leaf => {
            if let Mutation::Replace(new) = mutation {
                *leaf = new.clone();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        handle(&body);
    }

    #[test]
    fn arbitrary_headers_never_panic_and_never_verify_by_accident(
        body in prop::collection::vec(any::<u8>(), 0..64),
        header in prop::option::of(prop::collection::vec(any::<u8>(), 0..80)),
    ) {
        let expected = sign(SECRET, &body);
        let verified = verify(SECRET, &body, header.as_deref()).is_ok();
        prop_assert_eq!(verified, header.as_deref() == Some(expected.as_bytes()));
    }

    #[test]
    fn fixtures_with_random_fields_dropped_or_replaced_never_panic(
        which in any::<usize>(),
        mutations in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let fixtures = fixtures();
        let mut payload = fixtures[which % fixtures.len()].clone();
        for (path, mutation) in &mutations {
            mutate(&mut payload, path, mutation);
        }
        handle(&serde_json::to_vec(&payload).unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_documents_never_panic(document in arb_json()) {
        handle(&serde_json::to_vec(&document).unwrap());
    }

    #[test]
    fn arbitrary_json_inside_a_valid_envelope_never_panics(
        value in arb_json(),
        message in arb_json(),
    ) {
        let envelope = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "1", "changes": [
                { "field": "messages", "value": value },
                { "field": "messages", "value": {
                    "metadata": { "phone_number_id": "106540352242922" },
                    "messages": [message]
                }}
            ]}]
        });
        handle(&serde_json::to_vec(&envelope).unwrap());
    }
}

#[test]
fn deeply_nested_json_is_refused_or_parsed_without_overflowing_the_stack() {
    for depth in [100, 126, 127, 128, 129, 10_000] {
        let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[
                {{"field":"account_update","value":{nested}}},
                {{"field":"messages","value":{{"metadata":{{"phone_number_id":"1"}},
                  "messages":[{{"id":"wamid.A","timestamp":"1","type":"text","text":{nested}}}]}}}}
            ]}}]}}"#
        );
        handle(body.as_bytes());
    }
}
