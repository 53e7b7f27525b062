//! Time-range reads of Parquet fetch only the row groups (and columns) they need: proven by
//! counting the bytes the store returns.

#![cfg(feature = "parquet")]

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};
use storage_core::Bucket;
use storage_manifest::{
    Dataset, EntryFilter, Format, Manifest, ManifestEntry, ManifestOptions, ReadOptions, TimeRange,
    WriteOptions, new_id,
};

use strata_testkit::CountingStore;

fn counting_bucket() -> (Bucket, Arc<CountingStore>) {
    CountingStore::wrap(&Bucket::memory("count"))
}

#[tokio::test]
async fn a_time_window_reads_a_fraction_of_a_parquet_file() {
    let (bucket, counter) = counting_bucket();
    let ds = Dataset::new(bucket);
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    // 10 days × 1,000 rows, one row group per day.
    let records: Vec<Value> = (0..10_000)
        .map(|i| {
            let t = start + Duration::seconds(i * 86_400 / 1_000);
            json!({"timestamp": t.to_rfc3339(), "amount": i, "memo": format!("row {i} with some padding text")})
        })
        .collect();
    let opts = WriteOptions::default().with_row_group_rows(1_000);
    let e = ds
        .write_with("m", "u", &records, Format::Parquet, &opts)
        .await
        .unwrap();

    let day3 = TimeRange::between(start + Duration::days(3), start + Duration::days(4)).unwrap();
    let before = counter.bytes_read();
    let rows = ds
        .read_with(
            "m",
            "u",
            &e.id,
            &ReadOptions::default()
                .with_range(day3)
                .with_columns(["amount"]),
        )
        .await
        .unwrap();
    let read = counter.bytes_read() - before;
    assert_eq!(rows.len(), 1_000);
    assert_eq!(rows[0], json!({"amount": 3_000}));
    assert!(
        read * 5 < e.bytes,
        "one day of ten, one column of three: read {read} of {} bytes",
        e.bytes
    );
}

#[tokio::test]
async fn a_time_window_reads_a_fraction_of_a_compacted_manifest() {
    let (bucket, counter) = counting_bucket();
    let manifest = Manifest::new(bucket, "m", "u")
        .unwrap()
        .with_options(ManifestOptions {
            row_group_rows: 1_000,
            auto_compact_segments: None,
            ..Default::default()
        });
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    // 20,000 entries over 20 days, appended in batches of 1,000 (one segment each).
    for day in 0..20 {
        let entries: Vec<ManifestEntry> = (0..1_000)
            .map(|i| {
                let t = start + Duration::days(day) + Duration::seconds(i * 60);
                let id = new_id(t);
                ManifestEntry {
                    key: format!("m/u/2024/01/{:02}/{id}.jsonl", day + 1),
                    id,
                    format: Format::Jsonl,
                    rows: 1,
                    bytes: 100,
                    min_time: t,
                    max_time: t,
                    etag: Some(format!("\"{i:032x}\"")),
                    created: t,
                    time_field: Some("timestamp".into()),
                    text: format!("entry {day} {i} lorem ipsum dolor sit amet"),
                    text_truncated: false,
                    tags: Default::default(),
                }
            })
            .collect();
        manifest.append(&entries).await.unwrap();
    }
    manifest.compact_all().await.unwrap();
    let window = TimeRange::between(start + Duration::days(5), start + Duration::days(6)).unwrap();
    let filter = EntryFilter {
        range: window,
        ..Default::default()
    };
    let before = counter.bytes_read();
    let hits = manifest.scan(&filter).await.unwrap();
    let pruned = counter.bytes_read() - before;
    assert_eq!(hits.len(), 1_000);
    let before = counter.bytes_read();
    assert_eq!(manifest.entries().await.unwrap().len(), 20_000);
    let full = counter.bytes_read() - before;
    assert!(
        pruned * 5 < full,
        "pruned scan read {pruned} bytes, full scan {full}"
    );
}
