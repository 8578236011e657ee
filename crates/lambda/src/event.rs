//! What both decoders produce besides messages: [`RecordMeta`] per record,
//! [`EventError`] for an event that cannot be processed record by record,
//! and the invocation's time left.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// What the adapter keeps of a record besides its [`Message`](sqsrt_core::Message): what it needs
/// to settle it with SQS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMeta {
    /// The receipt handle, if the record had one.
    pub receipt_handle: Option<String>,
    /// `eventSourceARN`, the queue it came from (shared by the records of
    /// one queue).
    pub event_source_arn: Option<Arc<str>>,
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
    use super::*;

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
