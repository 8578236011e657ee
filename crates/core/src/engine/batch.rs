//! One batch's state while the engine runs it, and its rules: which messages
//! wait to start, which run (and on which task), which follow which in their
//! FIFO group, why starting stopped, and how many are not yet reported.

use std::collections::{HashMap, VecDeque};
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use futures_util::future::Either;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::groups::GroupSlots;
use super::task::{Gate, InlinePolls, TaskOutput, gated_task, handler_task, outcome_of};
use super::{BatchOptions, Report};
use crate::handler::{BatchContext, Context, Handler};
use crate::message::Message;
use crate::outcome::{Outcome, SkipReason};

/// The batch loop's state (see [`super::Engine::run_batch_with`]).
pub(super) struct Batch {
    /// Messages not yet started (`None` once started or skipped).
    slots: Vec<Option<Message>>,
    /// Ids of the messages that have a group (empty for the others).
    ids: Vec<String>,
    next_in_group: Vec<Option<usize>>,
    /// Messages free to start, in order.
    ready: VecDeque<usize>,
    /// Messages not yet reported.
    pending: usize,
    /// Handlers that waited, each on its own task.
    pub(super) running: JoinSet<TaskOutput>,
    /// The task of each running message; `None` once it is reported.
    task_of: Vec<Option<Id>>,
    /// Why nothing starts any more, once something stopped the batch.
    stopped: Option<SkipReason>,
    inline: InlinePolls,
    /// The batch's abandon signal and invocation, shared by its handlers' contexts.
    context: Arc<BatchContext>,
    start_deadline: Option<Instant>,
    timeout: Duration,
    /// The stop signal and [`BatchOptions::hold_on_sink_down`], for the
    /// handlers that have a breaker.
    stop: CancellationToken,
    hold_on_sink_down: bool,
    /// The clock as `check_stop` last read it, taken by the start that
    /// follows: one clock read per start, not two.
    checked_at: Option<Instant>,
    /// With a per-tenant cap (standard queues): the engine's slots, each
    /// message's tenant, and whether it holds a slot of it.
    tenants: Option<Tenants>,
}

struct Tenants {
    slots: Arc<GroupSlots>,
    group_of: Vec<Option<Arc<str>>>,
    holds_slot: Vec<bool>,
}

impl Tenants {
    /// Whether `index` may start as far as its tenant is concerned.
    fn has_room(&self, index: usize) -> bool {
        self.group_of[index]
            .as_deref()
            .is_none_or(|g| self.slots.has_room(g))
    }
}

impl Batch {
    pub(super) fn new(
        messages: Vec<Message>,
        options: &BatchOptions,
        timeout: Duration,
        groups: Option<&Arc<GroupSlots>>,
    ) -> Self {
        let n = messages.len();
        let tenants = groups.map(|slots| Tenants {
            slots: Arc::clone(slots),
            group_of: messages
                .iter()
                .map(|m| m.group_id().map(Arc::from))
                .collect(),
            holds_slot: vec![false; n],
        });
        let mut next_in_group = vec![None; n];
        let mut ready = VecDeque::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        if options.fifo {
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
        } else {
            // A standard queue: a group id is a tenant key and orders nothing.
            ready.extend(0..n);
        }
        Self {
            slots: messages.into_iter().map(Some).collect(),
            ids,
            next_in_group,
            ready,
            pending: n,
            running: JoinSet::new(),
            task_of: vec![None; n],
            stopped: None,
            inline: InlinePolls::default(),
            context: Arc::new(BatchContext {
                cancellation: options.abandon.clone(),
                invocation: options.invocation.clone(),
            }),
            start_deadline: options.start_deadline,
            timeout,
            stop: options.stop.clone(),
            hold_on_sink_down: options.hold_on_sink_down,
            checked_at: None,
            tenants,
        }
    }

    /// Whether a message is free to start and nothing stopped the batch.
    pub(super) fn can_start(&self) -> bool {
        self.stopped.is_none()
            && match &self.tenants {
                None => !self.ready.is_empty(),
                // The front usually has room: a scan only behind a capped tenant.
                Some(t) => self.ready.iter().any(|&i| t.has_room(i)),
            }
    }

    /// Whether a message waits for its tenant (at the per-tenant cap).
    pub(super) fn waits_for_group(&self) -> bool {
        self.stopped.is_none()
            && self
                .tenants
                .as_ref()
                .is_some_and(|t| self.ready.iter().any(|&i| !t.has_room(i)))
    }

    /// Skips the messages still waiting for their tenant: they go back to
    /// the queue for `wait` ([`SkipReason::GroupBusy`]).
    pub(super) fn expire_group_waits(
        &mut self,
        wait: Option<Duration>,
        on_report: &mut impl FnMut(Report),
    ) {
        let (Some(wait), Some(tenants)) = (wait, &self.tenants) else {
            return;
        };
        let (busy, rest): (VecDeque<usize>, VecDeque<usize>) =
            self.ready.iter().partition(|&&i| !tenants.has_room(i));
        self.ready = rest;
        let reason = SkipReason::GroupBusy { delay: wait };
        for index in busy {
            self.skip_chain(Some(index), &reason, on_report);
        }
    }

    /// The next message to start: the first ready one whose tenant has room
    /// (taking a slot of it).
    fn take_ready(&mut self) -> Option<usize> {
        let Some(tenants) = &mut self.tenants else {
            return self.ready.pop_front();
        };
        let position = self.ready.iter().position(|&i| {
            tenants.group_of[i]
                .as_ref()
                .is_none_or(|g| tenants.slots.try_take(g))
        })?;
        let index = self.ready.remove(position)?;
        tenants.holds_slot[index] = tenants.group_of[index].is_some();
        Some(index)
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Whether every message is reported.
    pub(super) fn is_done(&self) -> bool {
        self.pending == 0
    }

    /// The next start reads the clock itself (the last check was before a wait).
    pub(super) fn forget_clock(&mut self) {
        self.checked_at = None;
    }

    /// Messages still to report mean something runs, can start, or waits
    /// for its tenant's slots (held by other batches).
    pub(super) fn debug_check(&self) {
        debug_assert!(
            !self.running.is_empty() || self.can_start() || self.waits_for_group(),
            "pending messages with nothing running or startable"
        );
    }

    /// Once a stop or the start deadline is seen, records why and skips every
    /// message waiting to start.
    pub(super) fn check_stop(
        &mut self,
        options: &BatchOptions,
        on_report: &mut impl FnMut(Report),
    ) {
        if self.stopped.is_some() {
            return;
        }
        if options.stop.is_cancelled() {
            self.stopped = Some(SkipReason::Shutdown);
        } else if let Some(deadline) = self.start_deadline {
            let now = Instant::now();
            self.checked_at = Some(now);
            if now >= deadline {
                self.stopped = Some(SkipReason::Deadline);
            }
        }
        if let Some(reason) = self.stopped.clone() {
            while let Some(index) = self.ready.pop_front() {
                self.skip_chain(Some(index), &reason, on_report);
            }
        }
    }

    /// Starts the next ready message. Its first poll runs right here, on the
    /// batch's task: a handler that finishes without waiting (a no-op, a
    /// quick synchronous check) is done without a task, a cross-thread
    /// wake-up or a cross-thread free of its message, and is reported at
    /// once. A handler that waits is then moved to its own task in
    /// `running`. Once first polls are slow ([`InlinePolls`]: CPU-heavy
    /// handlers), inline polling turns off and the rest of the batch is
    /// spawned unpolled, so such handlers run in parallel on the runtime's
    /// threads. On a 10,000-record no-op batch this halved the engine's cost
    /// per record (docs/performance.md).
    pub(super) fn start_next<H: Handler>(
        &mut self,
        handler: &Arc<H>,
        permit: OwnedSemaphorePermit,
        on_report: &mut impl FnMut(Report),
    ) {
        // None: another batch took the tenant's last slot since the check;
        // the permit goes back and the loop waits for a slot.
        let Some(index) = self.take_ready() else {
            return;
        };
        let message = self.slots[index]
            .take()
            .expect("a message starts at most once");
        let started = self.checked_at.take().unwrap_or_else(Instant::now);
        let mut task = if handler.breaker().is_some() {
            Either::Right(gated_task(
                Arc::clone(handler),
                message,
                Gate {
                    batch: Arc::clone(&self.context),
                    stop: self.stop.clone(),
                    hold: self.hold_on_sink_down,
                    start_deadline: self.start_deadline,
                    timeout: self.timeout,
                },
                index,
                permit,
            ))
        } else {
            let mut deadline = started + self.timeout;
            if let Some(start_deadline) = self.start_deadline {
                deadline = deadline.min(start_deadline);
            }
            let ctx = Context::shared(deadline, Arc::clone(&self.context));
            Either::Left(handler_task(
                Arc::clone(handler),
                message,
                ctx,
                index,
                started,
                self.timeout,
                permit,
            ))
        };
        if self.inline.enabled() {
            // The batch's task is already in the caller's span. A waker is
            // not needed: a future left pending is polled again, with its
            // task's waker, as soon as it is spawned below.
            let polled = Pin::new(&mut task).poll(&mut TaskContext::from_waker(Waker::noop()));
            // A finished handler measured its own time: no second clock read.
            if let Poll::Ready(output) = polled {
                self.inline.record(output.2);
                self.finish_output(output, on_report);
                return;
            }
            self.inline.record(started.elapsed());
        }
        // The caller's span (e.g. Lambda's request id) follows the handler into its task.
        let span = tracing::Span::current();
        let handle = if span.is_none() {
            self.running.spawn(task)
        } else {
            self.running.spawn(task.instrument(span))
        };
        self.task_of[index] = Some(handle.id());
    }

    /// A handler task ended.
    pub(super) fn joined(
        &mut self,
        joined: Result<TaskOutput, JoinError>,
        on_report: &mut impl FnMut(Report),
    ) {
        match joined {
            Ok(output) => self.finish_output(output, on_report),
            // Only a task cancelled from outside (runtime shutdown) ends this way.
            Err(error) => {
                let Some(index) = self.task_of.iter().position(|t| *t == Some(error.id())) else {
                    return;
                };
                let outcome = Outcome::Retry {
                    reason: "handler task was cancelled".to_owned(),
                    delay: None,
                };
                self.task_of[index] = None;
                self.finish(index, outcome, None, on_report);
            }
        }
    }

    fn finish_output(&mut self, output: TaskOutput, on_report: &mut impl FnMut(Report)) {
        let (index, outcome, elapsed) = outcome_of(output, self.timeout);
        self.task_of[index] = None;
        self.finish(index, outcome, elapsed, on_report);
    }

    fn report(
        &mut self,
        index: usize,
        outcome: Outcome,
        elapsed: Option<Duration>,
        on_report: &mut impl FnMut(Report),
    ) {
        self.pending -= 1;
        if let Some(tenants) = &mut self.tenants
            && std::mem::take(&mut tenants.holds_slot[index])
            && let Some(group) = &tenants.group_of[index]
        {
            tenants.slots.give_back(group);
        }
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

    /// Reports a decided message and frees the next of its group: ready to
    /// start after a success, skipped after a failure or once stopped.
    fn finish(
        &mut self,
        index: usize,
        outcome: Outcome,
        elapsed: Option<Duration>,
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
        } else if let Some(reason) = self.stopped.clone() {
            self.skip_chain(next, &reason, on_report);
        } else {
            self.ready.push_back(next.expect("checked above"));
        }
    }

    /// Reports running messages as retryable failures (`why`) and everything
    /// not started as skipped: for the reason that already stopped the batch,
    /// else `skip`.
    pub(super) fn abandon(
        &mut self,
        skip: SkipReason,
        why: &str,
        on_report: &mut impl FnMut(Report),
    ) {
        let skip = self.stopped.get_or_insert(skip).clone();
        let running: Vec<usize> = (0..self.task_of.len())
            .filter(|&i| self.task_of[i].is_some())
            .collect();
        for index in running {
            self.task_of[index] = None;
            let outcome = Outcome::Retry {
                reason: why.to_owned(),
                delay: None,
            };
            self.finish(index, outcome, None, on_report);
        }
        while let Some(index) = self.ready.pop_front() {
            self.skip_chain(Some(index), &skip, on_report);
        }
    }
}
