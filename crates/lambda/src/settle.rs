//! Acting on outcomes in Lambda mode: dead-lettering permanent failures and
//! re-timing the records that will be listed, before the response is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqsrt_core::{Message, Outcome, RetryPolicy};
use sqsrt_sqs::{
    Action, Delivery, MAX_BATCH_ENTRIES, QueueArn, QueueClient, SettlePolicy, SqsErrorKind,
    VisibilityChange, dead_letter_message, is_fifo_queue, not_dead_lettered,
};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::warn;

use crate::breaker::Breaker;
use crate::event::RecordMeta;

/// SQS calls in flight at once while settling one invocation.
const SQS_CONCURRENCY: usize = 8;

/// What became of one record once settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The final outcome (a permanent failure whose dead-lettering failed
    /// becomes a retry).
    pub outcome: Outcome,
    /// Whether it goes into `batchItemFailures`.
    pub listed: bool,
    /// Whether a copy is safely in the dead-letter queue.
    pub dead_lettered: bool,
}

/// Long-lived settling state: the client, cached queue URLs, whether
/// visibility changes were found to be forbidden, and whether SQS calls are
/// off for a while (the breaker).
#[derive(Debug)]
pub struct Settler<Q> {
    queue: Arc<Q>,
    dlq_url: Option<String>,
    retry: RetryPolicy,
    queue_urls: Mutex<HashMap<String, String>>,
    visibility_forbidden: AtomicBool,
    breaker: Arc<Breaker>,
}

impl<Q: QueueClient> Settler<Q> {
    /// A settler over `queue`, dead-lettering to `dlq_url` when given.
    pub fn new(queue: Arc<Q>, dlq_url: Option<String>, retry: RetryPolicy) -> Self {
        Self {
            queue,
            dlq_url,
            retry,
            queue_urls: Mutex::new(HashMap::new()),
            visibility_forbidden: AtomicBool::new(false),
            breaker: Arc::default(),
        }
    }

    /// Whether a dead-letter queue is configured (then the caller must keep
    /// a copy of each message for [`Settler::settle`]).
    pub fn has_dlq(&self) -> bool {
        self.dlq_url.is_some()
    }

    /// Settles every record by [`SettlePolicy`]: dead-letters permanent
    /// failures when a DLQ is configured, then sets the visibility of the
    /// records to be listed (backoff for retries, 0 or the failed group
    /// mate's delay for skipped ones). SQS calls are best effort and stop at
    /// `until`; a dead-letter send not confirmed by then is a retry, so
    /// nothing is lost.
    ///
    /// `records` describes each record (id, receive count, FIFO group);
    /// `copies` holds the messages (needed only with a DLQ).
    pub async fn settle(
        &self,
        outcomes: Vec<Outcome>,
        metas: &[RecordMeta],
        copies: &[Message],
        records: &[Delivery<'_>],
        until: Option<Instant>,
    ) -> Vec<Settled> {
        let mut policy = SettlePolicy::new(self.retry, self.dlq_url.is_some());
        let mut settled: Vec<Settled> = outcomes
            .into_iter()
            .map(|outcome| {
                let listed = !outcome.is_success();
                Settled {
                    outcome,
                    listed,
                    dead_lettered: false,
                }
            })
            .collect();
        // Nothing listed: no call to make. Else the calls' future is boxed:
        // with the SDK's client it is tens of KB, which every invocation's
        // future would otherwise carry and copy when it is boxed (seen in
        // callgrind as a `memcpy` per invocation).
        if !settled.iter().any(|s| s.listed) {
            return settled;
        }
        let work = Box::pin(async {
            if let Some(dlq_url) = &self.dlq_url {
                self.dead_letter(dlq_url, &mut settled, metas, copies, records, &mut policy)
                    .await;
            }
            self.retime(&settled, metas, records, &mut policy).await;
        });
        match until {
            Some(until) => {
                if tokio::time::timeout_at(until, work).await.is_err() {
                    warn!(
                        "SQS calls did not finish before the invocation deadline; unconfirmed records are reported failed."
                    );
                }
            }
            None => work.await,
        }
        settled
    }

    async fn dead_letter(
        &self,
        dlq_url: &str,
        settled: &mut [Settled],
        metas: &[RecordMeta],
        copies: &[Message],
        records: &[Delivery<'_>],
        policy: &mut SettlePolicy,
    ) {
        let mut sends = JoinSet::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(SQS_CONCURRENCY));
        let fifo_dlq = is_fifo_queue(dlq_url);
        for (index, s) in settled.iter_mut().enumerate() {
            let Outcome::Permanent { reason } = &s.outcome else {
                continue;
            };
            if policy.action(records[index], &s.outcome) != Action::DeadLetter {
                continue;
            }
            let source = metas[index]
                .event_source_arn
                .as_deref()
                .unwrap_or("unknown");
            match dead_letter_message(&copies[index], reason, source, fifo_dlq) {
                Ok(outgoing) => {
                    let queue = Arc::clone(&self.queue);
                    let url = dlq_url.to_owned();
                    let (permits, breaker) = (Arc::clone(&permits), Arc::clone(&self.breaker));
                    sends.spawn(async move {
                        let _permit = permits.acquire_owned().await;
                        if !breaker.allows() {
                            return (index, None);
                        }
                        let result = queue.send_message(&url, outgoing).await;
                        breaker.record(&result);
                        (index, Some(result))
                    });
                }
                Err(error) => {
                    warn!(message_id = copies[index].id(), %error, "Cannot dead-letter this message; it will be retried.");
                    s.outcome =
                        not_dead_lettered(reason, format_args!("not dead-lettered: {error}"));
                }
            }
        }
        // Until confirmed, a dead-letter candidate stays listed.
        while let Some(joined) = sends.join_next().await {
            let Ok((index, result)) = joined else {
                continue;
            };
            let s = &mut settled[index];
            match result {
                Some(Ok(_)) => {
                    s.listed = false;
                    s.dead_lettered = true;
                }
                // Calls are off (SQS unreachable): the loop below makes it a retry.
                None => {}
                Some(Err(error)) => {
                    // Unreachable SQS: one warning from the breaker, not one per message.
                    if error.kind != SqsErrorKind::Transport {
                        warn!(message_id = copies[index].id(), %error, "Dead-letter send failed; the message will be retried.");
                    }
                    if let Outcome::Permanent { reason } = &s.outcome {
                        s.outcome = not_dead_lettered(
                            reason,
                            format_args!("dead-letter send failed: {error}"),
                        );
                    }
                }
            }
        }
        // Permanent failures whose send never answered: retries.
        for s in settled.iter_mut() {
            if let Outcome::Permanent { reason } = &s.outcome
                && !s.dead_lettered
            {
                s.outcome = not_dead_lettered(reason, "dead-letter send not confirmed");
            }
        }
    }

    /// Carries out the policy's visibility changes for the listed records,
    /// in batches of ten per queue. Failures are warned about once per
    /// invocation; a denied permission turns this off for the life of the
    /// process.
    async fn retime(
        &self,
        settled: &[Settled],
        metas: &[RecordMeta],
        records: &[Delivery<'_>],
        policy: &mut SettlePolicy,
    ) {
        if self.visibility_forbidden.load(Ordering::Relaxed) || !self.breaker.allows() {
            return;
        }
        let mut by_arn: HashMap<&str, Vec<VisibilityChange>> = HashMap::new();
        for (index, s) in settled.iter().enumerate() {
            if !s.listed {
                continue;
            }
            let Action::Retime { secs } = policy.action(records[index], &s.outcome) else {
                continue;
            };
            let (Some(arn), Some(receipt_handle)) =
                (&metas[index].event_source_arn, &metas[index].receipt_handle)
            else {
                continue;
            };
            by_arn.entry(&**arn).or_default().push(VisibilityChange {
                id: index.to_string(),
                receipt_handle: receipt_handle.clone(),
                timeout_secs: secs,
            });
        }
        let mut calls = JoinSet::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(SQS_CONCURRENCY));
        for (arn, changes) in by_arn {
            let url = match self.queue_url(arn).await {
                Ok(url) => url,
                Err(error) => {
                    // When SQS cannot be reached, the breaker has warned.
                    if self.breaker.allows() {
                        warn!(%error, queue = arn, records = changes.len(), "Cannot find the queue to re-time failed records; they return after the queue's visibility timeout.");
                    }
                    continue;
                }
            };
            for chunk in changes.chunks(MAX_BATCH_ENTRIES) {
                let queue = Arc::clone(&self.queue);
                let (url, chunk) = (url.clone(), chunk.to_vec());
                let (permits, breaker) = (Arc::clone(&permits), Arc::clone(&self.breaker));
                calls.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    if !breaker.allows() {
                        return None;
                    }
                    let result = queue.change_visibility_batch(&url, chunk).await;
                    breaker.record(&result);
                    Some(result)
                });
            }
        }
        let mut warned = false;
        while let Some(joined) = calls.join_next().await {
            // Not made (calls off) or not joined: nothing to report; the
            // breaker warned once for the outage.
            let Ok(Some(result)) = joined else { continue };
            match result {
                Ok(failures) if failures.is_empty() => {}
                Ok(failures) => {
                    if !warned {
                        warned = true;
                        warn!(failed = failures.len(), code = %failures[0].code, detail = %failures[0].message, "Some visibility changes were refused; those records return after the queue's visibility timeout.");
                    }
                }
                Err(error) if error.kind == SqsErrorKind::AccessDenied => {
                    if !self.visibility_forbidden.swap(true, Ordering::Relaxed) {
                        warn!(%error, "Visibility changes are not permitted: failed records are only listed. Grant sqs:ChangeMessageVisibility to apply backoff and release skipped records at once.");
                    }
                }
                Err(error) => {
                    if !warned && error.kind != SqsErrorKind::Transport {
                        warned = true;
                        warn!(%error, "Visibility change failed; affected records return after the queue's visibility timeout.");
                    }
                }
            }
        }
    }

    async fn queue_url(&self, arn: &str) -> Result<String, String> {
        if let Some(url) = self.queue_urls.lock().await.get(arn) {
            return Ok(url.clone());
        }
        let parsed = QueueArn::parse(arn).map_err(|e| e.to_string())?;
        if !self.breaker.allows() {
            return Err("SQS calls are off for a while: it could not be reached".to_owned());
        }
        let result = self.queue.queue_url(&parsed).await;
        self.breaker.record(&result);
        let url = result.map_err(|e| e.to_string())?;
        self.queue_urls
            .lock()
            .await
            .insert(arn.to_owned(), url.clone());
        Ok(url)
    }
}
