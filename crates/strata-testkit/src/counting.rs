//! A store that counts the GET requests it serves and the bytes they return, and the delete
//! calls it gets, for tests and benchmarks that prove a read fetched only what it needed or
//! that deletes went out in batches.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::test_store::{Hooks, TestStore};

/// Counts GET requests (whole, ranged, multi-range; not HEADs' bytes) and returned bytes,
/// and delete calls (each `delete_stream`, which a single `delete` also goes through).
pub type CountingStore = TestStore<Counts>;

/// The counters of a [`CountingStore`].
#[derive(Debug, Default)]
pub struct Counts {
    gets: AtomicU64,
    bytes: AtomicU64,
    delete_calls: AtomicU64,
    deleted_keys: AtomicU64,
}

impl Hooks for Counts {
    const NAME: &'static str = "CountingStore";

    fn got(&self, bytes: u64) {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn delete_call(&self) {
        self.delete_calls.fetch_add(1, Ordering::Relaxed);
    }

    fn deleted_key(&self) {
        self.deleted_keys.fetch_add(1, Ordering::Relaxed);
    }
}

impl CountingStore {
    /// (GET requests, bytes returned) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        let c = self.hooks();
        (
            c.gets.load(Ordering::Relaxed),
            c.bytes.load(Ordering::Relaxed),
        )
    }

    /// Bytes returned so far.
    pub fn bytes_read(&self) -> u64 {
        self.hooks().bytes.load(Ordering::Relaxed)
    }

    /// (delete calls, keys passed to them) so far.
    pub fn deletes(&self) -> (u64, u64) {
        let c = self.hooks();
        (
            c.delete_calls.load(Ordering::Relaxed),
            c.deleted_keys.load(Ordering::Relaxed),
        )
    }
}
