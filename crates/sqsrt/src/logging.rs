//! JSON log lines on stdout, one object per line, fields at the top level
//! (span fields such as Lambda's `request_id` included).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::Targets;
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
    Ok(())
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
        // A span's fields changed: the batch's rendered scope may be stale.
        BATCH.with(|batch| {
            if let Ok(mut batch) = batch.try_borrow_mut() {
                batch.scope = None;
            }
        });
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonFields {
                out: &mut fields.json,
                names: Some(&mut fields.names),
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if is_log_batch(id, &ctx) {
            // The scope's span fields, rendered once for the batch's lines.
            let mut scope = ScopeFields {
                span: id.clone(),
                fields: SpanFields {
                    names: Vec::new(),
                    json: String::new(),
                },
            };
            if let Some(spans) = ctx.span_scope(id) {
                for span in spans.from_root() {
                    if let Some(fields) = span.extensions().get::<SpanFields>() {
                        scope.fields.names.extend_from_slice(&fields.names);
                        scope.fields.json.push_str(&fields.json);
                    }
                }
            }
            BATCH.with(|batch| {
                let mut batch = batch.borrow_mut();
                batch.depth += 1;
                batch.scope = Some(scope);
            });
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if is_log_batch(id, &ctx) {
            BATCH.with(|batch| {
                let mut batch = batch.borrow_mut();
                batch.depth = batch.depth.saturating_sub(1);
                batch.scope = None;
                if batch.depth == 0 {
                    batch.flush(&self.write);
                }
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
            push_timestamp(out, std::time::SystemTime::now());
            out.push('"');
            event.record(&mut JsonFields {
                out: &mut *out,
                names: None,
            });
            // Inside a log batch span entered on this thread, its scope's
            // fields were rendered when it was entered: no walk of the span
            // stack per line (half of a batched line's cost).
            let cached = event.is_contextual()
                && BATCH.with(|batch| {
                    let Ok(batch) = batch.try_borrow() else {
                        return false;
                    };
                    match &batch.scope {
                        Some(scope) if ctx.current_span().id() == Some(&scope.span) => {
                            push_span_fields(out, &scope.fields, metadata);
                            true
                        }
                        _ => false,
                    }
                });
            if !cached && let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(fields) = span.extensions().get::<SpanFields>() {
                        push_span_fields(out, fields, metadata);
                    }
                }
            }
            out.push_str("}\n");
            // One write per line (a killed process loses no finished line),
            // except inside a log batch span: one write when it is exited.
            let batched = BATCH.with(|batch| {
                let Ok(mut batch) = batch.try_borrow_mut() else {
                    return false;
                };
                if batch.depth == 0 {
                    return false;
                }
                batch.lines.extend_from_slice(out.as_bytes());
                if batch.lines.len() >= BATCH_FLUSH_BYTES {
                    batch.flush(&self.write);
                }
                true
            });
            if !batched {
                (self.write)(out.as_bytes());
            }
        });
    }
}

/// Appends a span's fields to a line, but not those the event sets itself:
/// the event's own field of a name wins, so no key appears twice.
fn push_span_fields(out: &mut String, fields: &SpanFields, metadata: &tracing::Metadata<'_>) {
    if fields
        .names
        .iter()
        .any(|name| metadata.fields().field(name).is_some())
    {
        for (name, pair) in fields.names.iter().zip(split_pairs(&fields.json)) {
            if metadata.fields().field(name).is_none() {
                out.push_str(pair);
            }
        }
    } else {
        out.push_str(&fields.json);
    }
}

/// The log batch of this thread: lines of events inside entered
/// [`sqsrt_lambda::OUTCOME_LINES_SPAN`] spans, written when the outermost is exited.
#[derive(Default)]
struct LogBatch {
    depth: usize,
    lines: Vec<u8>,
    /// The fields of the scope of the log batch span entered last, while
    /// it is the current span.
    scope: Option<ScopeFields>,
}

/// The span fields of a log batch span's whole scope, root first.
struct ScopeFields {
    span: Id,
    fields: SpanFields,
}

impl LogBatch {
    /// Writes the lines gathered so far, if any, with one write.
    fn flush(&mut self, write: &impl Fn(&[u8])) {
        if !self.lines.is_empty() {
            write(&self.lines);
            self.lines.clear();
        }
    }
}

thread_local! {
    static BATCH: RefCell<LogBatch> = RefCell::new(LogBatch::default());
}

/// A batch larger than this is written at once (a pipe's buffer is 64 KiB).
const BATCH_FLUSH_BYTES: usize = 64 * 1024;

fn is_log_batch<S>(id: &Id, ctx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.metadata(id)
        .is_some_and(|m| m.name() == sqsrt_lambda::OUTCOME_LINES_SPAN)
}

/// Appends `now` in UTC as RFC 3339 with microseconds
/// (`2026-11-23T18:55:00.123456Z`, what `tracing-subscriber` writes). The
/// date and time of day are formatted once per second per thread and
/// reused, only the microseconds per line: the full format on every line was
/// ~4% of a 10,000-record invocation. Hand-written: the date crates in the
/// dependency tree (chrono, time) format the whole value on every call.
fn push_timestamp(out: &mut String, now: std::time::SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    SECOND.with(|cache| {
        if let Ok(mut cache) = cache.try_borrow_mut() {
            if cache.0 != secs || cache.1.is_empty() {
                cache.1.clear();
                push_second(&mut cache.1, secs);
                cache.0 = secs;
            }
            out.push_str(&cache.1);
        } else {
            push_second(out, secs);
        }
    });
    // Six digits by hand: `write!` with `{:06}` went through the
    // formatting machinery on every line.
    let micros = since_epoch.subsec_micros();
    let mut digits = [b'0'; 7];
    digits[6] = b'Z';
    let mut rest = micros;
    for digit in digits[..6].iter_mut().rev() {
        *digit = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000Z"));
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SS.` in UTC.
fn push_second(out: &mut String, secs: u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
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
    let clean = clean_prefix(value.as_bytes());
    out.push_str(&value[..clean]);
    let mut run = clean;
    for (i, b) in value.bytes().enumerate().skip(clean) {
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

/// Whether JSON needs `b` escaped in a string.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The length of the longest prefix with nothing to escape. Sixteen bytes
/// are checked at a time without a branch per byte (the compiler turns the
/// fold into vector compares): escaping byte by byte was about a quarter of
/// a log line's cost (`cargo bench -p sqsrt --bench logging`).
fn clean_prefix(bytes: &[u8]) -> usize {
    const CHUNK: usize = 16;
    let whole = bytes
        .chunks_exact(CHUNK)
        .take_while(|chunk| !chunk.iter().fold(false, |any, &b| any | needs_escape(b)))
        .count()
        * CHUNK;
    // The first byte to escape is in the next (partial) chunk, if anywhere.
    whole
        + bytes[whole..]
            .iter()
            .position(|&b| needs_escape(b))
            .unwrap_or(bytes.len() - whole)
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
pub(crate) fn log_panics() {
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
        // Around the 16-byte chunks of the fast scan: an escape at every
        // position from 0 to 40, in strings of every length up to 48.
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', '\u{e9}', 'x'] {
            for at in 0..=40 {
                for tail in [0, 1, 7, 8] {
                    let value = format!("{}{special}{}", "a".repeat(at), "b".repeat(tail));
                    let mut out = String::new();
                    push_json_str(&mut out, &value);
                    let back: String =
                        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
                    assert_eq!(back, value);
                    assert_eq!(
                        clean_prefix(value.as_bytes()),
                        if special == '\u{e9}' || special == 'x' {
                            value.len()
                        } else {
                            at
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        use std::time::{Duration, UNIX_EPOCH};
        use tracing_subscriber::fmt::format::Writer;
        use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
        for (secs, micros, want) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.000005Z"),
            (4_107_542_400, 999_999, "2100-03-01T00:00:00.999999Z"),
            (1_795_000_000, 120_000, "2026-11-18T11:06:40.120000Z"),
            (253_402_300_799, 1, "9999-12-31T23:59:59.000001Z"),
        ] {
            // Twice: the second call reuses the cached second.
            for _ in 0..2 {
                let mut out = String::new();
                push_timestamp(
                    &mut out,
                    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
                );
                assert_eq!(out, want);
            }
        }
        // The same text as tracing-subscriber's clock (retried if a second
        // boundary falls between the two reads).
        let same_second = (0..5).any(|_| {
            let (mut ours, mut theirs) = (String::new(), String::new());
            push_timestamp(&mut ours, std::time::SystemTime::now());
            let _ = SystemTime.format_time(&mut Writer::new(&mut theirs));
            ours[..20] == theirs[..20]
        });
        assert!(same_second);
    }

    #[test]
    fn lines_in_a_log_batch_span_are_written_together_when_it_exits() {
        let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = std::sync::Arc::clone(&writes);
        let subscriber = tracing_subscriber::registry().with(JsonLines {
            write: move |bytes: &[u8]| sink.lock().unwrap().push(bytes.to_vec()),
        });
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before");
            tracing::info_span!(sqsrt_lambda::OUTCOME_LINES_SPAN).in_scope(|| {
                for i in 0..3 {
                    tracing::info!(i, "inside");
                }
                tracing::info_span!(sqsrt_lambda::OUTCOME_LINES_SPAN)
                    .in_scope(|| tracing::info!("nested"));
            });
            tracing::info!("after");
        });
        let writes = writes.lock().unwrap();
        let lines: Vec<usize> = writes
            .iter()
            .map(|w| w.split(|b| *b == b'\n').count() - 1)
            .collect();
        assert_eq!(
            lines,
            [1, 4, 1],
            "one write for the batch, one per line outside it"
        );
        let batch = String::from_utf8(writes[1].clone()).unwrap();
        assert!(
            batch.contains("\"i\":2") && batch.ends_with("nested\"}\n"),
            "{batch}"
        );
    }

    #[test]
    fn lines_in_a_log_batch_carry_their_scopes_fields_like_any_other() {
        // Inside a batch the scope's fields are rendered once, when it is
        // entered; what each line shows must not change.
        let lines = capture(|| {
            let invocation = tracing::info_span!(
                "invocation",
                request_id = "req-1",
                message_id = "from-span",
                later = tracing::field::Empty
            );
            let _entered = invocation.enter();
            tracing::info_span!(sqsrt_lambda::OUTCOME_LINES_SPAN).in_scope(|| {
                tracing::info!(message_id = "m-1", "own id");
                tracing::info!("span id");
                invocation.record("later", "set");
                tracing::info!("after record");
                tracing::info_span!("child", child = 1).in_scope(|| tracing::info!("in child"));
                tracing::info!(parent: None, "no parent");
                tracing::info!("last");
            });
        });
        let by_message = |m: &str| {
            lines
                .iter()
                .find(|l| l["message"] == m)
                .unwrap_or_else(|| panic!("no line {m}"))
        };
        assert_eq!(by_message("own id")["message_id"], "m-1");
        assert_eq!(by_message("own id")["request_id"], "req-1");
        assert_eq!(by_message("span id")["message_id"], "from-span");
        assert!(by_message("span id").get("later").is_none());
        assert_eq!(by_message("after record")["later"], "set");
        assert_eq!(by_message("in child")["child"], 1);
        assert_eq!(by_message("in child")["request_id"], "req-1");
        assert!(by_message("no parent").get("request_id").is_none());
        assert_eq!(by_message("last")["later"], "set");
        assert_eq!(lines.len(), 6);
    }

    #[test]
    fn invalid_filter_is_named() {
        assert!(init("sqsrt=lots").unwrap_err().contains("sqsrt=lots"));
    }
}
