//! Records (`serde_json::Value` objects) ⇄ Arrow, time values, and searchable text.
//!
//! Every check here runs before a byte is written, and every error names the record index and
//! the field (`records[3].amount`), so a bad batch is rejected whole.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use storage_core::{Result, StorageError};

/// Arrow field metadata marking a text column that holds JSON (nested objects and arrays).
pub const JSON_COLUMN_META: &str = "strata.json";

/// The type of one column of a Parquet dataset file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// `true`/`false`.
    Boolean,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float (integers are accepted and widened).
    Float64,
    /// UTF-8 text.
    String,
    /// A point in time, stored as microseconds since the epoch in UTC. Accepts RFC 3339 text
    /// (`2024-01-15T10:00:00Z`) or an integer count of milliseconds since the epoch; reads
    /// back as RFC 3339 text.
    Timestamp,
    /// Any JSON (objects, arrays), stored as JSON text and parsed again on read.
    Json,
}

impl ColumnType {
    fn arrow(self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::String | ColumnType::Json => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ColumnType::Boolean => "a boolean",
            ColumnType::Int64 => "an integer",
            ColumnType::Float64 => "a number",
            ColumnType::String => "a string",
            ColumnType::Timestamp => "a timestamp",
            ColumnType::Json => "an object or array",
        }
    }
}

/// One column of a [`RecordSchema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Field name in the records.
    pub name: String,
    /// Value type.
    pub column_type: ColumnType,
    /// Whether a record may lack the field or hold `null`.
    pub nullable: bool,
}

/// The columns of a Parquet dataset file, declared up front or inferred from the records.
///
/// ```
/// use storage_manifest::{ColumnType, RecordSchema};
/// let schema = RecordSchema::new()
///     .column("timestamp", ColumnType::Timestamp, false)
///     .column("amount", ColumnType::Float64, false)
///     .column("note", ColumnType::String, true);
/// assert_eq!(schema.columns().len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSchema {
    columns: Vec<Column>,
}

impl RecordSchema {
    /// An empty schema.
    pub fn new() -> Self {
        RecordSchema::default()
    }

    /// Add a column.
    pub fn column(
        mut self,
        name: impl Into<String>,
        column_type: ColumnType,
        nullable: bool,
    ) -> Self {
        self.columns.push(Column {
            name: name.into(),
            column_type,
            nullable,
        });
        self
    }

    /// The columns in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Infer a schema from `records`: columns in order of first appearance, integers widened
    /// to floats where both occur, nested values as JSON, `time_field` as a timestamp. A field
    /// whose kinds disagree is an error naming the record and the field.
    pub fn infer(records: &[Value], time_field: Option<&str>) -> Result<RecordSchema> {
        // (column, record index where its type was first seen)
        let mut columns: Vec<(Column, Option<usize>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, record) in records.iter().enumerate() {
            let obj = as_object(i, record)?;
            for (name, value) in obj {
                let pos = *index.entry(name.clone()).or_insert_with(|| {
                    columns.push((
                        Column {
                            name: name.clone(),
                            column_type: ColumnType::String,
                            nullable: i > 0,
                        },
                        None,
                    ));
                    columns.len() - 1
                });
                let (col, seen_at) = &mut columns[pos];
                if value.is_null() {
                    col.nullable = true;
                    continue;
                }
                let is_time = time_field == Some(name.as_str());
                let kind = kind_of(value, is_time);
                if is_time {
                    parse_time(value).map_err(|reason| record_error(i, name, reason))?;
                }
                match *seen_at {
                    None => {
                        col.column_type = kind;
                        *seen_at = Some(i);
                    }
                    Some(first) => {
                        col.column_type = merge(col.column_type, kind).ok_or_else(|| {
                            record_error(
                                i,
                                name,
                                format!(
                                    "found {}, but record {first} has {} here; make the field one type in every record, or declare a schema",
                                    kind.describe(),
                                    col.column_type.describe()
                                ),
                            )
                        })?;
                    }
                }
            }
            for (col, _) in columns.iter_mut() {
                if !obj.contains_key(&col.name) {
                    col.nullable = true;
                }
            }
        }
        Ok(RecordSchema {
            columns: columns.into_iter().map(|(c, _)| c).collect(),
        })
    }

    fn arrow(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let f = Field::new(&c.name, c.column_type.arrow(), c.nullable);
                if c.column_type == ColumnType::Json {
                    f.with_metadata(HashMap::from([(
                        JSON_COLUMN_META.to_string(),
                        "true".to_string(),
                    )]))
                } else {
                    f
                }
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Check every record against this schema and build one Arrow batch.
    pub fn to_record_batch(&self, records: &[Value]) -> Result<RecordBatch> {
        let known: HashSet<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        for (i, record) in records.iter().enumerate() {
            let obj = as_object(i, record)?;
            if let Some(extra) = obj.keys().find(|k| !known.contains(k.as_str())) {
                return Err(record_error(
                    i,
                    extra,
                    format!(
                        "the field is not in the declared schema (columns: {}); add it to the schema or drop it from the record",
                        self.columns
                            .iter()
                            .map(|c| c.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            arrays.push(build_column(col, records)?);
        }
        RecordBatch::try_new(self.arrow(), arrays).map_err(|e| {
            StorageError::invalid_input("records", format!("cannot build an Arrow batch: {e}"))
        })
    }
}

fn as_object(i: usize, record: &Value) -> Result<&Map<String, Value>> {
    record.as_object().ok_or_else(|| {
        StorageError::invalid_input(
            format!("records[{i}]"),
            format!(
                "expected a JSON object (one record), found {}",
                value_kind(record)
            ),
        )
    })
}

fn record_error(i: usize, field: &str, reason: impl Into<String>) -> StorageError {
    StorageError::invalid_input(format!("records[{i}].{field}"), reason)
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn kind_of(v: &Value, is_time: bool) -> ColumnType {
    if is_time {
        return ColumnType::Timestamp;
    }
    match v {
        Value::Bool(_) => ColumnType::Boolean,
        Value::Number(n) if n.is_i64() => ColumnType::Int64,
        Value::Number(_) => ColumnType::Float64,
        Value::String(_) | Value::Null => ColumnType::String,
        Value::Array(_) | Value::Object(_) => ColumnType::Json,
    }
}

fn merge(a: ColumnType, b: ColumnType) -> Option<ColumnType> {
    use ColumnType::*;
    match (a, b) {
        _ if a == b => Some(a),
        (Int64, Float64) | (Float64, Int64) => Some(Float64),
        _ => None,
    }
}

/// Parse a time value: RFC 3339 text or integer milliseconds since the epoch.
pub fn parse_time(v: &Value) -> std::result::Result<DateTime<Utc>, String> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                format!("`{s}` is not an RFC 3339 time ({e}); write e.g. `2024-01-15T10:00:00Z`")
            }),
        Value::Number(n) => n
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .ok_or_else(|| {
                format!(
                    "{n} is not a time; use integer milliseconds since the epoch or RFC 3339 text"
                )
            }),
        other => Err(format!(
            "found {}, but a time must be RFC 3339 text or integer milliseconds",
            value_kind(other)
        )),
    }
}

/// Format a time the way Parquet reads return it.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn build_column(col: &Column, records: &[Value]) -> Result<ArrayRef> {
    let name = col.name.as_str();
    let mismatch = |i: usize, v: &Value| {
        record_error(
            i,
            name,
            format!(
                "found {}, but the column is {}",
                value_kind(v),
                col.column_type.describe()
            ),
        )
    };
    // Yields each record's value, or an error for a missing/null value in a required column.
    let values =
        records
            .iter()
            .enumerate()
            .map(|(i, r)| match r.get(name).filter(|v| !v.is_null()) {
                Some(v) => Ok((i, Some(v))),
                None if col.nullable => Ok((i, None)),
                None => Err(record_error(
                    i,
                    name,
                    "the field is missing or null, but the column is not nullable",
                )),
            });
    Ok(match col.column_type {
        ColumnType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(records.len());
            for item in values {
                match item? {
                    (_, None) => b.append_null(),
                    (_, Some(Value::Bool(x))) => b.append_value(*x),
                    (i, Some(v)) => return Err(mismatch(i, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Int64 => {
            let mut b = Int64Builder::with_capacity(records.len());
            for item in values {
                match item? {
                    (_, None) => b.append_null(),
                    (i, Some(v)) => b.append_value(v.as_i64().ok_or_else(|| mismatch(i, v))?),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Float64 => {
            let mut b = Float64Builder::with_capacity(records.len());
            for item in values {
                match item? {
                    (_, None) => b.append_null(),
                    (i, Some(v)) => b.append_value(v.as_f64().ok_or_else(|| mismatch(i, v))?),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::String => {
            let mut b = StringBuilder::with_capacity(records.len(), records.len() * 16);
            for item in values {
                match item? {
                    (_, None) => b.append_null(),
                    (_, Some(Value::String(s))) => b.append_value(s),
                    (i, Some(v)) => return Err(mismatch(i, v)),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Json => {
            let mut b = StringBuilder::with_capacity(records.len(), records.len() * 32);
            for item in values {
                match item? {
                    (_, None) => b.append_null(),
                    (_, Some(v)) => b.append_value(v.to_string()),
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::Timestamp => {
            let mut b =
                TimestampMicrosecondBuilder::with_capacity(records.len()).with_timezone("UTC");
            for item in values {
                match item? {
                    (_, None) => b.append_null(),
                    (i, Some(v)) => {
                        let t = parse_time(v).map_err(|reason| record_error(i, name, reason))?;
                        b.append_value(t.timestamp_micros());
                    }
                }
            }
            Arc::new(b.finish())
        }
    })
}

/// Turn an Arrow batch back into JSON records. Nulls are left out of the record (Parquet
/// does not tell "absent" from "null"); timestamps come back as RFC 3339 text; columns marked
/// as JSON are parsed.
pub fn batch_to_records(batch: &RecordBatch) -> Result<Vec<Value>> {
    let schema = batch.schema();
    let mut rows: Vec<Map<String, Value>> = vec![Map::new(); batch.num_rows()];
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        let is_json = field.metadata().get(JSON_COLUMN_META).map(String::as_str) == Some("true");
        for (row, out) in rows.iter_mut().enumerate() {
            if col.is_null(row) {
                continue;
            }
            let v = cell(field, col.as_ref(), row, is_json)?;
            out.insert(field.name().clone(), v);
        }
    }
    Ok(rows.into_iter().map(Value::Object).collect())
}

fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn micros_to_value(us: i64) -> Value {
    Utc.timestamp_micros(us)
        .single()
        .map(|t| Value::String(format_time(t)))
        .unwrap_or(Value::Null)
}

fn cell(field: &Field, col: &dyn Array, row: usize, is_json: bool) -> Result<Value> {
    Ok(match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Int8 => col.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => col.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => col.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => col.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float32 => float(f64::from(col.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(col.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = match col.data_type() {
                DataType::Utf8 => col.as_string::<i32>().value(row),
                DataType::LargeUtf8 => col.as_string::<i64>().value(row),
                _ => col.as_string_view().value(row),
            };
            if is_json {
                serde_json::from_str(s).map_err(|e| {
                    StorageError::invalid_input(
                        field.name(),
                        format!("column is marked as JSON but row {row} is not JSON: {e}"),
                    )
                })?
            } else {
                Value::String(s.to_string())
            }
        }
        DataType::Timestamp(unit, _) => {
            let us = match unit {
                TimeUnit::Second => col
                    .as_primitive::<TimestampSecondType>()
                    .value(row)
                    .saturating_mul(1_000_000),
                TimeUnit::Millisecond => col
                    .as_primitive::<TimestampMillisecondType>()
                    .value(row)
                    .saturating_mul(1_000),
                TimeUnit::Microsecond => col.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => {
                    col.as_primitive::<TimestampNanosecondType>().value(row) / 1_000
                }
            };
            micros_to_value(us)
        }
        other => {
            return Err(StorageError::invalid_input(
                field.name(),
                format!(
                    "column type {other} cannot be read as JSON yet; read the file with an Arrow reader"
                ),
            ));
        }
    })
}

/// The time of every record that has `time_field`, checked. A malformed time is an error
/// naming the record and the field.
pub fn record_times(
    records: &[Value],
    time_field: Option<&str>,
) -> Result<Vec<Option<DateTime<Utc>>>> {
    let Some(field) = time_field else {
        return Ok(vec![None; records.len()]);
    };
    records
        .iter()
        .enumerate()
        .map(|(i, r)| match r.get(field).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .map_err(|reason| record_error(i, field, reason)),
        })
        .collect()
}

/// Most distinct words kept in a manifest entry's searchable text.
pub const MAX_INDEX_WORDS: usize = 512;
/// Most bytes of searchable text kept per manifest entry.
pub const MAX_INDEX_BYTES: usize = 8 * 1024;

/// Searchable text of some records: the distinct lowercase words (letters and digits, at least
/// two characters) of every string value, in first-seen order, space-separated, skipping the
/// time field. Returns `(text, truncated)`; when the caps ([`MAX_INDEX_WORDS`],
/// [`MAX_INDEX_BYTES`]) cut words off, only a deep search sees them.
pub fn index_text<'a>(
    records: impl IntoIterator<Item = &'a Value>,
    time_field: Option<&str>,
) -> (String, bool) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut text = String::new();
    let mut truncated = false;
    let mut add = |s: &str, text: &mut String| -> bool {
        for word in words(s) {
            if seen.contains(&word) {
                continue;
            }
            if seen.len() >= MAX_INDEX_WORDS || text.len() + word.len() + 1 > MAX_INDEX_BYTES {
                return false;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&word);
            seen.insert(word);
        }
        true
    };
    'records: for record in records {
        let mut stack: Vec<(Option<&str>, &Value)> = vec![(None, record)];
        while let Some((key, v)) = stack.pop() {
            match v {
                Value::String(s) if (key.is_none() || key != time_field) && !add(s, &mut text) => {
                    truncated = true;
                    break 'records;
                }
                Value::Array(items) => stack.extend(items.iter().rev().map(|x| (None, x))),
                Value::Object(map) => {
                    stack.extend(map.iter().rev().map(|(k, x)| (Some(k.as_str()), x)))
                }
                _ => {}
            }
        }
    }
    (text, truncated)
}

/// Lowercase words of `s` (runs of letters and digits, at least two characters).
pub fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(str::to_lowercase)
}

/// Whether any string in `v` contains `needle` (already lowercase), ignoring case.
pub fn value_contains(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.to_lowercase().contains(needle),
        Value::Array(items) => items.iter().any(|x| value_contains(x, needle)),
        Value::Object(map) => map.values().any(|x| value_contains(x, needle)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_widens_and_marks_nullable() {
        let records = vec![
            json!({"timestamp": "2024-01-15T10:00:00Z", "amount": 5, "tags": ["a"]}),
            json!({"timestamp": 1705312800000i64, "amount": 2.5, "note": "x"}),
        ];
        let s = RecordSchema::infer(&records, Some("timestamp")).unwrap();
        let cols: Vec<(&str, ColumnType, bool)> = s
            .columns()
            .iter()
            .map(|c| (c.name.as_str(), c.column_type, c.nullable))
            .collect();
        // Columns in order of first appearance (serde_json orders an object's keys).
        assert_eq!(
            cols,
            vec![
                ("amount", ColumnType::Float64, false),
                ("tags", ColumnType::Json, true),
                ("timestamp", ColumnType::Timestamp, false),
                ("note", ColumnType::String, true),
            ]
        );
        let batch = s.to_record_batch(&records).unwrap();
        let back = batch_to_records(&batch).unwrap();
        assert_eq!(
            back[0],
            json!({"timestamp": "2024-01-15T10:00:00Z", "amount": 5.0, "tags": ["a"]})
        );
        assert_eq!(
            back[1],
            json!({"timestamp": "2024-01-15T10:00:00Z", "amount": 2.5, "note": "x"})
        );
    }

    #[test]
    fn errors_name_the_record_and_field() {
        let records = vec![json!({"amount": 5}), json!({"amount": "five"})];
        let err = RecordSchema::infer(&records, None).unwrap_err().to_string();
        assert!(err.contains("records[1].amount"), "{err}");
        assert!(err.contains("record 0"), "{err}");

        let err = RecordSchema::infer(&[json!(1)], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("records[0]") && err.contains("object"),
            "{err}"
        );

        let err = RecordSchema::infer(&[json!({"t": "yesterday"})], Some("t"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("records[0].t") && err.contains("RFC 3339"),
            "{err}"
        );

        let declared = RecordSchema::new().column("amount", ColumnType::Int64, false);
        let err = declared
            .to_record_batch(&[json!({"amount": 1}), json!({"amount": 1.5})])
            .unwrap_err()
            .to_string();
        assert!(err.contains("records[1].amount"), "{err}");
        let err = declared
            .to_record_batch(&[json!({"amount": 1, "extra": true})])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("records[0].extra") && err.contains("declared"),
            "{err}"
        );
        let err = declared
            .to_record_batch(&[json!({})])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("records[0].amount") && err.contains("not nullable"),
            "{err}"
        );
    }

    #[test]
    fn index_text_collects_distinct_words() {
        let records = [
            json!({"description": "Coffee at Joe's", "ts": "2024-01-01T00:00:00Z", "n": 5}),
            json!({"nested": {"memo": ["COFFEE beans"]}}),
        ];
        let (text, truncated) = index_text(records.iter(), Some("ts"));
        assert_eq!(text, "coffee at joe beans");
        assert!(!truncated);
        let many: Vec<Value> = (0..2000)
            .map(|i| json!({"w": format!("word{i}")}))
            .collect();
        let (text, truncated) = index_text(many.iter(), None);
        assert!(truncated);
        assert!(text.len() <= MAX_INDEX_BYTES);
        assert!(value_contains(&records[1], "coffee"));
        assert!(!value_contains(&records[1], "tea"));
    }
}
