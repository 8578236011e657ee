//! sqsrt's Lambda adapter: an SQS event source mapping invokes the function
//! with a batch, and the function answers with an `SqsBatchResponse` listing
//! only the failed records (`ReportBatchItemFailures`).
//!
//! Start with [`SqsLambda`]: it decodes the event ([`decode`], checked before
//! anything runs; [`event`]), runs the records through the core engine under
//! the invocation deadline minus a margin, settles each outcome with SQS
//! ([`settle`]: `sqsrt_sqs::SettlePolicy` carried out as dead-letter copies
//! and visibility changes) and builds the response. The feature
//! `stock-decode` adds `stock`, the `aws_lambda_events` decode path the
//! decoder is tested, fuzzed and benched against.
//!
//! ```no_run
//! use std::sync::Arc;
//! use sqsrt_core::{handler_fn, Context, Engine, EngineConfig, HandlerError, Message};
//! use sqsrt_lambda::{LambdaConfig, SqsLambda};
//! use sqsrt_sqs::SqsClient;
//!
//! # async fn run() -> Result<(), lambda_runtime::Error> {
//! let handler = handler_fn(|_m: Message, _ctx: Context| async { Ok::<(), HandlerError>(()) });
//! let engine = Engine::new(handler, EngineConfig::default());
//! let queue = Arc::new(SqsClient::from_env().await);
//! SqsLambda::new(engine, LambdaConfig::default(), queue).run().await
//! # }
//! ```

pub mod adapter;
mod breaker;
pub mod decode;
pub mod emf;
pub mod event;
mod init_error;
pub mod outcome_lines;
mod scan;
pub mod settle;
#[cfg(feature = "stock-decode")]
pub mod stock;

/// The name of the span an invocation's outcome lines are logged in, just
/// before its response is sent. A logging layer may hold the lines of such a
/// span and write them together when it closes (sqsrt's JSON layer does:
/// 10,000 writes become one); any other subscriber sees ordinary events.
pub const OUTCOME_LINES_SPAN: &str = "sqsrt.outcome_lines";

pub use adapter::{IntoRecords, InvocationError, LambdaConfig, RecordResult, SqsLambda};
pub use decode::SqsRecords;
pub use emf::Emf;
pub use event::{EventError, RecordMeta};
pub use init_error::{InitReportError, report_init_error, runtime_api_problem};
pub use outcome_lines::{OUTCOME_LINES_TARGET, OutcomeLine, OutcomeLineWriter};
