//! Error recovery strategies (seed 001's `withErrorHandling`): retry, fall back to a value,
//! fall back to another store, or fail fast, composed in a small API.
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
//! [`FallbackLayer`] is the store-level fallback: reads that fail on the primary store are
//! answered by a secondary one (writes always go to the primary). For ordered sets of
//! buckets with health-based priority use `storage-router`, which does this at scale.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result as OsResult,
};
use storage_core::{ErrorKind, Layer, Result, StorageError};

use crate::util::classify;

type BoxFut<T> = Pin<Box<dyn Future<Output = Result<T>> + Send>>;
type FallbackFn<T> = Arc<dyn Fn(&StorageError) -> BoxFut<T> + Send + Sync>;
type Logger = Arc<dyn Fn(&StorageError, u32) + Send + Sync>;
type Predicate = Arc<dyn Fn(&StorageError) -> bool + Send + Sync>;

/// How to recover from a failed operation; see the [module docs](self).
pub struct Recovery<T> {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    fallback: Option<FallbackFn<T>>,
    fallback_when: Predicate,
    logger: Option<Logger>,
    #[cfg(feature = "metrics")]
    metrics: Option<(crate::metrics::MetricsLayer, String)>,
}

impl<T> Clone for Recovery<T> {
    fn clone(&self) -> Self {
        Recovery {
            max_retries: self.max_retries,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
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
            .field("max_retries", &self.max_retries)
            .field("base_delay", &self.base_delay)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl<T: Send + 'static> Recovery<T> {
    /// Return the first error as it is (seed 001's `FAIL_FAST`).
    pub fn fail_fast() -> Self {
        Recovery {
            max_retries: 0,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            fallback: None,
            fallback_when: Arc::new(|_| true),
            logger: None,
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// Retry retryable errors up to `max_retries` times (seed 001's `RETRY`), with
    /// exponential backoff and full jitter from 100 ms up to 5 s.
    pub fn retry(max_retries: u32) -> Self {
        Recovery {
            max_retries,
            ..Recovery::fail_fast()
        }
    }

    /// Backoff bounds for retries.
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max.max(base);
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

    fn backoff(&self, retry: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << retry.min(20))
            .min(self.max_delay);
        let nanos = cap.as_nanos().min(u128::from(u64::MAX)) as u64;
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// Run `op` under this recovery policy (seed 001's `withErrorHandling(operation, config)`).
    pub async fn run<F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
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
            if err.is_retryable() && attempt <= self.max_retries {
                tokio::time::sleep(self.backoff(attempt - 1)).await;
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

/// Serves reads from a secondary store when the primary fails; see the [module docs](self).
///
/// # Where it belongs
///
/// Outside each store's own resilience stack (retry, breaker, ...): `fallback(primary stack,
/// secondary stack)`. The primary's retries are spent before the fallback is used, and an
/// open breaker on the primary sends reads to the secondary at once.
#[derive(Clone)]
pub struct FallbackLayer {
    secondary: Arc<dyn ObjectStore>,
    on_not_found: bool,
    used: Arc<AtomicU64>,
}

impl fmt::Debug for FallbackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FallbackLayer({})", self.secondary)
    }
}

impl FallbackLayer {
    /// Fall back to `secondary` on retryable failures (outages, timeouts, open breakers).
    pub fn new(secondary: Arc<dyn ObjectStore>) -> Self {
        FallbackLayer {
            secondary,
            on_not_found: false,
            used: Arc::default(),
        }
    }

    /// Also read from the secondary when the primary says not-found (a store being migrated).
    pub fn with_fallback_on_not_found(mut self, yes: bool) -> Self {
        self.on_not_found = yes;
        self
    }

    /// Reads answered by the secondary so far.
    pub fn fallbacks(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Wrap a concrete store.
    pub fn wrap<T: ObjectStore>(&self, inner: T) -> FallbackStore<T> {
        FallbackStore {
            inner: Arc::new(inner),
            layer: self.clone(),
        }
    }

    fn should(&self, e: &object_store::Error) -> bool {
        let c = classify(e);
        c.retryable
            || c.kind == ErrorKind::Unavailable
            || (self.on_not_found && c.kind == ErrorKind::NotFound)
    }
}

impl Layer for FallbackLayer {
    fn layer(&self, inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(self.wrap(inner))
    }
}

/// A store whose reads fall back to a secondary; made by [`FallbackLayer`].
pub struct FallbackStore<T: ObjectStore> {
    inner: Arc<T>,
    layer: FallbackLayer,
}

impl<T: ObjectStore> fmt::Debug for FallbackStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FallbackStore({:?}, {})",
            self.inner, self.layer.secondary
        )
    }
}

impl<T: ObjectStore> fmt::Display for FallbackStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FallbackStore({}, {})", self.inner, self.layer.secondary)
    }
}

impl<T: ObjectStore> FallbackStore<T> {
    async fn read<R, P, S>(&self, key: &str, primary: P, secondary: S) -> OsResult<R>
    where
        P: Future<Output = OsResult<R>>,
        S: Future<Output = OsResult<R>>,
    {
        match primary.await {
            Err(e) if self.layer.should(&e) => {
                tracing::warn!(key, error = %e, secondary = %self.layer.secondary, "primary read failed; reading the secondary store");
                self.layer.used.fetch_add(1, Ordering::Relaxed);
                secondary.await
            }
            other => other,
        }
    }
}

fn fallback_stream<I: Send + 'static>(
    layer: FallbackLayer,
    primary: BoxStream<'static, OsResult<I>>,
    secondary: impl FnOnce() -> BoxStream<'static, OsResult<I>> + Send + 'static,
) -> BoxStream<'static, OsResult<I>> {
    futures::FutureExt::flatten_stream(async move {
        let mut primary = primary;
        match primary.next().await {
            Some(Err(e)) if layer.should(&e) => {
                layer.used.fetch_add(1, Ordering::Relaxed);
                secondary()
            }
            None => stream::empty().boxed(),
            Some(first) => stream::once(async move { first }).chain(primary).boxed(),
        }
    })
    .boxed()
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: ObjectStore> ObjectStore for FallbackStore<T> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> OsResult<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        let o2 = options.clone();
        self.read(
            location.as_ref(),
            self.inner.get_opts(location, options),
            self.layer.secondary.get_opts(location, o2),
        )
        .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        self.read(
            location.as_ref(),
            self.inner.get_ranges(location, ranges),
            self.layer.secondary.get_ranges(location, ranges),
        )
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        let secondary = Arc::clone(&self.layer.secondary);
        let p = prefix.cloned();
        fallback_stream(self.layer.clone(), self.inner.list(prefix), move || {
            secondary.list(p.as_ref())
        })
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        let secondary = Arc::clone(&self.layer.secondary);
        let p = prefix.cloned();
        let o = offset.clone();
        fallback_stream(
            self.layer.clone(),
            self.inner.list_with_offset(prefix, offset),
            move || secondary.list_with_offset(p.as_ref(), &o),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.read(
            &key,
            self.inner.list_with_delimiter(prefix),
            self.layer.secondary.list_with_delimiter(prefix),
        )
        .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> OsResult<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> OsResult<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::ChaosLayer;
    use object_store::ObjectStoreExt;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU32;
    use storage_core::MemoryStore;

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

    #[tokio::test]
    async fn fallback_store_serves_reads_when_primary_is_down() {
        let primary_mem = MemoryStore::new();
        let secondary = MemoryStore::new();
        let p = Path::from("a");
        secondary.put(&p, "from secondary".into()).await.unwrap();
        let layer = FallbackLayer::new(Arc::new(secondary.clone()));
        let down = layer.wrap(
            ChaosLayer::default()
                .with_error_rate(1.0)
                .wrap(primary_mem.clone()),
        );
        assert_eq!(
            down.get(&p).await.unwrap().bytes().await.unwrap(),
            "from secondary"
        );
        let listed: Vec<_> = down.list(None).collect().await;
        assert_eq!(listed.len(), 1);
        assert_eq!(layer.fallbacks(), 2);
        // Not-found is an answer unless asked otherwise.
        let up = layer.wrap(primary_mem.clone());
        assert!(up.get(&p).await.is_err());
        let migrating = layer
            .clone()
            .with_fallback_on_not_found(true)
            .wrap(primary_mem);
        assert!(migrating.get(&p).await.is_ok());
    }
}
