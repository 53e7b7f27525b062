//! Snapshots of what people and scripts read: help texts, error messages and `--json`
//! shapes. A change to any of them fails here until it is reviewed and accepted
//! (`INSTA_UPDATE=always cargo test -p strata-cli --test snapshots`, then read the diff of
//! `tests/snapshots/` before committing, or `cargo insta review`).

mod common;

use common::Target::Home;
use serde_json::Value;

fn help(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    common::ok(Home(home.path()), args)
}

#[test]
fn help_texts() {
    insta::assert_snapshot!("help_main", help(&["--help"]));
    insta::assert_snapshot!("help_put", help(&["put", "--help"]));
    insta::assert_snapshot!("help_ls", help(&["ls", "--help"]));
    insta::assert_snapshot!("help_get", help(&["get", "--help"]));
    insta::assert_snapshot!("help_stat", help(&["stat", "--help"]));
    insta::assert_snapshot!("help_buckets", help(&["buckets", "--help"]));
    insta::assert_snapshot!(
        "help_buckets_health",
        help(&["buckets", "health", "--help"])
    );
    insta::assert_snapshot!("help_doc_update", help(&["doc", "update", "--help"]));
}

/// Standard error of a failing run, with the temporary folder's path made stable.
fn failure(home: &std::path::Path, args: &[&str]) -> String {
    let (code, err) = common::code(Home(home), args);
    format!(
        "$ strata {}\nexit {code}\n{}",
        args.join(" "),
        err.replace(&home.display().to_string(), "[HOME]")
    )
}

#[test]
fn error_messages() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    common::ok(Home(h), &["put", "b:k", "--data", "1"]);
    let cases: &[&[&str]] = &[
        &["get", "b:missing"],
        &["get", "not-an-address"],
        &["put", "b:k", "--data", "2", "--if-absent"],
        &["put", "b:k"],
        &["put", "b:k", "--data", "x", "--tag", "team"],
        &["presign", "b:k", "--expires", "8d"],
        &["presign", "b:k"],
        &["doc", "update", "app:users", "42", "--set", "plan=pro"],
        &["rm", "b:", "--prefix", ""],
        &["get", "b:missing", "--json"],
    ];
    let text: Vec<String> = cases.iter().map(|a| failure(h, a)).collect();
    insta::assert_snapshot!("errors", text.join("\n"));
}

/// `value` with what changes from run to run (times, ETags, paths) replaced by its kind.
fn stable(mut v: Value, home: &std::path::Path) -> Value {
    fn walk(v: &mut Value, home: &str) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match k.as_str() {
                        "last_modified" | "etag" | "previous_etag" | "latency_ms" | "modified" => {
                            *x = Value::String(format!("[{k}]"))
                        }
                        _ => walk(x, home),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, home)),
            Value::String(s) => *s = s.replace(home, "[HOME]"),
            _ => {}
        }
    }
    walk(&mut v, &home.display().to_string());
    v
}

fn json_lines(home: &std::path::Path, args: &[&str]) -> String {
    let out = common::ok(Home(home), args);
    let lines: Vec<String> = out
        .lines()
        .map(|l| stable(serde_json::from_str(l).unwrap(), home).to_string())
        .collect();
    format!("$ strata {}\n{}", args.join(" "), lines.join("\n"))
}

#[test]
fn json_shapes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let runs: &[&[&str]] = &[
        &[
            "put",
            "b:a/one.txt",
            "--data",
            "one",
            "--meta",
            "owner=ana",
            "--json",
        ],
        &["put", "b:two.json", "--data", "{}", "--json"],
        &["ls", "b:", "--json"],
        &["stat", "b:a/one.txt", "--json"],
        &["stats", "b:", "--json"],
        &["buckets", "info", "--json"],
        &["buckets", "health", "--json"],
        &[
            "doc",
            "put",
            "app:users",
            "42",
            "--data",
            "{\"plan\":\"free\"}",
            "--json",
        ],
        &[
            "doc",
            "update",
            "app:users",
            "42",
            "--set",
            "plan=pro",
            "--json",
        ],
        &["doc", "ls", "app:users", "--json"],
    ];
    let text: Vec<String> = runs.iter().map(|a| json_lines(h, a)).collect();
    insta::assert_snapshot!("json_shapes", text.join("\n"));
}
