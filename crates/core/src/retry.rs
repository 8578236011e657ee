//! Exponential backoff on SQS's receive count.

use std::time::Duration;

/// SQS's longest visibility timeout: 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// Backoff for retryable failures:
/// `delay = min(max, base * 2^(receive_count - 1))`, then jittered into
/// `[delay / 2, delay]` ("equal jitter") so that a burst of failures does not
/// come back at the same instant, and never above 12 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    base: Duration,
    max: Duration,
}

/// A [`RetryPolicy`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    /// The base delay is zero.
    #[error("retry base must be at least 1 second")]
    ZeroBase,
    /// The maximum is below the base.
    #[error("retry max ({max:?}) must be at least the retry base ({base:?})")]
    MaxBelowBase {
        /// The base given.
        base: Duration,
        /// The maximum given.
        max: Duration,
    },
    /// The maximum is above SQS's 12-hour visibility limit.
    #[error("retry max ({0:?}) exceeds SQS's limit of 43200 seconds")]
    MaxAboveLimit(Duration),
}

impl Default for RetryPolicy {
    /// 2 seconds base, 900 seconds max.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            max: Duration::from_secs(900),
        }
    }
}

impl RetryPolicy {
    /// A policy with the given bounds.
    ///
    /// # Errors
    ///
    /// When `base` is zero, `max < base`, or `max` exceeds 12 hours.
    pub fn new(base: Duration, max: Duration) -> Result<Self, RetryPolicyError> {
        if base.is_zero() {
            return Err(RetryPolicyError::ZeroBase);
        }
        if max < base {
            return Err(RetryPolicyError::MaxBelowBase { base, max });
        }
        if max > MAX_VISIBILITY {
            return Err(RetryPolicyError::MaxAboveLimit(max));
        }
        Ok(Self { base, max })
    }

    /// The base delay.
    #[must_use]
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The maximum delay.
    #[must_use]
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The un-jittered delay for a message received `receive_count` times
    /// (1 on first delivery; 0 is read as 1).
    #[must_use]
    pub fn ceiling(&self, receive_count: u32) -> Duration {
        let exponent = receive_count.saturating_sub(1).min(31);
        self.base
            .checked_mul(1_u32 << exponent)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The delay with jitter `unit` in `[0, 1]`: `ceiling * (1 + unit) / 2`.
    /// Pure, for tests; [`RetryPolicy::delay`] draws `unit` at random.
    #[must_use]
    pub fn delay_with_jitter(&self, receive_count: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(receive_count);
        ceiling.mul_f64(f64::midpoint(1.0, unit.clamp(0.0, 1.0)))
    }

    /// The jittered delay for a message received `receive_count` times.
    #[must_use]
    pub fn delay(&self, receive_count: u32) -> Duration {
        self.delay_with_jitter(receive_count, fastrand::f64())
    }

    /// The delay to apply to a retry: the handler's own delay when it gave
    /// one (capped at 12 hours), otherwise the backoff.
    #[must_use]
    pub fn delay_for(&self, receive_count: u32, handler_delay: Option<Duration>) -> Duration {
        handler_delay.map_or_else(|| self.delay(receive_count), |d| d.min(MAX_VISIBILITY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn ceiling_doubles_per_receive_from_base() {
        let p = RetryPolicy::new(secs(2), secs(900)).unwrap();
        assert_eq!(p.ceiling(1), secs(2));
        assert_eq!(p.ceiling(2), secs(4));
        assert_eq!(p.ceiling(3), secs(8));
        assert_eq!(p.ceiling(9), secs(512));
        assert_eq!(p.ceiling(10), secs(900));
    }

    #[test]
    fn receive_count_zero_reads_as_first_delivery() {
        let p = RetryPolicy::default();
        assert_eq!(p.ceiling(0), p.ceiling(1));
    }

    #[test]
    fn huge_receive_counts_saturate_at_max() {
        let p = RetryPolicy::new(secs(1), MAX_VISIBILITY).unwrap();
        assert_eq!(p.ceiling(u32::MAX), MAX_VISIBILITY);
        assert_eq!(p.ceiling(40), MAX_VISIBILITY);
    }

    #[test]
    fn jitter_stays_between_half_and_full_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_with_jitter(3, 0.0), secs(4));
        assert_eq!(p.delay_with_jitter(3, 1.0), secs(8));
        assert_eq!(p.delay_with_jitter(3, 0.5), Duration::from_secs(6));
        assert_eq!(p.delay_with_jitter(3, 7.0), secs(8), "unit is clamped");
        for _ in 0..1000 {
            let d = p.delay(5);
            assert!(d >= secs(16) && d <= secs(32), "{d:?}");
        }
    }

    #[test]
    fn handler_delay_wins_but_is_capped_at_twelve_hours() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_for(7, Some(secs(3))), secs(3));
        assert_eq!(p.delay_for(1, Some(secs(100_000))), MAX_VISIBILITY);
        assert!(p.delay_for(1, None) <= secs(2));
    }

    #[test]
    fn invalid_bounds_are_rejected_with_reasons() {
        assert_eq!(
            RetryPolicy::new(Duration::ZERO, secs(1)),
            Err(RetryPolicyError::ZeroBase)
        );
        assert!(matches!(
            RetryPolicy::new(secs(10), secs(5)),
            Err(RetryPolicyError::MaxBelowBase { .. })
        ));
        assert_eq!(
            RetryPolicy::new(secs(1), secs(43_201)),
            Err(RetryPolicyError::MaxAboveLimit(secs(43_201)))
        );
    }
}
