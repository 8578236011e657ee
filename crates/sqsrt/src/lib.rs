//! sqsrt runs one SQS message handler, written once, on two platforms from
//! one build:
//!
//! - **AWS Lambda**, fed by an SQS event source mapping: the function answers
//!   with an `SqsBatchResponse` listing only the failed records.
//! - **A container on Kubernetes**, long-polling SQS itself, scaled from zero
//!   by KEDA.
//!
//! Write a [`Handler`] and hand it to [`run`]; the mode is picked at start
//! (Lambda when `AWS_LAMBDA_RUNTIME_API` is set, worker otherwise), and the
//! same flags and `SQSRT_*` variables configure it:
//!
//! ```no_run
//! use serde::Deserialize;
//! use sqsrt::{json_fn, Context, HandlerError, Message};
//!
//! #[derive(Deserialize)]
//! struct Order { id: u64, qty: u32 }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), sqsrt::Error> {
//!     sqsrt::run(json_fn(|order: Order, _message: Message, _ctx: Context| async move {
//!         if order.qty == 0 {
//!             return Err(HandlerError::permanent(format!("order {} is empty", order.id)));
//!         }
//!         Ok(())
//!     }))
//!     .await
//! }
//! ```
//!
//! Layout: [`cli`] (flags and variables), [`logging`] (JSON lines),
//! [`handlers`] (the binary's built-in `log` and `scripted` handlers); the
//! engine lives in `sqsrt-core`, the platforms in `sqsrt-lambda` and
//! `sqsrt-k8s-worker`.

pub mod cli;
pub mod handlers;
pub mod logging;

use std::sync::Arc;

use clap::Parser;
pub use sqsrt_core::{
    BatchOptions, Context, Engine, EngineConfig, Handler, HandlerError, Message, Outcome,
    RetryPolicy, decode_json, handler_fn, json_fn,
};
use sqsrt_lambda::SqsLambda;
use sqsrt_sqs::SqsClient;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, ConfigProblem, Mode};

/// Why sqsrt stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; every problem is listed.
    #[error("invalid configuration:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Config(Vec<ConfigProblem>),
    /// The Lambda runtime failed (the Runtime API could not be reached).
    #[error("Lambda runtime failed: {0}")]
    Lambda(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The worker could not run.
    #[error(transparent)]
    Worker(#[from] sqsrt_k8s_worker::WorkerError),
    /// The worker's shutdown grace ran out; the messages still running were released.
    #[error("shutdown grace ran out; the messages still running were released to the queue")]
    ShutdownGraceExpired,
}

/// Parses the command line and `SQSRT_*` variables, inserting the mode picked
/// from the environment when none is named. Prints help, the version, or the
/// error naming the flag and variable, and exits (status 2 on errors).
#[must_use]
pub fn parse_args() -> Cli {
    let lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some_and(|v| !v.is_empty());
    let args = cli::with_mode(std::env::args().collect(), lambda);
    Cli::try_parse_from(args).unwrap_or_else(|e| e.exit())
}

/// Runs `handler` in the mode picked at start, configured by flags and
/// `SQSRT_*` variables, until the process is told to stop.
///
/// A configuration problem is printed, naming the flag and variable, and the
/// process exits with status 2.
///
/// # Errors
///
/// [`Error::Lambda`] or [`Error::Worker`] when the platform side fails.
pub async fn run<H: Handler>(handler: H) -> Result<(), Error> {
    match run_mode(parse_args().mode, handler).await {
        Err(error @ Error::Config(_)) => {
            eprintln!("sqsrt: {error}");
            std::process::exit(2);
        }
        other => other,
    }
}

/// Runs `handler` in `mode`.
///
/// # Errors
///
/// [`Error::Config`] for invalid settings, and as [`run`].
pub async fn run_mode<H: Handler>(mode: Mode, handler: H) -> Result<(), Error> {
    match mode {
        Mode::Lambda(args) => {
            let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
            init_logging(args.common.log_level.as_deref(), lambda_level.as_deref())?;
            let mut problems = lambda_environment_problems(|name| std::env::var(name).ok());
            let config = match args.lambda() {
                Ok(config) if problems.is_empty() => config,
                Ok(_) => return Err(Error::Config(problems)),
                Err(flag_problems) => {
                    problems.extend(flag_problems);
                    return Err(Error::Config(problems));
                }
            };
            let engine = Engine::new(handler, args.common.engine());
            let queue = Arc::new(SqsClient::from_env_lazy());
            tracing::info!(
                mode = "lambda",
                version = env!("CARGO_PKG_VERSION"),
                max_in_flight = args.common.max_in_flight.get(),
                "sqsrt started."
            );
            SqsLambda::new(engine, config, queue)
                .run()
                .await
                .map_err(Error::Lambda)
        }
        Mode::Worker(args) => {
            init_logging(args.common.log_level.as_deref(), None)?;
            let config = args.worker().map_err(Error::Config)?;
            let engine = Engine::new(handler, args.common.engine());
            let queue = Arc::new(SqsClient::from_env().await);
            let shutdown = CancellationToken::new();
            shutdown_on_signal(shutdown.clone());
            match sqsrt_k8s_worker::run(engine, queue, config, shutdown).await {
                Ok(sqsrt_k8s_worker::Exit::Drained) => Ok(()),
                Ok(sqsrt_k8s_worker::Exit::GraceExpired) => Err(Error::ShutdownGraceExpired),
                Err(sqsrt_k8s_worker::WorkerError::Config(problems)) => Err(Error::Config(
                    problems.into_iter().map(ConfigProblem).collect(),
                )),
                Err(error) => Err(Error::Worker(error)),
            }
        }
    }
}

/// SIGTERM or SIGINT cancels `shutdown` (the worker drains); a second one
/// exits at once with status 1 (the queue redelivers what was held).
fn shutdown_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("Cannot install signal handlers; the worker stops only when killed.");
        return;
    };
    tokio::spawn(async move {
        for n in 0..2 {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            if n == 0 {
                tracing::info!(
                    signal = name,
                    "Signal received: draining (a second signal exits at once)."
                );
                shutdown.cancel();
            } else {
                tracing::warn!(
                    signal = name,
                    "Second signal: exiting now; held messages return after their visibility timeout."
                );
                std::process::exit(1);
            }
        }
    });
}

/// The variables the Lambda service sets and the runtime needs; checked up
/// front so a missing one is a named configuration error, not a panic.
fn lambda_environment_problems(var: impl Fn(&str) -> Option<String>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for name in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    ] {
        match var(name) {
            None => problems.push(ConfigProblem(format!(
                "{name} is not set: Lambda sets it; locally, use `cargo lambda watch` or set it yourself"
            ))),
            Some(v) if name == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" && v.trim().parse::<i32>().is_err() => {
                problems.push(ConfigProblem(format!("{name}={v:?} is not a whole number of megabytes")));
            }
            Some(_) => {}
        }
    }
    problems
}

fn init_logging(flag: Option<&str>, lambda_level: Option<&str>) -> Result<(), Error> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = logging::resolve_filter(flag, rust_log.as_deref(), lambda_level);
    logging::init(&filter).map_err(|e| {
        Error::Config(vec![ConfigProblem(format!(
            "{e} (set by --log-level or SQSRT_LOG_LEVEL, else RUST_LOG)"
        ))])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_lambda_variables_are_named() {
        let all = |name: &str| {
            Some(
                if name.ends_with("MEMORY_SIZE") {
                    "128"
                } else {
                    "x"
                }
                .to_owned(),
            )
        };
        assert!(lambda_environment_problems(all).is_empty());
        let problems = lambda_environment_problems(|name: &str| match name {
            "AWS_LAMBDA_RUNTIME_API" => Some("127.0.0.1:9001".to_owned()),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("lots".to_owned()),
            _ => None,
        });
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(text[0].starts_with("AWS_LAMBDA_FUNCTION_NAME is not set"));
        assert!(text[2].contains("\"lots\" is not a whole number"));
    }
}
