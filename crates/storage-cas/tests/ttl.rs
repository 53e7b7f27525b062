//! TTLs with an injected clock: expiry in metadata, expired reads as absent, sweep.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use storage_cas::ttl::{EXPIRES_AT_META, TtlDefaults, is_expired};
use storage_cas::{
    Attachment, Clock, Collection, ManualClock, SweepOptions, UpdateAction, WriteOpts,
};
use storage_core::{Bucket, StorageError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Run {
    status: String,
}

fn run(s: &str) -> Run {
    Run { status: s.into() }
}

const HOUR: Duration = Duration::from_secs(3600);

fn start() -> DateTime<Utc> {
    "2026-05-01T00:00:00Z".parse().unwrap()
}

fn setup(bucket: &Bucket) -> (Collection<Run>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start()));
    let ttls = TtlDefaults::recommended();
    let c = Collection::new(bucket, "runs/{thread}/{id}.json")
        .unwrap()
        .with_ttl(ttls.get("run"))
        .with_clock(clock.clone());
    (c, clock)
}

/// Write run `id` named `name` with a one-hour TTL, then move the clock two hours on: it has
/// expired.
async fn write_expired(c: &Collection<Run>, clock: &ManualClock, id: &str, name: &str) {
    c.put_with(id, &run(name), &WriteOpts::ttl(HOUR))
        .await
        .unwrap();
    clock.advance(2 * HOUR);
}

/// A sweep deleting `n` keys a call.
fn in_batches_of(n: usize) -> SweepOptions {
    SweepOptions {
        batch_size: n,
        ..Default::default()
    }
}

/// A memory collection holding run `t/r` named `name`, expired (see [`write_expired`]).
async fn expired_on_memory(name: &str) -> (Collection<Run>, Arc<ManualClock>) {
    let (c, clock) = setup(&Bucket::memory("m"));
    write_expired(&c, &clock, "t/r", name).await;
    (c, clock)
}

#[tokio::test]
async fn expiry_is_stored_in_metadata_and_expired_reads_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    for bucket in common::every_backend(dir.path()) {
        let (c, clock) = setup(&bucket);
        let w = c.put("t/r1", &run("queued")).await.unwrap();
        assert_eq!(w.expires_at, Some(start() + chrono::Duration::hours(24)));
        let info = bucket.head("runs/t/r1.json").await.unwrap();
        assert_eq!(info.metadata[EXPIRES_AT_META], "2026-05-02T00:00:00Z");
        assert!(!is_expired(&info.metadata, clock.now()));

        // Per-write TTL and "never" override the collection default.
        c.put_with("t/short", &run("x"), &WriteOpts::ttl(HOUR))
            .await
            .unwrap();
        c.put_with("t/forever", &run("x"), &WriteOpts::no_ttl())
            .await
            .unwrap();
        assert!(
            !bucket
                .head("runs/t/forever.json")
                .await
                .unwrap()
                .metadata
                .contains_key(EXPIRES_AT_META)
        );

        clock.advance(HOUR);
        assert!(
            c.get("t/short").await.unwrap().is_none(),
            "expired at exactly its TTL"
        );
        assert!(c.get("t/r1").await.unwrap().is_some());
        assert!(!c.exists("t/short").await.unwrap());
        let err = c.get_checked("t/short").await.unwrap_err();
        assert!(
            matches!(err, StorageError::Expired { ref expired_at, .. } if expired_at == "2026-05-01T01:00:00Z"),
            "{err}"
        );
        let stale = c.get_including_expired("t/short").await.unwrap().unwrap();
        assert!(stale.is_expired_at(clock.now()));
        assert_eq!(stale.value, run("x"));

        clock.advance(Duration::from_secs(365 * 24 * 3600));
        assert!(c.get("t/r1").await.unwrap().is_none());
        assert!(c.get("t/forever").await.unwrap().is_some());
    }
}

#[tokio::test]
async fn expired_documents_are_replaced_by_create_and_update_with() {
    let (c, clock) = expired_on_memory("old").await;
    let old_etag = c.get_including_expired("t/r").await.unwrap().unwrap().etag;

    // create treats the expired document as absent and replaces exactly it.
    let w = c.create("t/r", &run("new")).await.unwrap();
    assert_eq!(c.get("t/r").await.unwrap().unwrap().value, run("new"));
    let err = c.create("t/r", &run("newer")).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");

    // update_with sees an expired document as None, and replaces it with put-if-match.
    write_expired(&c, &clock, "t/u", "old").await;
    let out = c
        .update_with("t/u", |cur| {
            assert!(cur.is_none(), "expired reads as absent");
            Ok(Some(run("fresh")))
        })
        .await
        .unwrap();
    assert_eq!(out.action, UpdateAction::Created);
    assert!(
        out.previous_etag.is_some(),
        "it replaced the expired object by ETag"
    );
    // The fresh write got the collection's TTL again.
    let doc = c.get("t/u").await.unwrap().unwrap();
    assert_eq!(
        doc.expires_at,
        Some(clock.now() + chrono::Duration::hours(24))
    );
    assert_ne!(Some(old_etag), w.etag);
    // Deleting via update_with on an expired document is a no-op.
    clock.advance(48 * HOUR);
    let out = c.update_with("t/u", |_| Ok(None)).await.unwrap();
    assert_eq!(out.action, UpdateAction::Unchanged);
}

#[tokio::test]
async fn sweep_removes_only_expired_documents_and_their_attachments() {
    let dir = tempfile::tempdir().unwrap();
    for bucket in common::every_backend(dir.path()) {
        let (c, clock) = setup(&bucket);
        for i in 0..25 {
            let ttl = if i % 5 == 0 {
                WriteOpts::no_ttl()
            } else {
                WriteOpts::ttl(HOUR * (i % 3 + 1))
            };
            c.put_with(&format!("t/r{i}"), &run("x"), &ttl)
                .await
                .unwrap();
        }
        c.put_attachment(
            "t/r1",
            "log.txt",
            Attachment::new("log").with_content_type("text/plain"),
        )
        .await
        .unwrap();
        c.put_attachment("t/r1", "out/result.bin", Attachment::new(vec![1, 2, 3]))
            .await
            .unwrap();
        c.put_attachment("t/r0", "keep.txt", Attachment::new("keep"))
            .await
            .unwrap();

        // Nothing has expired yet.
        let r = c.sweep().await.unwrap();
        assert_eq!((r.scanned, r.expired, r.deleted), (25, 0, 0));

        // After 1 h: ttl 1h docs expire (i % 3 == 0 and not i % 5 == 0).
        clock.advance(HOUR);
        let expect: Vec<usize> = (0..25).filter(|i| i % 5 != 0 && i % 3 == 0).collect();
        let r = c.sweep_with(in_batches_of(4)).await.unwrap();
        assert_eq!(r.expired as usize, expect.len());
        assert_eq!(r.deleted as usize, expect.len());
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        for i in 0..25 {
            let gone = expect.contains(&i);
            let stored = bucket.exists(format!("runs/t/r{i}.json")).await.unwrap();
            assert_eq!(stored, !gone, "r{i}");
        }

        // After 3 h everything with a TTL is gone, attachments of swept docs too.
        clock.advance(2 * HOUR);
        let r = c.sweep().await.unwrap();
        assert_eq!(r.attachments_deleted, 2);
        let mut left: Vec<String> = c.list().try_collect().await.unwrap();
        left.sort();
        assert_eq!(left, ["t/r0", "t/r10", "t/r15", "t/r20", "t/r5"]);
        assert!(c.list_attachments("t/r1").await.unwrap().is_empty());
        assert_eq!(c.list_attachments("t/r0").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn sweep_without_conditional_delete_uses_batches_or_refuses() {
    let clock = Arc::new(ManualClock::new(start()));
    // object_store's InMemory: atomic conditional puts, no conditional delete.
    let inner: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let store = storage_core::Declared::new(inner, storage_core::Capabilities::MEMORY);
    let c: Collection<Run> = Collection::from_store(Arc::new(store), "runs/{id}.json")
        .unwrap()
        .with_ttl(HOUR)
        .with_clock(clock.clone());
    for i in 0..10 {
        c.put(&format!("r{i}"), &run("x")).await.unwrap();
    }
    clock.advance(HOUR);
    let err = c
        .sweep_with(SweepOptions {
            require_conditional_delete: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
    assert!(
        c.get_including_expired("r0").await.unwrap().is_some(),
        "nothing deleted"
    );
    let r = c.sweep_with(in_batches_of(3)).await.unwrap();
    assert_eq!((r.scanned, r.expired, r.deleted), (10, 10, 10));
    assert!(c.get_including_expired("r0").await.unwrap().is_none());
}

#[tokio::test]
async fn a_document_refreshed_after_the_sweep_check_survives() {
    // The sweep deletes with delete-if-match on the ETag its HEAD found expired; a writer
    // refreshing the document in between must win.
    let (c, _) = expired_on_memory("x").await;
    let expired = c.get_including_expired("t/r").await.unwrap().unwrap();
    c.put("t/r", &run("refreshed")).await.unwrap();
    // What the sweep would do after its HEAD saw `expired`:
    let err = c.delete_if_match("t/r", &expired.etag).await.unwrap_err();
    assert!(matches!(err, StorageError::Precondition { .. }), "{err}");
    assert_eq!(c.get("t/r").await.unwrap().unwrap().value, run("refreshed"));
}
