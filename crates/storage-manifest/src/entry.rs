//! What a manifest holds: one entry per data file, and the filter scans apply to entries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::Format;
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
