//! Commit throughput of `Collection::update_with` on one hot document: uncontended (1
//! writer) vs 2, 4, 8 and 16 concurrent writers, on memory and, when `cargo xtask bench`
//! started it, the moto S3 server.
//!
//! Printed per writer count: total commits per second (median of the rounds), attempts per
//! commit, and the ratio to the uncontended rate (target for 16 writers: ≥ 0.5). Rounds
//! interleave the writer counts so drift on a shared machine hits all of them alike.
//! Absolute figures are noise on a 2-core machine; the ratios are the figures that count.
//!
//! Each backend runs twice: with the default in-process queue (writers of one key in one
//! process take turns, CAS settles the rest) and with it off (every writer races on CAS
//! alone, the situation of writers in separate processes).
//!
//! First, one writer: `update_with` against a hand-written compare-and-swap loop on the same
//! store (GET, then a conditional PUT with the ETag read, through raw `object_store`),
//! interleaved, as the median of the rounds' ratios (issue 19's target: >= 0.8 on the local
//! folder). The difference is what `update_with` adds: JSON, the write id and write log,
//! the queue. Two reference rows split that difference: the same loop with a small piece of
//! user metadata on each put, against the plain loop (on the local folder: what storing any
//! metadata costs the filesystem, an extended-attribute block per file), and `update_with`
//! against that loop (what is left to `update_with` itself).
//!
//! Each ratio is also a `BENCH {json}` line (`strata_testkit::bench`) for
//! `cargo xtask bench --report`; `STRATA_BENCH_QUICK=1` runs fewer rounds and commits.
//! `STRATA_BENCH_ONLY=raw-loop` runs only the comparison with the hand-written loop.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use storage_cas::{BackoffStrategy, Collection, Jitter};
use storage_core::Bucket;
use strata_testkit::bench::{Better, Ratio, scaled};

const WRITER_COUNTS: [usize; 5] = [1, 2, 4, 8, 16];

#[derive(Serialize, Deserialize)]
struct Counter {
    n: u64,
}

struct Sample {
    rate: f64,
    attempts_per_commit: f64,
}

async fn run(c: &Collection<Counter>, doc: &str, writers: usize, commits: usize) -> Sample {
    let per_writer = commits / writers;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let c = c.clone();
        let doc = doc.to_string();
        tasks.push(tokio::spawn(async move {
            let mut attempts = 0u64;
            for _ in 0..per_writer {
                let out = c
                    .update_with(&doc, |cur| {
                        Ok(Some(Counter {
                            n: cur.map_or(0, |c| c.n) + 1,
                        }))
                    })
                    .await
                    .expect("commit");
                attempts += u64::from(out.attempts);
            }
            attempts
        }));
    }
    let mut attempts = 0;
    for t in tasks {
        attempts += t.await.unwrap();
    }
    let done = (per_writer * writers) as f64;
    Sample {
        rate: done / start.elapsed().as_secs_f64(),
        attempts_per_commit: attempts as f64 / done,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn bench(name: &str, bucket: &Bucket, commits: usize, backoff: BackoffStrategy, queue: bool) {
    let c: Collection<Counter> = Collection::new(bucket, "bench/{id}.json")
        .unwrap()
        .with_backoff(backoff)
        .with_local_queue(queue);
    let mut rates = vec![Vec::new(); WRITER_COUNTS.len()];
    let mut attempts = vec![Vec::new(); WRITER_COUNTS.len()];
    let rounds = scaled(5, 2);
    let commits = scaled(commits, commits / 4);
    for round in 0..rounds {
        for (i, &w) in WRITER_COUNTS.iter().enumerate() {
            let s = run(&c, &format!("hot-{queue}-{round}-{w}"), w, commits).await;
            rates[i].push(s.rate);
            attempts[i].push(s.attempts_per_commit);
        }
    }
    let base = median(rates[0].clone());
    let mode = if queue {
        "in-process queue on (default)"
    } else {
        "queue off: every writer races on CAS"
    };
    println!("\n{name}, {mode}: {commits} commits per run, {rounds} rounds, medians");
    println!(
        "{:>8} {:>14} {:>18} {:>10}",
        "writers", "commits/s", "attempts/commit", "ratio"
    );
    for (i, &w) in WRITER_COUNTS.iter().enumerate() {
        let r = median(rates[i].clone());
        let per_commit = median(attempts[i].clone());
        println!("{w:>8} {r:>14.0} {per_commit:>18.2} {:>10.2}", r / base);
        let queue = if queue { "queue on" } else { "queue off" };
        Ratio::new(
            "contention",
            &format!("{name}, {queue}: commit rate vs 1 writer"),
            &format!("{w} writers"),
            r / base,
            Better::Higher,
        )
        .baseline("1 writer")
        .goal_if(w == 16, 0.5)
        .rounds(rounds)
        .note(format!("{r:.0} commits/s, {per_commit:.2} attempts/commit"))
        .print();
    }
}

/// One user-metadata entry of this many bytes on every put of the reference loop: enough
/// that a local folder keeps the metadata in an extended-attribute block of its own, as it
/// does for `update_with`'s write log.
const REFERENCE_METADATA: usize = 60;

/// Commits per second of a hand-written CAS loop on `store` (GET, conditional PUT), its
/// puts carrying `metadata` bytes of user metadata (0: none).
async fn raw_loop(
    store: &std::sync::Arc<dyn object_store::ObjectStore>,
    key: &str,
    commits: usize,
    metadata: usize,
) -> f64 {
    use object_store::{ObjectStoreExt, PutMode, UpdateVersion};
    let path = object_store::path::Path::from(key);
    let start = Instant::now();
    for _ in 0..commits {
        loop {
            let (n, mode) = match store.get(&path).await {
                Ok(r) => {
                    let version = UpdateVersion {
                        e_tag: r.meta.e_tag.clone(),
                        version: r.meta.version.clone(),
                    };
                    let c: Counter = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                    (c.n + 1, PutMode::Update(version))
                }
                Err(object_store::Error::NotFound { .. }) => (1, PutMode::Create),
                Err(e) => panic!("{e}"),
            };
            let body = serde_json::to_vec(&Counter { n }).unwrap();
            let mut opts = object_store::PutOptions::from(mode);
            if metadata > 0 {
                opts.attributes.insert(
                    object_store::Attribute::Metadata("reference".into()),
                    "m".repeat(metadata).into(),
                );
            }
            match store.put_opts(&path, body.into(), opts).await {
                Ok(_) => break,
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. },
                ) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    commits as f64 / start.elapsed().as_secs_f64()
}

/// One writer: `update_with` against the hand-written loop on the same store, and, as
/// reference rows, against the same loop with [`REFERENCE_METADATA`] bytes of metadata on
/// each put, and that loop against the plain one: what any metadata costs the store, apart
/// from what `update_with` itself adds.
async fn against_raw_loop(name: &str, bucket: &Bucket, commits: usize) {
    let c: Collection<Counter> = Collection::new(bucket, "raw-vs/{id}.json").unwrap();
    let store = bucket.object_store();
    let rounds = scaled(15, 5);
    let commits = scaled(commits, commits / 4);
    // Rates per round: update_with, plain loop, loop with metadata.
    let (mut strata, mut raw, mut meta) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let doc = format!("r{round}");
        let (raw_key, meta_key) = (
            format!("raw-vs/raw-{round}.json"),
            format!("raw-vs/meta-{round}.json"),
        );
        // The three sides take turns going first, so drift on the machine hits all alike.
        let mut rates = [0.0; 3];
        for side in (0..3).map(|i| (i + round) % 3) {
            rates[side] = match side {
                0 => run(&c, &doc, 1, commits).await.rate,
                1 => raw_loop(&store, &raw_key, commits, 0).await,
                _ => raw_loop(&store, &meta_key, commits, REFERENCE_METADATA).await,
            };
        }
        strata.push(rates[0]);
        raw.push(rates[1]);
        meta.push(rates[2]);
    }
    let row = |group: &str, row: String, over: &[f64], under: &[f64], baseline: &str| {
        let ratios: Vec<f64> = over.iter().zip(under).map(|(o, u)| o / u).collect();
        let mut q = ratios.clone();
        q.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (o, u, ratio) = (
            median(over.to_vec()),
            median(under.to_vec()),
            median(ratios),
        );
        let (p25, p75) = (q[q.len() / 4], q[q.len() * 3 / 4]);
        println!(
            "{group}, {row}: {o:.0} vs {u:.0} commits/s, ratio {ratio:.2} (p25 {p25:.2}, p75 {p75:.2}, {rounds} rounds)"
        );
        Ratio::new("contention", group, &row, ratio, Better::Higher)
            .baseline(baseline)
            .spread(p25, p75)
            .rounds(rounds)
            .note(format!("{o:.0} vs {u:.0} commits/s"))
    };
    row(
        "update_with vs a hand-written CAS loop (1 writer)",
        name.to_string(),
        &strata,
        &raw,
        "GET + conditional PUT through raw object_store",
    )
    .goal_if(name == "local folder", 0.8)
    .print();
    let with_meta = format!("{REFERENCE_METADATA} B of metadata per put");
    row(
        "update_with vs a hand-written CAS loop (1 writer)",
        format!("{name}, reference: vs the loop with {with_meta}"),
        &strata,
        &meta,
        &format!("the same loop, each put carrying {with_meta}"),
    )
    .print();
    row(
        "update_with vs a hand-written CAS loop (1 writer)",
        format!("{name}, reference: the loop with {with_meta} vs without"),
        &meta,
        &raw,
        "GET + conditional PUT through raw object_store",
    )
    .print();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fast = BackoffStrategy::custom(
            1_000_000,
            Duration::from_micros(200),
            Duration::from_millis(5),
        )
        .with_jitter(Jitter::Full);
        let slow = BackoffStrategy::custom(
            1_000_000,
            Duration::from_millis(10),
            Duration::from_millis(200),
        )
        .with_jitter(Jitter::Full);
        let memory = Bucket::memory("bench");
        let dir = tempfile::tempdir().unwrap();
        let local = Bucket::local("bench", dir.path()).unwrap();
        let s3 = if std::env::var_os(strata_testkit::S3_ENDPOINT).is_some() {
            strata_testkit::s3_bucket("cas-bench")
        } else {
            println!(
                "S3 (moto): skipped, {} is not set (run `cargo xtask bench`)",
                strata_testkit::S3_ENDPOINT
            );
            None
        };
        println!("\nupdate_with against a hand-written CAS loop");
        against_raw_loop("memory", &memory, 400).await;
        against_raw_loop("local folder", &local, 200).await;
        if std::env::var("STRATA_BENCH_ONLY").is_ok_and(|v| v == "raw-loop") {
            return;
        }
        for queue in [true, false] {
            bench("memory", &memory, 1600, fast, queue).await;
            bench("local folder", &local, 800, fast, queue).await;
            if let Some(s3) = &s3 {
                bench("S3 (moto)", s3, 160, slow, queue).await;
            }
        }
    });
}
