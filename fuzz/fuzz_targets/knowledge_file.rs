//! The knowledge-file parser (`alphadome faq import`): any text, read as CSV and as JSON/JSONL,
//! gives entries or an error naming a line; never a panic.
#![no_main]

use alphadome::knowledge_file::{parse_csv, parse_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for result in [parse_csv(text), parse_json(text)] {
        if let Ok(entries) = result {
            for entry in entries {
                assert!(!entry.question.trim().is_empty() && !entry.answer.trim().is_empty());
                assert!(entry.question.chars().count() <= 1_000);
                assert!(entry.answer.chars().count() <= 4_096);
            }
        }
    }
});
