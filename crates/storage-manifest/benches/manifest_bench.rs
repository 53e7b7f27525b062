//! Manifest and dataset benchmark (`cargo bench -p storage-manifest --bench manifest_bench`).
//!
//! Environment:
//! - `STRATA_BENCH_ENTRIES`: manifest entries and dataset rows (default 1 000 000);
//! - `STRATA_BENCH_STORE`: `memory` (default) or `local` (a temporary folder).
//!
//! Measures append throughput into a manifest; a date-range text search over the JSONL
//! segment manifest (what seed 003's `manifest.jsonl` scan does) against the compacted Parquet
//! manifest with row-group pruning, with the bytes each reads (counted by a wrapper store);
//! and writing and reading a dataset of the same number of rows. Prints a table with ratios.
//! Absolute times on a shared machine are noise; the side-by-side ratios are the figures.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;
use serde_json::{Value, json};
use storage_core::Bucket;
use storage_manifest::{
    Dataset, Format, Manifest, ManifestEntry, ManifestOptions, ReadOptions, SearchQuery, TimeRange,
    new_id,
};
use strata_testkit::CountingStore;

const WORDS: &[&str] = &[
    "coffee",
    "groceries",
    "rent",
    "salary",
    "train",
    "books",
    "lunch",
    "cinema",
    "gym",
    "taxi",
    "pharmacy",
    "bakery",
    "fuel",
    "parking",
    "insurance",
    "gift",
];

fn year_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// Entry `i` of `n`, its time spread evenly over 2024 in order.
fn entry(i: usize, n: usize) -> ManifestEntry {
    let span = 366 * 24 * 3600 * 1_000_000i64;
    let t = year_start() + chrono::Duration::microseconds(span / n as i64 * i as i64);
    let id = new_id(t);
    let words = format!(
        "{} {} payment{}",
        WORDS[i % WORDS.len()],
        WORDS[(i / 7) % WORDS.len()],
        i % 1000
    );
    ManifestEntry {
        key: format!("bench/user/{}/{id}.jsonl", t.format("%Y/%m/%d")),
        id,
        format: Format::Jsonl,
        rows: 100,
        bytes: 12_345,
        min_time: t,
        max_time: t + chrono::Duration::minutes(5),
        etag: Some(format!("\"{:032x}\"", i)),
        created: t,
        time_field: Some("timestamp".into()),
        text: words,
        text_truncated: false,
        tags: Default::default(),
    }
}

fn record(i: usize, n: usize) -> Value {
    let span = 366 * 24 * 3600 * 1_000i64;
    let t = year_start() + chrono::Duration::milliseconds(span / n as i64 * i as i64);
    json!({
        "timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "amount": (i % 10_000) as f64 / 100.0,
        "description": format!("{} {}", WORDS[i % WORDS.len()], i % 977),
        "category": WORDS[(i / 13) % WORDS.len()],
    })
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0))
}

struct Table(Vec<(String, String, String)>);

impl Table {
    fn row(&mut self, what: impl Into<String>, value: impl Into<String>, note: impl Into<String>) {
        let (what, value, note) = (what.into(), value.into(), note.into());
        println!("  {what}: {value} {note}");
        self.0.push((what, value, note));
    }
}

async fn run() {
    let n: usize = std::env::var("STRATA_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let store_kind = std::env::var("STRATA_BENCH_STORE").unwrap_or_else(|_| "memory".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let base = match store_kind.as_str() {
        "local" => Bucket::local("bench", dir.path()).expect("local bucket"),
        _ => Bucket::memory("bench"),
    };
    let (bucket, counting) = CountingStore::wrap(&base);
    println!("storage-manifest bench: {n} entries/rows on {store_kind}");
    let mut table = Table(Vec::new());

    // 1. Single-entry appends (each: one segment + one head CAS; auto-compaction on).
    let single = Manifest::new(bucket.clone(), "bench", "single").unwrap();
    let k = 2_000.min(n);
    let start = Instant::now();
    for i in 0..k {
        single.append(&[entry(i, k)]).await.unwrap();
    }
    let t = start.elapsed();
    table.row(
        "append, 1 entry per call",
        format!("{:.0} appends/s", k as f64 / t.as_secs_f64()),
        format!(
            "({k} appends in {}, auto-compaction every 256 segments)",
            ms(t)
        ),
    );

    // 2. Bulk appends of 1,000 entries each into the manifest we query (no auto-compaction,
    //    so the query below scans JSONL segments).
    let manifest = Manifest::new(bucket.clone(), "bench", "user")
        .unwrap()
        .with_options(ManifestOptions {
            auto_compact_segments: None,
            ..Default::default()
        });
    let entries: Vec<ManifestEntry> = (0..n).map(|i| entry(i, n)).collect();
    let start = Instant::now();
    for chunk in entries.chunks(1_000) {
        manifest.append(chunk).await.unwrap();
    }
    let t = start.elapsed();
    let head = manifest.head().await.unwrap();
    let seg_bytes: u64 = head.segments.iter().map(|s| s.bytes).sum();
    table.row(
        "append, 1,000 entries per call",
        format!("{:.0} entries/s", n as f64 / t.as_secs_f64()),
        format!(
            "({n} entries, {} segments, {} of JSONL, in {})",
            head.segments.len(),
            mib(seg_bytes),
            ms(t)
        ),
    );
    drop(entries);

    // 3. The query: one day in mid-year, text "coffee".
    let day = year_start() + chrono::Duration::days(180);
    let range = TimeRange::between(day, day + chrono::Duration::days(1)).unwrap();
    let query = SearchQuery::new("coffee").with_range(range).page(0, 20);
    let rounds = 5;
    let measure = |m: Manifest, q: SearchQuery| {
        let counting = counting.clone();
        async move {
            let mut times = Vec::new();
            let mut per_query = (0, 0);
            let mut total = 0;
            for _ in 0..rounds {
                let before = counting.snapshot();
                let start = Instant::now();
                let r = m.search(&q).await.unwrap();
                times.push(start.elapsed());
                let after = counting.snapshot();
                per_query = (after.0 - before.0, after.1 - before.1);
                total = r.total;
            }
            (median(times), per_query, total)
        }
    };
    let (jsonl_t, (jsonl_gets, jsonl_bytes), jsonl_hits) =
        measure(manifest.clone(), query.clone()).await;

    let start = Instant::now();
    let report = manifest.compact_all().await.unwrap();
    let compact_t = start.elapsed();
    let head = manifest.head().await.unwrap();
    table.row(
        "compaction to Parquet",
        ms(compact_t),
        format!(
            "({} entries -> {} in one part, {} of JSONL before)",
            report.entries,
            mib(head.parts[0].bytes),
            mib(seg_bytes)
        ),
    );
    let (pq_t, (pq_gets, pq_bytes), pq_hits) = measure(manifest.clone(), query.clone()).await;
    assert_eq!(jsonl_hits, pq_hits, "both layouts find the same entries");
    table.row(
        "search 1 day + \"coffee\", JSONL segments",
        ms(jsonl_t),
        format!(
            "({jsonl_hits} hits; {jsonl_gets} GETs, {} read per query)",
            mib(jsonl_bytes)
        ),
    );
    table.row(
        "search 1 day + \"coffee\", compacted Parquet",
        ms(pq_t),
        format!(
            "({pq_hits} hits; {pq_gets} GETs, {} read per query)",
            mib(pq_bytes)
        ),
    );
    table.row(
        "  ratio JSONL / Parquet",
        format!("{:.1}x time", jsonl_t.as_secs_f64() / pq_t.as_secs_f64()),
        format!(
            "{:.1}x bytes (target: Parquet >= 10x faster)",
            jsonl_bytes as f64 / pq_bytes.max(1) as f64
        ),
    );

    // 4. A dataset of n rows: one Parquet file and one JSONL file.
    let ds = Dataset::new(bucket.clone());
    let records: Vec<Value> = (0..n).map(|i| record(i, n)).collect();
    let mut files = Vec::new();
    for format in [Format::Parquet, Format::Jsonl] {
        let start = Instant::now();
        let e = ds.write("bench", "rows", &records, format).await.unwrap();
        let t = start.elapsed();
        table.row(
            format!("dataset write, {format}"),
            ms(t),
            format!(
                "({} rows, {}, {:.0} rows/s)",
                e.rows,
                mib(e.bytes),
                n as f64 / t.as_secs_f64()
            ),
        );
        files.push(e);
    }
    drop(records);
    let mut full = Vec::new();
    let mut ranged = Vec::new();
    for e in &files {
        let before = counting.snapshot();
        let start = Instant::now();
        let count = ds
            .read_entry(e, &ReadOptions::default())
            .await
            .unwrap()
            .try_fold(0usize, |c, _| async move { Ok(c + 1) })
            .await
            .unwrap();
        let t = start.elapsed();
        let read = counting.snapshot().1 - before.1;
        assert_eq!(count, n);
        table.row(
            format!("dataset read all, {}", e.format),
            ms(t),
            format!("({count} rows, {} read)", mib(read)),
        );
        full.push(t);

        let before = counting.snapshot();
        let start = Instant::now();
        let count = ds
            .read_entry(
                e,
                &ReadOptions::default()
                    .with_range(range)
                    .with_columns(["amount"]),
            )
            .await
            .unwrap()
            .try_fold(0usize, |c, _| async move { Ok(c + 1) })
            .await
            .unwrap();
        let t = start.elapsed();
        let read = counting.snapshot().1 - before.1;
        table.row(
            format!("dataset read 1 day, column `amount`, {}", e.format),
            ms(t),
            format!("({count} rows, {} read)", mib(read)),
        );
        ranged.push((t, read));
    }
    table.row(
        "  ratio JSONL / Parquet, 1-day read",
        format!(
            "{:.1}x time",
            ranged[1].0.as_secs_f64() / ranged[0].0.as_secs_f64()
        ),
        format!(
            "{:.1}x bytes",
            ranged[1].1 as f64 / ranged[0].1.max(1) as f64
        ),
    );

    println!();
    println!("| measure | value | detail |");
    println!("|---|---|---|");
    for (what, value, note) in &table.0 {
        println!("| {what} | {value} | {note} |");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}
