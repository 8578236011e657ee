//! What the worker needs beyond [`QueueClient`]: receive, delete, and the
//! queue's own attributes; and the conversion of received messages.

use std::future::Future;
use std::time::Duration;

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};
use sqsrt_core::{Attributes, Message};

use crate::client::{EntryFailure, QueueClient, SqsClient, entry_failures};
use crate::error::{SqsError, SqsErrorKind};
use crate::message::{attribute_from_parts, message_from_parts};

/// A received message and the receipt handle needed to settle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The message, as the handler sees it.
    pub message: Message,
    /// The receipt handle of this delivery.
    pub receipt_handle: String,
}

/// One `ReceiveMessage` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveRequest {
    /// 1 to 10.
    pub max_messages: u8,
    /// Long-poll wait, 0 to 20 seconds.
    pub wait_secs: u8,
    /// Visibility timeout to apply; `None`: the queue's.
    pub visibility_timeout_secs: Option<u32>,
    /// FIFO: reused when a receive is retried, so a group is not locked by
    /// a lost answer.
    pub attempt_id: Option<String>,
}

/// What a receive returned: the messages, and any that lacked the id or
/// receipt handle sqsrt needs (logged by the caller; SQS redelivers them).
#[derive(Debug, Default)]
pub struct ReceiveOutput {
    /// Usable messages.
    pub messages: Vec<Received>,
    /// Messages missing a message id or receipt handle, described.
    pub malformed: Vec<String>,
}

/// The queue's settings sqsrt checks at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueAttributes {
    /// `VisibilityTimeout`.
    pub visibility_timeout: Duration,
    /// `RedrivePolicy`, if any.
    pub redrive_policy: Option<String>,
    /// Whether it is a FIFO queue.
    pub fifo: bool,
}

/// The SQS calls of the worker.
pub trait WorkerQueue: QueueClient {
    /// Long-polls for messages.
    fn receive(
        &self,
        queue_url: &str,
        request: ReceiveRequest,
    ) -> impl Future<Output = Result<ReceiveOutput, SqsError>> + Send;

    /// Deletes up to ten messages: `(entry id, receipt handle)`; returns the
    /// entries SQS refused.
    fn delete_batch(
        &self,
        queue_url: &str,
        entries: Vec<(String, String)>,
    ) -> impl Future<Output = Result<Vec<EntryFailure>, SqsError>> + Send;

    /// Reads the queue's visibility timeout, redrive policy and type.
    fn queue_attributes(
        &self,
        queue_url: &str,
    ) -> impl Future<Output = Result<QueueAttributes, SqsError>> + Send;
}

impl WorkerQueue for SqsClient {
    async fn receive(
        &self,
        queue_url: &str,
        request: ReceiveRequest,
    ) -> Result<ReceiveOutput, SqsError> {
        let out = self
            .sdk()
            .await
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::from(request.max_messages))
            .wait_time_seconds(i32::from(request.wait_secs))
            .set_visibility_timeout(
                request
                    .visibility_timeout_secs
                    .map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
            )
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .set_receive_request_attempt_id(request.attempt_id)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("ReceiveMessage", &e))?;
        let mut output = ReceiveOutput::default();
        for m in out.messages.unwrap_or_default() {
            match convert(m) {
                Ok(received) => output.messages.push(received),
                Err(problem) => output.malformed.push(problem),
            }
        }
        Ok(output)
    }

    async fn delete_batch(
        &self,
        queue_url: &str,
        entries: Vec<(String, String)>,
    ) -> Result<Vec<EntryFailure>, SqsError> {
        let entries = entries
            .into_iter()
            .map(|(id, receipt_handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(id)
                    .receipt_handle(receipt_handle)
                    .build()
                    .expect("id and receipt handle, the required fields, are always set")
            })
            .collect();
        let out = self
            .sdk()
            .await
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("DeleteMessageBatch", &e))?;
        Ok(entry_failures(out.failed))
    }

    async fn queue_attributes(&self, queue_url: &str) -> Result<QueueAttributes, SqsError> {
        let out = self
            .sdk()
            .await
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("GetQueueAttributes", &e))?;
        let attributes = out.attributes.unwrap_or_default();
        let visibility = attributes
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| SqsError {
                operation: "GetQueueAttributes",
                kind: SqsErrorKind::Service,
                code: None,
                message: format!("no VisibilityTimeout returned for {queue_url}"),
            })?;
        Ok(QueueAttributes {
            visibility_timeout: Duration::from_secs(visibility),
            redrive_policy: attributes.get(&QueueAttributeName::RedrivePolicy).cloned(),
            fifo: attributes
                .get(&QueueAttributeName::FifoQueue)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }
}

/// Converts an SDK message, or describes why it cannot be used.
fn convert(m: aws_sdk_sqs::types::Message) -> Result<Received, String> {
    let Some(id) = m.message_id.filter(|id| !id.is_empty()) else {
        return Err("a received message has no MessageId".to_owned());
    };
    let Some(receipt_handle) = m.receipt_handle.filter(|r| !r.is_empty()) else {
        return Err(format!("received message {id} has no ReceiptHandle"));
    };
    let attributes: Attributes = m
        .attributes
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let message_attributes = m
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, a)| {
            let attribute = attribute_from_parts(
                Some(a.data_type),
                a.string_value,
                a.binary_value
                    .map(aws_sdk_sqs::primitives::Blob::into_inner),
            );
            (name, attribute)
        })
        .collect();
    let message = message_from_parts(
        id,
        m.body.unwrap_or_default(),
        attributes,
        message_attributes,
    );
    Ok(Received {
        message,
        receipt_handle,
    })
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use aws_sdk_sqs::primitives::Blob;
    use aws_sdk_sqs::types::MessageAttributeValue;
    use sqsrt_core::AttributeValue;

    use super::*;

    #[test]
    fn converts_counts_groups_and_attributes() {
        let m = aws_sdk_sqs::types::Message::builder()
            .message_id("m1")
            .receipt_handle("rh")
            .body("b")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "4")
            .attributes(MessageSystemAttributeName::MessageGroupId, "g")
            .attributes(MessageSystemAttributeName::SentTimestamp, "1000")
            .message_attributes(
                "bin",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(vec![9]))
                    .build()
                    .unwrap(),
            )
            .build();
        let r = convert(m).unwrap();
        assert_eq!(r.receipt_handle, "rh");
        assert_eq!(r.message.receive_count(), 4);
        assert_eq!(r.message.group_id(), Some("g"));
        assert_eq!(
            r.message.sent_at(),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
        assert_eq!(
            r.message.message_attributes()["bin"].value,
            AttributeValue::Binary(vec![9])
        );
    }

    #[test]
    fn missing_id_or_receipt_is_described_not_used() {
        let no_id = aws_sdk_sqs::types::Message::builder()
            .receipt_handle("rh")
            .build();
        assert_eq!(
            convert(no_id).unwrap_err(),
            "a received message has no MessageId"
        );
        let no_rh = aws_sdk_sqs::types::Message::builder()
            .message_id("m")
            .build();
        assert_eq!(
            convert(no_rh).unwrap_err(),
            "received message m has no ReceiptHandle"
        );
    }
}
