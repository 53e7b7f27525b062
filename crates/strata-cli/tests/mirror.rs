//! `strata mirror pending|replay` end to end: a mirrored bucket whose primary is an S3
//! endpoint nobody listens on takes writes on its local mirror; they are listed as owed
//! (NDJSON with --json), a replay while the primary is still down keeps them (exit code of
//! an outage), and once the primary answers (here: the same handle name on a local folder)
//! a replay delivers them and nothing is owed.

use std::path::Path;
use std::process::{Command, Output};

fn strata(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("STRATA_CONFIG")
        .output()
        .expect("run strata")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config at `path`: `extra` connections, a `disk` connection on `root`, and bucket `main`
/// on connection `main_on` mirrored to bucket `copy` on the disk.
fn write_config(path: &Path, root: &str, main_on: &str, extra: &str) {
    let text = format!(
        r#"{extra}
[connections.disk]
kind = "fs"
root = "{root}"
durability = "none"
[buckets.main]
connection = "{main_on}"
mirror = ["copy"]
[buckets.copy]
connection = "disk"
"#
    );
    std::fs::write(path, text).unwrap();
}

#[test]
fn owed_writes_are_listed_and_replayed_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    // Port 9 (discard) on loopback: connections are refused at once.
    let down = dir.path().join("down.toml");
    write_config(
        &down,
        &root,
        "cloud",
        r#"
[connections.cloud]
kind = "s3"
endpoint = "http://127.0.0.1:9"
allow_http = true
credentials = "static"
access_key_id = "ak"
secret_access_key = "sk"
max_retries = 0
connect_timeout = "1s""#,
    );

    let put = strata(
        &down,
        &["put", "main:notes/a.txt", "--data", "written while down"],
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("copy/notes/a.txt")).unwrap(),
        "written while down"
    );

    let pending = strata(&down, &["mirror", "pending", "main", "--json"]);
    assert!(pending.status.success(), "{}", text(&pending.stderr));
    let lines: Vec<serde_json::Value> = text(&pending.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["bucket"], "main");
    assert_eq!(lines[0]["op"], "put");
    assert_eq!(lines[0]["keys"], serde_json::json!(["notes/a.txt"]));
    assert_eq!(lines[0]["owed_to"], serde_json::json!(["main"]));
    assert_eq!(lines[0]["held_by"], "copy");
    let human = strata(&down, &["mirror", "pending"]);
    assert!(
        text(&human.stdout).contains("1 write(s) of `main` owed")
            && text(&human.stdout).contains("notes/a.txt"),
        "{}",
        text(&human.stdout)
    );

    // Still down: kept, and the exit code says it was an outage (not success).
    let replay = strata(&down, &["mirror", "replay"]);
    assert!(!replay.status.success());
    assert!(
        text(&replay.stderr).contains("still owed") && text(&replay.stderr).contains("main"),
        "{}",
        text(&replay.stderr)
    );
    assert_eq!(
        strata(&down, &["mirror", "pending", "--json"]).stdout.len(),
        pending.stdout.len()
    );

    // A bucket that is not mirrored has no outbox: a clear error naming the mirrored ones.
    let err = strata(&down, &["mirror", "pending", "copy"]);
    assert_eq!(err.status.code(), Some(2), "{}", text(&err.stderr));
    assert!(
        text(&err.stderr).contains("mirrored buckets: main"),
        "{}",
        text(&err.stderr)
    );

    // The primary answers again (the handle `main` now on a local folder; the outbox is the
    // same journal, kept beside the `copy` folder).
    let up = dir.path().join("up.toml");
    write_config(&up, &root, "disk", "");
    let replay = strata(&up, &["mirror", "replay", "main", "--json"]);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    let report: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(report["pending"], 0, "{report}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("main/notes/a.txt")).unwrap(),
        "written while down"
    );
    let pending = strata(&up, &["mirror", "pending", "main"]);
    assert!(
        text(&pending.stdout).contains("nothing owed"),
        "{}",
        text(&pending.stdout)
    );
}
