//! Records ⇄ Arrow: the batch a Parquet file is written from, and records back from the
//! batches a Parquet read yields (feature `parquet`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{Map, Value};
use storage_core::{Result, StorageError};

use super::{
    Column, ColumnType, JSON_COLUMN_META, RecordSchema, as_object, parse_time, record_error,
    value_kind,
};

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
}

impl RecordSchema {
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

    /// Check every record against this schema and build one Arrow batch (the batch a Parquet
    /// dataset file is written from). Needs the `parquet` feature.
    #[cfg_attr(docsrs, doc(cfg(feature = "parquet")))]
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
        ColumnType::Boolean => typed::<BooleanArray, _>(values, Value::as_bool, mismatch)?,
        ColumnType::Int64 => typed::<Int64Array, _>(values, Value::as_i64, mismatch)?,
        ColumnType::Float64 => typed::<Float64Array, _>(values, Value::as_f64, mismatch)?,
        ColumnType::String => typed::<StringArray, _>(values, Value::as_str, mismatch)?,
        ColumnType::Json => Arc::new(collect_values::<StringArray, _>(values, |_, v| {
            Ok(v.to_string())
        })?),
        ColumnType::Timestamp => Arc::new(
            collect_values::<TimestampMicrosecondArray, _>(values, |i, v| {
                let t = parse_time(v).map_err(|reason| record_error(i, name, reason))?;
                Ok(t.timestamp_micros())
            })?
            .with_timezone("UTC"),
        ),
    })
}

/// [`collect_values`] of a column of one JSON type: `get` reads each value, and a value of
/// another type is the error `mismatch` makes of it.
fn typed<'a, A, T>(
    values: impl Iterator<Item = Result<(usize, Option<&'a Value>)>>,
    get: impl Fn(&'a Value) -> Option<T>,
    mismatch: impl Fn(usize, &Value) -> StorageError,
) -> Result<ArrayRef>
where
    A: FromIterator<Option<T>> + Array + 'static,
{
    let array: A = collect_values(values, |i, v| get(v).ok_or_else(|| mismatch(i, v)))?;
    Ok(Arc::new(array))
}

/// One column's values (`(record index, value)`, `None` for null) through `convert`, as an
/// array of nulls and converted values; the first error stops it.
fn collect_values<'a, A, T>(
    values: impl Iterator<Item = Result<(usize, Option<&'a Value>)>>,
    convert: impl Fn(usize, &'a Value) -> Result<T>,
) -> Result<A>
where
    A: FromIterator<Option<T>>,
{
    values
        .map(|item| {
            let (i, v) = item?;
            v.map(|v| convert(i, v)).transpose()
        })
        .collect()
}

/// Every row of `batch` as a JSON record (see [`rows_to_records`]).
#[cfg(test)]
pub fn batch_to_records(batch: &RecordBatch) -> Result<Vec<Value>> {
    let all: Vec<usize> = (0..batch.num_rows()).collect();
    rows_to_records(batch, &all, None)
}

/// Turn rows `rows` of an Arrow batch back into JSON records, with only the columns named in
/// `columns` (all when `None`): rows and columns a read leaves out never become JSON. Nulls
/// are left out of the record (Parquet does not tell "absent" from "null"); timestamps come
/// back as RFC 3339 text; columns marked as JSON are parsed.
pub fn rows_to_records(
    batch: &RecordBatch,
    rows: &[usize],
    columns: Option<&[String]>,
) -> Result<Vec<Value>> {
    let schema = batch.schema();
    let mut out_rows: Vec<Map<String, Value>> = vec![Map::new(); rows.len()];
    for (field, col) in schema.fields().iter().zip(batch.columns()) {
        if columns.is_some_and(|cols| !cols.iter().any(|c| c == field.name())) {
            continue;
        }
        let is_json = field.metadata().get(JSON_COLUMN_META).map(String::as_str) == Some("true");
        for (&row, out) in rows.iter().zip(out_rows.iter_mut()) {
            if col.is_null(row) {
                continue;
            }
            let v = cell(field, col.as_ref(), row, is_json)?;
            out.insert(field.name().clone(), v);
        }
    }
    Ok(out_rows.into_iter().map(Value::Object).collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_survive_a_batch() {
        let records = crate::records::tests::mixed_records();
        let s = RecordSchema::infer(&records, Some("timestamp")).unwrap();
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
    fn a_declared_schema_names_the_record_and_field() {
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
}
