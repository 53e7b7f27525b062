//! The embedded backends (memory, local folder) and their side of the store contract.

use async_trait::async_trait;
use object_store::path::Path;

use crate::capabilities::Capabilities;
use crate::store::{StrataStore, not_supported};

mod local;
mod locks;
mod memory;

pub use local::{Durability, LocalStore};
pub use memory::MemoryStore;

/// Atomic delete-if-match of an embedded backend, under the same lock as its conditional
/// puts; [`StrataStore::delete_if_match`] of each backend calls it.
#[async_trait]
pub(crate) trait ConditionalDelete: Send + Sync + std::fmt::Debug {
    /// Delete `path` only if its current ETag equals `etag` (quotes ignored).
    /// A different ETag is `Precondition`; a missing object is `NotFound`.
    async fn delete_if_match(&self, path: &Path, etag: &str) -> object_store::Result<()>;
}

/// Why a conditional write or delete was refused, for people: `expected ETag "a", found
/// "b"` (or `found no object`), never Rust's `Some(..)`.
pub(crate) fn etag_mismatch(expected: Option<&str>, found: Option<&str>) -> String {
    let quoted = |e: &str| format!("\"{}\"", e.trim().trim_matches('"'));
    match (expected, found) {
        (Some(e), Some(f)) => format!("expected ETag {}, found {}", quoted(e), quoted(f)),
        (Some(e), None) => format!("expected ETag {}, found no object", quoted(e)),
        (None, Some(f)) => format!("no ETag given, found {}", quoted(f)),
        (None, None) => "no ETag given and no object found".to_string(),
    }
}

/// Compare two ETags ignoring surrounding quotes and a weak `W/` marker.
pub fn etag_eq(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> &str {
        s.trim().trim_start_matches("W/").trim_matches('"')
    }
    norm(a) == norm(b)
}

/// The embedded backends have no signer: a presigned URL needs an HTTP endpoint (`strata
/// serve` gives a local folder one).
macro_rules! embedded_contract {
    ($ty:ty, $caps:expr, $name:literal) => {
        #[deny(clippy::missing_trait_methods)]
        impl StrataStore for $ty {
            crate::store_fn!(capabilities, |_| $caps);
            crate::store_fn!(key_prefix, |_| None);

            crate::store_fn!(delete_if_match, |this, location, etag| {
                ConditionalDelete::delete_if_match(this, location, etag).await
            });

            crate::store_fn!(presign, |_, _, _, _| Err(not_supported(
                $name,
                "presigned URLs (no HTTP endpoint serves this store; `strata serve` can)",
            )));
        }
    };
}

embedded_contract!(MemoryStore, Capabilities::MEMORY, "memory");
embedded_contract!(LocalStore, Capabilities::LOCAL, "local folder");
