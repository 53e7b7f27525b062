//! Conditional writes larger than one part, held whole under a server-wide byte budget.
//!
//! A condition (`If-Match`, `If-None-Match: *`) is only atomic where the backend checks it
//! and replaces the object in one step, and every backend Strata has does that only for a
//! single-request write: S3's conditional PutObject, the local folder's compare-then-rename
//! under its per-key lock, the in-memory store's CAS. `object_store` has no conditional
//! multipart completion (its S3 client sends `If-None-Match` on a completion only inside
//! `copy_if_not_exists`, never `If-Match`, and the local folder completes unconditionally),
//! and no conditional copy or rename onto an existing key, so "stage the object, then swap
//! it in if the ETag still matches" has no atomic last step. `Bucket::put_stream` therefore
//! refuses a conditional body over one part rather than check and write in two steps.
//!
//! The server instead holds such a body whole and hands it to `Bucket::put_with`: one
//! conditional request, with Strata's resolution of lost answers, through every layer of
//! the served handle. Memory stays bounded because every write over one part first takes
//! its size from one budget (`serve.max_conditional_bytes`, 256 MiB by default), all of it
//! at once and before any byte is read, so two writes can never each hold half and wait for
//! the rest; a write larger than the whole budget is refused before anything is read, with
//! the setting named. Writes up to one part take nothing from it: they were held whole
//! before too, and the request limits (`max_parts_in_flight`) bound them.

use bytes::{Bytes, BytesMut};
use futures::stream::{Stream, StreamExt};
use s3s::{S3Error, S3ErrorCode, S3Result};
use storage_core::{Bucket, DEFAULT_PART_SIZE, StorageError, WriteCondition, etag_eq};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::to_s3;

/// Default of `serve.max_conditional_bytes`.
pub const DEFAULT_MAX_CONDITIONAL_BYTES: u64 = 256 * 1024 * 1024;

/// The budget counts in KiB, so a permit count fits `acquire_many`'s `u32` for any size.
const UNIT: u64 = 1024;

/// The byte budget of conditional writes over one part.
#[derive(Debug)]
pub(crate) struct Budget {
    max: u64,
    units: Semaphore,
}

impl Budget {
    pub(crate) fn new(max: u64) -> Budget {
        let units = usize::try_from(max.div_ceil(UNIT))
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Budget {
            max,
            units: Semaphore::new(units),
        }
    }

    /// Room for a conditional body of `size` bytes: `None` for one that fits a part (no
    /// budget needed); waits while other writes hold the budget; refused when `size`
    /// exceeds the whole budget.
    pub(crate) async fn hold(&self, size: u64) -> S3Result<Option<SemaphorePermit<'_>>> {
        if size <= DEFAULT_PART_SIZE as u64 {
            return Ok(None);
        }
        if size > self.max {
            crate::metrics::error(S3ErrorCode::EntityTooLarge.as_str());
            return Err(S3Error::with_message(
                S3ErrorCode::EntityTooLarge,
                format!(
                    "a conditional write (If-Match / If-None-Match) of {size} bytes: the backend applies a condition only to a write sent in one request, so the server holds the body whole, and it holds at most {} bytes (serve.max_conditional_bytes). Raise that setting, or write without the condition",
                    self.max
                ),
            ));
        }
        let units = u32::try_from(size.div_ceil(UNIT)).unwrap_or(u32::MAX);
        let permit =
            self.units.acquire_many(units).await.map_err(|_| {
                S3Error::with_message(S3ErrorCode::ServiceUnavailable, "shutting down")
            })?;
        Ok(Some(permit))
    }
}

/// Fail fast, before a large body is gathered, when `condition` already fails on what
/// `key` holds now. Only a shortcut: the write itself checks the condition atomically, and
/// an If-Match on a missing key is left to it (backends differ on 404 or 412).
pub(crate) async fn precheck(
    bucket: &Bucket,
    key: &str,
    condition: &WriteCondition,
) -> S3Result<()> {
    let failed = match condition {
        WriteCondition::Overwrite => return Ok(()),
        WriteCondition::IfAbsent => match bucket.head_if_exists(key).await.map_err(to_s3)? {
            Some(_) => "the object exists (If-None-Match: *)",
            None => return Ok(()),
        },
        WriteCondition::IfMatch { etag, .. } => {
            match bucket.head_if_exists(key).await.map_err(to_s3)? {
                Some(info) if !info.etag.as_deref().is_some_and(|e| etag_eq(e, etag)) => {
                    "the object's ETag is not the one in If-Match"
                }
                _ => return Ok(()),
            }
        }
    };
    crate::metrics::error(S3ErrorCode::PreconditionFailed.as_str());
    Err(S3Error::with_message(
        S3ErrorCode::PreconditionFailed,
        format!("`{key}`: {failed}"),
    ))
}

/// The whole of `body`, which must be exactly `size` bytes long, in one buffer.
pub(crate) async fn collect<S>(body: S, size: u64) -> storage_core::Result<Bytes>
where
    S: Stream<Item = storage_core::Result<Bytes>>,
{
    let expected = usize::try_from(size).map_err(|_| {
        StorageError::invalid_input("body", format!("{size} bytes do not fit in memory"))
    })?;
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::with_capacity(expected);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > expected {
            return Err(StorageError::invalid_input(
                "body",
                format!("the body is longer than the {size} bytes declared"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.len() != expected {
        return Err(StorageError::invalid_input(
            "body",
            format!(
                "the body ended after {} of the {size} bytes declared",
                buf.len()
            ),
        ));
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_part_takes_nothing_larger_takes_its_size_and_too_large_is_refused() {
        let b = Budget::new(20 * 1024 * 1024);
        assert!(b.hold(DEFAULT_PART_SIZE as u64).await.unwrap().is_none());
        let p = b.hold(12 * 1024 * 1024).await.unwrap().expect("a permit");
        assert_eq!(p.num_permits(), 12 * 1024);
        assert_eq!(b.units.available_permits(), 8 * 1024);
        // A second 12 MiB write waits until the first one is done.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            b.hold(12 * 1024 * 1024),
        )
        .await;
        assert!(waiting.is_err(), "the budget is shared");
        drop(p);
        assert!(b.hold(12 * 1024 * 1024).await.unwrap().is_some());
        let e = b.hold(20 * 1024 * 1024 + 1).await.unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::EntityTooLarge);
        assert!(
            e.message().unwrap().contains("serve.max_conditional_bytes"),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn collect_checks_the_declared_length() {
        let chunks = |v: Vec<&'static [u8]>| {
            futures::stream::iter(v.into_iter().map(|c| Ok(Bytes::from_static(c))))
        };
        assert_eq!(
            collect(chunks(vec![b"ab", b"cd"]), 4).await.unwrap(),
            Bytes::from_static(b"abcd")
        );
        let long = collect(chunks(vec![b"ab", b"cde"]), 4).await.unwrap_err();
        assert!(long.to_string().contains("longer"), "{long}");
        let short = collect(chunks(vec![b"ab"]), 4).await.unwrap_err();
        assert!(short.to_string().contains("ended after 2"), "{short}");
    }
}
