//! # storage-cas
//!
//! Typed JSON documents in object storage that many writers can update at once without
//! losing an update: ETag compare-and-swap, a read-modify-write loop with backoff, TTLs,
//! attachments, and versioned records. Works on every Strata backend with atomic
//! conditional writes (memory, local folder, S3, R2); on one without, construction fails
//! with [`StorageError::NotSupported`](storage_core::StorageError::NotSupported) instead of
//! silently becoming last-writer-wins.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use storage_cas::{BackoffStrategy, Collection};
//! use storage_core::{Bucket, StorageError};
//!
//! #[derive(Debug, Serialize, Deserialize, PartialEq)]
//! struct Assistant { name: String, runs: u32 }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
//! let bucket = Bucket::memory("app");
//! let assistants: Collection<Assistant> = Collection::new(&bucket, "assistants/{id}.json")?
//!     .with_backoff(BackoffStrategy::AGGRESSIVE);
//!
//! assistants.create("asst_1", &Assistant { name: "Ada".into(), runs: 0 }).await?;
//!
//! // Read-modify-write: re-read and re-applied automatically if another writer wins a race.
//! let done = assistants
//!     .update_with("asst_1", |cur| {
//!         let mut a = cur.expect("created above");
//!         a.runs += 1;
//!         Ok(Some(a))
//!     })
//!     .await?;
//! assert_eq!(done.value.unwrap().runs, 1);
//!
//! // Explicit compare-and-swap: a stale ETag is refused.
//! let doc = assistants.get("asst_1").await?.unwrap();
//! assistants.put_if_match("asst_1", &Assistant { name: "Ada L.".into(), runs: 1 }, &doc.etag).await?;
//! let stale = assistants.put_if_match("asst_1", &doc.value, &doc.etag).await;
//! assert!(matches!(stale, Err(StorageError::Precondition { .. })));
//! # Ok(()) }
//! ```
//!
//! ## Pieces
//!
//! - [`KeyScheme`]: validated key templates (`messages/{thread}/{id}.json`); ids cannot
//!   reach keys outside the collection.
//! - [`Collection`]: `get` / `put` / `create` / `put_if_match` / `delete` /
//!   `delete_if_match` / `exists` / `list`, and [`Collection::update_with`], the
//!   read-modify-write loop driven by a [`BackoffStrategy`] (`NONE`, `STANDARD`,
//!   `AGGRESSIVE`, custom).
//! - TTLs ([`ttl`]): a per-write or per-collection TTL is stored as the user metadata
//!   `strata-expires-at`; expired documents read as absent, [`Collection::sweep`] deletes
//!   them; the clock is injectable ([`ManualClock`]).
//! - Attachments ([`Attachment`]): binary blobs with content type and filename stored
//!   beside a document (`KEY.attachments/NAME`).
//! - [`VersionedRecords`]: a head plus immutable versions `v0, v1, …` (seed 004's
//!   `records/{collection}/{id}/head.json` and `versions/{collection}/{id}/v{n}.json`).
//!
//! ## Ambiguous outcomes
//!
//! A conditional write whose response is lost (timeout, reset connection, 5xx) may or may
//! not have been applied. Every write made by this crate is a [`Bucket`](storage_core::Bucket) conditional write:
//! it carries a random write id in the object's user metadata (`strata-write-id`) and the
//! ids and ETags of the writes it replaced (`strata-write-log`, as many as fit in S3's
//! 2 KiB user-metadata budget). After an ambiguous failure the bucket HEADs the key and
//! decides: applied (our id is there, or in the log of a later write), not applied (the
//! precondition still holds: the same conditional write is sent again), or lost to another
//! writer (the log shows who replaced the ETag we expected: a conflict, retried by
//! `update_with`). So a write is never applied twice and never reported failed when it
//! succeeded. If more writes landed before the check than the log remembers, the outcome
//! cannot be known and the call fails with
//! [`StorageError::Ambiguous`](storage_core::StorageError::Ambiguous) rather than guess
//! (not retryable; read the document and decide). The mechanism is
//! [`storage_core::conditional`]; this crate adds nothing of its own.
//!
//! ## Contention inside one process
//!
//! Compare-and-swap makes writers in different processes correct. Writers in the same
//! process are also queued per key (one queue per process, shared by every [`Collection`]
//! and [`VersionedRecords`] over the same store), so at most one of them has a conditional
//! write on a key in flight and
//! in-process contention costs no wasted round trips. Switch it off with
//! [`Collection::with_local_queue`] to let every task race on CAS alone.

mod attachments;
mod collection;
mod queue;
mod records;
mod rounds;
mod scheme;
mod sweep;
pub mod ttl;
mod write;

pub use attachments::{ATTACHMENTS_SUFFIX, Attachment, AttachmentInfo};
pub use collection::{
    Collection, JSON_CONTENT_TYPE, RESERVED_METADATA, SweepReport, Ttl, UpdateAction, Updated,
    Versioned, WriteOpts, Written,
};
pub use records::{Commit, Record, RecordLayout, VersionInfo, VersionedRecords};
pub use scheme::KeyScheme;
pub use storage_core::backoff::{BackoffStrategy, Jitter};
pub use sweep::SweepOptions;
pub use ttl::{Clock, ManualClock, SystemClock};
pub use write::{WRITE_ID_META, WRITE_LOG_META};
