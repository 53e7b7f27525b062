//! The in-memory backend: `object_store`'s `InMemory` plus an atomic delete-if-match.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result as OsResult, UploadPart,
};

use super::{ConditionalDelete, etag_eq};
use tokio::sync::RwLock;

/// An in-process store for tests and caches. Conditional writes are `InMemory`'s own.
/// [`ConditionalDelete::delete_if_match`] is made atomic by a gate: every write holds it
/// shared (writes never wait for each other), a conditional delete holds it exclusively
/// across its check and its delete.
///
/// ```
/// use object_store::{ObjectStoreExt, path::Path};
/// use storage_core::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> object_store::Result<()> {
/// let store = MemoryStore::new();
/// store.put(&Path::from("a.txt"), "hello".into()).await?;
/// assert_eq!(store.get(&Path::from("a.txt")).await?.bytes().await?, "hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<InMemory>,
    gate: Arc<RwLock<()>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            inner: Arc::new(InMemory::new()),
            gate: Arc::new(RwLock::new(())),
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryStore")
    }
}

impl fmt::Display for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryStore")
    }
}

#[async_trait]
impl ConditionalDelete for MemoryStore {
    async fn delete_if_match(&self, path: &Path, etag: &str) -> OsResult<()> {
        let _g = self.gate.write().await;
        let meta = self.inner.head(path).await?;
        if meta.e_tag.as_deref().is_some_and(|e| etag_eq(e, etag)) {
            self.inner.delete(path).await
        } else {
            Err(object_store::Error::Precondition {
                path: path.to_string(),
                source: format!("expected ETag {etag}, found {:?}", meta.e_tag).into(),
            })
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for MemoryStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> OsResult<PutResult> {
        let _g = self.gate.read().await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(MemoryUpload {
            upload,
            store: self.clone(),
            location: location.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        let store = self.clone();
        locations
            .then(move |loc| {
                let store = store.clone();
                async move {
                    let loc = loc?;
                    let _g = store.gate.read().await;
                    store.inner.delete(&loc).await?;
                    Ok(loc)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> OsResult<()> {
        let _g = self.gate.read().await;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> OsResult<()> {
        let _g = self.gate.read().await;
        self.inner.rename_opts(from, to, options).await
    }
}

struct MemoryUpload {
    upload: Box<dyn MultipartUpload>,
    store: MemoryStore,
    location: Path,
}

impl fmt::Debug for MemoryUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryUpload({})", self.location)
    }
}

#[async_trait]
impl MultipartUpload for MemoryUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        let _g = self.store.gate.read().await;
        self.upload.complete().await
    }

    async fn abort(&mut self) -> OsResult<()> {
        self.upload.abort().await
    }
}
