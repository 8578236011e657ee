//! sqsrt's long-poll SQS worker for Kubernetes, scaled from zero by KEDA.
//!
//! This crate is a skeleton: it holds the worker's settings and their
//! validation, which `sqsrt worker` already checks at start. The receive
//! loop, heartbeat, batched deletes, drain on SIGTERM, and health and
//! metrics endpoints are the subject of the "worker mode" issue; until they
//! land, [`run`] refuses to start with [`WorkerError::NotAvailable`].

use std::net::SocketAddr;
use std::time::Duration;

/// Worker-mode settings (see DESIGN.md "Configuration names").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The source queue.
    pub queue_url: String,
    /// Visibility asked on receive; `None`: the queue's own.
    pub visibility_timeout: Option<Duration>,
    /// Heartbeat period; `None`: a third of the visibility.
    pub heartbeat: Option<Duration>,
    /// Drain time after SIGTERM.
    pub shutdown_grace: Duration,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub metrics_addr: SocketAddr,
}

/// Why the worker cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// Worker mode is not built yet.
    #[error(
        "worker mode is not available in this build yet (the long-poll worker is tracked by the \"worker mode\" issue); run in Lambda mode with `sqsrt lambda`"
    )]
    NotAvailable,
}

/// Runs the worker.
///
/// # Errors
///
/// Always [`WorkerError::NotAvailable`] in this build.
pub fn run(_config: &WorkerConfig) -> Result<(), WorkerError> {
    Err(WorkerError::NotAvailable)
}
