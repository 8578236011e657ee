//! JSON log lines on stdout, one object per line, fields at the top level
//! (span fields such as Lambda's `request_id` included).
//!
//! Layout: this file installs the subscriber; `layer` is the layer itself
//! (flattening span fields into each line, batching the outcome lines of a
//! Lambda invocation into one write); `outcome` renders those outcome lines
//! in one pass when this module's subscriber is installed; `json` writes
//! field values and escapes strings; `timestamp` formats the time of each
//! line.

mod json;
mod layer;
mod outcome;
mod timestamp;

use std::io::Write as _;

use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use self::layer::JsonLines;

/// The log filter in force: the flag or `SQSRT_LOG_LEVEL`, else `RUST_LOG`,
/// else (Lambda mode) `AWS_LAMBDA_LOG_LEVEL`, else `info`.
#[must_use]
pub fn resolve_filter(
    flag: Option<&str>,
    rust_log: Option<&str>,
    lambda_log_level: Option<&str>,
) -> String {
    if let Some(f) = flag.or(rust_log).filter(|f| !f.trim().is_empty()) {
        return f.to_owned();
    }
    // Lambda's advanced logging controls use TRACE..FATAL.
    match lambda_log_level.map(str::to_ascii_lowercase).as_deref() {
        Some(level @ ("trace" | "debug" | "info" | "warn" | "error")) => level.to_owned(),
        Some("fatal") => "error".to_owned(),
        _ => "info".to_owned(),
    }
}

/// Installs the JSON subscriber with `filter`: comma-separated `level` and
/// `target=level` directives (`info,aws_smithy_runtime=debug`). Lines are written as they
/// happen (stdout is line-buffered), so a killed process loses no finished
/// line. Does nothing if the program already installed a subscriber.
///
/// # Errors
///
/// When `filter` is not a valid `tracing` filter.
pub fn init(filter: &str) -> Result<(), String> {
    let filter: Targets = filter.parse().map_err(|e| {
        format!(
            "invalid log filter {filter:?} (want `level` or `target=level`, comma-separated): {e}"
        )
    })?;
    // A program embedding sqsrt may have set up its own subscriber: keep it.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(JsonLines {
            write: write_stdout,
        })
        .with(outcome::writer(write_stdout))
        .try_init();
    Ok(())
}

fn write_stdout(line: &[u8]) {
    let _ = std::io::stdout().lock().write_all(line);
}

/// sqsrt's JSON-lines layer writing each finished line (or, inside a
/// [`sqsrt_lambda::OUTCOME_LINES_SPAN`], each batch of lines) with `write`: what
/// [`init`] installs with stdout, for programs that build their own
/// subscriber and for the logging bench (`cargo bench -p sqsrt --bench logging`).
pub fn json_layer<S>(write: impl Fn(&[u8]) + Send + Sync + 'static) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    JsonLines { write }
}

/// The outcome-line writer [`init`] adds beside [`json_layer`]: a Lambda
/// invocation's outcome lines rendered in one pass, the bytes the JSON layer
/// would write for them but the timestamp (one per invocation), given to
/// `write`. Add both layers, with the same `write`, to a subscriber whose
/// root is `tracing_subscriber::Registry` (the lines carry the invocation
/// span's fields, read from it).
pub fn outcome_line_writer(
    write: impl Fn(&[u8]) + Send + Sync + 'static,
) -> sqsrt_lambda::OutcomeLineWriter {
    outcome::writer(write)
}

/// Panics become one JSON log line (the engine catches them per message and
/// reports a retry); the default hook would print a multi-line text trace.
pub(crate) fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = sqsrt_core::panic_message(info.payload());
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        tracing::error!(panic = %payload, location = %location, "Panic caught.");
    }));
}

#[cfg(test)]
mod tests;
