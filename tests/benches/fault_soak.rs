//! Issue 15's fault soak as a benchmark row: Strata (a bucket configured as the guides show:
//! `timeout = "1s"`, `[layers.retry]`, `[layers.breaker]`) beside raw `object_store`
//! (`AmazonS3` with its default HTTP retries and the same 1 s timeout) through the same
//! fault proxy, seeds and operations, against moto. Raw `object_store` is the baseline.
//!
//! Counted per run (2,000 mixed operations on 200 keys, 10% faults: 503 before forwarding,
//! 500 after the server applied the request, answers held past the timeout, resets, torn
//! bodies): false conflicts, errors for conditional writes that landed, lost acknowledged
//! writes, corrupt reads, `Ambiguous` answers. Needs the moto server (`cargo xtask bench`
//! starts it); without it the row is skipped with the reason printed. The totals over the
//! seeds are also `BENCH {json}` lines (`strata_testkit::bench`) for
//! `cargo xtask bench --report`: Strata's goal is zero of each kind of wrong answer.
//! `STRATA_BENCH_QUICK=1` runs one seed.

#[path = "../tests/common/soak.rs"]
mod soak;

use std::sync::Arc;
use std::time::{Duration, Instant};

use soak::{RawClient, SoakPlan, StrataClient, Tally, guide_bucket};
use strata_testkit::bench::{Better, Value, quick};
use strata_testkit::fault_proxy::{FaultPlan, FaultProxy};

const SEEDS: [u64; 3] = [1, 2, 3];

/// The figures of a run, in the table's column order.
fn figures(t: &Tally) -> [u64; 6] {
    [
        t.false_conflicts,
        t.errors_for_applied_writes,
        t.lost_acked_writes,
        t.corrupt_reads,
        t.ambiguous,
        t.surfaced.values().sum::<u64>(),
    ]
}

fn row(label: &str, seed: u64, t: &Tally, secs: f64) {
    let [false_conflicts, errors, lost, corrupt, ambiguous, surfaced] = figures(t);
    println!(
        "| {label:<13} | {seed:>4} | {false_conflicts:>15} | {errors:>26} | {lost:>18} | {corrupt:>13} | {ambiguous:>9} | {surfaced:>10} | {secs:>5.1} |",
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(server) = std::env::var(strata_testkit::S3_ENDPOINT)
        .ok()
        .and_then(|_| strata_testkit::moto_env())
    else {
        println!(
            "fault_soak: SKIPPED: no moto server ({} unset); run `cargo xtask bench`",
            strata_testkit::S3_ENDPOINT
        );
        return;
    };
    println!(
        "\nfault soak through the fault proxy in front of moto (2,000 ops on 200 keys, 10% faults)\n"
    );
    println!(
        "| client        | seed | false conflicts | errors for applied CAS/create | lost acked writes | corrupt reads | ambiguous | surfaced | secs  |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // Totals over the seeds per side: false conflicts, errors for applied writes, lost
    // acknowledged writes, corrupt reads, ambiguous answers, surfaced errors.
    let mut totals = [[0u64; 6]; 2];
    // `STRATA_BENCH_QUICK`: one seed.
    let seeds = if quick() { &SEEDS[..1] } else { &SEEDS[..] };
    for &seed in seeds {
        for side in ["raw object_store", "strata"] {
            let proxy = Arc::new(
                FaultProxy::start(
                    &server.endpoint,
                    FaultPlan::mixed(seed, 0.10, Duration::from_millis(1300)),
                )
                .await
                .expect("proxy"),
            );
            let prefix = strata_testkit::run_prefix(&format!("bench-soak-{seed}"));
            let direct = Arc::new(StrataClient(guide_bucket(&server.endpoint, &prefix)));
            let started = Instant::now();
            let t = if side == "strata" {
                let client = Arc::new(StrataClient(guide_bucket(&proxy.endpoint(), &prefix)));
                soak::soak(client, direct, SoakPlan::standard(seed), Arc::clone(&proxy)).await
            } else {
                let mut cfg = strata_testkit::s3_config(&server);
                cfg.endpoint = Some(proxy.endpoint());
                cfg.timeout = Some(Duration::from_secs(1));
                cfg.max_retries = None; // object_store's default HTTP retries, as users get them
                let store: Arc<dyn object_store::ObjectStore> =
                    Arc::new(cfg.builder().expect("builder").build().expect("AmazonS3"));
                let client = Arc::new(RawClient {
                    store,
                    root: prefix.clone(),
                });
                soak::soak(client, direct, SoakPlan::standard(seed), Arc::clone(&proxy)).await
            };
            let sum = &mut totals[usize::from(side == "strata")];
            for (total, n) in sum.iter_mut().zip(figures(&t)) {
                *total += n;
            }
            row(
                if side == "strata" { "strata" } else { "raw" },
                seed,
                &t,
                started.elapsed().as_secs_f64(),
            );
            eprintln!("  {side} seed {seed}: {}\n  {}", t.line(), proxy.summary());
        }
    }
    let group = format!(
        "fault soak through the fault proxy ({} seeds x 2,000 ops, 10% faults), totals",
        seeds.len()
    );
    let kinds = [
        ("false conflicts", true),
        ("errors for applied CAS/create", true),
        ("lost acked writes", true),
        ("corrupt reads", true),
        ("ambiguous answers", false),
        ("errors surfaced", false),
    ];
    for (side, sums) in ["raw object_store", "strata"].iter().zip(totals) {
        for ((kind, wrong), n) in kinds.iter().zip(sums) {
            let v = Value::new(
                "fault_soak",
                &group,
                &format!("{side}: {kind}"),
                n as f64,
                "count",
                Better::Lower,
            );
            // Strata is held to no wrong answers; raw object_store is the reference.
            if *side == "strata" && *wrong {
                v.goal(0.0).print();
            } else {
                v.print();
            }
        }
    }
}
