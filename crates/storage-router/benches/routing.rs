//! The router's read paths and merged listings, each against a baseline measured in the
//! same run. Printed (ratios are what count; absolute times on a shared machine are noise):
//!
//! 1. **Fallback reads**: 4 in-memory buckets answering after 10 ms, the object only in the
//!    4th: a direct read of that bucket against sequential, parallel and hedged reads over
//!    the set (target: hedged ≤ 1.2× direct). Adaptive hedging learns that the first three
//!    never have the key and asks them all at once; the old fixed 50 ms delay is shown too.
//! 2. **Tail latency**: two buckets hold the key; the primary answers in 10 ms but 5% of its
//!    requests take 200 ms longer. p50/p99/p99.9 of sequential against hedged reads (target:
//!    p99 and p99.9 at least 3× lower) and the extra requests hedging spent (budget 10%).
//! 3. **Engine overhead** (run first): 4 buckets without latency, a sequential read against
//!    a hand-written loop over them (target ≤ 1.1×).
//! 4. **Merged listing** of 4 × 10,000 keys against the slowest single listing (≤ 1.3×).
//!
//! Run with `cargo bench -p storage-router --bench routing` (or `cargo xtask bench`).
//! Each ratio is also a `BENCH {json}` line, and the tail latencies a CDF line
//! (`strata_testkit::bench`), for `cargo xtask bench --report`; `STRATA_BENCH_QUICK=1`
//! runs fewer rounds and reads.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, PutOptions, PutPayload};
use storage_core::{Bucket, Capabilities, Declared, MemoryStore, Object};
use storage_router::{HealthTracker, Hedging, ReadPolicy, SourceSet, merged_list};
use strata_testkit::bench::{Better, Cdf, Ratio, scaled};

const LATENCY: Duration = Duration::from_millis(10);
const PAGE: usize = 1000;
const KEY: &str = "users/u1/tides/t1.json";

/// A memory store that answers after a latency (listings: per page); `tail_per_mille` of
/// its reads take `tail` longer (a seeded xorshift decides which).
#[derive(Debug)]
struct Slow {
    inner: MemoryStore,
    latency: Duration,
    tail_per_mille: u64,
    tail: Duration,
    rng: AtomicU64,
}

impl fmt::Display for Slow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slow({:?})", self.latency)
    }
}

impl Slow {
    fn read_latency(&self) -> Duration {
        if self.tail_per_mille == 0 {
            return self.latency;
        }
        let mut x = 0;
        let _ = self
            .rng
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |mut s| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                x = s;
                Some(s)
            });
        if x % 1000 < self.tail_per_mille {
            self.latency + self.tail
        } else {
            self.latency
        }
    }
}

impl ObjectStore for Slow {
    storage_core::forward_object_store!(@methods inner:
        put_opts, put_multipart_opts, delete_stream, copy_opts);

    storage_core::store_fn!(get_opts, |this, l, o| {
        tokio::time::sleep(this.read_latency()).await;
        this.inner.get_opts(l, o).await
    });
    storage_core::store_fn!(get_ranges, |this, l, r| {
        tokio::time::sleep(this.read_latency()).await;
        this.inner.get_ranges(l, r).await
    });
    storage_core::store_fn!(list, |this, p| {
        let inner = this.inner.list(p);
        let latency = this.latency;
        inner
            .chunks(PAGE)
            .then(move |page| async move {
                tokio::time::sleep(latency).await;
                stream::iter(page)
            })
            .flatten()
            .boxed()
    });
    storage_core::store_fn!(list_with_delimiter, |this, p| {
        tokio::time::sleep(this.latency).await;
        this.inner.list_with_delimiter(p).await
    });
}

fn slow_bucket(name: &str) -> Bucket {
    tail_bucket(name, LATENCY, 0, Duration::ZERO)
}

fn tail_bucket(name: &str, latency: Duration, tail_per_mille: u64, tail: Duration) -> Bucket {
    let store = Slow {
        inner: MemoryStore::new(),
        latency,
        tail_per_mille,
        tail,
        rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64),
    };
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(store);
    Bucket::builder(name, Arc::new(Declared::new(store, Capabilities::MEMORY)))
        .provider("memory")
        .build()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// Median, smallest and largest of per-round ratios.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn verdict(ok: bool) -> &'static str {
    if ok { "meets target" } else { "MISSES target" }
}

async fn time<F: std::future::Future<Output = ()>>(f: F) -> Duration {
    let start = Instant::now();
    f.await;
    start.elapsed()
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn fallback_reads() {
    let rounds = scaled(15, 5);
    let buckets: Vec<Bucket> = (0..4).map(|i| slow_bucket(&format!("b{i}"))).collect();
    buckets[3].put(KEY, vec![7u8; 4096]).await.unwrap();
    let policies = [
        ("sequential", ReadPolicy::Sequential),
        ("parallel", ReadPolicy::Parallel),
        ("hedged", ReadPolicy::hedged()),
        (
            "hedged 50ms",
            ReadPolicy::Hedged(Hedging::fixed(Duration::from_millis(50))),
        ),
    ];
    // One set per policy for the whole run: adaptive hedging learns from earlier reads.
    let sets: Vec<SourceSet> = policies
        .iter()
        .map(|(_, p)| SourceSet::new("bench", buckets.clone(), *p).unwrap())
        .collect();
    for s in &sets {
        for _ in 0..20 {
            s.get(KEY).await.unwrap();
        }
    }
    let before: Vec<_> = sets.iter().map(SourceSet::read_stats).collect();
    let mut direct = Vec::new();
    let mut by_policy: Vec<Vec<Duration>> = vec![Vec::new(); policies.len()];
    for round in 0..rounds {
        // Rotate which one goes first so no variant always runs on a warm or cold machine.
        for step in 0..=policies.len() {
            let which = (step + round) % (policies.len() + 1);
            if which == policies.len() {
                direct.push(time(async { buckets[3].get(KEY).await.map(|_| ()).unwrap() }).await);
            } else {
                let s = &sets[which];
                by_policy[which].push(time(async { s.get(KEY).await.map(|_| ()).unwrap() }).await);
            }
        }
    }
    let direct = median(direct);
    println!(
        "storage-router fallback reads: 4 buckets, {LATENCY:?} each, object only in the 4th, median of {rounds} (after 20 warm-up reads)"
    );
    println!("  {:<12} {:>9.1?}  1.00x", "direct", direct);
    for (((name, _), times), (s, b)) in policies.iter().zip(by_policy).zip(sets.iter().zip(before))
    {
        let m = median(times);
        let st = s.read_stats();
        let extra = st.extra_requests - b.extra_requests;
        let r = ratio(m, direct);
        let target = if *name == "hedged" {
            format!("  (target <= 1.20x: {})", verdict(r <= 1.2))
        } else {
            String::new()
        };
        println!(
            "  {name:<12} {m:>9.1?}  {r:.2}x  extra requests {extra} over {} reads{target}",
            st.reads - b.reads
        );
        Ratio::new(
            "routing",
            "fallback reads (4 buckets x 10 ms, key in the 4th)",
            name,
            r,
            Better::Lower,
        )
        .baseline("a direct read of the 4th bucket")
        .rounds(rounds)
        .note(format!(
            "median {m:.1?}; {extra} extra requests over {} reads",
            st.reads - b.reads
        ))
        .goal_if(*name == "hedged", 1.2)
        .print();
    }
}

async fn tail_latency() {
    let reads = scaled(4000, 1000);
    const CONCURRENCY: usize = 50;
    let primary = tail_bucket("p", LATENCY, 50, Duration::from_millis(200));
    let copy = tail_bucket("c", LATENCY, 0, Duration::ZERO);
    primary.put(KEY, "primary").await.unwrap();
    copy.put(KEY, "copy").await.unwrap();
    println!(
        "storage-router tail latency: primary {LATENCY:?} with 5% of reads +200 ms, key also in a 2nd bucket ({LATENCY:?}), {reads} reads, {CONCURRENCY} at a time"
    );
    let mut rows = Vec::new();
    for (name, policy) in [
        ("sequential", ReadPolicy::Sequential),
        ("hedged", ReadPolicy::hedged()),
    ] {
        let set = SourceSet::new("tail", vec![primary.clone(), copy.clone()], policy).unwrap();
        let run = |n: usize| {
            let set = set.clone();
            async move {
                stream::iter(0..n)
                    .map(|_| {
                        let set = set.clone();
                        async move {
                            let start = Instant::now();
                            set.get(KEY).await.unwrap();
                            start.elapsed()
                        }
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect::<Vec<Duration>>()
                    .await
            }
        };
        run(400).await; // warm-up: the adaptive delay learns the primary's latency
        let before = set.read_stats();
        let mut v = run(reads).await;
        let st = set.read_stats();
        v.sort();
        let (p50, p99, p999) = (
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            percentile(&v, 0.999),
        );
        let extra = st.extra_requests - before.extra_requests;
        let seq = st.sequential_requests - before.sequential_requests;
        println!(
            "  {name:<12} p50 {p50:>8.1?}  p99 {p99:>8.1?}  p99.9 {p999:>8.1?}  requests {}  extra {extra} ({:.1}% of sequential)  hedges denied {}",
            st.requests - before.requests,
            100.0 * extra as f64 / seq.max(1) as f64,
            st.hedges_denied - before.hedges_denied
        );
        let ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Cdf::from_sorted("routing", "tail latency CDF", name, &ms).print();
        rows.push((p50, p99, p999, extra, seq));
    }
    let (r99, r999) = (ratio(rows[0].1, rows[1].1), ratio(rows[0].2, rows[1].2));
    println!(
        "  sequential / hedged: p99 {r99:.1}x, p99.9 {r999:.1}x (target >= 3x: {})",
        verdict(r99 >= 3.0 && r999 >= 3.0)
    );
    let group = "tail latency (5% of primary reads +200 ms), sequential / hedged";
    let baseline = "hedged reads (the ratio is how many times lower hedging makes it)";
    let (_, _, _, extra, seq) = rows[1];
    for (row, r, goal) in [
        ("p50", ratio(rows[0].0, rows[1].0), None),
        ("p99", r99, Some(3.0)),
        ("p99.9", r999, Some(3.0)),
    ] {
        let line = Ratio::new("routing", group, row, r, Better::Higher)
            .baseline(baseline)
            .rounds(reads)
            .note(format!(
                "hedging spent {extra} extra requests ({:.1}% of sequential's)",
                100.0 * extra as f64 / seq.max(1) as f64
            ));
        match goal {
            Some(g) => line.goal(g).print(),
            None => line.print(),
        }
    }
}

/// The loop a user would write without the router.
async fn hand_loop(buckets: &[Bucket], key: &str) -> Option<Object> {
    for b in buckets {
        match b.get(key).await {
            Ok(o) => return Some(o),
            Err(_) => continue,
        }
    }
    None
}

async fn engine_overhead() {
    const READS: usize = 1000;
    let overhead_rounds = scaled(31, 7);
    let buckets: Vec<Bucket> = (0..4).map(|i| Bucket::memory(format!("m{i}"))).collect();
    buckets[3].put(KEY, vec![7u8; 4096]).await.unwrap();
    let set = SourceSet::new("loop", buckets.clone(), ReadPolicy::Sequential).unwrap();
    let run_set = || async {
        time(async {
            for _ in 0..READS {
                set.get(KEY).await.unwrap();
            }
        })
        .await
    };
    let run_loop = || async {
        time(async {
            for _ in 0..READS {
                hand_loop(&buckets, KEY).await.unwrap();
            }
        })
        .await
    };
    run_set().await;
    run_loop().await;
    let mut ratios = Vec::new();
    let (mut engine_t, mut loop_t) = (Vec::new(), Vec::new());
    for _ in 0..overhead_rounds {
        // A B B A within each round, so a burst of load on the machine hits both sides.
        let l1 = run_loop().await;
        let e1 = run_set().await;
        let e2 = run_set().await;
        let l2 = run_loop().await;
        ratios.push(ratio(e1 + e2, l1 + l2));
        engine_t.push((e1 + e2) / 2);
        loop_t.push((l1 + l2) / 2);
    }
    let (m, lo, hi) = spread(ratios);
    let per = |d: Duration| d / READS as u32;
    let (engine_t, loop_t) = (per(median(engine_t)), per(median(loop_t)));
    println!(
        "storage-router engine overhead: 4 memory buckets, no latency, object in the 4th, {READS} reads per run, {overhead_rounds} rounds of loop/set/set/loop"
    );
    println!("  {:<22} {:>9.2?}/read  1.00x", "hand-written loop", loop_t);
    println!(
        "  {:<22} {:>9.2?}/read  {m:.2}x (median of per-round ratios; spread {lo:.2}-{hi:.2}; target <= 1.10x: {})",
        "sequential source set",
        engine_t,
        verdict(m <= 1.1)
    );
    Ratio::new(
        "routing",
        "engine overhead (4 memory buckets, no latency)",
        "sequential source set",
        m,
        Better::Lower,
    )
    .baseline("a hand-written loop over the same buckets")
    .goal(1.1)
    .spread(lo, hi)
    .rounds(overhead_rounds)
    .note(format!("{engine_t:.2?} vs {loop_t:.2?} per read"))
    .print();
}

async fn merged_listing() {
    // 4 buckets × 10,000 keys (half shared with the next bucket).
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
    let list_rounds = scaled(7, 3);
    for round in 0..list_rounds {
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
        "storage-router merged listing: 4 × 10,000 keys → {entries} unique, {PAGE} per page, {LATENCY:?} per page, median of {list_rounds}"
    );
    println!("  {:<22} {:>9.1?}  1.00x", "slowest single listing", s);
    println!(
        "  {:<22} {:>9.1?}  {:.2}x",
        "merged (4 concurrent)",
        m,
        m.as_secs_f64() / s.as_secs_f64()
    );
    Ratio::new(
        "routing",
        "merged listing (4 x 10,000 keys, 10 ms per page)",
        "merged (4 concurrent)",
        ratio(m, s),
        Better::Lower,
    )
    .baseline("the slowest single listing")
    .goal(1.3)
    .rounds(list_rounds)
    .note(format!("{m:.1?} vs {s:.1?}"))
    .print();
}

#[tokio::main]
async fn main() {
    // First, on a quiet heap: it measures nanoseconds.
    engine_overhead().await;
    fallback_reads().await;
    tail_latency().await;
    merged_listing().await;
}
