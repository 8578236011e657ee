//! The message model shared by both platforms.

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

/// One SQS message as the handler sees it, independent of where it came from.
///
/// Adapters build it from an SQS event record (Lambda) or a `ReceiveMessage`
/// answer (worker); the receipt handle stays with the adapter. Read it
/// through its accessors ([`Message::id`], [`Message::body`], ...): the
/// representation may change (a body borrowed from the event's buffer is
/// planned) without breaking handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    id: String,
    body: String,
    receive_count: u32,
    group_id: Option<String>,
    sent_at: Option<SystemTime>,
    attributes: Attributes,
    user_attributes: MessageAttributes,
}

impl Message {
    /// A message with the given id and body, received once, with no group and
    /// no attributes. Handy in tests and examples.
    #[must_use]
    pub fn new(id: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            body: body.into(),
            receive_count: 1,
            group_id: None,
            sent_at: None,
            attributes: Attributes::new(),
            user_attributes: MessageAttributes::new(),
        }
    }

    /// SQS message id; never empty (adapters reject records without one).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The body, as SQS stores it (a UTF-8 string).
    #[must_use]
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The body, taken out of the message.
    #[must_use]
    pub fn into_body(self) -> String {
        self.body
    }

    /// SQS's `ApproximateReceiveCount`: 1 on first delivery.
    #[must_use]
    pub fn receive_count(&self) -> u32 {
        self.receive_count
    }

    /// The `MessageGroupId`: the order key on a FIFO queue, the tenant on a
    /// standard (fair) queue; `None` when the message has none.
    #[must_use]
    pub fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    /// When the message was sent (`SentTimestamp`), if known.
    #[must_use]
    pub fn sent_at(&self) -> Option<SystemTime> {
        self.sent_at
    }

    /// System attributes (`SentTimestamp`, `SenderId`, `AWSTraceHeader`, ...).
    #[must_use]
    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }

    /// User-defined message attributes.
    #[must_use]
    pub fn message_attributes(&self) -> &MessageAttributes {
        &self.user_attributes
    }

    /// Sets the message group (FIFO order key, or tenant on a standard queue).
    #[must_use]
    pub fn with_group(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self
    }

    /// Sets the receive count.
    #[must_use]
    pub fn with_receive_count(mut self, receive_count: u32) -> Self {
        self.receive_count = receive_count;
        self
    }

    /// Sets when the message was sent.
    #[must_use]
    pub fn with_sent_at(mut self, sent_at: SystemTime) -> Self {
        self.sent_at = Some(sent_at);
        self
    }

    /// Sets the system attributes.
    #[must_use]
    pub fn with_attributes(mut self, attributes: Attributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// Sets the user-defined message attributes.
    #[must_use]
    pub fn with_message_attributes(mut self, message_attributes: MessageAttributes) -> Self {
        self.user_attributes = message_attributes;
        self
    }

    /// Adds one user-defined message attribute (replacing one of the same name).
    #[must_use]
    pub fn with_message_attribute(
        mut self,
        name: impl Into<String>,
        attribute: MessageAttribute,
    ) -> Self {
        self.user_attributes.insert(name, attribute);
        self
    }
}

/// A message's user-defined attributes, by name.
///
/// ```
/// use sqsrt_core::{MessageAttribute, MessageAttributes};
///
/// let mut attributes = MessageAttributes::new();
/// attributes.insert("tenant", MessageAttribute::string("acme"));
/// assert_eq!(attributes.get("tenant").and_then(MessageAttribute::as_str), Some("acme"));
/// assert_eq!(attributes.iter().count(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageAttributes(HashMap<String, MessageAttribute>);

impl MessageAttributes {
    /// No attributes (does not allocate).
    #[must_use]
    pub fn new() -> Self {
        Self(HashMap::new())
    }

    /// The attribute called `name`, if present. Names are case-sensitive.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&MessageAttribute> {
        self.0.get(name)
    }

    /// Whether `name` is present.
    #[must_use]
    pub fn contains_key(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Sets `name`, replacing an earlier attribute of that name.
    pub fn insert(&mut self, name: impl Into<String>, attribute: MessageAttribute) {
        self.0.insert(name.into(), attribute);
    }

    /// Names and attributes, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MessageAttribute)> {
        self.0.iter().map(|(n, a)| (n.as_str(), a))
    }

    /// Number of attributes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no attribute.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<&str> for MessageAttributes {
    type Output = MessageAttribute;

    /// The attribute called `name`.
    ///
    /// # Panics
    ///
    /// When `name` is absent, like a `HashMap`'s index.
    fn index(&self, name: &str) -> &MessageAttribute {
        self.get(name)
            .unwrap_or_else(|| panic!("no message attribute named {name:?}"))
    }
}

impl<N: Into<String>> FromIterator<(N, MessageAttribute)> for MessageAttributes {
    fn from_iter<I: IntoIterator<Item = (N, MessageAttribute)>>(entries: I) -> Self {
        Self(entries.into_iter().map(|(n, a)| (n.into(), a)).collect())
    }
}

impl<N: Into<String>> Extend<(N, MessageAttribute)> for MessageAttributes {
    fn extend<I: IntoIterator<Item = (N, MessageAttribute)>>(&mut self, entries: I) {
        self.0
            .extend(entries.into_iter().map(|(n, a)| (n.into(), a)));
    }
}

impl<'a> IntoIterator for &'a MessageAttributes {
    type Item = (&'a str, &'a MessageAttribute);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a MessageAttribute)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// A user-defined message attribute: its SQS data type (`String`, `Number`,
/// `Binary`, or one of those with a custom suffix such as `Number.int`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageAttribute {
    /// The SQS data type, custom suffix included.
    pub data_type: String,
    /// The value.
    pub value: AttributeValue,
}

/// The value of a [`MessageAttribute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// `String` and `Number` attributes.
    String(String),
    /// `Binary` attributes, decoded.
    Binary(Vec<u8>),
}

impl MessageAttribute {
    /// An attribute of `data_type` (`String`, `Number`, `Binary`, or one of
    /// those with a custom suffix such as `Number.int`).
    #[must_use]
    pub fn new(data_type: impl Into<String>, value: AttributeValue) -> Self {
        Self {
            data_type: data_type.into(),
            value,
        }
    }

    /// A `String` attribute.
    #[must_use]
    pub fn string(value: impl Into<String>) -> Self {
        Self::new("String", AttributeValue::String(value.into()))
    }

    /// A `Number` attribute (SQS keeps numbers as text).
    #[must_use]
    pub fn number(value: impl fmt::Display) -> Self {
        Self::new("Number", AttributeValue::String(value.to_string()))
    }

    /// A `Binary` attribute.
    #[must_use]
    pub fn binary(value: impl Into<Vec<u8>>) -> Self {
        Self::new("Binary", AttributeValue::Binary(value.into()))
    }

    /// The value of a `String` or `Number` attribute.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            AttributeValue::String(s) => Some(s),
            AttributeValue::Binary(_) => None,
        }
    }

    /// The number of bytes SQS counts for this attribute against the message
    /// size limit: name, data type and value.
    #[must_use]
    pub fn size_with_name(&self, name: &str) -> usize {
        let value = match &self.value {
            AttributeValue::String(s) => s.len(),
            AttributeValue::Binary(b) => b.len(),
        };
        name.len() + self.data_type.len() + value
    }
}

/// A message's SQS system attributes (`ApproximateReceiveCount`,
/// `SentTimestamp`, `SenderId`, `AWSTraceHeader`, ...): names and values as
/// strings, looked up by name.
///
/// ```
/// use sqsrt_core::Attributes;
///
/// let mut attributes = Attributes::new();
/// attributes.insert("SenderId", "AIDAEXAMPLE");
/// attributes.insert("SentTimestamp", "1545082649183");
/// assert_eq!(attributes.get("SenderId"), Some("AIDAEXAMPLE"));
/// assert_eq!(&attributes["SentTimestamp"], "1545082649183");
/// assert_eq!(attributes.len(), 2);
/// ```
///
/// Written here rather than a `HashMap<String, String>`: every name and
/// value lives in one string, so a message's attributes cost two
/// allocations instead of one per name, one per value and a hash table, and
/// no hashing. A message has a handful of them; lookups scan. Decoding and
/// freeing 10,000 records' four attributes as a `HashMap` was about a fifth
/// of a 10,000-record Lambda invocation (README, Performance).
///
/// Equality ignores order, as for a map.
#[derive(Clone, Default)]
pub struct Attributes {
    /// Every name and value, one after another.
    text: String,
    /// For each attribute, where its name ends and where its value ends in
    /// `text` (each starts where the previous one ends).
    ends: Vec<(usize, usize)>,
}

impl Attributes {
    /// No attributes (does not allocate).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            text: String::new(),
            ends: Vec::new(),
        }
    }

    /// No attributes, with room for `count` of them whose names and values
    /// total `bytes`.
    #[must_use]
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name
    /// (the last one wins, as when a JSON object repeats a key).
    pub fn insert(&mut self, name: &str, value: &str) {
        let found = (0..self.len()).position(|i| same_text(self.name(i), name));
        if let Some(index) = found {
            self.retain_indices(|i| i != index);
        }
        self.push(name, value);
    }

    fn push(&mut self, name: &str, value: &str) {
        self.text.push_str(name);
        let name_end = self.text.len();
        self.text.push_str(value);
        self.ends.push((name_end, self.text.len()));
    }

    /// Keeps the last entry of every name. A handful (the usual case) is
    /// checked pair by pair without allocating; many are sorted by name, so
    /// that a record with thousands of names stays linear-logarithmic.
    fn dedup_keep_last(&mut self) {
        const PAIRWISE: usize = 16;
        let count = self.len();
        // Names are compared only where their lengths are equal: SQS's
        // system attributes have different lengths, so a record's check is
        // a few integer compares (it was 3 % of a 5,000-record invocation's
        // CPU with every pair's text compared).
        let name_len = |i: usize| {
            let (start, end) = self.name_range(i);
            end - start
        };
        if count <= PAIRWISE
            && !(0..count).any(|i| {
                (i + 1..count)
                    .any(|j| name_len(i) == name_len(j) && same_text(self.name(i), self.name(j)))
            })
        {
            return;
        }
        let names: Vec<&str> = (0..count).map(|i| self.name(i)).collect();
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|&a, &b| names[a].cmp(names[b]).then(a.cmp(&b)));
        let mut keep = vec![true; names.len()];
        for pair in order.windows(2) {
            if names[pair[0]] == names[pair[1]] {
                keep[pair[0]] = false;
            }
        }
        self.retain_indices(|i| keep[i]);
    }

    fn name(&self, index: usize) -> &str {
        let (start, end) = self.name_range(index);
        &self.text[start..end]
    }

    /// Where the name of entry `index` starts and ends in `text`.
    fn name_range(&self, index: usize) -> (usize, usize) {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before].1);
        (start, self.ends[index].0)
    }

    /// Rebuilds keeping the entries whose index passes `keep`.
    fn retain_indices(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let old = std::mem::take(self);
        *self = Self::with_capacity(old.len(), old.text.len());
        for (i, (name, value)) in old.iter().enumerate() {
            if keep(i) {
                self.push(name, value);
            }
        }
    }

    /// The value of `name`, if present. Names are case-sensitive.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| same_text(n, name))
            .map(|(_, v)| v)
    }

    /// Whether `name` is present.
    #[must_use]
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Names and values, in the order they were first inserted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let entry = (&self.text[start..name_end], &self.text[name_end..value_end]);
            start = value_end;
            entry
        })
    }

    /// Number of attributes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no attribute.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// `a == b` without the static binary's byte-by-byte `bcmp`
/// ([`crate::json_text::same_bytes`]): names are compared on every lookup.
fn same_text(a: &str, b: &str) -> bool {
    crate::json_text::same_bytes(a.as_bytes(), b.as_bytes())
}

impl std::ops::Index<&str> for Attributes {
    type Output = str;

    /// The value of `name`.
    ///
    /// # Panics
    ///
    /// When `name` is absent, like a `HashMap`'s index.
    fn index(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no attribute named {name:?}"))
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(n, v)| other.get(n) == Some(v))
    }
}

impl Eq for Attributes {}

impl fmt::Debug for Attributes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(entries: I) -> Self {
        let mut attributes = Self::new();
        attributes.extend(entries);
        attributes
    }
}

impl<N: AsRef<str>, V: AsRef<str>> Extend<(N, V)> for Attributes {
    /// Adds every entry; a repeated name keeps its last value, as with
    /// [`Attributes::insert`].
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, entries: I) {
        for (name, value) in entries {
            self.push(name.as_ref(), value.as_ref());
        }
        self.dedup_keep_last();
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gets_iterates_and_replaces_like_a_map() {
        let mut a = Attributes::with_capacity(3, 64);
        assert!(a.is_empty());
        a.insert("SenderId", "s");
        a.insert("SentTimestamp", "1500");
        a.insert("", "empty name");
        a.insert("SenderId", "replaced");
        assert_eq!(a.len(), 3);
        assert_eq!(a.get("SenderId"), Some("replaced"));
        assert_eq!(a.get("senderid"), None, "case-sensitive");
        assert_eq!(a[""], *"empty name");
        assert!(a.contains_key("SentTimestamp") && !a.contains_key("Sent"));
        let entries: Vec<_> = a.iter().collect();
        assert_eq!(
            entries,
            [
                ("SentTimestamp", "1500"),
                ("", "empty name"),
                ("SenderId", "replaced")
            ]
        );
        assert_eq!(
            format!("{a:?}"),
            r#"{"SentTimestamp": "1500", "": "empty name", "SenderId": "replaced"}"#
        );
    }

    #[test]
    fn extend_keeps_the_last_value_of_a_repeated_name_like_a_hash_map() {
        for count in [3, 20, 5_000] {
            let entries: Vec<(String, String)> = (0..count)
                .map(|i| (format!("n{}", i % (count / 3 + 1)), i.to_string()))
                .collect();
            let mut attributes = Attributes::new();
            attributes.extend(entries.iter().map(|(n, v)| (n, v)));
            let map: HashMap<&str, &str> = entries
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            assert_eq!(attributes.len(), map.len(), "{count} entries");
            for (name, value) in &map {
                assert_eq!(attributes.get(name), Some(*value), "{name} of {count}");
            }
        }
        let unique: Attributes = [("a", "1"), ("b", "2")].into_iter().collect();
        assert_eq!(unique.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
        // Names of other lengths between a repeated one, and names of one
        // length that differ.
        let mixed: Attributes = [
            ("SenderId", "first"),
            ("SentTimestamp", "1"),
            ("SenderIx", "x"),
            ("", "empty"),
            ("SenderId", "last"),
        ]
        .into_iter()
        .collect();
        assert_eq!(mixed.len(), 4);
        assert_eq!(mixed.get("SenderId"), Some("last"));
        assert_eq!(mixed.get("SenderIx"), Some("x"));
        assert_eq!(mixed.get(""), Some("empty"));
    }

    #[test]
    fn equality_ignores_order_but_not_values() {
        let a: Attributes = [("x", "1"), ("y", "2")].into_iter().collect();
        let b: Attributes = [("y", "2"), ("x", "1")].into_iter().collect();
        let c: Attributes = [("y", "2"), ("x", "9")].into_iter().collect();
        let d: Attributes = [("y", "2")].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_ne!(d, a);
        assert_eq!(Attributes::new(), Attributes::default());
    }

    #[test]
    #[should_panic(expected = "no attribute named \"missing\"")]
    fn indexing_a_missing_name_panics_with_the_name() {
        let _ = &Attributes::new()["missing"];
    }
}
