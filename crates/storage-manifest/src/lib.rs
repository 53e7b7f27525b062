//! # storage-manifest
//!
//! Datasets in object storage, the way seed 003's R2 manager kept them, done once and well:
//!
//! - [`Dataset::write`] stores records as **JSON** (one document), **JSONL** or **Parquet**
//!   (Arrow, snappy or zstd, row groups sized for range reads, a time column for pruning)
//!   under `{module}/{user}/{yyyy}/{mm}/{dd}/{id}.{ext}`, with time-sortable ids; bad records
//!   are rejected whole with an error naming `records[i].field`.
//! - [`Dataset::read`] and [`Dataset::read_all`] (streamed, with a time window and column
//!   projection; Parquet through the async reader over `ObjectStore`, skipping row groups by
//!   their time statistics).
//! - A [`Manifest`] per `{module}/{user}` indexes every file. Appends write a small immutable
//!   segment and add it to a small head by ETag compare-and-swap, so concurrent writers lose
//!   nothing and nothing grows per append; [`Manifest::compact`] folds segments into Parquet
//!   that pyarrow, DuckDB and Spark read directly.
//! - [`Dataset::search`]: case-insensitive text search from the manifest, optionally
//!   confirmed in the files, filtered by time, format and tags, ranked and paged.
//! - [`Dataset::verify`], [`Dataset::rebuild`], [`Dataset::presign`],
//!   [`Dataset::check_etag_conflict`], and keyed JSON blobs ([`Dataset::put_blob`]).
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use futures::TryStreamExt;
//! use serde_json::json;
//! use storage_core::Bucket;
//! use storage_manifest::{Dataset, Format, ReadOptions, SearchQuery, TimeRange};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
//! let ds = Dataset::new(Bucket::memory("data"));
//! let rows = vec![
//!     json!({"timestamp": "2024-01-15T08:00:00Z", "amount": 4.5, "description": "Coffee"}),
//!     json!({"timestamp": "2024-01-20T12:00:00Z", "amount": 42.0, "description": "Groceries"}),
//! ];
//! let file = ds.write("finance", "user123", &rows, Format::Jsonl).await?;
//! assert_eq!((file.rows, file.format), (2, Format::Jsonl));
//! assert!(file.key.starts_with("finance/user123/"));
//!
//! // Everything of January 15th, streamed (a Parquet file would skip its other row groups).
//! let day = TimeRange::between(
//!     Utc.with_ymd_and_hms(2024, 1, 15, 0, 0, 0).unwrap(),
//!     Utc.with_ymd_and_hms(2024, 1, 16, 0, 0, 0).unwrap(),
//! )?;
//! let found: Vec<_> = ds
//!     .read_all("finance", "user123", &ReadOptions::default().with_range(day))
//!     .await?
//!     .try_collect()
//!     .await?;
//! assert_eq!(found, vec![rows[0].clone()]);
//!
//! // Search answers from the manifest alone.
//! let hits = ds.search("finance", "user123", &SearchQuery::new("COFFEE")).await?;
//! assert_eq!(hits.total, 1);
//! # Ok(()) }
//! ```
//!
//! ## Cargo features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `parquet` | yes | [`Format::Parquet`] dataset files and manifests compacted into Parquet (depends on `parquet`, `arrow-array`, `arrow-schema`) |
//!
//! With `default-features = false` (the `strata` facade's `manifest` feature; its
//! `manifest-parquet` feature turns `parquet` on) JSON and JSONL datasets, the manifest,
//! search, time windows and the compare-and-swap head work as above, and:
//!
//! - [`Format::Parquet`] still exists and parses, but writing, reading, deep-searching or
//!   rebuilding over a Parquet file is [`StorageError::NotSupported`](storage_core::StorageError)
//!   naming the missing feature (a write fails before anything is stored);
//! - [`Manifest::compact`] writes JSONL parts instead of Parquet (a build with the feature
//!   reads them), and a manifest another build compacted into Parquet fails the same clear
//!   way on every read, never returning part of its entries;
//! - `RecordSchema::to_record_batch` and `manifest_schema` (they return Arrow types) do not
//!   exist.
//!
//! ```
//! use serde_json::json;
//! use storage_core::{Bucket, StorageError};
//! use storage_manifest::{Dataset, Format};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
//! let ds = Dataset::new(Bucket::memory("data"));
//! let written = ds.write("finance", "user123", &[json!({"amount": 4.5})], Format::Parquet).await;
//! if cfg!(feature = "parquet") {
//!     assert_eq!(written?.format, Format::Parquet);
//! } else {
//!     let err = written.unwrap_err();
//!     assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
//!     assert!(err.to_string().contains("enable the `parquet` feature"), "{err}");
//!     assert!(ds.manifest("finance", "user123")?.entries().await?.is_empty());
//! }
//! # Ok(()) }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod dataset;
mod entry;
mod format;
mod head;
mod manifest;
mod names;
#[cfg(feature = "parquet")]
mod parquet_io;
#[cfg(feature = "parquet")]
mod part;
mod records;
mod search;
mod time_range;

pub use dataset::{
    DEFAULT_TIME_FIELD, Dataset, EtagCheck, ReadOptions, RebuildReport, VerifyReport, WriteOptions,
};
pub use entry::{EntryFilter, ManifestEntry};
pub use format::{Compression, Format};
pub use head::{HEAD_BACKOFF, HEAD_FORMAT, ManifestHead, PartRef, SegmentRef};
pub use manifest::{CompactReport, Manifest, ManifestOptions};
pub use names::{
    BLOB_PREFIX, ID_LEN, MANIFEST_PREFIX, MAX_NAME_LEN, RESERVED_MODULES, data_key, data_prefix,
    id_time, manifest_prefix, new_id, parse_data_key, validate_name,
};
#[cfg(feature = "parquet")]
pub use part::manifest_schema;
pub use records::{
    Column, ColumnType, JSON_COLUMN_META, MAX_INDEX_BYTES, MAX_INDEX_WORDS, RecordSchema,
    index_text,
};
pub use search::{DEFAULT_PAGE_SIZE, SearchHit, SearchQuery, SearchResults};
pub use storage_cas::{BackoffStrategy, Jitter};
pub use time_range::TimeRange;
