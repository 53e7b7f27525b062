//! Which S3 bucket name serves which Strata handle.

use std::collections::BTreeMap;

use storage_core::{Bucket, Key, Result, StorageError};
use strata::Strata;
use strata::router::Route;

/// Folder (relative to the backing bucket) that holds in-progress multipart uploads. Keys
/// under it are hidden from listings and refused as object keys.
pub const UPLOADS_PREFIX: &str = ".strata-serve";

/// What kind of Strata handle a served bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewKind {
    /// A `[buckets.NAME]` handle (or an embedded-default folder).
    Bucket,
    /// A `[routes.NAME]` data type: a bucket and a folder prefix.
    Route,
    /// A `[tenants.NAME]` scope.
    Tenant,
    /// A `[sources.NAME]` read set: reads fall back across its buckets, listings merge them,
    /// writes go to its primary.
    Source,
}

/// One served bucket.
#[derive(Debug, Clone)]
pub struct View {
    /// The S3 bucket name.
    pub name: String,
    /// What it is.
    pub kind: ViewKind,
    /// The handle requests go to: a route's or tenant's own handle (its folder, its key
    /// rules, its offload target), so the endpoint serves exactly what the library does.
    pub bucket: Bucket,
    /// The handle multipart parts are kept in (the same storage, without the view's folder,
    /// so parts never show up inside a route or tenant).
    pub base: Bucket,
}

impl View {
    fn plain(name: &str, bucket: Bucket) -> View {
        View {
            name: name.to_string(),
            kind: ViewKind::Bucket,
            base: bucket.clone(),
            bucket,
        }
    }

    fn routed(name: &str, kind: ViewKind, route: &Route) -> View {
        View {
            name: name.to_string(),
            kind,
            bucket: route.handle().clone(),
            base: route.bucket().clone(),
        }
    }

    /// Whether the uploads folder lies inside this view (its listings hide it).
    pub fn holds_uploads(&self) -> bool {
        matches!(self.kind, ViewKind::Bucket | ViewKind::Source)
    }

    /// Validate an S3 object key for this view.
    pub fn key(&self, key: &str) -> Result<Key> {
        let k = self.bucket.check_key(key)?;
        if self.holds_uploads() && is_reserved(key) {
            return Err(StorageError::invalid_input(
                "key",
                format!(
                    "`{key}`: keys under `{UPLOADS_PREFIX}/` hold strata serve's multipart uploads; use another folder"
                ),
            ));
        }
        Ok(k)
    }
}

/// Whether `key` lies in the uploads folder.
pub fn is_reserved(key: &str) -> bool {
    key.strip_prefix(UPLOADS_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Every served bucket, by S3 name.
#[derive(Debug, Clone)]
pub struct Catalog {
    views: BTreeMap<String, View>,
    /// Embedded default: any valid name is a folder, listed when it exists.
    embedded: Option<Strata>,
}

impl Catalog {
    /// Every bucket handle, tenant, route and source set of `strata`, in that order of
    /// precedence when names collide (the shadowed one is logged).
    ///
    /// `routes` limits the routes served (see [`ServeConfig::routes`](crate::ServeConfig)).
    pub fn new(strata: &Strata, routes: Option<&[String]>) -> Result<Catalog> {
        if strata.is_embedded() {
            return Ok(Catalog {
                views: BTreeMap::new(),
                embedded: Some(strata.clone()),
            });
        }
        let mut views = BTreeMap::new();
        for name in strata.bucket_names() {
            views.insert(name.clone(), View::plain(&name, strata.bucket(&name)?));
        }
        if let Ok(router) = strata.router() {
            for t in router.info().tenants {
                insert(
                    &mut views,
                    View::routed(&t.name, ViewKind::Tenant, router.tenant_info(&t.name)?),
                );
            }
            for (name, routed) in router.routes() {
                if routes.is_some_and(|r| !r.contains(name)) {
                    continue;
                }
                insert(&mut views, View::routed(name, ViewKind::Route, routed));
            }
            for name in router.sources().keys() {
                let bucket = Bucket::builder(name.clone(), router.source_store(name)?).build();
                insert(
                    &mut views,
                    View {
                        name: name.clone(),
                        kind: ViewKind::Source,
                        base: bucket.clone(),
                        bucket,
                    },
                );
            }
        }
        Ok(Catalog {
            views,
            embedded: None,
        })
    }

    /// The served bucket `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<View> {
        if let Some(v) = self.views.get(name) {
            return Some(v.clone());
        }
        let strata = self.embedded.as_ref()?;
        if !strata.bucket_names().iter().any(|n| n == name) {
            return None;
        }
        strata.bucket(name).ok().map(|b| View::plain(name, b))
    }

    /// Create an embedded-default folder (CreateBucket); configured setups cannot.
    pub fn create(&self, name: &str) -> Result<bool> {
        let strata = self.embedded.as_ref().ok_or_else(|| {
            StorageError::not_supported(
                "strata serve",
                "CreateBucket on a configured setup (add a [buckets.NAME] block instead)",
            )
        })?;
        let existed = self.get(name).is_some();
        // Bucket::local creates the folder.
        strata.bucket(name)?;
        Ok(!existed)
    }

    /// Every served bucket name, sorted.
    pub fn names(&self) -> Vec<String> {
        match &self.embedded {
            Some(s) => s.bucket_names(),
            None => self.views.keys().cloned().collect(),
        }
    }

    /// Every served bucket (the embedded default: the folders that exist now).
    pub fn views(&self) -> Vec<View> {
        self.names().iter().filter_map(|n| self.get(n)).collect()
    }
}

fn insert(views: &mut BTreeMap<String, View>, view: View) {
    if let Some(existing) = views.get(&view.name) {
        tracing::info!(
            name = %view.name,
            shadowed = ?view.kind,
            served = ?existing.kind,
            "strata serve: two handles share a name; serving the {:?}",
            existing.kind
        );
        return;
    }
    views.insert(view.name.clone(), view);
}
