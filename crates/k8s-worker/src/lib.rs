//! sqsrt's long-poll SQS worker for Kubernetes, scaled from zero by KEDA.
//!
//! [`run`] long-polls the queue with several receives in flight while there
//! is room under `max_in_flight`, runs each receive through the core engine,
//! and settles every outcome as soon as it is decided: successes deleted in
//! batches, retries re-timed to their backoff, skipped messages released,
//! permanent failures dead-lettered. A heartbeat keeps running messages
//! invisible. When the shutdown token fires it stops receiving, releases what
//! has not started, lets running handlers finish within the grace and flushes
//! deletes. `/healthz`, `/readyz` and `/metrics` are served throughout.
//!
//! Layout: `config` (settings, errors, exit), `worker` (the loop),
//! `settle` (carrying out the settlement policy of `sqsrt_sqs::settle` with
//! batched SQS calls), `heartbeat` (keeping running messages invisible),
//! `metrics` (names and registry), `http` (probes), `errors` (SQS error
//! logging). Only [`run`] and its settings are public.

mod config;
mod errors;
mod heartbeat;
mod http;
mod metrics;
mod settle;
mod worker;

pub use config::{Exit, WorkerConfig, WorkerError};
pub use heartbeat::check_heartbeat;
pub use worker::run;
