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

    /// Parse a window from text, as a command line gives it: each end is RFC 3339
    /// (`2024-01-15T10:00:00Z`) or a date (`2024-01-15`, midnight UTC); `None` leaves that end
    /// open.
    ///
    /// ```
    /// use storage_manifest::TimeRange;
    /// let r = TimeRange::parse(Some("2024-01-15"), Some("2024-01-16T00:00:00Z")).unwrap();
    /// assert_eq!(r.from.unwrap().to_rfc3339(), "2024-01-15T00:00:00+00:00");
    /// assert!(TimeRange::parse(Some("yesterday"), None).is_err());
    /// ```
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self> {
        fn one(field: &str, s: &str) -> Result<DateTime<Utc>> {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.with_timezone(&Utc));
            }
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .ok_or_else(|| {
                    StorageError::invalid_input(
                        field,
                        format!("`{s}` is not a time; write RFC 3339 (2024-01-15T10:00:00Z) or a date (2024-01-15)"),
                    )
                })
        }
        let from = from.map(|s| one("from", s)).transpose()?;
        let to = to.map(|s| one("to", s)).transpose()?;
        match (from, to) {
            (Some(f), Some(t)) => TimeRange::between(f, t),
            _ => Ok(TimeRange { from, to }),
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

    #[cfg(feature = "parquet")]
    pub(crate) fn micros(&self) -> crate::parquet_io::MicrosWindow {
        crate::parquet_io::MicrosWindow {
            from: self.from.map(|t| t.timestamp_micros()),
            to: self.to.map(|t| t.timestamp_micros()),
        }
    }
}
