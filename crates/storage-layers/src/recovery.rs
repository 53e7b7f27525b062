//! Error recovery strategies (seed 001's `withErrorHandling`): retry, fall back to a value
//! (or to what an async function answers), or fail fast, composed in a small API.
//!
//! [`Recovery`] wraps any async operation returning `storage_core::Result<T>`:
//!
//! ```
//! use std::time::Duration;
//! use storage_core::{Bucket, StorageError};
//! use storage_layers::recovery::Recovery;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
//! let bucket = Bucket::memory("app");
//!
//! // Critical data: retry transient failures three times, then give up with the error.
//! let critical = Recovery::retry(3).with_backoff(Duration::from_millis(10), Duration::from_secs(1));
//! bucket.put("critical/key", "42").await?;
//! let v = critical.run(|| async { Ok(bucket.get("critical/key").await?.bytes) }).await?;
//! assert_eq!(v, "42");
//!
//! // Optional data: on any failure use a default instead.
//! let optional = Recovery::fail_fast().or_value(bytes::Bytes::from_static(b"{}"));
//! let v = optional.run(|| async { Ok(bucket.get("optional/key").await?.bytes) }).await?;
//! assert_eq!(v, "{}");
//! # Ok(()) }
//! ```
//!
//! Strategies compose in a fixed order: retry (only errors for which
//! `StorageError::is_retryable` holds) → fallback (value or async function, for errors
//! matching [`Recovery::fallback_when`], default all) → the error. A logger sees every
//! failed attempt, and a [`MetricsLayer`](crate::metrics::MetricsLayer) can count them by
//! kind and key prefix (seed 001's `globalErrorMetrics`).
//!
//! Falling back to another *store* is not a strategy here: Strata has one fallback engine,
//! in `storage-router`. Its `FailoverStore` reads (and writes) from a secondary store when
//! the primary is unavailable; a `SourceSet`'s store (`FallbackStore`) also reads it on a
//! miss, under a read policy, with health-based priority.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use storage_core::backoff::{BackoffStrategy, Jitter};
use storage_core::{Result, StorageError};

type BoxFut<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;
type FallbackFn<T> = Arc<dyn Fn(&StorageError) -> BoxFut<T> + Send + Sync>;
type Logger = Arc<dyn Fn(&StorageError, u32) + Send + Sync>;
type Predicate = Arc<dyn Fn(&StorageError) -> bool + Send + Sync>;

/// How to recover from a failed operation; see the [module docs](self).
pub struct Recovery<T> {
    /// The workspace's one backoff type: attempts, delays, jitter and deadline.
    backoff: BackoffStrategy,
    fallback: Option<FallbackFn<T>>,
    fallback_when: Predicate,
    logger: Option<Logger>,
    #[cfg(feature = "metrics")]
    metrics: Option<(crate::metrics::MetricsLayer, String)>,
}

impl<T> Clone for Recovery<T> {
    fn clone(&self) -> Self {
        Recovery {
            backoff: self.backoff,
            fallback: self.fallback.clone(),
            fallback_when: Arc::clone(&self.fallback_when),
            logger: self.logger.clone(),
            #[cfg(feature = "metrics")]
            metrics: self.metrics.clone(),
        }
    }
}

impl<T> fmt::Debug for Recovery<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("backoff", &self.backoff)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl<T: Send + 'static> Recovery<T> {
    /// Return the first error as it is (seed 001's `FAIL_FAST`).
    pub fn fail_fast() -> Self {
        Recovery {
            backoff: BackoffStrategy::custom(0, Duration::from_millis(100), Duration::from_secs(5))
                .with_jitter(Jitter::Full)
                .with_deadline(Duration::from_secs(30)),
            fallback: None,
            fallback_when: Arc::new(|_| true),
            logger: None,
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// Retry retryable errors up to `max_retries` times (seed 001's `RETRY`), with
    /// exponential backoff and full jitter from 100 ms up to 5 s, none started later than
    /// 30 s after the first attempt.
    pub fn retry(max_retries: u32) -> Self {
        let mut r = Recovery::fail_fast();
        r.backoff = r.backoff.with_max_retries(max_retries);
        r
    }

    /// Backoff bounds for retries.
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff.base = base;
        self.backoff.cap = max.max(base);
        self
    }

    /// No retry starts later than this after the first attempt (default 30 s).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.backoff.deadline = Some(deadline);
        self
    }

    /// When everything else failed, answer with this value (seed 001's `FALLBACK`).
    pub fn or_value(self, value: T) -> Self
    where
        T: Clone + Sync,
    {
        self.or_else(move |_| {
            let v = value.clone();
            async move { Ok(v) }
        })
    }

    /// When everything else failed, answer with this async function of the error (read
    /// another store, compute a default, ...).
    pub fn or_else<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(&StorageError) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.fallback = Some(Arc::new(move |e| Box::pin(f(e))));
        self
    }

    /// Use the fallback only for errors matching `pred` (default: every error).
    pub fn fallback_when(
        mut self,
        pred: impl Fn(&StorageError) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.fallback_when = Arc::new(pred);
        self
    }

    /// Call `log(error, attempt)` for every failed attempt (seed 001's `logger`).
    pub fn with_logger(mut self, log: impl Fn(&StorageError, u32) + Send + Sync + 'static) -> Self {
        self.logger = Some(Arc::new(log));
        self
    }

    /// Count every failed attempt in `metrics` under operation `op` and key `key`.
    #[cfg(feature = "metrics")]
    pub fn with_metrics(
        mut self,
        metrics: crate::metrics::MetricsLayer,
        key: impl Into<String>,
    ) -> Self {
        self.metrics = Some((metrics, key.into()));
        self
    }

    /// Run `op` under this recovery policy (seed 001's `withErrorHandling(operation, config)`).
    pub async fn run<F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        let started = tokio::time::Instant::now();
        loop {
            attempt += 1;
            let err = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if let Some(log) = &self.logger {
                log(&err, attempt);
            }
            #[cfg(feature = "metrics")]
            if let Some((m, key)) = &self.metrics {
                m.record_error("recovery", key, err.kind());
            }
            if err.is_retryable()
                && let Some(delay) = self.backoff.next_delay(attempt, started.elapsed())
            {
                tokio::time::sleep(delay).await;
                continue;
            }
            return match &self.fallback {
                Some(f) if (self.fallback_when)(&err) => f(&err).await,
                _ => Err(err),
            };
        }
    }
}

/// Seed 001's `withErrorHandling(operation, config)`: [`Recovery::run`] as a function.
pub async fn with_error_handling<T, F, Fut>(op: F, recovery: &Recovery<T>) -> Result<T>
where
    T: Send + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    recovery.run(op).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};
    use storage_core::ErrorKind;

    fn unavailable() -> StorageError {
        StorageError::Unavailable {
            backend: "t".into(),
            source: "down".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_then_succeed_and_log_each_failure() {
        let calls = AtomicU32::new(0);
        let logged = Arc::new(Mutex::new(Vec::new()));
        let l2 = Arc::clone(&logged);
        let r = Recovery::retry(3).with_logger(move |e, attempt| {
            l2.lock().unwrap().push((e.kind(), attempt));
        });
        let v = r
            .run(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n < 2 { Err(unavailable()) } else { Ok(n) } }
            })
            .await
            .unwrap();
        assert_eq!(v, 2);
        assert_eq!(
            *logged.lock().unwrap(),
            vec![(ErrorKind::Unavailable, 1), (ErrorKind::Unavailable, 2)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn non_retryable_is_not_retried_and_fallback_applies() {
        let calls = AtomicU32::new(0);
        let r = Recovery::retry(5)
            .or_value(7)
            .fallback_when(|e| e.is_not_found());
        let v = with_error_handling(
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(StorageError::NotFound {
                        backend: "t".into(),
                        key: "k".into(),
                    })
                }
            },
            &r,
        )
        .await
        .unwrap();
        assert_eq!(v, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The predicate keeps other errors as errors.
        let e = r
            .run(|| async { Err::<u32, _>(StorageError::invalid_input("x", "bad")) })
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::InvalidInput { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn fail_fast_returns_first_error() {
        let calls = AtomicU32::new(0);
        let e = Recovery::<()>::fail_fast()
            .run(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(unavailable()) }
            })
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_exhausted_then_fallback_function() {
        let r = Recovery::retry(2).or_else(|e: &StorageError| {
            let msg = e.to_string();
            async move { Ok(format!("fallback after: {msg}")) }
        });
        let v = r.run(|| async { Err(unavailable()) }).await.unwrap();
        assert!(v.starts_with("fallback after"), "{v}");
    }
}
