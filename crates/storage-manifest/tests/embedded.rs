//! Datasets and manifests on the embedded backends: memory and a local folder.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use serde_json::{Value, json};
use storage_core::{Bucket, StorageError};
#[cfg(feature = "parquet")]
use storage_manifest::{ColumnType, RecordSchema};
use storage_manifest::{
    Dataset, EtagCheck, Format, ManifestEntry, ManifestOptions, SearchQuery, WriteOptions,
};

use common::*;

#[tokio::test]
async fn round_trips_on_memory() {
    round_trip_every_format(&Bucket::memory("mem")).await;
}

#[tokio::test]
async fn round_trips_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    round_trip_every_format(&Bucket::local("local", dir.path()).unwrap()).await;
    // What was written is plain files in the documented layout.
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(dir.path().join("finance/user123").join(year).is_dir());
    assert!(
        dir.path()
            .join("manifests/finance/user123/head.json")
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_lose_no_append_on_memory() {
    concurrent_appends(&Bucket::memory("mem"), 8, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_lose_no_append_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_appends(&Bucket::local("local", dir.path()).unwrap(), 8, 100).await;
}

#[tokio::test]
async fn a_single_json_object_is_stored_as_itself() {
    let bucket = Bucket::memory("mem");
    let ds = Dataset::new(bucket.clone());
    let doc = json!({"amount": 50.0, "description": "Coffee"});
    let e = ds
        .write(
            "finance",
            "user123",
            std::slice::from_ref(&doc),
            Format::Json,
        )
        .await
        .unwrap();
    let stored: Value = serde_json::from_slice(&bucket.get(&e.key).await.unwrap().bytes).unwrap();
    assert_eq!(stored, doc);
    assert_eq!(
        ds.read("finance", "user123", &e.id).await.unwrap(),
        vec![doc]
    );
    // Without a time field the time range is the creation time.
    assert_eq!((e.min_time, e.max_time), (e.created, e.created));
}

#[tokio::test]
async fn bad_records_name_the_record_and_field_and_write_nothing() {
    let bucket = Bucket::memory("mem");
    let ds = Dataset::new(bucket.clone());
    let mixed = vec![
        json!({"amount": 1.5}),
        json!({"amount": 2}),
        json!({"amount": "three"}),
    ];
    #[cfg(feature = "parquet")]
    {
        let err = ds
            .write("finance", "u", &mixed, Format::Parquet)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("records[2].amount"), "{err}");
    }

    let bad_time = vec![
        json!({"timestamp": "2024-01-01T00:00:00Z"}),
        json!({"timestamp": "soon"}),
    ];
    for format in Format::ALL {
        let err = ds
            .write("finance", "u", &bad_time, format)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("records[1].timestamp"),
            "{format}: {err}"
        );
    }
    #[cfg(feature = "parquet")]
    {
        let err = ds
            .write("finance", "u", &[json!([1, 2])], Format::Parquet)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("records[0]"), "{err}");

        let declared = WriteOptions::default().with_schema(
            RecordSchema::new()
                .column("timestamp", ColumnType::Timestamp, false)
                .column("amount", ColumnType::Int64, false),
        );
        let err = ds
            .write_with(
                "finance",
                "u",
                &[json!({"timestamp": 0, "amount": 1, "memo": "x"})],
                Format::Parquet,
                &declared,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("records[0].memo"), "{err}");
    }

    let err = ds
        .write("finance", "", &mixed, Format::Jsonl)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`user`"), "{err}");
    let err = ds
        .write("manifests", "u", &mixed, Format::Jsonl)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("`module`") && err.to_string().contains("reserved"),
        "{err}"
    );
    let err = ds
        .write("finance", "u", &[], Format::Jsonl)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("records"), "{err}");

    // Nothing at all was stored: no data file, no manifest.
    let objects: Vec<_> = bucket.list("").try_collect().await.unwrap();
    assert!(objects.is_empty(), "{objects:?}");
}

#[cfg(feature = "parquet")]
#[tokio::test]
async fn a_declared_schema_is_used_as_is() {
    let ds = Dataset::new(Bucket::memory("mem"));
    let schema = RecordSchema::new()
        .column("timestamp", ColumnType::Timestamp, false)
        .column("amount", ColumnType::Float64, false)
        .column("note", ColumnType::String, true);
    let records = vec![
        json!({"timestamp": 1_705_305_600_000i64, "amount": 5}),
        json!({"timestamp": "2024-01-15T09:00:00Z", "amount": 2.5, "note": "x"}),
    ];
    let e = ds
        .write_with(
            "analytics",
            "u",
            &records,
            Format::Parquet,
            &WriteOptions::default().with_schema(schema),
        )
        .await
        .unwrap();
    let back = ds.read("analytics", "u", &e.id).await.unwrap();
    // Integers were widened to the declared float; epoch milliseconds came back as RFC 3339.
    assert_eq!(
        back,
        vec![
            json!({"timestamp": "2024-01-15T08:00:00Z", "amount": 5.0}),
            json!({"timestamp": "2024-01-15T09:00:00Z", "amount": 2.5, "note": "x"}),
        ]
    );
}

#[tokio::test]
async fn json_blobs_with_etag_checks() {
    let ds = Dataset::new(Bucket::memory("mem"));
    assert_eq!(
        Dataset::blob_key("user_settings").unwrap(),
        "json_blobs/user_settings.json"
    );
    assert!(Dataset::blob_key("../x").is_err());
    let first = ds
        .put_blob(
            "user_settings",
            &json!({"theme": "dark", "currency": "USD"}),
        )
        .await
        .unwrap();
    let (value, etag): (Value, _) = ds.get_blob("user_settings").await.unwrap();
    assert_eq!(value["theme"], "dark");
    assert_eq!(etag, first.etag);
    let etag = etag.unwrap();

    let key = Dataset::blob_key("user_settings").unwrap();
    assert_eq!(
        ds.check_etag_conflict(&key, &etag).await.unwrap(),
        EtagCheck::Unchanged
    );
    ds.put_blob_if_match("user_settings", &json!({"theme": "light"}), &etag)
        .await
        .unwrap();
    let check = ds.check_etag_conflict(&key, &etag).await.unwrap();
    assert!(check.is_conflict());
    assert!(matches!(check, EtagCheck::Changed { current: Some(_) }));
    let stale = ds
        .put_blob_if_match("user_settings", &json!({"theme": "x"}), &etag)
        .await;
    assert!(
        matches!(stale, Err(StorageError::Precondition { .. })),
        "{stale:?}"
    );
    assert!(matches!(
        ds.create_blob("user_settings", &json!({})).await,
        Err(StorageError::AlreadyExists { .. })
    ));
    ds.delete_blob("user_settings").await.unwrap();
    assert_eq!(
        ds.check_etag_conflict(&key, &etag).await.unwrap(),
        EtagCheck::Missing
    );
}

#[tokio::test]
async fn verify_finds_every_kind_of_drift_and_rebuild_repairs_it() {
    let bucket = Bucket::memory("mem");
    let ds = Dataset::new(bucket.clone());
    let opts = WriteOptions::default().with_tag("source", "bank");
    let mut entries = Vec::new();
    for format in Format::ALL.map(writable) {
        entries.push(
            ds.write_with("finance", "u1", &transactions(), format, &opts)
                .await
                .unwrap(),
        );
    }
    assert!(ds.verify("finance", "u1").await.unwrap().is_clean());

    bucket.delete(&entries[0].key).await.unwrap(); // missing
    bucket
        .put(&entries[1].key, "{\"changed\": true}\n")
        .await
        .unwrap(); // size + ETag
    let stray = format!(
        "finance/u1/2024/01/02/{}.jsonl",
        storage_manifest::new_id(jan(2, 0))
    );
    bucket
        .put(&stray, "{\"description\": \"stray coffee\"}\n")
        .await
        .unwrap(); // orphaned
    let report = ds.verify("finance", "u1").await.unwrap();
    assert_eq!(report.missing, vec![entries[0].key.clone()]);
    assert_eq!(report.orphaned, vec![stray.clone()]);
    assert_eq!(report.size_mismatch.len(), 1);
    assert_eq!(report.size_mismatch[0].0, entries[1].key);
    assert_eq!(report.etag_mismatch.len(), 1);

    bucket
        .put("finance/u1/notes.txt", "not a dataset file")
        .await
        .unwrap();
    let rebuilt = ds.rebuild("finance", "u1").await.unwrap();
    assert_eq!(rebuilt.entries, 3);
    assert_eq!(rebuilt.skipped.len(), 1);
    assert_eq!(rebuilt.skipped[0].0, "finance/u1/notes.txt");
    let report = ds.verify("finance", "u1").await.unwrap();
    assert_eq!(report.orphaned, vec!["finance/u1/notes.txt".to_string()]);
    assert!(
        report.missing.is_empty()
            && report.size_mismatch.is_empty()
            && report.etag_mismatch.is_empty()
    );

    // The rebuilt entries carry recomputed rows, time ranges, text and the stored tags.
    let all = ds
        .manifest("finance", "u1")
        .unwrap()
        .entries()
        .await
        .unwrap();
    let kept = all.iter().find(|e| e.key == entries[2].key).unwrap();
    assert_eq!(kept.rows, 3);
    assert_eq!(
        (kept.min_time, kept.max_time),
        (entries[2].min_time, entries[2].max_time)
    );
    assert_eq!(kept.tags.get("source").map(String::as_str), Some("bank"));
    assert_eq!(kept.text, entries[2].text);
    let hits = ds
        .search("finance", "u1", &SearchQuery::new("stray"))
        .await
        .unwrap();
    assert_eq!(hits.hits[0].entry.key, stray);
}

#[tokio::test]
async fn search_ranks_pages_and_deep_search_sees_past_the_index_cap() {
    let ds = Dataset::new(Bucket::memory("mem"));
    let search = async |q: SearchQuery| ds.search("m", "u", &q).await.unwrap();
    for i in 0..5 {
        let records = vec![
            json!({"timestamp": format!("2024-01-{:02}T00:00:00Z", i + 1), "memo": format!("coffee run r{i}")}),
        ];
        ds.write("m", "u", &records, Format::Jsonl).await.unwrap();
    }
    // An exact word scores higher than a word that only contains the term.
    ds.write(
        "m",
        "u",
        &[json!({"timestamp": "2024-01-09T00:00:00Z", "memo": "coffeehouse"})],
        Format::Jsonl,
    )
    .await
    .unwrap();
    let page1 = search(SearchQuery::new("coffee").page(0, 4)).await;
    assert_eq!(page1.total, 6);
    assert_eq!(page1.hits.len(), 4);
    assert_eq!(page1.next_offset, Some(4));
    // Exact matches first, newest first among equals.
    assert_eq!(page1.hits[0].entry.text, "coffee run r4");
    let page2 = search(SearchQuery::new("coffee").page(4, 4)).await;
    assert_eq!(page2.hits.len(), 2);
    assert_eq!(page2.next_offset, None);
    assert_eq!(page2.hits[1].entry.text, "coffeehouse");
    let one = search(SearchQuery::new("Coffee R3")).await;
    assert_eq!(one.total, 1, "every word must match");
    assert_eq!(one.hits[0].entry.text, "coffee run r3");
    let none = search(SearchQuery::new("coffee tea")).await;
    assert_eq!(none.total, 0);
    let both = search(SearchQuery::new("coffee run")).await;
    assert_eq!(both.total, 5);

    // 2,000 distinct words exceed the index cap: the last ones are only found by a deep search.
    let many: Vec<Value> = (0..2000)
        .map(|i| json!({"memo": format!("word{i:04}")}))
        .collect();
    let e = ds
        .write("m", "u", &many, writable(Format::Parquet))
        .await
        .unwrap();
    assert!(e.text_truncated);
    let shallow = search(SearchQuery::new("word1999")).await;
    assert_eq!(shallow.total, 0);
    let deep = search(SearchQuery::new("WORD1999").deep(true)).await;
    assert_eq!(deep.total, 1);
    assert_eq!(deep.hits[0].matched_rows, Some(1));
}

/// One record, `{"a": "b"}`, written as user `u`'s file of module `m` in `format`.
async fn write_one(ds: &Dataset, format: Format) -> storage_core::Result<ManifestEntry> {
    ds.write("m", "u", &[json!({"a": "b"})], format).await
}

#[tokio::test]
async fn presigned_urls_for_manifest_entries() {
    let plain = Dataset::new(Bucket::memory("mem"));
    let e = write_one(&plain, Format::Jsonl).await.unwrap();
    let err = plain
        .presign_entry(&e, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");

    let (bucket, _) = strata_testkit::FakeSigningStore::wrap(&Bucket::memory("mem"));
    let ds = Dataset::new(bucket);
    let e = write_one(&ds, writable(Format::Parquet)).await.unwrap();
    let url = ds
        .presign_entry(&e, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        url.as_str(),
        format!("https://signed.example/{}?m=Get&e=3600", e.key)
    );
    let err = ds
        .presign(&e.key, Duration::from_secs(8 * 24 * 3600))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("7 day"), "{err}");
}

#[tokio::test]
async fn a_failed_manifest_append_removes_the_data_file() {
    // A manifest whose CAS never succeeds: zero retries and a head that is replaced between
    // every read and write is hard to stage, so use a corrupt head instead (decoding fails).
    let bucket = Bucket::memory("mem");
    let ds = Dataset::new(bucket.clone()).with_manifest_options(ManifestOptions::default());
    bucket
        .put("manifests/m/u/head.json", "not json")
        .await
        .unwrap();
    let err = write_one(&ds, Format::Jsonl).await.unwrap_err();
    assert!(!err.to_string().is_empty());
    let data: Vec<_> = bucket.list("m/").try_collect().await.unwrap();
    assert!(data.is_empty(), "the data file was removed again: {data:?}");
    let segments: Vec<_> = bucket
        .list("manifests/m/u/segments/")
        .try_collect()
        .await
        .unwrap();
    assert!(
        segments.is_empty(),
        "the unlisted segment was removed again: {segments:?}"
    );
}

#[tokio::test]
async fn a_store_without_conditional_writes_is_refused_up_front() {
    // A bucket over a raw store whose capabilities promise no compare-and-swap: appends could
    // silently lose entries, so the manifest refuses to start.
    let raw: Arc<dyn storage_core::object_store::ObjectStore> =
        Arc::new(storage_core::object_store::memory::InMemory::new());
    let bucket = Bucket::builder("raw", raw).build();
    let ds = Dataset::new(bucket.clone());
    let err = write_one(&ds, Format::Jsonl).await.unwrap_err();
    assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
    let objects: Vec<_> = bucket.list("").try_collect().await.unwrap();
    assert!(objects.is_empty(), "nothing was written: {objects:?}");
}
