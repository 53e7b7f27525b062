//! Exactly once under faults (issue 15), with faults injected *below* the HTTP client: a
//! seeded fault proxy (`strata_testkit::fault_proxy`) in front of moto answers 503 before
//! forwarding, 500 after the server applied the request, holds answers past the client
//! timeout, resets connections and cuts bodies in half. Every guarantee is asserted exactly:
//! 0 corrupt reads, 0 lost acknowledged writes, 0 double applies, 0 false conflicts, 0
//! errors for writes that landed except `Ambiguous` ones (counted and printed).
//!
//! - `fault_soak_*`: 2,000 mixed operations on 200 keys at 10% faults, an oracle read of the
//!   server after every write.
//! - `counter_*`: 16 writers x 25 `update_with` increments of one document, each recording
//!   its id; checked for lost, duplicated and falsely failed ids.
//! - `local_counter_*`: the same counter on a local folder by 8 processes killed with SIGKILL
//!   and restarted at random.
//! - `*_linearizable`: compare-and-swap histories checked by a Wing-Gong checker on memory,
//!   the local folder across processes, and moto with and without faults.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::soak::{self, SoakPlan, StrataClient, Tally, guide_bucket, strata_on};
use serde::{Deserialize, Serialize};
use storage_core::{Bucket, PutOpts, StorageError};
use strata::cas::{BackoffStrategy, Collection};
use strata_testkit::fault_proxy::{FaultPlan, FaultProxy};
use strata_testkit::linearizability::{CasInput, CasOutput, CasRegister, History, check};

/// How long the proxy holds an answer: past the soak bucket's 1 s client timeout.
const HOLD: Duration = Duration::from_millis(1300);

fn seed() -> u64 {
    std::env::var("STRATA_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
}

/// The same prefix, straight to moto without layers: the oracle.
fn oracle_bucket(prefix: &str) -> Bucket {
    strata_testkit::s3_config(&strata_testkit::moto_env().expect("moto"))
        .build("oracle")
        .unwrap()
        .to_builder()
        .prefix(prefix)
        .unwrap()
        .build()
}

async fn proxy(seed: u64) -> FaultProxy {
    let server = strata_testkit::moto_env().expect("moto");
    FaultProxy::start(&server.endpoint, FaultPlan::mixed(seed, 0.10, HOLD))
        .await
        .expect("fault proxy starts")
}

fn assert_guarantees(t: &Tally, what: &str) {
    assert_eq!(t.corrupt_reads, 0, "{what}: {}", t.line());
    assert_eq!(t.lost_acked_writes, 0, "{what}: {}", t.line());
    assert_eq!(t.false_conflicts, 0, "{what}: {}", t.line());
    assert_eq!(t.errors_for_applied_writes, 0, "{what}: {}", t.line());
    assert_eq!(t.wrong_listings, 0, "{what}: {}", t.line());
    assert_eq!(t.untyped_errors, 0, "{what}: {}", t.line());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_soak_2000_mixed_ops_on_200_keys_below_the_http_client() {
    if strata_testkit::moto_env().is_none() {
        return;
    }
    let seed = seed();
    let proxy = Arc::new(proxy(seed).await);
    let prefix = strata_testkit::run_prefix("soak");
    let client = Arc::new(StrataClient(guide_bucket(&proxy.endpoint(), &prefix)));
    let oracle = Arc::new(StrataClient(oracle_bucket(&prefix)));
    let before = storage_core::conditional::stats::resolutions();
    let t = soak::soak(client, oracle, SoakPlan::standard(seed), Arc::clone(&proxy)).await;
    let after = storage_core::conditional::stats::resolutions();
    eprintln!("{}", proxy.summary());
    eprintln!("strata: {}", t.line());
    eprintln!(
        "conditional writes resolved after a lost answer: applied {}, not applied (resent) {}, conflict {}, ambiguous {}",
        after.applied - before.applied,
        after.not_applied - before.not_applied,
        after.conflict - before.conflict,
        after.ambiguous - before.ambiguous
    );
    assert_eq!(t.ops, 2000);
    // The faults really happened below the client, and writes really hit them.
    let faulted: u64 = proxy.counts().values().sum();
    assert!(faulted >= 100, "{}", proxy.summary());
    assert!(t.conditional_writes >= 500, "{}", t.line());
    assert_guarantees(&t, "fault soak");
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Counter {
    n: u64,
    ids: Vec<String>,
}

/// What each increment answered, by id.
#[derive(Debug, Default)]
struct Answers {
    ok: Vec<String>,
    ambiguous: Vec<String>,
    failed: Vec<(String, String)>,
}

/// Check the counter's ids against the answers: every acknowledged id exactly once, every
/// failed id never, no id twice, `n` equal to the number of ids.
fn check_counter(c: &Counter, a: &Answers) -> Result<String, String> {
    let mut seen: BTreeMap<&str, u32> = BTreeMap::new();
    for id in &c.ids {
        *seen.entry(id).or_default() += 1;
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let lost: Vec<_> =
        a.ok.iter()
            .filter(|id| !seen.contains_key(id.as_str()))
            .collect();
    let falsely_failed: Vec<_> = a
        .failed
        .iter()
        .filter(|(id, _)| seen.contains_key(id.as_str()))
        .collect();
    let ambiguous_landed = a
        .ambiguous
        .iter()
        .filter(|id| seen.contains_key(id.as_str()))
        .count();
    let summary = format!(
        "{} acknowledged, {} failed, {} ambiguous ({} of them landed); counter n = {}, {} ids",
        a.ok.len(),
        a.failed.len(),
        a.ambiguous.len(),
        ambiguous_landed,
        c.n,
        c.ids.len()
    );
    if !duplicated.is_empty()
        || !lost.is_empty()
        || !falsely_failed.is_empty()
        || c.n != c.ids.len() as u64
    {
        return Err(format!(
            "{summary}; double applied {duplicated:?}; lost {lost:?}; failed but applied {falsely_failed:?}"
        ));
    }
    Ok(summary)
}

async fn increment(c: &Collection<Counter>, id: String) -> Result<(), StorageError> {
    c.update_with("counter", |cur| {
        let mut cur = cur.unwrap_or_default();
        cur.n += 1;
        cur.ids.push(id.clone());
        Ok(Some(cur))
    })
    .await
    .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counter_16_writers_x_25_increments_under_faults_lose_and_double_nothing() {
    if strata_testkit::moto_env().is_none() {
        return;
    }
    let seed = seed() + 1;
    let proxy = proxy(seed).await;
    let prefix = strata_testkit::run_prefix("counter");
    let bucket = guide_bucket(&proxy.endpoint(), &prefix);
    let mut tasks = Vec::new();
    for w in 0..16 {
        // Separate collections without the in-process queue: real contention on the server.
        let c: Collection<Counter> = Collection::new(&bucket, "{id}.json")
            .unwrap()
            .with_local_queue(false)
            .with_backoff(BackoffStrategy::UNTIL_DEADLINE.with_deadline(Duration::from_secs(120)));
        tasks.push(tokio::spawn(async move {
            let mut a = Answers::default();
            for i in 0..25 {
                let id = format!("w{w}-{i}");
                match increment(&c, id.clone()).await {
                    Ok(()) => a.ok.push(id),
                    Err(StorageError::Ambiguous { .. }) => a.ambiguous.push(id),
                    Err(e) => a.failed.push((id, e.to_string())),
                }
            }
            a
        }));
    }
    let mut answers = Answers::default();
    for t in tasks {
        let a = t.await.unwrap();
        answers.ok.extend(a.ok);
        answers.ambiguous.extend(a.ambiguous);
        answers.failed.extend(a.failed);
    }
    assert!(proxy.settle("counter.json", Duration::from_secs(60)).await);
    let oracle: Collection<Counter> =
        Collection::new(&oracle_bucket(&prefix), "{id}.json").unwrap();
    let counter = oracle.get("counter").await.unwrap().unwrap().value;
    eprintln!("{}", proxy.summary());
    let summary = check_counter(&counter, &answers).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "counter under faults: {summary}; failures: {:?}",
        answers.failed
    );
    // Contention alone never fails an update: anything that failed outlived the retries.
    for (id, e) in &answers.failed {
        assert!(!e.contains("conflict"), "{id} gave up on contention: {e}");
    }
    assert!(answers.ok.len() >= 390, "{summary}");
}

// ---------------------------------------------------------------------------------------
// Linearizability of compare-and-swap histories.

/// What a client last learned about the register.
enum Last {
    Unknown,
    Absent,
    Value(u64, storage_core::ObjectInfo),
}

/// Run `ops` operations of one client on `key` and record them: reads; then, depending on
/// the last read, a create (absent) or a compare-and-swap over the value read; sometimes an
/// unconditional put. Values are unique (`client << 32 | n`). An operation whose outcome is
/// unknown (an error that is not a conflict) stays pending in the history: it may have taken
/// effect once, at any time after its call, or never.
async fn cas_client(
    bucket: Bucket,
    key: String,
    client: u64,
    ops: u32,
    blind_puts: bool,
    history: Arc<History<CasInput, CasOutput>>,
) {
    let mut rng = fastrand::Rng::with_seed(client.wrapping_mul(7919) ^ seed());
    let mut last = Last::Unknown;
    for n in 0..ops {
        let value = (client << 32) | u64::from(n);
        let roll = rng.u32(..10);
        let input = match (&last, roll) {
            (_, 9) if blind_puts => CasInput::Put(value),
            (Last::Unknown, _) | (_, 0..3) => CasInput::Read,
            (Last::Absent, _) => CasInput::Create(value),
            (Last::Value(seen, _), _) => CasInput::PutIfMatch {
                expected: *seen,
                new: value,
            },
        };
        let id = history.call(client, input);
        if input == CasInput::Read {
            match bucket.get(&key).await {
                Ok(o) => {
                    let v: u64 = std::str::from_utf8(&o.bytes).unwrap().parse().unwrap();
                    history.ret(id, CasOutput::Value(Some(v)));
                    last = Last::Value(v, o.info);
                }
                Err(e) if e.is_not_found() => {
                    history.ret(id, CasOutput::Value(None));
                    last = Last::Absent;
                }
                Err(_) => last = Last::Unknown,
            }
            continue;
        }
        let body = value.to_string();
        let r = match (&input, &last) {
            (CasInput::Put(_), _) => bucket.put(&key, body).await,
            (CasInput::Create(_), _) => bucket.put_with(&key, body, PutOpts::if_absent()).await,
            (CasInput::PutIfMatch { .. }, Last::Value(_, info)) => {
                bucket
                    .put_with(&key, body, PutOpts::replacing(info).unwrap())
                    .await
            }
            _ => unreachable!(),
        };
        match r {
            Ok(_) => history.ret(id, CasOutput::Ok),
            Err(StorageError::AlreadyExists { .. }) => history.ret(id, CasOutput::AlreadyExists),
            Err(StorageError::Precondition { .. }) => history.ret(id, CasOutput::Conflict),
            // Ambiguous or transient beyond the retries: outcome unknown, left pending.
            Err(_) => {}
        }
        last = Last::Unknown;
    }
}

async fn linearizable_on(bucket: Bucket, clients: u64, ops: u32, blind_puts: bool, what: &str) {
    let history = Arc::new(History::new());
    let key = "register".to_string();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            tokio::spawn(cas_client(
                bucket.clone(),
                key.clone(),
                c,
                ops,
                blind_puts,
                Arc::clone(&history),
            ))
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let ops = history.ops();
    let pending = ops.iter().filter(|o| o.ret.is_none()).count();
    let writes_ok = ops
        .iter()
        .filter(|o| o.input != CasInput::Read && o.output == Some(CasOutput::Ok))
        .count();
    check(&CasRegister::default(), &ops)
        .unwrap_or_else(|e| panic!("{what}: not linearizable: {e}"));
    eprintln!(
        "{what}: {} operations ({writes_ok} acknowledged writes, {pending} with unknown outcome) linearizable",
        ops.len()
    );
    assert!(writes_ok >= 10, "{what}: too few writes to mean anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_histories_on_memory_are_linearizable() {
    linearizable_on(Bucket::memory("lin"), 8, 40, true, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_histories_on_memory_with_lost_answers_and_failures_are_linearizable() {
    use storage_core::object_store::ObjectStore;
    use strata::layers::chaos::ChaosLayer;
    // A fifth of writes applied with their answer lost, a tenth of calls failed before
    // reaching the store: Bucket's conditional writes resolve them; blind puts whose answer
    // was lost stay pending in the history (no retry layer resends them here).
    let plain = Bucket::memory("lin-chaos");
    let chaos = ChaosLayer::default()
        .with_seed(seed())
        .with_lost_ack_rate(0.2)
        .with_error_rate(0.1);
    let faulted: std::sync::Arc<dyn ObjectStore> =
        storage_core::Layer::layer(&chaos, plain.store().clone());
    let bucket = plain.to_builder().store(faulted).build();
    linearizable_on(bucket, 8, 40, true, "memory with lost answers and failures").await;
    let stats = chaos.stats();
    assert!(
        stats.lost_acks > 0 && stats.injected_errors > 0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_histories_on_moto_are_linearizable_with_and_without_faults() {
    if strata_testkit::moto_env().is_none() {
        return;
    }
    let server = strata_testkit::moto_env().unwrap();
    let plain = oracle_bucket(&strata_testkit::run_prefix("lin-plain"));
    linearizable_on(plain, 8, 30, true, "moto").await;
    let proxy = proxy(seed() + 2).await;
    let _ = server;
    let faulted = guide_bucket(&proxy.endpoint(), &strata_testkit::run_prefix("lin-faults"));
    // Without blind puts: a retried unconditional put is at-least-once (a resend can land
    // after another writer's later put and undo it; measured here: 2 of 3 such histories
    // were not linearizable), as with every S3 client. Conditional writes and reads are
    // exactly-once and linearizable under the same faults, which is what this checks.
    linearizable_on(faulted, 8, 30, false, "moto behind the fault proxy").await;
    eprintln!("{}", proxy.summary());
    assert!(proxy.counts().values().sum::<u64>() > 0);
}

// ---------------------------------------------------------------------------------------
// The local folder across processes: children are this test binary, re-run with
// `--ignored --exact child_process` and the job in the environment.

const CHILD_JOB: &str = "STRATA_EXACTLY_ONCE_CHILD";

fn spawn_child(job: &str, vars: &[(&str, String)]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "child_process",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CHILD_JOB, job)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::inherit());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child test process")
}

/// Appends one line and flushes it to disk before returning, so a SIGKILL right after
/// loses nothing that was written.
fn append(path: &std::path::Path, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(line.as_bytes()).unwrap();
    f.sync_data().unwrap();
}

#[tokio::test]
#[ignore = "entry point of the child processes the local-folder tests spawn; does nothing alone"]
async fn child_process() {
    let Ok(job) = std::env::var(CHILD_JOB) else {
        return;
    };
    let root = std::path::PathBuf::from(std::env::var("CHILD_ROOT").unwrap());
    let name = std::env::var("CHILD_NAME").unwrap();
    let log = root.join(format!("{name}.log"));
    let bucket = Bucket::local("shared", root.join("store")).unwrap();
    match job.as_str() {
        "counter" => {
            let c: Collection<Counter> =
                Collection::new(&bucket, "{id}.json").unwrap().with_backoff(
                    BackoffStrategy::UNTIL_DEADLINE.with_deadline(Duration::from_secs(120)),
                );
            for i in 0..60 {
                let id = format!("{name}-{i}");
                append(&log, &format!("try {id}\n"));
                match increment(&c, id.clone()).await {
                    Ok(()) => append(&log, &format!("ok {id}\n")),
                    Err(StorageError::Ambiguous { .. }) => {
                        append(&log, &format!("ambiguous {id}\n"))
                    }
                    Err(e) => append(&log, &format!("fail {id} {e}\n")),
                }
            }
        }
        "register" => {
            let client: u64 = std::env::var("CHILD_CLIENT").unwrap().parse().unwrap();
            let history = Arc::new(History::new());
            cas_client(
                bucket,
                "register".into(),
                client,
                40,
                true,
                Arc::clone(&history),
            )
            .await;
            let mut out = String::new();
            for op in history.ops() {
                out.push_str(&encode_op(&op));
                out.push('\n');
            }
            append(&log, &out);
        }
        other => panic!("unknown child job {other}"),
    }
}

fn encode_op(op: &strata_testkit::linearizability::Op<CasInput, CasOutput>) -> String {
    let input = match op.input {
        CasInput::Read => "read - -".to_string(),
        CasInput::Put(v) => format!("put {v} -"),
        CasInput::Create(v) => format!("create {v} -"),
        CasInput::PutIfMatch { expected, new } => format!("cas {expected} {new}"),
        other => panic!("not recorded here: {other:?}"),
    };
    let output = match op.output {
        None => "pending -".to_string(),
        Some(CasOutput::Value(None)) => "value none".to_string(),
        Some(CasOutput::Value(Some(v))) => format!("value {v}"),
        Some(CasOutput::Ok) => "ok -".to_string(),
        Some(CasOutput::Conflict) => "conflict -".to_string(),
        Some(CasOutput::AlreadyExists) => "exists -".to_string(),
    };
    let ret = op.ret.map_or("-".to_string(), |r| r.to_string());
    format!("{} {} {ret} {input} {output}", op.client, op.call)
}

fn decode_op(line: &str) -> strata_testkit::linearizability::Op<CasInput, CasOutput> {
    let f: Vec<&str> = line.split(' ').collect();
    let num = |s: &str| s.parse::<u64>().unwrap();
    let input = match f[3] {
        "read" => CasInput::Read,
        "put" => CasInput::Put(num(f[4])),
        "create" => CasInput::Create(num(f[4])),
        "cas" => CasInput::PutIfMatch {
            expected: num(f[4]),
            new: num(f[5]),
        },
        other => panic!("bad op {other}"),
    };
    let output = match (f[6], f[7]) {
        ("pending", _) => None,
        ("value", "none") => Some(CasOutput::Value(None)),
        ("value", v) => Some(CasOutput::Value(Some(num(v)))),
        ("ok", _) => Some(CasOutput::Ok),
        ("conflict", _) => Some(CasOutput::Conflict),
        ("exists", _) => Some(CasOutput::AlreadyExists),
        other => panic!("bad output {other:?}"),
    };
    strata_testkit::linearizability::Op {
        client: num(f[0]),
        call: num(f[1]),
        ret: (f[2] != "-").then(|| num(f[2])),
        input,
        output,
    }
}

#[test]
fn cas_histories_on_the_local_folder_across_processes_are_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let children: Vec<_> = (0..4u64)
        .map(|c| {
            spawn_child(
                "register",
                &[
                    ("CHILD_ROOT", root.display().to_string()),
                    ("CHILD_NAME", format!("r{c}")),
                    ("CHILD_CLIENT", c.to_string()),
                ],
            )
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let mut ops = Vec::new();
    for c in 0..4 {
        let text = std::fs::read_to_string(root.join(format!("r{c}.log"))).unwrap();
        ops.extend(text.lines().filter(|l| !l.is_empty()).map(decode_op));
    }
    assert_eq!(ops.len(), 160);
    let writes_ok = ops
        .iter()
        .filter(|o| o.input != CasInput::Read && o.output == Some(CasOutput::Ok))
        .count();
    assert!(writes_ok >= 10, "{writes_ok}");
    check(&CasRegister::default(), &ops)
        .unwrap_or_else(|e| panic!("local folder, 4 processes: {e}"));
    eprintln!(
        "local folder, 4 processes: 160 operations ({writes_ok} acknowledged writes) linearizable"
    );
}

#[test]
fn local_counter_by_8_processes_killed_and_restarted_at_random() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut rng = fastrand::Rng::with_seed(seed());
    let start = |name: String| {
        spawn_child(
            "counter",
            &[
                ("CHILD_ROOT", root.display().to_string()),
                ("CHILD_NAME", name),
            ],
        )
    };
    let mut generation = 0u32;
    let mut running: Vec<(String, std::process::Child)> = (0..8)
        .map(|p| {
            let name = format!("p{p}g0");
            (name.clone(), start(name))
        })
        .collect();
    let mut kills = 0;
    // A writer that finished before its kill is replaced by a fresh one, so 16 kills happen
    // however fast the machine is (a bounded number of replacements keeps it finite).
    let mut replaced = 0;
    while kills < 16 && replaced < 64 {
        std::thread::sleep(Duration::from_millis(rng.u64(20..150)));
        let victim = rng.usize(..running.len());
        let (name, child) = &mut running[victim];
        if child.try_wait().unwrap().is_some() {
            replaced += 1;
        } else {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        }
        generation += 1;
        let p = name.split('g').next().unwrap().to_string();
        let next = format!("{p}g{generation}");
        running[victim] = (next.clone(), start(next));
    }
    for (_, c) in &mut running {
        c.wait().unwrap();
    }
    // Every log: `try id` before each attempt, `ok` / `ambiguous` / `fail` after.
    let mut answers = Answers::default();
    let mut in_flight = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut tried: Vec<String> = Vec::new();
        for line in text.lines() {
            let mut f = line.splitn(3, ' ');
            let (what, id) = (f.next().unwrap(), f.next().unwrap().to_string());
            match what {
                "try" => tried.push(id),
                "ok" => answers.ok.push(id),
                "ambiguous" => answers.ambiguous.push(id),
                "fail" => answers
                    .failed
                    .push((id, f.next().unwrap_or("").to_string())),
                other => panic!("bad log line {other}"),
            }
        }
        // A try with no answer: the process was killed during it (landed or not).
        let answered: std::collections::BTreeSet<&String> = answers
            .ok
            .iter()
            .chain(&answers.ambiguous)
            .chain(answers.failed.iter().map(|(i, _)| i))
            .collect();
        in_flight.extend(tried.into_iter().filter(|t| !answered.contains(t)));
    }
    let bucket = Bucket::local("shared", root.join("store")).unwrap();
    let c: Collection<Counter> = Collection::new(&bucket, "{id}.json").unwrap();
    let counter = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(c.get("counter"))
        .unwrap()
        .unwrap()
        .value;
    // Killed mid-update: treated like ambiguous (may have landed once, never twice).
    answers.ambiguous.extend(in_flight.iter().cloned());
    let summary = check_counter(&counter, &answers).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("local counter, 8 processes, {kills} kills: {summary}");
    assert_eq!(
        kills, 16,
        "the test must really kill writers ({replaced} replaced after finishing)"
    );
    assert!(answers.failed.is_empty(), "{:?}", answers.failed);
    assert_eq!(
        counter.ids.len(),
        answers.ok.len() + in_flight.iter().filter(|i| counter.ids.contains(i)).count(),
        "every id in the counter was acknowledged or in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn torn_listings_resume_after_the_last_entry_and_lose_nothing() {
    if strata_testkit::moto_env().is_none() {
        return;
    }
    use futures::{StreamExt, TryStreamExt};
    let prefix = strata_testkit::run_prefix("torn-list");
    let direct = oracle_bucket(&prefix);
    // 2,500 keys: three pages of S3's 1,000.
    let keys: Vec<String> = (0..2500).map(|i| format!("k{i:05}")).collect();
    futures::stream::iter(keys.clone())
        .map(|k| {
            let b = direct.clone();
            async move { b.put(&k, "x").await.map(drop) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    let server = strata_testkit::moto_env().unwrap();
    // Tear half of the listing pages (status and headers sent, body cut in half).
    let mut plan = FaultPlan::only(strata_testkit::fault_proxy::Fault::TornBody, Duration::ZERO);
    plan.rate = 0.5;
    plan.seed = seed();
    let proxy = FaultProxy::start(&server.endpoint, plan).await.unwrap();
    let strata = strata_on(
        &proxy.endpoint(),
        &prefix,
        Duration::from_secs(30),
        "[layers.retry]\nmax_attempts = 20\nbase_delay = '1ms'\n",
    );
    let bucket = strata.bucket("soak").unwrap();
    let mut listed: Vec<String> = bucket
        .list("")
        .map_ok(|i| i.key)
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    eprintln!("{}", proxy.summary());
    assert_eq!(listed, keys, "every key exactly once");
    let torn_after_first_page = proxy
        .records()
        .iter()
        .filter(|r| r.fault.is_some() && r.target.contains("start-after"))
        .count()
        + proxy
            .records()
            .iter()
            .filter(|r| r.fault.is_some() && r.target.contains("continuation-token"))
            .count();
    assert!(
        torn_after_first_page >= 1,
        "a page after the first was torn: {}",
        proxy.summary()
    );
    let stats = strata
        .layers("soak")
        .unwrap()
        .retry
        .as_ref()
        .unwrap()
        .stats();
    assert!(stats.resumed_streams >= 1, "{stats:?}");
}

#[tokio::test]
async fn an_error_answer_with_a_cut_body_keeps_its_status() {
    if strata_testkit::moto_env().is_none() {
        return;
    }
    let server = strata_testkit::moto_env().unwrap();
    let proxy = FaultProxy::start(
        &server.endpoint,
        FaultPlan::only(strata_testkit::fault_proxy::Fault::TornBody, Duration::ZERO),
    )
    .await
    .unwrap();
    // No retry layer and no HTTP retries: the first answer is what the caller gets.
    let mut cfg = strata_testkit::s3_config(&server);
    cfg.endpoint = Some(proxy.endpoint());
    cfg.max_retries = Some(0);
    let bucket = cfg.build("torn").unwrap();
    let err = bucket
        .get(format!(
            "{}/missing",
            strata_testkit::run_prefix("torn-404")
        ))
        .await
        .unwrap_err();
    assert!(
        err.is_not_found(),
        "a 404 with a cut body is still NotFound: {err:?}"
    );
    let torn = proxy.counts().values().sum::<u64>();
    assert_eq!(torn, 1, "{}", proxy.summary());
}
