//! The one store of the layers that wrap each call in something of their own and otherwise
//! pass it on unchanged: the circuit breaker (admission), the timeout (deadlines), the
//! concurrency limit (permits), metrics (a measurement) and chaos (injected faults).
//!
//! Each of them is a [`Guard`]: it says how one call is run, how a listing runs, and where it
//! departs from that (a GET body, a delete stream, the parts of a multipart upload).
//! [`Guarded`] applies a guard to every method of the store contract, so the "guard every
//! call" shape is written here once; each layer's public store is a newtype around a
//! `Guarded` ([`guarded_store!`]) that keeps its own name.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetResult, ListResult, MultipartUpload, ObjectStore, PutPayload, PutResult, Result as OsResult,
    UploadPart,
};
use storage_core::StrataStore;
use url::Url;

/// The operations a guard sees, named as the layers report them (timeout errors, metrics,
/// chaos messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Put,
    PutMultipart,
    PutPart,
    Complete,
    Abort,
    Get,
    Head,
    GetRanges,
    Delete,
    DeleteIfMatch,
    List,
    ListWithDelimiter,
    Copy,
    Rename,
    Presign,
}

impl Op {
    /// The name in errors, spans and metrics.
    // The breaker and the limit treat every operation alike.
    #[cfg_attr(
        not(any(feature = "timeout", feature = "metrics", feature = "chaos")),
        allow(dead_code)
    )]
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::PutMultipart => "put_multipart",
            Op::PutPart => "put_part",
            Op::Complete => "complete",
            Op::Abort => "abort",
            Op::Get => "get",
            Op::Head => "head",
            Op::GetRanges => "get_ranges",
            Op::Delete => "delete",
            Op::DeleteIfMatch => "delete_if_match",
            Op::List => "list",
            Op::ListWithDelimiter => "list_with_delimiter",
            Op::Copy => "copy",
            Op::Rename => "rename",
            Op::Presign => "presign",
        }
    }

    /// Whether the operation changes stored objects (chaos targets reads and writes apart).
    #[cfg_attr(not(feature = "chaos"), allow(dead_code))]
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Op::Put
                | Op::PutMultipart
                | Op::PutPart
                | Op::Complete
                | Op::Abort
                | Op::Delete
                | Op::DeleteIfMatch
                | Op::Copy
                | Op::Rename
        )
    }
}

/// One call as a guard sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    // The breaker and the limit treat every operation alike.
    #[cfg_attr(
        not(any(feature = "timeout", feature = "metrics", feature = "chaos")),
        allow(dead_code)
    )]
    pub op: Op,
    /// The key it is about: the location, a listing's prefix (`""` for none), a copy's or
    /// rename's destination, a multipart upload's location.
    pub key: &'a str,
    /// Bytes the call sends (a put's payload).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub sent: u64,
}

impl<'a> Call<'a> {
    pub fn new(op: Op, key: &'a str) -> Self {
        Call { op, key, sent: 0 }
    }

    /// A listing's key: its prefix, or `""`.
    fn listing(op: Op, prefix: Option<&'a Path>) -> Self {
        Call::new(op, prefix.map_or("", |p| p.as_ref()))
    }
}

/// A call's future, as a guard receives it.
pub(crate) trait CallFuture<R>: Future<Output = OsResult<R>> + Send {}
impl<R, F: Future<Output = OsResult<R>> + Send> CallFuture<R> for F {}

/// What a store's answer streams carry (object metadata, paths, bytes).
pub(crate) trait Item: Send + 'static {}
impl<I: Send + 'static> Item for I {}

/// A stream of a store's answers (a listing, a delete stream, a GET body).
pub(crate) type ItemStream<I> = BoxStream<'static, OsResult<I>>;

/// A stream-producing call, made when its guard lets it start.
pub(crate) trait MakeStream<I>: FnOnce() -> ItemStream<I> + Send + 'static {}
impl<I, F: FnOnce() -> ItemStream<I> + Send + 'static> MakeStream<I> for F {}

/// What a call's answer says about the data it moved, for the metrics layer.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) trait Answer: Send {
    /// Bytes returned.
    fn bytes(&self) -> u64 {
        0
    }

    /// Entries listed.
    fn entries(&self) -> u64 {
        0
    }
}

impl Answer for () {}
impl Answer for PutResult {}
impl Answer for Url {}
impl Answer for Box<dyn MultipartUpload> {}

impl Answer for GetResult {
    fn bytes(&self) -> u64 {
        self.range.end - self.range.start
    }
}

impl Answer for Vec<Bytes> {
    fn bytes(&self) -> u64 {
        self.iter().map(|b| b.len() as u64).sum()
    }
}

impl Answer for ListResult {
    fn entries(&self) -> u64 {
        (self.objects.len() + self.common_prefixes.len()) as u64
    }
}

/// How a layer runs each call; see the [module docs](self). Only [`call`](Guard::call) and
/// [`listing`](Guard::listing) must be written; the other methods say where a layer departs
/// from "every call through `call`, every stream through `listing`".
pub(crate) trait Guard: Clone + Send + Sync + 'static {
    /// The store prints as `{NAME}Store(inner)` and its multipart uploads as
    /// `{NAME}Upload(upload)`.
    const NAME: &'static str;

    /// Settings shown before the inner store: `{NAME}Store(settings, inner)`.
    fn settings(&self) -> Option<String> {
        None
    }

    /// Run one call that answers once.
    fn call<R: Answer>(&self, call: Call<'_>, fut: impl CallFuture<R>) -> impl CallFuture<R>;

    /// Run a stream-producing call (a listing; by default a delete stream too): `make`
    /// starts it, when the guard lets it start.
    fn listing<I: Item>(&self, call: Call<'_>, make: impl MakeStream<I>) -> ItemStream<I>;

    /// Run a GET (or HEAD); a layer that must follow the body overrides this.
    fn get(&self, call: Call<'_>, fut: impl CallFuture<GetResult>) -> impl CallFuture<GetResult> {
        self.call(call, fut)
    }

    /// Start a multipart upload: by default the start is one call, and its parts,
    /// completion and abort are calls too where [`guards_parts`](Guard::guards_parts) says
    /// so.
    fn put_multipart(
        &self,
        call: Call<'_>,
        fut: impl CallFuture<Box<dyn MultipartUpload>>,
    ) -> impl CallFuture<Box<dyn MultipartUpload>> {
        async move {
            let upload = self.call(call, fut).await?;
            if !self.guards_parts() {
                return Ok(upload);
            }
            let upload: Box<dyn MultipartUpload> = Box::new(GuardedUpload {
                upload,
                guard: self.clone(),
                key: call.key.to_string(),
            });
            Ok(upload)
        }
    }

    /// Whether the parts, completion and abort of a multipart upload go through
    /// [`call`](Guard::call) (as `put_part`, `complete`, `abort`); otherwise only starting
    /// the upload does, and the parts go to the backend already chosen.
    fn guards_parts(&self) -> bool {
        false
    }

    /// Whether signing a URL goes through [`call`](Guard::call); otherwise it passes
    /// through.
    fn guards_presign(&self) -> bool {
        false
    }

    /// Run a delete stream over `inner`: by default one stream-producing call, like a
    /// listing.
    fn deletes<S: ObjectStore>(&self, inner: &Arc<S>, paths: ItemStream<Path>) -> ItemStream<Path> {
        let inner = Arc::clone(inner);
        self.listing(Call::new(Op::Delete, ""), move || {
            inner.delete_stream(paths)
        })
    }
}

/// `inner` with `guard` around every call; see the [module docs](self).
pub(crate) struct Guarded<G: Guard, T: StrataStore> {
    pub inner: Arc<T>,
    pub guard: G,
}

impl<G: Guard, T: StrataStore> Guarded<G, T> {
    pub fn new(inner: T, guard: G) -> Self {
        Guarded {
            inner: Arc::new(inner),
            guard,
        }
    }

    /// `fut`, one call `op` about `key`, through the guard.
    async fn run<R: Answer>(&self, op: Op, key: &str, fut: impl CallFuture<R>) -> OsResult<R> {
        self.guard.call(Call::new(op, key), fut).await
    }

    fn fmt_with(
        &self,
        f: &mut fmt::Formatter<'_>,
        inner: impl FnOnce(&mut fmt::Formatter<'_>) -> fmt::Result,
    ) -> fmt::Result {
        write!(f, "{}Store(", G::NAME)?;
        if let Some(settings) = self.guard.settings() {
            write!(f, "{settings}, ")?;
        }
        inner(f)?;
        write!(f, ")")
    }
}

impl<G: Guard, T: StrataStore> fmt::Debug for Guarded<G, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_with(f, |f| write!(f, "{:?}", self.inner))
    }
}

impl<G: Guard, T: StrataStore> fmt::Display for Guarded<G, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_with(f, |f| write!(f, "{}", self.inner))
    }
}

#[deny(clippy::missing_trait_methods)]
impl<G: Guard, T: StrataStore> StrataStore for Guarded<G, T> {
    storage_core::forward_object_store!(@methods inner: capabilities, key_prefix);

    storage_core::store_fn!(delete_if_match, |this, location, etag| {
        let delete = this.inner.delete_if_match(location, etag);
        this.run(Op::DeleteIfMatch, location.as_ref(), delete).await
    });

    storage_core::store_fn!(presign, |this, method, location, expires_in| {
        let sign = this.inner.presign(method, location, expires_in);
        if !this.guard.guards_presign() {
            return sign.await;
        }
        this.run(Op::Presign, location.as_ref(), sign).await
    });
}

#[deny(clippy::missing_trait_methods)]
impl<G: Guard, T: StrataStore> ObjectStore for Guarded<G, T> {
    storage_core::store_fn!(put_opts, |this, location, payload, opts| {
        let call = Call {
            sent: payload.content_length() as u64,
            ..Call::new(Op::Put, location.as_ref())
        };
        this.guard
            .call(call, this.inner.put_opts(location, payload, opts))
            .await
    });

    storage_core::store_fn!(put_multipart_opts, |this, location, opts| {
        let call = Call::new(Op::PutMultipart, location.as_ref());
        this.guard
            .put_multipart(call, this.inner.put_multipart_opts(location, opts))
            .await
    });

    storage_core::store_fn!(get_opts, |this, location, options| {
        let op = if options.head { Op::Head } else { Op::Get };
        let call = Call::new(op, location.as_ref());
        this.guard
            .get(call, this.inner.get_opts(location, options))
            .await
    });

    storage_core::store_fn!(get_ranges, |this, location, ranges| {
        let get = this.inner.get_ranges(location, ranges);
        this.run(Op::GetRanges, location.as_ref(), get).await
    });

    storage_core::store_fn!(delete_stream, |this, locations| this
        .guard
        .deletes(&this.inner, locations));

    storage_core::store_fn!(list, |this, prefix| {
        let inner = Arc::clone(&this.inner);
        let owned = prefix.cloned();
        this.guard
            .listing(Call::listing(Op::List, prefix), move || {
                inner.list(owned.as_ref())
            })
    });

    storage_core::store_fn!(list_with_offset, |this, prefix, offset| {
        let inner = Arc::clone(&this.inner);
        let (owned, offset) = (prefix.cloned(), offset.clone());
        this.guard
            .listing(Call::listing(Op::List, prefix), move || {
                inner.list_with_offset(owned.as_ref(), &offset)
            })
    });

    storage_core::store_fn!(list_with_delimiter, |this, prefix| {
        let call = Call::listing(Op::ListWithDelimiter, prefix);
        this.guard
            .call(call, this.inner.list_with_delimiter(prefix))
            .await
    });

    storage_core::store_fn!(copy_opts, |this, from, to, options| {
        let copy = this.inner.copy_opts(from, to, options);
        this.run(Op::Copy, to.as_ref(), copy).await
    });

    storage_core::store_fn!(rename_opts, |this, from, to, options| {
        let rename = this.inner.rename_opts(from, to, options);
        this.run(Op::Rename, to.as_ref(), rename).await
    });
}

/// A multipart upload whose parts, completion and abort are each a call through the guard.
struct GuardedUpload<G: Guard> {
    upload: Box<dyn MultipartUpload>,
    guard: G,
    key: String,
}

impl<G: Guard> fmt::Debug for GuardedUpload<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}Upload({:?})", G::NAME, self.upload)
    }
}

#[async_trait]
impl<G: Guard> MultipartUpload for GuardedUpload<G> {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let part = self.upload.put_part(data);
        let guard = self.guard.clone();
        let key = self.key.clone();
        async move { guard.call(Call::new(Op::PutPart, &key), part).await }.boxed()
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        let call = Call::new(Op::Complete, &self.key);
        self.guard.call(call, self.upload.complete()).await
    }

    async fn abort(&mut self) -> OsResult<()> {
        let call = Call::new(Op::Abort, &self.key);
        self.guard.call(call, self.upload.abort()).await
    }
}

/// The public store of a guarding layer, `pub struct Name<T: StrataStore> { guarded:
/// Guarded<G, T> }`: its `Debug`, `Display`, `StrataStore` and `ObjectStore`, each
/// forwarded to the `Guarded` inside.
macro_rules! guarded_store {
    ($store:ident) => {
        impl<T: storage_core::StrataStore> std::fmt::Debug for $store<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.guarded, f)
            }
        }

        impl<T: storage_core::StrataStore> std::fmt::Display for $store<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.guarded, f)
            }
        }

        #[deny(clippy::missing_trait_methods)]
        impl<T: storage_core::StrataStore> storage_core::StrataStore for $store<T> {
            storage_core::forward_object_store!(@methods guarded:
                capabilities, key_prefix, delete_if_match, presign);
        }

        #[deny(clippy::missing_trait_methods)]
        impl<T: storage_core::StrataStore> object_store::ObjectStore for $store<T> {
            storage_core::forward_object_store!(@methods guarded:
                put_opts, put_multipart_opts, get_opts, get_ranges, delete_stream, list,
                list_with_offset, list_with_delimiter, copy_opts, rename_opts);
        }
    };
}
pub(crate) use guarded_store;
