//! `ls -r` prints as pages arrive: on a listing of 10,000 keys (10 pages) whose second page
//! the server holds back, the first line is on stdout while the listing is still waiting.
//! A `ls` that collected (and sorted) everything first would print nothing until the held
//! page is released, and this test would fail.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::fake_s3::{self, Reply};

const KEYS: usize = 10_000;
const PAGE: usize = 1_000;

/// A gate the server waits on before it answers any page after the first.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Wait until opened. A `ls` that prints nothing until the listing ends would wait on
    /// this gate forever, so after a long while the server gives up and answers: the test
    /// then fails on its order check instead of hanging.
    fn wait(&self) -> bool {
        let guard = self.open.lock().unwrap();
        let (guard, _) = self
            .opened
            .wait_timeout_while(guard, Duration::from_secs(120), |open| !*open)
            .unwrap();
        *guard
    }
}

#[test]
fn ls_recursive_json_prints_the_first_page_before_the_listing_ends() {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("logs/{i:05}.txt")).collect();
    let gate = Arc::new(Gate::default());
    let released_unopened = Arc::new(AtomicBool::new(false));
    let server = {
        let (gate, released_unopened) = (gate.clone(), released_unopened.clone());
        fake_s3::serve(move |req| {
            if req.method != "GET" || req.query("list-type").as_deref() != Some("2") {
                return Reply {
                    status: 404,
                    body: fake_s3::error_xml("NoSuchKey", "not here"),
                };
            }
            let start: usize = req
                .query("continuation-token")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            if start > 0 && !gate.wait() {
                released_unopened.store(true, Ordering::SeqCst);
            }
            let end = (start + PAGE).min(KEYS);
            let next = (end < KEYS).then(|| end.to_string());
            Reply {
                status: 200,
                body: fake_s3::list_page("fake", &keys[start..end], next.as_deref()),
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = fake_s3::config(dir.path(), &server.endpoint, "secret");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "ls",
            "-r",
            "--json",
            "fake:",
        ])
        .env_remove("STRATA_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // The first line is here; only now may the rest of the listing come.
    let held = !released_unopened.load(Ordering::SeqCst);
    gate.open();
    assert!(
        held,
        "the first line came only after the server gave up holding page 2: ls waited for the whole listing"
    );
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["key"], "logs/00000.txt");
    assert_eq!(first["size"], 1);
    let mut count = 1;
    let mut last = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("line {count} is not one JSON object: {e}: {line}"));
        last = v["key"].as_str().unwrap().to_string();
        count += 1;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(count, KEYS, "every key printed once, one per line");
    assert_eq!(last, "logs/09999.txt");
    let pages = server
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("list-type=2"))
        .count();
    assert_eq!(pages, KEYS / PAGE, "{:?}", server.log.lock().unwrap());
}
