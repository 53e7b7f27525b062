//! Running the `strata` binary from the integration tests.
#![allow(dead_code)]

pub mod fake_s3;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// What a run works on.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// The embedded default, under this `STRATA_HOME`.
    Home(&'a Path),
    /// This config file (`--config`).
    Config(&'a Path),
}

/// Run `strata args` on `target`. The environment's own config variables are removed and
/// stdin is closed, so a run sees only what the test gives it.
pub fn run(target: Target<'_>, args: &[&str]) -> Output {
    run_with(target, args, &[], None)
}

/// [`run`] with extra environment variables, and `stdin` written to standard input when
/// given (closed otherwise).
pub fn run_with(
    target: Target<'_>,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.env_remove("STRATA_CONFIG")
        .env_remove("STORAGE_PROVIDER")
        .env_remove("STORAGE_BACKEND")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match target {
        Target::Home(home) => cmd.env("STRATA_HOME", home),
        Target::Config(cfg) => cmd.arg("--config").arg(cfg),
    };
    cmd.envs(env.iter().copied());
    let mut child = cmd.args(args).spawn().expect("run strata");
    if let Some(bytes) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("piped stdin");
        // The command may exit before reading (a refused put): a broken pipe is fine.
        let _ = pipe.write_all(bytes);
    }
    child.wait_with_output().expect("run strata")
}

/// Standard output of a run that must succeed (its standard error in the panic otherwise).
pub fn ok(target: Target<'_>, args: &[&str]) -> String {
    let out = run(target, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Writes `text` as `strata.toml` in `dir`; returns its path.
pub fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let cfg = dir.join("strata.toml");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Writes `strata.toml` in `dir`: connection `name` to the S3 server at `endpoint` (plain
/// HTTP, path-style, these static keys), with `rest` appended (more settings of the
/// connection, then the buckets). Returns its path.
pub fn s3_config(
    dir: &Path,
    name: &str,
    endpoint: &str,
    (access_key, secret_key): (&str, &str),
    rest: &str,
) -> std::path::PathBuf {
    let text = format!(
        r#"
[connections.{name}]
kind = "s3"
endpoint = "{endpoint}"
allow_http = true
path_style = true
credentials = "static"
access_key_id = "{access_key}"
secret_access_key = "{secret_key}"
{rest}"#
    );
    write_config(dir, &text)
}

/// [`s3_config`] for connection `moto` on the moto server, with its keys, `settings` (more
/// settings of the connection, or nothing) and one bucket handle, `name`, on the test bucket
/// under a fresh prefix named after `hint`.
pub fn moto_config(
    dir: &Path,
    server: &strata_testkit::ServerEnv,
    settings: &str,
    name: &str,
    hint: &str,
) -> std::path::PathBuf {
    let keys = (server.access_key.as_str(), server.secret_key.expose());
    let rest = format!(
        "{settings}\n[buckets.{name}]\nconnection = \"moto\"\nbucket = \"{}\"\nprefix = \"{}\"\n",
        server.bucket,
        strata_testkit::run_prefix(hint),
    );
    s3_config(dir, "moto", &server.endpoint, keys, &rest)
}

/// Writes `strata.toml` in `dir`: connection `disk` on the folder `root`, then `buckets`.
/// Returns its path.
pub fn fs_config(dir: &Path, root: &Path, buckets: &str) -> std::path::PathBuf {
    let text = format!(
        "[connections.disk]\nkind = 'fs'\nroot = '{}'\n{buckets}",
        root.display()
    );
    write_config(dir, &text)
}

/// Exit code and standard error of a run.
pub fn code(target: Target<'_>, args: &[&str]) -> (i32, String) {
    let out = run(target, args);
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
