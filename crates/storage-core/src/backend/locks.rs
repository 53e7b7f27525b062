//! Per-key write locks: in-process striped mutexes, plus OS file locks across processes.
//!
//! Keys hash onto a fixed number of stripes, so the lock table stays bounded whatever the
//! number of keys; two keys on one stripe merely wait for each other. A stripe's file lock
//! (`flock` through `std::fs::File::try_lock`) is only taken while its in-process mutex is
//! held, because `flock` does not exclude two threads of one process sharing a descriptor.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedMutexGuard};

const STRIPES: usize = 256;

/// A guard for one or more stripes; dropping it releases them.
pub(crate) struct KeyGuard {
    _held: Vec<(OwnedMutexGuard<Option<File>>, bool)>,
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        for (guard, file_locked) in &self._held {
            if *file_locked && let Some(file) = guard.as_ref() {
                let _ = file.unlock();
            }
        }
    }
}

/// The lock table.
#[derive(Debug)]
pub(crate) struct KeyLocks {
    stripes: Vec<Arc<Mutex<Option<File>>>>,
    /// Folder holding one lock file per stripe; `None` = this process only.
    dir: Option<PathBuf>,
}

impl KeyLocks {
    pub(crate) fn in_process() -> Self {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(None))).collect(),
            dir: None,
        }
    }

    pub(crate) fn cross_process(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(KeyLocks {
            dir: Some(dir),
            ..Self::in_process()
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

    /// Lock every key in `keys` (deduplicated, in stripe order so two callers never deadlock).
    pub(crate) async fn lock(&self, keys: &[&str]) -> std::io::Result<KeyGuard> {
        let mut stripes: Vec<usize> = keys.iter().map(|k| Self::stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut held = Vec::with_capacity(stripes.len());
        for s in stripes {
            let mut guard = self.stripes[s].clone().lock_owned().await;
            let mut file_locked = false;
            if let Some(dir) = &self.dir {
                if guard.is_none() {
                    let path = dir.join(format!("{s:03}.lock"));
                    *guard = Some(
                        std::fs::OpenOptions::new()
                            .create(true)
                            .truncate(false)
                            .write(true)
                            .open(path)?,
                    );
                }
                let file = guard.as_ref().expect("opened above");
                let mut wait = Duration::from_micros(200);
                loop {
                    match file.try_lock() {
                        Ok(()) => break,
                        Err(std::fs::TryLockError::WouldBlock) => {
                            // Another process holds it: back off without blocking the runtime.
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_millis(20));
                        }
                        Err(std::fs::TryLockError::Error(e)) => return Err(e),
                    }
                }
                file_locked = true;
            }
            held.push((guard, file_locked));
        }
        Ok(KeyGuard { _held: held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_excludes_and_order_does_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let locks = Arc::new(KeyLocks::cross_process(dir.path().join("locks")).unwrap());
        let g = locks.lock(&["a", "b"]).await.unwrap();
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move { l2.lock(&["b", "a"]).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(g);
        waiter.await.unwrap().unwrap();
    }
}
