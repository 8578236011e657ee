//! A Lambda invocation's outcome lines rendered in one pass, without a
//! `tracing` event per line: the same bytes as [`JsonLines`](super::layer::JsonLines)
//! writes for the events of `sqsrt_lambda::outcome_lines::log_lines` (the
//! tests compare them), but for the timestamp: one per invocation, taken
//! when the lines are rendered, rather than one per line. They are written
//! together anyway.
//!
//! Per record this is about a fifth of the instructions of the `tracing`
//! path (`scripts/instructions.sh`, docs/performance.md): the level, target,
//! timestamp and span fields are rendered once for all lines, and no
//! dispatch, filter or field visit runs per line.

use sqsrt_lambda::{OUTCOME_LINES_TARGET, OutcomeLine, OutcomeLineWriter};
use tracing::Span;
use tracing_subscriber::registry::{LookupSpan, Registry};

use super::json::push_json_str;
use super::layer::{BATCH_FLUSH_BYTES, SpanFields, push_span_fields, scope_fields};
use super::timestamp::push_timestamp;

/// The fields of a line without a reason, in the order `log_lines` gives
/// them (a span field of one of these names is not repeated).
const FIELDS: [&str; 5] = [
    "message",
    "message_id",
    "outcome",
    "receive_count",
    "duration_ms",
];
/// The further fields of a line with a reason.
const REASON_FIELDS: [&str; 3] = ["reason", "listed", "dead_lettered"];

/// The writer sqsrt's subscriber carries (`logging::init`): lines rendered
/// here and passed to `write`, at most ~64 KiB at a time.
pub(super) fn writer(write: impl Fn(&[u8]) + Send + Sync + 'static) -> OutcomeLineWriter {
    OutcomeLineWriter::new(move |span, lines| render(&write, span, lines))
}

fn render(write: &impl Fn(&[u8]), span: &Span, lines: &[OutcomeLine<'_>]) {
    // The span's fields and those of the spans it is in (`request_id`), as
    // the JSON layer renders them. Its subscriber is a `Registry` under
    // layers (`init`); under any other, the lines carry no span fields.
    let scope: SpanFields = span
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<Registry>()?;
            registry.span(id).as_ref().map(scope_fields)
        })
        .flatten()
        .unwrap_or_default();
    let mut plain_suffix = String::new();
    push_span_fields(&mut plain_suffix, &scope, |name| FIELDS.contains(&name));
    plain_suffix.push_str("}\n");
    let mut reason_suffix = String::new();
    push_span_fields(&mut reason_suffix, &scope, |name| {
        FIELDS.contains(&name) || REASON_FIELDS.contains(&name)
    });
    reason_suffix.push_str("}\n");
    let mut prefix = String::from("{\"level\":\"INFO\",\"target\":");
    push_json_str(&mut prefix, OUTCOME_LINES_TARGET);
    prefix.push_str(",\"timestamp\":\"");
    push_timestamp(&mut prefix, std::time::SystemTime::now());
    prefix.push_str("\",\"message\":");
    push_json_str(
        &mut prefix,
        sqsrt_lambda::outcome_lines::OUTCOME_LINE_MESSAGE,
    );
    prefix.push_str(",\"message_id\":");

    let mut out = String::with_capacity(BATCH_FLUSH_BYTES.min(lines.len() * 256));
    for line in lines {
        // Whole: a field added to `OutcomeLine` does not compile here
        // until it is written.
        let OutcomeLine {
            message_id,
            outcome,
            receive_count,
            duration_ms,
            reason,
            listed,
            dead_lettered,
        } = *line;
        out.push_str(&prefix);
        push_json_str(&mut out, message_id);
        out.push_str(",\"outcome\":");
        push_json_str(&mut out, outcome);
        out.push_str(",\"receive_count\":");
        out.push_str(itoa::Buffer::new().format(receive_count));
        if let Some(ms) = duration_ms {
            out.push_str(",\"duration_ms\":");
            out.push_str(itoa::Buffer::new().format(ms));
        }
        match reason {
            None => out.push_str(&plain_suffix),
            Some(reason) => {
                out.push_str(",\"reason\":");
                push_json_str(&mut out, reason);
                out.push_str(",\"listed\":");
                out.push_str(if listed { "true" } else { "false" });
                out.push_str(",\"dead_lettered\":");
                out.push_str(if dead_lettered { "true" } else { "false" });
                out.push_str(&reason_suffix);
            }
        }
        if out.len() >= BATCH_FLUSH_BYTES {
            write(out.as_bytes());
            out.clear();
        }
    }
    if !out.is_empty() {
        write(out.as_bytes());
    }
}
