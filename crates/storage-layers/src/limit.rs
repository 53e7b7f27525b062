//! Concurrency limit: at most N calls in flight, optionally shared by several stores.
//!
//! A GET holds its permit until its body is consumed or dropped; a listing until the stream
//! ends; a multipart upload holds one per part in flight.
//!
//! # Where it belongs
//!
//! `… → retry → breaker → **limit** → timeout → backend`. Inside retry, so a call sleeping
//! out its backoff holds no permit; inside the breaker, so calls the open breaker rejects
//! never queue; outside the timeout, so time spent waiting for a permit is not charged to the
//! backend (with the limit inside the timeout, queueing alone makes calls time out).
//!
//! # Sharing
//!
//! The permits live in a [`LimitPool`], a value that belongs to whoever configures it: a
//! layer makes its own, and every store made from one `ConcurrencyLimitLayer` value draws
//! from it. Make the layer once and apply it to several buckets on the same backend (one
//! connection pool, one provider rate limit) to bound them together; give layers built
//! separately (for example from each bucket's config, with
//! [`LayersConfig::build_with_limit_pool`](crate::config::LayersConfig::build_with_limit_pool))
//! a clone of one pool to share it. Nothing is shared by name or process-wide: two stacks
//! share a limit only when they were handed the same pool. Use
//! [`ConcurrencyLimitLayer::per_store`] for a separate budget per store.
//!
//! ```
//! use std::sync::Arc;
//! use storage_core::{Layer, MemoryStore};
//! use storage_layers::limit::ConcurrencyLimitLayer;
//!
//! let shared = ConcurrencyLimitLayer::new(8);
//! let a = shared.layer(Arc::new(MemoryStore::new()));
//! let b = shared.layer(Arc::new(MemoryStore::new()));
//! assert_eq!(shared.available(), 8); // a and b together make at most 8 calls at once
//! # let _ = (a, b);
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::stream::{Stream, StreamExt};
use object_store::{GetResult, GetResultPayload, Result as OsResult};

use storage_core::StrataStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::guard::{Answer, Call, CallFuture, Guard, Guarded, Item, ItemStream, MakeStream};
use crate::util::into_stream;

/// Permits for calls in flight, shared by every store that draws from it; clones share
/// the same permits. See the [module docs](self#sharing).
///
/// ```
/// use std::sync::Arc;
/// use storage_core::{Layer, MemoryStore};
/// use storage_layers::limit::{ConcurrencyLimitLayer, LimitPool};
///
/// let pool = LimitPool::new(4);
/// // Two layers built apart (say, from two buckets' configs) share the pool they are given.
/// let a = ConcurrencyLimitLayer::with_pool(pool.clone()).layer(Arc::new(MemoryStore::new()));
/// let b = ConcurrencyLimitLayer::with_pool(pool.clone()).layer(Arc::new(MemoryStore::new()));
/// assert_eq!(pool.available(), 4); // a and b together make at most 4 calls at once
/// # let _ = (a, b);
/// ```
#[derive(Clone)]
pub struct LimitPool {
    max: usize,
    semaphore: Arc<Semaphore>,
}

impl LimitPool {
    /// A pool of `max` permits (at least 1).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        LimitPool {
            max,
            semaphore: Arc::new(Semaphore::new(max)),
        }
    }

    /// The number of permits.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Permits free right now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Whether `self` and `other` are the same pool (clones of one another).
    pub fn same_pool(&self, other: &LimitPool) -> bool {
        Arc::ptr_eq(&self.semaphore, &other.semaphore)
    }
}

impl fmt::Debug for LimitPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitPool")
            .field("max", &self.max)
            .field("available", &self.available())
            .finish()
    }
}

/// Limits concurrent calls; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    max: usize,
    shared: Option<LimitPool>,
}

impl Default for ConcurrencyLimitLayer {
    /// 64 calls in flight, shared by the stores made from this layer.
    fn default() -> Self {
        ConcurrencyLimitLayer::new(64)
    }
}

impl ConcurrencyLimitLayer {
    /// At most `max` calls in flight across every store made from this layer (at least 1):
    /// a new pool of its own.
    pub fn new(max: usize) -> Self {
        ConcurrencyLimitLayer::with_pool(LimitPool::new(max))
    }

    /// A layer drawing from `pool`, which other layers may share (see [`LimitPool`]).
    pub fn with_pool(pool: LimitPool) -> Self {
        ConcurrencyLimitLayer {
            max: pool.max(),
            shared: Some(pool),
        }
    }

    /// At most `max` calls in flight per store made from this layer.
    pub fn per_store(max: usize) -> Self {
        ConcurrencyLimitLayer {
            max: max.max(1),
            shared: None,
        }
    }

    /// Change the limit (starts a new shared pool).
    pub fn with_max(self, max: usize) -> Self {
        match self.shared {
            Some(_) => ConcurrencyLimitLayer::new(max),
            None => ConcurrencyLimitLayer::per_store(max),
        }
    }

    /// The configured limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Permits free right now in the shared pool (the limit when per store).
    pub fn available(&self) -> usize {
        self.shared.as_ref().map_or(self.max, LimitPool::available)
    }

    /// The pool the stores made from this layer share (`None` when per store).
    pub fn pool(&self) -> Option<&LimitPool> {
        self.shared.as_ref()
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> LimitStore<T> {
        let semaphore = self.shared.as_ref().map_or_else(
            || Arc::new(Semaphore::new(self.max)),
            |p| Arc::clone(&p.semaphore),
        );
        let permits = Permits {
            semaphore,
            max: self.max,
        };
        LimitStore {
            guarded: Guarded::new(inner, permits),
        }
    }
}

crate::util::layer_wraps!(ConcurrencyLimitLayer);

/// A store with a concurrency limit; made by [`ConcurrencyLimitLayer`].
pub struct LimitStore<T: StrataStore> {
    guarded: Guarded<Permits, T>,
}

crate::guard::guarded_store!(LimitStore);

/// The permits a store draws from, and the limit it shows (`LimitStore(max, inner)`).
#[derive(Clone)]
struct Permits {
    semaphore: Arc<Semaphore>,
    max: usize,
}

impl Permits {
    async fn permit(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.semaphore)
            .acquire_owned()
            .await
            .expect("the limit semaphore is never closed")
    }
}

/// A stream that keeps a permit until it is dropped.
struct Permitted<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: Stream + Unpin> Stream for Permitted<S> {
    type Item = S::Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// Each call, and each part, completion and abort of a multipart upload, holds a permit; a
/// GET body and a listing hold theirs until they are consumed or dropped. Presigning needs
/// none.
impl Guard for Permits {
    const NAME: &'static str = "Limit";

    fn settings(&self) -> Option<String> {
        Some(self.max.to_string())
    }

    async fn call<R: Answer>(&self, _: Call<'_>, fut: impl CallFuture<R>) -> OsResult<R> {
        let _p = self.permit().await;
        fut.await
    }

    fn listing<I: Item>(&self, _: Call<'_>, make: impl MakeStream<I>) -> ItemStream<I> {
        let permits = self.clone();
        async move {
            let permit = permits.permit().await;
            Permitted {
                inner: make(),
                _permit: permit,
            }
        }
        .flatten_stream()
        .boxed()
    }

    async fn get(&self, _: Call<'_>, fut: impl CallFuture<GetResult>) -> OsResult<GetResult> {
        let p = self.permit().await;
        let res = fut.await?;
        if !matches!(res.payload, GetResultPayload::Stream(_)) {
            return Ok(res);
        }
        let (meta, body) = into_stream(res);
        Ok(meta.with_stream(
            Permitted {
                inner: body,
                _permit: p,
            }
            .boxed(),
        ))
    }

    fn guards_parts(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::ChaosLayer;
    use object_store::ObjectStoreExt;
    use object_store::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use storage_core::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn shared_limit_bounds_two_stores_together() {
        let slow =
            ChaosLayer::default().with_latency(Duration::from_secs(1), Duration::from_secs(1));
        let limit = ConcurrencyLimitLayer::new(3);
        let a = Arc::new(limit.wrap(slow.wrap(MemoryStore::new())));
        let b = Arc::new(limit.wrap(slow.wrap(MemoryStore::new())));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..12 {
            let store = if i % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let lim = limit.clone();
            let peak = Arc::clone(&peak);
            tasks.push(tokio::spawn(async move {
                let key = Path::from(format!("k{i}"));
                let fut = store.put(&key, "x".into());
                tokio::pin!(fut);
                // Sample how many permits are taken while this call is in flight.
                loop {
                    tokio::select! {
                        r = &mut fut => { r.unwrap(); break; }
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {
                            peak.fetch_max(3 - lim.available(), Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        let t0 = tokio::time::Instant::now();
        for t in tasks {
            t.await.unwrap();
        }
        // 12 one-second calls, 3 at a time: 4 seconds of virtual time.
        assert_eq!(t0.elapsed().as_secs(), 4);
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(limit.available(), 3);
    }

    #[tokio::test]
    async fn layers_share_a_pool_only_when_given_it() {
        let pool = LimitPool::new(2);
        let a = ConcurrencyLimitLayer::with_pool(pool.clone());
        let b = ConcurrencyLimitLayer::with_pool(pool.clone());
        assert_eq!(b.max(), 2);
        let sa = a.wrap(MemoryStore::new());
        let sb = b.wrap(MemoryStore::new());
        sa.put(&Path::from("x"), "1".into()).await.unwrap();
        sb.put(&Path::from("x"), "1".into()).await.unwrap();
        let ra = sa.get(&Path::from("x")).await.unwrap();
        let rb = sb.get(&Path::from("x")).await.unwrap();
        // Two bodies held through two different layers drain one pool.
        assert_eq!(a.available(), 0);
        assert_eq!(pool.available(), 0);
        drop((ra, rb));
        assert_eq!(b.available(), 2);
        assert!(a.pool().unwrap().same_pool(&pool));
        // A layer given no pool has its own, whatever its size.
        let other = ConcurrencyLimitLayer::new(2);
        assert!(!other.pool().unwrap().same_pool(&pool));
        let held = sa.get(&Path::from("x")).await.unwrap();
        assert_eq!((pool.available(), other.available()), (1, 2));
        drop(held);
    }

    #[tokio::test]
    async fn get_body_holds_the_permit_until_dropped() {
        let limit = ConcurrencyLimitLayer::new(1);
        let store = limit.wrap(MemoryStore::new());
        store.put(&Path::from("a"), "x".into()).await.unwrap();
        let res = store.get(&Path::from("a")).await.unwrap();
        assert_eq!(limit.available(), 0);
        assert_eq!(res.bytes().await.unwrap(), "x");
        assert_eq!(limit.available(), 1);
    }
}
