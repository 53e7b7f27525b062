//! What the layers that change stored bytes (compression, encryption) share: they refuse
//! presigned URLs with the reason and clear the presign capability (a URL would hand out the
//! stored bytes, not what the application wrote), stream multipart uploads in parts of S3's
//! minimum size, and answer range errors the same way.

use futures::FutureExt;
use object_store::UploadPart;
use storage_core::StorageError;

use crate::util::os_err;

/// Smallest part a transforming multipart upload sends to the backend (S3's minimum).
pub(crate) const MIN_PART: usize = 5 * 1024 * 1024;

/// What `put_part` answers once the upload was completed or aborted.
pub(crate) fn upload_finished() -> UploadPart {
    futures::future::ready(Err(os_err(StorageError::invalid_input(
        "put_part",
        "the upload was already completed",
    ))))
    .boxed()
}

/// A range the object cannot serve, as `InvalidInput` naming the key.
pub(crate) fn range_err(key: &str, e: impl std::fmt::Display) -> object_store::Error {
    os_err(StorageError::invalid_input(
        format!("range of `{key}`"),
        e.to_string(),
    ))
}

/// `r` must lie within an object of `len` (transformed-back) bytes.
pub(crate) fn check_range(
    key: &str,
    r: &std::ops::Range<u64>,
    len: u64,
) -> object_store::Result<()> {
    if r.start > r.end || r.end > len {
        return Err(range_err(
            key,
            format!("range {r:?} is outside the object's {len} bytes"),
        ));
    }
    Ok(())
}

/// The contract's extra methods of a byte-transforming store `Name<T>` (field `inner`):
/// capabilities without presign, conditional deletes passed through (they name the stored
/// object, whose ETag the layer reports unchanged), presigned URLs refused as
/// `NotSupported { store: $store_label, operation: $why }`.
macro_rules! byte_transforming_strata_store {
    ($store:ident, $store_label:expr, $why:expr) => {
        crate::util::strata_store!($store {
            capabilities: |this| this.inner.capabilities().with_presign(false),
            delete_if_match: |this, location, etag| {
                this.inner.delete_if_match(location, etag).await
            },
            presign: |_, _, _, _| Err(storage_core::store::not_supported($store_label, $why)),
        });
    };
}
pub(crate) use byte_transforming_strata_store;
