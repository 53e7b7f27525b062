//! The fault soak of issue 15, shared by `tests/exactly_once.rs` (asserts the guarantees for
//! Strata) and `benches/fault_soak.rs` (reports Strata's counts beside raw `object_store`'s
//! through the same proxy and seeds).
//!
//! Workers each own a disjoint set of keys, so every key has one writer and the model of
//! each key is exact: any conflict answered to a write is a *false* conflict (the write's
//! own earlier attempt, resent), and after every write a direct, fault-free read of the
//! server (the oracle) says whether the write landed.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, UpdateVersion};
use storage_core::{Bucket, ObjectInfo, PutOpts, StorageError};
use strata_testkit::fault_proxy::FaultProxy;

/// The guides' setup (`timeout = "1s"`, `[layers.retry]`, `[layers.breaker]`) as layers.
pub const GUIDE_LAYERS: &str = "[layers.retry]\n[layers.breaker]\nrecovery_timeout = '1s'\n";

/// A `Strata` with one bucket handle, `soak`, on moto's bucket reached through `endpoint`
/// (the fault proxy, or moto itself), under `prefix`, with the client `timeout` and the
/// `layers` tables given; its layers are read back with `strata.layers("soak")`.
pub fn strata_on(endpoint: &str, prefix: &str, timeout: Duration, layers: &str) -> strata::Strata {
    let server = strata_testkit::moto_env().expect("moto");
    let toml = format!(
        "[connections.moto]\nkind = 's3'\nendpoint = '{endpoint}'\nallow_http = true\npath_style = true\naccess_key_id = '{ak}'\nsecret_access_key = '{sk}'\ntimeout = '{ms}ms'\n[buckets.soak]\nconnection = 'moto'\nbucket = '{bucket}'\nprefix = '{prefix}'\n{layers}",
        ak = server.access_key,
        sk = server.secret_key.expose(),
        bucket = server.bucket,
        ms = timeout.as_millis(),
    );
    strata::Strata::from_toml_str(&toml, "soak.toml").expect("the soak's config loads")
}

/// [`strata_on`] with the guides' layers and a 1 s timeout: the bucket the soak drives.
pub fn guide_bucket(endpoint: &str, prefix: &str) -> Bucket {
    strata_on(endpoint, prefix, Duration::from_secs(1), GUIDE_LAYERS)
        .bucket("soak")
        .expect("bucket")
}

/// What a write answered, as the soak classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// AlreadyExists / Precondition.
    Conflict,
    /// `StorageError::Ambiguous`: the client says it cannot know.
    Ambiguous,
    /// Any other error (its kind).
    Failed(String),
}

/// An object as a client read it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub bytes: Bytes,
    pub etag: String,
    pub info: Option<ObjectInfo>,
}

/// The operations the soak drives, over Strata or raw `object_store`.
pub trait Client: Send + Sync + 'static {
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Outcome> + Send;
    fn create(&self, key: &str, body: Bytes) -> impl Future<Output = Outcome> + Send;
    fn cas(&self, key: &str, body: Bytes, seen: &Seen) -> impl Future<Output = Outcome> + Send;
    fn delete(&self, key: &str) -> impl Future<Output = Outcome> + Send;
    /// `Ok(None)`: absent. `Err(kind)`: the read failed.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Seen>, String>> + Send;
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
}

fn kind(e: &StorageError) -> String {
    match e {
        StorageError::Backend { status, .. } => format!("backend(status {status:?})"),
        other => other.kind().as_str().to_string(),
    }
}

fn outcome(r: Result<(), StorageError>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(e) if e.is_conflict() => Outcome::Conflict,
        Err(StorageError::Ambiguous { .. }) => Outcome::Ambiguous,
        Err(e) => Outcome::Failed(kind(&e)),
    }
}

/// Strata: a [`Bucket`] (whatever stack it has).
pub struct StrataClient(pub Bucket);

impl Client for StrataClient {
    async fn put(&self, key: &str, body: Bytes) -> Outcome {
        outcome(self.0.put(key, body).await.map(drop))
    }
    async fn create(&self, key: &str, body: Bytes) -> Outcome {
        outcome(
            self.0
                .put_with(key, body, PutOpts::if_absent())
                .await
                .map(drop),
        )
    }
    async fn cas(&self, key: &str, body: Bytes, seen: &Seen) -> Outcome {
        let opts = PutOpts::replacing(seen.info.as_ref().expect("Strata reads carry info"))
            .expect("an ETag");
        outcome(self.0.put_with(key, body, opts).await.map(drop))
    }
    async fn delete(&self, key: &str) -> Outcome {
        outcome(self.0.delete(key).await)
    }
    async fn get(&self, key: &str) -> Result<Option<Seen>, String> {
        match self.0.get(key).await {
            Ok(o) => Ok(Some(Seen {
                etag: o.info.etag.clone().unwrap_or_default(),
                bytes: o.bytes,
                info: Some(o.info),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(kind(&e)),
        }
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        self.0
            .list(prefix)
            .map_ok(|i| i.key)
            .try_collect()
            .await
            .map_err(|e| kind(&e))
    }
}

/// Raw `object_store` (the baseline): keys under `root`.
pub struct RawClient {
    pub store: Arc<dyn ObjectStore>,
    pub root: String,
}

impl RawClient {
    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}/{key}", self.root))
    }
}

fn raw_outcome(r: object_store::Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Outcome::Conflict,
        Err(e) => Outcome::Failed(kind(&StorageError::from_object_store("raw", e))),
    }
}

impl Client for RawClient {
    async fn put(&self, key: &str, body: Bytes) -> Outcome {
        raw_outcome(self.store.put(&self.path(key), body.into()).await.map(drop))
    }
    async fn create(&self, key: &str, body: Bytes) -> Outcome {
        raw_outcome(
            self.store
                .put_opts(&self.path(key), body.into(), PutMode::Create.into())
                .await
                .map(drop),
        )
    }
    async fn cas(&self, key: &str, body: Bytes, seen: &Seen) -> Outcome {
        let mode = PutMode::Update(UpdateVersion {
            e_tag: Some(seen.etag.clone()),
            version: None,
        });
        raw_outcome(
            self.store
                .put_opts(&self.path(key), body.into(), mode.into())
                .await
                .map(drop),
        )
    }
    async fn delete(&self, key: &str) -> Outcome {
        match self.store.delete(&self.path(key)).await {
            Err(object_store::Error::NotFound { .. }) => Outcome::Ok,
            r => raw_outcome(r),
        }
    }
    async fn get(&self, key: &str) -> Result<Option<Seen>, String> {
        let r = async {
            let g = self.store.get(&self.path(key)).await?;
            let etag = g.meta.e_tag.clone().unwrap_or_default();
            Ok::<_, object_store::Error>((g.bytes().await?, etag))
        }
        .await;
        match r {
            Ok((bytes, etag)) => Ok(Some(Seen {
                bytes,
                etag,
                info: None,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(kind(&StorageError::from_object_store("raw", e))),
        }
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        let root = format!("{}/", self.root);
        self.store
            .list(Some(&Path::from(format!("{}/{prefix}", self.root))))
            .map_ok(|m| m.location.as_ref().trim_start_matches(&root).to_string())
            .try_collect()
            .await
            .map_err(|e| kind(&StorageError::from_object_store("raw", e)))
    }
}

/// The soak's tallies. The guarantees: `corrupt_reads`, `lost_acked_writes`,
/// `false_conflicts`, `errors_for_applied_writes`, `wrong_listings` and `untyped_errors` are
/// all 0; `ambiguous` is counted and explained.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub ops: u64,
    pub writes: u64,
    pub conditional_writes: u64,
    /// A read returned something the model says is not there.
    pub corrupt_reads: u64,
    /// A write answered Ok that the oracle does not show (or a delete answered Ok whose key
    /// is still there).
    pub lost_acked_writes: u64,
    /// A conditional write answered with a conflict although its precondition held (single
    /// writer per key): its own earlier attempt, resent.
    pub false_conflicts: u64,
    /// A conditional write answered with an error other than `Ambiguous` that the oracle
    /// shows applied.
    pub errors_for_applied_writes: u64,
    /// Conditional writes answered `Ambiguous`, and how many of them had landed.
    pub ambiguous: u64,
    pub ambiguous_landed: u64,
    /// Errors that surfaced, by kind (retryable kinds that outlived the retries are allowed).
    pub surfaced: BTreeMap<String, u64>,
    /// Surfaced errors of no known kind (`Backend` without a status, ...).
    pub untyped_errors: u64,
    /// A listing that does not match the model.
    pub wrong_listings: u64,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.ops += o.ops;
        self.writes += o.writes;
        self.conditional_writes += o.conditional_writes;
        self.corrupt_reads += o.corrupt_reads;
        self.lost_acked_writes += o.lost_acked_writes;
        self.false_conflicts += o.false_conflicts;
        self.errors_for_applied_writes += o.errors_for_applied_writes;
        self.ambiguous += o.ambiguous;
        self.ambiguous_landed += o.ambiguous_landed;
        self.untyped_errors += o.untyped_errors;
        self.wrong_listings += o.wrong_listings;
        for (k, v) in o.surfaced {
            *self.surfaced.entry(k).or_default() += v;
        }
    }

    fn surfaced(&mut self, kind: &str) {
        *self.surfaced.entry(kind.to_string()).or_default() += 1;
        if !matches!(kind, "unavailable" | "timeout" | "quota") {
            self.untyped_errors += 1;
        }
    }

    /// One line for logs and the bench.
    pub fn line(&self) -> String {
        format!(
            "ops {} (writes {}, conditional {}): corrupt reads {}, lost acked writes {}, false conflicts {}, errors for applied conditional writes {}, ambiguous {} ({} had landed), wrong listings {}, untyped errors {}, surfaced {:?}",
            self.ops,
            self.writes,
            self.conditional_writes,
            self.corrupt_reads,
            self.lost_acked_writes,
            self.false_conflicts,
            self.errors_for_applied_writes,
            self.ambiguous,
            self.ambiguous_landed,
            self.wrong_listings,
            self.untyped_errors,
            self.surfaced
        )
    }
}

/// Soak settings.
#[derive(Debug, Clone, Copy)]
pub struct SoakPlan {
    pub seed: u64,
    pub workers: usize,
    pub keys_per_worker: usize,
    pub ops_per_worker: usize,
}

impl SoakPlan {
    /// Issue 15's shape: 2,000 operations on 200 keys (8 workers x 25 keys x 250 ops).
    pub fn standard(seed: u64) -> Self {
        SoakPlan {
            seed,
            workers: 8,
            keys_per_worker: 25,
            ops_per_worker: 250,
        }
    }
}

/// Read `key` from the oracle until it answers (it talks to the server directly).
async fn oracle_read<O: Client>(oracle: &O, key: &str) -> Option<Bytes> {
    for _ in 0..50 {
        match oracle.get(key).await {
            Ok(v) => return v.map(|s| s.bytes),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("the oracle cannot read `{key}` from the server");
}

/// Run the soak: `client` goes through `proxy`'s faults, `oracle` reads the same keys
/// directly once the proxy has delivered every request for the key (a request whose client
/// gave up can still apply after the client's error).
pub async fn soak<C: Client, O: Client>(
    client: Arc<C>,
    oracle: Arc<O>,
    plan: SoakPlan,
    proxy: Arc<FaultProxy>,
) -> Tally {
    let mut tasks = Vec::new();
    for w in 0..plan.workers {
        let client = Arc::clone(&client);
        let oracle = Arc::clone(&oracle);
        let proxy = Arc::clone(&proxy);
        tasks.push(tokio::spawn(async move {
            worker(&*client, &*oracle, plan, w, &proxy).await
        }));
    }
    let mut total = Tally::default();
    for t in tasks {
        total.merge(t.await.expect("soak worker"));
    }
    total
}

async fn worker<C: Client, O: Client>(
    client: &C,
    oracle: &O,
    plan: SoakPlan,
    w: usize,
    proxy: &FaultProxy,
) -> Tally {
    let mut rng =
        fastrand::Rng::with_seed(plan.seed.wrapping_mul(1_000_003).wrapping_add(w as u64));
    let mut t = Tally::default();
    let prefix = format!("w{w}/");
    let keys: Vec<String> = (0..plan.keys_per_worker)
        .map(|k| format!("{prefix}k{k:03}"))
        .collect();
    let mut model: BTreeMap<String, Option<Bytes>> =
        keys.iter().map(|k| (k.clone(), None)).collect();
    for i in 0..plan.ops_per_worker {
        t.ops += 1;
        let key = &keys[rng.usize(..keys.len())];
        let body = Bytes::from(format!("{w}:{key}:{i}:{:x}", rng.u64(..)));
        let roll = rng.u32(..100);
        let expected = model[key].clone();
        let (write, conditional, answer) = match roll {
            0..20 => {
                match client.get(key).await {
                    Ok(v) if v.as_ref().map(|s| &s.bytes) != expected.as_ref() => {
                        eprintln!(
                            "corrupt read of {key}: {:?} vs model {:?}",
                            v.map(|s| s.bytes),
                            expected
                        );
                        t.corrupt_reads += 1;
                    }
                    Ok(_) => {}
                    Err(k) => t.surfaced(&k),
                }
                continue;
            }
            20..25 => {
                match client.list(&prefix).await {
                    Ok(mut listed) => {
                        listed.sort();
                        let want: Vec<String> = model
                            .iter()
                            .filter(|(_, v)| v.is_some())
                            .map(|(k, _)| k.clone())
                            .collect();
                        if listed != want {
                            eprintln!("wrong listing of {prefix}: {listed:?} vs {want:?}");
                            t.wrong_listings += 1;
                        }
                    }
                    Err(k) => t.surfaced(&k),
                }
                continue;
            }
            25..40 => (true, false, client.put(key, body.clone()).await),
            40..50 => (true, false, client.delete(key).await),
            _ => {
                // Conditional: create when absent, else compare-and-swap over a fresh read.
                if expected.is_none() {
                    (true, true, client.create(key, body.clone()).await)
                } else {
                    let seen = match client.get(key).await {
                        Ok(Some(s)) => s,
                        Ok(None) => {
                            t.corrupt_reads += 1;
                            continue;
                        }
                        Err(k) => {
                            t.surfaced(&k);
                            continue;
                        }
                    };
                    if Some(&seen.bytes) != expected.as_ref() {
                        t.corrupt_reads += 1;
                        continue;
                    }
                    (true, true, client.cas(key, body.clone(), &seen).await)
                }
            }
        };
        debug_assert!(write);
        t.writes += 1;
        t.conditional_writes += u64::from(conditional);
        let is_delete = (40..50).contains(&roll);
        assert!(
            proxy
                .settle(&format!("/{key}"), Duration::from_secs(60))
                .await,
            "requests for {key} still in flight after 60 s"
        );
        let now = oracle_read(oracle, key).await;
        let ours = if is_delete { None } else { Some(body.clone()) };
        let landed = now == ours;
        match &answer {
            Outcome::Ok if !landed => {
                eprintln!("lost acknowledged write to {key}: answered Ok, server holds {now:?}");
                t.lost_acked_writes += 1;
            }
            Outcome::Ok => {}
            Outcome::Conflict => {
                // One writer per key: the precondition held, so this conflict is false.
                eprintln!("false conflict on {key} (landed: {landed})");
                t.false_conflicts += 1;
                if landed {
                    t.errors_for_applied_writes += 1;
                }
            }
            Outcome::Ambiguous => {
                t.ambiguous += 1;
                t.ambiguous_landed += u64::from(landed);
            }
            Outcome::Failed(k) => {
                t.surfaced(k);
                if conditional && landed {
                    eprintln!("error {k} for a conditional write to {key} that landed");
                    t.errors_for_applied_writes += 1;
                }
            }
        }
        model.insert(key.clone(), now);
    }
    t
}
