//! Time-to-live: expiry times kept in object metadata, an injectable clock, and seed 001's
//! recommended TTLs by entity kind.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use storage_core::StorageError;

/// User-metadata name holding a document's expiry time (RFC 3339, UTC, whole seconds).
/// On S3 it travels as `x-amz-meta-strata-expires-at`, so other clients can see it too.
pub const EXPIRES_AT_META: &str = "strata-expires-at";

/// Where "now" comes from. Tests inject a [`ManualClock`] instead of sleeping.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
///
/// ```
/// use std::time::Duration;
/// use storage_cas::{Clock, ManualClock};
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now().to_rfc3339(), "2026-01-01T01:00:00+00:00");
/// ```
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }

    /// Set the time.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// Move the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `now + ttl`, saturating far in the future instead of overflowing.
pub fn expiry_after(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Shortest TTL a write accepts: expiry times are recorded in whole seconds, so a shorter
/// one expires before anyone can read the document.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// Latest expiry a write accepts (9999-12-31T23:59:59Z): RFC 3339, how expiry times are
/// recorded, has four-digit years, and a later time could not be read back.
pub fn last_expiry() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).expect("a valid time")
}

/// `now + ttl`, or [`StorageError::InvalidInput`] (field `ttl`) naming the TTL and the fix
/// when it is shorter than [`MIN_TTL`] or ends after [`last_expiry`]. Every TTL a
/// [`Collection`](crate::Collection) writes goes through this.
///
/// ```
/// use std::time::Duration;
/// use storage_cas::ttl::checked_expiry;
/// let now = "2026-01-01T00:00:00Z".parse().unwrap();
/// assert_eq!(checked_expiry(now, Duration::from_secs(60))?.to_rfc3339(), "2026-01-01T00:01:00+00:00");
/// assert!(checked_expiry(now, Duration::ZERO).is_err());
/// assert!(checked_expiry(now, Duration::from_secs(1_000_000_000 * 86_400)).is_err());
/// # Ok::<(), storage_core::StorageError>(())
/// ```
pub fn checked_expiry(now: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>, StorageError> {
    if ttl < MIN_TTL {
        return Err(StorageError::invalid_input(
            "ttl",
            format!(
                "a TTL of {ttl:?} expires before anyone can read the document (expiry times are recorded in whole seconds); use at least 1s, or no TTL (Ttl::Never)"
            ),
        ));
    }
    let at = expiry_after(now, ttl);
    if at > last_expiry() {
        return Err(StorageError::invalid_input(
            "ttl",
            format!(
                "a TTL of {} days would expire after the year 9999, which cannot be recorded and read back; use a shorter TTL (such as 3650 days) or no TTL (Ttl::Never)",
                ttl.as_secs() / 86_400
            ),
        ));
    }
    Ok(at)
}

/// The metadata value recording `at`.
pub fn format_expiry(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The expiry time recorded in `metadata` (user metadata, as in
/// [`ObjectInfo::metadata`](storage_core::ObjectInfo)), if any. Accepts RFC 3339 and whole
/// unix seconds (what other tools tend to write). An unreadable value counts as "no expiry":
/// a typo must never make data disappear.
pub fn expires_at(metadata: &BTreeMap<String, String>) -> Option<DateTime<Utc>> {
    let raw = metadata.get(EXPIRES_AT_META)?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    match raw.parse::<i64>() {
        Ok(secs) => DateTime::from_timestamp(secs, 0),
        Err(_) => {
            tracing::warn!(
                value = raw,
                "ignoring unreadable {EXPIRES_AT_META} metadata"
            );
            None
        }
    }
}

/// Whether the object with this user metadata has expired at `now` (its expiry time is at
/// or before `now`). Objects without an expiry never expire.
///
/// ```
/// use std::collections::BTreeMap;
/// use storage_cas::ttl::{is_expired, EXPIRES_AT_META};
/// let meta = BTreeMap::from([(EXPIRES_AT_META.to_string(), "2026-01-01T00:00:00Z".to_string())]);
/// assert!(is_expired(&meta, "2026-01-01T00:00:00Z".parse().unwrap()));
/// assert!(!is_expired(&meta, "2025-12-31T23:59:59Z".parse().unwrap()));
/// assert!(!is_expired(&BTreeMap::new(), chrono::Utc::now()));
/// ```
pub fn is_expired(metadata: &BTreeMap<String, String>, now: DateTime<Utc>) -> bool {
    expires_at(metadata).is_some_and(|at| at <= now)
}

/// [`is_expired`] against the system clock (seed 001's `isExpired(metadata)`).
pub fn is_expired_now(metadata: &BTreeMap<String, String>) -> bool {
    is_expired(metadata, Utc::now())
}

/// Default TTLs by entity kind, as seed 001's `getRecommendedTTL`: assistants 30 days,
/// threads 7 days, runs 24 hours. Change or add kinds with [`TtlDefaults::with`].
///
/// ```
/// use std::time::Duration;
/// use storage_cas::ttl::TtlDefaults;
/// let ttls = TtlDefaults::recommended().with("session", Duration::from_secs(3600));
/// assert_eq!(ttls.get("thread"), Some(Duration::from_secs(7 * 24 * 3600)));
/// assert_eq!(ttls.get("session"), Some(Duration::from_secs(3600)));
/// assert_eq!(ttls.get("unknown"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TtlDefaults {
    by_kind: BTreeMap<String, Duration>,
}

/// 30 days: long-lived entities (seed 001: assistants).
pub const TTL_LONG: Duration = Duration::from_secs(30 * 24 * 3600);
/// 7 days: conversations (seed 001: threads, messages).
pub const TTL_MEDIUM: Duration = Duration::from_secs(7 * 24 * 3600);
/// 24 hours: short-lived work items (seed 001: runs).
pub const TTL_SHORT: Duration = Duration::from_secs(24 * 3600);

impl TtlDefaults {
    /// No kinds.
    pub fn empty() -> Self {
        TtlDefaults::default()
    }

    /// Seed 001's table: `assistant` 30 days, `thread` and `message` 7 days, `run` 24 hours.
    pub fn recommended() -> Self {
        TtlDefaults::empty()
            .with("assistant", TTL_LONG)
            .with("thread", TTL_MEDIUM)
            .with("message", TTL_MEDIUM)
            .with("run", TTL_SHORT)
    }

    /// Set the TTL of `kind`.
    pub fn with(mut self, kind: impl Into<String>, ttl: Duration) -> Self {
        self.by_kind.insert(kind.into(), ttl);
        self
    }

    /// The TTL of `kind`, if configured.
    pub fn get(&self, kind: &str) -> Option<Duration> {
        self.by_kind.get(kind).copied()
    }

    /// All kinds and TTLs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.by_kind.iter().map(|(k, v)| (k.as_str(), *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_round_trip_and_formats() {
        let now: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
        let at = expiry_after(now, Duration::from_secs(90));
        let meta = BTreeMap::from([(EXPIRES_AT_META.to_string(), format_expiry(at))]);
        assert_eq!(meta[EXPIRES_AT_META], "2026-03-01T12:01:30Z");
        assert_eq!(expires_at(&meta), Some(at));
        let unix = BTreeMap::from([(EXPIRES_AT_META.to_string(), at.timestamp().to_string())]);
        assert_eq!(expires_at(&unix), Some(at));
        let past = BTreeMap::from([(
            EXPIRES_AT_META.to_string(),
            "2000-01-01T00:00:00Z".to_string(),
        )]);
        let future = BTreeMap::from([(
            EXPIRES_AT_META.to_string(),
            "9999-01-01T00:00:00Z".to_string(),
        )]);
        assert!(is_expired_now(&past) && !is_expired_now(&future));
        let junk = BTreeMap::from([(EXPIRES_AT_META.to_string(), "soon".to_string())]);
        assert!(!is_expired(&junk, DateTime::<Utc>::MAX_UTC));
    }

    #[test]
    fn ttls_are_bounded_to_what_can_be_read_back() {
        let now: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
        for bad in [Duration::ZERO, Duration::from_millis(999)] {
            let e = checked_expiry(now, bad).unwrap_err();
            assert!(
                matches!(&e, StorageError::InvalidInput { field, .. } if field == "ttl"),
                "{e}"
            );
            assert!(e.to_string().contains("at least 1s"), "{e}");
        }
        for bad in [Duration::from_secs(1_000_000_000 * 86_400), Duration::MAX] {
            let e = checked_expiry(now, bad).unwrap_err();
            assert!(e.to_string().contains("after the year 9999"), "{e}");
        }
        assert_eq!(
            checked_expiry(now, MIN_TTL).unwrap().to_rfc3339(),
            "2026-03-01T12:00:01+00:00"
        );
        // The last expiry accepted is written and read back exactly.
        let room = (last_expiry() - now).to_std().unwrap();
        let at = checked_expiry(now, room).unwrap();
        let meta = BTreeMap::from([(EXPIRES_AT_META.to_string(), format_expiry(at))]);
        assert_eq!(expires_at(&meta), Some(last_expiry()));
        assert!(checked_expiry(now, room + MIN_TTL).is_err());
    }

    #[tokio::test]
    async fn a_collection_refuses_ttls_it_cannot_read_back_and_writes_nothing() {
        use crate::{Collection, WriteOpts};
        let bucket = storage_core::Bucket::memory("docs");
        let docs: Collection<serde_json::Value> = Collection::new(&bucket, "d/{id}.json").unwrap();
        for ttl in [Duration::ZERO, Duration::from_secs(1_000_000_000 * 86_400)] {
            let e = docs
                .put_with("a", &serde_json::json!({}), &WriteOpts::ttl(ttl))
                .await
                .unwrap_err();
            assert!(
                matches!(&e, StorageError::InvalidInput { field, .. } if field == "ttl"),
                "{e}"
            );
        }
        // A collection default is checked the same way, at the write.
        let zero = docs.clone().with_ttl(Duration::ZERO);
        let e = zero.put("b", &serde_json::json!({})).await.unwrap_err();
        assert!(e.to_string().contains("at least 1s"), "{e}");
        assert!(!bucket.exists("d/a.json").await.unwrap());
        assert!(!bucket.exists("d/b.json").await.unwrap());
        docs.put_with("c", &serde_json::json!({}), &WriteOpts::ttl(MIN_TTL))
            .await
            .unwrap();
        assert!(
            docs.get_including_expired("c")
                .await
                .unwrap()
                .unwrap()
                .expires_at
                .is_some()
        );
    }

    #[test]
    fn huge_ttl_saturates() {
        let now = Utc::now();
        assert_eq!(expiry_after(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
