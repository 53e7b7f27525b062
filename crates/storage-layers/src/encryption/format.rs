//! The stored format (see the [module docs](super#format-version-1)): sizes, the header,
//! and sealing and opening one chunk.

use aws_lc_rs::aead::{Aad, Nonce};
use bytes::{Bytes, BytesMut};
use storage_core::StorageError;

use super::keyring::{Cipher, random_bytes};
use super::{CHUNK_SIZE, HEADER_LEN, MAX_KEY_ID, TAG_LEN};

const MAGIC: &[u8; 4] = b"SGCM";
const VERSION: u8 = 1;
pub(super) const STORED_CHUNK: u64 = CHUNK_SIZE + TAG_LEN;

/// Chunks used for `plain` bytes (an empty object still has one, empty, chunk).
pub(super) fn chunk_count(plain: u64) -> u64 {
    plain.div_ceil(CHUNK_SIZE).max(1)
}

/// Stored size of an object with `plain` plaintext bytes.
pub fn stored_len(plain: u64) -> u64 {
    HEADER_LEN + plain + TAG_LEN * chunk_count(plain)
}

/// Plaintext size of a stored object of `stored` bytes, if that is a valid encrypted size.
pub fn plain_len(stored: u64) -> Option<u64> {
    let body = stored.checked_sub(HEADER_LEN)?;
    let n = body.div_ceil(STORED_CHUNK).max(1);
    let plain = body.checked_sub(TAG_LEN * n)?;
    (stored_len(plain) == stored).then_some(plain)
}

/// A parsed header.
#[derive(Clone)]
pub(super) struct Header {
    pub(super) raw: [u8; HEADER_LEN as usize],
    pub(super) key_id: String,
    nonce_base: [u8; 8],
}

impl Header {
    pub(super) fn new(key_id: &str) -> Header {
        let mut raw = [0u8; HEADER_LEN as usize];
        raw[0..4].copy_from_slice(MAGIC);
        raw[4] = VERSION;
        raw[5] = key_id.len() as u8;
        raw[6..10].copy_from_slice(&(CHUNK_SIZE as u32).to_le_bytes());
        raw[10..10 + key_id.len()].copy_from_slice(key_id.as_bytes());
        let mut nonce_base = [0u8; 8];
        random_bytes(&mut nonce_base);
        raw[42..50].copy_from_slice(&nonce_base);
        Header {
            raw,
            key_id: key_id.to_string(),
            nonce_base,
        }
    }

    /// `Ok(None)`: not an encrypted object (no magic).
    pub(super) fn parse(b: &[u8], key: &str) -> Result<Option<Header>, StorageError> {
        if b.len() < HEADER_LEN as usize || &b[0..4] != MAGIC {
            return Ok(None);
        }
        let bad = |reason: String| corrupt(key, reason);
        if b[4] != VERSION {
            return Err(bad(format!(
                "encryption format version {} is not supported (this build reads version {VERSION}); upgrade Strata",
                b[4]
            )));
        }
        let id_len = b[5] as usize;
        let chunk = u32::from_le_bytes(b[6..10].try_into().expect("4 bytes"));
        if id_len == 0 || id_len > MAX_KEY_ID || u64::from(chunk) != CHUNK_SIZE {
            return Err(bad("the encryption header is malformed".into()));
        }
        let key_id = std::str::from_utf8(&b[10..10 + id_len])
            .map_err(|_| bad("the encryption header's key id is not text".into()))?
            .to_string();
        let mut raw = [0u8; HEADER_LEN as usize];
        raw.copy_from_slice(&b[..HEADER_LEN as usize]);
        let mut nonce_base = [0u8; 8];
        nonce_base.copy_from_slice(&b[42..50]);
        Ok(Some(Header {
            raw,
            key_id,
            nonce_base,
        }))
    }

    /// Chunk `index`'s nonce: the object's random base, then the index (big-endian u32).
    /// Unique per key as long as nonce bases do not collide (see the module docs).
    fn nonce(&self, index: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&self.nonce_base);
        n[8..].copy_from_slice(&(index as u32).to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    fn aad(&self, index: u64, last: bool) -> [u8; HEADER_LEN as usize + 9] {
        let mut a = [0u8; HEADER_LEN as usize + 9];
        a[..HEADER_LEN as usize].copy_from_slice(&self.raw);
        a[HEADER_LEN as usize..HEADER_LEN as usize + 8].copy_from_slice(&index.to_be_bytes());
        a[HEADER_LEN as usize + 8] = u8::from(last);
        a
    }

    /// Encrypt one chunk in place, appending its tag.
    pub(super) fn seal(
        &self,
        cipher: &Cipher,
        index: u64,
        last: bool,
        buf: &mut Vec<u8>,
        start: usize,
    ) {
        let tag = cipher
            .seal_in_place_separate_tag(
                self.nonce(index),
                Aad::from(self.aad(index, last)),
                &mut buf[start..],
            )
            .expect("AES-GCM encryption of a chunk under 64 GiB cannot fail");
        buf.extend_from_slice(tag.as_ref());
    }

    /// Decrypt one stored chunk (ciphertext + tag).
    pub(super) fn open(
        &self,
        cipher: &Cipher,
        index: u64,
        last: bool,
        mut chunk: BytesMut,
        key: &str,
    ) -> Result<Bytes, StorageError> {
        if chunk.len() < TAG_LEN as usize {
            return Err(corrupt(key, format!("chunk {index} is truncated")));
        }
        let tag = chunk.split_off(chunk.len() - TAG_LEN as usize);
        cipher
            .open_in_place_separate_tag(
                self.nonce(index),
                Aad::from(self.aad(index, last)),
                &tag,
                &mut chunk,
            )
            .map_err(|_| {
                corrupt(
                    key,
                    format!(
                        "authentication failed for chunk {index}: the key `{}` is not the one this object was encrypted with, or the stored bytes were altered",
                        self.key_id
                    ),
                )
            })?;
        Ok(chunk.freeze())
    }
}

pub(super) fn corrupt(key: &str, reason: String) -> StorageError {
    StorageError::Corrupt {
        backend: "encryption".into(),
        key: key.to_string(),
        reason,
    }
}

/// Encrypt a whole plaintext.
pub(super) fn encrypt_all(cipher: &Cipher, header: &Header, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored_len(plain.len() as u64) as usize);
    out.extend_from_slice(&header.raw);
    let n = chunk_count(plain.len() as u64);
    for i in 0..n {
        let s = (i * CHUNK_SIZE) as usize;
        let e = (((i + 1) * CHUNK_SIZE) as usize).min(plain.len());
        let start = out.len();
        out.extend_from_slice(&plain[s..e]);
        header.seal(cipher, i, i + 1 == n, &mut out, start);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::ObjectStoreExt;
    use object_store::path::Path;
    use storage_core::{MemoryStore, Secret};

    use super::*;
    use crate::encryption::{EncryptionLayer, Keyring};

    #[test]
    fn size_arithmetic_round_trips() {
        for p in [
            0,
            1,
            100,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE,
            1_000_000,
        ] {
            assert_eq!(plain_len(stored_len(p)), Some(p), "{p}");
        }
        assert_eq!(plain_len(10), None);
        assert_eq!(plain_len(HEADER_LEN + TAG_LEN + STORED_CHUNK), None);
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The on-disk format is fixed: these bytes were written by the earlier implementation
    /// (the `aes-gcm` crate) from a fixed key and nonce base, so objects stored before the
    /// switch to aws-lc-rs must keep decrypting, and new writes must be bit-identical.
    #[tokio::test]
    async fn known_answers_from_the_aes_gcm_crate_still_hold() {
        let ring = Keyring::new()
            .with_key("kat", &Secret::new("0123456789abcdef".repeat(4)))
            .unwrap();
        let (_, cipher) = ring.primary().unwrap();
        let header_hex = "5347434d0103000001006b6174000000000000000000000000000000000000000000000000000000000001020304050607080000000000000000000000000000";
        let header = Header::parse(&unhex(header_hex), "kat").unwrap().unwrap();

        let small = b"strata encryption format v1";
        let small_stored = unhex(&format!(
            "{header_hex}0b102429d3762df4ae5dc025a94b8b5ff7aee11501d2d2492e4e192e52800729b652d40d0ac550242c90ab"
        ));
        assert_eq!(encrypt_all(cipher, &header, small), small_stored);

        // Two chunks: the second nonce and associated data carry index 1 and the last flag.
        let big: Vec<u8> = (0..CHUNK_SIZE as usize + 5)
            .map(|i| (i % 251) as u8)
            .collect();
        let out = encrypt_all(cipher, &header, &big);
        let (c0, t0) = (HEADER_LEN as usize, (HEADER_LEN + CHUNK_SIZE) as usize);
        assert_eq!(out.len(), 65637);
        assert_eq!(out[c0..c0 + 16], unhex("7865544ba3120b96c837b857d532ec3f"));
        assert_eq!(out[t0..t0 + 16], unhex("ffa92f0488d03652b6bbb8850c0f370e"));
        assert_eq!(
            out[t0 + 16..],
            unhex("af92407a7b960e3e0df0438ad9de2b7c287deae5a9")
        );
        assert_eq!(
            encrypt_all(cipher, &header, &[])[c0..],
            unhex("6d9a5c43d7d062908e7764367c0866a1")
        );

        // And the old object reads back through the layer, whole and by range.
        let mem = Arc::new(MemoryStore::new());
        let p = Path::from("old");
        mem.put(&p, small_stored.into()).await.unwrap();
        let store = EncryptionLayer::new(ring).wrap(Arc::clone(&mem));
        let got = store.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], small);
        assert_eq!(
            &store.get_range(&p, 7..17).await.unwrap()[..],
            &small[7..17]
        );
    }
}
