//! The heartbeat: keeps the messages a worker holds invisible while their
//! handlers run, by extending their visibility before it runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqsrt_sqs::{EntryFailure, MAX_BATCH_ENTRIES, VisibilityChange, WorkerQueue};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::errors::ErrorLog;
use crate::metrics::Metrics;

/// The heartbeat extends visibility, so it must come before the visibility
/// runs out: the one place this rule is written (checked on the settings, and
/// again against the queue's own visibility at first contact).
///
/// # Errors
///
/// The problem, naming the flags and variables, when `heartbeat` is not
/// below `visibility`; `visibility_from` says where the visibility came from.
pub fn check_heartbeat(
    heartbeat: Duration,
    visibility: Duration,
    visibility_from: &str,
) -> Result<(), String> {
    if heartbeat < visibility {
        return Ok(());
    }
    Err(format!(
        "heartbeat ({}) must be below the visibility timeout ({}, {visibility_from}) (set by --heartbeat-secs or SQSRT_HEARTBEAT_SECS, --visibility-timeout-secs or SQSRT_VISIBILITY_TIMEOUT_SECS)",
        secs(heartbeat),
        secs(visibility),
    ))
}

fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// Messages held and still to be kept invisible by the heartbeat.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    entries: Mutex<HashMap<u64, (String, Instant)>>,
}

impl InFlight {
    /// Starts keeping `key` (receipt handle `receipt`) invisible.
    pub(crate) fn insert(&self, key: u64, receipt: String) {
        self.lock().insert(key, (receipt, Instant::now()));
    }

    /// Stops keeping `key` invisible.
    pub(crate) fn remove(&self, key: u64) {
        self.lock().remove(&key);
    }

    /// The receipt handles not extended for `period`, marked extended now.
    pub(crate) fn due(&self, period: Duration) -> Vec<String> {
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
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, Instant)>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The heartbeat's task: every half period, extends the held messages not
/// extended for a whole one to the queue's visibility timeout.
pub(crate) struct Heartbeat<Q> {
    pub(crate) queue: Arc<Q>,
    pub(crate) queue_url: String,
    pub(crate) visibility: Duration,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) errors: Arc<ErrorLog>,
}

impl<Q: WorkerQueue> Heartbeat<Q> {
    /// Runs until `stop` is cancelled.
    pub(crate) async fn run(self, period: Duration, stop: CancellationToken) {
        let timeout_secs = u32::try_from(self.visibility.as_secs().max(1)).unwrap_or(u32::MAX);
        loop {
            tokio::select! {
                () = tokio::time::sleep(period / 2) => {}
                () = stop.cancelled() => return,
            }
            let due = self.in_flight.due(period);
            for chunk in due.chunks(MAX_BATCH_ENTRIES) {
                let changes = chunk.iter().map(|receipt| (receipt.clone(), timeout_secs));
                // A refused extension: the message may return early; the next beat tries again.
                let _ = change_visibility(
                    &*self.queue,
                    &self.queue_url,
                    changes,
                    &self.metrics,
                    &self.errors,
                )
                .await;
            }
        }
    }
}

/// One `ChangeMessageVisibilityBatch` of `(receipt handle, seconds)` pairs
/// (at most ten), counted in the metrics and the error log: the one way the
/// heartbeat and the settler change visibility. The entries SQS refused.
pub(crate) async fn change_visibility<Q: WorkerQueue>(
    queue: &Q,
    queue_url: &str,
    changes: impl IntoIterator<Item = (String, u32)>,
    metrics: &Metrics,
    errors: &ErrorLog,
) -> Vec<EntryFailure> {
    let entries = changes
        .into_iter()
        .enumerate()
        .map(|(i, (receipt_handle, timeout_secs))| VisibilityChange {
            id: i.to_string(),
            receipt_handle,
            timeout_secs,
        })
        .collect();
    let result = queue.change_visibility_batch(queue_url, entries).await;
    metrics.sqs_call("ChangeMessageVisibilityBatch", result.is_ok());
    match result {
        Ok(failures) => {
            errors.ok();
            failures
        }
        Err(error) => {
            errors.failed(&error);
            Vec::new()
        }
    }
}
