//! [`Dataset`]: write and read JSON, JSONL and Parquet files under `{module}/{user}/{date}`,
//! keep their manifest, search, verify, rebuild, presign; and keyed JSON blobs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(feature = "parquet")]
use arrow_array::{RecordBatch, cast::AsArray, types::TimestampMicrosecondType};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use storage_core::{Bucket, PresignMethod, PutOpts, Result, StorageError, WriteResult, etag_eq};
use url::Url;

use crate::entry::{EntryFilter, ManifestEntry};
#[cfg(not(feature = "parquet"))]
use crate::format::parquet_not_compiled;
use crate::format::{Compression, Format};
use crate::manifest::{Manifest, ManifestOptions};
use crate::names::{
    BLOB_PREFIX, data_key, data_prefix, id_time, new_id, parse_data_key, validate_name,
};
#[cfg(feature = "parquet")]
use crate::parquet_io::{OpenParquet, ParquetSettings, ReadPlan, encode, prune_row_groups};
#[cfg(feature = "parquet")]
use crate::records::rows_to_records;
use crate::records::{RecordSchema, index_text, parse_time, record_times, value_contains};
use crate::search::{SearchHit, SearchQuery, SearchResults, page};
use crate::time_range::TimeRange;

/// Default name of the record field holding each record's time.
pub const DEFAULT_TIME_FIELD: &str = "timestamp";

/// Object metadata written with each data file, so `rebuild` can restore the manifest from a
/// listing.
const META_TIME_FIELD: &str = "strata-time-field";
const META_TAGS: &str = "strata-tags";
const META_ROWS: &str = "strata-rows";
/// Most bytes of JSON tags kept in object metadata (S3 allows 2 KiB of metadata in all).
const MAX_TAG_META_BYTES: usize = 1024;

/// Options for [`Dataset::write_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Record field holding each record's time (RFC 3339 text or integer milliseconds); it
    /// gives the file's time range and becomes the Parquet time column used for pruning.
    /// Records without it count as written at the file's creation time. Default
    /// [`DEFAULT_TIME_FIELD`].
    pub time_field: Option<String>,
    /// Parquet only: the declared schema (default: inferred from the records).
    pub schema: Option<RecordSchema>,
    /// Parquet only: compression codec.
    pub compression: Compression,
    /// Parquet only: rows per row group. Smaller groups make time-range reads fetch less;
    /// larger ones compress better. Default 65 536.
    pub row_group_rows: usize,
    /// Tags stored in the manifest entry (and searchable by filter).
    pub tags: BTreeMap<String, String>,
    /// Creation time to record (default: now). It picks the date folder and the id.
    pub created: Option<DateTime<Utc>>,
    /// Index the records' words for manifest search (default true).
    pub index_text: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            time_field: Some(DEFAULT_TIME_FIELD.to_string()),
            schema: None,
            compression: Compression::Snappy,
            row_group_rows: 65_536,
            tags: BTreeMap::new(),
            created: None,
            index_text: true,
        }
    }
}

impl WriteOptions {
    /// Add a tag.
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Use `field` as the time field (`None`: records carry no time).
    pub fn with_time_field(mut self, field: Option<&str>) -> Self {
        self.time_field = field.map(str::to_string);
        self
    }

    /// Declare the Parquet schema.
    pub fn with_schema(mut self, schema: RecordSchema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Parquet compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Parquet rows per row group.
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows;
        self
    }

    /// Record `at` as the creation time.
    pub fn created_at(mut self, at: DateTime<Utc>) -> Self {
        self.created = Some(at);
        self
    }
}

/// Options for reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only records whose time is in this window (records without a time count as written at
    /// their file's creation time). Parquet row groups outside it are not fetched.
    pub range: TimeRange,
    /// Only these fields of each record (default: all). Parquet fetches only these columns.
    pub columns: Option<Vec<String>>,
}

impl ReadOptions {
    /// Only records in `range`.
    pub fn with_range(mut self, range: TimeRange) -> Self {
        self.range = range;
        self
    }

    /// Only these fields.
    pub fn with_columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }
}

/// The outcome of [`Dataset::check_etag_conflict`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EtagCheck {
    /// The object still has the expected ETag: safe to proceed.
    Unchanged,
    /// Someone replaced the object: reload it and retry.
    Changed {
        /// Its current ETag.
        current: Option<String>,
    },
    /// The object is gone.
    Missing,
}

impl EtagCheck {
    /// Whether this is a conflict (anything but [`EtagCheck::Unchanged`]).
    pub fn is_conflict(&self) -> bool {
        !matches!(self, EtagCheck::Unchanged)
    }
}

/// What [`Dataset::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Manifest entries checked.
    pub entries: usize,
    /// Objects found under the data prefix.
    pub objects: usize,
    /// In the manifest, not in the store.
    pub missing: Vec<String>,
    /// In the store, not in the manifest.
    pub orphaned: Vec<String>,
    /// `(key, manifest bytes, stored bytes)` where they differ.
    pub size_mismatch: Vec<(String, u64, u64)>,
    /// `(key, manifest ETag, stored ETag)` where they differ.
    pub etag_mismatch: Vec<(String, String, String)>,
}

impl VerifyReport {
    /// Whether manifest and store agree.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.orphaned.is_empty()
            && self.size_mismatch.is_empty()
            && self.etag_mismatch.is_empty()
    }
}

/// What [`Dataset::rebuild`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// Entries in the rebuilt manifest.
    pub entries: usize,
    /// Objects under the data prefix that are not dataset files, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Datasets of JSON, JSONL and Parquet files in one bucket, indexed by per-`{module}/{user}`
/// manifests. Cheap to clone.
///
/// Parquet files need the `parquet` feature (on by default). Without it, writing, reading
/// (also through [`Dataset::read_all`] and a deep [`Dataset::search`]) or rebuilding over a
/// Parquet file is [`StorageError::NotSupported`] naming the feature, never a partial answer.
///
/// ```
/// use serde_json::json;
/// use storage_core::Bucket;
/// use storage_manifest::{Dataset, Format, SearchQuery};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let ds = Dataset::new(Bucket::memory("data"));
/// let file = ds
///     .write("finance", "user123", &[json!({"amount": 50.0, "description": "Coffee"})], Format::Jsonl)
///     .await?;
/// assert_eq!(file.rows, 1);
/// let hits = ds.search("finance", "user123", &SearchQuery::new("coffee")).await?;
/// assert_eq!(hits.hits[0].entry.key, file.key);
/// assert_eq!(ds.read("finance", "user123", &file.id).await?[0]["description"], "Coffee");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Dataset {
    bucket: Bucket,
    manifest_options: ManifestOptions,
    /// Manifest handles by `(module, user)`, shared by clones, so repeated searches reuse a
    /// handle's cached head (revalidated by ETag) and part footers.
    manifests: Arc<Mutex<HashMap<(String, String), Manifest>>>,
}

/// Manifest handles a [`Dataset`] keeps; past this many it starts again from none (each
/// holds a head and the footers of its parts).
const KEPT_MANIFESTS: usize = 256;

impl Dataset {
    /// Datasets in `bucket`.
    pub fn new(bucket: Bucket) -> Self {
        Dataset {
            bucket,
            manifest_options: ManifestOptions::default(),
            manifests: Arc::default(),
        }
    }

    /// Use `options` for every manifest.
    pub fn with_manifest_options(mut self, options: ManifestOptions) -> Self {
        self.manifest_options = options;
        self.manifests = Arc::default();
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The manifest of `module`/`user` (the same handle, and so the same read cache, each
    /// time while this dataset or a clone keeps it).
    pub fn manifest(&self, module: &str, user: &str) -> Result<Manifest> {
        let id = (module.to_string(), user.to_string());
        let mut kept = self.manifests.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = kept.get(&id) {
            return Ok(m.clone());
        }
        let m = Manifest::new(self.bucket.clone(), module, user)?
            .with_options(self.manifest_options.clone());
        if kept.len() >= KEPT_MANIFESTS {
            kept.clear();
        }
        kept.insert(id, m.clone());
        Ok(m)
    }

    /// Write `records` as one file with default options. See [`Dataset::write_with`].
    pub async fn write(
        &self,
        module: &str,
        user: &str,
        records: &[Value],
        format: Format,
    ) -> Result<ManifestEntry> {
        self.write_with(module, user, records, format, &WriteOptions::default())
            .await
    }

    /// Write `records` as one new file `{module}/{user}/{yyyy}/{mm}/{dd}/{id}.{ext}` and add
    /// it to the manifest. Returns the manifest entry (key, format, rows, bytes, time range,
    /// ETag, ...).
    ///
    /// The file is encoded whole in memory and stored with one create-if-absent put, so a bad
    /// record (an error naming `records[i].field`) leaves nothing behind. If the manifest
    /// append fails after the put, the file is deleted again (best effort; `verify` reports
    /// any leftover as orphaned and `rebuild` indexes it).
    ///
    /// [`Format::Parquet`] without the `parquet` feature is [`StorageError::NotSupported`],
    /// returned before anything is written.
    pub async fn write_with(
        &self,
        module: &str,
        user: &str,
        records: &[Value],
        format: Format,
        options: &WriteOptions,
    ) -> Result<ManifestEntry> {
        let manifest = self.manifest(module, user)?;
        if records.is_empty() {
            return Err(StorageError::invalid_input(
                "records",
                "no records given; a file needs at least one",
            ));
        }
        let created = options.created.unwrap_or_else(Utc::now);
        let id = new_id(created);
        let key = data_key(module, user, &id, format.extension())?;
        let time_field = options.time_field.as_deref();
        let times = record_times(records, time_field)?;
        let min_time = times.iter().flatten().min().copied().unwrap_or(created);
        let max_time = times.iter().flatten().max().copied().unwrap_or(created);
        let min_time = if times.iter().any(Option::is_none) {
            min_time.min(created)
        } else {
            min_time
        };
        let max_time = if times.iter().any(Option::is_none) {
            max_time.max(created)
        } else {
            max_time
        };
        let body = encode_records(records, format, options)?;
        let (text, text_truncated) = if options.index_text {
            index_text(records, time_field)
        } else {
            (String::new(), false)
        };

        let create = self.bucket.capabilities().create_if_absent;
        let mut opts = if create {
            PutOpts::if_absent()
        } else {
            PutOpts::default()
        }
        .with_content_type(format.content_type())
        .with_metadata(META_ROWS, records.len().to_string());
        if let Some(f) = time_field {
            opts = opts.with_metadata(META_TIME_FIELD, f);
        }
        if !options.tags.is_empty() {
            let tags = ascii_json(&options.tags);
            if tags.len() > MAX_TAG_META_BYTES {
                return Err(StorageError::invalid_input(
                    "tags",
                    format!(
                        "tags are {} bytes as JSON; at most {MAX_TAG_META_BYTES} are allowed",
                        tags.len()
                    ),
                ));
            }
            opts = opts.with_metadata(META_TAGS, tags);
        }
        let bytes = body.len() as u64;
        let written = self.bucket.put_with(&key, body, opts).await?;
        let entry = ManifestEntry {
            key: key.clone(),
            id,
            format,
            rows: records.len() as u64,
            bytes,
            min_time,
            max_time,
            etag: written.etag,
            created,
            time_field: time_field.map(str::to_string),
            text,
            text_truncated,
            tags: options.tags.clone(),
        };
        if let Err(e) = manifest.append(std::slice::from_ref(&entry)).await {
            let _ = self.bucket.delete(&key).await;
            return Err(e);
        }
        Ok(entry)
    }

    /// Every record of file `id` of `module`/`user`, whatever its format.
    pub async fn read(&self, module: &str, user: &str, id: &str) -> Result<Vec<Value>> {
        self.read_with(module, user, id, &ReadOptions::default())
            .await
    }

    /// The records of file `id`, filtered and projected by `options`.
    pub async fn read_with(
        &self,
        module: &str,
        user: &str,
        id: &str,
        options: &ReadOptions,
    ) -> Result<Vec<Value>> {
        let entry = self.locate(module, user, id).await?;
        self.read_entry(&entry, options).await?.try_collect().await
    }

    /// Find file `id` without the manifest: its date folder comes from the id, its format from
    /// whichever extension exists, its time field from the object's metadata.
    async fn locate(&self, module: &str, user: &str, id: &str) -> Result<ManifestEntry> {
        validate_name("module", module)?;
        validate_name("user", user)?;
        let created = id_time(id)?;
        for format in Format::ALL {
            let key = data_key(module, user, id, format.extension())?;
            match self.bucket.head(&key).await {
                Ok(info) => {
                    return Ok(ManifestEntry {
                        key,
                        id: id.to_string(),
                        format,
                        rows: info
                            .metadata
                            .get(META_ROWS)
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(0),
                        bytes: info.size,
                        min_time: created,
                        max_time: created,
                        etag: info.etag,
                        created,
                        time_field: info.metadata.get(META_TIME_FIELD).cloned(),
                        text: String::new(),
                        text_truncated: false,
                        tags: BTreeMap::new(),
                    });
                }
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StorageError::NotFound {
            backend: self.bucket.name().to_string(),
            key: data_key(module, user, id, "{json,jsonl,parquet}")?,
        })
    }

    /// Stream the records of every file of `module`/`user` (oldest file first) whose time
    /// range overlaps `options.range`, filtered to records in the range. Files are listed
    /// from the manifest; Parquet files are read with row-group pruning and projection.
    pub async fn read_all(
        &self,
        module: &str,
        user: &str,
        options: &ReadOptions,
    ) -> Result<BoxStream<'static, Result<Value>>> {
        let manifest = self.manifest(module, user)?;
        let mut entries = manifest
            .scan(&EntryFilter {
                range: options.range,
                ..Default::default()
            })
            .await?;
        entries.sort_by(|a, b| a.min_time.cmp(&b.min_time).then_with(|| a.key.cmp(&b.key)));
        let this = self.clone();
        let options = options.clone();
        Ok(stream::iter(entries)
            .then(move |entry| {
                let (this, options) = (this.clone(), options.clone());
                async move { this.read_entry(&entry, &options).await }
            })
            .try_flatten()
            .boxed())
    }

    /// Stream the records of the file `entry` describes.
    pub async fn read_entry(
        &self,
        entry: &ManifestEntry,
        options: &ReadOptions,
    ) -> Result<BoxStream<'static, Result<Value>>> {
        let fallback = entry.created;
        let time_field = entry.time_field.clone();
        let range = options.range;
        let keep = move |v: &Value| -> bool {
            if range.is_all() {
                return true;
            }
            let t = time_field
                .as_deref()
                .and_then(|f| v.get(f))
                .filter(|x| !x.is_null())
                .and_then(|x| parse_time(x).ok())
                .unwrap_or(fallback);
            range.contains(t)
        };
        let columns = options.columns.clone();
        match entry.format {
            Format::Json | Format::Jsonl => {
                let obj = self.bucket.get(&entry.key).await?;
                let records =
                    decode_text(entry.format, &obj.bytes, self.bucket.name(), &entry.key)?;
                let out: Vec<Result<Value>> = records
                    .into_iter()
                    .filter(|v| keep(v))
                    .map(|v| Ok(project(v, columns.as_deref())))
                    .collect();
                Ok(stream::iter(out).boxed())
            }
            #[cfg(feature = "parquet")]
            Format::Parquet => self.read_parquet(entry, options).await,
            #[cfg(not(feature = "parquet"))]
            Format::Parquet => Err(parquet_not_compiled(format_args!(
                "reading the Parquet dataset file `{}`",
                entry.key
            ))),
        }
    }

    #[cfg(feature = "parquet")]
    async fn read_parquet(
        &self,
        entry: &ManifestEntry,
        options: &ReadOptions,
    ) -> Result<BoxStream<'static, Result<Value>>> {
        let backend = self.bucket.name().to_string();
        let open = OpenParquet::open(
            &backend,
            self.bucket.store().clone(),
            &entry.key,
            Some(entry.bytes).filter(|b| *b > 0),
            None,
        )
        .await?;
        let time_col = entry
            .time_field
            .as_deref()
            .and_then(|f| open.column_index(f).map(|i| (f.to_string(), i)));
        let filtering = !options.range.is_all();
        let row_groups = match (&time_col, filtering) {
            (Some((_, idx)), true) => {
                let file_in_range = options.range.contains(entry.created);
                Some(prune_row_groups(
                    open.metadata(),
                    *idx,
                    *idx,
                    options.range.micros(),
                    file_in_range,
                ))
            }
            (None, true) if !options.range.contains(entry.created) => Some(Vec::new()),
            _ => None,
        };
        let schema = open.arrow_schema();
        let projection: Option<Vec<usize>> = options.columns.as_ref().map(|cols| {
            let mut idx: Vec<usize> = cols
                .iter()
                .filter_map(|c| schema.index_of(c).ok())
                .collect();
            if filtering
                && let Some((_, t)) = &time_col
                && !idx.contains(t)
            {
                idx.push(*t);
            }
            idx.sort_unstable();
            idx
        });
        let range = options.range;
        let fallback = entry.created.timestamp_micros();
        let time_name = time_col.map(|(name, _)| name);
        let columns = options.columns.clone();
        let plan = ReadPlan {
            row_groups,
            columns: projection,
            rows: None,
        };
        let batches = open.stream(&backend, &entry.key, plan, 8192)?;
        Ok(batches
            .map(move |batch| -> Result<Vec<Result<Value>>> {
                let batch = batch?;
                // Rows outside the window and the time column read only to judge them never
                // become JSON.
                let keep: Vec<usize> = row_mask(&batch, time_name.as_deref(), range, fallback)
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, k)| k.then_some(i))
                    .collect();
                let records = rows_to_records(&batch, &keep, columns.as_deref())?;
                Ok(records.into_iter().map(Ok).collect())
            })
            .map_ok(stream::iter)
            .try_flatten()
            .boxed())
    }

    /// Search the manifest of `module`/`user`; with [`SearchQuery::deep`], confirm in the
    /// files: every file passing the filters is read and scored by the number of its records
    /// (in the time window) that contain every query word.
    pub async fn search(
        &self,
        module: &str,
        user: &str,
        query: &SearchQuery,
    ) -> Result<SearchResults> {
        let manifest = self.manifest(module, user)?;
        if !query.deep {
            return manifest.search(query).await;
        }
        let candidates = manifest.scan(&query.filter()).await?;
        let scanned = candidates.len();
        let terms = query.terms();
        let read = ReadOptions {
            range: query.range,
            columns: None,
        };
        let hits: Vec<Option<SearchHit>> = stream::iter(candidates)
            .map(|entry| {
                let (terms, read) = (&terms, &read);
                async move {
                    let mut records = self.read_entry(&entry, read).await?;
                    let mut matched = 0u64;
                    while let Some(record) = records.try_next().await? {
                        if terms.iter().all(|t| value_contains(&record, t)) {
                            matched += 1;
                        }
                    }
                    Ok::<_, StorageError>((matched > 0).then_some(SearchHit {
                        entry,
                        score: matched,
                        matched_rows: Some(matched),
                    }))
                }
            })
            .buffered(8)
            .try_collect()
            .await?;
        Ok(page(hits.into_iter().flatten().collect(), scanned, query))
    }

    /// Compare the manifest of `module`/`user` with the objects under its data prefix.
    pub async fn verify(&self, module: &str, user: &str) -> Result<VerifyReport> {
        let manifest = self.manifest(module, user)?;
        let entries = manifest.entries().await?;
        let objects: Vec<_> = self
            .bucket
            .list(&data_prefix(module, user))
            .try_collect()
            .await?;
        let mut report = VerifyReport {
            entries: entries.len(),
            objects: objects.len(),
            ..Default::default()
        };
        let stored: HashMap<&str, &storage_core::ObjectInfo> =
            objects.iter().map(|o| (o.key.as_str(), o)).collect();
        let listed: HashMap<&str, &ManifestEntry> =
            entries.iter().map(|e| (e.key.as_str(), e)).collect();
        for e in &entries {
            match stored.get(e.key.as_str()) {
                None => report.missing.push(e.key.clone()),
                Some(o) => {
                    if o.size != e.bytes {
                        report.size_mismatch.push((e.key.clone(), e.bytes, o.size));
                    }
                    if let (Some(want), Some(have)) = (&e.etag, &o.etag)
                        && !etag_eq(want, have)
                    {
                        report
                            .etag_mismatch
                            .push((e.key.clone(), want.clone(), have.clone()));
                    }
                }
            }
        }
        report.orphaned = objects
            .iter()
            .filter(|o| !listed.contains_key(o.key.as_str()))
            .map(|o| o.key.clone())
            .collect();
        report.orphaned.sort();
        report.missing.sort();
        Ok(report)
    }

    /// Rebuild the manifest of `module`/`user` from a listing of its data prefix: every
    /// dataset file is read to recompute its entry (rows, time range, text; tags and the time
    /// field come from the object's metadata), and the manifest is replaced by one compacted
    /// part. Entries appended while the rebuild ran are kept.
    pub async fn rebuild(&self, module: &str, user: &str) -> Result<RebuildReport> {
        let manifest = self.manifest(module, user)?;
        let seen = manifest.head().await?;
        let objects: Vec<_> = self
            .bucket
            .list(&data_prefix(module, user))
            .try_collect()
            .await?;
        let mut report = RebuildReport::default();
        let mut files = Vec::new();
        for o in objects {
            match parse_data_key(&o.key) {
                Some((m, u, id, ext)) if m == module && u == user => {
                    match Format::from_extension(ext) {
                        Some(format) => files.push((o.key.clone(), id.to_string(), format)),
                        None => {
                            let reason = format!("unknown extension `.{ext}`");
                            report.skipped.push((o.key, reason));
                        }
                    }
                }
                _ => report.skipped.push((
                    o.key,
                    "not a dataset file name ({module}/{user}/yyyy/mm/dd/{id}.{ext})".into(),
                )),
            }
        }
        // Without Parquet support those files cannot be read, and skipping them would drop them
        // from the rebuilt manifest: refuse instead, before anything is replaced.
        #[cfg(not(feature = "parquet"))]
        if let Some((key, _, _)) = files.iter().find(|(_, _, f)| *f == Format::Parquet) {
            let n = files
                .iter()
                .filter(|(_, _, f)| *f == Format::Parquet)
                .count();
            return Err(parquet_not_compiled(format_args!(
                "rebuilding the manifest of `{module}/{user}`, which has {n} Parquet file(s) such as `{key}`"
            )));
        }
        let results: Vec<std::result::Result<ManifestEntry, (String, String)>> =
            stream::iter(files)
                .map(|(key, id, format)| async move {
                    self.entry_from_object(&key, &id, format)
                        .await
                        .map_err(|e| (key.clone(), e.to_string()))
                })
                .buffered(8)
                .collect()
                .await;
        let mut entries = Vec::new();
        for r in results {
            match r {
                Ok(e) => entries.push(e),
                Err(skip) => report.skipped.push(skip),
            }
        }
        report.entries = entries.len();
        manifest.replace(&seen, entries).await?;
        Ok(report)
    }

    async fn entry_from_object(
        &self,
        key: &str,
        id: &str,
        format: Format,
    ) -> Result<ManifestEntry> {
        let created = id_time(id)?;
        let info = self.bucket.head(key).await?;
        let time_field = info.metadata.get(META_TIME_FIELD).cloned();
        let tags: BTreeMap<String, String> = info
            .metadata
            .get(META_TAGS)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let probe = ManifestEntry {
            key: key.to_string(),
            id: id.to_string(),
            format,
            rows: 0,
            bytes: info.size,
            min_time: created,
            max_time: created,
            etag: info.etag.clone(),
            created,
            time_field: time_field.clone(),
            text: String::new(),
            text_truncated: false,
            tags,
        };
        let records: Vec<Value> = self
            .read_entry(&probe, &ReadOptions::default())
            .await?
            .try_collect()
            .await?;
        let times = record_times(&records, time_field.as_deref())
            .unwrap_or_else(|_| vec![None; records.len()]);
        let untimed = times.iter().any(Option::is_none);
        let mut min_time = times.iter().flatten().min().copied().unwrap_or(created);
        let mut max_time = times.iter().flatten().max().copied().unwrap_or(created);
        if untimed {
            min_time = min_time.min(created);
            max_time = max_time.max(created);
        }
        let (text, text_truncated) = index_text(&records, time_field.as_deref());
        Ok(ManifestEntry {
            rows: records.len() as u64,
            min_time,
            max_time,
            text,
            text_truncated,
            ..probe
        })
    }

    /// A presigned download URL for `key` (any manifest entry's key, or a blob key), valid for
    /// `expires_in` (1 s to 7 days). Needs a bucket with a presigner (S3, R2).
    pub async fn presign(&self, key: &str, expires_in: Duration) -> Result<Url> {
        self.bucket
            .presign(PresignMethod::Get, key, expires_in)
            .await
    }

    /// A presigned download URL for the file of `entry`.
    pub async fn presign_entry(&self, entry: &ManifestEntry, expires_in: Duration) -> Result<Url> {
        self.presign(&entry.key, expires_in).await
    }

    /// Whether `key` still has `expected_etag` (quotes ignored), before an update that would
    /// overwrite someone else's change. For an atomic update, write with
    /// `PutOpts::if_match(etag)` (or [`Dataset::put_blob_if_match`]) instead: this check alone
    /// leaves a window between the check and the write.
    pub async fn check_etag_conflict(&self, key: &str, expected_etag: &str) -> Result<EtagCheck> {
        match self.bucket.head(key).await {
            Ok(info) => match &info.etag {
                Some(current) if etag_eq(current, expected_etag) => Ok(EtagCheck::Unchanged),
                current => Ok(EtagCheck::Changed {
                    current: current.clone(),
                }),
            },
            Err(e) if e.is_not_found() => Ok(EtagCheck::Missing),
            Err(e) => Err(e),
        }
    }

    /// Key of the JSON blob `name`: `json_blobs/{name}.json`.
    pub fn blob_key(name: &str) -> Result<String> {
        let valid = !name.is_empty()
            && name.len() <= 512
            && name.split('/').all(|seg| {
                !seg.is_empty()
                    && !seg.starts_with('.')
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
            });
        if !valid {
            return Err(StorageError::invalid_input(
                "blob name",
                format!(
                    "`{}` is not a blob name: use 1-512 characters of letters, digits, `.`, `_`, `-`, `@`, with `/` between non-empty parts not starting with `.`",
                    name.escape_debug()
                ),
            ));
        }
        let name = name.strip_suffix(".json").unwrap_or(name);
        Ok(format!("{BLOB_PREFIX}/{name}.json"))
    }

    /// Store `value` as the JSON blob `name` (overwriting).
    pub async fn put_blob<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<WriteResult> {
        self.put_blob_with(name, value, PutOpts::default()).await
    }

    /// Store `value` as blob `name` only if it does not exist yet.
    pub async fn create_blob<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<WriteResult> {
        self.put_blob_with(name, value, PutOpts::if_absent()).await
    }

    /// Replace blob `name` only if its ETag is still `etag` (else [`StorageError::Precondition`]).
    pub async fn put_blob_if_match<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
        etag: &str,
    ) -> Result<WriteResult> {
        self.put_blob_with(name, value, PutOpts::if_match(etag))
            .await
    }

    async fn put_blob_with<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
        opts: PutOpts,
    ) -> Result<WriteResult> {
        let key = Self::blob_key(name)?;
        let body = serde_json::to_vec(value).map_err(|e| {
            StorageError::invalid_input("value", format!("cannot serialize to JSON: {e}"))
        })?;
        self.bucket
            .put_with(&key, body, opts.with_content_type("application/json"))
            .await
    }

    /// Read blob `name`: the value and the ETag it was read at.
    pub async fn get_blob<T: DeserializeOwned>(&self, name: &str) -> Result<(T, Option<String>)> {
        let key = Self::blob_key(name)?;
        let obj = self.bucket.get(&key).await?;
        let value = serde_json::from_slice(&obj.bytes).map_err(|e| StorageError::Corrupt {
            backend: self.bucket.name().to_string(),
            key: key.clone(),
            reason: format!("blob is not the expected JSON: {e}"),
        })?;
        Ok((value, obj.info.etag))
    }

    /// Delete blob `name`.
    pub async fn delete_blob(&self, name: &str) -> Result<()> {
        self.bucket.delete(Self::blob_key(name)?).await
    }
}

/// Keep only `columns` of a record.
fn project(v: Value, columns: Option<&[String]>) -> Value {
    match (v, columns) {
        (Value::Object(mut map), Some(cols)) => {
            map.retain(|k, _| cols.iter().any(|c| c == k));
            Value::Object(map)
        }
        (v, _) => v,
    }
}

/// Which rows of `batch` fall in `range`, from its time column (nulls use `fallback`).
#[cfg(feature = "parquet")]
fn row_mask(
    batch: &RecordBatch,
    time_col: Option<&str>,
    range: TimeRange,
    fallback: i64,
) -> Vec<bool> {
    let n = batch.num_rows();
    if range.is_all() {
        return vec![true; n];
    }
    let window = range.micros();
    let inside = |us: i64| window.from.is_none_or(|f| us >= f) && window.to.is_none_or(|t| us < t);
    let times = time_col
        .and_then(|c| batch.column_by_name(c))
        .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>());
    match times {
        Some(t) => (0..n)
            .map(|i| {
                inside(if arrow_array::Array::is_null(t, i) {
                    fallback
                } else {
                    t.value(i)
                })
            })
            .collect(),
        None => vec![inside(fallback); n],
    }
}

fn encode_records(records: &[Value], format: Format, options: &WriteOptions) -> Result<Bytes> {
    match format {
        Format::Json => {
            let body = match records {
                [one @ Value::Object(_)] => serde_json::to_vec(one),
                many => serde_json::to_vec(many),
            };
            Ok(Bytes::from(body.expect("JSON values serialize")))
        }
        Format::Jsonl => {
            let mut body = Vec::with_capacity(records.len() * 64);
            for r in records {
                serde_json::to_writer(&mut body, r).expect("JSON values serialize");
                body.push(b'\n');
            }
            Ok(Bytes::from(body))
        }
        #[cfg(not(feature = "parquet"))]
        Format::Parquet => {
            let _ = options;
            Err(parquet_not_compiled("writing a Parquet dataset file"))
        }
        #[cfg(feature = "parquet")]
        Format::Parquet => {
            let schema = match &options.schema {
                Some(s) => s.clone(),
                None => RecordSchema::infer(records, options.time_field.as_deref())?,
            };
            let batch = schema.to_record_batch(records)?;
            encode(
                &batch,
                ParquetSettings {
                    compression: options.compression,
                    row_group_rows: options.row_group_rows,
                    statistics_only: None,
                },
            )
        }
    }
}

fn decode_text(format: Format, bytes: &[u8], backend: &str, key: &str) -> Result<Vec<Value>> {
    let corrupt = |reason: String| StorageError::Corrupt {
        backend: backend.to_string(),
        key: key.to_string(),
        reason,
    };
    match format {
        Format::Json => match serde_json::from_slice(bytes)
            .map_err(|e| corrupt(format!("not valid JSON: {e}")))?
        {
            Value::Array(items) => Ok(items),
            one => Ok(vec![one]),
        },
        _ => bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(n, line)| {
                serde_json::from_slice(line)
                    .map_err(|e| corrupt(format!("line {} is not valid JSON: {e}", n + 1)))
            })
            .collect(),
    }
}

/// JSON with every non-ASCII character escaped, so it can travel as an HTTP header.
fn ascii_json<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_string(value).expect("tags serialize");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}
