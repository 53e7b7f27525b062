//! The in-memory backend: an ordered map behind one lock, with every conditional operation
//! (create-if-absent, update-if-match, delete-if-match) atomic under it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyMode, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutPayload, PutResult, RenameTargetMode, Result as OsResult,
    UploadPart,
};

use super::{ConditionalDelete, etag_eq};

/// An in-process store for tests and caches.
///
/// `object_store`'s `InMemory` cannot delete conditionally, and wrapping it to add that
/// cost every call a second lock and a second boxed future; this store keeps the objects
/// itself, so [`StrataStore::delete_if_match`](crate::StrataStore::delete_if_match) is as atomic as the conditional puts
/// and a call costs one lock. ETags are a counter, `"1"`, `"2"`, ..., as in `InMemory`.
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
#[derive(Clone, Default)]
pub struct MemoryStore {
    storage: Arc<RwLock<Storage>>,
}

#[derive(Default)]
struct Storage {
    map: BTreeMap<Path, Entry>,
    next_etag: u64,
}

#[derive(Clone)]
struct Entry {
    data: Bytes,
    last_modified: DateTime<Utc>,
    etag: u64,
    attributes: Attributes,
}

impl Entry {
    fn etag(&self) -> String {
        // `"N"`, written by hand: `format!` costs more than the rest of a small put.
        let mut digits = [0u8; 20];
        let mut n = self.etag;
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut s = String::with_capacity(digits.len() - at + 2);
        s.push('"');
        s.extend(digits[at..].iter().map(|&d| d as char));
        s.push('"');
        s
    }

    fn meta(&self, location: Path) -> ObjectMeta {
        ObjectMeta {
            location,
            last_modified: self.last_modified,
            size: self.data.len() as u64,
            e_tag: Some(self.etag()),
            version: None,
        }
    }
}

impl Storage {
    /// Store `data` at `location` with a fresh ETag; returns that ETag.
    fn insert(&mut self, location: &Path, data: Bytes, attributes: Attributes) -> String {
        self.next_etag += 1;
        let entry = Entry {
            data,
            last_modified: Utc::now(),
            etag: self.next_etag,
            attributes,
        };
        let etag = entry.etag();
        self.map.insert(location.clone(), entry);
        etag
    }

    fn get(&self, location: &Path) -> OsResult<&Entry> {
        self.map.get(location).ok_or_else(|| not_found(location))
    }

    /// Keys strictly inside `prefix` (a key equal to the prefix is not inside it), in order.
    fn under<'a>(&'a self, prefix: &'a Path) -> impl Iterator<Item = (&'a Path, &'a Entry)> {
        let p = prefix.as_ref();
        self.map
            .range(prefix..)
            .take_while(move |(k, _)| k.as_ref().starts_with(p))
            // A path has no empty segment, so a key is inside `prefix` when a `/` follows
            // it: one byte read instead of comparing the key segment by segment.
            .filter(move |(k, _)| p.is_empty() || k.as_ref().as_bytes().get(p.len()) == Some(&b'/'))
    }
}

fn not_found(location: &Path) -> object_store::Error {
    object_store::Error::NotFound {
        path: location.to_string(),
        source: format!("no object at {location}").into(),
    }
}

fn already_exists(location: &Path) -> object_store::Error {
    object_store::Error::AlreadyExists {
        path: location.to_string(),
        source: format!("an object exists at {location}").into(),
    }
}

fn range_error(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "MemoryStore",
        source: Box::new(e),
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while the lock was held cannot leave a half-made entry (every change is one
    // map operation), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, Storage> {
        self.storage.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Storage> {
        self.storage.write().unwrap_or_else(|e| e.into_inner())
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
        let mut storage = self.write();
        let current = storage.get(path)?.etag();
        if etag_eq(&current, etag) {
            storage.map.remove(path);
            Ok(())
        } else {
            Err(object_store::Error::Precondition {
                path: path.to_string(),
                source: super::etag_mismatch(Some(etag), Some(&current)).into(),
            })
        }
    }
}

#[deny(clippy::missing_trait_methods)]
impl ObjectStore for MemoryStore {
    crate::store_fn!(put_opts, |this, location, payload, opts| {
        let data = Bytes::from(payload);
        let mut storage = this.write();
        match &opts.mode {
            PutMode::Overwrite => {}
            PutMode::Create => {
                if storage.map.contains_key(location) {
                    return Err(already_exists(location));
                }
            }
            PutMode::Update(v) => {
                let current = storage.map.get(location).map(Entry::etag);
                let matches = match (&current, &v.e_tag) {
                    (Some(have), Some(want)) => etag_eq(have, want),
                    _ => false,
                };
                if !matches {
                    return Err(object_store::Error::Precondition {
                        path: location.to_string(),
                        source: super::etag_mismatch(v.e_tag.as_deref(), current.as_deref()).into(),
                    });
                }
            }
        }
        let etag = storage.insert(location, data, opts.attributes);
        Ok(PutResult {
            e_tag: Some(etag),
            version: None,
            extensions: Default::default(),
        })
    });

    crate::store_fn!(put_multipart_opts, |this, location, opts| {
        Ok(Box::new(MemoryUpload {
            parts: Vec::new(),
            store: this.clone(),
            location: location.clone(),
            attributes: opts.attributes,
        }))
    });

    crate::store_fn!(get_opts, |this, location, options| {
        let entry = this.read().get(location)?.clone();
        let meta = entry.meta(location.clone());
        options.check_preconditions(&meta)?;
        let (range, data) = match &options.range {
            Some(r) => {
                let r = r.as_range(meta.size).map_err(range_error)?;
                let data = entry.data.slice(r.start as usize..r.end as usize);
                (r, data)
            }
            None => (0..meta.size, entry.data),
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream::once(async move { Ok(data) }).boxed()),
            meta,
            range,
            attributes: entry.attributes,
            extensions: Default::default(),
        })
    });

    crate::store_fn!(get_ranges, |this, location, ranges| {
        let data = this.read().get(location)?.data.clone();
        ranges
            .iter()
            .map(|r| {
                let r = GetRange::Bounded(r.clone())
                    .as_range(data.len() as u64)
                    .map_err(range_error)?;
                Ok(data.slice(r.start as usize..r.end as usize))
            })
            .collect()
    });

    crate::store_fn!(delete_stream, |this, locations| {
        let store = this.clone();
        locations
            .map(move |loc| {
                let loc = loc?;
                store.write().map.remove(&loc);
                Ok(loc)
            })
            .boxed()
    });

    crate::store_fn!(list, |this, prefix| {
        let root = Path::default();
        let prefix = prefix.unwrap_or(&root);
        let listed: Vec<OsResult<ObjectMeta>> = this
            .read()
            .under(prefix)
            .map(|(k, e)| Ok(e.meta(k.clone())))
            .collect();
        stream::iter(listed).boxed()
    });

    crate::store_fn!(list_with_offset, |this, prefix, offset| {
        let root = Path::default();
        let prefix = prefix.unwrap_or(&root);
        let listed: Vec<OsResult<ObjectMeta>> = this
            .read()
            .under(prefix)
            .filter(|(k, _)| *k > offset)
            .map(|(k, e)| Ok(e.meta(k.clone())))
            .collect();
        stream::iter(listed).boxed()
    });

    crate::store_fn!(list_with_delimiter, |this, prefix| {
        let root = Path::default();
        let prefix = prefix.unwrap_or(&root);
        let mut common_prefixes = BTreeSet::new();
        let mut objects = Vec::new();
        for (k, e) in this.read().under(prefix) {
            let mut parts = k.prefix_match(prefix).expect("under() keeps matches only");
            let first = parts.next().expect("under() keeps children only");
            if parts.next().is_some() {
                common_prefixes.insert(prefix.clone().join(first));
            } else {
                objects.push(e.meta(k.clone()));
            }
        }
        Ok(ListResult {
            objects,
            common_prefixes: common_prefixes.into_iter().collect(),
            extensions: Default::default(),
        })
    });

    crate::store_fn!(copy_opts, |this, from, to, options| {
        let mut storage = this.write();
        let entry = storage.get(from)?.clone();
        if options.mode == CopyMode::Create && storage.map.contains_key(to) {
            return Err(already_exists(to));
        }
        storage.insert(to, entry.data, entry.attributes);
        Ok(())
    });

    crate::store_fn!(rename_opts, |this, from, to, options| {
        let mut storage = this.write();
        storage.get(from)?;
        if options.target_mode == RenameTargetMode::Create && storage.map.contains_key(to) {
            return Err(already_exists(to));
        }
        let entry = storage.map.remove(from).expect("checked above");
        storage.insert(to, entry.data, entry.attributes);
        Ok(())
    });
}

/// Parts are kept in call order and joined on completion; nothing is visible before.
struct MemoryUpload {
    parts: Vec<PutPayload>,
    store: MemoryStore,
    location: Path,
    attributes: Attributes,
}

impl fmt::Debug for MemoryUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryUpload({})", self.location)
    }
}

#[async_trait]
impl MultipartUpload for MemoryUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.parts.push(data);
        Box::pin(futures::future::ready(Ok(())))
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        let payload: PutPayload = std::mem::take(&mut self.parts)
            .into_iter()
            .flat_map(|p| p.into_iter())
            .collect();
        let etag = self.store.write().insert(
            &self.location,
            Bytes::from(payload),
            std::mem::take(&mut self.attributes),
        );
        Ok(PutResult {
            e_tag: Some(etag),
            version: None,
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> OsResult<()> {
        self.parts.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn delete_if_match_is_atomic_with_writes() {
        let store = MemoryStore::new();
        let p = Path::from("k");
        let first = store.put(&p, "1".into()).await.unwrap();
        store.put(&p, "2".into()).await.unwrap();
        let stale = store
            .delete_if_match(&p, first.e_tag.as_deref().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(stale, object_store::Error::Precondition { .. }));
        let now = store.head(&p).await.unwrap().e_tag.unwrap();
        assert_eq!(now, "\"2\"");
        store.delete_if_match(&p, &now).await.unwrap();
        assert!(matches!(
            store.delete_if_match(&p, &now).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    /// A listing holds what is inside the prefix as a folder: not the key equal to it, nor
    /// keys that only start with the same characters (`a-b`, `ab`), and all keys at the root.
    #[tokio::test]
    async fn listings_hold_keys_inside_the_prefix_as_a_folder() {
        use futures::TryStreamExt;
        let store = MemoryStore::new();
        for k in ["a", "a-b", "a/b", "a/c/d", "ab", "ab/c", "b"] {
            store.put(&Path::from(k), "x".into()).await.unwrap();
        }
        let listed = |prefix: Option<&str>| {
            let prefix = prefix.map(Path::from);
            let store = store.clone();
            async move {
                let metas: Vec<_> = store.list(prefix.as_ref()).try_collect().await.unwrap();
                metas
                    .into_iter()
                    .map(|m| m.location.to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(Some("a")).await, ["a/b", "a/c/d"]);
        assert_eq!(listed(Some("a/c")).await, ["a/c/d"]);
        assert_eq!(listed(Some("ab")).await, ["ab/c"]);
        assert!(listed(Some("a/b")).await.is_empty());
        assert_eq!(
            listed(None).await,
            ["a", "a-b", "a/b", "a/c/d", "ab", "ab/c", "b"]
        );
        let dirs = store
            .list_with_delimiter(Some(&Path::from("a")))
            .await
            .unwrap();
        let objects: Vec<_> = dirs
            .objects
            .iter()
            .map(|m| m.location.to_string())
            .collect();
        assert_eq!(objects, ["a/b"]);
        assert_eq!(dirs.common_prefixes, [Path::from("a/c")]);
    }
}
