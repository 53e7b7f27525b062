//! The same proofs on a real S3 server (moto, started by `cargo xtask test`).
//!
//! Without `STRATA_TEST_S3_ENDPOINT` these fail with "run `cargo xtask test`"; with
//! `STRATA_SKIP_S3=1` they are skipped and say so. Never run them against s3s-fs: its
//! conditional PUT is not atomic (see TESTING.md).

mod common;

use std::sync::Arc;

use common::{check_counter, check_versions};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use storage_cas::{Collection, VersionedRecords, WriteOpts};
use storage_core::{Layer, StorageError};
use storage_layers::chaos::{ChaosFault, ChaosLayer, ChaosTarget};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Doc {
    v: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_on_s3() {
    let Some(bucket) = strata_testkit::s3_bucket("cas-docs") else {
        return;
    };
    let c: Collection<Doc> = Collection::new(&bucket, "docs/{tenant}/{id}.json").unwrap();
    let w = c.create("t/a", &Doc { v: 1 }).await.unwrap();
    let err = c.create("t/a", &Doc { v: 2 }).await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
    let doc = c.get("t/a").await.unwrap().unwrap();
    assert_eq!(Some(&doc.etag), w.etag.as_ref());
    c.put_if_match("t/a", &Doc { v: 2 }, &doc.etag)
        .await
        .unwrap();
    let err = c
        .put_if_match("t/a", &Doc { v: 3 }, &doc.etag)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Precondition { .. }), "{err}");
    // S3 answers put-if-match on a missing key with 404: still a precondition failure.
    let err = c
        .put_if_match("t/none", &Doc { v: 3 }, &doc.etag)
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Precondition { .. }), "{err}");
    // Metadata round trip over HTTP (TTL, write id, user metadata).
    c.put_with(
        "t/b",
        &Doc { v: 1 },
        &WriteOpts::ttl(std::time::Duration::from_secs(3600)).with_metadata("owner", "ana"),
    )
    .await
    .unwrap();
    let b = c.get("t/b").await.unwrap().unwrap();
    assert!(b.expires_at.is_some(), "expiry read back from x-amz-meta");
    assert_eq!(b.metadata["owner"], "ana");
    let mut ids: Vec<String> = c.list().try_collect().await.unwrap();
    ids.sort();
    assert_eq!(ids, ["t/a", "t/b"]);
    // A DELETE with If-Match: a stale ETag (`doc` was read before the update above) is
    // refused and deletes nothing.
    let err = c.delete_if_match("t/a", &doc.etag).await.unwrap_err();
    assert!(matches!(err, StorageError::Precondition { .. }), "{err}");
    let current = c
        .get("t/a")
        .await
        .unwrap()
        .expect("the refused delete kept it");
    c.delete_if_match("t/a", &current.etag).await.unwrap();
    assert!(c.get("t/a").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_on_s3() {
    let Some(bucket) = strata_testkit::s3_bucket("cas-contention") else {
        return;
    };
    check_counter(&bucket, 16, 50, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_on_s3_with_local_queue() {
    let Some(bucket) = strata_testkit::s3_bucket("cas-queued") else {
        return;
    };
    check_counter(&bucket, 16, 50, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_on_s3_through_chaos() {
    let Some(bucket) = strata_testkit::s3_bucket("cas-chaos") else {
        return;
    };
    let chaos = ChaosLayer::default()
        .with_seed(5)
        .with_target(ChaosTarget::Writes)
        .with_error_rate(0.05)
        .with_fault(ChaosFault::Timeout)
        .with_lost_ack_rate(0.1);
    let bucket = bucket
        .to_builder()
        .store(chaos.layer(Arc::clone(bucket.store())))
        .build();
    check_counter(&bucket, 16, 50, true).await;
    assert!(chaos.stats().lost_acks > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_committers_on_s3() {
    let Some(bucket) = strata_testkit::s3_bucket("cas-records") else {
        return;
    };
    check_versions(&bucket, 8, 25, false).await;
    let recs: VersionedRecords<(u64, u64)> = VersionedRecords::new(&bucket, "hot").unwrap();
    assert_eq!(recs.revert("rec", 0).await.unwrap().version, 200);
}
