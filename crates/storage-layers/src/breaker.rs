//! Circuit breaker (seed 001's `createCircuitBreaker(failureThreshold, recoveryTimeout)`).
//!
//! - **Closed**: calls pass. Each call's outcome is recorded; the breaker opens after
//!   `failure_threshold` consecutive failures, or when the failure rate over the last
//!   `window` calls reaches `failure_rate` (once at least `min_calls` were seen).
//! - **Open**: calls fail at once with `StorageError::CircuitOpen { retry_after }` without
//!   touching the backend, until `recovery_timeout` has passed.
//! - **Half-open**: one probe call is let through (others still fail fast). Success closes
//!   the breaker; failure opens it for another `recovery_timeout`.
//!
//! Only failures that say the backend is unhealthy count: errors for which
//! `StorageError::is_retryable` holds (timeouts, unavailability, 5xx, rate limits).
//! Not-found, preconditions, bad input and auth errors are answers, not outages.
//! Every state change is logged with `tracing` (open at `warn`) and counted in
//! [`BreakerStats`].
//!
//! # Where it belongs
//!
//! `… → retry → **breaker** → limit → timeout → backend`. Inside retry, so each attempt is
//! one recorded outcome and `CircuitOpen` (not retryable) ends the retry loop at once; with the
//! breaker outside, every call runs its whole retry storm against a dead backend before the
//! breaker sees a single failure. Outside the timeout, so timeouts count as failures; outside
//! the limit, so rejected calls never wait for a permit.
//!
//! All stores made from one layer value share one breaker (one backend, one health state);
//! make a layer per backend.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use object_store::{ObjectStoreExt, path::Path};
//! use storage_core::{Layer, MemoryStore, StorageError};
//! use storage_layers::{breaker::{BreakerState, CircuitBreakerLayer}, chaos::ChaosLayer};
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let down = ChaosLayer::default().with_error_rate(1.0).layer(Arc::new(MemoryStore::new()));
//! let breaker = CircuitBreakerLayer::new(3, Duration::from_secs(30));
//! let store = breaker.layer(down);
//! for _ in 0..3 {
//!     let _ = store.get(&Path::from("a")).await;
//! }
//! assert_eq!(breaker.state(), BreakerState::Open);
//! let err = StorageError::from_object_store("app", store.get(&Path::from("a")).await.unwrap_err());
//! assert!(matches!(err, StorageError::CircuitOpen { .. }));
//! # }
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{self, StreamExt};
use object_store::Result as OsResult;
use storage_core::{StorageError, StrataStore};
use tokio::time::Instant;

use crate::guard::{Answer, Call, CallFuture, Guard, Guarded, Item, ItemStream, MakeStream};
use crate::util::{classify, os_err};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls fail fast.
    Open,
    /// One probe is allowed through.
    HalfOpen,
}

/// Counters of a breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerStats {
    /// Times the breaker opened.
    pub opened: u64,
    /// Times it moved to half-open.
    pub half_opened: u64,
    /// Times a probe succeeded and it closed again.
    pub closed: u64,
    /// Calls failed fast while open.
    pub rejected: u64,
    /// Calls whose failure was recorded.
    pub failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    opened: AtomicU64,
    half_opened: AtomicU64,
    closed: AtomicU64,
    rejected: AtomicU64,
    failures: AtomicU64,
}

#[derive(Debug, Clone)]
struct Config {
    name: String,
    failure_threshold: u32,
    failure_rate: Option<f64>,
    window: usize,
    min_calls: usize,
    recovery_timeout: Duration,
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Breaker {
    cfg: Config,
    state: Mutex<Inner>,
    counters: Counters,
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive: u32,
    recent: VecDeque<bool>,
}

/// Opens on repeated failures and fails fast; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    breaker: Arc<Breaker>,
}

impl Default for CircuitBreakerLayer {
    /// Open after 5 consecutive failures, probe after 30 s; no rate rule.
    fn default() -> Self {
        CircuitBreakerLayer::new(5, Duration::from_secs(30))
    }
}

impl CircuitBreakerLayer {
    /// Seed 001's `createCircuitBreaker(failureThreshold, recoveryTimeout)`.
    pub fn new(failure_threshold: u32, recovery_timeout: Duration) -> Self {
        CircuitBreakerLayer::from_config(Config {
            name: "storage".into(),
            failure_threshold: failure_threshold.max(1),
            failure_rate: None,
            window: 20,
            min_calls: 10,
            recovery_timeout,
        })
    }

    fn from_config(cfg: Config) -> Self {
        CircuitBreakerLayer {
            breaker: Arc::new(Breaker {
                cfg,
                state: Mutex::new(Inner {
                    state: State::Closed,
                    consecutive: 0,
                    recent: VecDeque::new(),
                }),
                counters: Counters::default(),
            }),
        }
    }

    fn edit(self, f: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = self.breaker.cfg.clone();
        f(&mut cfg);
        CircuitBreakerLayer::from_config(cfg)
    }

    /// Consecutive failures that open the breaker.
    pub fn with_failure_threshold(self, n: u32) -> Self {
        self.edit(|c| c.failure_threshold = n.max(1))
    }

    /// Time the breaker stays open before letting a probe through.
    pub fn with_recovery_timeout(self, t: Duration) -> Self {
        self.edit(|c| c.recovery_timeout = t)
    }

    /// Also open when at least `rate` (0..=1) of the last `window` calls failed, once
    /// `min_calls` of them were seen.
    pub fn with_failure_rate(self, rate: f64, window: usize, min_calls: usize) -> Self {
        self.edit(|c| {
            c.failure_rate = Some(rate.clamp(0.0, 1.0));
            c.window = window.max(1);
            c.min_calls = min_calls.clamp(1, window.max(1));
        })
    }

    /// Backend name in `CircuitOpen` errors and logs.
    pub fn with_name(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.edit(|c| c.name = name)
    }

    /// Current state (an open breaker whose timeout passed still reads `Open` until the
    /// next call makes it half-open).
    pub fn state(&self) -> BreakerState {
        match self.breaker.state.lock().expect("breaker").state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> BreakerStats {
        let c = &self.breaker.counters;
        BreakerStats {
            opened: c.opened.load(Ordering::Relaxed),
            half_opened: c.half_opened.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
        }
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> BreakerStore<T> {
        BreakerStore {
            guarded: Guarded::new(inner, Arc::clone(&self.breaker)),
        }
    }
}

crate::util::layer_wraps!(CircuitBreakerLayer);

/// Permission to make one call; reports its outcome (a dropped permit releases a probe slot).
struct Admission {
    breaker: Arc<Breaker>,
    probe: bool,
    reported: bool,
}

impl Admission {
    fn report(mut self, failed: bool) {
        self.reported = true;
        self.breaker.record(self.probe, failed);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            // A cancelled probe tells nothing: let the next call probe instead.
            let mut inner = self.breaker.state.lock().expect("breaker");
            if let State::HalfOpen { probing } = &mut inner.state {
                *probing = false;
            }
        }
    }
}

impl Breaker {
    fn admit(self: &Arc<Self>) -> Result<Admission, StorageError> {
        let mut inner = self.state.lock().expect("breaker");
        let now = Instant::now();
        let probe = match inner.state {
            State::Closed => false,
            State::Open { until } if now >= until => {
                inner.state = State::HalfOpen { probing: true };
                self.counters.half_opened.fetch_add(1, Ordering::Relaxed);
                tracing::info!(backend = %self.cfg.name, "circuit half-open: letting one probe call through");
                true
            }
            State::Open { until } => return Err(self.reject(until - now)),
            State::HalfOpen { probing: true } => return Err(self.reject(Duration::ZERO)),
            State::HalfOpen { probing: false } => {
                inner.state = State::HalfOpen { probing: true };
                true
            }
        };
        Ok(Admission {
            breaker: Arc::clone(self),
            probe,
            reported: false,
        })
    }

    fn reject(&self, retry_after: Duration) -> StorageError {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        StorageError::CircuitOpen {
            backend: self.cfg.name.clone(),
            retry_after,
        }
    }

    fn open(&self, inner: &mut Inner, why: &str) {
        inner.state = State::Open {
            until: Instant::now() + self.cfg.recovery_timeout,
        };
        inner.consecutive = 0;
        inner.recent.clear();
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            backend = %self.cfg.name,
            recovery_timeout = ?self.cfg.recovery_timeout,
            "circuit opened: {why}; failing calls fast until the recovery timeout passes"
        );
    }

    fn record(&self, probe: bool, failed: bool) {
        let mut inner = self.state.lock().expect("breaker");
        if failed {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        if probe {
            if failed {
                self.open(&mut inner, "the half-open probe failed");
            } else {
                inner.state = State::Closed;
                inner.consecutive = 0;
                inner.recent.clear();
                self.counters.closed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(backend = %self.cfg.name, "circuit closed: the probe succeeded");
            }
            return;
        }
        if !matches!(inner.state, State::Closed) {
            // A call admitted before the breaker opened: its outcome is stale.
            return;
        }
        inner.consecutive = if failed { inner.consecutive + 1 } else { 0 };
        inner.recent.push_back(failed);
        while inner.recent.len() > self.cfg.window {
            inner.recent.pop_front();
        }
        if inner.consecutive >= self.cfg.failure_threshold {
            let why = format!("{} consecutive failures", inner.consecutive);
            self.open(&mut inner, &why);
        } else if let Some(rate) = self.cfg.failure_rate {
            let n = inner.recent.len();
            let bad = inner.recent.iter().filter(|f| **f).count();
            if n >= self.cfg.min_calls && bad as f64 >= rate * n as f64 {
                let why = format!("{bad} of the last {n} calls failed");
                self.open(&mut inner, &why);
            }
        }
    }
}

/// A store behind a circuit breaker; made by [`CircuitBreakerLayer`].
pub struct BreakerStore<T: StrataStore> {
    guarded: Guarded<Arc<Breaker>, T>,
}

crate::guard::guarded_store!(BreakerStore);

/// Every call is admitted (or failed fast) and its outcome recorded; a stream's first item
/// (or its end) is its outcome. Presigning passes through, and a multipart upload's parts
/// go to the backend already chosen: the breaker guards starting the upload.
impl Guard for Arc<Breaker> {
    const NAME: &'static str = "Breaker";

    async fn call<R: Answer>(&self, _: Call<'_>, fut: impl CallFuture<R>) -> OsResult<R> {
        let admission = self.admit().map_err(os_err)?;
        let res = fut.await;
        let failed = match &res {
            Ok(_) => false,
            Err(e) => classify(e).retryable,
        };
        admission.report(failed);
        res
    }

    fn listing<I: Item>(&self, _: Call<'_>, make: impl MakeStream<I>) -> ItemStream<I> {
        let breaker = Arc::clone(self);
        async move {
            let admission = match breaker.admit() {
                Ok(a) => a,
                Err(e) => return stream::once(async move { Err(os_err(e)) }).boxed(),
            };
            let mut s = make();
            let first = s.next().await;
            let failed = matches!(&first, Some(Err(e)) if classify(e).retryable);
            admission.report(failed);
            match first {
                None => stream::empty().boxed(),
                Some(item) => stream::once(async move { item }).chain(s).boxed(),
            }
        }
        .flatten_stream()
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::{ChaosFault, ChaosLayer};
    use object_store::ObjectStoreExt;
    use object_store::path::Path;
    use storage_core::MemoryStore;

    fn is_open_error(e: object_store::Error) -> Option<Duration> {
        match StorageError::from_object_store("t", e) {
            StorageError::CircuitOpen { retry_after, .. } => Some(retry_after),
            _ => None,
        }
    }

    /// A store whose health the test switches.
    fn switchable() -> (ChaosLayer, ChaosLayer, MemoryStore) {
        (
            ChaosLayer::default().with_error_rate(1.0),
            ChaosLayer::default(),
            MemoryStore::new(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn closed_open_half_open_closed() {
        let (down, _, mem) = switchable();
        let breaker = CircuitBreakerLayer::new(3, Duration::from_secs(10)).with_name("mem");
        let failing = breaker.wrap(down.wrap(mem.clone()));
        let healthy = breaker.wrap(mem.clone());
        let p = Path::from("a");
        mem.put(&p, "x".into()).await.unwrap();

        // Two failures, a success resets the count, three more open it.
        for _ in 0..2 {
            assert!(is_open_error(failing.get(&p).await.unwrap_err()).is_none());
        }
        healthy.get(&p).await.unwrap();
        for _ in 0..3 {
            assert!(is_open_error(failing.get(&p).await.unwrap_err()).is_none());
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(down.stats().injected_errors, 5);

        // Open: fail fast without touching the backend, saying when to come back.
        tokio::time::advance(Duration::from_secs(4)).await;
        let wait = is_open_error(healthy.get(&p).await.unwrap_err()).unwrap();
        assert_eq!(wait, Duration::from_secs(6));
        assert_eq!(breaker.stats().rejected, 1);

        // After the recovery timeout a failing probe re-opens it for another full timeout.
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(is_open_error(failing.get(&p).await.unwrap_err()).is_none());
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(down.stats().injected_errors, 6);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(is_open_error(healthy.get(&p).await.unwrap_err()).is_some());

        // A successful probe closes it.
        tokio::time::advance(Duration::from_secs(1)).await;
        healthy.get(&p).await.unwrap();
        assert_eq!(breaker.state(), BreakerState::Closed);
        let s = breaker.stats();
        assert_eq!((s.opened, s.half_opened, s.closed), (2, 2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn only_one_probe_at_a_time() {
        let slow =
            ChaosLayer::default().with_latency(Duration::from_secs(5), Duration::from_secs(5));
        let breaker = CircuitBreakerLayer::new(1, Duration::from_secs(1));
        let down = breaker.wrap(
            ChaosLayer::default()
                .with_error_rate(1.0)
                .wrap(MemoryStore::new()),
        );
        let store = Arc::new(breaker.wrap(slow.wrap(MemoryStore::new())));
        let _ = down.get(&Path::from("a")).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        let probe = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.put(&Path::from("p"), "x".into()).await })
        };
        tokio::task::yield_now().await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let err = store.put(&Path::from("q"), "x".into()).await.unwrap_err();
        assert!(is_open_error(err).is_some());
        probe.await.unwrap().unwrap();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_opens_without_consecutive_run() {
        // Alternating failures never reach 3 in a row, but half the calls fail.
        let breaker =
            CircuitBreakerLayer::new(3, Duration::from_secs(10)).with_failure_rate(0.5, 10, 6);
        let mem = MemoryStore::new();
        let bad = breaker.wrap(ChaosLayer::default().with_error_rate(1.0).wrap(mem.clone()));
        let good = breaker.wrap(mem.clone());
        let p = Path::from("a");
        mem.put(&p, "x".into()).await.unwrap();
        for i in 0..6 {
            assert_eq!(breaker.state(), BreakerState::Closed, "call {i}");
            if i % 2 == 0 {
                let _ = bad.get(&p).await;
            } else {
                good.get(&p).await.unwrap();
            }
        }
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_not_failures() {
        let breaker = CircuitBreakerLayer::new(2, Duration::from_secs(10));
        let store = breaker.wrap(MemoryStore::new());
        for _ in 0..5 {
            let _ = store.get(&Path::from("missing")).await.unwrap_err();
        }
        let denied = breaker.wrap(
            ChaosLayer::default()
                .with_error_rate(1.0)
                .with_fault(ChaosFault::AccessDenied)
                .wrap(MemoryStore::new()),
        );
        for _ in 0..5 {
            let _ = denied.get(&Path::from("a")).await.unwrap_err();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.stats().failures, 0);
    }
}
