//! Install, start and stop the S3 test servers (moto for semantics, s3s-fs for signatures).
//!
//! Both are installed once into a cache folder outside the repository
//! (`$STRATA_TEST_SERVERS_DIR`, default `~/.cache/strata-test-servers`) and reused. Each run
//! starts them on free loopback ports and stops them by PID when the [`Servers`] value is
//! dropped, which happens on every exit path, panics included.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::{Result, run};

const MOTO_VERSION: &str = "5.2.5";
const S3S_FS_VERSION: &str = "0.14.1";
/// Bump when the Python package set changes, so caches reinstall.
const VENV_STAMP: &str = ".strata-venv-v3";
const ACCESS_KEY: &str = "strata-test-ak";
const SECRET_KEY: &str = "strata-test-sk-0123456789";
const BUCKET: &str = "strata-test";

/// The cache folder for installed servers.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STRATA_TEST_SERVERS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("strata-test-servers")
}

/// Install whatever is missing. Prints what it does; skips what is cached.
pub fn install(dry_run: bool) -> Result<()> {
    let dir = cache_dir();
    let venv = dir.join("venv");
    if venv.join(VENV_STAMP).exists() {
        println!(
            "xtask: moto {MOTO_VERSION}, boto3, pyarrow, duckdb, awscli: cached in {}",
            venv.display()
        );
    } else {
        println!(
            "xtask: installing moto[server]=={MOTO_VERSION}, boto3, pyarrow, duckdb, awscli into {} (~1 min)",
            venv.display()
        );
        if !dry_run {
            std::fs::create_dir_all(&dir)?;
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
            run(Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(format!("moto[server]=={MOTO_VERSION}"))
                // awscli: `strata serve`'s interop tests drive `aws s3 cp/ls/sync/rm`.
                .args(["boto3", "pyarrow", "duckdb", "awscli"]))?;
            std::fs::write(venv.join(VENV_STAMP), "")?;
        }
    }
    let s3s = s3s_fs_bin();
    if s3s.exists() {
        println!(
            "xtask: s3s-fs {S3S_FS_VERSION}: cached at {}",
            s3s.display()
        );
    } else {
        println!("xtask: installing s3s-fs {S3S_FS_VERSION} (cargo install, ~2 min on 2 cores)");
        if !dry_run {
            run(
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                    .args([
                        "install",
                        "s3s-fs",
                        "--version",
                        S3S_FS_VERSION,
                        "--features",
                        "binary",
                        "--locked",
                        "--quiet",
                        "--root",
                    ])
                    .arg(dir.join("s3s-fs"))
                    // Our own target dir is for the workspace; the install builds elsewhere.
                    .env_remove("CARGO_TARGET_DIR"),
            )?;
        }
    }
    Ok(())
}

fn s3s_fs_bin() -> PathBuf {
    cache_dir().join("s3s-fs/bin/s3s-fs")
}

/// The venv's Python (with boto3, pyarrow and duckdb, the manifest bench's baseline).
pub fn python() -> PathBuf {
    cache_dir().join("venv/bin/python")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Send one raw HTTP request and return the status code.
fn http_status(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {head:?}")))
}

fn wait_ready(name: &str, port: u16, child: &mut Child) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait()? {
            return Err(format!(
                "{name} exited during start-up ({status}); see its log under target/xtask/"
            )
            .into());
        }
        if http_status(port, "GET", "/").is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{name} did not answer on 127.0.0.1:{port} within 60 s").into())
}

/// Running servers; dropping this stops them.
pub struct Servers {
    children: Vec<(String, Child)>,
    data_dir: PathBuf,
    /// Variables the tests read.
    pub env: Vec<(String, String)>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (name, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
            println!("xtask: stopped {name} (pid {})", child.id());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl Servers {
    /// Start `name` (logging to `NAME.log` in `log_dir`) and wait until it answers on `port`;
    /// it is stopped with the others even when it never gets ready. `hint` follows a failure
    /// to start it.
    fn spawn(
        &mut self,
        name: &str,
        hint: &str,
        mut command: Command,
        port: u16,
        log_dir: &Path,
    ) -> Result<()> {
        let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
        let mut child = command
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {name}{hint}: {e}"))?;
        let ready = wait_ready(name, port, &mut child);
        self.children.push((name.into(), child));
        ready
    }
}

/// Start both servers on free ports and create the test buckets.
pub fn start(log_dir: &Path) -> Result<Servers> {
    std::fs::create_dir_all(log_dir)?;
    let data_dir = log_dir.join(format!("s3s-fs-data-{}", std::process::id()));
    std::fs::create_dir_all(data_dir.join(BUCKET))?;
    let mut servers = Servers {
        children: Vec::new(),
        data_dir: data_dir.clone(),
        env: Vec::new(),
    };

    let moto_port = free_port()?;
    // Through our launcher, which makes moto's conditional writes atomic (see the script).
    let mut moto = Command::new(cache_dir().join("venv/bin/python"));
    moto.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/moto_server.py"))
        .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()]);
    servers.spawn(
        "moto",
        " (run `cargo xtask servers --install`)",
        moto,
        moto_port,
        log_dir,
    )?;
    // moto accepts an unsigned CreateBucket.
    let status = http_status(moto_port, "PUT", &format!("/{BUCKET}"))?;
    if !(200..300).contains(&status) {
        return Err(format!("moto refused to create bucket {BUCKET}: HTTP {status}").into());
    }

    let s3s_port = free_port()?;
    let mut s3s = Command::new(s3s_fs_bin());
    s3s.args(["--host", "127.0.0.1", "--port", &s3s_port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(&data_dir);
    servers.spawn("s3s-fs", "", s3s, s3s_port, log_dir)?;

    let vars = [
        (
            "STRATA_TEST_S3_ENDPOINT",
            format!("http://127.0.0.1:{moto_port}"),
        ),
        ("STRATA_TEST_S3_BUCKET", BUCKET.to_string()),
        ("STRATA_TEST_S3_ACCESS_KEY", ACCESS_KEY.to_string()),
        ("STRATA_TEST_S3_SECRET_KEY", SECRET_KEY.to_string()),
        (
            "STRATA_TEST_S3_SIGV4_ENDPOINT",
            format!("http://127.0.0.1:{s3s_port}"),
        ),
        ("STRATA_TEST_S3_SIGV4_BUCKET", BUCKET.to_string()),
        ("STRATA_TEST_S3_SIGV4_ACCESS_KEY", ACCESS_KEY.to_string()),
        ("STRATA_TEST_S3_SIGV4_SECRET_KEY", SECRET_KEY.to_string()),
        ("STRATA_TEST_PYTHON", python().display().to_string()),
    ];
    servers.env = vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    println!("xtask: moto on 127.0.0.1:{moto_port}, s3s-fs on 127.0.0.1:{s3s_port}");
    Ok(servers)
}
