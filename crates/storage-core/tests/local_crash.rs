//! Crash consistency of the local-folder store: writer processes doing puts, compare-and-swap
//! commits and multipart uploads are killed with SIGKILL at seeded random moments; then
//! every key must hold its last acknowledged value or the one in flight, whole; no staged
//! file may be listed or left beside the objects; and the next open removes what the dead
//! writers left staged.
//!
//! The test executable is its own writer: run with `STRATA_CRASH_WRITER` set, `main` writes
//! until it is killed. `STRATA_CRASH_SEED` replays a run (the seed is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path as FsPath, PathBuf};

const ROUNDS: u64 = 10;
const WRITERS: u64 = 4;
const COUNTERS: u64 = 3;
const SLOT_KEYS: u64 = 3;

/// splitmix64: small, seeded, good enough to pick sizes and moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A value that shows whether it is whole: a header naming key, version and length, a
/// body whose bytes depend on the version, and an end marker.
fn value(key: &str, version: u64, body: usize) -> Vec<u8> {
    let mut v = format!("STRATA|{key}|{version}|{body}|").into_bytes();
    let fill = b'a' + (version % 26) as u8;
    v.extend(std::iter::repeat_n(fill, body));
    v.extend_from_slice(b"|END");
    v
}

/// The version of a whole value of `key`, or why it is not whole.
fn check_value(key: &str, bytes: &[u8]) -> Result<u64, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut head = text.splitn(5, '|');
    let (magic, k, version, body) = (head.next(), head.next(), head.next(), head.next());
    let (Some("STRATA"), Some(k), Some(version), Some(body)) = (magic, k, version, body) else {
        return Err(format!("no header ({} bytes)", bytes.len()));
    };
    let version: u64 = version.parse().map_err(|_| "bad version")?;
    let body: usize = body.parse().map_err(|_| "bad length")?;
    if k != key {
        return Err(format!("holds the value of {k}"));
    }
    let expected = value(key, version, body);
    if bytes != expected.as_slice() {
        return Err(format!(
            "version {version} is not whole: {} bytes, expected {}",
            bytes.len(),
            expected.len()
        ));
    }
    Ok(version)
}

#[cfg(unix)]
mod writer {
    use super::*;
    use object_store::{
        ObjectStore, ObjectStoreExt, PutMode, PutOptions, UpdateVersion, path::Path,
    };
    use std::io::Write;
    use storage_core::{Durability, LocalStore};

    /// Append one line to the writer's log (one `write`, so a kill leaves whole lines or a
    /// cut last line, which the reader ignores).
    fn log(file: &mut std::fs::File, line: String) {
        file.write_all(format!("{line}\n").as_bytes()).unwrap();
    }

    /// Write until killed: `spec` is `ROOT LOG SLOT ROUND SEED DURABILITY`.
    pub fn run(spec: &str) {
        let parts: Vec<&str> = spec.split(' ').collect();
        let [root, log_path, slot, round, seed, durability] = parts[..] else {
            panic!("bad STRATA_CRASH_WRITER {spec:?}");
        };
        let (slot, round): (u64, u64) = (slot.parse().unwrap(), round.parse().unwrap());
        let mut rng = Rng(seed.parse().unwrap());
        let durability = match durability {
            "none" => Durability::None,
            _ => Durability::Fsync,
        };
        let mut log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = LocalStore::new(root).unwrap().with_durability(durability);
            // Versions grow across rounds, so a later writer of a slot never reuses one.
            let mut version = round * 1_000_000;
            loop {
                version += 1;
                let size = rng.below(300_000) as usize;
                match slot % 3 {
                    0 => {
                        let key = format!("put/s{slot}/k{}", rng.below(SLOT_KEYS));
                        log(&mut log_file, format!("begin {key} {version}"));
                        store
                            .put(&Path::from(key.as_str()), value(&key, version, size).into())
                            .await
                            .unwrap();
                        log(&mut log_file, format!("ack {key} {version}"));
                    }
                    1 => {
                        let key = format!("cas/c{}", rng.below(COUNTERS));
                        let path = Path::from(key.as_str());
                        loop {
                            let got = store.get(&path).await.unwrap();
                            let seen = UpdateVersion {
                                e_tag: got.meta.e_tag.clone(),
                                version: None,
                            };
                            let n = check_value(&key, &got.bytes().await.unwrap()).unwrap() + 1;
                            log(&mut log_file, format!("begin {key} {n}"));
                            let opts = PutOptions::from(PutMode::Update(seen));
                            let body = value(&key, n, size).into();
                            match store.put_opts(&path, body, opts).await {
                                Ok(_) => {
                                    log(&mut log_file, format!("ack {key} {n}"));
                                    break;
                                }
                                Err(object_store::Error::Precondition { .. }) => {
                                    log(&mut log_file, format!("lost {key} {n}"));
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    _ => {
                        let key = format!("mp/s{slot}/k{}", rng.below(SLOT_KEYS));
                        log(&mut log_file, format!("begin {key} {version}"));
                        let bytes = value(&key, version, size);
                        let mut up = store
                            .put_multipart(&Path::from(key.as_str()))
                            .await
                            .unwrap();
                        for part in bytes.chunks(64 * 1024) {
                            up.put_part(part.to_vec().into()).await.unwrap();
                        }
                        up.complete().await.unwrap();
                        log(&mut log_file, format!("ack {key} {version}"));
                    }
                }
            }
        });
    }
}

/// What the logs say about one key.
#[derive(Default, Debug)]
struct KeyLog {
    /// The last acknowledged version.
    acked: Option<u64>,
    /// Versions begun and not acknowledged (killed in flight), after the last ack.
    in_flight: BTreeSet<u64>,
    /// Every acknowledged version, to find a compare-and-swap acknowledged twice.
    all_acked: Vec<u64>,
}

/// Read every writer's log (in order) into `keys`.
fn read_logs(logs: &[PathBuf], keys: &mut BTreeMap<String, KeyLog>) {
    for path in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // A line cut by the kill has no newline: `lines` would return it, so drop it.
        let whole = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        for line in whole.lines() {
            let mut f = line.split(' ');
            let (what, key, version) = (f.next(), f.next(), f.next());
            let (Some(what), Some(key), Some(version)) = (what, key, version) else {
                panic!("bad log line {line:?} in {}", path.display());
            };
            let version: u64 = version.parse().unwrap();
            let entry = keys.entry(key.to_string()).or_default();
            match what {
                "begin" => {
                    entry.in_flight.insert(version);
                }
                "ack" => {
                    entry.in_flight.remove(&version);
                    if entry.acked.is_none_or(|a| a < version) {
                        entry.acked = Some(version);
                    }
                    entry.all_acked.push(version);
                }
                "lost" => {
                    entry.in_flight.remove(&version);
                }
                _ => panic!("bad log line {line:?}"),
            }
        }
    }
}

/// Files under `dir` (recursively), as paths relative to it.
fn files_under(dir: &FsPath) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

#[cfg(unix)]
fn crash_test() {
    use futures::StreamExt;
    use object_store::{ObjectStore, ObjectStoreExt, path::Path};
    use std::process::{Command, Stdio};
    use std::time::Duration;
    use storage_core::LocalStore;

    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0017);
    println!("local_crash: seed {seed} (replay with STRATA_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Kept open all along, as a long-running process would: the sweeps must spare it.
    let resident = LocalStore::new(&root).unwrap();
    rt.block_on(async {
        for c in 0..COUNTERS {
            let key = format!("cas/c{c}");
            let p = Path::from(key.as_str());
            resident.put(&p, value(&key, 0, 10).into()).await.unwrap();
        }
    });
    let exe = std::env::current_exe().unwrap();
    let mut logs = Vec::new();
    let mut keys: BTreeMap<String, KeyLog> = BTreeMap::new();
    for c in 0..COUNTERS {
        keys.entry(format!("cas/c{c}")).or_default().acked = Some(0);
    }
    let (mut leftovers, mut in_flight_seen) = (0u64, 0usize);
    for round in 0..ROUNDS {
        let durability = if round % 2 == 0 { "fsync" } else { "none" };
        let mut children = Vec::new();
        for slot in 0..WRITERS {
            let log = dir.path().join(format!("log-{round}-{slot}"));
            let spec = format!(
                "{} {} {slot} {round} {} {durability}",
                root.display(),
                log.display(),
                rng.next()
            );
            logs.push(log);
            children.push(
                Command::new(&exe)
                    .env("STRATA_CRASH_WRITER", spec)
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        // Kill each writer at its own moment.
        for child in &mut children {
            std::thread::sleep(Duration::from_millis(20 + rng.below(120)));
            child.kill().unwrap();
        }
        for mut child in children {
            let status = child.wait().unwrap();
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "round {round}: a writer ended before it was killed ({status}); it failed"
            );
        }

        // What the dead writers left staged: never beside the objects.
        let staging = root.join(".strata-sys/staging");
        let staged: Vec<String> = files_under(&staging)
            .into_iter()
            .filter(|f| !f.ends_with(".lock"))
            .collect();
        leftovers += staged.len() as u64;
        let beside: Vec<String> = files_under(&root)
            .into_iter()
            .filter(|f| !f.starts_with(".strata-sys"))
            .filter(|f| {
                f.contains('#')
                    || !(f.starts_with("put/") || f.starts_with("cas/") || f.starts_with("mp/"))
            })
            .collect();
        assert!(beside.is_empty(), "round {round}: stray files {beside:?}");

        // Reopening sweeps the dead writers' staging; the resident store's survives.
        let reopened = LocalStore::new(&root).unwrap();
        let left = files_under(&staging);
        let locks = left.iter().filter(|f| f.ends_with(".lock")).count();
        assert_eq!(
            (locks, left.len()),
            (2, 2),
            "round {round}: after reopening, only the two open stores' (empty) staging remains: {left:?}"
        );
        assert_eq!(reopened.remove_abandoned_staging().unwrap(), 0);

        read_logs(&logs[logs.len() - WRITERS as usize..], &mut keys);
        rt.block_on(async {
            let listed: BTreeSet<String> = reopened
                .list(None)
                .map(|r| r.unwrap().location.to_string())
                .collect()
                .await;
            let known: BTreeSet<String> = keys.keys().cloned().collect();
            let unknown: Vec<_> = listed.difference(&known).collect();
            assert!(unknown.is_empty(), "round {round}: listed {unknown:?}");
            for (key, log) in &keys {
                let stored = match reopened.get(&Path::from(key.as_str())).await {
                    Ok(r) => Some(r.bytes().await.unwrap()),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => panic!("{key}: {e}"),
                };
                assert_eq!(stored.is_some(), listed.contains(key), "round {round}: {key}");
                let version = stored.as_ref().map(|b| {
                    check_value(key, b).unwrap_or_else(|e| {
                        panic!("round {round}: {key} holds a broken value: {e}")
                    })
                });
                let ok = version == log.acked
                    || version.is_some_and(|v| log.in_flight.contains(&v) && log.acked.is_none_or(|a| v > a));
                assert!(
                    ok,
                    "round {round}: {key} holds version {version:?}; last acknowledged {:?}, in flight {:?}",
                    log.acked, log.in_flight
                );
                if version != log.acked {
                    in_flight_seen += 1;
                }
                let mut all = log.all_acked.clone();
                all.sort_unstable();
                all.dedup();
                assert_eq!(all.len(), log.all_acked.len(), "{key}: a compare-and-swap value acknowledged twice (a lost update)");
            }
        });
        // A killed write is not owed: forget what was in flight, keeping what now stands.
        rt.block_on(async {
            for (key, log) in keys.iter_mut() {
                if let Ok(r) = reopened.get(&Path::from(key.as_str())).await {
                    log.acked = Some(check_value(key, &r.bytes().await.unwrap()).unwrap());
                }
                log.in_flight.clear();
            }
        });
    }
    let acks: usize = keys.values().map(|l| l.all_acked.len()).sum();
    println!(
        "local_crash: {ROUNDS} rounds x {WRITERS} writers killed; {acks} acknowledged writes, {leftovers} staged files left by killed writers and swept, {in_flight_seen} keys found holding their in-flight write"
    );
    assert!(
        leftovers > 0,
        "no writer was ever killed mid-write: the kill moments exercised nothing (seed {seed})"
    );
    assert!(acks > 0, "no write was acknowledged (seed {seed})");
}

fn main() {
    #[cfg(unix)]
    {
        if let Ok(spec) = std::env::var("STRATA_CRASH_WRITER") {
            writer::run(&spec);
            return;
        }
        crash_test();
        println!("test local_crash ... ok");
    }
    #[cfg(not(unix))]
    println!("local_crash: skipped, SIGKILL is Unix-only");
}
