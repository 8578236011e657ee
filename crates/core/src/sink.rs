//! The circuit breaker of a handler that forwards every message to one
//! downstream, its sink (an HTTP app, a Kafka cluster): while the sink is
//! down, messages must not be retried through the queue, where each
//! retry spends a receive count and enough of them drain the queue into the
//! dead-letter queue.
//!
//! The rules, in one place:
//!
//! - **Opens** on a failure that says the sink cannot be reached
//!   ([`SinkFault::Unreachable`]: refused, reset, broker unavailable), or
//!   on server errors and timeouts ([`SinkFault::ServerError`],
//!   [`SinkFault::Timeout`]) for [`OPEN_AFTER_SERVER_ERRORS`] different
//!   messages in a row: one poison message answered with 500, or one that
//!   keeps the app busy past the timeout, on every try does not open it
//!   (a hung app times out for the five messages in flight at once).
//! - **While open**, the engine starts no message, except one probe every
//!   [`PROBE_EVERY`]. With [`crate::BatchOptions::hold_on_sink_down`]
//!   (worker mode) the others wait in hand, and a message whose attempt
//!   fails for the outage waits too, to be tried again when the breaker
//!   admits it: no receive count is spent, the worker's heartbeat keeps it
//!   invisible and the worker receives nothing new. Without it (Lambda
//!   mode, where waiting costs billed time and the event source mapping
//!   polls anyway) they fail at once as retries.
//! - **Closes** on any answer of the sink: a success, a rejection (a
//!   permanent failure), or a request to slow down ([`SinkFault::Throttled`]).
//!
//! One warning when it opens and one line when it closes: one per outage.
//! Its figures are [`SinkBreaker::metrics`]: `sqsrt_sink_up`,
//! `sqsrt_sink_duration_seconds` and `sqsrt_sink_errors_total{kind}`.
//!
//! Written here rather than taken from a crate: the breaker crates count
//! failures per call, while this one must count server errors per message,
//! hold the messages of a worker, and tell the receive loop when to pause.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::handler::{HandlerError, HandlerMetric};

/// Server errors or timeouts for this many different messages in a row
/// open the breaker.
pub const OPEN_AFTER_SERVER_ERRORS: usize = 5;

/// While the breaker is open, one message probes the sink this often.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// What a failed attempt says about the sink; set on a retryable failure
/// with [`HandlerError::with_sink_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkFault {
    /// Not reached: connection refused or reset, name not resolved, broker
    /// unavailable. Opens the breaker.
    Unreachable,
    /// No answer in time. Opens the breaker after
    /// [`OPEN_AFTER_SERVER_ERRORS`] different messages in a row (with
    /// server errors): one message may be slow for its own sake.
    Timeout,
    /// It answered with a server error (HTTP 5xx). Opens the breaker after
    /// [`OPEN_AFTER_SERVER_ERRORS`] different messages in a row (with
    /// timeouts).
    ServerError,
    /// It asked to slow down (HTTP 408 or 429, a throttled broker): it is
    /// up, so this counts as an answer.
    Throttled,
}

/// The `kind` label of `sqsrt_sink_errors_total`, in its order.
const ERROR_KINDS: [&str; 6] = [
    "unreachable",
    "timeout",
    "server_error",
    "throttled",
    "rejected",
    "other",
];

/// Upper bounds of `sqsrt_sink_duration_seconds`' buckets (then +Inf).
const DURATION_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How one attempt at the sink ended, as the engine saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Attempt<'a> {
    /// The handler succeeded.
    Succeeded,
    /// The handler returned this error.
    Failed(&'a HandlerError),
    /// It panicked or overran the handler timeout: says nothing of the sink.
    Broke,
}

/// The circuit breaker of one sink; see the [module](self) for its rules.
/// A handler that forwards keeps one and returns it from
/// [`crate::Handler::breaker`]; the engine and the worker do the rest.
#[derive(Debug)]
pub struct SinkBreaker {
    /// The sink's name for the logs (`http://127.0.0.1:8080/`, `kafka`).
    sink: String,
    state: Mutex<State>,
    /// Woken on every change of state (a probe ended, the breaker closed).
    changed: Notify,
    errors: [AtomicU64; ERROR_KINDS.len()],
    /// Attempts per duration bucket (the last one is +Inf).
    durations: [AtomicU64; DURATION_BOUNDS.len() + 1],
    duration_sum_us: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    open: Option<Open>,
    /// Different messages answered with a server error in a row.
    server_errors: Vec<String>,
    /// A probe is running.
    probing: bool,
    /// Messages waiting for the breaker to admit them.
    waiting: usize,
}

impl State {
    /// `None` when a worker may receive (closed, or open with a probe due
    /// that no message in hand can make); else when to look again.
    fn receive_wait(&self) -> Option<Instant> {
        let open = self.open.as_ref()?;
        let may = !self.probing && self.waiting == 0 && Instant::now() >= open.next_probe;
        (!may).then_some(open.next_probe)
    }
}

#[derive(Debug)]
struct Open {
    since: Instant,
    next_probe: Instant,
    failures: u64,
}

/// Leave to run one attempt; a probe's ticket dropped without a result (its
/// task was aborted) lets the next probe go.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    breaker: &'a SinkBreaker,
    probe: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.lock().probing = false;
            self.breaker.changed.notify_waiters();
        }
    }
}

/// Counts a message as waiting for as long as it lives.
struct Waiting<'a>(&'a SinkBreaker);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

impl SinkBreaker {
    /// A closed breaker for the sink named `sink` in its log lines.
    #[must_use]
    pub fn new(sink: impl Into<String>) -> Self {
        Self {
            sink: sink.into(),
            state: Mutex::default(),
            changed: Notify::new(),
            errors: Default::default(),
            durations: Default::default(),
            duration_sum_us: AtomicU64::new(0),
        }
    }

    /// Whether it is open (the sink is taken to be down).
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.lock().open.is_some()
    }

    /// Whether a batch arriving now would find the breaker open with no
    /// probe due: Lambda mode then fails the invocation at once, rather
    /// than spend billed time on records that cannot be delivered.
    #[must_use]
    pub fn refuses_batch(&self) -> bool {
        let state = self.lock();
        state
            .open
            .as_ref()
            .is_some_and(|open| state.probing || Instant::now() < open.next_probe)
    }

    /// Whether a worker may receive: the breaker is closed, or it is open
    /// and a probe is due that no message in hand can make.
    #[must_use]
    pub fn allows_receive(&self) -> bool {
        self.lock().receive_wait().is_none()
    }

    /// Waits until [`SinkBreaker::allows_receive`].
    pub async fn receive_allowed(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let Some(next_probe) = self.lock().receive_wait() else {
                return;
            };
            tokio::select! {
                () = changed => {}
                () = sleep_until(next_probe) => {}
            }
        }
    }

    /// Waits until an attempt may start: at once while closed; while open,
    /// until this message is the probe or the breaker closes (`hold`), or
    /// not at all (`!hold`: a retryable failure unless a probe is running,
    /// whose end it waits for). `stop` and `abandon` end the wait with a
    /// retryable failure.
    pub(crate) async fn admit(
        &self,
        hold: bool,
        stop: &CancellationToken,
        abandon: &CancellationToken,
    ) -> Result<Ticket<'_>, HandlerError> {
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next_probe = {
                let mut state = self.lock();
                let Some(open) = &state.open else {
                    return Ok(Ticket {
                        breaker: self,
                        probe: false,
                    });
                };
                if !state.probing && Instant::now() >= open.next_probe {
                    state.probing = true;
                    return Ok(Ticket {
                        breaker: self,
                        probe: true,
                    });
                }
                if !hold && !state.probing {
                    return Err(self.refusal(open));
                }
                let next_probe = open.next_probe;
                if waiting.is_none() {
                    state.waiting += 1;
                    waiting = Some(Waiting(self));
                }
                next_probe
            };
            tokio::select! {
                () = changed => {}
                () = sleep_until(next_probe) => {}
                () = stop.cancelled() => return Err(self.stopped()),
                () = abandon.cancelled() => return Err(self.stopped()),
            }
        }
    }

    fn refusal(&self, open: &Open) -> HandlerError {
        HandlerError::retry(format!(
            "not sent: {} is down (circuit open for {}s, next probe in {}s)",
            self.sink,
            open.since.elapsed().as_secs(),
            open.next_probe
                .saturating_duration_since(Instant::now())
                .as_secs()
        ))
    }

    fn stopped(&self) -> HandlerError {
        HandlerError::retry(format!(
            "not sent: stopped while {} was down (circuit open)",
            self.sink
        ))
    }

    /// Records how an attempt admitted by `ticket` ended for `message_id`,
    /// after `elapsed`. Returns whether the message failed for an outage
    /// the breaker is now open for: a worker holds it and tries again.
    pub(crate) fn record(
        &self,
        ticket: Ticket<'_>,
        message_id: &str,
        attempt: Attempt<'_>,
        elapsed: Duration,
    ) -> bool {
        self.observe(attempt, elapsed);
        let now = Instant::now();
        let mut state = self.lock();
        let outage = match attempt {
            Attempt::Succeeded => None,
            Attempt::Failed(error) => match error.sink_fault() {
                Some(SinkFault::Throttled) => None,
                Some(fault) => Some((fault, error.reason())),
                // A permanent failure: the sink answered with a rejection.
                None if error.is_permanent() => None,
                None => return self.neutral(state, ticket, now),
            },
            Attempt::Broke => return self.neutral(state, ticket, now),
        };
        let held = match outage {
            None => {
                state.server_errors.clear();
                if let Some(open) = state.open.take() {
                    info!(sink = %self.sink, down_secs = open.since.elapsed().as_secs(), failures = open.failures, "The sink answers again: circuit closed, messages flow.");
                }
                false
            }
            Some((fault, reason)) => {
                if let Some(open) = &mut state.open {
                    open.failures += 1;
                    if ticket.probe {
                        open.next_probe = now + PROBE_EVERY;
                    }
                    true
                } else {
                    let opens = fault == SinkFault::Unreachable || {
                        if !state.server_errors.iter().any(|id| id == message_id) {
                            state.server_errors.push(message_id.to_owned());
                        }
                        state.server_errors.len() >= OPEN_AFTER_SERVER_ERRORS
                    };
                    if opens {
                        state.server_errors.clear();
                        state.open = Some(Open {
                            since: now,
                            next_probe: now + PROBE_EVERY,
                            failures: 1,
                        });
                        warn!(sink = %self.sink, %reason, probe_every_secs = PROBE_EVERY.as_secs(), "The sink is down: circuit open. Messages that fail for it are held, not retried; a worker receives nothing new; one message probes the sink every few seconds; Lambda invocations fail at once until a probe gets through.");
                    }
                    opens
                }
            }
        };
        drop(state);
        drop(ticket);
        self.changed.notify_waiters();
        held
    }

    /// A result that says nothing of the sink: a probe that ended so lets
    /// the next one go after [`PROBE_EVERY`].
    fn neutral(
        &self,
        mut state: std::sync::MutexGuard<'_, State>,
        ticket: Ticket<'_>,
        now: Instant,
    ) -> bool {
        if ticket.probe
            && let Some(open) = &mut state.open
        {
            open.next_probe = now + PROBE_EVERY;
        }
        drop(state);
        drop(ticket);
        self.changed.notify_waiters();
        false
    }

    fn observe(&self, attempt: Attempt<'_>, elapsed: Duration) {
        let kind = match attempt {
            Attempt::Succeeded => None,
            Attempt::Failed(error) => Some(match error.sink_fault() {
                Some(SinkFault::Unreachable) => 0,
                Some(SinkFault::Timeout) => 1,
                Some(SinkFault::ServerError) => 2,
                Some(SinkFault::Throttled) => 3,
                None if error.is_permanent() => 4,
                None => 5,
            }),
            Attempt::Broke => Some(5),
        };
        if let Some(kind) = kind {
            self.errors[kind].fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let bucket = DURATION_BOUNDS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(DURATION_BOUNDS.len());
        self.durations[bucket].fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// `sqsrt_sink_up` (1, or 0 while open), `sqsrt_sink_duration_seconds`
    /// (each attempt's time) and `sqsrt_sink_errors_total{kind}` (failed
    /// attempts by [`SinkFault`], `rejected` for permanent failures and
    /// `other` for the rest), for the handler's [`crate::Handler::metrics`].
    #[must_use]
    pub fn metrics(&self) -> Vec<HandlerMetric> {
        let mut metrics = vec![HandlerMetric::gauge(
            "sqsrt_sink_up",
            "1 while the sink answers, 0 while its circuit is open",
            i64::from(!self.is_open()),
        )];
        let buckets: Vec<(f64, u64)> = DURATION_BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.durations)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        #[allow(clippy::cast_precision_loss)] // microseconds: exact below 2^53
        let sum = self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        metrics.push(HandlerMetric::histogram(
            "sqsrt_sink_duration_seconds",
            "Time of each attempt at the sink",
            sum,
            buckets.iter().map(|(_, count)| count).sum(),
            buckets,
        ));
        for (kind, count) in ERROR_KINDS.iter().zip(&self.errors) {
            metrics.push(
                HandlerMetric::counter(
                    "sqsrt_sink_errors",
                    "Failed attempts at the sink, by kind",
                    count.load(Ordering::Relaxed),
                )
                .with_label("kind", kind),
            );
        }
        metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain fields changed together under the lock: a panic cannot
        // leave them half-changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
