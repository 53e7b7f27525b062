//! The manifest of one `{module}/{user}`: an index entry per data file.

use std::collections::{BTreeMap, HashMap, HashSet};
#[cfg(feature = "parquet")]
use std::sync::Arc;

#[cfg(feature = "parquet")]
use arrow_array::{
    Array, ArrayRef, RecordBatch,
    builder::{BooleanBuilder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder},
    cast::AsArray,
    types::{Int64Type, TimestampMicrosecondType},
};
#[cfg(feature = "parquet")]
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
#[cfg(feature = "parquet")]
use chrono::TimeZone;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use storage_core::{Bucket, PutOpts, Result, StorageError};

#[cfg(not(feature = "parquet"))]
use crate::format::parquet_not_compiled;
use crate::format::{Compression, Format};
use storage_cas::{BackoffStrategy, Collection};

use crate::head::{
    HEAD_BACKOFF, ManifestHead, PartRef, SegmentRef, head_collection, read_head, update_head,
};
use crate::names::{manifest_prefix, new_id, validate_name};
#[cfg(feature = "parquet")]
use crate::parquet_io::{OpenParquet, ParquetSettings, encode, prune_row_groups};
use crate::search::{SearchQuery, SearchResults, rank};
use crate::time_range::TimeRange;

/// The index entry of one data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Object key of the file (`{module}/{user}/{yyyy}/{mm}/{dd}/{id}.{ext}`).
    pub key: String,
    /// File id (a lowercase ULID: sorts by creation time).
    pub id: String,
    /// File format.
    pub format: Format,
    /// Records in the file.
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Earliest record time (the creation time when records carry none).
    pub min_time: DateTime<Utc>,
    /// Latest record time (the creation time when records carry none).
    pub max_time: DateTime<Utc>,
    /// ETag the store gave the file.
    pub etag: Option<String>,
    /// When the file was written.
    pub created: DateTime<Utc>,
    /// The record field holding each record's time, if any.
    pub time_field: Option<String>,
    /// Searchable text: distinct lowercase words of the records' string values.
    pub text: String,
    /// Whether `text` was cut at its size cap (a deep search still sees everything).
    pub text_truncated: bool,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

/// Which entries a scan keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Entries whose `[min_time, max_time]` overlaps this window.
    pub range: TimeRange,
    /// Only this format.
    pub format: Option<Format>,
    /// Only entries carrying every one of these tags (exact key and value).
    pub tags: BTreeMap<String, String>,
}

impl EntryFilter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &ManifestEntry) -> bool {
        self.range.overlaps(e.min_time, e.max_time)
            && self.format.is_none_or(|f| f == e.format)
            && self
                .tags
                .iter()
                .all(|(k, v)| e.tags.get(k).is_some_and(|x| x == v))
    }
}

/// Settings of a [`Manifest`].
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestOptions {
    /// Retry policy for head compare-and-swap (default [`HEAD_BACKOFF`](crate::HEAD_BACKOFF)).
    pub cas: BackoffStrategy,
    /// Compact automatically once the head lists this many segments (`None`: only when
    /// [`Manifest::compact`] is called).
    pub auto_compact_segments: Option<usize>,
    /// Merge all parts into one when a compaction would leave more than this many.
    pub max_parts: usize,
    /// Rows per row group in compacted Parquet parts (smaller = finer time pruning, bigger
    /// footer). Unused without the `parquet` feature.
    pub row_group_rows: usize,
    /// Compression of compacted Parquet parts. Unused without the `parquet` feature.
    pub compression: Compression,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            cas: HEAD_BACKOFF,
            auto_compact_segments: Some(256),
            max_parts: 8,
            row_group_rows: 8192,
            compression: Compression::Snappy,
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Segments folded.
    pub segments_folded: usize,
    /// Parts merged into the new part.
    pub parts_merged: usize,
    /// Entries in the new part (`0`: nothing to do, no part written).
    pub entries: u64,
    /// Key of the new part.
    pub part: Option<String>,
    /// Folded objects that could not be deleted (harmless garbage; the head no longer lists
    /// them).
    pub cleanup_failures: usize,
}

/// The manifest of one `{module}/{user}`. Cheap to clone.
///
/// # Layout and protocol
///
/// ```text
/// manifests/{module}/{user}/head.json                 small, rewritten by compare-and-swap
/// manifests/{module}/{user}/segments/{id}.jsonl       one per append, immutable
/// manifests/{module}/{user}/compacted/{id}.parquet    compaction output, immutable
/// manifests/{module}/{user}/compacted/{id}.jsonl      the same, from a build without Parquet
/// ```
///
/// * **Append**: write the new entries as a segment (create-if-absent under a fresh id, so it
///   never collides), then add the segment to the head with compare-and-swap on the head's
///   ETag (`storage-cas`'s `Collection::update_with`: re-read and re-applied with jittered
///   backoff on a lost race). An append writes one small object and rewrites only the head,
///   which lists just the segments since the last compaction (automatic compaction keeps that
///   under [`ManifestOptions::auto_compact_segments`]), never the entries themselves. No entry
///   is lost to a concurrent writer: a segment is "in" once a head listing it was stored.
/// * **Compaction** folds the listed segments (and, when there are too many parts, the parts)
///   into one Parquet file sorted by time, then swaps the head to list it instead, keeping
///   any segment appended meanwhile. Folded objects are deleted only after that swap, and a
///   reader that raced it re-reads the head.
/// * **Reading** merges parts then segments in head order; an entry whose key appears again
///   later is replaced by the later one.
///
/// Compacted parts are plain Parquet (UTF-8, INT64, BOOLEAN and UTC microsecond timestamps,
/// default encodings), so pyarrow, DuckDB and Spark read them directly.
///
/// # Without the `parquet` feature
///
/// Appends, scans, search and compare-and-swap work the same. Compaction writes JSONL parts
/// (the segment format, `compacted/{id}.jsonl`), so the head stays small; a build with the
/// feature reads those and turns them into Parquet when it next merges parts. A head that
/// lists a Parquet part (compacted by a build with the feature) cannot be read: every scan,
/// search and merging compaction of it is [`StorageError::NotSupported`] naming the
/// feature, never a partial list.
///
/// ```
/// use storage_core::Bucket;
/// use storage_manifest::Manifest;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let manifest = Manifest::new(Bucket::memory("m"), "finance", "user123")?;
/// assert!(manifest.entries().await?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Manifest {
    bucket: Bucket,
    module: String,
    user: String,
    prefix: String,
    options: ManifestOptions,
    heads: Collection<ManifestHead>,
}

/// Attempts at a scan when compaction deletes a part or segment under it.
const SCAN_ATTEMPTS: u32 = 4;

impl Manifest {
    /// The manifest of `module`/`user` in `bucket` (names are validated). The bucket must
    /// support atomic conditional writes (memory, local folder, S3, R2), else this is
    /// [`StorageError::NotSupported`]: without them concurrent appends could be lost.
    pub fn new(bucket: Bucket, module: &str, user: &str) -> Result<Self> {
        validate_name("module", module)?;
        validate_name("user", user)?;
        let options = ManifestOptions::default();
        Ok(Manifest {
            heads: head_collection(&bucket, options.cas)?,
            bucket,
            module: module.to_string(),
            user: user.to_string(),
            prefix: manifest_prefix(module, user),
            options,
        })
    }

    /// Replace the options.
    pub fn with_options(mut self, options: ManifestOptions) -> Self {
        self.heads = self.heads.with_backoff(options.cas);
        self.options = options;
        self
    }

    fn head_id(&self) -> String {
        format!("{}/{}", self.module, self.user)
    }

    /// The options in force.
    pub fn options(&self) -> &ManifestOptions {
        &self.options
    }

    /// Module name.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// User name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The bucket the manifest lives in.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Key of the head document.
    pub fn head_key(&self) -> String {
        format!("{}head.json", self.prefix)
    }

    /// The current head (an empty one when nothing was appended yet).
    pub async fn head(&self) -> Result<ManifestHead> {
        read_head(&self.heads, &self.head_id()).await
    }

    /// Append `entries` as one segment. Safe under any number of concurrent writers: the
    /// segment is added to the head by compare-and-swap, so no append is lost. May trigger an
    /// automatic compaction (see [`ManifestOptions::auto_compact_segments`]).
    pub async fn append(&self, entries: &[ManifestEntry]) -> Result<SegmentRef> {
        if entries.is_empty() {
            return Err(StorageError::invalid_input(
                "entries",
                "nothing to append; pass at least one entry",
            ));
        }
        let body = jsonl_body(entries);
        let segment_key = self
            .put_new_object("segments", "jsonl", body.clone(), "application/x-ndjson")
            .await?;
        let segment = SegmentRef {
            key: segment_key.clone(),
            entries: entries.len() as u64,
            bytes: body.len() as u64,
        };
        let added = segment.clone();
        let head = update_head(&self.heads, &self.head_id(), move |h| {
            h.segments.push(added.clone());
            Ok(())
        })
        .await;
        let head = match head {
            Ok(h) => h,
            Err(e) => {
                // The segment is not listed anywhere; remove it so it is not left as garbage.
                let _ = self.bucket.delete(&segment_key).await;
                return Err(e);
            }
        };
        if let Some(limit) = self.options.auto_compact_segments
            && head.segments.len() >= limit
            && let Err(e) = self.compact().await
        {
            // The append itself succeeded; a failed or raced compaction only delays folding.
            tracing::debug!(manifest = %self.prefix, error = %e, "automatic compaction skipped");
        }
        Ok(segment)
    }

    async fn put_new_object(
        &self,
        folder: &str,
        ext: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<String> {
        let create = self.bucket.capabilities().create_if_absent;
        loop {
            let key = format!("{}{folder}/{}.{ext}", self.prefix, new_id(Utc::now()));
            let opts = if create {
                PutOpts::if_absent()
            } else {
                PutOpts::default()
            }
            .with_content_type(content_type);
            match self.bucket.put_with(&key, body.clone(), opts).await {
                Ok(_) => return Ok(key),
                // 80 random bits make this practically impossible; pick another id.
                Err(StorageError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Every entry, parts first then segments in append order, later duplicates of a key
    /// replacing earlier ones.
    pub async fn entries(&self) -> Result<Vec<ManifestEntry>> {
        self.scan(&EntryFilter::default()).await
    }

    /// Entries passing `filter`. Compacted parts are read with row-group pruning on
    /// `min_time`/`max_time`, so a narrow time window reads a small share of a large manifest.
    pub async fn scan(&self, filter: &EntryFilter) -> Result<Vec<ManifestEntry>> {
        let mut attempt = 0;
        loop {
            let head = self.head().await?;
            match self.scan_head(&head, filter).await {
                Err(e) if e.is_not_found() && attempt + 1 < SCAN_ATTEMPTS => {
                    // A compaction replaced the head and removed what it listed: read again.
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn scan_head(
        &self,
        head: &ManifestHead,
        filter: &EntryFilter,
    ) -> Result<Vec<ManifestEntry>> {
        // Owned inputs and boxed futures: keeps the future `Send` for any caller
        // (`tokio::spawn`), which borrowed iterator adaptors inside a stream do not.
        let parts: Vec<PartRef> = head
            .parts
            .iter()
            .filter(|p| match (p.min_time, p.max_time) {
                (Some(min), Some(max)) => filter.range.overlaps(min, max),
                _ => true,
            })
            .cloned()
            .collect();
        let part_reads: Vec<BoxFuture<'static, Result<Vec<ManifestEntry>>>> = parts
            .into_iter()
            .map(|p| {
                let (this, filter) = (self.clone(), filter.clone());
                async move { this.read_part(&p, &filter).await }.boxed()
            })
            .collect();
        let segment_reads: Vec<BoxFuture<'static, Result<Vec<ManifestEntry>>>> = head
            .segments
            .iter()
            .cloned()
            .map(|s| {
                let (this, filter) = (self.clone(), filter.clone());
                async move { this.read_segment(&s, &filter).await }.boxed()
            })
            .collect();
        let parts = futures::stream::iter(part_reads)
            .buffered(4)
            .try_collect::<Vec<_>>();
        let segments = futures::stream::iter(segment_reads)
            .buffered(16)
            .try_collect::<Vec<_>>();
        let (parts, segments) = futures::try_join!(parts, segments)?;
        Ok(dedupe(parts.into_iter().chain(segments).flatten()))
    }

    async fn read_segment(
        &self,
        segment: &SegmentRef,
        filter: &EntryFilter,
    ) -> Result<Vec<ManifestEntry>> {
        self.read_jsonl(&segment.key, filter).await
    }

    /// Entries of a JSONL segment or part that pass `filter`.
    async fn read_jsonl(&self, key: &str, filter: &EntryFilter) -> Result<Vec<ManifestEntry>> {
        let obj = self.bucket.get(key).await?;
        parse_segment(&obj.bytes, self.bucket.name(), key)
            .map(|entries| entries.into_iter().filter(|e| filter.matches(e)).collect())
    }

    /// A compacted part, read by its extension: Parquet, or JSONL from a build without
    /// the `parquet` feature.
    async fn read_part(&self, part: &PartRef, filter: &EntryFilter) -> Result<Vec<ManifestEntry>> {
        match part.key.rsplit_once('.').map(|(_, ext)| ext) {
            Some("jsonl") => self.read_jsonl(&part.key, filter).await,
            #[cfg(feature = "parquet")]
            Some("parquet") => self.read_parquet_part(part, filter).await,
            #[cfg(not(feature = "parquet"))]
            Some("parquet") => Err(parquet_not_compiled(format_args!(
                "reading the manifest part `{}` (compacted into Parquet by a build with the `parquet` feature)",
                part.key
            ))),
            _ => Err(StorageError::Corrupt {
                backend: self.bucket.name().to_string(),
                key: part.key.clone(),
                reason: "the head lists a compacted part that is neither `.parquet` nor `.jsonl`"
                    .into(),
            }),
        }
    }

    #[cfg(feature = "parquet")]
    async fn read_parquet_part(
        &self,
        part: &PartRef,
        filter: &EntryFilter,
    ) -> Result<Vec<ManifestEntry>> {
        let backend = self.bucket.name();
        let open = OpenParquet::open(
            backend,
            self.bucket.store().clone(),
            &part.key,
            Some(part.bytes),
        )
        .await?;
        let corrupt = |reason: String| StorageError::Corrupt {
            backend: backend.to_string(),
            key: part.key.clone(),
            reason,
        };
        let row_groups = if filter.range.is_all() {
            None
        } else {
            let min_col = open
                .column_index("min_time")
                .ok_or_else(|| corrupt("compacted manifest has no `min_time` column".into()))?;
            let max_col = open
                .column_index("max_time")
                .ok_or_else(|| corrupt("compacted manifest has no `max_time` column".into()))?;
            Some(prune_row_groups(
                open.metadata(),
                min_col,
                max_col,
                filter.range.micros(),
                false,
            ))
        };
        let mut out = Vec::new();
        let mut batches = open.stream(backend, &part.key, row_groups, None, 8192)?;
        while let Some(batch) = batches.try_next().await? {
            out.extend(
                entries_from_batch(&batch)
                    .map_err(corrupt)?
                    .into_iter()
                    .filter(|e| filter.matches(e)),
            );
        }
        Ok(out)
    }

    /// Search the manifest's indexed text (case-insensitive; every word of the query must
    /// occur), filtered by time, format and tags, ranked and paged. This reads the manifest
    /// only; [`Dataset::search`](crate::Dataset::search) can confirm in the files.
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchResults> {
        let candidates = self.scan(&query.filter()).await?;
        Ok(rank(candidates, query))
    }

    /// Fold the segments into a compacted Parquet part (merging all parts into it when there
    /// would be more than [`ManifestOptions::max_parts`]). Without the `parquet` feature the
    /// part is JSONL (see [`Manifest`]).
    pub async fn compact(&self) -> Result<CompactReport> {
        self.compact_inner(false).await
    }

    /// Fold everything (segments and every part) into one Parquet part sorted by time: the
    /// best layout for readers and for time pruning. Without the `parquet` feature the part is
    /// JSONL.
    pub async fn compact_all(&self) -> Result<CompactReport> {
        self.compact_inner(true).await
    }

    async fn compact_inner(&self, all: bool) -> Result<CompactReport> {
        let head = self.head().await?;
        let merge_parts = all || head.parts.len() + 1 > self.options.max_parts;
        let parts: Vec<PartRef> = if merge_parts {
            head.parts.clone()
        } else {
            Vec::new()
        };
        let segments = head.segments.clone();
        if segments.is_empty() && parts.len() <= 1 {
            return Ok(CompactReport::default());
        }
        let folded_head = ManifestHead {
            parts: parts.clone(),
            segments: segments.clone(),
            ..head.clone()
        };
        let mut entries = self
            .scan_head(&folded_head, &EntryFilter::default())
            .await?;
        entries.sort_by(|a, b| a.min_time.cmp(&b.min_time).then_with(|| a.key.cmp(&b.key)));
        let part = self.write_part(&entries).await?;
        let (part_keys, segment_keys): (HashSet<String>, HashSet<String>) = (
            parts.iter().map(|p| p.key.clone()).collect(),
            segments.iter().map(|s| s.key.clone()).collect(),
        );
        let new_part = part.clone();
        let swapped = update_head(&self.heads, &self.head_id(), |h| {
            let listed_parts = h
                .parts
                .iter()
                .filter(|p| part_keys.contains(&p.key))
                .count();
            let listed_segments = h
                .segments
                .iter()
                .filter(|s| segment_keys.contains(&s.key))
                .count();
            if listed_parts != part_keys.len() || listed_segments != segment_keys.len() {
                return Err(StorageError::Conflict {
                    backend: self.bucket.name().to_string(),
                    key: self.head_key(),
                    attempts: 1,
                    last_etag: None,
                });
            }
            h.parts.retain(|p| !part_keys.contains(&p.key));
            h.parts.push(new_part.clone());
            h.segments.retain(|s| !segment_keys.contains(&s.key));
            Ok(())
        })
        .await;
        if let Err(e) = swapped {
            // Another compaction or rebuild got there first; our part is not listed anywhere.
            let _ = self.bucket.delete(&part.key).await;
            return Err(e);
        }
        let garbage: Vec<String> = part_keys.into_iter().chain(segment_keys).collect();
        let report = self
            .bucket
            .delete_many(garbage.iter().map(String::as_str))
            .await;
        Ok(CompactReport {
            segments_folded: segments.len(),
            parts_merged: parts.len(),
            entries: entries.len() as u64,
            part: Some(part.key),
            cleanup_failures: report.failed.len(),
        })
    }

    /// Write `entries` (already in the wanted order) as a new compacted part; not yet listed.
    pub(crate) async fn write_part(&self, entries: &[ManifestEntry]) -> Result<PartRef> {
        let (body, format) = self.encode_part(entries)?;
        let bytes = body.len() as u64;
        let key = self
            .put_new_object("compacted", format.extension(), body, format.content_type())
            .await?;
        Ok(PartRef {
            key,
            entries: entries.len() as u64,
            bytes,
            min_time: entries.iter().map(|e| e.min_time).min(),
            max_time: entries.iter().map(|e| e.max_time).max(),
        })
    }

    /// A compacted part's body and format: Parquet.
    #[cfg(feature = "parquet")]
    fn encode_part(&self, entries: &[ManifestEntry]) -> Result<(Bytes, Format)> {
        let body = encode(
            &entries_to_batch(entries),
            ParquetSettings {
                compression: self.options.compression,
                row_group_rows: self.options.row_group_rows,
                statistics_only: Some(&[
                    "min_time", "max_time", "created", "format", "rows", "bytes",
                ]),
            },
        )?;
        Ok((body, Format::Parquet))
    }

    /// A compacted part's body and format: JSONL, as segments are, in a build without Parquet.
    #[cfg(not(feature = "parquet"))]
    fn encode_part(&self, entries: &[ManifestEntry]) -> Result<(Bytes, Format)> {
        Ok((jsonl_body(entries), Format::Jsonl))
    }

    /// Replace the whole manifest with `entries` (used by rebuild): one new part, listed
    /// alone, keeping any segment appended after `seen` was read.
    pub(crate) async fn replace(
        &self,
        seen: &ManifestHead,
        mut entries: Vec<ManifestEntry>,
    ) -> Result<()> {
        entries.sort_by(|a, b| a.min_time.cmp(&b.min_time).then_with(|| a.key.cmp(&b.key)));
        let part = self.write_part(&entries).await?;
        let old_segments: HashSet<String> = seen.segments.iter().map(|s| s.key.clone()).collect();
        let mut dropped: Vec<String> = Vec::new();
        let new_part = part.clone();
        let result = update_head(&self.heads, &self.head_id(), |h| {
            dropped = h.parts.iter().map(|p| p.key.clone()).collect();
            dropped.extend(
                h.segments
                    .iter()
                    .filter(|s| old_segments.contains(&s.key))
                    .map(|s| s.key.clone()),
            );
            h.parts = vec![new_part.clone()];
            h.segments.retain(|s| !old_segments.contains(&s.key));
            Ok(())
        })
        .await;
        if let Err(e) = result {
            let _ = self.bucket.delete(&part.key).await;
            return Err(e);
        }
        self.bucket
            .delete_many(dropped.iter().map(String::as_str))
            .await;
        Ok(())
    }
}

/// Later entries for the same key replace earlier ones; first-seen order is kept.
fn dedupe(entries: impl IntoIterator<Item = ManifestEntry>) -> Vec<ManifestEntry> {
    let mut out: Vec<ManifestEntry> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for e in entries {
        match at.get(&e.key) {
            Some(&i) => out[i] = e,
            None => {
                at.insert(e.key.clone(), out.len());
                out.push(e);
            }
        }
    }
    out
}

/// Entries as JSONL: one per line (segments, and parts without the `parquet` feature).
fn jsonl_body(entries: &[ManifestEntry]) -> Bytes {
    let mut body = Vec::with_capacity(entries.len() * 256);
    for e in entries {
        serde_json::to_writer(&mut body, e).expect("entries serialize");
        body.push(b'\n');
    }
    Bytes::from(body)
}

fn parse_segment(bytes: &[u8], backend: &str, key: &str) -> Result<Vec<ManifestEntry>> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(n, line)| {
            serde_json::from_slice(line).map_err(|e| StorageError::Corrupt {
                backend: backend.to_string(),
                key: key.to_string(),
                reason: format!("manifest segment line {} is not a valid entry: {e}", n + 1),
            })
        })
        .collect()
}

#[cfg(feature = "parquet")]
fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Arrow schema of a compacted Parquet manifest part. Needs the `parquet` feature.
#[cfg(feature = "parquet")]
#[cfg_attr(docsrs, doc(cfg(feature = "parquet")))]
pub fn manifest_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("min_time", ts_type(), false),
        Field::new("max_time", ts_type(), false),
        Field::new("created", ts_type(), false),
        Field::new("etag", DataType::Utf8, true),
        Field::new("time_field", DataType::Utf8, true),
        Field::new("text", DataType::Utf8, false),
        Field::new("text_truncated", DataType::Boolean, false),
        Field::new("tags", DataType::Utf8, false),
    ]))
}

#[cfg(feature = "parquet")]
fn entries_to_batch(entries: &[ManifestEntry]) -> RecordBatch {
    let n = entries.len();
    let mut key = StringBuilder::with_capacity(n, n * 48);
    let mut id = StringBuilder::with_capacity(n, n * 26);
    let mut format = StringBuilder::with_capacity(n, n * 6);
    let mut rows = Int64Builder::with_capacity(n);
    let mut bytes = Int64Builder::with_capacity(n);
    let ts = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut min_time, mut max_time, mut created) = (ts(), ts(), ts());
    let mut etag = StringBuilder::with_capacity(n, n * 34);
    let mut time_field = StringBuilder::with_capacity(n, n * 9);
    let mut text = StringBuilder::with_capacity(n, n * 64);
    let mut truncated = BooleanBuilder::with_capacity(n);
    let mut tags = StringBuilder::with_capacity(n, n * 2);
    for e in entries {
        key.append_value(&e.key);
        id.append_value(&e.id);
        format.append_value(e.format.extension());
        rows.append_value(e.rows as i64);
        bytes.append_value(e.bytes as i64);
        min_time.append_value(e.min_time.timestamp_micros());
        max_time.append_value(e.max_time.timestamp_micros());
        created.append_value(e.created.timestamp_micros());
        etag.append_option(e.etag.as_deref());
        time_field.append_option(e.time_field.as_deref());
        text.append_value(&e.text);
        truncated.append_value(e.text_truncated);
        tags.append_value(serde_json::to_string(&e.tags).expect("tags serialize"));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(id.finish()),
        Arc::new(format.finish()),
        Arc::new(rows.finish()),
        Arc::new(bytes.finish()),
        Arc::new(min_time.finish()),
        Arc::new(max_time.finish()),
        Arc::new(created.finish()),
        Arc::new(etag.finish()),
        Arc::new(time_field.finish()),
        Arc::new(text.finish()),
        Arc::new(truncated.finish()),
        Arc::new(tags.finish()),
    ];
    RecordBatch::try_new(manifest_schema(), columns).expect("columns match the manifest schema")
}

#[cfg(feature = "parquet")]
fn entries_from_batch(batch: &RecordBatch) -> std::result::Result<Vec<ManifestEntry>, String> {
    let col = |name: &str| -> std::result::Result<&ArrayRef, String> {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("compacted manifest has no `{name}` column"))
    };
    let string = |name: &str| -> std::result::Result<&arrow_array::StringArray, String> {
        col(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| format!("column `{name}` is not UTF-8 text"))
    };
    let int = |name: &str| -> std::result::Result<&arrow_array::Int64Array, String> {
        col(name)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| format!("column `{name}` is not INT64"))
    };
    let time =
        |name: &str| -> std::result::Result<&arrow_array::TimestampMicrosecondArray, String> {
            col(name)?
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| format!("column `{name}` is not a microsecond timestamp"))
        };
    let (key, id, format, etag, time_field, text, tags) = (
        string("key")?,
        string("id")?,
        string("format")?,
        string("etag")?,
        string("time_field")?,
        string("text")?,
        string("tags")?,
    );
    let (rows, bytes) = (int("rows")?, int("bytes")?);
    let (min_time, max_time, created) = (time("min_time")?, time("max_time")?, time("created")?);
    let truncated = col("text_truncated")?
        .as_boolean_opt()
        .ok_or("column `text_truncated` is not BOOLEAN")?;
    let at = |us: i64| {
        Utc.timestamp_micros(us)
            .single()
            .ok_or_else(|| format!("timestamp {us} is out of range"))
    };
    let opt =
        |a: &arrow_array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    (0..batch.num_rows())
        .map(|i| {
            Ok(ManifestEntry {
                key: key.value(i).to_string(),
                id: id.value(i).to_string(),
                format: Format::from_extension(format.value(i))
                    .ok_or_else(|| format!("row {i}: unknown format `{}`", format.value(i)))?,
                rows: rows.value(i) as u64,
                bytes: bytes.value(i) as u64,
                min_time: at(min_time.value(i))?,
                max_time: at(max_time.value(i))?,
                etag: opt(etag, i),
                created: at(created.value(i))?,
                time_field: opt(time_field, i),
                text: text.value(i).to_string(),
                text_truncated: truncated.value(i),
                tags: serde_json::from_str(tags.value(i))
                    .map_err(|e| format!("row {i}: tags are not a JSON object: {e}"))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn entry(n: u32, day: u32) -> ManifestEntry {
        let t = Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap();
        let id = new_id(t);
        ManifestEntry {
            key: format!("m/u/2024/01/{day:02}/{id}.jsonl"),
            id,
            format: Format::Jsonl,
            rows: u64::from(n),
            bytes: 100,
            min_time: t,
            max_time: t + chrono::Duration::hours(1),
            etag: Some(format!("\"etag{n}\"")),
            created: t,
            time_field: Some("timestamp".into()),
            text: format!("entry number{n}"),
            text_truncated: false,
            tags: BTreeMap::from([("n".to_string(), n.to_string())]),
        }
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn entries_survive_the_parquet_schema() {
        let mut entries: Vec<ManifestEntry> = (1..=3).map(|n| entry(n, n)).collect();
        entries[1].etag = None;
        entries[2].time_field = None;
        let back = entries_from_batch(&entries_to_batch(&entries)).unwrap();
        assert_eq!(back, entries);
    }

    #[tokio::test]
    async fn append_scan_compact_and_prune() {
        let m = Manifest::new(Bucket::memory("t"), "m", "u")
            .unwrap()
            .with_options(ManifestOptions {
                row_group_rows: 2,
                auto_compact_segments: None,
                ..Default::default()
            });
        for day in 1..=10 {
            m.append(&[entry(day, day)]).await.unwrap();
        }
        assert_eq!(m.head().await.unwrap().segments.len(), 10);
        let report = m.compact().await.unwrap();
        assert_eq!(report.segments_folded, 10);
        assert_eq!(report.entries, 10);
        let head = m.head().await.unwrap();
        assert!(head.segments.is_empty());
        assert_eq!(head.parts.len(), 1);
        // Folded segments are gone from the store.
        let left: Vec<_> = m
            .bucket()
            .list("manifests/m/u/segments/")
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        assert!(left.is_empty());

        m.append(&[entry(11, 11)]).await.unwrap();
        let all = m.entries().await.unwrap();
        assert_eq!(all.len(), 11);
        let jan3 = TimeRange::between(
            Utc.with_ymd_and_hms(2024, 1, 3, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2024, 1, 5, 0, 0, 0).unwrap(),
        )
        .unwrap();
        let hits = m
            .scan(&EntryFilter {
                range: jan3,
                ..Default::default()
            })
            .await
            .unwrap();
        let days: Vec<u64> = hits.iter().map(|e| e.rows).collect();
        assert_eq!(days, vec![3, 4]);

        // Re-appending a key replaces the earlier entry instead of duplicating it.
        let mut again = entry(3, 3);
        again.key = all[2].key.clone();
        again.rows = 33;
        m.append(&[again]).await.unwrap();
        let all = m.entries().await.unwrap();
        assert_eq!(all.len(), 11);
        assert_eq!(all[2].rows, 33);
    }

    #[tokio::test]
    async fn automatic_compaction_folds_segments() {
        let m = Manifest::new(Bucket::memory("t"), "m", "u")
            .unwrap()
            .with_options(ManifestOptions {
                auto_compact_segments: Some(4),
                max_parts: 2,
                ..Default::default()
            });
        for day in 1..=13 {
            m.append(&[entry(day, day)]).await.unwrap();
        }
        let head = m.head().await.unwrap();
        assert!(head.segments.len() < 4, "{head:?}");
        assert!(head.parts.len() <= 2, "{head:?}");
        assert_eq!(m.entries().await.unwrap().len(), 13);
    }

    /// A manifest another build compacted into Parquet: without the feature, every read that
    /// would need the part fails naming the feature, and nothing returns a partial list.
    #[cfg(not(feature = "parquet"))]
    #[tokio::test]
    async fn a_parquet_part_fails_every_read_that_needs_it() {
        let m = Manifest::new(Bucket::memory("t"), "m", "u")
            .unwrap()
            .with_options(ManifestOptions {
                auto_compact_segments: None,
                ..Default::default()
            });
        m.append(&[entry(1, 1)]).await.unwrap();
        let report = m.compact().await.unwrap();
        assert!(
            report.part.as_deref().unwrap().ends_with(".jsonl"),
            "{report:?}"
        );
        m.append(&[entry(2, 2)]).await.unwrap();
        let part_key = format!("{}compacted/{}.parquet", m.prefix, new_id(Utc::now()));
        m.bucket().put(&part_key, "PAR1 PAR1").await.unwrap();
        let day = |d| Utc.with_ymd_and_hms(2024, 1, d, 0, 0, 0).unwrap();
        let part = PartRef {
            key: part_key.clone(),
            entries: 5,
            bytes: 9,
            min_time: Some(day(20)),
            max_time: Some(day(25)),
        };
        update_head(&m.heads, &m.head_id(), move |h| {
            h.parts.push(part.clone());
            Ok(())
        })
        .await
        .unwrap();
        let check = |err: StorageError| {
            assert!(matches!(err, StorageError::NotSupported { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(
                msg.contains(&part_key) && msg.contains("enable the `parquet` feature"),
                "{msg}"
            );
        };
        check(m.entries().await.unwrap_err());
        check(m.search(&SearchQuery::new("entry")).await.unwrap_err());
        let head = m.head().await.unwrap();
        check(m.compact_all().await.unwrap_err());
        assert_eq!(
            m.head().await.unwrap(),
            head,
            "a failed compaction changes nothing"
        );
        // A window the head says the part cannot overlap does not need it: complete answer.
        let jan1 = EntryFilter {
            range: TimeRange::between(day(1), day(2)).unwrap(),
            ..Default::default()
        };
        let hits = m.scan(&jan1).await.unwrap();
        assert_eq!(hits.iter().map(|e| e.rows).collect::<Vec<_>>(), vec![1]);
    }

    #[tokio::test]
    async fn a_corrupt_segment_is_reported_with_its_key() {
        let bucket = Bucket::memory("t");
        let m = Manifest::new(bucket.clone(), "m", "u").unwrap();
        let seg = m.append(&[entry(1, 1)]).await.unwrap();
        bucket.put(&seg.key, "{not json\n").await.unwrap();
        let err = m.entries().await.unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(&seg.key), "{err}");
    }
}
