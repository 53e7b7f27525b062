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
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{ObjectStore, Result as OsResult};
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

    /// The folder this store's paths are kept under in the storage it reaches, with the
    /// scopes beneath it nested (`None`: unscoped). A [`Bucket`](crate::Bucket)'s
    /// [`prefix`](crate::Bucket::prefix) and public URLs read it here, so the stack is the
    /// one holder of a bucket's scope. A store over several others answers for the one its
    /// writes go to first.
    fn key_prefix(&self) -> Option<&Key>;

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

#[deny(clippy::missing_trait_methods)]
impl<T: StrataStore + ?Sized> StrataStore for Arc<T> {
    crate::store_fn!(@sig (forward |this| &**this) capabilities);
    crate::store_fn!(@sig (forward |this| &**this) key_prefix);
    crate::store_fn!(@sig (forward |this| &**this) delete_if_match);
    crate::store_fn!(@sig (forward |this| &**this) presign);
}

/// A shared stack, `Arc<dyn StrataStore>`, that calls the store it points to directly.
///
/// `object_store` implements `ObjectStore` for `Arc<T>` by boxing each call's future again
/// around the inner store's: a wrapper holding a plain `Arc<dyn StrataStore>` pays one more
/// allocation and one more dynamic poll on every call, for each layer of a stack built at
/// run time. This handle hands back the inner store's own future instead. A layer added
/// through [`Layer`](crate::Layer) wraps the store beneath it in one (a layer's `wrap` called
/// by hand takes whatever it is given), and [`Bucket`](crate::Bucket) holds its stack in one.
///
/// ```
/// use std::sync::Arc;
/// use object_store::{ObjectStoreExt, path::Path};
/// use storage_core::{DynStore, MemoryStore, StrataStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> object_store::Result<()> {
/// let store = DynStore::new(Arc::new(MemoryStore::new()));
/// store.put(&Path::from("a.txt"), "hello".into()).await?;
/// assert!(store.capabilities().delete_if_match);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DynStore {
    store: Arc<dyn StrataStore>,
}

impl DynStore {
    /// `store`, called directly.
    pub fn new(store: Arc<dyn StrataStore>) -> Self {
        DynStore { store }
    }

    /// The shared stack itself.
    pub fn into_inner(self) -> Arc<dyn StrataStore> {
        self.store
    }
}

impl From<Arc<dyn StrataStore>> for DynStore {
    fn from(store: Arc<dyn StrataStore>) -> Self {
        DynStore::new(store)
    }
}

impl std::ops::Deref for DynStore {
    type Target = Arc<dyn StrataStore>;

    fn deref(&self) -> &Self::Target {
        &self.store
    }
}

impl fmt::Display for DynStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.store, f)
    }
}

crate::forward_object_store!(DynStore, *store);

#[deny(clippy::missing_trait_methods)]
impl StrataStore for DynStore {
    crate::forward_object_store!(@methods *store: capabilities, key_prefix, delete_if_match, presign);
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

#[deny(clippy::missing_trait_methods)]
impl StrataStore for Declared {
    crate::store_fn!(capabilities, |this| this.capabilities);
    crate::store_fn!(key_prefix, |_| None);
    crate::store_fn!(delete_if_match, |this, _, _| Err(not_supported(
        this.inner.to_string(),
        "delete-if-match"
    )));
    crate::store_fn!(presign, |this, _, _, _| Err(not_supported(
        this.inner.to_string(),
        "presigned URLs"
    )));
}

// `*inner`: the outside store's own methods, not `Arc`'s impl (see [`DynStore`]).
crate::forward_object_store!(Declared, *inner);

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
    prefixed: object_store::prefix::PrefixStore<DynStore>,
    inner: Arc<dyn StrataStore>,
    prefix: Key,
    /// `prefix` under the scopes of `inner`: what [`StrataStore::key_prefix`] answers.
    nested: Key,
}

impl ScopedStore {
    /// `inner`, scoped to `prefix`.
    pub fn new(inner: Arc<dyn StrataStore>, prefix: Key) -> Self {
        let nested = match inner.key_prefix() {
            // Both are valid keys, so their join is one too.
            Some(outer) => outer
                .join(prefix.as_str())
                .expect("two valid keys join into a valid key"),
            None => prefix.clone(),
        };
        ScopedStore {
            prefixed: object_store::prefix::PrefixStore::new(
                DynStore::new(inner.clone()),
                prefix.to_path(),
            ),
            inner,
            prefix,
            nested,
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

#[deny(clippy::missing_trait_methods)]
impl StrataStore for ScopedStore {
    crate::store_fn!(capabilities, |this| this.inner.capabilities());
    crate::store_fn!(key_prefix, |this| Some(&this.nested));
    crate::store_fn!(delete_if_match, |this, location, etag| this
        .inner
        .delete_if_match(&this.full(location), etag)
        .await
        .map_err(|e| strip_path(e, &this.prefix)));
    crate::store_fn!(presign, |this, method, location, expires_in| this
        .inner
        .presign(method, &this.full(location), expires_in)
        .await);
}

crate::forward_object_store!(ScopedStore, prefixed);

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

/// What [`store_fn!`](crate::store_fn) and [`forward_object_store!`](crate::forward_object_store)
/// name, so the crates that use them need not depend on the same crates under the same names.
#[doc(hidden)]
pub mod __private {
    pub use bytes::Bytes;
    pub use object_store;
    pub use url::Url;

    use futures::stream::BoxStream;
    use object_store::{ObjectMeta, Result, path::Path};

    /// What `list` and `list_with_offset` answer.
    pub type Listing = BoxStream<'static, Result<ObjectMeta>>;
    /// What `delete_stream` takes and answers.
    pub type Paths = BoxStream<'static, Result<Path>>;
}

/// Forward methods of the store contract (`ObjectStore`, and `StrataStore`'s too) to a field:
/// for wrappers that change only some calls.
///
/// - `forward_object_store!(Type, field)`: the whole `ObjectStore` impl of `Type`, every
///   method forwarded to `self.field`; `forward_object_store!(Type, *field)` forwards to the
///   store `field` points to.
/// - `forward_object_store!(@methods field: get_opts, list, …)`: just those methods, as items
///   inside an `impl ObjectStore` (or `impl StrataStore`: `capabilities`, `delete_if_match`,
///   `presign`) that writes the others itself, by hand (`#[async_trait]`) or with
///   [`store_fn!`](crate::store_fn).
/// - `forward_object_store!(@methods *field: …)`: the same, to the store `field` points to
///   (an `Arc<S>` field reaches `S`'s methods directly, not through `Arc`'s own impl).
///
/// A forwarded method hands back the inner store's future itself, with no box of its own.
/// Not part of the public API (hidden): Strata's own crates and tests share it.
#[doc(hidden)]
#[macro_export]
macro_rules! forward_object_store {
    ($ty:ty, $field:ident) => {
        $crate::forward_object_store!(@impl $ty, [$field]);
    };
    ($ty:ty, *$field:ident) => {
        $crate::forward_object_store!(@impl $ty, [*$field]);
    };
    (@impl $ty:ty, [$($target:tt)+]) => {
        #[deny(clippy::missing_trait_methods)]
        impl $crate::store::__private::object_store::ObjectStore for $ty {
            $crate::forward_object_store!(@methods $($target)+:
                put_opts, put_multipart_opts, get_opts, get_ranges, delete_stream, list,
                list_with_offset, list_with_delimiter, copy_opts, rename_opts);
        }
    };
    (@methods $field:ident: $($method:ident),+ $(,)?) => {
        $($crate::store_fn!(@sig (forward |this| &this.$field) $method);)+
    };
    (@methods *$field:ident: $($method:ident),+ $(,)?) => {
        $($crate::store_fn!(@sig (forward |this| &*this.$field) $method);)+
    };
}

/// One method of the store contract (`ObjectStore` or `StrataStore`) from a closure-like
/// body that receives the store first and then the method's arguments, in the trait's order:
///
/// ```text
/// impl<T: StrataStore> ObjectStore for CacheStore<T> {
///     storage_core::store_fn!(put_opts, |this, location, payload, opts| {
///         this.write(&[location], this.inner.put_opts(location, payload, opts)).await
///     });
///     storage_core::forward_object_store!(@methods inner: list, …);
/// }
/// ```
///
/// The contract's signatures are written here once, for every store. The body of a method
/// that is `async` in the trait runs in an `async` block (it may `.await` and use `?`), as
/// `#[async_trait]` would run it; the others (`delete_stream`, `list`, `list_with_offset`,
/// `capabilities`) are plain functions. Items written this way sit beside hand-written
/// `#[async_trait]` methods and [`forward_object_store!`](crate::forward_object_store)'s.
///
/// Not part of the public API (hidden): Strata's own crates and tests share it.
#[doc(hidden)]
#[macro_export]
macro_rules! store_fn {
    ($method:ident, |$this:pat_param $(, $arg:pat_param)* $(,)?| $body:expr $(,)?) => {
        $crate::store_fn!(@sig (body [$this] [$($arg),*] $body) $method);
    };

    // The contract, one arm a method: its arguments and its answer.
    (@sig $how:tt put_opts) => {
        $crate::store_fn!(@async $how put_opts <'life1> [
            location: &'life1 $crate::store::__private::object_store::path::Path,
            payload: $crate::store::__private::object_store::PutPayload,
            opts: $crate::store::__private::object_store::PutOptions,
        ] -> $crate::store::__private::object_store::PutResult);
    };
    (@sig $how:tt put_multipart_opts) => {
        $crate::store_fn!(@async $how put_multipart_opts <'life1> [
            location: &'life1 $crate::store::__private::object_store::path::Path,
            opts: $crate::store::__private::object_store::PutMultipartOptions,
        ] -> ::std::boxed::Box<dyn $crate::store::__private::object_store::MultipartUpload>);
    };
    (@sig $how:tt get_opts) => {
        $crate::store_fn!(@async $how get_opts <'life1> [
            location: &'life1 $crate::store::__private::object_store::path::Path,
            options: $crate::store::__private::object_store::GetOptions,
        ] -> $crate::store::__private::object_store::GetResult);
    };
    (@sig $how:tt get_ranges) => {
        $crate::store_fn!(@async $how get_ranges <'life1, 'life2> [
            location: &'life1 $crate::store::__private::object_store::path::Path,
            ranges: &'life2 [::core::ops::Range<u64>],
        ] -> ::std::vec::Vec<$crate::store::__private::Bytes>);
    };
    (@sig $how:tt delete_stream) => {
        $crate::store_fn!(@sync $how delete_stream [
            locations: $crate::store::__private::Paths,
        ] -> $crate::store::__private::Paths);
    };
    (@sig $how:tt list) => {
        $crate::store_fn!(@sync $how list [
            prefix: ::core::option::Option<&$crate::store::__private::object_store::path::Path>,
        ] -> $crate::store::__private::Listing);
    };
    (@sig $how:tt list_with_offset) => {
        $crate::store_fn!(@sync $how list_with_offset [
            prefix: ::core::option::Option<&$crate::store::__private::object_store::path::Path>,
            offset: &$crate::store::__private::object_store::path::Path,
        ] -> $crate::store::__private::Listing);
    };
    (@sig $how:tt list_with_delimiter) => {
        $crate::store_fn!(@async $how list_with_delimiter <'life1> [
            prefix: ::core::option::Option<&'life1 $crate::store::__private::object_store::path::Path>,
        ] -> $crate::store::__private::object_store::ListResult);
    };
    (@sig $how:tt copy_opts) => {
        $crate::store_fn!(@from_to $how copy_opts CopyOptions);
    };
    (@sig $how:tt rename_opts) => {
        $crate::store_fn!(@from_to $how rename_opts RenameOptions);
    };
    // Copy and rename: from one path to another, with the operation's options.
    (@from_to $how:tt $m:ident $options:ident) => {
        $crate::store_fn!(@async $how $m <'life1, 'life2> [
            from: &'life1 $crate::store::__private::object_store::path::Path,
            to: &'life2 $crate::store::__private::object_store::path::Path,
            options: $crate::store::__private::object_store::$options,
        ] -> ());
    };
    (@sig $how:tt capabilities) => {
        $crate::store_fn!(@sync $how capabilities [] -> $crate::Capabilities);
    };
    (@sig $how:tt key_prefix) => {
        $crate::store_fn!(@sync $how key_prefix [] -> ::core::option::Option<&$crate::Key>);
    };
    (@sig $how:tt delete_if_match) => {
        $crate::store_fn!(@async $how delete_if_match <'life1, 'life2> [
            location: &'life1 $crate::store::__private::object_store::path::Path,
            etag: &'life2 str,
        ] -> ());
    };
    (@sig $how:tt presign) => {
        $crate::store_fn!(@async $how presign <'life1> [
            method: $crate::PresignMethod,
            location: &'life1 $crate::store::__private::object_store::path::Path,
            expires_in: ::core::time::Duration,
        ] -> $crate::store::__private::Url);
    };

    // A method that is `async` in the trait, as `#[async_trait]` expands it: `'life0` is
    // `&self`, the named lifetimes are those of the reference arguments. `self` is read
    // here, beside the signature that declares it: a `self` written elsewhere (the caller's
    // body, another arm) would not name this receiver.
    (@async $how:tt $m:ident <$($life:lifetime),*> [$($a:ident : $aty:ty),* $(,)?] -> $out:ty) => {
        fn $m<'life0, $($life,)* 'async_trait>(
            &'life0 self,
            $($a: $aty),*
        ) -> ::core::pin::Pin<::std::boxed::Box<
            dyn ::core::future::Future<
                    Output = $crate::store::__private::object_store::Result<$out>,
                > + ::core::marker::Send
                + 'async_trait,
        >>
        where
            'life0: 'async_trait,
            $($life: 'async_trait,)*
            Self: 'async_trait,
        {
            let receiver = self;
            $crate::store_fn!(@call async $how receiver $m [$($a),*] $out)
        }
    };
    (@sync $how:tt $m:ident [$($a:ident : $aty:ty),* $(,)?] -> $out:ty) => {
        fn $m(&self, $($a: $aty),*) -> $out {
            let receiver = self;
            $crate::store_fn!(@call sync $how receiver $m [$($a),*] $out)
        }
    };

    // The bodies. Forwarded: the inner store's answer (its future) as it is.
    (@call $_kind:ident (forward |$s:ident| $target:expr) $recv:ident $m:ident [$($a:ident),*] $out:ty) => {{
        let $s = $recv;
        ($target).$m($($a),*)
    }};
    (@call async (body [$this:pat_param] [$($arg:pat_param),*] $body:expr) $recv:ident $m:ident [$($a:ident),*] $out:ty) => {{
        let $this = $recv;
        $(let $arg = $a;)*
        ::std::boxed::Box::pin(async move {
            let answer: $crate::store::__private::object_store::Result<$out> = $body;
            answer
        })
    }};
    (@call sync (body [$this:pat_param] [$($arg:pat_param),*] $body:expr) $recv:ident $m:ident [$($a:ident),*] $out:ty) => {{
        let $this = $recv;
        $(let $arg = $a;)*
        $body
    }};
}
