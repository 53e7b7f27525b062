//! Versioned records (seed 004): a mutable head plus immutable numbered versions.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use storage_core::{Bucket, Key, Result, StorageError, WriteCondition};

use crate::collection::{JSON_CONTENT_TYPE, delete_all, require_cas};
use crate::rounds::{RoundError, Rounds, Unsettled};
use crate::scheme::KeyScheme;
use crate::ttl::{Clock, SystemClock};
use crate::write::{self, Raw, WriteRequest};
use storage_core::backoff::BackoffStrategy;

/// Where heads and versions live. Placeholders: `{collection}` (substituted once),
/// the id placeholders (the same in both templates), and `{version}` in the last segment
/// of `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLayout {
    /// Head template (default seed 004's `records/{collection}/{id}/head.json`).
    pub head: String,
    /// Version template (default seed 004's `versions/{collection}/{id}/v{version}.json`).
    pub version: String,
}

impl Default for RecordLayout {
    fn default() -> Self {
        RecordLayout {
            head: "records/{collection}/{id}/head.json".into(),
            version: "versions/{collection}/{id}/v{version}.json".into(),
        }
    }
}

/// What is stored in `head.json` and each `v{n}.json`.
#[derive(Serialize, Deserialize)]
struct Envelope<V> {
    version: u64,
    committed_at: DateTime<Utc>,
    value: V,
}

#[derive(Deserialize)]
struct HeadVersion {
    version: u64,
}

/// One version of a record, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<T> {
    /// Record id.
    pub id: String,
    /// Version number (0 for the first commit).
    pub version: u64,
    /// When that version was committed (committer's clock).
    pub committed_at: DateTime<Utc>,
    /// The value.
    pub value: T,
    /// ETag of the object it was read from.
    pub etag: String,
}

/// Result of [`VersionedRecords::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The version number this commit got.
    pub version: u64,
    /// ETag of the immutable version object.
    pub etag: String,
    /// Rounds it took (1 = uncontended).
    pub attempts: u32,
}

/// One entry of [`VersionedRecords::history`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag.
    pub etag: Option<String>,
    /// When the object was written.
    pub last_modified: DateTime<Utc>,
}

/// Records with full history: `commit` writes the next immutable version with
/// create-if-absent and then moves the head forward with compare-and-swap.
///
/// Two concurrent committers can never get the same version number (the version object is
/// created only if absent) and never lose one: a committer that finds its number taken
/// first helps the other commit by moving the head to it, then takes the next number. A
/// committer that stops between the two writes leaves a version the head does not point
/// at yet; the next commit moves the head past it, and [`history`](Self::history) lists it.
///
/// ```
/// use storage_cas::VersionedRecords;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let bucket = storage_core::Bucket::memory("m");
/// let users: VersionedRecords<String> = VersionedRecords::new(&bucket, "users")?;
/// assert_eq!(users.commit("42", &"Ada".to_string()).await?.version, 0);
/// assert_eq!(users.commit("42", &"Ada L.".to_string()).await?.version, 1);
/// assert_eq!(users.get("42").await?.unwrap().value, "Ada L.");
/// assert_eq!(users.history("42").await?.len(), 2);
/// assert_eq!(users.revert("42", 0).await?.version, 2);
/// assert_eq!(users.get("42").await?.unwrap().value, "Ada");
/// assert!(bucket.exists("versions/users/42/v1.json").await?);
/// # Ok(()) }
/// ```
pub struct VersionedRecords<T> {
    heads: Bucket,
    versions: Bucket,
    collection: String,
    head_scheme: Arc<KeyScheme>,
    version_scheme: Arc<KeyScheme>,
    backoff: BackoffStrategy,
    clock: Arc<dyn Clock>,
    queue: bool,
    _marker: PhantomData<fn() -> T>,
}

impl<T> Clone for VersionedRecords<T> {
    fn clone(&self) -> Self {
        VersionedRecords {
            heads: self.heads.clone(),
            versions: self.versions.clone(),
            collection: self.collection.clone(),
            head_scheme: self.head_scheme.clone(),
            version_scheme: self.version_scheme.clone(),
            backoff: self.backoff,
            clock: self.clock.clone(),
            queue: self.queue,
            _marker: PhantomData,
        }
    }
}

impl<T> fmt::Debug for VersionedRecords<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VersionedRecords")
            .field("collection", &self.collection)
            .field("head", &self.head_scheme.template())
            .field("version", &self.version_scheme.template())
            .finish_non_exhaustive()
    }
}

const VERSION_FIELD: &str = "version";

impl<T> VersionedRecords<T>
where
    T: Serialize + DeserializeOwned + Send,
{
    /// Records of `collection` in `bucket` with seed 004's layout.
    pub fn new(bucket: &Bucket, collection: &str) -> Result<Self> {
        Self::with_layout(bucket, bucket, collection, &RecordLayout::default())
    }

    /// Heads in `heads`, versions in `versions` (seed 004 keeps them in separate buckets,
    /// versions on a cheaper storage class), with `layout`.
    pub fn with_layout(
        heads: &Bucket,
        versions: &Bucket,
        collection: &str,
        layout: &RecordLayout,
    ) -> Result<Self> {
        require_cas(heads)?;
        require_cas(versions)?;
        if collection.is_empty()
            || collection.contains('/')
            || collection.contains(['{', '}'])
            || collection == "."
            || collection == ".."
            || collection.chars().any(char::is_control)
        {
            return Err(StorageError::invalid_input(
                "collection",
                format!(
                    "`{}` is not a valid collection name: it must be one non-empty path segment without braces",
                    collection.escape_debug()
                ),
            ));
        }
        let head_scheme = KeyScheme::new(&layout.head.replace("{collection}", collection))?;
        let version_scheme = KeyScheme::new(&layout.version.replace("{collection}", collection))?;
        let vf = version_scheme.fields();
        let last_segment = layout.version.rsplit('/').next().unwrap_or_default();
        if vf.last().map(String::as_str) != Some(VERSION_FIELD)
            || !last_segment.contains("{version}")
            || vf[..vf.len() - 1] != *head_scheme.fields()
        {
            return Err(StorageError::invalid_config(
                format!("record layout `{}` / `{}`", layout.head, layout.version),
                format!(
                    "the version template must have the head's placeholders ({}) followed by `{{version}}` in its last segment",
                    head_scheme.id_form()
                ),
            ));
        }
        Ok(VersionedRecords {
            heads: heads.clone(),
            versions: versions.clone(),
            collection: collection.to_string(),
            head_scheme: Arc::new(head_scheme),
            version_scheme: Arc::new(version_scheme),
            backoff: BackoffStrategy::AGGRESSIVE,
            clock: Arc::new(SystemClock),
            queue: true,
            _marker: PhantomData,
        })
    }

    /// Retry policy of [`commit`](Self::commit) (default [`BackoffStrategy::AGGRESSIVE`]).
    pub fn with_backoff(mut self, backoff: BackoffStrategy) -> Self {
        self.backoff = backoff;
        self
    }

    /// Queue commits to the same record inside this process (default on; shared by every
    /// record set over the same store); off, every commit races on compare-and-swap alone. See
    /// [`Collection::with_local_queue`](crate::Collection::with_local_queue).
    pub fn with_local_queue(mut self, on: bool) -> Self {
        self.queue = on;
        self
    }

    /// Clock for `committed_at`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Collection name.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Key of the head of record `id`.
    pub fn head_key(&self, id: &str) -> Result<Key> {
        self.head_scheme.key_for(id)
    }

    /// Key of version `n` of record `id`.
    pub fn version_key(&self, id: &str, n: u64) -> Result<Key> {
        self.head_scheme.key_for(id)?; // validates the id alone, for a clearer error
        self.version_scheme.key_for(&format!("{id}/{n}"))
    }

    fn decode(&self, id: &str, raw: Raw) -> Result<Record<T>> {
        let env: Envelope<T> =
            serde_json::from_slice(&raw.bytes).map_err(|e| StorageError::Corrupt {
                backend: self.heads.name().to_string(),
                key: raw.info.key.clone(),
                reason: format!(
                    "not a record version of type {}: {e}",
                    std::any::type_name::<T>()
                ),
            })?;
        Ok(Record {
            id: id.to_string(),
            version: env.version,
            committed_at: env.committed_at,
            value: env.value,
            etag: raw.etag,
        })
    }

    fn head_version(&self, raw: &Raw) -> Result<u64> {
        serde_json::from_slice::<HeadVersion>(&raw.bytes)
            .map(|h| h.version)
            .map_err(|e| StorageError::Corrupt {
                backend: self.heads.name().to_string(),
                key: raw.info.key.clone(),
                reason: format!("record head without a version number: {e}"),
            })
    }

    /// The current (head) version of record `id`.
    pub async fn get(&self, id: &str) -> Result<Option<Record<T>>> {
        let key = self.head_key(id)?;
        match write::read(&self.heads, &key).await? {
            Some(raw) => self.decode(id, raw).map(Some),
            None => Ok(None),
        }
    }

    /// Version `n` of record `id`.
    pub async fn get_version(&self, id: &str, n: u64) -> Result<Option<Record<T>>> {
        let key = self.version_key(id, n)?;
        match write::read(&self.versions, &key).await? {
            Some(raw) => self.decode(id, raw).map(Some),
            None => Ok(None),
        }
    }

    /// Every stored version of record `id`, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<VersionInfo>> {
        self.head_key(id)?;
        let prefix = self.version_scheme.list_prefix(id)?;
        let scheme = self.version_scheme.clone();
        let want = format!("{id}/");
        let mut out: Vec<VersionInfo> = self
            .versions
            .list(&prefix)
            .try_filter_map(|o| {
                let n = scheme
                    .id_of(&o.key)
                    .and_then(|vid| vid.strip_prefix(&want).map(str::to_string))
                    .and_then(|n| n.parse::<u64>().ok().filter(|v| v.to_string() == n));
                futures::future::ready(Ok(n.map(|version| VersionInfo {
                    version,
                    key: o.key,
                    size: o.size,
                    etag: o.etag,
                    last_modified: o.last_modified,
                })))
            })
            .try_collect()
            .await?;
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    /// Commit `value` as the next version of record `id`.
    ///
    /// Fails with [`StorageError::Conflict`] only when the backoff strategy runs out while
    /// other committers keep taking the next number.
    pub async fn commit(&self, id: &str, value: &T) -> Result<Commit> {
        let head_key = self.head_key(id)?;
        let mut rounds = Rounds::start(&self.heads, &head_key, self.queue, &self.backoff).await;
        let unsettled = loop {
            let attempts = rounds.next();
            match self.commit_round(id, &head_key, value).await {
                Ok((version, etag)) => {
                    return Ok(Commit {
                        version,
                        etag,
                        attempts,
                    });
                }
                Err(e) => {
                    if let Err(end) = rounds.after(e).await {
                        break end;
                    }
                }
            }
        };
        match unsettled {
            Unsettled::Failed(e) => Err(e),
            Unsettled::Contended { attempts } => {
                let last_etag = self
                    .heads
                    .head_if_exists(head_key.as_str())
                    .await
                    .ok()
                    .flatten()
                    .and_then(|i| i.etag);
                Err(StorageError::Conflict {
                    backend: self.versions.name().to_string(),
                    key: head_key.to_string(),
                    attempts,
                    last_etag,
                })
            }
        }
    }

    /// One round: take the number after the head's, or help whoever holds it. A final error
    /// comes after our version was written: repeating the round would commit it twice.
    async fn commit_round(
        &self,
        id: &str,
        head_key: &Key,
        value: &T,
    ) -> Result<(u64, String), RoundError> {
        let head = write::read(&self.heads, head_key).await?;
        let next = match &head {
            Some(raw) => self.head_version(raw)? + 1,
            None => 0,
        };
        let version_key = self.version_key(id, next)?;
        let body: bytes::Bytes = serde_json::to_vec(&Envelope {
            version: next,
            committed_at: self.clock.now(),
            value,
        })
        .map_err(|e| StorageError::invalid_input("value", format!("cannot encode as JSON: {e}")))?
        .into();
        let created = write::write(
            &self.versions,
            WriteRequest {
                key: &version_key,
                body: body.clone(),
                condition: WriteCondition::IfAbsent,
                metadata: Default::default(),
                content_type: Some(JSON_CONTENT_TYPE),
                previous: None,
            },
        )
        .await;
        match created {
            // A version is created once and never replaced, so its ETag is always known
            // (only a write superseded by another keeps none).
            Ok(c) => self
                .advance_head(head_key, next, body, head)
                .await
                .map(|()| (next, c.etag.unwrap_or_default()))
                .map_err(|e| {
                    RoundError::Final(StorageError::Backend {
                        backend: self.heads.name().to_string(),
                        status: None,
                        source: format!(
                            "committed version {next} of `{id}` but could not move the head to it ({e}); the version is stored and the next commit moves the head past it"
                        )
                        .into(),
                    })
                }),
            Err(StorageError::AlreadyExists { backend, key }) => {
                // Another committer holds `next`: make sure the head reaches it, then let
                // the caller retry with the number after.
                if let Some(theirs) = write::read(&self.versions, &version_key).await? {
                    self.advance_head(head_key, next, theirs.bytes, head).await?;
                }
                Err(StorageError::AlreadyExists { backend, key }.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Move the head to version `target` (whose bytes are `body`) unless it is already
    /// there or beyond. The head only ever moves forward.
    async fn advance_head(
        &self,
        head_key: &Key,
        target: u64,
        body: bytes::Bytes,
        mut observed: Option<Raw>,
    ) -> Result<()> {
        let started = tokio::time::Instant::now();
        let mut transient = 0u32;
        loop {
            if let Some(h) = &observed
                && self.head_version(h)? >= target
            {
                return Ok(());
            }
            let condition = match &observed {
                Some(h) => WriteCondition::IfMatch {
                    etag: h.etag.clone(),
                    version: None,
                },
                None => WriteCondition::IfAbsent,
            };
            let r = write::write(
                &self.heads,
                WriteRequest {
                    key: head_key,
                    body: body.clone(),
                    condition,
                    metadata: Default::default(),
                    content_type: Some(JSON_CONTENT_TYPE),
                    previous: observed.as_ref().map(|h| &h.info),
                },
            )
            .await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() => match write::read(&self.heads, head_key).await {
                    Ok(h) => observed = h,
                    Err(e) => self.pause_or_fail(e, &mut transient, started).await?,
                },
                Err(e) => self.pause_or_fail(e, &mut transient, started).await?,
            }
        }
    }

    /// Sleep before retrying after a transient error, or give the error back.
    async fn pause_or_fail(
        &self,
        e: StorageError,
        transient: &mut u32,
        started: tokio::time::Instant,
    ) -> Result<()> {
        *transient += 1;
        match e.is_retryable().then(|| {
            BackoffStrategy::STANDARD
                .with_max_retries(6)
                .next_delay(*transient, started.elapsed())
        }) {
            Some(Some(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            _ => Err(e),
        }
    }

    /// Commit the value of version `n` again, as a new version (history is never
    /// rewritten). A missing version is [`StorageError::NotFound`].
    pub async fn revert(&self, id: &str, n: u64) -> Result<Commit> {
        let old = self
            .get_version(id, n)
            .await?
            .ok_or_else(|| StorageError::NotFound {
                backend: self.versions.name().to_string(),
                key: self
                    .version_key(id, n)
                    .map(|k| k.to_string())
                    .unwrap_or_default(),
            })?;
        self.commit(id, &old.value).await
    }

    /// Delete record `id`: its head, then all its versions. Returns how many versions were
    /// deleted.
    pub async fn delete(&self, id: &str) -> Result<u64> {
        let head_key = self.head_key(id)?;
        self.heads.delete(head_key.as_str()).await?;
        let keys: Vec<String> = self.history(id).await?.into_iter().map(|v| v.key).collect();
        delete_all(&self.versions, &keys, |n| {
            format!("deleted the head and {n} versions of `{id}`")
        })
        .await
    }
}
