//! Durability of the local-folder store: the fsync policy, the one place that calls fsync
//! (counted, so tests can prove every write syncs what it must), and the staging folder
//! where writes are prepared and where a killed writer's leftovers are found again.
//!
//! Every write is staged under `ROOT/.strata-sys/staging/OWNER/`, where `OWNER` is a folder
//! of one open store, claimed by holding an OS file lock on `OWNER.lock` beside it for the
//! store's lifetime. A process that dies (even by SIGKILL) releases the lock, so the next
//! store to open the folder (or [`LocalStore::remove_abandoned_staging`]) can tell a dead
//! writer's staged files from a live one's and remove them, reading one small folder rather
//! than the whole tree.
//!
//! [`LocalStore::remove_abandoned_staging`]: super::LocalStore::remove_abandoned_staging

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// How far the local-folder store goes to keep an acknowledged write across a power loss
/// or an operating-system crash.
///
/// In TOML (an `fs` connection): `durability = "fsync"` (the default) or `"none"`.
/// A process crash (even SIGKILL) loses nothing acknowledged in either mode, and never
/// leaves a partial object: every write is staged and renamed into place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A write returns only once its data, metadata and folder entry are on stable storage:
    /// the staged file is fsynced before it is renamed into place and its folder after
    /// (also for deletes, copies, moves and multipart completion, and for folders a write
    /// creates).
    #[default]
    Fsync,
    /// No fsync: writes are atomic but an acknowledged one can vanish (or an old value come
    /// back) after a power loss or OS crash. For scratch data, caches and tests; puts are
    /// several times faster on most disks.
    None,
}

/// Calls fsync when the policy asks for it, and counts the calls.
#[derive(Debug, Default)]
pub(super) struct Syncer {
    durability: Durability,
    files: AtomicU64,
    folders: AtomicU64,
}

/// fsync calls made so far by one store: on files, and on folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct SyncCounts {
    pub(super) files: u64,
    pub(super) folders: u64,
}

impl Syncer {
    pub(super) fn new(durability: Durability) -> Self {
        Syncer {
            durability,
            ..Default::default()
        }
    }

    pub(super) fn durability(&self) -> Durability {
        self.durability
    }

    /// Make `file`'s data and metadata (its extended attribute included) durable.
    pub(super) fn file(&self, file: &File) -> io::Result<()> {
        if self.durability == Durability::Fsync {
            file.sync_all()?;
            self.files.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Make the entries of the folder `dir` (a file renamed in or out) durable.
    pub(super) fn folder(&self, dir: &FsPath) -> io::Result<()> {
        if self.durability == Durability::Fsync {
            #[cfg(unix)]
            File::open(dir)?.sync_all()?;
            self.folders.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Create `dir` and any missing parents, syncing the parent of each folder created (or
    /// found created by a concurrent writer meanwhile, whose sync may not have run yet).
    pub(super) fn create_dirs(&self, dir: &FsPath) -> io::Result<()> {
        let mut todo = vec![dir];
        while let Some(&d) = todo.last() {
            let parent = d.parent();
            match std::fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == ErrorKind::NotFound => match parent {
                    Some(p) => {
                        todo.push(p);
                        continue;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
            if let Some(p) = parent {
                self.folder(p)?;
            }
            todo.pop();
        }
        Ok(())
    }

    /// Rename `from` to `to`, creating `to`'s folders if needed, then sync `to`'s folder.
    pub(super) fn publish(&self, from: &FsPath, to: &FsPath) -> io::Result<()> {
        if let Err(e) = std::fs::rename(from, to) {
            let parent = match to.parent() {
                Some(p) if e.kind() == ErrorKind::NotFound => p,
                _ => return Err(cross_device_hint(e, to)),
            };
            self.create_dirs(parent)?;
            std::fs::rename(from, to).map_err(|e| cross_device_hint(e, to))?;
        }
        match to.parent() {
            Some(p) => self.folder(p),
            None => Ok(()),
        }
    }

    pub(super) fn counts(&self) -> SyncCounts {
        SyncCounts {
            files: self.files.load(Ordering::Relaxed),
            folders: self.folders.load(Ordering::Relaxed),
        }
    }
}

fn cross_device_hint(e: io::Error, to: &FsPath) -> io::Error {
    if e.kind() == ErrorKind::CrossesDevices {
        io::Error::new(
            e.kind(),
            format!(
                "{} is on another filesystem than the store's root, where writes are staged ({e}); keep the whole folder on one filesystem",
                to.display()
            ),
        )
    } else {
        e
    }
}

/// This store's staging folder, claimed by a lock held for the store's lifetime.
#[derive(Debug)]
pub(super) struct Staging {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Holds the lock; closing it (here, or by the OS when the process dies) releases it.
    _lock: File,
    next: AtomicU64,
}

impl Staging {
    /// Claim a new owner folder under `root` (the staging folder).
    pub(super) fn claim(root: &FsPath) -> io::Result<Staging> {
        std::fs::create_dir_all(root)?;
        loop {
            let id = random_id();
            let lock_path = root.join(format!("{id:016x}.lock"));
            let lock = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            if !locked(&lock)? {
                continue;
            }
            // A sweeper may have taken the lock between our create and lock, found it
            // free and removed the file: then this lock guards nothing; take another id.
            if !same_file(&lock, &lock_path)? {
                continue;
            }
            let dir = root.join(format!("{id:016x}"));
            std::fs::create_dir(&dir)?;
            return Ok(Staging {
                dir,
                lock_path,
                _lock: lock,
                next: AtomicU64::new(0),
            });
        }
    }

    /// A new empty file to stage a write in.
    pub(super) fn file(&self) -> io::Result<(File, PathBuf)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(n.to_string());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((file, path))
    }

    /// Remove what stores that are no longer running left under `root` (the staging
    /// folder); returns the number of staged files removed. Live stores are left alone.
    pub(super) fn sweep(root: &FsPath) -> io::Result<u64> {
        let Some(entries) = gone_is_none(std::fs::read_dir(root))? else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                // An owner folder is removed with its lock file; one without (a sweeper
                // killed in between) is found below through its missing lock.
                let lock = root.join(format!("{}.lock", name.to_string_lossy()));
                if entry.file_type()?.is_dir() && !lock.exists() {
                    removed += remove_owner(&entry.path())?;
                }
                continue;
            };
            let lock_path = entry.path();
            let Some(lock) = gone_is_none(OpenOptions::new().write(true).open(&lock_path))? else {
                continue;
            };
            if !locked(&lock)? {
                continue; // its store is open
            }
            removed += remove_owner(&root.join(id))?;
            gone_is_none(std::fs::remove_file(&lock_path))?;
        }
        Ok(removed)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Every upload holds the store, so nothing is staged any more.
        let _ = remove_owner(&self.dir);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Remove an owner folder and its staged files; returns how many files it held.
fn remove_owner(dir: &FsPath) -> io::Result<u64> {
    let Some(entries) = gone_is_none(std::fs::read_dir(dir))? else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries {
        if gone_is_none(std::fs::remove_file(entry?.path()))?.is_some() {
            removed += 1;
        }
    }
    gone_is_none(std::fs::remove_dir(dir))?;
    Ok(removed)
}

/// Take `file`'s lock if it is free: `false` if another holds it, an error if the
/// filesystem cannot lock at all.
fn locked(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// `result`, with NotFound (removed meanwhile, by a concurrent sweeper) as `None`.
fn gone_is_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the open `file` is still the file at `path`.
fn same_file(file: &File, path: &FsPath) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let open = file.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) => Ok(now.ino() == open.ino() && now.dev() == open.dev()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        Ok(true)
    }
}

/// 64 random bits (std's `RandomState` keys come from the OS's random source).
pub(super) fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &FsPath) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn sweeps_spare_open_stores_and_remove_what_dead_ones_left() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("staging");
        let live = Staging::claim(&root).unwrap();
        let (_file, _staged) = live.file().unwrap();
        let live_id = live.dir.file_name().unwrap().to_string_lossy().into_owned();
        // What a killed process leaves: its lock file, no longer locked, and its folder.
        std::fs::write(root.join("00000000000000d1.lock"), "").unwrap();
        std::fs::create_dir(root.join("00000000000000d1")).unwrap();
        std::fs::write(root.join("00000000000000d1/0"), "part").unwrap();
        std::fs::write(root.join("00000000000000d1/1"), "part").unwrap();
        // What a sweeper killed between removing a folder's files and its lock leaves.
        std::fs::create_dir(root.join("00000000000000d2")).unwrap();
        std::fs::write(root.join("00000000000000d2/5"), "part").unwrap();

        assert_eq!(Staging::sweep(&root).unwrap(), 3);
        assert_eq!(
            names(&root),
            [live_id.clone(), format!("{live_id}.lock")],
            "the open store's staging stays"
        );
        assert_eq!(names(&live.dir), ["0"], "with its staged file");
        assert_eq!(Staging::sweep(&root).unwrap(), 0);
        // A store that closes removes its own.
        drop(live);
        assert!(names(&root).is_empty());
    }
}
