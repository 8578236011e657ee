//! `/healthz`, `/readyz` and `/metrics` on `--metrics-addr`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What the probes report: readiness, and whether the receive loop moves.
#[derive(Debug)]
pub(crate) struct Health {
    started: Instant,
    ready: AtomicBool,
    /// Milliseconds since `started` of the last receive-loop progress.
    last_progress_ms: AtomicU64,
    /// Set while every slot is taken (then no receive is expected).
    full: AtomicBool,
    /// Pollers waiting for the handler's sink: receives pause on purpose.
    paused: AtomicUsize,
    stuck_after: Duration,
}

impl Health {
    /// Alive while the receive loop made progress within `stuck_after`.
    #[must_use]
    pub(crate) fn new(stuck_after: Duration) -> Self {
        Self {
            started: Instant::now(),
            ready: AtomicBool::new(false),
            last_progress_ms: AtomicU64::new(0),
            full: AtomicBool::new(false),
            paused: AtomicUsize::new(0),
            stuck_after,
        }
    }

    /// The receive loop moved (a receive returned, or a start-up check ran).
    pub(crate) fn progress(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_progress_ms.store(ms, Ordering::Relaxed);
    }

    /// Every slot is taken (`true`) or one is free again (`false`).
    pub(crate) fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::Relaxed);
        self.progress();
    }

    /// A poller pauses its receives while the sink is down (`true`), or
    /// goes on (`false`, once per `true`): an outage of the downstream is
    /// not a stuck worker, and a restart would only return the messages it
    /// holds to the queue.
    pub(crate) fn set_paused(&self, paused: bool) {
        if paused {
            self.paused.fetch_add(1, Ordering::Relaxed);
        } else {
            self.paused.fetch_sub(1, Ordering::Relaxed);
        }
        self.progress();
    }

    /// Ready from the first successful receive until shutdown begins.
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether `/healthz` answers 200.
    pub(crate) fn is_alive(&self) -> bool {
        if self.full.load(Ordering::Relaxed) || self.paused.load(Ordering::Relaxed) > 0 {
            return true;
        }
        let last = Duration::from_millis(self.last_progress_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last) < self.stuck_after
    }
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and the
/// bound address.
///
/// # Errors
///
/// When the address cannot be bound.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves the probes and metrics until `stop` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { health, metrics });
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!(%error, "The health and metrics server failed.");
    }
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_alive() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "receive loop stuck\n")
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn alive_while_progressing_full_or_paused_for_the_sink() {
        let health = Health::new(Duration::from_secs(90));
        health.progress();
        assert!(health.is_alive());
        tokio::time::advance(Duration::from_secs(91)).await;
        assert!(!health.is_alive(), "no progress for longer than the limit");
        health.set_full(true);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert!(
            health.is_alive(),
            "a full worker is not expected to receive"
        );
        health.set_full(false);
        assert!(health.is_alive());
        health.set_paused(true);
        tokio::time::advance(Duration::from_secs(600)).await;
        assert!(health.is_alive(), "receives paused for a sink's outage");
        health.set_paused(false);
        assert!(health.is_alive(), "the end of the pause is progress");
        tokio::time::advance(Duration::from_secs(91)).await;
        assert!(!health.is_alive());
    }

    #[test]
    fn ready_only_when_set() {
        let health = Health::new(Duration::from_secs(1));
        assert!(!health.is_ready());
        health.set_ready(true);
        assert!(health.is_ready());
    }
}
