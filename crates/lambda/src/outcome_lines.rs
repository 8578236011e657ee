//! The outcome lines of an invocation: one log line per record, with its
//! final outcome, logged just before the response is sent.
//!
//! Two ways to the same lines:
//! - as `tracing` events (target [`OUTCOME_LINES_TARGET`], level info) inside
//!   an [`OUTCOME_LINES_SPAN`](crate::OUTCOME_LINES_SPAN) span, which any
//!   subscriber sees;
//! - rendered by an [`OutcomeLineWriter`] found in the subscriber (sqsrt's
//!   JSON logging installs one): one pass over the records, no event per
//!   line. A `tracing` event costs about 3,000 instructions with its field
//!   visits, filter and span lookups, the largest per-record cost of an
//!   invocation after the event decode (docs/performance.md).
//!
//! Either way the lines are written only when info is enabled for
//! [`OUTCOME_LINES_TARGET`].

use tracing::Span;
use tracing::{Level, Subscriber, info};
use tracing_subscriber::layer::Layer;

/// The target of outcome lines: `--log-level info,sqsrt_lambda::outcome_lines=warn`
/// turns them off and keeps the rest at info.
pub const OUTCOME_LINES_TARGET: &str = "sqsrt_lambda::outcome_lines";

/// The `message` of every outcome line (the worker's too).
pub const OUTCOME_LINE_MESSAGE: &str = "Message processed.";

/// One record's outcome line: the fields the worker's lines have
/// (`message_id`, `outcome`, `receive_count`, `duration_ms` when the handler
/// ran, `reason` when not a success), plus, with a reason, whether the record
/// is listed in `batchItemFailures` and whether a copy is in the DLQ.
/// A renderer destructures it whole (no `..`), so a field added here
/// does not go unwritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeLine<'a> {
    /// The record's message id.
    pub message_id: &'a str,
    /// `success`, `retry`, `permanent` or `skipped`.
    pub outcome: &'static str,
    /// `ApproximateReceiveCount`.
    pub receive_count: u32,
    /// How long the handler ran, when it ran.
    pub duration_ms: Option<u64>,
    /// Why it did not succeed.
    pub reason: Option<&'a str>,
    /// Listed in `batchItemFailures` (written only with a reason).
    pub listed: bool,
    /// Dead-lettered (written only with a reason).
    pub dead_lettered: bool,
}

/// Renders outcome lines itself: `render(span, lines)` gets the span the
/// lines belong to (the invocation's, whose fields such as `request_id` the
/// lines carry) and the lines, and must write them exactly as its subscriber
/// would write the `tracing` events of [`log_lines`] (sqsrt's tests compare
/// the two, byte for byte but the timestamp).
///
/// A [`Layer`] that does nothing with events: it is added to a subscriber so
/// that the adapter finds it there (`Dispatch::downcast_ref`). A subscriber
/// without it gets ordinary events.
pub struct OutcomeLineWriter {
    render: Box<Render>,
}

/// What renders and writes the lines of one span.
type Render = dyn Fn(&Span, &[OutcomeLine<'_>]) + Send + Sync;

impl OutcomeLineWriter {
    /// A writer rendering with `render`.
    pub fn new(render: impl Fn(&Span, &[OutcomeLine<'_>]) + Send + Sync + 'static) -> Self {
        Self {
            render: Box::new(render),
        }
    }
}

impl std::fmt::Debug for OutcomeLineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeLineWriter").finish_non_exhaustive()
    }
}

impl<S: Subscriber> Layer<S> for OutcomeLineWriter {}

/// Whether outcome lines are written: info enabled for [`OUTCOME_LINES_TARGET`].
pub fn enabled() -> bool {
    tracing::enabled!(target: OUTCOME_LINES_TARGET, Level::INFO)
}

/// Logs `lines` in the current span: through the subscriber's
/// [`OutcomeLineWriter`] if it has one, else as `tracing` events. With
/// `split`, the second half is logged on a second thread (a large batch on a
/// multi-thread runtime: wall time), in the same span.
pub fn log_outcome_lines(lines: &[OutcomeLine<'_>], split: bool) {
    if lines.is_empty() || !enabled() {
        return;
    }
    let span = Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let log = |lines: &[OutcomeLine<'_>]| match dispatch.downcast_ref::<OutcomeLineWriter>() {
        Some(writer) => (writer.render)(&span, lines),
        None => tracing::dispatcher::with_default(&dispatch, || {
            span.in_scope(|| {
                tracing::info_span!(crate::OUTCOME_LINES_SPAN).in_scope(|| log_lines(lines));
            });
        }),
    };
    if !split {
        log(lines);
        return;
    }
    let (first, second) = lines.split_at(lines.len() / 2);
    std::thread::scope(|scope| {
        // When the OS refuses a thread, this one logs both halves.
        let helper = std::thread::Builder::new()
            .spawn_scoped(scope, || log(second))
            .ok();
        log(first);
        if helper.is_none() {
            log(second);
        }
    });
}

/// The lines as `tracing` events, in the current span.
pub fn log_lines(lines: &[OutcomeLine<'_>]) {
    for line in lines {
        let OutcomeLine {
            message_id,
            outcome,
            receive_count,
            duration_ms,
            ..
        } = *line;
        // `&str` fields, not `%` or a format string: written as they are,
        // without the formatting machinery.
        match line.reason {
            None => info!(
                target: OUTCOME_LINES_TARGET,
                message = OUTCOME_LINE_MESSAGE,
                message_id,
                outcome,
                receive_count,
                duration_ms
            ),
            Some(reason) => info!(
                target: OUTCOME_LINES_TARGET,
                message = OUTCOME_LINE_MESSAGE,
                message_id,
                outcome,
                receive_count,
                duration_ms,
                reason,
                listed = line.listed,
                dead_lettered = line.dead_lettered
            ),
        }
    }
}
