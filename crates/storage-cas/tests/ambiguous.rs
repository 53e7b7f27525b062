//! Writes whose answer is lost or ambiguous: resolved by the write id, never applied twice,
//! never reported failed when they succeeded.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{Counter, Fault, FaultStore, increment};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, UpdateVersion};
use storage_cas::{
    BackoffStrategy, Collection, Updated, VersionedRecords, WRITE_ID_META, WRITE_LOG_META,
};
use storage_core::StorageError;

fn counters(store: &Arc<FaultStore>) -> Collection<Counter> {
    Collection::new(&store.bucket(), "counters/{id}.json")
        .unwrap()
        .with_backoff(BackoffStrategy::AGGRESSIVE)
}

/// Runs `work` on a thread and runtime of its own, as another writer would, and waits for
/// it: the store's fault hooks run inside a call, where the test's runtime cannot be entered.
fn on_another_thread(work: impl Future<Output = ()> + Send + 'static) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .unwrap();
}

/// The value of counter `id`, which must exist.
async fn value_of(c: &Collection<Counter>, id: &str) -> u64 {
    c.get(id).await.unwrap().unwrap().value.n
}

/// Counter `id` plus one, counting from 0 when it does not exist yet.
async fn count_up(c: &Collection<Counter>, id: &str) -> storage_core::Result<Updated<Counter>> {
    c.update_with(id, increment).await
}

/// Counter `id`, which must exist, plus `by`.
async fn add(c: &Collection<Counter>, id: &str, by: u64) -> storage_core::Result<Updated<Counter>> {
    c.update_with(id, |cur| {
        Ok(Some(Counter {
            n: cur.unwrap().n + by,
        }))
    })
    .await
}

/// Counters on a store whose every `n`th conditional write meets `fault`.
fn faulty_counters(n: u64, fault: Fault) -> (Arc<FaultStore>, Collection<Counter>) {
    let store = FaultStore::every_nth_conditional(n, fault);
    let c = counters(&store);
    (store, c)
}

#[tokio::test(start_paused = true)]
async fn lost_answers_on_every_write_never_double_apply() {
    // Every conditional write is applied and then answered with a timeout.
    let (store, c) = faulty_counters(1, Fault::LostAck);
    for _ in 0..20 {
        let out = count_up(&c, "c").await.unwrap();
        assert_eq!(
            out.attempts, 1,
            "resolved by the HEAD check, not by re-applying"
        );
        // The ETag reported is the one really stored.
        assert_eq!(c.get("c").await.unwrap().unwrap().etag, out.etag.unwrap());
    }
    assert_eq!(value_of(&c, "c").await, 20);
    assert_eq!(store.lost_acks.load(Ordering::Relaxed), 20);
}

#[tokio::test(start_paused = true)]
async fn writes_that_failed_before_applying_are_sent_again() {
    // Every other conditional write times out without reaching the store.
    let (store, c) = faulty_counters(2, Fault::FailBefore);
    for _ in 0..20 {
        count_up(&c, "c").await.unwrap();
    }
    assert_eq!(value_of(&c, "c").await, 20);
    assert_eq!(store.failed_before.load(Ordering::Relaxed), 20);
}

#[tokio::test(start_paused = true)]
async fn create_with_lost_answer_is_created_not_already_exists() {
    let (_store, c) = faulty_counters(1, Fault::LostAck);
    let w = c.create("new", &Counter { n: 7 }).await.unwrap();
    let doc = c.get("new").await.unwrap().unwrap();
    assert_eq!(Some(&doc.etag), w.etag.as_ref());
    assert!(!w.superseded);
    // A real second create is still refused.
    let err = c.create("new", &Counter { n: 8 }).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn applied_then_overwritten_is_reported_applied_with_its_own_etag() {
    let (store, c) = faulty_counters(1, Fault::LostAck);
    c.put("c", &Counter { n: 1 }).await.unwrap();
    let before = c.get("c").await.unwrap().unwrap();

    // Right after our write lands, another Strata writer replaces it (its CAS succeeds,
    // recording our write in its log), then our answer is lost.
    let rival = c.clone();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    store.set_after_apply(move |inner, path| {
        let rival = rival.clone();
        let (inner, path, tx) = (inner.clone(), path.clone(), tx.clone());
        on_another_thread(async move {
            // Record the ETag our write produced (as the rival read it), then overwrite.
            let ours = inner.head(&path).await.unwrap().e_tag.unwrap();
            tx.send(ours).unwrap();
            add(&rival, "c", 100).await.unwrap();
        });
    });
    let w = c
        .put_if_match("c", &Counter { n: 2 }, &before.etag)
        .await
        .unwrap();
    let ours = rx.try_recv().unwrap();
    assert!(w.superseded, "our write applied and was then replaced");
    assert_eq!(
        w.etag.unwrap(),
        ours,
        "the ETag our write produced, from the successor's log"
    );
    // Applied exactly once: 1 → 2 (ours) → 102 (rival).
    assert_eq!(value_of(&c, "c").await, 102);
}

#[tokio::test(start_paused = true)]
async fn stale_write_with_lost_answer_is_still_a_conflict() {
    // The write fails its precondition at the store; the answer is truthful.
    let (_store, c) = faulty_counters(1, Fault::LostAck);
    let first = c.create("c", &Counter { n: 1 }).await.unwrap();
    c.put_if_match("c", &Counter { n: 2 }, first.etag.as_deref().unwrap())
        .await
        .unwrap();
    let err = c
        .put_if_match("c", &Counter { n: 3 }, first.etag.as_deref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Precondition { .. }), "{err}");
    assert_eq!(value_of(&c, "c").await, 2);
}

#[tokio::test(start_paused = true)]
async fn s3_409_conditional_request_conflict_is_retried_as_a_conflict() {
    // The first conditional write of each pair is refused with S3's 409.
    let (store, c) = faulty_counters(2, Fault::Conflict409);
    // storage-core maps the 409 to Precondition.
    let mapped = StorageError::from_object_store(
        "s3",
        object_store::Error::Generic {
            store: "S3",
            source: "Client error with status 409 Conflict: ConditionalRequestConflict".into(),
        },
    );
    assert!(
        matches!(mapped, StorageError::Precondition { .. }),
        "{mapped}"
    );

    let mut attempts = 0;
    for _ in 0..10 {
        let out = count_up(&c, "c").await.unwrap();
        attempts += out.attempts;
    }
    assert_eq!(value_of(&c, "c").await, 10);
    assert_eq!(store.conflicts_409.load(Ordering::Relaxed), 10);
    assert_eq!(attempts, 20, "each 409 cost one extra round");
    // put_if_match alone surfaces it as Precondition.
    let doc = c.get("c").await.unwrap().unwrap();
    let err = c
        .put_if_match("c", &Counter { n: 0 }, &doc.etag)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Precondition { ref key, .. } if key == "counters/c.json"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn delete_if_match_with_lost_answer_succeeds() {
    let store = FaultStore::new(|_, _, _| None);
    let c = counters(&store);
    let w = c.create("c", &Counter { n: 1 }).await.unwrap();
    store.lost_delete_acks.store(1, Ordering::Relaxed);
    c.delete_if_match("c", w.etag.as_deref().unwrap())
        .await
        .unwrap();
    assert!(c.get("c").await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn versioned_commits_with_lost_answers_are_contiguous() {
    let store = FaultStore::every_nth_conditional(2, Fault::LostAck);
    let recs: VersionedRecords<u64> = VersionedRecords::new(&store.bucket(), "things").unwrap();
    for i in 0..10u64 {
        assert_eq!(recs.commit("a", &i).await.unwrap().version, i);
    }
    let h = recs.history("a").await.unwrap();
    assert_eq!(
        h.iter().map(|v| v.version).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(recs.get("a").await.unwrap().unwrap().version, 9);
}

#[tokio::test]
async fn write_id_is_stored_in_metadata() {
    let store = FaultStore::new(|_, _, _| None);
    let c = counters(&store);
    c.create("c", &Counter { n: 1 }).await.unwrap();
    let info = store.bucket().head("counters/c.json").await.unwrap();
    assert_eq!(info.metadata[WRITE_ID_META].len(), 8);
    assert!(
        !info.metadata.contains_key(WRITE_LOG_META),
        "a creation has no history"
    );
    // A raw conditional put by a non-Strata client still works against our ETag.
    let path = object_store::path::Path::from("counters/c.json");
    let e_tag = info.etag.clone();
    store
        .put_opts(
            &path,
            "{\"n\":5}".into(),
            PutOptions::from(PutMode::Update(UpdateVersion {
                e_tag,
                version: None,
            })),
        )
        .await
        .unwrap();
    assert_eq!(value_of(&c, "c").await, 5);
}

/// Rivals commit `rivals` increments right after our write lands and before its (lost)
/// answer comes back; returns what our `put_if_match` reported and the final value.
async fn lost_answer_then_rivals(
    rivals: usize,
) -> (storage_core::Result<storage_cas::Written>, u64) {
    let (store, c) = faulty_counters(1, Fault::LostAck);
    c.put("c", &Counter { n: 1 }).await.unwrap();
    let before = c.get("c").await.unwrap().unwrap();
    let rival = c.clone();
    store.set_after_apply(move |_, _| {
        let rival = rival.clone();
        on_another_thread(async move {
            for _ in 0..rivals {
                add(&rival, "c", 1).await.unwrap();
            }
        });
    });
    let r = c.put_if_match("c", &Counter { n: 2 }, &before.etag).await;
    (r, value_of(&c, "c").await)
}

#[tokio::test(start_paused = true)]
async fn lost_answer_is_resolved_while_the_log_remembers_it() {
    // 40 rivals: more than the fixed 16-entry log of earlier versions remembered.
    let (r, n) = lost_answer_then_rivals(40).await;
    let w = r.unwrap();
    assert!(w.superseded);
    assert_eq!(n, 2 + 40, "ours applied once, then every rival");
}

#[tokio::test(start_paused = true)]
async fn lost_answer_beyond_the_log_is_ambiguous_never_repeated() {
    // The log is bounded by the 2 KiB metadata budget: 400 rivals are more than it holds.
    let (r, n) = lost_answer_then_rivals(400).await;
    let err = r.unwrap_err();
    assert!(matches!(err, StorageError::Ambiguous { .. }), "{err}");
    assert!(!err.is_retryable() && !err.is_conflict());
    // Our write applied exactly once (it was not repeated), then every rival's.
    assert_eq!(n, 2 + 400);
}

#[tokio::test(start_paused = true)]
async fn lost_create_answer_with_a_short_chain_is_decided() {
    // Another writer created the document first: the chain from its creation is in view,
    // so a lost create of ours that did not apply is a plain AlreadyExists.
    // Writes 0..=3 are the rival's; ours (write 4) times out before reaching the store.
    let store = FaultStore::new(|n, _, _| (n == 4).then_some(Fault::FailBefore));
    let c = counters(&store);
    let rival = counters(&store);
    rival.create("d", &Counter { n: 10 }).await.unwrap();
    for _ in 0..3 {
        add(&rival, "d", 1).await.unwrap();
    }
    let err = c.create("d", &Counter { n: 0 }).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
    assert_eq!(store.failed_before.load(Ordering::Relaxed), 1);
    assert_eq!(value_of(&c, "d").await, 13);
}
