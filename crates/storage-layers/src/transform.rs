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
        #[async_trait::async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: storage_core::StrataStore> storage_core::StrataStore for $store<T> {
            fn capabilities(&self) -> storage_core::Capabilities {
                self.inner.capabilities().with_presign(false)
            }

            async fn delete_if_match(
                &self,
                location: &object_store::path::Path,
                etag: &str,
            ) -> object_store::Result<()> {
                self.inner.delete_if_match(location, etag).await
            }

            async fn presign(
                &self,
                _: storage_core::PresignMethod,
                _: &object_store::path::Path,
                _: std::time::Duration,
            ) -> object_store::Result<url::Url> {
                Err(storage_core::store::not_supported($store_label, $why))
            }
        }
    };
}
pub(crate) use byte_transforming_strata_store;
