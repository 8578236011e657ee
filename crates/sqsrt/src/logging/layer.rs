//! The JSON-lines layer: each event one line, with the fields of the spans
//! it is in flattened to the top level, and the lines of an outcome-lines
//! span gathered into one write.

use std::cell::RefCell;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::json::{JsonFields, push_json_str};
use super::timestamp::push_timestamp;

/// The JSON-lines layer: `level`, `target`, `timestamp`, the event's fields
/// and the fields of every span it is in (Lambda's `request_id`), all at the
/// top level of one object, written to stdout with one `write` per line.
///
/// Hand-written rather than `json-subscriber` (used before): that crate
/// builds a sorted map per event and was ~2 us of a 10,000-record
/// invocation's per-record cost, the largest part of it; here a span's fields
/// are rendered once, when the span is created, and each line is built in a
/// reused buffer (README, Performance).
pub(super) struct JsonLines<W> {
    /// Where each finished line goes (stdout; a buffer in tests).
    pub(super) write: W,
}

/// A span's fields, rendered as `,"key":value` pairs once.
#[derive(Default)]
pub(super) struct SpanFields {
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
        let mut fields = SpanFields::default();
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
            let scope = ScopeFields {
                span: id.clone(),
                fields: ctx.span(id).as_ref().map(scope_fields).unwrap_or_default(),
            };
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
                            push_span_fields(out, &scope.fields, |name| {
                                metadata.fields().field(name).is_some()
                            });
                            true
                        }
                        _ => false,
                    }
                });
            if !cached && let Some(scope) = ctx.event_scope(event) {
                for span in scope.from_root() {
                    if let Some(fields) = span.extensions().get::<SpanFields>() {
                        push_span_fields(out, fields, |name| {
                            metadata.fields().field(name).is_some()
                        });
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

/// Appends a span's fields to a line, but not those the event has
/// (`event_has`, by name): the event's own field of a name wins, so no key
/// appears twice.
pub(super) fn push_span_fields(
    out: &mut String,
    fields: &SpanFields,
    event_has: impl Fn(&str) -> bool,
) {
    if fields.names.iter().any(|name| event_has(name)) {
        for (name, pair) in fields.names.iter().zip(split_pairs(&fields.json)) {
            if !event_has(name) {
                out.push_str(pair);
            }
        }
    } else {
        out.push_str(&fields.json);
    }
}

/// The fields of `span` and of every span it is in, root first.
pub(super) fn scope_fields<'a, R: LookupSpan<'a>>(span: &SpanRef<'a, R>) -> SpanFields {
    let mut scope = SpanFields::default();
    for span in span.scope().from_root() {
        if let Some(fields) = span.extensions().get::<SpanFields>() {
            scope.names.extend_from_slice(&fields.names);
            scope.json.push_str(&fields.json);
        }
    }
    scope
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
pub(super) const BATCH_FLUSH_BYTES: usize = 64 * 1024;

fn is_log_batch<S>(id: &Id, ctx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ctx.metadata(id)
        .is_some_and(|m| m.name() == sqsrt_lambda::OUTCOME_LINES_SPAN)
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
