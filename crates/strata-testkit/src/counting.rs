//! A store that counts the GET requests it serves and the bytes they return, and the delete
//! calls it gets, for tests and benchmarks that prove a read fetched only what it needed or
//! that deletes went out in batches.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ObjectStore, Result as OsResult};
use std::time::Duration;

use storage_core::{Bucket, Capabilities, PresignMethod, StrataStore};
use url::Url;

/// Counts GET requests (whole, ranged, multi-range; not HEADs' bytes) and returned bytes,
/// and delete calls (each `delete_stream`, which a single `delete` also goes through).
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn StrataStore>,
    gets: AtomicU64,
    bytes: AtomicU64,
    delete_calls: AtomicU64,
    deleted_keys: Arc<AtomicU64>,
}

impl CountingStore {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn StrataStore>) -> Self {
        CountingStore {
            inner,
            gets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            delete_calls: AtomicU64::new(0),
            deleted_keys: Arc::new(AtomicU64::new(0)),
        }
    }

    /// `bucket` with its store wrapped, and the counter.
    pub fn wrap(bucket: &Bucket) -> (Bucket, Arc<CountingStore>) {
        let counting = Arc::new(CountingStore::new(bucket.store().clone()));
        (
            bucket.to_builder().store(counting.clone()).build(),
            counting,
        )
    }

    /// (GET requests, bytes returned) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.gets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Bytes returned so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// (delete calls, keys passed to them) so far.
    pub fn deletes(&self) -> (u64, u64) {
        (
            self.delete_calls.load(Ordering::Relaxed),
            self.deleted_keys.load(Ordering::Relaxed),
        )
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

#[async_trait]
impl StrataStore for CountingStore {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()> {
        self.delete_calls.fetch_add(1, Ordering::Relaxed);
        self.deleted_keys.fetch_add(1, Ordering::Relaxed);
        self.inner.delete_if_match(location, etag).await
    }

    async fn presign(
        &self,
        method: PresignMethod,
        location: &Path,
        expires_in: Duration,
    ) -> OsResult<Url> {
        self.inner.presign(method, location, expires_in).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for CountingStore {
    storage_core::forward_object_store!(@methods inner:
        put_opts, put_multipart_opts, list, list_with_offset, list_with_delimiter, copy_opts,
        rename_opts);

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        self.gets.fetch_add(1, Ordering::Relaxed);
        if !head {
            self.bytes
                .fetch_add(r.range.end - r.range.start, Ordering::Relaxed);
        }
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        let r = self.inner.get_ranges(location, ranges).await?;
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.bytes
            .fetch_add(r.iter().map(|b| b.len() as u64).sum(), Ordering::Relaxed);
        Ok(r)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        self.delete_calls.fetch_add(1, Ordering::Relaxed);
        let keys = self.deleted_keys.clone();
        self.inner.delete_stream(
            locations
                .inspect(move |_| {
                    keys.fetch_add(1, Ordering::Relaxed);
                })
                .boxed(),
        )
    }
}
