//! Per-key write locks: in-process striped mutexes, plus OS file locks across processes.
//!
//! Keys hash onto a fixed number of stripes, so the lock table stays bounded whatever the
//! number of keys; two keys on one stripe merely wait for each other. A stripe's file lock
//! (`flock` through `std::fs::File::lock`) is only taken while its in-process mutex is held,
//! because `flock` does not exclude two threads of one process sharing a descriptor.
//!
//! Locking blocks the calling thread: the local-folder backend takes these locks inside
//! `spawn_blocking`, next to the file operations they protect, so a write costs one hop to
//! the blocking pool, as `LocalFileSystem`'s own writes do.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

const STRIPES: usize = 256;

/// A guard for one or more stripes; dropping it releases them.
pub(crate) struct KeyGuard<'a> {
    held: Vec<MutexGuard<'a, Option<File>>>,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        for guard in &self.held {
            if let Some(file) = guard.as_ref() {
                let _ = file.unlock();
            }
        }
    }
}

/// The lock table.
#[derive(Debug)]
pub(crate) struct KeyLocks {
    stripes: Vec<Mutex<Option<File>>>,
    /// Folder holding one lock file per stripe.
    dir: PathBuf,
}

impl KeyLocks {
    pub(crate) fn cross_process(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(KeyLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(None)).collect(),
            dir,
        })
    }

    fn stripe(key: &str) -> usize {
        // FNV-1a: stable across processes, which std's RandomState is not.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in key.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        (h % STRIPES as u64) as usize
    }

    /// Lock every key in `keys` (deduplicated, in stripe order so two callers never deadlock),
    /// blocking until all are held.
    pub(crate) fn lock(&self, keys: &[&str]) -> std::io::Result<KeyGuard<'_>> {
        let mut stripes: Vec<usize> = keys.iter().map(|k| Self::stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guard = KeyGuard {
            held: Vec::with_capacity(stripes.len()),
        };
        for s in stripes {
            // A panic while a stripe was held leaves no broken state behind (the guarded
            // value is only the lock file), so a poisoned mutex is still usable.
            let mut held = self.stripes[s]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if held.is_none() {
                *held = Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(self.dir.join(format!("{s:03}.lock")))?,
                );
            }
            held.as_ref().expect("opened above").lock()?;
            guard.held.push(held);
        }
        Ok(guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn same_key_excludes_and_order_does_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let locks = Arc::new(KeyLocks::cross_process(dir.path().join("locks")).unwrap());
        let g = locks.lock(&["a", "b"]).unwrap();
        let acquired = Arc::new(AtomicBool::new(false));
        let (l2, a2) = (locks.clone(), acquired.clone());
        let waiter = std::thread::spawn(move || {
            let _g = l2.lock(&["b", "a"]).unwrap();
            a2.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(20));
        assert!(!acquired.load(Ordering::SeqCst), "the second locker got in");
        drop(g);
        waiter.join().unwrap();
        assert!(acquired.load(Ordering::SeqCst));
    }
}
