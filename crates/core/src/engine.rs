//! The batch engine: runs messages through a [`Handler`] with bounded
//! concurrency, FIFO group ordering, per-message timeouts, caught panics and
//! deadlines, and reports one [`Outcome`] per message.

use std::collections::{HashMap, VecDeque};
use std::future::Future as _;
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{Id, JoinSet};
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::handler::{Context, Handler, HandlerError};
use crate::message::Message;
use crate::outcome::{Outcome, SkipReason};

/// How the engine runs messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    max_in_flight: NonZeroUsize,
    handler_timeout: Duration,
}

impl Default for EngineConfig {
    /// 32 messages at once, 20 seconds per message.
    fn default() -> Self {
        Self {
            max_in_flight: NonZeroUsize::new(32).expect("32 is not zero"),
            handler_timeout: Duration::from_secs(20),
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
    /// [`SkipReason::Deadline`]. It also caps each [`Context::deadline`].
    pub start_deadline: Option<Instant>,
    /// At this instant, messages still running are reported as retryable
    /// failures and abandoned (their tasks aborted).
    pub abandon_deadline: Option<Instant>,
    /// Once cancelled, no message starts; unstarted ones are
    /// [`SkipReason::Shutdown`]. Running ones finish (drain).
    pub stop: CancellationToken,
    /// Once cancelled, running messages are abandoned as with
    /// `abandon_deadline`; handlers see it as [`Context::cancellation`].
    pub abandon: CancellationToken,
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
    config: EngineConfig,
}

impl<H> Clone for Engine<H> {
    fn clone(&self) -> Self {
        Self {
            handler: Arc::clone(&self.handler),
            permits: Arc::clone(&self.permits),
            config: self.config,
        }
    }
}

/// What a handler task hands back: its message's index, the handler's result
/// (`Ok(None)` on timeout, `Err` with the message of a panic) and how long it
/// ran. Panics are caught inside the task, so the index always comes back
/// and no task-id lookup is needed per message.
type TaskOutput = (
    usize,
    Result<Option<Result<(), HandlerError>>, String>,
    Duration,
);

/// A first poll longer than this counts as slow (see [`InlinePolls`]).
const INLINE_POLL_LIMIT: Duration = Duration::from_micros(100);

/// Slow first polls in a row that turn inline polling off for the rest of a
/// batch. One is not enough: on a busy machine the OS takes the thread away
/// for a millisecond now and then, and a single such pause spawned the rest
/// of a 10,000-record no-op batch (seen in `perf`: every handler a task).
const INLINE_SLOW_STREAK: u8 = 3;

/// Whether handlers still get their first poll on the batch's task (see
/// `Engine::start`): yes until [`INLINE_SLOW_STREAK`] first polls in a row
/// took longer than [`INLINE_POLL_LIMIT`] (CPU-heavy handlers).
#[derive(Debug, Default)]
struct InlinePolls {
    slow_streak: u8,
}

impl InlinePolls {
    fn enabled(&self) -> bool {
        self.slow_streak < INLINE_SLOW_STREAK
    }

    fn record(&mut self, took: Duration) {
        self.slow_streak = if took > INLINE_POLL_LIMIT {
            self.slow_streak + 1
        } else {
            0
        };
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
            config,
        }
    }

    /// The engine's configuration.
    pub fn config(&self) -> EngineConfig {
        self.config
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
        outcomes
            .into_iter()
            .map(|o| o.expect("run_batch_with reports every message exactly once"))
            .collect()
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
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.expect("run_batch_with reports every message exactly once"))
            .collect();
        (outcomes, elapsed)
    }

    /// Runs `messages`, calling `on_report` once per message as soon as its
    /// outcome is decided (in completion order), and returns when every
    /// message is reported.
    ///
    /// Rules: at most `max_in_flight` handlers run at once (across all
    /// batches of this engine); messages of one FIFO group run one at a time
    /// in batch order, and when one fails the rest of its group is skipped;
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
        let mut batch = Batch::new(messages, &options.abandon);
        let mut running: JoinSet<TaskOutput> = JoinSet::new();
        // The task of each running message; `None` once it is reported.
        let mut task_of: Vec<Option<Id>> = vec![None; batch.slots.len()];
        let mut stopped: Option<SkipReason> = None;
        let mut inline = InlinePolls::default();

        let now = Instant::now();
        let start_sleep = sleep_until(options.start_deadline.unwrap_or(now + FAR_FUTURE));
        let abandon_sleep = sleep_until(options.abandon_deadline.unwrap_or(now + FAR_FUTURE));
        let stop_signal = options.stop.cancelled();
        let abandon_signal = options.abandon.cancelled();
        tokio::pin!(start_sleep, abandon_sleep, stop_signal, abandon_signal);

        loop {
            batch.check_stop(&mut stopped, options, &mut on_report);
            if stopped.is_none() {
                while !batch.ready.is_empty() {
                    // Handlers finishing on their first poll keep this loop
                    // busy: stop and start deadline are checked before each.
                    batch.check_stop(&mut stopped, options, &mut on_report);
                    if stopped.is_some() {
                        break;
                    }
                    let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                        break;
                    };
                    let index = batch.ready.pop_front().expect("checked non-empty");
                    let started = self.start(
                        &mut batch,
                        index,
                        permit,
                        options,
                        &mut running,
                        &mut task_of,
                        &mut inline,
                    );
                    if let Some(output) = started {
                        let (index, outcome, elapsed) = self.outcome_of(output);
                        batch.finish(index, outcome, elapsed, stopped.as_ref(), &mut on_report);
                    }
                }
            }
            if batch.pending == 0 {
                break;
            }
            debug_assert!(
                !running.is_empty() || (!batch.ready.is_empty() && stopped.is_none()),
                "pending messages with nothing running or startable"
            );

            tokio::select! {
                biased;
                () = &mut abandon_signal => {
                    batch.abandon(&task_of, &stopped.unwrap_or(SkipReason::Shutdown), "abandoned: shutdown grace ran out", &mut on_report);
                    break;
                }
                () = &mut abandon_sleep, if options.abandon_deadline.is_some() => {
                    batch.abandon(&task_of, &stopped.unwrap_or(SkipReason::Deadline), "abandoned: invocation deadline reached", &mut on_report);
                    break;
                }
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    let (index, outcome, elapsed) = match joined {
                        Ok(output) => self.outcome_of(output),
                        // Only a task cancelled from outside (runtime shutdown) ends this way.
                        Err(error) => {
                            let Some(index) = task_of.iter().position(|t| *t == Some(error.id())) else { continue };
                            (index, Outcome::Retry { reason: "handler task was cancelled".to_owned(), delay: None }, None)
                        }
                    };
                    task_of[index] = None;
                    batch.finish(index, outcome, elapsed, stopped.as_ref(), &mut on_report);
                }
                () = &mut stop_signal, if stopped.is_none() => {}
                () = &mut start_sleep, if stopped.is_none() && options.start_deadline.is_some() => {}
                // Waited on only while none of this batch's handlers runs: otherwise
                // their completions free permits and the top-up above takes them,
                // without queueing (and dequeueing) a waiter on every turn.
                permit = Arc::clone(&self.permits).acquire_owned(), if stopped.is_none() && !batch.ready.is_empty() && running.is_empty() => {
                    let permit = permit.expect("the engine never closes its semaphore");
                    let index = batch.ready.pop_front().expect("checked non-empty");
                    // The last check was before the wait: read the clock afresh.
                    batch.checked_at = None;
                    if let Some(output) = self.start(&mut batch, index, permit, options, &mut running, &mut task_of, &mut inline) {
                        let (index, outcome, elapsed) = self.outcome_of(output);
                        batch.finish(index, outcome, elapsed, stopped.as_ref(), &mut on_report);
                    }
                }
            }
        }
        // Anything still running was abandoned: dropping the set aborts it.
        running.abort_all();
    }

    /// Starts the message at `index`. Its first poll runs right here, on the
    /// batch's task: a handler that finishes without waiting (a no-op, a
    /// quick synchronous check) is done without a task, a cross-thread
    /// wake-up or a cross-thread free of its message, and its output is
    /// returned. A handler that waits is then moved to its own task in
    /// `running`. Once first polls are slow ([`InlinePolls`]: CPU-heavy
    /// handlers), `inline` turns off and the rest of the batch is
    /// spawned unpolled, so such handlers run in parallel on the runtime's
    /// threads. On a 10,000-record no-op batch this halved the engine's cost
    /// per record (README, Performance).
    #[expect(
        clippy::too_many_arguments,
        reason = "the batch loop's state, borrowed"
    )]
    fn start(
        &self,
        batch: &mut Batch,
        index: usize,
        permit: OwnedSemaphorePermit,
        options: &BatchOptions,
        running: &mut JoinSet<TaskOutput>,
        task_of: &mut [Option<Id>],
        inline: &mut InlinePolls,
    ) -> Option<TaskOutput> {
        let message = batch.slots[index]
            .take()
            .expect("a message starts at most once");
        let handler = Arc::clone(&self.handler);
        let timeout = self.config.handler_timeout;
        let started = batch.checked_at.take().unwrap_or_else(Instant::now);
        let mut deadline = started + timeout;
        if let Some(start_deadline) = options.start_deadline {
            deadline = deadline.min(start_deadline);
        }
        let ctx = Context::shared(deadline, Arc::clone(&batch.abandon));
        // Boxed so that it can move into a task after its first poll.
        let mut task = Box::pin(async move {
            let _permit = permit;
            let run = AssertUnwindSafe(async move {
                let mut handling = std::pin::pin!(handler.handle(message, ctx));
                // `tokio::time::timeout`, with its timer made on the first
                // poll that finds the handler waiting: one that finishes at
                // once (most of a quick batch) costs no timer, runtime
                // handle or clock read.
                let mut timer = std::pin::pin!(None::<Sleep>);
                std::future::poll_fn(|cx| {
                    if let Poll::Ready(result) = handling.as_mut().poll(cx) {
                        return Poll::Ready(Some(result));
                    }
                    if timer.is_none() {
                        timer.set(Some(sleep_until(started + timeout)));
                    }
                    match timer.as_mut().as_pin_mut() {
                        Some(sleep) => sleep.poll(cx).map(|()| None),
                        None => Poll::Pending,
                    }
                })
                .await
            })
            .catch_unwind()
            .await;
            let result = run.map_err(|payload| panic_message(&*payload));
            (index, result, started.elapsed())
        });
        if inline.enabled() {
            // The batch's task is already in the caller's span. A waker is
            // not needed: a future left pending is polled again, with its
            // task's waker, as soon as it is spawned below.
            let polled = task
                .as_mut()
                .poll(&mut TaskContext::from_waker(Waker::noop()));
            // A finished handler measured its own time: no second clock read.
            if let Poll::Ready(output) = polled {
                inline.record(output.2);
                return Some(output);
            }
            inline.record(started.elapsed());
        }
        // The caller's span (e.g. Lambda's request id) follows the handler into its task.
        let span = tracing::Span::current();
        let handle = if span.is_none() {
            running.spawn(task)
        } else {
            running.spawn(task.instrument(span))
        };
        task_of[index] = Some(handle.id());
        None
    }

    /// A finished handler's output as the message's outcome.
    fn outcome_of(&self, output: TaskOutput) -> (usize, Outcome, Option<Duration>) {
        match output {
            (index, Ok(Some(result)), elapsed) => (
                index,
                result.map_or_else(Outcome::from, |()| Outcome::Success),
                Some(elapsed),
            ),
            (index, Ok(None), elapsed) => (
                index,
                Outcome::Retry {
                    reason: format!("handler timed out after {:?}", self.config.handler_timeout),
                    delay: None,
                },
                Some(elapsed),
            ),
            (index, Err(panic), _) => (
                index,
                Outcome::Retry {
                    reason: format!("handler panicked: {panic}"),
                    delay: None,
                },
                None,
            ),
        }
    }
}

/// The batch's bookkeeping: which messages wait, which follow which in their
/// FIFO group, and how many are not yet reported.
struct Batch {
    slots: Vec<Option<Message>>,
    /// Ids of the messages that have a group (empty for the others).
    ids: Vec<String>,
    next_in_group: Vec<Option<usize>>,
    ready: VecDeque<usize>,
    pending: usize,
    /// The batch's abandon signal, shared by its handlers' contexts.
    abandon: Arc<CancellationToken>,
    /// The clock as `check_stop` last read it, taken by the start that
    /// follows: one clock read per start, not two.
    checked_at: Option<Instant>,
}

impl Batch {
    fn new(messages: Vec<Message>, abandon: &CancellationToken) -> Self {
        let n = messages.len();
        let mut next_in_group = vec![None; n];
        let mut ready = VecDeque::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        {
            let mut last_of_group: HashMap<&str, usize> = HashMap::new();
            for (index, message) in messages.iter().enumerate() {
                // Needed only to name a failed FIFO message to the rest of its group.
                ids.push(if message.group_id().is_some() {
                    message.id().to_owned()
                } else {
                    String::new()
                });
                match message.group_id() {
                    None => ready.push_back(index),
                    Some(group) => match last_of_group.insert(group, index) {
                        None => ready.push_back(index),
                        Some(previous) => next_in_group[previous] = Some(index),
                    },
                }
            }
        }
        Self {
            slots: messages.into_iter().map(Some).collect(),
            ids,
            next_in_group,
            ready,
            pending: n,
            abandon: Arc::new(abandon.clone()),
            checked_at: None,
        }
    }

    /// Once a stop or the start deadline is seen, records why in `stopped`
    /// and skips every message waiting to start.
    fn check_stop(
        &mut self,
        stopped: &mut Option<SkipReason>,
        options: &BatchOptions,
        on_report: &mut impl FnMut(Report),
    ) {
        if stopped.is_some() {
            return;
        }
        if options.stop.is_cancelled() {
            *stopped = Some(SkipReason::Shutdown);
        } else if let Some(deadline) = options.start_deadline {
            let now = Instant::now();
            self.checked_at = Some(now);
            if now >= deadline {
                *stopped = Some(SkipReason::Deadline);
            }
        }
        if let Some(reason) = stopped {
            while let Some(index) = self.ready.pop_front() {
                self.skip_chain(Some(index), reason, on_report);
            }
        }
    }

    fn report(
        &mut self,
        index: usize,
        outcome: Outcome,
        elapsed: Option<Duration>,
        on_report: &mut impl FnMut(Report),
    ) {
        self.pending -= 1;
        on_report(Report {
            index,
            outcome,
            elapsed,
        });
    }

    /// Skips `start` and every later message of its group.
    fn skip_chain(
        &mut self,
        start: Option<usize>,
        reason: &SkipReason,
        on_report: &mut impl FnMut(Report),
    ) {
        let mut next = start;
        while let Some(index) = next {
            self.slots[index] = None;
            next = self.next_in_group[index];
            self.report(
                index,
                Outcome::Skipped {
                    reason: reason.clone(),
                },
                None,
                on_report,
            );
        }
    }

    fn finish(
        &mut self,
        index: usize,
        outcome: Outcome,
        elapsed: Option<Duration>,
        stopped: Option<&SkipReason>,
        on_report: &mut impl FnMut(Report),
    ) {
        let next = self.next_in_group[index];
        let succeeded = outcome.is_success();
        self.report(index, outcome, elapsed, on_report);
        if next.is_none() {
            return;
        }
        if !succeeded {
            let reason = SkipReason::GroupFailed {
                failed_message_id: self.ids[index].clone(),
            };
            self.skip_chain(next, &reason, on_report);
        } else if let Some(reason) = stopped {
            self.skip_chain(next, reason, on_report);
        } else {
            self.ready.push_back(next.expect("checked above"));
        }
    }

    /// Reports running messages as retryable failures and everything not
    /// started as skipped.
    fn abandon(
        &mut self,
        task_of: &[Option<Id>],
        skip: &SkipReason,
        why: &str,
        on_report: &mut impl FnMut(Report),
    ) {
        let running: Vec<usize> = (0..task_of.len())
            .filter(|&i| task_of[i].is_some())
            .collect();
        for index in running {
            let outcome = Outcome::Retry {
                reason: why.to_owned(),
                delay: None,
            };
            self.finish(index, outcome, None, Some(skip), on_report);
        }
        while let Some(index) = self.ready.pop_front() {
            self.skip_chain(Some(index), skip, on_report);
        }
    }
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
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::handler::handler_fn;

    fn config(max_in_flight: usize) -> EngineConfig {
        EngineConfig::default()
            .max_in_flight(NonZeroUsize::new(max_in_flight).unwrap())
            .handler_timeout(Duration::from_secs(5))
    }

    /// A handler driven by the body: `ok`, `retry`, `perm`, `panic`,
    /// `sleep:<ms>`; it records the order in which bodies started.
    fn scripted(log: Arc<Mutex<Vec<String>>>) -> impl Handler {
        handler_fn(move |m: Message, _ctx: Context| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().push(m.id().to_owned());
                let body = m.body();
                if let Some(ms) = body.strip_prefix("sleep:") {
                    tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                    return Ok(());
                }
                match body {
                    "retry" => Err(HandlerError::retry_after(
                        "asked to retry",
                        Duration::from_secs(7),
                    )),
                    "perm" => Err(HandlerError::permanent("asked to reject")),
                    "panic" => panic!("boom in {}", m.id()),
                    _ => Ok(()),
                }
            }
        })
    }

    /// How many handlers run at once, and the most seen.
    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        peak: AtomicUsize,
    }

    impl Gauge {
        fn enter(&self) {
            let current = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(current, Ordering::SeqCst);
        }

        fn exit(&self) {
            self.now.fetch_sub(1, Ordering::SeqCst);
        }

        fn peak(&self) -> usize {
            self.peak.load(Ordering::SeqCst)
        }
    }

    fn msgs(bodies: &[(&str, Option<&str>, &str)]) -> Vec<Message> {
        bodies
            .iter()
            .map(|(id, group, body)| {
                let m = Message::new(*id, *body);
                match group {
                    Some(g) => m.with_group(*g),
                    None => m,
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn empty_batch_reports_nothing() {
        let engine = Engine::new(scripted(Arc::default()), config(4));
        assert!(
            engine
                .run_batch(Vec::new(), &BatchOptions::default())
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn each_handler_result_maps_to_its_outcome() {
        let engine = Engine::new(scripted(Arc::default()), config(4));
        let out = engine
            .run_batch(
                msgs(&[("a", None, "ok"), ("b", None, "retry"), ("c", None, "perm")]),
                &BatchOptions::default(),
            )
            .await;
        assert_eq!(out[0], Outcome::Success);
        assert_eq!(
            out[1],
            Outcome::Retry {
                reason: "asked to retry".into(),
                delay: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            out[2],
            Outcome::Permanent {
                reason: "asked to reject".into()
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn panic_is_a_retry_and_the_rest_of_the_batch_goes_on() {
        let engine = Engine::new(scripted(Arc::default()), config(2));
        let out = engine
            .run_batch(
                msgs(&[("a", None, "panic"), ("b", None, "ok"), ("c", None, "ok")]),
                &BatchOptions::default(),
            )
            .await;
        match &out[0] {
            Outcome::Retry {
                reason,
                delay: None,
            } => {
                assert!(reason.contains("handler panicked: boom in a"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(&out[1..], &[Outcome::Success, Outcome::Success]);
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_is_a_retry() {
        let engine = Engine::new(scripted(Arc::default()), config(2));
        let out = engine
            .run_batch(
                msgs(&[("slow", None, "sleep:6000"), ("fast", None, "sleep:10")]),
                &BatchOptions::default(),
            )
            .await;
        assert!(
            matches!(&out[0], Outcome::Retry { reason, .. } if reason.contains("timed out after 5s")),
            "{out:?}"
        );
        assert_eq!(out[1], Outcome::Success);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_bound_is_never_exceeded_and_is_used() {
        let gauge = Arc::new(Gauge::default());
        let handler = {
            let gauge = Arc::clone(&gauge);
            handler_fn(move |_m: Message, _ctx: Context| {
                let gauge = Arc::clone(&gauge);
                async move {
                    gauge.enter();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    gauge.exit();
                    Ok::<_, HandlerError>(())
                }
            })
        };
        let engine = Engine::new(handler, config(7));
        let batch: Vec<Message> = (0..200).map(|i| Message::new(i.to_string(), "")).collect();
        // Two batches at once share the engine's bound.
        let options = BatchOptions::default();
        let (a, b) = tokio::join!(
            engine.run_batch(batch.clone(), &options),
            engine.run_batch(batch, &options)
        );
        assert!(a.iter().chain(&b).all(Outcome::is_success));
        assert_eq!(gauge.peak(), 7);
    }

    /// A handler that records the time each call's context has left, then
    /// works (sleeps) for `work`.
    fn remaining_recorder(work: Duration) -> (Arc<Mutex<Vec<Duration>>>, impl Handler) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = {
            let seen = Arc::clone(&seen);
            handler_fn(move |_m: Message, ctx: Context| {
                seen.lock().unwrap().push(ctx.remaining());
                async move {
                    if !work.is_zero() {
                        tokio::time::sleep(work).await;
                    }
                    Ok::<_, HandlerError>(())
                }
            })
        };
        (seen, handler)
    }

    /// Runs `batch` on a task of its own through a handler that, by body,
    /// sleeps 1 ms (`wait`), spins 2 ms without awaiting (`slow`) or returns
    /// at once; gives that task's id and each handler's body and task id.
    async fn tasks_of_handlers(batch: Vec<Message>) -> (Id, Vec<(String, Option<Id>)>) {
        let tasks = Arc::new(Mutex::new(Vec::new()));
        let handler = {
            let tasks = Arc::clone(&tasks);
            handler_fn(move |m: Message, _ctx: Context| {
                let tasks = Arc::clone(&tasks);
                async move {
                    match m.body() {
                        "wait" => tokio::time::sleep(Duration::from_millis(1)).await,
                        "slow" => {
                            let until = std::time::Instant::now() + Duration::from_millis(2);
                            while std::time::Instant::now() < until {
                                std::hint::spin_loop();
                            }
                        }
                        _ => {}
                    }
                    tasks
                        .lock()
                        .unwrap()
                        .push((m.into_body(), tokio::task::try_id()));
                    Ok::<_, HandlerError>(())
                }
            })
        };
        let engine = Engine::new(handler, config(4));
        let batch_task = tokio::spawn(async move {
            let outcomes = engine.run_batch(batch, &BatchOptions::default()).await;
            assert!(outcomes.iter().all(Outcome::is_success));
        });
        let batch_id = batch_task.id();
        batch_task.await.unwrap();
        let tasks = std::mem::take(&mut *tasks.lock().unwrap());
        (batch_id, tasks)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quick_handlers_finish_on_the_batch_task_and_waiting_ones_get_their_own() {
        let batch = msgs(&[
            ("a", None, "quick"),
            ("b", None, "wait"),
            ("c", None, "quick"),
        ]);
        let (batch_id, tasks) = tasks_of_handlers(batch).await;
        assert_eq!(tasks.len(), 3);
        for (body, task) in &tasks {
            if body == "quick" {
                assert_eq!(*task, Some(batch_id), "{body} ran on the batch's task");
            } else {
                assert!(
                    task.is_some_and(|t| t != batch_id),
                    "{body} got its own task"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_slow_first_poll_does_not_spawn_the_rest_of_the_batch() {
        // A single slow first poll (here a handler spinning 2 ms, on a busy
        // machine the OS pausing the thread) must not send the quick
        // handlers after it to tasks of their own.
        let mut batch = vec![Message::new("0", "slow")];
        batch.extend((1..20).map(|i| Message::new(i.to_string(), "quick")));
        let (batch_id, tasks) = tasks_of_handlers(batch).await;
        assert_eq!(tasks.len(), 20);
        assert!(
            tasks.iter().all(|(_, task)| *task == Some(batch_id)),
            "every handler ran on the batch's task: {tasks:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cpu_heavy_synchronous_handlers_still_run_in_parallel() {
        // Each handler spins without awaiting until it has seen another one
        // running at the same time (bounded: 300 ms). Run one after another on
        // the batch's task, none would ever see another.
        let gauge = Arc::new(Gauge::default());
        let handler = {
            let gauge = Arc::clone(&gauge);
            handler_fn(move |_m: Message, _ctx: Context| {
                let gauge = Arc::clone(&gauge);
                async move {
                    gauge.enter();
                    let spin_until = std::time::Instant::now() + Duration::from_millis(300);
                    while gauge.peak() < 2 && std::time::Instant::now() < spin_until {
                        std::hint::spin_loop();
                    }
                    gauge.exit();
                    Ok::<_, HandlerError>(())
                }
            })
        };
        let engine = Engine::new(handler, config(8));
        let batch: Vec<Message> = (0..8).map(|i| Message::new(i.to_string(), "")).collect();
        let outcomes = engine.run_batch(batch, &BatchOptions::default()).await;
        assert!(outcomes.iter().all(Outcome::is_success));
        assert!(gauge.peak() >= 2, "handlers never overlapped");
    }

    #[tokio::test]
    async fn quick_synchronous_handlers_still_stop_at_the_start_deadline() {
        // 40,000 handlers finishing on their first poll (tens of ms of work
        // in a test build) against a start deadline a few ms away. The
        // deadline is checked before every start, so at most one handler
        // (the one between the last check and its start) may start after it,
        // however the OS schedules this thread; without the check thousands
        // would. The deadline is the handlers' context deadline (their
        // timeout is far longer). A busy machine can pause this thread past
        // a short deadline before anything starts: then the next attempt
        // has a longer one (bounded: four attempts, 150 ms in all).
        let late_starts = Arc::new(AtomicUsize::new(0));
        let handler = {
            let late_starts = Arc::clone(&late_starts);
            handler_fn(move |_m: Message, ctx: Context| {
                let late_starts = Arc::clone(&late_starts);
                async move {
                    if Instant::now() >= ctx.deadline() {
                        late_starts.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<_, HandlerError>(())
                }
            })
        };
        let engine = Engine::new(handler, config(4));
        let mut both_seen = false;
        for wait_ms in [10, 20, 40, 80] {
            let batch: Vec<Message> = (0..40_000)
                .map(|i| Message::new(i.to_string(), ""))
                .collect();
            late_starts.store(0, Ordering::Relaxed);
            let options = BatchOptions {
                start_deadline: Some(Instant::now() + Duration::from_millis(wait_ms)),
                ..BatchOptions::default()
            };
            let outcomes = engine.run_batch(batch, &options).await;
            let succeeded = outcomes.iter().filter(|o| o.is_success()).count();
            let skipped = outcomes
                .iter()
                .filter(|o| {
                    matches!(
                        o,
                        Outcome::Skipped {
                            reason: SkipReason::Deadline
                        }
                    )
                })
                .count();
            assert_eq!(succeeded + skipped, 40_000);
            let late = late_starts.load(Ordering::Relaxed);
            assert!(
                late <= 1,
                "{late} handlers started after a start deadline {wait_ms} ms away"
            );
            if succeeded > 0 && skipped > 0 {
                both_seen = true;
                break;
            }
        }
        assert!(
            both_seen,
            "no attempt both ran and skipped handlers: the deadline was not exercised"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifo_group_runs_one_at_a_time_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let engine = Engine::new(scripted(Arc::clone(&log)), config(8));
        let batch = msgs(&[
            ("g1-1", Some("g1"), "sleep:20"),
            ("g2-1", Some("g2"), "sleep:5"),
            ("g1-2", Some("g1"), "sleep:1"),
            ("g2-2", Some("g2"), "sleep:1"),
            ("g1-3", Some("g1"), "ok"),
        ]);
        let out = engine.run_batch(batch, &BatchOptions::default()).await;
        assert!(out.iter().all(Outcome::is_success));
        let log = log.lock().unwrap().clone();
        let order = |g: &str| {
            log.iter()
                .filter(|id| id.starts_with(g))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(order("g1"), ["g1-1", "g1-2", "g1-3"]);
        assert_eq!(order("g2"), ["g2-1", "g2-2"]);
        // g2 did not wait for g1: its second message started before g1's second.
        let pos = |id: &str| log.iter().position(|x| x == id).unwrap();
        assert!(pos("g2-2") < pos("g1-2"), "{log:?}");
    }

    #[tokio::test]
    async fn fifo_failure_skips_rest_of_group_only() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let engine = Engine::new(scripted(Arc::clone(&log)), config(8));
        let batch = msgs(&[
            ("a1", Some("a"), "ok"),
            ("a2", Some("a"), "retry"),
            ("b1", Some("b"), "ok"),
            ("a3", Some("a"), "ok"),
            ("b2", Some("b"), "ok"),
            ("a4", Some("a"), "ok"),
        ]);
        let out = engine.run_batch(batch, &BatchOptions::default()).await;
        let skipped = Outcome::Skipped {
            reason: SkipReason::GroupFailed {
                failed_message_id: "a2".into(),
            },
        };
        assert_eq!(out[0], Outcome::Success);
        assert!(matches!(out[1], Outcome::Retry { .. }));
        assert_eq!(out[2], Outcome::Success);
        assert_eq!(out[3], skipped);
        assert_eq!(out[4], Outcome::Success);
        assert_eq!(out[5], skipped);
        assert!(
            !log.lock()
                .unwrap()
                .iter()
                .any(|id| id == "a3" || id == "a4")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_that_waited_for_a_slot_gets_its_full_time_from_its_own_start() {
        // One slot shared by two batches, 100 ms handlers, 250 ms handler
        // timeout: the second batch's message waits for the slot, and its
        // context's deadline and reported duration count from its own start,
        // not from a clock read before the wait.
        let (remaining, handler) = remaining_recorder(Duration::from_millis(100));
        let engine = Engine::new(
            handler,
            config(1).handler_timeout(Duration::from_millis(250)),
        );
        let options = BatchOptions {
            start_deadline: Some(Instant::now() + Duration::from_secs(10)),
            ..BatchOptions::default()
        };
        let (mut first, mut second) = (Vec::new(), Vec::new());
        tokio::join!(
            engine.run_batch_with(vec![Message::new("a", "")], &options, |r| first
                .push(r.elapsed)),
            engine.run_batch_with(vec![Message::new("b", "")], &options, |r| second
                .push(r.elapsed)),
        );
        assert_eq!(*remaining.lock().unwrap(), [Duration::from_millis(250); 2]);
        for elapsed in first.iter().chain(&second) {
            assert_eq!(*elapsed, Some(Duration::from_millis(100)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_starts_after_the_start_deadline() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let engine = Engine::new(scripted(Arc::clone(&log)), config(1));
        let options = BatchOptions {
            start_deadline: Some(Instant::now() + Duration::from_millis(250)),
            ..BatchOptions::default()
        };
        let batch = (0..10)
            .map(|i| Message::new(i.to_string(), "sleep:100"))
            .collect();
        let out = engine.run_batch(batch, &options).await;
        // One at a time, 100 ms each: messages 0, 1 and 2 start before 250 ms.
        assert_eq!(out.iter().filter(|o| o.is_success()).count(), 3, "{out:?}");
        assert!(out[3..].iter().all(|o| *o
            == Outcome::Skipped {
                reason: SkipReason::Deadline
            }));
        assert_eq!(log.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn running_messages_are_abandoned_as_retries_at_the_abandon_deadline() {
        let engine = Engine::new(scripted(Arc::default()), config(2));
        let start = Instant::now();
        let options = BatchOptions {
            start_deadline: Some(start + Duration::from_millis(100)),
            abandon_deadline: Some(start + Duration::from_millis(150)),
            ..BatchOptions::default()
        };
        let batch = msgs(&[
            ("quick", None, "sleep:10"),
            ("long", Some("g"), "sleep:4000"),
            ("after-long", Some("g"), "ok"),
            ("queued", None, "ok"),
        ]);
        let out = engine.run_batch(batch, &options).await;
        assert!(
            Instant::now() - start < Duration::from_millis(200),
            "did not wait for the handler"
        );
        assert_eq!(out[0], Outcome::Success);
        assert!(
            matches!(&out[1], Outcome::Retry { reason, .. } if reason.contains("invocation deadline"))
        );
        assert_eq!(
            out[2],
            Outcome::Skipped {
                reason: SkipReason::GroupFailed {
                    failed_message_id: "long".into()
                }
            }
        );
        // "queued" started once "quick" freed its slot.
        assert_eq!(out[3], Outcome::Success);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_skips_unstarted_as_shutdown_and_drains_running() {
        let engine = Engine::new(scripted(Arc::default()), config(2));
        let options = BatchOptions::default();
        let stop = options.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.cancel();
        });
        let batch = msgs(&[
            ("a", None, "sleep:1000"),
            ("b", Some("g"), "sleep:1000"),
            ("c", Some("g"), "ok"),
            ("d", None, "ok"),
        ]);
        let out = engine.run_batch(batch, &options).await;
        let shutdown = Outcome::Skipped {
            reason: SkipReason::Shutdown,
        };
        assert_eq!(
            out,
            vec![
                Outcome::Success,
                Outcome::Success,
                shutdown.clone(),
                shutdown
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn abandon_signal_cancels_context_and_reports_running_as_retry() {
        let handler = handler_fn(|_m: Message, ctx: Context| async move {
            ctx.cancellation().cancelled().await;
            // A handler that stops early when told; the engine does not wait for it anyway.
            Ok::<_, HandlerError>(())
        });
        let engine = Engine::new(handler, config(1));
        let options = BatchOptions::default();
        let abandon = options.abandon.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            abandon.cancel();
        });
        let out = engine
            .run_batch(vec![Message::new("a", ""), Message::new("b", "")], &options)
            .await;
        assert!(
            matches!(&out[0], Outcome::Retry { reason, .. } if reason.contains("shutdown grace"))
        );
        assert_eq!(
            out[1],
            Outcome::Skipped {
                reason: SkipReason::Shutdown
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn context_deadline_is_the_sooner_of_timeout_and_start_deadline() {
        let (seen, handler) = remaining_recorder(Duration::ZERO);
        let engine = Engine::new(handler, config(1));
        engine
            .run_batch(vec![Message::new("a", "")], &BatchOptions::default())
            .await;
        let options = BatchOptions {
            start_deadline: Some(Instant::now() + Duration::from_secs(1)),
            ..BatchOptions::default()
        };
        engine
            .run_batch(vec![Message::new("b", "")], &options)
            .await;
        assert_eq!(
            *seen.lock().unwrap(),
            [Duration::from_secs(5), Duration::from_secs(1)]
        );
    }

    #[tokio::test]
    async fn reports_arrive_once_per_message_with_elapsed_only_when_run() {
        let engine = Engine::new(scripted(Arc::default()), config(4));
        let mut reports = Vec::new();
        engine
            .run_batch_with(
                msgs(&[
                    ("a", Some("g"), "perm"),
                    ("b", Some("g"), "ok"),
                    ("c", None, "ok"),
                ]),
                &BatchOptions::default(),
                |r| reports.push(r),
            )
            .await;
        reports.sort_by_key(|r| r.index);
        assert_eq!(
            reports.iter().map(|r| r.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(reports[0].elapsed.is_some());
        assert!(reports[1].elapsed.is_none());
        assert!(reports[2].elapsed.is_some());
    }
}
