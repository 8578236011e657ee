//! Building core [`Message`]s from what SQS says about a message, the same
//! way for Lambda event records and `ReceiveMessage` answers.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use sqsrt_core::{Attributes, Message, MessageAttribute};

/// A [`Message`] whose receive count, FIFO group and sent time are read from
/// SQS's system `attributes` (`ApproximateReceiveCount`, default 1;
/// `MessageGroupId`; `SentTimestamp` in milliseconds).
#[must_use]
#[allow(clippy::implicit_hasher)] // `Message` holds std `HashMap`s: nothing to generalize
pub fn message_from_parts(
    id: String,
    body: String,
    attributes: Attributes,
    message_attributes: HashMap<String, MessageAttribute>,
) -> Message {
    Message {
        receive_count: attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        group_id: attributes.get("MessageGroupId").map(str::to_owned),
        sent_at: attributes
            .get("SentTimestamp")
            .and_then(|t| t.parse::<u64>().ok())
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
        id,
        body,
        attributes,
        message_attributes,
    }
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
        let m = message_from_parts("m".into(), "b".into(), attributes, HashMap::new());
        assert_eq!((m.receive_count, m.group_id.as_deref()), (3, Some("g")));
        assert_eq!(m.sent_at, Some(UNIX_EPOCH + Duration::from_millis(1500)));
        let bare = message_from_parts("m".into(), "b".into(), Attributes::new(), HashMap::new());
        assert_eq!(
            (bare.receive_count, bare.group_id, bare.sent_at),
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
