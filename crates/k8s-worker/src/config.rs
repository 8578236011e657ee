//! Worker settings, their errors, and how the worker ended.

use std::net::SocketAddr;
use std::time::Duration;

use sqsrt_core::RetryPolicy;

/// Worker-mode settings (docs/design.md, "Configuration"; validated by the `sqsrt` crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The source queue.
    pub queue_url: String,
    /// Dead-letter queue for permanent failures.
    pub dlq_url: Option<String>,
    /// Messages received ahead of free handler slots, so a handler that
    /// finishes is followed at once instead of after a receive. At most the
    /// engine's in-flight limit plus `prefetch` messages are held (received,
    /// not settled). The limit and the handler timeout are the engine's.
    pub prefetch: usize,
    /// Visibility asked on receive; `None`: the queue's own.
    pub visibility_timeout: Option<Duration>,
    /// Heartbeat period; `None`: a third of the visibility.
    pub heartbeat: Option<Duration>,
    /// Drain time after SIGTERM.
    pub shutdown_grace: Duration,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub metrics_addr: SocketAddr,
    /// Backoff for retried messages.
    pub retry: RetryPolicy,
}

/// Why the worker cannot run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The metrics address cannot be bound.
    #[error("cannot listen on {addr} (set by --metrics-addr or SQSRT_METRICS_ADDR): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The queue's own settings conflict with the configuration.
    #[error("invalid configuration for this queue:\n  {}", .0.join("\n  "))]
    Config(Vec<String>),
}

/// How the worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every running handler finished within the grace; deletes flushed.
    Drained,
    /// The grace ran out; the messages still running were released.
    GraceExpired,
}
