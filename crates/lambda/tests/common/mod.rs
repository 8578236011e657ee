//! What the adapter tests share: a fake queue client and event builders.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::sync::Mutex;

use aws_lambda_events::event::sqs::SqsEvent;
use sqsrt_sqs::{
    EntryFailure, OutgoingMessage, QueueArn, QueueClient, SqsError, SqsErrorKind, VisibilityChange,
};

#[derive(Default)]
pub(crate) struct FakeQueue {
    pub(crate) visibility: Mutex<Vec<(String, Vec<VisibilityChange>)>>,
    pub(crate) sent: Mutex<Vec<(String, OutgoingMessage)>>,
    pub(crate) visibility_calls: std::sync::atomic::AtomicUsize,
    pub(crate) deny_visibility: bool,
    /// Sends answered with an error (SQS reachable).
    pub(crate) fail_sends: bool,
    /// Every call gets no answer (connect refused or timed out).
    pub(crate) unreachable: bool,
    /// Calls made while `unreachable`.
    pub(crate) unanswered: std::sync::atomic::AtomicUsize,
}

impl FakeQueue {
    fn no_answer(&self, operation: &'static str) -> Result<(), SqsError> {
        if !self.unreachable {
            return Ok(());
        }
        self.unanswered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(SqsError {
            operation,
            kind: SqsErrorKind::Transport,
            code: None,
            message: "dispatch failure: connection refused".into(),
        })
    }
}

impl QueueClient for FakeQueue {
    async fn queue_url(&self, arn: &QueueArn) -> Result<String, SqsError> {
        self.no_answer("GetQueueUrl")?;
        Ok(format!(
            "https://sqs.{}.example/{}/{}",
            arn.region, arn.account, arn.name
        ))
    }

    async fn change_visibility_batch(
        &self,
        queue_url: &str,
        entries: Vec<VisibilityChange>,
    ) -> Result<Vec<EntryFailure>, SqsError> {
        self.visibility_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.no_answer("ChangeMessageVisibilityBatch")?;
        if self.deny_visibility {
            return Err(SqsError {
                operation: "ChangeMessageVisibilityBatch",
                kind: SqsErrorKind::AccessDenied,
                code: Some("AccessDenied".into()),
                message: "not authorized".into(),
            });
        }
        assert!(entries.len() <= 10, "SQS batches hold at most 10 entries");
        self.visibility
            .lock()
            .unwrap()
            .push((queue_url.to_owned(), entries));
        Ok(Vec::new())
    }

    async fn send_message(
        &self,
        queue_url: &str,
        message: OutgoingMessage,
    ) -> Result<String, SqsError> {
        self.no_answer("SendMessage")?;
        if self.fail_sends {
            return Err(SqsError {
                operation: "SendMessage",
                kind: SqsErrorKind::Service,
                code: Some("InternalError".into()),
                message: "we encountered an internal error".into(),
            });
        }
        self.sent
            .lock()
            .unwrap()
            .push((queue_url.to_owned(), message));
        Ok("new-id".into())
    }
}

pub(crate) fn event(records: &[(&str, &str)]) -> SqsEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {"k": {"stringValue": "v", "dataType": "String"}},
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:orders"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

pub(crate) fn listed(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}
