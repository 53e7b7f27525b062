//! Datasets and manifests on a real S3 server (moto, started by `cargo xtask test`).
//!
//! Without `STRATA_TEST_S3_ENDPOINT` these fail with "run `cargo xtask test`"; with
//! `STRATA_SKIP_S3=1` they print that they skipped.

mod common;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use storage_manifest::{Dataset, Format, SearchQuery};

use common::*;

#[tokio::test]
async fn round_trips_on_s3() {
    let Some(bucket) = strata_testkit::s3_bucket("manifest-roundtrip") else {
        return;
    };
    round_trip_every_format(&bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_on_s3_lose_nothing() {
    let Some(bucket) = strata_testkit::s3_bucket("manifest-concurrency") else {
        return;
    };
    // moto's conditional PUT is atomic (TESTING.md); kept smaller than the embedded test
    // because every append is a few HTTP round trips.
    concurrent_appends(&bucket, 8, 25).await;
}

#[tokio::test]
async fn presigned_download_of_a_manifest_entry_works_with_curl() {
    let Some(bucket) = strata_testkit::s3_bucket("manifest-presign") else {
        return;
    };
    let ds = Dataset::new(bucket);
    let e = ds
        .write(
            "finance",
            "user123",
            &[json!({"description": "Coffee"})],
            Format::Jsonl,
        )
        .await
        .unwrap();
    let url = ds
        .presign_entry(&e, Duration::from_secs(600))
        .await
        .unwrap();
    let out = strata_testkit::stdout_of(
        Command::new("curl").args(["-sS", "--fail", url.as_str()]),
        "curl",
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "{\"description\":\"Coffee\"}\n"
    );
}

#[tokio::test]
async fn round_trips_through_the_r2_configuration() {
    // The R2 config path (endpoint, region `auto`, R2 quirks) pointed at the moto server.
    let Some(bucket) = strata_testkit::r2_bucket("manifest-r2") else {
        return;
    };
    round_trip_every_format(&bucket).await;
}

/// A handle keeps the head it read and revalidates it by ETag (a conditional GET): on S3 a
/// search after another handle's append or compaction sees the change at once.
#[tokio::test]
async fn a_cached_head_is_revalidated_on_s3() {
    let Some(bucket) = strata_testkit::s3_bucket("manifest-head-cache") else {
        return;
    };
    let ds = Dataset::new(bucket.clone());
    let write = |text: &'static str| {
        let ds = ds.clone();
        async move {
            ds.write("m", "u", &[json!({ "memo": text })], Format::Jsonl)
                .await
                .unwrap()
        }
    };
    let first = write("coffee one").await;
    let reader = ds.manifest("m", "u").unwrap();
    let q = SearchQuery::new("coffee");
    for _ in 0..2 {
        let found = reader.search(&q).await.unwrap();
        assert_eq!(found.total, 1);
        assert_eq!(found.hits[0].entry, first);
    }
    write("coffee two").await;
    assert_eq!(reader.search(&q).await.unwrap().total, 2);
    ds.manifest("m", "u").unwrap().compact_all().await.unwrap();
    let after = reader.search(&q).await.unwrap();
    assert_eq!(after.total, 2);
    assert_eq!(
        after,
        ds.manifest("m", "u").unwrap().search(&q).await.unwrap()
    );
}
