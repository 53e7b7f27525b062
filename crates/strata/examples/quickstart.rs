//! A real job on the embedded default: no credentials, no server.
//!
//! `cargo run -p strata --example quickstart --all-features`
//!
//! Uses `$STRATA_HOME` (default `./.strata`) as a local folder store and:
//! 1. uploads three files (bucket `quickstart-files`) and lists them back with ETags;
//! 2. resets a JSON counter document to 0, has 8 concurrent writers increment it 25 times
//!    each through ETag compare-and-swap, and checks that no increment was lost (200);
//! 3. writes the same records as a JSONL and a Parquet file of a dataset, searches its
//!    manifest ("coffee": 2 files), compacts the manifest into Parquet, and searches again
//!    (still 2 files, now answered from the compacted manifest).
//!
//! Every run gives the same output: uploads overwrite, the counter starts at 0 again, and
//! the dataset bucket (`quickstart-data`) is emptied first. (Without that, each run would
//! add two more files, with new ids, to the dataset, and the search would find 2 more.)

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use strata::Strata;
use strata::cas::{BackoffStrategy, Collection};
use strata::manifest::{Dataset, Format, SearchQuery};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    value: u64,
}

#[tokio::main]
async fn main() -> strata::Result<()> {
    let strata = Strata::from_env()?;
    println!("setup: {}", strata.origin());

    // 1. Objects.
    let files = strata.bucket("quickstart-files")?;
    for (key, body) in [
        ("docs/readme.txt", "hello"),
        ("docs/notes/a.txt", "first note"),
        ("docs/notes/b.txt", "second"),
    ] {
        files.put(key, body).await?;
    }
    let mut listed: Vec<(String, u64)> = files
        .list("docs")
        .map_ok(|o| (o.key, o.size))
        .try_collect()
        .await?;
    listed.sort();
    println!("listed (key, bytes): {listed:?}");

    // 2. Documents under contention.
    let docs = strata.bucket("quickstart-docs")?;
    let counters: Collection<Counter> =
        Collection::new(&docs, "counters/{id}.json")?.with_backoff(BackoffStrategy::AGGRESSIVE);
    counters.put("visits", &Counter::default()).await?;
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let c = counters.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    c.update_with("visits", |cur| {
                        let mut v = cur.unwrap_or_default();
                        v.value += 1;
                        Ok(Some(v))
                    })
                    .await?;
                }
                Ok::<_, strata::StorageError>(())
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer task")?;
    }
    let total = counters
        .get("visits")
        .await?
        .expect("counter exists")
        .value
        .value;
    println!("counter after 8 writers x 25 CAS increments: {total} (expected 200)");
    assert_eq!(total, 200, "no update may be lost");

    // 3. Datasets with a searchable manifest. Start from an empty bucket, so a rerun finds
    // what this run wrote and nothing from earlier runs.
    let data_bucket = strata.bucket("quickstart-data")?;
    let old: Vec<String> = data_bucket.list("").map_ok(|o| o.key).try_collect().await?;
    let cleared = data_bucket.delete_many(&old).await;
    if let Some((key, e)) = cleared.failed.first() {
        return Err(strata::StorageError::invalid_input(
            "quickstart-data",
            format!("could not clear the previous run's `{key}`: {e}"),
        ));
    }
    let data = Dataset::new(data_bucket);
    let rows = vec![
        json!({"timestamp": "2026-11-01T08:00:00Z", "amount": 4.5, "description": "Coffee with Ana"}),
        json!({"timestamp": "2026-11-02T12:30:00Z", "amount": 42.0, "description": "Groceries"}),
    ];
    let jsonl = data
        .write("finance", "demo-user", &rows, Format::Jsonl)
        .await?;
    let parquet = data
        .write("finance", "demo-user", &rows, Format::Parquet)
        .await?;
    println!(
        "wrote {} ({} rows) and {} ({} rows)",
        jsonl.key, jsonl.rows, parquet.key, parquet.rows
    );
    let hits = data
        .search("finance", "demo-user", &SearchQuery::new("coffee"))
        .await?;
    println!("search \"coffee\": {} file(s) match", hits.total);
    assert_eq!(hits.total, 2, "the JSONL and the Parquet file");
    let compacted = data.manifest("finance", "demo-user")?.compact().await?;
    println!(
        "compacted the manifest: {} segment(s) folded into {} ({} entries)",
        compacted.segments_folded,
        compacted.part.as_deref().unwrap_or("-"),
        compacted.entries
    );
    let again = data
        .search("finance", "demo-user", &SearchQuery::new("coffee"))
        .await?;
    println!(
        "search \"coffee\" after compaction: {} file(s) match",
        again.total
    );
    assert_eq!(again.total, 2, "compaction keeps every entry");
    println!(
        "done: look inside {} to see the plain files",
        std::env::var("STRATA_HOME").unwrap_or_else(|_| ".strata".into())
    );
    Ok(())
}
