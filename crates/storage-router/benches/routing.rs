//! Read policies and merged listings over buckets with injected latency, in one run.
//!
//! Four in-memory buckets answer every request after 20 ms (a listing: 20 ms per page of
//! 1000 keys, like S3's ListObjectsV2). The object lives only in the 4th bucket. Printed:
//! median time of a direct read of that bucket, and of sequential, parallel and hedged
//! reads over the set, with their ratios to the direct read (targets: parallel and hedged
//! ≤ 1.2×; sequential is the seed's 4×). A hedged read reaches the 4th bucket only after
//! three hedge delays, so it meets the target only with a delay of at most latency / 15;
//! hedging pays off when the *first* bucket is slow, not when the object is in the last —
//! shown next with a 200 ms primary and the object also in the 2nd bucket. Then a merged listing of 4 × 10,000 keys against
//! the slowest single listing (target ≤ 1.3×).
//!
//! Run with `cargo bench -p storage-router --bench routing` (or `cargo xtask bench`).
//! Absolute times on a shared machine are noise; the ratios measured side by side count.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use storage_core::{Bucket, Capabilities, MemoryStore};
use storage_router::{HealthTracker, ReadPolicy, SourceSet, merged_list};

const LATENCY: Duration = Duration::from_millis(20);
const PAGE: usize = 1000;
const ROUNDS: usize = 15;

/// A memory store that answers after a fixed latency (listings: per page).
#[derive(Debug)]
struct Slow(MemoryStore, Duration);

impl fmt::Display for Slow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slow({:?})", self.1)
    }
}

#[async_trait]
impl ObjectStore for Slow {
    async fn put_opts(
        &self,
        l: &Path,
        p: PutPayload,
        o: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.0.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        tokio::time::sleep(self.1).await;
        self.0.get_opts(l, o).await
    }
    async fn get_ranges(&self, l: &Path, r: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        tokio::time::sleep(self.1).await;
        self.0.get_ranges(l, r).await
    }
    fn delete_stream(
        &self,
        l: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(l)
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let inner = self.0.list(p);
        let latency = self.1;
        inner
            .chunks(PAGE)
            .then(move |page| async move {
                tokio::time::sleep(latency).await;
                stream::iter(page)
            })
            .flatten()
            .boxed()
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
        tokio::time::sleep(self.1).await;
        self.0.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(f, t, o).await
    }
}

fn slow_bucket(name: &str) -> Bucket {
    slow_bucket_with(name, LATENCY)
}

fn slow_bucket_with(name: &str, latency: Duration) -> Bucket {
    Bucket::builder(name, Arc::new(Slow(MemoryStore::new(), latency)))
        .provider("memory")
        .capabilities(Capabilities::MEMORY)
        .build()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time<F: std::future::Future<Output = ()>>(f: F) -> Duration {
    let start = Instant::now();
    f.await;
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let buckets: Vec<Bucket> = (0..4).map(|i| slow_bucket(&format!("b{i}"))).collect();
    let key = "users/u1/tides/t1.json";
    buckets[3].put(key, vec![7u8; 4096]).await.unwrap();
    let set = |p| SourceSet::new("bench", buckets.clone(), p).unwrap();
    let policies = [
        ("sequential", ReadPolicy::Sequential),
        ("parallel", ReadPolicy::Parallel),
        (
            "hedged 1ms",
            ReadPolicy::Hedged(storage_router::Hedging::fixed(Duration::from_millis(1))),
        ),
        (
            "hedged 2ms",
            ReadPolicy::Hedged(storage_router::Hedging::fixed(Duration::from_millis(2))),
        ),
        (
            "hedged 10ms",
            ReadPolicy::Hedged(storage_router::Hedging::fixed(Duration::from_millis(10))),
        ),
    ];
    let mut direct = Vec::new();
    let mut by_policy: Vec<Vec<Duration>> = vec![Vec::new(); policies.len()];
    for round in 0..ROUNDS {
        // Rotate which one goes first so no variant always runs on a warm or cold machine.
        for step in 0..=policies.len() {
            let which = (step + round) % (policies.len() + 1);
            if which == policies.len() {
                direct.push(time(async { buckets[3].get(key).await.map(|_| ()).unwrap() }).await);
            } else {
                let s = set(policies[which].1);
                by_policy[which].push(time(async { s.get(key).await.map(|_| ()).unwrap() }).await);
            }
        }
    }
    let direct = median(direct);
    println!(
        "storage-router read policies: 4 buckets, {LATENCY:?} each, object only in the 4th, median of {ROUNDS}"
    );
    println!("  {:<12} {:>9.1?}  1.00x", "direct", direct);
    for ((name, _), times) in policies.iter().zip(by_policy) {
        let m = median(times);
        println!(
            "  {:<12} {:>9.1?}  {:.2}x",
            name,
            m,
            m.as_secs_f64() / direct.as_secs_f64()
        );
    }

    // Where hedging pays: the primary is slow (200 ms) and the object is also in the 2nd.
    let tail: Vec<Bucket> = [200, 20, 20, 20]
        .iter()
        .enumerate()
        .map(|(i, ms)| slow_bucket_with(&format!("t{i}"), Duration::from_millis(*ms)))
        .collect();
    tail[0].put(key, "primary").await.unwrap();
    tail[1].put(key, "copy").await.unwrap();
    let tail_policies = [
        ("sequential", ReadPolicy::Sequential),
        ("parallel", ReadPolicy::Parallel),
        (
            "hedged 20ms",
            ReadPolicy::Hedged(storage_router::Hedging::fixed(Duration::from_millis(20))),
        ),
    ];
    println!(
        "storage-router slow primary: 200 ms primary, 20 ms fallbacks, object in primary and 2nd, median of 5"
    );
    for (name, policy) in tail_policies {
        let s = SourceSet::new("tail", tail.clone(), policy).unwrap();
        let mut v = Vec::new();
        let mut from = String::new();
        for _ in 0..5 {
            let start = Instant::now();
            from = s.get(key).await.unwrap().bucket;
            v.push(start.elapsed());
        }
        println!("  {:<12} {:>9.1?}  answered by {from}", name, median(v));
    }

    // Merged listing: 4 buckets × 10,000 keys (half shared with the next bucket).
    let list_buckets: Vec<Bucket> = (0..4).map(|i| slow_bucket(&format!("l{i}"))).collect();
    for (i, b) in list_buckets.iter().enumerate() {
        let store = b.store().clone();
        stream::iter(0..10_000usize)
            .map(|k| {
                let store = store.clone();
                let n = i * 5_000 + k;
                async move {
                    store
                        .put_opts(
                            &Path::from(format!("k/{n:08}")),
                            PutPayload::from_static(b"x"),
                            PutOptions::default(),
                        )
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
    }
    let health = HealthTracker::default();
    let (mut merged, mut slowest) = (Vec::new(), Vec::new());
    let mut entries = 0;
    for round in 0..7 {
        let run_merged = || async {
            let start = Instant::now();
            let l = merged_list(&list_buckets, "k", &health).await;
            assert!(!l.is_partial());
            (start.elapsed(), l.entries.len())
        };
        let run_single = || async {
            let mut worst = Duration::ZERO;
            for b in &list_buckets {
                let d = time(async {
                    let v: Vec<_> = b.list("k").try_collect().await.unwrap();
                    assert_eq!(v.len(), 10_000);
                })
                .await;
                worst = worst.max(d);
            }
            worst
        };
        if round % 2 == 0 {
            let (d, n) = run_merged().await;
            merged.push(d);
            entries = n;
            slowest.push(run_single().await);
        } else {
            slowest.push(run_single().await);
            let (d, n) = run_merged().await;
            merged.push(d);
            entries = n;
        }
    }
    let (m, s) = (median(merged), median(slowest));
    println!(
        "storage-router merged listing: 4 × 10,000 keys → {entries} unique, {PAGE} per page, {LATENCY:?} per page, median of 7"
    );
    println!("  {:<22} {:>9.1?}  1.00x", "slowest single listing", s);
    println!(
        "  {:<22} {:>9.1?}  {:.2}x",
        "merged (4 concurrent)",
        m,
        m.as_secs_f64() / s.as_secs_f64()
    );
}
