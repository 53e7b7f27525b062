//! # strata-testkit
//!
//! Test support shared by every Strata crate.
//!
//! - [`s3_bucket`], [`sigv4_bucket`], [`r2_bucket`]: buckets on the S3-compatible servers
//!   that `cargo xtask test` installs and starts, each under a fresh random prefix so runs
//!   never see each other's keys. moto ([`s3_bucket`]) is the semantics server; s3s-fs
//!   ([`sigv4_bucket`]) checks signatures. Without the server variables these panic with
//!   "run `cargo xtask test`"; with `STRATA_SKIP_S3=1` they return `None` and print that
//!   they skipped.
//! - [`behaviour::run`]: the behaviour suite, the same checks against any [`Bucket`].
//! - [`files_under`]: the files of a folder tree; [`keys`]: the keys of a listing; [`body`]: an object's bytes in a raw store; [`stdout_of`]: what a helper program (boto3, curl,
//!   the aws CLI) printed, panicking with its errors when it failed.
//! - [`python`]: the Python (with boto3 and pyarrow) that `cargo xtask test` installed.
//! - [`test_store::TestStore`]: the one wrapper store for tests, forwarding every call and
//!   letting its hooks count or change a few: [`CountingStore`] counts GET requests, bytes
//!   and deletes, to prove reads fetch only what they need; [`FakeSigningStore`] signs URLs
//!   without a server.
//! - [`fault_proxy::FaultProxy`]: a seeded fault-injecting HTTP proxy on loopback, in front of
//!   moto, for faults below the HTTP client (503 before, 500 after applying, delays past the
//!   client timeout, resets, torn bodies).
//! - [`linearizability::check`]: a Wing & Gong linearizability checker over a sequential
//!   model ([`linearizability::CasRegister`] for one object under compare-and-swap), with
//!   [`linearizability::History`] to record calls and returns from many tasks or processes.
//! - [`bench`](mod@bench): the `BENCH {json}` result lines the benchmarks print for
//!   `cargo xtask bench --report`, and the `STRATA_BENCH_QUICK` knob.
//! - [`tracing_capture::Captured`]: what `tracing` writes, as text, for tests on logs.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use strata_testkit::behaviour::{self, Profile};
//! let bucket = storage_core::Bucket::memory("suite");
//! let report = behaviour::run(&bucket, &Profile::embedded("memory")).await;
//! assert!(report.passed.len() > 10);
//! # }
//! ```

use std::path::PathBuf;

use storage_core::config::Env;
use storage_core::{Bucket, Capabilities, Secret};
use storage_r2::R2Config;
use storage_s3::{CredentialSource, S3Config};

pub mod behaviour;
pub mod bench;
pub mod boto3;
mod counting;
pub mod fault_proxy;
pub mod linearizability;
mod signing;
pub mod test_store;
pub mod tracing_capture;

pub use counting::{CountingStore, Counts};
pub use signing::{FakeSigner, FakeSigningStore};

/// The variables `cargo xtask test` exports for one test server.
#[derive(Debug, Clone, Copy)]
pub struct ServerVars {
    /// `http://127.0.0.1:PORT`; its absence means the servers are not running.
    pub endpoint: &'static str,
    /// The bucket created for tests.
    pub bucket: &'static str,
    /// The access key.
    pub access_key: &'static str,
    /// The secret key.
    pub secret_key: &'static str,
    /// What the tests that need it are, in skip and panic messages.
    pub what: &'static str,
}

/// moto, the S3 semantics server.
pub const MOTO: ServerVars = ServerVars {
    endpoint: "STRATA_TEST_S3_ENDPOINT",
    bucket: "STRATA_TEST_S3_BUCKET",
    access_key: "STRATA_TEST_S3_ACCESS_KEY",
    secret_key: "STRATA_TEST_S3_SECRET_KEY",
    what: "S3 semantics test (moto)",
};

/// s3s-fs, the signature-checking server.
pub const SIGV4: ServerVars = ServerVars {
    endpoint: "STRATA_TEST_S3_SIGV4_ENDPOINT",
    bucket: "STRATA_TEST_S3_SIGV4_BUCKET",
    access_key: "STRATA_TEST_S3_SIGV4_ACCESS_KEY",
    secret_key: "STRATA_TEST_S3_SIGV4_SECRET_KEY",
    what: "SigV4 test (s3s-fs)",
};

/// The moto server's endpoint variable (`MOTO.endpoint`): whether the S3 servers run.
pub const S3_ENDPOINT: &str = MOTO.endpoint;
/// Python with boto3 and pyarrow.
pub const PYTHON: &str = "STRATA_TEST_PYTHON";

/// Connection details of one test server.
#[derive(Debug, Clone)]
pub struct ServerEnv {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Bucket created for tests.
    pub bucket: String,
    /// Access key.
    pub access_key: String,
    /// Secret key.
    pub secret_key: Secret,
}

impl ServerVars {
    /// The server's details from the environment, or `None` when `STRATA_SKIP_S3=1`.
    pub fn env(&self) -> Option<ServerEnv> {
        let env = Env::process();
        let Some(endpoint) = env.get(self.endpoint) else {
            if env.get("STRATA_SKIP_S3").is_some_and(|v| v == "1") {
                eprintln!(
                    "SKIPPED: {}: STRATA_SKIP_S3=1 is set and {} is not",
                    self.what, self.endpoint
                );
                return None;
            }
            panic!(
                "{} needs the S3 test servers: {} is not set. Run `cargo xtask test`, which installs and starts them (or set STRATA_SKIP_S3=1 to skip these tests knowingly)",
                self.what, self.endpoint
            )
        };
        let or_test = |var: &str| env.get(var).unwrap_or_else(|| "test".into());
        Some(ServerEnv {
            endpoint,
            bucket: env.get(self.bucket).unwrap_or_else(|| "strata-test".into()),
            access_key: or_test(self.access_key),
            secret_key: Secret::new(or_test(self.secret_key)),
        })
    }
}

/// The moto server's details, or `None` when `STRATA_SKIP_S3=1`.
pub fn moto_env() -> Option<ServerEnv> {
    MOTO.env()
}

/// The s3s-fs server's details, or `None` when `STRATA_SKIP_S3=1`.
pub fn sigv4_env() -> Option<ServerEnv> {
    SIGV4.env()
}

/// The keys a listing (`Bucket::list`, `Bucket::list_after`) yields, in its order.
pub async fn keys(
    listing: futures::stream::BoxStream<'static, storage_core::Result<storage_core::ObjectInfo>>,
) -> Vec<String> {
    use futures::TryStreamExt;
    listing.map_ok(|o| o.key).try_collect().await.unwrap()
}

/// Every file under `dir`, at any depth, sorted; unreadable folders count as empty.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect();
    files.sort();
    files
}

/// The whole body of `key` in a raw store (no bucket in front of it).
pub async fn body(store: &(impl object_store::ObjectStore + ?Sized), key: &str) -> bytes::Bytes {
    use object_store::ObjectStoreExt;
    let got = store.get(&object_store::path::Path::from(key)).await;
    got.unwrap_or_else(|e| panic!("get {key}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("body of {key}: {e}"))
}

/// The standard output of `cmd`, which must start and succeed: otherwise this panics with
/// `what` (the program, and how to get it) and everything the program printed.
pub fn stdout_of(cmd: &mut std::process::Command, what: &str) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh random folder name for one test run.
pub fn run_prefix(hint: &str) -> String {
    let clean: String = hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("strata-test/{clean}-{:016x}", fastrand::u64(..))
}

/// An [`S3Config`] for a test server.
pub fn s3_config(server: &ServerEnv) -> S3Config {
    let mut cfg = S3Config::new(&server.bucket);
    cfg.endpoint = Some(server.endpoint.clone());
    cfg.allow_http = true;
    cfg.path_style = Some(true);
    cfg.credentials = CredentialSource::Static;
    cfg.access_key_id = Some(server.access_key.clone());
    cfg.secret_access_key = Some(server.secret_key.clone());
    cfg.max_retries = Some(2);
    // moto honours If-Match on DELETE (a custom endpoint is off by default).
    cfg.conditional_delete = Some(true);
    cfg
}

/// A bucket on the moto server under a fresh prefix.
pub fn s3_bucket(hint: &str) -> Option<Bucket> {
    let server = moto_env()?;
    let bucket = s3_config(&server)
        .build(hint)
        .expect("valid test S3 config");
    Some(prefixed(bucket, hint))
}

/// A bucket on the signature-checking s3s-fs server under a fresh prefix. Its conditional
/// reads and deletes are ignored and its conditional writes are not atomic, so the
/// capabilities say so.
pub fn sigv4_bucket(hint: &str) -> Option<Bucket> {
    let server = sigv4_env()?;
    let mut cfg = s3_config(&server);
    // s3s-fs stalls ~40 ms on reused keep-alive connections.
    cfg.keep_alive = false;
    // s3s-fs ignores If-Match on DELETE: a conditional delete would not be one.
    cfg.conditional_delete = Some(false);
    let bucket = cfg
        .build_as(hint, "s3", Capabilities::S3.with_conditional_get(false))
        .expect("valid test S3 config");
    Some(prefixed(bucket, hint))
}

/// A bucket built through [`R2Config`] with its endpoint pointed at the moto server: proves
/// the R2 path (config translation, quirks) over real HTTP.
pub fn r2_bucket(hint: &str) -> Option<Bucket> {
    let server = moto_env()?;
    let cfg = R2Config {
        account_id: "0123456789abcdef0123456789abcdef".into(),
        bucket: server.bucket.clone(),
        access_key_id: server.access_key.clone(),
        secret_access_key: server.secret_key.clone(),
        jurisdiction: Default::default(),
        endpoint: Some(server.endpoint.clone()),
        allow_http: true,
        cdn_url: None,
        max_retries: Some(2),
        timeout: None,
        connect_timeout: None,
        part_size: None,
        keep_alive: true,
    };
    let bucket = cfg.build(hint).expect("valid test R2 config");
    Some(prefixed(bucket, hint))
}

fn prefixed(bucket: Bucket, hint: &str) -> Bucket {
    bucket
        .to_builder()
        .prefix(&run_prefix(hint))
        .expect("valid prefix")
        .build()
}

/// The Python with boto3 and pyarrow, or `None` when `STRATA_SKIP_PYTHON=1`.
pub fn python() -> Option<PathBuf> {
    let env = Env::process();
    match env.get(PYTHON) {
        Some(p) => Some(PathBuf::from(p)),
        None if env.get("STRATA_SKIP_PYTHON").is_some_and(|v| v == "1") => {
            eprintln!("SKIPPED: interop test: STRATA_SKIP_PYTHON=1 is set and {PYTHON} is not");
            None
        }
        None => panic!(
            "this interop test needs Python with boto3/pyarrow: {PYTHON} is not set. Run `cargo xtask test` (or set STRATA_SKIP_PYTHON=1 to skip knowingly)"
        ),
    }
}
