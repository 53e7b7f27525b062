//! Metrics and tracing: a `tracing` span per call and counters you can read as a snapshot.
//!
//! Each call runs inside a span `storage_op` with fields `store`, `op`, `key`, and, when it
//! ends, `bytes`, `outcome` (`ok` or an error kind) and `latency_ms`; a `debug` event (or a
//! `warn` for backend failures) closes it — seed 002's performance logging.
//!
//! [`MetricsLayer::stats`] returns a [`MetricsSnapshot`]: per operation the calls, errors,
//! bytes and a latency histogram (with p50/p90/p99 estimates); errors by kind; and seed 001's
//! error metrics, errors by kind *and key prefix* (`users/42/...` → `users` with the default
//! prefix depth 1). With the `metrics-crate` feature the same figures also go to the
//! [`metrics`](https://docs.rs/metrics) facade (`strata_storage_ops_total`,
//! `strata_storage_errors_total`, `strata_storage_bytes_total`,
//! `strata_storage_op_seconds`), labelled by store, op and outcome.
//!
//! # Where it belongs
//!
//! Outermost: it then measures what the application sees, one call however many retries it
//! took, cache hits included, and errors as finally returned. Placed inside the retry layer it
//! counts attempts instead (useful as a second instance, named e.g. `backend`, to see the
//! backend's own error rate).
//!
//! Byte counts: `put` counts the payload, `get` the byte range returned (the body's length
//! when the caller reads it all), `get_ranges` the bytes returned; listings count entries in
//! `entries`, not bytes.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::{ObjectStoreExt, path::Path};
//! use storage_core::{Layer, MemoryStore};
//! use storage_layers::metrics::MetricsLayer;
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let metrics = MetricsLayer::new("media");
//! let store = metrics.layer(Arc::new(MemoryStore::new()));
//! store.put(&Path::from("users/1/a.txt"), "hello".into()).await.unwrap();
//! let _ = store.get(&Path::from("users/2/missing")).await;
//! let stats = metrics.stats();
//! assert_eq!(stats.ops["put"].calls, 1);
//! assert_eq!(stats.ops["put"].bytes, 5);
//! assert_eq!(stats.errors_by_kind["not_found"], 1);
//! assert_eq!(stats.errors_by_prefix[&("not_found".to_string(), "users".to_string())], 1);
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::stream::StreamExt;
use object_store::path::Path;
use object_store::{
    MultipartUpload, ObjectStore, PutPayload, PutResult, Result as OsResult, UploadPart,
};
use storage_core::{ErrorKind, StrataStore};
use tokio::time::Instant;
use tracing::Instrument;

use crate::guard::{Answer, Call, CallFuture, Guard, Guarded, Item, ItemStream, MakeStream, Op};
use crate::util::{classify, key_prefix};

/// Upper bounds of the latency histogram buckets, in milliseconds (a last bucket holds the
/// rest).
pub const LATENCY_BUCKETS_MS: [u64; 13] =
    [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// A latency histogram with fixed buckets ([`LATENCY_BUCKETS_MS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Count per bucket; `counts[i]` holds calls up to `LATENCY_BUCKETS_MS[i]` ms, the last
    /// entry the slower ones.
    pub counts: [u64; 14],
    /// Calls recorded.
    pub count: u64,
    /// Sum of latencies, in microseconds.
    pub sum_micros: u64,
}

impl Histogram {
    fn record(&mut self, d: Duration) {
        let ms = d.as_millis() as u64;
        let i = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[i] += 1;
        self.count += 1;
        self.sum_micros += d.as_micros() as u64;
    }

    /// Mean latency.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(self.sum_micros / self.count)
    }

    /// Upper bound of the bucket holding quantile `q` (0..=1); `None` when empty or in the
    /// overflow bucket.
    pub fn quantile_upper_bound(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let target = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                return LATENCY_BUCKETS_MS
                    .get(i)
                    .map(|ms| Duration::from_millis(*ms));
            }
        }
        None
    }
}

/// Figures for one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Bytes moved (see the module docs).
    pub bytes: u64,
    /// Entries listed (list calls only).
    pub entries: u64,
    /// Latency.
    pub latency: Histogram,
}

/// A copy of a metrics layer's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Store name given to the layer.
    pub store: String,
    /// By operation: `put`, `put_multipart`, `get`, `head`, `get_ranges`, `delete`, `list`,
    /// `list_with_delimiter`, `copy`, `rename` and `delete_if_match`.
    pub ops: BTreeMap<String, OpStats>,
    /// Errors by [`ErrorKind`] name (`not_found`, `timeout`, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Errors by (kind, key prefix): seed 001's error metrics.
    pub errors_by_prefix: BTreeMap<(String, String), u64>,
}

impl MetricsSnapshot {
    /// Calls over every operation.
    pub fn total_calls(&self) -> u64 {
        self.ops.values().map(|o| o.calls).sum()
    }

    /// Errors over every operation.
    pub fn total_errors(&self) -> u64 {
        self.ops.values().map(|o| o.errors).sum()
    }

    /// Bytes over every operation.
    pub fn total_bytes(&self) -> u64 {
        self.ops.values().map(|o| o.bytes).sum()
    }
}

#[derive(Debug)]
struct Registry {
    name: String,
    prefix_depth: usize,
    data: Mutex<MetricsSnapshot>,
}

impl Registry {
    fn record(
        &self,
        op: &str,
        key: &str,
        outcome: Result<(), ErrorKind>,
        bytes: u64,
        entries: u64,
        latency: Duration,
    ) {
        let mut d = self.data.lock().expect("metrics");
        let s = d.ops.entry(op.to_string()).or_default();
        s.calls += 1;
        s.bytes += bytes;
        s.entries += entries;
        s.latency.record(latency);
        if let Err(kind) = outcome {
            s.errors += 1;
            *d.errors_by_kind
                .entry(kind.as_str().to_string())
                .or_default() += 1;
            *d.errors_by_prefix
                .entry((
                    kind.as_str().to_string(),
                    key_prefix(key, self.prefix_depth),
                ))
                .or_default() += 1;
        }
        drop(d);
        #[cfg(feature = "metrics-crate")]
        {
            let outcome_label = match outcome {
                Ok(()) => "ok",
                Err(k) => k.as_str(),
            };
            let store = self.name.clone();
            metrics::counter!("strata_storage_ops_total", "store" => store.clone(), "op" => op.to_string(), "outcome" => outcome_label).increment(1);
            if outcome.is_err() {
                metrics::counter!("strata_storage_errors_total", "store" => store.clone(), "op" => op.to_string(), "kind" => outcome_label).increment(1);
            }
            metrics::counter!("strata_storage_bytes_total", "store" => store.clone(), "op" => op.to_string()).increment(bytes);
            metrics::histogram!("strata_storage_op_seconds", "store" => store, "op" => op.to_string()).record(latency.as_secs_f64());
        }
    }
}

/// Records metrics and spans; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    registry: Arc<Registry>,
}

impl Default for MetricsLayer {
    /// Store name `storage`, prefix depth 1.
    fn default() -> Self {
        MetricsLayer::new("storage")
    }
}

impl MetricsLayer {
    /// A layer naming its store `name` in spans and metrics.
    pub fn new(name: impl Into<String>) -> Self {
        MetricsLayer::build(name.into(), 1)
    }

    fn build(name: String, prefix_depth: usize) -> Self {
        MetricsLayer {
            registry: Arc::new(Registry {
                data: Mutex::new(MetricsSnapshot {
                    store: name.clone(),
                    ..Default::default()
                }),
                name,
                prefix_depth,
            }),
        }
    }

    /// Rename the store (starts fresh figures).
    pub fn with_name(self, name: impl Into<String>) -> Self {
        MetricsLayer::build(name.into(), self.registry.prefix_depth)
    }

    /// How many leading key segments form the prefix errors are grouped by (0 = none).
    pub fn with_prefix_depth(self, depth: usize) -> Self {
        MetricsLayer::build(self.registry.name.clone(), depth)
    }

    /// The figures so far, over every store made from this layer.
    pub fn stats(&self) -> MetricsSnapshot {
        self.registry.data.lock().expect("metrics").clone()
    }

    /// Record an error seen outside a store call (seed 001's
    /// `globalErrorMetrics.recordError(type, key)`), e.g. from [`crate::recovery`].
    pub fn record_error(&self, op: &str, key: &str, kind: ErrorKind) {
        self.registry
            .record(op, key, Err(kind), 0, 0, Duration::ZERO);
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> MetricsStore<T> {
        MetricsStore {
            guarded: Guarded::new(inner, Arc::clone(&self.registry)),
        }
    }
}

crate::util::layer_wraps!(MetricsLayer);

/// A store with metrics; made by [`MetricsLayer`].
pub struct MetricsStore<T: StrataStore> {
    guarded: Guarded<Arc<Registry>, T>,
}

crate::guard::guarded_store!(MetricsStore);

/// One call being measured; records when finished (or when dropped unfinished).
struct Measure {
    registry: Arc<Registry>,
    op: &'static str,
    key: String,
    start: Instant,
    span: tracing::Span,
    entries: u64,
    done: bool,
}

impl Measure {
    fn start(registry: &Arc<Registry>, op: &'static str, key: &str) -> Measure {
        let span = tracing::info_span!(
            "storage_op",
            store = %registry.name,
            op,
            key,
            bytes = tracing::field::Empty,
            outcome = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        Measure {
            registry: Arc::clone(registry),
            op,
            key: key.to_string(),
            start: Instant::now(),
            span,
            entries: 0,
            done: false,
        }
    }

    fn finish(&mut self, outcome: Result<(), ErrorKind>, bytes: u64) {
        if self.done {
            return;
        }
        self.done = true;
        let latency = self.start.elapsed();
        let label = match outcome {
            Ok(()) => "ok",
            Err(k) => k.as_str(),
        };
        self.span.record("bytes", bytes);
        self.span.record("outcome", label);
        self.span
            .record("latency_ms", latency.as_secs_f64() * 1000.0);
        let _e = self.span.enter();
        match outcome {
            Err(kind)
                if !matches!(
                    kind,
                    ErrorKind::NotFound | ErrorKind::NotModified | ErrorKind::Conflict
                ) =>
            {
                tracing::warn!(outcome = label, ?latency, bytes, "storage call failed")
            }
            _ => tracing::debug!(outcome = label, ?latency, bytes, "storage call finished"),
        }
        self.registry
            .record(self.op, &self.key, outcome, bytes, self.entries, latency);
    }

    fn finish_result<R>(&mut self, res: &OsResult<R>, bytes: impl FnOnce(&R) -> u64) {
        match res {
            Ok(v) => self.finish(Ok(()), bytes(v)),
            Err(e) => self.finish(Err(classify(e).kind), 0),
        }
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        // A stream dropped before its end still was a call.
        self.finish(Ok(()), 0);
    }
}

fn measured_stream<I: Send + 'static>(mut m: Measure, s: ItemStream<I>) -> ItemStream<I> {
    futures::stream::unfold(Some((s, m.take())), |state| async move {
        let (mut s, mut m) = state?;
        match s.next().await {
            Some(Ok(item)) => {
                m.entries += 1;
                Some((Ok(item), Some((s, m))))
            }
            Some(Err(e)) => {
                m.finish(Err(classify(&e).kind), 0);
                Some((Err(e), None))
            }
            None => {
                m.finish(Ok(()), 0);
                None
            }
        }
    })
    .fuse()
    .boxed()
}

impl Measure {
    /// Move out, leaving a finished husk behind (so its drop records nothing).
    fn take(&mut self) -> Measure {
        let m = Measure {
            registry: Arc::clone(&self.registry),
            op: self.op,
            key: std::mem::take(&mut self.key),
            start: self.start,
            span: self.span.clone(),
            entries: 0,
            done: false,
        };
        self.done = true;
        m
    }
}

/// Every call is one measurement (a multipart upload's lasts until it completes, with the
/// bytes of its parts); a listing is measured until it ends, and a delete stream once per
/// key. Presigning is measured too.
impl Guard for Arc<Registry> {
    const NAME: &'static str = "Metrics";

    async fn call<R: Answer>(&self, call: Call<'_>, fut: impl CallFuture<R>) -> OsResult<R> {
        let mut m = Measure::start(self, call.op.name(), call.key);
        let res = fut.instrument(m.span.clone()).await;
        if let Ok(r) = &res {
            m.entries = r.entries();
        }
        m.finish_result(&res, |r| match call.op {
            Op::Head => 0,
            _ => call.sent + r.bytes(),
        });
        res
    }

    fn listing<I: Item>(&self, call: Call<'_>, make: impl MakeStream<I>) -> ItemStream<I> {
        measured_stream(Measure::start(self, call.op.name(), call.key), make())
    }

    async fn put_multipart(
        &self,
        call: Call<'_>,
        fut: impl CallFuture<Box<dyn MultipartUpload>>,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        let mut m = Measure::start(self, call.op.name(), call.key);
        match fut.instrument(m.span.clone()).await {
            Ok(upload) => Ok(Box::new(MetricsUpload {
                upload,
                measure: m,
                bytes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            })),
            Err(e) => {
                m.finish(Err(classify(&e).kind), 0);
                Err(e)
            }
        }
    }

    fn guards_presign(&self) -> bool {
        true
    }

    fn deletes<S: ObjectStore>(&self, inner: &Arc<S>, paths: ItemStream<Path>) -> ItemStream<Path> {
        // One measured call per deleted key, so errors are attributed to their key prefix.
        let registry = Arc::clone(self);
        let starts = Arc::new(Mutex::new(std::collections::VecDeque::<Instant>::new()));
        let starts_in = Arc::clone(&starts);
        let input = paths
            .inspect(move |_| starts_in.lock().expect("metrics").push_back(Instant::now()))
            .boxed();
        inner
            .delete_stream(input)
            .map(move |res| {
                let start = starts.lock().expect("metrics").pop_front();
                let key = res.as_ref().map(|p| p.to_string()).unwrap_or_default();
                let mut m = Measure::start(&registry, Op::Delete.name(), &key);
                if let Some(s) = start {
                    m.start = s;
                }
                m.finish_result(&res, |_| 0);
                res
            })
            .boxed()
    }
}

struct MetricsUpload {
    upload: Box<dyn MultipartUpload>,
    measure: Measure,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for MetricsUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MetricsUpload({:?})", self.upload)
    }
}

#[async_trait]
impl MultipartUpload for MetricsUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let bytes = Arc::clone(&self.bytes);
        let part = self.upload.put_part(data);
        async move {
            let r = part.await;
            if r.is_ok() {
                bytes.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            }
            r
        }
        .boxed()
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        let res = self.upload.complete().await;
        let bytes = self.bytes.load(std::sync::atomic::Ordering::Relaxed);
        self.measure.finish_result(&res, |_| bytes);
        res
    }

    async fn abort(&mut self) -> OsResult<()> {
        let res = self.upload.abort().await;
        self.measure.finish(Err(ErrorKind::Other), 0);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::ChaosLayer;
    use crate::util::test_support::read;
    use object_store::ObjectStoreExt;
    use storage_core::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn counts_calls_bytes_errors_and_latency() {
        let metrics = MetricsLayer::new("mem").with_prefix_depth(2);
        let slow = ChaosLayer::default()
            .with_latency(Duration::from_millis(40), Duration::from_millis(40));
        let store = metrics.wrap(slow.wrap(MemoryStore::new()));
        store
            .put(&Path::from("a/b/c"), vec![0u8; 100].into())
            .await
            .unwrap();
        assert_eq!(read(&store, "a/b/c").await.len(), 100);
        assert!(store.get(&Path::from("a/x/y")).await.is_err());
        store.delete(&Path::from("a/b/c")).await.unwrap();
        let listed: Vec<_> = store.list(None).collect().await;
        assert!(listed.is_empty());
        let s = metrics.stats();
        assert_eq!(s.store, "mem");
        assert_eq!(s.ops["put"].bytes, 100);
        assert_eq!(s.ops["get"].calls, 2);
        assert_eq!(s.ops["get"].errors, 1);
        assert_eq!(s.ops["get"].bytes, 100);
        assert_eq!(s.ops["delete"].calls, 1);
        assert_eq!(s.ops["list"].calls, 1);
        assert_eq!(s.errors_by_prefix[&("not_found".into(), "a/x".into())], 1);
        let h = &s.ops["put"].latency;
        assert_eq!(h.mean(), Duration::from_millis(40));
        assert_eq!(
            h.quantile_upper_bound(0.99),
            Some(Duration::from_millis(50))
        );
        assert_eq!(s.total_calls(), 5);
        assert_eq!(s.total_errors(), 1);
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        for ms in [1, 1, 1, 1, 1, 1, 1, 1, 1, 3000] {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.quantile_upper_bound(0.5), Some(Duration::from_millis(1)));
        assert_eq!(
            h.quantile_upper_bound(1.0),
            Some(Duration::from_millis(5000))
        );
    }
}
