//! Reading a secret from a file or stdin (`-`): secrets never travel on the command line,
//! where they would land in shell history and in `ps`.

use anyhow::{bail, Context};
use secrecy::SecretString;
use std::io::Read;
use std::path::Path;

/// Reads one secret; surrounding whitespace (the file's final newline) is dropped.
pub fn read_secret(path: &Path, what: &str) -> anyhow::Result<SecretString> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .with_context(|| format!("reading the {what} from stdin"))?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the {what} file {}: {}",
                path.display(),
                e.kind()
            )
        })?;
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        bail!("the {what} file {} is empty", path.display());
    }
    if trimmed.contains(char::is_whitespace) {
        bail!(
            "the {what} file {} must hold the secret alone, on one line",
            path.display()
        );
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

pub fn read_optional(
    path: &Option<std::path::PathBuf>,
    what: &str,
) -> anyhow::Result<Option<SecretString>> {
    path.as_deref().map(|p| read_secret(p, what)).transpose()
}
