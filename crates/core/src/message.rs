//! The message model shared by both platforms.

use std::collections::HashMap;
use std::time::SystemTime;

/// One SQS message as the handler sees it, independent of where it came from.
///
/// Adapters build it from an SQS event record (Lambda) or a `ReceiveMessage`
/// answer (worker); the receipt handle stays with the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SQS message id; never empty (adapters reject records without one).
    pub id: String,
    /// The body, as SQS stores it (a UTF-8 string).
    pub body: String,
    /// SQS's `ApproximateReceiveCount`: 1 on first delivery.
    pub receive_count: u32,
    /// `MessageGroupId` on FIFO queues; `None` on standard queues.
    pub group_id: Option<String>,
    /// When the message was sent (`SentTimestamp`), if known.
    pub sent_at: Option<SystemTime>,
    /// System attributes (`SentTimestamp`, `SenderId`, ...), as strings.
    pub attributes: HashMap<String, String>,
    /// User-defined message attributes.
    pub message_attributes: HashMap<String, MessageAttribute>,
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
            attributes: HashMap::new(),
            message_attributes: HashMap::new(),
        }
    }

    /// Sets the FIFO message group.
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
}

/// A user-defined message attribute: its SQS data type (`String`, `Number`,
/// `Binary`, or one of those with a custom suffix such as `Number.int`) and value.
#[derive(Debug, Clone, PartialEq, Eq)]
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
