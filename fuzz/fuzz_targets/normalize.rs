//! The matcher's normalisation, through its public API: `normalize` gives single-spaced,
//! trimmed text, and a small FAQ index (which stems and expands shorthand on the same text)
//! ranks any message without panicking, with scores in 0..=1.
#![no_main]

use alphadome::faq::normalize::normalize;
use alphadome::faq::{FaqDoc, FaqIndex};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn index() -> &'static FaqIndex {
    static INDEX: OnceLock<FaqIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let doc = |question, answer, canned| FaqDoc {
            question,
            answer,
            category: None,
            canned,
            priority: 0,
        };
        FaqIndex::build([
            doc("What time do you open?", "We open at 9am, Monday to Saturday.", false),
            doc("Mnafungua saa ngapi?", "Tunafungua saa tatu asubuhi.", false),
            doc("Do you accept M-Pesa?", "Yes, Paybill 123456.", false),
            doc("How much is a guitar?", "Acoustic guitars start at KES 12,000.", false),
            doc("hello", "Hi! How can we help?", true),
            doc("thanks", "You're welcome!", true),
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let n = normalize(text);
    assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "));
    let index = index();
    if let Some(m) = index.best_match(text) {
        assert!(m.index < index.len() && (0.0..=1.0).contains(&m.score));
    }
    for m in index.rank(text, 3) {
        assert!(m.index < index.len() && m.score.is_finite());
    }
});
