//! SQS errors are logged in one place: the first of a streak as a warning
//! with what to do, the rest at debug level, and the recovery once.

use std::sync::atomic::{AtomicU64, Ordering};

use sqsrt_sqs::{SqsError, SqsErrorKind};
use tracing::{debug, info, warn};

/// Counts consecutive failed SQS calls across the worker's tasks.
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    streak: AtomicU64,
}

/// What an operator should do about an error of this kind.
#[must_use]
pub(crate) fn hint(kind: SqsErrorKind) -> &'static str {
    match kind {
        SqsErrorKind::AccessDenied => {
            "grant the role sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility and sqs:GetQueueAttributes on the queue (and sqs:SendMessage on the DLQ), or check the credentials"
        }
        SqsErrorKind::QueueNotFound => "check --queue-url / SQSRT_QUEUE_URL and the region",
        SqsErrorKind::Throttled => "SQS is throttling: lower --max-in-flight or the replica count",
        SqsErrorKind::Transport => {
            "check network access to the SQS endpoint (AWS_ENDPOINT_URL, proxies, DNS)"
        }
        SqsErrorKind::ReceiptHandleInvalid | SqsErrorKind::Service => "retrying with backoff",
    }
}

impl ErrorLog {
    /// A call failed.
    pub(crate) fn failed(&self, error: &SqsError) {
        if self.streak.fetch_add(1, Ordering::Relaxed) == 0 {
            warn!(%error, operation = error.operation, hint = hint(error.kind), "SQS call failed; retrying with backoff.");
        } else {
            debug!(%error, operation = error.operation, "SQS call failed again.");
        }
    }

    /// A call succeeded.
    pub(crate) fn ok(&self) {
        let failed = self.streak.swap(0, Ordering::Relaxed);
        if failed > 0 {
            info!(failed_calls = failed, "SQS calls succeed again.");
        }
    }
}
