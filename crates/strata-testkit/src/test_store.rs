//! The one wrapper store of the test kit: [`TestStore`] forwards every call to the store it
//! wraps and lets its [`Hooks`] see or change the few that a test cares about. The contract's
//! signatures are written here once; a test store ([`CountingStore`](crate::CountingStore),
//! [`FakeSigningStore`](crate::FakeSigningStore)) is just its hooks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
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

#[deny(clippy::missing_trait_methods)]
impl<H: Hooks> StrataStore for TestStore<H> {
    storage_core::store_fn!(capabilities, |this| this
        .hooks
        .capabilities(this.inner.capabilities()));

    storage_core::store_fn!(key_prefix, |this| this.inner.key_prefix());

    storage_core::store_fn!(delete_if_match, |this, location, etag| {
        this.hooks.delete_call();
        this.hooks.deleted_key();
        this.inner.delete_if_match(location, etag).await
    });

    storage_core::store_fn!(presign, |this, method, location, expires_in| {
        match this.hooks.presign(method, location, expires_in) {
            Some(url) => Ok(url),
            None => this.inner.presign(method, location, expires_in).await,
        }
    });
}

#[deny(clippy::missing_trait_methods)]
impl<H: Hooks> ObjectStore for TestStore<H> {
    storage_core::forward_object_store!(@methods inner:
        put_opts, put_multipart_opts, list, list_with_offset, list_with_delimiter, copy_opts,
        rename_opts);

    storage_core::store_fn!(get_opts, |this, location, options| {
        let head = options.head;
        let r = this.inner.get_opts(location, options).await?;
        this.hooks
            .got(if head { 0 } else { r.range.end - r.range.start });
        Ok(r)
    });

    storage_core::store_fn!(get_ranges, |this, location, ranges| {
        let r = this.inner.get_ranges(location, ranges).await?;
        this.hooks.got(r.iter().map(|b| b.len() as u64).sum());
        Ok(r)
    });

    storage_core::store_fn!(delete_stream, |this, locations| {
        this.hooks.delete_call();
        let hooks = this.hooks.clone();
        this.inner
            .delete_stream(locations.inspect(move |_| hooks.deleted_key()).boxed())
    });
}
