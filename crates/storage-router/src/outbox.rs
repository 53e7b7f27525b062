//! The mirror outbox: writes that reached only some copies of a
//! [`MirrorStore`](crate::MirrorStore), recorded durably and replayed to the copies that
//! missed them (seed 003's hybrid mode with R2 down).
//!
//! # What is owed
//!
//! Every write through a mirror with an outbox (put, multipart upload, copy, delete) is
//! stamped with a write stamp (`{unix ms}-{random}-{counter}`, stored as the user metadata
//! [`STAMP_META`] on puts) and goes through three steps:
//!
//! 1. **intent**: an entry naming the write (stamp, operation, keys, time) is stored in the
//!    journal, durably, *before* any copy is written;
//! 2. the copies are written as without an outbox (conditional writes: see below);
//! 3. **outcome**: every copy written, or none: the entry is removed. Some copies written,
//!    others failed: the entry is rewritten as *owed* (which member holds the surviving copy
//!    and its ETag, which members are owed it).
//!
//! The order is what makes a crash harmless: a process killed after a copy was written but
//! before the outcome was recorded leaves the intent entry, and replaying an intent finds
//! which members hold the stamped write and copies it to the others. Nothing is lost; the
//! cost is one journal write before and one journal delete after each mirrored write
//! (the delete need not be durable: a stale intent replays as "already there").
//!
//! Deletes while a member is down are owed too (tombstones), as are server-side copies.
//!
//! # Conditional writes
//!
//! Without an outbox a conditional write is decided by the primary alone. With one, and
//! [`MirrorRequirement::Any`](crate::MirrorRequirement::Any), a primary that is
//! *unavailable* (retryable error, timeout, open circuit) hands the decision to the next
//! member: documents and manifest heads keep working on the local folder while R2 is down,
//! and the write is owed to R2. Such a document may then have been changed on both sides
//! during the outage; the replay settles it by the conflict rule below (documents whose keys
//! a [`ReplayMerge`] claims, such as manifest heads, are merged instead).
//!
//! # The conflict rule
//!
//! A copy is replaced only by a newer write, and the newer write wins:
//!
//! - the owed write is found on its surviving member by its ETag (or, for an intent, by its
//!   stamp); if that copy has changed since, a later write or delete replaced it, which is
//!   owed or delivered by its own entry: the entry is dropped as *superseded*;
//! - on the owed member, a copy's age is its stamp when it has one (milliseconds, written by
//!   a Strata mirror), else its last-modified time at one-second precision (S3 and R2 report
//!   whole seconds). A copy newer than the owed write (written there after it, e.g. straight
//!   to R2 once it came back) is *kept* and reported; an older one is replaced; one of the same
//!   millisecond (stamped) or second (unstamped) cannot be ordered and is reported as
//!   *undecided* and left owed (times come from the writers' and servers' clocks: writes closer
//!   together than their skew can be misordered);
//! - the replacement is a conditional put on the ETag just read (create-if-absent when the
//!   member has no copy), so a write landing on the member between the check and the copy
//!   makes the copy fail rather than be overwritten; the entry stays owed and the next
//!   replay decides again. Deletes are replayed with a plain delete after the same check
//!   (object stores have no delete-if-match in the `ObjectStore` trait): a write landing in
//!   that window is the one case the rule cannot protect;
//! - every copy made is verified: the member's size and ETag after the put must be the
//!   put's.
//!
//! # When it is replayed
//!
//! - before any write to a key that is owed (in this process), that key's entries are
//!   replayed first, so a compare-and-swap never builds on the member's older copy;
//! - in the background after any operation the primary answered (a write, a read served by
//!   it, a listing or a health check), while entries may be pending;
//! - on demand: [`Outbox::replay`] (`strata mirror replay`), and [`Outbox::pending`]
//!   (`strata mirror pending`) lists what is owed.
//!
//! Replays are idempotent and run one at a time per outbox; several processes may replay
//! one journal (each entry's outcome is re-checked against the members, never assumed).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, UpdateVersion,
};
use serde::{Deserialize, Serialize};
use storage_core::{ErrorKind, Result, StorageError};

use crate::failure::is_unavailable;

/// User-metadata name of a mirrored put's write stamp (`{unix ms}-{random}-{counter}`).
pub const STAMP_META: &str = "strata-mirror-stamp";

/// Folder of the journal store holding one entry per owed write.
pub const OUTBOX_FOLDER: &str = "owed";

/// Version of an entry's layout.
pub const ENTRY_FORMAT: u32 = 1;

/// What an owed write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwedOp {
    /// A put or a multipart upload: the surviving copy's bytes and attributes are owed.
    Put,
    /// A server-side copy to `keys[0]`: the copied object is owed.
    Copy,
    /// A delete of `keys` (tombstones).
    Delete,
}

/// One write owed to one or more members of a mirror (one journal entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwedWrite {
    /// Entry id: the write's stamp (sorts by time).
    pub id: String,
    /// What the write does.
    pub op: OwedOp,
    /// Keys written (one for puts and copies; a batch for deletes).
    pub keys: Vec<String>,
    /// Source key of a copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_from: Option<String>,
    /// When the write was made (the writer's clock).
    pub time: DateTime<Utc>,
    /// Members owed the write.
    pub owed_to: Vec<String>,
    /// Member holding the surviving copy (`None` for an intent or a delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// ETag of the surviving copy when the outcome was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `true` while only the intent is recorded: the writer stopped (crashed) before it
    /// recorded which copies were written.
    pub intent: bool,
    /// Layout version ([`ENTRY_FORMAT`]).
    #[serde(default)]
    pub format: u32,
}

impl OwedWrite {
    fn path(&self) -> Path {
        entry_path(&self.id)
    }
}

fn entry_path(id: &str) -> Path {
    Path::from(format!("{OUTBOX_FOLDER}/{id}.json"))
}

/// A new write stamp: `{unix ms, 13 digits}-{process random}-{counter}`, unique across
/// processes and sorting by time.
fn new_stamp() -> (String, DateTime<Utc>) {
    static PROCESS: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() as u32
    });
    let now = Utc::now();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (
        format!("{:013}-{process:08x}-{n:06}", now.timestamp_millis()),
        now,
    )
}

/// Documents replayed by merging rather than copying: a manifest head (a CAS document
/// listing immutable segments) written on both sides during an outage must end up listing
/// both sides' segments. The facade registers one for `storage-manifest`'s heads.
pub trait ReplayMerge: Send + Sync + fmt::Debug {
    /// Whether `key` is merged.
    fn applies(&self, key: &str) -> bool;
    /// Keys (as the mirror sees them) that document `key` lists in `ours` and not in
    /// `theirs` (the owed member's copy, if any): each must be present on the owed member,
    /// or still owed to it, before the merge is written.
    fn missing_references(
        &self,
        key: &str,
        ours: &[u8],
        theirs: Option<&[u8]>,
    ) -> Result<Vec<String>>;
    /// `theirs` with what only `ours` lists added; `present` says which of the missing
    /// references exist on the owed member (an absent one was folded or deleted there).
    fn merge(
        &self,
        key: &str,
        ours: &[u8],
        theirs: &[u8],
        present: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<u8>>;
}

/// One key's outcome on one member, as reported by a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayNote {
    /// Key.
    pub key: String,
    /// Member.
    pub bucket: String,
    /// What happened and why.
    pub reason: String,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Entries looked at.
    pub entries: usize,
    /// Copies made and verified (key × member), deletes included.
    pub delivered: usize,
    /// Documents merged into the member's copy.
    pub merged: usize,
    /// Copies the member already held.
    pub already: usize,
    /// Entries dropped because a later write replaced the surviving copy.
    pub superseded: usize,
    /// The member held a newer write, which was kept.
    pub kept_newer: Vec<ReplayNote>,
    /// Writes the rule cannot order; left owed.
    pub undecided: Vec<ReplayNote>,
    /// Errors from members (unavailable members are counted in `pending`).
    pub failed: Vec<ReplayNote>,
    /// Entries still owed after this replay.
    pub pending: usize,
    /// Members that were unavailable.
    pub unavailable: Vec<String>,
}

impl ReplayReport {
    /// Nothing is owed any more and nothing was left undecided or failed.
    pub fn is_clean(&self) -> bool {
        self.pending == 0 && self.undecided.is_empty() && self.failed.is_empty()
    }
}

type Members = Vec<(String, Arc<dyn ObjectStore>)>;

struct Inner {
    journal: Arc<dyn ObjectStore>,
    members: OnceLock<Members>,
    merges: Vec<Arc<dyn ReplayMerge>>,
    /// Entries this process knows of (recorded here or read from the journal), by id: the
    /// cheap "is this key owed?" check before writes.
    index: tokio::sync::OnceCell<Mutex<BTreeMap<String, OwedWrite>>>,
    /// Intents of writes still running here: a replay leaves them alone.
    in_flight: Mutex<HashSet<String>>,
    /// One replay at a time.
    replaying: Arc<tokio::sync::Mutex<()>>,
    /// (entries may be pending, records since the last replay started).
    hint: Mutex<(bool, u64)>,
    /// A background replay left entries owed (another member is down): no new one starts
    /// before this instant, so a healthy primary does not trigger a replay per call.
    auto_after: Mutex<Option<std::time::Instant>>,
    /// Background replays on ([`Outbox::with_auto_replay`]).
    auto: bool,
}

/// How long after a background replay that left entries owed the next one may start.
pub const AUTO_REPLAY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// A durable record of writes owed to members of a mirror, and their replay. See the
/// [module docs](self) for what is owed, when it is replayed and the conflict rule.
///
/// ```
/// use std::sync::Arc;
/// use object_store::{ObjectStore, ObjectStoreExt, path::Path};
/// use storage_core::MemoryStore;
/// use storage_router::{MirrorRequirement, MirrorStore, Outbox};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let cloud: Arc<dyn storage_core::StrataStore> = Arc::new(MemoryStore::new());
/// let local: Arc<dyn storage_core::StrataStore> = Arc::new(MemoryStore::new());
/// let outbox = Outbox::new(Arc::new(MemoryStore::new()));
/// let hybrid = MirrorStore::with_outbox(
///     vec![("r2".into(), cloud.clone()), ("local".into(), local.clone())],
///     MirrorRequirement::Any,
///     outbox.clone(),
/// );
/// hybrid.put(&Path::from("a"), "1".into()).await.unwrap();
/// assert!(outbox.pending().await?.is_empty()); // both copies written: nothing owed
/// assert!(outbox.replay().await?.is_clean());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Outbox({})", self.inner.journal)
    }
}

enum Probe {
    Absent,
    Present(ObjectMeta, Attributes),
}

fn stamp_of(attrs: &Attributes) -> Option<&str> {
    attrs
        .get(&Attribute::Metadata(STAMP_META.into()))
        .map(|v| v.as_ref())
}

/// Which of two writes is newer.
#[derive(Debug, PartialEq, Eq)]
enum Age {
    Older,
    Newer,
    Same,
}

/// A stamp's parts: unix ms, writer process, counter in that process.
fn stamp_parts(stamp: &str) -> Option<(i64, &str, u64)> {
    let mut it = stamp.splitn(3, '-');
    let ms = it.next()?.parse().ok()?;
    let process = it.next()?;
    let n = it.next()?.parse().ok()?;
    Some((ms, process, n))
}

/// The member's copy compared with the owed write whose stamp is `owed`: two stamps of one
/// process by its counter (exact, whatever the clock does), of two processes by their
/// milliseconds; an unstamped copy by its last-modified second.
fn age_of(meta: &ObjectMeta, attrs: &Attributes, owed: &str) -> Age {
    use std::cmp::Ordering as O;
    let owed_parts = stamp_parts(owed);
    let owed_ms = owed_parts.map_or(0, |p| p.0);
    let ord = match (stamp_of(attrs).and_then(stamp_parts), owed_parts) {
        (Some((_, p, n)), Some((_, op, on))) if p == op => n.cmp(&on),
        (Some((ms, ..)), _) => ms.cmp(&owed_ms),
        // Last-modified is whole seconds on S3 and R2: compare at that precision.
        (None, _) => meta
            .last_modified
            .timestamp()
            .cmp(&owed_ms.div_euclid(1000)),
    };
    match ord {
        O::Less => Age::Older,
        O::Greater => Age::Newer,
        O::Equal => Age::Same,
    }
}

fn os_err(member: &str, e: object_store::Error) -> StorageError {
    StorageError::from_object_store(member, e)
}

async fn probe(name: &str, store: &dyn ObjectStore, key: &str) -> Result<Probe> {
    let opts = GetOptions {
        head: true,
        ..Default::default()
    };
    match store.get_opts(&Path::from(key), opts).await {
        Ok(r) => Ok(Probe::Present(r.meta, r.attributes)),
        Err(object_store::Error::NotFound { .. }) => Ok(Probe::Absent),
        Err(e) => match os_err(name, e) {
            e if e.is_not_found() => Ok(Probe::Absent),
            e => Err(e),
        },
    }
}

async fn fetch(
    name: &str,
    store: &dyn ObjectStore,
    key: &str,
) -> Result<(Bytes, ObjectMeta, Attributes)> {
    let r = store
        .get_opts(&Path::from(key), GetOptions::default())
        .await
        .map_err(|e| os_err(name, e))?;
    let (meta, attrs) = (r.meta.clone(), r.attributes.clone());
    let bytes = r.bytes().await.map_err(|e| os_err(name, e))?;
    Ok((bytes, meta, attrs))
}

/// The outcome of delivering one key to one member.
enum Delivery {
    Delivered,
    Merged,
    Already,
    KeptNewer(String),
    Undecided(String),
    Unavailable,
    Failed(StorageError),
}

impl Outbox {
    /// An outbox keeping its journal in `journal` (one small JSON object per owed write under
    /// [`OUTBOX_FOLDER`]). Use a durable store (a local folder, which fsyncs) beside the copy
    /// that survives an outage; attach it with
    /// [`MirrorStore::with_outbox`](crate::MirrorStore::with_outbox).
    pub fn new(journal: Arc<dyn ObjectStore>) -> Self {
        Outbox {
            inner: Arc::new(Inner {
                journal,
                members: OnceLock::new(),
                merges: Vec::new(),
                index: tokio::sync::OnceCell::new(),
                in_flight: Mutex::new(HashSet::new()),
                replaying: Arc::new(tokio::sync::Mutex::new(())),
                hint: Mutex::new((true, 0)),
                auto_after: Mutex::new(None),
                auto: true,
            }),
        }
    }

    /// An outbox whose journal is a local folder at `root` (created if missing), fsynced.
    pub fn local(root: impl AsRef<std::path::Path>) -> Result<Self> {
        Ok(Self::new(Arc::new(storage_core::LocalStore::new(root)?)))
    }

    /// Merge the documents `merge` claims instead of copying them. Call before attaching.
    pub fn with_merge(mut self, merge: Arc<dyn ReplayMerge>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.merges.push(merge);
        }
        self
    }

    /// Whether to replay in the background once the primary answers (default on). Off,
    /// owed writes are replayed only before a write to their key and on demand
    /// ([`replay`](Self::replay)). Call before attaching.
    pub fn with_auto_replay(mut self, on: bool) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.auto = on;
        }
        self
    }

    /// The journal store.
    pub fn journal(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.journal
    }

    /// Names of the mirror's members, primary first (empty until attached).
    pub fn members(&self) -> Vec<String> {
        self.inner
            .members
            .get()
            .map(|m| m.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn attach(&self, members: Members) {
        let _ = self.inner.members.set(members);
    }

    fn attached(&self) -> Result<&Members> {
        self.inner.members.get().ok_or_else(|| {
            StorageError::invalid_config(
                "outbox",
                "this outbox is not attached to a mirror (MirrorStore::with_outbox)",
            )
        })
    }

    fn journal_err(&self, e: object_store::Error) -> StorageError {
        os_err("outbox journal", e)
    }

    /// Every entry in the journal, oldest first (read afresh: another process may have
    /// recorded or replayed some).
    pub async fn pending(&self) -> Result<Vec<OwedWrite>> {
        let mut metas: Vec<ObjectMeta> = self
            .inner
            .journal
            .list(Some(&Path::from(OUTBOX_FOLDER)))
            .try_collect()
            .await
            .map_err(|e| self.journal_err(e))?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            if let Some(e) = self.read_entry(&m.location).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn read_entry(&self, path: &Path) -> Result<Option<OwedWrite>> {
        let bytes = match self.inner.journal.get(path).await {
            Ok(r) => r.bytes().await.map_err(|e| self.journal_err(e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.journal_err(e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| StorageError::Corrupt {
            backend: "outbox journal".into(),
            key: path.to_string(),
            reason: format!(
                "not an outbox entry ({e}); move it aside to continue (it names a write that may still be owed)"
            ),
        })
    }

    async fn index(&self) -> Result<&Mutex<BTreeMap<String, OwedWrite>>> {
        self.inner
            .index
            .get_or_try_init(|| async {
                let entries = self.pending().await?;
                Ok::<_, StorageError>(Mutex::new(
                    entries.into_iter().map(|e| (e.id.clone(), e)).collect(),
                ))
            })
            .await
    }

    fn with_index<R>(&self, f: impl FnOnce(&mut BTreeMap<String, OwedWrite>) -> R) -> Option<R> {
        self.inner
            .index
            .get()
            .map(|m| f(&mut m.lock().unwrap_or_else(|p| p.into_inner())))
    }

    async fn record(&self, entry: &OwedWrite) -> Result<()> {
        let body = serde_json::to_vec_pretty(entry).expect("an entry serializes");
        self.inner
            .journal
            .put(&entry.path(), PutPayload::from(body))
            .await
            .map_err(|e| self.journal_err(e))?;
        self.with_index(|i| i.insert(entry.id.clone(), entry.clone()));
        let mut hint = self.inner.hint.lock().unwrap_or_else(|p| p.into_inner());
        *hint = (true, hint.1 + 1);
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        match self.inner.journal.delete(&entry_path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.journal_err(e)),
        }
        self.with_index(|i| i.remove(id));
        Ok(())
    }

    /// Record the intent of a write before any copy is written.
    pub(crate) async fn begin(
        &self,
        op: OwedOp,
        keys: Vec<String>,
        copy_from: Option<String>,
    ) -> std::result::Result<Ticket, object_store::Error> {
        let members = self.attached().map_err(StorageError::into_object_store)?;
        // Load the index first, so this process knows of entries other runs left.
        self.index()
            .await
            .map_err(StorageError::into_object_store)?;
        let (id, time) = new_stamp();
        let entry = OwedWrite {
            id,
            op,
            keys,
            copy_from,
            time,
            owed_to: members.iter().map(|(n, _)| n.clone()).collect(),
            held_by: None,
            etag: None,
            intent: true,
            format: ENTRY_FORMAT,
        };
        self.in_flight().insert(entry.id.clone());
        let ticket = Ticket {
            outbox: self.clone(),
            entry,
        };
        if let Err(e) = self.record(&ticket.entry).await {
            return Err(StorageError::Unavailable {
                backend: "outbox journal".into(),
                source: format!(
                    "cannot record the write in the mirror's outbox, so it was not made: {e}"
                )
                .into(),
            }
            .into_object_store());
        }
        Ok(ticket)
    }

    /// The ids of the writes running in this process (a poisoned lock still holds them).
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this process knows of an entry owing `key` (besides running writes).
    pub(crate) fn is_owed(&self, key: &str) -> bool {
        let in_flight = self.in_flight().clone();
        self.with_index(|i| {
            i.values()
                .any(|e| !in_flight.contains(&e.id) && (e.keys.iter().any(|k| k == key)))
        })
        .unwrap_or(false)
    }

    /// Before a write to `key`: replay what is owed for it, so the write builds on the
    /// newest copy. Failures leave the entries owed; the write goes ahead either way.
    pub(crate) async fn settle_key(&self, key: &str) {
        if self.index().await.is_err() || !self.is_owed(key) {
            return;
        }
        let _guard = self.inner.replaying.lock().await;
        if let Err(e) = self.run(Some(key), &mut |_, _| {}).await {
            tracing::warn!(key, error = %e, "replaying the owed writes of a key failed");
        }
    }

    /// The primary answered: if entries may be pending and no replay runs, replay in the
    /// background.
    pub(crate) fn primary_answered(&self) {
        if !self.inner.auto || !self.inner.hint.lock().unwrap_or_else(|p| p.into_inner()).0 {
            return;
        }
        let now = std::time::Instant::now();
        if self
            .inner
            .auto_after
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| now < t)
        {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(guard) = self.inner.replaying.clone().try_lock_owned() else {
            return;
        };
        let me = self.clone();
        handle.spawn(async move {
            let _guard = guard;
            let r = me.run(None, &mut |_, _| {}).await;
            let owed = !matches!(&r, Ok(r) if r.pending == 0);
            *me.inner
                .auto_after
                .lock()
                .unwrap_or_else(|p| p.into_inner()) =
                owed.then(|| std::time::Instant::now() + AUTO_REPLAY_INTERVAL);
            match r {
                Ok(r) if r.entries > 0 => {
                    tracing::info!(
                        delivered = r.delivered,
                        merged = r.merged,
                        pending = r.pending,
                        "mirror outbox replayed"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mirror outbox replay failed"),
            }
        });
    }

    /// Wait until no replay runs (a background one included).
    pub async fn idle(&self) {
        drop(self.inner.replaying.lock().await);
    }

    /// Replay every owed write (see the [module docs](self)). Idempotent.
    pub async fn replay(&self) -> Result<ReplayReport> {
        self.replay_with(|_, _| {}).await
    }

    /// [`replay`](Self::replay), calling `progress(done, total)` after each entry.
    pub async fn replay_with(
        &self,
        mut progress: impl FnMut(usize, usize) + Send,
    ) -> Result<ReplayReport> {
        let _guard = self.inner.replaying.lock().await;
        self.run(None, &mut progress).await
    }

    async fn run(
        &self,
        key: Option<&str>,
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<ReplayReport> {
        let members = self.attached()?.clone();
        self.index().await?;
        let epoch = self.inner.hint.lock().unwrap_or_else(|p| p.into_inner()).1;
        let in_flight = self.in_flight().clone();
        let entries: Vec<OwedWrite> = match key {
            None => self.pending().await?,
            Some(k) => {
                let ids: Vec<String> = self
                    .with_index(|i| {
                        i.values()
                            .filter(|e| e.keys.iter().any(|x| x == k))
                            .map(|e| e.id.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                let mut out = Vec::new();
                for id in ids {
                    match self.read_entry(&entry_path(&id)).await? {
                        Some(e) => out.push(e),
                        // Replayed by another process.
                        None => {
                            self.with_index(|i| i.remove(&id));
                        }
                    }
                }
                out
            }
        };
        let entries: Vec<OwedWrite> = entries
            .into_iter()
            .filter(|e| !in_flight.contains(&e.id))
            .collect();
        self.with_index(|i| {
            for e in &entries {
                i.insert(e.id.clone(), e.clone());
            }
        });
        let mut run = Replay {
            members: &members,
            down: BTreeSet::new(),
            report: ReplayReport {
                entries: entries.len(),
                ..Default::default()
            },
        };
        let total = entries.len();
        for (n, e) in entries.iter().enumerate() {
            let left = self.replay_entry(e, &mut run).await;
            match left {
                None => self.remove(&e.id).await?,
                Some(rest) => {
                    if rest != *e {
                        self.record(&rest).await?;
                    }
                    run.report.pending += 1;
                }
            }
            progress(n + 1, total);
        }
        let Replay {
            down, mut report, ..
        } = run;
        report.unavailable = down.into_iter().collect();
        if key.is_none() && report.pending == 0 {
            let mut hint = self.inner.hint.lock().unwrap_or_else(|p| p.into_inner());
            if hint.1 == epoch {
                hint.0 = false;
            }
        }
        Ok(report)
    }

    /// Replay one entry; what is still owed afterwards, if anything.
    async fn replay_entry(&self, e: &OwedWrite, run: &mut Replay<'_>) -> Option<OwedWrite> {
        match e.op {
            OwedOp::Delete => self.replay_delete(e, run).await,
            OwedOp::Put | OwedOp::Copy => self.replay_put(e, run).await,
        }
    }

    async fn replay_delete(&self, e: &OwedWrite, run: &mut Replay<'_>) -> Option<OwedWrite> {
        let mut keys_left = BTreeSet::new();
        let mut owed_left = BTreeSet::new();
        // An intent: the delete may have landed anywhere. Finish it where copies are no
        // newer than it, unless it landed nowhere (every member still holds the key).
        for key in &e.keys {
            let mut holders = 0;
            let mut plan = Vec::new();
            for name in &e.owed_to {
                let Some(store) = run.member(name) else {
                    continue;
                };
                if run.down.contains(name) {
                    keys_left.insert(key.clone());
                    owed_left.insert(name.clone());
                    continue;
                }
                match probe(name, store.as_ref(), key).await {
                    Ok(Probe::Absent) => run.report.already += 1,
                    Ok(Probe::Present(meta, attrs)) => {
                        holders += 1;
                        plan.push((name.clone(), store.clone(), meta, attrs));
                    }
                    Err(err) => {
                        run.failed(err, key, name);
                        keys_left.insert(key.clone());
                        owed_left.insert(name.clone());
                    }
                }
            }
            if e.intent && holders == e.owed_to.len() {
                // Landed nowhere: nothing diverged, nothing owed.
                continue;
            }
            for (name, store, meta, attrs) in plan {
                match age_of(&meta, &attrs, &e.id) {
                    Age::Newer => run.report.kept_newer.push(note(
                        key,
                        &name,
                        "written there after the delete; kept".into(),
                    )),
                    Age::Same => {
                        run.report.undecided.push(note(
                            key,
                            &name,
                            "written there in the same second as the delete: cannot tell which came last; left owed".into(),
                        ));
                        keys_left.insert(key.clone());
                        owed_left.insert(name.clone());
                    }
                    Age::Older => match store.delete(&Path::from(key.as_str())).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                            run.report.delivered += 1
                        }
                        Err(err) => {
                            run.failed(os_err(&name, err), key, &name);
                            keys_left.insert(key.clone());
                            owed_left.insert(name.clone());
                        }
                    },
                }
            }
        }
        if keys_left.is_empty() {
            return None;
        }
        Some(OwedWrite {
            keys: e
                .keys
                .iter()
                .filter(|k| keys_left.contains(*k))
                .cloned()
                .collect(),
            owed_to: owed_left.into_iter().collect(),
            intent: false,
            ..e.clone()
        })
    }

    async fn replay_put(&self, e: &OwedWrite, run: &mut Replay<'_>) -> Option<OwedWrite> {
        let key = e.keys.first()?.as_str();
        if e.op == OwedOp::Copy && e.intent {
            return self.replay_intent_copy(e, key, run).await;
        }
        // 1. The surviving copy: the holder's copy if it still has the recorded ETag; for an
        //    intent, the first member whose copy carries this write's stamp.
        let candidates: Vec<&String> = match &e.held_by {
            Some(h) => vec![h],
            None => e.owed_to.iter().collect(),
        };
        let mut source = None;
        let mut holder_down = false;
        for name in candidates {
            let Some(store) = run.member(name) else {
                continue;
            };
            if run.down.contains(name) {
                holder_down = true;
                continue;
            }
            match probe(name, store.as_ref(), key).await {
                Ok(Probe::Present(meta, attrs)) => {
                    let ours = match (&e.etag, e.op) {
                        (Some(etag), _) => meta.e_tag.as_deref() == Some(etag.as_str()),
                        (None, OwedOp::Put) => stamp_of(&attrs) == Some(e.id.as_str()),
                        // A copy carries its source's attributes: an intent copy is found
                        // by having landed at all, and aged by the write's own time.
                        (None, _) => true,
                    };
                    if ours {
                        source = Some((name.clone(), store.clone()));
                        break;
                    }
                }
                Ok(Probe::Absent) => {}
                Err(err) if is_unavailable(&err) => {
                    run.down.insert(name.clone());
                    holder_down = true;
                }
                Err(err) => {
                    run.report.failed.push(note(key, name, err.to_string()));
                    return Some(e.clone());
                }
            }
        }
        let Some((src_name, src)) = source else {
            if holder_down {
                return Some(e.clone());
            }
            // No copy carries this write any more: a later write or delete replaced it
            // (owed or delivered by its own entry), or the write never landed.
            run.report.superseded += 1;
            return None;
        };
        let (bytes, src_meta, attrs) = match fetch(&src_name, src.as_ref(), key).await {
            Ok(v) => v,
            Err(err) if err.is_not_found() => {
                run.report.superseded += 1;
                return None;
            }
            Err(err) => {
                run.failed(err, key, &src_name);
                return Some(e.clone());
            }
        };
        if e.etag
            .as_ref()
            .is_some_and(|t| src_meta.e_tag.as_ref() != Some(t))
        {
            // Replaced between the probe and the read.
            run.report.superseded += 1;
            return None;
        }
        let mut owed_left = Vec::new();
        for name in e.owed_to.iter().filter(|n| **n != src_name) {
            let Some(store) = run.member(name) else {
                continue;
            };
            if run.down.contains(name) {
                owed_left.push(name.clone());
                continue;
            }
            let outcome = self
                .deliver(e, key, name, store.as_ref(), &bytes, &attrs)
                .await;
            match outcome {
                Delivery::Delivered => run.report.delivered += 1,
                Delivery::Merged => run.report.merged += 1,
                Delivery::Already => run.report.already += 1,
                Delivery::KeptNewer(why) => run.report.kept_newer.push(note(key, name, why)),
                Delivery::Undecided(why) => {
                    run.report.undecided.push(note(key, name, why));
                    owed_left.push(name.clone());
                }
                Delivery::Unavailable => {
                    run.down.insert(name.clone());
                    owed_left.push(name.clone());
                }
                Delivery::Failed(err) => {
                    run.report.failed.push(note(key, name, err.to_string()));
                    owed_left.push(name.clone());
                }
            }
        }
        if owed_left.is_empty() {
            return None;
        }
        Some(OwedWrite {
            owed_to: owed_left,
            held_by: Some(src_name),
            etag: src_meta.e_tag,
            intent: false,
            ..e.clone()
        })
    }

    /// A copy whose outcome was never recorded: make it again on every member that has its
    /// source, unless that member's destination is newer than the copy.
    async fn replay_intent_copy(
        &self,
        e: &OwedWrite,
        key: &str,
        run: &mut Replay<'_>,
    ) -> Option<OwedWrite> {
        let from = e.copy_from.as_deref()?;
        let mut owed_left = Vec::new();
        for name in &e.owed_to {
            let Some(store) = run.member(name) else {
                continue;
            };
            let outcome = async {
                if let Probe::Absent = probe(name, store.as_ref(), from).await? {
                    return Ok(None);
                }
                if let Probe::Present(meta, attrs) = probe(name, store.as_ref(), key).await?
                    && age_of(&meta, &attrs, &e.id) == Age::Newer
                {
                    return Ok(Some(false));
                }
                store
                    .copy(&Path::from(from), &Path::from(key))
                    .await
                    .map_err(|err| os_err(name, err))?;
                Ok::<_, StorageError>(Some(true))
            }
            .await;
            match outcome {
                Ok(Some(true)) => run.report.delivered += 1,
                Ok(Some(false)) => run.report.kept_newer.push(note(
                    key,
                    name,
                    format!("{name} holds a newer write; kept"),
                )),
                Ok(None) => run.report.already += 1,
                Err(err) => {
                    run.failed(err, key, name);
                    owed_left.push(name.clone());
                }
            }
        }
        if owed_left.is_empty() {
            return None;
        }
        Some(OwedWrite {
            owed_to: owed_left,
            ..e.clone()
        })
    }

    fn merge_for(&self, key: &str) -> Option<&Arc<dyn ReplayMerge>> {
        self.inner.merges.iter().find(|m| m.applies(key))
    }

    /// Whether `key` is still owed to `member` by an entry other than `except`.
    fn owed_to(&self, key: &str, member: &str, except: &str) -> bool {
        self.with_index(|i| {
            i.values().any(|e| {
                e.id != except
                    && e.op != OwedOp::Delete
                    && e.keys.iter().any(|k| k == key)
                    && e.owed_to.iter().any(|m| m == member)
            })
        })
        .unwrap_or(false)
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        e: &OwedWrite,
        key: &str,
        name: &str,
        store: &dyn ObjectStore,
        bytes: &Bytes,
        attrs: &Attributes,
    ) -> Delivery {
        let classify = |err: StorageError| {
            if is_unavailable(&err) {
                Delivery::Unavailable
            } else {
                Delivery::Failed(err)
            }
        };
        let merge = self.merge_for(key);
        // A few rounds: a put that loses a race against a write landing on the member is
        // decided again against what landed.
        for _ in 0..4 {
            let current = match probe(name, store, key).await {
                Ok(p) => p,
                Err(err) => return classify(err),
            };
            let (body, mode, put_attrs, merged) = match (&current, merge) {
                (Probe::Present(_, theirs_attrs), _)
                    if stamp_of(theirs_attrs).is_some()
                        && stamp_of(theirs_attrs) == stamp_of(attrs) =>
                {
                    return Delivery::Already;
                }
                (Probe::Present(meta, theirs_attrs), Some(m)) => {
                    let theirs = match fetch(name, store, key).await {
                        Ok((b, got, _)) if got.e_tag == meta.e_tag => b,
                        Ok(_) => continue,
                        Err(err) if err.is_not_found() => continue,
                        Err(err) => return classify(err),
                    };
                    let present = match self
                        .references(m, key, bytes, Some(&theirs), e, name, store)
                        .await
                    {
                        Ok(p) => p,
                        Err(d) => return d,
                    };
                    let merged = match m.merge(key, bytes, &theirs, &|k| present.contains(k)) {
                        Ok(v) => Bytes::from(v),
                        Err(err) => return Delivery::Failed(err),
                    };
                    if merged == theirs {
                        return Delivery::Already;
                    }
                    (merged, update(meta), theirs_attrs.clone(), true)
                }
                (Probe::Present(meta, theirs_attrs), None) => {
                    match age_of(meta, theirs_attrs, &e.id) {
                        Age::Newer => {
                            return Delivery::KeptNewer(format!(
                                "{name} holds a newer write ({}); kept",
                                describe_age(meta, theirs_attrs)
                            ));
                        }
                        Age::Same => {
                            return Delivery::Undecided(format!(
                                "{name}'s copy ({}) and the owed write ({}) cannot be ordered; left owed",
                                describe_age(meta, theirs_attrs),
                                e.time.to_rfc3339()
                            ));
                        }
                        Age::Older => (bytes.clone(), update(meta), attrs.clone(), false),
                    }
                }
                (Probe::Absent, m) => {
                    if let Some(m) = m
                        && let Err(d) = self.references(m, key, bytes, None, e, name, store).await
                    {
                        return d;
                    }
                    (bytes.clone(), PutMode::Create, attrs.clone(), false)
                }
            };
            let opts = PutOptions {
                mode,
                attributes: put_attrs,
                ..Default::default()
            };
            let put = store
                .put_opts(&Path::from(key), PutPayload::from(body.clone()), opts)
                .await;
            let written = match put {
                Ok(r) => r,
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::AlreadyExists { .. },
                ) => continue,
                Err(err) => {
                    let err = os_err(name, err);
                    if err.kind() == ErrorKind::Conflict {
                        continue;
                    }
                    return classify(err);
                }
            };
            // Verify: the member now holds exactly what was put.
            match probe(name, store, key).await {
                Ok(Probe::Present(meta, _))
                    if meta.size == body.len() as u64
                        && (written.e_tag.is_none() || meta.e_tag == written.e_tag) => {}
                Ok(_) => {
                    return Delivery::Undecided(format!(
                        "{name} changed right after the copy was made; left owed"
                    ));
                }
                Err(err) => return classify(err),
            }
            if merged {
                // The holder keeps its own copy: the merged document may list objects only
                // the member has. Reads prefer the primary; the next outage's replay
                // merges again.
                return Delivery::Merged;
            }
            return Delivery::Delivered;
        }
        Delivery::Undecided(format!(
            "{name} kept changing while the copy was made; left owed"
        ))
    }

    /// The references only `ours` lists, which of them the member has; `Err` when some
    /// are still owed to it (the document waits for them).
    #[allow(clippy::too_many_arguments)]
    async fn references(
        &self,
        m: &Arc<dyn ReplayMerge>,
        key: &str,
        ours: &[u8],
        theirs: Option<&[u8]>,
        e: &OwedWrite,
        name: &str,
        store: &dyn ObjectStore,
    ) -> std::result::Result<BTreeSet<String>, Delivery> {
        let refs = m
            .missing_references(key, ours, theirs)
            .map_err(Delivery::Failed)?;
        let mut present = BTreeSet::new();
        for r in refs {
            if self.owed_to(&r, name, &e.id) {
                return Err(Delivery::Undecided(format!(
                    "lists `{r}`, which is still owed to {name}; merged once it is delivered"
                )));
            }
            match probe(name, store, &r).await {
                Ok(Probe::Present(..)) => {
                    present.insert(r);
                }
                Ok(Probe::Absent) => {}
                Err(err) if is_unavailable(&err) => return Err(Delivery::Unavailable),
                Err(err) => return Err(Delivery::Failed(err)),
            }
        }
        Ok(present)
    }
}

fn update(meta: &ObjectMeta) -> PutMode {
    PutMode::Update(UpdateVersion {
        e_tag: meta.e_tag.clone(),
        version: meta.version.clone(),
    })
}

fn describe_age(meta: &ObjectMeta, attrs: &Attributes) -> String {
    match stamp_of(attrs) {
        Some(s) => format!("stamp {s}"),
        None => format!("last modified {}", meta.last_modified.to_rfc3339()),
    }
}

/// Member `name`'s store.
fn member<'a>(members: &'a Members, name: &str) -> Option<&'a Arc<dyn ObjectStore>> {
    members.iter().find(|(n, _)| n == name).map(|(_, s)| s)
}

/// What one replay run carries from entry to entry: the members, those found unavailable
/// (not asked again in this run) and the report.
struct Replay<'a> {
    members: &'a Members,
    down: BTreeSet<String>,
    report: ReplayReport,
}

impl<'a> Replay<'a> {
    fn member(&self, name: &str) -> Option<&'a Arc<dyn ObjectStore>> {
        member(self.members, name)
    }

    /// A member's error: an outage marks the member down, so the rest of this run leaves it
    /// alone; any other error is reported as failed for `key`.
    fn failed(&mut self, err: StorageError, key: &str, name: &str) {
        if is_unavailable(&err) {
            self.down.insert(name.to_string());
        } else {
            self.report.failed.push(note(key, name, err.to_string()));
        }
    }
}

fn note(key: &str, bucket: &str, reason: String) -> ReplayNote {
    ReplayNote {
        key: key.to_string(),
        bucket: bucket.to_string(),
        reason,
    }
}

/// A write's place in the outbox while it runs. Dropped without
/// [`finish`](Ticket::finish) (the writer stopped), its intent stays in the journal.
pub(crate) struct Ticket {
    outbox: Outbox,
    entry: OwedWrite,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.outbox.in_flight().remove(&self.entry.id);
    }
}

impl Ticket {
    /// The write's stamp.
    pub(crate) fn stamp(&self) -> &str {
        &self.entry.id
    }

    /// `attrs` with the write's stamp.
    pub(crate) fn stamped(&self, mut attrs: Attributes) -> Attributes {
        attrs.insert(
            Attribute::Metadata(STAMP_META.into()),
            self.stamp().to_string().into(),
        );
        attrs
    }

    /// Record the outcome: `written` members (with the ETag each answered) and `failed`
    /// ones. All or nothing written: nothing owed.
    pub(crate) async fn finish(self, written: Vec<(String, Option<String>)>, failed: Vec<String>) {
        let outbox = self.outbox.clone();
        let r = if written.is_empty() || failed.is_empty() {
            outbox.remove(&self.entry.id).await
        } else {
            let (held_by, mut etag) = written[0].clone();
            if etag.is_none()
                && self.entry.op != OwedOp::Delete
                && let (Ok(members), Some(key)) = (outbox.attached(), self.entry.keys.first())
                && let Some(store) = member(members, &held_by)
                && let Ok(Probe::Present(meta, _)) = probe(&held_by, store.as_ref(), key).await
            {
                etag = meta.e_tag;
            }
            let entry = OwedWrite {
                owed_to: failed,
                held_by: (self.entry.op != OwedOp::Delete).then_some(held_by),
                etag,
                intent: false,
                ..self.entry.clone()
            };
            outbox.record(&entry).await
        };
        if let Err(e) = r {
            // The intent stays in the journal: the replay works it out from the members.
            tracing::warn!(id = %self.entry.id, error = %e, "outcome of a mirrored write not recorded in the outbox; its intent will be replayed");
        }
    }
}
