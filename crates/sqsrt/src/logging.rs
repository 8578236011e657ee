//! JSON log lines on stdout, one object per line, fields at the top level
//! (span fields such as Lambda's `request_id` included).

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    let mut layer = json_subscriber::JsonLayer::stdout();
    layer.with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime);
    layer.with_level("level");
    layer.with_target("target");
    layer.with_flattened_event();
    layer.with_top_level_flattened_span_list();
    // A program embedding sqsrt may have set up its own subscriber: keep it.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    log_panics();
    Ok(())
}

/// Panics become one JSON log line (the engine catches them per message and
/// reports a retry); the default hook would print a multi-line text trace.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = sqsrt_core::panic_message(info.payload());
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        tracing::error!(panic = %payload, location = %location, "Panic caught.");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_rust_log_beats_lambda_level() {
        assert_eq!(
            resolve_filter(Some("debug"), Some("warn"), Some("ERROR")),
            "debug"
        );
        assert_eq!(resolve_filter(None, Some("warn"), Some("ERROR")), "warn");
        assert_eq!(resolve_filter(None, None, Some("DEBUG")), "debug");
        assert_eq!(resolve_filter(None, None, Some("FATAL")), "error");
        assert_eq!(resolve_filter(None, None, Some("bogus")), "info");
        assert_eq!(resolve_filter(None, None, None), "info");
    }

    #[test]
    fn invalid_filter_is_named() {
        assert!(init("sqsrt=lots").unwrap_err().contains("sqsrt=lots"));
    }
}
