//! File formats and Parquet compression.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use storage_core::StorageError;

/// How a dataset file stores its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON document: a single object record as itself, several records as an array.
    Json,
    /// One JSON value per line.
    Jsonl,
    /// Apache Parquet (columnar, compressed, with a time column for pruning). Needs the
    /// `parquet` feature (on by default): without it the variant still parses and matches
    /// (so manifests listing Parquet files stay readable), but writing or reading such a file
    /// is [`StorageError::NotSupported`] naming the feature.
    Parquet,
}

impl Format {
    /// Every format, in the order `read` probes file extensions.
    pub const ALL: [Format; 3] = [Format::Parquet, Format::Jsonl, Format::Json];

    /// File extension (`json`, `jsonl`, `parquet`).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Parquet => "parquet",
        }
    }

    /// Content type stored with the object.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Jsonl => "application/x-ndjson",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The format whose extension is `ext`.
    pub fn from_extension(ext: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.extension() == ext)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for Format {
    type Err = StorageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "parquet" => Ok(Format::Parquet),
            other => Err(StorageError::invalid_input(
                "format",
                format!("unknown format `{other}`; use json, jsonl or parquet"),
            )),
        }
    }
}

/// The error for Parquet work (`what`) in a build without the `parquet` feature.
#[cfg(not(feature = "parquet"))]
pub(crate) fn parquet_not_compiled(what: impl fmt::Display) -> StorageError {
    StorageError::not_supported(
        "storage-manifest",
        format!(
            "{what}: this build lacks Parquet support; enable the `parquet` feature of \
             storage-manifest (on by default), or `manifest-parquet` on the `strata` crate"
        ),
    )
}

/// Compression codec for Parquet files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Snappy: fast, moderate ratio; every Parquet reader supports it.
    #[default]
    Snappy,
    /// Zstandard at the given level (1-22; 3 is a good default): smaller files, slower writes.
    Zstd(i32),
}

#[cfg(feature = "parquet")]
impl Compression {
    pub(crate) fn to_parquet(self) -> storage_core::Result<parquet::basic::Compression> {
        match self {
            Compression::Snappy => Ok(parquet::basic::Compression::SNAPPY),
            Compression::Zstd(level) => parquet::basic::ZstdLevel::try_new(level)
                .map(parquet::basic::Compression::ZSTD)
                .map_err(|_| {
                    StorageError::invalid_input(
                        "compression",
                        format!("zstd level {level} is out of range; use 1 to 22"),
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
            assert_eq!(Format::from_extension(f.extension()), Some(f));
        }
        assert_eq!("NDJSON".parse::<Format>().unwrap(), Format::Jsonl);
        let err = "csv".parse::<Format>().unwrap_err().to_string();
        assert!(err.contains("format") && err.contains("csv"), "{err}");
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn zstd_levels_are_checked() {
        assert!(Compression::Zstd(99).to_parquet().is_err());
        assert!(Compression::Zstd(3).to_parquet().is_ok());
    }
}
