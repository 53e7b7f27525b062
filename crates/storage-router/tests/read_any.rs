//! Read-any over a source set: every policy, the object in each position and nowhere, a
//! failing bucket in every position, all failing; memory and local-folder buckets.
// Positions are what these tests are about, so they index by position.
#![allow(clippy::needless_range_loop)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Faults, faulty_bucket, faulty_local};
use storage_core::{Bucket, StorageError};
use storage_router::{
    AllBucketsFailed, HealthConfig, HealthTracker, Hedging, ReadPolicy, SourceSet,
};
use tokio::time::Instant;

const NAMES: [&str; 4] = ["agent", "server-001", "server-002", "server-003"];
const KEY: &str = "users/u1/tides/daily.json";

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Local,
}

struct Fixture {
    buckets: Vec<Bucket>,
    faults: Vec<Arc<Faults>>,
    _dirs: Vec<tempfile::TempDir>,
}

fn fixture(backend: Backend) -> Fixture {
    let mut buckets = Vec::new();
    let mut faults = Vec::new();
    let mut dirs = Vec::new();
    for name in NAMES {
        let (b, f) = match backend {
            Backend::Memory => faulty_bucket(name),
            Backend::Local => {
                let d = tempfile::tempdir().unwrap();
                let r = faulty_local(name, d.path());
                dirs.push(d);
                r
            }
        };
        buckets.push(b);
        faults.push(f);
    }
    Fixture {
        buckets,
        faults,
        _dirs: dirs,
    }
}

fn policies() -> [ReadPolicy; 4] {
    [
        ReadPolicy::Sequential,
        ReadPolicy::Parallel,
        ReadPolicy::Hedged(Hedging::fixed(Duration::from_millis(10))),
        ReadPolicy::hedged(),
    ]
}

/// Every read policy on every backend.
fn cases() -> impl Iterator<Item = (Backend, ReadPolicy)> {
    [Backend::Memory, Backend::Local]
        .into_iter()
        .flat_map(|backend| policies().map(|policy| (backend, policy)))
}

fn set(fx: &Fixture, policy: ReadPolicy) -> SourceSet {
    SourceSet::new("tide", fx.buckets.clone(), policy).unwrap()
}

/// Hedged reads that start the next bucket after 50 ms.
fn hedged_50ms() -> ReadPolicy {
    ReadPolicy::Hedged(Hedging::fixed(Duration::from_millis(50)))
}

/// Memory buckets where each `(position, value, ms)` of `copies` answers after `ms`, holding
/// `KEY` = `value` when there is one.
async fn timed(copies: &[(usize, Option<&str>, u64)]) -> Fixture {
    let fx = fixture(Backend::Memory);
    for &(pos, value, ms) in copies {
        if let Some(v) = value {
            fx.buckets[pos].put(KEY, v.to_string()).await.unwrap();
        }
        fx.faults[pos].set_latency(Duration::from_millis(ms));
    }
    fx
}

/// Which bucket answered `get(KEY)` and how long it took (on the paused clock).
/// The object in a primary that answers in 1 s and in a fallback that answers in 10 ms.
async fn slow_primary_fast_fallback() -> Fixture {
    timed(&[
        (0, Some("slow primary"), 1000),
        (1, Some("fast fallback"), 10),
    ])
    .await
}

async fn timed_get(s: &SourceSet) -> (String, Duration) {
    let start = Instant::now();
    let found = s.get(KEY).await.unwrap();
    (found.bucket, start.elapsed())
}

#[tokio::test]
async fn every_position_and_nowhere() {
    for (backend, policy) in cases() {
        for pos in 0..NAMES.len() {
            let fx = fixture(backend);
            fx.buckets[pos].put(KEY, format!("at-{pos}")).await.unwrap();
            let found = set(&fx, policy).get(KEY).await.unwrap();
            assert_eq!(found.bucket, NAMES[pos], "{backend:?} {policy:?} pos {pos}");
            assert_eq!(found.value.bytes, format!("at-{pos}"));
            assert!(found.skipped.is_empty());
        }
        let fx = fixture(backend);
        let err = set(&fx, policy).get(KEY).await.unwrap_err();
        assert!(err.is_not_found(), "{backend:?} {policy:?}: {err}");
        assert!(err.to_string().contains("tide"), "names the set: {err}");
    }
}

#[tokio::test]
async fn failing_bucket_in_every_position() {
    for (backend, policy) in cases() {
        for failing in 0..NAMES.len() {
            let fx = fixture(backend);
            // The object lives in the last bucket that is not the failing one.
            let holder = if failing == 3 { 2 } else { 3 };
            fx.buckets[holder].put(KEY, "data").await.unwrap();
            fx.faults[failing].set_down(true);
            let found = set(&fx, policy)
                .get(KEY)
                .await
                .unwrap_or_else(|e| panic!("{backend:?} {policy:?} failing {failing}: {e}"));
            assert_eq!(found.bucket, NAMES[holder]);
            assert!(
                found.skipped.iter().all(|f| f.bucket == NAMES[failing]),
                "{:?}",
                found.skipped
            );
            if failing < holder {
                // Tried before the hit under every policy: reported as skipped.
                assert_eq!(
                    found.skipped.len(),
                    1,
                    "{backend:?} {policy:?} failing {failing}"
                );
            }
        }
    }
}

#[tokio::test]
async fn all_failing_lists_each() {
    for (backend, policy) in cases() {
        let fx = fixture(backend);
        for f in &fx.faults {
            f.set_down(true);
        }
        let err = set(&fx, policy).get(KEY).await.unwrap_err();
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        let all = AllBucketsFailed::from_error(&err).expect("carries each failure");
        let names: Vec<&str> = all.failures.iter().map(|f| f.bucket.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, NAMES, "{backend:?} {policy:?}");
        for n in NAMES {
            assert!(err.to_string().contains(n), "{err}");
        }
    }
}

#[tokio::test]
async fn failing_plus_missing_is_not_found() {
    for (backend, policy) in cases() {
        let fx = fixture(backend);
        fx.faults[1].set_down(true);
        let err = set(&fx, policy).get(KEY).await.unwrap_err();
        assert!(
            err.is_not_found(),
            "{backend:?} {policy:?}: the buckets that answered said not found: {err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn parallel_prefers_priority_even_when_it_is_slower() {
    let fx = timed(&[(0, Some("primary"), 300), (2, Some("fallback"), 5)]).await;
    let start = Instant::now();
    let found = set(&fx, ReadPolicy::Parallel).get(KEY).await.unwrap();
    assert_eq!(found.bucket, "agent");
    assert_eq!(found.value.bytes, "primary");
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(300),
        "all started at once"
    );
}

#[tokio::test(start_paused = true)]
async fn parallel_answers_in_the_time_of_the_holder_not_the_sum() {
    let fx = timed(&[
        (0, None, 20),
        (1, None, 20),
        (2, None, 20),
        (3, Some("x"), 20),
    ])
    .await;
    let (_, took) = timed_get(&set(&fx, ReadPolicy::Parallel)).await;
    assert_eq!(took, Duration::from_millis(20));
    let (_, took) = timed_get(&set(&fx, ReadPolicy::Sequential)).await;
    assert_eq!(took, Duration::from_millis(80), "the seed's 4x");
}

#[tokio::test(start_paused = true)]
async fn hedged_starts_the_next_bucket_after_the_delay() {
    let fx = slow_primary_fast_fallback().await;
    let (bucket, took) = timed_get(&set(&fx, hedged_50ms())).await;
    assert_eq!(bucket, "server-001");
    assert_eq!(took, Duration::from_millis(60), "50 ms hedge + 10 ms read");
}

#[tokio::test(start_paused = true)]
async fn hedged_moves_on_at_once_after_a_miss() {
    let fx = timed(&[(0, None, 5), (1, Some("x"), 10)]).await;
    let (bucket, took) = timed_get(&set(&fx, hedged_50ms())).await;
    assert_eq!(bucket, "server-001");
    assert_eq!(
        took,
        Duration::from_millis(15),
        "no waiting for the hedge delay"
    );
}

#[tokio::test(start_paused = true)]
async fn hedged_does_not_start_the_next_bucket_when_the_first_is_quick() {
    let fx = timed(&[(0, Some("x"), 20)]).await;
    set(&fx, hedged_50ms()).get(KEY).await.unwrap();
    assert_eq!(fx.faults[1].gets(), 0, "no hedge was needed");
}

#[tokio::test(start_paused = true)]
async fn recent_failures_demote_a_bucket_for_a_while() {
    let fx = fixture(Backend::Memory);
    fx.buckets[1].put(KEY, "x").await.unwrap();
    let health = HealthTracker::new(HealthConfig {
        demote_after: 2,
        demote_for: Duration::from_secs(30),
    });
    let s = set(&fx, ReadPolicy::Sequential).with_health(health.clone());
    fx.faults[0].set_down(true);
    for _ in 0..2 {
        let found = s.get(KEY).await.unwrap();
        assert_eq!(found.skipped.len(), 1);
    }
    let order: Vec<String> = s
        .priority_order()
        .iter()
        .map(|b| b.name().to_string())
        .collect();
    assert_eq!(order, ["server-001", "server-002", "server-003", "agent"]);
    let snap = health.snapshot("agent", None);
    assert!(snap.is_demoted(), "{snap:?}");
    assert_eq!(snap.errors, 2);
    // Demoted: the next read goes straight to the healthy buckets.
    let found = s.get(KEY).await.unwrap();
    assert!(found.skipped.is_empty(), "agent was not tried first");
    assert_eq!(health.snapshot("agent", None).errors, 2);
    // The demotion passes.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(s.priority_order()[0].name(), "agent");
}

#[tokio::test]
async fn get_from_a_named_bucket_validates_the_name() {
    let fx = fixture(Backend::Memory);
    fx.buckets[2].put(KEY, "x").await.unwrap();
    let s = set(&fx, ReadPolicy::Sequential);
    assert_eq!(s.get_from("server-002", KEY).await.unwrap().bytes, "x");
    let err = s.get_from("TIDES_SERVER_009", KEY).await.unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }));
    let msg = err.to_string();
    for n in NAMES {
        assert!(msg.contains(n), "lists valid names: {msg}");
    }
}

#[tokio::test]
async fn head_reads_any_too() {
    let fx = fixture(Backend::Memory);
    fx.buckets[3].put(KEY, "four").await.unwrap();
    let found = set(&fx, ReadPolicy::Parallel).head(KEY).await.unwrap();
    assert_eq!((found.bucket.as_str(), found.value.size), ("server-003", 4));
}

/// One set, one behaviour: the set's store reads under the set's policy, through the same
/// engine (and counters) as `get`. Before the one engine, the store was always sequential
/// and this read waited the full second.
#[tokio::test(start_paused = true)]
async fn a_source_sets_store_follows_the_sets_policy() {
    use object_store::{ObjectStoreExt, path::Path};
    let fx = slow_primary_fast_fallback().await;
    let s = set(&fx, hedged_50ms());
    let (bucket, took) = timed_get(&s).await;
    assert_eq!(
        (bucket.as_str(), took),
        ("server-001", Duration::from_millis(60))
    );
    let start = Instant::now();
    let bytes = strata_testkit::body(&s.store(), KEY).await;
    assert_eq!(
        (&bytes[..], start.elapsed()),
        (&b"fast fallback"[..], Duration::from_millis(60))
    );
    let stats = s.read_stats();
    assert_eq!((stats.reads, stats.hedges, stats.extra_requests), (2, 2, 2));
    // Parallel: the primary's copy wins, in the primary's time, for both.
    let s = s.with_policy(ReadPolicy::Parallel);
    let start = Instant::now();
    assert_eq!(s.get(KEY).await.unwrap().value.bytes, "slow primary");
    let got = s.store().get(&Path::from(KEY)).await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), "slow primary");
    assert_eq!(start.elapsed(), Duration::from_millis(2000));
}
