//! `strata ls -r --json` of 10,000 keys against a raw `object_store` listing of the same
//! folder, and the binary's start-up time.
//!
//! The CLI row is a whole process (start-up, config, listing, one JSON line per key written
//! to a pipe); the baseline is `LocalFileSystem::list` in this process, counting entries.
//! Their ratio is what a script pays for using the CLI instead of a Rust program; the
//! start-up row (`strata --version`, and `strata ls` of an empty bucket) says how much of
//! it is start-up. Rounds are interleaved; medians are printed with `BENCH` lines.
//!
//! `cargo bench -p strata-cli --bench ls` (`STRATA_BENCH_QUICK=1` for fewer rounds).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use storage_core::object_store::ObjectStore;
use storage_core::object_store::local::LocalFileSystem;
use strata_testkit::bench::{Better, Ratio, Value, scaled};

const KEYS: usize = 10_000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run `strata args` on the embedded default at `home`; return its time and stdout lines.
fn strata(home: &std::path::Path, args: &[&str]) -> (Duration, usize) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_HOME", home)
        .env_remove("STRATA_CONFIG")
        .env_remove("STORAGE_PROVIDER")
        .env_remove("STORAGE_BACKEND")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run strata");
    let took = start.elapsed();
    assert!(out.status.success(), "{args:?}");
    (took, out.stdout.iter().filter(|b| **b == b'\n').count())
}

fn main() {
    let rounds = scaled(15, 3);
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("b");
    for i in 0..KEYS {
        let dir = folder.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{i:05}.txt")), b"x").unwrap();
    }
    std::fs::create_dir_all(home.path().join("empty")).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw = LocalFileSystem::new_with_prefix(&folder).unwrap();

    let (mut cli, mut baseline, mut version, mut empty) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (t, lines) = strata(home.path(), &["ls", "-r", "--json", "b:"]);
        assert_eq!(lines, KEYS);
        cli.push(t);
        let start = Instant::now();
        let n = rt.block_on(async {
            use futures::StreamExt;
            // Only the data files: a local bucket also holds Strata's own bookkeeping.
            raw.list(None)
                .filter(|r| {
                    let txt = r
                        .as_ref()
                        .is_ok_and(|m| m.location.as_ref().ends_with(".txt"));
                    futures::future::ready(txt)
                })
                .count()
                .await
        });
        baseline.push(start.elapsed());
        assert_eq!(n, KEYS);
        version.push(strata(home.path(), &["--version"]).0);
        empty.push(strata(home.path(), &["ls", "-r", "empty:"]).0);
    }
    let (cli, baseline, version, empty) = (
        median(cli),
        median(baseline),
        median(version),
        median(empty),
    );
    println!("ls of {KEYS} keys, {rounds} rounds (medians):");
    println!("  strata ls -r --json (process)     {:>8.1} ms", ms(cli));
    println!(
        "  object_store list (in-process)    {:>8.1} ms",
        ms(baseline)
    );
    println!(
        "  strata --version (start-up)       {:>8.1} ms",
        ms(version)
    );
    println!("  strata ls -r of an empty bucket   {:>8.1} ms", ms(empty));
    println!(
        "  ratio {:.2}x; without start-up {:.2}x",
        ms(cli) / ms(baseline),
        (ms(cli) - ms(empty)).max(0.0) / ms(baseline)
    );
    Ratio::new(
        "cli_ls",
        "cli",
        "ls -r --json 10,000 keys (whole process)",
        ms(cli) / ms(baseline),
        Better::Lower,
    )
    .baseline("object_store LocalFileSystem::list in-process")
    .rounds(rounds)
    .print();
    Value::new(
        "cli_ls",
        "cli",
        "start-up (strata --version)",
        ms(version),
        "ms",
        Better::Lower,
    )
    .print();
    Value::new(
        "cli_ls",
        "cli",
        "ls -r of an empty bucket (start-up + config + one listing)",
        ms(empty),
        "ms",
        Better::Lower,
    )
    .print();
}
