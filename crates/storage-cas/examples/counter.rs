//! A JSON counter that many writers update at once without losing an increment.
//!
//! `cargo run -p storage-cas --example counter`
//!
//! On a local folder in a temporary directory (no credentials, no server) it:
//! 1. lets 2 independent "processes" (two collections over the same folder, each with
//!    4 tasks and the in-process queue switched off, so they race on ETag
//!    compare-and-swap alone) add 1 to one counter 20 times each, and checks the total is
//!    exactly 160;
//! 2. shows an explicit compare-and-swap with a stale ETag being refused;
//! 3. writes a session document with a 1-hour TTL under a manual clock, moves the clock
//!    past the expiry, and shows the document reads as absent and is swept.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use storage_cas::{BackoffStrategy, Collection, ManualClock, WriteOpts};
use storage_core::{Bucket, StorageError};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Counter {
    value: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    user: String,
}

const TASKS_PER_PROCESS: usize = 4;
const INCREMENTS_PER_TASK: u64 = 20;

#[tokio::main]
async fn main() -> storage_core::Result<()> {
    let dir = tempfile::tempdir().expect("create a temporary folder");

    // 1. Contention: two handles on the same folder stand in for two processes.
    let mut handles = Vec::new();
    for _process in 0..2 {
        let bucket = Bucket::local("counters", dir.path())?;
        let counters: Collection<Counter> = Collection::new(&bucket, "counters/{id}.json")?
            .with_backoff(BackoffStrategy::AGGRESSIVE)
            .with_local_queue(false);
        handles.push(counters);
    }
    handles[0].put("visits", &Counter::default()).await?;

    let mut tasks = Vec::new();
    for counters in &handles {
        for _ in 0..TASKS_PER_PROCESS {
            let c = counters.clone();
            tasks.push(tokio::spawn(async move {
                let mut extra_rounds = 0u32;
                for _ in 0..INCREMENTS_PER_TASK {
                    let done = c
                        .update_with("visits", |cur| {
                            let mut v = cur.unwrap_or_default();
                            v.value += 1;
                            Ok(Some(v))
                        })
                        .await?;
                    extra_rounds += done.attempts - 1;
                }
                Ok::<_, StorageError>(extra_rounds)
            }));
        }
    }
    let mut retries = 0;
    for t in tasks {
        retries += t.await.expect("writer task panicked")?;
    }
    let expected = 2 * TASKS_PER_PROCESS as u64 * INCREMENTS_PER_TASK;
    let total = handles[1]
        .get("visits")
        .await?
        .expect("counter exists")
        .value
        .value;
    println!(
        "counter after {} writers x {INCREMENTS_PER_TASK} increments: {total} (expected {expected}); \
         {retries} compare-and-swap conflict(s) detected and retried",
        2 * TASKS_PER_PROCESS
    );
    assert_eq!(total, expected, "no increment may be lost");

    // 2. Explicit compare-and-swap: the second writer holding the same ETag loses.
    let counters = &handles[0];
    let seen = counters.get("visits").await?.expect("counter exists");
    counters
        .put_if_match(
            "visits",
            &Counter {
                value: seen.value.value + 100,
            },
            &seen.etag,
        )
        .await?;
    let stale = counters
        .put_if_match("visits", &Counter { value: 0 }, &seen.etag)
        .await;
    let Err(refused) = stale else {
        panic!("put_if_match with a stale ETag must be refused");
    };
    assert!(matches!(refused, StorageError::Precondition { .. }));
    println!("put_if_match with a stale ETag: refused ({refused})");
    assert_eq!(
        counters.get("visits").await?.expect("counter").value.value,
        expected + 100
    );

    // 3. TTL under a manual clock: expired documents read as absent and are swept.
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let sessions: Collection<Session> = Collection::new(
        &Bucket::local("sessions", dir.path())?,
        "sessions/{id}.json",
    )?
    .with_clock(clock.clone());
    sessions
        .put_with(
            "s1",
            &Session { user: "ana".into() },
            &WriteOpts::ttl(Duration::from_secs(3600)),
        )
        .await?;
    let live = sessions.get("s1").await?.expect("session is live");
    println!("session s1 expires at {:?}", live.expires_at);
    assert!(live.expires_at.is_some());

    clock.advance(Duration::from_secs(3601));
    assert!(
        sessions.get("s1").await?.is_none(),
        "expired reads as absent"
    );
    let swept = sessions.sweep().await?;
    println!(
        "after 1 h 1 s: s1 reads as absent; sweep scanned {}, deleted {}",
        swept.scanned, swept.deleted
    );
    assert_eq!(swept.deleted, 1);
    assert!(sessions.get_including_expired("s1").await?.is_none());
    println!("done");
    Ok(())
}
