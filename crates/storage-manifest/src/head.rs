//! The manifest head: a small JSON document updated by compare-and-swap on its ETag.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use storage_core::{Bucket, PutOpts, Result, StorageError};

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

/// An immutable compacted Parquet part listed by the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// Object key of the Parquet file.
    pub key: String,
    /// Entries (rows) in it.
    pub entries: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// Earliest `min_time` of its entries.
    pub min_time: Option<DateTime<Utc>>,
    /// Latest `max_time` of its entries.
    pub max_time: Option<DateTime<Utc>>,
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
    /// Compacted Parquet parts, oldest first.
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

/// Retry budget for head updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasRetry {
    /// Attempts before giving up with [`StorageError::Conflict`].
    pub max_attempts: u32,
    /// First backoff delay; doubles per attempt (with full jitter) up to `max_delay`.
    pub base_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
}

impl Default for CasRetry {
    fn default() -> Self {
        CasRetry {
            max_attempts: 200,
            base_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(200),
        }
    }
}

impl CasRetry {
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        // Full jitter: writers that collided spread out instead of colliding again.
        exp.mul_f64(fastrand::f64())
    }
}

/// Read the head at `key`: the document and its ETag (`None` when there is no head yet).
pub(crate) async fn read_head(bucket: &Bucket, key: &str) -> Result<(ManifestHead, Option<String>)> {
    match bucket.get(key).await {
        Ok(obj) => {
            let head: ManifestHead =
                serde_json::from_slice(&obj.bytes).map_err(|e| StorageError::Corrupt {
                    backend: bucket.name().to_string(),
                    key: key.to_string(),
                    reason: format!("manifest head is not valid JSON: {e}"),
                })?;
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
            let etag = obj.info.etag.ok_or_else(|| {
                StorageError::not_supported(bucket.name(), "ETags on reads (needed for manifest compare-and-swap)")
            })?;
            Ok((head, Some(etag)))
        }
        Err(e) if e.is_not_found() => Ok((ManifestHead::default(), None)),
        Err(e) => Err(e),
    }
}

/// Apply `change` to the head at `key` with compare-and-swap: read, change, write if the
/// ETag is unchanged (or create if absent), and on a lost race re-read and re-apply after a
/// jittered backoff. `change` returns `false` to leave the head as it is. Returns the head
/// that was stored (or found, when nothing changed).
pub(crate) async fn update_head<F>(
    bucket: &Bucket,
    key: &str,
    retry: CasRetry,
    mut change: F,
) -> Result<ManifestHead>
where
    F: FnMut(&mut ManifestHead) -> Result<bool>,
{
    let mut last_etag = None;
    for attempt in 0..retry.max_attempts.max(1) {
        let (mut head, etag) = read_head(bucket, key).await?;
        if !change(&mut head)? {
            return Ok(head);
        }
        head.updated = Utc::now();
        let body = serde_json::to_vec(&head).expect("head serializes");
        let opts = match &etag {
            Some(etag) => PutOpts::if_match(etag.clone()),
            None => PutOpts::if_absent(),
        }
        .with_content_type("application/json");
        match bucket.put_with(key, body, opts).await {
            Ok(_) => return Ok(head),
            // Precondition: someone replaced the head; AlreadyExists: someone created it;
            // NotFound: S3 answers If-Match on a key deleted meanwhile this way.
            Err(e) if e.is_conflict() || e.is_not_found() => {
                tracing::debug!(key, attempt, "manifest head changed underneath us; retrying");
                last_etag = etag;
                tokio::time::sleep(retry.delay(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Conflict {
        backend: bucket.name().to_string(),
        key: key.to_string(),
        attempts: retry.max_attempts,
        last_etag,
    })
}
