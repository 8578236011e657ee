//! Turns Lambda mode's best-effort SQS calls off for a while when SQS cannot
//! be reached, so an unreachable endpoint costs one invocation one bounded
//! call, not every invocation its calls.
//!
//! Written here rather than taken from a crate: the rule is three lines
//! (open on a call that got no answer, stay open for a period, let the next
//! call after it probe), and what it must log (one warning per outage) is
//! specific to sqsrt.

use std::sync::Mutex;
use std::time::Duration;

use sqsrt_sqs::{SqsError, SqsErrorKind};
use tokio::time::Instant;
use tracing::{info, warn};

/// How long SQS calls stay off after a call got no answer.
pub(crate) const OFF_FOR: Duration = Duration::from_secs(60);

/// Whether SQS calls are on, and since when they are off.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Calls are off until then.
    off_until: Option<Instant>,
    /// The outage was warned about (reset when a call gets an answer).
    warned: bool,
}

impl Breaker {
    /// Whether a call may be made now.
    pub(crate) fn allows(&self) -> bool {
        self.lock()
            .off_until
            .is_none_or(|until| Instant::now() >= until)
    }

    /// Records how a call ended. A call that got no answer (connect refused
    /// or timed out, no response within the bounds: the SDK has already
    /// retried it) turns calls off for [`OFF_FOR`], with one warning per
    /// outage; any answer from SQS, an error included, turns them back on.
    pub(crate) fn record<T>(&self, result: &Result<T, SqsError>) {
        let mut state = self.lock();
        match result {
            Err(error) if error.kind == SqsErrorKind::Transport => {
                state.off_until = Some(Instant::now() + OFF_FOR);
                if !state.warned {
                    state.warned = true;
                    warn!(%error, off_secs = OFF_FOR.as_secs(), "SQS cannot be reached: backoff, release and dead-letter calls are off for a while (then one call tries again). Failed records are still listed and return after the queue's visibility timeout; permanent failures are retried instead of dead-lettered.");
                }
            }
            _ => {
                if state.warned {
                    info!("SQS answers again: backoff, release and dead-letter calls are back on.");
                }
                *state = State::default();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain fields: a panic cannot leave it half-changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport() -> Result<(), SqsError> {
        Err(SqsError {
            operation: "ChangeMessageVisibilityBatch",
            kind: SqsErrorKind::Transport,
            code: None,
            message: "connection refused".to_owned(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_without_answer_turns_calls_off_for_a_period_then_one_probes() {
        let breaker = Breaker::default();
        assert!(breaker.allows());
        breaker.record(&transport());
        assert!(!breaker.allows());
        tokio::time::advance(OFF_FOR.saturating_sub(Duration::from_millis(1))).await;
        assert!(!breaker.allows(), "still off just before the period ends");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.allows(), "a probe after the period");
        breaker.record(&transport());
        assert!(!breaker.allows(), "the probe failed: off again");
        assert!(breaker.lock().warned, "one warning for the whole outage");
    }

    #[tokio::test(start_paused = true)]
    async fn any_answer_from_sqs_turns_calls_back_on() {
        let breaker = Breaker::default();
        breaker.record(&transport());
        tokio::time::advance(OFF_FOR).await;
        let throttled: Result<(), SqsError> = Err(SqsError {
            operation: "SendMessage",
            kind: SqsErrorKind::Throttled,
            code: Some("RequestThrottled".to_owned()),
            message: "slow down".to_owned(),
        });
        breaker.record(&throttled);
        assert!(breaker.allows());
        assert!(!breaker.lock().warned, "a new outage warns again");
        breaker.record(&Ok(()));
        assert!(breaker.allows());
    }
}
