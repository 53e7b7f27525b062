//! The store contract: [`StrataStore`] is `object_store`'s [`ObjectStore`] plus the three
//! things that trait has no method for — what this exact stack can do, an atomic
//! delete-if-match, and presigned URLs.
//!
//! Every Strata store implements it: the backends, every layer, the router's stores and the
//! [`ScopedStore`] that gives a bucket its folder. A call therefore takes one path, through
//! every layer, whatever the operation: a conditional delete is retried, broken, limited,
//! timed out and measured like a get, and a layer that changes stored bytes (encryption,
//! compression) decides what a presigned URL may hand out. Each layer reports the
//! [`Capabilities`] of the stack beneath it, narrowed by what it changes.
//!
//! A store from outside (any `Arc<dyn ObjectStore>`) joins through [`Declared`], which
//! says what it supports. Every Strata stack is still an `ObjectStore`: an
//! `Arc<dyn StrataStore>` coerces to `Arc<dyn ObjectStore>` for DataFusion, delta-rs or the
//! parquet reader.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::ObjectStore;
//! use storage_core::{Capabilities, MemoryStore, StrataStore};
//!
//! let store: Arc<dyn StrataStore> = Arc::new(MemoryStore::new());
//! assert!(store.capabilities().delete_if_match);
//! // The same stack, for code written against object_store.
//! let plain: Arc<dyn ObjectStore> = store;
//! # let _ = plain;
//! ```

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result as OsResult,
};
use url::Url;

use crate::bucket::PresignMethod;
use crate::capabilities::Capabilities;
use crate::error::StorageError;
use crate::key::Key;

/// `object_store`'s [`ObjectStore`] plus what Strata needs that it lacks. See the
/// [module docs](self).
///
/// Wrappers implement every method (no defaults), forwarding to the store they wrap, so
/// adding a method here makes every wrapper decide what it means for it.
#[async_trait]
pub trait StrataStore: ObjectStore {
    /// What this store, with everything beneath it, supports.
    fn capabilities(&self) -> Capabilities;

    /// Delete `location` only if its current ETag equals `etag` (quotes and `W/` ignored).
    ///
    /// A different ETag is `Precondition`, a missing object `NotFound`, and a store that
    /// cannot do it atomically answers `NotSupported` (see [`not_supported`]).
    async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()>;

    /// A URL that performs `method` on `location` without credentials until `expires_in`
    /// passes. A store whose URLs would hand out bytes a client cannot read (ciphertext)
    /// answers `NotSupported` with the reason.
    async fn presign(
        &self,
        method: PresignMethod,
        location: &Path,
        expires_in: Duration,
    ) -> OsResult<Url>;
}

/// The error a store returns for an operation it cannot do: it reaches the caller as
/// [`StorageError::NotSupported`] naming `store` and `operation`.
pub fn not_supported(
    store: impl Into<String>,
    operation: impl Into<String>,
) -> object_store::Error {
    StorageError::not_supported(store, operation).into_object_store()
}

#[async_trait]
impl<T: StrataStore + ?Sized> StrataStore for Arc<T> {
    fn capabilities(&self) -> Capabilities {
        T::capabilities(self)
    }

    async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()> {
        T::delete_if_match(self, location, etag).await
    }

    async fn presign(
        &self,
        method: PresignMethod,
        location: &Path,
        expires_in: Duration,
    ) -> OsResult<Url> {
        T::presign(self, method, location, expires_in).await
    }
}

/// Anything that can become the store of a [`Bucket`](crate::Bucket): a Strata store, or a
/// plain `Arc<dyn ObjectStore>` from outside, which joins as [`Declared::unknown`].
pub trait IntoStore {
    /// The store, as the contract sees it.
    fn into_store(self) -> Arc<dyn StrataStore>;
}

impl<T: StrataStore> IntoStore for Arc<T> {
    fn into_store(self) -> Arc<dyn StrataStore> {
        self
    }
}

impl IntoStore for Arc<dyn StrataStore> {
    fn into_store(self) -> Arc<dyn StrataStore> {
        self
    }
}

impl IntoStore for Arc<dyn ObjectStore> {
    fn into_store(self) -> Arc<dyn StrataStore> {
        Arc::new(Declared::unknown(self))
    }
}

/// A plain [`ObjectStore`] from outside, with the capabilities its owner declares.
///
/// It has no conditional delete and no signer, whatever is declared: those two are only
/// claimed by stores that implement them.
///
/// ```
/// use std::sync::Arc;
/// use object_store::memory::InMemory;
/// use storage_core::{Bucket, Capabilities, Declared};
///
/// // InMemory does compare-and-swap puts, so say so.
/// let store = Declared::new(Arc::new(InMemory::new()), Capabilities::MEMORY);
/// let bucket = Bucket::builder("outside", Arc::new(store)).build();
/// assert!(bucket.capabilities().put_if_match);
/// assert!(!bucket.capabilities().delete_if_match);
/// ```
#[derive(Debug)]
pub struct Declared {
    inner: Arc<dyn ObjectStore>,
    capabilities: Capabilities,
}

impl Declared {
    /// `inner`, claiming `capabilities` (less delete-if-match and presign).
    pub fn new(inner: Arc<dyn ObjectStore>, capabilities: Capabilities) -> Self {
        let mut capabilities = capabilities.with_presign(false);
        capabilities.delete_if_match = false;
        Declared {
            inner,
            capabilities,
        }
    }

    /// `inner`, claiming nothing conditional: plain reads, writes, lists and copies.
    pub fn unknown(inner: Arc<dyn ObjectStore>) -> Self {
        Declared::new(
            inner,
            Capabilities::MEMORY
                .with_conditional_put(false)
                .with_conditional_get(false),
        )
    }
}

impl fmt::Display for Declared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait]
impl StrataStore for Declared {
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn delete_if_match(&self, _: &Path, _: &str) -> OsResult<()> {
        Err(not_supported(self.inner.to_string(), "delete-if-match"))
    }

    async fn presign(&self, _: PresignMethod, _: &Path, _: Duration) -> OsResult<Url> {
        Err(not_supported(self.inner.to_string(), "presigned URLs"))
    }
}

forward_object_store!(Declared, inner);

/// A store scoped to a folder of another: every path is stored under `prefix/`, listings
/// strip it, and conditional deletes and presigned URLs name the full path. This is how a
/// bucket, a route or a tenant gets its folder; nesting two scopes nests their prefixes.
///
/// ```
/// use std::sync::Arc;
/// use object_store::{ObjectStoreExt, path::Path};
/// use storage_core::{Key, MemoryStore, ScopedStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> object_store::Result<()> {
/// let root = Arc::new(MemoryStore::new());
/// let scoped = ScopedStore::new(root.clone(), Key::new("tenant-a").unwrap());
/// scoped.put(&Path::from("doc.json"), "{}".into()).await?;
/// assert!(root.head(&Path::from("tenant-a/doc.json")).await.is_ok());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ScopedStore {
    prefixed: object_store::prefix::PrefixStore<Arc<dyn StrataStore>>,
    inner: Arc<dyn StrataStore>,
    prefix: Key,
}

impl ScopedStore {
    /// `inner`, scoped to `prefix`.
    pub fn new(inner: Arc<dyn StrataStore>, prefix: Key) -> Self {
        ScopedStore {
            prefixed: object_store::prefix::PrefixStore::new(inner.clone(), prefix.to_path()),
            inner,
            prefix,
        }
    }

    /// The folder this store is scoped to.
    pub fn prefix(&self) -> &Key {
        &self.prefix
    }

    /// The store beneath the scope.
    pub fn inner(&self) -> &Arc<dyn StrataStore> {
        &self.inner
    }

    fn full(&self, location: &Path) -> Path {
        self.prefix
            .to_path()
            .parts()
            .chain(location.parts())
            .collect()
    }
}

impl fmt::Display for ScopedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.inner, self.prefix)
    }
}

#[async_trait]
impl StrataStore for ScopedStore {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()> {
        self.inner
            .delete_if_match(&self.full(location), etag)
            .await
            .map_err(|e| strip_path(e, &self.prefix))
    }

    async fn presign(
        &self,
        method: PresignMethod,
        location: &Path,
        expires_in: Duration,
    ) -> OsResult<Url> {
        self.inner
            .presign(method, &self.full(location), expires_in)
            .await
    }
}

forward_object_store!(ScopedStore, prefixed);

/// `object_store`'s `PrefixStore` reports paths as the caller named them; do the same for
/// the two methods it does not carry.
fn strip_path(err: object_store::Error, prefix: &Key) -> object_store::Error {
    use object_store::Error as E;
    let strip = |p: String| -> String {
        p.strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .map(str::to_string)
            .unwrap_or(p)
    };
    match err {
        E::NotFound { path, source } => E::NotFound {
            path: strip(path),
            source,
        },
        E::Precondition { path, source } => E::Precondition {
            path: strip(path),
            source,
        },
        other => other,
    }
}

/// Implement every `ObjectStore` method of `$ty` by forwarding to its field `$field`: the
/// wrappers above change only the contract's extra methods.
macro_rules! forward_object_store {
    ($ty:ty, $field:ident) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl ObjectStore for $ty {
            async fn put_opts(
                &self,
                location: &Path,
                payload: PutPayload,
                opts: PutOptions,
            ) -> OsResult<PutResult> {
                self.$field.put_opts(location, payload, opts).await
            }

            async fn put_multipart_opts(
                &self,
                location: &Path,
                opts: PutMultipartOptions,
            ) -> OsResult<Box<dyn MultipartUpload>> {
                self.$field.put_multipart_opts(location, opts).await
            }

            async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
                self.$field.get_opts(location, options).await
            }

            async fn get_ranges(
                &self,
                location: &Path,
                ranges: &[Range<u64>],
            ) -> OsResult<Vec<Bytes>> {
                self.$field.get_ranges(location, ranges).await
            }

            fn delete_stream(
                &self,
                locations: BoxStream<'static, OsResult<Path>>,
            ) -> BoxStream<'static, OsResult<Path>> {
                self.$field.delete_stream(locations)
            }

            fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
                self.$field.list(prefix)
            }

            fn list_with_offset(
                &self,
                prefix: Option<&Path>,
                offset: &Path,
            ) -> BoxStream<'static, OsResult<ObjectMeta>> {
                self.$field.list_with_offset(prefix, offset)
            }

            async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
                self.$field.list_with_delimiter(prefix).await
            }

            async fn copy_opts(
                &self,
                from: &Path,
                to: &Path,
                options: CopyOptions,
            ) -> OsResult<()> {
                self.$field.copy_opts(from, to, options).await
            }

            async fn rename_opts(
                &self,
                from: &Path,
                to: &Path,
                options: RenameOptions,
            ) -> OsResult<()> {
                self.$field.rename_opts(from, to, options).await
            }
        }
    };
}
use forward_object_store;
