//! Time-to-live: expiry times kept in object metadata, an injectable clock, and seed 001's
//! recommended TTLs by entity kind.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

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
    fn huge_ttl_saturates() {
        let now = Utc::now();
        assert_eq!(expiry_after(now, Duration::MAX), DateTime::<Utc>::MAX_UTC);
    }
}
