//! Field values as JSON, and the string escaping of every key and value.

use std::fmt::Write as _;

use sqsrt_core::json_text::special_byte;
use tracing::field::{Field, Visit};

/// Writes visited fields as `,"key":value`.
pub(super) struct JsonFields<'a> {
    pub(super) out: &'a mut String,
    pub(super) names: Option<&'a mut Vec<&'static str>>,
}

impl JsonFields<'_> {
    fn key(&mut self, field: &Field) {
        if let Some(names) = self.names.as_deref_mut() {
            names.push(field.name());
        }
        self.out.push_str(",\"");
        escape_into(self.out, field.name());
        self.out.push_str("\":");
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

    // Integers through `itoa`, not `fmt` (callgrind: fewer instructions per
    // log line).
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.out.push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.out.push_str(itoa::Buffer::new().format(value));
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
pub(super) fn push_json_str(out: &mut String, value: &str) {
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

/// Appends `value` with JSON string escaping (quote, backslash, control
/// characters); the runs between are copied whole, found eight bytes at a
/// time (`special_byte`): byte-by-byte escaping was about a quarter of a
/// log line's cost (`cargo bench -p sqsrt --bench logging`).
fn escape_into(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(at) = special_byte(rest.as_bytes()) {
        out.push_str(&rest[..at]);
        let b = rest.as_bytes()[at];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        // The escaped byte is ASCII: a character boundary after it.
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
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
