//! [`Error`]: why a run of sqsrt stopped, and the exit status it means.

use std::process::ExitCode;

use crate::settings::ConfigProblem;

/// Why sqsrt stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; every problem is listed.
    #[error("invalid configuration:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Config(Vec<ConfigProblem>),
    /// The handler's init failed; `reason` is its whole source chain.
    #[error("handler init failed: {reason}")]
    Init {
        /// The error and its sources, one line (`outer: cause: root cause`).
        reason: String,
        /// The error itself.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The Lambda runtime failed (the Runtime API could not be reached).
    #[error("Lambda runtime failed: {0}")]
    Lambda(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The worker could not run.
    #[error(transparent)]
    Worker(#[from] sqsrt_k8s_worker::WorkerError),
    /// The worker's shutdown grace ran out; the messages still running were released.
    #[error("shutdown grace ran out; the messages still running were released to the queue")]
    ShutdownGraceExpired,
    /// The async runtime could not start ([`Runner::main`](crate::Runner::main)).
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// The process exit status for this error: 2 for configuration
    /// problems, 1 otherwise.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }

    pub(crate) fn init(error: anyhow::Error) -> Self {
        Self::Init {
            reason: format!("{error:#}"),
            source: error.into(),
        }
    }
}
