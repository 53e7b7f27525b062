//! Conditional writes whose lost answers are resolved, never guessed: the one place in
//! Strata that decides what happened to a create-if-absent, put-if-match or delete-if-match
//! whose answer did not arrive.
//!
//! # Who retries what
//!
//! - **Conditional requests are sent once per attempt by everything below [`Bucket`]**: the
//!   S3 backend sends them with a client whose HTTP retries are off, and the retry layer
//!   passes them through untouched. Only the loop here repeats them, because only it knows
//!   the write's id and can tell "my earlier attempt landed" from "another writer won".
//! - Everything else (reads, listings, unconditional writes, deletes) is retried by the
//!   retry layer when one is configured, else by the S3 client's HTTP retry: never both
//!   (the facade turns the HTTP retry off under a retry layer).
//! - Every loop has a wall-clock deadline as well as an attempt count
//!   ([`BackoffStrategy`]).
//!
//! # How an ambiguous conditional write is resolved
//!
//! Every conditional write made through a [`Bucket`] carries a random write id in the
//! object's user metadata ([`WRITE_ID_META`]) and the ids of the writes it replaced
//! ([`WRITE_LOG_META`], newest first; an entry marked `*` starts a chain: a creation, an
//! unconditional put or a foreign write). Entries are 8-character ids; the newest
//! [`LOG_ETAGS`] also keep their ETag (so a write superseded by a few others still learns
//! its ETag), and an object written by another client is recorded by its ETag. The log
//! holds as many entries as fit in what the caller's metadata leaves of S3's 2 KiB
//! user-metadata budget (about 150 S3 writes), so it is bounded by the budget, not by a fixed
//! count, and survives a burst of writes landing while one answer is lost (at moto's ~60
//! commits/s on this machine, three seconds of them). After an ambiguous failure (timeout,
//! reset, 5xx, or a conflict answered after one of those) the writer HEADs the key:
//!
//! - the current object carries our write id → our write applied; its ETag is ours;
//! - our id is in the current object's write log → our write applied and another writer
//!   has replaced it since (`WriteResult::superseded`; its ETag is reported while the log
//!   still holds it, else `None`);
//! - the precondition still holds (same ETag / still absent) → our write did not apply:
//!   send the same write again (same id, still conditional, so a delayed copy of the first
//!   request can never apply a second time);
//! - for a compare-and-swap, the log reaches back to the object we replaced (its write id,
//!   or its ETag for a foreign write) and we are not in it → another writer got there first:
//!   an ordinary conflict (an object without a log proves nothing: a blind put may have
//!   replaced our write); for a create, another chain is there → `AlreadyExists`;
//! - otherwise more writes landed in between than the log remembers: the outcome cannot be
//!   known, and the write fails with [`StorageError::Ambiguous`] instead of being repeated.
//!
//! Pass the object a compare-and-swap replaces with [`PutOpts::replacing`]: its id and log
//! seed the new object's log, which is what lets *other* writers resolve their lost answers.
//! A bare [`PutOpts::if_match`] resolves its own writes the same way but starts a new chain.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{PutOptions, PutPayload};

use crate::attrs::MAX_USER_METADATA_BYTES;
use crate::backoff::{BackoffStrategy, Jitter};
use crate::bucket::{Bucket, ObjectInfo, PutOpts, WriteCondition, WriteResult};
use crate::{Result, StorageError, etag_eq};

/// User-metadata name of the id of the write that produced an object.
pub const WRITE_ID_META: &str = "strata-write-id";
/// User-metadata name of the ids of the writes an object replaced, newest first
/// (`id:etag,id:etag,id,id,...`: the newest [`LOG_ETAGS`] with their ETag; `*` before an id
/// marks the start of a chain, `-:etag` an object written without an id).
pub const WRITE_LOG_META: &str = "strata-write-log";

/// How many of the newest log entries keep their ETag.
pub const LOG_ETAGS: usize = 16;

/// Retries of one ambiguous conditional write (each preceded by a HEAD check): at most 8,
/// and none started later than 30 s after the first attempt.
pub const AMBIGUITY_BACKOFF: BackoffStrategy =
    BackoffStrategy::custom(8, Duration::from_millis(20), Duration::from_secs(1))
        .with_jitter(Jitter::Equal)
        .with_deadline(Duration::from_secs(30));

/// The object a compare-and-swap write replaces, as it was read: its ETag, and the write id
/// and log that let concurrent writers resolve lost answers. Made by
/// [`PutOpts::replacing`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replaces {
    etag: String,
    write_id: Option<String>,
    log: Option<String>,
}

impl Replaces {
    /// What `info` contributes to the log of the write that replaces it; `None` without an
    /// ETag.
    pub fn of(info: &ObjectInfo) -> Option<Replaces> {
        Some(Replaces {
            etag: info.etag.clone()?,
            write_id: info.metadata.get(WRITE_ID_META).cloned(),
            log: info.metadata.get(WRITE_LOG_META).cloned(),
        })
    }

    /// The ETag of the replaced object.
    pub fn etag(&self) -> &str {
        &self.etag
    }
}

/// 8 characters of base 36 (41 bits): collisions between the writes one log holds are
/// negligible.
fn new_write_id() -> String {
    let mut n = fastrand::u64(..36u64.pow(8));
    let mut id = [b'0'; 8];
    for c in id.iter_mut().rev() {
        *c = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(id.to_vec()).expect("ascii")
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
    /// ETag of the object that write produced, where the log still holds it.
    pub etag: Option<String>,
    /// That object started its chain (it replaced nothing this log knows about).
    pub chain_start: bool,
}

/// The entries of an object's write log, newest first.
pub(crate) fn write_log(meta: &BTreeMap<String, String>) -> Vec<LogEntry> {
    meta.get(WRITE_LOG_META)
        .map(|log| parse_log(log))
        .unwrap_or_default()
}

fn parse_log(log: &str) -> Vec<LogEntry> {
    log.split(',')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (id, etag) = match e.split_once(':') {
                Some((id, etag)) => (id, Some(unescape_etag(etag))),
                None => (e, None),
            };
            let (chain_start, id) = match id.strip_prefix('*') {
                Some(id) => (true, id),
                None => (false, id),
            };
            LogEntry {
                id: id.to_string(),
                etag,
                chain_start,
            }
        })
        .collect()
}

/// An entry past the newest [`LOG_ETAGS`] keeps only its id (a foreign write, `-`, keeps its
/// ETag: it has nothing else).
fn compact(entry: &str) -> &str {
    match entry.split_once(':') {
        Some((id, _)) if id.trim_start_matches('*') != "-" => id,
        _ => entry,
    }
}

/// The log a write replacing `previous` carries, newest first, cut (oldest entries first)
/// to `room` bytes. Built as one string: a commit runs this on every write, and the log is
/// about 150 entries long once a document has a history.
fn next_log(previous: Option<&Replaces>, room: usize) -> String {
    let Some(prev) = previous else {
        return String::new();
    };
    let mut log = String::with_capacity(room.min(prev.log.as_ref().map_or(0, String::len) + 64));
    let mut push = |entry: &str| {
        let sep = usize::from(!log.is_empty());
        let fits = log.len() + sep + entry.len() <= room;
        if fits {
            if sep == 1 {
                log.push(',');
            }
            log.push_str(entry);
        }
        fits
    };
    let id = prev.write_id.as_deref().unwrap_or("-");
    let start = if prev.log.is_some() { "" } else { "*" };
    if push(&format!("{start}{id}:{}", escape_etag(&prev.etag))) {
        let old = prev.log.as_deref().unwrap_or_default();
        for (i, e) in old.split(',').filter(|e| !e.is_empty()).enumerate() {
            if !push(if i + 1 < LOG_ETAGS { e } else { compact(e) }) {
                break;
            }
        }
    }
    log
}

/// What identifies one conditional write while its outcome is resolved.
#[derive(Debug, Clone)]
pub(crate) struct Stamped {
    pub write_id: String,
    pub condition: WriteCondition,
    pub replaces: Option<Replaces>,
}

/// Give the write in `opts` a new id: add it and the log to `opts.metadata`, the log
/// trimmed (oldest first) to what the caller's metadata leaves of the 2 KiB budget.
pub(crate) fn stamp(opts: &mut PutOpts) -> Stamped {
    let write_id = new_write_id();
    stamp_with(opts, &write_id);
    Stamped {
        write_id,
        condition: opts.condition.clone(),
        replaces: opts.replaces.clone(),
    }
}

fn stamp_with(opts: &mut PutOpts, write_id: &str) {
    opts.metadata.remove(WRITE_ID_META);
    opts.metadata.remove(WRITE_LOG_META);
    opts.metadata
        .insert(WRITE_ID_META.to_string(), write_id.to_string());
    let used: usize = opts.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    let room = MAX_USER_METADATA_BYTES.saturating_sub(used + WRITE_LOG_META.len());
    let log = next_log(opts.replaces.as_ref(), room);
    if !log.is_empty() {
        opts.metadata.insert(WRITE_LOG_META.to_string(), log);
    }
}

enum Probe {
    /// Our write applied.
    Applied(WriteResult),
    /// Our write did not apply and its precondition still holds: send it again.
    NotApplied,
    /// Our write did not apply and never will: another writer changed the object.
    Conflict(StorageError),
    /// The HEAD itself failed transiently.
    Unknown(StorageError),
    /// What happened cannot be known (more writes landed than the log remembers, or the
    /// object cannot be read).
    Ambiguous(StorageError),
}

fn conflict_for(
    bucket: &Bucket,
    key: &str,
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

async fn probe(bucket: &Bucket, key: &str, stamped: &Stamped, size: u64) -> Probe {
    let (write_id, condition) = (stamped.write_id.as_str(), &stamped.condition);
    let replaces = stamped.replaces.as_ref();
    let current = match bucket.head_if_exists(key).await {
        Ok(c) => c,
        Err(e) if transient(&e) => return Probe::Unknown(e),
        // The object cannot be read (access denied, ...): what happened cannot be checked.
        Err(e) => {
            return Probe::Ambiguous(StorageError::Ambiguous {
                backend: bucket.name().to_string(),
                key: key.to_string(),
                detail: format!(
                    "the answer to a conditional write was lost and the object cannot be read to check it ({e}); it may or may not have been applied"
                ),
            });
        }
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
        return Probe::Applied(WriteResult {
            etag: info.etag,
            version: info.version,
            size,
            superseded: false,
        });
    }
    let log = write_log(&info.metadata);
    if let Some(entry) = log.iter().find(|e| e.id == write_id) {
        return Probe::Applied(WriteResult {
            etag: entry.etag.clone(),
            version: None,
            size,
            superseded: true,
        });
    }
    // Can the log tell who replaced what we expected? It can if it reaches back to the
    // object we replaced (by its write id, or by its ETag where the log kept it), or to the
    // start of the chain.
    let start_visible =
        !info.metadata.contains_key(WRITE_LOG_META) || log.iter().any(|e| e.chain_start);
    let reaches = |etag: &str| {
        log.iter()
            .any(|e| match replaces.and_then(|r| r.write_id.as_deref()) {
                Some(id) => e.id == id,
                None => e.etag.as_deref().is_some_and(|x| etag_eq(x, etag)),
            })
    };
    let ambiguous = || {
        Probe::Ambiguous(StorageError::Ambiguous {
            backend: bucket.name().to_string(),
            key: key.to_string(),
            detail: format!(
                "the answer to a conditional write was lost and {} other writes landed before it could be checked, more than the object's write log remembers, so it may or may not have been applied; it was not repeated. Read the object and decide",
                log.len() + 1
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
        // Only a log that reaches back to the object we replaced proves we did not land: an
        // object without a log may be a blind put or a re-creation that replaced our write.
        WriteCondition::IfMatch { etag, .. } if reaches(etag) => Probe::Conflict(conflict_for(
            bucket,
            key,
            condition,
            &format!(
                "expected ETag {etag}, found {} (changed by another writer)",
                info.etag.as_deref().unwrap_or("none")
            ),
        )),
        // Another chain is there: our create did not win. (Had it landed and been replaced
        // by a blind put or a delete and re-creation, AlreadyExists is still what a caller
        // sees next; it never leads to a second create.)
        WriteCondition::IfAbsent if start_visible => {
            Probe::Conflict(conflict_for(bucket, key, condition, ""))
        }
        WriteCondition::IfMatch { .. } | WriteCondition::IfAbsent => ambiguous(),
    }
}

/// Normalise backend differences: S3 answers put-if-match on a missing key with 404, and its
/// 409 ConditionalRequestConflict arrives without the key.
fn normalise(
    e: StorageError,
    bucket: &Bucket,
    key: &str,
    condition: &WriteCondition,
) -> StorageError {
    match (e, condition) {
        (StorageError::NotFound { .. }, WriteCondition::IfMatch { etag, .. }) => {
            StorageError::Precondition {
                backend: bucket.name().to_string(),
                key: key.to_string(),
                detail: format!("expected ETag {etag}, but the object no longer exists"),
            }
        }
        (
            StorageError::Precondition {
                backend,
                key: k,
                detail,
            },
            _,
        ) if k.is_empty() => StorageError::Precondition {
            backend,
            key: key.to_string(),
            detail,
        },
        (StorageError::AlreadyExists { backend, key: k }, _) if k.is_empty() => {
            StorageError::AlreadyExists {
                backend,
                key: key.to_string(),
            }
        }
        (e, _) => e,
    }
}

/// A failure that says nothing about the write and may pass: retryable errors, and an open
/// circuit breaker (which refused the request without sending it).
fn transient(e: &StorageError) -> bool {
    e.is_retryable() || matches!(e, StorageError::CircuitOpen { .. })
}

/// Sleep before retry `round`, or say the loop is over.
async fn backoff(round: &mut u32, started: tokio::time::Instant) -> bool {
    *round += 1;
    match AMBIGUITY_BACKOFF.next_delay(*round, started.elapsed()) {
        Some(d) => {
            tokio::time::sleep(d).await;
            true
        }
        None => false,
    }
}

/// Counters of conditional-write resolution, process-wide (exported for soak tests and
/// metrics).
pub mod stats {
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(crate) static RESOLVED_APPLIED: AtomicU64 = AtomicU64::new(0);
    pub(crate) static RESOLVED_NOT_APPLIED: AtomicU64 = AtomicU64::new(0);
    pub(crate) static RESOLVED_CONFLICT: AtomicU64 = AtomicU64::new(0);
    pub(crate) static AMBIGUOUS: AtomicU64 = AtomicU64::new(0);

    /// How conditional requests whose answer was lost were resolved so far in this process
    /// (`ambiguous` counts deletes-if-match too).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Resolutions {
        /// Found applied (our id current or in the log): answered as success.
        pub applied: u64,
        /// Found not applied with the precondition still holding: sent again.
        pub not_applied: u64,
        /// Found beaten by another writer: answered as a conflict.
        pub conflict: u64,
        /// Could not be known: answered [`Ambiguous`](crate::StorageError::Ambiguous).
        pub ambiguous: u64,
    }

    /// The counters now.
    pub fn resolutions() -> Resolutions {
        Resolutions {
            applied: RESOLVED_APPLIED.load(Ordering::Relaxed),
            not_applied: RESOLVED_NOT_APPLIED.load(Ordering::Relaxed),
            conflict: RESOLVED_CONFLICT.load(Ordering::Relaxed),
            ambiguous: AMBIGUOUS.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Write `body` under the condition in `opts`, resolving ambiguous failures as described in
/// the module docs. `put` is the translated request for `path` (attributes already carry the
/// write id); `key` is the caller's key, for HEAD checks and errors.
pub(crate) async fn write(
    bucket: &Bucket,
    key: &str,
    path: &Path,
    body: Bytes,
    put: PutOptions,
    stamped: &Stamped,
) -> Result<WriteResult> {
    let condition = &stamped.condition;
    let size = body.len() as u64;
    let payload = PutPayload::from(body);
    let mut ambiguous = false;
    let mut round = 0u32;
    let started = tokio::time::Instant::now();
    loop {
        let err = match bucket
            .stack()
            .put_opts(path, payload.clone(), put.clone())
            .await
        {
            Ok(r) => {
                return Ok(WriteResult {
                    etag: r.e_tag,
                    version: r.version,
                    size,
                    superseded: false,
                });
            }
            Err(e) => normalise(
                StorageError::from_object_store(bucket.name(), e),
                bucket,
                key,
                condition,
            ),
        };
        // A conflict answered to the first attempt is real: nothing below a Bucket resends a
        // conditional request. After an ambiguous attempt it may be our own write.
        if !(transient(&err) || (ambiguous && err.is_conflict())) {
            // After an ambiguous attempt, any other answer leaves that attempt's fate open:
            // it may still land (a server can apply a request after its answer was lost).
            if ambiguous {
                return Err(unresolved(bucket, key, err));
            }
            return Err(err);
        }
        ambiguous = true;
        tracing::debug!(key, error = %err, "ambiguous conditional write; checking what happened");
        let mut last = err;
        loop {
            match probe(bucket, key, stamped, size).await {
                Probe::Applied(w) => {
                    stats::bump(&stats::RESOLVED_APPLIED);
                    return Ok(w);
                }
                Probe::Conflict(e) => {
                    stats::bump(&stats::RESOLVED_CONFLICT);
                    return Err(e);
                }
                Probe::Ambiguous(e) => {
                    stats::bump(&stats::AMBIGUOUS);
                    return Err(e);
                }
                Probe::NotApplied => {
                    stats::bump(&stats::RESOLVED_NOT_APPLIED);
                    break;
                }
                Probe::Unknown(e) => {
                    if !backoff(&mut round, started).await {
                        return Err(unresolved(bucket, key, last));
                    }
                    last = e;
                }
            }
        }
        if !backoff(&mut round, started).await {
            // An earlier attempt may still land (a server can apply a request after its
            // answer timed out): the outcome is unknown, not a plain failure.
            return Err(unresolved(bucket, key, last));
        }
    }
}

/// The error for a write whose outcome could not be settled before the retry deadline: an
/// attempt may have landed or may still land, so it is `Ambiguous`, never a plain retryable
/// error a caller would repeat.
fn unresolved(bucket: &Bucket, key: &str, last: StorageError) -> StorageError {
    stats::bump(&stats::AMBIGUOUS);
    StorageError::Ambiguous {
        backend: bucket.name().to_string(),
        key: key.to_string(),
        detail: format!(
            "the answer to a conditional request was lost and its outcome could not be settled before the retry deadline (last error: {last}); it may or may not have been applied. Read the object and decide"
        ),
    }
}

/// Delete `key` only while its ETag is `etag`, resolving ambiguous failures with a HEAD:
/// gone → done; same ETag → try again; other ETag → `Precondition`.
pub(crate) async fn delete_if_match<F, Fut>(
    bucket: &Bucket,
    key: &str,
    etag: &str,
    mut attempt: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let started = tokio::time::Instant::now();
    let mut round = 0u32;
    let mut ambiguous = false;
    loop {
        let err = match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !(transient(&err) || (ambiguous && (err.is_conflict() || err.is_not_found()))) {
            if ambiguous {
                return Err(unresolved(bucket, key, err));
            }
            return Err(err);
        }
        ambiguous = true;
        let mut last = err;
        loop {
            match bucket.head_if_exists(key).await {
                Ok(None) => return Ok(()),
                Ok(Some(info)) if info.etag.as_deref().is_some_and(|e| etag_eq(e, etag)) => break,
                Ok(Some(info)) => {
                    return Err(StorageError::Precondition {
                        backend: bucket.name().to_string(),
                        key: key.to_string(),
                        detail: format!(
                            "expected ETag {etag}, found {} (changed by another writer)",
                            info.etag.as_deref().unwrap_or("none")
                        ),
                    });
                }
                Err(e) if transient(&e) => {
                    if !backoff(&mut round, started).await {
                        return Err(unresolved(bucket, key, last));
                    }
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        if !backoff(&mut round, started).await {
            return Err(unresolved(bucket, key, last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(etag: &str, meta: &[(&str, &str)]) -> ObjectInfo {
        ObjectInfo {
            key: "k".into(),
            size: 0,
            last_modified: chrono::Utc::now(),
            etag: Some(etag.into()),
            version: None,
            headers: BTreeMap::new(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn log_chains_escapes_and_fills_the_metadata_budget() {
        let old: Vec<String> = (0..600).map(|i| format!("id{i}:e{i}")).collect();
        let prev = info(
            "\"x,y%\"",
            &[(WRITE_ID_META, "aaaa"), (WRITE_LOG_META, &old.join(","))],
        );
        let mut opts = PutOpts::replacing(&prev).unwrap();
        opts.metadata.insert("user".into(), "v".repeat(300));
        stamp_with(&mut opts, "bbbb");
        let total: usize = opts.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(total <= MAX_USER_METADATA_BYTES, "{total}");
        // Trimmed to the budget, not to a fixed count: far more than 16 entries survive.
        let parsed = write_log(&opts.metadata);
        assert!(parsed.len() > 100, "{}", parsed.len());
        assert!(total > MAX_USER_METADATA_BYTES - 12, "{total}");
        assert_eq!(parsed[0].id, "aaaa");
        assert_eq!(parsed[0].etag.as_deref(), Some("\"x,y%\""));
        assert!(!parsed[0].chain_start);
        // The newest LOG_ETAGS entries keep their ETag, older ones only their id.
        let last_with_etag = LOG_ETAGS - 1;
        assert_eq!(
            (parsed[1].id.as_str(), parsed[1].etag.as_deref()),
            ("id0", Some("e0"))
        );
        assert_eq!(
            parsed[last_with_etag].etag.as_deref(),
            Some(format!("e{}", last_with_etag - 1).as_str())
        );
        assert_eq!(
            (
                parsed[LOG_ETAGS].id.as_str(),
                parsed[LOG_ETAGS].etag.as_deref()
            ),
            (format!("id{}", LOG_ETAGS - 1).as_str(), None)
        );
        // Cut at an entry boundary, oldest entries first: the kept ones are the newest, in order.
        for (i, e) in parsed[1..].iter().enumerate() {
            assert_eq!(e.id, format!("id{i}"));
        }
        assert_eq!(opts.metadata[WRITE_ID_META], "bbbb");

        // An object without a log starts a chain; one without a write id is recorded as `-`.
        let mut opts = PutOpts::replacing(&info("\"e\"", &[])).unwrap();
        stamp_with(&mut opts, "cccc");
        let parsed = write_log(&opts.metadata);
        assert_eq!(parsed.len(), 1);
        assert!(parsed[0].chain_start);
        assert_eq!(parsed[0].id, "-");
    }
}
