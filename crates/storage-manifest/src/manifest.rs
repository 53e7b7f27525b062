//! The manifest of one `{module}/{user}`: an index entry per data file.

#[cfg(feature = "parquet")]
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
#[cfg(feature = "parquet")]
use std::sync::Mutex;

use bytes::Bytes;
use chrono::Utc;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use serde::Serialize;
use storage_cas::{BackoffStrategy, Collection};
use storage_core::{Bucket, DeleteReport, PutOpts, Result, StorageError};

use crate::entry::{EntryFilter, ManifestEntry};
#[cfg(not(feature = "parquet"))]
use crate::format::parquet_not_compiled;
use crate::format::{Compression, Format};
use crate::head::{
    HEAD_BACKOFF, HeadCache, ManifestHead, PartRef, SegmentRef, head_collection, read_head,
    update_head,
};
use crate::names::{manifest_prefix, new_id, validate_name};
#[cfg(feature = "parquet")]
use crate::parquet_io::{OpenParquet, ParquetSettings, encode, footer_len};
#[cfg(feature = "parquet")]
use crate::part::{PartFile, PartSearch, entries_to_batch};
use crate::search::{Found, SearchHit, SearchQuery, SearchResults, TopK, results, text_score};

/// Settings of a [`Manifest`].
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestOptions {
    /// Retry policy for head compare-and-swap (default [`HEAD_BACKOFF`]).
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
    cache: Arc<ReadCache>,
}

/// What a handle and its clones keep between reads: the head (revalidated by ETag on every
/// read) and the opened footers of compacted parts (immutable objects under fresh keys, so a
/// footer stays valid for as long as a head lists its part).
#[derive(Default)]
struct ReadCache {
    head: HeadCache,
    #[cfg(feature = "parquet")]
    footers: Mutex<HashMap<String, OpenParquet>>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache").finish_non_exhaustive()
    }
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
            cache: Arc::default(),
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

    /// The current head (an empty one when nothing was appended yet). The handle keeps the
    /// last head it read and asks the store for it again only if its ETag changed.
    pub async fn head(&self) -> Result<ManifestHead> {
        let head = read_head(&self.heads, &self.head_id(), &self.cache.head).await?;
        #[cfg(feature = "parquet")]
        self.forget_footers(&head);
        Ok(head)
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
        self.at_current_head(|head| async move { self.scan_head(&head, filter).await })
            .await
    }

    /// Run `read` on the current head; when a compaction replaced the head and removed what
    /// it listed under the read, read the new head and run it again.
    async fn at_current_head<T, F, Fut>(&self, read: F) -> Result<T>
    where
        F: Fn(ManifestHead) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            let head = self.head().await?;
            match read(head).await {
                Err(e) if e.is_not_found() && attempt + 1 < SCAN_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    /// Parts of `head` that may hold entries in `range`, by the time span the head records.
    fn parts_in(head: &ManifestHead, range: &crate::TimeRange) -> Vec<PartRef> {
        head.parts
            .iter()
            .filter(|p| match (p.min_time, p.max_time) {
                (Some(min), Some(max)) => range.overlaps(min, max),
                _ => true,
            })
            .cloned()
            .collect()
    }

    async fn scan_head(
        &self,
        head: &ManifestHead,
        filter: &EntryFilter,
    ) -> Result<Vec<ManifestEntry>> {
        // Owned inputs and boxed futures: keeps the future `Send` for any caller
        // (`tokio::spawn`), which borrowed iterator adaptors inside a stream do not.
        let parts = Self::parts_in(head, &filter.range);
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
        self.part_file(part).await?.entries(filter).await
    }

    /// The opened footer of `part`, from the cache or read with one exact ranged GET.
    #[cfg(feature = "parquet")]
    async fn part_file<'a>(&'a self, part: &'a PartRef) -> Result<PartFile<'a>> {
        let cached = self
            .cache
            .footers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&part.key)
            .cloned();
        let open = match cached {
            Some(open) => open,
            None => {
                let open = OpenParquet::open(
                    self.bucket.name(),
                    self.bucket.store().clone(),
                    &part.key,
                    Some(part.bytes),
                    part.footer_bytes,
                )
                .await?;
                self.cache
                    .footers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(part.key.clone(), open.clone());
                open
            }
        };
        Ok(PartFile {
            open,
            backend: self.bucket.name(),
            key: &part.key,
        })
    }

    /// Search the manifest's indexed text (case-insensitive; every word of the query must
    /// occur), filtered by time, format and tags, ranked and paged. This reads the manifest
    /// only; [`Dataset::search`](crate::Dataset::search) can confirm in the files.
    ///
    /// Compacted Parquet parts are searched column-wise: only the columns the query needs are
    /// read (of the row groups its time window can touch), the filters and the score run on
    /// the arrays, the best hits up to the page's end are kept in a bounded heap while the
    /// total is counted, and only the page's hits are read in full. Entries of a part are
    /// replaced by a later part's or segment's entry for the same key (as
    /// [`Manifest::scan`] does), checked only where such a later source exists.
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchResults> {
        self.at_current_head(|head| async move { self.search_head(&head, query).await })
            .await
    }

    async fn search_head(&self, head: &ManifestHead, query: &SearchQuery) -> Result<SearchResults> {
        let filter = query.filter();
        let terms = query.terms();
        let mut top: TopK<Found> = TopK::for_page(query);
        let (mut total, mut scanned) = (0usize, 0usize);

        // Segments are newest and small: read whole, later duplicates replacing earlier ones.
        let segment_reads: Vec<BoxFuture<'_, Result<Vec<ManifestEntry>>>> = head
            .segments
            .iter()
            .map(|s| self.read_jsonl(&s.key, &filter).boxed())
            .collect();
        let segments: Vec<Vec<ManifestEntry>> = futures::stream::iter(segment_reads)
            .buffered(16)
            .try_collect()
            .await?;
        let newer = dedupe(segments.into_iter().flatten());
        let mut shadowed: HashSet<String> = newer.iter().map(|e| e.key.clone()).collect();
        let offer = |top: &mut TopK<Found>, entry: ManifestEntry| {
            if let Some(score) = text_score(&entry.text, &terms) {
                let (newest, key) = (entry.max_time, entry.key.clone());
                top.offer(score, newest, &key, move || Found::Entry(Box::new(entry)));
                return true;
            }
            false
        };
        scanned += newer.len();
        for entry in newer {
            total += usize::from(offer(&mut top, entry));
        }

        // Parts, newest first: each skips the keys a newer source lists.
        let parts = Self::parts_in(head, &filter.range);
        #[cfg(feature = "parquet")]
        let mut files: HashMap<usize, PartFile<'_>> = HashMap::new();
        for (n, part) in parts.iter().enumerate().rev() {
            let older_remain = n > 0;
            if part.key.ends_with(".parquet") {
                #[cfg(feature = "parquet")]
                {
                    let file = self.part_file(part).await?;
                    let search = PartSearch {
                        filter: &filter,
                        terms: &terms,
                        shadowed: &shadowed,
                        collect_keys: older_remain,
                    };
                    let hits = file.search(search, n, &mut top).await?;
                    total += hits.total;
                    scanned += hits.scanned;
                    shadowed.extend(hits.keys);
                    files.insert(n, file);
                    continue;
                }
            }
            for entry in self.read_part(part, &filter).await? {
                if shadowed.contains(&entry.key) {
                    continue;
                }
                if older_remain {
                    shadowed.insert(entry.key.clone());
                }
                scanned += 1;
                total += usize::from(offer(&mut top, entry));
            }
        }

        // Only the page's hits become entries: rows of each part in one read.
        let page = top.page(query);
        #[cfg(feature = "parquet")]
        let mut rows_of: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        #[cfg(feature = "parquet")]
        for r in &page {
            if let Found::Row { part, row } = r.found {
                rows_of.entry(part).or_default().push(row);
            }
        }
        #[cfg(feature = "parquet")]
        let mut read_rows: HashMap<(usize, u64), ManifestEntry> = HashMap::new();
        #[cfg(feature = "parquet")]
        for (part, mut rows) in rows_of {
            rows.sort_unstable();
            let entries = files[&part].rows(&rows).await?;
            read_rows.extend(rows.into_iter().map(|r| (part, r)).zip(entries));
        }
        let hits = page
            .into_iter()
            .map(|r| SearchHit {
                score: r.score,
                matched_rows: None,
                entry: match r.found {
                    Found::Entry(e) => *e,
                    #[cfg(feature = "parquet")]
                    Found::Row { part, row } => read_rows
                        .remove(&(part, row))
                        .expect("every page row was read"),
                },
            })
            .collect();
        Ok(results(hits, total, scanned, query))
    }

    /// Drop cached footers of parts `head` no longer lists (compaction deleted them).
    #[cfg(feature = "parquet")]
    fn forget_footers(&self, head: &ManifestHead) {
        let listed: HashSet<&str> = head.parts.iter().map(|p| p.key.as_str()).collect();
        self.cache
            .footers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| listed.contains(k.as_str()));
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
        let entries = self
            .scan_head(&folded_head, &EntryFilter::default())
            .await?;
        let entry_count = entries.len() as u64;
        let (part_keys, segment_keys): (HashSet<String>, HashSet<String>) = (
            parts.iter().map(|p| p.key.clone()).collect(),
            segments.iter().map(|s| s.key.clone()).collect(),
        );
        let (part, cleanup) = self
            .swap_in_part(entries, |h, new_part| {
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
                Ok(part_keys.iter().chain(&segment_keys).cloned().collect())
            })
            .await?;
        Ok(CompactReport {
            segments_folded: segments.len(),
            parts_merged: parts.len(),
            entries: entry_count,
            part: Some(part.key),
            cleanup_failures: cleanup.failed.len(),
        })
    }

    /// Write `entries` as a new compacted part, sorted by time then key (the order readers
    /// and time pruning want), and list it in the head with `swap`, which edits the head and
    /// returns the keys it no longer lists; those are deleted once the head is stored. If the
    /// head cannot be stored the new part, listed nowhere, is deleted again.
    async fn swap_in_part(
        &self,
        mut entries: Vec<ManifestEntry>,
        mut swap: impl FnMut(&mut ManifestHead, &PartRef) -> Result<Vec<String>>,
    ) -> Result<(PartRef, DeleteReport)> {
        entries.sort_by(|a, b| a.min_time.cmp(&b.min_time).then_with(|| a.key.cmp(&b.key)));
        let part = self.write_part(&entries).await?;
        let mut unlisted = Vec::new();
        let swapped = update_head(&self.heads, &self.head_id(), |h| {
            unlisted = swap(h, &part)?;
            Ok(())
        })
        .await;
        if let Err(e) = swapped {
            // Another compaction or rebuild got there first; our part is not listed anywhere.
            let _ = self.bucket.delete(&part.key).await;
            return Err(e);
        }
        let cleanup = self
            .bucket
            .delete_many(unlisted.iter().map(String::as_str))
            .await;
        Ok((part, cleanup))
    }

    /// Write `entries` (already in the wanted order) as a new compacted part; not yet listed.
    pub(crate) async fn write_part(&self, entries: &[ManifestEntry]) -> Result<PartRef> {
        let (body, format) = self.encode_part(entries)?;
        let bytes = body.len() as u64;
        #[cfg(feature = "parquet")]
        let footer_bytes = footer_len(&body).filter(|_| format == Format::Parquet);
        #[cfg(not(feature = "parquet"))]
        let footer_bytes = None;
        let key = self
            .put_new_object("compacted", format.extension(), body, format.content_type())
            .await?;
        Ok(PartRef {
            key,
            entries: entries.len() as u64,
            bytes,
            min_time: entries.iter().map(|e| e.min_time).min(),
            max_time: entries.iter().map(|e| e.max_time).max(),
            footer_bytes,
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
        entries: Vec<ManifestEntry>,
    ) -> Result<()> {
        let old_segments: HashSet<String> = seen.segments.iter().map(|s| s.key.clone()).collect();
        self.swap_in_part(entries, |h, new_part| {
            let mut dropped: Vec<String> = h.parts.iter().map(|p| p.key.clone()).collect();
            dropped.extend(
                h.segments
                    .iter()
                    .filter(|s| old_segments.contains(&s.key))
                    .map(|s| s.key.clone()),
            );
            h.parts = vec![new_part.clone()];
            h.segments.retain(|s| !old_segments.contains(&s.key));
            Ok(dropped)
        })
        .await?;
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::TimeRange;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

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
            footer_bytes: None,
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
