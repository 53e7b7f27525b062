//! What the layers that change stored bytes (compression, encryption) share: they refuse
//! presigned URLs with the reason and clear the presign capability (a URL would hand out the
//! stored bytes, not what the application wrote), stream multipart uploads in parts of S3's
//! minimum size, and answer range errors the same way.

use std::fmt;

use async_trait::async_trait;
use futures::FutureExt;
use object_store::{MultipartUpload, PutPayload, PutResult, UploadPart};
use storage_core::StorageError;

use crate::util::os_err;

/// Smallest part a transforming multipart upload sends to the backend (S3's minimum).
const MIN_PART: usize = 5 * 1024 * 1024;

/// How a layer transforms a multipart upload as it streams (compresses, encrypts): the
/// object's bytes go in, in order; transformed bytes come out, and are sent as a part
/// whenever at least [`MIN_PART`] of them are ready; the rest goes in the last part on
/// `complete`.
pub(crate) trait PartEncoder: Send + 'static {
    /// `{NAME}Upload(upload)` is how the upload prints.
    const NAME: &'static str;

    /// Take in the object's next bytes.
    fn write(&mut self, data: &[u8]) -> Result<(), StorageError>;

    /// Transformed bytes ready to send.
    fn buffered(&self) -> usize;

    /// Take out the transformed bytes ready to send.
    fn take(&mut self) -> Vec<u8>;

    /// The rest of the transformed bytes, once the object is whole.
    fn finish(self) -> Result<Vec<u8>, StorageError>;
}

/// A multipart upload sent through a [`PartEncoder`].
pub(crate) struct EncodingUpload<E: PartEncoder> {
    upload: Box<dyn MultipartUpload>,
    /// `None` once the upload was completed or aborted.
    encoder: Option<E>,
}

impl<E: PartEncoder> EncodingUpload<E> {
    pub fn new(upload: Box<dyn MultipartUpload>, encoder: E) -> Self {
        EncodingUpload {
            upload,
            encoder: Some(encoder),
        }
    }
}

impl<E: PartEncoder> fmt::Debug for EncodingUpload<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}Upload({:?})", E::NAME, self.upload)
    }
}

#[async_trait]
impl<E: PartEncoder> MultipartUpload for EncodingUpload<E> {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let Some(enc) = self.encoder.as_mut() else {
            return futures::future::ready(Err(os_err(StorageError::invalid_input(
                "put_part",
                "the upload was already completed",
            ))))
            .boxed();
        };
        for chunk in data.iter() {
            if let Err(e) = enc.write(chunk) {
                return futures::future::ready(Err(os_err(e))).boxed();
            }
        }
        if enc.buffered() >= MIN_PART {
            let part = enc.take();
            return self.upload.put_part(part.into());
        }
        futures::future::ready(Ok(())).boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        if let Some(enc) = self.encoder.take() {
            let rest = enc.finish().map_err(os_err)?;
            self.upload.put_part(rest.into()).await?;
        }
        self.upload.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.encoder = None;
        self.upload.abort().await
    }
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
        #[deny(clippy::missing_trait_methods)]
        impl<T: storage_core::StrataStore> storage_core::StrataStore for $store<T> {
            storage_core::store_fn!(capabilities, |this| this
                .inner
                .capabilities()
                .with_presign(false));
            storage_core::forward_object_store!(@methods inner: key_prefix, delete_if_match);
            storage_core::store_fn!(presign, |_, _, _, _| Err(storage_core::store::not_supported(
                $store_label,
                $why
            )));
        }
    };
}
pub(crate) use byte_transforming_strata_store;
