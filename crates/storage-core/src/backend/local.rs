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
//! - **ETags are the MD5 of the content**, as S3 gives for single-part uploads, so a local
//!   copy and an S3 copy of the same bytes compare equal, and no filesystem timestamp
//!   resolution can make two different contents share an ETag (on a filesystem with
//!   one-second timestamps, `LocalFileSystem`'s `inode-mtime-size` can).
//! - **A sidecar** `ROOT/.strata-sys/meta/KEY.json` holds that ETag, the attributes and
//!   tags, and the `inode-mtime-size` of the data file it describes. Every write replaces the
//!   data, then the sidecar, under the key lock; a reader that finds the sidecar missing or
//!   describing other data reads both again under the lock, so it never returns data with
//!   another version's ETag or metadata. Files put into the folder by other programs (no
//!   sidecar) read with `LocalFileSystem`'s ETag and no attributes.
//! - **Atomic delete-if-match**, under the same lock.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use md5::{Digest, Md5};
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
    /// The ETag clients see: `"<md5 hex>"`.
    etag: String,
    /// `LocalFileSystem`'s ETag of the data file this sidecar describes.
    fs_etag: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    tags: String,
}

/// Bodies from this size up are hashed in parallel with the write.
const PARALLEL_HASH_BYTES: usize = 256 * 1024;

fn etag_of(md5: Md5) -> String {
    format!("\"{}\"", hex::encode(md5.finalize()))
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
/// // The ETag is the MD5 of the content, as on S3.
/// assert_eq!(first.e_tag.as_deref(), Some("\"c4ca4238a0b923820dcc509a6f75849b\""));
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

fn check_not_reserved(paths: &[&Path]) -> OsResult<()> {
    match paths.iter().find(|p| is_reserved(p)) {
        Some(p) => Err(reserved_err(p)),
        None => Ok(()),
    }
}

fn not_found(path: &Path) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.to_string(),
        source: "object not found".into(),
    }
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

    /// The sidecar, if it describes the data whose `LocalFileSystem` ETag is `fs_etag`.
    fn sidecar_for(&self, path: &Path, fs_etag: Option<&str>) -> Option<Sidecar> {
        self.read_sidecar(path)
            .filter(|s| Some(s.fs_etag.as_str()) == fs_etag)
    }

    /// `meta` with the content ETag its sidecar records (for listings and heads).
    fn visible(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if let Some(s) = self.sidecar_for(&meta.location, meta.e_tag.as_deref()) {
            meta.e_tag = Some(s.etag);
        }
        meta
    }

    /// Write the sidecar of the data just written. Caller holds the key lock.
    fn write_sidecar(&self, path: &Path, sidecar: &Sidecar) -> OsResult<()> {
        let file = self.sidecar_path(path);
        let dir = file.parent().expect("sidecar has a parent");
        std::fs::create_dir_all(dir).map_err(io_err)?;
        let staged = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&staged, serde_json::to_vec(sidecar).expect("serialisable"))
            .map_err(io_err)?;
        std::fs::rename(&staged, &file).map_err(io_err)
    }

    fn remove_sidecar(&self, path: &Path) {
        let _ = std::fs::remove_file(self.sidecar_path(path));
    }

    /// The object's metadata with its content ETag. Caller holds the key lock.
    async fn current(&self, path: &Path) -> OsResult<Option<ObjectMeta>> {
        match self.inner.head(path).await {
            Ok(m) => Ok(Some(self.visible(m))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Check a write's precondition. Caller holds the key lock.
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

    /// Copy (or move) `from` to `to` with its sidecar. Caller holds both keys' locks.
    async fn transfer(
        &self,
        from: &Path,
        to: &Path,
        create_only: bool,
        remove_source: bool,
    ) -> OsResult<()> {
        let Some(source) = self.current(from).await? else {
            return Err(not_found(from));
        };
        if create_only {
            self.check_mode(to, &PutMode::Create).await?;
        }
        let old = self.read_sidecar(from);
        if remove_source {
            self.inner.rename(from, to).await?;
            self.remove_sidecar(from);
        } else {
            self.inner.copy(from, to).await?;
        }
        let written = self.inner.head(to).await?;
        let sidecar = match old.filter(|s| Some(&s.etag) == source.e_tag.as_ref()) {
            Some(s) => Sidecar {
                fs_etag: written.e_tag.unwrap_or_default(),
                ..s
            },
            // The source had no sidecar (written by another program): hash it now.
            None => {
                let bytes = self.inner.get(to).await?.bytes().await?;
                let mut md5 = Md5::new();
                md5.update(&bytes);
                Sidecar {
                    etag: etag_of(md5),
                    fs_etag: written.e_tag.unwrap_or_default(),
                    ..Default::default()
                }
            }
        };
        self.write_sidecar(to, &sidecar)
    }
}

#[async_trait]
impl ConditionalDelete for LocalStore {
    async fn delete_if_match(&self, path: &Path, etag: &str) -> OsResult<()> {
        check_not_reserved(&[path])?;
        let _g = self.lock(&[path]).await?;
        match self.current(path).await? {
            None => Err(not_found(path)),
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
        check_not_reserved(&[location])?;
        fn md5_of(payload: &PutPayload) -> String {
            let mut md5 = Md5::new();
            for chunk in payload {
                md5.update(chunk);
            }
            etag_of(md5)
        }
        // Large bodies are hashed on another thread while the file is written (the payload
        // is shared, not copied); small ones inline, where a thread hop would cost more.
        let hash: std::result::Result<String, tokio::task::JoinHandle<String>> =
            if payload.content_length() >= PARALLEL_HASH_BYTES {
                let p = payload.clone();
                Err(tokio::task::spawn_blocking(move || md5_of(&p)))
            } else {
                Ok(md5_of(&payload))
            };
        let _g = self.lock(&[location]).await?;
        self.check_mode(location, &opts.mode).await?;
        let written = self.inner.put(location, payload).await?;
        let etag = match hash {
            Ok(etag) => etag,
            Err(task) => task.await.map_err(|e| io_err(std::io::Error::other(e)))?,
        };
        self.write_sidecar(
            location,
            &Sidecar {
                etag: etag.clone(),
                fs_etag: written.e_tag.unwrap_or_default(),
                attributes: attributes_to_map(&opts.attributes),
                tags: opts.tags.encoded().to_string(),
            },
        )?;
        Ok(PutResult {
            e_tag: Some(etag),
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        check_not_reserved(&[location])?;
        let upload = self.inner.put_multipart(location).await?;
        Ok(Box::new(LocalUpload {
            upload,
            md5: Md5::new(),
            store: self.clone(),
            location: location.clone(),
            attributes: opts.attributes,
            tags: opts.tags.encoded().to_string(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        check_not_reserved(&[location])?;
        // ETag preconditions are about the content ETag, which `LocalFileSystem` does not
        // know: they are checked here, after reading.
        let mut options = options;
        let conditions = GetOptions {
            if_match: options.if_match.take(),
            if_none_match: options.if_none_match.take(),
            ..Default::default()
        };
        let mut result = self.inner.get_opts(location, options.clone()).await?;
        let sidecar = match self.sidecar_for(location, result.meta.e_tag.as_deref()) {
            Some(s) => Some(s),
            None => {
                // No sidecar for this data: a writer may be between renaming the data and
                // its sidecar. Read both again while holding the key lock.
                let _g = self.lock(&[location]).await?;
                result = self.inner.get_opts(location, options).await?;
                self.sidecar_for(location, result.meta.e_tag.as_deref())
            }
        };
        if let Some(s) = sidecar {
            result.meta.e_tag = Some(s.etag);
            result.attributes = map_to_attributes(&s.attributes);
        }
        conditions.check_preconditions(&result.meta)?;
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        check_not_reserved(&[location])?;
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
                    check_not_reserved(&[&loc])?;
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
        let store = self.clone();
        self.inner
            .list(prefix)
            .filter(|r| futures::future::ready(!matches!(r, Ok(m) if is_reserved(&m.location))))
            .map(move |r| r.map(|m| store.visible(m)))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        let store = self.clone();
        self.inner
            .list_with_offset(prefix, offset)
            .filter(|r| futures::future::ready(!matches!(r, Ok(m) if is_reserved(&m.location))))
            .map(move |r| r.map(|m| store.visible(m)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result.common_prefixes.retain(|p| !is_reserved(p));
        result.objects.retain(|m| !is_reserved(&m.location));
        result.objects = result
            .objects
            .into_iter()
            .map(|m| self.visible(m))
            .collect();
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> OsResult<()> {
        check_not_reserved(&[from, to])?;
        let _g = self.lock(&[from, to]).await?;
        self.transfer(from, to, options.mode == CopyMode::Create, false)
            .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> OsResult<()> {
        check_not_reserved(&[from, to])?;
        let _g = self.lock(&[from, to]).await?;
        self.transfer(
            from,
            to,
            options.target_mode == RenameTargetMode::Create,
            true,
        )
        .await
    }
}

/// A multipart upload that hashes its parts and, on completion, takes the key lock and
/// writes the sidecar.
struct LocalUpload {
    upload: Box<dyn MultipartUpload>,
    md5: Md5,
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
        // Parts are handed over in order, so hashing here hashes the object.
        for chunk in &data {
            self.md5.update(chunk);
        }
        self.upload.put_part(data)
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        let etag = etag_of(std::mem::take(&mut self.md5));
        let _g = self.store.lock(&[&self.location]).await?;
        let written = self.upload.complete().await?;
        self.store.write_sidecar(
            &self.location,
            &Sidecar {
                etag: etag.clone(),
                fs_etag: written.e_tag.unwrap_or_default(),
                attributes: attributes_to_map(&self.attributes),
                tags: self.tags.clone(),
            },
        )?;
        Ok(PutResult {
            e_tag: Some(etag),
            version: None,
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> OsResult<()> {
        self.upload.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_never_see_data_without_its_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let mut attrs = Attributes::new();
        attrs.insert(object_store::Attribute::ContentType, "text/plain".into());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (s, a) = (store.clone(), attrs.clone());
            tasks.push(tokio::spawn(async move {
                let p = Path::from(format!("k{i}"));
                let opts = PutOptions {
                    attributes: a,
                    ..Default::default()
                };
                s.put_opts(&p, format!("v{i}").into(), opts).await.unwrap();
            }));
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let p = Path::from(format!("k{i}"));
                if let Ok(r) = s.get(&p).await {
                    assert_eq!(
                        r.attributes
                            .get(&object_store::Attribute::ContentType)
                            .map(|v| v.as_ref()),
                        Some("text/plain"),
                        "a reader saw k{i} without its content type"
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }

    #[tokio::test]
    async fn etag_is_content_md5_in_put_get_head_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let p = Path::from("a/b.txt");
        let put = store.put(&p, "hello".into()).await.unwrap();
        let md5 = "\"5d41402abc4b2a76b9719d911017c592\"";
        assert_eq!(put.e_tag.as_deref(), Some(md5));
        assert_eq!(store.head(&p).await.unwrap().e_tag.as_deref(), Some(md5));
        assert_eq!(
            store.get(&p).await.unwrap().meta.e_tag.as_deref(),
            Some(md5)
        );
        let listed: Vec<ObjectMeta> = store.list(None).map(|r| r.unwrap()).collect().await;
        assert_eq!(listed[0].e_tag.as_deref(), Some(md5));
        // Conditional reads compare the content ETag.
        let not_modified = store
            .get_opts(&p, GetOptions::default().with_if_none_match(Some(md5)))
            .await
            .unwrap_err();
        assert!(matches!(
            not_modified,
            object_store::Error::NotModified { .. }
        ));
        // Multipart uploads hash their parts.
        let mut up = store.put_multipart(&Path::from("mp")).await.unwrap();
        up.put_part("hel".into()).await.unwrap();
        up.put_part("lo".into()).await.unwrap();
        assert_eq!(up.complete().await.unwrap().e_tag.as_deref(), Some(md5));
        // A copy keeps the ETag (same content) and the metadata.
        store.copy(&p, &Path::from("c")).await.unwrap();
        assert_eq!(
            store.head(&Path::from("c")).await.unwrap().e_tag.as_deref(),
            Some(md5)
        );
    }

    #[tokio::test]
    async fn large_bodies_hashed_in_parallel_get_the_same_etag() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let body: Vec<u8> = (0..PARALLEL_HASH_BYTES * 2)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut md5 = Md5::new();
        md5.update(&body);
        let want = etag_of(md5);
        let put = store.put(&Path::from("big"), body.into()).await.unwrap();
        assert_eq!(put.e_tag, Some(want.clone()));
        assert_eq!(
            store.head(&Path::from("big")).await.unwrap().e_tag,
            Some(want)
        );
    }

    #[tokio::test]
    async fn copy_of_a_missing_source_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        store.put(&Path::from("dst"), "x".into()).await.unwrap();
        let e = store
            .copy_if_not_exists(&Path::from("missing"), &Path::from("dst"))
            .await
            .unwrap_err();
        assert!(matches!(e, object_store::Error::NotFound { .. }), "{e}");
    }

    #[tokio::test]
    async fn files_from_other_programs_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        std::fs::write(dir.path().join("external.txt"), "by hand").unwrap();
        let r = store.get(&Path::from("external.txt")).await.unwrap();
        assert!(r.meta.e_tag.is_some());
        assert_eq!(r.bytes().await.unwrap(), "by hand");
        // Copying it gives the copy a content ETag.
        store
            .copy(&Path::from("external.txt"), &Path::from("copy.txt"))
            .await
            .unwrap();
        let mut md5 = Md5::new();
        md5.update(b"by hand");
        let h = store.head(&Path::from("copy.txt")).await.unwrap();
        assert_eq!(h.e_tag, Some(etag_of(md5)));
    }
}
