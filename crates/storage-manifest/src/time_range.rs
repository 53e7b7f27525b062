//! Half-open time windows used by reads, scans and searches.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use storage_core::{Result, StorageError};

/// A time window `[from, to)`; either end may be open.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use storage_manifest::TimeRange;
/// let jan = TimeRange::between(
///     Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
///     Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap(),
/// ).unwrap();
/// assert!(jan.contains(Utc.with_ymd_and_hms(2024, 1, 31, 23, 59, 59).unwrap()));
/// assert!(!jan.contains(Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap()));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Inclusive start; `None` = since the beginning.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive end; `None` = no end.
    pub to: Option<DateTime<Utc>>,
}

impl TimeRange {
    /// Every time.
    pub fn all() -> Self {
        TimeRange::default()
    }

    /// `[from, to)`; `from` must not be after `to`.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self> {
        if from > to {
            return Err(StorageError::invalid_input(
                "time range",
                format!("`from` ({from}) is after `to` ({to}); swap them"),
            ));
        }
        Ok(TimeRange {
            from: Some(from),
            to: Some(to),
        })
    }

    /// From `from` on.
    pub fn since(from: DateTime<Utc>) -> Self {
        TimeRange {
            from: Some(from),
            to: None,
        }
    }

    /// Before `to`.
    pub fn until(to: DateTime<Utc>) -> Self {
        TimeRange {
            from: None,
            to: Some(to),
        }
    }

    /// Whether neither end is set.
    pub fn is_all(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    /// Whether `t` is inside.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|e| t < e)
    }

    /// Whether the closed span `[min, max]` shares any instant with this window.
    pub fn overlaps(&self, min: DateTime<Utc>, max: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| max >= f) && self.to.is_none_or(|e| min < e)
    }

    pub(crate) fn micros(&self) -> crate::parquet_io::MicrosWindow {
        crate::parquet_io::MicrosWindow {
            from: self.from.map(|t| t.timestamp_micros()),
            to: self.to.map(|t| t.timestamp_micros()),
        }
    }
}
