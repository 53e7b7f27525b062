//! Retry with exponential backoff, full jitter, an attempt limit and a shared retry budget.
//!
//! Only errors for which [`StorageError::is_retryable`](storage_core::StorageError::is_retryable) holds are retried (timeouts,
//! unavailability, rate limits, 5xx): not-found, preconditions, bad input and auth failures
//! are returned at once.
//!
//! # Where it belongs
//!
//! Outside the circuit breaker, the concurrency limit and the per-attempt timeout, inside
//! compression and encryption:
//! `… → compression → encryption → **retry** → breaker → limit → timeout → backend`.
//! - Breaker inside retry: every attempt is counted, and once the breaker opens its
//!   `CircuitOpen` (not retryable) stops the retry loop at once. With the breaker outside,
//!   a dead backend takes a full retry storm per call before the breaker sees one failure.
//! - Limit inside retry: a call waiting out its backoff does not hold a concurrency permit.
//! - Timeout inside retry: each attempt gets its own deadline and a hung attempt is retried;
//!   with the timeout outside, one hung attempt spends the whole deadline.
//! - Compression and encryption outside retry: the payload is encoded once and the same bytes
//!   are resent; the conditional-write check below compares stored bytes exactly.
//!
//! # Conditional writes are not retried here
//!
//! A `PutMode::Create` or `PutMode::Update` write is passed through once, whatever it
//! answers. After an ambiguous failure (timeout, reset, 5xx: the backend may have applied it)
//! only a layer that knows the write's identity can tell "my earlier attempt landed" from
//! "another writer won", so the one owner of those retries is
//! [`Bucket`](storage_core::Bucket)'s conditional write (`storage_core::conditional`), which
//! stamps a write id into the object's metadata and checks it. A blind resend here would
//! answer `Precondition` for our own write and make a compare-and-swap loop apply its change
//! twice. `copy` with `CopyMode::Create` and `rename` without replace are checked after an
//! ambiguous failure (the destination holding the source's bytes, or the source gone and the
//! destination present, is success).
//!
//! # Deadline
//!
//! Besides the attempt count, no retry starts later than the deadline (default 30 s) after
//! the first attempt began ([`RetryLayer::with_deadline`]), so a slow backend cannot hold a
//! call for attempts × timeout.
//!
//! # Streams
//!
//! A listing torn mid-way (a cut page) resumes after the last entry it yielded, where the
//! store lists in key order (S3); see `resumable_list`.
//!
//! A GET whose body fails mid-way with a retryable error is resumed from the next byte with a
//! ranged GET pinned to the first response's ETag (`If-Match`), so a torn stream neither
//! restarts nor mixes two versions. `list` is retried only if it fails before its first
//! entry. Multipart parts and completions are not retried here: each `put_part` call takes
//! the next part number, so a part cannot be resent under its own number, and `complete`
//! cannot be called twice, through the `MultipartUpload` trait. The S3 client's own HTTP
//! retry covers both (it resends the same request); a failure beyond it fails the upload,
//! which the caller aborts and restarts (starting an upload is retried).
//!
//! # One retrier per request
//!
//! The S3 backend's HTTP client can retry too. Stacked, the two multiply (4 attempts here ×
//! 4 there = 16 requests for one call), so there is one owner: when a stack has a retry
//! layer, the facade builds its S3 clients with HTTP retries off (`max_retries = 0`), and
//! an explicit `max_retries` above 0 next to `[layers.retry]` is a configuration error. The
//! S3 backend never lets its HTTP client resend a conditional request in any case.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use object_store::{ObjectStoreExt, path::Path};
//! use storage_core::{Layer, MemoryStore};
//! use storage_layers::{chaos::ChaosLayer, retry::RetryLayer};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let flaky = ChaosLayer::default().with_seed(3).with_error_rate(0.5)
//!     .layer(Arc::new(MemoryStore::new()));
//! let retry = RetryLayer::default().with_max_attempts(10).with_base_delay(Duration::ZERO);
//! let store = retry.layer(flaky);
//! store.put(&Path::from("a"), "v".into()).await.unwrap();
//! assert_eq!(store.get(&Path::from("a")).await.unwrap().bytes().await.unwrap(), "v");
//! # }
//! ```

mod ambiguity;
mod budget;
mod policy;
mod resume;
mod store;

use std::time::Duration;

pub use budget::RetryBudget;
pub use policy::{RetryLayer, RetryStats};
pub use store::RetryStore;

/// Default [`RetryLayer::with_deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Helpers shared by the tests of the submodules.
#[cfg(test)]
mod test_support {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{RetryBudget, RetryLayer};

    pub(super) fn fast() -> RetryLayer {
        RetryLayer::default()
            .with_base_delay(Duration::ZERO)
            .with_budget(Arc::new(RetryBudget::unlimited()))
    }
}
