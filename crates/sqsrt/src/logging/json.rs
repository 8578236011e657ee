//! Field values as JSON, and the string escaping of every key and value.

use std::fmt::Write as _;

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
pub(super) fn push_json_str(out: &mut String, value: &str) {
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
pub(super) fn clean_prefix(bytes: &[u8]) -> usize {
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
