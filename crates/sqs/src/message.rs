//! Building core [`Message`]s from what SQS says about a message, the same
//! way for Lambda event records and `ReceiveMessage` answers.

use std::time::{Duration, UNIX_EPOCH};

use sqsrt_core::{AttributeValue, Attributes, Message, MessageAttribute, MessageAttributes};

/// A [`Message`] whose receive count, FIFO group and sent time are read from
/// SQS's system `attributes` (`ApproximateReceiveCount`, default 1;
/// `MessageGroupId`; `SentTimestamp` in milliseconds).
#[must_use]
pub fn message_from_parts(
    id: String,
    body: String,
    attributes: Attributes,
    message_attributes: MessageAttributes,
) -> Message {
    let receive_count = attributes
        .get("ApproximateReceiveCount")
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    let group_id = attributes.get("MessageGroupId").map(str::to_owned);
    let sent_at = attributes
        .get("SentTimestamp")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
    let mut message = Message::new(id, body)
        .with_receive_count(receive_count)
        .with_attributes(attributes)
        .with_message_attributes(message_attributes);
    if let Some(group_id) = group_id {
        message = message.with_group(group_id);
    }
    if let Some(sent_at) = sent_at {
        message = message.with_sent_at(sent_at);
    }
    message
}

/// A message attribute from SQS's wire fields, the same for event records and
/// `ReceiveMessage` answers: the string value when there is one, else the
/// binary value, else an empty string; data type `String` when absent.
#[must_use]
pub fn attribute_from_parts(
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<Vec<u8>>,
) -> MessageAttribute {
    let value = match (string_value, binary_value) {
        (Some(s), _) => AttributeValue::String(s),
        (None, Some(b)) => AttributeValue::Binary(b),
        (None, None) => AttributeValue::String(String::new()),
    };
    MessageAttribute::new(data_type.unwrap_or_else(|| "String".to_owned()), value)
}

/// A delay as SQS's whole-second visibility timeout, rounded up.
#[must_use]
pub fn visibility_secs(delay: Duration) -> u32 {
    u32::try_from(delay.as_secs() + u64::from(delay.subsec_nanos() > 0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_count_group_and_sent_time_from_attributes() {
        let attributes = Attributes::from_iter([
            ("ApproximateReceiveCount", "3"),
            ("MessageGroupId", "g"),
            ("SentTimestamp", "1500"),
        ]);
        let m = message_from_parts("m".into(), "b".into(), attributes, MessageAttributes::new());
        assert_eq!((m.receive_count(), m.group_id()), (3, Some("g")));
        assert_eq!(m.sent_at(), Some(UNIX_EPOCH + Duration::from_millis(1500)));
        let bare = message_from_parts(
            "m".into(),
            "b".into(),
            Attributes::new(),
            MessageAttributes::new(),
        );
        assert_eq!(
            (bare.receive_count(), bare.group_id(), bare.sent_at()),
            (1, None, None)
        );
    }

    #[test]
    fn visibility_rounds_up_to_whole_seconds() {
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_millis(1)), 1);
        assert_eq!(visibility_secs(Duration::from_secs(4)), 4);
        assert_eq!(visibility_secs(Duration::from_millis(4001)), 5);
    }
}
