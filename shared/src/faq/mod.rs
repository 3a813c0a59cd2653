//! FAQ and canned-answer matching: picks the tenant knowledge entry that answers a customer's
//! WhatsApp message, or none when it is not confident.
//!
//! Messages are normalised (case, accents, punctuation, emoji, WhatsApp shorthand), misspelt
//! words are corrected against the lexicon and the tenant's own vocabulary, and every word
//! becomes a "slot" of features: a stemmed term plus the bilingual concepts it signals
//! (English, Swahili and Sheng words for the same topic share a concept). An entry scores
//! well when the message's content is explained by the entry (query coverage) *and* the
//! entry's question is covered by the message (entry coverage). Feature weights are IDF-like,
//! computed from the tenant's own entries, so a word every entry shares decides little.
//! A wrong FAQ answer is worse than handing over to the AI, so `best_match` also demands an
//! absolute score and a margin over the runner-up.

mod fuzzy;
mod glossary;
mod lexicon;
pub mod normalize;

use std::collections::HashMap;

use fuzzy::DeleteIndex;
use glossary::{english, english_as_written, is_common, is_english};
use lexicon::{lexicon, Class, Hit, Lexicon};
use normalize::{is_stopword, normalize_into, shorthand, stem, SW_PREFIXES};

/// One knowledge entry as the matcher sees it.
#[derive(Debug, Clone, Copy)]
pub struct FaqDoc<'a> {
    /// The question the entry answers, as the business wrote it.
    pub question: &'a str,
    /// The reply sent to the customer; its words count as weaker evidence than the question's.
    pub answer: &'a str,
    /// Optional category label (e.g. "hours", "prices"); weak evidence like the answer.
    pub category: Option<&'a str>,
    /// Canned entries (greetings, thanks) only match messages that are essentially that.
    pub canned: bool,
    /// Breaks exact ties between entries; higher wins.
    pub priority: i32,
    /// Other ways customers ask the same question ("bei ya guitar?"). Each is matched like
    /// the question; the best-scoring one speaks for the entry.
    pub phrasings: &'a [String],
}

/// A match: the entry's position in the docs given to [`FaqIndex::build`], and its score in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaqMatch {
    /// Position in the docs given to `build`.
    pub index: usize,
    /// Confidence in `0..=1`; [`FaqIndex::best_match`] only returns matches above its threshold.
    pub score: f32,
}

/// Evidence found in the answer (or category) counts this much of evidence in the question.
const ANSWER_FACTOR: f32 = 0.7;
/// A word only one entry's answer uses says as much as the question would.
const UNIQUE_ANSWER_FACTOR: f32 = 1.0;
/// Weight of a plain word relative to a concept's class weight.
const TERM_BASE: f32 = 1.0;
/// Weight of a word neither the lexicon nor the tenant knows: often noise (names, places,
/// slang), sometimes the thing the entry lacks ("violins"), so it counts, but less.
const UNKNOWN_BASE: f32 = 0.6;
/// Weight of a word whose meaning is known (a Swahili word and its English meaning) that the
/// tenant never uses: more likely something the business does not offer ("makaa", charcoal)
/// than a name or noise.
const KNOWN_BASE: f32 = 0.8;
/// Strength of an everyday word the lexicon does not know ("bring", "someone", "exactly"):
/// it neither explains much of a message nor leaves much of it unexplained.
const COMMON_STRENGTH: f32 = 0.35;
/// A hint in an entry's question ("where" for the location, "membership" for joining) explains
/// this much of a message's word that says the concept outright: the entry is about its
/// question however it is phrased, but "membership" is not quite "registration".
const QUESTION_HINT: f32 = 0.75;
/// Strength of the English meaning of a Swahili or Sheng word (`chumba` → room).
const GLOSS_STRENGTH: f32 = 0.9;
/// Strength of a carrying verb ("send", "bring") for delivery when the message names a destination.
const DESTINATION_STRENGTH: f32 = 0.9;
/// An entry whose question covers less than this of itself in the message answers it through
/// its answer alone ...
const ANSWER_ALONE: f32 = 0.2;
/// ... where the answer's lexicon concepts explain the message this much of what they would.
const ANSWER_CONCEPT_ALONE: f32 = 0.5;
/// Minimum score `best_match` accepts (0.58 before entry coverage counted each question word
/// once, which raised every score a little).
const THRESHOLD: f32 = 0.61;
/// An entry that leaves half of the message unexplained is not its answer, however well it
/// covers its own question: "do you deliver medicine?" to a hardware shop.
const MIN_QUERY_COVERAGE: f32 = 0.5;
/// Explaining the customer's words matters more than echoing the entry's.
const QUERY_COVERAGE_EXPONENT: f32 = 0.6;
/// Minimum lead of the best entry over the runner-up.
const MARGIN: f32 = 0.08;
/// A clear winner may score less: when it leads the runner-up by [`CLEAR_MARGIN`] and
/// explains [`CLEAR_QUERY_COVERAGE`] of the message, [`CLEAR_THRESHOLD`] is enough. Most
/// paraphrases that miss the main threshold are alone in the running and fully explained.
const CLEAR_THRESHOLD: f32 = 0.5;
const CLEAR_MARGIN: f32 = 0.2;
const CLEAR_QUERY_COVERAGE: f32 = 0.7;
/// The entry's own question counts as this covered even when the message only uses words of
/// its answer ("lace per yard?" to "Do you sell fabric?", whose answer lists lace by the yard).
const MIN_ENTRY_COVERAGE: f32 = 0.35;
/// A message with more content weight than this is a question, not just a greeting or thanks.
const CANNED_MAX_CONTENT: f32 = 1.6;

/// A feature: concept ids occupy `0..concepts`, tenant terms follow.
type Fid = u32;

#[derive(Debug, Clone, Copy)]
struct Posting {
    /// The variant (an entry's question or one of its phrasings).
    doc: u32,
    /// `1.0` for the question, [`ANSWER_FACTOR`] for the answer/category.
    field: f32,
    /// How strongly the entry's question signals the feature (0 when only in the answer).
    q_strength: f32,
    /// The word of the question the feature belongs to (when `q_strength > 0`).
    slot: u16,
    /// How much of a message's word the posting explains: most of it for the question, which
    /// the entry is about however it is phrased ([`QUESTION_HINT`]); no more than the answer
    /// says it otherwise (a hint in the answer, "power" for a battery, explains a battery only
    /// a little).
    strength: f32,
}

/// One way of asking an entry's question: the question itself or one of its phrasings.
#[derive(Debug)]
struct DocInfo {
    /// The entry this variant belongs to.
    entry: u32,
    canned: bool,
    /// Sum over the question's content words of each word's strongest feature: a word counts
    /// once, so "betri" for "battery" covers the word through its concept alone.
    q_norm: f32,
    /// Where this variant's words start in the per-query array of covered words.
    slot_base: u32,
    /// Social classes (greeting, thanks) the canned question is about.
    greeting: bool,
    thanks: bool,
}

/// A tenant's entries, preprocessed once (Send + Sync; built when a tenant's context is loaded).
#[derive(Debug)]
pub struct FaqIndex {
    /// Every variant of every entry, entry by entry.
    docs: Vec<DocInfo>,
    /// Number of question words over all variants.
    slots: usize,
    /// Per question word (all variants): its weight, and whether it names the thing whose
    /// price the question asks.
    slot_info: Vec<(f32, bool)>,
    /// Each entry's priority, by entry.
    priorities: Vec<i32>,
    terms: HashMap<String, Fid>,
    /// Weight of each feature present in the tenant, indexed by `Fid`.
    weights: Vec<f32>,
    postings: Vec<Vec<Posting>>,
    /// Weight a concept or term would have if it occurred in no entry.
    absent_idf: f32,
    /// The tenant's own words, for correcting typos of names the lexicon lacks.
    fuzzy: DeleteIndex,
}

/// One feature of one word of a text.
#[derive(Debug, Clone)]
enum Key {
    Concept(u16),
    Term(String),
}

#[derive(Debug, Clone)]
struct Feat {
    key: Key,
    strength: f32,
    /// A word whose meaning is known (a lexicon word, or a Swahili word with its glossary
    /// meaning): when the tenant never uses it, it is something the tenant does not offer
    /// rather than a name or noise.
    known: bool,
}

/// A text as a list of slots (one per content word or phrase), each a list of features.
#[derive(Debug, Default)]
struct Analysis {
    feats: Vec<Feat>,
    /// `(start, end)` into `feats`, and the social class when every concept of the slot is social.
    slots: Vec<(usize, usize, Option<Class>)>,
}

fn tokenize<'a>(norm: &'a str, out: &mut Vec<&'a str>) {
    for raw in norm.split(' ').filter(|t| !t.is_empty()) {
        // "hii" is Swahili "this", but a greeting when it opens the message.
        if raw == "hii" && out.is_empty() {
            out.push("hi");
            continue;
        }
        if let Some(rep) = shorthand(raw) {
            out.extend(rep.split(' '));
            continue;
        }
        let has_digit = raw.bytes().any(|b| b.is_ascii_digit());
        let has_alpha = raw.chars().any(|c| c.is_alphabetic());
        if has_digit && has_alpha {
            // "9am", "88key": split digit and letter runs so "am" and "key" are seen.
            let mut start = 0;
            let bytes = raw.as_bytes();
            for i in 1..=bytes.len() {
                if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
                    if raw.is_char_boundary(start) && raw.is_char_boundary(i) {
                        let part = &raw[start..i];
                        out.push(shorthand(part).unwrap_or(part));
                    }
                    start = i;
                }
            }
        } else {
            out.push(raw);
        }
    }
}

fn analyze(text: &str, lex: &Lexicon, fix: Option<&FaqIndex>) -> Analysis {
    let mut norm = String::new();
    normalize_into(text, &mut norm);
    if let Some(index) = fix {
        if let Some(joined) = index.join_compounds(&norm) {
            norm = joined;
        }
    }
    let mut toks: Vec<&str> = Vec::with_capacity(16);
    tokenize(&norm, &mut toks);
    if let Some(index) = fix {
        for t in toks.iter_mut() {
            if let Some(c) = index.correct(lex, t) {
                *t = c;
            }
        }
        if toks.iter().any(|t| index.split_compound(lex, t).is_some()) {
            let mut split = Vec::with_capacity(toks.len() + 2);
            for t in toks {
                match index.split_compound(lex, t) {
                    Some(k) => split.extend([&t[..k], &t[k..]]),
                    None => split.push(t),
                }
            }
            toks = split;
        }
    }
    let mut a = Analysis::default();
    // Slots of a word for paying ("lipa", "malipo"), as opposed to a way of paying ("M-Pesa").
    let mut paying: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        if let Some((hits, n)) = lex.phrase_at(&toks, i) {
            push_slot(&mut a, lex, hits, None, i == 0);
            // The phrase's own words too: "swimming pool" is also a pool.
            if a.slots.last().is_some_and(|s| s.2.is_none()) {
                for w in toks[i..i + n]
                    .iter()
                    .filter(|w| w.len() >= 3 && !is_stopword(w))
                {
                    a.feats.push(Feat {
                        key: Key::Term(stem(w).into_owned()),
                        strength: 1.0,
                        known: true,
                    });
                }
                if let Some(last) = a.slots.last_mut() {
                    last.1 = a.feats.len();
                }
            }
            i += n;
            continue;
        }
        i += 1;
        if is_stopword(t) || t.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A word the lexicon knows as written is not read as a form of another ("meza").
        let meaning = if lex.knows_as_written(t) {
            english_as_written(t)
        } else {
            english(t)
        };
        if meaning.is_some_and(|m| m.iter().all(|e| is_stopword(e))) {
            // "nahitaji" (need), "msaada" (help): as empty in Swahili as in English.
            continue;
        }
        if let Some((hits, root)) = lex.word_hits(t) {
            if PAY_VERBS.contains(&root.as_ref()) {
                paying.push(a.slots.len());
            }
            push_slot(&mut a, lex, hits, Some(stem(&root).into_owned()), i == 1);
            // "usiku" is a time of day to the lexicon and "night" to a guest house.
            if let Some(meaning) = meaning {
                let social = a.slots.last().is_some_and(|s| s.2.is_some());
                if !social {
                    push_meaning(&mut a, lex, meaning, false);
                    if let Some(last) = a.slots.last_mut() {
                        last.1 = a.feats.len();
                    }
                }
            }
        } else if t.chars().count() >= 2 {
            let start = a.feats.len();
            let term = stem(t).into_owned();
            let tenant_word = fix.is_some_and(|index| index.terms.contains_key(&term));
            // A Swahili word whose every meaning is an everyday word ("kuanza": start) says
            // as little as they do.
            let common = is_common(t) || meaning.is_some_and(|m| m.iter().all(|e| is_common(e)));
            a.feats.push(Feat {
                key: Key::Term(term),
                strength: if common { COMMON_STRENGTH } else { 1.0 },
                known: meaning.is_some(),
            });
            // A Swahili or Sheng word also stands for its English meaning, unless the tenant
            // writes the word itself.
            if let Some(meaning) = meaning.filter(|_| !tenant_word) {
                push_meaning(&mut a, lex, meaning, common);
            }
            a.slots.push((start, a.feats.len(), None));
        }
    }
    let asks_amount = toks
        .iter()
        .any(|t| matches!(*t, "ngapi" | "mingapi" | "kiasi"))
        || toks.windows(2).any(|w| w == ["how", "much"]);
    if asks_amount && !paying.is_empty() {
        // "nalipa pesa ngapi?", "malipo ya mwezi ni kiasi gani?": how much one pays is a price
        // question, not one about how to pay, unless a way of paying is named.
        let pay = a.slots.iter().enumerate().any(|(k, &(s, e, _))| {
            !paying.contains(&k)
                && a.feats[s..e]
                    .iter()
                    .any(|f| matches!(f.key, Key::Concept(c) if c == lex.pay) && f.strength >= 0.5)
        });
        if !pay {
            for &k in &paying {
                let (s, e, _) = a.slots[k];
                for f in &mut a.feats[s..e] {
                    f.strength *= PAYING_FOR_AMOUNT;
                }
            }
        }
    }
    let carried = a.feats.iter().any(|f| {
        matches!(f.key, Key::Concept(c) if c == lex.deliver) && f.strength >= DESTINATION_STRENGTH
    });
    if !carried && has_destination(text, &toks, lex, &a) {
        // "send it to Kisumu", "bring 10 bags to my farm": a carrying verb with a destination
        // is a delivery question, however lightly the verb alone says so.
        let mut found = false;
        for f in a.feats.iter_mut() {
            if matches!(f.key, Key::Concept(c) if c == lex.deliver) {
                f.strength = f.strength.max(DESTINATION_STRENGTH);
                found = true;
            }
        }
        if !found && toks.iter().any(|t| CARRY.contains(t)) {
            let start = a.feats.len();
            a.feats.push(Feat {
                key: Key::Concept(lex.deliver),
                strength: DESTINATION_STRENGTH,
                known: true,
            });
            a.slots.push((start, a.feats.len(), None));
        }
    } else if !carried
        && a.feats
            .iter()
            .any(|f| matches!(f.key, Key::Concept(c) if lex.info.contains(&c)) && f.strength >= 1.0)
    {
        // "send me your location", "snd paybill no": a light "send" with payment details,
        // contacts or the location asks for the information, not for a delivery.
        for f in a.feats.iter_mut() {
            if matches!(f.key, Key::Concept(c) if c == lex.deliver) && f.strength < 1.0 {
                f.strength = 0.0;
            }
        }
    }
    a
}

/// Whether a word (its features) names a thing rather than an action or a circumstance: a
/// thing in the lexicon ("battery", "meza"), or a word only the tenant knows ("tent").
fn names_a_thing(feats: &[Feat], lex: &Lexicon) -> bool {
    // The word's strongest sense decides: "charge" is a price before it is phone charging.
    let mut best: Option<(f32, Class)> = None;
    for f in feats {
        if let Key::Concept(c) = f.key {
            let class = lex.classes[c as usize];
            if best.is_none_or(|(s, _)| f.strength > s) {
                best = Some((f.strength, class));
            }
        }
    }
    match best {
        Some((s, class)) => class == Class::Entity && s >= 0.5,
        None => feats.first().is_some_and(|f| f.strength >= 1.0),
    }
}

/// A word with its first doubled letter written once ("dress" → "dres"); the word itself
/// when it has none.
fn undoubled(w: &str) -> String {
    let b = w.as_bytes();
    match (1..b.len()).find(|&i| b[i] == b[i - 1]) {
        Some(i) if w.is_ascii() => format!("{}{}", &w[..i], &w[i + 1..]),
        _ => w.to_owned(),
    }
}

/// Words for paying (roots as the lexicon finds them), as opposed to ways of paying.
const PAY_VERBS: &[&str] = &[
    "pay", "paying", "paid", "payed", "payment", "payments", "lipa", "lipia", "lipe", "lipwa",
    "malipo",
];

/// Strength left to a word for paying in a message that asks how much.
const PAYING_FOR_AMOUNT: f32 = 0.3;

/// Everyday verbs of carrying that only ask for delivery when a destination follows.
const CARRY: &[&str] = &[
    "bring",
    "take",
    "carry",
    "drop",
    "ship",
    "transport",
    "order",
];

/// Whether a message names where something should go: a known place, "to my ...", or a
/// capitalised name after "to", "hadi" or "mpaka".
fn has_destination(text: &str, toks: &[&str], lex: &Lexicon, a: &Analysis) -> bool {
    let concept = |id: u16| {
        a.feats
            .iter()
            .any(|f| matches!(f.key, Key::Concept(c) if c == id))
    };
    if !concept(lex.deliver) && !toks.iter().any(|t| CARRY.contains(t)) {
        return false;
    }
    if concept(lex.place) {
        return true;
    }
    let channel = |w: &str| {
        matches!(
            w,
            "email" | "mail" | "whatsapp" | "number" | "phone" | "inbox" | "dm" | "account"
        )
    };
    if toks.windows(3).any(|w| {
        matches!(w[0], "to" | "hadi" | "mpaka")
            && matches!(w[1], "my" | "our" | "the" | "kwangu" | "kwetu")
            && !channel(w[2])
    }) {
        return true;
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).any(|w| {
        matches!(w[0].to_lowercase().as_str(), "to" | "hadi" | "mpaka")
            && w[1].chars().next().is_some_and(char::is_uppercase)
    })
}

/// Adds the features of a word's English meaning to the slot being built.
fn push_meaning(a: &mut Analysis, lex: &Lexicon, meaning: &[&str], common: bool) {
    let gloss = if common {
        COMMON_STRENGTH
    } else {
        GLOSS_STRENGTH
    };
    for e in meaning {
        if let Some((hits, root)) = lex.word_hits(e) {
            for h in hits {
                if lex.classes[h.concept as usize].is_social() {
                    continue;
                }
                a.feats.push(Feat {
                    key: Key::Concept(h.concept),
                    strength: h.strength * gloss,
                    known: true,
                });
            }
            a.feats.push(Feat {
                key: Key::Term(stem(&root).into_owned()),
                strength: gloss,
                known: true,
            });
        } else {
            a.feats.push(Feat {
                key: Key::Term(stem(e).into_owned()),
                strength: gloss,
                known: true,
            });
        }
    }
}

/// Pushes one slot. `first` says it opens the message, where a word that may greet
/// ("morning", "sasa") is a greeting.
fn push_slot(a: &mut Analysis, lex: &Lexicon, hits: &[Hit], term: Option<String>, first: bool) {
    if first && a.slots.is_empty() && hits.iter().any(|h| h.concept == lex.greeting) {
        let start = a.feats.len();
        a.feats.push(Feat {
            key: Key::Concept(lex.greeting),
            strength: 1.0,
            known: true,
        });
        a.slots.push((start, a.feats.len(), Some(Class::Greeting)));
        return;
    }
    let start = a.feats.len();
    let mut social = None;
    let mut all_social = true;
    for h in hits {
        let class = lex.classes[h.concept as usize];
        if class.is_social() {
            social = Some(class);
        } else {
            all_social = false;
        }
        a.feats.push(Feat {
            key: Key::Concept(h.concept),
            strength: h.strength,
            known: true,
        });
    }
    if let Some(t) = term {
        a.feats.push(Feat {
            key: Key::Term(t),
            strength: 1.0,
            known: true,
        });
    }
    let social = if all_social { social } else { None };
    a.slots.push((start, a.feats.len(), social));
}

fn idf(n_docs: usize, df: usize) -> f32 {
    (1.0 + (n_docs as f32 + 1.0) / (df as f32 + 0.5)).ln()
}

impl FaqIndex {
    /// Preprocesses a tenant's entries: analyses questions, phrasings and answers, computes
    /// feature weights from the tenant's own entries and builds the inverted index.
    pub fn build<'a>(docs: impl IntoIterator<Item = FaqDoc<'a>>) -> Self {
        let lex = lexicon();
        let concepts = lex.concept_count();
        let mut terms: HashMap<String, Fid> = HashMap::new();
        let mut surface: Vec<String> = Vec::new();
        // Per variant: (feature, question strength, in question, question word) with the
        // answer merged in.
        let mut per_variant: Vec<Vec<(Fid, f32, bool, u16)>> = Vec::new();
        // Per variant: (entry, canned, greeting, thanks).
        let mut infos: Vec<(u32, bool, bool, bool)> = Vec::new();
        // Per variant: the question words that name a thing.
        let mut variant_things: Vec<Vec<u16>> = Vec::new();
        let mut priorities = Vec::new();
        // Per entry: the features of all its variants, for document frequencies.
        let mut per_entry: Vec<Vec<Fid>> = Vec::new();
        let intern = |k: &Key, terms: &mut HashMap<String, Fid>| -> Fid {
            match k {
                Key::Concept(c) => *c as Fid,
                Key::Term(t) => {
                    let next = (concepts + terms.len()) as Fid;
                    *terms.entry(t.clone()).or_insert(next)
                }
            }
        };
        for (entry, d) in docs.into_iter().enumerate() {
            let entry = entry as u32;
            // A canned reply's words ("welcome", "karibu") say nothing about what it answers.
            let mut answer_feats: Vec<(Fid, f32)> = Vec::new();
            if !d.canned {
                let mut extra = String::from(d.answer);
                if let Some(c) = d.category {
                    extra.push_str(" . ");
                    extra.push_str(c);
                }
                let ans = analyze(&extra, lex, None);
                for f in &ans.feats {
                    if let Key::Concept(c) = f.key {
                        if lex.classes[c as usize].is_social() {
                            continue;
                        }
                    }
                    answer_feats.push((intern(&f.key, &mut terms), f.strength));
                }
                let mut norm = String::new();
                normalize_into(d.answer, &mut norm);
                surface.extend(norm.split(' ').filter(|w| w.len() >= 4).map(str::to_string));
            }
            let mut entry_feats: Vec<Fid> = Vec::new();
            let variants = std::iter::once(d.question)
                .chain(d.phrasings.iter().map(String::as_str))
                .filter(|v| !v.trim().is_empty());
            for (k, text) in variants.enumerate() {
                let q = analyze(text, lex, None);
                if k > 0 && q.slots.is_empty() {
                    // A phrasing with no content ("??") explains nothing.
                    continue;
                }
                let mut feats: Vec<(Fid, f32, bool, u16)> = Vec::new();
                let mut greeting = false;
                let mut thanks = false;
                for (slot, &(s, e, social)) in q.slots.iter().enumerate() {
                    match social {
                        Some(Class::Greeting) => greeting = true,
                        Some(Class::Thanks) => thanks = true,
                        _ => {}
                    }
                    for f in &q.feats[s..e] {
                        let id = intern(&f.key, &mut terms);
                        add_feat(&mut feats, id, f.strength, true, slot as u16);
                    }
                }
                for &(id, strength) in &answer_feats {
                    add_feat(&mut feats, id, strength, false, 0);
                }
                let mut norm = String::new();
                normalize_into(text, &mut norm);
                surface.extend(norm.split(' ').filter(|w| w.len() >= 4).map(str::to_string));
                entry_feats.extend(feats.iter().map(|f| f.0));
                per_variant.push(feats);
                // A price question is about the price of its own thing ("how much is tent
                // hire?"): its things are what it answers for.
                let asks_price = q.feats.iter().any(|f| {
                    matches!(f.key, Key::Concept(c) if c == lex.price) && f.strength >= 0.6
                });
                variant_things.push(if asks_price {
                    q.slots
                        .iter()
                        .enumerate()
                        .filter(|(_, &(s, e, social))| {
                            social.is_none() && names_a_thing(&q.feats[s..e], lex)
                        })
                        .map(|(k, _)| k as u16)
                        .collect()
                } else {
                    Vec::new()
                });
                infos.push((entry, d.canned, greeting, thanks));
            }
            entry_feats.sort_unstable();
            entry_feats.dedup();
            per_entry.push(entry_feats);
            priorities.push(d.priority);
        }
        // Frequencies count entries, not variants: twelve phrasings of one entry saying
        // "price" do not make "price" common among the tenant's entries.
        let n_docs = per_entry.len();
        let n_feats = concepts + terms.len();
        let mut df = vec![0usize; n_feats];
        for feats in &per_entry {
            for &id in feats {
                df[id as usize] += 1;
            }
        }
        let weights: Vec<f32> = (0..n_feats)
            .map(|id| {
                let base = if id < concepts {
                    lex.classes[id].base_weight()
                } else {
                    TERM_BASE
                };
                base * idf(n_docs, df[id])
            })
            .collect();
        let mut postings: Vec<Vec<Posting>> = vec![Vec::new(); n_feats];
        let mut docs = Vec::with_capacity(per_variant.len());
        let mut slot_base = 0u32;
        let mut slot_info = Vec::new();
        for (i, feats) in per_variant.iter().enumerate() {
            let n_slots = feats
                .iter()
                .filter(|f| f.2)
                .map(|f| f.3 + 1)
                .max()
                .unwrap_or(0);
            let mut slot_w = vec![0.0f32; n_slots as usize];
            for &(id, qs, in_q, slot) in feats {
                let social = (id as usize) < concepts && lex.classes[id as usize].is_social();
                if in_q && !social {
                    let w = &mut slot_w[slot as usize];
                    *w = w.max(weights[id as usize] * qs);
                }
                postings[id as usize].push(Posting {
                    doc: i as u32,
                    field: if in_q {
                        1.0
                    } else if (id as usize) >= concepts && df[id as usize] == 1 {
                        UNIQUE_ANSWER_FACTOR
                    } else {
                        ANSWER_FACTOR
                    },
                    q_strength: if in_q { qs } else { 0.0 },
                    slot,
                    strength: if in_q { qs.max(QUESTION_HINT) } else { qs },
                });
            }
            let (entry, canned, greeting, thanks) = infos[i];
            docs.push(DocInfo {
                entry,
                canned,
                q_norm: slot_w.iter().sum(),
                slot_base,
                greeting,
                thanks,
            });
            slot_base += u32::from(n_slots);
            let things = &variant_things[i];
            slot_info.extend(
                slot_w
                    .iter()
                    .enumerate()
                    .map(|(k, &w)| (w, things.contains(&(k as u16)))),
            );
        }
        let fuzzy = DeleteIndex::build(surface.into_iter().filter(|w| {
            w.bytes().all(|b| b.is_ascii_alphabetic()) && !is_stopword(w) && !lex.knows(w)
        }));
        FaqIndex {
            docs,
            slots: slot_base as usize,
            slot_info,
            priorities,
            terms,
            weights,
            postings,
            absent_idf: idf(n_docs, 0),
            fuzzy,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.priorities.len()
    }

    /// Whether the tenant has no entries.
    pub fn is_empty(&self) -> bool {
        self.priorities.is_empty()
    }

    /// Corrects a word nobody knows to a known word one edit away. The tenant's own words
    /// come first: in a hardware shop "sheats" is "sheets", not "seats".
    fn correct<'s>(&'s self, lex: &'s Lexicon, t: &'s str) -> Option<&'s str> {
        if t.len() < 3
            || !t.bytes().all(|b| b.is_ascii_alphabetic())
            || is_stopword(t)
            || lex.knows(t)
        {
            return None;
        }
        if self.terms.contains_key(stem(t).as_ref()) || english(t).is_some() || is_english(t) {
            return None;
        }
        if fuzzy::is_vowelless(t) {
            // "stdnts", "snd": the tenant's word first, then the lexicon's.
            let same = |a: &&str, b: &&str| stem(a) == stem(b) || lex.same_meaning(a, b);
            for found in [self.fuzzy.by_skeleton(t), lex.fuzzy.by_skeleton(t)] {
                if let Some((first, rest)) = found.split_first() {
                    if rest.iter().all(|o| same(first, o)) {
                        return Some(first);
                    }
                    let mut known = found.iter().filter(|c| self.knows_word(lex, c));
                    let pick = known.next()?;
                    return known.all(|o| same(pick, o)).then_some(*pick);
                }
            }
            return None;
        }
        if t.len() == 4 && !is_common(t) {
            // A short word that writes a double letter of the tenant's word once: "dres", "lory".
            let mut found = self.fuzzy.candidates(t);
            found.extend(
                lex.fuzzy
                    .candidates(t)
                    .into_iter()
                    .filter(|c| self.knows_word(lex, c)),
            );
            let mut longer = found.iter().filter(|c| undoubled(c) == t);
            if let Some(first) = longer.next() {
                if longer.all(|o| stem(first) == stem(o) || lex.same_meaning(first, o)) {
                    return Some(first);
                }
            }
        }
        if t.len() < 5 {
            return None;
        }
        // Sheng puts Swahili verb prefixes on the tenant's own words: "mnashampoo", "mnasupply".
        for p in SW_PREFIXES {
            if let Some(rest) = t.strip_prefix(p) {
                if rest.len() >= 4 && self.terms.contains_key(stem(rest).as_ref()) {
                    return Some(rest);
                }
            }
        }
        if let Some(w) = self.fuzzy.correct(t, |a, b| stem(a) == stem(b)) {
            return Some(w);
        }
        let found = lex.fuzzy.candidates(t);
        let (first, rest) = found.split_first()?;
        if rest.iter().all(|o| lex.same_meaning(first, o)) {
            return Some(first);
        }
        // Several readings ("batery": battery or bakery): take the one this tenant talks about.
        let mut known = found.iter().filter(|c| self.knows_word(lex, c));
        let pick = known.next()?;
        known.all(|o| lex.same_meaning(pick, o)).then_some(*pick)
    }

    /// Where to split a word nobody knows that is two known words run together
    /// ("threepiece", "oneday", "bookingfee"): one of them the tenant's own.
    fn split_compound(&self, lex: &Lexicon, t: &str) -> Option<usize> {
        if t.len() < 6
            || !t.bytes().all(|b| b.is_ascii_lowercase())
            || is_stopword(t)
            || is_common(t)
            || lex.knows(t)
            || self.terms.contains_key(stem(t).as_ref())
            || english(t).is_some()
        {
            return None;
        }
        let tenant = |w: &str| self.terms.contains_key(stem(w).as_ref());
        let known = |w: &str| tenant(w) || lex.knows(w) || is_stopword(w) || is_common(w);
        (3..=t.len() - 3).find(|&k| {
            let (l, r) = (&t[..k], &t[k..]);
            known(l) && known(r) && (tenant(l) || tenant(r))
        })
    }

    /// Two words the tenant writes as one ("check in" for "check-in", "ready made"), joined;
    /// `None` when there are none.
    fn join_compounds(&self, norm: &str) -> Option<String> {
        // Shorthand first: "chk in" is "check in".
        let words: Vec<&str> = norm
            .split(' ')
            .map(|w| shorthand(w).filter(|r| !r.contains(' ')).unwrap_or(w))
            .collect();
        let mut out: Option<String> = None;
        let mut k = 0;
        while k < words.len() {
            let w = words[k];
            let mut next = w.to_owned();
            let mut step = 1;
            if let Some(b) = words.get(k + 1) {
                let cat = format!("{w}{b}");
                if w.len() >= 2
                    && b.len() >= 2
                    && cat.len() >= 6
                    && self.terms.contains_key(stem(&cat).as_ref())
                {
                    next = cat;
                    step = 2;
                }
            }
            if step == 2 || out.is_some() {
                let o = out.get_or_insert_with(|| words[..k].join(" "));
                if !o.is_empty() {
                    o.push(' ');
                }
                o.push_str(&next);
            }
            k += step;
        }
        out
    }

    /// Whether the tenant's entries use a lexicon word's concepts or the word itself.
    fn knows_word(&self, lex: &Lexicon, w: &str) -> bool {
        if self.terms.contains_key(stem(w).as_ref()) {
            return true;
        }
        lex.word_hits(w).is_some_and(|(hits, _)| {
            hits.iter()
                .any(|h| !self.postings[h.concept as usize].is_empty())
        })
    }

    /// Scores every entry in `0..=1` (0 = no evidence or disqualified).
    fn score_all(&self, query: &str) -> Vec<f32> {
        self.score_all_with_coverage(query).0
    }

    /// Scores every entry, with how much of the message the best variant explains.
    fn score_all_with_coverage(&self, query: &str) -> (Vec<f32>, Vec<f32>) {
        self.score_detailed(query, None)
    }

    /// Scores every entry; `detail` receives each entry's best (query, entry) coverage.
    fn score_detailed(
        &self,
        query: &str,
        mut detail: Option<&mut Vec<(f32, f32)>>,
    ) -> (Vec<f32>, Vec<f32>) {
        let lex = lexicon();
        let mut scores = vec![0.0f32; self.priorities.len()];
        let mut coverage = vec![0.0f32; self.priorities.len()];
        if let Some(d) = detail.as_deref_mut() {
            d.clear();
            d.resize(self.priorities.len(), (0.0, 0.0));
        }
        let n = self.docs.len();
        if n == 0 {
            return (scores, coverage);
        }
        let a = analyze(query, lex, Some(self));

        // Resolve features to tenant ids once.
        let resolved: Vec<(Option<Fid>, f32, f32)> = a
            .feats
            .iter()
            .map(|f| match &f.key {
                Key::Concept(c) => {
                    let w = self.weights[*c as usize];
                    let present = !self.postings[*c as usize].is_empty();
                    if present {
                        (Some(*c as Fid), w, f.strength)
                    } else {
                        // Something the tenant never mentions. A word that only hints at the
                        // concept ("fast" for duration, "car" in "park my car") counts no more
                        // than an unknown word would.
                        let base = lex.classes[*c as usize].base_weight();
                        let w = if f.strength < 1.0 {
                            (base * f.strength).min(UNKNOWN_BASE)
                        } else {
                            base
                        };
                        (None, w * self.absent_idf, 1.0)
                    }
                }
                Key::Term(t) => match self.terms.get(t.as_str()) {
                    Some(&id) => (Some(id), self.weights[id as usize], f.strength),
                    None if f.known => (None, KNOWN_BASE * self.absent_idf, f.strength),
                    None => (None, UNKNOWN_BASE * self.absent_idf, f.strength),
                },
            })
            .collect();

        let mut content_total = 0.0f32;
        let mut has_greeting = false;
        let mut has_thanks = false;
        let mut qm = vec![0.0f32; n];
        let mut dm = vec![0.0f32; n];
        let mut tmp = vec![0.0f32; n];
        // The same with the answer's lexicon concepts at half weight, for entries whose
        // question says nothing of the message.
        let mut qm_own = vec![0.0f32; n];
        let mut tmp_own = vec![0.0f32; n];
        let concepts = lex.concept_count();
        let mut touched: Vec<u32> = Vec::with_capacity(n);
        // Per variant: how many of the things the message names it explains.
        let mut things_met = vec![0u16; n];
        let mut things = 0u16;
        // Best query strength per present feature, for entry coverage.
        let mut seen: Vec<(Fid, f32)> = Vec::with_capacity(resolved.len());
        for &(s, e, social) in &a.slots {
            match social {
                Some(Class::Greeting) => {
                    has_greeting = true;
                    continue;
                }
                Some(Class::Thanks) => {
                    has_thanks = true;
                    continue;
                }
                _ => {}
            }
            let feats = &resolved[s..e];
            let has_concept = a.feats[s..e]
                .iter()
                .any(|f| matches!(f.key, Key::Concept(_)));
            // A word with several senses ("phone": a contact or the device) means the sense
            // the tenant knows; an absent sense only counts when the tenant knows none.
            let any_present = feats.iter().any(|f| f.0.is_some());
            let mut slot_w = 0.0f32;
            for (k, &(id, w, qs)) in feats.iter().enumerate() {
                let is_term = matches!(a.feats[s + k].key, Key::Term(_));
                // A lexicon word's own spelling only adds weight when the tenant uses it.
                if is_term && has_concept && id.is_none() {
                    continue;
                }
                if any_present && id.is_none() {
                    continue;
                }
                slot_w = slot_w.max(w * qs);
                let Some(id) = id else { continue };
                match seen.iter_mut().find(|(f, _)| *f == id) {
                    Some((_, best)) => *best = best.max(qs),
                    None => seen.push((id, qs)),
                }
                // Answers state prices: a price there is as good as in the question.
                let concept = (id as usize) < concepts && id != Fid::from(lex.price);
                for p in &self.postings[id as usize] {
                    let v = w * qs.min(p.strength) * p.field;
                    let slot = &mut tmp[p.doc as usize];
                    if *slot == 0.0 {
                        touched.push(p.doc);
                    }
                    if v > *slot {
                        *slot = v;
                    }
                    let own = if concept && p.q_strength == 0.0 {
                        v * ANSWER_CONCEPT_ALONE
                    } else {
                        v
                    };
                    let slot = &mut tmp_own[p.doc as usize];
                    if own > *slot {
                        *slot = own;
                    }
                }
            }
            content_total += slot_w;
            // A thing the tenant's questions are about ("chairs"), or one the tenant never
            // mentions ("generators"); not a word only some answer uses.
            let asked = feats.iter().any(|f| {
                f.0.is_some_and(|id| {
                    self.postings[id as usize]
                        .iter()
                        .any(|p| p.q_strength > 0.0)
                })
            });
            if names_a_thing(&a.feats[s..e], lex) {
                if asked || !any_present {
                    things += 1;
                }
                for &d in &touched {
                    if tmp[d as usize] >= 0.5 * slot_w {
                        things_met[d as usize] += 1;
                    }
                }
            }
            for &d in &touched {
                qm[d as usize] += tmp[d as usize];
                tmp[d as usize] = 0.0;
                qm_own[d as usize] += tmp_own[d as usize];
                tmp_own[d as usize] = 0.0;
            }
            touched.clear();
        }
        // Each word of an entry's question is covered by its best-covered feature.
        let mut covered = vec![0.0f32; self.slots];
        for &(id, qs) in &seen {
            let w = self.weights[id as usize];
            for p in &self.postings[id as usize] {
                if p.q_strength > 0.0 {
                    let k = self.docs[p.doc as usize].slot_base as usize + p.slot as usize;
                    covered[k] = covered[k].max(w * qs.min(p.q_strength));
                }
            }
        }
        // The price of one thing (a tent) does not answer a message about another (chairs)
        // however well it covers the rest ("do you hire ...?").
        let mut other_thing = vec![false; n];
        for (i, d) in self.docs.iter().enumerate() {
            let start = d.slot_base as usize;
            let end = self
                .docs
                .get(i + 1)
                .map_or(self.slots, |n| n.slot_base as usize);
            dm[i] = covered[start..end].iter().sum();
            if dm[i] < ANSWER_ALONE * d.q_norm {
                // An answer that mentions a rider does not make a cyber café a courier: when the
                // question says (almost) nothing of the message, only the answer's own words
                // ("Zumba", "DSTV") and its prices fully explain it, the lexicon's other
                // concepts half.
                qm[i] = qm_own[i];
            }
            other_thing[i] = things > 0
                && things_met[i] == 0
                && (start..end).any(|k| {
                    let (w, thing) = self.slot_info[k];
                    thing && covered[k] < 0.5 * w
                });
        }

        let canned_ok = content_total <= CANNED_MAX_CONTENT;
        for (i, d) in self.docs.iter().enumerate() {
            let score = if d.canned {
                if canned_ok && ((d.greeting && has_greeting) || (d.thanks && has_thanks)) {
                    1.0 - 0.2 * (content_total / CANNED_MAX_CONTENT)
                } else {
                    0.0
                }
            } else if content_total <= 0.0 || d.q_norm <= 0.0 || other_thing[i] {
                0.0
            } else {
                let qcov = (qm[i] / content_total).min(1.0);
                let dcov = (dm[i] / d.q_norm).clamp(MIN_ENTRY_COVERAGE, 1.0);
                if qcov < MIN_QUERY_COVERAGE {
                    0.0
                } else {
                    qcov.powf(QUERY_COVERAGE_EXPONENT) * dcov.powf(1.0 - QUERY_COVERAGE_EXPONENT)
                }
            };
            // The best-scoring way of asking speaks for the entry.
            let e = d.entry as usize;
            if score > scores[e] {
                if let Some(det) = detail.as_deref_mut() {
                    det[e] = (
                        qm[i] / content_total.max(f32::EPSILON),
                        dm[i] / d.q_norm.max(f32::EPSILON),
                    );
                }
                scores[e] = score;
                coverage[e] = if d.canned {
                    1.0
                } else {
                    (qm[i] / content_total.max(f32::EPSILON)).min(1.0)
                };
            }
        }
        (scores, coverage)
    }

    fn ranked(&self, scores: &[f32]) -> Vec<FaqMatch> {
        let mut order: Vec<FaqMatch> = scores
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0.0)
            .map(|(index, &score)| FaqMatch { index, score })
            .collect();
        order.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(self.priorities[b.index].cmp(&self.priorities[a.index]))
                .then(a.index.cmp(&b.index))
        });
        order
    }

    /// The entry that answers `query`, only when confident enough: its score clears an
    /// absolute threshold and leads the runner-up by a margin. `None` means "let the AI answer".
    pub fn best_match(&self, query: &str) -> Option<FaqMatch> {
        let (scores, coverage) = self.score_all_with_coverage(query);
        let mut best: Option<(usize, f32)> = None;
        let mut second = 0.0f32;
        for (i, &s) in scores.iter().enumerate() {
            match best {
                Some((bi, bs))
                    if s < bs || (s == bs && self.priorities[i] <= self.priorities[bi]) =>
                {
                    second = second.max(s);
                }
                Some((_, bs)) => {
                    second = second.max(bs);
                    best = Some((i, s));
                }
                None => best = Some((i, s)),
            }
        }
        let (index, score) = best?;
        ((score >= THRESHOLD && score - second >= MARGIN)
            || (score >= CLEAR_THRESHOLD
                && score - second >= CLEAR_MARGIN
                && coverage[index] >= CLEAR_QUERY_COVERAGE))
            .then_some(FaqMatch { index, score })
    }

    /// The `k` most relevant entries, best first, without the confidence threshold
    /// (grounding for the AI). Entries with no evidence at all are left out.
    pub fn rank(&self, query: &str, k: usize) -> Vec<FaqMatch> {
        let scores = self.score_all(query);
        let mut r = self.ranked(&scores);
        r.truncate(k);
        r
    }

    /// Human-readable account of how a query was analysed; for tuning and support.
    pub fn explain(&self, query: &str) -> String {
        let lex = lexicon();
        let a = analyze(query, lex, Some(self));
        let mut out = String::new();
        for &(s, e, social) in &a.slots {
            out.push('[');
            for f in &a.feats[s..e] {
                match &f.key {
                    Key::Concept(c) => out.push_str(lex.names[*c as usize]),
                    Key::Term(t) => {
                        out.push('"');
                        out.push_str(t);
                        out.push('"');
                        if !self.terms.contains_key(t) {
                            out.push('?');
                        }
                    }
                }
                if f.strength < 1.0 {
                    out.push_str(&format!("*{:.1}", f.strength));
                }
                out.push(' ');
            }
            if social.is_some() {
                out.push_str("social");
            }
            out.push_str("] ");
        }
        let mut detail = Vec::new();
        let (scores, _) = self.score_detailed(query, Some(&mut detail));
        for m in self.ranked(&scores).iter().take(4) {
            let (q, d) = detail[m.index];
            out.push_str(&format!(
                "| #{} {:.3} q={:.2} d={:.2} ",
                m.index, m.score, q, d
            ));
        }
        out
    }
}

fn add_feat(feats: &mut Vec<(Fid, f32, bool, u16)>, id: Fid, strength: f32, in_q: bool, slot: u16) {
    match feats.iter_mut().find(|f| f.0 == id) {
        Some(f) => {
            if in_q {
                if !f.2 {
                    f.3 = slot;
                }
                f.1 = if f.2 { f.1.max(strength) } else { strength };
                f.2 = true;
            }
        }
        None => feats.push((id, strength, in_q, slot)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Vec<FaqDoc<'static>> {
        let faq = |question, answer| FaqDoc {
            question,
            answer,
            category: None,
            canned: false,
            priority: 0,
            phrasings: &[],
        };
        vec![
            FaqDoc {
                question: "Hi",
                answer: "Hello! Welcome to the shop.",
                category: None,
                canned: true,
                priority: 0,
                phrasings: &[],
            },
            FaqDoc {
                question: "Thank you",
                answer: "You're welcome!",
                category: None,
                canned: true,
                priority: 0,
                phrasings: &[],
            },
            faq(
                "What are your opening hours?",
                "Monday to Saturday, 9 AM to 6 PM. Closed on Sunday.",
            ),
            faq("Where are you located?", "Moi Avenue, Nairobi CBD."),
            faq("How can I pay?", "M-Pesa till 512345, cash or card."),
            faq(
                "Do you deliver?",
                "Yes, within Nairobi for KES 300 and countrywide by courier.",
            ),
            faq("How much is a guitar?", "Acoustic guitars from KES 8,500."),
            faq(
                "Do you repair instruments?",
                "Yes, we repair guitars, keyboards and amplifiers.",
            ),
        ]
    }

    fn best(q: &str) -> Option<usize> {
        FaqIndex::build(shop()).best_match(q).map(|m| m.index)
    }

    #[test]
    fn an_exact_question_matches_its_entry() {
        assert_eq!(best("What are your opening hours?"), Some(2));
    }

    #[test]
    fn a_greeting_followed_by_a_question_matches_the_question() {
        assert_eq!(best("hi, what time do you open?"), Some(2));
    }

    #[test]
    fn a_bare_greeting_matches_the_canned_greeting() {
        assert_eq!(best("Niaje"), Some(0));
        assert_eq!(best("Hello there!"), Some(0));
    }

    #[test]
    fn thanks_in_swahili_matches_the_canned_thanks() {
        assert_eq!(best("Asante sana"), Some(1));
    }

    #[test]
    fn swahili_and_sheng_questions_match() {
        assert_eq!(best("Mnafungua saa ngapi?"), Some(2));
        assert_eq!(best("mko wapi"), Some(3));
        assert_eq!(best("naeza lipa na mpesa?"), Some(4));
        assert_eq!(best("mnadeliver?"), Some(5));
        assert_eq!(best("bei ya guitar ni ngapi"), Some(6));
    }

    #[test]
    fn whatsapp_shorthand_and_typos_match() {
        assert_eq!(best("wat tym u open"), Some(2));
        assert_eq!(best("u deliver?"), Some(5));
        assert_eq!(best("hw much is a gitar"), Some(6));
        assert_eq!(best("do you repiar keyboards"), Some(7));
    }

    #[test]
    fn a_question_no_entry_answers_gets_no_match() {
        assert_eq!(best("Do you sell violins?"), None);
        assert_eq!(best("What's the weather like today?"), None);
    }

    #[test]
    fn another_businesses_question_gets_no_match() {
        assert_eq!(best("How much are box braids?"), None);
        assert_eq!(best("Can I book a table for four?"), None);
    }

    #[test]
    fn an_empty_or_emoji_only_message_gets_no_match() {
        assert_eq!(best(""), None);
        assert_eq!(best("🙏🙏"), None);
    }

    #[test]
    fn rank_returns_the_most_relevant_entries_first() {
        let index = FaqIndex::build(shop());
        let r = index.rank("how much to deliver a guitar to Kisumu", 3);
        assert!(!r.is_empty() && r.len() <= 3);
        assert!(r.windows(2).all(|w| w[0].score >= w[1].score));
        assert!(r.iter().any(|m| m.index == 5));
    }

    #[test]
    fn an_index_with_no_entries_matches_nothing() {
        let index = FaqIndex::build(Vec::new());
        assert!(index.is_empty());
        assert_eq!(index.best_match("hello"), None);
        assert!(index.rank("hello", 5).is_empty());
    }

    fn lodge() -> Vec<FaqDoc<'static>> {
        let faq = |question, answer| FaqDoc {
            question,
            answer,
            category: None,
            canned: false,
            priority: 0,
            phrasings: &[],
        };
        vec![
            faq(
                "How much is a room per night?",
                "Standard room KES 3,500 per night, bed and breakfast.",
            ),
            faq("Is there a pool for guests?", "Yes, open 8am to 6pm."),
            faq(
                "Can I send my students for a tour?",
                "Yes, school tours on weekdays.",
            ),
            faq(
                "Do you sell fabric?",
                "Yes: ankara and lace by the yard, from KES 450.",
            ),
        ]
    }

    fn lodge_best(q: &str) -> Option<usize> {
        FaqIndex::build(lodge()).best_match(q).map(|m| m.index)
    }

    #[test]
    fn two_words_the_tenant_writes_as_one_are_joined() {
        let mut docs = lodge();
        docs.push(FaqDoc {
            question: "What time is check-in?",
            answer: "From 2 pm.",
            category: None,
            canned: false,
            priority: 0,
            phrasings: &[],
        });
        let index = FaqIndex::build(docs);
        assert_eq!(
            index
                .best_match("wat time can we check in")
                .map(|m| m.index),
            Some(4)
        );
    }

    #[test]
    fn a_swahili_word_meets_the_tenants_english_word() {
        // "chumba" is a room, "usiku" a night, "bwawa" a pool.
        assert_eq!(lodge_best("Chumba kwa usiku ni bei gani?"), Some(0));
        assert_eq!(lodge_best("Kuna bwawa hapo?"), Some(1));
    }

    #[test]
    fn vowelless_shorthand_is_read_as_the_tenants_word() {
        assert_eq!(lodge_best("cn i snd stdnts 4 a tour"), Some(2));
    }

    #[test]
    fn everyday_words_around_a_question_do_not_hide_it() {
        assert_eq!(
            lodge_best("how much exactly is a room per night, someone told me"),
            Some(0)
        );
    }

    #[test]
    fn a_message_using_only_an_answers_words_can_match_when_nothing_else_competes() {
        assert_eq!(lodge_best("ankara and lace?"), Some(3));
        // But an unrelated question still gets no answer.
        assert_eq!(lodge_best("Do you sell laptops?"), None);
    }

    fn with_phrasings(phrasings: &[String]) -> FaqIndex {
        let mut docs = shop();
        docs[6].phrasings = phrasings;
        FaqIndex::build(docs)
    }

    #[test]
    fn a_phrasing_makes_its_entry_answer_a_message_the_question_alone_does_not() {
        let q = "zile za nyuzi sita";
        assert_eq!(best(q), None);
        let p = vec!["zile za nyuzi sita?".to_string()];
        assert_eq!(with_phrasings(&p).best_match(q).map(|m| m.index), Some(6));
    }

    #[test]
    fn the_best_scoring_phrasing_speaks_for_its_entry_and_the_others_do_no_harm() {
        let p = vec![
            "bei ya gitaa".to_string(),
            "guitar price?".to_string(),
            "??".to_string(),
            String::new(),
        ];
        let index = with_phrasings(&p);
        assert_eq!(index.len(), shop().len());
        assert_eq!(index.best_match("bei ya gitaa").map(|m| m.index), Some(6));
        assert_eq!(
            index
                .best_match("What are your opening hours?")
                .map(|m| m.index),
            Some(2)
        );
        assert_eq!(index.best_match("Do you sell violins?"), None);
    }

    #[test]
    fn phrasings_do_not_make_their_words_common_among_entries() {
        // Ten phrasings of one entry all saying "guitar" leave "guitar" as rare as before.
        let many: Vec<String> = (0..10).map(|i| format!("guitar number {i}")).collect();
        let plain = FaqIndex::build(shop());
        let index = with_phrasings(&many);
        let id = index.terms["guitar"] as usize;
        assert!((index.weights[id] - plain.weights[plain.terms["guitar"] as usize]).abs() < 1e-6);
    }

    #[test]
    fn a_carrying_verb_with_a_destination_asks_for_delivery() {
        assert_eq!(best("can you bring it to Mombasa?"), Some(5));
        assert_eq!(best("can you bring one to my office?"), Some(5));
    }

    #[test]
    fn swahili_verbs_of_wanting_and_knowing_say_nothing_about_the_topic() {
        assert_eq!(best("nikitaka kujua bei ya guitar"), Some(6));
        assert_eq!(best("anaweza kunitumia guitar Kisumu?"), Some(5));
    }

    #[test]
    fn two_known_words_run_together_are_split() {
        assert_eq!(best("guitarprice?"), Some(6));
    }

    #[test]
    fn a_double_letter_written_once_is_corrected_and_a_real_word_is_not() {
        let docs = vec![FaqDoc {
            question: "How much is a dress?",
            answer: "From KES 1,800.",
            category: None,
            canned: false,
            priority: 0,
            phrasings: &[],
        }];
        let index = FaqIndex::build(docs);
        assert_eq!(
            index.best_match("hw much is a dres").map(|m| m.index),
            Some(0)
        );
        let lex = lexicon();
        assert_eq!(index.correct(lex, "after"), None);
    }

    #[test]
    fn a_greeting_word_opening_a_message_greets() {
        assert_eq!(best("Morning"), Some(0));
    }

    #[test]
    fn the_index_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FaqIndex>();
    }
}
