//! One-round-trip calls that survive a transaction-mode pooler.
//!
//! sqlx sends a parameterised query as Parse/Describe/Sync, then Bind/Execute/Sync. Outside
//! an explicit transaction, PgBouncer/Supavisor in transaction mode may hand the second half
//! to another server connection, where the unnamed statement does not exist. A query
//! without parameters goes as one simple-protocol `Query` message instead: one round trip,
//! no prepared statement at all. The hot path therefore calls its SQL functions with
//! literals built here from typed values, and everything else runs in explicit transactions.

use anyhow::{bail, Context as _};
use sqlx::PgExecutor;
use sqlx::Row;

/// Quotes text as an escape-string literal, `E'...'`, doubling backslashes and quotes, which
/// is safe whatever `standard_conforming_strings` is. NUL cannot be stored in text, so it is
/// refused rather than silently cut.
pub fn quote_literal(s: &str) -> anyhow::Result<String> {
    if s.contains('\0') {
        bail!("text contains a NUL character");
    }
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

/// The statement that returns `expr` as JSON text, for [`fetch_json`].
/// `expr` must be built only from our own SQL and literals made by [`quote_literal`] or
/// typed values (UUIDs, validated digit strings).
pub fn json_select(expr: &str) -> String {
    // The role switch comes first so a login role without INHERIT (the recommended Lambda
    // role) can reach the schema; both statements run in one implicit transaction.
    format!("set local role alphadome_app; select ({expr})::text as doc")
}

/// Round trips made through [`fetch_json`] since start (the hot path makes no others);
/// read by tests and benchmarks to hold the per-message budget.
pub static ROUND_TRIPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs a statement made by [`json_select`] as one simple query and parses the JSON.
pub async fn fetch_json<'c>(
    exec: impl PgExecutor<'c>,
    sql: &'c str,
) -> anyhow::Result<Option<serde_json::Value>> {
    ROUND_TRIPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let row = sqlx::raw_sql(sql)
        .fetch_one(exec)
        .await
        .context("calling the database")?;
    let text: Option<String> = row.try_get("doc").context("reading the result")?;
    match text {
        None => Ok(None),
        Some(t) => Ok(Some(
            serde_json::from_str(&t).context("decoding the result")?,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_doubled_inside_an_escape_string() {
        assert_eq!(quote_literal("it's").unwrap(), "E'it''s'");
        assert_eq!(
            quote_literal(r"a\'); drop table x; --").unwrap(),
            r"E'a\\''); drop table x; --'"
        );
        assert!(quote_literal("a\0b").is_err());
    }
}
