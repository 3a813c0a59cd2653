//! Logging set-up: JSON lines in Lambda (CloudWatch parses them), compact text on a terminal.
//! What may appear in a log line is decided where the line is written: ids, counts, outcomes
//! and masked numbers only — never message text, full phone numbers, tokens or keys.

use tracing_subscriber::EnvFilter;

/// Output format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs the global subscriber once; later calls are ignored (tests call it freely).
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// A subscriber with the Lambda functions' JSON format (the settings of [`init`]) writing to
/// `writer`, for measuring what the functions log (tests: log volume per message).
pub fn json_subscriber<W>(filter: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_target(false)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_writer(writer)
        .finish()
}
