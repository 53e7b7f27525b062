//! The local-folder backend: plain files, plus what `object_store`'s `LocalFileSystem` lacks.
//!
//! `LocalFileSystem` stores plain files (good: users can look at them), but answers
//! `PutMode::Update` and any attribute (content type, user metadata) with NotImplemented.
//! Documents, manifests and TTLs need both, so [`LocalStore`] adds them:
//!
//! - **Metadata travels with the data.** Attributes and tags are kept in an extended
//!   attribute (`user.strata.meta`) of the data file itself. A write stages the body in
//!   the store's own folder under `ROOT/.strata-sys/staging/`, sets the attribute on the
//!   staged file and renames it into place, so data and metadata appear together in one
//!   atomic rename, and a reader that opened a file reads the metadata of exactly that file
//!   (no lock, no second file). A writer killed mid-write leaves its staged file there,
//!   where the next open finds and removes it (see [`durable`]).
//! - **Durable writes** ([`Durability`]): by default the staged file is fsynced before the
//!   rename and the folder after it (deletes, copies, moves and multipart completion too).
//! - **ETags are unique to each write.** Every write stages a new file, so a new inode.
//!   - Where the filesystem reports inode generations (ext4, xfs, btrfs on Linux), a write
//!     without attributes or tags writes no attribute at all: its ETag is
//!     `"inode-generation-mtime-size"`. The generation is drawn anew whenever an inode
//!     number is reused, which `LocalFileSystem`'s `inode-mtime-size` lacks: on a
//!     filesystem with coarse timestamps that repeats as soon as a freed inode comes back
//!     within the same tick with a body of the same size, and a stale compare-and-swap
//!     would then succeed. Skipping the attribute matters on ext4 with 128-byte inodes,
//!     where any attribute costs a 4 KiB block of its own.
//!   - Elsewhere, and for writes with attributes, the attribute also records an ETag made
//!     for that write (`"<process id>-<counter>"`, random per process).
//!
//!   Neither is a content hash (hashing a body costs more than writing it: MD5 runs at
//!   about 0.7 GB/s), and like S3's multipart ETags both have a dash, so nothing mistakes
//!   them for an MD5. A copy keeps its source's ETag (same content); a move keeps the file,
//!   and with it the ETag.
//! - **Compare-and-swap across processes.** The check and the rename of every write run
//!   under a per-key lock (an in-process mutex and an OS file lock under
//!   `ROOT/.strata-sys/locks/`), so several `strata` processes may share one folder.
//!   Conditional writes also check before staging, so a stale write fails without writing.
//! - **Atomic delete-if-match**, under the same lock.
//! - **Listings read ETags cheaply** (see [`walk`]): one walk opens each file by its bare
//!   name relative to its open folder, on the blocking pool, rather than resolving paths
//!   again after `LocalFileSystem`'s own walk.
//! - **Small reads take one trip to the blocking pool.** A body up to 64 KiB is read from
//!   the descriptor that was just opened, in the same trip, and handed back as one chunk;
//!   `LocalFileSystem` hands back the open file, read in a second trip (4 KiB gets ran at
//!   0.86-0.95x of its speed before, at 1.3-1.7x after in quick bench runs). Larger
//!   bodies stream from the file.
//!
//! Files put into the folder by other programs (no attribute) read like writes without
//! attributes: the inode ETag above, and no attributes.
//!
//! Every process sharing a folder should run this version on a mount that reports
//! generations. An older Strata, or a process that reaches the folder through NFS, SMB,
//! FUSE or overlayfs (no generations), computes `inode-mtime-size` for files without an
//! attribute: ETags it receives from this version never match there (its conditional
//! writes with them fail, safely), and its own ETags lose the generation's protection. An
//! older Strata also stages beside the key (`KEY#N`, hidden from listings). The folder must
//! be on a filesystem with user extended attributes (ext4, xfs, btrfs, zfs, tmpfs on Linux 6.6+, APFS);
//! [`LocalStore::new`] checks and says so otherwise.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, Metadata};
use std::io::{ErrorKind, Write};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    RenameOptions, RenameTargetMode, Result as OsResult, UploadPart,
};
use serde::{Deserialize, Serialize};

use self::durable::{Staging, SyncCounts, Syncer};
use super::locks::KeyLocks;
use super::{ConditionalDelete, etag_eq};
use crate::attrs::{attributes_to_map, map_to_attributes};
use crate::error::{Result, StorageError};
use crate::key::RESERVED_PREFIX;

mod durable;
#[cfg(unix)]
mod walk;

pub use durable::Durability;

const BACKEND: &str = "fs";

/// What a data file's extended attribute records.
#[derive(Serialize, Deserialize, Default, Clone)]
struct FileMeta {
    /// The ETag clients see (see [`new_etag`]).
    etag: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    tags: String,
}

/// A new ETag: this process's random id and a per-process counter, unique across the
/// processes sharing a folder (64 random bits per process).
fn new_etag() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(durable::random_id);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("\"{process:016x}-{n:x}\"")
}

/// The inode generation of an open file (`FS_IOC_GETVERSION`): a number the filesystem
/// draws anew each time it hands out an inode number, so inode and generation together
/// name one file for as long as the filesystem exists. `None` where the filesystem or the
/// platform does not report it (tmpfs, overlayfs, macOS).
mod inode_generation {
    use std::fs::File;

    #[cfg(target_os = "linux")]
    pub(super) fn of(file: &File) -> Option<u32> {
        #![allow(unsafe_code)]
        use std::ffi::{c_int, c_long};

        use rustix::ioctl::{Opcode, Updater, ioctl, opcode};
        // `_IOR('v', 1, long)`. ext4, xfs and btrfs store an `int` through the pointer; the
        // buffer is int-aligned and has room for a `long` in case a filesystem writes one.
        const FS_IOC_GETVERSION: Opcode = opcode::read::<c_long>(b'v', 1);
        const INTS: usize = std::mem::size_of::<c_long>() / std::mem::size_of::<c_int>();
        let mut buf: [c_int; INTS] = [0; INTS];
        // SAFETY: the request only writes (at most `size_of::<c_long>()` bytes) to the
        // buffer it is given, which is initialised, owned here and alive for the call; it
        // changes nothing in the file.
        let ioctl_result = unsafe { ioctl(file, Updater::<FS_IOC_GETVERSION, _>::new(&mut buf)) };
        ioctl_result.ok()?;
        Some(buf[0] as u32)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn of(_file: &File) -> Option<u32> {
        None
    }
}

/// Reading and writing the metadata attribute of an open file.
mod xattr {
    use std::fs::File;
    use std::io;

    #[cfg(unix)]
    const NAME: &str = "user.strata.meta";

    /// Set the attribute on `file`.
    #[cfg(unix)]
    pub(super) fn set(file: &File, value: &[u8]) -> io::Result<()> {
        rustix::fs::fsetxattr(file, NAME, value, rustix::fs::XattrFlags::empty())
            .map_err(io::Error::from)
    }

    /// The attribute of `file`, `None` if it has none.
    #[cfg(unix)]
    pub(super) fn get(file: &File) -> io::Result<Option<Vec<u8>>> {
        use rustix::io::Errno;
        // Room for a conditional write's attribute (its 2 KB write log) in one call: a
        // smaller buffer costs a size query and a second read on every open.
        let mut buf = [0u8; 4096];
        match rustix::fs::fgetxattr(file, NAME, &mut buf[..]) {
            Ok(n) => Ok(Some(buf[..n].to_vec())),
            Err(Errno::NODATA) => Ok(None),
            Err(Errno::RANGE) => {
                // Larger than the common case (much user metadata or many tags).
                let len = rustix::fs::fgetxattr_query(file, NAME)?;
                let mut big = vec![0u8; len];
                let n = rustix::fs::fgetxattr(file, NAME, &mut big[..])?;
                big.truncate(n);
                Ok(Some(big))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `e` says the value does not fit (over the kernel's 64 KiB, or the
    /// filesystem's own limit, about 4 KB on ext4).
    #[cfg(unix)]
    pub(super) fn too_large(e: &io::Error) -> bool {
        use rustix::io::Errno;
        matches!(Errno::from_io_error(e), Some(Errno::TOOBIG | Errno::NOSPC))
    }

    #[cfg(not(unix))]
    pub(super) fn too_large(_e: &io::Error) -> bool {
        false
    }

    #[cfg(not(unix))]
    pub(super) fn set(_file: &File, _value: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "extended attributes are only supported on Unix-like systems",
        ))
    }

    #[cfg(not(unix))]
    pub(super) fn get(_file: &File) -> io::Result<Option<Vec<u8>>> {
        Ok(None)
    }
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
/// // Every write gets a new ETag, even with the same content.
/// let again = store.put(&path, "1".into()).await?;
/// assert_ne!(first.e_tag, again.e_tag);
/// let first = again;
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
    /// Whether this folder's filesystem reports inode generations, so writes without
    /// attributes need no extended attribute (see the module docs).
    inode_etags: bool,
    sync: Arc<Syncer>,
    staging: Arc<Staging>,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .field("durability", &self.sync.durability())
            .finish()
    }
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalStore({})", self.root.display())
    }
}

/// `file://` and the folder's path, the same for every handle on one folder in this process
/// however it was reached: `root` is canonical (symlinks resolved), and a folder reached by
/// another path with the same device and inode (a bind mount, which canonicalizing keeps)
/// gets the path it was first opened by here. So `Bucket::is_same_object` sees one storage
/// and a copy or move onto itself is refused. (Another process keeps its own first path.)
fn folder_location(root: &FsPath) -> String {
    use std::os::unix::fs::MetadataExt;
    type Seen = std::sync::Mutex<std::collections::HashMap<(u64, u64), PathBuf>>;
    static SEEN: std::sync::OnceLock<Seen> = std::sync::OnceLock::new();
    let path = match std::fs::metadata(root) {
        Ok(m) => {
            let id = (m.dev(), m.ino());
            let mut seen = SEEN
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // A folder deleted since it was seen frees its inode for another one: only a
            // path that still names this very folder may stand for it.
            let still_there = |p: &PathBuf| {
                std::fs::metadata(p).is_ok_and(|other| (other.dev(), other.ino()) == id)
            };
            match seen.get(&id) {
                Some(first) if still_there(first) => first.clone(),
                _ => {
                    seen.insert(id, root.to_path_buf());
                    root.to_path_buf()
                }
            }
        }
        Err(_) => root.to_path_buf(),
    };
    format!("file://{}", path.display())
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

/// Keys deleted per trip to the blocking pool (and per folder sync).
const DELETE_BATCH: usize = 256;

/// Remove the file at `fs_path`: `true` if it was there.
fn unlink(fs_path: &FsPath) -> OsResult<bool> {
    match std::fs::remove_file(fs_path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(e)),
    }
}

fn not_found(path: &Path) -> object_store::Error {
    object_store::Error::NotFound {
        path: path.to_string(),
        source: "object not found".into(),
    }
}

/// The ETag of a file without our attribute: `inode-generation-mtime-size`, or
/// `LocalFileSystem`'s `inode-mtime-size` where there is no generation.
fn inode_etag(metadata: &Metadata, generation: Option<u32>) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0u64;
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    let size = metadata.len();
    match generation {
        Some(g) => format!("\"{inode:x}-{g:x}-{mtime:x}-{size:x}\""),
        None => format!("\"{inode:x}-{mtime:x}-{size:x}\""),
    }
}

/// What a data file's attribute says about it: all of it ([`FileMeta`]), or only its ETag
/// ([`EtagMeta`]).
trait Describes: serde::de::DeserializeOwned {
    fn etag(&self) -> &str;
}

impl Describes for FileMeta {
    fn etag(&self) -> &str {
        &self.etag
    }
}

/// The part of [`FileMeta`] a precondition check needs. Parsing only the ETag skips the
/// user metadata, where every conditional write keeps its 2 KB write log, and a conditional
/// put checks its precondition twice.
#[derive(Deserialize)]
struct EtagMeta {
    etag: String,
}

impl Describes for EtagMeta {
    fn etag(&self) -> &str {
        &self.etag
    }
}

/// An open data file with what describes it.
struct Opened<M = FileMeta> {
    file: File,
    metadata: Metadata,
    meta: Option<M>,
}

impl<M: Describes> Opened<M> {
    /// Open `fs_path`; `None` if there is no such file (or it is a folder).
    fn open(fs_path: &FsPath) -> std::io::Result<Option<Opened<M>>> {
        let file = match File::open(fs_path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let metadata = file.metadata()?;
        if metadata.is_dir() {
            return Ok(None);
        }
        Opened::from_file(file, metadata, fs_path).map(Some)
    }

    /// Read the attribute of the open data `file` (at `fs_path`, named in warnings).
    fn from_file(file: File, metadata: Metadata, fs_path: &FsPath) -> std::io::Result<Opened<M>> {
        let meta = match xattr::get(&file)? {
            Some(bytes) => match serde_json::from_slice(&bytes) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(file = %fs_path.display(), error = %e, "unreadable Strata metadata attribute; serving the file without it");
                    None
                }
            },
            None => None,
        };
        Ok(Opened {
            file,
            metadata,
            meta,
        })
    }

    fn etag(&self) -> String {
        match &self.meta {
            Some(m) => m.etag().to_string(),
            // Read only when asked: a create-if-absent check opens the file for nothing else.
            None => inode_etag(&self.metadata, inode_generation::of(&self.file)),
        }
    }

    /// The ETag of the file at `fs_path`, `None` if there is none.
    fn current_etag(fs_path: &FsPath) -> std::io::Result<Option<String>> {
        Ok(Opened::<M>::open(fs_path)?.map(|o| o.etag()))
    }

    fn object_meta(&self, location: Path) -> ObjectMeta {
        ObjectMeta {
            location,
            last_modified: self
                .metadata
                .modified()
                .map(DateTime::<Utc>::from)
                .unwrap_or_default(),
            size: self.metadata.len(),
            e_tag: Some(self.etag()),
            version: None,
        }
    }
}

/// Attach `meta` to the staged `file`, naming the size in the error when it does not fit.
fn set_meta(file: &File, meta: &FileMeta) -> OsResult<()> {
    let value = serde_json::to_vec(meta).expect("serialisable");
    xattr::set(file, &value).map_err(|e| {
        if xattr::too_large(&e) {
            StorageError::invalid_input(
                "metadata",
                format!(
                    "the object's metadata and tags take {} bytes, more than this filesystem's extended attributes hold (about 4 KB on ext4); store fewer or shorter values",
                    value.len()
                ),
            )
            .into_object_store()
        } else {
            io_err(e)
        }
    })
}

/// Check a write's precondition against the current file at `fs_path`.
fn check_mode(location: &Path, fs_path: &FsPath, mode: &PutMode) -> OsResult<()> {
    match mode {
        PutMode::Overwrite => Ok(()),
        PutMode::Create => match Opened::<EtagMeta>::open(fs_path).map_err(io_err)? {
            Some(_) => Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "object exists (create-if-absent)".into(),
            }),
            None => Ok(()),
        },
        PutMode::Update(v) => {
            let current = Opened::<EtagMeta>::current_etag(fs_path).map_err(io_err)?;
            let ok = match (&current, &v.e_tag) {
                (Some(have), Some(want)) => etag_eq(have, want),
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                Err(object_store::Error::Precondition {
                    path: location.to_string(),
                    source: super::etag_mismatch(v.e_tag.as_deref(), current.as_deref()).into(),
                })
            }
        }
    }
}

/// Bodies up to this size are read in the same trip to the blocking pool that opened the
/// file (see [`small_body`]).
const SMALL_BODY: u64 = 64 * 1024;

/// A small body read now, from the descriptor just opened: a `File` payload is read by
/// `GetResult::bytes` in a second trip to the blocking pool, which cost a 4 KiB get about
/// a tenth of its time. `None` for larger bodies (streamed from the file, memory bounded),
/// for HEAD requests, and where there is no positioned read.
fn small_body(
    file: &File,
    range: &Range<u64>,
    head: bool,
) -> Option<std::io::Result<GetResultPayload>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        let len = range.end - range.start;
        if head || len > SMALL_BODY {
            return None;
        }
        let mut buf = vec![0u8; len as usize];
        Some(file.read_exact_at(&mut buf, range.start).map(|()| {
            let body = Bytes::from(buf);
            GetResultPayload::Stream(futures::stream::once(async move { Ok(body) }).boxed())
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, range, head);
        None
    }
}

fn io_err_at(e: std::io::Error, fs_path: &FsPath) -> object_store::Error {
    io_err(std::io::Error::new(
        e.kind(),
        format!("reading {}: {e}", fs_path.display()),
    ))
}

/// Run blocking file work on tokio's blocking pool, as `LocalFileSystem` does.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> OsResult<T> + Send + 'static,
) -> OsResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io_err(std::io::Error::other(e)))?
}

/// What a committed file records.
enum Stamp {
    /// A new ETag, with these attributes and tags (puts, multipart uploads).
    New(FileMeta),
    /// This ETag, attributes and tags as they are (a copy keeps its source's).
    Copied(FileMeta),
}

impl LocalStore {
    /// Open (creating if needed) the folder `root`, with durable writes
    /// ([`Durability::Fsync`]; see [`with_durability`](Self::with_durability)).
    ///
    /// Removes what writers that are no longer running left staged (see
    /// [`remove_abandoned_staging`](Self::remove_abandoned_staging)).
    ///
    /// Fails with `InvalidConfig` when the folder cannot be created or its filesystem does
    /// not support user extended attributes, where attributes and tags (and, on filesystems
    /// without inode generations, ETags) are kept.
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
        let sys = root.join(RESERVED_PREFIX);
        let locks = KeyLocks::cross_process(sys.join("locks")).map_err(|e| {
            StorageError::invalid_config("root", format!("cannot create lock folder: {e}"))
        })?;
        let probe = sys.join("xattr-probe");
        let probe = File::create(&probe).and_then(|f| xattr::set(&f, b"{}").map(|()| f));
        let probe = probe.map_err(|e| {
                StorageError::invalid_config(
                    "root",
                    format!(
                        "the folder {} cannot keep extended attributes ({e}); the local-folder store keeps content types, user metadata and tags in them. Use a folder on ext4, xfs, btrfs, zfs, APFS or tmpfs (Linux 6.6+), or the memory backend",
                        root.display()
                    ),
                )
            })?;
        let staging_root = sys.join("staging");
        let staging_err = |e: std::io::Error| {
            StorageError::invalid_config(
                "root",
                format!(
                    "cannot prepare the staging folder {}: {e}",
                    staging_root.display()
                ),
            )
        };
        Staging::sweep(&staging_root).map_err(staging_err)?;
        let staging = Staging::claim(&staging_root).map_err(staging_err)?;
        Ok(LocalStore {
            inner: Arc::new(inner),
            root,
            locks: Arc::new(locks),
            inode_etags: inode_generation::of(&probe).is_some(),
            sync: Arc::new(Syncer::new(Durability::Fsync)),
            staging: Arc::new(staging),
        })
    }

    /// This store with writes made durable as `durability` says (the default,
    /// [`Durability::Fsync`], syncs every write; [`Durability::None`] is for scratch data).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.sync = Arc::new(Syncer::new(durability));
        self
    }

    /// How this store makes writes durable.
    pub fn durability(&self) -> Durability {
        self.sync.durability()
    }

    /// Remove the staged files of writers that are no longer running: a process killed in
    /// the middle of a put, copy or multipart upload leaves its staged file under
    /// `ROOT/.strata-sys/staging/`, never beside the objects and never listed. Opening a
    /// store does this already; a long-running process may call it from time to time.
    /// Stores still open, in this process or another, keep theirs. Returns the number of
    /// files removed.
    pub fn remove_abandoned_staging(&self) -> Result<u64> {
        Staging::sweep(&self.root.join(RESERVED_PREFIX).join("staging"))
            .map_err(|e| StorageError::from_object_store(BACKEND, io_err(e)))
    }

    /// A [`Bucket`](crate::Bucket) named `name` on this store.
    pub fn into_bucket(self, name: impl Into<String>) -> crate::Bucket {
        let location = folder_location(self.root());
        crate::Bucket::builder(name, Arc::new(self))
            .location(location)
            .provider(BACKEND)
            .build()
    }

    /// The folder this store writes to.
    pub fn root(&self) -> &FsPath {
        &self.root
    }

    /// fsync calls this store (and its clones) made so far.
    #[cfg_attr(not(test), allow(dead_code))]
    fn sync_counts(&self) -> SyncCounts {
        self.sync.counts()
    }

    fn fs_path(&self, location: &Path) -> OsResult<PathBuf> {
        self.inner.path_to_filesystem(location)
    }

    /// A walk listing `prefix` (everything under it, or one level of it).
    #[cfg(unix)]
    fn walk(
        &self,
        prefix: Option<&Path>,
        recursive: bool,
        offset: Option<&Path>,
    ) -> OsResult<walk::Walk> {
        let prefix = prefix.cloned().unwrap_or_default();
        let dir = if prefix.is_root() {
            self.root.clone()
        } else {
            self.fs_path(&prefix)?
        };
        if is_reserved(&prefix) {
            return Ok(walk::Walk::nothing(recursive));
        }
        walk::Walk::new(&dir, prefix, recursive, offset.cloned())
    }

    /// Remove `fs_path` (its key lock held) and sync its folder.
    fn remove_locked(&self, fs_path: &FsPath) -> OsResult<()> {
        match (unlink(fs_path)?, fs_path.parent()) {
            (true, Some(dir)) => self.sync.folder(dir).map_err(io_err),
            _ => Ok(()),
        }
    }

    /// Delete a batch of keys, each under its key lock, then sync each folder that lost a
    /// file once: a bulk delete costs one fsync per folder and batch, not one per key. A
    /// key's result is only `Ok` once its folder is synced.
    fn remove_batch(&self, batch: Vec<OsResult<Path>>) -> Vec<OsResult<Path>> {
        // First every unlink, then (below) each folder that lost a file synced once.
        let removed: Vec<OsResult<(Path, Option<PathBuf>)>> = batch
            .into_iter()
            .map(|loc| {
                let loc = loc?;
                check_not_reserved(&[&loc])?;
                let fs_path = self.fs_path(&loc)?;
                let _g = self.locks.lock(&[loc.as_ref()]).map_err(io_err)?;
                let folder = match unlink(&fs_path)? {
                    true => fs_path.parent().map(FsPath::to_path_buf),
                    false => None,
                };
                Ok((loc, folder))
            })
            .collect();
        let mut synced: BTreeMap<PathBuf, std::result::Result<(), String>> = BTreeMap::new();
        removed
            .into_iter()
            .map(|r| {
                let (loc, folder) = r?;
                let Some(folder) = folder else {
                    return Ok(loc);
                };
                let outcome = synced
                    .entry(folder)
                    .or_insert_with_key(|f| self.sync.folder(f).map_err(|e| e.to_string()));
                match outcome {
                    Ok(()) => Ok(loc),
                    Err(e) => Err(io_err(std::io::Error::other(format!(
                        "`{loc}` was deleted, but syncing its folder failed: {e}"
                    )))),
                }
            })
            .collect()
    }

    /// Copy (or move) `from` to `to` with its metadata.
    async fn transfer(
        &self,
        from: &Path,
        to: &Path,
        create_only: bool,
        remove_source: bool,
    ) -> OsResult<()> {
        let (src, dst) = (self.fs_path(from)?, self.fs_path(to)?);
        let (from, to) = (from.clone(), to.clone());
        let store = self.clone();
        blocking(move || {
            let to_mode = if create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            if remove_source {
                // A rename keeps the inode, so the metadata moves with the data.
                let _g = store
                    .locks
                    .lock(&[from.as_ref(), to.as_ref()])
                    .map_err(io_err)?;
                // Only existence matters here: no need to open the file and read its metadata.
                match std::fs::metadata(&src) {
                    Ok(m) if !m.is_dir() => {}
                    Ok(_) => return Err(not_found(&from)),
                    Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found(&from)),
                    Err(e) => return Err(io_err(e)),
                }
                check_mode(&to, &dst, &to_mode)?;
                // The new entry is made durable before the old one's removal is, so a crash
                // leaves the object in one place or both, never in neither.
                store.sync.publish(&src, &dst).map_err(io_err)?;
                return match src.parent() {
                    Some(dir) if Some(dir) != dst.parent() => {
                        store.sync.folder(dir).map_err(io_err)
                    }
                    _ => Ok(()),
                };
            }
            // A copy is staged from one open descriptor (a consistent snapshot of the
            // source), given the source's metadata, and renamed into place.
            let Some(mut source) = Opened::open(&src).map_err(io_err)? else {
                return Err(not_found(&from));
            };
            check_mode(&to, &dst, &to_mode)?;
            let (mut staged_file, staged) = store.staging.file().map_err(io_err)?;
            let copied = std::io::copy(&mut source.file, &mut staged_file).map_err(io_err);
            if let Err(e) = copied {
                let _ = std::fs::remove_file(&staged);
                return Err(e);
            }
            // A source without an attribute has an inode ETag, which the copy's own inode
            // would not reproduce: the copy records it.
            let meta = match source.meta.take() {
                Some(meta) => meta,
                None => FileMeta {
                    etag: source.etag(),
                    ..Default::default()
                },
            };
            store
                .commit(
                    (&to, &dst),
                    (staged_file, staged),
                    Stamp::Copied(meta),
                    &to_mode,
                )
                .map(drop)
        })
        .await
    }

    /// Give the written `staged` file its ETag and metadata, make it durable, then (under
    /// the key lock and after checking `mode`) rename it into place and make that durable;
    /// returns the ETag. The staged file is removed on failure. Used by puts, copies and
    /// multipart completion, which pass the key with the file path it was resolved to.
    fn commit(
        &self,
        (location, dest): (&Path, &FsPath),
        staged: (File, PathBuf),
        meta: Stamp,
        mode: &PutMode,
    ) -> OsResult<String> {
        let (file, staged) = staged;
        let outcome = (|| {
            let etag = match meta {
                Stamp::Copied(meta) => {
                    set_meta(&file, &meta)?;
                    meta.etag
                }
                Stamp::New(mut meta) => {
                    let plain = meta.attributes.is_empty() && meta.tags.is_empty();
                    // A rename keeps the inode and its mtime, so the staged file's ETag is
                    // the ETag readers will see.
                    let generation = match plain && self.inode_etags {
                        true => inode_generation::of(&file),
                        false => None,
                    };
                    match generation {
                        Some(g) => inode_etag(&file.metadata().map_err(io_err)?, Some(g)),
                        None => {
                            meta.etag = new_etag();
                            set_meta(&file, &meta)?;
                            meta.etag
                        }
                    }
                }
            };
            self.sync.file(&file).map_err(io_err)?;
            drop(file);
            let _g = self.locks.lock(&[location.as_ref()]).map_err(io_err)?;
            check_mode(location, dest, mode)?;
            self.sync.publish(&staged, dest).map_err(io_err)?;
            Ok(etag)
        })();
        if outcome.is_err() {
            let _ = std::fs::remove_file(&staged);
        }
        outcome
    }
}

/// Where there is no walk of our own: `LocalFileSystem`'s listing, each file then opened
/// for its ETag.
#[cfg(not(unix))]
impl LocalStore {
    fn list_by_inner(
        &self,
        list: BoxStream<'static, OsResult<ObjectMeta>>,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        let store = self.clone();
        list.filter(|r| futures::future::ready(!matches!(r, Ok(m) if is_reserved(&m.location))))
            .map(move |r| r.map(|m| store.visible(m)))
            .boxed()
    }

    /// `meta` as the file now at its location describes itself.
    fn visible(&self, meta: ObjectMeta) -> ObjectMeta {
        let Ok(fs_path) = self.fs_path(&meta.location) else {
            return meta;
        };
        match Opened::open(&fs_path) {
            Ok(Some(opened)) => opened.object_meta(meta.location),
            _ => meta,
        }
    }
}

#[async_trait]
impl ConditionalDelete for LocalStore {
    async fn delete_if_match(&self, path: &Path, etag: &str) -> OsResult<()> {
        check_not_reserved(&[path])?;
        let fs_path = self.fs_path(path)?;
        let (store, path, etag) = (self.clone(), path.clone(), etag.to_string());
        blocking(move || {
            let _g = store.locks.lock(&[path.as_ref()]).map_err(io_err)?;
            match Opened::<EtagMeta>::current_etag(&fs_path).map_err(io_err)? {
                None => Err(not_found(&path)),
                Some(current) if etag_eq(&current, &etag) => store.remove_locked(&fs_path),
                Some(current) => Err(object_store::Error::Precondition {
                    path: path.to_string(),
                    source: super::etag_mismatch(Some(&etag), Some(&current)).into(),
                }),
            }
        })
        .await
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
        let dest = self.fs_path(location)?;
        let (store, location) = (self.clone(), location.clone());
        blocking(move || {
            // A stale conditional write fails here, before writing anything.
            check_mode(&location, &dest, &opts.mode)?;
            let (mut file, staged) = store.staging.file().map_err(io_err)?;
            if let Err(e) = payload.iter().try_for_each(|c| file.write_all(c)) {
                let _ = std::fs::remove_file(&staged);
                return Err(io_err(e));
            }
            let meta = FileMeta {
                etag: String::new(),
                attributes: attributes_to_map(&opts.attributes),
                tags: opts.tags.encoded().to_string(),
            };
            let etag = store.commit(
                (&location, &dest),
                (file, staged),
                Stamp::New(meta),
                &opts.mode,
            )?;
            Ok(PutResult {
                e_tag: Some(etag),
                version: None,
                extensions: Default::default(),
            })
        })
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        check_not_reserved(&[location])?;
        // Resolved now, so a bad key fails before any part is written.
        let dest = self.fs_path(location)?;
        let staging = self.staging.clone();
        let (file, staged) = blocking(move || staging.file().map_err(io_err)).await?;
        Ok(Box::new(LocalUpload {
            file: Some(Arc::new(file)),
            staged,
            offset: 0,
            store: self.clone(),
            location: location.clone(),
            dest,
            meta: FileMeta {
                etag: String::new(),
                attributes: attributes_to_map(&opts.attributes),
                tags: opts.tags.encoded().to_string(),
            },
            finished: false,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        check_not_reserved(&[location])?;
        let fs_path = self.fs_path(location)?;
        let location = location.clone();
        blocking(move || {
            let Some(opened) = Opened::<FileMeta>::open(&fs_path).map_err(io_err)? else {
                return Err(not_found(&location));
            };
            let meta = opened.object_meta(location);
            options.check_preconditions(&meta)?;
            let range = match &options.range {
                Some(r) => r
                    .as_range(meta.size)
                    .map_err(|e| object_store::Error::Generic {
                        store: "LocalStore",
                        source: Box::new(e),
                    })?,
                None => 0..meta.size,
            };
            let attributes = opened
                .meta
                .as_ref()
                .map(|m| map_to_attributes(&m.attributes))
                .unwrap_or_default();
            let payload = match small_body(&opened.file, &range, options.head) {
                Some(body) => body.map_err(|e| io_err_at(e, &fs_path))?,
                None => GetResultPayload::File(opened.file, fs_path),
            };
            Ok(GetResult {
                payload,
                meta,
                range,
                attributes,
                extensions: Default::default(),
            })
        })
        .await
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
            .ready_chunks(DELETE_BATCH)
            .map(move |batch| {
                let store = store.clone();
                async move {
                    let removed = blocking(move || Ok(store.remove_batch(batch))).await;
                    futures::stream::iter(removed.unwrap_or_else(|e| vec![Err(e)]))
                }
            })
            .buffered(2)
            .flatten()
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        #[cfg(unix)]
        return walk::stream(self.walk(prefix, true, None));
        #[cfg(not(unix))]
        return self.list_by_inner(self.inner.list(prefix));
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        #[cfg(unix)]
        return walk::stream(self.walk(prefix, true, Some(offset)));
        #[cfg(not(unix))]
        return self.list_by_inner(self.inner.list_with_offset(prefix, offset));
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
        #[cfg(unix)]
        {
            let walk = self.walk(prefix, false, None)?;
            blocking(move || {
                let (mut objects, mut common_prefixes) = (Vec::new(), Vec::new());
                for found in walk {
                    match found? {
                        walk::Found::Object(m) => objects.push(m),
                        walk::Found::Folder(p) => common_prefixes.push(p),
                    }
                }
                common_prefixes.sort_unstable();
                Ok(ListResult {
                    common_prefixes,
                    objects,
                    extensions: Default::default(),
                })
            })
            .await
        }
        #[cfg(not(unix))]
        {
            let mut result = self.inner.list_with_delimiter(prefix).await?;
            result.common_prefixes.retain(|p| !is_reserved(p));
            result.objects.retain(|m| !is_reserved(&m.location));
            let store = self.clone();
            result.objects = blocking(move || {
                Ok(result
                    .objects
                    .into_iter()
                    .map(|m| store.visible(m))
                    .collect())
            })
            .await?;
            Ok(result)
        }
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> OsResult<()> {
        check_not_reserved(&[from, to])?;
        self.transfer(from, to, options.mode == CopyMode::Create, false)
            .await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> OsResult<()> {
        check_not_reserved(&[from, to])?;
        self.transfer(
            from,
            to,
            options.target_mode == RenameTargetMode::Create,
            true,
        )
        .await
    }
}

/// A multipart upload into one staged file: parts are written at their offsets (several at
/// once), and the file is renamed into place with its metadata on completion.
struct LocalUpload {
    file: Option<Arc<File>>,
    staged: PathBuf,
    offset: u64,
    store: LocalStore,
    location: Path,
    dest: PathBuf,
    meta: FileMeta,
    finished: bool,
}

impl fmt::Debug for LocalUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalUpload({})", self.location)
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.staged);
        }
    }
}

fn upload_finished() -> object_store::Error {
    io_err(std::io::Error::other(
        "this multipart upload was already completed or aborted",
    ))
}

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let Some(file) = self.file.clone() else {
            return Box::pin(futures::future::ready(Err(upload_finished())));
        };
        let offset = self.offset;
        self.offset += data.content_length() as u64;
        Box::pin(blocking(move || {
            let mut at = offset;
            for chunk in &data {
                write_all_at(&file, chunk, at).map_err(io_err)?;
                at += chunk.len() as u64;
            }
            Ok(())
        }))
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        let Some(file) = self.file.take() else {
            return Err(upload_finished());
        };
        let file = Arc::try_unwrap(file).map_err(|_| {
            io_err(std::io::Error::other(
                "complete() was called while parts were still being written; await every part first",
            ))
        })?;
        let (store, location, dest, meta, staged) = (
            self.store.clone(),
            self.location.clone(),
            self.dest.clone(),
            self.meta.clone(),
            self.staged.clone(),
        );
        self.finished = true;
        let etag = blocking(move || {
            store.commit(
                (&location, &dest),
                (file, staged),
                Stamp::New(meta),
                &PutMode::Overwrite,
            )
        })
        .await?;
        Ok(PutResult {
            e_tag: Some(etag),
            version: None,
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> OsResult<()> {
        self.file = None;
        self.finished = true;
        match std::fs::remove_file(&self.staged) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{Attributes, ObjectStoreExt, UpdateVersion};
    use std::collections::HashSet;

    #[tokio::test]
    async fn small_bodies_are_read_at_open_and_large_ones_streamed_from_the_file() {
        use object_store::GetRange;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let small: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let large = vec![7u8; SMALL_BODY as usize + 1];
        store
            .put(&Path::from("small"), small.clone().into())
            .await
            .unwrap();
        store
            .put(&Path::from("large"), large.clone().into())
            .await
            .unwrap();

        let r = store.get(&Path::from("small")).await.unwrap();
        assert!(matches!(r.payload, GetResultPayload::Stream(_)));
        assert_eq!(r.bytes().await.unwrap(), small);
        let ranged = GetOptions::default().with_range(Some(GetRange::Bounded(100..300)));
        let r = store.get_opts(&Path::from("small"), ranged).await.unwrap();
        assert_eq!(r.range, 100..300);
        assert_eq!(r.bytes().await.unwrap(), small[100..300]);
        let suffix = GetOptions::default().with_range(Some(GetRange::Suffix(10)));
        let r = store.get_opts(&Path::from("large"), suffix).await.unwrap();
        assert!(matches!(r.payload, GetResultPayload::Stream(_)));
        assert_eq!(r.bytes().await.unwrap(), large[large.len() - 10..]);
        // A HEAD reads no body; a large body stays a file, read as it is consumed.
        let head = GetOptions {
            head: true,
            ..Default::default()
        };
        let r = store.get_opts(&Path::from("small"), head).await.unwrap();
        assert!(matches!(r.payload, GetResultPayload::File(..)));
        let r = store.get(&Path::from("large")).await.unwrap();
        assert!(matches!(r.payload, GetResultPayload::File(..)));
        assert_eq!(r.bytes().await.unwrap(), large);
    }

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
    async fn etags_are_unique_per_write_and_the_same_in_put_get_head_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let p = Path::from("a/b.txt");
        let first = store.put(&p, "hello".into()).await.unwrap().e_tag.unwrap();
        let etag = store.put(&p, "hello".into()).await.unwrap().e_tag.unwrap();
        assert_ne!(
            first, etag,
            "the same content written twice is two versions"
        );
        let bare = etag.trim_matches('"');
        assert!(
            bare.contains('-') && bare.len() != 32,
            "{etag} could be taken for an MD5"
        );
        assert_eq!(store.head(&p).await.unwrap().e_tag.as_ref(), Some(&etag));
        assert_eq!(
            store.get(&p).await.unwrap().meta.e_tag.as_ref(),
            Some(&etag)
        );
        let listed: Vec<ObjectMeta> = store.list(None).map(|r| r.unwrap()).collect().await;
        assert_eq!(listed.len(), 1, "staging files and bookkeeping stay hidden");
        assert_eq!(listed[0].e_tag.as_ref(), Some(&etag));
        let not_modified = store
            .get_opts(&p, GetOptions::default().with_if_none_match(Some(&etag)))
            .await
            .unwrap_err();
        assert!(matches!(
            not_modified,
            object_store::Error::NotModified { .. }
        ));
        let mut up = store.put_multipart(&Path::from("mp")).await.unwrap();
        up.put_part("hel".into()).await.unwrap();
        up.put_part("lo".into()).await.unwrap();
        let mp = up.complete().await.unwrap().e_tag;
        let got = store.get(&Path::from("mp")).await.unwrap();
        assert_eq!(got.meta.e_tag, mp);
        assert_eq!(got.bytes().await.unwrap(), "hello");
        // A copy keeps the ETag (same content).
        store.copy(&p, &Path::from("c")).await.unwrap();
        assert_eq!(
            store.head(&Path::from("c")).await.unwrap().e_tag.as_ref(),
            Some(&etag)
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn etags_stay_unique_when_inode_numbers_come_back() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        // Where the filesystem is known to report generations, they must be what is tested
        // (elsewhere, e.g. a tmpfs TMPDIR, the recorded ETags are).
        #[cfg(target_os = "linux")]
        {
            const EXT4: u64 = 0xEF53;
            const XFS: u64 = 0x5846_5342;
            const BTRFS: u64 = 0x9123_683E;
            #[allow(clippy::unnecessary_cast)]
            let kind = rustix::fs::statfs(dir.path()).unwrap().f_type as u64 & 0xffff_ffff;
            if [EXT4, XFS, BTRFS].contains(&kind) {
                assert!(
                    store.inode_etags,
                    "filesystem {kind:#x} reports generations"
                );
            } else {
                eprintln!("note: filesystem {kind:#x} has no generations; recorded ETags tested");
            }
        }
        let (p, file) = (Path::from("doc.json"), dir.path().join("doc.json"));
        // Every version gets the same size and the same mtime, as writes within one tick of
        // a coarse clock would: only the generation (or a recorded ETag) tells them apart.
        let tick = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1 << 30);
        let (mut etags, mut inodes) = (Vec::new(), HashSet::new());
        for i in 0..1500 {
            store.put(&p, format!("{:04}", i % 7).into()).await.unwrap();
            File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(tick)
                .unwrap();
            let etag = store.head(&p).await.unwrap().e_tag.unwrap();
            assert!(!etags.contains(&etag), "write {i} repeated {etag}");
            etags.push(etag);
            inodes.insert(std::fs::metadata(&file).unwrap().ino());
        }
        if inodes.len() == 1500 {
            eprintln!("note: this filesystem never reused an inode number here");
        }
        let stale = PutOptions::from(PutMode::Update(UpdateVersion {
            e_tag: Some(etags[0].clone()),
            version: None,
        }));
        let e = store.put_opts(&p, "late".into(), stale).await.unwrap_err();
        assert!(matches!(e, object_store::Error::Precondition { .. }), "{e}");
        // Where generations are reported, a write without attributes writes no attribute.
        let attr = xattr::get(&File::open(&file).unwrap()).unwrap();
        assert_eq!(attr.is_none(), store.inode_etags);
        // A move keeps the inode, so the ETag; a copy records its source's ETag.
        let current = store.head(&p).await.unwrap().e_tag;
        store.rename(&p, &Path::from("moved.json")).await.unwrap();
        store.copy(&Path::from("moved.json"), &p).await.unwrap();
        assert_eq!(
            store.head(&Path::from("moved.json")).await.unwrap().e_tag,
            current
        );
        assert_eq!(store.head(&p).await.unwrap().e_tag, current);
    }

    #[tokio::test]
    async fn every_write_syncs_its_file_and_folders_and_none_syncs_nothing() {
        for durability in [Durability::Fsync, Durability::None] {
            let dir = tempfile::tempdir().unwrap();
            let store = LocalStore::new(dir.path())
                .unwrap()
                .with_durability(durability);
            assert_eq!(store.durability(), durability);
            let on = u64::from(durability == Durability::Fsync);
            let mut last = store.sync_counts();
            let mut step = |what: &str, files: u64, folders: u64| {
                let now = store.sync_counts();
                let made = (now.files - last.files, now.folders - last.folders);
                assert_eq!(made, (files * on, folders * on), "{what} ({durability:?})");
                last = now;
            };
            let p = Path::from("a/b/c.txt");
            // Two new folders: each one's parent is synced too.
            let first = store.put(&p, "1".into()).await.unwrap();
            step("put creating a/ and a/b/", 1, 3);
            let second = store.put(&p, "2".into()).await.unwrap();
            step("put", 1, 1);
            let mut attrs = Attributes::new();
            attrs.insert(object_store::Attribute::ContentType, "text/plain".into());
            let with_attrs = PutOptions {
                attributes: attrs,
                ..Default::default()
            };
            store.put_opts(&p, "3".into(), with_attrs).await.unwrap();
            step("put with attributes", 1, 1);
            let current = UpdateVersion::from(store.put(&p, "4".into()).await.unwrap());
            step("put", 1, 1);
            let cas = PutOptions::from(PutMode::Update(current));
            store.put_opts(&p, "5".into(), cas).await.unwrap();
            step("compare-and-swap", 1, 1);
            let stale = PutOptions::from(PutMode::Update(UpdateVersion::from(first)));
            assert!(store.put_opts(&p, "6".into(), stale).await.is_err());
            step("stale compare-and-swap", 0, 0);
            let _ = second;
            let create = PutOptions::from(PutMode::Create);
            assert!(store.put_opts(&p, "7".into(), create).await.is_err());
            step("create-if-absent on an existing key", 0, 0);
            store.copy(&p, &Path::from("a/b/d.txt")).await.unwrap();
            step("copy", 1, 1);
            store
                .rename(&Path::from("a/b/d.txt"), &Path::from("a/e.txt"))
                .await
                .unwrap();
            step("move to another folder", 0, 2);
            store
                .rename(&Path::from("a/e.txt"), &Path::from("a/f.txt"))
                .await
                .unwrap();
            step("move within a folder", 0, 1);
            store.delete(&Path::from("a/f.txt")).await.unwrap();
            step("delete", 0, 1);
            store.delete(&Path::from("a/f.txt")).await.unwrap();
            step("delete of a missing key", 0, 0);
            let batch = ["a/g1", "a/g2", "a/g3", "a/b/g4"];
            for k in batch {
                store.put(&Path::from(k), "g".into()).await.unwrap();
            }
            step("four puts", 4, 4);
            let paths = batch.iter().chain(&["a/none"]).map(|k| Ok(Path::from(*k)));
            let deleted: Vec<_> = store
                .delete_stream(futures::stream::iter(paths.collect::<Vec<_>>()).boxed())
                .map(|r| r.unwrap().to_string())
                .collect()
                .await;
            assert_eq!(deleted, ["a/g1", "a/g2", "a/g3", "a/b/g4", "a/none"]);
            step("one batch deleting four keys in two folders", 0, 2);
            let etag = store.head(&p).await.unwrap().e_tag.unwrap();
            let _: Vec<_> = store.list(None).collect().await;
            store.get(&p).await.unwrap().bytes().await.unwrap();
            step("head, list, get", 0, 0);
            store.delete_if_match(&p, &etag).await.unwrap();
            step("delete-if-match", 0, 1);
            let mut up = store.put_multipart(&Path::from("m/p")).await.unwrap();
            up.put_part("par".into()).await.unwrap();
            up.put_part("ts".into()).await.unwrap();
            step("multipart parts", 0, 0);
            up.complete().await.unwrap();
            step("multipart completion creating m/", 1, 2);
            let total = store.sync_counts();
            assert_eq!(
                (total.files, total.folders),
                (11 * on, 21 * on),
                "{durability:?}"
            );
        }
    }

    /// Lists `store` and `LocalFileSystem` over the same folder; both sorted by key.
    async fn both_lists(
        store: &LocalStore,
        prefix: Option<&Path>,
        offset: Option<&Path>,
    ) -> (Vec<ObjectMeta>, Vec<ObjectMeta>) {
        let raw = LocalFileSystem::new_with_prefix(store.root()).unwrap();
        let (ours, theirs) = match offset {
            Some(o) => (
                store.list_with_offset(prefix, o),
                raw.list_with_offset(prefix, o),
            ),
            None => (store.list(prefix), raw.list(prefix)),
        };
        let mut ours: Vec<ObjectMeta> = ours.map(|r| r.unwrap()).collect().await;
        let mut theirs: Vec<ObjectMeta> = theirs
            .map(|r| r.unwrap())
            .filter(|m| futures::future::ready(!is_reserved(&m.location)))
            .collect()
            .await;
        ours.sort_by(|a, b| a.location.cmp(&b.location));
        theirs.sort_by(|a, b| a.location.cmp(&b.location));
        (ours, theirs)
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn listings_find_what_local_file_system_finds_with_the_etags_head_gives() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        for key in [
            "a.txt",
            "d/b c.txt",
            "d/e/f%20g",
            "d/é€",
            "x#a",
            "x#",
            "d/e/h.json",
        ] {
            store.put(&Path::from(key), key.into()).await.unwrap();
        }
        let mut attrs = Attributes::new();
        attrs.insert(object_store::Attribute::ContentType, "text/csv".into());
        let opts = PutOptions {
            attributes: attrs,
            ..Default::default()
        };
        store
            .put_opts(&Path::from("d/with-attrs.csv"), "1,2".into(), opts)
            .await
            .unwrap();
        let root = dir.path();
        std::fs::write(root.join("d/by-hand"), "plain").unwrap();
        std::fs::write(root.join("d/staged#12"), "hidden").unwrap();
        std::fs::write(root.join("d/hash#a"), "shown").unwrap();
        std::fs::write(root.join("d/hash#"), "shown").unwrap();
        std::fs::create_dir_all(root.join("empty/folder")).unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("d/link")).unwrap();
        std::os::unix::fs::symlink(root.join("missing"), root.join("d/broken")).unwrap();
        std::os::unix::fs::symlink(root.join("d/e"), root.join("linked-folder")).unwrap();

        let (ours, theirs) = both_lists(&store, None, None).await;
        let keys = |v: &[ObjectMeta]| v.iter().map(|m| m.location.to_string()).collect::<Vec<_>>();
        assert_eq!(keys(&ours), keys(&theirs));
        assert_eq!(
            keys(&ours),
            // `Path::from` percent-encodes what S3 advises against; files are named so.
            [
                "a.txt",
                "d/%C3%A9%E2%82%AC",
                "d/b c.txt",
                "d/by-hand",
                "d/e/f%2520g",
                "d/e/h.json",
                "d/hash#",
                "d/hash#a",
                "d/link",
                "d/with-attrs.csv",
                "linked-folder/f%2520g",
                "linked-folder/h.json",
                "x%23",
                "x%23a"
            ]
        );
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!(
                (o.size, o.last_modified),
                (t.size, t.last_modified),
                "{}",
                o.location
            );
            let head = store.head(&o.location).await.unwrap();
            assert_eq!(o.e_tag, head.e_tag, "{}", o.location);
        }
        let d = Path::from("d");
        let (ours, theirs) = both_lists(&store, Some(&d), None).await;
        assert_eq!(keys(&ours), keys(&theirs));
        assert_eq!(ours.len(), 9);
        let (ours, theirs) = both_lists(&store, None, Some(&Path::from("d/e/h.json"))).await;
        assert_eq!(keys(&ours), keys(&theirs));
        assert_eq!(ours.len(), 8);
        for missing in ["nothing", "a.txt", ".strata-sys", ".strata-sys/staging"] {
            let (ours, _) = both_lists(&store, Some(&Path::from(missing)), None).await;
            assert!(ours.is_empty(), "{missing}");
        }

        let raw = LocalFileSystem::new_with_prefix(store.root()).unwrap();
        for prefix in [None, Some(Path::from("d")), Some(Path::from("nothing"))] {
            let mut ours = store.list_with_delimiter(prefix.as_ref()).await.unwrap();
            let mut theirs = raw.list_with_delimiter(prefix.as_ref()).await.unwrap();
            theirs.common_prefixes.retain(|p| !is_reserved(p));
            ours.objects.sort_by(|a, b| a.location.cmp(&b.location));
            theirs.objects.sort_by(|a, b| a.location.cmp(&b.location));
            assert_eq!(ours.common_prefixes, theirs.common_prefixes, "{prefix:?}");
            assert_eq!(keys(&ours.objects), keys(&theirs.objects), "{prefix:?}");
            for o in &ours.objects {
                let head = store.head(&o.location).await.unwrap();
                assert_eq!(o.e_tag, head.e_tag, "{}", o.location);
            }
        }
        let top = store.list_with_delimiter(None).await.unwrap();
        assert_eq!(
            top.common_prefixes,
            [
                Path::from("d"),
                Path::from("empty"),
                Path::from("linked-folder")
            ]
        );

        // A symlink loop is an error, not an endless walk.
        std::os::unix::fs::symlink(root.join("d"), root.join("d/e/loop")).unwrap();
        let results: Vec<_> = store.list(None).collect().await;
        assert!(
            results.iter().any(|r| r
                .as_ref()
                .is_err_and(|e| e.to_string().contains("symlink loop"))),
            "no loop error"
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
        let etag = r.meta.e_tag.clone();
        assert!(etag.is_some());
        assert_eq!(r.bytes().await.unwrap(), "by hand");
        // A copy records the source's ETag (the copy's own inode would give another).
        store
            .copy(&Path::from("external.txt"), &Path::from("copy.txt"))
            .await
            .unwrap();
        let h = store.head(&Path::from("copy.txt")).await.unwrap();
        assert_eq!(h.e_tag, etag);
    }

    #[tokio::test]
    async fn a_move_keeps_metadata_and_an_aborted_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let mut attrs = Attributes::new();
        attrs.insert(object_store::Attribute::ContentType, "text/csv".into());
        let put = store
            .put_opts(
                &Path::from("a.csv"),
                "x,y".into(),
                PutOptions {
                    attributes: attrs,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        store
            .rename(&Path::from("a.csv"), &Path::from("deep/er/b.csv"))
            .await
            .unwrap();
        let got = store.get(&Path::from("deep/er/b.csv")).await.unwrap();
        assert_eq!(got.meta.e_tag, put.e_tag);
        assert_eq!(
            got.attributes
                .get(&object_store::Attribute::ContentType)
                .map(|v| v.as_ref()),
            Some("text/csv")
        );
        let mut up = store.put_multipart(&Path::from("gone")).await.unwrap();
        up.put_part("part".into()).await.unwrap();
        up.abort().await.unwrap();
        drop(up);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".strata-sys", "deep"], "no staged file is left");
    }

    #[tokio::test]
    async fn metadata_too_large_for_the_filesystem_is_a_clear_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let mut attrs = Attributes::new();
        attrs.insert(
            object_store::Attribute::CacheControl,
            "x".repeat(70_000).into(),
        );
        let e = store
            .put_opts(
                &Path::from("k"),
                "v".into(),
                PutOptions {
                    attributes: attrs,
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        let e = StorageError::from_object_store("fs", e);
        assert!(e.to_string().contains("extended attributes"), "{e}");
        assert!(matches!(
            store.head(&Path::from("k")).await,
            Err(object_store::Error::NotFound { .. })
        ));
    }

    #[test]
    fn one_folder_by_two_paths_has_one_location() {
        // A symlink path used as is (not canonicalized) reaches the folder by another path
        // with the same device and inode, as a bind mount does.
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let first = folder_location(&real);
        assert_eq!(folder_location(&link), first);
        assert_eq!(first, format!("file://{}", real.display()));
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        assert_ne!(folder_location(&other), first);
    }
}
