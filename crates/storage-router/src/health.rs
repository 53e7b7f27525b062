//! Passive bucket health: every multi-bucket operation records how each bucket answered;
//! buckets that failed recently are tried last for a while.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use storage_core::{Bucket, StorageError};
use tokio::time::Instant;

use crate::config::HealthConfig;
use crate::failure::is_bucket_failure;

#[derive(Debug, Default, Clone)]
struct State {
    ok: u64,
    errors: u64,
    consecutive_failures: u32,
    last_error: Option<String>,
    last_failure_at: Option<Instant>,
    last_latency: Option<Duration>,
}

/// Shared record of how each bucket has been answering. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct HealthTracker {
    config: HealthConfig,
    state: Arc<Mutex<BTreeMap<String, State>>>,
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
    /// Latency of the latest call, in milliseconds.
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
            state: Arc::default(),
        }
    }

    /// The demotion policy.
    pub fn config(&self) -> HealthConfig {
        self.config
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<String, State>) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Record the outcome of one call to `bucket`. Not-found and other answers about the
    /// object count as success: the bucket answered.
    pub fn record<T>(&self, bucket: &str, outcome: &Result<T, StorageError>, latency: Duration) {
        match outcome {
            Err(e) if is_bucket_failure(e) => self.record_failure(bucket, e, latency),
            _ => self.record_success(bucket, latency),
        }
    }

    /// Record a successful call.
    pub fn record_success(&self, bucket: &str, latency: Duration) {
        self.with(|m| {
            let s = m.entry(bucket.to_string()).or_default();
            s.ok += 1;
            s.consecutive_failures = 0;
            s.last_latency = Some(latency);
        });
    }

    /// Record a failed call.
    pub fn record_failure(&self, bucket: &str, error: &StorageError, latency: Duration) {
        self.with(|m| {
            let s = m.entry(bucket.to_string()).or_default();
            s.errors += 1;
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.last_error = Some(error.to_string());
            s.last_failure_at = Some(Instant::now());
            s.last_latency = Some(latency);
        });
    }

    fn demoted_until(&self, s: &State) -> Option<Instant> {
        if self.config.demote_after == 0 || s.consecutive_failures < self.config.demote_after {
            return None;
        }
        let until = s.last_failure_at? + self.config.demote_for;
        (Instant::now() < until).then_some(until)
    }

    /// Whether `bucket` is currently demoted.
    pub fn is_demoted(&self, bucket: &str) -> bool {
        self.with(|m| m.get(bucket).and_then(|s| self.demoted_until(s)).is_some())
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
        self.with(|m| {
            let s = m.get(bucket).cloned().unwrap_or_default();
            let demoted_for_ms = self
                .demoted_until(&s)
                .map(|u| (u - Instant::now()).as_secs_f64() * 1000.0);
            BucketHealth {
                bucket: bucket.to_string(),
                provider: provider.map(str::to_string),
                ok: s.ok,
                errors: s.errors,
                consecutive_failures: s.consecutive_failures,
                last_error: s.last_error,
                latency_ms: s.last_latency.map(|d| d.as_secs_f64() * 1000.0),
                demoted_for_ms,
            }
        })
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
}
