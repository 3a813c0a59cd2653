//! Benchmarks FAQ matching on a 100-entry tenant: `best_match` per query over a mix of
//! labelled queries, without and with 12 phrasings per entry (what `faq expand` may add), and
//! `FaqIndex::build`.

use std::hint::black_box;

use alphadome::faq::{FaqDoc, FaqIndex};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/faq_eval");

/// Every entry of the evaluation tenants plus generated ones, up to 100 entries.
fn hundred_entries() -> Vec<(String, String, bool)> {
    let raw = std::fs::read_to_string(format!("{DATA}/tenants.json")).expect("tenants.json");
    let tenants: Vec<Value> = serde_json::from_str(&raw).expect("tenants.json is JSON");
    let mut out: Vec<(String, String, bool)> = tenants
        .iter()
        .flat_map(|t| t["entries"].as_array().expect("entries").iter())
        .map(|e| {
            (
                e["question"].as_str().unwrap().to_string(),
                e["answer"].as_str().unwrap().to_string(),
                e["data_type"].as_str() == Some("canned"),
            )
        })
        .collect();
    let products = [
        "violin",
        "saxophone",
        "trumpet",
        "flute",
        "ukulele",
        "cajon",
        "harmonica",
        "banjo",
        "mandolin",
        "clarinet",
    ];
    let topics = [
        (
            "How much is a {p}?",
            "A {p} costs from KES 9,000 depending on the brand.",
        ),
        (
            "Do you have {p} strings and spare parts?",
            "Yes, we stock {p} strings, bows and spare parts.",
        ),
        (
            "Do you offer {p} lessons?",
            "Yes, {p} lessons run on weekday evenings, KES 5,000 per month.",
        ),
    ];
    'outer: for (q, a) in topics {
        for p in products {
            if out.len() >= 100 {
                break 'outer;
            }
            out.push((q.replace("{p}", p), a.replace("{p}", p), false));
        }
    }
    out.truncate(100);
    out
}

fn docs(entries: &[(String, String, bool)]) -> impl Iterator<Item = FaqDoc<'_>> {
    entries.iter().map(|(q, a, canned)| FaqDoc {
        question: q,
        answer: a,
        category: None,
        canned: *canned,
        priority: 0,
        phrasings: &[],
    })
}

fn queries() -> Vec<String> {
    let raw = std::fs::read_to_string(format!("{DATA}/queries.jsonl")).expect("queries.jsonl");
    raw.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .step_by(5)
        .take(100)
        .collect()
}

fn bench(c: &mut Criterion) {
    let entries = hundred_entries();
    assert_eq!(entries.len(), 100);
    let index = FaqIndex::build(docs(&entries));
    let qs = queries();
    let mut i = 0usize;
    c.bench_function("faq_best_match_100_entries_per_query", |b| {
        b.iter(|| {
            let q = &qs[i % qs.len()];
            i += 1;
            black_box(index.best_match(black_box(q)))
        })
    });
    // Twelve phrasings per entry, built from the labelled queries (realistic words and lengths).
    let pool: Vec<String> = qs.iter().cycle().take(1200).cloned().collect();
    let phrased = FaqIndex::build(
        entries
            .iter()
            .enumerate()
            .map(|(k, (q, a, canned))| FaqDoc {
                question: q,
                answer: a,
                category: None,
                canned: *canned,
                priority: 0,
                phrasings: &pool[k * 12..k * 12 + 12],
            }),
    );
    c.bench_function("faq_best_match_100_entries_12_phrasings_per_query", |b| {
        b.iter(|| {
            let q = &qs[i % qs.len()];
            i += 1;
            black_box(phrased.best_match(black_box(q)))
        })
    });
    c.bench_function("faq_index_build_100_entries", |b| {
        b.iter(|| black_box(FaqIndex::build(docs(black_box(&entries)))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
