//! `strata buckets`, `sync` and `dataset` end to end on a config with local-folder buckets.

mod common;

use std::path::Path;
use std::process::Output;

use common::Target::Config;

fn strata(cfg: &Path, args: &[&str]) -> Output {
    common::run(Config(cfg), args)
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    common::ok(Config(cfg), args)
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(
        dir.path(),
        r#"
[connections.disk]
kind = "fs"
root = "data"

[buckets.agent]
connection = "disk"
[buckets.server-001]
connection = "disk"
[buckets.archive]
connection = "disk"

[sources.tide]
buckets = ["agent", "server-001"]
policy = "sequential"

[routes.records]
bucket = "agent"
"#,
    );
    (dir, cfg)
}

#[test]
fn source_set_reads_fall_back_and_list_merged() {
    let (_dir, cfg) = setup();
    ok(
        &cfg,
        &[
            "put",
            "server-001:tide/2026-11-23.json",
            "--data",
            "{\"h\":1.2}",
        ],
    );
    ok(
        &cfg,
        &["put", "agent:tide/2026-11-22.json", "--data", "{\"h\":0.9}"],
    );
    // Found in the second bucket of the set; the answer names it.
    let out_file = cfg.with_file_name("got.json");
    let got: serde_json::Value = serde_json::from_str(&ok(
        &cfg,
        &[
            "buckets",
            "get",
            "tide/2026-11-23.json",
            "--source",
            "tide",
            "-o",
            out_file.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(got["bucket"], "server-001", "{got}");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "{\"h\":1.2}");
    // Without -o the body goes to stdout and the answering bucket to stderr.
    let out = strata(
        &cfg,
        &["buckets", "get", "tide/2026-11-23.json", "--source", "tide"],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"h\":1.2}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("server-001"));
    let listing = ok(&cfg, &["buckets", "ls", "tide/", "--source", "tide"]);
    assert!(
        listing.contains("2026-11-22.json") && listing.contains("2026-11-23.json"),
        "{listing}"
    );
    // The same through `strata get --any` / `strata ls --any`, and one bucket with --from.
    assert_eq!(
        ok(&cfg, &["get", "tide/2026-11-23.json", "--any", "tide"]),
        "{\"h\":1.2}"
    );
    assert_eq!(
        ok(
            &cfg,
            &[
                "get",
                "tide/2026-11-23.json",
                "--any",
                "tide",
                "--policy",
                "parallel"
            ]
        ),
        "{\"h\":1.2}"
    );
    assert_eq!(
        strata(
            &cfg,
            &[
                "get",
                "tide/2026-11-23.json",
                "--any",
                "tide",
                "--from",
                "agent"
            ]
        )
        .status
        .code(),
        Some(3)
    );
    let merged = ok(&cfg, &["ls", "tide/", "--any", "tide"]);
    assert!(
        merged.contains("2026-11-22.json") && merged.contains("2026-11-23.json"),
        "{merged}"
    );
    let info = ok(&cfg, &["buckets", "info", "--json"]);
    assert!(info.contains("tide") && info.contains("records"), "{info}");
    // Missing everywhere: exit 3.
    let out = strata(
        &cfg,
        &["buckets", "get", "tide/none.json", "--source", "tide"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sync_copies_then_skips_identical() {
    let (_dir, cfg) = setup();
    for i in 0..5 {
        ok(
            &cfg,
            &[
                "put",
                &format!("agent:logs/{i}.txt"),
                "--data",
                &format!("line {i}"),
            ],
        );
    }
    let first: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["sync", "agent:", "archive:", "--json"])).unwrap();
    let second: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["sync", "agent:", "archive:", "--json"])).unwrap();
    assert_eq!(ok(&cfg, &["get", "archive:logs/3.txt"]), "line 3");
    assert_ne!(
        first, second,
        "the second run skips what the first copied: {first} vs {second}"
    );
    let dry = ok(&cfg, &["sync", "agent:", "server-001:", "--dry-run"]);
    assert!(!dry.is_empty());
    let out = strata(&cfg, &["get", "server-001:logs/3.txt"]);
    assert_eq!(out.status.code(), Some(3), "--dry-run copied nothing");
}

#[test]
fn dataset_write_and_search() {
    let (dir, cfg) = setup();
    let file = dir.path().join("rows.jsonl");
    std::fs::write(&file, "{\"timestamp\":\"2026-11-01T08:00:00Z\",\"description\":\"Coffee\"}\n{\"timestamp\":\"2026-11-02T08:00:00Z\",\"description\":\"Tea\"}\n").unwrap();
    ok(
        &cfg,
        &[
            "dataset",
            "write",
            "finance",
            "ana",
            "--format",
            "parquet",
            "--file",
            file.to_str().unwrap(),
            "--bucket",
            "archive",
        ],
    );
    let hits = ok(
        &cfg,
        &[
            "dataset", "search", "finance", "ana", "coffee", "--bucket", "archive", "--json",
        ],
    );
    assert!(hits.contains("\"total\":1"), "{hits}");
}
