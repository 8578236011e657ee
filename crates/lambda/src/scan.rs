//! The decoder's fast path: the event exactly as Lambda writes it.
//!
//! Lambda sends compact JSON (`{"Records":[{...},...]}`, no whitespace), the
//! same fields in every record, strings everywhere. On that shape this
//! scanner finds each string's end eight bytes at a time, compares keys as
//! bytes, undoes the one-character escapes itself and copies only the
//! fields sqsrt keeps. The `serde` visitor in [`crate::decode`] spends most
//! of its instructions in `serde_json`'s string scanning and per-value
//! calls; this takes a fraction of them (docs/performance.md). Hand-written
//! because no JSON crate gives both speed and size here: `serde_json`'s
//! visitor is the slow part, and the SIMD parsers (`simd-json`, `sonic-rs`)
//! add more than the static binary's size budget has left.
//!
//! It decides nothing on its own: anything but the shapes it knows
//! (whitespace, a number, an unknown field, a repeated field, a message
//! attribute with list items, a key with an escape, a control character
//! in a string, invalid input of any kind) returns `None`, and the `serde`
//! decoder takes the payload, accepting or refusing it with an error that
//! names the path. `\u` escapes are decoded by `serde_json`. So
//! whatever this accepts decodes to what the `serde` decoder gives: the
//! decode tests and the `event_decode` fuzz target compare both with the
//! stock decoder, on shapes this takes and shapes it leaves.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;

use sqsrt_core::json_text::{same_bytes, special_byte};
use sqsrt_core::{Attributes, Message, MessageAttributes};
use sqsrt_sqs::{attribute_from_parts, message_from_parts};

use crate::event::RecordMeta;

/// What a scan gives: messages and metas in record order, and the index of
/// the first record without a usable `messageId`.
pub(crate) type Scanned = (Vec<Message>, Vec<RecordMeta>, Option<usize>);

/// `{"Records":[...]}`, nothing before or after.
pub(crate) fn event(text: &str, capacity: usize) -> Option<Scanned> {
    let mut cursor = Cursor::new(text);
    cursor.literal(b"{\"Records\":")?;
    let scanned = cursor.records(capacity)?;
    cursor.literal(b"}")?;
    cursor.at_end().then_some(scanned)
}

/// `[...]`, a chunk of records (the two-thread path's).
pub(crate) fn array(text: &str, capacity: usize) -> Option<Scanned> {
    let mut cursor = Cursor::new(text);
    let scanned = cursor.records(capacity)?;
    cursor.at_end().then_some(scanned)
}

/// A string as it stands in the input.
#[derive(Clone, Copy)]
struct Raw<'a> {
    /// With its quotes.
    quoted: &'a str,
    escaped: bool,
}

impl<'a> Raw<'a> {
    /// The string's value: borrowed when it has no escape, else unescaped
    /// (one-character escapes here, `\u` ones by `serde_json`; `None` when
    /// an escape is invalid).
    fn value(self) -> Option<Cow<'a, str>> {
        if !self.escaped {
            return Some(Cow::Borrowed(self.inner()));
        }
        // `\u` escapes (and invalid ones) are serde_json's to decode.
        unescape(self.inner())
            .or_else(|| serde_json::from_str::<String>(self.quoted).ok())
            .map(Cow::Owned)
    }

    /// Without its quotes (as written: escapes not undone).
    fn inner(self) -> &'a str {
        &self.quoted[1..self.quoted.len() - 1]
    }

    fn owned(self) -> Option<String> {
        self.value().map(Cow::into_owned)
    }
}

/// `text` with its one-character escapes undone; `None` at a `\u` escape
/// or an invalid one (`serde_json` decodes those). A JSON body is full of
/// `\"`: `serde_json::from_str` per body cost more than the rest of its
/// record (callgrind).
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        out.push(match rest.as_bytes().get(at + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => return None,
        });
        // The escape is two ASCII bytes: a character boundary after it.
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// A field's value, if it had one (`None` inside when absent or `null`);
/// `None` when its escapes are invalid.
#[expect(
    clippy::option_option,
    reason = "the outer `None` is the scanner's: not its shape, leave it to serde"
)]
fn owned(raw: Option<Raw<'_>>) -> Option<Option<String>> {
    match raw {
        Some(raw) => raw.owned().map(Some),
        None => Some(None),
    }
}

/// A record's keys as Lambda writes them, in its order (quoted, with the
/// colon: see `Cursor::key`).
const RECORD_KEYS: &[&str] = &[
    "\"messageId\":",
    "\"receiptHandle\":",
    "\"body\":",
    "\"attributes\":",
    "\"messageAttributes\":",
    "\"md5OfMessageAttributes\":",
    "\"md5OfBody\":",
    "\"eventSource\":",
    "\"eventSourceARN\":",
    "\"awsRegion\":",
];

/// The system attributes SQS gives, in the order Lambda writes them.
const SYSTEM_ATTRIBUTES: &[&str] = &[
    "\"ApproximateReceiveCount\":",
    "\"AWSTraceHeader\":",
    "\"SentTimestamp\":",
    "\"SequenceNumber\":",
    "\"MessageGroupId\":",
    "\"SenderId\":",
    "\"MessageDeduplicationId\":",
    "\"ApproximateFirstReceiveTimestamp\":",
];

/// A message attribute's fields.
const ATTRIBUTE_FIELDS: &[&str] = &[
    "\"stringValue\":",
    "\"binaryValue\":",
    "\"stringListValues\":",
    "\"binaryListValues\":",
    "\"dataType\":",
];

struct Cursor<'a> {
    text: &'a str,
    at: usize,
    /// A record's system attributes before they go into their buffer,
    /// reused from record to record.
    pairs: Vec<(&'a str, Cow<'a, str>)>,
}

/// Sets a field once; a repeated one is left to the `serde` decoder (which
/// refuses it).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            at: 0,
            pairs: Vec::new(),
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn at_end(&self) -> bool {
        self.at == self.text.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes().get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn literal(&mut self, literal: &[u8]) -> Option<()> {
        let found = self.bytes().get(self.at..)?.starts_with(literal);
        if found {
            self.at += literal.len();
        }
        found.then_some(())
    }

    /// A string at the cursor. Its end is the first quote not escaped: each
    /// backslash skips the byte after it (an escaped quote or backslash
    /// included; `\u` digits hold neither). Control characters are invalid
    /// in JSON strings: left to serde.
    fn string(&mut self) -> Option<Raw<'a>> {
        if !self.eat(b'"') {
            return None;
        }
        let bytes = self.bytes();
        let start = self.at;
        let mut end = start;
        let open = start - 1;
        let mut escaped = false;
        loop {
            end += special_byte(bytes.get(end..)?)?;
            match bytes[end] {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    end += 2;
                }
                // A control character: left to serde (which refuses it).
                _ => return None,
            }
        }
        self.at = end + 1;
        // Both ends are ASCII quotes: character boundaries.
        Some(Raw {
            quoted: self.text.get(open..=end)?,
            escaped,
        })
    }

    /// A string or `null`.
    #[expect(
        clippy::option_option,
        reason = "the outer `None` is the scanner's: not its shape, leave it to serde"
    )]
    fn nullable(&mut self) -> Option<Option<Raw<'a>>> {
        if self.literal(b"null").is_some() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// An object key (no escapes here) and its colon. The keys Lambda
    /// writes, in its order, are tried whole first from where the last one
    /// matched (one compare each, mostly the first), before a scan.
    fn key(&mut self, known: &[&'static str], next: &mut usize) -> Option<&'a str> {
        let rest = self.bytes().get(self.at..)?;
        let mut index = *next;
        for _ in 0..known.len() {
            // Round from `next` (a compare, not a division per try).
            if index >= known.len() {
                index = 0;
            }
            // `"name":`, so a key that merely starts with it does not match.
            let quoted = known[index];
            if rest
                .get(..quoted.len())
                .is_some_and(|head| same_bytes(head, quoted.as_bytes()))
            {
                *next = index + 1;
                let key = self.text.get(self.at + 1..self.at + quoted.len() - 2)?;
                self.at += quoted.len();
                return Some(key);
            }
            index += 1;
        }
        let key = self.string()?;
        if key.escaped || !self.eat(b':') {
            return None;
        }
        Some(key.inner())
    }

    /// `{}` or `{"key":value,...}`, calling `member` at each value; `known`
    /// as in [`Self::key`].
    fn object(
        &mut self,
        known: &[&'static str],
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        if self.eat(b'}') {
            return Some(());
        }
        let mut next = 0;
        loop {
            let key = self.key(known, &mut next)?;
            member(self, key)?;
            if self.eat(b',') {
                continue;
            }
            return self.eat(b'}').then_some(());
        }
    }

    /// The `Records` array.
    fn records(&mut self, capacity: usize) -> Option<Scanned> {
        let mut messages = Vec::with_capacity(capacity);
        let mut metas = Vec::with_capacity(capacity);
        let mut missing_id = None;
        let mut last_arn: Option<Arc<str>> = None;
        if !self.eat(b'[') {
            return None;
        }
        if !self.eat(b']') {
            loop {
                let (has_id, message, meta) = self.record(&mut last_arn)?;
                if !has_id && missing_id.is_none() {
                    missing_id = Some(messages.len());
                }
                messages.push(message);
                metas.push(meta);
                if self.eat(b',') {
                    continue;
                }
                if !self.eat(b']') {
                    return None;
                }
                break;
            }
        }
        Some((messages, metas, missing_id))
    }

    /// One record: the fields of `decode`'s record visitor, the same result.
    fn record(&mut self, last_arn: &mut Option<Arc<str>>) -> Option<(bool, Message, RecordMeta)> {
        let mut id: Option<Option<Raw<'a>>> = None;
        let mut receipt_handle: Option<Option<Raw<'a>>> = None;
        let mut body: Option<Option<Raw<'a>>> = None;
        let mut arn: Option<Option<Raw<'a>>> = None;
        let mut attributes: Option<Attributes> = None;
        let mut message_attributes: Option<MessageAttributes> = None;
        let mut unused: [Option<()>; 4] = [None; 4];
        self.object(RECORD_KEYS, |cursor, key| match key {
            "messageId" => once(&mut id, cursor.nullable()?),
            "receiptHandle" => once(&mut receipt_handle, cursor.nullable()?),
            "body" => once(&mut body, cursor.nullable()?),
            "eventSourceARN" => once(&mut arn, cursor.nullable()?),
            "attributes" => once(&mut attributes, cursor.attributes()?),
            "messageAttributes" => once(&mut message_attributes, cursor.message_attributes()?),
            // Not kept; checked as the `serde` decoder checks them.
            "md5OfBody" | "md5OfMessageAttributes" | "eventSource" | "awsRegion" => {
                let slot = match key {
                    "md5OfBody" => 0,
                    "md5OfMessageAttributes" => 1,
                    "eventSource" => 2,
                    _ => 3,
                };
                if let Some(value) = cursor.nullable()? {
                    value.value()?;
                }
                once(&mut unused[slot], ())
            }
            _ => None,
        })?;
        let id = owned(id.flatten())?.filter(|id| !id.is_empty());
        let event_source_arn = match arn.flatten() {
            Some(raw) => {
                let arn = raw.value()?;
                Some(match last_arn {
                    Some(last) if same_bytes(last.as_bytes(), arn.as_bytes()) => Arc::clone(last),
                    _ => {
                        let shared: Arc<str> = Arc::from(&*arn);
                        *last_arn = Some(Arc::clone(&shared));
                        shared
                    }
                })
            }
            None => None,
        };
        let receipt_handle = owned(receipt_handle.flatten())?;
        let body = owned(body.flatten())?.unwrap_or_default();
        let has_id = id.is_some();
        let message = message_from_parts(
            id.unwrap_or_default(),
            body,
            attributes.unwrap_or_default(),
            message_attributes.unwrap_or_default(),
        );
        Some((
            has_id,
            message,
            RecordMeta {
                receipt_handle,
                event_source_arn,
            },
        ))
    }

    /// `null` or an object of strings, into one buffer (sized as the
    /// `serde` decoder sizes it; a repeated name keeps its last value).
    fn attributes(&mut self) -> Option<Attributes> {
        if self.literal(b"null").is_some() {
            return Some(Attributes::default());
        }
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.clear();
        let scanned = self.object(SYSTEM_ATTRIBUTES, |cursor, name| {
            let value = cursor.string()?.value()?;
            pairs.push((name, value));
            Some(())
        });
        let mut out = Attributes::with_capacity(6, 256);
        out.extend(pairs.drain(..));
        self.pairs = pairs;
        scanned.map(|()| out)
    }

    /// `null` or an object of attributes with a string or binary value (or
    /// none) and empty lists; lists with items are left to serde.
    fn message_attributes(&mut self) -> Option<MessageAttributes> {
        if self.literal(b"null").is_some() {
            return Some(MessageAttributes::default());
        }
        let mut out = MessageAttributes::default();
        self.object(&[], |cursor, name| {
            let mut string_value: Option<Option<Raw<'a>>> = None;
            let mut binary_value: Option<Option<Raw<'a>>> = None;
            let mut data_type: Option<Option<Raw<'a>>> = None;
            let mut lists: [Option<()>; 2] = [None; 2];
            cursor.object(ATTRIBUTE_FIELDS, |cursor, field| match field {
                "stringValue" => once(&mut string_value, cursor.nullable()?),
                "binaryValue" => once(&mut binary_value, cursor.nullable()?),
                "dataType" => once(&mut data_type, cursor.nullable()?),
                "stringListValues" | "binaryListValues" => {
                    cursor.literal(b"[]")?;
                    once(&mut lists[usize::from(field == "binaryListValues")], ())
                }
                _ => None,
            })?;
            // Base64 checked and decoded as the `serde` decoder does.
            let binary = match binary_value.flatten() {
                Some(raw) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(raw.value()?.as_bytes())
                        .ok()?,
                ),
                None => None,
            };
            let attribute = attribute_from_parts(
                owned(data_type.flatten())?,
                owned(string_value.flatten())?,
                binary,
            );
            out.insert(name, attribute);
            Some(())
        })?;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::SqsRecords;

    fn serde_path(text: &str) -> Scanned {
        let records = SqsRecords::from_slice_visitor(text.as_bytes()).expect("valid");
        records.into_parts()
    }

    fn record(i: usize) -> String {
        format!(
            r#"{{"messageId":"m-{i}","receiptHandle":"AQEB{i}/+==","body":"{{\"orderId\":{i},\"note\":\"caf\u00e9 \\\"x\\\"\"}}","attributes":{{"ApproximateReceiveCount":"2","SentTimestamp":"1545082649183","SenderId":"AIDA","ApproximateFirstReceiveTimestamp":"1545082649185","MessageGroupId":"tenant-{i}"}},"messageAttributes":{{"trace":{{"stringValue":"abc","stringListValues":[],"binaryListValues":[],"dataType":"String"}},"n":{{"stringValue":"42","dataType":"Number.int"}}}},"md5OfMessageAttributes":null,"md5OfBody":"e4e68fb7","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-2:123456789012:my-queue","awsRegion":"us-east-2"}}"#
        )
    }

    #[test]
    fn lambdas_shape_is_scanned_and_equals_the_serde_decoder() {
        let records: Vec<String> = (0..5).map(record).collect();
        let text = format!("{{\"Records\":[{}]}}", records.join(","));
        let scanned = event(&text, 8).expect("Lambda's shape is scanned");
        assert_eq!(scanned, serde_path(&text));
        let (messages, metas, missing) = scanned;
        assert_eq!(missing, None);
        assert_eq!(
            messages[3].body(),
            "{\"orderId\":3,\"note\":\"caf\u{e9} \\\"x\\\"\"}"
        );
        assert_eq!(messages[3].group_id(), Some("tenant-3"));
        assert_eq!(messages[3].receive_count(), 2);
        assert_eq!(
            messages[3]
                .message_attributes()
                .get("n")
                .map(|a| a.data_type.as_str()),
            Some("Number.int")
        );
        assert!(Arc::ptr_eq(
            metas[0].event_source_arn.as_ref().unwrap(),
            metas[4].event_source_arn.as_ref().unwrap()
        ));
        let array_text = format!("[{}]", records.join(","));
        assert_eq!(array(&array_text, 0), Some(serde_path(&text)));
    }

    #[test]
    fn empty_records_and_a_missing_id_are_scanned() {
        assert_eq!(event(r#"{"Records":[]}"#, 0), Some((vec![], vec![], None)));
        let text = r#"{"Records":[{"messageId":"a","body":"x"},{"body":"y"},{"messageId":"","body":"z"}]}"#;
        let scanned = event(text, 0).expect("scanned");
        assert_eq!(scanned.2, Some(1));
        assert_eq!(scanned, serde_path(text));
    }

    #[test]
    fn escapes_in_every_string_decode_as_serde_decodes_them() {
        // JSON string contents as written in the payload.
        let texts = [
            "",
            "plain",
            r#"{\"action\":\"ok\"}"#,
            r#"quote \" backslash \\ slash \/ newline \n tab \t"#,
            r"\u00e9 \u2713 \ud83d\ude00 café 😀",
            r"\u0000\u001f control",
            r"ends in a backslash \\",
        ];
        for (i, text) in texts.iter().enumerate() {
            let record = format!(
                r#"{{"messageId":"{text}-{i}","receiptHandle":"{text}","body":"{text}","attributes":{{"MessageGroupId":"{text}","{i}":"{text}"}},"messageAttributes":{{"{i}":{{"stringValue":"{text}","dataType":"String"}}}},"md5OfBody":"{text}","eventSource":"{text}","eventSourceARN":"{text}","awsRegion":"{text}"}}"#
            );
            let event_text = format!("{{\"Records\":[{record},{record}]}}");
            let scanned =
                event(&event_text, 0).unwrap_or_else(|| panic!("not scanned: {event_text}"));
            assert_eq!(scanned, serde_path(&event_text), "{event_text}");
        }
        // Escapes serde refuses are refused here too (then serde names them).
        for bad in [r"\x", r"\u12", r"\ud800", r"\"] {
            let text = format!(r#"{{"Records":[{{"body":"{bad}"}}]}}"#);
            assert!(event(&text, 0).is_none(), "{text}");
        }
    }

    #[test]
    fn every_fixture_record_in_lambdas_compact_form_is_scanned() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            let value: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
            let records = match (value.get("Records"), value.get("messageId")) {
                (Some(records), _) => records.clone(),
                (None, Some(_)) => serde_json::Value::Array(vec![value.clone(), value]),
                _ => continue,
            };
            // What Lambda sends: compact, no whitespace.
            let text = serde_json::json!({ "Records": records }).to_string();
            let scanned =
                event(&text, 0).unwrap_or_else(|| panic!("{} not scanned", path.display()));
            assert_eq!(scanned, serde_path(&text), "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 6, "only {seen} fixtures");
    }

    #[test]
    fn other_shapes_are_left_to_serde() {
        for text in [
            r#"{ "Records":[]}"#,
            r#"{"Records":[] }"#,
            r#"{"Records":[],"x":1}"#,
            r#"{"Records":[{"messageId":"a","unknown":"x"}]}"#,
            r#"{"Records":[{"messageId":"a","messageId":"b"}]}"#,
            r#"{"Records":[{"messageId":1}]}"#,
            r#"{"Records":[{"mess\u0061geId":"a"}]}"#,
            r#"{"Records":[{"body":"tab	inside"}]}"#,
            r#"{"Records":[{"body":"bad \x escape"}]}"#,
            r#"{"Records":[{"messageAttributes":{"b":{"binaryValue":"A=A=","dataType":"Binary"}}}]}"#,
            r#"{"Records":[{"messageAttributes":{"l":{"stringListValues":["x"]}}}]}"#,
            r#"{"Records":[{"attributes":{"a":1}}]}"#,
            r#"{"Records":[{"body":"unterminated}]}"#,
            r#"{"Records":[{"body":"x"}"#,
        ] {
            assert!(event(text, 0).is_none(), "scanned {text}");
        }
    }
}
