//! How long a retry loop waits between attempts, and when it gives up: the one backoff type
//! of every Strata retry loop (the retry layer, the resolution of conditional writes whose
//! answer was lost, and the compare-and-swap loops of documents and manifests).

use std::time::Duration;

/// The deadline of every preset that retries, and of [`BackoffStrategy::custom`]: no retry
/// starts later than this after the first attempt.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Randomisation applied to each backoff delay, so writers that collided once do not
/// collide again in lock-step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the exponential delay.
    None,
    /// A uniformly random delay between zero and the exponential delay (AWS "full jitter":
    /// the best spread under heavy contention).
    Full,
    /// Half the exponential delay plus a random part of up to the other half.
    Equal,
}

/// A retry policy: exponential backoff from
/// `base` doubling up to `cap`, with [`Jitter`], at most `max_retries` retries after the first
/// attempt, and an overall `deadline` after which no new attempt starts (every preset that
/// retries has one: 30 s).
///
/// The presets follow seed 001's `CAS_STRATEGIES`:
///
/// | preset | retries | delays | deadline |
/// |---|---|---|---|
/// | [`NONE`](Self::NONE) | 0 | — | — |
/// | [`STANDARD`](Self::STANDARD) | 3 | 100 ms → 1 s | 30 s |
/// | [`AGGRESSIVE`](Self::AGGRESSIVE) | 10 | 10 ms → 500 ms | 30 s |
/// | [`UNTIL_DEADLINE`](Self::UNTIL_DEADLINE) | unbounded | 5 ms → 500 ms | 30 s |
///
/// ```
/// use std::time::Duration;
/// use storage_core::backoff::{BackoffStrategy, Jitter};
/// let many_writers = BackoffStrategy::custom(1000, Duration::from_millis(1), Duration::from_millis(50))
///     .with_jitter(Jitter::Full)
///     .with_deadline(Duration::from_secs(30));
/// assert_eq!(many_writers.max_retries, 1000);
/// assert_eq!(BackoffStrategy::STANDARD.delay_before_retry(1), Duration::from_millis(100));
/// assert_eq!(BackoffStrategy::STANDARD.delay_before_retry(3), Duration::from_millis(400));
/// assert_eq!(BackoffStrategy::STANDARD.delay_before_retry(9), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffStrategy {
    /// Retries after the first attempt (total attempts = `max_retries + 1`).
    pub max_retries: u32,
    /// Delay before the first retry.
    pub base: Duration,
    /// Largest delay between two attempts.
    pub cap: Duration,
    /// Randomisation of each delay.
    pub jitter: Jitter,
    /// No attempt starts later than this after the first one began.
    pub deadline: Option<Duration>,
}

impl BackoffStrategy {
    /// One attempt, no retry: a conflict is reported at once.
    pub const NONE: BackoffStrategy = BackoffStrategy {
        max_retries: 0,
        base: Duration::ZERO,
        cap: Duration::ZERO,
        jitter: Jitter::None,
        deadline: None,
    };

    /// Seed 001's standard strategy: 3 retries, 100 ms doubling to at most 1 s.
    pub const STANDARD: BackoffStrategy = BackoffStrategy {
        max_retries: 3,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
        jitter: Jitter::Equal,
        deadline: Some(DEFAULT_DEADLINE),
    };

    /// For hot documents: 10 retries starting at 10 ms, up to 500 ms, fully jittered.
    pub const AGGRESSIVE: BackoffStrategy = BackoffStrategy {
        max_retries: 10,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(500),
        jitter: Jitter::Full,
        deadline: Some(DEFAULT_DEADLINE),
    };

    /// For contended documents: retry until 30 s have passed since the first attempt,
    /// 5 ms doubling to at most 500 ms, fully jittered. Writers then give up only when the
    /// document is so hot that 30 s were not enough, not after a fixed count of collisions.
    pub const UNTIL_DEADLINE: BackoffStrategy = BackoffStrategy {
        max_retries: u32::MAX,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(500),
        jitter: Jitter::Full,
        deadline: Some(DEFAULT_DEADLINE),
    };

    /// A custom strategy with equal jitter and the default 30 s deadline.
    pub const fn custom(max_retries: u32, base: Duration, cap: Duration) -> Self {
        BackoffStrategy {
            max_retries,
            base,
            cap,
            jitter: Jitter::Equal,
            deadline: Some(DEFAULT_DEADLINE),
        }
    }

    /// A copy without a deadline: only the retry count bounds it.
    pub const fn without_deadline(mut self) -> Self {
        self.deadline = None;
        self
    }

    /// A copy with another jitter.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// A copy with an overall deadline.
    pub const fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// A copy with another retry count.
    pub const fn with_max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The un-jittered delay before retry number `retry` (1-based): `base × 2^(retry-1)`,
    /// at most `cap`.
    pub fn delay_before_retry(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << shift).min(self.cap)
    }

    /// The delay to sleep before retry number `retry` (1-based), with jitter applied, or
    /// `None` when the strategy is exhausted: `retry > max_retries`, or the deadline would
    /// pass before the retry could start (`elapsed` is the time since the first attempt).
    pub fn next_delay(&self, retry: u32, elapsed: Duration) -> Option<Duration> {
        self.next_delay_with(retry, elapsed, fastrand::f64)
    }

    /// [`next_delay`](Self::next_delay) with the jitter drawn from `unit` (a uniform number
    /// in `0..1`), for callers with their own (seeded) random source.
    pub fn next_delay_with(
        &self,
        retry: u32,
        elapsed: Duration,
        mut unit: impl FnMut() -> f64,
    ) -> Option<Duration> {
        if retry > self.max_retries {
            return None;
        }
        let full = self.delay_before_retry(retry);
        let delay = match self.jitter {
            Jitter::None => full,
            Jitter::Full => full.mul_f64(unit()),
            Jitter::Equal => full / 2 + (full / 2).mul_f64(unit()),
        };
        if let Some(deadline) = self.deadline
            && elapsed.saturating_add(delay) >= deadline
        {
            return None;
        }
        Some(delay)
    }
}

impl Default for BackoffStrategy {
    /// [`BackoffStrategy::STANDARD`].
    fn default() -> Self {
        BackoffStrategy::STANDARD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_seed() {
        let s = BackoffStrategy::STANDARD;
        assert_eq!(s.max_retries, 3);
        assert_eq!(s.delay_before_retry(1), Duration::from_millis(100));
        assert_eq!(s.delay_before_retry(2), Duration::from_millis(200));
        assert_eq!(s.delay_before_retry(5), Duration::from_secs(1));
        assert!(s.next_delay(3, Duration::ZERO).is_some());
        assert!(s.next_delay(4, Duration::ZERO).is_none());
        assert!(
            BackoffStrategy::NONE
                .next_delay(1, Duration::ZERO)
                .is_none()
        );
        assert!(BackoffStrategy::AGGRESSIVE.max_retries > s.max_retries);
    }

    #[test]
    fn jitter_stays_in_bounds() {
        let full = BackoffStrategy::custom(5, Duration::from_millis(100), Duration::from_secs(1))
            .with_jitter(Jitter::Full);
        let equal = full.with_jitter(Jitter::Equal);
        for _ in 0..200 {
            let d = full.next_delay(2, Duration::ZERO).unwrap();
            assert!(d <= Duration::from_millis(200));
            let d = equal.next_delay(2, Duration::ZERO).unwrap();
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
    }

    #[test]
    fn deadline_stops_retries() {
        let s = BackoffStrategy::custom(100, Duration::from_millis(100), Duration::from_secs(1))
            .with_jitter(Jitter::None)
            .with_deadline(Duration::from_secs(2));
        assert!(s.next_delay(1, Duration::from_millis(500)).is_some());
        assert!(s.next_delay(1, Duration::from_millis(1950)).is_none());
    }

    #[test]
    fn huge_retry_numbers_do_not_overflow() {
        let s = BackoffStrategy::custom(u32::MAX, Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(s.delay_before_retry(u32::MAX), Duration::from_secs(5));
    }
}
