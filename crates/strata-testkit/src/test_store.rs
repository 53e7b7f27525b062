//! The one wrapper store of the test kit: [`TestStore`] forwards every call to the store it
//! wraps and lets its [`Hooks`] see or change the few that a test cares about. The contract's
//! signatures are written here once; a test store ([`CountingStore`](crate::CountingStore),
//! [`FakeSigningStore`](crate::FakeSigningStore)) is just its hooks.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ObjectStore, Result as OsResult};
use storage_core::{Bucket, Capabilities, PresignMethod, StrataStore};
use url::Url;

/// What a [`TestStore`] does beyond forwarding. Every method has a default that changes
/// nothing, so hooks write only what they change.
pub trait Hooks: fmt::Debug + Send + Sync + 'static {
    /// The store prints as `NAME(inner)`.
    const NAME: &'static str;

    /// What the stack claims, given what the wrapped store claims.
    fn capabilities(&self, inner: Capabilities) -> Capabilities {
        inner
    }

    /// A presigned URL made here instead of by the wrapped store (`None`: ask it).
    fn presign(
        &self,
        _method: PresignMethod,
        _location: &Path,
        _expires_in: Duration,
    ) -> Option<Url> {
        None
    }

    /// A GET request (whole, ranged, multi-range, or a HEAD) answered with `bytes`
    /// (0 for a HEAD).
    fn got(&self, _bytes: u64) {}

    /// A delete call started: each `delete_stream` (which a single `delete` also goes
    /// through) and each `delete_if_match`.
    fn delete_call(&self) {}

    /// One key passed to a delete call.
    fn deleted_key(&self) {}
}

/// `inner` with `H`'s hooks; see the [module docs](self).
#[derive(Debug)]
pub struct TestStore<H> {
    inner: Arc<dyn StrataStore>,
    hooks: Arc<H>,
}

impl<H: Hooks> TestStore<H> {
    /// Wrap `inner` with `hooks`.
    pub fn with_hooks(inner: Arc<dyn StrataStore>, hooks: H) -> Self {
        TestStore {
            inner,
            hooks: Arc::new(hooks),
        }
    }

    /// Wrap `inner` with fresh hooks.
    pub fn new(inner: Arc<dyn StrataStore>) -> Self
    where
        H: Default,
    {
        Self::with_hooks(inner, H::default())
    }

    /// `bucket` with its store wrapped with fresh hooks, and the wrapper.
    pub fn wrap(bucket: &Bucket) -> (Bucket, Arc<Self>)
    where
        H: Default,
    {
        let store = Arc::new(Self::new(bucket.store().clone()));
        (bucket.to_builder().store(store.clone()).build(), store)
    }

    /// The hooks, with whatever they recorded.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }
}

impl<H: Hooks> fmt::Display for TestStore<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", H::NAME, self.inner)
    }
}

#[async_trait]
impl<H: Hooks> StrataStore for TestStore<H> {
    fn capabilities(&self) -> Capabilities {
        self.hooks.capabilities(self.inner.capabilities())
    }

    async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()> {
        self.hooks.delete_call();
        self.hooks.deleted_key();
        self.inner.delete_if_match(location, etag).await
    }

    async fn presign(
        &self,
        method: PresignMethod,
        location: &Path,
        expires_in: Duration,
    ) -> OsResult<Url> {
        match self.hooks.presign(method, location, expires_in) {
            Some(url) => Ok(url),
            None => self.inner.presign(method, location, expires_in).await,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<H: Hooks> ObjectStore for TestStore<H> {
    storage_core::forward_object_store!(@methods inner:
        put_opts, put_multipart_opts, list, list_with_offset, list_with_delimiter, copy_opts,
        rename_opts);

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        self.hooks
            .got(if head { 0 } else { r.range.end - r.range.start });
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await?;
        self.hooks.got(r.iter().map(|b| b.len() as u64).sum());
        Ok(r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        self.hooks.delete_call();
        let hooks = self.hooks.clone();
        self.inner
            .delete_stream(locations.inspect(move |_| hooks.deleted_key()).boxed())
    }
}
