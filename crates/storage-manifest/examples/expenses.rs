//! A dataset of expense records in a local folder, with a searchable manifest: no
//! credentials, no server.
//!
//! `cargo run -p storage-manifest --example expenses`
//!
//! It:
//! 1. writes a Parquet file and, from 6 concurrent writers, 6 JSONL files of expenses for
//!    one user; the manifest lists all 7 (appends go through ETag compare-and-swap, so no
//!    concurrent append is lost);
//! 2. reads one day back, projected to two columns, and searches the text of the records;
//! 3. compacts the manifest into Parquet and verifies that it matches the objects;
//! 4. uses `check_etag_conflict` to notice that a file changed under a reader.

use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use serde_json::{Value, json};
use storage_core::Bucket;
use storage_manifest::{Dataset, EtagCheck, Format, ReadOptions, SearchQuery, TimeRange};

const MODULE: &str = "finance";
const USER: &str = "demo-user";

#[tokio::main]
async fn main() -> storage_core::Result<()> {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let data = Dataset::new(Bucket::local("data", dir.path())?);

    // 1. One Parquet file, then six JSONL files written at the same time.
    let january = vec![
        json!({"timestamp": "2026-01-15T08:00:00Z", "amount": 4.5, "description": "Coffee with Ana"}),
        json!({"timestamp": "2026-01-15T12:30:00Z", "amount": 42.0, "description": "Groceries"}),
        json!({"timestamp": "2026-01-16T19:00:00Z", "amount": 18.0, "description": "Cinema"}),
    ];
    let parquet = data.write(MODULE, USER, &january, Format::Parquet).await?;
    println!(
        "wrote {} ({} rows, {} B)",
        parquet.key, parquet.rows, parquet.bytes
    );

    let writers: Vec<_> = (1..=6)
        .map(|day| {
            let data = data.clone();
            tokio::spawn(async move {
                let rows = vec![json!({
                    "timestamp": format!("2026-02-{day:02}T09:00:00Z"),
                    "amount": f64::from(day) * 2.5,
                    "description": format!("Train ticket, day {day}"),
                })];
                data.write(MODULE, USER, &rows, Format::Jsonl).await
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer task panicked")?;
    }
    let manifest = data.manifest(MODULE, USER)?;
    let entries = manifest.entries().await?;
    println!(
        "manifest after 1 + 6 concurrent writes: {} file(s)",
        entries.len()
    );
    assert_eq!(
        entries.len(),
        7,
        "no concurrent manifest append may be lost"
    );

    // 2. A time-window read with projection, and search.
    let day = TimeRange::between(
        Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 1, 16, 0, 0, 0).unwrap(),
    )?;
    let options = ReadOptions::default()
        .with_range(day)
        .with_columns(["timestamp", "amount"]);
    let jan15: Vec<Value> = data
        .read_all(MODULE, USER, &options)
        .await?
        .try_collect()
        .await?;
    println!(
        "2026-01-15, columns timestamp+amount: {}",
        serde_json::to_string(&jan15).unwrap_or_default()
    );
    assert_eq!(jan15.len(), 2);
    assert!(
        jan15.iter().all(|r| r.get("description").is_none()),
        "projected away"
    );

    let coffee = data
        .search(MODULE, USER, &SearchQuery::new("COFFEE"))
        .await?;
    let trains = data
        .search(MODULE, USER, &SearchQuery::new("train"))
        .await?;
    println!(
        "search \"COFFEE\": {} file(s); search \"train\": {} file(s)",
        coffee.total, trains.total
    );
    assert_eq!(coffee.total, 1);
    assert_eq!(coffee.hits[0].entry.key, parquet.key);
    assert_eq!(trains.total, 6);

    // 3. Compact and verify.
    let compacted = manifest.compact().await?;
    println!(
        "compact: {} segment(s) folded into {} ({} entries)",
        compacted.segments_folded,
        compacted.part.as_deref().unwrap_or("-"),
        compacted.entries
    );
    assert_eq!(compacted.entries, 7);
    assert_eq!(
        manifest.entries().await?.len(),
        7,
        "compaction keeps every entry"
    );
    let report = data.verify(MODULE, USER).await?;
    println!(
        "verify: {} entries, {} objects, clean: {}",
        report.entries,
        report.objects,
        report.is_clean()
    );
    assert!(report.is_clean());

    // 4. Optimistic concurrency for readers: was the file replaced since we read it?
    let etag = parquet.etag.clone().expect("local folder returns ETags");
    assert!(matches!(
        data.check_etag_conflict(&parquet.key, &etag).await?,
        EtagCheck::Unchanged
    ));
    data.bucket()
        .put(&parquet.key, "overwritten by someone else")
        .await?;
    let check = data.check_etag_conflict(&parquet.key, &etag).await?;
    println!("after another writer replaced {}: {check:?}", parquet.key);
    assert!(check.is_conflict());
    println!("done");
    Ok(())
}
