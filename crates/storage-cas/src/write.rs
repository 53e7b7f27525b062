//! Conditional writes whose lost answers are resolved, never guessed.
//!
//! A conditional write can time out or lose its connection after the server applied it. A
//! blind retry would then fail its own precondition (and the caller would re-apply its
//! change: a double increment) or, for create-if-absent, report `AlreadyExists` for its own
//! object. So every write made here carries a random write id in the object's user
//! metadata (`strata-write-id`), and the ids and ETags of the last [`WRITE_LOG_LEN`] writes
//! it replaced (`strata-write-log`, newest first; an entry marked `*` starts a chain: a
//! creation, an unconditional put or a foreign write). After an ambiguous failure the
//! writer HEADs the key:
//!
//! - the current object carries our write id → our write applied; its ETag is ours;
//! - our id is in the current object's write log → our write applied and was since
//!   replaced by another writer (who recorded our ETag);
//! - the precondition still holds (same ETag / still absent) → our write did not apply:
//!   send the same write again (same write id; it stays conditional, so a delayed copy of
//!   the first request can never apply a second time);
//! - the log shows who replaced the ETag we expected (or shows the whole chain since the
//!   document was created) and it was not us → another writer got there first: an
//!   ordinary conflict;
//! - otherwise more writes landed in between than the log remembers: the outcome cannot be
//!   known, and the write fails with [`StorageError::Ambiguous`] instead of being repeated.
//!
//! If after a retry the server answers with a conflict, the HEAD check runs again: the
//! first request may have landed in the meantime.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use storage_core::attrs::MAX_USER_METADATA_BYTES;
use storage_core::{
    Bucket, Key, ObjectInfo, PutOpts, Result, StorageError, WriteCondition, etag_eq,
};

use crate::backoff::{BackoffStrategy, Jitter};

/// User-metadata name of the id of the write that produced an object.
pub const WRITE_ID_META: &str = "strata-write-id";
/// User-metadata name of the ids and ETags of the writes an object replaced, newest first
/// (`id:etag,id:etag,...`; `*` before an id marks the start of a chain, `-` an object
/// written without an id).
pub const WRITE_LOG_META: &str = "strata-write-log";
/// How many replaced writes the log remembers: a write whose answer was lost is still
/// resolved when up to this many other writes landed between it and its HEAD check
/// (beyond that: [`StorageError::Ambiguous`]). About 50 bytes of metadata per entry on S3.
pub const WRITE_LOG_LEN: usize = 16;

/// Retries of one ambiguous write (each preceded by a HEAD check).
const AMBIGUITY_BACKOFF: BackoffStrategy =
    BackoffStrategy::custom(6, Duration::from_millis(20), Duration::from_secs(1))
        .with_jitter(Jitter::Equal);

/// An object read whole, with its ETag.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub bytes: Bytes,
    pub info: ObjectInfo,
    pub etag: String,
}

pub(crate) fn missing_etag(bucket: &Bucket, key: &Key) -> StorageError {
    StorageError::not_supported(
        bucket.name(),
        format!("compare-and-swap on `{key}`: the backend returned no ETag"),
    )
}

/// Read `key`; a missing object is `Ok(None)`.
pub(crate) async fn read(bucket: &Bucket, key: &Key) -> Result<Option<Raw>> {
    match bucket.get(key.as_str()).await {
        Ok(obj) => {
            let etag = obj
                .info
                .etag
                .clone()
                .ok_or_else(|| missing_etag(bucket, key))?;
            Ok(Some(Raw {
                bytes: obj.bytes,
                info: obj.info,
                etag,
            }))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// HEAD `key`; a missing object is `Ok(None)`.
pub(crate) async fn head(bucket: &Bucket, key: &Key) -> Result<Option<ObjectInfo>> {
    match bucket.head(key.as_str()).await {
        Ok(info) => Ok(Some(info)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A write that is known to have applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    /// ETag our write produced.
    pub etag: String,
    /// Version id, where the backend versions objects and it is known.
    pub version: Option<String>,
    /// Our write applied but another writer has replaced it since.
    pub superseded: bool,
}

fn new_write_id() -> String {
    format!("{:012x}", fastrand::u64(..1 << 48))
}

fn escape_etag(etag: &str) -> String {
    etag.replace('%', "%25").replace(',', "%2C")
}

fn unescape_etag(etag: &str) -> String {
    etag.replace("%2C", ",").replace("%25", "%")
}

/// One entry of an object's write log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogEntry {
    /// Write id (`-` for an object written without one).
    pub id: String,
    /// ETag of the object that write produced.
    pub etag: String,
    /// That object started its chain (it replaced nothing this log knows about).
    pub chain_start: bool,
}

/// The entries of an object's write log, newest first.
pub(crate) fn write_log(meta: &BTreeMap<String, String>) -> Vec<LogEntry> {
    meta.get(WRITE_LOG_META)
        .map(|log| {
            log.split(',')
                .filter_map(|e| e.split_once(':'))
                .map(|(id, etag)| {
                    let (chain_start, id) = match id.strip_prefix('*') {
                        Some(id) => (true, id),
                        None => (false, id),
                    };
                    LogEntry {
                        id: id.to_string(),
                        etag: unescape_etag(etag),
                        chain_start,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The log a write replacing `previous` should carry.
fn next_log(previous: Option<&ObjectInfo>) -> Vec<String> {
    let Some(prev) = previous else {
        return Vec::new();
    };
    let mut log = Vec::with_capacity(WRITE_LOG_LEN);
    if let Some(etag) = &prev.etag {
        let id = prev.metadata.get(WRITE_ID_META).map_or("-", String::as_str);
        let start = if prev.metadata.contains_key(WRITE_LOG_META) {
            ""
        } else {
            "*"
        };
        log.push(format!("{start}{id}:{}", escape_etag(etag)));
    }
    if let Some(old) = prev.metadata.get(WRITE_LOG_META) {
        log.extend(old.split(',').filter(|e| !e.is_empty()).map(str::to_string));
    }
    log.truncate(WRITE_LOG_LEN);
    log
}

/// One conditional write of a document-like object.
#[derive(Debug, Clone)]
pub(crate) struct WriteRequest<'a> {
    pub key: &'a Key,
    pub body: Bytes,
    pub condition: WriteCondition,
    /// User metadata (without Strata's write bookkeeping).
    pub metadata: BTreeMap<String, String>,
    pub content_type: Option<&'a str>,
    /// The object this write replaces, as last read (feeds the write log).
    pub previous: Option<&'a ObjectInfo>,
}

enum Probe {
    /// Our write applied.
    Applied(Committed),
    /// Our write did not apply and its precondition still holds: send it again.
    NotApplied,
    /// Our write did not apply and never will: another writer changed the object.
    Conflict(StorageError),
    /// The HEAD itself failed transiently.
    Unknown(StorageError),
    /// Too many writes landed in between: what happened cannot be known.
    Ambiguous(StorageError),
}

fn conflict_for(
    bucket: &Bucket,
    key: &Key,
    condition: &WriteCondition,
    detail: &str,
) -> StorageError {
    match condition {
        WriteCondition::IfAbsent => StorageError::AlreadyExists {
            backend: bucket.name().to_string(),
            key: key.to_string(),
        },
        _ => StorageError::Precondition {
            backend: bucket.name().to_string(),
            key: key.to_string(),
            detail: detail.to_string(),
        },
    }
}

async fn probe(bucket: &Bucket, key: &Key, write_id: &str, condition: &WriteCondition) -> Probe {
    let current = match head(bucket, key).await {
        Ok(c) => c,
        Err(e) if e.is_retryable() => return Probe::Unknown(e),
        Err(e) => return Probe::Conflict(e),
    };
    let Some(info) = current else {
        return match condition {
            WriteCondition::IfAbsent | WriteCondition::Overwrite => Probe::NotApplied,
            WriteCondition::IfMatch { .. } => Probe::Conflict(conflict_for(
                bucket,
                key,
                condition,
                "the object was deleted by another writer",
            )),
        };
    };
    if info.metadata.get(WRITE_ID_META).map(String::as_str) == Some(write_id) {
        return match info.etag {
            Some(etag) => Probe::Applied(Committed {
                etag,
                version: info.version,
                superseded: false,
            }),
            None => Probe::Conflict(missing_etag(bucket, key)),
        };
    }
    let log = write_log(&info.metadata);
    if let Some(entry) = log.iter().find(|e| e.id == write_id) {
        return Probe::Applied(Committed {
            etag: entry.etag.clone(),
            version: None,
            superseded: true,
        });
    }
    // Can the log tell who replaced what we expected? It can if it reaches back to the ETag
    // we matched on, or to the start of the chain.
    let start_visible =
        !info.metadata.contains_key(WRITE_LOG_META) || log.iter().any(|e| e.chain_start);
    let ambiguous = || {
        Probe::Ambiguous(StorageError::Ambiguous {
            backend: bucket.name().to_string(),
            key: key.to_string(),
            detail: format!(
                "the answer to a conditional write was lost and more than {WRITE_LOG_LEN} other writes landed before it could be checked, so it may or may not have been applied; it was not repeated. Read the document and decide"
            ),
        })
    };
    match condition {
        WriteCondition::Overwrite => Probe::NotApplied,
        WriteCondition::IfMatch { etag, .. }
            if info.etag.as_deref().is_some_and(|e| etag_eq(e, etag)) =>
        {
            Probe::NotApplied
        }
        WriteCondition::IfMatch { etag, .. }
            if start_visible || log.iter().any(|e| etag_eq(&e.etag, etag)) =>
        {
            Probe::Conflict(conflict_for(
                bucket,
                key,
                condition,
                &format!(
                    "expected ETag {etag}, found {:?} (changed by another writer)",
                    info.etag
                ),
            ))
        }
        WriteCondition::IfAbsent if start_visible => {
            Probe::Conflict(conflict_for(bucket, key, condition, ""))
        }
        WriteCondition::IfMatch { .. } | WriteCondition::IfAbsent => ambiguous(),
    }
}

/// Normalise backend differences: S3 answers put-if-match on a missing key with 404.
fn normalise(
    e: StorageError,
    bucket: &Bucket,
    key: &Key,
    condition: &WriteCondition,
) -> StorageError {
    match (&e, condition) {
        (StorageError::NotFound { .. }, WriteCondition::IfMatch { etag, .. }) => {
            StorageError::Precondition {
                backend: bucket.name().to_string(),
                key: key.to_string(),
                detail: format!("expected ETag {etag}, but the object no longer exists"),
            }
        }
        // S3's 409 ConditionalRequestConflict arrives without the key.
        (
            StorageError::Precondition {
                backend,
                key: k,
                detail,
            },
            _,
        ) if k.is_empty() => StorageError::Precondition {
            backend: backend.clone(),
            key: key.to_string(),
            detail: detail.clone(),
        },
        _ => e,
    }
}

fn build_opts(req: &WriteRequest<'_>, write_id: &str) -> PutOpts {
    let mut metadata = req.metadata.clone();
    metadata.remove(WRITE_ID_META);
    metadata.remove(WRITE_LOG_META);
    metadata.insert(WRITE_ID_META.to_string(), write_id.to_string());
    let mut log = next_log(req.previous);
    // Keep the total within S3's 2 KiB user-metadata limit: the log gives way first.
    let base: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    while !log.is_empty()
        && base + WRITE_LOG_META.len() + log.join(",").len() > MAX_USER_METADATA_BYTES
    {
        log.pop();
    }
    if !log.is_empty() {
        metadata.insert(WRITE_LOG_META.to_string(), log.join(","));
    }
    PutOpts {
        condition: req.condition.clone(),
        content_type: req.content_type.map(str::to_string),
        metadata,
        ..Default::default()
    }
}

/// Write `req`, resolving ambiguous failures as described in the module docs. A conflict
/// is returned as `Precondition` (put-if-match) or `AlreadyExists` (create).
pub(crate) async fn write(bucket: &Bucket, req: WriteRequest<'_>) -> Result<Committed> {
    let write_id = new_write_id();
    let opts = build_opts(&req, &write_id);
    let key = req.key;
    let mut ambiguous = false;
    let mut round = 0u32;
    let started = tokio::time::Instant::now();
    loop {
        let err = match bucket
            .put_with(key.as_str(), req.body.clone(), opts.clone())
            .await
        {
            Ok(w) => {
                let etag = w.etag.ok_or_else(|| missing_etag(bucket, key))?;
                return Ok(Committed {
                    etag,
                    version: w.version,
                    superseded: false,
                });
            }
            Err(e) => normalise(e, bucket, key, &req.condition),
        };
        let retryable = err.is_retryable();
        if retryable && req.condition == WriteCondition::Overwrite {
            // An unconditional write is idempotent: nothing to resolve, the caller retries.
            return Err(err);
        }
        let settled_by_probe = retryable || (ambiguous && err.is_conflict());
        if !settled_by_probe {
            return Err(err);
        }
        ambiguous = true;
        tracing::debug!(key = %key, error = %err, "ambiguous conditional write; checking what happened");
        let mut last = err;
        // Find out whether our write applied; re-probe while the HEAD itself fails.
        loop {
            match probe(bucket, key, &write_id, &req.condition).await {
                Probe::Applied(c) => return Ok(c),
                Probe::Conflict(e) | Probe::Ambiguous(e) => return Err(e),
                Probe::NotApplied => break,
                Probe::Unknown(e) => {
                    round += 1;
                    match AMBIGUITY_BACKOFF.next_delay(round, started.elapsed()) {
                        Some(d) => tokio::time::sleep(d).await,
                        None => return Err(last),
                    }
                    last = e;
                }
            }
        }
        round += 1;
        match AMBIGUITY_BACKOFF.next_delay(round, started.elapsed()) {
            Some(d) => tokio::time::sleep(d).await,
            None => return Err(last),
        }
    }
}

/// Delete `key` only while its ETag is `etag`, resolving ambiguous failures with a HEAD:
/// gone → done; same ETag → try again; other ETag → `Precondition`.
pub(crate) async fn delete_if_match(bucket: &Bucket, key: &Key, etag: &str) -> Result<()> {
    let started = tokio::time::Instant::now();
    let mut round = 0u32;
    let mut ambiguous = false;
    loop {
        let err = match bucket.delete_if_match(key.as_str(), etag).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let settled_by_probe =
            err.is_retryable() || (ambiguous && (err.is_conflict() || err.is_not_found()));
        if !settled_by_probe {
            return Err(err);
        }
        ambiguous = true;
        let mut last = err;
        loop {
            match head(bucket, key).await {
                Ok(None) => return Ok(()),
                Ok(Some(info)) if info.etag.as_deref().is_some_and(|e| etag_eq(e, etag)) => break,
                Ok(Some(info)) => {
                    return Err(StorageError::Precondition {
                        backend: bucket.name().to_string(),
                        key: key.to_string(),
                        detail: format!(
                            "expected ETag {etag}, found {:?} (changed by another writer)",
                            info.etag
                        ),
                    });
                }
                Err(e) if e.is_retryable() => {
                    round += 1;
                    match AMBIGUITY_BACKOFF.next_delay(round, started.elapsed()) {
                        Some(d) => tokio::time::sleep(d).await,
                        None => return Err(last),
                    }
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        round += 1;
        match AMBIGUITY_BACKOFF.next_delay(round, started.elapsed()) {
            Some(d) => tokio::time::sleep(d).await,
            None => return Err(last),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keeps_newest_and_escapes() {
        let mut meta = BTreeMap::new();
        meta.insert(WRITE_ID_META.to_string(), "aaaa".to_string());
        let old: Vec<String> = (0..WRITE_LOG_LEN).map(|i| format!("id{i}:e{i}")).collect();
        meta.insert(WRITE_LOG_META.to_string(), old.join(","));
        let mut prev = ObjectInfo {
            key: "k".into(),
            size: 0,
            last_modified: chrono::Utc::now(),
            etag: Some("\"x,y%\"".into()),
            version: None,
            headers: BTreeMap::new(),
            metadata: meta,
        };
        let log = next_log(Some(&prev));
        assert_eq!(log.len(), WRITE_LOG_LEN);
        let parsed = write_log(&BTreeMap::from([(
            WRITE_LOG_META.to_string(),
            log.join(","),
        )]));
        assert_eq!(parsed[0].id, "aaaa");
        assert_eq!(parsed[0].etag, "\"x,y%\"");
        assert!(!parsed[0].chain_start);
        assert_eq!(
            (parsed[1].id.as_str(), parsed[1].etag.as_str()),
            ("id0", "e0")
        );
        assert_eq!(
            parsed.last().unwrap().id,
            format!("id{}", WRITE_LOG_LEN - 2)
        );

        // An object without a log starts a chain; one without a write id is recorded as `-`.
        prev.metadata.clear();
        let log = next_log(Some(&prev));
        let parsed = write_log(&BTreeMap::from([(
            WRITE_LOG_META.to_string(),
            log.join(","),
        )]));
        assert_eq!(parsed.len(), 1);
        assert!(parsed[0].chain_start);
        assert_eq!(parsed[0].id, "-");
    }
}
