//! The layer and its policy: attempts, deadline, backoff with full jitter, budget, counters.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::Result as OsResult;
use storage_core::StrataStore;
use storage_core::backoff::{BackoffStrategy, Jitter};

use super::store::RetryStore;
use super::{DEFAULT_DEADLINE, RetryBudget};
use crate::util::{ErrorClass, classify};

/// Counters of a [`RetryLayer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryStats {
    /// Retries made (attempts after the first).
    pub retries: u64,
    /// Calls that failed retryably but were not retried because the budget was spent.
    pub budget_exhausted: u64,
    /// Calls that failed after the last allowed attempt.
    pub gave_up: u64,
    /// Copies and renames whose answer was lost, found to have been applied (answered as
    /// success). Conditional puts are not retried here (see the module docs).
    pub recovered_writes: u64,
    /// GET bodies and listings resumed after a mid-stream failure.
    pub resumed_streams: u64,
    /// Renames whose outcome could not be determined (returned as their
    /// ambiguous error, never as a conflict).
    pub unknown_outcomes: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) retries: AtomicU64,
    pub(super) budget_exhausted: AtomicU64,
    pub(super) gave_up: AtomicU64,
    pub(super) recovered_writes: AtomicU64,
    pub(super) resumed_streams: AtomicU64,
    pub(super) unknown_outcomes: AtomicU64,
}

/// Retries failed calls; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Arc<Policy>,
}

#[derive(Debug)]
pub(super) struct Policy {
    max_attempts: u32,
    deadline: Duration,
    base_delay: Duration,
    max_delay: Duration,
    budget: Arc<RetryBudget>,
    rng: Mutex<fastrand::Rng>,
    pub(super) counters: Counters,
}

impl Default for RetryLayer {
    /// 4 attempts within a 30 s deadline, backoff from 100 ms doubling to at most 10 s with
    /// full jitter, a fresh
    /// [`RetryBudget::default`] shared by every store made from this layer.
    fn default() -> Self {
        RetryLayer {
            policy: Arc::new(Policy {
                max_attempts: 4,
                deadline: DEFAULT_DEADLINE,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(10),
                budget: Arc::new(RetryBudget::default()),
                rng: Mutex::new(fastrand::Rng::new()),
                counters: Counters::default(),
            }),
        }
    }
}

impl RetryLayer {
    fn edit(mut self, f: impl FnOnce(&mut Policy)) -> Self {
        f(policy_mut(&mut self.policy));
        self
    }

    /// Total attempts including the first (at least 1).
    pub fn with_max_attempts(self, attempts: u32) -> Self {
        self.edit(|p| p.max_attempts = attempts.max(1))
    }

    /// No retry starts later than this after the first attempt began (default 30 s).
    pub fn with_deadline(self, deadline: Duration) -> Self {
        self.edit(|p| p.deadline = deadline)
    }

    /// Backoff before the first retry; it doubles each time (before jitter).
    pub fn with_base_delay(self, delay: Duration) -> Self {
        self.edit(|p| p.base_delay = delay)
    }

    /// Longest backoff.
    pub fn with_max_delay(self, delay: Duration) -> Self {
        self.edit(|p| p.max_delay = delay)
    }

    /// Use this budget (share one `Arc` between layers to share it between stores).
    pub fn with_budget(self, budget: Arc<RetryBudget>) -> Self {
        self.edit(|p| p.budget = budget)
    }

    /// Seed the jitter, for reproducible tests.
    pub fn with_jitter_seed(self, seed: u64) -> Self {
        self.edit(|p| p.rng = Mutex::new(fastrand::Rng::with_seed(seed)))
    }

    /// The budget in use.
    pub fn budget(&self) -> Arc<RetryBudget> {
        Arc::clone(&self.policy.budget)
    }

    /// What the stores made from this layer did so far.
    pub fn stats(&self) -> RetryStats {
        let c = &self.policy.counters;
        RetryStats {
            retries: c.retries.load(Ordering::Relaxed),
            budget_exhausted: c.budget_exhausted.load(Ordering::Relaxed),
            gave_up: c.gave_up.load(Ordering::Relaxed),
            recovered_writes: c.recovered_writes.load(Ordering::Relaxed),
            resumed_streams: c.resumed_streams.load(Ordering::Relaxed),
            unknown_outcomes: c.unknown_outcomes.load(Ordering::Relaxed),
        }
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> RetryStore<T> {
        RetryStore {
            inner: Arc::new(inner),
            policy: Arc::clone(&self.policy),
        }
    }
}

/// Like `Arc::make_mut`, for a policy that is not `Clone`: a shared policy is copied with
/// fresh counters, which is what a builder step wants (a reconfigured layer counts anew).
fn policy_mut(this: &mut Arc<Policy>) -> &mut Policy {
    {
        if Arc::get_mut(this).is_none() {
            let p = Policy {
                max_attempts: this.max_attempts,
                deadline: this.deadline,
                base_delay: this.base_delay,
                max_delay: this.max_delay,
                budget: Arc::clone(&this.budget),
                rng: Mutex::new(fastrand::Rng::new()),
                counters: Counters::default(),
            };
            *this = Arc::new(p);
        }
        Arc::get_mut(this).expect("unique after copy")
    }
}

crate::util::layer_wraps!(RetryLayer);

impl Policy {
    /// The backoff as the workspace's one backoff type: full jitter, uniform in
    /// `0..=min(max_delay, base * 2^(attempt-1))`, none once the deadline would pass.
    pub(super) fn strategy(&self) -> BackoffStrategy {
        BackoffStrategy::custom(self.max_attempts - 1, self.base_delay, self.max_delay)
            .with_jitter(Jitter::Full)
            .with_deadline(self.deadline)
    }

    /// Decide whether to retry after `attempt` failed with `class`; sleeps the backoff if so.
    /// `started` is when the call's first attempt began.
    pub(super) async fn should_retry(
        &self,
        class: ErrorClass,
        attempt: u32,
        started: tokio::time::Instant,
        op: &str,
        key: &str,
    ) -> bool {
        if !class.retryable {
            return false;
        }
        let delay = {
            let mut rng = self.rng.lock().expect("jitter rng");
            self.strategy()
                .next_delay_with(attempt, started.elapsed(), || rng.f64())
        };
        let Some(delay) = delay else {
            self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(op, key, attempt, kind = %class.kind, "giving up: last attempt made or deadline reached");
            return false;
        };
        if !self.budget.withdraw() {
            self.counters
                .budget_exhausted
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(op, key, attempt, "retry budget spent; not retrying");
            return false;
        }
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(op, key, attempt, ?delay, kind = %class.kind, "retrying");
        tokio::time::sleep(delay).await;
        true
    }

    pub(super) async fn run<R, F, Fut>(&self, op: &str, key: &str, mut call: F) -> OsResult<R>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = OsResult<R>>,
    {
        let mut attempt = 1;
        let started = tokio::time::Instant::now();
        loop {
            match call().await {
                Ok(v) => {
                    if attempt == 1 {
                        self.budget.deposit();
                    }
                    return Ok(v);
                }
                Err(e) => {
                    if !self
                        .should_retry(classify(&e), attempt, started, op, key)
                        .await
                    {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::path::Path;
    use storage_core::{MemoryStore, StorageError};

    use super::*;
    use crate::chaos::{ChaosFault, ChaosLayer};
    use crate::retry::test_support::fast;

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let chaos = ChaosLayer::default().with_seed(9).with_error_rate(0.5);
        let retry = fast().with_max_attempts(20);
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        for i in 0..20 {
            let p = Path::from(format!("k{i}"));
            store.put(&p, format!("v{i}").into()).await.unwrap();
            assert_eq!(
                store.get(&p).await.unwrap().bytes().await.unwrap(),
                format!("v{i}")
            );
        }
        assert!(retry.stats().retries > 0);
        assert_eq!(retry.stats().retries, chaos.stats().injected_errors);
    }

    #[tokio::test]
    async fn does_not_retry_non_retryable() {
        let chaos = ChaosLayer::default()
            .with_error_rate(1.0)
            .with_fault(ChaosFault::AccessDenied);
        let retry = fast();
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        let err = store.put(&Path::from("a"), "x".into()).await.unwrap_err();
        let err = StorageError::from_object_store("t", err);
        assert!(matches!(err, StorageError::AccessDenied { .. }), "{err}");
        assert_eq!(chaos.stats().injected_errors, 1);
        assert_eq!(retry.stats().retries, 0);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let chaos = ChaosLayer::default().with_error_rate(1.0);
        let retry = fast().with_max_attempts(3);
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        assert!(store.get(&Path::from("a")).await.is_err());
        assert_eq!(chaos.stats().injected_errors, 3);
        assert_eq!(retry.stats().gave_up, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_exponentially_with_full_jitter() {
        let retry = RetryLayer::default()
            .with_base_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(1))
            .with_jitter_seed(5);
        let p = &retry.policy;
        let mut rng = fastrand::Rng::with_seed(5);
        let backoff = |attempt: u32, rng: &mut fastrand::Rng| {
            p.strategy()
                .with_max_retries(100)
                .next_delay_with(attempt, Duration::ZERO, || rng.f64())
                .unwrap()
        };
        for attempt in 1..=8u32 {
            let cap =
                Duration::from_millis(100 * (1u64 << (attempt - 1))).min(Duration::from_secs(1));
            for _ in 0..20 {
                assert!(backoff(attempt, &mut rng) <= cap);
            }
            // The window itself doubles up to the cap: 100, 200, 400, 800 ms, then 1 s.
            let window = p
                .strategy()
                .with_max_retries(100)
                .next_delay_with(attempt, Duration::ZERO, || 1.0)
                .unwrap();
            assert_eq!(window, cap, "attempt {attempt}");
        }
        // Jitter spreads the delays (not all equal).
        let draws: Vec<_> = (0..10).map(|_| backoff(4, &mut rng)).collect();
        assert!(draws.iter().any(|d| *d != draws[0]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_retries_before_the_attempt_count() {
        let chaos = ChaosLayer::default().with_error_rate(1.0);
        let retry = RetryLayer::default()
            .with_max_attempts(1000)
            .with_base_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(1))
            .with_deadline(Duration::from_secs(10))
            .with_budget(Arc::new(RetryBudget::unlimited()));
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        let started = tokio::time::Instant::now();
        store.get(&Path::from("x")).await.unwrap_err();
        assert!(started.elapsed() <= Duration::from_secs(10));
        let made = retry.stats().retries;
        assert!((1..1000).contains(&made), "{made}");
        assert_eq!(retry.stats().gave_up, 1);
    }
}
