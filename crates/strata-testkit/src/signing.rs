//! A store that signs URLs without a server, for tests of code that hands out presigned
//! URLs (manifests, the CLI) on the embedded backends, which have no signer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use object_store::Result as OsResult;
use object_store::path::Path;
use storage_core::{Capabilities, PresignMethod, StrataStore};
use url::Url;

/// `inner`, claiming presign, whose URLs are
/// `https://signed.example/{path}?m={Get|Put}&e={seconds}`: they prove which path, method and
/// expiry reached the store, and can be fetched by nothing.
#[derive(Debug)]
pub struct FakeSigningStore {
    inner: Arc<dyn StrataStore>,
}

impl FakeSigningStore {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn StrataStore>) -> Self {
        FakeSigningStore { inner }
    }
}

impl fmt::Display for FakeSigningStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FakeSigningStore({})", self.inner)
    }
}

#[async_trait]
impl StrataStore for FakeSigningStore {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities().with_presign(true)
    }

    async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()> {
        self.inner.delete_if_match(location, etag).await
    }

    async fn presign(
        &self,
        method: PresignMethod,
        location: &Path,
        expires_in: Duration,
    ) -> OsResult<Url> {
        Ok(Url::parse(&format!(
            "https://signed.example/{location}?m={method:?}&e={}",
            expires_in.as_secs()
        ))
        .expect("a valid URL"))
    }
}

storage_core::forward_object_store!(FakeSigningStore, inner);
