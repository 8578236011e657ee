//! The settlement policy of both modes: what to do with a message once its
//! outcome is known. Pure (no SQS calls, no AWS types), so it is written and
//! tested once; the Lambda adapter and the worker carry the actions out with
//! their own batching (see docs/design.md, "Message outcomes").
//!
//! - success: delete (Lambda: leave it out of `batchItemFailures`, and the
//!   event source mapping deletes it);
//! - retry: keep it invisible for its backoff, then it comes back;
//! - permanent failure: a copy to the dead-letter queue when one is
//!   configured, and only once the copy is confirmed is it deleted; without a
//!   DLQ, or when the copy fails, it is left to the queue (its visibility
//!   timeout, then its redrive policy) or retried;
//! - skipped (never ran): released at once, except behind a retried message of
//!   its FIFO group, whose delay it shares.

use std::collections::HashMap;
use std::fmt::Display;

use sqsrt_core::{Outcome, RetryPolicy, SkipReason};

use crate::message::visibility_secs;

/// Retried FIFO messages remembered for their group mates; past this, older
/// ones are forgotten (their mates are then released at once).
const MAX_REMEMBERED_GROUP_DELAYS: usize = 4096;

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It succeeded: delete it.
    Delete,
    /// Send a copy to the dead-letter queue; delete it once the copy is
    /// confirmed. If the copy fails, its outcome becomes
    /// [`not_dead_lettered`] and it is settled again.
    DeadLetter,
    /// Set its visibility timeout to `secs`: it comes back then (0: at once).
    Retime {
        /// Seconds, within SQS's 12-hour limit.
        secs: u32,
    },
    /// Do nothing: it comes back after the queue's visibility timeout and the
    /// queue's redrive policy counts it (a permanent failure without a DLQ).
    Leave,
}

/// One delivery of a message, as the policy needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The message id.
    pub message_id: &'a str,
    /// `ApproximateReceiveCount` of this delivery (the backoff's attempt).
    pub receive_count: u32,
    /// Whether it belongs to a message group of a FIFO queue (then messages
    /// skipped behind it share its retry delay).
    pub fifo_group: bool,
}

/// The settlement policy, with the little state it keeps: the retry delay of
/// each retried FIFO message, for the group mates skipped behind it.
#[derive(Debug, Clone)]
pub struct SettlePolicy {
    retry: RetryPolicy,
    dead_letter: bool,
    release_retries: bool,
    group_delays: HashMap<String, u32>,
}

impl SettlePolicy {
    /// The policy for a source with the backoff `retry`, dead-lettering when
    /// `dead_letter` (a DLQ is configured).
    #[must_use]
    pub fn new(retry: RetryPolicy, dead_letter: bool) -> Self {
        Self {
            retry,
            dead_letter,
            release_retries: false,
            group_delays: HashMap::new(),
        }
    }

    /// From now on retries come back at once instead of after their backoff
    /// (the worker's shutdown grace ran out: another pod takes them).
    pub fn release_retries(&mut self) {
        self.release_retries = true;
    }

    /// The action for `outcome` of `delivery`.
    pub fn action(&mut self, delivery: Delivery<'_>, outcome: &Outcome) -> Action {
        match outcome {
            Outcome::Success => Action::Delete,
            Outcome::Permanent { .. } if self.dead_letter => Action::DeadLetter,
            Outcome::Permanent { .. } => Action::Leave,
            Outcome::Retry { delay, .. } => {
                let secs = if self.release_retries {
                    0
                } else {
                    visibility_secs(self.retry.delay_for(delivery.receive_count, *delay))
                };
                if delivery.fifo_group {
                    if self.group_delays.len() >= MAX_REMEMBERED_GROUP_DELAYS {
                        self.group_delays.clear();
                    }
                    self.group_delays
                        .insert(delivery.message_id.to_owned(), secs);
                }
                Action::Retime { secs }
            }
            Outcome::Skipped { reason } => Action::Retime {
                secs: self.skipped_delay(reason),
            },
        }
    }

    /// A message that did not run: 0, except behind a retried FIFO message,
    /// whose delay it shares. SQS keeps the group locked while the failed
    /// message is invisible, so this changes nothing there; it keeps the
    /// group's order on servers that unlock a group as soon as any of its
    /// messages is visible (LocalStack).
    fn skipped_delay(&self, reason: &SkipReason) -> u32 {
        match reason {
            SkipReason::GroupFailed { failed_message_id } => self
                .group_delays
                .get(failed_message_id)
                .copied()
                .unwrap_or(0),
            SkipReason::GroupBusy { delay } => visibility_secs(*delay),
            SkipReason::Deadline | SkipReason::Shutdown => 0,
        }
    }
}

/// The outcome of a permanent failure whose copy did not reach the
/// dead-letter queue (`why`): a retry with the usual backoff, so nothing is
/// lost.
#[must_use]
pub fn not_dead_lettered(reason: &str, why: impl Display) -> Outcome {
    Outcome::Retry {
        reason: format!("{reason}; {why}"),
        delay: None,
    }
}

/// Whether a queue (its name, URL or ARN) is a FIFO queue: SQS requires the
/// exact suffix `.fifo`.
#[must_use]
#[allow(clippy::case_sensitive_file_extension_comparisons)] // SQS requires exactly ".fifo"
pub fn is_fifo_queue(name_url_or_arn: &str) -> bool {
    name_url_or_arn.ends_with(".fifo")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(dead_letter: bool) -> SettlePolicy {
        SettlePolicy::new(
            RetryPolicy::new(Duration::from_secs(2), Duration::from_secs(60)).unwrap(),
            dead_letter,
        )
    }

    fn delivery(id: &str, receive_count: u32, fifo_group: bool) -> Delivery<'_> {
        Delivery {
            message_id: id,
            receive_count,
            fifo_group,
        }
    }

    fn retry(delay: Option<Duration>) -> Outcome {
        Outcome::Retry {
            reason: "r".into(),
            delay,
        }
    }

    fn skipped_behind(id: &str) -> Outcome {
        Outcome::Skipped {
            reason: SkipReason::GroupFailed {
                failed_message_id: id.into(),
            },
        }
    }

    #[test]
    fn each_outcome_has_its_action() {
        let permanent = Outcome::Permanent { reason: "p".into() };
        let mut with_dlq = policy(true);
        let d = delivery("m", 1, false);
        assert_eq!(with_dlq.action(d, &Outcome::Success), Action::Delete);
        assert_eq!(with_dlq.action(d, &permanent), Action::DeadLetter);
        assert_eq!(policy(false).action(d, &permanent), Action::Leave);
        for reason in [SkipReason::Deadline, SkipReason::Shutdown] {
            assert_eq!(
                with_dlq.action(d, &Outcome::Skipped { reason }),
                Action::Retime { secs: 0 }
            );
        }
        let busy = SkipReason::GroupBusy {
            delay: std::time::Duration::from_secs(20),
        };
        assert_eq!(
            with_dlq.action(d, &Outcome::Skipped { reason: busy }),
            Action::Retime { secs: 20 },
            "a message its tenant kept waiting returns after the wait"
        );
    }

    fn secs(action: Action) -> u32 {
        match action {
            Action::Retime { secs } => secs,
            other => panic!("expected a retime, got {other:?}"),
        }
    }

    #[test]
    fn retries_back_off_by_receive_count_and_honour_their_own_delay() {
        let mut p = policy(false);
        // Jittered into [ceiling / 2, ceiling], ceiling = 2 s * 2^(count - 1).
        assert!((1..=2).contains(&secs(p.action(delivery("m", 1, false), &retry(None)))));
        assert!((4..=8).contains(&secs(p.action(delivery("m", 3, false), &retry(None)))));
        assert_eq!(
            p.action(
                delivery("m", 1, false),
                &retry(Some(Duration::from_millis(1500)))
            ),
            Action::Retime { secs: 2 },
            "a handler's own delay, rounded up to whole seconds"
        );
        p.release_retries();
        assert_eq!(
            p.action(delivery("m", 3, false), &retry(None)),
            Action::Retime { secs: 0 }
        );
    }

    #[test]
    fn skipped_fifo_mates_share_the_retried_message_delay() {
        let mut p = policy(false);
        let delay = secs(p.action(delivery("a", 3, true), &retry(None)));
        assert!((4..=8).contains(&delay));
        assert_eq!(
            p.action(delivery("b", 1, true), &skipped_behind("a")),
            Action::Retime { secs: delay }
        );
        // Behind a failure that was not a remembered retry: released at once.
        assert_eq!(
            p.action(delivery("c", 1, true), &skipped_behind("unknown")),
            Action::Retime { secs: 0 }
        );
        // A retry outside a FIFO group is not remembered.
        p.action(delivery("d", 3, false), &retry(None));
        assert_eq!(
            p.action(delivery("e", 1, true), &skipped_behind("d")),
            Action::Retime { secs: 0 }
        );
    }

    #[test]
    fn remembered_delays_are_bounded() {
        let mut p = policy(false);
        let ids: Vec<String> = (0..=MAX_REMEMBERED_GROUP_DELAYS)
            .map(|i| i.to_string())
            .collect();
        for id in &ids {
            p.action(delivery(id, 3, true), &retry(None));
        }
        assert!(p.group_delays.len() <= MAX_REMEMBERED_GROUP_DELAYS);
        let newest = &ids[MAX_REMEMBERED_GROUP_DELAYS];
        assert!(
            (4..=8).contains(&secs(
                p.action(delivery("x", 1, true), &skipped_behind(newest))
            )),
            "the newest is kept"
        );
    }

    #[test]
    fn a_permanent_failure_not_dead_lettered_is_retried_with_backoff() {
        let outcome = not_dead_lettered("bad order", "dead-letter send failed: timeout");
        assert_eq!(
            outcome,
            Outcome::Retry {
                reason: "bad order; dead-letter send failed: timeout".into(),
                delay: None
            }
        );
        assert!((1..=2).contains(&secs(
            policy(true).action(delivery("m", 1, false), &outcome)
        )));
    }

    #[test]
    fn fifo_queues_are_named_by_their_exact_suffix() {
        assert!(is_fifo_queue("arn:aws:sqs:eu-west-1:1:orders.fifo"));
        assert!(is_fifo_queue(
            "https://sqs.eu-west-1.amazonaws.com/1/orders.fifo"
        ));
        assert!(!is_fifo_queue("orders.FIFO"));
        assert!(!is_fifo_queue("orders"));
    }
}
