//! [`Collection`]: typed JSON documents with ETag compare-and-swap.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use storage_core::{Bucket, IntoStore, Key, ObjectInfo, Result, StorageError, WriteCondition};

use crate::rounds::{RoundError, Rounds, Unsettled};
use crate::scheme::KeyScheme;
use crate::ttl::{self, Clock, EXPIRES_AT_META, SystemClock};
use crate::write::{self, Raw, WRITE_ID_META, WRITE_LOG_META, WriteRequest};
use storage_core::backoff::BackoffStrategy;

/// Content type of every document.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// A document as read: its value and the ETag to make a conditional write against.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// Document id (placeholder values joined by `/`).
    pub id: String,
    /// Object key.
    pub key: String,
    /// The decoded value.
    pub value: T,
    /// ETag of the object the value was read from: pass it to
    /// [`Collection::put_if_match`] / [`Collection::delete_if_match`].
    pub etag: String,
    /// Backend version id, where the backend versions objects.
    pub version: Option<String>,
    /// When the object was written.
    pub last_modified: DateTime<Utc>,
    /// When the document expires, if it has a TTL.
    pub expires_at: Option<DateTime<Utc>>,
    /// User metadata, without Strata's own `strata-*` entries.
    pub metadata: BTreeMap<String, String>,
}

impl<T> Versioned<T> {
    /// Whether the document has expired at `now`.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// What a successful write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// ETag of the object this write created; `None` only when `superseded` and the
    /// document's write log no longer holds it (the write landed; its ETag is stale anyway).
    pub etag: Option<String>,
    /// Backend version id, where known.
    pub version: Option<String>,
    /// When the document expires, if it has a TTL.
    pub expires_at: Option<DateTime<Utc>>,
    /// The write applied, but its response was lost and another writer has replaced the
    /// document since (see the crate docs on ambiguous outcomes). `etag` is still the ETag
    /// this write produced.
    pub superseded: bool,
}

/// The TTL of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ttl {
    /// The collection's default ([`Collection::with_ttl`]), if any.
    #[default]
    CollectionDefault,
    /// Never expires, whatever the collection default.
    Never,
    /// Expires this long after the write.
    After(Duration),
}

/// Options of one write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOpts {
    /// TTL.
    pub ttl: Ttl,
    /// User metadata (names: ASCII letters, digits, `-`, `_`; values printable ASCII; names
    /// starting with `strata-` are reserved and ignored). For
    /// [`update_with`](Collection::update_with), entries are added to the document's
    /// existing user metadata.
    pub metadata: BTreeMap<String, String>,
}

impl WriteOpts {
    /// Expire `ttl` after the write.
    pub fn ttl(ttl: Duration) -> Self {
        WriteOpts {
            ttl: Ttl::After(ttl),
            ..Default::default()
        }
    }

    /// Never expire.
    pub fn no_ttl() -> Self {
        WriteOpts {
            ttl: Ttl::Never,
            ..Default::default()
        }
    }

    /// Add one user metadata entry.
    pub fn with_metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }
}

/// What [`Collection::update_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateAction {
    /// The document was absent or expired, and was written anew.
    Created,
    /// The document was replaced.
    Replaced,
    /// The closure returned `None` for a live document, which was deleted.
    Deleted,
    /// The closure returned `None` for an absent document: nothing was written.
    Unchanged,
}

/// Result of [`Collection::update_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct Updated<T> {
    /// The committed value (`None` after a delete or a no-op on an absent document).
    pub value: Option<T>,
    /// ETag of the committed document (`None` after a delete or no-op).
    pub etag: Option<String>,
    /// ETag of the object the committed change replaced (`None` when it created the
    /// document). Logged by every writer, these form one chain per document.
    pub previous_etag: Option<String>,
    /// Read-apply-write rounds it took (1 = no conflict).
    pub attempts: u32,
    /// What happened.
    pub action: UpdateAction,
}

/// Result of [`Collection::sweep`].
#[derive(Debug, Default)]
pub struct SweepReport {
    /// Documents examined.
    pub scanned: u64,
    /// Of those, expired.
    pub expired: u64,
    /// Expired documents deleted.
    pub deleted: u64,
    /// Expired documents rewritten by another writer between the check and the delete, and
    /// therefore kept (only with conditional deletes).
    pub skipped_changed: u64,
    /// Attachments deleted together with their documents.
    pub attachments_deleted: u64,
    /// Keys that could not be deleted, with why.
    pub failed: Vec<(String, StorageError)>,
}

/// The state of one document key, expired or not.
pub(crate) struct State {
    pub raw: Raw,
    pub expired: bool,
}

/// A set of typed JSON documents in one bucket under a [`KeyScheme`].
///
/// Every read returns the ETag it saw; every conditional write is atomic on the backend
/// (memory, local folder, S3, R2); [`update_with`](Self::update_with) is the
/// read-modify-write loop that never loses an update. Cheap to clone.
///
/// `T` is any `Serialize + DeserializeOwned` type; it is stored as JSON with content type
/// `application/json`.
pub struct Collection<T> {
    pub(crate) bucket: Bucket,
    pub(crate) scheme: Arc<KeyScheme>,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) backoff: BackoffStrategy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) queue: bool,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        Collection {
            bucket: self.bucket.clone(),
            scheme: self.scheme.clone(),
            default_ttl: self.default_ttl,
            backoff: self.backoff,
            clock: self.clock.clone(),
            queue: self.queue,
            _marker: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Collection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collection")
            .field("bucket", &self.bucket.name())
            .field("scheme", &self.scheme.template())
            .field("default_ttl", &self.default_ttl)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// Fail unless `caps` has atomic create-if-absent and put-if-match.
pub(crate) fn require_cas(bucket: &Bucket) -> Result<()> {
    let caps = bucket.capabilities();
    if caps.create_if_absent && caps.put_if_match {
        Ok(())
    } else {
        Err(StorageError::not_supported(
            format!("{} ({})", bucket.name(), bucket.provider()),
            "documents with compare-and-swap: the backend has no atomic conditional put, and Strata never falls back to last-writer-wins",
        ))
    }
}

/// A bucket over a store, with the capabilities the store reports.
pub(crate) fn bucket_for_store(store: impl IntoStore) -> Bucket {
    let store = store.into_store();
    let name = store.to_string();
    Bucket::builder(name, store)
        .provider("object_store")
        .build()
}

/// Delete every key of `keys`, batched; returns how many were deleted. The first key that
/// could not be deleted fails the call with `done` (given the count) saying what was already
/// deleted, so the caller knows running it again finishes the job.
pub(crate) async fn delete_all(
    bucket: &Bucket,
    keys: &[String],
    done: impl FnOnce(usize) -> String,
) -> Result<u64> {
    let report = bucket.delete_many(keys).await;
    if let Some((key, err)) = report.failed.into_iter().next() {
        return Err(StorageError::Backend {
            backend: bucket.name().to_string(),
            status: None,
            source: format!(
                "{} but not `{key}`: {err}; run the delete again",
                done(report.deleted.len())
            )
            .into(),
        });
    }
    Ok(report.deleted.len() as u64)
}

pub(crate) fn user_metadata(meta: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    meta.iter()
        .filter(|(k, _)| !k.starts_with("strata-"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl<T> Collection<T>
where
    T: Serialize + DeserializeOwned + Send,
{
    /// A collection in `bucket` whose keys follow `scheme` (e.g. `assistants/{id}.json`).
    ///
    /// Fails with [`StorageError::NotSupported`] when the bucket's [`Capabilities`](storage_core::Capabilities) lack
    /// atomic conditional puts, and with [`StorageError::InvalidConfig`] naming the template
    /// when `scheme` is not valid.
    pub fn new(bucket: &Bucket, scheme: &str) -> Result<Self> {
        require_cas(bucket)?;
        Ok(Collection {
            bucket: bucket.clone(),
            scheme: Arc::new(KeyScheme::new(scheme)?),
            default_ttl: None,
            backoff: BackoffStrategy::UNTIL_DEADLINE,
            clock: Arc::new(SystemClock),
            queue: true,
            _marker: PhantomData,
        })
    }

    /// A collection over a store: a Strata store (whose capabilities say whether it can do
    /// compare-and-swap), or a plain `object_store` store, which must say so through
    /// [`Declared`](storage_core::Declared):
    ///
    /// ```
    /// use std::sync::Arc;
    /// use object_store::memory::InMemory;
    /// use storage_cas::Collection;
    /// use storage_core::{Capabilities, Declared};
    ///
    /// // InMemory makes PutMode::Create and PutMode::Update atomic.
    /// let store = Declared::new(Arc::new(InMemory::new()), Capabilities::MEMORY);
    /// let c = Collection::<serde_json::Value>::from_store(Arc::new(store), "a/{id}.json");
    /// assert!(c.is_ok());
    /// // Undeclared, it claims nothing, and documents refuse it.
    /// let plain: Arc<dyn object_store::ObjectStore> = Arc::new(InMemory::new());
    /// assert!(Collection::<serde_json::Value>::from_store(plain, "a/{id}.json").is_err());
    /// ```
    pub fn from_store(store: impl IntoStore, scheme: &str) -> Result<Self> {
        Self::new(&bucket_for_store(store), scheme)
    }

    /// Give documents without an explicit TTL this one (`None`: never expire).
    pub fn with_ttl(mut self, ttl: impl Into<Option<Duration>>) -> Self {
        self.default_ttl = ttl.into();
        self
    }

    /// Retry policy of [`update_with`](Self::update_with) (default
    /// [`BackoffStrategy::UNTIL_DEADLINE`]: retry until 30 s have passed, so contention alone
    /// never makes an update give up).
    pub fn with_backoff(mut self, backoff: BackoffStrategy) -> Self {
        self.backoff = backoff;
        self
    }

    /// Where TTLs read the time (default: the system clock). Tests inject a
    /// [`ManualClock`](crate::ManualClock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Queue [`update_with`](Self::update_with) calls on the same document inside this
    /// process (default on; shared by every collection over the same store), so they do
    /// not race each other on
    /// compare-and-swap and waste round trips. Off: every call races on CAS alone (still
    /// correct, just slower under in-process contention).
    pub fn with_local_queue(mut self, on: bool) -> Self {
        self.queue = on;
        self
    }

    /// The key scheme.
    pub fn scheme(&self) -> &KeyScheme {
        &self.scheme
    }

    /// The bucket documents live in.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The default TTL.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.default_ttl
    }

    /// The retry policy.
    pub fn backoff(&self) -> BackoffStrategy {
        self.backoff
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The object key of document `id` (validated: it cannot leave the collection).
    pub fn key_for(&self, id: &str) -> Result<Key> {
        self.scheme.key_for(id)
    }

    pub(crate) async fn read_state(&self, key: &Key) -> Result<Option<State>> {
        let now = self.clock.now();
        Ok(write::read(&self.bucket, key).await?.map(|raw| State {
            expired: ttl::is_expired(&raw.info.metadata, now),
            raw,
        }))
    }

    fn decode(&self, id: &str, raw: Raw) -> Result<Versioned<T>> {
        let value = serde_json::from_slice(&raw.bytes).map_err(|e| StorageError::Corrupt {
            backend: self.bucket.name().to_string(),
            key: raw.info.key.clone(),
            reason: format!(
                "not a JSON document of type {}: {e}",
                std::any::type_name::<T>()
            ),
        })?;
        Ok(Versioned {
            id: id.to_string(),
            key: raw.info.key.clone(),
            value,
            etag: raw.etag,
            version: raw.info.version.clone(),
            last_modified: raw.info.last_modified,
            expires_at: ttl::expires_at(&raw.info.metadata),
            metadata: user_metadata(&raw.info.metadata),
        })
    }

    fn encode(&self, value: &T) -> Result<bytes::Bytes> {
        serde_json::to_vec(value).map(Into::into).map_err(|e| {
            StorageError::invalid_input("value", format!("cannot encode as JSON: {e}"))
        })
    }

    /// The expiry of a write with `ttl`; a TTL that cannot be recorded and read back (under
    /// a second, or past the year 9999) is refused before anything is written.
    fn expiry_for(&self, ttl: Ttl) -> Result<Option<DateTime<Utc>>> {
        let ttl = match ttl {
            Ttl::CollectionDefault => match self.default_ttl {
                Some(d) => d,
                None => return Ok(None),
            },
            Ttl::Never => return Ok(None),
            Ttl::After(d) => d,
        };
        ttl::checked_expiry(self.clock.now(), ttl).map(Some)
    }

    fn metadata_for(
        &self,
        base: BTreeMap<String, String>,
        opts: &WriteOpts,
    ) -> Result<MetadataAndExpiry> {
        let mut meta = base;
        meta.extend(
            opts.metadata
                .iter()
                .filter(|(k, _)| !k.starts_with("strata-"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let expires = self.expiry_for(opts.ttl)?;
        if let Some(at) = expires {
            meta.insert(EXPIRES_AT_META.to_string(), ttl::format_expiry(at));
        }
        Ok((meta, expires))
    }

    async fn write_value(
        &self,
        key: &Key,
        value: &T,
        condition: WriteCondition,
        opts: &WriteOpts,
        base_meta: BTreeMap<String, String>,
        previous: Option<&ObjectInfo>,
    ) -> Result<Written> {
        let body = self.encode(value)?;
        let (metadata, expires_at) = self.metadata_for(base_meta, opts)?;
        let c = write::write(
            &self.bucket,
            WriteRequest {
                key,
                body,
                condition,
                metadata,
                content_type: Some(JSON_CONTENT_TYPE),
                previous,
            },
        )
        .await?;
        Ok(Written {
            etag: c.etag,
            version: c.version,
            expires_at,
            superseded: c.superseded,
        })
    }

    /// Read document `id`. Absent and expired documents are `None`.
    pub async fn get(&self, id: &str) -> Result<Option<Versioned<T>>> {
        let key = self.key_for(id)?;
        match self.read_state(&key).await? {
            Some(s) if !s.expired => self.decode(id, s.raw).map(Some),
            _ => Ok(None),
        }
    }

    /// Read document `id`, reporting an expired one as [`StorageError::Expired`] instead of
    /// `None`.
    pub async fn get_checked(&self, id: &str) -> Result<Option<Versioned<T>>> {
        let key = self.key_for(id)?;
        match self.read_state(&key).await? {
            None => Ok(None),
            Some(s) if s.expired => Err(StorageError::Expired {
                backend: self.bucket.name().to_string(),
                key: key.to_string(),
                expired_at: ttl::expires_at(&s.raw.info.metadata)
                    .map(ttl::format_expiry)
                    .unwrap_or_default(),
            }),
            Some(s) => self.decode(id, s.raw).map(Some),
        }
    }

    /// Read document `id` even if it has expired (see [`Versioned::expires_at`]).
    pub async fn get_including_expired(&self, id: &str) -> Result<Option<Versioned<T>>> {
        let key = self.key_for(id)?;
        match self.read_state(&key).await? {
            Some(s) => self.decode(id, s.raw).map(Some),
            None => Ok(None),
        }
    }

    /// Whether document `id` exists and has not expired (one HEAD request).
    pub async fn exists(&self, id: &str) -> Result<bool> {
        let key = self.key_for(id)?;
        Ok(self
            .bucket
            .head_if_exists(key.as_str())
            .await?
            .is_some_and(|info| !ttl::is_expired(&info.metadata, self.clock.now())))
    }

    /// Write document `id` unconditionally (last writer wins), with the default TTL.
    pub async fn put(&self, id: &str, value: &T) -> Result<Written> {
        self.put_with(id, value, &WriteOpts::default()).await
    }

    /// Write document `id` unconditionally with options.
    pub async fn put_with(&self, id: &str, value: &T, opts: &WriteOpts) -> Result<Written> {
        let key = self.key_for(id)?;
        self.write_value(
            &key,
            value,
            WriteCondition::Overwrite,
            opts,
            BTreeMap::new(),
            None,
        )
        .await
    }

    /// Create document `id`; an existing live document is [`StorageError::AlreadyExists`].
    /// An expired document counts as absent and is replaced (atomically: if another writer
    /// replaces it first, this is `AlreadyExists`).
    pub async fn create(&self, id: &str, value: &T) -> Result<Written> {
        self.create_with(id, value, &WriteOpts::default()).await
    }

    /// [`create`](Self::create) with options.
    pub async fn create_with(&self, id: &str, value: &T, opts: &WriteOpts) -> Result<Written> {
        let key = self.key_for(id)?;
        match self
            .write_value(
                &key,
                value,
                WriteCondition::IfAbsent,
                opts,
                BTreeMap::new(),
                None,
            )
            .await
        {
            Err(StorageError::AlreadyExists { backend, key: k }) => {
                // Replace an expired document, but only that exact object.
                match self.read_state(&key).await? {
                    Some(s) if s.expired => {
                        let cond = WriteCondition::IfMatch {
                            etag: s.raw.etag.clone(),
                            version: None,
                        };
                        self.write_value(
                            &key,
                            value,
                            cond,
                            opts,
                            BTreeMap::new(),
                            Some(&s.raw.info),
                        )
                        .await
                        .map_err(|e| match e {
                            StorageError::Precondition { backend, key, .. } => {
                                StorageError::AlreadyExists { backend, key }
                            }
                            other => other,
                        })
                    }
                    _ => Err(StorageError::AlreadyExists { backend, key: k }),
                }
            }
            other => other,
        }
    }

    /// Replace document `id` only if its ETag is still `etag` (from [`get`](Self::get));
    /// otherwise [`StorageError::Precondition`].
    pub async fn put_if_match(&self, id: &str, value: &T, etag: &str) -> Result<Written> {
        self.put_if_match_with(id, value, etag, &WriteOpts::default())
            .await
    }

    /// [`put_if_match`](Self::put_if_match) with options.
    pub async fn put_if_match_with(
        &self,
        id: &str,
        value: &T,
        etag: &str,
        opts: &WriteOpts,
    ) -> Result<Written> {
        let key = self.key_for(id)?;
        let cond = WriteCondition::IfMatch {
            etag: etag.to_string(),
            version: None,
        };
        self.write_value(&key, value, cond, opts, BTreeMap::new(), None)
            .await
    }

    /// Delete document `id` unconditionally (its attachments stay; see
    /// [`delete_with_attachments`](Self::delete_with_attachments)). Deleting a missing
    /// document succeeds.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let key = self.key_for(id)?;
        self.bucket.delete(key.as_str()).await
    }

    /// Delete document `id` only if its ETag is still `etag`: atomic on backends with a
    /// conditional delete (memory, local folder, S3 with conditional deletes); elsewhere
    /// [`StorageError::NotSupported`],
    /// never a silent unconditional delete. A changed document is
    /// [`StorageError::Precondition`], a missing one [`StorageError::NotFound`].
    pub async fn delete_if_match(&self, id: &str, etag: &str) -> Result<()> {
        let key = self.key_for(id)?;
        write::delete_if_match(&self.bucket, &key, etag).await
    }

    /// Ids of the stored documents, streamed (in no particular order). Expired documents
    /// that have not been swept yet are included: checking each would cost a request per
    /// document (use [`exists`](Self::exists) or [`get`](Self::get) on each, or
    /// [`sweep`](Self::sweep) first).
    pub fn list(&self) -> BoxStream<'static, Result<String>> {
        self.list_in("")
    }

    /// Ids whose leading parts are `parent` (e.g. the messages of thread `t1` under
    /// `messages/{thread}/{id}.json`: `list_in("t1")`).
    pub fn list_in(&self, parent: &str) -> BoxStream<'static, Result<String>> {
        let prefix = match self.scheme.list_prefix(parent) {
            Ok(p) => p,
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let scheme = self.scheme.clone();
        let parent = if parent.is_empty() {
            String::new()
        } else {
            format!("{parent}/")
        };
        self.bucket
            .list(&prefix)
            .filter_map(move |r| {
                let out = match r {
                    Ok(info) => scheme
                        .id_of(&info.key)
                        .filter(|id| id.starts_with(&parent))
                        .map(Ok),
                    Err(e) => Some(Err(e)),
                };
                futures::future::ready(out)
            })
            .boxed()
    }

    /// Read-modify-write document `id` until it commits, with the collection's
    /// [`BackoffStrategy`] and the default write options.
    ///
    /// Each round reads the document, calls `f` with its value (`None` when absent or
    /// expired), and writes the result conditionally: create-if-absent when the document
    /// was absent, put-if-match on the ETag just read otherwise (so an expired document is
    /// replaced, not duplicated). If another writer got there first
    /// ([`Precondition`](StorageError::Precondition), [`AlreadyExists`](StorageError::AlreadyExists),
    /// S3's 409 ConditionalRequestConflict) the round is repeated after a backoff delay with
    /// fresh state: `f` may be called several times and must not have side effects that
    /// cannot be repeated.
    ///
    /// `f` returning `Ok(None)` means "delete": a live document is deleted with
    /// delete-if-match (so a concurrent change is not lost; needs a conditional-delete
    /// backend, else [`StorageError::NotSupported`]); an absent or expired document is left
    /// as it is ([`UpdateAction::Unchanged`]). `f` returning `Err` stops the loop and
    /// returns that error.
    ///
    /// When the strategy is exhausted the result is [`StorageError::Conflict`] with the
    /// attempts made and the last ETag seen. Transient read failures are retried under the
    /// same budget; a write whose response was lost is resolved by its write id, never
    /// applied twice (see the crate docs), or, when that can no longer be decided, reported
    /// as [`StorageError::Ambiguous`] without being repeated.
    ///
    /// Calls on the same document from clones of this collection take turns (see
    /// [`with_local_queue`](Self::with_local_queue)).
    pub async fn update_with<F>(&self, id: &str, f: F) -> Result<Updated<T>>
    where
        F: FnMut(Option<T>) -> Result<Option<T>>,
    {
        self.update_with_opts(id, &WriteOpts::default(), f).await
    }

    /// [`update_with`](Self::update_with) with write options (TTL, extra metadata).
    pub async fn update_with_opts<F>(
        &self,
        id: &str,
        opts: &WriteOpts,
        mut f: F,
    ) -> Result<Updated<T>>
    where
        F: FnMut(Option<T>) -> Result<Option<T>>,
    {
        let key = self.key_for(id)?;
        let mut rounds = Rounds::start(&self.bucket, &key, self.queue, &self.backoff).await;
        let mut last_etag: Option<String> = None;
        let unsettled = loop {
            let attempts = rounds.next();
            match self
                .update_round(id, &key, opts, &mut f, attempts, &mut last_etag)
                .await
            {
                Ok(done) => return Ok(done),
                Err(e) => {
                    if let Err(end) = rounds.after(e).await {
                        break end;
                    }
                }
            }
        };
        match unsettled {
            Unsettled::Failed(e) => Err(e),
            Unsettled::Contended { attempts } => Err(StorageError::Conflict {
                backend: self.bucket.name().to_string(),
                key: key.to_string(),
                attempts,
                last_etag,
            }),
        }
    }

    async fn update_round<F>(
        &self,
        id: &str,
        key: &Key,
        opts: &WriteOpts,
        f: &mut F,
        attempts: u32,
        last_etag: &mut Option<String>,
    ) -> Result<Updated<T>, RoundError>
    where
        F: FnMut(Option<T>) -> Result<Option<T>>,
    {
        let state = self.read_state(key).await?;
        *last_etag = state.as_ref().map(|s| s.raw.etag.clone());
        let (current, live_meta) = match &state {
            Some(s) if !s.expired => {
                let v = self.decode(id, s.raw.clone())?;
                (Some(v.value), user_metadata(&s.raw.info.metadata))
            }
            _ => (None, BTreeMap::new()),
        };
        let was_live = current.is_some();
        let next = f(current).map_err(RoundError::Final)?;
        let previous_etag = state.as_ref().map(|s| s.raw.etag.clone());
        match (next, &state) {
            (None, Some(s)) if was_live => {
                write::delete_if_match(&self.bucket, key, &s.raw.etag).await?;
                Ok(Updated {
                    value: None,
                    etag: None,
                    previous_etag,
                    attempts,
                    action: UpdateAction::Deleted,
                })
            }
            (None, _) => Ok(Updated {
                value: None,
                etag: None,
                previous_etag: None,
                attempts,
                action: UpdateAction::Unchanged,
            }),
            (Some(value), _) => {
                let (condition, previous) = match &state {
                    None => (WriteCondition::IfAbsent, None),
                    Some(s) => (
                        WriteCondition::IfMatch {
                            etag: s.raw.etag.clone(),
                            version: None,
                        },
                        Some(&s.raw.info),
                    ),
                };
                let w = self
                    .write_value(key, &value, condition, opts, live_meta, previous)
                    .await?;
                Ok(Updated {
                    value: Some(value),
                    etag: w.etag,
                    previous_etag,
                    attempts,
                    action: if was_live {
                        UpdateAction::Replaced
                    } else {
                        UpdateAction::Created
                    },
                })
            }
        }
    }
}

/// Names of Strata's own metadata entries on documents.
pub const RESERVED_METADATA: [&str; 3] = [EXPIRES_AT_META, WRITE_ID_META, WRITE_LOG_META];

/// A write's user metadata, and its expiry if it has a TTL.
type MetadataAndExpiry = (BTreeMap<String, String>, Option<DateTime<Utc>>);
