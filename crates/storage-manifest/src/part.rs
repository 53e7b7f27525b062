//! Compacted Parquet manifest parts: their schema, writing entries into one, and reading
//! one the way a query needs it. Searches and scans evaluate their filters on Arrow arrays of
//! only the columns they need, and build a [`ManifestEntry`] only for rows they return.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    cast::AsArray,
    types::{Int64Type, TimestampMicrosecondType},
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use storage_core::{Result, StorageError};

use crate::entry::{EntryFilter, ManifestEntry};
use crate::format::Format;
use crate::parquet_io::{OpenParquet, ReadPlan, prune_row_groups};
use crate::search::{Found, TopK, text_score};

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Arrow schema of a compacted Parquet manifest part. Needs the `parquet` feature.
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

pub(crate) fn entries_to_batch(entries: &[ManifestEntry]) -> RecordBatch {
    let text = |field: fn(&ManifestEntry) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(entries.iter().map(field)))
    };
    let optional_text = |field: fn(&ManifestEntry) -> Option<&str>| -> ArrayRef {
        Arc::new(entries.iter().map(field).collect::<StringArray>())
    };
    let int = |field: fn(&ManifestEntry) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|e| field(e) as i64),
        ))
    };
    let time = |field: fn(&ManifestEntry) -> DateTime<Utc>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                entries.iter().map(|e| field(e).timestamp_micros()),
            )
            .with_timezone("UTC"),
        )
    };
    // In the order of `manifest_schema`.
    let columns: Vec<ArrayRef> = vec![
        text(|e| &e.key),
        text(|e| &e.id),
        text(|e| e.format.extension()),
        int(|e| e.rows),
        int(|e| e.bytes),
        time(|e| e.min_time),
        time(|e| e.max_time),
        time(|e| e.created),
        optional_text(|e| e.etag.as_deref()),
        optional_text(|e| e.time_field.as_deref()),
        text(|e| &e.text),
        Arc::new(BooleanArray::from(
            entries.iter().map(|e| e.text_truncated).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| {
            serde_json::to_string(&e.tags).expect("tags serialize")
        }))),
    ];
    RecordBatch::try_new(manifest_schema(), columns).expect("columns match the manifest schema")
}

/// The columns of a manifest batch, typed; a column the read did not project is `None`.
struct Columns<'a> {
    key: Option<&'a StringArray>,
    id: Option<&'a StringArray>,
    format: Option<&'a StringArray>,
    rows: Option<&'a Int64Array>,
    bytes: Option<&'a Int64Array>,
    min_time: Option<&'a TimestampMicrosecondArray>,
    max_time: Option<&'a TimestampMicrosecondArray>,
    created: Option<&'a TimestampMicrosecondArray>,
    etag: Option<&'a StringArray>,
    time_field: Option<&'a StringArray>,
    text: Option<&'a StringArray>,
    text_truncated: Option<&'a BooleanArray>,
    tags: Option<&'a StringArray>,
}

/// Column `name` of `batch` as `T`: `None` when the read did not project it, an error naming
/// the column when it is of another type (`what` it should be).
fn typed<'a, T>(
    batch: &'a RecordBatch,
    name: &str,
    cast: impl Fn(&'a ArrayRef) -> Option<&'a T>,
    what: &str,
) -> std::result::Result<Option<&'a T>, String> {
    batch
        .column_by_name(name)
        .map(|c| cast(c).ok_or_else(|| format!("column `{name}` is not {what}")))
        .transpose()
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> std::result::Result<Self, String> {
        let string = |n: &str| typed(batch, n, |c| c.as_string_opt::<i32>(), "UTF-8 text");
        let int = |n: &str| typed(batch, n, |c| c.as_primitive_opt::<Int64Type>(), "INT64");
        let time = |n: &str| {
            typed(
                batch,
                n,
                |c| c.as_primitive_opt::<TimestampMicrosecondType>(),
                "a microsecond timestamp",
            )
        };
        Ok(Columns {
            key: string("key")?,
            id: string("id")?,
            format: string("format")?,
            rows: int("rows")?,
            bytes: int("bytes")?,
            min_time: time("min_time")?,
            max_time: time("max_time")?,
            created: time("created")?,
            etag: string("etag")?,
            time_field: string("time_field")?,
            text: string("text")?,
            text_truncated: typed(batch, "text_truncated", |c| c.as_boolean_opt(), "BOOLEAN")?,
            tags: string("tags")?,
        })
    }

    /// Row `i` as an entry; every column must have been read.
    fn entry(&self, i: usize) -> std::result::Result<ManifestEntry, String> {
        fn need<'b, T>(c: Option<&'b T>, name: &str) -> std::result::Result<&'b T, String> {
            c.ok_or_else(|| format!("compacted manifest has no `{name}` column"))
        }
        let at = |c: Option<&TimestampMicrosecondArray>, name: &str| {
            let us = need(c, name)?.value(i);
            micros_time(us).ok_or_else(|| format!("row {i}: timestamp {us} is out of range"))
        };
        let opt = |c: Option<&StringArray>, name: &str| {
            need(c, name).map(|a| (!a.is_null(i)).then(|| a.value(i).to_string()))
        };
        let format = need(self.format, "format")?.value(i);
        Ok(ManifestEntry {
            key: need(self.key, "key")?.value(i).to_string(),
            id: need(self.id, "id")?.value(i).to_string(),
            format: Format::from_extension(format)
                .ok_or_else(|| format!("row {i}: unknown format `{format}`"))?,
            rows: need(self.rows, "rows")?.value(i) as u64,
            bytes: need(self.bytes, "bytes")?.value(i) as u64,
            min_time: at(self.min_time, "min_time")?,
            max_time: at(self.max_time, "max_time")?,
            etag: opt(self.etag, "etag")?,
            created: at(self.created, "created")?,
            time_field: opt(self.time_field, "time_field")?,
            text: need(self.text, "text")?.value(i).to_string(),
            text_truncated: need(self.text_truncated, "text_truncated")?.value(i),
            tags: parse_tags(need(self.tags, "tags")?.value(i), i)?,
        })
    }
}

fn parse_tags(json: &str, row: usize) -> std::result::Result<BTreeMap<String, String>, String> {
    serde_json::from_str(json).map_err(|e| format!("row {row}: tags are not a JSON object: {e}"))
}

fn micros_time(us: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_micros(us).single()
}

/// The smallest whole microsecond not before `t`. Stored times are whole microseconds, so
/// `stored >= t` is `stored >= ceil(t)` and `stored < t` is `stored < ceil(t)`: the row filter
/// decides exactly as [`TimeRange::overlaps`](crate::TimeRange::overlaps) on the entry would.
fn ceil_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros() + i64::from(!t.timestamp_subsec_nanos().is_multiple_of(1000))
}

/// An [`EntryFilter`] compiled for manifest columns.
struct RowTest<'f> {
    /// `max_time >= from` (microseconds, rounded up).
    from: Option<i64>,
    /// `min_time < to` (microseconds, rounded up).
    to: Option<i64>,
    format: Option<&'static str>,
    tags: &'f BTreeMap<String, String>,
}

impl<'f> RowTest<'f> {
    fn new(filter: &'f EntryFilter) -> Self {
        RowTest {
            from: filter.range.from.map(ceil_micros),
            to: filter.range.to.map(ceil_micros),
            format: filter.format.map(Format::extension),
            tags: &filter.tags,
        }
    }

    /// The columns this test reads, besides what the caller needs.
    fn columns(&self) -> Vec<&'static str> {
        let mut cols = Vec::new();
        if self.from.is_some() {
            cols.push("max_time");
        }
        if self.to.is_some() {
            cols.push("min_time");
        }
        if self.format.is_some() {
            cols.push("format");
        }
        if !self.tags.is_empty() {
            cols.push("tags");
        }
        cols
    }

    /// Whether row `i` of `c` passes (`c` holds at least [`RowTest::columns`]).
    fn passes(&self, c: &Columns<'_>, i: usize) -> std::result::Result<bool, String> {
        let missing = |name: &str| format!("compacted manifest has no `{name}` column");
        if let Some(from) = self.from
            && c.max_time.ok_or_else(|| missing("max_time"))?.value(i) < from
        {
            return Ok(false);
        }
        if let Some(to) = self.to
            && c.min_time.ok_or_else(|| missing("min_time"))?.value(i) >= to
        {
            return Ok(false);
        }
        if let Some(format) = self.format
            && c.format.ok_or_else(|| missing("format"))?.value(i) != format
        {
            return Ok(false);
        }
        if !self.tags.is_empty() {
            let tags = parse_tags(c.tags.ok_or_else(|| missing("tags"))?.value(i), i)?;
            return Ok(self
                .tags
                .iter()
                .all(|(k, v)| tags.get(k).is_some_and(|x| x == v)));
        }
        Ok(true)
    }
}

/// What a search asks of one part.
pub(crate) struct PartSearch<'a> {
    pub filter: &'a EntryFilter,
    pub terms: &'a [String],
    /// Keys a later part or segment lists with an entry that passes the filter: that entry
    /// replaces this part's, so rows with these keys are skipped.
    pub shadowed: &'a HashSet<String>,
    /// Also return the keys of every row passing the filter (to shadow an older part).
    pub collect_keys: bool,
}

/// One part's share of a search.
pub(crate) struct PartHits {
    /// Hits in it.
    pub total: usize,
    /// Rows that passed the filter.
    pub scanned: usize,
    /// Keys of the rows that passed the filter, when asked for.
    pub keys: Vec<String>,
}

/// A compacted Parquet part, opened.
pub(crate) struct PartFile<'a> {
    pub open: OpenParquet,
    pub backend: &'a str,
    pub key: &'a str,
}

impl PartFile<'_> {
    fn corrupt(&self, reason: String) -> StorageError {
        StorageError::Corrupt {
            backend: self.backend.to_string(),
            key: self.key.to_string(),
            reason,
        }
    }

    /// Row groups that may hold rows of `filter`'s window, by their time statistics.
    fn row_groups(&self, filter: &EntryFilter) -> Result<Option<Vec<usize>>> {
        if filter.range.is_all() {
            return Ok(None);
        }
        let col = |name: &str| {
            self.open
                .column_index(name)
                .ok_or_else(|| self.corrupt(format!("compacted manifest has no `{name}` column")))
        };
        Ok(Some(prune_row_groups(
            self.open.metadata(),
            col("min_time")?,
            col("max_time")?,
            filter.range.micros(),
            false,
        )))
    }

    fn projection(&self, names: &[&str]) -> Result<Vec<usize>> {
        let mut idx = names
            .iter()
            .map(|n| {
                self.open
                    .column_index(n)
                    .ok_or_else(|| self.corrupt(format!("compacted manifest has no `{n}` column")))
            })
            .collect::<Result<Vec<usize>>>()?;
        idx.sort_unstable();
        idx.dedup();
        Ok(idx)
    }

    /// Every entry passing `filter`, in file order. The filter runs on the arrays; only rows
    /// that pass become entries.
    pub async fn entries(&self, filter: &EntryFilter) -> Result<Vec<ManifestEntry>> {
        let test = RowTest::new(filter);
        let plan = ReadPlan {
            row_groups: self.row_groups(filter)?,
            ..Default::default()
        };
        let mut batches = self.open.stream(self.backend, self.key, plan, BATCH_ROWS)?;
        let mut out = Vec::new();
        while let Some(batch) = batches.try_next().await? {
            let c = Columns::of(&batch).map_err(|e| self.corrupt(e))?;
            for i in 0..batch.num_rows() {
                if test.passes(&c, i).map_err(|e| self.corrupt(e))? {
                    out.push(c.entry(i).map_err(|e| self.corrupt(e))?);
                }
            }
        }
        Ok(out)
    }

    /// Score every row passing the filter against `terms`, reading only the columns that
    /// takes, and offer the hits to `top` located by their row number in part `part`.
    pub async fn search(
        &self,
        s: PartSearch<'_>,
        part: usize,
        top: &mut TopK<Found>,
    ) -> Result<PartHits> {
        let test = RowTest::new(s.filter);
        let mut names = test.columns();
        names.extend(["key", "max_time", "text"]);
        let plan = ReadPlan {
            row_groups: self.row_groups(s.filter)?,
            columns: Some(self.projection(&names)?),
            rows: None,
        };
        let starts = self.row_group_starts();
        let groups: Vec<usize> = plan
            .row_groups
            .clone()
            .unwrap_or_else(|| (0..starts.len()).collect());
        let mut batches = self.open.stream(self.backend, self.key, plan, BATCH_ROWS)?;
        let (mut total, mut scanned, mut keys) = (0, 0, Vec::new());
        // Hashing every key costs more than scoring it: only when a newer source exists.
        let shadowing = !s.shadowed.is_empty();
        // File row number of each batch row: batches run through `groups` in order.
        let (mut group, mut in_group) = (0usize, 0u64);
        while let Some(batch) = batches.try_next().await? {
            let c = Columns::of(&batch).map_err(|e| self.corrupt(e))?;
            let (Some(key), Some(max_time), Some(text)) = (c.key, c.max_time, c.text) else {
                return Err(
                    self.corrupt("compacted manifest lacks `key`, `max_time` or `text`".into())
                );
            };
            let n = batch.num_rows();
            let mut i = 0;
            while i < n {
                let rg = groups[group];
                let rg_rows = self.open.metadata().row_group(rg).num_rows() as u64;
                let take = ((rg_rows - in_group) as usize).min(n - i);
                let base = starts[rg] + in_group;
                for j in i..i + take {
                    if !test.passes(&c, j).map_err(|e| self.corrupt(e))? {
                        continue;
                    }
                    let k = key.value(j);
                    if shadowing && s.shadowed.contains(k) {
                        continue;
                    }
                    scanned += 1;
                    if s.collect_keys {
                        keys.push(k.to_string());
                    }
                    let Some(score) = text_score(text.value(j), s.terms) else {
                        continue;
                    };
                    total += 1;
                    let us = max_time.value(j);
                    let newest = micros_time(us)
                        .ok_or_else(|| self.corrupt(format!("timestamp {us} is out of range")))?;
                    let row = base + (j - i) as u64;
                    top.offer(score, newest, k, || Found::Row { part, row });
                }
                in_group += take as u64;
                i += take;
                if in_group == rg_rows {
                    group += 1;
                    in_group = 0;
                }
            }
        }
        Ok(PartHits {
            total,
            scanned,
            keys,
        })
    }

    /// First file row number of each row group.
    fn row_group_starts(&self) -> Vec<u64> {
        let mut at = 0u64;
        self.open
            .metadata()
            .row_groups()
            .iter()
            .map(|rg| {
                let start = at;
                at += rg.num_rows() as u64;
                start
            })
            .collect()
    }

    /// The entries at file row numbers `rows` (sorted, distinct), in that order: only the
    /// row groups holding them are fetched, and only those rows decoded.
    pub async fn rows(&self, rows: &[u64]) -> Result<Vec<ManifestEntry>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let starts = self.row_group_starts();
        let meta = self.open.metadata();
        let group_of = |row: u64| starts.partition_point(|s| *s <= row) - 1;
        let mut groups: Vec<usize> = rows.iter().map(|r| group_of(*r)).collect();
        groups.dedup();
        // The selection counts rows of the chosen row groups only, back to back.
        let mut selectors = Vec::new();
        let (mut at, mut gi) = (0u64, 0usize);
        let mut offset = 0u64; // selection position of the current group's first row
        for &row in rows {
            while groups[gi] != group_of(row) {
                let end = offset + meta.row_group(groups[gi]).num_rows() as u64;
                gi += 1;
                offset = end;
            }
            let pos = offset + (row - starts[groups[gi]]);
            if pos > at {
                selectors.push(RowSelector::skip((pos - at) as usize));
            }
            selectors.push(RowSelector::select(1));
            at = pos + 1;
        }
        let selected_rows: u64 = groups
            .iter()
            .map(|g| meta.row_group(*g).num_rows() as u64)
            .sum();
        if selected_rows > at {
            selectors.push(RowSelector::skip((selected_rows - at) as usize));
        }
        let plan = ReadPlan {
            row_groups: Some(groups),
            columns: None,
            rows: Some(RowSelection::from(selectors)),
        };
        let mut batches = self.open.stream(self.backend, self.key, plan, BATCH_ROWS)?;
        let mut out = Vec::with_capacity(rows.len());
        while let Some(batch) = batches.try_next().await? {
            let c = Columns::of(&batch).map_err(|e| self.corrupt(e))?;
            for i in 0..batch.num_rows() {
                out.push(c.entry(i).map_err(|e| self.corrupt(e))?);
            }
        }
        if out.len() != rows.len() {
            return Err(self.corrupt(format!(
                "asked for {} rows, the file gave {}",
                rows.len(),
                out.len()
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TimeRange;
    use crate::manifest::tests::entry;
    use crate::parquet_io::{ParquetSettings, encode, footer_len};
    use object_store::memory::InMemory;
    use object_store::{ObjectStore, ObjectStoreExt};

    fn entries() -> Vec<ManifestEntry> {
        let mut entries: Vec<ManifestEntry> = (1..=28).map(|n| entry(n, n)).collect();
        entries[1].etag = None;
        entries[2].time_field = None;
        entries[3].tags.insert("source".into(), "bank".into());
        entries
    }

    /// `entries` as a part in memory, opened.
    async fn part(entries: &[ManifestEntry], row_group_rows: usize) -> PartFile<'static> {
        let body = encode(
            &entries_to_batch(entries),
            ParquetSettings {
                compression: crate::Compression::Snappy,
                row_group_rows,
                statistics_only: None,
            },
        )
        .unwrap();
        let footer = footer_len(&body).unwrap();
        let size = body.len() as u64;
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store.put(&"p.parquet".into(), body.into()).await.unwrap();
        let open = OpenParquet::open("mem", store, "p.parquet", Some(size), Some(footer))
            .await
            .unwrap();
        PartFile {
            open,
            backend: "mem",
            key: "p.parquet",
        }
    }

    #[tokio::test]
    async fn entries_survive_the_parquet_schema() {
        let entries = entries();
        let file = part(&entries, 5).await;
        assert_eq!(
            file.entries(&EntryFilter::default()).await.unwrap(),
            entries
        );
    }

    /// The filter compiled for the columns keeps exactly the rows `EntryFilter::matches`
    /// keeps, bounds off whole microseconds included (stored times are whole microseconds).
    #[tokio::test]
    async fn the_row_test_is_entry_filter_matches() {
        let entries = entries();
        let file = part(&entries, 5).await;
        let half = chrono::Duration::nanoseconds(500);
        let (a, b) = (entries[4].max_time, entries[9].min_time);
        let ranges = [
            TimeRange::all(),
            TimeRange::between(a, b).unwrap(),
            TimeRange::between(a + half, b + half).unwrap(),
            TimeRange::between(a - half, b - half).unwrap(),
            TimeRange::since(a + half),
            TimeRange::until(b + half),
        ];
        for range in ranges {
            for format in [None, Some(Format::Jsonl), Some(Format::Parquet)] {
                for tags in [
                    BTreeMap::new(),
                    BTreeMap::from([("source".into(), "bank".into())]),
                ] {
                    let filter = EntryFilter {
                        range,
                        format,
                        tags,
                    };
                    let want: Vec<ManifestEntry> = entries
                        .iter()
                        .filter(|e| filter.matches(e))
                        .cloned()
                        .collect();
                    assert_eq!(file.entries(&filter).await.unwrap(), want, "{filter:?}");
                }
            }
        }
    }

    /// `rows` reads exactly the asked rows, across row groups, first and last rows included.
    #[tokio::test]
    async fn rows_reads_exactly_the_rows_asked_for() {
        let entries = entries();
        let file = part(&entries, 5).await;
        for rows in [
            vec![0],
            vec![27],
            vec![0, 4, 5, 6, 19, 27],
            vec![12, 13, 14],
        ] {
            let got = file.rows(&rows).await.unwrap();
            let want: Vec<ManifestEntry> =
                rows.iter().map(|r| entries[*r as usize].clone()).collect();
            assert_eq!(got, want, "rows {rows:?}");
        }
    }

    #[test]
    fn a_file_too_short_for_a_footer_has_none() {
        assert_eq!(footer_len(b"PAR1"), None);
        assert_eq!(footer_len(&[7, 0, 0, 0, b'P', b'A', b'R', b'1']), Some(15));
    }

    #[test]
    fn window_bounds_round_up_to_whole_microseconds() {
        let t = DateTime::<Utc>::from_timestamp(10, 1_500).unwrap();
        assert_eq!(ceil_micros(t), 10_000_002);
        let whole = DateTime::<Utc>::from_timestamp(10, 2_000).unwrap();
        assert_eq!(ceil_micros(whole), 10_000_002);
        let before_epoch = DateTime::<Utc>::from_timestamp(-1, 999_999_500).unwrap();
        assert_eq!(ceil_micros(before_epoch), 0);
    }
}
