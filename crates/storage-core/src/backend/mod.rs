//! The embedded backends (memory, local folder) and the hook for conditional deletes.

use async_trait::async_trait;
use object_store::path::Path;

mod local;
mod locks;
mod memory;

pub use local::{Durability, LocalStore};
pub use memory::MemoryStore;

/// Atomic delete-if-match, which the `ObjectStore` trait has no method for.
///
/// Backends that can do it implement this; [`Bucket`](crate::Bucket) uses it when present
/// and answers `NotSupported` otherwise.
#[async_trait]
pub trait ConditionalDelete: Send + Sync + std::fmt::Debug {
    /// Delete `path` only if its current ETag equals `etag` (quotes ignored).
    /// A different ETag is `Precondition`; a missing object is `NotFound`.
    async fn delete_if_match(&self, path: &Path, etag: &str) -> object_store::Result<()>;
}

/// Compare two ETags ignoring surrounding quotes and a weak `W/` marker.
pub fn etag_eq(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> &str {
        s.trim().trim_start_matches("W/").trim_matches('"')
    }
    norm(a) == norm(b)
}
