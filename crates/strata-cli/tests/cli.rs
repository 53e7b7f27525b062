//! The `strata` binary end to end on the embedded default (a temporary STRATA_HOME).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::Target::Home;

fn ok(home: &Path, args: &[&str]) -> String {
    common::ok(Home(home), args)
}

fn code(home: &Path, args: &[&str]) -> (i32, String) {
    common::code(Home(home), args)
}

#[test]
fn put_get_ls_stat_rm() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    ok(
        h,
        &[
            "put",
            "notes:a/hello.txt",
            "--data",
            "hello",
            "--meta",
            "owner=ana",
        ],
    );
    assert_eq!(ok(h, &["get", "notes:a/hello.txt"]), "hello");
    assert_eq!(ok(h, &["ls", "notes:"]).trim(), "a/");
    assert_eq!(ok(h, &["ls", "-r", "notes:"]).trim(), "a/hello.txt");
    let stat: serde_json::Value =
        serde_json::from_str(&ok(h, &["stat", "notes:a/hello.txt", "--json"])).unwrap();
    assert_eq!(stat["size"], 5);
    assert_eq!(stat["metadata"]["owner"], "ana");
    assert_eq!(stat["headers"]["content-type"], "text/plain; charset=utf-8");
    // The embedded default is a plain folder per bucket.
    assert_eq!(
        std::fs::read_to_string(h.join("notes/a/hello.txt")).unwrap(),
        "hello"
    );
    ok(h, &["rm", "notes:a/hello.txt"]);
    assert_eq!(code(h, &["get", "notes:a/hello.txt"]).0, 3);
}

#[test]
fn exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    ok(h, &["put", "b:k", "--data", "1"]);
    let (c, err) = code(h, &["put", "b:k", "--data", "2", "--if-absent"]);
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("already exists"), "{err}");
    let (c, err) = code(h, &["put", "b:k", "--data", "2", "--if-match", "\"stale\""]);
    assert_eq!(c, 4, "{err}");
    let (c, err) = code(h, &["get", "b:missing"]);
    assert_eq!(c, 3, "{err}");
    let (c, err) = code(h, &["get", "not-an-address"]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("NAME:KEY"), "{err}");
    let (c, err) = code(h, &["put", "b://abs", "--data", "x"]);
    assert_eq!(c, 2, "{err}");
    let (c, err) = code(h, &["presign", "b:k", "--expires", "8d"]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("7 day"), "{err}");
    let (c, err) = code(h, &["presign", "b:k", "--expires", "soon"]);
    assert_eq!(c, 2, "{err}");
    let (c, _) = code(h, &["no-such-command"]);
    assert_eq!(c, 2);
    // Presigning a local folder is not supported: a clear error, exit 2 (fix the command).
    let (c, err) = code(h, &["presign", "b:k"]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("presigned"), "{err}");
}

#[test]
fn if_match_with_current_etag_succeeds() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let put: serde_json::Value =
        serde_json::from_str(&ok(h, &["put", "d:doc.json", "--data", "{}", "--json"])).unwrap();
    let etag = put["etag"].as_str().unwrap().to_string();
    ok(
        h,
        &[
            "put",
            "d:doc.json",
            "--data",
            "{\"v\":2}",
            "--if-match",
            &etag,
        ],
    );
    assert_eq!(
        code(
            h,
            &["put", "d:doc.json", "--data", "{}", "--if-match", &etag]
        )
        .0,
        4
    );
}

#[test]
fn cp_mv_recursive_local_and_remote() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("sub")).unwrap();
    std::fs::write(src.path().join("a.txt"), "A").unwrap();
    std::fs::write(src.path().join("sub/b.txt"), "B").unwrap();
    let src_arg = format!("{}/", src.path().display());
    ok(h, &["cp", "-r", &src_arg, "site:docs/"]);
    // `ls -r` streams in the backend's order (a local folder's is folder order).
    let mut listed: Vec<String> = ok(h, &["ls", "-r", "site:docs"])
        .lines()
        .map(str::to_string)
        .collect();
    listed.sort();
    assert_eq!(listed, ["docs/a.txt", "docs/sub/b.txt"]);
    // remote → remote across buckets, recursive
    ok(h, &["cp", "-r", "site:docs/", "backup:"]);
    assert_eq!(ok(h, &["get", "backup:sub/b.txt"]), "B");
    // remote → local
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("got.txt");
    ok(h, &["cp", "site:docs/a.txt", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "A");
    // mv within a bucket
    ok(h, &["mv", "site:docs/a.txt", "site:docs/renamed.txt"]);
    assert_eq!(code(h, &["stat", "site:docs/a.txt"]).0, 3);
    assert_eq!(ok(h, &["get", "site:docs/renamed.txt"]), "A");
    // a prefix without -r is refused
    assert_eq!(code(h, &["cp", "site:docs/", "backup:x/"]).0, 2);
    // stats and rm --prefix
    let stats: serde_json::Value =
        serde_json::from_str(&ok(h, &["stats", "site:docs", "--json"])).unwrap();
    assert_eq!(stats["objects"], 2);
    ok(h, &["rm", "site:", "--prefix", "docs/"]);
    assert_eq!(ok(h, &["ls", "-r", "site:"]).trim(), "");
}

#[test]
fn put_file_and_stdin_json_output() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![7u8; 3 * 1024 * 1024]).unwrap();
    let out: serde_json::Value = serde_json::from_str(&ok(
        h,
        &[
            "put",
            "blobs:data.bin",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(out["size"], 3 * 1024 * 1024);
    // Standard input only when asked for, with either spelling.
    for ask in [&["--stdin"][..], &["--file", "-"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["put", "blobs:stdin.txt"])
            .args(ask)
            .env("STRATA_HOME", h)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"from stdin ").unwrap();
            stdin.write_all(ask[0].as_bytes()).unwrap();
        }
        assert!(child.wait().unwrap().success(), "{ask:?}");
        assert_eq!(
            ok(h, &["get", "blobs:stdin.txt"]),
            format!("from stdin {}", ask[0])
        );
    }
    let health = ok(h, &["health", "--json"]);
    assert!(health.contains("\"ok\":true"), "{health}");
}

#[test]
fn config_file_with_unknown_bucket_lists_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::fs_config(
        dir.path(),
        dir.path(),
        "[buckets.agent]\nconnection = 'disk'\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--config", cfg.to_str().unwrap(), "ls", "server-009:"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("valid names: agent"), "{err}");
}
