//! The fast path from event JSON to core [`Message`]s.
//!
//! The stock path deserializes into `aws_lambda_events`' `SqsEvent` (a
//! `String` for every field, `md5OfBody`, `eventSource` and `awsRegion`
//! included) and then converts each record. [`SqsRecords`] is a hand-written
//! `serde` visitor that builds the messages directly: field names are matched
//! without allocating, fields sqsrt never reads are skipped, and the queue ARN
//! repeated on every record is stored once per run of equal values.
//! Hand-written (not derived) because a derived struct would allocate the
//! skipped fields and could not share the ARN.
//!
//! It gives the same messages, metas and missing-id error as
//! `into_messages(serde_json::from_slice::<SqsEvent>(..))` on every event the
//! stock path accepts (tested on every fixture and on generated events in
//! `tests/decode.rs`, and by the `event_decode` fuzz target). The fields
//! sqsrt does not keep (`md5OfBody`, `md5OfMessageAttributes`, `eventSource`,
//! `awsRegion`, `stringListValues`, `binaryListValues`) are still checked as
//! the stock decoder checks them (strings, valid base64), without a copy; the
//! one difference left is that an event or record given as a JSON array
//! (serde's sequence form of a struct) is refused.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sqsrt_core::{Attributes, Message, MessageAttribute, MessageAttributes};
use sqsrt_sqs::{attribute_from_parts, message_from_parts};

use crate::event::{EventError, RecordMeta};
use crate::scan;

/// An SQS event decoded into core messages and what the adapter needs to
/// settle them. Deserialize it from the invocation payload.
#[derive(Debug, Default)]
pub struct SqsRecords {
    messages: Vec<Message>,
    metas: Vec<RecordMeta>,
    /// Index of the first record without a usable `messageId`.
    missing_id: Option<usize>,
}

impl SqsRecords {
    /// Decodes an invocation payload.
    ///
    /// The event as Lambda writes it (compact, the usual fields) goes
    /// through a scanner (`crate::scan`, eight bytes at a time); any other
    /// shape through this module's `serde` visitor, to the same result.
    /// A valid event is parsed once, without path tracking; an invalid one
    /// is parsed a second time through `serde_path_to_error` so the error
    /// names the field (`Records[0].body`). `lambda_runtime` tracks the path on
    /// every payload, which records each map key as a `String`: a large part
    /// of its decode cost (README, Performance).
    ///
    /// # Errors
    ///
    /// [`EventError::Malformed`] naming the path and the problem. A record
    /// without a `messageId` is not an error here but in [`Self::into_messages`].
    pub fn from_slice(payload: &[u8]) -> Result<Self, EventError> {
        // UTF-8 is checked once over the whole payload (fast on ASCII), not
        // string by string as `from_slice` does (~150,000 small checks in a
        // 10,000-record event).
        let text = std::str::from_utf8(payload).ok();
        let capacity = RecordsSeed::sized_for(payload.len()).capacity;
        // The event as Lambda writes it: the scanner (`crate::scan`).
        if let Some(scanned) = text.and_then(|text| scan::event(text, capacity)) {
            return Ok(Self::from_scanned(scanned));
        }
        Self::decode_serde(payload, text)
    }

    /// [`Self::from_slice`] without the scanner: the `serde` visitor alone,
    /// the scanner's reference in its tests and bench (feature
    /// `stock-decode`).
    ///
    /// # Errors
    ///
    /// As [`Self::from_slice`].
    #[cfg(any(test, feature = "stock-decode"))]
    pub fn from_slice_visitor(payload: &[u8]) -> Result<Self, EventError> {
        Self::decode_serde(payload, std::str::from_utf8(payload).ok())
    }

    /// [`Self::from_slice`] without the scanner; `text` is the payload when
    /// it is UTF-8 throughout.
    fn decode_serde(payload: &[u8], text: Option<&str>) -> Result<Self, EventError> {
        // A payload that is not UTF-8 throughout goes through `from_slice`,
        // which skips unknown fields unchecked like the stock decoder (found
        // by fuzzing: invalid UTF-8 in an unknown field's value is accepted
        // there).
        let visitor = EventVisitor {
            records: RecordsSeed::sized_for(payload.len()),
        };
        match text {
            Some(text) => decode_whole(serde_json::Deserializer::from_str(text), visitor),
            None => decode_whole(serde_json::Deserializer::from_slice(payload), visitor),
        }
        .map_err(|first| {
            let mut de = serde_json::Deserializer::from_slice(payload);
            match serde_path_to_error::deserialize::<_, Self>(&mut de) {
                Err(tracked) => EventError::Malformed {
                    path: tracked.path().to_string(),
                    reason: tracked.into_inner().to_string(),
                },
                // Only trailing characters after a valid event get here.
                Ok(_) => EventError::Malformed {
                    path: ".".to_owned(),
                    reason: first.to_string(),
                },
            }
        })
    }

    fn from_scanned((messages, metas, missing_id): scan::Scanned) -> Self {
        Self {
            messages,
            metas,
            missing_id,
        }
    }

    /// Messages, metas and the first missing id (the scanner's tests).
    #[cfg(test)]
    pub(crate) fn into_parts(self) -> scan::Scanned {
        (self.messages, self.metas, self.missing_id)
    }

    /// The messages and their metas, or the error for a record without a
    /// `messageId` (then nothing may run).
    ///
    /// # Errors
    ///
    /// [`EventError::MissingMessageId`] when a record's `messageId` is absent or empty.
    pub fn into_messages(self) -> Result<(Vec<Message>, Vec<RecordMeta>), EventError> {
        match self.missing_id {
            Some(index) => Err(EventError::MissingMessageId {
                index,
                count: self.messages.len(),
            }),
            None => Ok((self.messages, self.metas)),
        }
    }

    /// [`Self::from_slice`], on two threads when the payload is at least
    /// `min_split_bytes` long: the `Records` array is cut into four chunks
    /// at record boundaries, which the caller and one helper thread decode
    /// in turn.
    ///
    /// Each cut is found by looking for `},{"` from a quarter, half and
    /// three quarters of the array (no scan of what lies between), which can
    /// also match at the end of a string. The cuts are proven by the decode
    /// itself: every chunk must decode as an array of whole records, which
    /// only real boundaries between records allow (a cut in a string leaves
    /// one chunk with an unterminated string), and JSON arrays compose: the
    /// chunks' records, in order, are the array's.
    /// Anything else (no cut found, an event with other top-level keys,
    /// whitespace between tokens, any error) falls back to
    /// [`Self::from_slice`], whose errors name the path. The result is the
    /// same either way (`tests/decode.rs`).
    ///
    /// # Errors
    ///
    /// As [`Self::from_slice`].
    pub fn from_slice_split(payload: &[u8], min_split_bytes: usize) -> Result<Self, EventError> {
        if payload.len() >= min_split_bytes
            && let Some(records) = decode_chunks(payload)
        {
            return Ok(records);
        }
        Self::from_slice(payload)
    }

    /// Number of records in the event.
    #[must_use]
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the event has no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

impl<'de> Deserialize<'de> for SqsRecords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor {
            records: RecordsSeed { capacity: 0 },
        })
    }
}

/// What `serde_json::from_str` does, with a visitor that knows the
/// payload's size.
fn decode_whole<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    visitor: EventVisitor,
) -> serde_json::Result<SqsRecords> {
    let records = de.deserialize_map(visitor)?;
    de.end()?;
    Ok(records)
}

/// The start of every compact SQS event, as Lambda sends it.
const EVENT_START: &[u8] = b"{\"Records\":[";

/// Chunks the records are cut into for the two threads: more chunks than
/// threads, taken in turn from a shared counter, so that when the helper
/// thread starts late (the OS took milliseconds at times to run it on the
/// other CPU, which made the decode as slow as on one thread) the caller
/// decodes its share.
const CHUNKS: usize = 4;

/// [`SqsRecords::from_slice_split`]'s two-thread path; `None` where it does
/// not apply or anything fails.
fn decode_chunks(payload: &[u8]) -> Option<SqsRecords> {
    let records = payload.strip_prefix(EVENT_START)?;
    let records = records.trim_ascii_end().strip_suffix(b"]}")?;
    // Whole records `{..}` from `start` to `end`: each cut is the next
    // `},{"` after an even share of the bytes (within a record's length).
    let mut chunks: Vec<(usize, usize)> = Vec::with_capacity(CHUNKS);
    let mut start = 0;
    for k in 1..CHUNKS {
        let from = (records.len() * k / CHUNKS).max(start);
        let Some(at) = records[from..].windows(4).position(|w| w == b"},{\"") else {
            break;
        };
        chunks.push((start, from + at + 1));
        start = from + at + 2;
    }
    if chunks.is_empty() {
        return None;
    }
    chunks.push((start, records.len()));
    // `[` + whole records + `]`: each chunk as a JSON array, copied by the
    // thread that decodes it.
    let decode = |part: &[u8]| -> Option<SqsRecords> {
        let mut array = Vec::with_capacity(part.len() + 2);
        array.push(b'[');
        array.extend_from_slice(part);
        array.push(b']');
        let text = std::str::from_utf8(&array).ok()?;
        let seed = RecordsSeed::sized_for(text.len());
        if let Some(scanned) = scan::array(text, seed.capacity) {
            return Some(SqsRecords::from_scanned(scanned));
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let records = de.deserialize_seq(seed).ok()?;
        de.end().ok()?;
        Some(records)
    };
    let next = AtomicUsize::new(0);
    let take_chunks = || {
        let mut done = Vec::new();
        while let Some(&(start, end)) = chunks.get(next.fetch_add(1, Ordering::Relaxed)) {
            done.push((start, decode(&records[start..end])));
        }
        done
    };
    let mut decoded = std::thread::scope(|scope| {
        // When the OS refuses a thread, the caller takes every chunk.
        let helper = std::thread::Builder::new()
            .spawn_scoped(scope, take_chunks)
            .ok();
        let mut mine = take_chunks();
        if let Some(helper) = helper {
            mine.extend(helper.join().ok()?);
        }
        Some(mine)
    })?;
    decoded.sort_unstable_by_key(|(start, _)| *start);
    let count = decoded
        .iter()
        .map(|(_, part)| part.as_ref().map_or(0, SqsRecords::len))
        .sum();
    let mut all = SqsRecords {
        messages: Vec::with_capacity(count),
        metas: Vec::with_capacity(count),
        missing_id: None,
    };
    for (_, part) in decoded {
        let part = part?;
        if all.missing_id.is_none() {
            all.missing_id = part.missing_id.map(|i| i + all.messages.len());
        }
        all.messages.extend(part.messages);
        all.metas.extend(part.metas);
    }
    Some(all)
}

struct EventVisitor {
    records: RecordsSeed,
}

impl<'de> Visitor<'de> for EventVisitor {
    type Value = SqsRecords;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SQS event (an object with `Records`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SqsRecords, A::Error> {
        let mut records = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == "Records" {
                if records.is_some() {
                    return Err(de::Error::duplicate_field("Records"));
                }
                records = Some(map.next_value_seed(self.records)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        records.ok_or_else(|| de::Error::missing_field("Records"))
    }
}

/// A map key or string value borrowed from the input when it has no escape.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_owned().into()))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Decodes the `Records` array. JSON gives no length up front: the vectors
/// are sized from the array's bytes (at most Lambda's 10,000 records), so a
/// 10,000-record event does not grow them a dozen times, copying each time.
#[derive(Clone, Copy)]
struct RecordsSeed {
    capacity: usize,
}

impl RecordsSeed {
    /// Room for the records of `bytes` of JSON (a typical record is 600+
    /// bytes; a guess too small only means the vectors grow).
    fn sized_for(bytes: usize) -> Self {
        Self {
            capacity: (bytes / 512).min(10_000),
        }
    }
}

impl<'de> DeserializeSeed<'de> for RecordsSeed {
    type Value = SqsRecords;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<SqsRecords, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed {
    type Value = SqsRecords;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of SQS records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SqsRecords, A::Error> {
        let capacity = seq.size_hint().unwrap_or(self.capacity).min(10_000);
        let mut out = SqsRecords {
            messages: Vec::with_capacity(capacity),
            metas: Vec::with_capacity(capacity),
            missing_id: None,
        };
        let mut last_arn: Option<Arc<str>> = None;
        while let Some(record) = seq.next_element_seed(RecordSeed {
            last_arn: &mut last_arn,
        })? {
            let Record {
                has_id,
                message,
                meta,
            } = record;
            if !has_id && out.missing_id.is_none() {
                out.missing_id = Some(out.messages.len());
            }
            out.messages.push(message);
            out.metas.push(meta);
        }
        Ok(out)
    }
}

struct Record {
    /// Whether the record has a usable (present, non-empty) `messageId`.
    has_id: bool,
    message: Message,
    meta: RecordMeta,
}

struct RecordSeed<'a> {
    last_arn: &'a mut Option<Arc<str>>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = Record;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Record, D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// A string field sqsrt does not keep: checked (a string, valid UTF-8) but
/// not copied.
struct CheckedStr;

impl<'de> Deserialize<'de> for CheckedStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Check;
        impl Visitor<'_> for Check {
            type Value = CheckedStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<CheckedStr, E> {
                Ok(CheckedStr)
            }
        }
        deserializer.deserialize_str(Check)
    }
}

/// Sets a field once; a repeated field is an error, as with a derived struct.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an SQS record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut id: Option<Option<String>> = None;
        let mut receipt_handle: Option<Option<String>> = None;
        let mut body: Option<Option<String>> = None;
        let mut arn: Option<Option<Key<'de>>> = None;
        let mut attributes: Option<Attributes> = None;
        let mut message_attributes: Option<MessageAttributes> = None;
        let mut unused: [Option<Option<CheckedStr>>; 4] = Default::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match &*key.0 {
                "messageId" => set_once(&mut id, map.next_value()?, "messageId")?,
                "receiptHandle" => {
                    set_once(&mut receipt_handle, map.next_value()?, "receiptHandle")?;
                }
                "body" => set_once(&mut body, map.next_value()?, "body")?,
                "eventSourceARN" => set_once(&mut arn, map.next_value()?, "eventSourceARN")?,
                "attributes" => set_once(
                    &mut attributes,
                    map.next_value::<Option<WireAttributes>>()?
                        .map(|m| m.0)
                        .unwrap_or_default(),
                    "attributes",
                )?,
                "messageAttributes" => set_once(
                    &mut message_attributes,
                    map.next_value::<Option<HashMap<String, WireAttribute>>>()?
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(name, a)| (name, a.into_core()))
                        .collect(),
                    "messageAttributes",
                )?,
                // Not kept, but checked as the stock decoder parses them
                // (string or null, valid UTF-8, once each), without a copy:
                // found by fuzzing (invalid UTF-8 in `awsRegion`).
                "md5OfBody" => set_once(
                    &mut unused[0],
                    map.next_value::<Option<CheckedStr>>()?,
                    "md5OfBody",
                )?,
                "md5OfMessageAttributes" => set_once(
                    &mut unused[1],
                    map.next_value::<Option<CheckedStr>>()?,
                    "md5OfMessageAttributes",
                )?,
                "eventSource" => set_once(
                    &mut unused[2],
                    map.next_value::<Option<CheckedStr>>()?,
                    "eventSource",
                )?,
                "awsRegion" => set_once(
                    &mut unused[3],
                    map.next_value::<Option<CheckedStr>>()?,
                    "awsRegion",
                )?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let id = id.flatten().filter(|id| !id.is_empty());
        let event_source_arn = arn.flatten().map(|arn| match self.last_arn {
            Some(last) if **last == *arn.0 => Arc::clone(last),
            _ => {
                let shared: Arc<str> = Arc::from(&*arn.0);
                *self.last_arn = Some(Arc::clone(&shared));
                shared
            }
        });
        let has_id = id.is_some();
        let message = message_from_parts(
            id.unwrap_or_default(),
            body.flatten().unwrap_or_default(),
            attributes.unwrap_or_default(),
            message_attributes.unwrap_or_default(),
        );
        Ok(Record {
            has_id,
            message,
            meta: RecordMeta {
                receipt_handle: receipt_handle.flatten(),
                event_source_arn,
            },
        })
    }
}

/// System attributes copied straight from the event's strings into
/// [`Attributes`]' one buffer (no `String` per name or value). Sized for
/// SQS's usual handful up front, room for an `AWSTraceHeader` included.
struct WireAttributes(Attributes);

impl<'de> Deserialize<'de> for WireAttributes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = WireAttributes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireAttributes, A::Error> {
                let mut out = Attributes::with_capacity(6, 256);
                let mut failed = None;
                // `extend` keeps the last of a repeated name, as a map does.
                out.extend(std::iter::from_fn(|| {
                    map.next_entry::<Key<'de>, Key<'de>>()
                        .map_err(|e| failed = Some(e))
                        .ok()
                        .flatten()
                        .map(|(name, value)| (name.0, value.0))
                }));
                match failed {
                    Some(error) => Err(error),
                    None => Ok(WireAttributes(out)),
                }
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// A message attribute as the event writes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAttribute {
    string_value: Option<String>,
    #[serde(default, deserialize_with = "base64_bytes")]
    binary_value: Option<Vec<u8>>,
    data_type: Option<String>,
    // Reserved by SQS and not kept; checked as the stock decoder does
    // (found by fuzzing: a duplicated list was accepted).
    #[serde(default)]
    #[expect(dead_code, reason = "only checked")]
    string_list_values: Vec<CheckedStr>,
    #[serde(default)]
    #[expect(dead_code, reason = "only checked")]
    binary_list_values: Vec<CheckedBase64>,
}

/// A base64 string sqsrt does not keep: checked, then dropped.
struct CheckedBase64;

impl<'de> Deserialize<'de> for CheckedBase64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Key::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(&*text.0)
            .map(|_| CheckedBase64)
            .map_err(|e| de::Error::custom(format_args!("not valid base64: {e}")))
    }
}

impl WireAttribute {
    fn into_core(self) -> MessageAttribute {
        attribute_from_parts(self.data_type, self.string_value, self.binary_value)
    }
}

fn base64_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
    let Some(text) = Option::<Key<'de>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(&*text.0)
        .map(Some)
        .map_err(|e| de::Error::custom(format_args!("not valid base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_chunks_keep_the_records_order_and_the_first_missing_id() {
        // Twelve records, no id on records 5 and 10: four chunks of three,
        // decoded in any order by two threads, merged in record order.
        let records: Vec<String> = (0..12)
            .map(|i| {
                if i == 5 || i == 10 {
                    format!(r#"{{"body":"b{i}"}}"#)
                } else {
                    format!(r#"{{"messageId":"m{i}","body":"b{i}"}}"#)
                }
            })
            .collect();
        let event = format!("{{\"Records\":[{}]}}", records.join(","));
        let chunked = decode_chunks(event.as_bytes()).expect("a compact event is cut");
        let whole = SqsRecords::from_slice(event.as_bytes()).unwrap();
        assert_eq!(chunked.missing_id, Some(5));
        assert_eq!(chunked.messages, whole.messages);
        assert_eq!(chunked.metas, whole.metas);
        let bodies: Vec<&str> = chunked.messages.iter().map(Message::body).collect();
        let want: Vec<String> = (0..12).map(|i| format!("b{i}")).collect();
        assert_eq!(bodies, want);
    }

    #[test]
    fn compact_events_take_the_two_thread_path_and_others_do_not() {
        let record = r#"{"messageId":"m","body":"},{\"x\":1}"}"#;
        let event = format!("{{\"Records\":[{record},{record},{record}]}}");
        let halves = decode_chunks(event.as_bytes()).expect("a compact event is cut");
        assert_eq!(halves.len(), 3);
        for not_taken in [
            "{\"Records\":[]}".to_owned(),
            format!("{{\"Records\":[{record}]}}"),
            format!("{{ \"Records\":[{record},{record}]}}"),
            format!("{{\"Records\":[{record},{record}],\"x\":1}}"),
        ] {
            assert!(decode_chunks(not_taken.as_bytes()).is_none(), "{not_taken}");
        }
    }
}
