//! The routing half of Strata's TOML configuration.
//!
//! The facade (`strata`) owns `[connections.*]` and `[buckets.*]` and embeds these tables
//! beside them:
//!
//! ```toml
//! [routes.records]            # data type -> bucket + folder prefix
//! bucket = "main"
//! prefix = "records"          # default: the route's name
//!
//! [routes.records.offload]    # seed 004 s3Offload
//! after_days = 30
//! bucket = "archive"
//!
//! [sources.tide]              # ordered read set: primary first, then fallbacks
//! buckets = ["agent", "server-001", "server-002", "server-003"]
//! policy = "hedged"           # sequential (default) | parallel | hedged
//! hedge_cap = "50ms"          # hedged: the delay adapts to observed latency, up to this
//! hedge_budget = 0.1          # hedged: at most 10% more requests than sequential
//!
//! [tenants.acme]              # a scope that can never reach outside its prefix/bucket
//! prefix = "tenants/acme"
//!
//! [bucket_health]             # how failures lower a bucket's priority
//! demote_after = 2
//! demote_for = "30s"
//! ```
//!
//! Seed 004's legacy form, one top-level `bucket = "data"` for everything, still loads: every
//! built-in route then lives in that bucket under its default prefix, and a deprecation
//! warning is logged.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use storage_core::Result;

/// The built-in data types of seed 004; each is a route whose default prefix is its name.
pub const BUILTIN_ROUTES: [&str; 5] = ["records", "versions", "content", "backups", "logs"];

/// Routing settings: routes, source sets, tenants, the legacy single bucket, health policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Legacy (seed 004): one bucket for every data type. Deprecated; use `[routes.*]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Data type → bucket and folder prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, RouteConfig>,
    /// Named, ordered read sets (primary first).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Tenant-scoped views.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, TenantConfig>,
    /// How recent failures lower a bucket's read priority.
    #[serde(default)]
    pub bucket_health: HealthConfig,
}

impl RouterConfig {
    /// Parse a TOML document holding only routing tables (handy in tests and tools).
    /// Errors name `origin` and the line.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        storage_core::config::from_toml_str(text, origin)
    }
}

/// Where one data type lives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Bucket handle name (a `[buckets.NAME]`). When absent: the connection's per-type
    /// bucket, then the legacy `bucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Connection whose `type_buckets` to consult when `bucket` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Folder prefix inside the bucket; default: the route's name; `""` means the bucket root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Move objects older than N days elsewhere (reads still find them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offload: Option<OffloadConfig>,
}

/// Seed 004's `s3Offload`: where old objects of a route go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffloadConfig {
    /// Objects last modified more than this many days ago are offloaded.
    pub after_days: u32,
    /// Bucket to move them to (a `[buckets.NAME]`); absent = same bucket, new storage class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Folder prefix in the offload bucket; default: the route's prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Storage class to write them with (`STANDARD_IA`, `GLACIER_IR`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// How a read over a source set proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    /// One bucket after another, in order; stop at the first hit (seed 000).
    #[default]
    Sequential,
    /// All buckets at once; the hit from the highest-priority bucket wins.
    Parallel,
    /// Start the first bucket, then the next one after a delay learnt from its latency (or
    /// `hedge_delay`), or as soon as one misses.
    Hedged,
}

/// A named, ordered read set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Bucket handle names, primary first.
    pub buckets: Vec<String>,
    /// Read policy.
    #[serde(default)]
    pub policy: PolicyName,
    /// A fixed delay before hedging to the next bucket (policy = "hedged" only). Absent: the
    /// delay adapts to each bucket's observed latency (`hedge_quantile`, `hedge_floor`,
    /// `hedge_cap`).
    #[serde(
        default,
        with = "storage_core::config::duration_str::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub hedge_delay: Option<Duration>,
    /// Adaptive hedging: the latency quantile of a bucket that usually has the key after
    /// which the next request starts (default 0.95).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge_quantile: Option<f64>,
    /// Adaptive hedging: the least delay before hedging past a bucket that usually has the
    /// key (default 1ms).
    #[serde(
        default,
        with = "storage_core::config::duration_str::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub hedge_floor: Option<Duration>,
    /// Adaptive hedging: the longest delay, also used while a bucket has too few observed
    /// answers (default 50ms).
    #[serde(
        default,
        with = "storage_core::config::duration_str::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub hedge_cap: Option<Duration>,
    /// Extra requests hedging may add, as a fraction of the requests a sequential read
    /// would make (default 0.1: at most 10% more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge_budget: Option<f64>,
    /// Also hedge within one bucket: a second GET of the same object after the delay,
    /// before moving on to the next bucket (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hedge_within_bucket: Option<bool>,
}

/// The fixed hedge delay of `ReadPolicy::parse("hedged:…")`'s examples, and the default cap
/// of the adaptive delay (the delay used before a bucket has been observed).
pub const DEFAULT_HEDGE_DELAY: Duration = Duration::from_millis(50);

/// A tenant's scope: a folder prefix, a bucket of its own, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Bucket handle name; default: the legacy `bucket`, or the only bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Folder prefix the tenant is confined to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// How recent failures lower a bucket's read priority (seed 000 "bucket health monitoring").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Consecutive failures after which a bucket is tried last (at least 1).
    #[serde(
        default = "default_demote_after",
        deserialize_with = "storage_core::config::at_least_one"
    )]
    pub demote_after: u32,
    /// How long a demotion lasts after the latest failure (more than zero).
    #[serde(
        default = "default_demote_for",
        with = "storage_core::config::duration_str::nonzero"
    )]
    pub demote_for: Duration,
}

fn default_demote_after() -> u32 {
    2
}

fn default_demote_for() -> Duration {
    Duration::from_secs(30)
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            demote_after: default_demote_after(),
            demote_for: default_demote_for(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let cfg = RouterConfig::from_toml_str(
            r#"
            [routes.records]
            bucket = "main"
            [routes.records.offload]
            after_days = 30
            bucket = "archive"
            [sources.tide]
            buckets = ["agent", "server-001"]
            policy = "hedged"
            hedge_delay = "50ms"
            hedge_budget = 0.05
            [tenants.acme]
            prefix = "tenants/acme"
            [bucket_health]
            demote_after = 3
            "#,
            "strata.toml",
        )
        .unwrap();
        assert_eq!(cfg.routes["records"].bucket.as_deref(), Some("main"));
        assert_eq!(
            cfg.routes["records"].offload.as_ref().unwrap().after_days,
            30
        );
        assert_eq!(cfg.sources["tide"].policy, PolicyName::Hedged);
        assert_eq!(
            cfg.sources["tide"].hedge_delay,
            Some(Duration::from_millis(50))
        );
        assert_eq!(cfg.sources["tide"].hedge_budget, Some(0.05));
        assert_eq!(cfg.bucket_health.demote_after, 3);
        assert_eq!(cfg.bucket_health.demote_for, Duration::from_secs(30));
    }

    #[test]
    fn serializes_for_json_output() {
        let cfg = RouterConfig::from_toml_str(
            "bucket = \"data\"\n[sources.s]\nbuckets = [\"a\"]\npolicy = \"parallel\"\n",
            "t.toml",
        )
        .unwrap();
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["sources"]["s"]["policy"], "parallel");
        assert_eq!(json["bucket"], "data");
    }
}
