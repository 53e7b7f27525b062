//! Writing Parquet into memory and reading it through the async reader over `ObjectStore`,
//! with row-group pruning on time columns.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt, TryFutureExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use storage_core::{Key, Result, StorageError};

use crate::format::Compression;

/// Settings for one Parquet file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParquetSettings {
    pub compression: Compression,
    pub row_group_rows: usize,
    /// Keep min/max statistics only for these columns (`None`: every column). Statistics of
    /// long text columns no reader prunes on would only make the footer, which every read
    /// fetches first, larger.
    pub statistics_only: Option<&'static [&'static str]>,
}

/// Encode `batch` as one Parquet file in memory. Statistics are kept per page and per chunk,
/// so readers (ours, pyarrow, DuckDB) can skip row groups by their min/max.
pub(crate) fn encode(batch: &RecordBatch, settings: ParquetSettings) -> Result<Bytes> {
    let mut props = WriterProperties::builder()
        .set_compression(settings.compression.to_parquet()?)
        .set_max_row_group_row_count(Some(settings.row_group_rows.max(1)))
        .set_created_by(format!(
            "strata storage-manifest {}",
            env!("CARGO_PKG_VERSION")
        ));
    props = match settings.statistics_only {
        None => props.set_statistics_enabled(EnabledStatistics::Page),
        Some(columns) => columns.iter().fold(
            props.set_statistics_enabled(EnabledStatistics::None),
            |p, c| p.set_column_statistics_enabled(ColumnPath::from(*c), EnabledStatistics::Page),
        ),
    };
    let props = props.build();
    let invalid = |e: parquet::errors::ParquetError| {
        StorageError::invalid_input("records", format!("cannot encode Parquet: {e}"))
    };
    let mut buf = Vec::with_capacity(1024);
    let mut writer =
        ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(invalid)?;
    writer.write(batch).map_err(invalid)?;
    writer.close().map_err(invalid)?;
    Ok(Bytes::from(buf))
}

/// A time window on a time column, in microseconds since the epoch: `[from, to)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MicrosWindow {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl MicrosWindow {
    fn overlaps(&self, min: i64, max: i64) -> bool {
        self.from.is_none_or(|f| max >= f) && self.to.is_none_or(|t| min < t)
    }
}

fn i64_stats(
    rg: &RowGroupMetaData,
    column: usize,
) -> Option<(Option<i64>, Option<i64>, Option<u64>)> {
    match rg.column(column).statistics()? {
        Statistics::Int64(s) => Some((
            s.min_opt().copied(),
            s.max_opt().copied(),
            s.null_count_opt(),
        )),
        _ => None,
    }
}

/// Row groups that may hold rows in `window`, judged from the statistics of `min_col` and
/// `max_col` (leaf column indices; the same column for a data file's time column). Row groups
/// without statistics are kept; a row group with nulls in the time column is kept when
/// `keep_nulls` (those rows are judged by the file's own time).
pub(crate) fn prune_row_groups(
    meta: &ParquetMetaData,
    min_col: usize,
    max_col: usize,
    window: MicrosWindow,
    keep_nulls: bool,
) -> Vec<usize> {
    meta.row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| {
            let (Some((Some(min), _, nulls)), Some((_, Some(max), _))) =
                (i64_stats(rg, min_col), i64_stats(rg, max_col))
            else {
                return true;
            };
            (keep_nulls && nulls != Some(0)) || window.overlaps(min, max)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Bytes the footer read asks for up front. With the footer's length known (a manifest
/// part's [`PartRef::footer_bytes`](crate::PartRef::footer_bytes)) exactly that, so metadata
/// costs one ranged GET whatever its size. Otherwise 1/16 of the file, between 8 KiB and
/// 64 KiB: the footer of a typical file fits, without fetching a large share of a small file;
/// a larger footer costs one more GET.
fn footer_prefetch(size: u64, footer: Option<u64>) -> usize {
    match footer {
        Some(f) => f.min(size) as usize,
        None => (size / 16).clamp(8 * 1024, 64 * 1024) as usize,
    }
}

/// The length of `file`'s footer: its metadata, the 4-byte metadata length and the `PAR1`
/// magic (what a reader must fetch to open it).
pub(crate) fn footer_len(file: &[u8]) -> Option<u64> {
    let tail = file.len().checked_sub(8)?;
    let len = u32::from_le_bytes(file[tail..tail + 4].try_into().ok()?);
    Some(u64::from(len) + 8)
}

/// [`AsyncFileReader`] over any `ObjectStore` (so over every Strata store and layer): ranged
/// GETs, several ranges coalesced by `get_ranges`, the footer fetched with one prefetching read
/// because the file size is known.
#[derive(Debug, Clone)]
pub(crate) struct ObjectStoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    footer: Option<u64>,
}

fn to_parquet_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectStoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.store
            .get_range(&self.path, range)
            .map_err(to_parquet_err)
            .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(to_parquet_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(footer_prefetch(size, self.footer)))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// An opened Parquet object: its metadata, read with ranged GETs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct OpenParquet {
    reader: ObjectStoreReader,
    meta: ArrowReaderMetadata,
}

/// What to read of an opened file.
#[derive(Debug, Default)]
pub(crate) struct ReadPlan {
    /// Row groups to read (all when `None`).
    pub row_groups: Option<Vec<usize>>,
    /// Top-level columns to decode (all when `None`).
    pub columns: Option<Vec<usize>>,
    /// Rows to decode within `row_groups` (all when `None`).
    pub rows: Option<RowSelection>,
}

impl OpenParquet {
    /// Open `key` (of `size` bytes, when known, which saves a HEAD request; its footer is
    /// `footer` bytes long, when known, which makes the metadata one exact GET).
    pub(crate) async fn open(
        backend: &str,
        store: Arc<dyn ObjectStore>,
        key: &str,
        size: Option<u64>,
        footer: Option<u64>,
    ) -> Result<Self> {
        let path = Key::new(key)?.to_path();
        let size = match size {
            Some(size) => size,
            None => {
                store
                    .head(&path)
                    .await
                    .map_err(|e| StorageError::from_object_store(backend, e))?
                    .size
            }
        };
        let mut reader = ObjectStoreReader {
            store,
            path,
            size,
            footer,
        };
        let meta = ArrowReaderMetadata::load_async(&mut reader, Default::default())
            .await
            .map_err(|e| parquet_error(backend, key, e))?;
        Ok(OpenParquet { reader, meta })
    }

    pub(crate) fn metadata(&self) -> &Arc<ParquetMetaData> {
        self.meta.metadata()
    }

    pub(crate) fn arrow_schema(&self) -> arrow_schema::SchemaRef {
        self.meta.schema().clone()
    }

    /// Index of the top-level column `name`.
    pub(crate) fn column_index(&self, name: &str) -> Option<usize> {
        self.meta.schema().index_of(name).ok()
    }

    /// Stream the batches `plan` selects.
    pub(crate) fn stream(
        &self,
        backend: &str,
        key: &str,
        plan: ReadPlan,
        batch_size: usize,
    ) -> Result<impl Stream<Item = Result<RecordBatch>> + Send + 'static> {
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
            self.reader.clone(),
            self.meta.clone(),
        )
        .with_batch_size(batch_size);
        if let Some(rgs) = plan.row_groups {
            builder = builder.with_row_groups(rgs);
        }
        if let Some(cols) = plan.columns {
            let mask = ProjectionMask::roots(self.meta.parquet_schema(), cols);
            builder = builder.with_projection(mask);
        }
        if let Some(rows) = plan.rows {
            builder = builder.with_row_selection(rows);
        }
        let (b, k) = (backend.to_string(), key.to_string());
        let stream = builder.build().map_err(|e| parquet_error(&b, &k, e))?;
        Ok(stream.map_err(move |e| parquet_error(&b, &k, e)).boxed())
    }
}

/// Map a Parquet error: storage failures keep their kind, anything else means the file is not
/// valid Parquet.
pub(crate) fn parquet_error(
    backend: &str,
    key: &str,
    e: parquet::errors::ParquetError,
) -> StorageError {
    match e {
        parquet::errors::ParquetError::External(inner) => {
            match inner.downcast::<object_store::Error>() {
                Ok(os) => StorageError::from_object_store(backend, *os),
                Err(other) => StorageError::Corrupt {
                    backend: backend.to_string(),
                    key: key.to_string(),
                    reason: format!("not a readable Parquet file: {other}"),
                },
            }
        }
        other => StorageError::Corrupt {
            backend: backend.to_string(),
            key: key.to_string(),
            reason: format!("not a readable Parquet file: {other}"),
        },
    }
}
