//! The message sqsrt sends to a dead-letter queue for a permanent failure.

use sqsrt_core::{Message, MessageAttribute, MessageAttributes};

/// Attribute carrying the handler's reason.
pub const REASON_ATTRIBUTE: &str = "sqsrt.reason";
/// Attribute carrying the id of the message in its source queue.
pub const SOURCE_MESSAGE_ID_ATTRIBUTE: &str = "sqsrt.source_message_id";
/// Attribute carrying the source queue (ARN or URL).
pub const SOURCE_QUEUE_ATTRIBUTE: &str = "sqsrt.source_queue";
/// SQS accepts at most this many message attributes.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// SQS's largest message, body and attributes together (1 MiB). A DLQ
/// configured smaller refuses the send, which then falls back to a retry.
pub const MAX_MESSAGE_BYTES: usize = 1_048_576;
/// Reasons longer than this are cut (at a character boundary).
pub const MAX_REASON_BYTES: usize = 1024;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The body.
    pub body: String,
    /// Message attributes.
    pub message_attributes: MessageAttributes,
    /// FIFO group id (FIFO queues only).
    pub group_id: Option<String>,
    /// FIFO deduplication id (FIFO queues only).
    pub deduplication_id: Option<String>,
}

/// Why a message cannot be dead-lettered as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadLetterError {
    /// No room for sqsrt's three attributes under SQS's limit of ten.
    #[error(
        "message has {have} attributes; with sqsrt's 3 it would exceed SQS's limit of {MAX_MESSAGE_ATTRIBUTES}"
    )]
    TooManyAttributes {
        /// How many the message has.
        have: usize,
    },
    /// Body plus attributes would exceed SQS's size limit.
    #[error(
        "message would be {size} bytes with sqsrt's attributes; SQS's limit is {MAX_MESSAGE_BYTES}"
    )]
    TooLarge {
        /// The size it would have.
        size: usize,
    },
}

/// Builds the dead-letter copy of `message`: body and message attributes
/// kept, plus [`REASON_ATTRIBUTE`], [`SOURCE_MESSAGE_ID_ATTRIBUTE`] and
/// [`SOURCE_QUEUE_ATTRIBUTE`]; on a FIFO DLQ the same group id and the source
/// message id as deduplication id.
///
/// # Errors
///
/// [`DeadLetterError`] when the attributes would not fit SQS's limits.
pub fn dead_letter_message(
    message: &Message,
    reason: &str,
    source_queue: &str,
    fifo_dlq: bool,
) -> Result<OutgoingMessage, DeadLetterError> {
    let mut attributes = message.message_attributes().clone();
    let mut add = |name: &str, value: &str| {
        attributes.insert(name, MessageAttribute::string(value));
    };
    add(REASON_ATTRIBUTE, truncate(reason, MAX_REASON_BYTES));
    add(SOURCE_MESSAGE_ID_ATTRIBUTE, message.id());
    add(SOURCE_QUEUE_ATTRIBUTE, source_queue);
    if attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(DeadLetterError::TooManyAttributes {
            have: message.message_attributes().len(),
        });
    }
    let size = message.body().len()
        + attributes
            .iter()
            .map(|(name, attribute)| attribute.size_with_name(name))
            .sum::<usize>();
    if size > MAX_MESSAGE_BYTES {
        return Err(DeadLetterError::TooLarge { size });
    }
    let (group_id, deduplication_id) = if fifo_dlq {
        (
            Some(
                message
                    .group_id()
                    .unwrap_or("sqsrt-dead-letters")
                    .to_owned(),
            ),
            Some(message.id().to_owned()),
        )
    } else {
        (None, None)
    };
    Ok(OutgoingMessage {
        body: message.body().to_owned(),
        message_attributes: attributes,
        group_id,
        deduplication_id,
    })
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(value: &str) -> MessageAttribute {
        MessageAttribute::string(value)
    }

    fn string_attr<'a>(m: &'a OutgoingMessage, name: &str) -> &'a str {
        m.message_attributes
            .get(name)
            .and_then(MessageAttribute::as_str)
            .expect("a string attribute")
    }

    #[test]
    fn keeps_body_and_attributes_and_adds_reason_source_and_id() {
        let m = Message::new("m-1", "payload").with_message_attribute("trace", attr("abc"));
        let out = dead_letter_message(&m, "bad order", "arn:aws:sqs:r:1:q", false).unwrap();
        assert_eq!(out.body, "payload");
        assert_eq!(string_attr(&out, "trace"), "abc");
        assert_eq!(string_attr(&out, REASON_ATTRIBUTE), "bad order");
        assert_eq!(string_attr(&out, SOURCE_MESSAGE_ID_ATTRIBUTE), "m-1");
        assert_eq!(
            string_attr(&out, SOURCE_QUEUE_ATTRIBUTE),
            "arn:aws:sqs:r:1:q"
        );
        assert_eq!((out.group_id, out.deduplication_id), (None, None));
    }

    #[test]
    fn fifo_dlq_keeps_group_and_dedups_on_source_id() {
        let m = Message::new("m-2", "x").with_group("g7");
        let out = dead_letter_message(&m, "r", "q", true).unwrap();
        assert_eq!(out.group_id.as_deref(), Some("g7"));
        assert_eq!(out.deduplication_id.as_deref(), Some("m-2"));
    }

    #[test]
    fn eight_user_attributes_leave_no_room() {
        let mut m = Message::new("m", "x");
        for i in 0..7 {
            m = m.with_message_attribute(format!("a{i}"), attr("v"));
        }
        assert!(
            dead_letter_message(&m, "r", "q", false).is_ok(),
            "7 + 3 = 10 fits"
        );
        let m = m.with_message_attribute("a7", attr("v"));
        assert_eq!(
            dead_letter_message(&m, "r", "q", false),
            Err(DeadLetterError::TooManyAttributes { have: 8 })
        );
    }

    #[test]
    fn redriven_message_reuses_its_sqsrt_attributes() {
        let mut m = Message::new("m", "x");
        for i in 0..7 {
            m = m.with_message_attribute(format!("a{i}"), attr("v"));
        }
        let m = m.with_message_attribute(REASON_ATTRIBUTE, attr("old"));
        let out = dead_letter_message(&m, "new", "q", false).unwrap();
        assert_eq!(string_attr(&out, REASON_ATTRIBUTE), "new");
    }

    #[test]
    fn body_at_the_limit_has_no_room_for_attributes() {
        let m = Message::new("m", "x".repeat(MAX_MESSAGE_BYTES));
        assert!(matches!(
            dead_letter_message(&m, "r", "q", false),
            Err(DeadLetterError::TooLarge { .. })
        ));
    }

    #[test]
    fn long_reasons_are_cut_at_a_char_boundary() {
        let m = Message::new("m", "x");
        let out = dead_letter_message(&m, &"é".repeat(1000), "q", false).unwrap();
        let reason = string_attr(&out, REASON_ATTRIBUTE);
        assert_eq!(reason.len(), MAX_REASON_BYTES);
        assert!(reason.chars().all(|c| c == 'é'));
    }
}
