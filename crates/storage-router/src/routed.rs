//! A bucket seen through a folder prefix: what a route or a tenant hands out.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use serde::Serialize;
use std::ops::Range;
use std::time::Duration;

use storage_core::{
    Bucket, BucketStats, Key, Listing, Object, ObjectInfo, ObjectStream, PresignMethod, PutOpts,
    Result, StorageError, WriteResult,
};

use crate::engine::{Engine, FallbackOn};
use crate::read::ReadPolicy;

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
    pub fn is_in_place(&self, route: &RoutedBucket) -> bool {
        self.bucket.name() == route.bucket.name() && self.prefix == route.prefix
    }
}

/// A [`Bucket`] confined to a folder prefix. Every key is validated and joined under the
/// prefix ([`Key::join`] cannot climb out with `..`), and keys in results are relative to
/// the prefix again.
///
/// ```
/// use storage_core::Bucket;
/// use storage_router::RoutedBucket;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let bucket = Bucket::memory("main");
/// let records = RoutedBucket::new("records", bucket.clone(), "records")?;
/// records.put("users/42/head.json", "{}").await?;
/// assert!(bucket.exists("records/users/42/head.json").await?);
/// assert!(records.put("../escape", "x").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RoutedBucket {
    name: String,
    bucket: Bucket,
    prefix: Option<Key>,
    offload: Option<Arc<Offload>>,
    strict: bool,
}

/// An offload target and the fallback engine that reads through to it.
#[derive(Debug)]
struct Offload {
    target: OffloadTarget,
    /// Members: 0 the route's own folder, 1 the target. Only a miss moves on: an outage of
    /// either is the answer, never "not found".
    engine: Engine,
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

impl RoutedBucket {
    /// `bucket` under `prefix` (`""` = the whole bucket). `name` is used in messages.
    pub fn new(name: impl Into<String>, bucket: Bucket, prefix: &str) -> Result<Self> {
        Ok(RoutedBucket {
            name: name.into(),
            bucket,
            prefix: parse_prefix(prefix)?,
            offload: None,
            strict: false,
        })
    }

    /// Also look in `target` when an object is not under the prefix any more.
    pub fn with_offload(mut self, target: OffloadTarget) -> Self {
        let engine = Engine::new(
            format!("route {}", self.name),
            self.bucket.name(),
            vec![
                self.bucket.name().to_string(),
                target.bucket.name().to_string(),
            ],
            FallbackOn::Miss,
            ReadPolicy::Sequential,
            None,
        );
        self.offload = Some(Arc::new(Offload { target, engine }));
        self
    }

    /// Reject keys that only look harmless: backslashes and percent-encoded separators or
    /// dots (`%2F`, `%5C`, `%2E`), which another layer might decode. Tenants use this.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// A narrower view: this prefix joined with `sub`. The result can never reach outside
    /// this view (`sub` is validated like any key).
    pub fn scoped(&self, sub: &str) -> Result<Self> {
        let prefix = match sub {
            "" => self.prefix.clone(),
            s => Some(self.full_key(s.trim_end_matches('/'))?),
        };
        Ok(RoutedBucket {
            name: self.name.clone(),
            bucket: self.bucket.clone(),
            prefix,
            offload: None,
            strict: self.strict,
        })
    }

    /// Name of the route or tenant.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying bucket.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The folder prefix (empty for the bucket root).
    pub fn prefix(&self) -> &str {
        self.prefix.as_ref().map(Key::as_str).unwrap_or("")
    }

    /// The offload target, if the route has one.
    pub fn offload(&self) -> Option<&OffloadTarget> {
        self.offload.as_deref().map(|o| &o.target)
    }

    /// Bucket, prefix and provider.
    pub fn target(&self) -> RoutedTarget {
        RoutedTarget {
            bucket: self.bucket.name().to_string(),
            prefix: self.prefix().to_string(),
            provider: self.bucket.provider().to_string(),
        }
    }

    /// The full key in the bucket for `key` (relative to the prefix).
    pub fn full_key(&self, key: &str) -> Result<Key> {
        if self.strict {
            check_no_disguised_separators(key)?;
        }
        join(&self.prefix, key)
    }

    /// `full` relative to this prefix, or `None` if it lies outside.
    pub fn relative_key<'a>(&self, full: &'a str) -> Option<&'a str> {
        relative(&self.prefix, full)
    }

    /// The view as an `object_store` store (paths relative to the prefix), for DataFusion,
    /// parquet and friends.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        match &self.prefix {
            Some(p) => Arc::new(PrefixStore::new(self.bucket.store().clone(), p.to_path())),
            None => self.bucket.store().clone(),
        }
    }

    /// Write `data`.
    pub async fn put(&self, key: &str, data: impl Into<Bytes>) -> Result<WriteResult> {
        self.bucket.put(self.full_key(key)?, data).await
    }

    /// Write `data` with options (conditions, headers, metadata).
    pub async fn put_with(
        &self,
        key: &str,
        data: impl Into<Bytes>,
        opts: PutOpts,
    ) -> Result<WriteResult> {
        self.bucket.put_with(self.full_key(key)?, data, opts).await
    }

    /// Write a stream of chunks with bounded memory (see [`Bucket::put_stream`]).
    pub async fn put_stream<S>(&self, key: &str, stream: S, opts: PutOpts) -> Result<WriteResult>
    where
        S: futures::Stream<Item = Result<Bytes>> + Send,
    {
        self.bucket
            .put_stream(self.full_key(key)?, stream, opts)
            .await
    }

    /// Read an object as a stream (falling back to the offload target like
    /// [`get`](Self::get)). The returned key is relative to the prefix.
    pub async fn get_stream(&self, key: &str) -> Result<ObjectStream> {
        let mut s = self
            .read_through(key, |b, k| async move { b.get_stream(k).await })
            .await?;
        s.info.key = key.to_string();
        Ok(s)
    }

    /// Read bytes `range` of an object (falling back to the offload target).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Object> {
        let mut obj = self
            .read_through(key, |b, k| {
                let range = range.clone();
                async move { b.get_range(k, range).await }
            })
            .await?;
        obj.info.key = key.to_string();
        Ok(obj)
    }

    /// A presigned URL for `key` under the prefix (in the route's own bucket).
    pub async fn presign(
        &self,
        method: PresignMethod,
        key: &str,
        expires_in: Duration,
    ) -> Result<url::Url> {
        self.bucket
            .presign(method, self.full_key(key)?, expires_in)
            .await
    }

    /// Copy `from` to `to`, both under the prefix (server-side where the backend can).
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.bucket
            .copy(self.full_key(from)?, self.full_key(to)?)
            .await
    }

    /// Read an object; if the route has an offload target and the object is not under the
    /// prefix, it is read from there. The returned key is relative to the prefix.
    pub async fn get(&self, key: &str) -> Result<Object> {
        let mut obj = self
            .read_through(key, |b, k| async move { b.get(k).await })
            .await?;
        obj.info.key = key.to_string();
        Ok(obj)
    }

    /// Metadata of an object (falling back to the offload target like [`get`](Self::get)).
    pub async fn head(&self, key: &str) -> Result<ObjectInfo> {
        let mut info = self
            .read_through(key, |b, k| async move { b.head(k).await })
            .await?;
        info.key = key.to_string();
        Ok(info)
    }

    /// Run the read `op(bucket, full key)` under the prefix and, when the route has a
    /// separate offload target, through the fallback engine: the target is asked only when
    /// the route's own folder says "not found".
    async fn read_through<T, F, Fut>(&self, key: &str, op: F) -> Result<T>
    where
        F: Fn(Bucket, Key) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let full = self.full_key(key)?;
        let Some(off) = self
            .offload
            .as_deref()
            .filter(|o| !o.target.is_in_place(self))
        else {
            return op(self.bucket.clone(), full).await;
        };
        let (op, full_ref) = (&op, &full);
        off.engine
            .read(full.as_str(), ReadPolicy::Sequential, |i| async move {
                if i == 0 {
                    op(self.bucket.clone(), full_ref.clone()).await
                } else {
                    let k = self.full_key_in(&off.target.prefix, key)?;
                    op(off.target.bucket.clone(), k).await
                }
            })
            .await
            .map(|a| a.value)
    }

    /// Whether an object exists (here or offloaded).
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete an object (and its offloaded copy, if any).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.bucket.delete(self.full_key(key)?).await?;
        if let Some((bucket, k)) = self.offload_key(key)? {
            bucket.delete(k).await?;
        }
        Ok(())
    }

    /// Every object under `prefix` (relative), then every offloaded one, keys relative.
    pub fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo>> {
        let main = self.list_one(&self.bucket, &self.prefix, prefix);
        match self.offload() {
            Some(t) if !t.is_in_place(self) => main
                .chain(self.list_one(&t.bucket, &t.prefix, prefix))
                .boxed(),
            _ => main,
        }
    }

    /// Objects under the prefix only (not the offload target), keys relative.
    pub fn list_here(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo>> {
        self.list_one(&self.bucket, &self.prefix, prefix)
    }

    fn list_one(
        &self,
        bucket: &Bucket,
        base: &Option<Key>,
        prefix: &str,
    ) -> BoxStream<'static, Result<ObjectInfo>> {
        let full = match prefix {
            "" => base.as_ref().map(|k| k.to_string()).unwrap_or_default(),
            p => match self.full_key_in(base, p.trim_end_matches('/')) {
                Ok(k) => k.to_string(),
                Err(e) => return stream::once(async move { Err(e) }).boxed(),
            },
        };
        let base = base.clone();
        bucket
            .list(&full)
            .map(move |r| {
                r.map(|mut info| {
                    if let Some(rel) = relative(&base, &info.key) {
                        info.key = rel.to_string();
                    }
                    info
                })
            })
            .boxed()
    }

    /// One level under `prefix`: objects and sub-prefixes, keys relative, sorted.
    pub async fn list_dir(&self, prefix: &str) -> Result<Listing> {
        let full = match prefix {
            "" => self.prefix().to_string(),
            p => self.full_key(p.trim_end_matches('/'))?.to_string(),
        };
        let mut listing = self.bucket.list_dir(&full).await?;
        for o in &mut listing.objects {
            if let Some(rel) = relative(&self.prefix, &o.key) {
                o.key = rel.to_string();
            }
        }
        for p in &mut listing.prefixes {
            if let Some(rel) = relative(&self.prefix, p) {
                *p = rel.to_string();
            }
        }
        Ok(listing)
    }

    /// Objects and bytes under `prefix` (here only).
    pub async fn stats(&self, prefix: &str) -> Result<BucketStats> {
        let full = match prefix {
            "" => self.prefix().to_string(),
            p => self.full_key(p.trim_end_matches('/'))?.to_string(),
        };
        self.bucket.stats(&full).await
    }

    fn full_key_in(&self, base: &Option<Key>, key: &str) -> Result<Key> {
        if self.strict {
            check_no_disguised_separators(key)?;
        }
        join(base, key)
    }

    /// Bucket and full key of `key` in the offload target, when there is a separate one.
    pub(crate) fn offload_key(&self, key: &str) -> Result<Option<(&Bucket, Key)>> {
        match self.offload() {
            Some(t) if !t.is_in_place(self) => {
                Ok(Some((&t.bucket, self.full_key_in(&t.prefix, key)?)))
            }
            _ => Ok(None),
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

fn join(prefix: &Option<Key>, key: &str) -> Result<Key> {
    match prefix {
        Some(p) => p.join(key),
        None => Key::new(key),
    }
}

fn relative<'a>(prefix: &Option<Key>, full: &'a str) -> Option<&'a str> {
    match prefix {
        None => Some(full),
        Some(p) => full.strip_prefix(p.as_str())?.strip_prefix('/'),
    }
}

fn check_no_disguised_separators(key: &str) -> Result<()> {
    let lower = key.to_ascii_lowercase();
    let bad = if key.contains('\\') {
        Some("`\\`")
    } else if lower.contains("%2f") {
        Some("`%2F` (an encoded `/`)")
    } else if lower.contains("%5c") {
        Some("`%5C` (an encoded `\\`)")
    } else if lower.contains("%2e") {
        Some("`%2E` (an encoded `.`)")
    } else {
        None
    };
    match bad {
        Some(what) => Err(StorageError::InvalidKey {
            key: key.escape_debug().to_string(),
            rule: format!(
                "a scoped key may not contain {what}: it could be decoded into a path outside the scope"
            ),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_and_strip() {
        let r = RoutedBucket::new("records", Bucket::memory("m"), "records/").unwrap();
        assert_eq!(r.prefix(), "records");
        assert_eq!(r.full_key("a/b").unwrap().as_str(), "records/a/b");
        assert_eq!(r.relative_key("records/a/b"), Some("a/b"));
        assert_eq!(r.relative_key("recordsX/a"), None);
        let root = RoutedBucket::new("all", Bucket::memory("m"), "").unwrap();
        assert_eq!(root.full_key("a").unwrap().as_str(), "a");
    }

    #[test]
    fn strict_rejects_disguised_separators() {
        let t = RoutedBucket::new("t", Bucket::memory("m"), "tenants/a")
            .unwrap()
            .strict();
        for k in ["..%2Fb/x", "x%2fy", "a\\..\\b", "%2e%2e/x", "x%5Cy"] {
            let err = t.full_key(k).unwrap_err();
            assert!(matches!(err, StorageError::InvalidKey { .. }), "{k}: {err}");
        }
        assert!(t.full_key("fine/key.json").is_ok());
    }
}
