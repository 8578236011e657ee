//! The batch engine: runs messages through a [`Handler`] with bounded
//! concurrency, FIFO group ordering, per-message timeouts, caught panics and
//! deadlines, and reports one [`Outcome`] per message.
//!
//! Layout: this file holds the public types and the batch loop, which waits
//! on deadlines, signals, permits and finished handlers; `batch` holds the
//! loop's state (which messages wait, run, follow which in their group) and
//! its rules; `task` builds one handler's future (timeout, caught panic) and
//! decides when first polls run inline.

mod batch;
mod groups;
mod task;

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::handler::{Handler, Invocation};
use crate::message::Message;
use crate::outcome::{Outcome, SkipReason};

use self::batch::Batch;
use self::groups::{GroupSlots, slot_freed};

/// How the engine runs messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    max_in_flight: NonZeroUsize,
    handler_timeout: Duration,
    max_in_flight_per_group: Option<NonZeroUsize>,
}

impl Default for EngineConfig {
    /// 32 messages at once, 20 seconds per message.
    fn default() -> Self {
        Self {
            max_in_flight: NonZeroUsize::new(32).expect("32 is not zero"),
            handler_timeout: Duration::from_secs(20),
            max_in_flight_per_group: None,
        }
    }
}

impl EngineConfig {
    /// Messages processed at once, across every batch run by one engine.
    #[must_use]
    pub fn max_in_flight(mut self, max_in_flight: NonZeroUsize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    /// Per-message timeout; a message that overruns it is a retryable failure.
    #[must_use]
    pub fn handler_timeout(mut self, handler_timeout: Duration) -> Self {
        self.handler_timeout = handler_timeout;
        self
    }

    /// Messages of one tenant processed at once, across every batch run by
    /// one engine (`None`: no cap). A tenant is a message group on a
    /// standard queue (SQS fair queues); FIFO batches
    /// ([`BatchOptions::fifo`]) run one message per group at a time anyway.
    /// A message whose tenant is at its cap waits without taking a handler
    /// slot: other tenants' messages start before it.
    #[must_use]
    pub fn max_in_flight_per_group(mut self, limit: Option<NonZeroUsize>) -> Self {
        self.max_in_flight_per_group = limit;
        self
    }

    /// The per-tenant cap, if any.
    #[must_use]
    pub fn group_limit(&self) -> Option<usize> {
        self.max_in_flight_per_group.map(NonZeroUsize::get)
    }

    /// The most handlers running at once.
    #[must_use]
    pub fn in_flight_limit(&self) -> usize {
        self.max_in_flight.get()
    }

    /// The per-message timeout.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.handler_timeout
    }
}

/// Limits on one call of [`Engine::run_batch`]. The default has none.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// No message starts at or after this instant; unstarted ones are
    /// [`SkipReason::Deadline`]. It also caps each [`Context::deadline`](crate::Context::deadline).
    pub start_deadline: Option<Instant>,
    /// At this instant, messages still running are reported as retryable
    /// failures and abandoned (their tasks aborted).
    pub abandon_deadline: Option<Instant>,
    /// Once cancelled, no message starts; unstarted ones are
    /// [`SkipReason::Shutdown`]. Running ones finish (drain).
    pub stop: CancellationToken,
    /// Once cancelled, running messages are abandoned as with
    /// `abandon_deadline`; handlers see it as [`Context::cancellation`](crate::Context::cancellation).
    pub abandon: CancellationToken,
    /// The messages come from a FIFO queue: those of one group run one at a
    /// time in batch order, and when one fails the rest of its group is
    /// skipped. Otherwise (a standard queue, where SQS fair queues use the
    /// group id as a tenant key) a group orders nothing; the handler still
    /// sees the group id. Default: `false`.
    pub fifo: bool,
    /// With a per-tenant cap ([`EngineConfig::max_in_flight_per_group`]): a
    /// message still waiting for its tenant this long after the batch began
    /// is skipped as [`SkipReason::GroupBusy`] with this delay, so that it
    /// returns to the queue instead of holding a receive slot. `None`: it
    /// waits as long as the batch (Lambda: until the start deadline).
    pub group_wait: Option<Duration>,
    /// The invocation the batch came in, given to each handler as
    /// [`Context::request_id`](crate::Context::request_id) and
    /// [`Context::trace_id`](crate::Context::trace_id). Default: none.
    pub invocation: Invocation,
    /// With a handler that has a [`crate::SinkBreaker`]: while it is open,
    /// messages wait in hand for it to admit them, and one whose attempt
    /// failed for the outage waits to be tried again (worker mode, where
    /// the heartbeat keeps them invisible). Otherwise (Lambda mode) they
    /// fail at once as retries. Default: `false`.
    pub hold_on_sink_down: bool,
}

/// One decided message: its index in the batch and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Index of the message in the batch given to [`Engine::run_batch`].
    pub index: usize,
    /// What became of it.
    pub outcome: Outcome,
    /// How long its handler ran; `None` when it never started.
    pub elapsed: Option<Duration>,
}

/// Runs batches of messages through one handler. Cheap to clone; clones
/// share the in-flight bound.
#[derive(Debug)]
pub struct Engine<H> {
    handler: Arc<H>,
    permits: Arc<Semaphore>,
    /// Running handlers per tenant, with a per-tenant cap.
    groups: Option<Arc<GroupSlots>>,
    config: EngineConfig,
}

impl<H> Clone for Engine<H> {
    fn clone(&self) -> Self {
        Self {
            handler: Arc::clone(&self.handler),
            permits: Arc::clone(&self.permits),
            groups: self.groups.clone(),
            config: self.config,
        }
    }
}

/// Far enough that a timer never fires, near enough for tokio's timer wheel.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365);

impl<H: Handler> Engine<H> {
    /// An engine running `handler` under `config`.
    pub fn new(handler: H, config: EngineConfig) -> Self {
        Self::from_arc(Arc::new(handler), config)
    }

    /// An engine running a shared `handler` under `config`.
    pub fn from_arc(handler: Arc<H>, config: EngineConfig) -> Self {
        Self {
            handler,
            permits: Arc::new(Semaphore::new(config.max_in_flight.get())),
            groups: config
                .group_limit()
                .map(|limit| Arc::new(GroupSlots::new(limit))),
            config,
        }
    }

    /// The engine's configuration.
    pub fn config(&self) -> EngineConfig {
        self.config
    }

    /// The handler it runs.
    pub fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    /// Runs `messages` and returns their outcomes in batch order.
    ///
    /// # Panics
    ///
    /// Never: every message is reported exactly once (a handler's panic is
    /// caught and becomes a retry).
    pub async fn run_batch(&self, messages: Vec<Message>, options: &BatchOptions) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; messages.len()];
        self.run_batch_with(messages, options, |report| {
            outcomes[report.index] = Some(report.outcome);
        })
        .await;
        all_reported(outcomes)
    }

    /// Like [`Engine::run_batch`], also giving how long each handler ran
    /// (`None`: it never started), in batch order.
    ///
    /// # Panics
    ///
    /// Never, as [`Engine::run_batch`].
    pub async fn run_batch_timed(
        &self,
        messages: Vec<Message>,
        options: &BatchOptions,
    ) -> (Vec<Outcome>, Vec<Option<Duration>>) {
        let count = messages.len();
        let mut outcomes: Vec<Option<Outcome>> = vec![None; count];
        let mut elapsed = vec![None; count];
        self.run_batch_with(messages, options, |report| {
            outcomes[report.index] = Some(report.outcome);
            elapsed[report.index] = report.elapsed;
        })
        .await;
        (all_reported(outcomes), elapsed)
    }

    /// Runs `messages`, calling `on_report` once per message as soon as its
    /// outcome is decided (in completion order), and returns when every
    /// message is reported.
    ///
    /// Rules: at most `max_in_flight` handlers run at once (across all
    /// batches of this engine); with [`BatchOptions::fifo`], messages of one
    /// group run one at a time in batch order, and when one fails the rest of
    /// its group is skipped;
    /// a handler that panics or overruns the timeout is a retryable failure.
    ///
    /// # Panics
    ///
    /// Never: the expectations inside are invariants of the bookkeeping.
    pub async fn run_batch_with<F>(
        &self,
        messages: Vec<Message>,
        options: &BatchOptions,
        mut on_report: F,
    ) where
        F: FnMut(Report),
    {
        // The cap orders nothing on FIFO batches: a group runs one at a time there.
        let groups = self.groups.as_ref().filter(|_| !options.fifo);
        let mut batch = Batch::new(messages, options, self.config.handler_timeout, groups);
        let mut freed = groups.map(|g| g.subscribe());
        let now = Instant::now();
        let group_wait_sleep = sleep_until(
            options
                .group_wait
                .filter(|_| groups.is_some())
                .map_or(now + FAR_FUTURE, |wait| now + wait),
        );
        let start_sleep = sleep_until(options.start_deadline.unwrap_or(now + FAR_FUTURE));
        let abandon_sleep = sleep_until(options.abandon_deadline.unwrap_or(now + FAR_FUTURE));
        let stop_signal = options.stop.cancelled();
        let abandon_signal = options.abandon.cancelled();
        tokio::pin!(
            start_sleep,
            abandon_sleep,
            stop_signal,
            abandon_signal,
            group_wait_sleep
        );

        loop {
            batch.check_stop(options, &mut on_report);
            // Seen before the check: a slot given back after it wakes the wait below.
            if let Some(freed) = &mut freed {
                freed.borrow_and_update();
            }
            if group_wait_sleep.is_elapsed() {
                batch.expire_group_waits(options.group_wait, &mut on_report);
            }
            // Handlers finishing on their first poll keep this loop busy:
            // stop and start deadline are checked before each start.
            while batch.can_start() {
                let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                    break;
                };
                batch.start_next(&self.handler, permit, &mut on_report);
                batch.check_stop(options, &mut on_report);
            }
            if batch.is_done() {
                break;
            }
            batch.debug_check();

            tokio::select! {
                biased;
                () = &mut abandon_signal => {
                    batch.abandon(SkipReason::Shutdown, "abandoned: shutdown grace ran out", &mut on_report);
                    break;
                }
                () = &mut abandon_sleep, if options.abandon_deadline.is_some() => {
                    batch.abandon(SkipReason::Deadline, "abandoned: invocation deadline reached", &mut on_report);
                    break;
                }
                Some(joined) = batch.running.join_next(), if !batch.running.is_empty() => {
                    batch.joined(joined, &mut on_report);
                }
                () = &mut stop_signal, if !batch.is_stopped() => {}
                // A tenant at its cap got a slot back (in any batch).
                () = slot_freed(&mut freed), if batch.waits_for_group() => {}
                () = &mut group_wait_sleep, if batch.waits_for_group() => {}
                () = &mut start_sleep, if !batch.is_stopped() && options.start_deadline.is_some() => {}
                // Waited on only while none of this batch's handlers runs: otherwise
                // their completions free permits and the top-up above takes them,
                // without queueing (and dequeueing) a waiter on every turn.
                permit = Arc::clone(&self.permits).acquire_owned(), if batch.can_start() && batch.running.is_empty() => {
                    let permit = permit.expect("the engine never closes its semaphore");
                    // The last check was before the wait: read the clock afresh.
                    batch.forget_clock();
                    batch.start_next(&self.handler, permit, &mut on_report);
                }
            }
        }
        // Anything still running was abandoned: dropping the set aborts it.
        batch.running.abort_all();
    }
}

fn all_reported(outcomes: Vec<Option<Outcome>>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .map(|o| o.expect("run_batch_with reports every message exactly once"))
        .collect()
}

/// The text a panic was raised with (`panic!("...")`), or a placeholder for
/// payloads that are not strings.
#[must_use]
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests;
