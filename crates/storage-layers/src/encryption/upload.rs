//! Streaming encryption of a multipart upload.

use storage_core::StorageError;

use super::CHUNK_SIZE;
use super::format::Header;
use super::keyring::Cipher;
use crate::transform::PartEncoder;

/// Encrypts a multipart upload as it streams: whole chunks are sealed as data arrives; the
/// final chunk is sealed (with its "last" flag) when the upload completes.
pub(super) struct Sealer {
    pub(super) cipher: Cipher,
    pub(super) header: Header,
    /// Sealed bytes not yet sent.
    pub(super) out: Vec<u8>,
    /// Plaintext not yet sealed (always kept non-empty until complete, so the final chunk
    /// is known when it is sealed).
    pub(super) pending: Vec<u8>,
    pub(super) next: u64,
}

impl Sealer {
    fn seal_chunk(&mut self, plain: &[u8], last: bool) {
        let start = self.out.len();
        self.out.extend_from_slice(plain);
        self.header
            .seal(&self.cipher, self.next, last, &mut self.out, start);
        self.next += 1;
    }
}

impl PartEncoder for Sealer {
    const NAME: &'static str = "Encrypting";

    fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        self.pending.extend_from_slice(data);
        // Seal every whole chunk except one, which may turn out to be the last.
        let c = CHUNK_SIZE as usize;
        let whole = self.pending.len().saturating_sub(1) / c;
        if whole > 0 {
            let rest = self.pending.split_off(whole * c);
            let sealed = std::mem::replace(&mut self.pending, rest);
            for piece in sealed.chunks(c) {
                self.seal_chunk(piece, false);
            }
        }
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.out.len()
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn finish(mut self) -> Result<Vec<u8>, StorageError> {
        let last = std::mem::take(&mut self.pending);
        self.seal_chunk(&last, true);
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::path::Path;
    use object_store::{ObjectStoreExt, WriteMultipart};
    use storage_core::MemoryStore;

    use crate::encryption::test_support::{data, keyring};
    use crate::encryption::{CHUNK_SIZE, EncryptionLayer, stored_len};

    #[tokio::test]
    async fn multipart_streams_encrypt_chunk_by_chunk() {
        let mem = Arc::new(MemoryStore::new());
        let store = EncryptionLayer::new(keyring()).wrap(Arc::clone(&mem));
        for n in [0usize, CHUNK_SIZE as usize * 3, 6 * 1024 * 1024 + 123] {
            let p = Path::from(format!("mp{n}"));
            let d = data(n);
            let mut w = WriteMultipart::new_with_chunk_size(
                store.put_multipart(&p).await.unwrap(),
                100_000,
            );
            w.write(&d);
            w.finish().await.unwrap();
            assert_eq!(mem.head(&p).await.unwrap().size, stored_len(n as u64));
            assert_eq!(
                store.get(&p).await.unwrap().bytes().await.unwrap(),
                d,
                "{n}"
            );
        }
    }
}
