//! Seed 004's key layouts, relative to each route's prefix.
//!
//! With the default prefixes the full keys are exactly the seed's:
//!
//! | route | helper | full key |
//! |---|---|---|
//! | `records` | [`record_head`] | `records/{collection}/{id}/head.json` |
//! | `versions` | [`record_version`] | `versions/{collection}/{id}/v{n}.json` |
//! | `content` | [`content_blob`] | `content/{collection}/{id}/{property}/blob.bin` |
//! | `backups` | [`backup_snapshot`] | `backups/{collection}/{date}/snapshot.json` |
//! | `logs` | [`log_entry`] | `logs/{collection}/{timestamp}/log.json` |
//!
//! Each part must be one path segment: a `/`, an empty part, `.` or `..` is an error, so a
//! collection or id taken from user input cannot change the layout.
//!
//! ```
//! use storage_router::layout;
//! assert_eq!(layout::record_head("users", "42")?, "users/42/head.json");
//! assert_eq!(layout::record_version("users", "42", 3)?, "users/42/v3.json");
//! assert!(layout::record_head("users", "../admin").is_err());
//! # Ok::<(), storage_core::StorageError>(())
//! ```

use chrono::{DateTime, NaiveDate, Utc};
use storage_core::{Result, StorageError};

fn segment<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if value.is_empty() || value == "." || value == ".." || value.contains('/') {
        return Err(StorageError::invalid_input(
            what,
            format!(
                "`{}` must be one non-empty path segment without `/` (and not `.` or `..`)",
                value.escape_debug()
            ),
        ));
    }
    Ok(value)
}

/// `{collection}/{id}/head.json`: the current version of a record.
pub fn record_head(collection: &str, id: &str) -> Result<String> {
    Ok(format!(
        "{}/{}/head.json",
        segment("collection", collection)?,
        segment("id", id)?
    ))
}

/// `{collection}/{id}/v{n}.json`: an immutable version of a record.
pub fn record_version(collection: &str, id: &str, n: u64) -> Result<String> {
    Ok(format!(
        "{}/{}/v{n}.json",
        segment("collection", collection)?,
        segment("id", id)?
    ))
}

/// `{collection}/{id}/`: the folder holding every version of a record.
pub fn record_versions_prefix(collection: &str, id: &str) -> Result<String> {
    Ok(format!(
        "{}/{}/",
        segment("collection", collection)?,
        segment("id", id)?
    ))
}

/// `{collection}/{id}/{property}/blob.bin`: a binary property of a record.
pub fn content_blob(collection: &str, id: &str, property: &str) -> Result<String> {
    Ok(format!(
        "{}/{}/{}/blob.bin",
        segment("collection", collection)?,
        segment("id", id)?,
        segment("property", property)?
    ))
}

/// `{collection}/{date}/snapshot.json` with the date as `YYYY-MM-DD`.
pub fn backup_snapshot(collection: &str, date: NaiveDate) -> Result<String> {
    Ok(format!(
        "{}/{}/snapshot.json",
        segment("collection", collection)?,
        date.format("%Y-%m-%d")
    ))
}

/// `{collection}/{timestamp}/log.json` with a timestamp that sorts in time order as text
/// (`2026-11-23T05-58-45.123Z`: no `:`, so it is a valid file name on every system).
pub fn log_entry(collection: &str, at: DateTime<Utc>) -> Result<String> {
    Ok(format!(
        "{}/{}/log.json",
        segment("collection", collection)?,
        at.format("%Y-%m-%dT%H-%M-%S%.3fZ")
    ))
}

/// The version number in a key made by [`record_version`] (`.../v12.json` → 12).
pub fn parse_version(key: &str) -> Option<u64> {
    key.rsplit('/')
        .next()?
        .strip_prefix('v')?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn layouts_match_seed_004() {
        assert_eq!(
            content_blob("docs", "7", "avatar").unwrap(),
            "docs/7/avatar/blob.bin"
        );
        let d = NaiveDate::from_ymd_opt(2026, 1, 15).unwrap();
        assert_eq!(
            backup_snapshot("docs", d).unwrap(),
            "docs/2026-01-15/snapshot.json"
        );
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 5, 58, 45).unwrap();
        assert_eq!(
            log_entry("activity", t).unwrap(),
            "activity/2026-11-23T05-58-45.000Z/log.json"
        );
        assert_eq!(parse_version("users/42/v12.json"), Some(12));
        assert_eq!(parse_version("users/42/head.json"), None);
    }

    #[test]
    fn parts_are_single_segments() {
        for (c, i) in [("a/b", "1"), ("a", ""), ("a", ".."), (".", "x")] {
            assert!(record_head(c, i).is_err(), "{c} {i}");
        }
    }

    #[test]
    fn log_keys_sort_in_time_order() {
        let a = log_entry("l", Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()).unwrap();
        let b = log_entry("l", Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap()).unwrap();
        assert!(a < b);
    }
}
