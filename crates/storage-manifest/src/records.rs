//! Records (`serde_json::Value` objects): schemas, time values, and searchable text; with
//! the `parquet` feature, conversion to and from Arrow (the `arrow` submodule).
//!
//! Every check here runs before a byte is written, and every error names the record index and
//! the field (`records[3].amount`), so a bad batch is rejected whole.

#[cfg(feature = "parquet")]
mod arrow;
#[cfg(feature = "parquet")]
pub use arrow::rows_to_records;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
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

    /// Two records that disagree on every column that can widen: the time as RFC 3339 and as
    /// epoch milliseconds, an integer and a float amount, fields only one of them has.
    pub(super) fn mixed_records() -> Vec<Value> {
        vec![
            json!({"timestamp": "2024-01-15T10:00:00Z", "amount": 5, "tags": ["a"]}),
            json!({"timestamp": 1705312800000i64, "amount": 2.5, "note": "x"}),
        ]
    }

    #[test]
    fn inference_widens_and_marks_nullable() {
        let s = RecordSchema::infer(&mixed_records(), Some("timestamp")).unwrap();
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
