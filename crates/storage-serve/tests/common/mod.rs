//! Start `strata serve` in-process on a temporary folder and drive it with real clients
//! (boto3, the aws CLI, pyarrow) from the venv `cargo xtask test` installs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use storage_serve::{ServeConfig, Server};
use strata::Strata;
use tokio::sync::oneshot;

/// A running server and the folder it serves.
pub struct Running {
    pub endpoint: String,
    pub admin: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<strata::Result<()>>>,
}

impl Running {
    /// Stop and wait for the server (in-flight requests finish).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// `config` with `{ROOT}` replaced by `root`, served on free loopback ports.
pub async fn start(config: &str, root: &Path) -> Running {
    let text = config.replace("{ROOT}", &root.display().to_string());
    let strata = Strata::from_toml_str(&text, "test.toml").expect("valid test config");
    let mut cfg = ServeConfig::from_toml_str(&text, "test.toml").expect("valid [serve]");
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin = Some("127.0.0.1:0".parse().unwrap());
    start_with(strata, cfg).await
}

/// Serve `strata` with `cfg` as given.
pub async fn start_with(strata: Strata, cfg: ServeConfig) -> Running {
    let mut server = Server::new(strata, cfg).expect("server config");
    if let Some(h) = prometheus() {
        server = server.with_prometheus(h);
    }
    let bound = server.bind().await.expect("bind");
    let endpoint = format!("http://{}", bound.local_addr());
    let admin = bound.admin_addr().map(|a| format!("http://{a}"));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(bound.run_until(async {
        let _ = stopped.await;
    }));
    Running {
        endpoint,
        admin,
        stop: Some(stop),
        task: Some(task),
    }
}

/// One recorder per test process (the `metrics` facade has one global recorder).
fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(storage_serve::install_prometheus)
        .clone()
}

/// Access key of the credential [`fs_config`] configures (SDKs sign every request, and a
/// signed request needs a configured secret).
pub const AK: &str = "test-ak";
/// Its secret.
pub const SK: &str = "test-sk-0123456789";

/// A plain fs config with bucket handles `names` under `{ROOT}`, and one credential
/// ([`AK`], [`SK`]) that reaches all of them.
pub fn fs_config(names: &[&str]) -> String {
    let mut s = format!(
        "[serve.credentials.test]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\nbuckets = [\"*\"]\n"
    );
    s.push_str("[connections.disk]\nkind = \"fs\"\nroot = \"{ROOT}\"\n");
    for n in names {
        s.push_str(&format!(
            "[buckets.{n}]\nconnection = \"disk\"\nbucket = \"{n}\"\n"
        ));
    }
    s
}

/// [`fs_config`] without credentials: unsigned requests only (what an SDK cannot send).
pub fn open_config(names: &[&str]) -> String {
    let full = fs_config(names);
    full[full.find("[connections").unwrap()..].to_string()
}

/// The venv's Python, or `None` (skip, said on stderr) when `STRATA_SKIP_PYTHON=1`.
pub fn python() -> Option<PathBuf> {
    strata_testkit::python()
}

/// Run `script` with boto3 (after [`strata_testkit::boto3::PRELUDE`], signing with [`AK`]
/// and [`SK`] unless `env` says otherwise) with `env`; it fills `out`, which is returned as
/// JSON. A failing script fails the test with its output.
pub async fn run_python(py: &Path, script: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let py = py.to_path_buf();
    let script = script.to_string();
    let env: Vec<(String, String)> = [("AK", AK), ("SK", SK)]
        .iter()
        .chain(env)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let printed = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        strata_testkit::boto3::run(&py, &script, &env)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&printed)
        .unwrap_or_else(|e| panic!("python printed no JSON ({e}): {printed}"))
}

/// Serve `config` on a fresh temporary folder, run `script` against it as [`run_python`]
/// does (with `EP` set to the endpoint), then stop the server; `None` (skip, said on stderr)
/// when `STRATA_SKIP_PYTHON=1`.
pub async fn run_python_on_fresh_server(config: &str, script: &str) -> Option<serde_json::Value> {
    let py = python()?;
    let dir = tempfile::tempdir().unwrap();
    let server = start(config, dir.path()).await;
    let out = run_python(&py, script, &[("EP", &server.endpoint)]).await;
    server.stop().await;
    Some(out)
}

/// Each `(name, code, status)`: the S3 error code and HTTP status a script recorded under
/// `name` (as `[code, status]`).
pub fn assert_errors(out: &serde_json::Value, expected: &[(&str, &str, u16)]) {
    for (name, code, status) in expected {
        assert_eq!(out[name], serde_json::json!([code, status]), "{name}");
    }
}
