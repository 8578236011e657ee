//! `SqsEvent` records into core [`Message`]s, checked before anything runs.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use sqsrt_core::{Message, MessageAttributes};
use sqsrt_sqs::{attribute_from_parts, message_from_parts};

/// An event that cannot be processed record by record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A record has no `messageId`, or an empty one, so it could not be
    /// reported alone in `batchItemFailures`: nothing runs.
    #[error(
        "record {index} of {count} has no messageId: it cannot be reported as a partial failure, so the whole invocation fails and no record was processed"
    )]
    MissingMessageId {
        /// Index of the record in `Records`.
        index: usize,
        /// Number of records in the event.
        count: usize,
    },
    /// The payload is not an SQS event sqsrt can read (not JSON, not an
    /// object with `Records`, a field of the wrong type, invalid base64...).
    #[error("the payload is not a valid SQS event: {reason} (at {path})")]
    Malformed {
        /// Where in the payload: `Records[0].body`, or `.` for the whole.
        path: String,
        /// What is wrong there, as the JSON parser says it.
        reason: String,
    },
}

/// What the adapter keeps of a record besides its [`Message`]: what it needs
/// to settle it with SQS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// The receipt handle, if the record had one.
    pub receipt_handle: Option<String>,
    /// `eventSourceARN`, the queue it came from (shared by the records of
    /// one queue).
    pub event_source_arn: Option<Arc<str>>,
}

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

/// The time left before an invocation deadline given in milliseconds since
/// the Unix epoch, or `None` when it is already past (treated as absent:
/// `cargo lambda watch` 1.9 sends a constant that reads as 1970).
#[must_use]
pub fn time_left(deadline_ms: u64, now: SystemTime) -> Option<Duration> {
    let deadline = UNIX_EPOCH + Duration::from_millis(deadline_ms);
    deadline
        .duration_since(now)
        .ok()
        .filter(|left| !left.is_zero())
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn past_deadline_reads_as_absent() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            time_left(600_000, now),
            None,
            "cargo lambda watch's constant"
        );
        assert_eq!(time_left(1_000_000, now), None);
        assert_eq!(
            time_left(1_002_500, now),
            Some(Duration::from_millis(2_500))
        );
    }
}
