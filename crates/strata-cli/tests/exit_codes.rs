//! Exit codes by cause, driven by real failures: a dead endpoint and a throttling server
//! (5: try again later), a denied credential on the signature-checking s3s-fs server (6:
//! this will never work as it is), next to not found (3), conflict (4) and bad input (2).

mod common;

use common::Target::{Config, Home};
use common::fake_s3::{self, Reply};

/// A config whose endpoint refuses connections: a port that was free a moment ago.
fn dead_endpoint(dir: &std::path::Path) -> std::path::PathBuf {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    fake_s3::config(dir, &format!("http://127.0.0.1:{port}"), "secret")
}

/// A fake S3 server that answers every request with `status` and the S3 error `code`, and a
/// config on it in `dir`.
fn always(
    dir: &std::path::Path,
    status: u16,
    code: &'static str,
    message: &'static str,
) -> (fake_s3::FakeS3, std::path::PathBuf) {
    let server = fake_s3::serve(move |_| Reply {
        status,
        body: fake_s3::error_xml(code, message),
    });
    let cfg = fake_s3::config(dir, &server.endpoint, "secret");
    (server, cfg)
}

fn json_error(stderr: &str) -> serde_json::Value {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("{\"error\""))
        .unwrap_or_else(|| panic!("no JSON error in: {stderr}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn connection_refused_is_temporary_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dead_endpoint(dir.path());
    for args in [
        &["get", "fake:a.txt"][..],
        &["ls", "-r", "fake:"],
        &["put", "fake:a.txt", "--data", "x"],
        &["buckets", "health"],
    ] {
        let (code, err) = common::code(Config(&cfg), args);
        assert_eq!(code, 5, "{args:?}: {err}");
        assert!(err.contains("hint: this is temporary"), "{args:?}: {err}");
    }
    let out = common::run(Config(&cfg), &["stat", "fake:a.txt", "--json"]);
    assert_eq!(out.status.code(), Some(5));
    let e = json_error(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(e["error"]["kind"], "temporary", "{e}");
    assert_eq!(e["error"]["exit_code"], 5, "{e}");
}

#[test]
fn throttling_server_is_temporary_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let (server, cfg) = always(
        dir.path(),
        503,
        "SlowDown",
        "Please reduce your request rate.",
    );
    for args in [&["get", "fake:a.txt"][..], &["ls", "-r", "fake:"]] {
        let (code, err) = common::code(Config(&cfg), args);
        assert_eq!(code, 5, "{args:?}: {err}");
    }
    assert!(
        !server.log.lock().unwrap().is_empty(),
        "the requests reached the throttling server"
    );
}

#[test]
fn forbidden_answer_is_denied_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, cfg) = always(dir.path(), 403, "AccessDenied", "Access Denied");
    let (code, err) = common::code(Config(&cfg), &["get", "fake:a.txt"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("hint: check the credentials"), "{err}");
}

/// s3s-fs checks signatures: a wrong secret is refused with 403 on every request.
#[test]
fn wrong_secret_on_s3s_fs_is_denied_exit_6() {
    let Some(server) = strata_testkit::sigv4_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::s3_config(
        dir.path(),
        "s3s",
        &server.endpoint,
        (&server.access_key, "not-the-secret"),
        &format!(
            "max_retries = 0\n\n[buckets.denied]\nconnection = \"s3s\"\nbucket = \"{}\"\n",
            server.bucket
        ),
    );
    for args in [
        &["get", "denied:a.txt"][..],
        &["put", "denied:a.txt", "--data", "x"],
        &["ls", "-r", "denied:"],
    ] {
        let (code, err) = common::code(Config(&cfg), args);
        assert_eq!(code, 6, "{args:?}: {err}");
    }
    let out = common::run(Config(&cfg), &["get", "denied:a.txt", "--json"]);
    let e = json_error(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(e["error"]["kind"], "denied", "{e}");
}

#[test]
fn not_found_conflict_and_bad_input_keep_3_4_2() {
    let home = tempfile::tempdir().unwrap();
    let h = Home(home.path());
    common::ok(h, &["put", "b:k", "--data", "1"]);
    assert_eq!(common::code(h, &["get", "b:nope"]).0, 3);
    assert_eq!(
        common::code(h, &["put", "b:k", "--data", "2", "--if-absent"]).0,
        4
    );
    assert_eq!(common::code(h, &["get", "no-address"]).0, 2);
    // An operation the backend cannot do is not a bug: fix the command (exit 2).
    assert_eq!(common::code(h, &["presign", "b:k"]).0, 2);
}
