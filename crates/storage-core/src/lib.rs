//! # storage-core
//!
//! The contract every Strata crate builds on:
//!
//! - every store is an [`Arc<dyn ObjectStore>`](object_store::ObjectStore), so any Strata
//!   store (a backend, a layer around one, a prefixed view) can be handed to code written for
//!   `object_store`;
//! - [`Bucket`] is the handle applications use: put/get (whole, range, streamed), head,
//!   exists, delete, [`delete_many`](Bucket::delete_many), list, copy, rename,
//!   [`presign`](Bucket::presign), [`url_for`](Bucket::url_for), stats, health, and
//!   conditional operations (create-if-absent, put-if-match, get-if-none-match,
//!   delete-if-match);
//! - [`Key`] validates keys, [`StorageError`] is the one error type (with
//!   [`is_retryable`](StorageError::is_retryable)), [`Capabilities`] says what a backend
//!   supports, [`Layer`] wraps stores, [`Secret`] hides credentials;
//! - two embedded backends: [`MemoryStore`] and [`LocalStore`] (a folder, with atomic
//!   compare-and-swap across processes, which `object_store`'s `LocalFileSystem` lacks).
//!
//! ```
//! use storage_core::{Bucket, PutOpts, StorageError};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let bucket = Bucket::local("docs", dir.path())?;
//!
//! // Create-if-absent, then a compare-and-swap update on the ETag we saw.
//! let first = bucket.put_with("counter", "1", PutOpts::if_absent()).await?;
//! let etag = first.etag.clone().unwrap();
//! bucket.put_with("counter", "2", PutOpts::if_match(&etag)).await?;
//!
//! // A second writer still holding the old ETag loses, and is told so.
//! let stale = bucket.put_with("counter", "3", PutOpts::if_match(&etag)).await;
//! assert!(matches!(stale, Err(StorageError::Precondition { .. })));
//! assert_eq!(bucket.get("counter").await?.bytes, "2");
//! # Ok(()) }
//! ```

pub mod attrs;
mod backend;
pub mod backoff;
mod bucket;
mod capabilities;
pub mod conditional;
pub mod config;
mod error;
mod key;
mod layer;
mod secret;
pub mod store;

pub use backend::{Durability, LocalStore, MemoryStore, etag_eq};
pub use bucket::{
    Bucket, BucketBuilder, BucketStats, DEFAULT_PART_SIZE, DeleteReport, Health, Listing,
    MAX_PRESIGN_EXPIRY, Object, ObjectInfo, ObjectStream, PresignMethod, PutOpts, WriteCondition,
    WriteResult,
};
pub use capabilities::Capabilities;
pub use conditional::Replaces;
pub use error::{
    BoxError, ErrorKind, Result, StorageError, error_sources, io_kind, status_in_chain,
};
pub use key::{AsKey, Key, KeyPolicy, MAX_KEY_BYTES, RESERVED_PREFIX, prefix_path};
pub use layer::{Layer, StackBuilder};
pub use object_store;
pub use secret::Secret;
pub use store::{Declared, DynStore, IntoStore, ScopedStore, StrataStore};
