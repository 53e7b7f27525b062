//! Checks shared by the memory, local-folder and S3 test files.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use serde_json::{Value, json};
use storage_core::Bucket;
use storage_manifest::{
    Compression, Dataset, EntryFilter, Format, Manifest, ManifestEntry, ReadOptions, SearchQuery,
    TimeRange, WriteOptions, new_id,
};

/// `format`, or JSONL in a build without the `parquet` feature (which cannot write Parquet),
/// for checks that need some file but not a Parquet one.
pub fn writable(format: Format) -> Format {
    if format == Format::Parquet && !cfg!(feature = "parquet") {
        Format::Jsonl
    } else {
        format
    }
}

pub fn jan(day: u32, hour: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, day, hour, 0, 0).unwrap()
}

pub fn transactions() -> Vec<Value> {
    vec![
        json!({"timestamp": "2024-01-15T08:00:00Z", "amount": 4.5, "description": "Coffee at Joe's", "meta": {"card": "visa"}}),
        json!({"timestamp": "2024-01-15T12:30:00Z", "amount": 42.25, "description": "Groceries", "meta": {"card": "amex"}}),
        json!({"timestamp": "2024-01-16T09:15:00Z", "amount": 3.75, "description": "coffee beans"}),
    ]
}

/// Write, read back and range-read one file in every format this build writes (Parquet with
/// the `parquet` feature); returns the entries.
pub async fn round_trip_every_format(bucket: &Bucket) -> Vec<ManifestEntry> {
    let ds = Dataset::new(bucket.clone());
    let records = transactions();
    let mut entries = Vec::new();
    let mut formats = vec![
        (Format::Json, Compression::Snappy),
        (Format::Jsonl, Compression::Snappy),
    ];
    if cfg!(feature = "parquet") {
        formats.push((Format::Parquet, Compression::Snappy));
        formats.push((Format::Parquet, Compression::Zstd(3)));
    }
    let n = formats.len();
    let parquet_files = formats
        .iter()
        .filter(|(f, _)| *f == Format::Parquet)
        .count();
    for (format, compression) in formats {
        let opts = WriteOptions::default()
            .with_compression(compression)
            .with_row_group_rows(1)
            .with_tag("source", format.extension());
        let e = ds
            .write_with("finance", "user123", &records, format, &opts)
            .await
            .unwrap_or_else(|err| panic!("{format}: {err}"));
        assert_eq!(e.format, format);
        assert_eq!(e.rows, 3);
        assert_eq!(
            (e.min_time, e.max_time),
            (jan(15, 8), jan(16, 9) + chrono::Duration::minutes(15))
        );
        assert!(e.etag.is_some(), "{format}: the entry carries the ETag");
        let date = e.created.format("%Y/%m/%d").to_string();
        assert_eq!(
            e.key,
            format!("finance/user123/{date}/{}.{}", e.id, format.extension()),
            "layout {{module}}/{{user}}/{{yyyy}}/{{mm}}/{{dd}}/{{id}}.{{ext}}"
        );
        let stored = bucket.head(&e.key).await.unwrap();
        assert_eq!(stored.size, e.bytes);
        assert_eq!(stored.content_type(), Some(format.content_type()));

        // Read back whole. Parquet widens nothing here (amount is a float everywhere), turns
        // the nested object into JSON and back, and returns the time as RFC 3339.
        let back = ds.read("finance", "user123", &e.id).await.unwrap();
        assert_eq!(back, records, "{format} round trip");

        // A time window and a projection.
        let day15 = TimeRange::between(jan(15, 0), jan(16, 0)).unwrap();
        let opts = ReadOptions::default()
            .with_range(day15)
            .with_columns(["description"]);
        let part = ds
            .read_with("finance", "user123", &e.id, &opts)
            .await
            .unwrap();
        assert_eq!(
            part,
            vec![
                json!({"description": "Coffee at Joe's"}),
                json!({"description": "Groceries"})
            ],
            "{format} range + projection"
        );
        entries.push(e);
    }

    // Ids sort by creation time, so keys of later writes sort later within a day.
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);

    // read_all streams every file, oldest first, filtered to the window.
    let day16 = TimeRange::since(jan(16, 0));
    let all: Vec<Value> = ds
        .read_all(
            "finance",
            "user123",
            &ReadOptions::default().with_range(day16),
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all, vec![records[2].clone(); n]);

    let manifest = ds.manifest("finance", "user123").unwrap();
    let listed = manifest.entries().await.unwrap();
    assert_eq!(listed, entries);

    // Search from the manifest alone, with filters.
    let search = async |q: SearchQuery| ds.search("finance", "user123", &q).await.unwrap();
    let hits = search(SearchQuery::new("COFFEE")).await;
    assert_eq!(hits.total, n);
    let hits = search(SearchQuery::new("coffee").with_format(Format::Parquet)).await;
    assert_eq!(hits.total, parquet_files);
    let hits = search(SearchQuery::new("").with_tag("source", "jsonl")).await;
    assert_eq!(hits.hits.len(), 1);
    assert_eq!(hits.hits[0].entry.format, Format::Jsonl);
    let hits = search(SearchQuery::new("coffee").deep(true).with_range(day16)).await;
    assert_eq!(hits.total, n);
    assert!(hits.hits.iter().all(|h| h.matched_rows == Some(1)));
    let none = search(SearchQuery::new("tea")).await;
    assert_eq!(none.total, 0);

    // After compaction the same questions get the same answers.
    // The part is Parquet with the `parquet` feature, JSONL without it.
    let report = manifest.compact_all().await.unwrap();
    assert_eq!(report.entries, n as u64);
    let part_ext = if cfg!(feature = "parquet") {
        ".parquet"
    } else {
        ".jsonl"
    };
    assert!(
        report.part.as_deref().unwrap().ends_with(part_ext),
        "{report:?}"
    );
    let mut compacted: Vec<(String, u64)> = manifest
        .entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.rows))
        .collect();
    compacted.sort();
    let mut written: Vec<(String, u64)> = entries.iter().map(|e| (e.key.clone(), e.rows)).collect();
    written.sort();
    assert_eq!(compacted, written, "compaction keeps every entry");
    let hits = search(SearchQuery::new("groceries")).await;
    assert_eq!(hits.total, n);
    let verify = ds.verify("finance", "user123").await.unwrap();
    assert!(verify.is_clean(), "{verify:?}");
    entries
}

/// `writers` tasks each append `per_writer` entries one at a time to one manifest.
pub async fn concurrent_appends(bucket: &Bucket, writers: usize, per_writer: usize) {
    let manifest = Manifest::new(bucket.clone(), "load", "shared").unwrap();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let m = manifest.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let at = jan(1 + (i % 28) as u32, (w % 24) as u32);
                let id = new_id(at);
                let entry = ManifestEntry {
                    key: format!("load/shared/2024/01/01/{id}.jsonl"),
                    id,
                    format: Format::Jsonl,
                    rows: 1,
                    bytes: 10,
                    min_time: at,
                    max_time: at,
                    etag: None,
                    created: at,
                    time_field: None,
                    text: format!("writer{w} item{i}"),
                    text_truncated: false,
                    tags: Default::default(),
                };
                m.append(&[entry])
                    .await
                    .unwrap_or_else(|e| panic!("writer {w} append {i}: {e}"));
            }
        }));
    }
    // A reader scans throughout, racing appends and the automatic compactions they trigger
    // (every 256 segments): each scan succeeds and never sees fewer entries than before.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (m, done) = (manifest.clone(), done.clone());
        tokio::spawn(async move {
            let (mut last, mut scans) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let n = m
                    .entries()
                    .await
                    .unwrap_or_else(|e| panic!("scan during appends: {e}"))
                    .len();
                assert!(n >= last, "a scan saw {n} entries after one saw {last}");
                last = n;
                scans += 1;
            }
            scans
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
    let entries = manifest.entries().await.unwrap();
    let keys: HashSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let texts: HashSet<&str> = entries.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        entries.len(),
        writers * per_writer,
        "every append is in the manifest"
    );
    assert_eq!(keys.len(), writers * per_writer, "no duplicate keys");
    for w in 0..writers {
        for i in 0..per_writer {
            assert!(
                texts.contains(format!("writer{w} item{i}").as_str()),
                "writer {w} item {i} lost"
            );
        }
    }
    // A compaction now leaves exactly the same entries.
    manifest.compact_all().await.unwrap();
    let after = manifest.scan(&EntryFilter::default()).await.unwrap();
    assert_eq!(after.len(), writers * per_writer);
}
