//! Per-operation and per-stream-idle timeouts.
//!
//! Each call must finish within the operation timeout; each chunk of a GET body (and each
//! entry of a listing) must arrive within the idle timeout of the one before, so a large
//! download may take as long as it needs while a stalled one fails. Failures are
//! `StorageError::Timeout` (retryable), raised through `into_object_store`.
//!
//! # Where it belongs
//!
//! Innermost of the resilience layers, right above the backend:
//! `… → retry → breaker → limit → **timeout** → backend`. Inside retry, so each attempt has
//! its own deadline and a hung attempt is retried; inside the breaker, so timeouts count as
//! failures; inside the concurrency limit, so time spent queueing for a permit is not
//! charged to the backend (with the limit inside, a burst of queued calls would time out and
//! open the breaker on self-inflicted congestion). For an overall deadline across retries,
//! add a second `TimeoutLayer` outside the retry layer.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use object_store::{ObjectStoreExt, path::Path};
//! use storage_core::{Layer, MemoryStore};
//! use storage_layers::{chaos::ChaosLayer, timeout::TimeoutLayer};
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let slow = ChaosLayer::default()
//!     .with_latency(Duration::from_secs(60), Duration::from_secs(60))
//!     .layer(Arc::new(MemoryStore::new()));
//! let store = TimeoutLayer::default().with_operation_timeout(Duration::from_secs(5)).layer(slow);
//! let err = store.put(&Path::from("a"), "x".into()).await.unwrap_err();
//! assert!(err.to_string().contains("timed out after 5s"), "{err}");
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use object_store::path::Path;
use object_store::{GetResult, GetResultPayload, ObjectStore, Result as OsResult};
use storage_core::{StorageError, StrataStore};

use crate::guard::{Answer, Call, CallFuture, Guard, Guarded, Item, ItemStream, MakeStream};
use crate::util::{into_stream, os_err};

/// Bounds call and stream-idle time; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    operation: Option<Duration>,
    idle: Option<Duration>,
    name: String,
}

impl Default for TimeoutLayer {
    /// 30 s per operation (seed 002's `STORAGE_TIMEOUT=30000`), 30 s stream idle.
    fn default() -> Self {
        TimeoutLayer {
            operation: Some(Duration::from_secs(30)),
            idle: Some(Duration::from_secs(30)),
            name: "storage".into(),
        }
    }
}

impl TimeoutLayer {
    /// Longest time one call may take (for GET: until the response headers arrive).
    pub fn with_operation_timeout(mut self, t: Duration) -> Self {
        self.operation = Some(t);
        self
    }

    /// Longest gap between two chunks of a GET body or two entries of a listing.
    pub fn with_idle_timeout(mut self, t: Duration) -> Self {
        self.idle = Some(t);
        self
    }

    /// No per-operation limit.
    pub fn without_operation_timeout(mut self) -> Self {
        self.operation = None;
        self
    }

    /// No stream idle limit.
    pub fn without_idle_timeout(mut self) -> Self {
        self.idle = None;
        self
    }

    /// Backend name used in the `Timeout` errors.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> TimeoutStore<T> {
        TimeoutStore {
            guarded: Guarded::new(inner, Arc::new(self.clone())),
        }
    }

    fn error(&self, op: &str, after: Duration) -> object_store::Error {
        os_err(StorageError::Timeout {
            backend: self.name.clone(),
            operation: op.to_string(),
            after,
            source: None,
        })
    }

    async fn run<R>(&self, op: &str, fut: impl Future<Output = OsResult<R>>) -> OsResult<R> {
        match self.operation {
            None => fut.await,
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => Err(self.error(op, t)),
            },
        }
    }
}

crate::util::layer_wraps!(TimeoutLayer);

/// Fail a stream whose next item takes longer than `idle`.
fn idle_limited<I: Send + 'static>(
    cfg: Arc<TimeoutLayer>,
    op: &'static str,
    s: ItemStream<I>,
) -> ItemStream<I> {
    let Some(idle) = cfg.idle else { return s };
    stream::unfold(Some(s), move |state| {
        let cfg = Arc::clone(&cfg);
        async move {
            let mut s = state?;
            match tokio::time::timeout(idle, s.next()).await {
                Ok(Some(item)) => Some((item, Some(s))),
                Ok(None) => None,
                Err(_) => Some((Err(cfg.error(op, idle)), None)),
            }
        }
    })
    .fuse()
    .boxed()
}

/// A store with timeouts; made by [`TimeoutLayer`].
pub struct TimeoutStore<T: StrataStore> {
    guarded: Guarded<Arc<TimeoutLayer>, T>,
}

crate::guard::guarded_store!(TimeoutStore);

/// Every call, multipart part and presigned URL within the operation timeout; GET bodies and
/// listings within the idle timeout per item.
impl Guard for Arc<TimeoutLayer> {
    const NAME: &'static str = "Timeout";

    fn call<R: Answer>(&self, call: Call<'_>, fut: impl CallFuture<R>) -> impl CallFuture<R> {
        self.run(call.op.name(), fut)
    }

    fn listing<I: Item>(&self, call: Call<'_>, make: impl MakeStream<I>) -> ItemStream<I> {
        idle_limited(Arc::clone(self), call.op.name(), make())
    }

    async fn get(&self, call: Call<'_>, fut: impl CallFuture<GetResult>) -> OsResult<GetResult> {
        let res = self.run(call.op.name(), fut).await?;
        if !matches!(res.payload, GetResultPayload::Stream(_)) {
            return Ok(res);
        }
        let (meta, body) = into_stream(res);
        Ok(meta.with_stream(idle_limited(Arc::clone(self), "get body", body)))
    }

    fn guards_parts(&self) -> bool {
        true
    }

    /// Signing may ask the provider for credentials: bounded like any call.
    fn guards_presign(&self) -> bool {
        true
    }

    fn deletes<S: ObjectStore>(&self, inner: &Arc<S>, paths: ItemStream<Path>) -> ItemStream<Path> {
        // Each deleted entry is an answer from the backend: bound the wait for each one.
        let s = inner.delete_stream(paths);
        match self.operation {
            None => s,
            Some(_) => {
                let per_item = TimeoutLayer {
                    idle: self.operation,
                    ..(**self).clone()
                };
                idle_limited(Arc::new(per_item), "delete", s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::ChaosLayer;
    use crate::util::test_support::read;
    use bytes::Bytes;
    use object_store::ObjectStoreExt;
    use storage_core::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn slow_calls_time_out_with_a_typed_error() {
        let slow = ChaosLayer::default()
            .with_latency(Duration::from_secs(10), Duration::from_secs(10))
            .wrap(MemoryStore::new());
        let store = TimeoutLayer::default()
            .with_operation_timeout(Duration::from_secs(2))
            .with_name("mem")
            .wrap(slow);
        let t0 = tokio::time::Instant::now();
        let err = store.get(&Path::from("a")).await.unwrap_err();
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        let err = StorageError::from_object_store("x", err);
        assert!(
            matches!(err, StorageError::Timeout { ref backend, .. } if backend == "mem"),
            "{err}"
        );
        assert!(err.is_retryable());
    }

    #[tokio::test(start_paused = true)]
    async fn fast_calls_pass() {
        let store = TimeoutLayer::default()
            .with_operation_timeout(Duration::from_millis(1))
            .wrap(MemoryStore::new());
        store.put(&Path::from("a"), "x".into()).await.unwrap();
        assert_eq!(read(&store, "a").await, "x");
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_stream_fails_on_idle_timeout() {
        let cfg = Arc::new(TimeoutLayer::default().with_idle_timeout(Duration::from_secs(1)));
        // Two chunks, then a stall longer than the idle limit.
        let body = stream::iter(vec![Ok(Bytes::from("a")), Ok(Bytes::from("b"))])
            .chain(
                stream::once(async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(Bytes::from("c"))
                })
                .boxed(),
            )
            .boxed();
        let got: Vec<_> = idle_limited(cfg, "get body", body).collect().await;
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_ok());
        let err =
            StorageError::from_object_store("x", got.into_iter().nth(2).unwrap().unwrap_err());
        assert!(matches!(err, StorageError::Timeout { .. }), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_but_steady_stream_passes() {
        let cfg = Arc::new(TimeoutLayer::default().with_idle_timeout(Duration::from_secs(1)));
        // Ten chunks 0.5 s apart: 5 s in all, never idle for 1 s.
        let body = stream::iter(0..10)
            .then(|i| async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok(Bytes::from(vec![i as u8]))
            })
            .boxed();
        let got: Vec<_> = idle_limited(cfg, "get body", body).collect().await;
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|r| r.is_ok()));
    }
}
