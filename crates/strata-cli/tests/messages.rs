//! Messages are written for people: no `Some(..)`, `None` or Rust `Debug` quoting in any
//! error a user can see, hints where a flag fixes the problem, durations echoed as typed,
//! no colour off a terminal, nothing printed by `-q` on success.

mod common;

use std::time::Duration;

use common::Target::Home;
use storage_core::StorageError;

/// What `Debug` formatting leaves behind in text meant for people.
fn debug_residue(text: &str) -> Option<&'static str> {
    [
        "Some(",
        "None",
        "\\\"",
        "Duration {",
        "secs:",
        "nanos:",
        "Error {",
        "kind:",
    ]
    .into_iter()
    .find(|p| text.contains(p))
}

fn io(msg: &str) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(std::io::Error::other(msg.to_string()))
}

/// One of every variant, with the values that used to print as `Debug`: an optional ETag,
/// durations with fractions.
fn every_variant() -> Vec<StorageError> {
    let b = || "media".to_string();
    let k = || "a/key.json".to_string();
    vec![
        StorageError::NotFound {
            backend: b(),
            key: k(),
        },
        StorageError::AlreadyExists {
            backend: b(),
            key: k(),
        },
        StorageError::Precondition {
            backend: b(),
            key: k(),
            detail: "expected ETag \"abc\"".into(),
        },
        StorageError::NotModified {
            backend: b(),
            key: k(),
            etag: "\"abc\"".into(),
        },
        StorageError::AccessDenied {
            backend: b(),
            key: k(),
            source: io("403 Forbidden"),
        },
        StorageError::Unauthenticated {
            backend: b(),
            source: io("401"),
        },
        StorageError::QuotaExceeded {
            backend: b(),
            detail: "SlowDown".into(),
        },
        StorageError::InvalidKey {
            key: k(),
            rule: "no `..` segments".into(),
        },
        StorageError::invalid_config("buckets.media.region", "must not be empty"),
        StorageError::invalid_input("expires", "at most 7d"),
        StorageError::Timeout {
            backend: b(),
            operation: "get".into(),
            after: Duration::from_millis(1500),
            source: None,
        },
        StorageError::Timeout {
            backend: b(),
            operation: "put".into(),
            after: Duration::from_secs(30),
            source: Some(io("deadline")),
        },
        StorageError::Unavailable {
            backend: b(),
            source: io("connection refused"),
        },
        StorageError::CircuitOpen {
            backend: b(),
            retry_after: Duration::from_millis(4_321),
        },
        StorageError::Expired {
            backend: b(),
            key: k(),
            expired_at: "2026-12-01T00:00:00Z".into(),
        },
        StorageError::not_supported(b(), "presign"),
        StorageError::Conflict {
            backend: b(),
            key: k(),
            attempts: 7,
            last_etag: Some("\"f64e0c\"".into()),
        },
        StorageError::Conflict {
            backend: b(),
            key: k(),
            attempts: 7,
            last_etag: None,
        },
        StorageError::Ambiguous {
            backend: b(),
            key: k(),
            detail: "the answer was lost".into(),
        },
        StorageError::PartialMove {
            backend: b(),
            from: "a".into(),
            to: "b".into(),
            source: Box::new(StorageError::Unavailable {
                backend: b(),
                source: io("reset"),
            }),
        },
        StorageError::Corrupt {
            backend: b(),
            key: k(),
            reason: "bad JSON".into(),
        },
        StorageError::Backend {
            backend: b(),
            status: Some(500),
            source: io("internal"),
        },
        StorageError::Backend {
            backend: b(),
            status: None,
            source: io("reset by peer"),
        },
    ]
}

#[test]
fn no_storage_error_displays_debug_formatting() {
    for e in every_variant() {
        let text = e.to_string();
        assert_eq!(debug_residue(&text), None, "{text}");
    }
    let conflict = &every_variant()[16];
    assert_eq!(
        conflict.to_string(),
        "media: conflict on `a/key.json` after 7 attempts (last seen ETag \"f64e0c\")"
    );
    assert_eq!(
        every_variant()[10].to_string(),
        "media: get timed out after 1.5s"
    );
}

/// Every `#[error("...")]` of the workspace's crates, read from their sources: none may
/// format a field with `{:?}` (a variant added later is checked too).
#[test]
fn no_error_attribute_uses_debug_formatting() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    let mut stack = vec![crates];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("target") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, chunk) in text.split("#[error(").enumerate().skip(1) {
                let attr = &chunk[..chunk.find(")]").unwrap_or(chunk.len())];
                checked += 1;
                assert!(
                    !attr.contains(":?}"),
                    "{} error attribute #{i} formats with Debug: #[error({attr})]",
                    path.display()
                );
            }
        }
    }
    assert!(checked > 15, "found only {checked} error attributes");
}

fn stderr_of(home: &std::path::Path, args: &[&str]) -> (i32, String) {
    common::code(Home(home), args)
}

#[test]
fn cli_errors_read_as_sentences_with_hints() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    common::ok(Home(h), &["put", "b:k", "--data", "1"]);
    common::ok(Home(h), &["doc", "put", "app:users", "1", "--data", "{}"]);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["get", "b:missing"], 3, "not found"),
        (
            vec!["put", "b:k", "--data", "2", "--if-absent"],
            4,
            "already exists",
        ),
        (
            vec!["presign", "b:k", "--expires", "8d"],
            2,
            "--expires 8d is longer",
        ),
        (
            vec!["doc", "update", "app:users", "2", "--set", "a=1"],
            3,
            "hint: add --create",
        ),
        (
            vec!["put", "b:k", "--data", "x", "--tag", "bad"],
            2,
            "--tag `bad` is not K=V",
        ),
        (
            vec!["put", "b:k", "--data", "x", "--tag", "a=1", "--tag", "a=2"],
            2,
            "given twice",
        ),
        (
            vec!["put", "b:k", "--data", "x", "--tag", "a=b&c"],
            2,
            "tags may contain only",
        ),
    ];
    for (args, code, needle) in cases {
        let (c, err) = stderr_of(h, &args);
        assert_eq!(c, code, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: `{needle}` not in: {err}");
        assert_eq!(debug_residue(&err), None, "{args:?}: {err}");
        assert!(!err.contains('\x1b'), "colour off a terminal: {err:?}");
    }
}

/// The local-folder and memory backends word a failed `--if-match` for people (they used
/// `Debug`: `expected ETag Some("\"stale\"")`).
#[test]
fn a_failed_if_match_names_the_etags_plainly() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    common::ok(Home(h), &["put", "b:k", "--data", "1"]);
    let (c, err) = stderr_of(h, &["put", "b:k", "--data", "2", "--if-match", "\"stale\""]);
    assert_eq!(c, 4, "{err}");
    assert!(err.contains("precondition"), "{err}");
    assert_eq!(debug_residue(&err), None, "{err}");
}

#[test]
fn quiet_prints_nothing_on_success_but_reads_still_answer() {
    let home = tempfile::tempdir().unwrap();
    let h = Home(home.path());
    for args in [
        &["-q", "put", "b:k", "--data", "1"][..],
        &["-q", "cp", "b:k", "b:k2"],
        &["-q", "mv", "b:k2", "b:k3"],
        &["-q", "doc", "put", "app:u", "1", "--data", "{}"],
        &["-q", "doc", "update", "app:u", "1", "--set", "a=1"],
        &["-q", "rm", "b:k3"],
    ] {
        let out = common::run(h, args);
        assert!(out.status.success(), "{args:?}");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{args:?} printed {:?} / {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(common::ok(h, &["-q", "get", "b:k"]), "1");
}

#[test]
fn no_colour_when_not_a_terminal_or_no_color_is_set() {
    let home = tempfile::tempdir().unwrap();
    for env in [&[][..], &[("NO_COLOR", "1")]] {
        let out = common::run_with(Home(home.path()), &["-v", "get", "b:x"], env, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{err}");
        assert!(!err.contains('\x1b'), "{env:?}: {err:?}");
    }
}
