//! Strata `Bucket` vs raw `object_store` on the same backends, in one run.
//!
//! For each backend (memory, local folder, and the moto S3 server when `cargo xtask bench`
//! started it) and each payload (4 KiB, 1 MiB), batches of puts and gets run through the raw
//! store and through `Bucket`, interleaved (raw first on even rounds, Strata first on odd),
//! for several rounds, one at a time and (memory, local folder) 16 at a time; then both
//! list 10,000 keys, in one listing and in 16 listings at once of a sixteenth each. Both
//! sides write into the same store root, and swap their two key folders every round: on a
//! disk, how fast a folder takes new files depends on where the filesystem placed it (two
//! raw `LocalFileSystem`s in sibling folders measured 0.78x of each other), which would
//! otherwise be charged to one side. On the local folder each put pass first removes its
//! keys, untimed, so every timed put writes a new file and neither side pays to free the
//! other's old files.
//!
//! The local folder has two target rows: `local` (neither side fsyncs: Strata with
//! `durability = "none"` against `LocalFileSystem`) and `local fsync` (durable puts on both
//! sides: Strata's default against `LocalFileSystem::with_fsync(true)`), and a reference
//! row, `local fsync/none`, of Strata durable against Strata without fsync: what durability
//! itself costs. Printed: median rate of each side, the median of the rounds' Strata / raw
//! ratios (target >= 0.95) with their 25th-75th percentiles, and the number of rounds. A
//! reference row, `memory/InMemory`, puts `Bucket` over the very `InMemory` store it is
//! compared with: the handle's own cost, apart from Strata's memory store. Then a 1 GiB
//! object is streamed up and down through `Bucket` in a child process, which reports its
//! peak RSS (target <= 64 MiB). `STRATA_BENCH_ONLY=local` runs only the rows whose backend
//! starts with `local`. `STRATA_BENCH_QUICK=1` (`cargo xtask bench --quick`) runs a fifth of
//! the rounds and lists 2,000 keys: a smoke run, noisier.
//!
//! Each row is also printed as a `BENCH {json}` line (`strata_testkit::bench`) for
//! `cargo xtask bench --report`.
//!
//! Absolute times on a shared 2-core machine are noise; the side-by-side ratios are the
//! figures that count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use storage_core::{Bucket, Durability, LocalStore, PutOpts};
use strata_testkit::bench::{Better, Ratio, Value, scaled};

struct Target {
    name: &'static str,
    /// What the raw side is (the 1.0 of the row).
    baseline: &'static str,
    raw: Arc<dyn ObjectStore>,
    bucket: Bucket,
    /// Rounds, each running both sides back to back.
    rounds: usize,
    /// Counted against the 0.95 target; reference rows are not.
    target: bool,
    ops_small: usize,
    ops_large: usize,
    /// Remove each put pass's keys first (untimed): where freeing an object the other side
    /// wrote costs more than freeing one's own (files with and without an extended
    /// attribute). Elsewhere puts overwrite: the two memory stores are separate, and on S3
    /// an overwrite costs the same whoever wrote the object.
    fresh_puts: bool,
    /// Also measure gets (not where only the cost of durable puts is compared).
    gets: bool,
    /// Also run every put and get pass 16 at a time.
    concurrent: bool,
    /// Keys to list (0: no list rows): one listing of all, then 16 listings at once of a
    /// sixteenth each.
    list_keys: usize,
    /// Strata's side calls the bucket's store itself, not the `Bucket` handle (reference
    /// rows that tell the store's cost from the handle's).
    direct: bool,
}

/// Operations in flight at once in the concurrent rows.
const WIDTH: usize = 16;

/// Run `f(0..n)`, `width` at a time; returns the rate in units per second (`units` per
/// call: bytes for puts and gets).
async fn timed<F, Fut>(n: usize, units: f64, width: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    if width == 1 {
        for i in 0..n {
            f(i).await;
        }
    } else {
        futures::stream::iter(0..n)
            .map(&f)
            .buffer_unordered(width)
            .collect::<()>()
            .await;
    }
    n as f64 * units / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The 25th and 75th percentiles.
fn quartiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 4], v[(v.len() * 3) / 4])
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Raw,
    Strata,
}

/// The store a side calls, or `None` for Strata through its `Bucket`.
fn direct(t: &Target, side: Side) -> Option<&dyn ObjectStore> {
    match side {
        Side::Raw => Some(t.raw.as_ref()),
        Side::Strata => t
            .direct
            .then(|| t.bucket.store().as_ref() as &dyn ObjectStore),
    }
}

async fn put_one(t: &Target, side: Side, key: String, body: Bytes) {
    match direct(t, side) {
        Some(store) => {
            store
                .put(&Path::from(key), PutPayload::from(body))
                .await
                .unwrap();
        }
        None => {
            t.bucket
                .put_with(key, body, PutOpts::default())
                .await
                .unwrap();
        }
    }
}

async fn get_one(t: &Target, side: Side, key: String) -> usize {
    match direct(t, side) {
        Some(store) => {
            let got = store.get(&Path::from(key)).await.unwrap();
            got.bytes().await.unwrap().len()
        }
        None => t.bucket.get(key).await.unwrap().bytes.len(),
    }
}

async fn list_count(t: &Target, side: Side, prefix: String) -> usize {
    match direct(t, side) {
        Some(store) => {
            let listed = store.list(Some(&Path::from(prefix)));
            listed.map(|r| r.unwrap()).count().await
        }
        None => t.bucket.list(&prefix).map(|r| r.unwrap()).count().await,
    }
}

/// Which side goes first in `round`, and the folder each side uses (swapped every round).
fn sides(round: usize) -> [(Side, usize); 2] {
    let raw = (Side::Raw, round % 2);
    let strata = (Side::Strata, (round + 1) % 2);
    if round.is_multiple_of(2) {
        [raw, strata]
    } else {
        [strata, raw]
    }
}

/// Per-round rates of each side, and the rows they make.
#[derive(Default)]
struct Samples {
    raw: Vec<f64>,
    strata: Vec<f64>,
}

impl Samples {
    fn push(&mut self, side: Side, rate: f64) {
        match side {
            Side::Raw => self.raw.push(rate),
            Side::Strata => self.strata.push(rate),
        }
    }
}

async fn compare(t: &Target, size: usize, ops: usize) -> Vec<Compared> {
    let payload = Bytes::from(vec![0x5a; size]);
    let mib = size as f64 / (1024.0 * 1024.0);
    let widths: &[usize] = if t.concurrent { &[1, WIDTH] } else { &[1] };
    let mut samples: Vec<(String, Samples)> = Vec::new();
    for &w in widths {
        let suffix = if w == 1 {
            String::new()
        } else {
            format!(" x{w}")
        };
        samples.push((format!("put{suffix}"), Samples::default()));
        if t.gets {
            samples.push((format!("get{suffix}"), Samples::default()));
        }
    }
    for round in 0..t.rounds {
        for (side, folder) in sides(round) {
            let mut row = samples.iter_mut();
            for &w in widths {
                if t.fresh_puts {
                    remove_keys(t, side, folder, size, ops).await;
                }
                let key = |i: usize| format!("bench/f{folder}/{size}/{i}");
                let put = timed(ops, mib, w, |i| put_one(t, side, key(i), payload.clone())).await;
                row.next().unwrap().1.push(side, put);
                if t.gets {
                    let get = timed(ops, mib, w, |i| async move {
                        assert_eq!(get_one(t, side, key(i)).await, size);
                    })
                    .await;
                    row.next().unwrap().1.push(side, get);
                }
            }
        }
    }
    let label = if size < 1 << 20 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{} MiB", size >> 20)
    };
    samples
        .into_iter()
        .map(|(op, s)| Compared::new(op, label.clone(), s))
        .collect()
}

/// Listing rows: `t.list_keys` keys in each of two folders, written untimed through each
/// side (so where both sides share one store, as on the local folder, each side lists files
/// it wrote half the rounds and the other's the other half; where they do not, as in
/// memory, each side writes both folders into its own store).
async fn compare_lists(t: &Target) -> Vec<Compared> {
    let n = t.list_keys;
    let write = |side: Side, folder: usize| {
        futures::stream::iter(0..n)
            .map(move |i| {
                let key = format!("list/f{folder}/p{}/k{i}", i % WIDTH);
                put_one(t, side, key, Bytes::from_static(b"listed"))
            })
            .buffer_unordered(WIDTH)
            .collect::<()>()
    };
    write(Side::Raw, 0).await;
    write(Side::Strata, 1).await;
    if list_count(t, Side::Raw, "list/f1".into()).await == 0 {
        write(Side::Raw, 1).await;
        write(Side::Strata, 0).await;
    }
    let (mut whole, mut parts) = (Samples::default(), Samples::default());
    for round in 0..t.rounds {
        for (side, folder) in sides(round) {
            let rate = timed(1, n as f64 / 1000.0, 1, |_| async move {
                assert_eq!(list_count(t, side, format!("list/f{folder}")).await, n);
            })
            .await;
            whole.push(side, rate);
            let rate = timed(WIDTH, (n / WIDTH) as f64 / 1000.0, WIDTH, |p| async move {
                assert_eq!(
                    list_count(t, side, format!("list/f{folder}/p{p}")).await,
                    n / WIDTH
                );
            })
            .await;
            parts.push(side, rate);
        }
    }
    let label = format!("{}k keys", n / 1000);
    vec![
        Compared::new("list".into(), label.clone(), whole),
        Compared::new(format!("list x{WIDTH}"), label, parts),
    ]
}

/// Remove one side's `ops` keys of `folder` (missing keys, as in the first rounds, are fine).
async fn remove_keys(t: &Target, side: Side, folder: usize, size: usize, ops: usize) {
    let keys: Vec<String> = (0..ops)
        .map(|i| format!("bench/f{folder}/{size}/{i}"))
        .collect();
    if side == Side::Raw {
        let paths: Vec<_> = keys.iter().map(|k| Ok(Path::from(k.as_str()))).collect();
        let _: Vec<_> = t
            .raw
            .delete_stream(futures::stream::iter(paths).boxed())
            .collect()
            .await;
    } else {
        t.bucket.delete_many(&keys).await;
    }
}

/// One operation measured both ways over all rounds.
struct Compared {
    op: String,
    size: String,
    raw: f64,
    strata: f64,
    /// Median of each round's own Strata/raw ratio: the two sides of a round ran back to
    /// back, so a slow stretch of the machine slows both and drops out of the ratio.
    ratio: f64,
    /// 25th and 75th percentiles of the rounds' ratios.
    spread: (f64, f64),
    rounds: usize,
}

impl Compared {
    fn new(op: String, size: String, s: Samples) -> Self {
        let ratios: Vec<f64> = s.raw.iter().zip(&s.strata).map(|(r, s)| s / r).collect();
        Compared {
            op,
            size,
            rounds: ratios.len(),
            raw: median(s.raw),
            strata: median(s.strata),
            ratio: median(ratios.clone()),
            spread: quartiles(ratios),
        }
    }
}

/// A local-folder store of `durability` on `root`, as a bucket.
fn local(root: &std::path::Path, durability: Durability) -> Bucket {
    LocalStore::new(root)
        .unwrap()
        .with_durability(durability)
        .into_bucket("bench")
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Child mode: stream 1 GiB up and down through a Bucket, print peak RSS.
async fn stream_gib(target: &str) {
    const CHUNK: usize = 1 << 20;
    const TOTAL: usize = 1 << 30;
    let dir = tempfile::tempdir().unwrap();
    let bucket = match target {
        "local" => Bucket::local("bench", dir.path()).unwrap(),
        _ => strata_testkit::s3_bucket("bench-gib").expect("S3 server"),
    };
    let before = peak_rss_mib();
    let chunk = Bytes::from(vec![0xa5; CHUNK]);
    let body = futures::stream::iter(0..TOTAL / CHUNK).map(move |_| Ok(chunk.clone()));
    let start = Instant::now();
    let w = bucket
        .put_stream("gib.bin", body, PutOpts::default())
        .await
        .unwrap();
    let up = start.elapsed();
    assert_eq!(w.size as usize, TOTAL);
    let start = Instant::now();
    let mut s = bucket.get_stream("gib.bin").await.unwrap().stream;
    let mut got = 0usize;
    while let Some(c) = s.next().await {
        got += c.unwrap().len();
    }
    let down = start.elapsed();
    assert_eq!(got, TOTAL);
    let _ = bucket.delete("gib.bin").await;
    let peak = peak_rss_mib();
    let (up, down) = (1024.0 / up.as_secs_f64(), 1024.0 / down.as_secs_f64());
    println!(
        "STREAM {target} up {up:.0} MiB/s down {down:.0} MiB/s peak_rss_before {before:.1} MiB peak_rss {peak:.1} MiB"
    );
    Value::new(
        "bucket_vs_raw",
        "1 GiB streamed",
        &format!("{target}: peak RSS"),
        peak,
        "MiB",
        Better::Lower,
    )
    .goal(64.0)
    .note(format!(
        "up {up:.0} MiB/s, down {down:.0} MiB/s; {before:.1} MiB before"
    ))
    .print();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(pos) = args.iter().position(|a| a == "--stream-gib") {
        rt.block_on(stream_gib(&args[pos + 1]));
        return;
    }
    // `cargo bench` passes `--bench`; filters are not supported.
    let dir = tempfile::tempdir().unwrap();
    // One root for both sides of a row (see the module docs); one root per row.
    let root = |row: &str| dir.path().join(row);
    let raw_local = |row: &str, fsync: bool| -> Arc<dyn ObjectStore> {
        Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(root(row))
                .unwrap()
                .with_fsync(fsync),
        )
    };
    let _ = std::fs::create_dir_all(root("local"));
    let _ = std::fs::create_dir_all(root("local-fsync"));
    let _ = std::fs::create_dir_all(root("local-direct"));
    let mut targets = vec![
        Target {
            name: "memory",
            baseline: "object_store InMemory",
            raw: Arc::new(object_store::memory::InMemory::new()),
            bucket: Bucket::memory("bench"),
            // A memory operation takes about half a microsecond and this machine's speed
            // drifts by ±30% from one 10 ms to the next: many short rounds, each a
            // back-to-back pair, give a median ratio that holds still between runs.
            rounds: scaled(41, 8),
            target: true,
            ops_small: 5_000,
            ops_large: 5_000,
            fresh_puts: false,
            gets: true,
            concurrent: true,
            list_keys: scaled(10_000, 2_000),
            direct: false,
        },
        Target {
            // Not a target row: `Bucket` over the very store it is compared with, which
            // shows what the handle itself costs apart from Strata's own memory store.
            name: "memory/InMemory",
            baseline: "object_store InMemory (the same store type under Bucket)",
            raw: Arc::new(object_store::memory::InMemory::new()),
            bucket: Bucket::builder(
                "bench",
                Arc::new(object_store::memory::InMemory::new()) as Arc<dyn ObjectStore>,
            )
            .build(),
            rounds: scaled(41, 8),
            target: false,
            ops_small: 5_000,
            ops_large: 5_000,
            fresh_puts: false,
            gets: true,
            concurrent: false,
            list_keys: 0,
            direct: false,
        },
        Target {
            // Neither side syncs: what Strata's local folder adds to LocalFileSystem.
            name: "local",
            baseline: "object_store LocalFileSystem",
            raw: raw_local("local", false),
            bucket: local(&root("local"), Durability::None),
            // A 4 KiB put takes about 250 us on this disk, whose journal stalls now and
            // then: short back-to-back pairs keep a stall inside one round's ratio.
            rounds: scaled(61, 12),
            target: true,
            ops_small: 60,
            ops_large: 20,
            fresh_puts: true,
            gets: true,
            concurrent: true,
            list_keys: scaled(10_000, 2_000),
            direct: false,
        },
        Target {
            // Not a target row: `LocalStore` itself, without the `Bucket` handle, against
            // LocalFileSystem (neither syncs): what the store costs apart from the handle.
            name: "local/LocalStore",
            baseline: "object_store LocalFileSystem (LocalStore without Bucket)",
            raw: raw_local("local-direct", false),
            bucket: local(&root("local-direct"), Durability::None),
            rounds: scaled(31, 6),
            target: false,
            ops_small: 60,
            ops_large: 20,
            fresh_puts: true,
            gets: true,
            concurrent: false,
            list_keys: 0,
            direct: true,
        },
        Target {
            // Both sides fsync file and folder (LocalFileSystem::with_fsync): durable puts.
            name: "local fsync",
            baseline: "LocalFileSystem::with_fsync(true)",
            raw: raw_local("local-fsync", true),
            bucket: local(&root("local-fsync"), Durability::Fsync),
            rounds: scaled(21, 4),
            target: true,
            ops_small: 40,
            ops_large: 10,
            fresh_puts: true,
            gets: false,
            concurrent: true,
            list_keys: 0,
            direct: false,
        },
        Target {
            // Not a target row: Strata durable ("raw" column: Strata without fsync) — the
            // cost of durability itself.
            name: "local fsync/none",
            baseline: "Strata local, durability none",
            raw: Arc::new(
                LocalStore::new(root("local-cost"))
                    .unwrap()
                    .with_durability(Durability::None),
            ),
            bucket: local(&root("local-cost"), Durability::Fsync),
            rounds: scaled(21, 4),
            target: false,
            ops_small: 40,
            ops_large: 10,
            fresh_puts: true,
            gets: false,
            concurrent: false,
            list_keys: 0,
            direct: false,
        },
    ];
    let have_s3 = std::env::var("STRATA_TEST_S3_ENDPOINT").is_ok();
    if have_s3 {
        let server = strata_testkit::moto_env().unwrap();
        let cfg = strata_testkit::s3_config(&server);
        let raw: Arc<dyn ObjectStore> = Arc::new(cfg.builder().unwrap().build().unwrap());
        targets.push(Target {
            name: "s3 (moto)",
            baseline: "object_store AmazonS3",
            raw,
            bucket: cfg.build("bench").unwrap(),
            rounds: scaled(15, 3),
            target: true,
            ops_small: 50,
            ops_large: 5,
            fresh_puts: false,
            gets: true,
            concurrent: false,
            list_keys: 0,
            direct: false,
        });
    } else {
        println!("s3 (moto): skipped, STRATA_TEST_S3_ENDPOINT not set (run `cargo xtask bench`)");
    }
    let only: Option<String> = std::env::var("STRATA_BENCH_ONLY").ok();
    println!(
        "\nBucket vs raw object_store, interleaved rounds: median MiB/s (list: thousand keys/s), median of the rounds' ratios, their 25th-75th percentiles"
    );
    println!(
        "{:<18} {:<7} {:>9} {:>10} {:>10} {:>7} {:>13} {:>6}",
        "backend", "op", "size", "raw", "strata", "ratio", "p25-p75", "rounds"
    );
    let mut worst: f64 = f64::MAX;
    for t in &mut targets {
        if only
            .as_ref()
            .is_some_and(|o| !t.name.starts_with(o.as_str()))
        {
            continue;
        }
        let mut rows = Vec::new();
        for (size, ops) in [(4096, t.ops_small), (1 << 20, t.ops_large)] {
            rows.extend(rt.block_on(compare(t, size, ops)));
        }
        if t.list_keys > 0 {
            rows.extend(rt.block_on(compare_lists(t)));
        }
        for c in rows {
            if t.target {
                worst = worst.min(c.ratio);
            }
            println!(
                "{:<18} {:<7} {:>9} {:>10.1} {:>10.1} {:>6.2}x {:>6.2}-{:<6.2} {:>6}",
                t.name, c.op, c.size, c.raw, c.strata, c.ratio, c.spread.0, c.spread.1, c.rounds
            );
            let unit = if c.op.starts_with("list") {
                "thousand keys/s"
            } else {
                "MiB/s"
            };
            Ratio::new(
                "bucket_vs_raw",
                t.name,
                &format!("{} {}", c.op, c.size),
                c.ratio,
                Better::Higher,
            )
            .baseline(t.baseline)
            .goal_if(t.target, 0.95)
            .spread(c.spread.0, c.spread.1)
            .rounds(c.rounds)
            .note(format!("{:.1} vs {:.1} {unit}", c.strata, c.raw))
            .print();
        }
    }
    println!(
        "worst ratio: {worst:.2}x (target >= 0.95x; reference rows not counted: memory/InMemory is Bucket over object_store's own InMemory, local/LocalStore is the store without the Bucket handle, local fsync/none is Strata durable over Strata without fsync)"
    );

    println!(
        "\n1 GiB streamed up and down through Bucket (child process, 8 MiB parts, 2 in flight)"
    );
    let mut modes = vec!["local"];
    if have_s3 {
        modes.push("s3");
    }
    for mode in modes {
        let out = std::process::Command::new(&args[0])
            .args(["--stream-gib", mode])
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        if !out.status.success() {
            println!(
                "STREAM {mode} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    println!("(target peak RSS <= 64 MiB)");
    let _ = Duration::ZERO;
}
