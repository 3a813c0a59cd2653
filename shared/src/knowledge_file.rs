//! Reading a tenant's knowledge from a file: CSV with the header
//! `question,answer,category,priority,data_type` and an optional `phrasings` column (other ways
//! customers ask the question, separated by `|`), or JSON (an array) / JSONL (one object a
//! line) with the same fields (`phrasings` an array of strings). A bad row is reported with its
//! line and nothing is imported.

use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;

use crate::domain::DataType;
use crate::store::NewEntry;

/// Why a knowledge file was refused. `line` is 1-based and counts the header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KnowledgeFileError {
    #[error("line {line}: {reason}")]
    Row { line: u64, reason: String },
    #[error("{0}")]
    File(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    question: Option<String>,
    answer: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    priority: Option<serde_json::Value>,
    #[serde(default)]
    data_type: Option<String>,
    #[serde(default)]
    phrasings: Option<serde_json::Value>,
}

/// A parsed knowledge file: the entries, and each entry's phrasings (`phrasings[i]` belongs to
/// `entries[i]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KnowledgeFile {
    pub entries: Vec<NewEntry>,
    pub phrasings: Vec<Vec<String>>,
}

const MAX_QUESTION: usize = 1_000;
const MAX_ANSWER: usize = 4_096;
/// The database's limit on one phrasing (0017).
pub const MAX_PHRASING: usize = 500;
/// More phrasings than this for one entry is a file built wrong, not a knowledge base.
const MAX_PHRASINGS_PER_ENTRY: usize = 100;
/// Separates phrasings in a CSV cell.
const CSV_PHRASING_SEPARATOR: char = '|';

/// Trims, drops empty ones and repeats (case-insensitively, the question included) and checks
/// lengths; `None` is a reason to refuse the row.
fn clean_phrasings(
    question: &str,
    raw: Vec<String>,
    row: &dyn Fn(String) -> KnowledgeFileError,
) -> Result<Vec<String>, KnowledgeFileError> {
    let mut seen: HashSet<String> = HashSet::from([question.to_lowercase()]);
    let mut out = Vec::new();
    for p in raw {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        if p.chars().count() > MAX_PHRASING {
            return Err(row(format!(
                "a phrasing is longer than {MAX_PHRASING} characters"
            )));
        }
        if seen.insert(p.to_lowercase()) {
            out.push(p.to_owned());
        }
    }
    if out.len() > MAX_PHRASINGS_PER_ENTRY {
        return Err(row(format!(
            "more than {MAX_PHRASINGS_PER_ENTRY} phrasings for one question"
        )));
    }
    Ok(out)
}

fn entry_from_raw(raw: RawEntry, line: u64) -> Result<(NewEntry, Vec<String>), KnowledgeFileError> {
    let row = |reason: String| KnowledgeFileError::Row { line, reason };
    let phrasings: Vec<String> = match raw.phrasings {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(s)) => {
            s.split(CSV_PHRASING_SEPARATOR).map(str::to_owned).collect()
        }
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(row("phrasings must be strings".into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(row("phrasings must be a list of strings".into())),
    };
    let question = raw.question.unwrap_or_default().trim().to_owned();
    let answer = raw.answer.unwrap_or_default().trim().to_owned();
    if question.is_empty() {
        return Err(row("question is empty".into()));
    }
    if answer.is_empty() {
        return Err(row("answer is empty".into()));
    }
    if question.chars().count() > MAX_QUESTION {
        return Err(row(format!(
            "question is longer than {MAX_QUESTION} characters"
        )));
    }
    if answer.chars().count() > MAX_ANSWER {
        return Err(row(format!(
            "answer is longer than {MAX_ANSWER} characters (WhatsApp's limit)"
        )));
    }
    let priority = match raw.priority {
        None | Some(serde_json::Value::Null) => 0,
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| row("priority must be a whole number".into()))?,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => 0,
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| row("priority must be a whole number".into()))?,
        Some(_) => return Err(row("priority must be a whole number".into())),
    };
    let data_type = DataType::parse(raw.data_type.as_deref().unwrap_or("faq"))
        .map_err(|e| row(e.to_string()))?;
    let category = raw
        .category
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    let phrasings = clean_phrasings(&question, phrasings, &row)?;
    Ok((
        NewEntry {
            question,
            answer,
            category,
            priority,
            data_type,
        },
        phrasings,
    ))
}

/// Checks one entry typed into a form (the dashboard's Knowledge page) with the same rules as
/// a file's row; the error names what is wrong.
pub fn parse_entry(
    question: &str,
    answer: &str,
    category: &str,
    priority: &str,
    data_type: &str,
) -> Result<NewEntry, String> {
    let raw = RawEntry {
        question: Some(question.to_owned()),
        answer: Some(answer.to_owned()),
        category: Some(category.to_owned()),
        priority: Some(serde_json::Value::String(priority.to_owned())),
        data_type: Some(data_type.to_owned()).filter(|d| !d.trim().is_empty()),
        phrasings: None,
    };
    entry_from_raw(raw, 1)
        .map(|(entry, _)| entry)
        .map_err(|e| match e {
            KnowledgeFileError::Row { reason, .. } => reason,
            KnowledgeFileError::File(reason) => reason,
        })
}

impl KnowledgeFile {
    fn push(&mut self, (entry, phrasings): (NewEntry, Vec<String>)) {
        self.entries.push(entry);
        self.phrasings.push(phrasings);
    }

    /// How many phrasings the file holds.
    pub fn phrasing_count(&self) -> usize {
        self.phrasings.iter().map(Vec::len).sum()
    }
}

/// Parses CSV text (entries only; [`parse_csv_file`] keeps the phrasings).
pub fn parse_csv(text: &str) -> Result<Vec<NewEntry>, KnowledgeFileError> {
    parse_csv_file(text).map(|f| f.entries)
}

/// Parses CSV text with its phrasings.
pub fn parse_csv_file(text: &str) -> Result<KnowledgeFile, KnowledgeFileError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| KnowledgeFileError::Row {
            line: 1,
            reason: format!("unreadable header: {e}"),
        })?
        .clone();
    let known = [
        "question",
        "answer",
        "category",
        "priority",
        "data_type",
        "phrasings",
    ];
    for h in headers.iter() {
        if !known.contains(&h) {
            return Err(KnowledgeFileError::Row {
                line: 1,
                reason: format!(
                    "unknown column `{h}` (expected question,answer,category,priority,data_type[,phrasings])"
                ),
            });
        }
    }
    for required in ["question", "answer"] {
        if !headers.iter().any(|h| h == required) {
            return Err(KnowledgeFileError::Row {
                line: 1,
                reason: format!("missing column `{required}`"),
            });
        }
    }
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (qi, ai, ci, pi, di, phi) = (
        col("question"),
        col("answer"),
        col("category"),
        col("priority"),
        col("data_type"),
        col("phrasings"),
    );
    let mut out = KnowledgeFile::default();
    for record in reader.records() {
        let record = record.map_err(|e| KnowledgeFileError::Row {
            line: e.position().map(|p| p.line()).unwrap_or(0),
            reason: match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => {
                    format!("expected {expected_len} fields, found {len}")
                }
                _ => "unreadable row (check quoting)".to_owned(),
            },
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let get = |i: Option<usize>| i.and_then(|i| record.get(i)).map(str::to_owned);
        let raw = RawEntry {
            question: get(qi),
            answer: get(ai),
            category: get(ci),
            priority: get(pi).map(serde_json::Value::String),
            data_type: get(di),
            phrasings: get(phi).map(serde_json::Value::String),
        };
        out.push(entry_from_raw(raw, line)?);
    }
    check_duplicates(&out.entries, |i| i as u64 + 2)?;
    Ok(out)
}

/// Parses a JSON array, or JSONL (one object per line); entries only.
pub fn parse_json(text: &str) -> Result<Vec<NewEntry>, KnowledgeFileError> {
    parse_json_file(text).map(|f| f.entries)
}

/// Parses a JSON array, or JSONL (one object per line), with the phrasings.
pub fn parse_json_file(text: &str) -> Result<KnowledgeFile, KnowledgeFileError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| KnowledgeFileError::Row {
                line: e.line() as u64,
                reason: format!("invalid JSON: {}", e.classify_name()),
            })?;
        // Line numbers of array elements are not kept by serde; report the element's position.
        let mut out = KnowledgeFile::default();
        for (i, v) in values.into_iter().enumerate() {
            let raw: RawEntry = serde_json::from_value(v).map_err(|e| KnowledgeFileError::Row {
                line: i as u64 + 1,
                reason: format!("entry {}: {e}", i + 1),
            })?;
            out.push(entry_from_raw(raw, i as u64 + 1)?);
        }
        check_duplicates(&out.entries, |i| i as u64 + 1)?;
        Ok(out)
    } else {
        let mut out = KnowledgeFile::default();
        let mut lines = Vec::new();
        for (i, l) in text.lines().enumerate() {
            let line = i as u64 + 1;
            if l.trim().is_empty() {
                continue;
            }
            let raw: RawEntry = serde_json::from_str(l).map_err(|e| KnowledgeFileError::Row {
                line,
                reason: format!("invalid JSON object: {e}"),
            })?;
            out.push(entry_from_raw(raw, line)?);
            lines.push(line);
        }
        check_duplicates(&out.entries, |i| lines[i])?;
        Ok(out)
    }
}

/// Reads and parses a file, by its extension; entries only.
pub fn read_knowledge_file(path: &Path) -> Result<Vec<NewEntry>, KnowledgeFileError> {
    read_knowledge(path).map(|f| f.entries)
}

/// Reads and parses a file, by its extension, with the phrasings.
pub fn read_knowledge(path: &Path) -> Result<KnowledgeFile, KnowledgeFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        KnowledgeFileError::File(format!("cannot read {}: {}", path.display(), e.kind()))
    })?;
    let entries = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => parse_csv_file(&text)?,
        Some("json") | Some("jsonl") | Some("ndjson") => parse_json_file(&text)?,
        _ => {
            return Err(KnowledgeFileError::File(
                "the file must end in .csv, .json or .jsonl".into(),
            ))
        }
    };
    if entries.entries.is_empty() {
        return Err(KnowledgeFileError::File("the file has no entries".into()));
    }
    Ok(entries)
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of file",
        }
    }
}

fn check_duplicates(
    entries: &[NewEntry],
    line_of: impl Fn(usize) -> u64,
) -> Result<(), KnowledgeFileError> {
    let mut seen = HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        if !seen.insert((e.data_type.as_str(), e.question.as_str())) {
            return Err(KnowledgeFileError::Row {
                line: line_of(i),
                reason: "the same question appears twice in this file".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_with_quoted_commas_and_defaults_parses() {
        let csv = "question,answer,category,priority,data_type\n\
                   \"What are your hours?\",\"Mon-Sat, 9 AM-6 PM\",hours,10,faq\n\
                   Hi,Hello! How can we help?,,,canned\n";
        let entries = parse_csv(csv).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].answer, "Mon-Sat, 9 AM-6 PM");
        assert_eq!(entries[0].priority, 10);
        assert_eq!(entries[1].data_type.as_str(), "canned");
        assert_eq!(entries[1].category, None);
    }

    #[test]
    fn a_malformed_csv_row_names_its_line() {
        let csv = "question,answer,category,priority,data_type\nA?,B,c,1,faq\nC?,D,e,high,faq\n";
        assert_eq!(
            parse_csv(csv).unwrap_err(),
            KnowledgeFileError::Row {
                line: 3,
                reason: "priority must be a whole number".into()
            }
        );
        let csv = "question,answer,category,priority,data_type\nA?,B,c,1,faq\n,D,e,1,faq\n";
        assert!(matches!(
            parse_csv(csv).unwrap_err(),
            KnowledgeFileError::Row { line: 3, .. }
        ));
        let csv = "question,answer,category,priority,data_type\nA?,B,c,1\n";
        assert!(matches!(
            parse_csv(csv).unwrap_err(),
            KnowledgeFileError::Row { line: 2, .. }
        ));
    }

    #[test]
    fn an_unknown_csv_column_is_refused_on_the_header_line() {
        let err = parse_csv("question,answer,colour\nA?,B,red\n").unwrap_err();
        assert!(matches!(err, KnowledgeFileError::Row { line: 1, .. }));
    }

    #[test]
    fn jsonl_reports_the_bad_line() {
        let text = "{\"question\":\"A?\",\"answer\":\"B\"}\n\n{\"question\":\"C?\"}\n";
        assert_eq!(
            parse_json(text).unwrap_err(),
            KnowledgeFileError::Row {
                line: 3,
                reason: "answer is empty".into()
            }
        );
    }

    #[test]
    fn a_json_array_with_numbers_parses() {
        let text =
            r#"[{"question":"A?","answer":"B","priority":5,"data_type":"canned","category":"x"}]"#;
        let e = parse_json(text).unwrap();
        assert_eq!(e[0].priority, 5);
        assert!(e[0].data_type.is_canned());
    }

    #[test]
    fn a_csv_phrasings_column_is_split_on_bars_and_cleaned() {
        let csv = "question,answer,phrasings\n\
                   How much is a guitar?,From KES 8500,bei ya guitar? | HOW MUCH IS A GUITAR? | gitaa ni ngapi ||bei ya GUITAR?\n\
                   Do you deliver?,Yes,\n";
        let f = parse_csv_file(csv).unwrap();
        assert_eq!(f.phrasings[0], ["bei ya guitar?", "gitaa ni ngapi"]);
        assert!(f.phrasings[1].is_empty());
        assert_eq!(f.phrasing_count(), 2);
    }

    #[test]
    fn a_file_without_phrasings_is_still_valid() {
        let f =
            parse_csv_file("question,answer,category,priority,data_type\nA?,B,c,1,faq\n").unwrap();
        assert_eq!(f.entries.len(), 1);
        assert_eq!(f.phrasings, [Vec::<String>::new()]);
    }

    #[test]
    fn json_phrasings_are_an_array_of_strings() {
        let f =
            parse_json_file(r#"[{"question":"A?","answer":"B","phrasings":["a ?","b"]}]"#).unwrap();
        assert_eq!(f.phrasings[0], ["a ?", "b"]);
        let err = parse_json_file("{\"question\":\"A?\",\"answer\":\"B\",\"phrasings\":[1]}\n")
            .unwrap_err();
        assert_eq!(
            err,
            KnowledgeFileError::Row {
                line: 1,
                reason: "phrasings must be strings".into()
            }
        );
        let long = "x".repeat(MAX_PHRASING + 1);
        let text = format!("question,answer,phrasings\nA?,B,ok|{long}\n");
        assert!(matches!(
            parse_csv_file(&text).unwrap_err(),
            KnowledgeFileError::Row { line: 2, .. }
        ));
    }

    #[test]
    fn a_question_twice_in_one_file_is_refused() {
        let csv = "question,answer\nA?,B\nA?,C\n";
        assert!(matches!(
            parse_csv(csv).unwrap_err(),
            KnowledgeFileError::Row { line: 3, .. }
        ));
    }
}
