//! Routes and tenants: a bucket seen through a folder prefix, handed out as a plain
//! [`Bucket`] whose store is scoped to the prefix (and, for a route with an offload target,
//! reads through to it). No second copy of the `Bucket` API: scoping is a store.

use std::sync::Arc;

use serde::Serialize;
use storage_core::{Bucket, Key, KeyPolicy, Result};

use crate::stores::OffloadStore;

/// Where a route's old objects were moved (seed 004 `s3Offload`); reads fall back there.
#[derive(Debug, Clone)]
pub struct OffloadTarget {
    /// Bucket the objects go to (may be the route's own bucket, with a storage class).
    pub bucket: Bucket,
    /// Folder prefix there.
    pub prefix: Option<Key>,
    /// Storage class the objects are written with.
    pub storage_class: Option<String>,
    /// Age, in days, after which objects are offloaded.
    pub after_days: u32,
}

impl OffloadTarget {
    /// Whether offloaded objects stay at the same key in the same bucket (only their
    /// storage class changes).
    pub fn is_in_place(&self, route: &Route) -> bool {
        self.bucket.name() == route.bucket.name() && self.prefix == route.prefix
    }
}

/// A route or tenant: where it points, and the [`Bucket`] it hands out
/// ([`handle`](Self::handle), what [`Router::route`](crate::Router::route) and
/// [`Router::tenant`](crate::Router::tenant) return).
///
/// The handle is the underlying bucket [`scoped`](Bucket::scoped) to the prefix: every key
/// is checked once and joined under the prefix (it cannot climb out with `..`), and keys
/// in results are relative to the prefix again. A tenant's handle also refuses disguised
/// separators ([`KeyPolicy::Strict`]). A route with an offload target in another bucket
/// or folder reads through to it ([`OffloadStore`]).
///
/// ```
/// use storage_core::Bucket;
/// use storage_router::Route;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let bucket = Bucket::memory("main");
/// let records = Route::new("records", bucket.clone(), "records")?;
/// records.handle().put("users/42/head.json", "{}").await?;
/// assert!(bucket.exists("records/users/42/head.json").await?);
/// assert!(records.handle().put("../escape", "x").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Route {
    name: String,
    bucket: Bucket,
    prefix: Option<Key>,
    offload: Option<OffloadTarget>,
    /// The route's own folder, without the offload target.
    here: Bucket,
    /// The offload folder, when it is not the route's own.
    offloaded: Option<Bucket>,
    /// What the route hands out.
    handle: Bucket,
}

/// Where a routed handle points, for `strata buckets info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutedTarget {
    /// Bucket handle name.
    pub bucket: String,
    /// Folder prefix (empty: bucket root).
    pub prefix: String,
    /// Provider of the bucket.
    pub provider: String,
}

impl Route {
    /// `bucket` under `prefix` (`""` = the whole bucket). `name` is the route's or
    /// tenant's, used in messages.
    pub fn new(name: impl Into<String>, bucket: Bucket, prefix: &str) -> Result<Self> {
        let prefix = parse_prefix(prefix)?;
        let here = bucket.scoped(prefix.as_ref().map_or("", Key::as_str))?;
        Ok(Route {
            name: name.into(),
            bucket,
            prefix,
            offload: None,
            handle: here.clone(),
            here,
            offloaded: None,
        })
    }

    /// Also look in `target` when an object is not under the prefix any more.
    pub fn with_offload(mut self, target: OffloadTarget) -> Result<Self> {
        if !target.is_in_place(&self) {
            let there = target
                .bucket
                .scoped(target.prefix.as_ref().map_or("", Key::as_str))?;
            let there = there
                .to_builder()
                .key_policy(self.here.key_policy())
                .build();
            let store = OffloadStore::new(
                format!("route {}", self.name),
                (self.bucket.name().to_string(), self.here.store().clone()),
                (there.name().to_string(), there.store().clone()),
            );
            self.handle = self.here.to_builder().store(Arc::new(store)).build();
            self.offloaded = Some(there);
        }
        self.offload = Some(target);
        Ok(self)
    }

    /// Refuse keys that only look harmless ([`KeyPolicy::Strict`]). Tenants use this.
    pub fn strict(mut self) -> Self {
        let strict = |b: &Bucket| b.to_builder().key_policy(KeyPolicy::Strict).build();
        self.here = strict(&self.here);
        self.handle = strict(&self.handle);
        self.offloaded = self.offloaded.as_ref().map(strict);
        self
    }

    /// Name of the route or tenant.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying bucket (not scoped).
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The folder prefix (empty for the bucket root).
    pub fn prefix(&self) -> &str {
        self.prefix.as_ref().map(Key::as_str).unwrap_or("")
    }

    /// The offload target, if the route has one.
    pub fn offload(&self) -> Option<&OffloadTarget> {
        self.offload.as_ref()
    }

    /// The handle the route gives: reads, writes, listings, presigned URLs, all relative
    /// to the prefix (through the offload target where there is one).
    pub fn handle(&self) -> &Bucket {
        &self.handle
    }

    /// The route's own folder alone, without its offload target.
    pub fn here(&self) -> &Bucket {
        &self.here
    }

    /// The offload folder as a handle (keys relative to it), when it is another bucket or
    /// folder than the route's own.
    pub fn offloaded(&self) -> Option<&Bucket> {
        self.offloaded.as_ref()
    }

    /// Bucket, prefix and provider.
    pub fn target(&self) -> RoutedTarget {
        RoutedTarget {
            bucket: self.bucket.name().to_string(),
            prefix: self.prefix().to_string(),
            provider: self.bucket.provider().to_string(),
        }
    }
}

pub(crate) fn parse_prefix(prefix: &str) -> Result<Option<Key>> {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        Ok(None)
    } else {
        Key::new(p).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use storage_core::StorageError;

    #[tokio::test]
    async fn keys_join_and_strip() {
        let bucket = Bucket::memory("m");
        let r = Route::new("records", bucket.clone(), "records/").unwrap();
        assert_eq!(r.prefix(), "records");
        r.handle().put("a/b", "x").await.unwrap();
        assert!(bucket.exists("records/a/b").await.unwrap());
        let listed: Vec<_> = r.handle().list("").try_collect().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, "a/b");
        let root = Route::new("all", bucket.clone(), "").unwrap();
        assert!(root.handle().exists("records/a/b").await.unwrap());
    }

    #[tokio::test]
    async fn strict_rejects_disguised_separators() {
        let t = Route::new("t", Bucket::memory("m"), "tenants/a")
            .unwrap()
            .strict();
        for k in ["..%2Fb/x", "x%2fy", "a\\..\\b", "%2e%2e/x", "x%5Cy"] {
            let err = t.handle().put(k, "x").await.unwrap_err();
            assert!(matches!(err, StorageError::InvalidKey { .. }), "{k}: {err}");
            let err = t.handle().scoped(k).unwrap_err();
            assert!(matches!(err, StorageError::InvalidKey { .. }), "{k}: {err}");
        }
        t.handle().put("fine/key.json", "x").await.unwrap();
        // A narrower view keeps the policy.
        let sub = t.handle().scoped("fine").unwrap();
        assert!(sub.get("x%2Fy").await.is_err());
    }
}
