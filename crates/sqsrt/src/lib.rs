//! sqsrt runs one SQS message handler, written once, on two platforms from
//! one build:
//!
//! - **AWS Lambda**, fed by an SQS event source mapping: the function answers
//!   with an `SqsBatchResponse` listing only the failed records.
//! - **A container on Kubernetes**, long-polling SQS itself, scaled from zero
//!   by KEDA.
//!
//! Write a [`Handler`] (or a closure: [`handler_fn`], [`json_fn`],
//! [`state_fn`]) and hand it to [`main`] or [`run`]; the mode is picked at
//! start (Lambda when `AWS_LAMBDA_RUNTIME_API` is set, worker otherwise),
//! and the same flags and `SQSRT_*` variables as the `sqsrt` binary
//! configure it. `?` works on any error; [`ResultExt`] marks one permanent
//! or gives its delay:
//!
//! ```
//! use serde::Deserialize;
//! use sqsrt::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct Order { id: u64, qty: u32 }
//!
//! fn check_stock(order: &Order) -> anyhow::Result<()> {
//!     anyhow::ensure!(order.qty <= 100, "order {}: only 100 in stock", order.id);
//!     Ok(())
//! }
//!
//! async fn reserve(order: Order, _message: Message, _ctx: Context) -> Result<(), HandlerError> {
//!     let _boxes = u8::try_from(order.qty).permanent()?; // never going to fit: dead-lettered
//!     check_stock(&order)?; // any other error: retried with backoff
//!     Ok(())
//! }
//!
//! // The program: fn main() -> std::process::ExitCode { sqsrt::main(json_fn(reserve)) }
//!
//! // Its test, without a network: a Lambda SQS event in, the batch response out.
//! # #[cfg(feature = "testing")]
//! # {
//! use sqsrt::testing::{run_event, EventBuilder};
//!
//! let event = EventBuilder::new()
//!     .record("1", r#"{"id": 1, "qty": 2}"#)
//!     .record("2", r#"{"id": 2, "qty": 300}"#)
//!     .record("3", r#"{"id": 3, "qty": 150}"#);
//! let result = run_event(json_fn(reserve), event).unwrap();
//! assert_eq!(result.failed_ids(), ["2", "3"]);
//! assert!(result.outcome("2").is_permanent());
//! assert_eq!(result.outcome("3").reason().as_deref(), Some("order 3: only 100 in stock"));
//! # }
//! ```
//!
//! A program with its own flags, AWS config, shutdown token or logging uses
//! [`Runner`], where every setting can be given in code.
//!
//! Layout: [`Runner`] (settings, init, modes), `settings` (their validation,
//! one place for both ways of giving them), [`Error`], `process` (runtime,
//! signals, Lambda's environment), [`logging`] (JSON lines), `cli` and
//! `handlers` (the binary's flags and built-in handlers), `testing` (the test
//! kit, cargo feature `testing`); the engine lives in
//! `sqsrt-core`, the platforms in `sqsrt-lambda` and `sqsrt-k8s-worker`.
//!
//! Allocator: a library cannot choose the global allocator. The `sqsrt`
//! binary uses mimalloc (a 10,000-record decode is ~40 % faster than with
//! musl's or glibc's allocator, docs/performance.md); do the same in your
//! `main.rs` with the `mimalloc` crate, as the scaffold does.

mod cli;
mod error;
mod handlers;
mod process;
mod runner;
mod settings;

pub mod logging;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::process::ExitCode;

pub use process::build_runtime;
pub use runner::{Error, Mode, Runner};
pub use settings::ConfigProblem;
pub use sqsrt_core::envelope::{self, EventBridge, S3, Sns};
pub use sqsrt_core::{
    AttributeValue, Attributes, Context, Handler, HandlerError, HandlerFn, JsonFn, Message,
    MessageAttribute, MessageAttributes, Outcome, OutcomeKind, ResultExt, RetryPolicy, SkipReason,
    StateFn, decode_json, handler_fn, json_fn, state_fn,
};
pub use sqsrt_sqs::config_loader;
/// The shutdown token [`Runner::shutdown`] takes and [`Context::cancellation`] gives.
pub use tokio_util::sync::CancellationToken;
/// The AWS SDK crates sqsrt is built on, for [`Runner::sdk_config`] and
/// [`Runner::sqs_client`] at the same versions.
pub use {aws_config, aws_sdk_sqs};

/// What a handler file needs: `use sqsrt::prelude::*;`.
pub mod prelude {
    pub use sqsrt_core::{
        Context, Handler, HandlerError, Message, ResultExt, handler_fn, json_fn, state_fn,
    };
}

/// Runs `handler` in the mode picked at start, configured by flags and
/// `SQSRT_*` variables, until the process is told to stop. A configuration
/// problem is printed, naming the flag and variable, and the process exits
/// with status 2. For errors returned instead, use [`Runner`].
///
/// # Errors
///
/// As [`Runner::run`], but for configuration problems.
pub async fn run<H: Handler>(handler: H) -> Result<(), Error> {
    exit_on_config_error(Runner::from_args().run(handler).await)
}

/// [`run`] with the handler built once at start by `init`; see
/// [`Runner::run_with`].
///
/// # Errors
///
/// As [`Runner::run_with`], but for configuration problems.
pub async fn run_with<H, F, Fut>(init: F) -> Result<(), Error>
where
    H: Handler,
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<H>>,
{
    exit_on_config_error(Runner::from_args().run_with(init).await)
}

fn exit_on_config_error(result: Result<(), Error>) -> Result<(), Error> {
    match result {
        Err(error @ Error::Config(_)) => {
            eprintln!("sqsrt: {error}");
            std::process::exit(2);
        }
        other => other,
    }
}

/// The whole `main` of a program: flags and `SQSRT_*` variables, the async
/// runtime with `--threads` (default: the CPUs available), the handler, and
/// the exit status (0, 1, or 2 for configuration problems).
///
/// ```no_run
/// use sqsrt::prelude::*;
///
/// fn main() -> std::process::ExitCode {
///     sqsrt::main(handler_fn(|m: Message, _ctx: Context| async move {
///         println!("{}", m.body());
///         Ok::<_, HandlerError>(())
///     }))
/// }
/// ```
pub fn main<H: Handler>(handler: H) -> ExitCode {
    Runner::from_args().main(handler)
}

/// [`main`] with the handler built once at start by `init`; see
/// [`Runner::run_with`].
pub fn main_with<H, F, Fut>(init: F) -> ExitCode
where
    H: Handler,
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<H>>,
{
    Runner::from_args().main_with(init)
}

/// The `sqsrt` binary: the built-in handler named by `--handler`. Not API.
#[doc(hidden)]
pub fn builtin_main() -> ExitCode {
    let (cli, handler) = cli::parse_args_building(|cli| cli.common().builtin_handler());
    cli.into_runner().main(handler)
}
