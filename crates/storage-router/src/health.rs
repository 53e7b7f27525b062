//! Passive bucket health: every multi-bucket operation records how each bucket answered;
//! buckets that failed recently are tried last for a while.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use storage_core::{Bucket, StorageError};
use tokio::time::Instant;

use crate::config::HealthConfig;
use crate::failure::is_bucket_failure;

/// Latencies kept per bucket for adaptive hedging: the most recent answers.
pub(crate) const LATENCY_WINDOW: usize = 256;

/// One bucket's record. Reads update it with atomics only (a lock is taken on failures,
/// to keep the message), so recording an answer costs no lock and no allocation.
#[derive(Debug)]
pub(crate) struct Slot {
    ok: AtomicU64,
    errors: AtomicU64,
    consecutive_failures: AtomicU32,
    /// Latest latency in nanoseconds plus one (0: none yet).
    last_latency: AtomicU64,
    failure: Mutex<Option<(String, Instant)>>,
    /// Ring of answer latencies in microseconds; `next` counts every sample ever written.
    latencies: Box<[AtomicU32]>,
    next: AtomicUsize,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            last_latency: AtomicU64::new(0),
            failure: Mutex::new(None),
            latencies: (0..LATENCY_WINDOW).map(|_| AtomicU32::new(0)).collect(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Slot {
    /// Record the outcome of one call. Not-found and other answers about the object count
    /// as success: the bucket answered.
    pub(crate) fn record<T>(&self, outcome: &Result<T, StorageError>, latency: Duration) {
        self.record_answer(outcome, Some(latency), true);
    }

    /// [`record`](Self::record) with the latency if it was measured, adding an answer's
    /// latency to the window only if `sample`.
    pub(crate) fn record_answer<T>(
        &self,
        outcome: &Result<T, StorageError>,
        latency: Option<Duration>,
        sample: bool,
    ) {
        match outcome {
            Err(e) if is_bucket_failure(e) => self.record_failure(e, latency),
            _ => self.record_success(latency, sample),
        }
    }

    fn record_success(&self, latency: Option<Duration>, sample: bool) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if let Some(latency) = latency {
            self.set_latency(latency);
            if sample {
                self.record_latency(latency);
            }
        }
    }

    /// Add one sample to the latency window only (a request abandoned after `latency`).
    pub(crate) fn record_latency(&self, latency: Duration) {
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        let i = self.next.fetch_add(1, Ordering::Relaxed) % LATENCY_WINDOW;
        self.latencies[i].store(micros, Ordering::Relaxed);
    }

    fn record_failure(&self, error: &StorageError, latency: Option<Duration>) {
        let message = error.to_string();
        // A poisoned lock only means another thread panicked mid-update of plain values.
        let mut f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        *f = Some((message, Instant::now()));
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        if let Some(latency) = latency {
            self.set_latency(latency);
        }
    }

    fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX - 1);
        self.last_latency.store(nanos + 1, Ordering::Relaxed);
    }

    /// Until when the bucket is tried last, if it is now.
    fn demoted_until(&self, config: &HealthConfig) -> Option<Instant> {
        // The common case (no recent failures) is decided without the lock.
        let failures = self.consecutive_failures.load(Ordering::Relaxed);
        if config.demote_after == 0 || failures < config.demote_after {
            return None;
        }
        let f = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        let until = f.as_ref()?.1 + config.demote_for;
        (Instant::now() < until).then_some(until)
    }

    /// The `level` quantile (0 < level ≤ 1) of the recorded answer latencies, or `None`
    /// with fewer than `min_samples` of them.
    pub(crate) fn latency_quantile(&self, level: f64, min_samples: usize) -> Option<Duration> {
        let n = self.next.load(Ordering::Relaxed).min(LATENCY_WINDOW);
        if n < min_samples.max(1) {
            return None;
        }
        let mut v = [0u32; LATENCY_WINDOW];
        for (dst, src) in v.iter_mut().zip(&self.latencies[..n]) {
            *dst = src.load(Ordering::Relaxed);
        }
        let v = &mut v[..n];
        // Nearest rank: the smallest sample with at least `level` of the samples at or below it.
        let rank = ((level.clamp(0.0, 1.0) * n as f64).ceil() as usize).clamp(1, n) - 1;
        let (_, q, _) = v.select_nth_unstable(rank);
        Some(Duration::from_micros(u64::from(*q)))
    }
}

/// Shared record of how each bucket has been answering. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct HealthTracker {
    config: HealthConfig,
    slots: Arc<Mutex<BTreeMap<String, Arc<Slot>>>>,
}

impl Default for HealthTracker {
    fn default() -> Self {
        HealthTracker::new(HealthConfig::default())
    }
}

/// One bucket's health, as `strata buckets health` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketHealth {
    /// Bucket handle name.
    pub bucket: String,
    /// Provider (`s3`, `r2`, `fs`, `memory`, ...), when known.
    pub provider: Option<String>,
    /// Calls that got an answer (a hit or a clean "not found").
    pub ok: u64,
    /// Calls that failed (unavailable, timeout, denied, ...).
    pub errors: u64,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The latest failure, if any.
    pub last_error: Option<String>,
    /// Latency of the latest timed call, in milliseconds: probes, listings, parallel and
    /// hedged reads, and sequential reads of sets with a hedged policy (other sequential
    /// reads are not timed, to keep them as cheap as a loop over the buckets).
    pub latency_ms: Option<f64>,
    /// How much longer the bucket is tried last, in milliseconds (`None`: not demoted).
    pub demoted_for_ms: Option<f64>,
}

impl BucketHealth {
    /// Whether the bucket is currently tried last.
    pub fn is_demoted(&self) -> bool {
        self.demoted_for_ms.is_some()
    }
}

impl HealthTracker {
    /// A tracker with this demotion policy.
    pub fn new(config: HealthConfig) -> Self {
        HealthTracker {
            config,
            slots: Arc::default(),
        }
    }

    /// The demotion policy.
    pub fn config(&self) -> HealthConfig {
        self.config
    }

    /// The record of `bucket`, made on first use. Readers keep the handle, so recording an
    /// answer never looks the name up again.
    pub(crate) fn slot(&self, bucket: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(bucket) {
            Some(s) => s.clone(),
            None => slots.entry(bucket.to_string()).or_default().clone(),
        }
    }

    /// Whether the bucket behind `slot` is demoted now under this tracker's policy.
    pub(crate) fn slot_is_demoted(&self, slot: &Slot) -> bool {
        slot.demoted_until(&self.config).is_some()
    }

    /// Record the outcome of one call to `bucket`. Not-found and other answers about the
    /// object count as success: the bucket answered.
    pub fn record<T>(&self, bucket: &str, outcome: &Result<T, StorageError>, latency: Duration) {
        self.slot(bucket).record(outcome, latency);
    }

    /// Record a successful call.
    pub fn record_success(&self, bucket: &str, latency: Duration) {
        self.slot(bucket).record_success(Some(latency), true);
    }

    /// Record a failed call.
    pub fn record_failure(&self, bucket: &str, error: &StorageError, latency: Duration) {
        self.slot(bucket).record_failure(error, Some(latency));
    }

    /// Whether `bucket` is currently demoted.
    pub fn is_demoted(&self, bucket: &str) -> bool {
        self.slot_is_demoted(&self.slot(bucket))
    }

    /// `items` in priority order: the given order, with demoted buckets moved to the end
    /// (keeping their relative order).
    pub fn order<T>(&self, items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
        let (healthy, demoted): (Vec<T>, Vec<T>) =
            items.into_iter().partition(|i| !self.is_demoted(name(i)));
        healthy.into_iter().chain(demoted).collect()
    }

    /// Health of one bucket.
    pub fn snapshot(&self, bucket: &str, provider: Option<&str>) -> BucketHealth {
        let s = self.slot(bucket);
        let demoted_for_ms = s
            .demoted_until(&self.config)
            .map(|u| (u - Instant::now()).as_secs_f64() * 1000.0);
        let last_error = s
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(m, _)| m.clone());
        let latency = s.last_latency.load(Ordering::Relaxed);
        BucketHealth {
            bucket: bucket.to_string(),
            provider: provider.map(str::to_string),
            ok: s.ok.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            consecutive_failures: s.consecutive_failures.load(Ordering::Relaxed),
            last_error,
            latency_ms: (latency > 0).then(|| (latency - 1) as f64 / 1e6),
            demoted_for_ms,
        }
    }

    /// Probe `bucket` with a cheap listing ([`Bucket::health`]) and record the result.
    pub async fn probe(&self, bucket: &Bucket) -> BucketHealth {
        let h = bucket.health().await;
        if h.ok {
            self.record_success(bucket.name(), h.latency);
        } else {
            let err = StorageError::Unavailable {
                backend: bucket.name().to_string(),
                source: h.error.clone().unwrap_or_default().into(),
            };
            self.record_failure(bucket.name(), &err, h.latency);
        }
        self.snapshot(bucket.name(), Some(bucket.provider()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> StorageError {
        StorageError::Unavailable {
            backend: "b".into(),
            source: "down".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_demote_for_a_while_then_recover() {
        let h = HealthTracker::new(HealthConfig {
            demote_after: 2,
            demote_for: Duration::from_secs(30),
        });
        let order = |h: &HealthTracker| h.order(vec!["a", "b", "c"], |s| s);
        h.record_failure("a", &outage(), Duration::ZERO);
        assert_eq!(order(&h), ["a", "b", "c"], "one failure is not enough");
        h.record_failure("a", &outage(), Duration::ZERO);
        assert_eq!(order(&h), ["b", "c", "a"]);
        let snap = h.snapshot("a", None);
        assert!(snap.is_demoted() && snap.errors == 2, "{snap:?}");
        assert!(snap.last_error.unwrap().contains("down"));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(order(&h), ["a", "b", "c"], "demotion expires");
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_counts_as_an_answer() {
        let h = HealthTracker::default();
        h.record_failure("a", &outage(), Duration::ZERO);
        let miss: Result<(), _> = Err(StorageError::NotFound {
            backend: "a".into(),
            key: "k".into(),
        });
        h.record("a", &miss, Duration::from_millis(3));
        let snap = h.snapshot("a", Some("memory"));
        assert_eq!((snap.ok, snap.errors, snap.consecutive_failures), (1, 1, 0));
        assert_eq!(snap.latency_ms, Some(3.0));
    }

    #[test]
    fn latency_quantile_is_the_nearest_rank_of_the_recent_window() {
        let h = HealthTracker::default();
        let s = h.slot("a");
        assert_eq!(s.latency_quantile(0.9, 1), None, "no samples yet");
        for ms in 1..=10 {
            s.record_success(Some(Duration::from_millis(ms)), true);
        }
        assert_eq!(s.latency_quantile(0.9, 1), Some(Duration::from_millis(9)));
        assert_eq!(s.latency_quantile(1.0, 1), Some(Duration::from_millis(10)));
        assert_eq!(s.latency_quantile(0.01, 1), Some(Duration::from_millis(1)));
        assert_eq!(s.latency_quantile(0.5, 11), None, "too few samples");
        // The window keeps the latest LATENCY_WINDOW samples only.
        for _ in 0..LATENCY_WINDOW {
            s.record_success(Some(Duration::from_millis(100)), true);
        }
        assert_eq!(
            s.latency_quantile(0.01, 1),
            Some(Duration::from_millis(100))
        );
        // Failures are not answers: they do not enter the window.
        s.record_failure(&outage(), Some(Duration::from_millis(1)));
        assert_eq!(
            s.latency_quantile(0.01, 1),
            Some(Duration::from_millis(100))
        );
    }
}
