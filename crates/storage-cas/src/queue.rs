//! In-process write queue: writers in one process take turns per key.
//!
//! Compare-and-swap keeps writers in different processes correct; it does not make them
//! efficient. Sixteen tasks in one process hammering one document would each read, lose the
//! race, re-read and retry, so most round trips are wasted (on an S3 server measured at
//! ~5.8 attempts per commit, a quarter of the uncontended rate). Queuing writers of the same
//! key inside the process first means at most one of them has a conditional write in flight:
//! in-process contention costs no extra round trips, and CAS still settles the contention
//! between processes. The queue is process-wide, keyed by store identity and key, so
//! separately constructed collections over the same bucket share it too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Per-key FIFO turns.
#[derive(Debug)]
pub(crate) struct KeyQueue {
    keys: Mutex<Slots>,
}

#[derive(Debug)]
struct Slots {
    map: HashMap<String, Weak<AsyncMutex<()>>>,
    /// Forget finished keys when the map grows past this (amortised: it doubles).
    sweep_at: usize,
}

impl Default for KeyQueue {
    fn default() -> Self {
        KeyQueue {
            keys: Mutex::new(Slots {
                map: HashMap::new(),
                sweep_at: 64,
            }),
        }
    }
}

/// The queue of this process: every collection and record set over the same store shares
/// it, however they were constructed.
pub(crate) fn process_queue() -> &'static KeyQueue {
    static QUEUE: OnceLock<KeyQueue> = OnceLock::new();
    QUEUE.get_or_init(KeyQueue::default)
}

/// The queue key of `key` in `store` (stores are told apart by identity).
pub(crate) fn queue_key(store: &Arc<dyn storage_core::StrataStore>, key: &str) -> String {
    format!("{:p}\u{0}{key}", Arc::as_ptr(store).cast::<()>())
}

impl KeyQueue {
    /// Wait for our turn on `key`; the turn lasts until the guard is dropped.
    pub(crate) async fn turn(&self, key: &str) -> OwnedMutexGuard<()> {
        let slot = {
            let mut slots = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            if slots.map.len() >= slots.sweep_at {
                slots.map.retain(|_, w| w.strong_count() > 0);
                slots.sweep_at = (slots.map.len() * 2).max(64);
            }
            match slots.map.get(key).and_then(Weak::upgrade) {
                Some(slot) => slot,
                None => {
                    let slot = Arc::new(AsyncMutex::new(()));
                    slots.map.insert(key.to_string(), Arc::downgrade(&slot));
                    slot
                }
            }
        };
        slot.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_turn_per_key_at_a_time() {
        let q = Arc::new(KeyQueue::default());
        let a = q.turn("a").await;
        // Another key is free.
        let _b = q.turn("b").await;
        // The same key waits until the first turn ends.
        let q2 = q.clone();
        let waiter = tokio::spawn(async move {
            let _g = q2.turn("a").await;
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn finished_keys_are_forgotten() {
        let q = KeyQueue::default();
        for i in 0..200 {
            let _g = q.turn(&format!("k{i}")).await;
        }
        assert!(q.keys.lock().unwrap().map.len() <= 64);
    }
}
