//! Collection behaviour on the memory and local-folder backends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use storage_cas::{BackoffStrategy, Collection, Jitter, UpdateAction, WriteOpts};
use storage_core::{Bucket, Capabilities, MemoryStore, StorageError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    text: String,
    n: u32,
}

fn msg(text: &str, n: u32) -> Msg {
    Msg {
        text: text.into(),
        n,
    }
}

/// Write `value` as another writer would, from inside an update closure (which is sync).
fn put_behind_back(c: &Collection<Msg>, id: &str, value: Msg) {
    let (c, id) = (c.clone(), id.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(c.put(&id, &value))
            .unwrap();
    })
    .join()
    .unwrap();
}

/// An update of document `k` that a rival beats every time (it rewrites the document between
/// each read and write), until the backoff gives up: the error it ends with.
async fn update_losing_every_race(c: &Collection<Msg>) -> StorageError {
    let rival = c.clone();
    c.update_with("k", |cur| {
        let cur = cur.unwrap();
        put_behind_back(&rival, "k", cur.clone());
        Ok(Some(cur))
    })
    .await
    .unwrap_err()
}

/// A write that tags the document with user metadata `owner`.
fn owned_by(owner: &str) -> WriteOpts {
    WriteOpts::default().with_metadata("owner", owner)
}

#[tokio::test]
async fn crud_round_trip_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for bucket in common::every_backend(dir.path()) {
        let p = bucket.provider().to_string();
        let c: Collection<Msg> = Collection::new(&bucket, "messages/{thread}/{id}.json").unwrap();
        assert!(c.get("t1/m1").await.unwrap().is_none(), "{p}");
        assert!(!c.exists("t1/m1").await.unwrap());

        let w = c.create("t1/m1", &msg("hi", 1)).await.unwrap();
        let doc = c.get("t1/m1").await.unwrap().unwrap();
        assert_eq!(doc.value, msg("hi", 1));
        assert_eq!(Some(&doc.etag), w.etag.as_ref(), "{p}");
        assert_eq!(doc.key, "messages/t1/m1.json");
        assert_eq!(doc.id, "t1/m1");
        assert!(
            doc.metadata.is_empty(),
            "{p}: strata-* metadata is hidden: {:?}",
            doc.metadata
        );
        assert!(c.exists("t1/m1").await.unwrap());
        let raw = bucket.head("messages/t1/m1.json").await.unwrap();
        assert_eq!(raw.content_type(), Some("application/json"), "{p}");

        // create on an existing document
        let err = c.create("t1/m1", &msg("again", 2)).await.unwrap_err();
        assert!(
            matches!(err, StorageError::AlreadyExists { .. }),
            "{p}: {err}"
        );

        // put_if_match: current ETag wins, stale ETag loses
        let w2 = c
            .put_if_match("t1/m1", &msg("edited", 2), &doc.etag)
            .await
            .unwrap();
        assert_ne!(w2.etag.as_ref(), Some(&doc.etag));
        // ...and so does put_if_match on a missing document.
        for id in ["t1/m1", "t1/none"] {
            let err = c
                .put_if_match(id, &msg("stale", 3), &doc.etag)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StorageError::Precondition { .. }),
                "{p} {id}: {err}"
            );
        }

        // unconditional put, with user metadata
        c.put_with("t1/m2", &msg("two", 2), &owned_by("ana"))
            .await
            .unwrap();
        c.put("t2/m1", &msg("other thread", 1)).await.unwrap();
        assert_eq!(
            c.get("t1/m2").await.unwrap().unwrap().metadata["owner"],
            "ana"
        );

        // list (stray objects and attachments are skipped)
        bucket.put("messages/t1/readme.txt", "stray").await.unwrap();
        bucket
            .put("messages/t1/m1.json.attachments/a.png", "png")
            .await
            .unwrap();
        let mut ids: Vec<String> = c.list().try_collect().await.unwrap();
        ids.sort();
        assert_eq!(ids, ["t1/m1", "t1/m2", "t2/m1"], "{p}");
        let mut t1: Vec<String> = c.list_in("t1").try_collect().await.unwrap();
        t1.sort();
        assert_eq!(t1, ["t1/m1", "t1/m2"]);

        // delete_if_match: stale refused, current accepted
        let err = c.delete_if_match("t1/m1", &doc.etag).await.unwrap_err();
        assert!(
            matches!(err, StorageError::Precondition { .. }),
            "{p}: {err}"
        );
        c.delete_if_match("t1/m1", w2.etag.as_deref().unwrap())
            .await
            .unwrap();
        assert!(c.get("t1/m1").await.unwrap().is_none());
        c.delete("t1/m2").await.unwrap();
        c.delete("t1/m2").await.unwrap(); // missing is fine
        assert!(!c.exists("t1/m2").await.unwrap());
    }
}

#[tokio::test]
async fn ids_cannot_escape_and_templates_are_checked() {
    let bucket = Bucket::memory("m");
    let c: Collection<Msg> = Collection::new(&bucket, "assistants/{id}.json").unwrap();
    for bad in ["../x", "a/b", "", ".."] {
        let err = c.put(bad, &msg("x", 0)).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{bad:?}: {err}"
        );
    }
    let err = Collection::<Msg>::new(&bucket, "assistants/{id}{x}.json").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("assistants/{id}{x}.json") && text.contains("one `{name}` placeholder"),
        "{text}"
    );
}

#[tokio::test]
async fn backend_without_conditional_writes_is_refused() {
    // A store that declares no conditional put.
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(MemoryStore::new());
    let declared = storage_core::Declared::new(store, Capabilities::S3.with_conditional_put(false));
    let plain = Bucket::builder("plain", Arc::new(declared)).build();
    let err = Collection::<Msg>::new(&plain, "a/{id}.json").unwrap_err();
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
    assert!(err.to_string().contains("last-writer-wins"), "{err}");
    let err = storage_cas::VersionedRecords::<Msg>::new(&plain, "users").unwrap_err();
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
}

#[tokio::test]
async fn foreign_store_works_as_declared_and_conditional_delete_is_never_faked() {
    // object_store's InMemory does atomic conditional puts but has no conditional delete:
    // declared as such, documents work and deletes-if-match are refused, never faked.
    let inner: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let declared = storage_core::Declared::new(inner, Capabilities::MEMORY);
    let c: Collection<Msg> = Collection::from_store(Arc::new(declared), "a/{id}.json").unwrap();
    let w = c.create("x", &msg("x", 1)).await.unwrap();
    let err = c
        .delete_if_match("x", w.etag.as_deref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
    assert!(c.exists("x").await.unwrap());
    // update_with returning None needs the conditional delete too.
    let err = c.update_with("x", |_| Ok(None)).await.unwrap_err();
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
    assert!(c.exists("x").await.unwrap());

    // Strata's own memory store reports its conditional delete through the contract.
    let c: Collection<Msg> =
        Collection::from_store(Arc::new(MemoryStore::new()), "a/{id}.json").unwrap();
    let w = c.create("x", &msg("x", 1)).await.unwrap();
    c.delete_if_match("x", w.etag.as_deref().unwrap())
        .await
        .unwrap();
    assert!(!c.exists("x").await.unwrap());
}

#[tokio::test]
async fn update_with_creates_replaces_deletes_and_noops() {
    let dir = tempfile::tempdir().unwrap();
    for bucket in common::every_backend(dir.path()) {
        let c: Collection<Msg> = Collection::new(&bucket, "c/{id}.json").unwrap();
        let created = c
            .update_with("k", |cur| {
                assert!(cur.is_none());
                Ok(Some(msg("new", 1)))
            })
            .await
            .unwrap();
        assert_eq!(created.action, UpdateAction::Created);
        assert_eq!(created.previous_etag, None);
        assert_eq!(created.attempts, 1);
        let replaced = c
            .update_with("k", |cur| {
                let mut m = cur.unwrap();
                m.n += 1;
                Ok(Some(m))
            })
            .await
            .unwrap();
        assert_eq!(replaced.action, UpdateAction::Replaced);
        assert_eq!(replaced.previous_etag, created.etag);
        assert_eq!(replaced.value, Some(msg("new", 2)));
        assert_eq!(
            c.get("k").await.unwrap().unwrap().etag,
            replaced.etag.unwrap()
        );

        let deleted = c.update_with("k", |_| Ok(None)).await.unwrap();
        assert_eq!(deleted.action, UpdateAction::Deleted);
        assert!(c.get("k").await.unwrap().is_none());
        let noop = c.update_with("k", |_| Ok(None)).await.unwrap();
        assert_eq!(noop.action, UpdateAction::Unchanged);
        assert!(c.get("k").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn update_with_keeps_user_metadata_and_closure_errors_stop_the_loop() {
    let bucket = Bucket::memory("m");
    let c: Collection<Msg> = Collection::new(&bucket, "c/{id}.json").unwrap();
    c.put_with("k", &msg("a", 1), &owned_by("ana"))
        .await
        .unwrap();
    c.update_with("k", |m| Ok(m.map(|m| Msg { n: m.n + 1, ..m })))
        .await
        .unwrap();
    let doc = c.get("k").await.unwrap().unwrap();
    assert_eq!(doc.metadata["owner"], "ana");
    assert_eq!(doc.value.n, 2);

    let mut calls = 0;
    let err = c
        .update_with("k", |_| {
            calls += 1;
            Err(StorageError::invalid_input("n", "must stay below 2"))
        })
        .await
        .unwrap_err();
    assert_eq!(calls, 1);
    assert!(err.to_string().contains("must stay below 2"), "{err}");
    assert_eq!(c.get("k").await.unwrap().unwrap().value.n, 2);
}

#[tokio::test]
async fn corrupt_documents_are_reported_not_overwritten() {
    let bucket = Bucket::memory("m");
    let c: Collection<Msg> = Collection::new(&bucket, "c/{id}.json").unwrap();
    bucket.put("c/bad.json", "{not json").await.unwrap();
    let err = c.get("bad").await.unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("c/bad.json"));
    let err = c
        .update_with("bad", |_| Ok(Some(msg("x", 0))))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert_eq!(bucket.get("c/bad.json").await.unwrap().bytes, "{not json");
}

/// A closure that writes behind update_with's back on its first calls, so the
/// conditional write must fail and the loop must retry.
#[tokio::test(start_paused = true)]
async fn conflicts_are_retried_with_backoff_and_exhaustion_reports_conflict() {
    let bucket = Bucket::memory("m");
    let strategy = BackoffStrategy::custom(3, Duration::from_millis(100), Duration::from_secs(1))
        .with_jitter(Jitter::None);
    let c: Collection<Msg> = Collection::new(&bucket, "c/{id}.json")
        .unwrap()
        .with_backoff(strategy);
    c.put("k", &msg("v", 0)).await.unwrap();

    // Interfere twice, then let it through: 3 attempts, 100 + 200 ms of backoff.
    let rival = c.clone();
    let mut interfere = 2;
    let started = tokio::time::Instant::now();
    let out = c
        .update_with("k", |cur| {
            let cur = cur.unwrap();
            if interfere > 0 {
                interfere -= 1;
                // Another writer commits between our read and our write.
                put_behind_back(
                    &rival,
                    "k",
                    Msg {
                        n: cur.n + 100,
                        ..cur.clone()
                    },
                );
            }
            Ok(Some(Msg {
                n: cur.n + 1,
                ..cur
            }))
        })
        .await
        .unwrap();
    assert_eq!(out.attempts, 3);
    assert_eq!(out.value.unwrap().n, 201, "re-applied on the rival's value");
    assert_eq!(started.elapsed(), Duration::from_millis(300));

    // A rival that always wins: 1 + 3 attempts, then Conflict with the last ETag seen.
    let err = update_losing_every_race(&c).await;
    match err {
        StorageError::Conflict {
            attempts,
            last_etag,
            key,
            ..
        } => {
            assert_eq!(attempts, 4);
            assert_eq!(key, "c/k.json");
            let now = bucket.head("c/k.json").await.unwrap().etag;
            assert!(
                last_etag.is_some() && last_etag != now,
                "last seen ETag is the stale one we read"
            );
        }
        other => panic!("expected Conflict, got {other}"),
    }

    // NONE: no retry at all.
    let c = c.with_backoff(BackoffStrategy::NONE);
    let err = update_losing_every_race(&c).await;
    assert!(
        matches!(err, StorageError::Conflict { attempts: 1, .. }),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn deadline_bounds_the_retry_loop() {
    let bucket = Bucket::memory("m");
    let strategy =
        BackoffStrategy::custom(1000, Duration::from_millis(100), Duration::from_millis(100))
            .with_jitter(Jitter::None)
            .with_deadline(Duration::from_millis(450));
    let c: Collection<Msg> = Collection::new(&bucket, "c/{id}.json")
        .unwrap()
        .with_backoff(strategy);
    c.put("k", &msg("v", 0)).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = update_losing_every_race(&c).await;
    // Attempts at 0, 100, 200, 300, 400 ms; the next would start at 500 > 450.
    assert!(
        matches!(err, StorageError::Conflict { attempts: 5, .. }),
        "{err}"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(400));
}

#[tokio::test]
async fn stores_say_what_they_can_do_without_probing() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Collection::<Msg>::from_store(
        Arc::new(storage_core::LocalStore::new(dir.path()).unwrap()),
        "a/{id}.json",
    )
    .unwrap();
    // Nothing was written to find out.
    let left: Vec<_> = ok.bucket().list("").try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    // object_store's plain LocalFileSystem claims nothing: refused.
    let plain: Arc<dyn object_store::ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let err = Collection::<Msg>::from_store(plain, "a/{id}.json").unwrap_err();
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
    assert!(err.to_string().contains("compare-and-swap"), "{err}");
}
