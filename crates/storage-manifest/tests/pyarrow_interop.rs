//! Interop: pyarrow reads a Parquet data file and a compacted Parquet manifest written by
//! Strata, and checks schema, row count and values.
//!
//! Needs `STRATA_TEST_PYTHON` (a Python with pyarrow; `cargo xtask test` sets it). Without it
//! the test fails saying to run `cargo xtask test`; `STRATA_SKIP_PYTHON=1` skips it knowingly.

#![cfg(feature = "parquet")]

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use storage_core::Bucket;
use storage_manifest::{Compression, Dataset, Format, WriteOptions};

use common::*;

/// Run `script` with pyarrow on `file` (and `column`, whose statistics it checks); the script
/// prints one JSON document.
fn pyarrow(python: &Path, script: &str, file: &Path, column: &str) -> Value {
    let out = strata_testkit::stdout_of(
        Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(file)
            .arg(column),
        &format!("the pyarrow script on {}", python.display()),
    );
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "script printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

const DESCRIBE: &str = r#"
import json, sys
import pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1])
t = f.read()
md = f.metadata
stats = []
for rg in range(md.num_row_groups):
    col = md.row_group(rg).column(t.schema.get_field_index(sys.argv[2]))
    stats.append(col.statistics is not None and col.statistics.has_min_max)
def plain(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v
print(json.dumps({
    "schema": {f.name: str(f.type) for f in t.schema},
    "rows": t.num_rows,
    "row_groups": md.num_row_groups,
    "codecs": sorted({md.row_group(rg).column(c).compression for rg in range(md.num_row_groups) for c in range(md.num_columns)}),
    "stats": all(stats),
    "values": [{k: plain(v) for k, v in row.items()} for row in t.to_pylist()],
}))
"#;

#[tokio::test]
async fn pyarrow_reads_strata_parquet_files_and_compacted_manifests() {
    let Some(python) = strata_testkit::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ds = Dataset::new(Bucket::local("interop", dir.path()).unwrap());
    let opts = WriteOptions::default()
        .with_compression(Compression::Zstd(3))
        .with_row_group_rows(2)
        .with_tag("source", "bank");
    let file = ds
        .write_with(
            "analytics",
            "user123",
            &transactions(),
            Format::Parquet,
            &opts,
        )
        .await
        .unwrap();
    ds.write("analytics", "user123", &transactions(), Format::Jsonl)
        .await
        .unwrap();

    let data = pyarrow(&python, DESCRIBE, &dir.path().join(&file.key), "timestamp");
    assert_eq!(
        data["schema"],
        json!({
            "amount": "double",
            "description": "string",
            "meta": "string",
            "timestamp": "timestamp[us, tz=UTC]",
        })
    );
    assert_eq!(data["rows"], 3);
    assert_eq!(data["row_groups"], 2);
    assert_eq!(data["codecs"], json!(["ZSTD"]));
    assert_eq!(
        data["stats"], true,
        "the time column carries min/max statistics"
    );
    assert_eq!(data["values"][0]["amount"], 4.5);
    assert_eq!(data["values"][1]["description"], "Groceries");
    assert_eq!(data["values"][0]["timestamp"], "2024-01-15T08:00:00+00:00");
    assert_eq!(data["values"][0]["meta"], "{\"card\":\"visa\"}");
    assert_eq!(data["values"][2]["meta"], Value::Null);

    let manifest = ds.manifest("analytics", "user123").unwrap();
    let report = manifest.compact_all().await.unwrap();
    let part = report.part.expect("a compacted part was written");
    let entries = manifest.entries().await.unwrap();
    let compacted = pyarrow(&python, DESCRIBE, &dir.path().join(&part), "min_time");
    assert_eq!(
        compacted["schema"],
        json!({
            "key": "string",
            "id": "string",
            "format": "string",
            "rows": "int64",
            "bytes": "int64",
            "min_time": "timestamp[us, tz=UTC]",
            "max_time": "timestamp[us, tz=UTC]",
            "created": "timestamp[us, tz=UTC]",
            "etag": "string",
            "time_field": "string",
            "text": "string",
            "text_truncated": "bool",
            "tags": "string",
        })
    );
    assert_eq!(compacted["rows"], 2);
    assert_eq!(compacted["codecs"], json!(["SNAPPY"]));
    assert_eq!(
        compacted["stats"], true,
        "row groups carry min/max statistics"
    );
    let values = compacted["values"].as_array().unwrap();
    for (row, entry) in values.iter().zip(&entries) {
        assert_eq!(row["key"], entry.key);
        assert_eq!(row["format"], entry.format.extension());
        assert_eq!(row["rows"], 3);
        assert_eq!(row["bytes"], entry.bytes);
        assert_eq!(row["min_time"], "2024-01-15T08:00:00+00:00");
        assert_eq!(row["max_time"], "2024-01-16T09:15:00+00:00");
        assert_eq!(row["text"], entry.text);
    }
    assert_eq!(values[0]["tags"], "{\"source\":\"bank\"}");
    assert_eq!(values[1]["tags"], "{}");
}
