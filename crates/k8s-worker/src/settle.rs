//! Settling outcomes with SQS: batched deletes after success, visibility set
//! to the backoff for retries, release (visibility 0) for skipped messages,
//! and dead-lettering for permanent failures. Nothing is deleted before its
//! handler succeeded or its copy is in the dead-letter queue.

use std::sync::Arc;
use std::time::Duration;

use sqsrt_core::{Message, Outcome, RetryPolicy};
use sqsrt_sqs::{
    Action, Delivery, MAX_BATCH_ENTRIES, SettlePolicy, SqsErrorKind, WorkerQueue,
    dead_letter_message, is_fifo_queue, not_dead_lettered,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::errors::ErrorLog;
use crate::heartbeat::{InFlight, change_visibility};
use crate::metrics::Metrics;

/// Deletes and visibility changes are flushed at least this often.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A delete refused for a passing reason is tried this many times.
const DELETE_ATTEMPTS: u32 = 5;
/// SQS calls of the settler in flight at once.
const CALLS_IN_FLIGHT: usize = 8;

/// A received message the worker holds until it is settled.
#[derive(Debug)]
pub(crate) struct Held {
    /// Key in the heartbeat set.
    pub key: u64,
    /// Its message id.
    pub message_id: String,
    /// Receipt handle of this delivery.
    pub receipt_handle: String,
    /// `ApproximateReceiveCount`.
    pub receive_count: u32,
    /// Whether it belongs to a message group of a FIFO queue.
    pub in_group: bool,
    /// A copy for the dead-letter queue (only when one is configured).
    pub copy: Option<Message>,
    /// Its slot under `--max-in-flight`, freed when it is settled (dropped).
    #[allow(dead_code)] // held for its drop
    pub slot: OwnedSemaphorePermit,
}

/// An outcome to act on.
#[derive(Debug)]
pub(crate) struct Settlement {
    /// The message.
    pub held: Held,
    /// What became of it.
    pub outcome: Outcome,
    /// Handler run time, when it ran.
    pub elapsed: Option<Duration>,
}

#[derive(Debug, Clone)]
struct PendingDelete {
    message_id: String,
    receipt_handle: String,
    attempts: u32,
}

/// What a finished settler call asks for next.
enum Followup {
    /// Nothing.
    Done,
    /// Delete these (after a dead-letter send, or to retry a refused delete).
    Delete(Vec<PendingDelete>),
    /// The dead-letter send of this message failed: settle it as this retry.
    Retry(Box<Settlement>),
}

/// The settler: owns the batches and the SQS calls that settle messages.
pub(crate) struct Settler<Q> {
    /// The client.
    pub queue: Arc<Q>,
    /// The source queue.
    pub queue_url: String,
    /// Where permanent failures go.
    pub dlq_url: Option<String>,
    /// Backoff for retries.
    pub retry: RetryPolicy,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Messages the heartbeat keeps invisible.
    pub in_flight: Arc<InFlight>,
    /// Once cancelled (shutdown grace ran out), retries are released at once.
    pub abandoned: CancellationToken,
    /// Error logging shared with the receive loop.
    pub errors: Arc<ErrorLog>,
}

impl<Q: WorkerQueue> Settler<Q> {
    /// Settles everything `settlements` yields until `close` is cancelled and
    /// the channel is drained, then flushes what is pending and returns when
    /// every call has finished.
    pub(crate) async fn run(
        self,
        mut settlements: UnboundedReceiver<Settlement>,
        close: CancellationToken,
    ) {
        let this = Arc::new(self);
        let mut deletes: Vec<PendingDelete> = Vec::new();
        let mut changes: Vec<(String, u32)> = Vec::new();
        let mut calls: JoinSet<Followup> = JoinSet::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(CALLS_IN_FLIGHT));
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut policy = SettlePolicy::new(this.retry, this.dlq_url.is_some());
        let mut open = true;
        loop {
            if !open && deletes.is_empty() && changes.is_empty() && calls.is_empty() {
                break;
            }
            tokio::select! {
                item = settlements.recv(), if open => match item {
                    Some(settlement) => {
                        this.decide(settlement, &mut policy, &mut deletes, &mut changes, &mut calls, &permits);
                        if deletes.len() >= MAX_BATCH_ENTRIES {
                            Self::flush_deletes(&this, &mut deletes, &mut calls, &permits);
                        }
                        if changes.len() >= MAX_BATCH_ENTRIES {
                            Self::flush_changes(&this, &mut changes, &mut calls, &permits);
                        }
                    }
                    None => open = false,
                },
                () = close.cancelled(), if open => {
                    while let Ok(settlement) = settlements.try_recv() {
                        this.decide(settlement, &mut policy, &mut deletes, &mut changes, &mut calls, &permits);
                    }
                    open = false;
                    Self::flush_deletes(&this, &mut deletes, &mut calls, &permits);
                    Self::flush_changes(&this, &mut changes, &mut calls, &permits);
                }
                Some(joined) = calls.join_next(), if !calls.is_empty() => {
                    match joined {
                        Ok(Followup::Delete(more)) => deletes.extend(more),
                        Ok(Followup::Retry(settlement)) => {
                            this.decide(*settlement, &mut policy, &mut deletes, &mut changes, &mut calls, &permits);
                        }
                        Ok(Followup::Done) | Err(_) => {}
                    }
                }
                _ = tick.tick() => {
                    Self::flush_deletes(&this, &mut deletes, &mut calls, &permits);
                    Self::flush_changes(&this, &mut changes, &mut calls, &permits);
                }
            }
        }
    }

    /// Carries out what [`SettlePolicy`] says for one outcome.
    fn decide(
        self: &Arc<Self>,
        settlement: Settlement,
        policy: &mut SettlePolicy,
        deletes: &mut Vec<PendingDelete>,
        changes: &mut Vec<(String, u32)>,
        calls: &mut JoinSet<Followup>,
        permits: &Arc<tokio::sync::Semaphore>,
    ) {
        let Settlement {
            held,
            outcome,
            elapsed,
        } = settlement;
        // Stop the heartbeat first, so it cannot hide a released message again.
        self.in_flight.remove(held.key);
        if self.abandoned.is_cancelled() {
            policy.release_retries();
        }
        let delivery = Delivery {
            message_id: &held.message_id,
            receive_count: held.receive_count,
            fifo_group: held.in_group,
        };
        match policy.action(delivery, &outcome) {
            Action::Delete => {
                self.processed(&held, &outcome, elapsed);
                deletes.push(PendingDelete {
                    message_id: held.message_id,
                    receipt_handle: held.receipt_handle,
                    attempts: 0,
                });
            }
            Action::Retime { secs } => {
                self.processed(&held, &outcome, elapsed);
                changes.push((held.receipt_handle, secs));
            }
            // Left to the queue's redrive policy: it returns after its visibility timeout.
            Action::Leave => self.processed(&held, &outcome, elapsed),
            Action::DeadLetter => {
                let (Some(dlq_url), Outcome::Permanent { reason }) =
                    (self.dlq_url.clone(), &outcome)
                else {
                    unreachable!("the policy dead-letters only permanent failures, with a DLQ");
                };
                let copy = held
                    .copy
                    .as_ref()
                    .expect("a copy is kept when a DLQ is configured");
                match dead_letter_message(copy, reason, &self.queue_url, is_fifo_queue(&dlq_url)) {
                    Err(error) => {
                        let retry = Settlement {
                            outcome: not_dead_lettered(
                                reason,
                                format_args!("not dead-lettered: {error}"),
                            ),
                            held,
                            elapsed,
                        };
                        self.decide(retry, policy, deletes, changes, calls, permits);
                    }
                    Ok(outgoing) => {
                        let this = Arc::clone(self);
                        let permits = Arc::clone(permits);
                        let reason = reason.clone();
                        calls.spawn(async move {
                            let _permit = permits.acquire_owned().await;
                            this.dead_letter(held, outgoing, &dlq_url, reason, elapsed)
                                .await
                        });
                    }
                }
            }
        }
    }

    /// Logs the outcome line and counts it.
    fn processed(&self, held: &Held, outcome: &Outcome, elapsed: Option<Duration>) {
        log_outcome(held, outcome, elapsed);
        self.metrics.processed(outcome.kind(), elapsed);
    }

    async fn dead_letter(
        &self,
        held: Held,
        outgoing: sqsrt_sqs::OutgoingMessage,
        dlq_url: &str,
        reason: String,
        elapsed: Option<Duration>,
    ) -> Followup {
        let result = self.queue.send_message(dlq_url, outgoing).await;
        self.metrics.sqs_call("SendMessage", result.is_ok());
        match result {
            Ok(_) => {
                self.errors.ok();
                self.metrics.dlq_sent();
                self.processed(&held, &Outcome::Permanent { reason }, elapsed);
                Followup::Delete(vec![PendingDelete {
                    message_id: held.message_id,
                    receipt_handle: held.receipt_handle,
                    attempts: 0,
                }])
            }
            Err(error) => {
                self.errors.failed(&error);
                Followup::Retry(Box::new(Settlement {
                    outcome: not_dead_lettered(
                        &reason,
                        format_args!("dead-letter send failed: {error}"),
                    ),
                    held,
                    elapsed,
                }))
            }
        }
    }

    fn flush_deletes(
        this: &Arc<Self>,
        deletes: &mut Vec<PendingDelete>,
        calls: &mut JoinSet<Followup>,
        permits: &Arc<tokio::sync::Semaphore>,
    ) {
        while !deletes.is_empty() {
            let batch: Vec<PendingDelete> = deletes
                .drain(..deletes.len().min(MAX_BATCH_ENTRIES))
                .collect();
            let this = Arc::clone(this);
            let permits = Arc::clone(permits);
            calls.spawn(async move {
                let _permit = permits.acquire_owned().await;
                this.delete(batch).await
            });
        }
    }

    fn flush_changes(
        this: &Arc<Self>,
        changes: &mut Vec<(String, u32)>,
        calls: &mut JoinSet<Followup>,
        permits: &Arc<tokio::sync::Semaphore>,
    ) {
        while !changes.is_empty() {
            let batch: Vec<(String, u32)> = changes
                .drain(..changes.len().min(MAX_BATCH_ENTRIES))
                .collect();
            let this = Arc::clone(this);
            let permits = Arc::clone(permits);
            calls.spawn(async move {
                let _permit = permits.acquire_owned().await;
                this.change(batch).await;
                Followup::Done
            });
        }
    }

    /// One `DeleteMessageBatch`; returns what should be tried again.
    async fn delete(&self, batch: Vec<PendingDelete>) -> Followup {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, d)| (i.to_string(), d.receipt_handle.clone()))
            .collect();
        let result = self.queue.delete_batch(&self.queue_url, entries).await;
        self.metrics.sqs_call("DeleteMessageBatch", result.is_ok());
        let retry: Vec<PendingDelete> = match result {
            Ok(failures) => {
                self.errors.ok();
                failures
                    .into_iter()
                    .filter_map(|f| {
                        let d = f.id.parse::<usize>().ok().and_then(|i| batch.get(i))?;
                        if receipt_expired(&f.code) {
                            warn!(message_id = %d.message_id, code = %f.code, "Delete refused: the receipt handle expired, so the message may be delivered again (handlers must tolerate duplicates).");
                            None
                        } else {
                            debug!(message_id = %d.message_id, code = %f.code, detail = %f.message, "Delete refused; trying again.");
                            Some(d.clone())
                        }
                    })
                    .collect()
            }
            Err(error) => {
                self.errors.failed(&error);
                batch
            }
        };
        let (again, given_up): (Vec<PendingDelete>, Vec<PendingDelete>) = retry
            .into_iter()
            .map(|mut d| {
                d.attempts += 1;
                d
            })
            .partition(|d| d.attempts < DELETE_ATTEMPTS);
        for d in given_up {
            warn!(message_id = %d.message_id, attempts = d.attempts, "Giving up deleting this message; it will be delivered again.");
        }
        if again.is_empty() {
            return Followup::Done;
        }
        let attempts = again.iter().map(|d| d.attempts).max().unwrap_or(1);
        tokio::time::sleep(Duration::from_millis(100 * 2_u64.pow(attempts))).await;
        Followup::Delete(again)
    }

    /// One `ChangeMessageVisibilityBatch`, best effort: a message whose
    /// change fails returns after its current visibility timeout.
    async fn change(&self, batch: Vec<(String, u32)>) {
        let refused = change_visibility(
            &*self.queue,
            &self.queue_url,
            batch,
            &self.metrics,
            &self.errors,
        )
        .await;
        for f in refused {
            debug!(code = %f.code, detail = %f.message, "Visibility change refused; the message returns after its visibility timeout.");
        }
    }
}

fn receipt_expired(code: &str) -> bool {
    sqsrt_sqs::SqsError::kind_of_code(code) == SqsErrorKind::ReceiptHandleInvalid
}

fn log_outcome(held: &Held, outcome: &Outcome, elapsed: Option<Duration>) {
    let duration_ms = elapsed.map(|e| u64::try_from(e.as_millis()).unwrap_or(u64::MAX));
    let kind = outcome.kind().as_str();
    match outcome.reason() {
        None => {
            info!(
                message_id = held.message_id.as_str(),
                outcome = kind,
                receive_count = held.receive_count,
                duration_ms,
                "Message processed."
            );
        }
        Some(reason) => {
            info!(message_id = held.message_id.as_str(), outcome = kind, receive_count = held.receive_count, duration_ms, reason = %reason, "Message processed.");
        }
    }
}

#[cfg(test)]
// Test code: a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests;
