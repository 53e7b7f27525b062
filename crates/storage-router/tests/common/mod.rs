//! Test support: a store wrapper that injects outages and latency and counts calls.
#![allow(dead_code)]

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream;
use object_store::ObjectStore;
use object_store::path::Path;
use storage_core::{Bucket, MemoryStore, StorageError, StrataStore};

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

#[deny(clippy::missing_trait_methods)]
impl StrataStore for Faulty {
    storage_core::forward_object_store!(@methods inner: capabilities, key_prefix, presign);
    storage_core::store_fn!(delete_if_match, |this, l, etag| {
        this.gate().await?;
        this.inner.delete_if_match(l, etag).await
    });
}

// Everything but a listing waits out the latency and fails while down; `list_with_offset`
// and `rename_opts` keep the trait's defaults, built on these.
impl ObjectStore for Faulty {
    storage_core::store_fn!(put_opts, |this, l, p, o| {
        this.gate().await?;
        this.put_allowed(l)?;
        if is_bookkeeping(l) {
            return this.inner.put_opts(l, p, o).await;
        }
        let p = if this.faults.truncate_puts.load(Ordering::SeqCst) {
            let bytes: Vec<u8> = p.iter().flat_map(|b| b.iter().copied()).collect();
            Bytes::from(bytes[..bytes.len().saturating_sub(1)].to_vec()).into()
        } else {
            p
        };
        let r = this.inner.put_opts(l, p, o).await?;
        this.faults.puts.fetch_add(1, Ordering::SeqCst);
        Ok(r)
    });
    storage_core::store_fn!(put_multipart_opts, |this, l, o| {
        this.gate().await?;
        this.put_allowed(l)?;
        this.inner.put_multipart_opts(l, o).await
    });
    storage_core::store_fn!(get_opts, |this, l, o| {
        this.gate().await?;
        if !is_bookkeeping(l) {
            this.faults.gets.fetch_add(1, Ordering::SeqCst);
        }
        this.inner.get_opts(l, o).await
    });
    storage_core::store_fn!(get_ranges, |this, l, r| {
        this.gate().await?;
        this.inner.get_ranges(l, r).await
    });
    storage_core::store_fn!(delete_stream, |this, l| {
        if this.faults.down.load(Ordering::SeqCst) {
            let name = this.name.clone();
            return l.map(move |_| Err(outage(&name))).boxed();
        }
        this.inner.delete_stream(l)
    });
    storage_core::store_fn!(list, |this, p| {
        this.faults.lists.fetch_add(1, Ordering::SeqCst);
        let inner = this.inner.list(p);
        let faults = this.faults.clone();
        let name = this.name.clone();
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
    });
    storage_core::store_fn!(list_with_delimiter, |this, p| {
        this.gate().await?;
        this.inner.list_with_delimiter(p).await
    });
    storage_core::store_fn!(copy_opts, |this, f, t, o| {
        this.gate().await?;
        this.inner.copy_opts(f, t, o).await
    });
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
