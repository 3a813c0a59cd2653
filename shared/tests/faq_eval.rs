//! Runs the FAQ matcher over the labelled evaluation set in `tests/data/faq_eval` and checks
//! it keeps its accuracy and, above all, its low wrong-answer rate.
//!
//! `FAQ_EVAL_VERBOSE=1 cargo test --test faq_eval -- --nocapture` also lists every miss.
//!
//! Four sets, reported and asserted separately: `tenants.json` + `queries.jsonl` (written
//! together with the matcher's lexicon); `independent_tenants.json` +
//! `independent_queries.jsonl`, a held-out set written without looking at the matcher (other
//! kinds of businesses); `fresh_tenants.json` + `fresh_queries.jsonl`, a second such set
//! (four more kinds of business) written later, again without reading the matcher; and
//! `fresh2_*`, a third (solar shop, gym, dental clinic, events hire).
//!
//! `FAQ_EVAL_DUMP=path` appends every query's outcome and analysis to `path`, for comparing
//! two versions of the matcher.

use std::collections::BTreeMap;
use std::collections::HashMap;

use alphadome::faq::{FaqDoc, FaqIndex};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/faq_eval");

#[derive(Default, Clone, Copy)]
struct Tally {
    n: usize,
    correct: usize,
    wrong: usize,
}

impl Tally {
    fn add(&mut self, correct: bool, wrong: bool) {
        self.n += 1;
        self.correct += usize::from(correct);
        self.wrong += usize::from(wrong);
    }
    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.n.max(1) as f64
    }
    fn wrong_rate(&self) -> f64 {
        self.wrong as f64 / self.n.max(1) as f64
    }
    fn row(&self, name: &str) -> String {
        format!(
            "{name:<14} {:>4} {:>7.1}% {:>7.1}%",
            self.n,
            100.0 * self.accuracy(),
            100.0 * self.wrong_rate()
        )
    }
}

/// Floors for the independent set (set after measuring; see the test): measured 0.891 / 0.014
/// after the second round of general vocabulary and morphology.
const INDEPENDENT_MIN_ACCURACY: f64 = 0.86;
const INDEPENDENT_MAX_WRONG: f64 = 0.02;

/// Floors for the fresh set: first measured at 0.504 / 0.000 before any matcher change for it,
/// 0.723 / 0.008 after the first round, 0.812 / 0.008 after the second (README, "FAQ matcher
/// accuracy").
const FRESH_MIN_ACCURACY: f64 = 0.78;
const FRESH_MAX_WRONG: f64 = 0.03;

struct Tenant {
    keys: Vec<String>,
    index: FaqIndex,
}

fn load_tenants(file: &str) -> HashMap<String, Tenant> {
    let raw = std::fs::read_to_string(format!("{DATA}/{file}")).expect(file);
    let tenants: Vec<Value> = serde_json::from_str(&raw).expect("tenants file is JSON");
    let mut out = HashMap::new();
    for t in &tenants {
        let name = t["tenant"].as_str().expect("tenant name").to_string();
        let entries = t["entries"].as_array().expect("entries");
        let keys = entries
            .iter()
            .map(|e| e["key"].as_str().expect("key").to_string())
            .collect();
        let phrasings: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                e["phrasings"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let docs = entries.iter().zip(&phrasings).map(|(e, phrasings)| FaqDoc {
            question: e["question"].as_str().expect("question"),
            answer: e["answer"].as_str().expect("answer"),
            category: e["category"].as_str(),
            canned: e["data_type"].as_str() == Some("canned"),
            priority: e["priority"].as_i64().unwrap_or(0) as i32,
            phrasings,
        });
        out.insert(
            name,
            Tenant {
                keys,
                index: FaqIndex::build(docs),
            },
        );
    }
    out
}

/// Runs every query of `queries_file` against the tenants of `tenants_file`, prints the table
/// (and the misses when `FAQ_EVAL_VERBOSE` is set) and returns the overall tally.
fn evaluate(tenants_file: &str, queries_file: &str) -> Tally {
    let tenants = load_tenants(tenants_file);
    let raw = std::fs::read_to_string(format!("{DATA}/{queries_file}")).expect(queries_file);
    let verbose = std::env::var_os("FAQ_EVAL_VERBOSE").is_some();
    let mut all = Tally::default();
    let mut elapsed = std::time::Duration::ZERO;
    let mut by_split: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    for line in raw.lines().filter(|l| !l.trim().is_empty()) {
        let q: Value = serde_json::from_str(line).expect("query line is JSON");
        let tenant = &tenants[q["tenant"].as_str().expect("tenant")];
        let text = q["text"].as_str().expect("text");
        let expect = q["expect"].as_str();
        if let Some(e) = expect {
            assert!(
                tenant.keys.iter().any(|k| k == e),
                "unknown expected key {e} in {line}"
            );
        }
        let started = std::time::Instant::now();
        let got = tenant
            .index
            .best_match(text)
            .map(|m| tenant.keys[m.index].as_str());
        elapsed += started.elapsed();
        let correct = got == expect;
        let wrong = got.is_some() && !correct;
        if let Some(path) = std::env::var_os("FAQ_EVAL_DUMP") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("dump file");
            writeln!(
                f,
                "{queries_file}\t{}\t{text}\t{expect:?}\t{got:?}\t{}",
                q["kind"].as_str().unwrap_or(""),
                explain_with_keys(&tenant.index.explain(text), &tenant.keys)
            )
            .expect("dump line");
        }
        all.add(correct, wrong);
        let split = q["split"].as_str().unwrap_or("tune").to_string();
        by_split.entry(split).or_default().add(correct, wrong);
        by_kind
            .entry(q["kind"].as_str().expect("kind").to_string())
            .or_default()
            .add(correct, wrong);
        if verbose && !correct {
            let label = if wrong { "WRONG" } else { "miss " };
            let top = tenant.index.rank(text, 2);
            let top: Vec<String> = top
                .iter()
                .map(|m| format!("{}={:.2}", tenant.keys[m.index], m.score))
                .collect();
            println!(
                "{label} [{}] {:?} expect={:?} got={:?} top={:?}\n      {}",
                q["tenant"].as_str().unwrap(),
                text,
                expect,
                got,
                top,
                explain_with_keys(&tenant.index.explain(text), &tenant.keys)
            );
        }
    }
    println!("== {queries_file}");
    println!("{:<14} {:>4} {:>8} {:>8}", "kind", "n", "acc", "wrong");
    for (k, t) in &by_kind {
        println!("{}", t.row(k));
    }
    for (k, t) in &by_split {
        println!("{}", t.row(&format!("split:{k}")));
    }
    println!("{}", all.row("ALL"));
    println!(
        "mean best_match time: {:.1} µs (this build's profile)",
        elapsed.as_secs_f64() * 1e6 / all.n.max(1) as f64
    );
    all
}

/// `explain` names entries by position; the keys are easier to read.
fn explain_with_keys(explained: &str, keys: &[String]) -> String {
    let mut out = explained.to_string();
    for (i, k) in keys.iter().enumerate().rev() {
        out = out.replace(&format!("#{i} "), &format!("{k} "));
    }
    out
}

#[test]
fn the_matcher_meets_its_accuracy_and_wrong_answer_targets_on_the_labelled_set() {
    let all = evaluate("tenants.json", "queries.jsonl");
    assert!(
        all.n >= 300,
        "the labelled set should have at least 300 queries"
    );
    // Measured 0.94 and 0.006 when written, 0.954 and 0.012 now; these leave room for noise
    // but catch a regression.
    assert!(
        all.accuracy() >= 0.93,
        "accuracy {:.3} below 0.93",
        all.accuracy()
    );
    assert!(
        all.wrong_rate() <= 0.02,
        "wrong-answer rate {:.3} above 0.02",
        all.wrong_rate()
    );
}

#[test]
fn the_matcher_meets_the_product_targets_on_the_independent_held_out_set() {
    let all = evaluate("independent_tenants.json", "independent_queries.jsonl");
    assert!(
        all.n >= 300,
        "the independent set should have at least 300 queries"
    );
    // Product target: >= 75 % accuracy with <= 3 % wrong answers.
    assert!(
        all.accuracy() >= INDEPENDENT_MIN_ACCURACY,
        "independent accuracy {:.3} below {INDEPENDENT_MIN_ACCURACY}",
        all.accuracy()
    );
    assert!(
        all.wrong_rate() <= INDEPENDENT_MAX_WRONG,
        "independent wrong-answer rate {:.3} above {INDEPENDENT_MAX_WRONG}",
        all.wrong_rate()
    );
}

#[test]
fn the_matcher_meets_the_product_targets_on_the_fresh_held_out_set() {
    let all = evaluate("fresh_tenants.json", "fresh_queries.jsonl");
    assert!(
        all.n >= 300,
        "the fresh set should have at least 300 queries"
    );
    assert!(
        all.accuracy() >= FRESH_MIN_ACCURACY,
        "fresh accuracy {:.3} below {FRESH_MIN_ACCURACY}",
        all.accuracy()
    );
    assert!(
        all.wrong_rate() <= FRESH_MAX_WRONG,
        "fresh wrong-answer rate {:.3} above {FRESH_MAX_WRONG}",
        all.wrong_rate()
    );
}

/// Floors for the second fresh set (four more kinds of business, written after the first
/// fresh set's changes, again without reading the matcher): its first measurement, before
/// any change made while reading it, is the honest figure for unseen businesses (0.679 /
/// 0.031; 0.710 / 0.040 after the second round). Measured 0.730 / 0.011 after the changes
/// made for its wrong answers (entry coverage per word, price entries and their own thing,
/// answers alone, paying in a how-much question).
const FRESH2_MIN_ACCURACY: f64 = 0.71;
const FRESH2_MAX_WRONG: f64 = 0.02;

#[test]
fn the_matcher_meets_the_product_targets_on_the_second_fresh_held_out_set() {
    let all = evaluate("fresh2_tenants.json", "fresh2_queries.jsonl");
    assert!(
        all.n >= 300,
        "the second fresh set should have at least 300 queries"
    );
    assert!(
        all.accuracy() >= FRESH2_MIN_ACCURACY,
        "second fresh set accuracy {:.3} below {FRESH2_MIN_ACCURACY}",
        all.accuracy()
    );
    assert!(
        all.wrong_rate() <= FRESH2_MAX_WRONG,
        "second fresh set wrong-answer rate {:.3} above {FRESH2_MAX_WRONG}",
        all.wrong_rate()
    );
}
