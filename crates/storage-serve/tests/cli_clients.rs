//! The aws CLI (`aws s3 cp/ls/sync/rm`) and pyarrow's `S3FileSystem` against
//! `strata serve`.

mod common;

use std::process::Command;

use common::{AK, SK, fs_config, python, run_python, start};
use serde_json::json;

/// `aws` beside the venv's Python.
fn aws(py: &std::path::Path, endpoint: &str, args: &[&str]) -> String {
    let bin = py.parent().unwrap().join("aws");
    let out = strata_testkit::stdout_of(
        Command::new(&bin)
            .arg("--endpoint-url")
            .arg(endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", AK)
            .env("AWS_SECRET_ACCESS_KEY", SK)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        &format!(
            "aws {args:?} ({}; `cargo xtask test` installs awscli into its venv)",
            bin.display()
        ),
    );
    String::from_utf8(out).unwrap()
}

/// The key of an `aws s3 ls --recursive` line (`date time size key`; keys may hold spaces).
fn ls_key(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..3 {
        rest = rest.trim_start();
        rest = &rest[rest.find(' ').unwrap_or(rest.len())..];
    }
    rest.trim_start()
}

fn files_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn aws_cli_cp_ls_sync_rm_recursive() {
    let Some(py) = python() else { return };
    let data = tempfile::tempdir().unwrap();
    let server = start(&fs_config(&["media"]), data.path()).await;
    let ep = server.endpoint.clone();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("deep/er")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha").unwrap();
    std::fs::write(src.join("with space.txt"), "spaced").unwrap();
    std::fs::write(src.join("deep/b.json"), "{\"b\":1}").unwrap();
    std::fs::write(src.join("deep/er/c.bin"), vec![7u8; 3000]).unwrap();
    // Large enough for the CLI's multipart upload (threshold 8 MiB).
    let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();

    let py2 = py.clone();
    let (src2, work2) = (src.clone(), work.path().to_path_buf());
    let (listing, recursive, after_rm) = tokio::task::spawn_blocking(move || {
        let py = py2;
        aws(
            &py,
            &ep,
            &[
                "s3",
                "cp",
                src2.join("a.txt").to_str().unwrap(),
                "s3://media/one/a.txt",
            ],
        );
        aws(
            &py,
            &ep,
            &[
                "s3",
                "cp",
                "s3://media/one/a.txt",
                work2.join("back.txt").to_str().unwrap(),
            ],
        );
        aws(
            &py,
            &ep,
            &["s3", "sync", src2.to_str().unwrap(), "s3://media/tree/"],
        );
        let listing = aws(&py, &ep, &["s3", "ls", "s3://media/tree/"]);
        let recursive = aws(&py, &ep, &["s3", "ls", "--recursive", "s3://media/tree/"]);
        // A second sync uploads nothing: sizes and times match.
        let again = aws(
            &py,
            &ep,
            &["s3", "sync", src2.to_str().unwrap(), "s3://media/tree/"],
        );
        assert_eq!(again.trim(), "", "a second sync copied again: {again}");
        aws(
            &py,
            &ep,
            &[
                "s3",
                "sync",
                "s3://media/tree/",
                work2.join("down").to_str().unwrap(),
            ],
        );
        aws(&py, &ep, &["s3", "rm", "--recursive", "s3://media/tree/"]);
        let after_rm = aws(&py, &ep, &["s3", "ls", "--recursive", "s3://media/"]);
        (listing, recursive, after_rm)
    })
    .await
    .unwrap();

    assert_eq!(
        std::fs::read_to_string(work.path().join("back.txt")).unwrap(),
        "alpha"
    );
    let mut top: Vec<&str> = listing
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    top.sort();
    // `with space.txt` is the last word split on whitespace: "space.txt".
    assert_eq!(top, ["a.txt", "big.bin", "deep/", "space.txt"], "{listing}");
    let mut keys: Vec<&str> = recursive.lines().map(ls_key).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "tree/a.txt",
            "tree/big.bin",
            "tree/deep/b.json",
            "tree/deep/er/c.bin",
            "tree/with space.txt"
        ],
        "{recursive}"
    );
    assert_eq!(files_under(&work.path().join("down")), files_under(&src));
    let left: Vec<&str> = after_rm.lines().collect();
    assert!(
        left.len() == 1 && left[0].ends_with(" one/a.txt"),
        "only one/a.txt should remain after rm --recursive:\n{after_rm}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pyarrow_reads_a_parquet_dataset_written_by_strata() {
    let Some(py) = python() else { return };
    let data = tempfile::tempdir().unwrap();
    let config = fs_config(&["lake"]);
    let text = config.replace("{ROOT}", &data.path().display().to_string());
    let strata = strata::Strata::from_toml_str(&text, "test.toml").unwrap();
    // What `strata dataset write lake:finance/user123 --format parquet` does.
    let ds = strata::manifest::Dataset::new(strata.bucket("lake").unwrap());
    for day in 1..=3 {
        let records: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                json!({
                    "timestamp": format!("2024-01-0{day}T08:{:02}:00Z", i % 60),
                    "amount": f64::from(day * 1000 + i),
                    "description": format!("tx {day}-{i}"),
                })
            })
            .collect();
        ds.write(
            "finance",
            "user123",
            &records,
            strata::manifest::Format::Parquet,
        )
        .await
        .unwrap();
    }
    let server = start(&config, data.path()).await;
    let out = run_python(
        &py,
        r#"
import pyarrow.dataset as pads
from pyarrow import fs
host = os.environ["EP"].removeprefix("http://")
s3fs = fs.S3FileSystem(endpoint_override=host, scheme="http", access_key=os.environ["AK"],
                       secret_key=os.environ["SK"], region="us-east-1")
infos = s3fs.get_file_info(fs.FileSelector("lake/finance/user123", recursive=True))
files = sorted(i.path for i in infos if i.path.endswith(".parquet"))
table = pads.dataset(files, filesystem=s3fs, format="parquet").to_table()
out["files"] = len(files)
out["rows"] = table.num_rows
out["sum"] = sum(table.column("amount").to_pylist())
out["first"] = sorted(table.column("description").to_pylist())[0]
"#,
        &[
            ("EP", &server.endpoint),
            ("AK", common::AK),
            ("SK", common::SK),
        ],
    )
    .await;
    assert_eq!(out["files"], 3);
    assert_eq!(out["rows"], 300);
    // sum over days 1..=3 of (100 * day * 1000 + 0 + 1 + ... + 99)
    assert_eq!(out["sum"], json!(600_000.0 + 3.0 * 4950.0));
    assert_eq!(out["first"], "tx 1-0");
    server.stop().await;
}
