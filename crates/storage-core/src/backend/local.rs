//! The local-folder backend: `object_store`'s `LocalFileSystem` plus what it lacks.
//!
//! `LocalFileSystem` stores plain files (good: users can look at them), but answers
//! `PutMode::Update` and any attribute (content type, user metadata) with NotImplemented.
//! Documents, manifests and TTLs need both, so [`LocalStore`] adds them:
//!
//! - **Compare-and-swap across processes.** Every write takes a per-key lock (an in-process
//!   mutex and an OS file lock under `ROOT/.strata-sys/locks/`), checks the condition, then
//!   writes through `LocalFileSystem` (staged file + atomic rename). Several `strata` processes
//!   may share one folder.
//! - **ETags** are `LocalFileSystem`'s `inode-mtime-size`: every write renames a fresh file
//!   into place, so each write gets a new inode/mtime pair (nanosecond mtimes on ext4, xfs,
//!   btrfs, tmpfs, overlayfs). Filesystems with coarse timestamps weaken this; keep Strata's
//!   folder on one of the above.
//! - **Attributes and tags** live in a sidecar `ROOT/.strata-sys/meta/KEY.json` that records
//!   the ETag of the data it describes; a sidecar for other data is ignored.
//! - **Atomic delete-if-match**, under the same lock.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attributes, CopyMode, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, RenameTargetMode, Result as OsResult, UploadPart,
};
use serde::{Deserialize, Serialize};

use super::locks::{KeyGuard, KeyLocks};
use super::{ConditionalDelete, etag_eq};
use crate::attrs::{attributes_to_map, map_to_attributes};
use crate::error::{Result, StorageError};
use crate::key::RESERVED_PREFIX;

const BACKEND: &str = "fs";

#[derive(Serialize, Deserialize, Default)]
struct Sidecar {
    etag: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    tags: String,
}

/// A folder on the local disk as an `ObjectStore` with atomic conditional writes.
///
/// ```
/// use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, UpdateVersion, path::Path};
/// use storage_core::LocalStore;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = LocalStore::new(dir.path())?;
/// let path = Path::from("counter.json");
/// let first = store.put(&path, "1".into()).await?;
/// let update = PutOptions::from(PutMode::Update(UpdateVersion::from(first.clone())));
/// store.put_opts(&path, "2".into(), update.clone()).await?;
/// // The same stale ETag a second time: rejected.
/// assert!(store.put_opts(&path, "3".into(), update).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LocalStore {
    inner: Arc<LocalFileSystem>,
    root: PathBuf,
    locks: Arc<KeyLocks>,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .finish()
    }
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalStore({})", self.root.display())
    }
}

fn io_err(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalStore",
        source: Box::new(e),
    }
}

fn is_reserved(path: &Path) -> bool {
    path.parts()
        .next()
        .is_some_and(|p| p.as_ref() == RESERVED_PREFIX)
}

fn reserved_err(path: &Path) -> object_store::Error {
    StorageError::InvalidKey {
        key: path.to_string(),
        rule: format!("keys under `{RESERVED_PREFIX}/` are reserved for Strata's own bookkeeping"),
    }
    .into_object_store()
}

impl LocalStore {
    /// Open (creating if needed) the folder `root`.
    pub fn new(root: impl AsRef<FsPath>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| {
            StorageError::invalid_config(
                "root",
                format!("cannot create folder {}: {e}", root.display()),
            )
        })?;
        let root = root.canonicalize().map_err(|e| {
            StorageError::invalid_config("root", format!("cannot open {}: {e}", root.display()))
        })?;
        let inner = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| StorageError::from_object_store(BACKEND, e))?;
        let locks =
            KeyLocks::cross_process(root.join(RESERVED_PREFIX).join("locks")).map_err(|e| {
                StorageError::invalid_config("root", format!("cannot create lock folder: {e}"))
            })?;
        Ok(LocalStore {
            inner: Arc::new(inner),
            root,
            locks: Arc::new(locks),
        })
    }

    /// The folder this store writes to.
    pub fn root(&self) -> &FsPath {
        &self.root
    }

    fn sidecar_path(&self, path: &Path) -> PathBuf {
        let mut p = self.root.join(RESERVED_PREFIX).join("meta");
        for part in path.parts() {
            p.push(part.as_ref());
        }
        p.set_extension(match p.extension() {
            Some(ext) => format!("{}.json", ext.to_string_lossy()),
            None => "json".into(),
        });
        p
    }

    async fn lock(&self, paths: &[&Path]) -> OsResult<KeyGuard> {
        let keys: Vec<&str> = paths.iter().map(|p| p.as_ref()).collect();
        self.locks.lock(&keys).await.map_err(io_err)
    }

    fn read_sidecar(&self, path: &Path) -> Option<Sidecar> {
        let bytes = std::fs::read(self.sidecar_path(path)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Write (or, with nothing to record, remove) the sidecar. Caller holds the key lock.
    fn write_sidecar(
        &self,
        path: &Path,
        etag: &str,
        attrs: &Attributes,
        tags: &str,
    ) -> OsResult<()> {
        let file = self.sidecar_path(path);
        if attrs.is_empty() && tags.is_empty() {
            return match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(e)),
                _ => Ok(()),
            };
        }
        let sidecar = Sidecar {
            etag: etag.to_string(),
            attributes: attributes_to_map(attrs),
            tags: tags.to_string(),
        };
        let dir = file.parent().expect("sidecar has a parent");
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let staged = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&staged, serde_json::to_vec(&sidecar).expect("serialisable"))
            .map_err(io_err)?;
        std::fs::rename(&staged, &file).map_err(io_err)
    }

    fn remove_sidecar(&self, path: &Path) {
        let _ = std::fs::remove_file(self.sidecar_path(path));
    }

    /// Attributes of the data whose ETag is `etag`, if the sidecar describes that data.
    fn attributes_for(&self, path: &Path, etag: Option<&str>) -> Option<Attributes> {
        let sidecar = self.read_sidecar(path)?;
        (Some(sidecar.etag.as_str()) == etag).then(|| map_to_attributes(&sidecar.attributes))
    }

    async fn current(&self, path: &Path) -> OsResult<Option<ObjectMeta>> {
        match self.inner.head(path).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn check_mode(&self, path: &Path, mode: &PutMode) -> OsResult<()> {
        match mode {
            PutMode::Overwrite => Ok(()),
            PutMode::Create => match self.current(path).await? {
                Some(_) => Err(object_store::Error::AlreadyExists {
                    path: path.to_string(),
                    source: "object exists (create-if-absent)".into(),
                }),
                None => Ok(()),
            },
            PutMode::Update(v) => {
                let current = self.current(path).await?;
                let ok = match (&current, &v.e_tag) {
                    (Some(meta), Some(want)) => {
                        meta.e_tag.as_deref().is_some_and(|e| etag_eq(e, want))
                    }
                    _ => false,
                };
                if ok {
                    Ok(())
                } else {
                    Err(object_store::Error::Precondition {
                        path: path.to_string(),
                        source: format!(
                            "expected ETag {:?}, found {:?}",
                            v.e_tag,
                            current.and_then(|m| m.e_tag)
                        )
                        .into(),
                    })
                }
            }
        }
    }
}

#[async_trait]
impl ConditionalDelete for LocalStore {
    async fn delete_if_match(&self, path: &Path, etag: &str) -> OsResult<()> {
        if is_reserved(path) {
            return Err(reserved_err(path));
        }
        let _g = self.lock(&[path]).await?;
        match self.current(path).await? {
            None => Err(object_store::Error::NotFound {
                path: path.to_string(),
                source: "object not found".into(),
            }),
            Some(meta) if meta.e_tag.as_deref().is_some_and(|e| etag_eq(e, etag)) => {
                self.inner.delete(path).await?;
                self.remove_sidecar(path);
                Ok(())
            }
            Some(meta) => Err(object_store::Error::Precondition {
                path: path.to_string(),
                source: format!("expected ETag {etag}, found {:?}", meta.e_tag).into(),
            }),
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> OsResult<PutResult> {
        if is_reserved(location) {
            return Err(reserved_err(location));
        }
        let _g = self.lock(&[location]).await?;
        self.check_mode(location, &opts.mode).await?;
        let result = self.inner.put(location, payload).await?;
        self.write_sidecar(
            location,
            result.e_tag.as_deref().unwrap_or_default(),
            &opts.attributes,
            opts.tags.encoded(),
        )?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        if is_reserved(location) {
            return Err(reserved_err(location));
        }
        let upload = self.inner.put_multipart(location).await?;
        Ok(Box::new(LocalUpload {
            upload,
            store: self.clone(),
            location: location.clone(),
            attributes: opts.attributes,
            tags: opts.tags.encoded().to_string(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        if is_reserved(location) {
            return Err(reserved_err(location));
        }
        let mut result = self.inner.get_opts(location, options).await?;
        let etag = result.meta.e_tag.clone();
        let attrs = match self.read_sidecar(location) {
            // No sidecar (one failed open): an object without attributes, the common case.
            None => None,
            Some(s) if Some(s.etag.as_str()) == etag.as_deref() => {
                Some(map_to_attributes(&s.attributes))
            }
            // A writer may sit between renaming the data and its sidecar: wait for it.
            Some(_) => {
                let _g = self.lock(&[location]).await?;
                self.attributes_for(location, etag.as_deref())
            }
        };
        result.attributes = attrs.unwrap_or_default();
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        if is_reserved(location) {
            return Err(reserved_err(location));
        }
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        let store = self.clone();
        locations
            .map(move |loc| {
                let store = store.clone();
                async move {
                    let loc = loc?;
                    if is_reserved(&loc) {
                        return Err(reserved_err(&loc));
                    }
                    let _g = store.lock(&[&loc]).await?;
                    match store.inner.delete(&loc).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    store.remove_sidecar(&loc);
                    Ok(loc)
                }
            })
            .buffered(8)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.inner
            .list(prefix)
            .filter(|r| futures::future::ready(!matches!(r, Ok(m) if is_reserved(&m.location))))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        self.inner
            .list_with_offset(prefix, offset)
            .filter(|r| futures::future::ready(!matches!(r, Ok(m) if is_reserved(&m.location))))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result.common_prefixes.retain(|p| !is_reserved(p));
        result.objects.retain(|m| !is_reserved(&m.location));
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> OsResult<()> {
        if is_reserved(from) || is_reserved(to) {
            return Err(reserved_err(if is_reserved(from) { from } else { to }));
        }
        let _g = self.lock(&[from, to]).await?;
        if options.mode == CopyMode::Create {
            self.check_mode(to, &PutMode::Create).await?;
        }
        let source_meta = self.inner.head(from).await?;
        let attrs = self.attributes_for(from, source_meta.e_tag.as_deref());
        let tags = self.read_sidecar(from).map(|s| s.tags).unwrap_or_default();
        self.inner.copy(from, to).await?;
        let new = self.inner.head(to).await?;
        self.write_sidecar(
            to,
            new.e_tag.as_deref().unwrap_or_default(),
            &attrs.unwrap_or_default(),
            &tags,
        )
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> OsResult<()> {
        if is_reserved(from) || is_reserved(to) {
            return Err(reserved_err(if is_reserved(from) { from } else { to }));
        }
        let _g = self.lock(&[from, to]).await?;
        if options.target_mode == RenameTargetMode::Create {
            self.check_mode(to, &PutMode::Create).await?;
        }
        let source_meta = self.inner.head(from).await?;
        let attrs = self.attributes_for(from, source_meta.e_tag.as_deref());
        let tags = self.read_sidecar(from).map(|s| s.tags).unwrap_or_default();
        self.inner.rename(from, to).await?;
        self.remove_sidecar(from);
        let new = self.inner.head(to).await?;
        self.write_sidecar(
            to,
            new.e_tag.as_deref().unwrap_or_default(),
            &attrs.unwrap_or_default(),
            &tags,
        )
    }
}

/// A multipart upload whose completion takes the key lock and records attributes.
struct LocalUpload {
    upload: Box<dyn MultipartUpload>,
    store: LocalStore,
    location: Path,
    attributes: Attributes,
    tags: String,
}

impl fmt::Debug for LocalUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalUpload({})", self.location)
    }
}

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        let _g = self.store.lock(&[&self.location]).await?;
        let result = self.upload.complete().await?;
        self.store.write_sidecar(
            &self.location,
            result.e_tag.as_deref().unwrap_or_default(),
            &self.attributes,
            &self.tags,
        )?;
        Ok(result)
    }

    async fn abort(&mut self) -> OsResult<()> {
        self.upload.abort().await
    }
}
