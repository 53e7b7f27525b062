//! Fault soak: 10,000 mixed operations (put, get, head, overwrite, delete, conditional put,
//! list) through retry + breaker + chaos (10% injected errors, plus lost acknowledgements
//! and torn streams) against memory and the local folder, checked against a model of what
//! must be there. Bounded by operation count, not time.
//!
//! The model keeps, per key, the set of states the key may be in: one state after every
//! acknowledged write or observed read, several after a write whose error surfaced (it may
//! or may not have landed). Every read must return one of the allowed states; at the end
//! every key in the bare backend must match it: 0 lost, 0 corrupt, and every surfaced error
//! typed (a retryable kind that outlived its retries, never a raw backend error).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, UpdateVersion};
use storage_core::{ErrorKind, LocalStore, MemoryStore, StackBuilder, StorageError};
use storage_layers::breaker::CircuitBreakerLayer;
use storage_layers::chaos::ChaosLayer;
use storage_layers::retry::{RetryBudget, RetryLayer};

const OPS: usize = 10_000;
const KEYS: usize = 150;

#[derive(Default, Debug)]
struct Counts {
    ops: BTreeMap<&'static str, u64>,
    surfaced: BTreeMap<String, u64>,
    wrong_reads: u64,
    lost: u64,
    corrupt: u64,
    untyped: u64,
}

/// Possible states of one key: `None` = absent.
type Allowed = BTreeSet<Option<Bytes>>;

struct Model {
    keys: BTreeMap<String, Allowed>,
    etags: BTreeMap<String, String>,
}

impl Model {
    fn allowed(&self, k: &str) -> Allowed {
        self.keys
            .get(k)
            .cloned()
            .unwrap_or_else(|| BTreeSet::from([None]))
    }
    fn set(&mut self, k: &str, v: Option<Bytes>) {
        self.keys.insert(k.to_string(), BTreeSet::from([v]));
    }
    fn maybe(&mut self, k: &str, v: Option<Bytes>) {
        let mut a = self.allowed(k);
        a.insert(v);
        self.keys.insert(k.to_string(), a);
        self.etags.remove(k);
    }
}

fn surfaced(counts: &mut Counts, e: object_store::Error) {
    let se = StorageError::from_object_store("soak", e);
    let kind = se.kind();
    // Only "the backend kept failing" kinds may surface here: a backend error of unknown
    // kind, a corrupt body or a wrong conflict would be a bug.
    if !matches!(kind, ErrorKind::Unavailable | ErrorKind::Timeout) {
        eprintln!("untyped or unexpected error: {se}");
        counts.untyped += 1;
    }
    *counts
        .surfaced
        .entry(kind.as_str().to_string())
        .or_default() += 1;
}

async fn soak(
    backend: Arc<dyn storage_core::StrataStore>,
    seed: u64,
    attempts: u32,
    label: &str,
) -> Counts {
    let chaos = ChaosLayer::default()
        .with_seed(seed)
        .with_error_rate(0.10)
        .with_lost_ack_rate(0.02)
        .with_torn_stream_rate(0.02);
    let retry = RetryLayer::default()
        .with_max_attempts(attempts)
        .with_base_delay(Duration::from_micros(50))
        .with_max_delay(Duration::from_millis(2))
        .with_jitter_seed(seed)
        .with_budget(Arc::new(RetryBudget::new(200, 0.2)));
    let breaker = CircuitBreakerLayer::new(10, Duration::from_millis(5));
    let store = StackBuilder::new()
        .layer(retry.clone())
        .layer(breaker.clone())
        .layer(chaos.clone())
        .build(Arc::clone(&backend));

    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model = Model {
        keys: BTreeMap::new(),
        etags: BTreeMap::new(),
    };
    let mut c = Counts::default();

    for i in 0..OPS {
        let k = format!("soak/{}/k{}", rng.usize(0..5), rng.usize(0..KEYS / 5));
        let path = Path::from(k.as_str());
        let value = {
            let pad = rng.usize(0..3000);
            Bytes::from(format!("{k}@{i}:{}", "v".repeat(pad)))
        };
        let roll = rng.u32(0..100);
        let op = match roll {
            0..30 => "put",
            30..55 => "get",
            55..62 => "head",
            62..72 => "delete",
            72..90 => "cas",
            _ => "list",
        };
        *c.ops.entry(op).or_default() += 1;
        match op {
            "put" => match store.put(&path, value.clone().into()).await {
                Ok(r) => {
                    model.set(&k, Some(value));
                    if let Some(e) = r.e_tag {
                        model.etags.insert(k.clone(), e);
                    }
                }
                Err(e) => {
                    model.maybe(&k, Some(value));
                    surfaced(&mut c, e);
                }
            },
            "get" | "head" => {
                let got = if op == "get" {
                    match store.get(&path).await {
                        Ok(r) => {
                            let etag = r.meta.e_tag.clone();
                            r.bytes().await.map(|b| (Some(b), etag))
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    store.head(&path).await.map(|m| (None, m.e_tag))
                };
                match got {
                    Ok((body, etag)) => {
                        let allowed = model.allowed(&k);
                        match body {
                            Some(b) => {
                                if !allowed.contains(&Some(b.clone())) {
                                    c.wrong_reads += 1;
                                }
                                model.set(&k, Some(b));
                                if let Some(e) = etag {
                                    model.etags.insert(k.clone(), e);
                                }
                            }
                            None => {
                                if allowed.iter().all(Option::is_none) {
                                    c.wrong_reads += 1;
                                }
                            }
                        }
                    }
                    Err(object_store::Error::NotFound { .. }) => {
                        if !model.allowed(&k).contains(&None) {
                            c.wrong_reads += 1;
                        }
                        model.set(&k, None);
                    }
                    Err(e) => surfaced(&mut c, e),
                }
            }
            "delete" => match store.delete(&path).await {
                Ok(()) => model.set(&k, None),
                Err(e) => {
                    model.maybe(&k, None);
                    surfaced(&mut c, e);
                }
            },
            "cas" => {
                // Create if the model knows it is absent, compare-and-swap if it knows the
                // ETag; otherwise read first (the state is uncertain).
                let allowed = model.allowed(&k);
                let mode = if allowed == BTreeSet::from([None]) {
                    Some(PutMode::Create)
                } else if allowed.len() == 1 {
                    model.etags.get(&k).map(|e| {
                        PutMode::Update(UpdateVersion {
                            e_tag: Some(e.clone()),
                            version: None,
                        })
                    })
                } else {
                    None
                };
                let Some(mode) = mode else {
                    *c.ops.entry("cas-needs-read").or_default() += 1;
                    continue;
                };
                match store
                    .put_opts(&path, value.clone().into(), mode.into())
                    .await
                {
                    Ok(r) => {
                        model.set(&k, Some(value));
                        if let Some(e) = r.e_tag {
                            model.etags.insert(k.clone(), e);
                        }
                    }
                    Err(e) => {
                        let class = StorageError::from_object_store("soak", e);
                        if class.is_conflict() {
                            // We are the only writer and the model was certain: a conflict
                            // means retry misjudged an ambiguous failure.
                            eprintln!("unexpected conflict on {k}: {class}");
                            c.wrong_reads += 1;
                        } else {
                            model.maybe(&k, Some(value));
                            surfaced(&mut c, class.into_object_store());
                        }
                    }
                }
            }
            _ => {
                let prefix = Path::from(format!("soak/{}", rng.usize(0..5)));
                match store.list(Some(&prefix)).try_collect::<Vec<_>>().await {
                    Ok(entries) => {
                        let listed: BTreeSet<String> = entries
                            .into_iter()
                            .map(|m| m.location.to_string())
                            .collect();
                        for (key, allowed) in &model.keys {
                            if !key.starts_with(&format!("{prefix}/")) {
                                continue;
                            }
                            let present = listed.contains(key);
                            let ok = if present {
                                allowed.iter().any(Option::is_some)
                            } else {
                                allowed.contains(&None)
                            };
                            if !ok {
                                c.wrong_reads += 1;
                            }
                        }
                    }
                    Err(e) => surfaced(&mut c, e),
                }
            }
        }
    }

    // Final check against the bare backend: every key must be in a state the model allows.
    for (k, allowed) in &model.keys {
        let actual = match backend.get(&Path::from(k.as_str())).await {
            Ok(r) => Some(r.bytes().await.expect("bare backend read")),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("bare backend failed on {k}: {e}"),
        };
        if !allowed.contains(&actual) {
            match &actual {
                Some(b) if !b.starts_with(k.as_bytes()) => c.corrupt += 1,
                _ => c.lost += 1,
            }
        }
    }
    let chaos_stats = chaos.stats();
    let retry_stats = retry.stats();
    println!(
        "soak[{label}]: {OPS} ops {:?}; injected: {} errors, {} lost acks, {} torn streams; \
         retry: {} retries, {} recovered writes, {} resumed streams, {} gave up; breaker: {:?}; \
         surfaced errors {:?}; wrong reads {}, lost {}, corrupt {}, untyped {}",
        c.ops,
        chaos_stats.injected_errors,
        chaos_stats.lost_acks,
        chaos_stats.torn_streams,
        retry_stats.retries,
        retry_stats.recovered_writes,
        retry_stats.resumed_streams,
        retry_stats.gave_up,
        breaker.stats(),
        c.surfaced,
        c.wrong_reads,
        c.lost,
        c.corrupt,
        c.untyped,
    );
    assert!(
        chaos_stats.injected_errors > (OPS as u64) / 20,
        "the faults were injected"
    );
    assert!(chaos_stats.lost_acks > 0 && chaos_stats.torn_streams > 0);
    c
}

fn assert_clean(c: &Counts) {
    assert_eq!(c.lost, 0, "objects lost");
    assert_eq!(c.corrupt, 0, "objects corrupt");
    assert_eq!(c.wrong_reads, 0, "reads that contradict the model");
    assert_eq!(c.untyped, 0, "surfaced errors of an unexpected kind");
}

#[tokio::test]
async fn soak_memory() {
    let c = soak(Arc::new(MemoryStore::new()), 1, 8, "memory").await;
    assert_clean(&c);
}

/// With only two attempts some failures outlive the retries and reach the caller: the
/// model then allows both outcomes, and nothing may still be lost or corrupt.
#[tokio::test]
async fn soak_memory_with_surfaced_errors() {
    let c = soak(Arc::new(MemoryStore::new()), 3, 2, "memory, 2 attempts").await;
    assert!(c.surfaced.values().sum::<u64>() > 0, "errors surfaced");
    assert_clean(&c);
}

#[tokio::test]
async fn soak_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let c = soak(
        Arc::new(LocalStore::new(dir.path()).unwrap()),
        2,
        8,
        "local",
    )
    .await;
    assert_clean(&c);
}
