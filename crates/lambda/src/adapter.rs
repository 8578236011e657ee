//! [`SqsLambda`]: one invocation in, one `SqsBatchResponse` out.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use bytes::Bytes;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::{Diagnostic, LambdaEvent, LambdaInvocation, Runtime, service_fn};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sqsrt_core::{
    BatchOptions, Engine, Handler, Invocation, Message, Outcome, RetryPolicy, SinkBreaker,
};
use sqsrt_sqs::{Delivery, QueueClient, is_fifo_queue};
use tokio::time::Instant;
use tracing::{Instrument, info_span, warn};

use crate::decode::SqsRecords;
use crate::emf::{Emf, InvocationMetrics};
use crate::event::{EventError, RecordMeta, time_left};
use crate::outcome_lines::{OutcomeLine, log_outcome_lines};
use crate::settle::{Settled, Settler};

/// Lambda-mode settings (docs/design.md, "Configuration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaConfig {
    deadline_margin: Duration,
    fail_invocation_when_all_fail: bool,
    dlq_url: Option<String>,
    retry: RetryPolicy,
    emf: Option<Emf>,
}

impl Default for LambdaConfig {
    /// 500 ms margin, no DLQ, all-failed batches listed, default backoff.
    fn default() -> Self {
        Self {
            deadline_margin: Duration::from_millis(500),
            fail_invocation_when_all_fail: false,
            dlq_url: None,
            retry: RetryPolicy::default(),
            emf: None,
        }
    }
}

impl LambdaConfig {
    /// Metrics as CloudWatch EMF lines on stdout, one document per outcome
    /// that occurred in each invocation ([`crate::emf`]).
    #[must_use]
    pub fn emf(mut self, emf: Option<Emf>) -> Self {
        self.emf = emf;
        self
    }

    /// No record starts after the deadline minus this; records still running
    /// at the deadline minus half of it are reported failed.
    #[must_use]
    pub fn deadline_margin(mut self, margin: Duration) -> Self {
        self.deadline_margin = margin;
        self
    }

    /// Return an error instead of listing every record when all failed.
    #[must_use]
    pub fn fail_invocation_when_all_fail(mut self, on: bool) -> Self {
        self.fail_invocation_when_all_fail = on;
        self
    }

    /// Dead-letter queue for permanent failures.
    #[must_use]
    pub fn dlq_url(mut self, url: Option<String>) -> Self {
        self.dlq_url = url;
        self
    }

    /// Backoff applied to retried records' visibility.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// Why an invocation fails as a whole (never because one record failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    /// The event cannot be processed record by record.
    #[error(transparent)]
    Event(#[from] EventError),
    /// Every record failed and `--fail-invocation-when-all-fail` is on.
    #[error(
        "all {count} records failed (--fail-invocation-when-all-fail is on, so the whole batch returns)"
    )]
    AllFailed {
        /// Number of records.
        count: usize,
    },
    /// The handler's sink is down (its circuit breaker is open and no probe
    /// is due): the whole batch returns after the queue's visibility
    /// timeout, each record's receive count one higher.
    #[error(
        "the sink is down (circuit open): all {count} records return after the queue's visibility timeout"
    )]
    SinkDown {
        /// Number of records.
        count: usize,
    },
}

impl From<InvocationError> for Diagnostic {
    fn from(error: InvocationError) -> Self {
        let error_type = match &error {
            InvocationError::Event(_) => "sqsrt.InvalidEvent",
            InvocationError::AllFailed { .. } => "sqsrt.AllRecordsFailed",
            InvocationError::SinkDown { .. } => "sqsrt.SinkDown",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// An invocation payload the adapter can turn into messages: [`SqsRecords`]
/// (the fast decoder [`SqsLambda::run`] uses), or with the feature
/// `stock-decode`, `aws_lambda_events`' `SqsEvent`.
pub trait IntoRecords {
    /// The messages and what settling them needs, in record order.
    ///
    /// # Errors
    ///
    /// [`EventError`] when the event cannot be processed record by record.
    fn into_records(self) -> Result<(Vec<Message>, Vec<RecordMeta>), EventError>;
}

impl IntoRecords for SqsRecords {
    fn into_records(self) -> Result<(Vec<Message>, Vec<RecordMeta>), EventError> {
        self.into_messages()
    }
}

impl IntoRecords for Result<SqsRecords, EventError> {
    fn into_records(self) -> Result<(Vec<Message>, Vec<RecordMeta>), EventError> {
        self?.into_messages()
    }
}

/// The Lambda adapter: runs each invocation's records through the engine and
/// answers with partial batch failures.
#[derive(Debug)]
pub struct SqsLambda<H, Q> {
    engine: Engine<H>,
    config: LambdaConfig,
    settler: Settler<Q>,
}

impl<H: Handler, Q: QueueClient> SqsLambda<H, Q> {
    /// An adapter running `engine`, settling through `queue`.
    pub fn new(engine: Engine<H>, config: LambdaConfig, queue: Arc<Q>) -> Self {
        let settler = Settler::new(queue, config.dlq_url.clone(), config.retry);
        Self {
            engine,
            config,
            settler,
        }
    }

    /// Serves invocations from the Lambda Runtime API until the process ends.
    ///
    /// Each payload is decoded from the raw bytes ([`SqsRecords::from_slice_split`]); the
    /// log lines of an invocation carry its `request_id` (and
    /// `xray_trace_id` when X-Ray tracing is on).
    ///
    /// # Errors
    ///
    /// When the runtime API cannot be reached.
    pub async fn run(self) -> Result<(), lambda_runtime::Error> {
        let this = Arc::new(self);
        let decoded = Arc::new(DecodedPayloads::default());
        let handler = {
            let decoded = Arc::clone(&decoded);
            service_fn(move |event: LambdaEvent<Predecoded>| {
                let this = Arc::clone(&this);
                let records = decoded.take(&event.context.request_id);
                let invocation: Pin<
                    Box<dyn Future<Output = Result<SqsBatchResponse, InvocationError>> + Send>,
                > = Box::pin(async move {
                    let deadline = time_left(event.context.deadline, SystemTime::now());
                    let span = info_span!(
                        "invocation",
                        request_id = %event.context.request_id,
                        xray_trace_id = event.context.xray_trace_id.as_deref(),
                    );
                    let invocation = Invocation::new(
                        Some(event.context.request_id),
                        event.context.xray_trace_id,
                    );
                    this.handle_inner(records, deadline, invocation, None)
                        .instrument(span)
                        .await
                });
                invocation
            })
        };
        // Two threads for a large event when the runtime has more than one
        // (one CPU, or `--threads 1`: one thread).
        let split_from = match tokio::runtime::Handle::current().runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => SPLIT_DECODE_BYTES,
            _ => usize::MAX,
        };
        let layer = DecodeFirst {
            decoded,
            split_from,
        };
        // `run_concurrent`: with AWS_LAMBDA_MAX_CONCURRENCY above 1 (Lambda
        // Managed Instances) that many invocations at once, each its own
        // `/next` loop, all through this one engine and its in-flight bound;
        // otherwise one at a time, as `run`. Boxed: the runtime's future is
        // deep enough to overflow rustc's layout query depth when nested in
        // callers' async fns.
        Box::pin(Runtime::new(handler).layer(layer).run_concurrent()).await
    }

    /// Runs the batch through the engine. With `split` ([`two_threads`]), a batch from a standard
    /// queue runs as two halves at once, the second on another runtime
    /// thread, so that handlers finishing on their first poll (which run on
    /// the batch's own task) use both CPUs; the halves share the engine's
    /// in-flight bound and the deadlines. FIFO batches stay whole (a group's
    /// order spans the batch).
    async fn run_engine(
        &self,
        mut messages: Vec<Message>,
        options: &BatchOptions,
        split: bool,
    ) -> (Vec<Outcome>, Vec<Option<Duration>>) {
        let count = messages.len();
        // A FIFO batch keeps its groups' order: one engine call.
        if !split || options.fifo {
            return self.engine.run_batch_timed(messages, options).await;
        }
        let second = messages.split_off(count / 2);
        let (engine, second_options) = (self.engine.clone(), options.clone());
        let second_count = second.len();
        let second = tokio::spawn(
            async move { engine.run_batch_timed(second, &second_options).await }
                .instrument(tracing::Span::current()),
        );
        let (mut outcomes, mut elapsed) = self.engine.run_batch_timed(messages, options).await;
        match second.await {
            Ok((rest, rest_elapsed)) => {
                outcomes.extend(rest);
                elapsed.extend(rest_elapsed);
            }
            // Only a runtime shutting down cancels the task: its records are
            // listed and return.
            Err(error) => {
                outcomes.extend((0..second_count).map(|_| Outcome::Retry {
                    reason: format!("the batch's second half did not finish: {error}"),
                    delay: None,
                }));
                elapsed.extend((0..second_count).map(|_| None));
            }
        }
        (outcomes, elapsed)
    }

    /// Handles one event with `time_left` before the invocation deadline
    /// (`None`: no deadline) and builds the response.
    ///
    /// # Errors
    ///
    /// [`InvocationError`] when the event is invalid, or when every record
    /// failed and the config asks for an error.
    pub async fn handle(
        &self,
        event: impl IntoRecords,
        time_left: Option<Duration>,
    ) -> Result<SqsBatchResponse, InvocationError> {
        self.handle_inner(event, time_left, Invocation::default(), None)
            .await
    }

    /// [`SqsLambda::handle`], also giving what became of each record, in
    /// record order (for tests: `sqsrt::testing`).
    ///
    /// # Errors
    ///
    /// As [`SqsLambda::handle`].
    pub async fn handle_detailed(
        &self,
        event: impl IntoRecords,
        time_left: Option<Duration>,
    ) -> Result<(SqsBatchResponse, Vec<RecordResult>), InvocationError> {
        let mut records = Vec::new();
        let response = self
            .handle_inner(event, time_left, Invocation::default(), Some(&mut records))
            .await?;
        Ok((response, records))
    }

    async fn handle_inner(
        &self,
        event: impl IntoRecords,
        time_left: Option<Duration>,
        invocation: Invocation,
        detail: Option<&mut Vec<RecordResult>>,
    ) -> Result<SqsBatchResponse, InvocationError> {
        let (messages, metas) = event.into_records().inspect_err(|error| {
            tracing::error!(%error, "Invalid SQS event.");
        })?;
        let count = messages.len();
        // A deliberate exception to failing records one by one: the event
        // source mapping cannot be paused, and records that cannot be
        // delivered would only spend billed time.
        if count > 0
            && self
                .engine
                .handler()
                .breaker()
                .is_some_and(SinkBreaker::refuses_batch)
        {
            return Err(InvocationError::SinkDown { count });
        }
        let now = Instant::now();
        let margin = self.config.deadline_margin;
        let deadline = time_left.map(|left| now + left);
        if time_left.is_none() {
            warn!(
                "The invocation deadline is absent or already past; records run without a deadline."
            );
        }
        let fifo = from_fifo_queue(&messages, &metas);
        let options = BatchOptions {
            start_deadline: deadline.map(|d| d.checked_sub(margin).unwrap_or(now)),
            abandon_deadline: deadline.map(|d| d.checked_sub(margin / 2).unwrap_or(now)),
            fifo,
            invocation,
            ..BatchOptions::default()
        };
        // The ids outlive the messages (handlers consume them): copied into
        // one buffer, two allocations per batch instead of one per message.
        let id_text: String = messages.iter().map(Message::id).collect();
        let mut records: Vec<Delivery<'_>> = Vec::with_capacity(count);
        let mut rest = id_text.as_str();
        for message in &messages {
            let (id, after) = rest.split_at(message.id().len());
            records.push(Delivery {
                message_id: id,
                receive_count: message.receive_count(),
                fifo_group: fifo && message.group_id().is_some(),
            });
            rest = after;
        }
        let copies: Vec<Message> = if self.settler.has_dlq() {
            messages.clone()
        } else {
            Vec::new()
        };
        let split = two_threads(count);
        let (outcomes, elapsed) = self.run_engine(messages, &options, split).await;
        let settle_until = deadline.map(|d| d.checked_sub(margin / 4).unwrap_or(now));
        let settled = self
            .settler
            .settle(outcomes, &metas, &copies, &records, settle_until)
            .await;
        log_outcomes(&records, &settled, &elapsed, split);
        if let Some(emf) = &self.config.emf {
            write_emf(emf, &settled, &elapsed, now.elapsed());
        }
        if let Some(detail) = detail {
            detail.extend(records.iter().zip(&settled).map(|(r, s)| RecordResult {
                message_id: r.message_id.to_owned(),
                outcome: s.outcome.clone(),
                listed: s.listed,
                dead_lettered: s.dead_lettered,
            }));
        }

        let batch_item_failures: Vec<BatchItemFailure> = settled
            .iter()
            .zip(&records)
            .filter(|(s, _)| s.listed)
            .map(|(_, r)| {
                let mut failure = BatchItemFailure::default();
                r.message_id.clone_into(&mut failure.item_identifier);
                failure
            })
            .collect();
        if self.config.fail_invocation_when_all_fail
            && count > 0
            && batch_item_failures.len() == count
        {
            return Err(InvocationError::AllFailed { count });
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = batch_item_failures;
        Ok(response)
    }
}

/// What became of one record of an invocation ([`SqsLambda::handle_detailed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordResult {
    /// The record's message id.
    pub message_id: String,
    /// Its final outcome (a permanent failure that could not be
    /// dead-lettered is a retry).
    pub outcome: Outcome,
    /// Whether it is in `batchItemFailures`.
    pub listed: bool,
    /// Whether a copy is in the dead-letter queue.
    pub dead_lettered: bool,
}

/// Decoded payloads waiting for their handler call, by request id.
#[derive(Debug, Default)]
struct DecodedPayloads(Mutex<HashMap<String, Result<SqsRecords, EventError>>>);

impl DecodedPayloads {
    fn put(&self, request_id: String, records: Result<SqsRecords, EventError>) {
        self.lock().insert(request_id, records);
    }

    fn take(&self, request_id: &str) -> Result<SqsRecords, EventError> {
        self.lock().remove(request_id).unwrap_or_else(|| {
            Err(EventError::Malformed {
                path: ".".to_owned(),
                reason: "the payload of this request id was not decoded".to_owned(),
            })
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Result<SqsRecords, EventError>>> {
        // A panic while holding the lock cannot leave the map half-changed.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What `lambda_runtime` parses instead of the payload: `null`, after
/// [`DecodeFirst`] took the real one.
struct Predecoded;

impl<'de> Deserialize<'de> for Predecoded {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer).map(|_| Self)
    }
}

/// A layer in front of `lambda_runtime`'s own services: decodes each
/// invocation's payload with [`SqsRecords::from_slice_split`] from the raw
/// bytes and leaves `null` for the runtime to parse.
///
/// `lambda_runtime` parses every payload through `serde_path_to_error` into the
/// handler's type; on a 10,000-record event the path tracking alone (a
/// `String` per map key) cost more than sqsrt's whole decode. Its public
/// hook for the raw payload is a `Runtime` layer, so the decoded records
/// travel to the handler beside the invocation, under its request id. Errors
/// still name the path: a payload that fails is parsed again with tracking.
struct DecodeFirst {
    decoded: Arc<DecodedPayloads>,
    /// Payloads from this size on are decoded on two threads.
    split_from: usize,
}

impl<S> Layer<S> for DecodeFirst {
    type Service = DecodeFirstService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeFirstService {
            inner,
            decoded: Arc::clone(&self.decoded),
            split_from: self.split_from,
        }
    }
}

/// The service [`DecodeFirst`] makes (cloned once per concurrent `/next`
/// loop under Managed Instances).
#[derive(Clone)]
struct DecodeFirstService<S> {
    inner: S,
    decoded: Arc<DecodedPayloads>,
    split_from: usize,
}

impl<S> Service<LambdaInvocation> for DecodeFirstService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let records = SqsRecords::from_slice_split(&invocation.body, self.split_from);
        self.decoded
            .put(invocation.context.request_id.clone(), records);
        invocation.body = Bytes::from_static(b"null");
        self.inner.call(invocation)
    }
}

/// Payloads from this size on are decoded on two threads when the runtime
/// has two or more: about 1,700 typical records. Below it, starting a thread
/// costs more than it saves.
const SPLIT_DECODE_BYTES: usize = 1 << 20;

/// Batches from this many records on run as two halves at once (engine and
/// log lines) when the runtime has two or more threads.
const SPLIT_RECORDS: usize = 2_000;

/// Writes the invocation's EMF lines to stdout with one write (Lambda's log
/// capture reads them as metrics; a line must be a JSON object of its own).
fn write_emf(emf: &Emf, settled: &[Settled], elapsed: &[Option<Duration>], took: Duration) {
    use std::io::Write as _;
    let mut metrics = InvocationMetrics {
        dlq_sends: settled.iter().filter(|s| s.dead_lettered).count(),
        handler_durations: elapsed.iter().flatten().copied().collect(),
        invocation_duration: took,
        ..InvocationMetrics::default()
    };
    for s in settled {
        metrics.count(s.outcome.kind());
    }
    let lines = emf.lines(&metrics, SystemTime::now());
    // Stdout gone (a closed pipe) is no reason to fail the invocation.
    let _ = std::io::stdout().lock().write_all(lines.as_bytes());
}

/// Whether the records come from a FIFO queue: their `eventSourceARN` ends
/// in `.fifo`. An event without one (hand-made) is taken as FIFO when a record
/// has a group id: keeping an order that was not needed only costs time.
fn from_fifo_queue(messages: &[Message], metas: &[RecordMeta]) -> bool {
    match metas.iter().find_map(|m| m.event_source_arn.as_deref()) {
        Some(arn) => is_fifo_queue(arn),
        None => messages.iter().any(|m| m.group_id().is_some()),
    }
}

/// Whether a batch of `count` records is worth two threads here.
fn two_threads(count: usize) -> bool {
    count >= SPLIT_RECORDS
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// The invocation's outcome lines ([`crate::outcome_lines`]).
fn log_outcomes(
    records: &[Delivery<'_>],
    settled: &[Settled],
    elapsed: &[Option<Duration>],
    split: bool,
) {
    if !crate::outcome_lines::enabled() {
        return;
    }
    // Only failures have a reason (and an allocation for it).
    let reasons: Vec<Option<String>> = settled.iter().map(|s| s.outcome.reason()).collect();
    let lines: Vec<OutcomeLine<'_>> = records
        .iter()
        .zip(settled)
        .zip(elapsed)
        .zip(&reasons)
        .map(|(((record, s), elapsed), reason)| OutcomeLine {
            message_id: record.message_id,
            outcome: s.outcome.kind().as_str(),
            receive_count: record.receive_count,
            duration_ms: elapsed.map(|e| u64::try_from(e.as_millis()).unwrap_or(u64::MAX)),
            reason: reason.as_deref(),
            listed: s.listed,
            dead_lettered: s.dead_lettered,
        })
        .collect();
    log_outcome_lines(&lines, split);
}
