//! The `strata` binary on the moto S3 server through a `--config` file: the object commands
//! over real HTTP, and presigned URLs used by a plain HTTP client.

mod common;

use std::path::{Path, PathBuf};

use common::Target::Config;
use serde_json::Value;

struct Setup {
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

/// A config naming one bucket handle, `media`, on moto under a fresh prefix; `None` when
/// the S3 tests are knowingly skipped (`STRATA_SKIP_S3=1`).
fn setup() -> Option<Setup> {
    let server = strata_testkit::moto_env()?;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::moto_config(
        dir.path(),
        &server,
        "conditional_delete = true\n",
        "media",
        "cli",
    );
    Some(Setup { dir, cfg })
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    common::ok(Config(cfg), args)
}

fn json(cfg: &Path, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let out = ok(cfg, &with_json);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn exit_code(cfg: &Path, args: &[&str]) -> i32 {
    common::code(Config(cfg), args).0
}

#[tokio::test]
async fn object_commands_and_presigned_urls_on_s3() {
    let Some(Setup { dir, cfg }) = setup() else {
        return;
    };
    let cfg = cfg.as_path();

    // put with content type and metadata; stat reads them back with the ETag.
    ok(
        cfg,
        &[
            "put",
            "media:docs/a.json",
            "--data",
            r#"{"x":1}"#,
            "--content-type",
            "application/json",
            "--meta",
            "owner=ana",
        ],
    );
    let stat = json(cfg, &["stat", "media:docs/a.json"]);
    assert_eq!(stat["size"], 7);
    assert_eq!(stat["headers"]["content-type"], "application/json");
    assert_eq!(stat["metadata"]["owner"], "ana");
    let etag = stat["etag"].as_str().expect("an ETag").to_string();

    // Conditional writes: a stale ETag is a conflict (exit 4), the current one succeeds.
    assert_eq!(
        exit_code(
            cfg,
            &[
                "put",
                "media:docs/a.json",
                "--data",
                "{}",
                "--if-match",
                "\"stale\""
            ]
        ),
        4
    );
    assert_eq!(
        exit_code(
            cfg,
            &["put", "media:docs/a.json", "--data", "{}", "--if-absent"]
        ),
        4
    );
    ok(
        cfg,
        &[
            "put",
            "media:docs/a.json",
            "--data",
            r#"{"x":2}"#,
            "--if-match",
            &etag,
        ],
    );

    // ls -l shows size and key; get -o writes the file.
    let long = ok(cfg, &["ls", "-l", "media:docs/"]);
    assert!(
        long.contains("docs/a.json") && long.contains("7 B"),
        "{long}"
    );
    let out = dir.path().join("a.json");
    ok(
        cfg,
        &["get", "media:docs/a.json", "-o", out.to_str().unwrap()],
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), r#"{"x":2}"#);
    assert_eq!(exit_code(cfg, &["get", "media:docs/missing"]), 3);

    // A presigned GET, fetched by a plain HTTP client, returns the object.
    let url = ok(cfg, &["presign", "media:docs/a.json", "--expires", "15m"]);
    let body = reqwest::get(url.trim()).await.unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(body.text().await.unwrap(), r#"{"x":2}"#);
    // A presigned PUT uploads through the same client; the CLI then reads it.
    let url = ok(
        cfg,
        &[
            "presign",
            "media:docs/up.txt",
            "--method",
            "put",
            "--expires",
            "1h",
        ],
    );
    let put = reqwest::Client::new()
        .put(url.trim())
        .body("uploaded")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    assert_eq!(ok(cfg, &["get", "media:docs/up.txt"]), "uploaded");

    // Recursive copy up and down, move, stats, health, rm --prefix.
    let local = dir.path().join("tree");
    std::fs::create_dir_all(local.join("sub")).unwrap();
    std::fs::write(local.join("one.txt"), "1").unwrap();
    std::fs::write(local.join("sub/two.txt"), "22").unwrap();
    ok(cfg, &["cp", "-r", local.to_str().unwrap(), "media:tree/"]);
    ok(cfg, &["mv", "media:tree/one.txt", "media:tree/uno.txt"]);
    let back = dir.path().join("back");
    ok(cfg, &["cp", "-r", "media:tree/", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back.join("uno.txt")).unwrap(), "1");
    assert_eq!(
        std::fs::read_to_string(back.join("sub/two.txt")).unwrap(),
        "22"
    );
    assert!(!back.join("one.txt").exists(), "mv left the source");
    let stats = json(cfg, &["stats", "media:"]);
    assert_eq!(stats["objects"], 4, "{stats}");
    // One bucket: one NDJSON line.
    let health = json(cfg, &["health", "media"]);
    assert_eq!(health["ok"], true, "{health}");
    assert_eq!(health["provider"], "s3", "{health}");
    ok(cfg, &["rm", "media:", "--prefix", "tree/"]);
    ok(cfg, &["rm", "media:docs/a.json", "media:docs/up.txt"]);
    let stats = json(cfg, &["stats", "media:"]);
    assert_eq!(stats["objects"], 0, "{stats}");
}

/// Issue 17 on real S3: header values with line breaks or control characters were a panic
/// inside `object_store`'s signer (exit 101); a move onto itself and an empty-prefix rm
/// must leave the object where it is.
#[test]
fn hostile_headers_and_destructive_mistakes_on_s3_change_nothing() {
    let Some(Setup { dir: _dir, cfg }) = setup() else {
        return;
    };
    let cfg = cfg.as_path();
    ok(cfg, &["put", "media:keep.txt", "--data", "kept"]);
    let hostile: [(&str, &str, &str); 6] = [
        ("--content-type", "text/plain\r\nX-Evil: 1", "content type"),
        ("--cache-control", "no-cache\nX: y", "cache control"),
        (
            "--content-disposition",
            "attachment\r",
            "content disposition",
        ),
        ("--content-encoding", "gzip\t", "content encoding"),
        ("--content-type", "tëxt/plain", "content type"),
        ("--meta", "k=a\r\nb", "metadata `k`"),
    ];
    for (flag, value, field) in hostile {
        let (code, err) = common::code(
            Config(cfg),
            &["put", "media:keep.txt", "--data", "new", flag, value],
        );
        assert_eq!(code, 2, "{flag} {value:?}: {err}");
        assert!(err.contains(field) && !err.contains("panicked"), "{err}");
    }
    let (code, err) = common::code(Config(cfg), &["mv", "media:keep.txt", "media:keep.txt"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("same object"), "{err}");
    let (code, err) = common::code(Config(cfg), &["rm", "media:", "--prefix", ""]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--all"), "{err}");
    assert_eq!(ok(cfg, &["get", "media:keep.txt"]), "kept");
    let stat = json(cfg, &["stat", "media:keep.txt"]);
    assert_eq!(stat["size"], 4, "{stat}");
}
