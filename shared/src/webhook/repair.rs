//! Repairs for payload bytes that Meta may send but that neither serde_json nor Postgres can
//! hold. Run only after parsing failed, so a well-formed delivery costs nothing.

/// Replaces every `\uXXXX` escape of an unpaired UTF-16 surrogate inside JSON strings with
/// `\ufffd`. Returns `None` when there was nothing to replace (the parse error lies elsewhere).
pub(crate) fn replace_lone_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut in_string = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if !in_string {
            in_string = b == b'"';
            out.push(b);
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                out.push(b);
                i += 1;
            }
            b'\\' if body.get(i + 1) == Some(&b'u') => {
                let Some(unit) = hex4(body, i + 2) else {
                    // Not a valid escape: leave it for the parser to report.
                    out.push(b);
                    i += 1;
                    continue;
                };
                let high = (0xD800..=0xDBFF).contains(&unit);
                let low = (0xDC00..=0xDFFF).contains(&unit);
                let paired_low = high
                    && body.get(i + 6) == Some(&b'\\')
                    && body.get(i + 7) == Some(&b'u')
                    && hex4(body, i + 8).is_some_and(|u| (0xDC00..=0xDFFF).contains(&u));
                if paired_low {
                    out.extend_from_slice(&body[i..i + 12]);
                    i += 12;
                } else if high || low {
                    out.extend_from_slice(b"\\ufffd");
                    changed = true;
                    i += 6;
                } else {
                    out.extend_from_slice(&body[i..i + 6]);
                    i += 6;
                }
            }
            b'\\' => {
                // Any other escape: copy it whole, so `\\` followed by `u` is not misread.
                out.extend_from_slice(&body[i..(i + 2).min(body.len())]);
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

fn hex4(body: &[u8], at: usize) -> Option<u16> {
    let digits = body.get(at..at + 4)?;
    let s = std::str::from_utf8(digits).ok()?;
    u16::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(s: &str) -> Option<String> {
        replace_lone_surrogates(s.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn a_lone_high_surrogate_becomes_the_replacement_character() {
        assert_eq!(fix(r#"{"a":"hi \ud83d"}"#).unwrap(), r#"{"a":"hi \ufffd"}"#);
        let v: serde_json::Value =
            serde_json::from_str(&fix(r#"{"a":"x\udc00y"}"#).unwrap()).unwrap();
        assert_eq!(v["a"], "x\u{fffd}y");
    }

    #[test]
    fn a_proper_pair_and_an_escaped_backslash_are_left_alone() {
        assert_eq!(fix(r#"{"a":"\ud83d\ude00"}"#), None);
        assert_eq!(fix(r#"{"a":"\\ud83d"}"#), None);
        assert_eq!(fix(r#"{"a":"\u00e9"}"#), None);
    }
}
