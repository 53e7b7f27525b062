//! Sync and migrate: copy every object (or a prefix) from one bucket to another, possibly
//! on another provider. Identical objects are skipped, a checkpoint in the destination
//! makes an interrupted run resumable, every copy is verified, and a callback reports
//! progress.

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use storage_core::{Bucket, Key, ObjectInfo, RESERVED_PREFIX, Result, StorageError, etag_eq};

use crate::copy::{copy_object, etag_md5, md5_of};
use crate::failure::is_unavailable;

/// How "already identical" is decided before copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompareMode {
    /// Same size, then: ETags when both are content MD5s (S3, R2 single-part uploads);
    /// otherwise the checkpoint's record of an earlier copy; otherwise an MD5 of both
    /// objects' bytes. Never wrong, cheap where the providers allow.
    #[default]
    Auto,
    /// Same size and equal ETags (only meaningful between stores that compute ETags alike).
    SizeAndEtag,
    /// Same size and the same MD5 of the bytes (reads both objects).
    Hash,
}

/// Options of [`sync`].
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Only keys under this prefix (`""`: everything).
    pub prefix: String,
    /// Where the keys go in the destination, replacing `prefix` (default: the same keys).
    pub dest_prefix: Option<String>,
    /// Decide and report, copy nothing.
    pub dry_run: bool,
    /// How identical objects are recognised.
    pub compare: CompareMode,
    /// Check every copy after writing it: size, and the content MD5 when the ETag is one.
    pub verify: bool,
    /// Keep a checkpoint in the destination (under `.strata-sync/`) so an interrupted
    /// run resumes without re-reading what it already copied.
    pub checkpoint: bool,
    /// Save the checkpoint after this many copies, or a tenth of the checkpoint's size if
    /// that is more (and at the end).
    pub checkpoint_every: usize,
    /// Objects copied at once.
    pub concurrency: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            prefix: String::new(),
            dest_prefix: None,
            dry_run: false,
            compare: CompareMode::Auto,
            verify: true,
            checkpoint: true,
            checkpoint_every: 100,
            concurrency: 4,
        }
    }
}

/// Progress of a running sync, passed to the callback after each object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncProgress {
    /// Objects in the source under the prefix.
    pub total: u64,
    /// Their bytes.
    pub total_bytes: u64,
    /// Objects decided so far (copied + skipped + failed).
    pub done: u64,
    /// Objects copied (or that would be, in a dry run).
    pub copied: u64,
    /// Objects skipped as identical.
    pub skipped: u64,
    /// Objects that failed.
    pub failed: u64,
    /// Bytes copied (or that would be).
    pub bytes_copied: u64,
    /// Bytes of the skipped objects.
    pub bytes_skipped: u64,
    /// The key just finished.
    pub key: String,
}

/// What a sync did.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    /// Source bucket name.
    pub source: String,
    /// Destination bucket name.
    pub destination: String,
    /// Final counts.
    #[serde(flatten)]
    pub progress: SyncProgress,
    /// Keys copied (or that would be, in a dry run), in key order.
    pub copied_keys: Vec<String>,
    /// Copies checked after writing.
    pub verified: u64,
    /// Keys that failed, with why (`failures` in JSON; the count is `failed`).
    #[serde(rename = "failures")]
    pub failed: Vec<(String, String)>,
    /// Why the run stopped early (the destination or source became unavailable), if it did.
    pub aborted: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl SyncReport {
    /// Whether every object is now identical in the destination (or, in a dry run, would be).
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.aborted.is_none()
    }
}

/// One copy recorded in the checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Done {
    size: u64,
    src_etag: Option<String>,
    dst_etag: Option<String>,
    md5: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    source: String,
    prefix: String,
    done: BTreeMap<String, Done>,
}

enum Decision {
    Copy,
    Skip,
}

/// Copy every object under `opts.prefix` from `src` to `dst`, skipping identical ones.
///
/// Objects are compared per [`CompareMode`]; each copy streams (bounded memory), keeps
/// content headers and user metadata, and is verified when `opts.verify`. A failed object
/// is reported and the run goes on; if a bucket becomes unavailable the run stops early
/// (see [`SyncReport::aborted`]) after saving the checkpoint. Run it again to resume:
/// objects already copied are recognised and skipped, so nothing is copied twice.
/// `progress` is called after each object.
///
/// ```
/// use storage_core::Bucket;
/// use storage_router::{SyncOptions, sync};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let (old, new) = (Bucket::memory("old"), Bucket::memory("new"));
/// old.put("a.txt", "1").await?;
/// old.put("b.txt", "22").await?;
/// let report = sync(&old, &new, &SyncOptions::default(), |_| {}).await?;
/// assert_eq!((report.progress.copied, report.progress.bytes_copied), (2, 3));
/// let again = sync(&old, &new, &SyncOptions::default(), |_| {}).await?;
/// assert_eq!((again.progress.copied, again.progress.skipped), (0, 2));
/// # Ok(()) }
/// ```
pub async fn sync(
    src: &Bucket,
    dst: &Bucket,
    opts: &SyncOptions,
    mut progress: impl FnMut(SyncProgress),
) -> Result<SyncReport> {
    let src_prefix = clean_prefix("prefix", &opts.prefix)?;
    let dst_prefix = match &opts.dest_prefix {
        Some(p) => clean_prefix("dest_prefix", p)?,
        None => src_prefix.clone(),
    };
    let mut sources: Vec<ObjectInfo> = src
        .list(&src_prefix)
        .try_filter(|o| futures::future::ready(!is_reserved(&o.key)))
        .try_collect()
        .await?;
    sources.sort_by(|a, b| a.key.cmp(&b.key));
    let existing: HashMap<String, ObjectInfo> = dst
        .list(&dst_prefix)
        .try_filter(|o| futures::future::ready(!is_reserved(&o.key)))
        .map_ok(|o| (o.key.clone(), o))
        .try_collect()
        .await?;

    let cp_path = checkpoint_path(src, &src_prefix, &dst_prefix);
    let mut checkpoint = if opts.checkpoint {
        load_checkpoint(dst, &cp_path).await
    } else {
        Checkpoint::default()
    };
    checkpoint.source = src.name().to_string();
    checkpoint.prefix = src_prefix.clone();

    let mut report = SyncReport {
        source: src.name().to_string(),
        destination: dst.name().to_string(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    report.progress.total = sources.len() as u64;
    report.progress.total_bytes = sources.iter().map(|o| o.size).sum();

    // Decide and copy, `concurrency` objects at a time.
    let planned: Vec<_> = sources
        .into_iter()
        .map(|info| {
            let dst_key = map_key(&info.key, &src_prefix, &dst_prefix);
            let existing = existing.get(&dst_key).cloned();
            let recorded = checkpoint.done.get(&dst_key).cloned();
            (info, dst_key, existing, recorded)
        })
        .collect();
    let tasks = planned
        .into_iter()
        .map(|(info, dst_key, existing, recorded)| async move {
            let r = process(src, dst, opts, &info, &dst_key, existing, recorded).await;
            (info, dst_key, r)
        });
    let mut results = stream::iter(tasks).buffer_unordered(opts.concurrency.max(1));
    let mut since_save = 0usize;
    while let Some((info, dst_key, r)) = results.next().await {
        let p = &mut report.progress;
        p.done += 1;
        p.key = info.key.clone();
        match r {
            Ok((Decision::Skip, _)) => {
                p.skipped += 1;
                p.bytes_skipped += info.size;
            }
            Ok((Decision::Copy, done)) => {
                p.copied += 1;
                p.bytes_copied += info.size;
                report.copied_keys.push(info.key.clone());
                if let Some(done) = done {
                    if opts.verify {
                        report.verified += 1;
                    }
                    checkpoint.done.insert(dst_key, done);
                    since_save += 1;
                }
            }
            Err(e) => {
                p.failed += 1;
                tracing::warn!(source = src.name(), destination = dst.name(), key = %info.key, error = %e, "sync: object failed");
                let unavailable = is_unavailable(&e);
                report.failed.push((info.key.clone(), e.to_string()));
                if unavailable {
                    report.aborted = Some(format!(
                        "stopped after `{}` failed: {e}; run the sync again to resume",
                        info.key
                    ));
                    progress(report.progress.clone());
                    break;
                }
            }
        }
        progress(report.progress.clone());
        // The checkpoint is rewritten whole, so save less often as it grows (every tenth of
        // its size at least): writing it stays linear in the number of objects.
        let every = opts.checkpoint_every.max(checkpoint.done.len() / 10).max(1);
        if opts.checkpoint && !opts.dry_run && since_save >= every {
            save_checkpoint(dst, &cp_path, &checkpoint).await;
            since_save = 0;
        }
    }
    drop(results);
    if opts.checkpoint && !opts.dry_run && since_save > 0 {
        save_checkpoint(dst, &cp_path, &checkpoint).await;
    }
    report.copied_keys.sort();
    Ok(report)
}

async fn process(
    src: &Bucket,
    dst: &Bucket,
    opts: &SyncOptions,
    info: &ObjectInfo,
    dst_key: &str,
    existing: Option<ObjectInfo>,
    recorded: Option<Done>,
) -> Result<(Decision, Option<Done>)> {
    let src_key = Key::new(info.key.as_str())?;
    let dst_key = Key::new(dst_key)?;
    if let Some(existing) = &existing
        && identical(
            src,
            dst,
            opts.compare,
            info,
            existing,
            &src_key,
            &dst_key,
            recorded.as_ref(),
        )
        .await?
    {
        return Ok((Decision::Skip, None));
    }
    if opts.dry_run {
        return Ok((Decision::Copy, None));
    }
    let copied = copy_object(src, &src_key, dst, &dst_key, None).await?;
    let mut dst_etag = copied.write.etag.clone();
    if opts.verify {
        let written = dst.head(&dst_key).await?;
        let mismatch = if written.size != copied.source.size {
            Some(format!(
                "{} bytes written, {} in the source",
                written.size, copied.source.size
            ))
        } else if let (Some(a), Some(b)) = (&written.etag, &copied.write.etag)
            && !etag_eq(a, b)
        {
            Some(format!(
                "ETag {a} differs from the one the write returned ({b}); something else wrote it meanwhile"
            ))
        } else if let Some(m) = etag_md5(written.etag.as_deref())
            && m != copied.md5
        {
            Some(format!(
                "content MD5 {m} differs from the source's {}",
                copied.md5
            ))
        } else {
            None
        };
        if let Some(reason) = mismatch {
            return Err(StorageError::Corrupt {
                backend: dst.name().to_string(),
                key: dst_key.to_string(),
                reason: format!("verification failed: {reason}"),
            });
        }
        dst_etag = written.etag.or(dst_etag);
    }
    Ok((
        Decision::Copy,
        Some(Done {
            size: copied.source.size,
            src_etag: copied.source.etag,
            dst_etag,
            md5: copied.md5,
        }),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn identical(
    src: &Bucket,
    dst: &Bucket,
    mode: CompareMode,
    s: &ObjectInfo,
    d: &ObjectInfo,
    src_key: &Key,
    dst_key: &Key,
    recorded: Option<&Done>,
) -> Result<bool> {
    if s.size != d.size {
        return Ok(false);
    }
    match mode {
        CompareMode::SizeAndEtag => {
            Ok(matches!((&s.etag, &d.etag), (Some(a), Some(b)) if etag_eq(a, b)))
        }
        CompareMode::Hash => Ok(md5_of(src, src_key).await? == md5_of(dst, dst_key).await?),
        CompareMode::Auto => {
            if let (Some(a), Some(b)) = (etag_md5(s.etag.as_deref()), etag_md5(d.etag.as_deref())) {
                return Ok(a == b);
            }
            // The checkpoint says we copied exactly this source version to exactly this
            // destination version.
            if let Some(r) = recorded
                && r.size == s.size
                && same_etag(&r.src_etag, &s.etag)
                && same_etag(&r.dst_etag, &d.etag)
            {
                return Ok(true);
            }
            let src_md5 = match etag_md5(s.etag.as_deref()) {
                Some(m) => m,
                None => md5_of(src, src_key).await?,
            };
            let dst_md5 = match etag_md5(d.etag.as_deref()) {
                Some(m) => m,
                None => md5_of(dst, dst_key).await?,
            };
            Ok(src_md5 == dst_md5)
        }
    }
}

fn same_etag(a: &Option<String>, b: &Option<String>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if etag_eq(a, b))
}

/// Folder of sync checkpoints in the destination. Not under `.strata-sys/` because the
/// local-folder backend keeps that folder to itself.
pub const CHECKPOINT_FOLDER: &str = ".strata-sync";

fn is_reserved(key: &str) -> bool {
    [RESERVED_PREFIX, CHECKPOINT_FOLDER].iter().any(|r| {
        key == *r
            || key
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

fn clean_prefix(field: &str, p: &str) -> Result<String> {
    let p = p.trim_end_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    Key::new(p).map_err(|e| StorageError::invalid_input(field, e.to_string()))?;
    Ok(p.to_string())
}

fn map_key(key: &str, from: &str, to: &str) -> String {
    let rest = if from.is_empty() {
        key
    } else {
        key.strip_prefix(from)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(key)
    };
    match (to.is_empty(), rest.is_empty()) {
        (true, _) => rest.to_string(),
        (false, true) => to.to_string(),
        (false, false) => format!("{to}/{rest}"),
    }
}

fn checkpoint_path(src: &Bucket, src_prefix: &str, dst_prefix: &str) -> Path {
    let mut h = Md5::new();
    for part in [src.name(), src.provider(), src_prefix, dst_prefix] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    Path::from_iter([
        CHECKPOINT_FOLDER,
        &format!("{}.json", hex::encode(h.finalize())),
    ])
}

async fn load_checkpoint(dst: &Bucket, path: &Path) -> Checkpoint {
    let r = async {
        let bytes = dst.store().get(path).await?.bytes().await?;
        Ok::<_, object_store::Error>(bytes)
    }
    .await;
    match r {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(bucket = dst.name(), path = %path, error = %e, "sync checkpoint unreadable; comparing objects instead");
            Checkpoint::default()
        }),
        Err(object_store::Error::NotFound { .. }) => Checkpoint::default(),
        Err(e) => {
            tracing::warn!(bucket = dst.name(), path = %path, error = %e, "sync checkpoint could not be read; comparing objects instead");
            Checkpoint::default()
        }
    }
}

async fn save_checkpoint(dst: &Bucket, path: &Path, cp: &Checkpoint) {
    let bytes = match serde_json::to_vec(cp) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "sync checkpoint could not be encoded");
            return;
        }
    };
    if let Err(e) = dst.store().put(path, PutPayload::from(bytes)).await {
        // Not fatal: a resumed run still skips identical objects by comparing them.
        tracing::warn!(bucket = dst.name(), path = %path, error = %e, "sync checkpoint could not be saved");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keys_between_prefixes() {
        assert_eq!(map_key("a/b/c", "a", "x/y"), "x/y/b/c");
        assert_eq!(map_key("a/b", "", ""), "a/b");
        assert_eq!(map_key("a/b", "", "z"), "z/a/b");
        assert_eq!(map_key("a/b", "a", ""), "b");
    }
}
