//! A build without the `parquet` feature (`cargo test -p storage-manifest
//! --no-default-features`): JSON/JSONL datasets work, and every Parquet path is a clear
//! `NotSupported` naming the feature, before anything is written and never as a partial answer.

#![cfg(not(feature = "parquet"))]

mod common;

use futures::{StreamExt, TryStreamExt};
use serde_json::Value;
use storage_core::{Bucket, StorageError};
use storage_manifest::{
    Dataset, Format, ManifestEntry, ReadOptions, SearchQuery, data_key, new_id,
};

use common::*;

/// The error names the missing feature and both ways to turn it on.
fn assert_names_the_feature(err: &StorageError, what: &str) {
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in [
        what,
        "`parquet` feature",
        "storage-manifest",
        "`manifest-parquet`",
    ] {
        assert!(msg.contains(needle), "`{needle}` missing from: {msg}");
    }
}

/// The test transactions, written as user `u`'s `finance` file in `format`.
async fn write_transactions(ds: &Dataset, format: Format) -> storage_core::Result<ManifestEntry> {
    ds.write("finance", "u", &transactions(), format).await
}

/// A dataset on a fresh memory bucket, and the bucket.
fn memory_dataset() -> (Bucket, Dataset) {
    let bucket = Bucket::memory("mem");
    (bucket.clone(), Dataset::new(bucket))
}

#[tokio::test]
async fn writing_parquet_names_the_feature_and_stores_nothing() {
    let (bucket, ds) = memory_dataset();
    let err = write_transactions(&ds, Format::Parquet).await.unwrap_err();
    assert_names_the_feature(&err, "writing a Parquet dataset file");
    let objects: Vec<_> = bucket.list("").try_collect().await.unwrap();
    assert!(objects.is_empty(), "{objects:?}");

    // The format itself still parses, so command lines and stored entries keep working.
    assert_eq!("parquet".parse::<Format>().unwrap(), Format::Parquet);
}

#[tokio::test]
async fn a_parquet_file_fails_every_read_instead_of_being_skipped() {
    let (bucket, ds) = memory_dataset();
    let jsonl = write_transactions(&ds, Format::Jsonl).await.unwrap();
    // A Parquet file a build with the feature wrote, listed in the manifest.
    let id = new_id(jan(15, 0));
    let key = data_key("finance", "u", &id, "parquet").unwrap();
    bucket
        .put(&key, &b"PAR1 not read here PAR1"[..])
        .await
        .unwrap();
    let parquet = ManifestEntry {
        key: key.clone(),
        id: id.clone(),
        format: Format::Parquet,
        rows: 3,
        bytes: 23,
        min_time: jan(15, 8),
        max_time: jan(16, 9),
        etag: None,
        created: jan(15, 0),
        time_field: Some("timestamp".into()),
        text: "coffee groceries".into(),
        text_truncated: false,
        tags: Default::default(),
    };
    let manifest = ds.manifest("finance", "u").unwrap();
    manifest.append(&[parquet]).await.unwrap();

    let err = ds.read("finance", "u", &id).await.unwrap_err();
    assert_names_the_feature(&err, &key);

    // read_all yields the JSONL file's records, then the error: never a clean, short end.
    let results: Vec<storage_core::Result<Value>> = ds
        .read_all("finance", "u", &ReadOptions::default())
        .await
        .unwrap()
        .collect()
        .await;
    let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_names_the_feature(err, &key);
    let err = ds
        .read_all("finance", "u", &ReadOptions::default())
        .await
        .unwrap()
        .try_collect::<Vec<Value>>()
        .await
        .unwrap_err();
    assert_names_the_feature(&err, &key);

    // Search from the manifest needs no file; a deep search reads them and fails clearly.
    let hits = ds
        .search("finance", "u", &SearchQuery::new("coffee"))
        .await
        .unwrap();
    assert_eq!(hits.total, 2);
    let err = ds
        .search("finance", "u", &SearchQuery::new("coffee").deep(true))
        .await
        .unwrap_err();
    assert_names_the_feature(&err, &key);

    // Rebuild would have to drop the file: it refuses and leaves the manifest as it was.
    let before = manifest.entries().await.unwrap();
    let err = ds.rebuild("finance", "u").await.unwrap_err();
    assert_names_the_feature(&err, "rebuilding the manifest of `finance/u`");
    assert!(err.to_string().contains(&key), "{err}");
    assert_eq!(manifest.entries().await.unwrap(), before);
    assert!(before.iter().any(|e| e.key == jsonl.key));

    // Verify only lists objects: it works, and finds nothing wrong.
    assert!(ds.verify("finance", "u").await.unwrap().is_clean());
}

#[tokio::test]
async fn json_and_jsonl_need_no_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local("local", dir.path()).unwrap();
    let entries = round_trip_every_format(&bucket).await;
    let formats: Vec<Format> = entries.iter().map(|e| e.format).collect();
    assert_eq!(formats, vec![Format::Json, Format::Jsonl]);
    // Compaction wrote a JSONL part: no Parquet file anywhere.
    let keys = strata_testkit::keys(bucket.list("")).await;
    assert!(keys.iter().any(|k| k.contains("/compacted/")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with(".parquet")), "{keys:?}");
}
