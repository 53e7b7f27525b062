//! The `strata serve` binary as real OS processes: two of them on one local folder behave as
//! one endpoint (32 racing boto3 writers, half through each, exactly one winner), and
//! SIGTERM lets an in-flight request finish, then exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A `strata serve` process and the addresses it printed.
struct Served {
    child: Child,
    /// `127.0.0.1:PORT` of the S3 endpoint.
    s3: String,
    /// `127.0.0.1:PORT` of /health and /metrics.
    admin: String,
    /// Everything the process wrote to standard error (for failure messages).
    stderr: Arc<Mutex<String>>,
}

impl Served {
    fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait up to `limit` for the process to exit; `None` if it is still running.
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Only this process, which the test started.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `strata --config CONFIG serve` on free loopback ports (port 0: the process binds
/// and prints the addresses it got, so no port can be taken in between), and wait until
/// its admin listener answers `/health` with 200.
fn serve(config: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .env_remove("STRATA_CONFIG")
        .env_remove("STORAGE_PROVIDER")
        .env_remove("STORAGE_BACKEND")
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start strata serve");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().expect("piped stderr");
    let log = stderr.clone();
    // Drain standard error for the process's whole life, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if line.contains("S3 endpoint http://") {
                let _ = tx.send(line);
            }
        }
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!(
            "strata serve printed no endpoint within 60 s:\n{}",
            stderr.lock().unwrap()
        );
    };
    // "strata serve: S3 endpoint http://A (N buckets: ...); health and metrics on http://B"
    let addr_after = |marker: &str| -> String {
        let rest = &line[line.find(marker).unwrap_or_else(|| panic!("{line}")) + marker.len()..];
        rest.split([' ', ')', ';'])
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let served = Served {
        s3: addr_after("S3 endpoint http://"),
        admin: addr_after("health and metrics on http://"),
        child,
        stderr,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match get(&served.admin, "/health") {
            Some((200, _)) => break,
            other if Instant::now() > deadline => panic!(
                "/health on {} did not answer 200 within 30 s (last: {other:?}):\n{}",
                served.admin,
                served.log()
            ),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    served
}

/// `GET path` on `addr` over plain HTTP/1.1: status and body, `None` if nothing answers.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

const AK: &str = "serve-test-ak";
const SK: &str = "serve-test-sk-0123456789";

/// A config file in `dir`: bucket `media` on the folder `root`, with one credential when
/// `signed` (SDKs sign every request), else none (unsigned loopback requests).
fn config(dir: &Path, root: &Path, signed: bool) -> std::path::PathBuf {
    let mut text = String::new();
    if signed {
        text.push_str(&format!(
            "[serve.credentials.test]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\nbuckets = [\"*\"]\n"
        ));
    }
    text.push_str(&format!(
        "[connections.disk]\nkind = \"fs\"\nroot = \"{}\"\n[buckets.media]\nconnection = \"disk\"\nbucket = \"media\"\n",
        root.display()
    ));
    let path = dir.join("strata.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn two_serve_processes_on_one_folder_let_exactly_one_of_32_racing_writers_win() {
    let Some(py) = strata_testkit::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let cfg = config(dir.path(), &root, true);
    let a = serve(&cfg);
    let b = serve(&cfg);
    assert_ne!(a.s3, b.s3);
    assert_ne!(a.child.id(), b.child.id());
    let rounds = 5;
    if let Err(e) = strata_testkit::boto3::racing_writers(
        &py,
        &[&a.endpoint(), &b.endpoint()],
        (AK, SK),
        rounds,
        "processes",
    ) {
        panic!("{e}\nserver a:\n{}\nserver b:\n{}", a.log(), b.log());
    }
    // The two processes really were both used: each counted PUTs on its /metrics.
    for s in [&a, &b] {
        let (status, metrics) = get(&s.admin, "/metrics").expect("metrics");
        assert_eq!(status, 200);
        let puts = metrics
            .lines()
            .filter(|l| {
                l.starts_with("strata_serve_requests_total{")
                    && l.contains("method=\"PUT\"")
                    && (l.contains("status=\"200\"") || l.contains("status=\"412\""))
            })
            .map(|l| {
                l.rsplit(' ')
                    .next()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap_or_default()
            })
            .sum::<f64>();
        // Half of 32 writers x 2 modes x rounds, plus the seed puts through the first.
        assert!(
            puts >= (16 * 2 * rounds) as f64,
            "{} answered {puts} conditional PUTs:\n{metrics}",
            s.s3
        );
    }
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let mut server = serve(&config(dir.path(), &root, false));
    // An upload whose body arrives in two halves: the request is in flight in between.
    let mut upload = TcpStream::connect(&server.s3).unwrap();
    upload
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    upload
        .write_all(b"PUT /media/slow HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabcde")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get(&server.admin, "/metrics")
        .is_some_and(|(_, m)| m.lines().any(|l| l == "strata_serve_in_flight 1"))
    {
        assert!(
            Instant::now() < deadline,
            "the upload never showed as in flight:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = server.child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    // Still running: it waits for the upload.
    assert_eq!(
        server.wait_exit(Duration::from_millis(700)),
        None,
        "exited with a request in flight:\n{}",
        server.log()
    );
    upload.write_all(b"fghij").unwrap();
    let mut answer = String::new();
    upload.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{answer}\n{}",
        server.log()
    );
    let status = server
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("still running 30 s after SIGTERM:\n{}", server.log()));
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert_eq!(
        std::fs::read(root.join("media/slow")).unwrap(),
        b"abcdefghij"
    );
    assert!(
        TcpStream::connect(&server.s3).is_err(),
        "nothing listens after exit"
    );
}

/// With `[telemetry.prometheus]` configured the CLI installs the global `metrics` recorder
/// before `serve` starts; the admin listener's `/metrics` must still expose the server's own
/// metrics from that recorder, not lose them to it.
#[test]
fn serve_metrics_share_the_telemetry_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    let cfg = config(dir.path(), &root, false);
    let prom = dir.path().join("metrics.prom");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "[telemetry.prometheus]\nfile = \"{}\"\n",
        prom.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    let served = serve(&cfg);
    let (status, _) = get(&served.s3, "/media/missing.txt").expect("an S3 answer");
    assert_eq!(status, 404, "{}", served.log());
    let (status, body) = get(&served.admin, "/metrics").expect("a /metrics answer");
    assert_eq!(status, 200, "{}", served.log());
    assert!(
        body.contains("strata_serve_requests_total") && body.contains("strata_serve_in_flight"),
        "/metrics lacks the server's metrics:\n{body}"
    );
}
