//! A store that signs URLs without a server, for tests of code that hands out presigned
//! URLs (manifests, the CLI) on the embedded backends, which have no signer.

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

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for FakeSigningStore {
    async fn put_opts(&self, l: &Path, p: PutPayload, o: PutOptions) -> OsResult<PutResult> {
        self.inner.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> OsResult<GetResult> {
        self.inner.get_opts(l, o).await
    }
    async fn get_ranges(&self, l: &Path, r: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        self.inner.get_ranges(l, r).await
    }
    fn delete_stream(
        &self,
        l: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        self.inner.delete_stream(l)
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.inner.list(p)
    }
    fn list_with_offset(
        &self,
        p: Option<&Path>,
        o: &Path,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.inner.list_with_offset(p, o)
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> OsResult<ListResult> {
        self.inner.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> OsResult<()> {
        self.inner.copy_opts(f, t, o).await
    }
    async fn rename_opts(&self, f: &Path, t: &Path, o: RenameOptions) -> OsResult<()> {
        self.inner.rename_opts(f, t, o).await
    }
}
