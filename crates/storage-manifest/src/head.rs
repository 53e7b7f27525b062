//! The manifest head: a small JSON document updated by compare-and-swap on its ETag.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use storage_cas::{BackoffStrategy, Collection, Jitter};
use storage_core::{Bucket, Result, StorageError};

/// Version of the head document's layout.
pub const HEAD_FORMAT: u32 = 1;

/// An immutable JSONL segment listed by the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    /// Object key of the segment.
    pub key: String,
    /// Entries in it.
    pub entries: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// An immutable compacted part listed by the head: Parquet, or JSONL when a build without the
/// `parquet` feature compacted (the key's extension tells which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// Object key of the part (`.parquet` or `.jsonl`).
    pub key: String,
    /// Entries (rows) in it.
    pub entries: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Earliest `min_time` of its entries.
    pub min_time: Option<DateTime<Utc>>,
    /// Latest `max_time` of its entries.
    pub max_time: Option<DateTime<Utc>>,
    /// Length of a Parquet part's footer (metadata, its length and the magic), so a reader
    /// fetches it with one exact ranged GET. Absent in heads written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer_bytes: Option<u64>,
}

/// The head of one manifest: which parts and segments make it up, oldest first.
///
/// Only the head is ever rewritten, and only by compare-and-swap; segments and parts are
/// written once (create-if-absent) and deleted only after a head that no longer lists them has
/// been stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestHead {
    /// Layout version ([`HEAD_FORMAT`]).
    pub format: u32,
    /// Compacted parts, oldest first.
    pub parts: Vec<PartRef>,
    /// JSONL segments appended since the last compaction, oldest first.
    pub segments: Vec<SegmentRef>,
    /// When the head was last stored.
    pub updated: DateTime<Utc>,
}

impl Default for ManifestHead {
    fn default() -> Self {
        ManifestHead {
            format: HEAD_FORMAT,
            parts: Vec::new(),
            segments: Vec::new(),
            updated: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

impl ManifestHead {
    /// Entries listed (duplicates by key included).
    pub fn entries(&self) -> u64 {
        self.parts.iter().map(|p| p.entries).sum::<u64>()
            + self.segments.iter().map(|s| s.entries).sum::<u64>()
    }
}

/// The default retry policy for head updates: many writers may append to one manifest at
/// once, so it retries often, starting small, with full jitter.
pub const HEAD_BACKOFF: BackoffStrategy =
    BackoffStrategy::custom(200, Duration::from_millis(2), Duration::from_millis(200))
        .with_jitter(Jitter::Full);

/// Heads of every manifest in a bucket, as a `storage-cas` collection keyed
/// `manifests/{module}/{user}/head.json` (id `module/user`).
pub(crate) fn head_collection(
    bucket: &Bucket,
    backoff: BackoffStrategy,
) -> Result<Collection<ManifestHead>> {
    Ok(Collection::new(bucket, "manifests/{module}/{user}/head.json")?.with_backoff(backoff))
}

fn check_format(bucket: &Bucket, key: &str, head: &ManifestHead) -> Result<()> {
    if head.format > HEAD_FORMAT {
        return Err(StorageError::Corrupt {
            backend: bucket.name().to_string(),
            key: key.to_string(),
            reason: format!(
                "manifest head format {} is newer than this library understands ({HEAD_FORMAT}); upgrade storage-manifest",
                head.format
            ),
        });
    }
    Ok(())
}

/// The head a [`Manifest`](crate::Manifest) handle (and its clones) read last, with its ETag:
/// the next read asks the store for the head only if that ETag changed (a conditional GET
/// answered "not modified" carries no body).
#[derive(Debug, Default)]
pub(crate) struct HeadCache(Mutex<Option<(String, ManifestHead)>>);

impl HeadCache {
    fn get(&self) -> Option<(String, ManifestHead)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, value: Option<(String, ManifestHead)>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = value;
    }
}

/// Read head `id` (`module/user`), revalidating `cache` by ETag; an empty head when there is
/// none yet.
pub(crate) async fn read_head(
    heads: &Collection<ManifestHead>,
    id: &str,
    cache: &HeadCache,
) -> Result<ManifestHead> {
    let bucket = heads.bucket();
    let key = heads.key_for(id)?;
    let read = match cache.get() {
        Some((etag, head)) if bucket.capabilities().get_if_none_match => {
            match bucket.get_if_none_match(key.as_str(), &etag).await {
                Ok(None) => return Ok(head),
                Ok(Some(obj)) => Ok(obj),
                Err(e) => Err(e),
            }
        }
        _ => bucket.get(key.as_str()).await,
    };
    let obj = match read {
        Ok(obj) => obj,
        Err(e) if e.is_not_found() => {
            cache.set(None);
            return Ok(ManifestHead::default());
        }
        Err(e) => return Err(e),
    };
    let head: ManifestHead =
        serde_json::from_slice(&obj.bytes).map_err(|e| StorageError::Corrupt {
            backend: bucket.name().to_string(),
            key: key.to_string(),
            reason: format!("not a manifest head: {e}"),
        })?;
    check_format(bucket, key.as_str(), &head)?;
    cache.set(obj.info.etag.map(|etag| (etag, head.clone())));
    Ok(head)
}

/// Apply `change` to head `id` with `storage-cas`'s read-modify-write loop: compare-and-swap
/// on the head's ETag (create-if-absent for a new manifest), re-read and re-applied after a
/// backoff whenever another writer won the race. `change` may run several times. Returns the
/// head that was stored.
pub(crate) async fn update_head<F>(
    heads: &Collection<ManifestHead>,
    id: &str,
    mut change: F,
) -> Result<ManifestHead>
where
    F: FnMut(&mut ManifestHead) -> Result<()>,
{
    let bucket = heads.bucket().clone();
    let updated = heads
        .update_with(id, |current| {
            let mut head = current.unwrap_or_default();
            check_format(&bucket, id, &head)?;
            change(&mut head)?;
            head.updated = Utc::now();
            Ok(Some(head))
        })
        .await?;
    Ok(updated.value.unwrap_or_default())
}
