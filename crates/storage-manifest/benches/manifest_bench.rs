//! Manifest and dataset benchmark (`cargo bench -p storage-manifest --bench manifest_bench`).
//!
//! Environment:
//! - `STRATA_BENCH_ENTRIES`: manifest entries and dataset rows (default 1 000 000, or
//!   100 000 with `STRATA_BENCH_QUICK=1`, which also runs fewer DuckDB rounds);
//! - `STRATA_BENCH_STORE`: `memory` (default) or `local` (a temporary folder).
//!
//! Measures append throughput into a manifest; a date-range text search over the JSONL
//! segment manifest (what seed 003's `manifest.jsonl` scan does) against the compacted Parquet
//! manifest with row-group pruning, with the bytes each reads (counted by a wrapper store);
//! four search shapes (one day or month or all time, a rare or a common word) on the
//! compacted part in a local folder and in memory against DuckDB on the same local file, the
//! results asserted identical; and writing and reading a dataset of the same number of rows.
//! Prints tables with ratios. Absolute times on a shared machine are noise; the side-by-side
//! ratios are the figures. Each ratio is also a `BENCH {json}` line (`strata_testkit::bench`)
//! for `cargo xtask bench --report`.
//!
//! DuckDB runs through the Python package of `STRATA_TEST_PYTHON` (the venv `cargo xtask
//! bench` installs and sets); without it, or without `duckdb` in it, that comparison prints
//! why it was skipped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
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
use strata_testkit::bench::{Better, Ratio, scaled};

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

/// Reads `e` with `opts`: the rows read, the time it took and the bytes fetched.
async fn timed_read(
    ds: &Dataset,
    e: &ManifestEntry,
    opts: &ReadOptions,
    counting: &CountingStore,
) -> (usize, Duration, u64) {
    let before = counting.snapshot();
    let start = Instant::now();
    let count = ds
        .read_entry(e, opts)
        .await
        .unwrap()
        .try_fold(0usize, |c, _| async move { Ok(c + 1) })
        .await
        .unwrap();
    let t = start.elapsed();
    (count, t, counting.snapshot().1 - before.1)
}

async fn run() {
    let n: usize = std::env::var("STRATA_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(scaled(1_000_000, 100_000));
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
    let group = format!("manifest search, 1 day + a word, {n} entries: JSONL segments / Parquet");
    Ratio::new(
        "manifest_bench",
        &group,
        "time",
        jsonl_t.as_secs_f64() / pq_t.as_secs_f64(),
        Better::Higher,
    )
    .baseline("the compacted Parquet manifest (the ratio is how many times faster it is)")
    .goal(10.0)
    .rounds(rounds)
    .note(format!("{} vs {}", ms(jsonl_t), ms(pq_t)))
    .print();
    Ratio::new(
        "manifest_bench",
        &group,
        "bytes read",
        jsonl_bytes as f64 / pq_bytes.max(1) as f64,
        Better::Higher,
    )
    .baseline("the compacted Parquet manifest")
    .note(format!("{} vs {}", mib(jsonl_bytes), mib(pq_bytes)))
    .print();
    table.row(
        "  ratio JSONL / Parquet",
        format!("{:.1}x time", jsonl_t.as_secs_f64() / pq_t.as_secs_f64()),
        format!(
            "{:.1}x bytes (target: Parquet >= 10x faster)",
            jsonl_bytes as f64 / pq_bytes.max(1) as f64
        ),
    );

    // 4. The search shapes of issue 21 on the compacted part, against DuckDB.
    duckdb_comparison(&bucket, &manifest, &mut table).await;

    // 5. A dataset of n rows: one Parquet file and one JSONL file.
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
        let (count, t, read) = timed_read(&ds, e, &ReadOptions::default(), &counting).await;
        assert_eq!(count, n);
        table.row(
            format!("dataset read all, {}", e.format),
            ms(t),
            format!("({count} rows, {} read)", mib(read)),
        );
        full.push(t);

        let one_day = ReadOptions::default()
            .with_range(range)
            .with_columns(["amount"]);
        let (count, t, read) = timed_read(&ds, e, &one_day, &counting).await;
        table.row(
            format!("dataset read 1 day, column `amount`, {}", e.format),
            ms(t),
            format!("({count} rows, {} read)", mib(read)),
        );
        ranged.push((t, read));
    }
    let group = format!("dataset read, 1 day, column `amount`, {n} rows: JSONL / Parquet");
    for (row, r) in [
        (
            "time",
            ranged[1].0.as_secs_f64() / ranged[0].0.as_secs_f64(),
        ),
        ("bytes read", ranged[1].1 as f64 / ranged[0].1.max(1) as f64),
    ] {
        Ratio::new("manifest_bench", &group, row, r, Better::Higher)
            .baseline("the Parquet file (the ratio is how many times less it costs)")
            .print();
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

/// DuckDB's side: each query as SQL with the same filter, score and ranking as
/// `Manifest::search`. Reads the file and queries from its first input line, answers its
/// version, then runs query `i` for each line `i` and answers time and page as one JSON line,
/// so the bench can interleave DuckDB's runs with Strata's (load on a shared machine then
/// weighs on both alike).
const DUCKDB_SCRIPT: &str = r#"
import json, sys, time
try:
    import duckdb
except ImportError as e:
    print(json.dumps({"skip": f"{sys.executable} has no duckdb ({e}); run `cargo xtask servers --install`"}), flush=True)
    sys.exit(0)
spec = json.loads(sys.stdin.readline())
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
lit = lambda s: "'" + s.replace("'", "''") + "'"
sqls = []
for q in spec["queries"]:
    terms = q["terms"]
    score = " + ".join(
        f"list_sum(list_transform(string_split(text, ' '), lambda w: CASE WHEN w = {lit(t)} THEN 2 "
        f"WHEN contains(w, {lit(t)}) THEN 1 ELSE 0 END))" for t in terms) or "0"
    where = [f"contains(text, {lit(t)})" for t in terms]
    if q["from"]:
        where.append(f"max_time >= TIMESTAMPTZ {lit(q['from'])}")
    if q["to"]:
        where.append(f"min_time < TIMESTAMPTZ {lit(q['to'])}")
    sqls.append(f"SELECT key, score, count(*) OVER () FROM (SELECT key, max_time, {score} AS score "
                f"FROM read_parquet({lit(spec['file'])}) WHERE {' AND '.join(where) or 'true'}) "
                f"ORDER BY score DESC, max_time DESC, key LIMIT {q['limit']} OFFSET {q['offset']}")
print(json.dumps({"version": duckdb.__version__}), flush=True)
for line in sys.stdin:
    start = time.perf_counter()
    rows = con.execute(sqls[int(line)]).fetchall()
    ms = (time.perf_counter() - start) * 1000
    print(json.dumps({"ms": ms, "total": rows[0][2] if rows else 0,
                      "hits": [[r[0], int(r[1])] for r in rows]}), flush=True)
"#;

/// One query's page as both sides report it: (key, score) best first, and the total.
type Page = (Vec<(String, u64)>, usize);

/// A DuckDB process answering the bench's queries on one file.
struct DuckDb {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    python: String,
    version: String,
}

impl DuckDb {
    /// Start it for `queries` on `file`; `Err` says why it cannot run.
    fn start(file: &std::path::Path, queries: &[(&str, SearchQuery)]) -> Result<Self, String> {
        let python = std::env::var("STRATA_TEST_PYTHON").map_err(|_| {
            "STRATA_TEST_PYTHON is not set (`cargo xtask bench` sets it)".to_string()
        })?;
        let at =
            |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string());
        let spec = json!({
            "file": file.to_str().ok_or("the temporary path is not UTF-8")?,
            "queries": queries.iter().map(|(_, q)| json!({
                "terms": q.terms(),
                "from": at(q.range.from),
                "to": at(q.range.to),
                "offset": q.offset,
                "limit": q.limit.max(1),
            })).collect::<Vec<_>>(),
        });
        let mut child = Command::new(&python)
            .args(["-c", DUCKDB_SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {python}: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut duck = DuckDb {
            child,
            stdin,
            stdout,
            python,
            version: String::new(),
        };
        let hello = duck.ask(&spec.to_string())?;
        if let Some(skip) = hello["skip"].as_str() {
            return Err(skip.to_string());
        }
        duck.version = hello["version"].as_str().unwrap_or("?").to_string();
        Ok(duck)
    }

    fn ask(&mut self, line: &str) -> Result<Value, String> {
        let python = &self.python;
        writeln!(self.stdin, "{line}").map_err(|e| format!("{python} stopped: {e}"))?;
        let mut answer = String::new();
        self.stdout
            .read_line(&mut answer)
            .map_err(|e| format!("{python} stopped: {e}"))?;
        serde_json::from_str(&answer)
            .map_err(|e| format!("{python} answered no JSON ({e}): {answer:?}"))
    }

    /// Run query `i` once: its time and page.
    fn run(&mut self, i: usize) -> Result<(Duration, Page), String> {
        let r = self.ask(&i.to_string())?;
        let hits = r["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h[0].as_str().unwrap_or_default().to_string(),
                    h[1].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let total = r["total"].as_u64().unwrap_or(0) as usize;
        let ms = r["ms"].as_f64().ok_or("no time in the answer")?;
        Ok((Duration::from_secs_f64(ms / 1000.0), (hits, total)))
    }
}

impl Drop for DuckDb {
    fn drop(&mut self) {
        // Closing its input ends its loop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The four query shapes of issue 21 on `manifest`'s compacted part, copied as is into a
/// local folder and a memory store, against DuckDB on the local file. Rounds interleave the
/// three (one warm-up round, then `rounds` timed ones); each figure is a median.
async fn duckdb_comparison(source: &Bucket, manifest: &Manifest, table: &mut Table) {
    let rounds = scaled(11, 3);
    let head = manifest.head().await.unwrap();
    let part = &head.parts[0];
    let part_bytes = source.get(&part.key).await.unwrap().bytes;
    let head_bytes = source.get(manifest.head_key()).await.unwrap().bytes;
    let dir = tempfile::tempdir().expect("temp dir");
    let stores = [
        Bucket::local("search", dir.path()).expect("local bucket"),
        Bucket::memory("search"),
    ];
    for b in &stores {
        b.put(&part.key, part_bytes.clone()).await.unwrap();
        b.put(manifest.head_key(), head_bytes.clone())
            .await
            .unwrap();
    }
    let day = year_start() + chrono::Duration::days(180);
    let july = TimeRange::between(
        Utc.with_ymd_and_hms(2024, 7, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2024, 8, 1, 0, 0, 0).unwrap(),
    )
    .unwrap();
    let one_day = TimeRange::between(day, day + chrono::Duration::days(1)).unwrap();
    let queries = [
        (
            "one day + \"coffee\"",
            SearchQuery::new("coffee").with_range(one_day),
        ),
        (
            "one day + a word in every entry",
            SearchQuery::new("payment").with_range(one_day),
        ),
        (
            "one month + \"coffee\"",
            SearchQuery::new("coffee").with_range(july),
        ),
        ("all time + \"coffee\"", SearchQuery::new("coffee")),
    ]
    .map(|(name, q)| (name, q.page(0, 20)));
    let mut duck = match DuckDb::start(&dir.path().join(&part.key), &queries) {
        Ok(d) => d,
        Err(why) => {
            println!("  DuckDB comparison skipped: {why}");
            table.row("search vs DuckDB", "skipped", why);
            return;
        }
    };
    let handles: Vec<Manifest> = stores
        .iter()
        .map(|b| Manifest::new(b.clone(), "bench", "user").unwrap())
        .collect();
    // times[query][side]: side 0 local, 1 memory, 2 DuckDB.
    let mut times = vec![vec![Vec::new(); 3]; queries.len()];
    let mut pages: Vec<Vec<Page>> = vec![Vec::new(); queries.len()];
    for round in 0..=rounds {
        for (qi, (name, q)) in queries.iter().enumerate() {
            let mut round_pages = Vec::new();
            for (side, m) in handles.iter().enumerate() {
                let start = Instant::now();
                let r = m.search(q).await.unwrap();
                times[qi][side].push(start.elapsed());
                round_pages.push((
                    r.hits.into_iter().map(|h| (h.entry.key, h.score)).collect(),
                    r.total,
                ));
            }
            let (t, page) = duck
                .run(qi)
                .unwrap_or_else(|e| panic!("{name}: DuckDB: {e}"));
            times[qi][2].push(t);
            for (side, p) in round_pages.iter().enumerate() {
                assert_eq!(
                    p,
                    &page,
                    "{name}: Strata ({}) and DuckDB disagree",
                    ["local", "memory"][side]
                );
            }
            if round == 0 {
                // Warm-up: the handles read head and footer, DuckDB's file enters the cache.
                for side in &mut times[qi] {
                    side.clear();
                }
                pages[qi].push(page);
            }
        }
    }
    let mut lines = Vec::new();
    for (qi, (name, _)) in queries.iter().enumerate() {
        let [local, memory, duck_t] = [0, 1, 2].map(|side| median(times[qi][side].clone()));
        let hits = pages[qi][0].1;
        let ratio = |t: Duration| t.as_secs_f64() / duck_t.as_secs_f64();
        lines.push(format!(
            "| {name} | {hits} | {} | {} | {} | {:.2}x | {:.2}x |",
            ms(local),
            ms(memory),
            ms(duck_t),
            ratio(local),
            ratio(memory)
        ));
        for (side, t) in [("local folder", local), ("memory", memory)] {
            Ratio::new(
                "manifest_bench",
                "search on one compacted part vs DuckDB",
                &format!("{name}, {side}"),
                ratio(t),
                Better::Lower,
            )
            .baseline("DuckDB on the same local Parquet file")
            .goal(2.0)
            .rounds(rounds)
            .note(format!("{hits} hits; {} vs {}", ms(t), ms(duck_t)))
            .print();
        }
        table.row(
            format!("search {name}, Strata local / memory vs DuckDB"),
            format!("{:.2}x / {:.2}x", ratio(local), ratio(memory)),
            format!(
                "({hits} hits, pages identical to DuckDB's; {} / {} / DuckDB {}; goal <= 2x)",
                ms(local),
                ms(memory),
                ms(duck_t)
            ),
        );
    }
    println!();
    println!(
        "search on one compacted part ({} entries, {}), page of 20, median of {rounds} \
         interleaved warm rounds; DuckDB {} on the same local file",
        part.entries,
        mib(part.bytes),
        duck.version
    );
    println!(
        "| query | hits | Strata local | Strata memory | DuckDB | local / DuckDB | memory / DuckDB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for line in lines {
        println!("{line}");
    }
    println!();
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
