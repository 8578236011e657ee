//! The stock decode path, behind the cargo feature `stock-decode`: an
//! `aws_lambda_events` `SqsEvent` into core [`Message`]s. sqsrt decodes with
//! [`crate::SqsRecords`]; this path is the reference the decoder is tested
//! and fuzzed against, and the baseline of the adapter bench.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use sqsrt_core::{Message, MessageAttributes};
use sqsrt_sqs::{attribute_from_parts, message_from_parts};

use crate::adapter::IntoRecords;
use crate::event::{EventError, RecordMeta};

/// Converts every record, or fails on the first one without a message id.
///
/// # Errors
///
/// [`EventError::MissingMessageId`] when a record's `messageId` is absent or empty.
pub fn into_messages(event: SqsEvent) -> Result<(Vec<Message>, Vec<RecordMeta>), EventError> {
    let count = event.records.len();
    if let Some(index) = event
        .records
        .iter()
        .position(|r| r.message_id.as_deref().is_none_or(str::is_empty))
    {
        return Err(EventError::MissingMessageId { index, count });
    }
    let mut messages = Vec::with_capacity(count);
    let mut metas = Vec::with_capacity(count);
    for record in event.records {
        let (message, meta) = convert(record);
        messages.push(message);
        metas.push(meta);
    }
    Ok((messages, metas))
}

fn convert(record: SqsMessage) -> (Message, RecordMeta) {
    let id = record.message_id.expect("checked by into_messages");
    let message_attributes: MessageAttributes = record
        .message_attributes
        .into_iter()
        .map(|(name, a)| {
            let attribute =
                attribute_from_parts(a.data_type, a.string_value, a.binary_value.map(|b| b.0));
            (name, attribute)
        })
        .collect();
    let message = message_from_parts(
        id,
        record.body.unwrap_or_default(),
        record.attributes.iter().collect(),
        message_attributes,
    );
    let meta = RecordMeta {
        receipt_handle: record.receipt_handle,
        event_source_arn: record.event_source_arn.map(Arc::from),
    };
    (message, meta)
}

impl IntoRecords for SqsEvent {
    fn into_records(self) -> Result<(Vec<Message>, Vec<RecordMeta>), EventError> {
        into_messages(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use sqsrt_core::AttributeValue;

    use super::*;

    fn event(json: &str) -> SqsEvent {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn converts_ids_counts_groups_timestamps_and_attributes() {
        let e = event(
            r#"{"Records":[{"messageId":"m1","receiptHandle":"rh","body":"hi",
            "attributes":{"ApproximateReceiveCount":"3","SentTimestamp":"1700000000000","MessageGroupId":"g"},
            "messageAttributes":{"s":{"stringValue":"v","dataType":"String"},"b":{"binaryValue":"AQI=","dataType":"Binary"}},
            "eventSourceARN":"arn:aws:sqs:us-east-1:1:q.fifo"}]}"#,
        );
        let (messages, metas) = into_messages(e).unwrap();
        let m = &messages[0];
        assert_eq!((m.id(), m.body(), m.receive_count()), ("m1", "hi", 3));
        assert_eq!(m.group_id(), Some("g"));
        assert_eq!(
            m.sent_at(),
            Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000))
        );
        assert_eq!(
            m.message_attributes()["s"].value,
            AttributeValue::String("v".into())
        );
        assert_eq!(
            m.message_attributes()["b"].value,
            AttributeValue::Binary(vec![1, 2])
        );
        assert_eq!(metas[0].receipt_handle.as_deref(), Some("rh"));
        assert_eq!(
            metas[0].event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:1:q.fifo")
        );
    }

    #[test]
    fn missing_or_empty_message_id_fails_the_whole_event() {
        let missing = event(r#"{"Records":[{"messageId":"a","body":""},{"body":"x"}]}"#);
        assert_eq!(
            into_messages(missing),
            Err(EventError::MissingMessageId { index: 1, count: 2 })
        );
        let empty = event(r#"{"Records":[{"messageId":"","body":""}]}"#);
        let err = into_messages(empty).unwrap_err();
        assert!(
            err.to_string().contains("record 0 of 1 has no messageId"),
            "{err}"
        );
    }

    #[test]
    fn receive_count_defaults_to_first_delivery() {
        let (m, _) = into_messages(event(r#"{"Records":[{"messageId":"a"}]}"#)).unwrap();
        assert_eq!(m[0].receive_count(), 1);
        assert_eq!(m[0].body(), "");
    }
}
