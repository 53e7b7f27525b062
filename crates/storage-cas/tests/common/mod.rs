//! Test support: a fault-injecting store over `MemoryStore`, and the chain check.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions};
use serde::{Deserialize, Serialize};
use storage_cas::{BackoffStrategy, Collection, Jitter, VersionedRecords};
use storage_core::{Bucket, Capabilities, MemoryStore, StorageError, StrataStore};

/// What to do to one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Apply the write, then report a timeout (the response was lost).
    LostAck,
    /// Report a timeout without applying the write.
    FailBefore,
    /// Report S3's 409 ConditionalRequestConflict without applying the write (as an opaque
    /// client error, the way object_store surfaces it).
    Conflict409,
}

/// Decides the fault of the n-th write (0-based) to a path.
pub type Decider = Box<dyn Fn(u64, &Path, &PutOptions) -> Option<Fault> + Send + Sync>;
/// Runs once, after the next lost-answer write was applied and before its answer returns.
pub type AfterApply = Box<dyn Fn(&MemoryStore, &Path) + Send + Sync>;

pub struct FaultStore {
    pub inner: MemoryStore,
    decide: Decider,
    after_apply: Mutex<Option<AfterApply>>,
    writes: AtomicU64,
    pub lost_acks: AtomicU64,
    pub failed_before: AtomicU64,
    pub conflicts_409: AtomicU64,
    /// Fail deletes with a lost answer (applied, then timeout) this many times.
    pub lost_delete_acks: AtomicU64,
}

impl FaultStore {
    pub fn new(
        decide: impl Fn(u64, &Path, &PutOptions) -> Option<Fault> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(FaultStore {
            inner: MemoryStore::new(),
            decide: Box::new(decide),
            after_apply: Mutex::new(None),
            writes: AtomicU64::new(0),
            lost_acks: AtomicU64::new(0),
            failed_before: AtomicU64::new(0),
            conflicts_409: AtomicU64::new(0),
            lost_delete_acks: AtomicU64::new(0),
        })
    }

    /// Each conditional write suffers what `draw` returns; plain overwrites never fail.
    pub fn on_conditional(draw: impl Fn() -> Option<Fault> + Send + Sync + 'static) -> Arc<Self> {
        Self::new(move |_, _, opts| {
            if matches!(opts.mode, PutMode::Overwrite) {
                return None;
            }
            draw()
        })
    }

    /// Every n-th conditional write (starting with the first) suffers `fault`.
    pub fn every_nth_conditional(n: u64, fault: Fault) -> Arc<Self> {
        let counter = AtomicU64::new(0);
        Self::on_conditional(move || {
            counter
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(n)
                .then_some(fault)
        })
    }

    pub fn set_after_apply(&self, f: impl Fn(&MemoryStore, &Path) + Send + Sync + 'static) {
        *self.after_apply.lock().unwrap() = Some(Box::new(f));
    }

    pub fn bucket(self: &Arc<Self>) -> Bucket {
        Bucket::builder("faulty", self.clone())
            .provider("memory+faults")
            .build()
    }

    fn timeout() -> object_store::Error {
        StorageError::Timeout {
            backend: "faulty".into(),
            operation: "put (response lost)".into(),
            after: Duration::from_secs(30),
            source: None,
        }
        .into_object_store()
    }
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultStore(MemoryStore)")
    }
}

#[deny(clippy::missing_trait_methods)]
impl StrataStore for FaultStore {
    storage_core::store_fn!(capabilities, |_this| Capabilities::MEMORY);
    storage_core::store_fn!(key_prefix, |this| this.inner.key_prefix());

    storage_core::store_fn!(presign, |_this, _, _, _| Err(
        storage_core::store::not_supported("faulty", "presigned URLs")
    ));

    storage_core::store_fn!(delete_if_match, |this, path, etag| {
        let r = this.inner.delete_if_match(path, etag).await;
        if r.is_ok()
            && this
                .lost_delete_acks
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(Self::timeout());
        }
        r
    });
}

#[deny(clippy::missing_trait_methods)]
impl ObjectStore for FaultStore {
    storage_core::store_fn!(put_opts, |this, location, payload, opts| {
        let n = this.writes.fetch_add(1, Ordering::Relaxed);
        match (this.decide)(n, location, &opts) {
            None => this.inner.put_opts(location, payload, opts).await,
            Some(Fault::FailBefore) => {
                this.failed_before.fetch_add(1, Ordering::Relaxed);
                Err(Self::timeout())
            }
            Some(Fault::Conflict409) => {
                this.conflicts_409.fetch_add(1, Ordering::Relaxed);
                Err(object_store::Error::Generic {
                    store: "S3",
                    source: "Client error with status 409 Conflict: <Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource.</Message></Error>".into(),
                })
            }
            Some(Fault::LostAck) => {
                // A write that failed its precondition answers truthfully.
                this.inner.put_opts(location, payload, opts).await?;
                this.lost_acks.fetch_add(1, Ordering::Relaxed);
                // Run the hook once, without holding the lock (it may write here).
                let hook = this.after_apply.lock().unwrap().take();
                if let Some(f) = hook {
                    f(&this.inner, location);
                }
                Err(Self::timeout())
            }
        }
    });

    storage_core::forward_object_store!(@methods inner:
        put_multipart_opts, get_opts, get_ranges, delete_stream, list, list_with_offset,
        list_with_delimiter, copy_opts, rename_opts);
}

/// One committed change, as its writer logged it.
#[derive(Debug, Clone)]
pub struct Link {
    pub replaced: Option<String>,
    pub wrote: String,
}

/// Check that `links` form one chain from the creation to `final_etag` with no fork:
/// exactly one creation, every replaced ETag replaced exactly once, every written ETag
/// distinct, and following the chain from the creation visits every link and ends at
/// `final_etag`.
pub fn assert_one_chain(links: &[Link], final_etag: &str) {
    let creations: Vec<&Link> = links.iter().filter(|l| l.replaced.is_none()).collect();
    assert_eq!(
        creations.len(),
        1,
        "exactly one write may create the document: {creations:?}"
    );
    let mut written = HashSet::new();
    for l in links {
        assert!(
            written.insert(l.wrote.clone()),
            "ETag {} written twice",
            l.wrote
        );
    }
    let mut next: HashMap<&str, &str> = HashMap::new();
    for l in links {
        if let Some(r) = &l.replaced {
            assert!(
                written.contains(r),
                "replaced ETag {r} was never written by a logged writer"
            );
            let prev = next.insert(r.as_str(), l.wrote.as_str());
            assert!(
                prev.is_none(),
                "fork: ETag {r} was replaced twice (by {:?} and {})",
                prev,
                l.wrote
            );
        }
    }
    let mut at = creations[0].wrote.as_str();
    let mut steps = 1;
    while let Some(n) = next.get(at) {
        at = n;
        steps += 1;
    }
    assert_eq!(
        steps,
        links.len(),
        "the chain from the creation covers {steps} of {} writes",
        links.len()
    );
    assert!(
        storage_core::etag_eq(at, final_etag),
        "chain ends at {at}, the document is at {final_etag}"
    );
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    pub n: u64,
}

/// The update every contention test makes: add 1 to the counter (0 when absent).
pub fn increment(cur: Option<Counter>) -> storage_core::Result<Option<Counter>> {
    Ok(Some(Counter {
        n: cur.map_or(0, |c| c.n) + 1,
    }))
}

/// A budget large enough for 16 writers on one key.
/// A memory bucket and a local-folder bucket in `dir`: the backends the tests run on.
pub fn every_backend(dir: &std::path::Path) -> [Bucket; 2] {
    [Bucket::memory("m"), Bucket::local("fs", dir).unwrap()]
}

pub fn contended() -> BackoffStrategy {
    BackoffStrategy::custom(100_000, Duration::from_millis(1), Duration::from_millis(20))
        .with_jitter(Jitter::Full)
        .without_deadline()
}

/// The counters in `bucket` (`counters/{id}.json`), retrying under [`contended`].
pub fn counters(bucket: &Bucket) -> Collection<Counter> {
    Collection::new(bucket, "counters/{id}.json")
        .unwrap()
        .with_backoff(contended())
}

/// `writers` tasks each add 1 to `counters/hot` `increments` times; returns every
/// writer's log of (replaced ETag, written ETag).
pub async fn hammer(c: &Collection<Counter>, writers: usize, increments: usize) -> Vec<Link> {
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut log = Vec::with_capacity(increments);
            for _ in 0..increments {
                let out = c
                    .update_with("hot", increment)
                    .await
                    .expect("update_with with a large budget commits");
                log.push(Link {
                    replaced: out.previous_etag,
                    wrote: out.etag.expect("a write has an ETag"),
                });
            }
            log
        }));
    }
    let mut links = Vec::new();
    for t in tasks {
        links.extend(t.await.unwrap());
    }
    links
}

/// `writers` × `increments` increments of one counter in `bucket`: the final value is exact
/// and the writers' logs form one chain.
///
/// `local_queue: false` makes every writer race on compare-and-swap alone (the real proof);
/// `true` is the default in-process queue in front of it.
pub async fn check_counter(bucket: &Bucket, writers: usize, increments: usize, local_queue: bool) {
    let c = counters(bucket).with_local_queue(local_queue);
    let links = hammer(&c, writers, increments).await;
    let doc = c.get("hot").await.unwrap().unwrap();
    assert_eq!(
        doc.value.n,
        (writers * increments) as u64,
        "{}",
        bucket.provider()
    );
    assert_eq!(links.len(), writers * increments);
    assert_one_chain(&links, &doc.etag);
}

/// `committers` × `commits` concurrent commits to one record: versions contiguous from 0,
/// each number and value exactly once, head at the last.
pub async fn check_versions(bucket: &Bucket, committers: u64, commits: u64, local_queue: bool) {
    let recs: VersionedRecords<(u64, u64)> = VersionedRecords::new(bucket, "hot")
        .unwrap()
        .with_backoff(contended())
        .with_local_queue(local_queue);
    let mut tasks = Vec::new();
    for w in 0..committers {
        let recs = recs.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..commits {
                got.push(recs.commit("rec", &(w, i)).await.unwrap().version);
            }
            got
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        // One committer's versions increase.
        assert!(got.windows(2).all(|p| p[0] < p[1]), "{got:?}");
        numbers.extend(got);
    }
    let total = committers * commits;
    numbers.sort();
    assert_eq!(
        numbers,
        (0..total).collect::<Vec<_>>(),
        "each number handed out exactly once"
    );
    let history: Vec<u64> = recs
        .history("rec")
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(
        history,
        (0..total).collect::<Vec<_>>(),
        "v0..v{} contiguous",
        total - 1
    );
    let head = recs.get("rec").await.unwrap().unwrap();
    assert_eq!(head.version, total - 1, "head at the last version");
    // Every committed value is stored exactly once.
    let mut values = BTreeSet::new();
    for n in 0..total {
        let v = recs.get_version("rec", n).await.unwrap().unwrap();
        assert_eq!(v.version, n);
        assert!(values.insert(v.value), "value {:?} stored twice", v.value);
    }
    assert_eq!(values.len() as u64, total);
    assert_eq!(
        head.value,
        recs.get_version("rec", total - 1)
            .await
            .unwrap()
            .unwrap()
            .value
    );
}
