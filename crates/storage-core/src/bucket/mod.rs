//! The [`Bucket`] handle: one named store with the whole provider API.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use url::Url;

use crate::backend::{LocalStore, MemoryStore};
use crate::capabilities::Capabilities;
use crate::error::{Result, StorageError};
use crate::key::{AsKey, Key, KeyPolicy};
use crate::store::{DynStore, IntoStore, ScopedStore, StrataStore};

mod options;
mod read;
mod results;
mod write;

pub use options::{PresignMethod, PutOpts, WriteCondition};
pub use results::{
    BucketStats, DeleteReport, Health, Listing, Object, ObjectInfo, ObjectStream, WriteResult,
};

/// Longest expiry a presigned URL may have (S3's SigV4 limit).
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default multipart part size for streamed uploads (R2 wants equal parts; S3 ≥ 5 MiB).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// A named bucket: a store plus what the application needs around it.
///
/// Cheap to clone. Every key argument ([`AsKey`]) is checked once, where it enters: text
/// against the rules of [`Key`] and the handle's [`KeyPolicy`]; a `Key` is not validated again.
///
/// ```
/// use storage_core::{Bucket, PutOpts};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let bucket = Bucket::memory("scratch");
/// let put = bucket.put_with("notes/a.txt", "hello", PutOpts::default().with_content_type("text/plain")).await?;
/// let obj = bucket.get("notes/a.txt").await?;
/// assert_eq!(obj.bytes, "hello");
/// assert_eq!(obj.info.etag, put.etag);
/// assert_eq!(obj.info.content_type(), Some("text/plain"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Bucket {
    // One shared allocation: tasks clone a `Bucket` for every call they spawn, and a clone
    // is then one reference-count increment, as for a bare `Arc<dyn ObjectStore>`.
    shared: Arc<Shared>,
}

/// What a [`Bucket`] handle points at; built by [`BucketBuilder`], never changed after.
#[derive(Clone)]
struct Shared {
    name: Arc<str>,
    provider: Arc<str>,
    /// The one stack every call goes through (layers, scope, backend), called directly.
    store: DynStore,
    /// `store.capabilities()`, read once at `build`: a stack never changes.
    capabilities: Capabilities,
    public_url: Option<Arc<Url>>,
    part_size: usize,
    upload_concurrency: usize,
    /// The extra key rules of this handle (tenants refuse disguised separators).
    key_policy: KeyPolicy,
    /// Where the data lives (`s3://endpoint/bucket`, `file:///root`, ...), so two handles on
    /// the same storage can be recognised as such.
    location: Arc<str>,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.fmt_as("Bucket", f)
    }
}

impl Shared {
    fn fmt_as(&self, type_name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(type_name)
            .field("name", &self.name)
            .field("provider", &self.provider)
            .field("store", &format_args!("{}", self.store))
            .finish_non_exhaustive()
    }
}

/// Builder for [`Bucket`].
pub struct BucketBuilder {
    bucket: Shared,
}

impl fmt::Debug for BucketBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.bucket.fmt_as("BucketBuilder", f)
    }
}

impl BucketBuilder {
    /// Provider name shown in errors and `health` (`s3`, `r2`, `fs`, `memory`, ...).
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.bucket.provider = provider.into().into();
        self
    }

    /// Where the data lives (`s3://endpoint/bucket`, `file:///root`, `memory:NAME`): handles
    /// with the same location (and overlapping prefixes) see the same objects.
    pub fn location(mut self, location: impl Into<String>) -> Self {
        self.bucket.location = location.into().into();
        self
    }

    /// Public or CDN base URL for `url_for`.
    pub fn public_url(mut self, url: Url) -> Self {
        self.bucket.public_url = Some(Arc::new(url));
        self
    }

    /// Scope the bucket to a folder: every key is stored under `prefix/`, listings strip it,
    /// and presigned and public URLs include it. Applying it twice nests the prefixes.
    pub fn prefix(mut self, prefix: &str) -> Result<Self> {
        let p = Key::new(prefix.trim_end_matches('/'))?;
        let outer = ScopedStore::new(Arc::clone(&self.bucket.store), p);
        self.bucket.store = DynStore::new(Arc::new(outer));
        Ok(self)
    }

    /// Check keys given to this handle under `policy` too ([`KeyPolicy::Strict`] for a
    /// tenant's scope).
    pub fn key_policy(mut self, policy: KeyPolicy) -> Self {
        self.bucket.key_policy = policy;
        self
    }

    /// Replace the store (e.g. with a layered one), keeping everything else.
    pub fn store(mut self, store: impl IntoStore) -> Self {
        self.bucket.store = DynStore::new(store.into_store());
        self
    }

    /// Multipart part size for streamed uploads (at least 5 MiB).
    pub fn part_size(mut self, bytes: usize) -> Result<Self> {
        if bytes < 5 * 1024 * 1024 {
            return Err(StorageError::invalid_config(
                "part_size",
                format!("multipart parts must be at least 5 MiB (5242880 bytes), got {bytes}"),
            ));
        }
        self.bucket.part_size = bytes;
        Ok(self)
    }

    /// Parts in flight during a streamed upload (memory used ≈ (n + 1) × part size).
    pub fn upload_concurrency(mut self, n: usize) -> Self {
        self.bucket.upload_concurrency = n.max(1);
        self
    }

    /// Finish. A bucket given no location gets `custom:NAME`; its capabilities are those
    /// its store reports.
    pub fn build(mut self) -> Bucket {
        if self.bucket.location.is_empty() {
            self.bucket.location = format!("custom:{}", self.bucket.name).into();
        }
        self.bucket.capabilities = self.bucket.store.capabilities();
        Bucket {
            shared: Arc::new(self.bucket),
        }
    }
}

impl Bucket {
    /// Start building a bucket named `name` over `store`: a Strata store, or any
    /// `Arc<dyn ObjectStore>` (which claims no conditional operation; wrap it in
    /// [`Declared`](crate::Declared) to say what it supports).
    pub fn builder(name: impl Into<String>, store: impl IntoStore) -> BucketBuilder {
        let store = store.into_store();
        BucketBuilder {
            bucket: Shared {
                name: name.into().into(),
                provider: "custom".into(),
                capabilities: store.capabilities(),
                store: DynStore::new(store),
                public_url: None,
                part_size: DEFAULT_PART_SIZE,
                upload_concurrency: 2,
                key_policy: KeyPolicy::Standard,
                location: "".into(),
            },
        }
    }

    /// An in-memory bucket.
    pub fn memory(name: impl Into<String>) -> Bucket {
        let name = name.into();
        let store = Arc::new(MemoryStore::new());
        let location = format!("memory:{name}:{:p}", Arc::as_ptr(&store));
        Bucket::on_memory_store(name, store, location)
    }

    /// A bucket named `name` on an existing in-memory store (several handles may share
    /// one); `location` identifies that store.
    pub fn on_memory_store(
        name: impl Into<String>,
        store: Arc<MemoryStore>,
        location: impl Into<String>,
    ) -> Bucket {
        Bucket::builder(name, store)
            .location(location)
            .provider("memory")
            .build()
    }

    /// A bucket on a local folder (created if missing).
    pub fn local(name: impl Into<String>, root: impl AsRef<std::path::Path>) -> Result<Bucket> {
        Ok(LocalStore::new(root)?.into_bucket(name))
    }

    /// A builder seeded with this bucket's settings, e.g. to wrap its store in layers.
    pub fn to_builder(&self) -> BucketBuilder {
        BucketBuilder {
            bucket: Shared::clone(&self.shared),
        }
    }

    /// Bucket name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Provider name (`s3`, `r2`, `fs`, `memory`, ...).
    pub fn provider(&self) -> &str {
        &self.shared.provider
    }

    /// What this handle's whole stack supports (each layer narrows what it changes).
    pub fn capabilities(&self) -> Capabilities {
        self.shared.capabilities
    }

    /// Where the data lives (`s3://endpoint/bucket`, `file:///root`, `memory:...`), without
    /// this handle's [`prefix`](Self::prefix).
    pub fn location(&self) -> &str {
        &self.shared.location
    }

    /// The folder prefix this bucket is scoped to, if any: the scope of its store (see
    /// [`StrataStore::key_prefix`]), the one place it is kept.
    pub fn prefix(&self) -> Option<&Key> {
        self.shared.store.key_prefix()
    }

    /// The key as stored in the backend (with the bucket's prefix).
    fn full_key(&self, key: &Key) -> Result<Key> {
        match self.prefix() {
            Some(p) => p.join(key.as_str()),
            None => Ok(key.clone()),
        }
    }

    /// The stack every call of this handle goes through. It is also an `ObjectStore`, for
    /// code that speaks `object_store` (DataFusion, parquet, ...): see
    /// [`object_store`](Self::object_store).
    pub fn store(&self) -> &Arc<dyn StrataStore> {
        &self.shared.store
    }

    /// The stack, called directly (see [`DynStore`]): what the crate's own write paths use.
    pub(crate) fn stack(&self) -> &DynStore {
        &self.shared.store
    }

    /// The same stack as a plain `Arc<dyn ObjectStore>`.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.shared.store) as Arc<dyn ObjectStore>
    }

    // Errors are the rare path: kept out of line so the hot code stays small (i-cache).
    #[cold]
    #[inline(never)]
    fn err(&self, e: object_store::Error) -> StorageError {
        StorageError::from_object_store(&self.shared.name, e)
    }

    /// A store deep in the stack that cannot do an operation names itself; the caller
    /// knows this handle, so name it, keeping the store's reason.
    #[cold]
    fn unsupported_names_handle(&self, e: object_store::Error) -> StorageError {
        match self.err(e) {
            StorageError::NotSupported { operation, .. } => StorageError::NotSupported {
                backend: format!("{} ({})", self.shared.name, self.shared.provider),
                operation,
            },
            other => other,
        }
    }

    /// `key` checked under this handle's rules and made a [`Key`] (a `Key` is not validated
    /// again; a [`KeyPolicy::Strict`] handle still applies its extra rules).
    pub fn check_key(&self, key: impl AsKey) -> Result<Key> {
        Key::under(&key, self.shared.key_policy)
    }

    /// The key rules of this handle.
    pub fn key_policy(&self) -> KeyPolicy {
        self.shared.key_policy
    }

    /// This handle seen through folder `sub` of its scope: keys are stored under
    /// `prefix/sub/`, listings strip it again, and `sub` is checked like any key, so the
    /// view can never reach outside this one. `""` is this handle itself.
    ///
    /// ```
    /// use storage_core::Bucket;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
    /// let bucket = Bucket::memory("main");
    /// let records = bucket.scoped("records")?;
    /// records.put("users/42/head.json", "{}").await?;
    /// assert!(bucket.exists("records/users/42/head.json").await?);
    /// assert!(records.put("../escape", "x").await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn scoped(&self, sub: &str) -> Result<Bucket> {
        let sub = sub.trim_end_matches('/');
        if sub.is_empty() {
            return Ok(self.clone());
        }
        let sub = self.check_key(sub)?;
        Ok(self.to_builder().prefix(sub.as_str())?.build())
    }

    fn path_of(&self, key: &(impl AsKey + ?Sized)) -> Result<Path> {
        Key::path_under(key, self.shared.key_policy)
    }

    /// A presigned URL for `method` on `key`, valid for `expires_in` (1 s to 7 days).
    pub async fn presign(
        &self,
        method: PresignMethod,
        key: impl AsKey,
        expires_in: Duration,
    ) -> Result<Url> {
        let key = self.check_key(key)?;
        if expires_in < Duration::from_secs(1) {
            return Err(StorageError::invalid_input(
                "expires",
                "a presigned URL must be valid for at least 1 second",
            ));
        }
        if expires_in > MAX_PRESIGN_EXPIRY {
            return Err(StorageError::invalid_input(
                "expires",
                format!(
                    "{} is longer than the 7 day maximum S3 allows for presigned URLs; use at most 7d",
                    humantime::format_duration(expires_in)
                ),
            ));
        }
        self.shared
            .store
            .presign(method, &key.to_path(), expires_in)
            .await
            .map_err(|e| self.unsupported_names_handle(e))
    }

    /// The public (CDN) URL of `key`, from the configured base URL.
    pub fn url_for(&self, key: impl AsKey) -> Result<Url> {
        let key = self.full_key(&self.check_key(key)?)?;
        let base = self.shared.public_url.as_ref().ok_or_else(|| {
            StorageError::invalid_config(
                format!("buckets.{}.cdn_url", self.shared.name),
                "no public/CDN base URL is configured for this bucket; set `cdn_url` (or STORAGE_CDN_URL / R2_CDN_URL)",
            )
        })?;
        let mut url = Url::clone(base);
        {
            let mut segs = url.path_segments_mut().map_err(|_| {
                StorageError::invalid_config(
                    format!("buckets.{}.cdn_url", self.shared.name),
                    "the base URL cannot have a path",
                )
            })?;
            segs.pop_if_empty();
            segs.extend(key.as_str().split('/'));
        }
        Ok(url)
    }

    /// Count objects and bytes under `prefix`.
    pub async fn stats(&self, prefix: &str) -> Result<BucketStats> {
        self.list(prefix)
            .try_fold(BucketStats::default(), |mut s, o| async move {
                s.objects += 1;
                s.bytes += o.size;
                Ok(s)
            })
            .await
    }

    /// Probe the backend with a cheap listing and time it.
    pub async fn health(&self) -> Health {
        let start = Instant::now();
        let probe = Path::from("strata-health-probe");
        let r = self.shared.store.list_with_delimiter(Some(&probe)).await;
        Health {
            bucket: self.shared.name.to_string(),
            provider: self.shared.provider.to_string(),
            ok: r.is_ok(),
            latency: start.elapsed(),
            error: r.err().map(|e| self.err(e).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use futures::stream::{BoxStream, StreamExt};
    use object_store::{GetOptions, ObjectMeta, PutMultipartOptions, PutOptions, PutPayload};

    #[tokio::test]
    async fn capabilities_and_side_operations_come_from_the_store() {
        // A plain object_store store claims nothing conditional and cannot sign or
        // delete-if-match, whatever it is declared to do.
        let plain: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let b = Bucket::builder("plain", plain).build();
        let caps = b.capabilities();
        assert!(!caps.presign && !caps.delete_if_match && !caps.put_if_match);
        let e = b.delete_if_match("a", "x").await.unwrap_err();
        assert!(
            matches!(&e, StorageError::NotSupported { backend, operation }
                if backend == "plain (custom)" && operation == "delete-if-match"),
            "{e}"
        );
        let e = b
            .presign(PresignMethod::Get, "a", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::NotSupported { .. }), "{e}");
        // The memory backend deletes conditionally through the same store the handle uses,
        // scoped or not.
        let b = Bucket::memory("m")
            .to_builder()
            .prefix("p")
            .unwrap()
            .build();
        assert!(b.capabilities().delete_if_match);
        let put = b.put("k", "v").await.unwrap();
        let stale = b.delete_if_match("k", "\"nope\"").await.unwrap_err();
        assert!(
            matches!(stale, StorageError::Precondition { .. }),
            "{stale}"
        );
        b.delete_if_match("k", put.etag.as_deref().unwrap())
            .await
            .unwrap();
        assert!(!b.exists("k").await.unwrap());
    }

    #[tokio::test]
    async fn rename_reports_partial_move_and_keeps_both() {
        // A store whose deletes always fail.
        #[derive(Debug)]
        struct NoDelete(MemoryStore);
        impl fmt::Display for NoDelete {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("NoDelete")
            }
        }
        #[async_trait]
        impl ObjectStore for NoDelete {
            async fn put_opts(
                &self,
                l: &Path,
                p: PutPayload,
                o: PutOptions,
            ) -> object_store::Result<object_store::PutResult> {
                self.0.put_opts(l, p, o).await
            }
            async fn put_multipart_opts(
                &self,
                l: &Path,
                o: PutMultipartOptions,
            ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
                self.0.put_multipart_opts(l, o).await
            }
            async fn get_opts(
                &self,
                l: &Path,
                o: GetOptions,
            ) -> object_store::Result<object_store::GetResult> {
                self.0.get_opts(l, o).await
            }
            fn delete_stream(
                &self,
                l: BoxStream<'static, object_store::Result<Path>>,
            ) -> BoxStream<'static, object_store::Result<Path>> {
                l.map(|_| {
                    Err(object_store::Error::Generic {
                        store: "NoDelete",
                        source: "disk on fire".into(),
                    })
                })
                .boxed()
            }
            fn list(
                &self,
                p: Option<&Path>,
            ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
                self.0.list(p)
            }
            async fn list_with_delimiter(
                &self,
                p: Option<&Path>,
            ) -> object_store::Result<object_store::ListResult> {
                self.0.list_with_delimiter(p).await
            }
            async fn copy_opts(
                &self,
                f: &Path,
                t: &Path,
                o: object_store::CopyOptions,
            ) -> object_store::Result<()> {
                self.0.copy_opts(f, t, o).await
            }
        }
        let store: Arc<dyn ObjectStore> = Arc::new(NoDelete(MemoryStore::new()));
        let b = Bucket::builder("b", store).build();
        b.put("a", "x").await.unwrap();
        let err = b.rename("a", "b").await.unwrap_err();
        assert!(matches!(err, StorageError::PartialMove { .. }), "{err}");
        assert!(err.to_string().contains("both copies exist"));
        assert!(b.exists("a").await.unwrap() && b.exists("b").await.unwrap());
    }

    #[test]
    fn the_prefix_is_the_stores_scope() {
        let root = Arc::new(MemoryStore::new());
        // Scoped twice through the builder: the handle reports the nested scope its store
        // applies, and public URLs include it.
        let b = Bucket::on_memory_store("m", root.clone(), "memory:m")
            .to_builder()
            .prefix("a")
            .unwrap()
            .prefix("b/")
            .unwrap()
            .public_url(Url::parse("https://cdn.example.com/").unwrap())
            .build();
        assert_eq!(b.prefix().map(Key::as_str), Some("a/b"));
        assert_eq!(b.store().key_prefix().map(Key::as_str), Some("a/b"));
        assert_eq!(
            b.url_for("k").unwrap().as_str(),
            "https://cdn.example.com/a/b/k"
        );
        // A scoped store handed to the builder from outside is the handle's scope too.
        let scoped = Arc::new(ScopedStore::new(root.clone(), Key::new("t").unwrap()));
        let b = Bucket::builder("t", scoped).build();
        assert_eq!(b.prefix().map(Key::as_str), Some("t"));
        // Replacing the store replaces the scope with it: the handle keeps no second copy.
        let unscoped = b.to_builder().store(root).build();
        assert_eq!(unscoped.prefix(), None);
    }

    #[test]
    fn url_for_joins_and_escapes() {
        let b = Bucket::memory("m")
            .to_builder()
            .public_url(Url::parse("https://cdn.example.com/assets/").unwrap())
            .build();
        assert_eq!(
            b.url_for("img/a b.png").unwrap().as_str(),
            "https://cdn.example.com/assets/img/a%20b.png"
        );
        assert!(
            Bucket::memory("m")
                .url_for("x")
                .unwrap_err()
                .to_string()
                .contains("cdn_url")
        );
    }
}
