//! Typo tolerance: a deletion-neighbourhood index (the SymSpell idea) that finds the known
//! words within one edit of a misspelt word without scanning the whole vocabulary.

use std::collections::HashMap;

/// Known words indexed by themselves and by every one-character deletion of themselves.
#[derive(Debug, Default)]
pub(crate) struct DeleteIndex {
    words: Vec<String>,
    map: HashMap<String, Vec<u32>>,
    /// Words by their consonant skeleton, for shorthand that drops vowels ("stdnts", "snd").
    skeletons: HashMap<String, Vec<u32>>,
}

/// A word's first letter and its following consonants, doubled letters once: "students" →
/// "stdnts", "office" → "ofc", "send" → "snd".
pub(crate) fn skeleton(w: &str) -> String {
    let mut out = String::with_capacity(w.len());
    for (i, c) in w.chars().enumerate() {
        if i > 0 && matches!(c, 'a' | 'e' | 'i' | 'o' | 'u') {
            continue;
        }
        if !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

/// Whether a token looks like vowel-less shorthand: three letters or more, none of them a
/// vowel after the first.
pub(crate) fn is_vowelless(w: &str) -> bool {
    w.len() >= 3
        && w.bytes().all(|b| b.is_ascii_alphabetic())
        && !w
            .bytes()
            .skip(1)
            .any(|b| matches!(b, b'a' | b'e' | b'i' | b'o' | b'u'))
}

impl DeleteIndex {
    pub(crate) fn build(words: impl IntoIterator<Item = String>) -> Self {
        let mut list: Vec<String> = words.into_iter().collect();
        list.sort();
        list.dedup();
        let mut map: HashMap<String, Vec<u32>> = HashMap::new();
        let mut skeletons: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, w) in list.iter().enumerate() {
            let i = i as u32;
            map.entry(w.clone()).or_default().push(i);
            let sk = skeleton(w);
            // A skeleton as long as the word is no abbreviation of it.
            if sk.len() < w.len() && sk.len() >= 3 {
                skeletons.entry(sk).or_default().push(i);
            }
            for_each_deletion(w, |d| {
                let e = map.entry(d.to_string()).or_default();
                if e.last() != Some(&i) {
                    e.push(i);
                }
            });
        }
        DeleteIndex {
            words: list,
            map,
            skeletons,
        }
    }

    /// The known words whose consonant skeleton `w` is.
    pub(crate) fn by_skeleton(&self, w: &str) -> Vec<&str> {
        self.skeletons
            .get(w)
            .map(|ids| {
                ids.iter()
                    .map(|&i| self.words[i as usize].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The known word closest to `w` within one edit (insertion, deletion, substitution or
    /// transposition). Several equally close candidates are fine only when `same` says they
    /// mean the same thing ("gita", "gitaa" and "guitar" for "gitar"); otherwise it is a guess.
    pub(crate) fn correct(&self, w: &str, same: impl Fn(&str, &str) -> bool) -> Option<&str> {
        let found = self.candidates(w);
        let (first, rest) = found.split_first()?;
        rest.iter().all(|o| same(first, o)).then_some(*first)
    }

    /// Every known word at the smallest distance (at most one edit) from `w`.
    pub(crate) fn candidates(&self, w: &str) -> Vec<&str> {
        if self.words.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<(u32, u32)> = Vec::new();
        let mut consider = |ids: &[u32]| {
            for &id in ids {
                if found.iter().any(|f| f.1 == id) {
                    continue;
                }
                let cand = &self.words[id as usize];
                if cand == w {
                    continue;
                }
                let d = osa_distance(w, cand, 1);
                if d <= 1 {
                    found.push((d, id));
                }
            }
        };
        if let Some(ids) = self.map.get(w) {
            consider(ids);
        }
        for_each_deletion(w, |d| {
            if let Some(ids) = self.map.get(d) {
                consider(ids);
            }
        });
        let Some(best_d) = found.iter().map(|f| f.0).min() else {
            return Vec::new();
        };
        found
            .iter()
            .filter(|f| f.0 == best_d)
            .map(|f| self.words[f.1 as usize].as_str())
            .collect()
    }
}

fn for_each_deletion(w: &str, mut f: impl FnMut(&str)) {
    let mut buf = String::with_capacity(w.len());
    let idx: Vec<usize> = w.char_indices().map(|(i, _)| i).collect();
    for (k, &start) in idx.iter().enumerate() {
        let end = idx.get(k + 1).copied().unwrap_or(w.len());
        buf.clear();
        buf.push_str(&w[..start]);
        buf.push_str(&w[end..]);
        f(&buf);
    }
}

/// Optimal-string-alignment distance, giving up early once it exceeds `max`.
pub(crate) fn osa_distance(a: &str, b: &str, max: u32) -> u32 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if (a.len() as i64 - b.len() as i64).unsigned_abs() as u32 > max {
        return max + 1;
    }
    let (n, m) = (a.len(), b.len());
    let mut prev2 = vec![0u32; m + 1];
    let mut prev: Vec<u32> = (0..=m as u32).collect();
    let mut cur = vec![0u32; m + 1];
    for i in 1..=n {
        cur[0] = i as u32;
        let mut row_min = cur[0];
        for j in 1..=m {
            let cost = u32::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return max + 1;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transposed_letter_is_one_edit() {
        assert_eq!(osa_distance("repiar", "repair", 2), 1);
    }

    #[test]
    fn vowelless_shorthand_finds_its_word_by_skeleton() {
        let idx = DeleteIndex::build(["students".to_string(), "office".to_string()]);
        assert_eq!(idx.by_skeleton("stdnts"), ["students"]);
        assert_eq!(idx.by_skeleton("ofc"), ["office"]);
        assert!(is_vowelless("stdnts") && !is_vowelless("msa") && !is_vowelless("hw"));
    }

    #[test]
    fn a_dropped_letter_is_corrected() {
        let idx = DeleteIndex::build(["guitar".to_string(), "keyboard".to_string()]);
        assert_eq!(idx.correct("gitar", |a, b| a == b), Some("guitar"));
        assert_eq!(idx.correct("keybord", |a, b| a == b), Some("keyboard"));
        assert_eq!(idx.correct("drums", |a, b| a == b), None);
    }
}
