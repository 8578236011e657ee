//! JSON log lines on stdout, one object per line, fields at the top level
//! (span fields such as Lambda's `request_id` included).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
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
    // A program embedding sqsrt may have set up its own subscriber: keep it.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(JsonLines {
            write: |line: &[u8]| {
                let _ = std::io::stdout().lock().write_all(line);
            },
        })
        .try_init();
    log_panics();
    Ok(())
}

/// The JSON-lines layer: `level`, `target`, `timestamp`, the event's fields
/// and the fields of every span it is in (Lambda's `request_id`), all at the
/// top level of one object, written to stdout with one `write` per line.
///
/// Hand-written rather than `json-subscriber` (used before): that crate
/// builds a sorted map per event and was ~2 us of a 10,000-record
/// invocation's per-record cost, the largest part of it; here a span's fields
/// are rendered once, when the span is created, and each line is built in a
/// reused buffer (README, Performance).
struct JsonLines<W> {
    /// Where each finished line goes (stdout; a buffer in tests).
    write: W,
}

/// A span's fields, rendered as `,"key":value` pairs once.
struct SpanFields {
    names: Vec<&'static str>,
    json: String,
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Fn(&[u8]) + Send + Sync + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields {
            names: Vec::new(),
            json: String::new(),
        };
        attrs.record(&mut JsonFields {
            out: &mut fields.json,
            names: Some(&mut fields.names),
        });
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonFields {
                out: &mut fields.json,
                names: Some(&mut fields.names),
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|line| {
            // A log call made while formatting (a field's Debug logging) gets a fresh buffer.
            let mut fresh = String::new();
            let mut borrowed = line.try_borrow_mut();
            let out = borrowed.as_deref_mut().unwrap_or(&mut fresh);
            out.clear();
            let metadata = event.metadata();
            out.push_str("{\"level\":\"");
            out.push_str(metadata.level().as_str());
            out.push_str("\",\"target\":");
            push_json_str(out, metadata.target());
            out.push_str(",\"timestamp\":\"");
            let _ = SystemTime.format_time(&mut Writer::new(out));
            out.push('"');
            event.record(&mut JsonFields {
                out: &mut *out,
                names: None,
            });
            if let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(fields) = span.extensions().get::<SpanFields>() {
                        if fields
                            .names
                            .iter()
                            .any(|name| metadata.fields().field(name).is_some())
                        {
                            // The event's own field of that name wins: no duplicate keys.
                            let mut filtered = String::new();
                            for (name, pair) in fields.names.iter().zip(split_pairs(&fields.json)) {
                                if metadata.fields().field(name).is_none() {
                                    filtered.push_str(pair);
                                }
                            }
                            out.push_str(&filtered);
                        } else {
                            out.push_str(&fields.json);
                        }
                    }
                }
            }
            out.push_str("}\n");
            // One write per line: a killed process loses no finished line.
            (self.write)(out.as_bytes());
        });
    }
}

/// The `,"key":value` pairs of `json` as written by [`JsonFields`] (each
/// starts at a comma outside any string).
fn split_pairs(json: &str) -> Vec<&str> {
    let mut pairs = Vec::new();
    let (mut start, mut in_string, mut escaped) = (0, false, false);
    for (i, c) in json.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ',' if !in_string && i > start => {
                pairs.push(&json[start..i]);
                start = i;
            }
            _ => {}
        }
    }
    if start < json.len() {
        pairs.push(&json[start..]);
    }
    pairs
}

/// Writes visited fields as `,"key":value`.
struct JsonFields<'a> {
    out: &'a mut String,
    names: Option<&'a mut Vec<&'static str>>,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        if let Some(names) = self.names.as_deref_mut() {
            names.push(field.name());
        }
        self.out.push(',');
        push_json_str(self.out, field.name());
        self.out.push(':');
    }
}

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.out, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.out, "{value}");
        } else {
            push_json_str(self.out, &value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.key(field);
        self.out.push('"');
        let _ = write!(Escaping(self.out), "{value:?}");
        self.out.push('"');
    }
}

/// `value` as a JSON string.
fn push_json_str(out: &mut String, value: &str) {
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

/// Appends `value` with JSON string escaping (quote, backslash, control
/// characters); the rest is copied in runs.
fn escape_into(out: &mut String, value: &str) {
    let mut run = 0;
    for (i, b) in value.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[run..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        run = i + 1;
    }
    out.push_str(&value[run..]);
}

/// A `fmt::Write` that JSON-escapes what is written through it, so `Debug`
/// and `Display` values are escaped without an intermediate string.
struct Escaping<'a>(&'a mut String);

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
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

    fn capture(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = std::sync::Arc::clone(&buffer);
        let subscriber = tracing_subscriber::registry().with(JsonLines {
            write: move |line: &[u8]| sink.lock().unwrap().extend_from_slice(line),
        });
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n'), "{text}");
        text.lines()
            .map(|line| {
                assert_eq!(
                    line.matches("\"message_id\":").count(),
                    usize::from(line.contains("message_id")),
                    "no duplicate keys: {line}"
                );
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
            })
            .collect()
    }

    #[test]
    fn lines_are_json_objects_with_span_fields_at_the_top_level() {
        let tricky =
            "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} unicode \u{e9}\u{1f980}";
        let lines = capture(|| {
            let span =
                tracing::info_span!("invocation", request_id = "req-1", message_id = "from-span");
            let _entered = span.enter();
            tracing::info!(message_id = "m-1", outcome = "success", n = -3_i64, big = u64::MAX, ok = true, ratio = 0.5, nan = f64::NAN, text = tricky, debug = ?tricky, "Message {} processed.", "one");
            tracing::warn!("No fields.");
        });
        assert_eq!(lines.len(), 2);
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], module_path!());
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(line["message"], "Message one processed.");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["message_id"], "m-1", "the event's own field wins");
        assert_eq!(line["outcome"], "success");
        assert_eq!(line["n"], -3);
        assert_eq!(line["big"], u64::MAX);
        assert_eq!(line["ok"], true);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["nan"], "NaN");
        assert_eq!(line["text"], tricky);
        assert_eq!(line["debug"], format!("{tricky:?}"));
        assert_eq!(lines[1]["message"], "No fields.");
        assert_eq!(lines[1]["request_id"], "req-1");
        assert_eq!(lines[1]["message_id"], "from-span");
    }

    #[test]
    fn escaping_matches_serde_json() {
        let mut all_controls = String::new();
        for c in 0u8..0x20 {
            all_controls.push(char::from(c));
        }
        for value in [
            "",
            "plain",
            all_controls.as_str(),
            "\"\\\"",
            "\u{7f}\u{80}\u{2028}\u{ffff}",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, value);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn invalid_filter_is_named() {
        assert!(init("sqsrt=lots").unwrap_err().contains("sqsrt=lots"));
    }
}
