//! No lost update under contention: many writers on one document, and many committers on
//! one versioned record, on memory, a local folder, and a local folder shared by several
//! processes.

mod common;

use common::{
    Counter, Fault, FaultStore, Link, assert_one_chain, check_counter, check_versions, counters,
    every_backend, hammer, increment,
};
use storage_cas::Collection;
use storage_core::Bucket;

const WRITERS: usize = 16;
const INCREMENTS: usize = 50;
const COMMITTERS: u64 = 8;
const COMMITS: u64 = 25;

/// Every writer and committer races on compare-and-swap alone (the real proof).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_and_committers_on_memory_and_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    for bucket in every_backend(dir.path()) {
        check_counter(&bucket, WRITERS, INCREMENTS, false).await;
        check_versions(&bucket, COMMITTERS, COMMITS, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_local_folder_with_local_queue() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local("fs", dir.path()).unwrap();
    check_counter(&bucket, WRITERS, INCREMENTS, true).await;
    check_versions(&bucket, COMMITTERS, COMMITS, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_with_lost_answers_and_timeouts() {
    // 10% of conditional writes are applied and then answered with a timeout, another 10%
    // time out before reaching the store.
    let store = FaultStore::on_conditional(|| match fastrand::u8(0..10) {
        0 => Some(Fault::LostAck),
        1 => Some(Fault::FailBefore),
        _ => None,
    });
    // With lost answers the in-process queue is on (the default): racing tasks in one
    // process could bury a lost write under more than WRITE_LOG_LEN commits before its
    // check, which is the `racing_writers_with_lost_answers_...` case below.
    let bucket = store.bucket();
    check_counter(&bucket, WRITERS, INCREMENTS, true).await;
    let lost = store.lost_acks.load(std::sync::atomic::Ordering::Relaxed);
    let failed = store
        .failed_before
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        lost > 0 && failed > 0,
        "faults were injected: {lost} lost answers, {failed} failed"
    );
}

#[test]
fn chain_check_detects_forks_and_gaps() {
    let link = |replaced: Option<&str>, wrote: &str| Link {
        replaced: replaced.map(str::to_string),
        wrote: wrote.to_string(),
    };
    // Sanity check of the check itself: a log with a fork is rejected.
    let fork = [link(None, "a"), link(Some("a"), "b"), link(Some("a"), "c")];
    let forked = std::panic::catch_unwind(|| assert_one_chain(&fork, "c"));
    assert!(forked.is_err(), "a fork must be detected");
    let gap = [link(None, "a"), link(Some("x"), "b")];
    assert!(std::panic::catch_unwind(|| assert_one_chain(&gap, "b")).is_err());
    // And the positive control: one unbroken chain passes.
    let chain = [link(None, "a"), link(Some("a"), "b"), link(Some("b"), "c")];
    assert_one_chain(&chain, "c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_committers_with_lost_answers() {
    let store = FaultStore::on_conditional(|| (fastrand::u8(0..8) == 0).then_some(Fault::LostAck));
    check_versions(&store.bucket(), COMMITTERS, COMMITS, true).await;
}

/// The worst case: every writer races on CAS alone while answers get lost. A lost write
/// may be buried under more commits than its log remembers; then it must come back as
/// `Ambiguous`, never be applied twice and never be counted as failed when it applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writers_with_lost_answers_are_exact_or_ambiguous() {
    let store = FaultStore::on_conditional(|| (fastrand::u8(0..10) == 0).then_some(Fault::LostAck));
    let c = counters(&store.bucket()).with_local_queue(false);
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut ambiguous, mut links) = (0u64, 0u64, Vec::new());
            let mut unplaced = 0u64;
            for _ in 0..INCREMENTS {
                match c.update_with("hot", increment).await {
                    Ok(out) => {
                        ok += 1;
                        // A write found applied after its answer was lost, and superseded
                        // by more writes than the log keeps ETags for, knows no ETag: it
                        // cannot be placed in the chain.
                        match out.etag {
                            Some(wrote) => links.push(Link {
                                replaced: out.previous_etag,
                                wrote,
                            }),
                            None => unplaced += 1,
                        }
                    }
                    Err(storage_core::StorageError::Ambiguous { .. }) => ambiguous += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, ambiguous, links, unplaced)
        }));
    }
    let (mut ok, mut ambiguous, mut links, mut unplaced) = (0, 0, Vec::new(), 0);
    for t in tasks {
        let (o, a, l, u) = t.await.unwrap();
        ok += o;
        ambiguous += a;
        links.extend(l);
        unplaced += u;
    }
    let doc = c.get("hot").await.unwrap().unwrap();
    assert_eq!(ok + ambiguous, (WRITERS * INCREMENTS) as u64);
    assert!(
        doc.value.n >= ok && doc.value.n <= ok + ambiguous,
        "{} increments stored, {ok} confirmed, {ambiguous} unknown",
        doc.value.n
    );
    if ambiguous == 0 {
        assert_eq!(doc.value.n, ok);
        if unplaced == 0 {
            assert_one_chain(&links, &doc.etag);
        }
    }
    eprintln!(
        "racing with lost answers: {ok} confirmed ({unplaced} superseded without a known ETag), {ambiguous} ambiguous"
    );
}

// Several processes on one folder: the test binary runs itself as child writers.

const CHILD_ENV: &str = "STRATA_CAS_CONTENTION_CHILD_DIR";
const PROCESSES: usize = 4;
const TASKS_PER_PROCESS: usize = 4;
const PROCESS_INCREMENTS: usize = 15;

/// Runs only as a child of `writers_in_several_processes_share_one_folder`, which starts it
/// with `--ignored`: on its own it is not a test and is not counted as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of writers_in_several_processes_share_one_folder"]
async fn child_writer() {
    let dir = std::env::var(CHILD_ENV)
        .expect("child_writer runs as a child process, with its folder in the environment");
    let bucket = Bucket::local("fs", &dir).unwrap();
    let c = counters(&bucket);
    for link in hammer(&c, TASKS_PER_PROCESS, PROCESS_INCREMENTS).await {
        println!(
            "LINK {} {}",
            link.replaced.as_deref().unwrap_or("-"),
            link.wrote
        );
    }
}

#[test]
fn writers_in_several_processes_share_one_folder() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "child_writer",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, dir.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut links = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            // libtest may print "test child_writer ... " on the same line first.
            if let Some(rest) = line.find("LINK ").map(|i| &line[i + 5..]) {
                let (replaced, wrote) = rest.split_once(' ').unwrap();
                links.push(Link {
                    replaced: (replaced != "-").then(|| replaced.to_string()),
                    wrote: wrote.to_string(),
                });
            }
        }
    }
    let total = PROCESSES * TASKS_PER_PROCESS * PROCESS_INCREMENTS;
    assert_eq!(links.len(), total, "every child reported every commit");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let doc = rt.block_on(async {
        let bucket = Bucket::local("fs", dir.path()).unwrap();
        let c: Collection<Counter> = Collection::new(&bucket, "counters/{id}.json").unwrap();
        c.get("hot").await.unwrap().unwrap()
    });
    assert_eq!(doc.value.n, total as u64);
    assert_one_chain(&links, &doc.etag);
}

/// Collections built separately over the same bucket share the process's queue: with no
/// other process writing, no update ever needs a second attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separately_built_collections_share_the_local_queue() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = storage_core::Bucket::local("fs", dir.path()).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        // A new Collection per task, as code that builds one per request would.
        let c: Collection<Counter> = Collection::new(&bucket, "counters/{id}.json").unwrap();
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            for _ in 0..10 {
                let out = c.update_with("q", increment).await.unwrap();
                attempts.push(out.attempts);
            }
            attempts
        }));
    }
    for t in tasks {
        assert!(
            t.await.unwrap().iter().all(|&a| a == 1),
            "a conflict happened inside one process"
        );
    }
    let c: Collection<Counter> = Collection::new(&bucket, "counters/{id}.json").unwrap();
    assert_eq!(c.get("q").await.unwrap().unwrap().value.n, 160);
}
