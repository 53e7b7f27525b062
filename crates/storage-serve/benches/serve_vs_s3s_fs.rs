//! `strata serve` against `s3s-fs` on the same folder, the same client, one run.
//!
//! Both servers run as child processes over one data folder (a bucket is a sub-folder for
//! both). One `object_store` S3 client (keep-alive off: s3s-fs stalls ~40 ms on reused
//! connections, see TESTING.md) drives both, interleaved round by round, and prints:
//!
//! 1. peak RSS (`VmHWM`) of each freshly started server process during a 1 GiB multipart
//!    upload (8 MiB parts, 8 in flight; goal for strata ≤ 64 MiB);
//! 2. put and get throughput of 4 KiB and 1 MiB objects, 16 requests in flight: the median
//!    over rounds of strata / s3s-fs (goal ≥ 0.9).
//!
//! Needs the s3s-fs binary `cargo xtask test` installs (`~/.cache/strata-test-servers`, or
//! `$STRATA_TEST_SERVERS_DIR`). Run with `cargo bench -p storage-serve --bench
//! serve_vs_s3s_fs`; `STRATA_BENCH_QUICK=1` runs fewer rounds. Each figure is also a
//! `BENCH {json}` line for `cargo xtask bench --report`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use storage_core::object_store::aws::AmazonS3Builder;
use storage_core::object_store::path::Path as ObjPath;
use storage_core::object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload};

const AK: &str = "bench-ak";
const SK: &str = "bench-sk-0123456789";
const BUCKET: &str = "bench";
const CHILD_ENV: &str = "STRATA_SERVE_BENCH_CHILD";

fn main() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        return serve_child(Path::new(&root));
    }
    let quick = std::env::var("STRATA_BENCH_QUICK").is_ok_and(|v| v == "1");
    let Some(s3s_fs) = s3s_fs_bin() else {
        println!(
            "serve_vs_s3s_fs: SKIPPED: no s3s-fs binary; run `cargo xtask servers --install` (or `cargo xtask test`) first"
        );
        return;
    };
    let data = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(data.path().join(BUCKET)).unwrap();
    let runtime = runtime();
    runtime.block_on(async {
        let mut strata = Server::strata(data.path());
        let mut s3s = Server::s3s_fs(&s3s_fs, data.path());
        // The upload first, on fresh processes: the peak is the upload's alone.
        for srv in [&mut strata, &mut s3s] {
            // Reset the high-water mark (Linux: `5` to clear_refs), so the peak is this
            // upload's, not the throughput rounds'.
            let _ = std::fs::write(format!("/proc/{}/clear_refs", srv.child.id()), "5");
            let before = srv.peak_rss_kib();
            let took = upload_1gib(&srv.client, &format!("big-{}", srv.name)).await;
            let peak = srv.peak_rss_kib();
            println!(
                "{:<10} 1 GiB multipart upload in {:.1}s: peak RSS {:.1} MiB (at its start: {:.1} MiB)",
                srv.name,
                took.as_secs_f64(),
                peak as f64 / 1024.0,
                before as f64 / 1024.0
            );
            if srv.name == "strata" {
                bench_line(
                    "peak RSS, 1 GiB multipart upload",
                    peak as f64 / 1024.0,
                    "MiB",
                    64.0,
                    "lower",
                    1,
                );
            }
        }
        let rounds = if quick { 3 } else { 9 };
        println!("strata serve vs s3s-fs, same folder, same client, {rounds} rounds, 16 in flight");
        println!(
            "{:<22} {:>12} {:>12} {:>8}   spread of the per-round ratios",
            "op", "strata/s", "s3s-fs/s", "ratio"
        );
        for (size, label, n) in [(4096usize, "4 KiB", 400usize), (1 << 20, "1 MiB", 64)] {
            let n = if quick { n / 4 } else { n };
            for op in ["put", "get"] {
                let mut ratios = Vec::new();
                let (mut a_rates, mut b_rates) = (Vec::new(), Vec::new());
                for r in 0..rounds {
                    // Alternate who goes first, so neither always meets a warm cache.
                    let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
                    let mut rate = [0.0; 2];
                    for i in order {
                        let srv = if i == 0 { &strata } else { &s3s };
                        rate[i] =
                            throughput(&srv.client, op, size, n, &format!("{label}-{r}-{i}")).await;
                    }
                    ratios.push(rate[0] / rate[1]);
                    a_rates.push(rate[0]);
                    b_rates.push(rate[1]);
                }
                let row = format!("{op} {label}");
                let ratio = median(&mut ratios);
                // `median` sorted the ratios: the spread is first to last.
                println!(
                    "{row:<22} {:>12.0} {:>12.0} {:>7.2}x   (rounds {:.2}-{:.2})",
                    median(&mut a_rates),
                    median(&mut b_rates),
                    ratio,
                    ratios[0],
                    ratios[ratios.len() - 1]
                );
                bench_line(&row, ratio, "x", 0.9, "higher", rounds);
            }
        }
        strata.stop();
        s3s.stop();
    });
}

fn bench_line(row: &str, value: f64, unit: &str, goal: f64, better: &str, rounds: usize) {
    println!(
        "BENCH {{\"bench\":\"serve_vs_s3s_fs\",\"group\":\"strata serve\",\"row\":\"{row}\",\"{}\":{value:.3},\"unit\":\"{unit}\",\"better\":\"{better}\",\"goal\":{goal},\"baseline\":\"s3s-fs 0.14.1\",\"rounds\":{rounds}}}",
        if unit == "x" { "ratio" } else { "value" }
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Requests per second of `n` puts (or gets of what the puts wrote), 16 at once.
async fn throughput(
    client: &Arc<dyn ObjectStore>,
    op: &str,
    size: usize,
    n: usize,
    tag: &str,
) -> f64 {
    let body = bytes::Bytes::from(vec![b'x'; size]);
    let keys: Vec<ObjPath> = (0..n)
        .map(|i| ObjPath::from(format!("t/{tag}/{i}")))
        .collect();
    if op == "get" {
        put_all(client, &keys, &body).await;
    }
    let start = Instant::now();
    if op == "put" {
        put_all(client, &keys, &body).await;
    } else {
        futures::stream::iter(keys.iter())
            .map(|k| async move {
                let got = client
                    .get(k)
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("body");
                assert_eq!(got.len(), size);
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn put_all(client: &Arc<dyn ObjectStore>, keys: &[ObjPath], body: &bytes::Bytes) {
    futures::stream::iter(keys.iter())
        .map(|k| async move {
            client
                .put(k, PutPayload::from(body.clone()))
                .await
                .expect("put");
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

/// A 1 GiB multipart upload in 8 MiB parts, 8 in flight; the client holds at most those.
async fn upload_1gib(client: &Arc<dyn ObjectStore>, key: &str) -> Duration {
    const PART: usize = 8 * 1024 * 1024;
    let start = Instant::now();
    let upload = client
        .put_multipart(&ObjPath::from(key))
        .await
        .expect("start multipart");
    let mut w = storage_core::object_store::WriteMultipart::new_with_chunk_size(upload, PART);
    let chunk = vec![b'z'; 1024 * 1024];
    for _ in 0..1024 {
        w.wait_for_capacity(8).await.expect("part");
        w.write(&chunk);
    }
    w.finish().await.expect("complete");
    let meta = client.head(&ObjPath::from(key)).await.expect("head");
    assert_eq!(meta.size, 1 << 30);
    start.elapsed()
}

fn s3s_fs_bin() -> Option<PathBuf> {
    let dir = std::env::var_os("STRATA_TEST_SERVERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/strata-test-servers")
        });
    let bin = dir.join("s3s-fs/bin/s3s-fs");
    bin.exists().then_some(bin)
}

struct Server {
    name: &'static str,
    child: Child,
    client: Arc<dyn ObjectStore>,
}

impl Server {
    fn strata(root: &Path) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, root)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the strata serve child");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the strata serve child said {line:?}"));
        Server {
            name: "strata",
            child,
            client: client(port),
        }
    }

    fn s3s_fs(bin: &Path, root: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", AK, "--secret-key", SK])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            name: "s3s-fs",
            child,
            client: client(port),
        }
    }

    /// `VmHWM` of the server process, KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Children never outlive the bench, a panicking one included.
impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn client(port: u16) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id(AK)
            .with_secret_access_key(SK)
            .with_virtual_hosted_style_request(false)
            .with_client_options(
                // After `with_allow_http`: client options replace it, so set it here too.
                ClientOptions::new()
                    .with_allow_http(true)
                    .with_pool_max_idle_per_host(0),
            )
            .build()
            .expect("S3 client"),
    )
}

/// The runtime the benchmark and the server child both run on: two workers each.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The child: `strata serve` on `root` with the bench credential, printing its port.
fn serve_child(root: &Path) {
    let runtime = runtime();
    runtime.block_on(async {
        let toml = format!(
            "[connections.disk]\nkind = \"fs\"\nroot = \"{}\"\n[buckets.{BUCKET}]\nconnection = \"disk\"\n\
             [serve.credentials.bench]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\nbuckets = [\"*\"]\n",
            root.display()
        );
        let strata = strata::Strata::from_toml_str(&toml, "bench.toml").unwrap();
        let mut cfg = storage_serve::ServeConfig::from_toml_str(&toml, "bench.toml").unwrap();
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        cfg.admin = None;
        let bound = storage_serve::Server::new(strata, cfg)
            .unwrap()
            .bind()
            .await
            .unwrap();
        println!("PORT {}", bound.local_addr().port());
        bound.run_until(std::future::pending()).await.unwrap();
    });
}
