//! Settling outcomes with SQS: batched deletes after success, visibility set
//! to the backoff for retries, release (visibility 0) for skipped messages,
//! and dead-lettering for permanent failures. Nothing is deleted before its
//! handler succeeded or its copy is in the dead-letter queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqsrt_core::{Message, Outcome, OutcomeKind, RetryPolicy, SkipReason};
use sqsrt_sqs::{
    MAX_BATCH_ENTRIES, SqsErrorKind, VisibilityChange, WorkerQueue, dead_letter_message,
    visibility_secs,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::errors::ErrorLog;
use crate::metrics::Metrics;

/// Deletes and visibility changes are flushed at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A delete refused for a passing reason is tried this many times.
const DELETE_ATTEMPTS: u32 = 5;
/// SQS calls of the settler in flight at once.
const CALLS_IN_FLIGHT: usize = 8;

/// A received message the worker holds until it is settled.
#[derive(Debug)]
pub struct Held {
    /// Key in the heartbeat set.
    pub key: u64,
    /// Its message id.
    pub message_id: String,
    /// Receipt handle of this delivery.
    pub receipt_handle: String,
    /// `ApproximateReceiveCount`.
    pub receive_count: u32,
    /// Whether it belongs to a FIFO message group.
    pub in_group: bool,
    /// A copy for the dead-letter queue (only when one is configured).
    pub copy: Option<Message>,
    /// Its slot under `--max-in-flight`, freed when it is settled.
    pub slot: OwnedSemaphorePermit,
}

/// An outcome to act on.
#[derive(Debug)]
pub struct Settlement {
    /// The message.
    pub held: Held,
    /// What became of it.
    pub outcome: Outcome,
    /// Handler run time, when it ran.
    pub elapsed: Option<Duration>,
}

/// Messages held and still to be kept invisible by the heartbeat.
#[derive(Debug, Default)]
pub struct InFlight {
    entries: Mutex<HashMap<u64, (String, Instant)>>,
}

impl InFlight {
    /// Starts keeping `key` (receipt handle `receipt`) invisible.
    pub fn insert(&self, key: u64, receipt: String) {
        self.lock().insert(key, (receipt, Instant::now()));
    }

    /// Stops keeping `key` invisible.
    pub fn remove(&self, key: u64) {
        self.lock().remove(&key);
    }

    /// The receipt handles not extended for `period`, marked extended now.
    pub fn due(&self, period: Duration) -> Vec<String> {
        let now = Instant::now();
        let mut entries = self.lock();
        entries
            .values_mut()
            .filter(|(_, last)| now.duration_since(*last) >= period)
            .map(|(receipt, last)| {
                *last = now;
                receipt.clone()
            })
            .collect()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, Instant)>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
}

/// The settler: owns the batches and the SQS calls that settle messages.
pub struct Settler<Q> {
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
    pub async fn run(
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
        let mut group_delays: HashMap<String, u32> = HashMap::new();
        let mut open = true;
        loop {
            if !open && deletes.is_empty() && changes.is_empty() && calls.is_empty() {
                break;
            }
            tokio::select! {
                item = settlements.recv(), if open => match item {
                    Some(settlement) => {
                        this.decide(settlement, &mut deletes, &mut changes, &mut group_delays, &mut calls, &permits);
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
                        this.decide(settlement, &mut deletes, &mut changes, &mut group_delays, &mut calls, &permits);
                    }
                    open = false;
                    Self::flush_deletes(&this, &mut deletes, &mut calls, &permits);
                    Self::flush_changes(&this, &mut changes, &mut calls, &permits);
                }
                Some(joined) = calls.join_next(), if !calls.is_empty() => {
                    if let Ok(Followup::Delete(more)) = joined {
                        deletes.extend(more);
                    }
                }
                _ = tick.tick() => {
                    Self::flush_deletes(&this, &mut deletes, &mut calls, &permits);
                    Self::flush_changes(&this, &mut changes, &mut calls, &permits);
                }
            }
        }
    }

    /// `group_delays`: the delay given to each retried FIFO message, so the
    /// rest of its group comes back with it (see [`skipped_delay`]).
    fn decide(
        self: &Arc<Self>,
        settlement: Settlement,
        deletes: &mut Vec<PendingDelete>,
        changes: &mut Vec<(String, u32)>,
        group_delays: &mut HashMap<String, u32>,
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
        match &outcome {
            Outcome::Success => {
                log_outcome(&held, &outcome, elapsed);
                self.metrics.processed(OutcomeKind::Success, elapsed);
                deletes.push(PendingDelete {
                    message_id: held.message_id.clone(),
                    receipt_handle: held.receipt_handle.clone(),
                    attempts: 0,
                });
            }
            Outcome::Retry { delay, .. } => {
                let secs = if self.abandoned.is_cancelled() {
                    0
                } else {
                    visibility_secs(self.retry.delay_for(held.receive_count, *delay))
                };
                log_outcome(&held, &outcome, elapsed);
                self.metrics.processed(OutcomeKind::Retry, elapsed);
                changes.push((held.receipt_handle.clone(), secs));
                if held.in_group {
                    if group_delays.len() >= MAX_REMEMBERED_GROUP_DELAYS {
                        group_delays.clear();
                    }
                    group_delays.insert(held.message_id.clone(), secs);
                }
            }
            Outcome::Skipped { reason } => {
                log_outcome(&held, &outcome, elapsed);
                self.metrics.processed(OutcomeKind::Skipped, elapsed);
                changes.push((
                    held.receipt_handle.clone(),
                    skipped_delay(reason, group_delays),
                ));
            }
            Outcome::Permanent { reason } => {
                let Some(dlq_url) = self.dlq_url.clone() else {
                    // Left to the queue's redrive policy: it returns after its visibility timeout.
                    log_outcome(&held, &outcome, elapsed);
                    self.metrics.processed(OutcomeKind::Permanent, elapsed);
                    return;
                };
                let copy = held
                    .copy
                    .as_ref()
                    .expect("a copy is kept when a DLQ is configured");
                #[allow(clippy::case_sensitive_file_extension_comparisons)]
                // SQS requires exactly ".fifo"
                let fifo_dlq = dlq_url.ends_with(".fifo");
                match dead_letter_message(copy, reason, &self.queue_url, fifo_dlq) {
                    Err(error) => {
                        let retry = Outcome::Retry {
                            reason: format!("{reason}; not dead-lettered: {error}"),
                            delay: None,
                        };
                        log_outcome(&held, &retry, elapsed);
                        self.metrics.processed(OutcomeKind::Retry, elapsed);
                        changes.push((
                            held.receipt_handle.clone(),
                            visibility_secs(self.retry.delay_for(held.receive_count, None)),
                        ));
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
                let outcome = Outcome::Permanent { reason };
                log_outcome(&held, &outcome, elapsed);
                self.metrics.processed(OutcomeKind::Permanent, elapsed);
                Followup::Delete(vec![PendingDelete {
                    message_id: held.message_id,
                    receipt_handle: held.receipt_handle,
                    attempts: 0,
                }])
            }
            Err(error) => {
                self.errors.failed(&error);
                let retry = Outcome::Retry {
                    reason: format!("{reason}; dead-letter send failed: {error}"),
                    delay: None,
                };
                log_outcome(&held, &retry, elapsed);
                self.metrics.processed(OutcomeKind::Retry, elapsed);
                let secs = visibility_secs(self.retry.delay_for(held.receive_count, None));
                self.change(vec![(held.receipt_handle, secs)]).await;
                Followup::Done
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
        let entries = batch
            .into_iter()
            .enumerate()
            .map(|(i, (receipt_handle, timeout_secs))| VisibilityChange {
                id: i.to_string(),
                receipt_handle,
                timeout_secs,
            })
            .collect();
        let result = self
            .queue
            .change_visibility_batch(&self.queue_url, entries)
            .await;
        self.metrics
            .sqs_call("ChangeMessageVisibilityBatch", result.is_ok());
        match result {
            Ok(failures) => {
                self.errors.ok();
                for f in failures {
                    debug!(code = %f.code, detail = %f.message, "Visibility change refused; the message returns after its visibility timeout.");
                }
            }
            Err(error) => self.errors.failed(&error),
        }
    }
}

/// Retried FIFO messages remembered for their group mates; older ones are
/// forgotten (their mates would then be released at once).
const MAX_REMEMBERED_GROUP_DELAYS: usize = 4096;

/// The visibility for a message that did not run: 0 (released at once),
/// except behind a retried FIFO message, whose delay it shares. SQS keeps the
/// group locked while the failed message is in flight, so this changes
/// nothing there; but it keeps the group's order on servers that unlock a
/// group as soon as any of its messages becomes visible (LocalStack).
fn skipped_delay(reason: &SkipReason, group_delays: &HashMap<String, u32>) -> u32 {
    match reason {
        SkipReason::GroupFailed { failed_message_id } => {
            group_delays.get(failed_message_id).copied().unwrap_or(0)
        }
        SkipReason::Deadline | SkipReason::Shutdown => 0,
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
