//! Strata `Bucket` vs raw `object_store` on the same backends, in one run.
//!
//! For each backend (memory, local folder, and the moto S3 server when `cargo xtask bench`
//! started it) and each payload (4 KiB, 1 MiB), batches of puts and gets run through the raw
//! store and through `Bucket`, interleaved (raw first on even rounds, Strata first on odd),
//! for several rounds. Both sides write into the same store root, and swap their two key
//! folders every round: on a disk, how fast a folder takes new files depends on where the
//! filesystem placed it (two raw `LocalFileSystem`s in sibling folders measured 0.78x of
//! each other), which would otherwise be charged to one side. On the local folder each put
//! pass first removes its keys, untimed, so every timed put writes a new file and neither
//! side pays to free the other's old files. Printed: median throughput of each and the median of the rounds'
//! Strata / raw ratios (target ≥ 0.95). A reference row, `memory/InMemory`, puts `Bucket`
//! over the very `InMemory` store it is compared with: the handle's own cost, apart from
//! Strata's memory store. Then a 1 GiB object is streamed up and down through `Bucket` in a
//! child process, which reports its peak RSS (target ≤ 64 MiB).
//!
//! Absolute times on a shared 2-core machine are noise; the side-by-side ratios are the
//! figures that count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use storage_core::{Bucket, PutOpts};

struct Target {
    name: &'static str,
    raw: Arc<dyn ObjectStore>,
    bucket: Bucket,
    /// Rounds, each running both sides back to back.
    rounds: usize,
    /// Counted against the 0.95 target; the reference row is not.
    target: bool,
    ops_small: usize,
    ops_large: usize,
    /// Remove each put pass's keys first (untimed): where freeing an object the other side
    /// wrote costs more than freeing one's own (files with and without an extended
    /// attribute). Elsewhere puts overwrite: the two memory stores are separate, and on S3
    /// an overwrite costs the same whoever wrote the object.
    fresh_puts: bool,
}

async fn timed<F, Fut>(n: usize, bytes: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    for i in 0..n {
        f(i).await;
    }
    (n * bytes) as f64 / start.elapsed().as_secs_f64() / (1024.0 * 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn compare(t: &Target, size: usize, ops: usize) -> Vec<Compared> {
    let payload = Bytes::from(vec![0x5a; size]);
    let (mut raw_put, mut strata_put, mut raw_get, mut strata_get) =
        (vec![], vec![], vec![], vec![]);
    for round in 0..t.rounds {
        let raw_first = round % 2 == 0;
        for pass in 0..2 {
            let use_raw = (pass == 0) == raw_first;
            let folder = (round + usize::from(use_raw)) % 2;
            if t.fresh_puts {
                remove_keys(t, use_raw, folder, size, ops).await;
            }
            if use_raw {
                let p = payload.clone();
                raw_put.push(
                    timed(ops, size, |i| {
                        let p = p.clone();
                        let s = t.raw.clone();
                        async move {
                            s.put(
                                &Path::from(format!("bench/f{folder}/{size}/{i}")),
                                PutPayload::from(p),
                            )
                            .await
                            .unwrap();
                        }
                    })
                    .await,
                );
                raw_get.push(
                    timed(ops, size, |i| {
                        let s = t.raw.clone();
                        async move {
                            let b = s
                                .get(&Path::from(format!("bench/f{folder}/{size}/{i}")))
                                .await
                                .unwrap()
                                .bytes()
                                .await
                                .unwrap();
                            assert_eq!(b.len(), size);
                        }
                    })
                    .await,
                );
            } else {
                let p = payload.clone();
                strata_put.push(
                    timed(ops, size, |i| {
                        let p = p.clone();
                        let b = t.bucket.clone();
                        async move {
                            b.put_with(
                                format!("bench/f{folder}/{size}/{i}"),
                                p,
                                PutOpts::default(),
                            )
                            .await
                            .unwrap();
                        }
                    })
                    .await,
                );
                strata_get.push(
                    timed(ops, size, |i| {
                        let b = t.bucket.clone();
                        async move {
                            let o = b.get(format!("bench/f{folder}/{size}/{i}")).await.unwrap();
                            assert_eq!(o.bytes.len(), size);
                        }
                    })
                    .await,
                );
            }
        }
    }
    vec![
        Compared::new("put", raw_put, strata_put),
        Compared::new("get", raw_get, strata_get),
    ]
}

/// Remove one side's `ops` keys of `folder` (missing keys, as in the first rounds, are fine).
async fn remove_keys(t: &Target, use_raw: bool, folder: usize, size: usize, ops: usize) {
    let keys: Vec<String> = (0..ops)
        .map(|i| format!("bench/f{folder}/{size}/{i}"))
        .collect();
    if use_raw {
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
    op: &'static str,
    raw: f64,
    strata: f64,
    /// Median of each round's own Strata/raw ratio: the two sides of a round ran back to
    /// back, so a slow stretch of the machine slows both and drops out of the ratio.
    ratio: f64,
}

impl Compared {
    fn new(op: &'static str, raw: Vec<f64>, strata: Vec<f64>) -> Self {
        let ratios = raw.iter().zip(&strata).map(|(r, s)| s / r).collect();
        Compared {
            op,
            raw: median(raw),
            strata: median(strata),
            ratio: median(ratios),
        }
    }
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
    println!(
        "STREAM {target} up {:.0} MiB/s down {:.0} MiB/s peak_rss_before {:.1} MiB peak_rss {:.1} MiB",
        1024.0 / up.as_secs_f64(),
        1024.0 / down.as_secs_f64(),
        before,
        peak_rss_mib()
    );
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
    // One root for both sides (see the module docs).
    let local_root = dir.path().join("local");
    let local_bucket = Bucket::local("bench", &local_root).unwrap();
    let mut targets = vec![
        Target {
            name: "memory",
            raw: Arc::new(object_store::memory::InMemory::new()),
            bucket: Bucket::memory("bench"),
            // A memory operation takes about half a microsecond and this machine's speed
            // drifts by ±30% from one 10 ms to the next: many short rounds, each a
            // back-to-back pair, give a median ratio that holds still between runs.
            rounds: 41,
            target: true,
            ops_small: 5_000,
            ops_large: 5_000,
            fresh_puts: false,
        },
        Target {
            // Not a target row: `Bucket` over the very store it is compared with, which
            // shows what the handle itself costs apart from Strata's own memory store.
            name: "memory/InMemory",
            raw: Arc::new(object_store::memory::InMemory::new()),
            bucket: Bucket::builder("bench", Arc::new(object_store::memory::InMemory::new()))
                .build(),
            rounds: 41,
            target: false,
            ops_small: 5_000,
            ops_large: 5_000,
            fresh_puts: false,
        },
        Target {
            name: "local folder",
            raw: Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(&local_root).unwrap(),
            ),
            bucket: local_bucket,
            // A 4 KiB put takes about 250 us on this disk, whose journal stalls now and
            // then: short back-to-back pairs keep a stall inside one round's ratio.
            rounds: 61,
            target: true,
            ops_small: 60,
            ops_large: 20,
            fresh_puts: true,
        },
    ];
    let have_s3 = std::env::var("STRATA_TEST_S3_ENDPOINT").is_ok();
    if have_s3 {
        let server = strata_testkit::moto_env().unwrap();
        let cfg = strata_testkit::s3_config(&server);
        let raw: Arc<dyn ObjectStore> = Arc::new(cfg.builder().unwrap().build().unwrap());
        targets.push(Target {
            name: "s3 (moto)",
            raw,
            bucket: cfg.build("bench").unwrap(),
            rounds: 15,
            target: true,
            ops_small: 50,
            ops_large: 5,
            fresh_puts: false,
        });
    } else {
        println!("s3 (moto): skipped, STRATA_TEST_S3_ENDPOINT not set (run `cargo xtask bench`)");
    }
    println!(
        "\nBucket vs raw object_store, interleaved rounds (memory 41, local folder 61, S3 15): median MiB/s, median ratio"
    );
    println!(
        "{:<16} {:<4} {:>8} {:>12} {:>12} {:>7}",
        "backend", "op", "size", "raw", "strata", "ratio"
    );
    let mut worst: f64 = f64::MAX;
    for t in &mut targets {
        for (size, ops, label) in [
            (4096, t.ops_small, "4 KiB"),
            (1 << 20, t.ops_large, "1 MiB"),
        ] {
            for c in rt.block_on(compare(t, size, ops)) {
                if t.target {
                    worst = worst.min(c.ratio);
                }
                println!(
                    "{:<16} {:<4} {:>8} {:>12.1} {:>12.1} {:>6.2}x",
                    t.name, c.op, label, c.raw, c.strata, c.ratio
                );
            }
        }
    }
    println!(
        "worst ratio: {worst:.2}x (target >= 0.95x; memory/InMemory, Bucket over object_store's own InMemory, is shown for reference and not counted)"
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
