//! One handler run as a future: the handler's own future under its timeout,
//! with panics caught, handing back what [`TaskOutput`] says; and when its
//! first poll runs inline on the batch's task ([`InlinePolls`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::panic_message;
use crate::handler::{BatchContext, Context, Handler, HandlerError};
use crate::message::Message;
use crate::outcome::Outcome;
use crate::sink::Attempt;

/// What a handler task hands back: its message's index, the handler's result
/// (`Ok(None)` on timeout, `Err` with the message of a panic) and how long it
/// ran. Panics are caught inside the task, so the index always comes back
/// and no task-id lookup is needed per message.
pub(super) type TaskOutput = (
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
/// `Batch::start_next`): yes until [`INLINE_SLOW_STREAK`] first polls in a row
/// took longer than [`INLINE_POLL_LIMIT`] (CPU-heavy handlers).
#[derive(Debug, Default)]
pub(super) struct InlinePolls {
    slow_streak: u8,
}

impl InlinePolls {
    pub(super) fn enabled(&self) -> bool {
        self.slow_streak < INLINE_SLOW_STREAK
    }

    pub(super) fn record(&mut self, took: Duration) {
        self.slow_streak = if took > INLINE_POLL_LIMIT {
            self.slow_streak + 1
        } else {
            0
        };
    }
}

/// The future of one handler run: `handler` on `message` (the batch's
/// `index`), timed from `started`, holding its in-flight `permit` until it
/// ends. Boxed so that it can move into a task after its first poll.
pub(super) fn handler_task<H: Handler>(
    handler: Arc<H>,
    message: Message,
    ctx: Context,
    index: usize,
    started: Instant,
    timeout: Duration,
    permit: OwnedSemaphorePermit,
) -> Pin<Box<impl Future<Output = TaskOutput> + Send + 'static>> {
    Box::pin(async move {
        let _permit = permit;
        let result = timed_run(|| handler.handle(message, ctx), started + timeout).await;
        (index, result, started.elapsed())
    })
}

/// The handler's future that `start` makes, under its timeout (`Ok(None)`
/// when `until` came first), with its panic caught (`Err` with the panic's
/// message). Made in place, where it is polled: a handler's future can be
/// large, and each move of it is a `memcpy` of its whole size (made by the
/// caller and passed in, it was copied four times per message).
async fn timed_run<F: Future<Output = Result<(), HandlerError>>>(
    start: impl FnOnce() -> F,
    until: Instant,
) -> Result<Option<Result<(), HandlerError>>, String> {
    let run = AssertUnwindSafe(async move {
        let mut handling = std::pin::pin!(start());
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
                timer.set(Some(sleep_until(until)));
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
    run.map_err(|payload| panic_message(&*payload))
}

/// What a [`gated_task`] needs besides its handler and message.
pub(super) struct Gate {
    pub(super) batch: Arc<BatchContext>,
    pub(super) stop: CancellationToken,
    pub(super) hold: bool,
    pub(super) start_deadline: Option<Instant>,
    pub(super) timeout: Duration,
}

/// The future of one message of a handler with a [`crate::SinkBreaker`]:
/// each attempt waits for the breaker to admit it and is timed from then;
/// with `gate.hold`, an attempt that failed for an outage the breaker is
/// open for is followed by another once it admits one (the message stays
/// in hand). Each attempt gets its own copy of the message.
pub(super) fn gated_task<H: Handler>(
    handler: Arc<H>,
    message: Message,
    gate: Gate,
    index: usize,
    permit: OwnedSemaphorePermit,
) -> Pin<Box<impl Future<Output = TaskOutput> + Send + 'static>> {
    Box::pin(async move {
        let _permit = permit;
        let breaker = handler
            .breaker()
            .expect("a gated task runs only for a handler with a breaker");
        loop {
            let ticket = match breaker
                .admit(gate.hold, &gate.stop, &gate.batch.cancellation)
                .await
            {
                Ok(ticket) => ticket,
                Err(refused) => return (index, Ok(Some(Err(refused))), Duration::ZERO),
            };
            let started = Instant::now();
            let mut deadline = started + gate.timeout;
            if let Some(start_deadline) = gate.start_deadline {
                deadline = deadline.min(start_deadline);
            }
            let ctx = Context::shared(deadline, Arc::clone(&gate.batch));
            let result = timed_run(
                || handler.handle(message.clone(), ctx),
                started + gate.timeout,
            )
            .await;
            let elapsed = started.elapsed();
            let attempt = match &result {
                Ok(Some(Ok(()))) => Attempt::Succeeded,
                Ok(Some(Err(error))) => Attempt::Failed(error),
                Ok(None) | Err(_) => Attempt::Broke,
            };
            let held = breaker.record(ticket, message.id(), attempt, elapsed);
            if !(held && gate.hold) {
                return (index, result, elapsed);
            }
        }
    })
}

/// A finished handler's output as its message's outcome (`timeout`: the
/// handler timeout, named in the reason when it ran out).
pub(super) fn outcome_of(
    output: TaskOutput,
    timeout: Duration,
) -> (usize, Outcome, Option<Duration>) {
    match output {
        (index, Ok(Some(result)), elapsed) => (
            index,
            result.map_or_else(Outcome::from, |()| Outcome::Success),
            Some(elapsed),
        ),
        (index, Ok(None), elapsed) => (
            index,
            Outcome::Retry {
                reason: format!("handler timed out after {timeout:?}"),
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
