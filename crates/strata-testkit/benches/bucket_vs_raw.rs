//! Strata `Bucket` vs raw `object_store` on the same backends, in one run.
//!
//! For each backend (memory, local folder, and the moto S3 server when `cargo xtask bench`
//! started it) and each payload (4 KiB, 1 MiB), batches of puts and gets run through the raw
//! store and through `Bucket`, interleaved (raw first on even rounds, Strata first on odd),
//! for several rounds. Printed: median throughput of each and the ratio Strata / raw
//! (target ≥ 0.95). Then a 1 GiB object is streamed up and down through `Bucket` in a child
//! process, which reports its peak RSS (target ≤ 64 MiB).
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

const ROUNDS: usize = 7;

struct Target {
    name: &'static str,
    raw: Arc<dyn ObjectStore>,
    bucket: Bucket,
    ops_small: usize,
    ops_large: usize,
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

async fn compare(t: &Target, size: usize, ops: usize) -> Vec<(String, f64, f64)> {
    let payload = Bytes::from(vec![0x5a; size]);
    let (mut raw_put, mut strata_put, mut raw_get, mut strata_get) =
        (vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let raw_first = round % 2 == 0;
        for pass in 0..2 {
            let use_raw = (pass == 0) == raw_first;
            if use_raw {
                let p = payload.clone();
                raw_put.push(
                    timed(ops, size, |i| {
                        let p = p.clone();
                        let s = t.raw.clone();
                        async move {
                            s.put(
                                &Path::from(format!("bench/raw/{size}/{i}")),
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
                                .get(&Path::from(format!("bench/raw/{size}/{i}")))
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
                            b.put_with(format!("bench/strata/{size}/{i}"), p, PutOpts::default())
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
                            let o = b.get(format!("bench/strata/{size}/{i}")).await.unwrap();
                            assert_eq!(o.bytes.len(), size);
                        }
                    })
                    .await,
                );
            }
        }
    }
    vec![
        ("put".into(), median(raw_put), median(strata_put)),
        ("get".into(), median(raw_get), median(strata_get)),
    ]
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
    let raw_dir = dir.path().join("raw");
    std::fs::create_dir_all(&raw_dir).unwrap();
    let mut targets = vec![
        Target {
            name: "memory",
            raw: Arc::new(object_store::memory::InMemory::new()),
            bucket: Bucket::memory("bench"),
            ops_small: 2000,
            ops_large: 100,
        },
        Target {
            name: "local folder",
            raw: Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&raw_dir).unwrap()),
            bucket: Bucket::local("bench", dir.path().join("strata")).unwrap(),
            ops_small: 500,
            ops_large: 50,
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
            ops_small: 100,
            ops_large: 10,
        });
    } else {
        println!("s3 (moto): skipped, STRATA_TEST_S3_ENDPOINT not set (run `cargo xtask bench`)");
    }
    println!("\nBucket vs raw object_store, median of {ROUNDS} interleaved rounds (MiB/s)");
    println!(
        "{:<14} {:<4} {:>8} {:>12} {:>12} {:>7}",
        "backend", "op", "size", "raw", "strata", "ratio"
    );
    let mut worst: f64 = f64::MAX;
    for t in &mut targets {
        for (size, ops, label) in [
            (4096, t.ops_small, "4 KiB"),
            (1 << 20, t.ops_large, "1 MiB"),
        ] {
            for (op, raw, strata) in rt.block_on(compare(t, size, ops)) {
                let ratio = strata / raw;
                worst = worst.min(ratio);
                println!(
                    "{:<14} {:<4} {:>8} {:>12.1} {:>12.1} {:>6.2}x",
                    t.name, op, label, raw, strata, ratio
                );
            }
        }
    }
    println!("worst ratio: {worst:.2}x (target >= 0.95x)");

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
