//! sqsrt's platform-neutral core.
//!
//! It knows messages, handlers and outcomes, and nothing of AWS, Lambda,
//! signals or environment variables: the adapters (`sqsrt-lambda`,
//! `sqsrt-k8s-worker`) turn SQS records into [`Message`]s, run them through
//! an [`Engine`] and act on each [`Outcome`].
//!
//! Layout, one file per concern:
//!
//! - [`message`]: [`Message`] and its attributes.
//! - [`handler`]: the [`Handler`] trait, its [`Context`], [`HandlerError`],
//!   and the closure helpers [`handler_fn`] and [`json_fn`] (typed bodies).
//! - [`outcome`]: [`Outcome`], what became of one message.
//! - [`retry`]: [`RetryPolicy`], exponential backoff with jitter.
//! - [`sink`]: [`SinkBreaker`], the circuit breaker of a handler that
//!   forwards to one downstream (the `http` and `kafka` forwarders).
//! - [`engine`]: the batch [`Engine`]: bounded concurrency, FIFO group order,
//!   timeouts, caught panics, deadlines.
//!
//! ```
//! use sqsrt_core::{handler_fn, BatchOptions, Context, Engine, EngineConfig, HandlerError, Message, Outcome};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let handler = handler_fn(|message: Message, _ctx: Context| async move {
//!     match message.body() {
//!         "bad" => Err(HandlerError::permanent("bad body")),
//!         _ => Ok(()),
//!     }
//! });
//! let engine = Engine::new(handler, EngineConfig::default());
//! let batch = vec![Message::new("1", "good"), Message::new("2", "bad")];
//! let outcomes = engine.run_batch(batch, &BatchOptions::default()).await;
//! assert_eq!(outcomes[0], Outcome::Success);
//! assert_eq!(outcomes[1], Outcome::Permanent { reason: "bad body".into() });
//! # }
//! ```

pub mod engine;
pub mod envelope;
pub mod handler;
pub mod json_text;
pub mod message;
pub mod outcome;
pub mod retry;
pub mod sink;

pub use engine::{BatchOptions, Engine, EngineConfig, Report, panic_message};
pub use envelope::{Envelope, EventBridge, Plain, S3, Sns, decode_json_in};
pub use handler::{
    Context, Handler, HandlerError, HandlerFn, HandlerMetric, Invocation, JsonFn, MetricKind,
    MetricValue, ResultExt, StateFn, decode_json, handler_fn, json_fn, state_fn,
};
pub use message::{AttributeValue, Attributes, Message, MessageAttribute, MessageAttributes};
pub use outcome::{Outcome, OutcomeKind, SkipReason};
pub use retry::{MAX_VISIBILITY, RetryPolicy, RetryPolicyError};
pub use sink::{OPEN_AFTER_SERVER_ERRORS, PROBE_EVERY, SinkBreaker, SinkFault};
