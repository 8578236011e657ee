//! The [`Handler`] trait users implement, its [`Context`] and its errors.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::envelope::{Envelope, Plain};
use crate::message::Message;
use crate::sink::{SinkBreaker, SinkFault};

/// Processes one message. Implement it with `async fn`:
///
/// ```
/// use sqsrt_core::{Context, Handler, HandlerError, Message};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     async fn handle(&self, message: Message, _ctx: Context) -> Result<(), HandlerError> {
///         if message.body().is_empty() {
///             return Err(HandlerError::permanent("empty body"));
///         }
///         Ok(())
///     }
/// }
/// ```
///
/// A handler that panics or overruns its timeout is a retryable failure; one
/// instance is shared by every message, so it must be `Send + Sync`.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message. `Ok(())` settles it (deleted, or not listed in
    /// Lambda's response); an error says whether to retry or give up.
    fn handle(
        &self,
        message: Message,
        ctx: Context,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Figures the handler keeps about its own work (a forwarder counts the
    /// message attributes it could not send), read at each scrape: worker
    /// mode exports them on `/metrics` beside sqsrt's own. None by default.
    fn metrics(&self) -> Vec<HandlerMetric> {
        Vec::new()
    }

    /// The circuit breaker of the downstream this handler forwards every
    /// message to (an HTTP app, a Kafka cluster), if it has one. With one,
    /// the engine starts a message only when the breaker admits it, and a
    /// worker receives nothing while it is open (see [`SinkBreaker`]).
    /// None by default.
    fn breaker(&self) -> Option<&SinkBreaker> {
        None
    }
}

/// One figure of [`Handler::metrics`]: a counter (`name` without its
/// `_total`, which the export adds), a gauge or a histogram, optionally with
/// one label (figures of one name differing by their label form one family).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HandlerMetric {
    /// The metric's name (`sqsrt_http_attributes_skipped`).
    pub name: &'static str,
    /// What it counts or shows.
    pub help: &'static str,
    /// One label, name and value (`("kind", "timeout")`), if any.
    pub label: Option<(&'static str, &'static str)>,
    /// Its value now.
    pub value: MetricValue,
}

/// The kind of a [`HandlerMetric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted in buckets.
    Histogram,
}

/// The value of a [`HandlerMetric`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MetricValue {
    /// A counter's count.
    Counter(u64),
    /// A gauge's value.
    Gauge(i64),
    /// A histogram's observations.
    Histogram {
        /// Their sum.
        sum: f64,
        /// How many.
        count: u64,
        /// Each bucket's upper bound and the observations in it alone (not
        /// cumulative); the last bound is `f64::INFINITY`.
        buckets: Vec<(f64, u64)>,
    },
}

impl HandlerMetric {
    /// A counter.
    #[must_use]
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            help,
            label: None,
            value: MetricValue::Counter(value),
        }
    }

    /// A gauge.
    #[must_use]
    pub fn gauge(name: &'static str, help: &'static str, value: i64) -> Self {
        Self {
            name,
            help,
            label: None,
            value: MetricValue::Gauge(value),
        }
    }

    /// A histogram: `buckets` as [`MetricValue::Histogram`] has them.
    #[must_use]
    pub fn histogram(
        name: &'static str,
        help: &'static str,
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    ) -> Self {
        Self {
            name,
            help,
            label: None,
            value: MetricValue::Histogram {
                sum,
                count,
                buckets,
            },
        }
    }

    /// This figure with the label `name="value"`.
    #[must_use]
    pub fn with_label(mut self, name: &'static str, value: &'static str) -> Self {
        self.label = Some((name, value));
        self
    }

    /// Its kind.
    #[must_use]
    pub fn kind(&self) -> MetricKind {
        match self.value {
            MetricValue::Counter(_) => MetricKind::Counter,
            MetricValue::Gauge(_) => MetricKind::Gauge,
            MetricValue::Histogram { .. } => MetricKind::Histogram,
        }
    }
}

/// What a handler knows besides its message: when it must be done, a
/// signal that fires when its work is being abandoned, and on platforms that
/// invoke (Lambda) the invocation's request and trace ids. A handler that
/// ignores all of them is still correct.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Context {
    deadline: Instant,
    /// Shared by the messages of a batch: cloning an `Arc` is one atomic
    /// add, cloning and dropping a `CancellationToken` locks its node twice
    /// (per message, in a 10,000-record batch).
    shared: Arc<BatchContext>,
}

/// The part of a [`Context`] all messages of a batch share.
#[derive(Debug, Default)]
pub(crate) struct BatchContext {
    pub(crate) cancellation: CancellationToken,
    pub(crate) invocation: Invocation,
}

/// The invocation a batch came in, where the platform has one: Lambda's
/// request id and X-Ray trace id. Empty in worker mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invocation {
    /// The invocation's request id.
    pub request_id: Option<String>,
    /// The invocation's trace id (X-Ray's `Root=...;Parent=...;Sampled=...`).
    pub trace_id: Option<String>,
}

impl Invocation {
    /// An invocation with these ids.
    #[must_use]
    pub fn new(request_id: Option<String>, trace_id: Option<String>) -> Self {
        Self {
            request_id,
            trace_id,
        }
    }
}

impl Context {
    /// A context with the given deadline and cancellation signal.
    #[must_use]
    pub fn new(deadline: Instant, cancellation: CancellationToken) -> Self {
        Self::shared(
            deadline,
            Arc::new(BatchContext {
                cancellation,
                invocation: Invocation::default(),
            }),
        )
    }

    /// A context with the given deadline and a cancellation signal of its
    /// own that nothing fires (tests, or a handler called directly).
    #[must_use]
    pub fn with_deadline(deadline: Instant) -> Self {
        Self::new(deadline, CancellationToken::new())
    }

    /// This context as part of `invocation` (tests, or a handler called
    /// directly; the engine sets it from [`crate::BatchOptions::invocation`]).
    #[must_use]
    pub fn with_invocation(self, invocation: Invocation) -> Self {
        Self::shared(
            self.deadline,
            Arc::new(BatchContext {
                cancellation: self.shared.cancellation.clone(),
                invocation,
            }),
        )
    }

    /// A context whose cancellation signal and invocation are shared with others.
    pub(crate) fn shared(deadline: Instant, shared: Arc<BatchContext>) -> Self {
        Self { deadline, shared }
    }

    /// When this message must be done: its handler timeout, or in Lambda mode
    /// the invocation deadline minus the margin, whichever is sooner.
    #[must_use]
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Time left until [`Context::deadline`] (zero when past).
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Fires when the work is abandoned (Lambda deadline reached, or the
    /// worker's shutdown grace ran out). Watch it to stop early.
    #[must_use]
    pub fn cancellation(&self) -> &CancellationToken {
        &self.shared.cancellation
    }

    /// The Lambda request id of the invocation this message came in; `None`
    /// in worker mode. Under Lambda Managed Instances several invocations
    /// run at once in one process: this is the one of this message.
    #[must_use]
    pub fn request_id(&self) -> Option<&str> {
        self.shared.invocation.request_id.as_deref()
    }

    /// The X-Ray trace id of the invocation this message came in (when
    /// tracing is on); `None` in worker mode. Read it here, not from
    /// `_X_AMZN_TRACE_ID`, which concurrent invocations cannot share.
    #[must_use]
    pub fn trace_id(&self) -> Option<&str> {
        self.shared.invocation.trace_id.as_deref()
    }
}

/// Why a handler did not succeed, classed by what happens next.
///
/// `?` turns any `anyhow::Error` and any `std::error::Error + Send + Sync +
/// 'static` into a [`HandlerError::Retry`] whose reason keeps the whole
/// source chain (`outer: cause: root cause`, as `{:#}` prints an
/// `anyhow::Error`). Mark an error permanent, or give its delay, with
/// [`ResultExt`]: `parse(&body).permanent()?`.
///
/// It does not implement `std::error::Error` itself, like `anyhow::Error`:
/// that impl would make the blanket conversion from every error overlap with
/// `From<HandlerError> for HandlerError`, and the conversion is what lets
/// `?` work on the errors of every crate a handler calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandlerError {
    /// Try again later: the message returns after `delay`, or after the
    /// retry policy's backoff when `delay` is `None`.
    #[non_exhaustive]
    Retry {
        /// What went wrong, for the logs.
        reason: String,
        /// How long to wait before the next attempt, if the handler knows.
        delay: Option<Duration>,
        /// What it says about the handler's downstream, for its
        /// [`SinkBreaker`]: set with [`HandlerError::with_sink_fault`].
        sink: Option<SinkFault>,
    },
    /// Never going to work: dead-lettered when a DLQ is configured.
    #[non_exhaustive]
    Permanent {
        /// What went wrong; sent along as `sqsrt.reason` to the DLQ.
        reason: String,
    },
}

impl HandlerError {
    /// A retryable failure with the retry policy's backoff.
    pub fn retry(reason: impl fmt::Display) -> Self {
        Self::Retry {
            reason: reason.to_string(),
            delay: None,
            sink: None,
        }
    }

    /// A retryable failure that should come back after `delay`.
    pub fn retry_after(reason: impl fmt::Display, delay: Duration) -> Self {
        Self::Retry {
            reason: reason.to_string(),
            delay: Some(delay),
            sink: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl fmt::Display) -> Self {
        Self::Permanent {
            reason: reason.to_string(),
        }
    }

    /// What went wrong.
    #[must_use]
    pub fn reason(&self) -> &str {
        match self {
            Self::Retry { reason, .. } | Self::Permanent { reason } => reason,
        }
    }

    /// The handler's own retry delay, if it gave one.
    #[must_use]
    pub fn delay(&self) -> Option<Duration> {
        match self {
            Self::Retry { delay, .. } => *delay,
            Self::Permanent { .. } => None,
        }
    }

    /// Whether it is a permanent failure.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent { .. })
    }

    /// This retryable failure, saying what it tells about the downstream
    /// the handler forwards to (the handler's [`Handler::breaker`] counts
    /// it). A permanent failure stays as it is: a downstream that rejects a
    /// message has answered.
    #[must_use]
    pub fn with_sink_fault(mut self, fault: SinkFault) -> Self {
        if let Self::Retry { sink, .. } = &mut self {
            *sink = Some(fault);
        }
        self
    }

    /// What this failure tells about the downstream, if the handler said.
    #[must_use]
    pub fn sink_fault(&self) -> Option<SinkFault> {
        match self {
            Self::Retry { sink, .. } => *sink,
            Self::Permanent { .. } => None,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retry { reason, .. } => write!(f, "retryable failure: {reason}"),
            Self::Permanent { reason } => write!(f, "permanent failure: {reason}"),
        }
    }
}

/// The reason of an error with its whole source chain, one line.
fn chain(error: impl Into<anyhow::Error>) -> String {
    format!("{:#}", error.into())
}

impl<E: Into<anyhow::Error>> From<E> for HandlerError {
    /// A retryable failure whose reason is the error and its sources.
    fn from(error: E) -> Self {
        Self::retry(chain(error))
    }
}

/// `?`-friendly classification of any error inside a handler:
///
/// ```
/// use std::time::Duration;
/// use sqsrt_core::{HandlerError, ResultExt};
///
/// fn parse(body: &str) -> Result<u32, std::num::ParseIntError> { body.parse() }
///
/// fn handle(body: &str) -> Result<(), HandlerError> {
///     let qty = parse(body).permanent()?; // never going to parse: dead-letter it
///     std::fs::metadata("/tmp").retry_after(Duration::from_secs(30))?; // come back in 30 s
///     std::fs::metadata("/").retry()?; // backoff (what `?` alone does)
///     let _ = qty;
///     Ok(())
/// }
/// assert!(handle("x").unwrap_err().is_permanent());
/// ```
pub trait ResultExt<T> {
    /// On error, a [`HandlerError::Permanent`] with the error's chain as reason.
    ///
    /// # Errors
    ///
    /// When `self` is an error.
    fn permanent(self) -> Result<T, HandlerError>;

    /// On error, a [`HandlerError::Retry`] with the retry policy's backoff
    /// (the same as `?` alone).
    ///
    /// # Errors
    ///
    /// When `self` is an error.
    fn retry(self) -> Result<T, HandlerError>;

    /// On error, a [`HandlerError::Retry`] that comes back after `delay`.
    ///
    /// # Errors
    ///
    /// When `self` is an error.
    fn retry_after(self, delay: Duration) -> Result<T, HandlerError>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn permanent(self) -> Result<T, HandlerError> {
        self.map_err(|e| HandlerError::permanent(chain(e)))
    }

    fn retry(self) -> Result<T, HandlerError> {
        self.map_err(|e| HandlerError::retry(chain(e)))
    }

    fn retry_after(self, delay: Duration) -> Result<T, HandlerError> {
        self.map_err(|e| HandlerError::retry_after(chain(e), delay))
    }
}

/// Decodes a message body as JSON into `T`. A body that does not decode is a
/// permanent failure whose reason names the path of the offending field
/// (`body does not decode at .items[2].qty: invalid type: ...`).
///
/// # Errors
///
/// [`HandlerError::Permanent`] when the body is not valid JSON for `T`.
pub fn decode_json<T: DeserializeOwned>(message: &Message) -> Result<T, HandlerError> {
    crate::envelope::decode(message.body(), "body")
}

/// A [`Handler`] made from an async closure over the owned message; see
/// [`handler_fn`].
#[derive(Debug, Clone)]
pub struct HandlerFn<F> {
    f: F,
}

/// Wraps `f(message, ctx)` as a [`Handler`]. The closure may return any
/// `Result<(), E>` whose error converts into a [`HandlerError`]:
/// `HandlerError` itself, `anyhow::Error`, or any `std::error::Error`.
///
/// ```
/// use sqsrt_core::{handler_fn, Context, HandlerError, Message};
///
/// let handler = handler_fn(|message: Message, _ctx: Context| async move {
///     println!("{}", message.body());
///     Ok::<_, HandlerError>(()) // a closure that never fails names its error type once
/// });
/// let with_anyhow = handler_fn(|message: Message, _ctx: Context| async move {
///     let n: u32 = message.body().parse()?; // a ParseIntError: a retry
///     anyhow::ensure!(n > 0, "zero");
///     Ok::<_, anyhow::Error>(())
/// });
/// # let _ = (handler, with_anyhow);
/// ```
pub fn handler_fn<F, Fut, E>(f: F) -> HandlerFn<F>
where
    F: Fn(Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<HandlerError>,
{
    HandlerFn { f }
}

impl<F, Fut, E> Handler for HandlerFn<F>
where
    F: Fn(Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<HandlerError>,
{
    async fn handle(&self, message: Message, ctx: Context) -> Result<(), HandlerError> {
        (self.f)(message, ctx).await.map_err(Into::into)
    }
}

/// A [`Handler`] made from an async closure and shared state; see
/// [`state_fn`].
pub struct StateFn<S, F> {
    state: Arc<S>,
    f: F,
}

impl<S, F> fmt::Debug for StateFn<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateFn")
            .field("state", &std::any::type_name::<S>())
            .finish_non_exhaustive()
    }
}

/// Wraps `f(state, message, ctx)` as a [`Handler`]: `state` (clients,
/// pools, configuration) is built once and every message gets an `Arc` of it,
/// as kube-runtime's `Arc<Ctx>` or axum's `State`. It plays the part of
/// `&self` in a [`Handler`] implemented on a struct.
///
/// ```
/// use std::sync::Arc;
/// use sqsrt_core::{state_fn, Context, Message};
///
/// struct Inventory { warehouse: String }
///
/// let handler = state_fn(
///     Inventory { warehouse: "east".into() },
///     |inventory: Arc<Inventory>, message: Message, _ctx: Context| async move {
///         println!("{} -> {}", message.id(), inventory.warehouse);
///         Ok::<_, anyhow::Error>(())
///     },
/// );
/// # let _ = handler;
/// ```
pub fn state_fn<S, F, Fut, E>(state: impl Into<Arc<S>>, f: F) -> StateFn<S, F>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<HandlerError>,
{
    StateFn {
        state: state.into(),
        f,
    }
}

impl<S, F, Fut, E> Handler for StateFn<S, F>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<HandlerError>,
{
    async fn handle(&self, message: Message, ctx: Context) -> Result<(), HandlerError> {
        (self.f)(Arc::clone(&self.state), message, ctx)
            .await
            .map_err(Into::into)
    }
}

/// A typed [`Handler`]: the body is decoded as JSON into `T` first (from
/// inside an envelope when one is set), and a body that does not decode is a
/// permanent failure naming the serde error path; see [`json_fn`].
pub struct JsonFn<T, F, En = Plain> {
    f: F,
    envelope: En,
    _body: PhantomData<fn() -> T>,
}

impl<T, F, En: fmt::Debug> fmt::Debug for JsonFn<T, F, En> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonFn")
            .field("body", &std::any::type_name::<T>())
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

/// Wraps `f(body, message, ctx)` as a [`Handler`] whose body is decoded as
/// JSON into `T`. The closure's error converts as in [`handler_fn`]. For a
/// body inside an SNS, EventBridge or S3 envelope, add
/// [`JsonFn::envelope`].
///
/// ```
/// use serde::Deserialize;
/// use sqsrt_core::{json_fn, Context, HandlerError, Message};
///
/// #[derive(Deserialize)]
/// struct Order { id: u64, qty: u32 }
///
/// let handler = json_fn(|order: Order, _message: Message, _ctx: Context| async move {
///     if order.qty == 0 {
///         return Err(HandlerError::permanent(format!("order {} has no items", order.id)));
///     }
///     Ok(())
/// });
/// # let _ = handler;
/// ```
pub fn json_fn<T, F, Fut, E>(f: F) -> JsonFn<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<HandlerError>,
{
    JsonFn {
        f,
        envelope: Plain,
        _body: PhantomData,
    }
}

impl<T, F, En> JsonFn<T, F, En> {
    /// Decodes `T` from inside `envelope` instead of the whole body:
    /// [`Sns`](crate::envelope::Sns), [`EventBridge`](crate::envelope::EventBridge)
    /// or [`S3`](crate::envelope::S3).
    #[must_use]
    pub fn envelope<E2: Envelope>(self, envelope: E2) -> JsonFn<T, F, E2> {
        JsonFn {
            f: self.f,
            envelope,
            _body: PhantomData,
        }
    }
}

impl<T, F, Fut, E, En> Handler for JsonFn<T, F, En>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, Message, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Into<HandlerError>,
    En: Envelope,
{
    async fn handle(&self, message: Message, ctx: Context) -> Result<(), HandlerError> {
        let Some(body) = self.envelope.open::<T>(message.body())? else {
            return Ok(());
        };
        (self.f)(body, message, ctx).await.map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // fields exist to be decoded
    struct Order {
        id: u64,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // fields exist to be decoded
    struct Item {
        qty: u32,
    }

    fn reason(body: &str) -> String {
        match decode_json::<Order>(&Message::new("m", body)) {
            Err(e) if e.is_permanent() => e.reason().to_owned(),
            other => panic!("expected a permanent failure, got {other:?}"),
        }
    }

    #[test]
    fn undecodable_body_is_permanent_and_names_the_field_path() {
        let r = reason(r#"{"id": 1, "items": [{"qty": 1}, {"qty": "two"}]}"#);
        assert!(
            r.starts_with("body does not decode at items[1].qty: invalid type: string"),
            "{r}"
        );
    }

    #[test]
    fn missing_field_and_trailing_garbage_are_named() {
        assert!(reason(r#"{"items": []}"#).contains("missing field `id`"));
        assert!(reason(r#"{"id": 1, "items": []} x"#).contains("trailing characters"));
        let r = reason("not json");
        assert!(r.contains("expected"), "{r}");
    }

    #[test]
    fn floats_decode_correctly_rounded() {
        // Found by fuzzing (fuzz/, typed_body): without serde_json's
        // `float_roundtrip`, a long mantissa decoded one ULP off, so a value
        // did not survive encode + decode.
        #[derive(Deserialize)]
        struct Priced {
            price: f64,
        }
        let text = "9555555555555555555555555555555555555555555555555555555.5";
        let body = format!(r#"{{"price": {text}}}"#);
        let price = decode_json::<Priced>(&Message::new("m", body))
            .unwrap()
            .price;
        // Rust's own parser rounds correctly; compared bit for bit.
        assert_eq!(price.to_bits(), text.parse::<f64>().unwrap().to_bits());
        let again = format!(r#"{{"price": {price}}}"#);
        let back = decode_json::<Priced>(&Message::new("m", again))
            .unwrap()
            .price;
        assert_eq!(back.to_bits(), price.to_bits());
    }

    #[tokio::test]
    async fn json_fn_decodes_before_calling_the_closure() {
        let handler = json_fn(|order: Order, _m: Message, _ctx: Context| async move {
            if order.items.is_empty() {
                Err(HandlerError::permanent("no items"))
            } else {
                Ok(())
            }
        });
        let ctx = Context::new(Instant::now(), CancellationToken::new());
        let ok = handler
            .handle(
                Message::new("1", r#"{"id":1,"items":[{"qty":2}]}"#),
                ctx.clone(),
            )
            .await;
        assert_eq!(ok, Ok(()));
        let empty = handler
            .handle(Message::new("2", r#"{"id":1,"items":[]}"#), ctx.clone())
            .await;
        assert_eq!(empty, Err(HandlerError::permanent("no items")));
        let bad = handler.handle(Message::new("3", "42"), ctx).await;
        assert!(
            matches!(&bad, Err(e) if e.is_permanent() && e.reason().contains("at .: invalid type: integer")),
            "{bad:?}"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("inventory unavailable")]
    struct Unavailable(#[source] std::io::Error);

    async fn reserve(fail: bool) -> anyhow::Result<()> {
        tokio::task::yield_now().await;
        if fail {
            let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            return Err(anyhow::Error::new(Unavailable(io)).context("reserving order 7"));
        }
        Ok(())
    }

    #[tokio::test]
    async fn question_mark_on_anyhow_is_a_retry_keeping_the_source_chain() {
        async fn handle(fail: bool) -> Result<(), HandlerError> {
            reserve(fail).await?;
            Ok(())
        }
        assert_eq!(handle(false).await, Ok(()));
        assert_eq!(
            handle(true).await,
            Err(HandlerError::retry(
                "reserving order 7: inventory unavailable: refused"
            ))
        );
    }

    #[test]
    fn question_mark_on_std_errors_keeps_their_sources() {
        fn handle() -> Result<(), HandlerError> {
            let io = std::io::Error::other("disk gone");
            Err(Unavailable(io))?;
            Ok(())
        }
        fn parse() -> Result<u32, HandlerError> {
            Ok("x".parse::<u32>()?)
        }
        let e = handle().unwrap_err();
        assert!(!e.is_permanent());
        assert_eq!(e.reason(), "inventory unavailable: disk gone");
        assert_eq!(
            parse().unwrap_err().reason(),
            "invalid digit found in string"
        );
    }

    #[test]
    fn result_ext_classifies_any_error() {
        let bad = || "x".parse::<u32>();
        assert_eq!(
            bad().permanent(),
            Err(HandlerError::permanent("invalid digit found in string"))
        );
        assert_eq!(
            bad().retry(),
            Err(HandlerError::retry("invalid digit found in string"))
        );
        let later = bad().retry_after(Duration::from_secs(30)).unwrap_err();
        assert_eq!(later.delay(), Some(Duration::from_secs(30)));
        assert_eq!("5".parse::<u32>().permanent(), Ok(5));
        let chained = Err::<(), _>(anyhow::anyhow!("root").context("outer")).permanent();
        assert_eq!(chained, Err(HandlerError::permanent("outer: root")));
    }

    #[tokio::test]
    async fn closures_may_return_anyhow_results_and_share_state() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let ctx = || Context::with_deadline(Instant::now());
        let plain = handler_fn(|m: Message, _ctx: Context| async move {
            reserve(m.body() == "fail").await?;
            anyhow::ensure!(m.body() != "zero", "quantity is zero");
            Ok(())
        });
        assert_eq!(plain.handle(Message::new("1", "ok"), ctx()).await, Ok(()));
        let e = plain
            .handle(Message::new("2", "zero"), ctx())
            .await
            .unwrap_err();
        assert_eq!(e, HandlerError::retry("quantity is zero"));
        let e = plain
            .handle(Message::new("3", "fail"), ctx())
            .await
            .unwrap_err();
        assert!(
            e.reason().ends_with("inventory unavailable: refused"),
            "{e}"
        );

        let typed = json_fn(|order: Order, _m: Message, _ctx: Context| async move {
            reserve(order.id == 0).await?;
            Ok::<_, anyhow::Error>(())
        });
        let order = r#"{"id":0,"items":[]}"#;
        let e = typed
            .handle(Message::new("4", order), ctx())
            .await
            .unwrap_err();
        assert!(
            !e.is_permanent() && e.reason().starts_with("reserving order 7"),
            "{e}"
        );

        let seen = state_fn(
            AtomicU32::new(0),
            |count: Arc<AtomicU32>, _m: Message, _ctx: Context| async move {
                count.fetch_add(1, Ordering::Relaxed);
                Ok::<_, HandlerError>(())
            },
        );
        for id in ["a", "b", "c"] {
            seen.handle(Message::new(id, ""), ctx()).await.unwrap();
        }
        assert_eq!(
            seen.state.load(Ordering::Relaxed),
            3,
            "one state for every message"
        );
    }
}
