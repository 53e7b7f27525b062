//! The router: named buckets, routes, source sets and tenants, validated together.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::join_all;
use object_store::ObjectStore;
use serde::Serialize;
use storage_core::config::validate_name;
use storage_core::{Bucket, Key, Object, Result, StorageError};

use crate::config::{BUILTIN_ROUTES, OffloadConfig, RouterConfig};
use crate::health::{BucketHealth, HealthTracker};
use crate::read::{Found, ReadPolicy};
use crate::route::{OffloadTarget, Route, RoutedTarget, parse_prefix};
use crate::source::{SourceInfo, SourceSet};

/// Buckets, routes, source sets and tenants, built from a [`RouterConfig`] and validated as
/// a whole. Cheap to clone.
///
/// ```
/// use std::collections::BTreeMap;
/// use storage_core::Bucket;
/// use storage_router::{Router, RouterConfig};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let config = RouterConfig::from_toml_str(r#"
///     [routes.records]
///     bucket = "main"
///     [routes.backups]
///     bucket = "cold"
///     [sources.everywhere]
///     buckets = ["main", "cold"]
/// "#, "strata.toml")?;
/// let router = Router::from_buckets([Bucket::memory("main"), Bucket::memory("cold")], &config, "strata.toml")?;
/// router.route("records")?.put("users/1/head.json", "{}").await?;
/// let found = router.read_any("everywhere", "records/users/1/head.json").await?;
/// assert_eq!(found.bucket, "main");
/// assert!(router.bucket("nope").unwrap_err().to_string().contains("`main`"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: String,
    buckets: BTreeMap<String, Bucket>,
    bucket_connections: BTreeMap<String, String>,
    routes: BTreeMap<String, Route>,
    unrouted: BTreeMap<String, String>,
    sources: BTreeMap<String, SourceSet>,
    tenants: BTreeMap<String, Route>,
    health: HealthTracker,
    legacy_bucket: Option<String>,
}

/// Everything `strata buckets info` shows (seed 000 `getBucketInfo`).
#[derive(Debug, Clone, Serialize)]
pub struct RouterInfo {
    /// Config file the router came from.
    pub origin: String,
    /// The legacy single bucket, if the config still uses one.
    pub legacy_bucket: Option<String>,
    /// Every bucket handle.
    pub buckets: Vec<BucketEntry>,
    /// Every resolved route.
    pub routes: Vec<RouteInfo>,
    /// Every source set: primary, fallbacks, policy.
    pub sources: Vec<SourceInfo>,
    /// Every tenant scope.
    pub tenants: Vec<TenantInfo>,
}

/// A bucket handle in [`RouterInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketEntry {
    /// Handle name.
    pub name: String,
    /// Provider (`s3`, `r2`, `fs`, `memory`).
    pub provider: String,
    /// Connection it belongs to, when known.
    pub connection: Option<String>,
}

/// A route in [`RouterInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    /// Data type.
    pub name: String,
    /// Bucket, prefix, provider.
    #[serde(flatten)]
    pub target: RoutedTarget,
    /// Offload target, if any.
    pub offload: Option<OffloadInfo>,
}

/// A route's offload target in [`RouterInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffloadInfo {
    /// Objects older than this many days move.
    pub after_days: u32,
    /// Bucket they move to.
    pub bucket: String,
    /// Prefix there.
    pub prefix: String,
    /// Storage class they are written with.
    pub storage_class: Option<String>,
}

/// A tenant in [`RouterInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantInfo {
    /// Tenant name.
    pub name: String,
    /// Bucket, prefix, provider.
    #[serde(flatten)]
    pub target: RoutedTarget,
}

/// Config errors name the file and the field path.
struct Ctx<'a> {
    origin: &'a str,
    buckets: &'a BTreeMap<String, Bucket>,
}

impl Ctx<'_> {
    fn err(&self, field: impl AsRef<str>, reason: impl Into<String>) -> StorageError {
        StorageError::invalid_config(format!("{}: {}", self.origin, field.as_ref()), reason)
    }

    fn known(&self) -> String {
        if self.buckets.is_empty() {
            "none are defined; add a [buckets.NAME] table".to_string()
        } else {
            self.buckets
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    fn bucket(&self, field: impl AsRef<str>, name: &str) -> Result<Bucket> {
        self.buckets.get(name).cloned().ok_or_else(|| {
            self.err(
                field,
                format!("unknown bucket `{name}`; known buckets: {}", self.known()),
            )
        })
    }

    fn name(&self, field: impl AsRef<str>, name: &str) -> Result<()> {
        validate_name("", name).map_err(|e| match e {
            StorageError::InvalidConfig { reason, .. } => self.err(field, reason),
            other => other,
        })
    }

    fn prefix(&self, field: impl AsRef<str>, prefix: &str) -> Result<Option<Key>> {
        parse_prefix(prefix).map_err(|e| {
            self.err(
                field,
                format!("{e}; a prefix is a folder path such as `records` or `tenants/acme`, or \"\" for the bucket root"),
            )
        })
    }
}

/// A folder a route or tenant owns, for the overlap check.
struct Area {
    field: String,
    owner: String,
    /// Handle name, for messages.
    bucket: String,
    /// Where the handle's data lives, and the folder there: two handles on one storage
    /// location are the same place.
    location: String,
    prefix: String,
}

/// The folder `prefix` of `bucket` as seen from its storage location (with the handle's own
/// prefix in front).
fn area_prefix(bucket: &Bucket, prefix: &str) -> String {
    match (bucket.prefix().map(Key::as_str), prefix) {
        (Some(p), "") => p.to_string(),
        (Some(p), q) => format!("{p}/{q}"),
        (None, q) => q.to_string(),
    }
}

fn overlaps(a: &str, b: &str) -> bool {
    fn under(child: &str, parent: &str) -> bool {
        parent.is_empty()
            || child == parent
            || child
                .strip_prefix(parent)
                .is_some_and(|rest| rest.starts_with('/'))
    }
    under(a, b) || under(b, a)
}

impl Router {
    /// Build and validate.
    ///
    /// - `buckets`: every `[buckets.NAME]` handle, by name;
    /// - `bucket_connections`: bucket name → the connection it is on (for info and for
    ///   per-type bucket resolution);
    /// - `connection_type_buckets`: connection → (data type → bucket name), from
    ///   `[connections.NAME.type_buckets]`;
    /// - `origin`: the config file's name, used in every error.
    ///
    /// A route's bucket is resolved in this order: the route's own `bucket`; the per-type
    /// bucket of its `connection` (or, when it names none, of the legacy bucket's
    /// connection, or of the only connection that has per-type buckets); the legacy
    /// `bucket`; the only bucket, when exactly one is defined. A built-in route that
    /// resolves to nothing is simply absent; a configured one is an error.
    pub fn new(
        buckets: BTreeMap<String, Bucket>,
        bucket_connections: BTreeMap<String, String>,
        connection_type_buckets: BTreeMap<String, BTreeMap<String, String>>,
        config: &RouterConfig,
        origin: &str,
    ) -> Result<Router> {
        let cx = Ctx {
            origin,
            buckets: &buckets,
        };
        let health = HealthTracker::new(config.bucket_health);

        // Per-type buckets of each connection.
        for (conn, types) in &connection_type_buckets {
            for (ty, bucket) in types {
                let field = format!("connections.{conn}.type_buckets.{ty}");
                cx.name(&field, ty)?;
                cx.bucket(&field, bucket)?;
            }
        }
        let connections: BTreeSet<&String> = connection_type_buckets
            .keys()
            .chain(bucket_connections.values())
            .collect();

        // Legacy single bucket.
        if let Some(legacy) = &config.bucket {
            cx.bucket("bucket", legacy)?;
            tracing::warn!(
                origin,
                bucket = %legacy,
                "`bucket = \"{legacy}\"` (one bucket for every data type) is deprecated; \
                 add [routes.records], [routes.versions], ... with `bucket = \"{legacy}\"` instead"
            );
        }
        let only_bucket = (buckets.len() == 1)
            .then(|| buckets.keys().next().cloned())
            .flatten();
        let default_bucket = config.bucket.clone().or(only_bucket.clone());

        // Routes.
        let mut routes = BTreeMap::new();
        let mut unrouted = BTreeMap::new();
        let mut areas: Vec<Area> = Vec::new();
        let names: BTreeSet<&str> = BUILTIN_ROUTES
            .iter()
            .copied()
            .chain(config.routes.keys().map(String::as_str))
            .collect();
        for name in names {
            let cfg = config.routes.get(name);
            let field = format!("routes.{name}");
            cx.name(&field, name)?;
            let explicit_conn = cfg.and_then(|c| c.connection.as_deref());
            if let Some(conn) = explicit_conn
                && !connections.contains(&conn.to_string())
            {
                return Err(cx.err(
                    format!("{field}.connection"),
                    format!(
                        "unknown connection `{conn}`; known connections: {}",
                        list(connections.iter().copied())
                    ),
                ));
            }
            let conn = explicit_conn
                .map(str::to_string)
                .or_else(|| {
                    config
                        .bucket
                        .as_ref()
                        .and_then(|b| bucket_connections.get(b).cloned())
                })
                .or_else(|| {
                    (connection_type_buckets.len() == 1)
                        .then(|| connection_type_buckets.keys().next().cloned())
                        .flatten()
                });
            let per_type = conn
                .as_ref()
                .and_then(|c| connection_type_buckets.get(c))
                .and_then(|types| types.get(name));
            let bucket_name = cfg
                .and_then(|c| c.bucket.clone())
                .or_else(|| per_type.cloned())
                .or_else(|| config.bucket.clone())
                .or_else(|| only_bucket.clone());
            let Some(bucket_name) = bucket_name else {
                let reason = format!(
                    "no bucket for data type `{name}`: set `{field}.bucket` (known buckets: {}), \
                     a per-type bucket in [connections.NAME.type_buckets], or the legacy top-level `bucket`",
                    cx.known()
                );
                if cfg.is_some() {
                    return Err(cx.err(format!("{field}.bucket"), reason));
                }
                unrouted.insert(name.to_string(), reason);
                continue;
            };
            let bucket = cx.bucket(format!("{field}.bucket"), &bucket_name)?;
            let prefix_text = cfg
                .and_then(|c| c.prefix.clone())
                .unwrap_or_else(|| name.to_string());
            let prefix = cx.prefix(format!("{field}.prefix"), &prefix_text)?;
            let mut routed =
                Route::new(name, bucket, prefix.as_ref().map(Key::as_str).unwrap_or(""))?;
            areas.push(Area {
                field: format!("{field}.prefix"),
                owner: format!("route `{name}`"),
                bucket: bucket_name.clone(),
                location: routed.bucket().location().to_string(),
                prefix: area_prefix(routed.bucket(), routed.prefix()),
            });
            if let Some(off) = cfg.and_then(|c| c.offload.as_ref()) {
                let target = offload_target(&cx, &field, &routed, off)?;
                if !target.is_in_place(&routed) {
                    areas.push(Area {
                        field: format!("{field}.offload.prefix"),
                        owner: format!("the offload folder of route `{name}`"),
                        bucket: target.bucket.name().to_string(),
                        location: target.bucket.location().to_string(),
                        prefix: area_prefix(
                            &target.bucket,
                            target.prefix.as_ref().map(Key::as_str).unwrap_or(""),
                        ),
                    });
                }
                routed = routed.with_offload(target)?;
            }
            routes.insert(name.to_string(), routed);
        }

        // Source sets.
        let mut sources = BTreeMap::new();
        for (name, src) in &config.sources {
            let field = format!("sources.{name}");
            cx.name(&field, name)?;
            if src.buckets.is_empty() {
                return Err(cx.err(
                    format!("{field}.buckets"),
                    format!(
                        "a source set needs at least one bucket, primary first; known buckets: {}",
                        cx.known()
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            let mut members = Vec::new();
            for (i, b) in src.buckets.iter().enumerate() {
                let f = format!("{field}.buckets[{i}]");
                if !seen.insert(b) {
                    return Err(cx.err(
                        f,
                        format!(
                            "bucket `{b}` is listed twice; list each bucket once, in priority order"
                        ),
                    ));
                }
                members.push(cx.bucket(f, b)?);
            }
            let policy = ReadPolicy::from_config(src).map_err(|e| match e {
                StorageError::InvalidConfig { field: f, reason } => {
                    cx.err(format!("{field}.{f}"), reason)
                }
                other => other,
            })?;
            let set = SourceSet::new(name.clone(), members, policy)?.with_health(health.clone());
            sources.insert(name.clone(), set);
        }

        // Tenants.
        let mut tenants = BTreeMap::new();
        for (name, t) in &config.tenants {
            let field = format!("tenants.{name}");
            cx.name(&field, name)?;
            if t.bucket.is_none() && t.prefix.is_none() {
                return Err(cx.err(
                    &field,
                    "a tenant needs a `prefix` (a folder of a shared bucket), a `bucket` of its own, or both",
                ));
            }
            let bucket_name = match (&t.bucket, &default_bucket) {
                (Some(b), _) => b.clone(),
                (None, Some(d)) => d.clone(),
                (None, None) => {
                    return Err(cx.err(
                        format!("{field}.bucket"),
                        format!(
                            "which bucket holds tenant `{name}`? Set `{field}.bucket` (known buckets: {})",
                            cx.known()
                        ),
                    ));
                }
            };
            let bucket = cx.bucket(format!("{field}.bucket"), &bucket_name)?;
            let prefix = cx.prefix(format!("{field}.prefix"), t.prefix.as_deref().unwrap_or(""))?;
            let routed = Route::new(
                name.clone(),
                bucket,
                prefix.as_ref().map(Key::as_str).unwrap_or(""),
            )?
            .strict();
            areas.push(Area {
                field: if t.prefix.is_some() {
                    format!("{field}.prefix")
                } else {
                    format!("{field}.bucket")
                },
                owner: format!("tenant `{name}`"),
                bucket: bucket_name,
                location: routed.bucket().location().to_string(),
                prefix: area_prefix(routed.bucket(), routed.prefix()),
            });
            tenants.insert(name.clone(), routed);
        }

        // No two routes/tenants may share a folder: one could read or overwrite the other's.
        for (i, a) in areas.iter().enumerate() {
            for b in &areas[..i] {
                if a.location == b.location && overlaps(&a.prefix, &b.prefix) {
                    let place = if a.bucket == b.bucket {
                        format!("bucket `{}`", a.bucket)
                    } else {
                        format!(
                            "buckets `{}` and `{}`, which are the same storage ({})",
                            a.bucket, b.bucket, a.location
                        )
                    };
                    return Err(cx.err(
                        &a.field,
                        format!(
                            "{} (prefix `{}`) overlaps {} (prefix `{}`) in {place}; give each its own folder, neither inside the other",
                            a.owner, a.prefix, b.owner, b.prefix
                        ),
                    ));
                }
            }
        }

        Ok(Router {
            inner: Arc::new(Inner {
                origin: origin.to_string(),
                buckets,
                bucket_connections,
                routes,
                unrouted,
                sources,
                tenants,
                health,
                legacy_bucket: config.bucket.clone(),
            }),
        })
    }

    /// Build from bucket handles alone (no connections): handy for tests and embedding.
    pub fn from_buckets(
        buckets: impl IntoIterator<Item = Bucket>,
        config: &RouterConfig,
        origin: &str,
    ) -> Result<Router> {
        let map = buckets
            .into_iter()
            .map(|b| (b.name().to_string(), b))
            .collect();
        Router::new(map, BTreeMap::new(), BTreeMap::new(), config, origin)
    }

    /// The handle for data type `name` (`records`, `versions`, ...): its bucket scoped to
    /// its prefix, falling back to its offload target on reads. Where it points:
    /// [`route_info`](Self::route_info).
    pub fn route(&self, name: &str) -> Result<Bucket> {
        self.route_info(name).map(|r| r.handle().clone())
    }

    /// Route `name`: its bucket, prefix and offload target, and its handle.
    pub fn route_info(&self, name: &str) -> Result<&Route> {
        if let Some(r) = self.inner.routes.get(name) {
            return Ok(r);
        }
        if let Some(reason) = self.inner.unrouted.get(name) {
            return Err(StorageError::invalid_config(
                format!("{}: routes.{name}.bucket", self.inner.origin),
                reason.clone(),
            ));
        }
        Err(StorageError::invalid_input(
            "route",
            format!(
                "`{name}` is not a route; routes: {}. Add [routes.{name}] to {} to define it",
                list(self.inner.routes.keys()),
                self.inner.origin
            ),
        ))
    }

    /// Every resolved route, by name.
    pub fn routes(&self) -> &BTreeMap<String, Route> {
        &self.inner.routes
    }

    /// One named bucket (seed 000 `getTideDataFromServer`); an unknown name is an error
    /// listing the valid ones.
    pub fn bucket(&self, name: &str) -> Result<&Bucket> {
        named(&self.inner.buckets, "bucket", "a bucket", name)
    }

    /// Every bucket handle, by name.
    pub fn buckets(&self) -> &BTreeMap<String, Bucket> {
        &self.inner.buckets
    }

    /// A source set by name; an unknown name lists the valid ones.
    pub fn source(&self, name: &str) -> Result<&SourceSet> {
        named(&self.inner.sources, "source", "a source set", name)
    }

    /// Every source set, by name.
    pub fn sources(&self) -> &BTreeMap<String, SourceSet> {
        &self.inner.sources
    }

    /// A tenant's scope: keys given to it can never reach outside its prefix or bucket, and
    /// keys with disguised separators are refused ([`KeyPolicy::Strict`](storage_core::KeyPolicy)).
    pub fn tenant(&self, name: &str) -> Result<Bucket> {
        self.tenant_info(name).map(|t| t.handle().clone())
    }

    /// Tenant `name`: its bucket and prefix, and its handle.
    pub fn tenant_info(&self, name: &str) -> Result<&Route> {
        named(&self.inner.tenants, "tenant", "a tenant", name)
    }

    /// Read `key` from source set `source` under its policy; says which bucket answered.
    pub async fn read_any(&self, source: &str, key: &str) -> Result<Found<Object>> {
        self.source(source)?.get(key).await
    }

    /// A source set as one `object_store` store (reads with fallback, merged listings,
    /// writes to the primary), for DataFusion, parquet, etc.
    pub fn source_store(&self, source: &str) -> Result<Arc<dyn ObjectStore>> {
        Ok(self.source(source)?.store())
    }

    /// The router as one `object_store` store: the source set named `default`, or the only
    /// source set.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        let sources = &self.inner.sources;
        let set = sources.get("default").or_else(|| {
            (sources.len() == 1)
                .then(|| sources.values().next())
                .flatten()
        });
        match set {
            Some(s) => Ok(s.store()),
            None => Err(StorageError::invalid_config(
                format!("{}: sources.default", self.inner.origin),
                format!(
                    "the router is one store only with a source set named `default` or a single source set; sets: {}",
                    list(sources.keys())
                ),
            )),
        }
    }

    /// The shared health tracker.
    pub fn health_tracker(&self) -> &HealthTracker {
        &self.inner.health
    }

    /// Health of every bucket as recorded by past operations.
    pub fn health(&self) -> Vec<BucketHealth> {
        self.inner
            .buckets
            .values()
            .map(|b| self.inner.health.snapshot(b.name(), Some(b.provider())))
            .collect()
    }

    /// Probe every bucket now (concurrently) and return the updated health.
    pub async fn probe_health(&self) -> Vec<BucketHealth> {
        join_all(
            self.inner
                .buckets
                .values()
                .map(|b| self.inner.health.probe(b)),
        )
        .await
    }

    /// Buckets, routes, source sets (primary and fallbacks) and tenants, with providers.
    pub fn info(&self) -> RouterInfo {
        let i = &self.inner;
        RouterInfo {
            origin: i.origin.clone(),
            legacy_bucket: i.legacy_bucket.clone(),
            buckets: i
                .buckets
                .values()
                .map(|b| BucketEntry {
                    name: b.name().to_string(),
                    provider: b.provider().to_string(),
                    connection: i.bucket_connections.get(b.name()).cloned(),
                })
                .collect(),
            routes: i
                .routes
                .iter()
                .map(|(name, r)| RouteInfo {
                    name: name.clone(),
                    target: r.target(),
                    offload: r.offload().map(|t| OffloadInfo {
                        after_days: t.after_days,
                        bucket: t.bucket.name().to_string(),
                        prefix: t.prefix.as_ref().map(|k| k.to_string()).unwrap_or_default(),
                        storage_class: t.storage_class.clone(),
                    }),
                })
                .collect(),
            sources: i.sources.values().map(SourceSet::info).collect(),
            tenants: i
                .tenants
                .iter()
                .map(|(name, t)| TenantInfo {
                    name: name.clone(),
                    target: t.target(),
                })
                .collect(),
        }
    }
}

fn offload_target(
    cx: &Ctx<'_>,
    field: &str,
    route: &Route,
    off: &OffloadConfig,
) -> Result<OffloadTarget> {
    let f = format!("{field}.offload");
    if off.after_days == 0 {
        return Err(cx.err(
            format!("{f}.after_days"),
            "must be at least 1 (days since the object was last modified)",
        ));
    }
    if off.bucket.is_none() && off.storage_class.is_none() {
        return Err(cx.err(
            &f,
            "say where old objects go: `bucket` (another bucket), `storage_class` (e.g. \"GLACIER_IR\"), or both",
        ));
    }
    if let Some(sc) = &off.storage_class
        && (sc.is_empty() || !sc.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    {
        return Err(cx.err(
            format!("{f}.storage_class"),
            format!("`{sc}` is not a storage class name; use e.g. STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR, DEEP_ARCHIVE"),
        ));
    }
    let bucket = match &off.bucket {
        Some(b) => cx.bucket(format!("{f}.bucket"), b)?,
        None => route.bucket().clone(),
    };
    let prefix = match &off.prefix {
        Some(p) => cx.prefix(format!("{f}.prefix"), p)?,
        None => parse_prefix(route.prefix())?,
    };
    let target = OffloadTarget {
        bucket,
        prefix,
        storage_class: off.storage_class.clone(),
        after_days: off.after_days,
    };
    if target.is_in_place(route) && off.storage_class.is_none() {
        return Err(cx.err(
            &f,
            "the offload target is the route's own folder and no storage_class is set, so nothing would change; set another `bucket` or `prefix`, or a `storage_class`",
        ));
    }
    Ok(target)
}

/// `map[name]`, or an error naming `field` that says `name` is not `what` and lists the valid
/// names.
fn named<'m, T>(
    map: &'m BTreeMap<String, T>,
    field: &str,
    what: &str,
    name: &str,
) -> Result<&'m T> {
    map.get(name).ok_or_else(|| {
        StorageError::invalid_input(
            field,
            format!("`{name}` is not {what}; valid names: {}", list(map.keys())),
        )
    })
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if v.is_empty() {
        "(none configured)".to_string()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::overlaps;

    #[test]
    fn overlap_is_segment_wise() {
        assert!(overlaps("records", "records"));
        assert!(overlaps("records", "records/x"));
        assert!(overlaps("", "anything"));
        assert!(!overlaps("records", "records2"));
        assert!(!overlaps("a/b", "a/c"));
    }
}
