//! Test support: a store wrapper that injects outages and latency and counts calls.
#![allow(dead_code)]

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use storage_core::{Bucket, Capabilities, MemoryStore, PresignMethod, StorageError, StrataStore};

/// Knobs of a [`Faulty`] store, shared with the test.
#[derive(Debug, Default)]
pub struct Faults {
    /// Every call fails with `Unavailable`.
    pub down: AtomicBool,
    /// Every call first sleeps this long (tokio time, so the paused clock applies).
    pub latency_ms: AtomicU64,
    /// Puts outside `.strata-sync/` fail (Unavailable) once this many have succeeded; -1: never.
    pub fail_puts_after: AtomicI64,
    /// Puts outside `.strata-sync/` store one byte less than asked: what verification must
    /// catch.
    pub truncate_puts: AtomicBool,
    /// Successful data puts.
    pub puts: AtomicU64,
    /// Gets (including heads) outside `.strata-sync/`.
    pub gets: AtomicU64,
    /// List calls.
    pub lists: AtomicU64,
}

impl Faults {
    pub fn new() -> Arc<Self> {
        let f = Faults::default();
        f.fail_puts_after.store(-1, Ordering::SeqCst);
        Arc::new(f)
    }
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst)
    }
    pub fn set_latency(&self, d: Duration) {
        self.latency_ms
            .store(d.as_millis() as u64, Ordering::SeqCst)
    }
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }
}

/// An `ObjectStore` wrapper that injects failures and latency.
#[derive(Debug)]
pub struct Faulty {
    name: String,
    inner: Arc<dyn StrataStore>,
    faults: Arc<Faults>,
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

fn outage(name: &str) -> object_store::Error {
    StorageError::Unavailable {
        backend: name.to_string(),
        source: "injected outage".into(),
    }
    .into_object_store()
}

fn is_bookkeeping(p: &Path) -> bool {
    p.as_ref().starts_with(".strata-sync")
}

impl Faulty {
    async fn gate(&self) -> object_store::Result<()> {
        let ms = self.faults.latency_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.faults.down.load(Ordering::SeqCst) {
            return Err(outage(&self.name));
        }
        Ok(())
    }

    fn put_allowed(&self, p: &Path) -> object_store::Result<()> {
        if is_bookkeeping(p) {
            return Ok(());
        }
        let limit = self.faults.fail_puts_after.load(Ordering::SeqCst);
        if limit >= 0 && self.faults.puts.load(Ordering::SeqCst) >= limit as u64 {
            return Err(outage(&self.name));
        }
        Ok(())
    }
}

#[async_trait]
impl StrataStore for Faulty {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn delete_if_match(&self, l: &Path, etag: &str) -> object_store::Result<()> {
        self.gate().await?;
        self.inner.delete_if_match(l, etag).await
    }
    async fn presign(
        &self,
        m: PresignMethod,
        l: &Path,
        e: Duration,
    ) -> object_store::Result<url::Url> {
        self.inner.presign(m, l, e).await
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        l: &Path,
        p: PutPayload,
        o: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.gate().await?;
        self.put_allowed(l)?;
        if is_bookkeeping(l) {
            return self.inner.put_opts(l, p, o).await;
        }
        let p = if self.faults.truncate_puts.load(Ordering::SeqCst) {
            let bytes: Vec<u8> = p.iter().flat_map(|b| b.iter().copied()).collect();
            Bytes::from(bytes[..bytes.len().saturating_sub(1)].to_vec()).into()
        } else {
            p
        };
        let r = self.inner.put_opts(l, p, o).await?;
        self.faults.puts.fetch_add(1, Ordering::SeqCst);
        Ok(r)
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.gate().await?;
        self.put_allowed(l)?;
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.gate().await?;
        if !is_bookkeeping(l) {
            self.faults.gets.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.get_opts(l, o).await
    }
    async fn get_ranges(&self, l: &Path, r: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.gate().await?;
        self.inner.get_ranges(l, r).await
    }
    fn delete_stream(
        &self,
        l: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if self.faults.down.load(Ordering::SeqCst) {
            let name = self.name.clone();
            return l.map(move |_| Err(outage(&name))).boxed();
        }
        self.inner.delete_stream(l)
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.faults.lists.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.list(p);
        let faults = self.faults.clone();
        let name = self.name.clone();
        stream::once(async move {
            let ms = faults.latency_ms.load(Ordering::SeqCst);
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if faults.down.load(Ordering::SeqCst) {
                stream::once(async move { Err(outage(&name)) }).boxed()
            } else {
                inner
            }
        })
        .flatten()
        .boxed()
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
        self.gate().await?;
        self.inner.list_with_delimiter(p).await
    }
    async fn copy_opts(&self, f: &Path, t: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.gate().await?;
        self.inner.copy_opts(f, t, o).await
    }
}

/// A memory-backed bucket wrapped in a [`Faulty`] store, and its knobs.
pub fn faulty_bucket(name: &str) -> (Bucket, Arc<Faults>) {
    faulty_over(name, Arc::new(MemoryStore::new()))
}

/// `inner` wrapped in a [`Faulty`] store, as a bucket named `name`.
pub fn faulty_over(name: &str, inner: Arc<dyn StrataStore>) -> (Bucket, Arc<Faults>) {
    let faults = Faults::new();
    let store = Faulty {
        name: name.to_string(),
        inner,
        faults: faults.clone(),
    };
    (
        Bucket::builder(name, Arc::new(store))
            .provider("memory")
            .build(),
        faults,
    )
}

/// A local-folder bucket wrapped in a [`Faulty`] store.
pub fn faulty_local(name: &str, dir: &std::path::Path) -> (Bucket, Arc<Faults>) {
    let store = storage_core::LocalStore::new(dir).expect("local store");
    let (b, f) = faulty_over(name, Arc::new(store));
    (b.to_builder().provider("fs").build(), f)
}
