//! What became of one message.

use std::fmt;
use std::time::Duration;

use crate::handler::HandlerError;

/// The result of running (or not running) one message, returned as a value
/// for the adapter to act on (delete, list, re-time, dead-letter, release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded.
    Success,
    /// Retry later: after `delay` if the handler gave one, otherwise after
    /// the retry policy's backoff. Panics and timeouts end here too.
    Retry {
        /// What went wrong.
        reason: String,
        /// The handler's own delay, if it gave one.
        delay: Option<Duration>,
    },
    /// Give up: dead-letter it if a DLQ is configured.
    Permanent {
        /// What went wrong.
        reason: String,
    },
    /// The handler never ran; the message should be released at once.
    Skipped {
        /// Why it did not run.
        reason: SkipReason,
    },
}

/// Why a message did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The time to start new messages had run out (Lambda deadline).
    Deadline,
    /// Shutdown began before it started.
    Shutdown,
    /// An earlier message of its FIFO group failed in this batch.
    GroupFailed {
        /// Id of the message whose failure stopped the group.
        failed_message_id: String,
    },
    /// Its tenant stayed at the per-tenant cap for `delay`
    /// ([`crate::BatchOptions::group_wait`]): it returns to the queue after
    /// `delay` instead of holding a receive slot.
    GroupBusy {
        /// How long it waited, and how long it stays invisible.
        delay: std::time::Duration,
    },
}

/// The four outcome names used in logs and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    /// `success`
    Success,
    /// `retry`
    Retry,
    /// `permanent`
    Permanent,
    /// `skipped`
    Skipped,
}

impl OutcomeKind {
    /// The label: `success`, `retry`, `permanent` or `skipped`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Retry => "retry",
            Self::Permanent => "permanent",
            Self::Skipped => "skipped",
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outcome {
    /// Its kind, for logs and metrics.
    #[must_use]
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::Success => OutcomeKind::Success,
            Self::Retry { .. } => OutcomeKind::Retry,
            Self::Permanent { .. } => OutcomeKind::Permanent,
            Self::Skipped { .. } => OutcomeKind::Skipped,
        }
    }

    /// Whether the handler succeeded.
    #[must_use]
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// Whether it is a permanent failure.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent { .. })
    }

    /// Whether it is a retryable failure.
    #[must_use]
    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }

    /// The reason of a failure or skip, for logs; `None` on success.
    #[must_use]
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Success => None,
            Self::Retry { reason, .. } | Self::Permanent { reason } => Some(reason.clone()),
            Self::Skipped { reason } => Some(reason.to_string()),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deadline => f.write_str("not started: invocation deadline near"),
            Self::Shutdown => f.write_str("not started: shutting down"),
            Self::GroupFailed { failed_message_id } => {
                write!(
                    f,
                    "not started: earlier message {failed_message_id} of its FIFO group failed"
                )
            }
            Self::GroupBusy { delay } => write!(
                f,
                "not started: its tenant stayed at --max-in-flight-per-group for {}s",
                delay.as_secs()
            ),
        }
    }
}

impl From<HandlerError> for Outcome {
    fn from(error: HandlerError) -> Self {
        match error {
            HandlerError::Retry { reason, delay, .. } => Self::Retry { reason, delay },
            HandlerError::Permanent { reason } => Self::Permanent { reason },
        }
    }
}
