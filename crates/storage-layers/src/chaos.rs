//! Chaos: injected failures, lost acknowledgements, torn streams and latency, reproducible
//! from a seed. For tests and benchmarks, never for production stacks.
//!
//! # Where it belongs
//!
//! Innermost, directly around the backend: it stands in for a flaky network and server, so
//! every other layer (retry, breaker, timeout, cache, ...) sees its faults the way it would
//! see real ones. Put it outside a retry layer and the retry layer never sees the faults;
//! outside a cache and cache hits hide them.
//!
//! # Determinism
//!
//! Every decision is drawn from one seeded generator in call order, so a single-task test
//! with the same seed injects the same faults at the same calls on every run. Concurrent
//! callers draw in the order the scheduler runs them.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::{ObjectStore, ObjectStoreExt, path::Path};
//! use storage_core::{Layer, MemoryStore};
//! use storage_layers::chaos::ChaosLayer;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let chaos = ChaosLayer::default().with_seed(7).with_error_rate(1.0);
//! let store = chaos.layer(Arc::new(MemoryStore::new()));
//! let err = store.put(&Path::from("a"), "x".into()).await.unwrap_err();
//! assert!(err.to_string().contains("injected"));
//! assert_eq!(chaos.stats().injected_errors, 1);
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::stream::{self, StreamExt};
use object_store::path::Path;
use object_store::{GetResult, ObjectStore, Result as OsResult};
use storage_core::{StorageError, StrataStore};

use crate::guard::{Answer, Call, CallFuture, Guard, Guarded, Item, ItemStream, MakeStream, Op};
use crate::util::{into_stream, os_err};

/// The kind of error a [`ChaosLayer`] injects: the one enum the `[layers.chaos]` config
/// names [`FaultName`](crate::config::FaultName).
pub use crate::config::FaultName as ChaosFault;

impl ChaosFault {
    fn error(self, op: &str, key: &str) -> StorageError {
        let backend = "chaos".to_string();
        let msg = format!("injected {self:?} fault on {op} `{key}`");
        match self {
            ChaosFault::Unavailable => StorageError::Unavailable {
                backend,
                source: msg.into(),
            },
            ChaosFault::Timeout => StorageError::Timeout {
                backend,
                operation: format!("{op} (injected)"),
                after: Duration::ZERO,
                source: None,
            },
            ChaosFault::SlowDown => StorageError::QuotaExceeded {
                backend,
                detail: msg,
            },
            ChaosFault::ServerError => StorageError::Backend {
                backend,
                status: Some(500),
                source: msg.into(),
            },
            ChaosFault::AccessDenied => StorageError::AccessDenied {
                backend,
                key: key.to_string(),
                source: msg.into(),
            },
        }
    }
}

/// Which calls a [`ChaosLayer`] fails with injected errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChaosTarget {
    /// Every call.
    #[default]
    All,
    /// Reads only (get, head, get_ranges, list).
    Reads,
    /// Writes only (put, multipart, delete, copy, rename).
    Writes,
}

/// Counters of what a [`ChaosLayer`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChaosStats {
    /// Calls failed before reaching the backend.
    pub injected_errors: u64,
    /// Writes applied by the backend and then reported as failed.
    pub lost_acks: u64,
    /// GET bodies cut short with an error.
    pub torn_streams: u64,
    /// Calls delayed by injected latency.
    pub delayed: u64,
}

#[derive(Default)]
struct Counters {
    injected_errors: AtomicU64,
    lost_acks: AtomicU64,
    torn_streams: AtomicU64,
    delayed: AtomicU64,
}

/// Injects faults; see the [module docs](self). All rates are probabilities in `0.0..=1.0`.
#[derive(Clone)]
pub struct ChaosLayer {
    cfg: ChaosConfigValues,
    rng: Arc<Mutex<fastrand::Rng>>,
    counters: Arc<Counters>,
}

#[derive(Debug, Clone, Copy)]
struct ChaosConfigValues {
    seed: u64,
    error_rate: f64,
    fault: ChaosFault,
    target: ChaosTarget,
    parts: bool,
    lost_ack_rate: f64,
    torn_stream_rate: f64,
    latency: Option<(Duration, Duration)>,
}

impl Default for ChaosLayer {
    /// No faults at all until a rate is set; seed 0.
    fn default() -> Self {
        ChaosLayer {
            cfg: ChaosConfigValues {
                seed: 0,
                error_rate: 0.0,
                fault: ChaosFault::Unavailable,
                target: ChaosTarget::All,
                parts: true,
                lost_ack_rate: 0.0,
                torn_stream_rate: 0.0,
                latency: None,
            },
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(0))),
            counters: Arc::default(),
        }
    }
}

impl fmt::Debug for ChaosLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosLayer")
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl ChaosLayer {
    /// Seed of the generator (restarts it).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.cfg.seed = seed;
        self.rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        self
    }

    /// Fail this share of calls before they reach the backend.
    pub fn with_error_rate(mut self, rate: f64) -> Self {
        self.cfg.error_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// The kind of error injected (default [`ChaosFault::Unavailable`]).
    pub fn with_fault(mut self, fault: ChaosFault) -> Self {
        self.cfg.fault = fault;
        self
    }

    /// Which calls injected errors hit (default all; lost acks and torn streams are
    /// write-only and read-only by nature).
    pub fn with_target(mut self, target: ChaosTarget) -> Self {
        self.cfg.target = target;
        self
    }

    /// Whether multipart parts and completions get injected faults too (default yes). A
    /// failed part or completion fails its upload: those requests are retried by the HTTP
    /// client (`object_store`'s `RetryConfig`), not by the retry layer, which cannot resend a
    /// part under its part number nor complete an upload twice through `MultipartUpload`.
    pub fn with_multipart(mut self, yes: bool) -> Self {
        self.cfg.parts = yes;
        self
    }

    /// Apply this share of writes (put, delete, copy, rename, multipart complete) and then
    /// report them failed, as a connection dropped before the answer arrived would.
    pub fn with_lost_ack_rate(mut self, rate: f64) -> Self {
        self.cfg.lost_ack_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Cut this share of GET bodies short with an error after part of the bytes.
    pub fn with_torn_stream_rate(mut self, rate: f64) -> Self {
        self.cfg.torn_stream_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Delay every call by a duration drawn uniformly from `min..=max`.
    pub fn with_latency(mut self, min: Duration, max: Duration) -> Self {
        self.cfg.latency = Some((min, max.max(min)));
        self
    }

    /// What was injected so far, by every store made from this layer.
    pub fn stats(&self) -> ChaosStats {
        let c = &self.counters;
        ChaosStats {
            injected_errors: c.injected_errors.load(Ordering::Relaxed),
            lost_acks: c.lost_acks.load(Ordering::Relaxed),
            torn_streams: c.torn_streams.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
        }
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> ChaosStore<T> {
        ChaosStore {
            guarded: Guarded::new(inner, self.clone()),
        }
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && self.rng.lock().expect("chaos rng").f64() < rate
    }

    fn delay(&self) -> Option<Duration> {
        let (min, max) = self.cfg.latency?;
        let span = (max - min).as_nanos() as u64;
        let extra = if span == 0 {
            0
        } else {
            self.rng.lock().expect("chaos rng").u64(0..=span)
        };
        Some(min + Duration::from_nanos(extra))
    }

    /// Latency, then maybe an injected error.
    async fn before(&self, op: &str, key: &str, write: bool) -> OsResult<()> {
        if let Some(d) = self.delay() {
            self.counters.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(d).await;
        }
        let targeted = match self.cfg.target {
            ChaosTarget::All => true,
            ChaosTarget::Reads => !write,
            ChaosTarget::Writes => write,
        };
        if targeted && self.roll(self.cfg.error_rate) {
            self.counters
                .injected_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(op, key, fault = ?self.cfg.fault, "chaos: injecting error");
            return Err(os_err(self.cfg.fault.error(op, key)));
        }
        Ok(())
    }

    /// After a successful write: maybe pretend the answer was lost.
    fn after_write<R>(&self, op: &str, key: &str, res: OsResult<R>) -> OsResult<R> {
        if res.is_ok() && self.roll(self.cfg.lost_ack_rate) {
            self.counters.lost_acks.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                op,
                key,
                "chaos: dropping the acknowledgement of an applied write"
            );
            let fault = match self.cfg.fault {
                ChaosFault::SlowDown | ChaosFault::AccessDenied => ChaosFault::Unavailable,
                f => f,
            };
            return Err(os_err(fault.error(op, key)));
        }
        res
    }
}

crate::util::layer_wraps!(ChaosLayer);

/// A store with injected faults; made by [`ChaosLayer`].
pub struct ChaosStore<T: StrataStore> {
    guarded: Guarded<ChaosLayer, T>,
}

crate::guard::guarded_store!(ChaosStore);

/// Whether an operation's acknowledgement may be lost ([`ChaosLayer::with_lost_ack_rate`]):
/// the writes that apply a change in one answer. Starting a multipart upload and sending a
/// part change nothing a reader sees.
fn acknowledges_a_write(op: Op) -> bool {
    matches!(
        op,
        Op::Put | Op::Delete | Op::DeleteIfMatch | Op::Copy | Op::Rename | Op::Complete
    )
}

/// Latency and errors before every call (aborts excepted), lost acknowledgements after
/// writes, torn GET bodies; a listing fails before its first entry; a delete stream key by
/// key. Presigning passes through.
impl Guard for ChaosLayer {
    const NAME: &'static str = "Chaos";

    async fn call<R: Answer>(&self, call: Call<'_>, fut: impl CallFuture<R>) -> OsResult<R> {
        if call.op == Op::Abort {
            return fut.await;
        }
        self.before(call.op.name(), call.key, call.op.is_write())
            .await?;
        let res = fut.await;
        if !acknowledges_a_write(call.op) {
            return res;
        }
        self.after_write(call.op.name(), call.key, res)
    }

    fn listing<I: Item>(&self, call: Call<'_>, make: impl MakeStream<I>) -> ItemStream<I> {
        let inner = make();
        let layer = self.clone();
        let (op, key) = (call.op.name(), call.key.to_string());
        async move { layer.before(op, &key, false).await }
            .map(move |r| match r {
                Ok(()) => inner,
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            })
            .flatten_stream()
            .boxed()
    }

    async fn get(&self, call: Call<'_>, fut: impl CallFuture<GetResult>) -> OsResult<GetResult> {
        let res = self.call(call, fut).await?;
        let len = res.range.end - res.range.start;
        if call.op == Op::Head || len < 2 || !self.roll(self.cfg.torn_stream_rate) {
            return Ok(res);
        }
        self.counters.torn_streams.fetch_add(1, Ordering::Relaxed);
        // Deliver a prefix of the body, then fail the way a dropped connection does.
        let keep = self.rng.lock().expect("chaos rng").u64(1..len) as usize;
        let err = self.cfg.fault.error("get body", call.key);
        let (meta, body) = into_stream(res);
        let torn = body
            .scan(keep, |left, chunk| {
                let out = match chunk {
                    Ok(_) if *left == 0 => None,
                    Ok(b) => {
                        let n = b.len().min(*left);
                        *left -= n;
                        Some(Ok(b.slice(..n)))
                    }
                    Err(e) => Some(Err(e)),
                };
                futures::future::ready(out)
            })
            .chain(stream::once(async move { Err(os_err(err)) }))
            .boxed();
        Ok(meta.with_stream(torn))
    }

    fn guards_parts(&self) -> bool {
        self.cfg.parts
    }

    fn deletes<S: ObjectStore>(&self, inner: &Arc<S>, paths: ItemStream<Path>) -> ItemStream<Path> {
        let inner = Arc::clone(inner);
        let layer = self.clone();
        paths
            .then(move |loc| {
                let inner = Arc::clone(&inner);
                let layer = layer.clone();
                async move {
                    let loc = loc?;
                    layer.before("delete", loc.as_ref(), true).await?;
                    let res = inner
                        .delete_stream(stream::once(async move { Ok(loc) }).boxed())
                        .next()
                        .await
                        .unwrap_or_else(|| {
                            Err(os_err(StorageError::Backend {
                                backend: "chaos".into(),
                                status: None,
                                source: "inner delete_stream yielded nothing".into(),
                            }))
                        });
                    let key = res.as_ref().map(|p| p.to_string()).unwrap_or_default();
                    layer.after_write("delete", &key, res)
                }
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_support::read;
    use object_store::ObjectStoreExt;
    use storage_core::MemoryStore;

    async fn outcomes(seed: u64) -> Vec<bool> {
        let store = ChaosLayer::default()
            .with_seed(seed)
            .with_error_rate(0.3)
            .wrap(MemoryStore::new());
        let mut v = Vec::new();
        for i in 0..50 {
            v.push(
                store
                    .put(&Path::from(format!("k{i}")), "x".into())
                    .await
                    .is_ok(),
            );
        }
        v
    }

    #[tokio::test]
    async fn same_seed_same_faults() {
        let a = outcomes(42).await;
        assert_eq!(a, outcomes(42).await);
        assert_ne!(a, outcomes(43).await);
        let failed = a.iter().filter(|ok| !**ok).count();
        assert!(
            (5..=25).contains(&failed),
            "{failed} of 50 failed at rate 0.3"
        );
    }

    #[tokio::test]
    async fn lost_ack_applies_the_write() {
        let layer = ChaosLayer::default().with_lost_ack_rate(1.0);
        let store = layer.wrap(MemoryStore::new());
        let p = Path::from("a");
        assert!(store.put(&p, "v".into()).await.is_err());
        assert_eq!(read(&*store.guarded.inner, "a").await, "v");
        assert_eq!(layer.stats().lost_acks, 1);
    }

    #[tokio::test]
    async fn torn_stream_delivers_a_prefix_then_fails() {
        let layer = ChaosLayer::default()
            .with_seed(1)
            .with_torn_stream_rate(1.0);
        let store = layer.wrap(MemoryStore::new());
        let p = Path::from("a");
        store.put(&p, vec![7u8; 1000].into()).await.unwrap();
        let mut s = store.get(&p).await.unwrap().into_stream();
        let mut got = 0;
        let mut failed = false;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => got += b.len(),
                Err(_) => failed = true,
            }
        }
        assert!(failed && got < 1000 && got > 0, "got {got}");
        assert_eq!(layer.stats().torn_streams, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_injected() {
        let layer = ChaosLayer::default()
            .with_latency(Duration::from_millis(100), Duration::from_millis(100));
        let store = layer.wrap(MemoryStore::new());
        let t0 = tokio::time::Instant::now();
        store.put(&Path::from("a"), "x".into()).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_millis(100));
        assert_eq!(layer.stats().delayed, 1);
    }
}
