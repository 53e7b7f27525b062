//! Listing the local folder: one walk that opens each file relative to its folder's open
//! descriptor and reads what its ETag needs from that descriptor, on the blocking pool in
//! batches.
//!
//! `LocalFileSystem`'s own listing resolves every file's whole path three times (two
//! `stat`s and an `lstat`) and converts it through a URL; reading ETags on top of it would
//! add an `open` per file. Here a file costs one `openat` of its bare name, `fstat`,
//! `fgetxattr`, (the generation ioctl for files without an attribute) and `close`, with no
//! path resolved twice, and the ETag is the one a `head` of that same file returns.
//! Keys and the files skipped are `LocalFileSystem`'s: names parse as object_store path
//! parts, staged `NAME#123` files of other writers are hidden, symlinks are followed.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path as FsPath;

use futures::stream::{BoxStream, StreamExt};
use object_store::path::{Path, PathPart};
use object_store::{ObjectMeta, Result as OsResult};
use rustix::fs::{Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{EtagMeta, Opened, io_err};
use crate::key::RESERVED_PREFIX;

/// One thing a walk found.
pub(super) enum Found {
    Object(ObjectMeta),
    /// A folder, reported instead of entered (delimited listings).
    Folder(Path),
}

struct Frame {
    dir: Dir,
    key: Path,
    /// Device and inode of the folder, to stop at symlink loops.
    id: (u64, u64),
}

/// A depth-first walk under one folder.
pub(super) struct Walk {
    stack: Vec<Frame>,
    /// Enter sub-folders (a plain listing) or report them (a delimited one).
    recursive: bool,
    /// Only keys after this one (`list_with_offset`).
    offset: Option<Path>,
}

fn errno_err(e: Errno, what: &FsPath) -> object_store::Error {
    io_err(std::io::Error::new(
        std::io::Error::from(e).kind(),
        format!("{}: {e}", what.display()),
    ))
}

impl Walk {
    /// A walk of the folder `fs_dir`, whose key is `key` (empty at the store's root). A
    /// missing folder, or a file in its place, lists nothing.
    pub(super) fn new(
        fs_dir: &FsPath,
        key: Path,
        recursive: bool,
        offset: Option<Path>,
    ) -> OsResult<Walk> {
        let mut walk = Walk {
            offset,
            ..Walk::nothing(recursive)
        };
        match rustix::fs::open(fs_dir, dir_flags(), Mode::empty()) {
            Ok(fd) => walk
                .push(File::from(fd), key)
                .map_err(|e| errno_err(e, fs_dir))?,
            Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(e) => return Err(errno_err(e, fs_dir)),
        }
        Ok(walk)
    }

    /// A walk that finds nothing.
    pub(super) fn nothing(recursive: bool) -> Walk {
        Walk {
            stack: Vec::new(),
            recursive,
            offset: None,
        }
    }

    fn push(&mut self, dir: File, key: Path) -> Result<(), Errno> {
        let st = rustix::fs::fstat(&dir)?;
        #[allow(
            clippy::unnecessary_cast,
            reason = "the field types differ per platform"
        )]
        let id = (st.st_dev as u64, st.st_ino as u64);
        if self.stack.iter().any(|f| f.id == id) {
            return Err(Errno::LOOP);
        }
        self.stack.push(Frame {
            dir: Dir::new(dir)?,
            key,
            id,
        });
        Ok(())
    }

    /// The next entry of the innermost open folder, as `(name, type, key)`, popping
    /// folders that are done.
    fn next_entry(&mut self) -> Option<OsResult<(std::ffi::CString, FileType, Path)>> {
        loop {
            let frame = self.stack.last_mut()?;
            let entry = match frame.dir.read() {
                None => {
                    self.stack.pop();
                    continue;
                }
                Some(Err(e)) => {
                    let key = frame.key.clone();
                    self.stack.pop();
                    return Some(Err(io_err(std::io::Error::new(
                        std::io::Error::from(e).kind(),
                        format!("reading folder `{key}`: {e}"),
                    ))));
                }
                Some(Ok(entry)) => entry,
            };
            let bytes = entry.file_name().to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(bytes) else {
                return Some(Err(io_err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "a file name under `{}` is not UTF-8: {}",
                        frame.key,
                        String::from_utf8_lossy(bytes)
                    ),
                ))));
            };
            if frame.key.is_root() && name == RESERVED_PREFIX {
                continue;
            }
            let part = match PathPart::parse(name) {
                Ok(p) => p,
                Err(e) => {
                    return Some(Err(object_store::Error::InvalidPath {
                        source: object_store::path::Error::BadSegment {
                            path: format!("{}/{name}", frame.key),
                            source: e,
                        },
                    }));
                }
            };
            let key = frame.key.clone().join(part);
            return Some(Ok((entry.file_name().to_owned(), entry.file_type(), key)));
        }
    }

    /// Enter (or report) the folder `name` of the innermost folder, opened as `dir`.
    fn folder(&mut self, dir: File, key: Path) -> Option<OsResult<Found>> {
        if !self.recursive {
            return Some(Ok(Found::Folder(key)));
        }
        match self.push(dir, key.clone()) {
            Ok(()) => None,
            Err(e) => {
                let why = match e {
                    Errno::LOOP => "it is a symlink loop back to a folder above it".to_string(),
                    e => e.to_string(),
                };
                Some(Err(io_err(std::io::Error::new(
                    std::io::Error::from(e).kind(),
                    format!("listing folder `{key}`: {why}"),
                ))))
            }
        }
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// `LocalFileSystem`'s staged files: `NAME#digits`.
fn is_staged(name: &str) -> bool {
    match name.split_once('#') {
        Some((_, suffix)) => !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

impl Iterator for Walk {
    type Item = OsResult<Found>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (name, file_type, key) = match self.next_entry()? {
                Ok(e) => e,
                Err(e) => return Some(Err(e)),
            };
            let dirfd = &self.stack.last().expect("an entry came from it").dir;
            let Ok(dirfd) = dirfd.fd() else { continue };
            if file_type == FileType::Directory {
                if !self.recursive {
                    return Some(Ok(Found::Folder(key)));
                }
                match rustix::fs::openat(dirfd, name.as_c_str(), dir_flags(), Mode::empty()) {
                    Ok(fd) => match self.folder(File::from(fd), key) {
                        Some(found) => return Some(found),
                        None => continue,
                    },
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Some(Err(errno_err(e, FsPath::new(key.as_ref())))),
                }
            }
            if !matches!(
                file_type,
                FileType::RegularFile | FileType::Symlink | FileType::Unknown
            ) || is_staged(key.filename().unwrap_or_default())
            {
                continue;
            }
            let is_folder_candidate = file_type != FileType::RegularFile;
            if !is_folder_candidate && self.offset.as_ref().is_some_and(|o| &key <= o) {
                continue;
            }
            // Non-blocking, so a FIFO a symlink points to cannot hang the walk; regular
            // files ignore the flag.
            let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
            let file = match rustix::fs::openat(dirfd, name.as_c_str(), flags, Mode::empty()) {
                Ok(fd) => File::from(fd),
                Err(Errno::NOENT | Errno::LOOP) => continue, // gone, or a broken link
                Err(e) => return Some(Err(errno_err(e, FsPath::new(key.as_ref())))),
            };
            let metadata = match file.metadata() {
                Ok(m) => m,
                Err(e) => return Some(Err(io_err(e))),
            };
            if metadata.is_dir() {
                match self.folder(file, key) {
                    Some(found) => return Some(found),
                    None => continue,
                }
            }
            if !metadata.is_file() || self.offset.as_ref().is_some_and(|o| &key <= o) {
                continue;
            }
            return Some(
                Opened::<EtagMeta>::from_file(file, metadata, FsPath::new(key.as_ref()))
                    .map(|o| Found::Object(o.object_meta(key)))
                    .map_err(io_err),
            );
        }
    }
}

/// Files listed per trip to the blocking pool, as `LocalFileSystem` does.
const CHUNK: usize = 1024;

/// `walk` as a stream, run on the blocking pool `CHUNK` entries at a time.
pub(super) fn stream(walk: OsResult<Walk>) -> BoxStream<'static, OsResult<ObjectMeta>> {
    let walk = match walk {
        Ok(w) => w,
        Err(e) => return futures::stream::once(async { Err(e) }).boxed(),
    };
    let buffer = VecDeque::with_capacity(CHUNK);
    futures::stream::try_unfold((walk, buffer), |(mut walk, mut buffer)| async move {
        if buffer.is_empty() {
            (walk, buffer) = tokio::task::spawn_blocking(move || {
                while buffer.len() < CHUNK {
                    match walk.next() {
                        Some(Ok(Found::Object(m))) => buffer.push_back(Ok(m)),
                        Some(Ok(Found::Folder(_))) => {}
                        Some(Err(e)) => buffer.push_back(Err(e)),
                        None => break,
                    }
                }
                (walk, buffer)
            })
            .await
            .map_err(|e| io_err(std::io::Error::other(e)))?;
        }
        match buffer.pop_front() {
            Some(Err(e)) => Err(e),
            Some(Ok(meta)) => Ok(Some((meta, (walk, buffer)))),
            None => Ok(None),
        }
    })
    .boxed()
}
