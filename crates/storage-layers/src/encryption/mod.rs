//! Client-side encryption: AES-256-GCM in 64 KiB chunks, so range reads decrypt only the
//! chunks they need.
//!
//! # Format (version 1)
//!
//! ```text
//! header (64 bytes): "SGCM" | version=1 | key-id length | chunk size (u32 LE, 65536)
//!                    | key id (32 bytes, zero padded) | nonce base (8 random bytes) | zeros
//! chunk i:           AES-256-GCM(plaintext[i*64KiB .. (i+1)*64KiB]) | 16-byte tag
//! ```
//!
//! Chunk `i` uses nonce `nonce base ‖ i (u32 BE)` and authenticates `header ‖ i ‖ last?` as
//! associated data. So any changed byte (header, ciphertext or tag) fails authentication;
//! reordered, dropped or appended chunks fail too (wrong index or a missing "last" flag);
//! and a truncated object cannot pass as a shorter one. A chunk's bytes are returned only
//! after its tag checked out: a reader gets the right bytes or `StorageError::Corrupt`,
//! never garbage. The random 8-byte nonce base makes nonce reuse under one key a birthday
//! event at about 2^32 objects; rotate keys well before that.
//!
//! # Keys
//!
//! A [`Keyring`] holds named 32-byte keys given as [`Secret`](storage_core::Secret)s (64 hex characters or
//! base64); the primary key (the last added, or the one named with
//! [`Keyring::with_primary`]) encrypts new objects and every key can decrypt. Rotation: add
//! the new key, keep the old ones until everything written with them was rewritten. An
//! object written with a key id missing from the keyring fails with `InvalidConfig` naming
//! that id; a key with the right id but wrong bytes fails with `Corrupt`. Keys are never
//! logged: `Debug` shows key ids only.
//!
//! # What size, range and ETag mean
//!
//! - `get` and `head` report the **plaintext** size; `list` does too (the format makes the
//!   stored size a function of the plaintext size) unless plaintext objects are allowed,
//!   when listings show stored sizes.
//! - Ranges are plaintext ranges: a range read fetches the 64-byte header and the chunks
//!   covering the range (pinned to the header's ETag with If-Match), nothing else.
//! - The ETag is the backend's ETag of the ciphertext: conditional reads and writes work
//!   unchanged. Each put encrypts with a fresh nonce base, so writing the same plaintext
//!   twice gives two ETags.
//! - The object key is not authenticated, so server-side copy and rename keep working; a
//!   party who can write the bucket can swap two encrypted objects (but not forge or alter
//!   one).
//!
//! # Presigned and public URLs
//!
//! They are signed for the stored object and bypass every layer: a presigned GET of an
//! encrypted object downloads ciphertext, which only a holder of the key can decrypt (with
//! this layer). Use SSE (below) for objects shared through URLs.
//!
//! # Server-side encryption
//!
//! SSE-S3, SSE-KMS and SSE-C are S3 settings, configured in `storage-s3`; they protect data
//! at rest on the provider's side and combine freely with this layer.
//!
//! # Where it belongs
//!
//! Below compression (ciphertext does not compress) and the cache (cache plaintext, decrypt
//! once), above retry (encrypt once; resend the same bytes): `metrics → cache → compression
//! → **encryption** → retry → …`.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::{ObjectStoreExt, path::Path};
//! use storage_core::{Layer, MemoryStore, Secret};
//! use storage_layers::encryption::{EncryptionLayer, Keyring};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
//! let key = Secret::new("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
//! let keyring = Keyring::new().with_key("2026-01", &key)?;
//! let backend = Arc::new(MemoryStore::new());
//! let store = EncryptionLayer::new(keyring).layer(backend.clone());
//!
//! store.put(&Path::from("secret.txt"), "attack at dawn".into()).await.unwrap();
//! let raw = backend.get(&Path::from("secret.txt")).await.unwrap().bytes().await.unwrap();
//! assert!(!raw.windows(6).any(|w| w == b"attack"));
//! let back = store.get(&Path::from("secret.txt")).await.unwrap().bytes().await.unwrap();
//! assert_eq!(back, "attack at dawn");
//! # Ok(()) }
//! ```

mod format;
mod keyring;
mod store;
mod upload;

pub use format::{plain_len, stored_len};
pub use keyring::Keyring;
pub use store::{EncryptionLayer, EncryptionStore};

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: u64 = 64 * 1024;
/// Header length.
pub const HEADER_LEN: u64 = 64;
/// Authentication tag per chunk.
pub const TAG_LEN: u64 = 16;
/// Longest key id.
pub const MAX_KEY_ID: usize = 32;
/// Stored metadata marking an encrypted object (value: the format name).
pub const ENCRYPTION_METADATA: &str = "strata-encryption";
/// The format name stored in [`ENCRYPTION_METADATA`].
pub const FORMAT: &str = "aes256gcm-chunked-v1";

/// Helpers shared by the tests of the submodules.
#[cfg(test)]
mod test_support {
    use bytes::Bytes;

    use super::Keyring;

    pub(super) fn keyring() -> Keyring {
        Keyring::new()
            .with_key("k1", &Keyring::generate_key())
            .unwrap()
    }

    pub(super) fn data(n: usize) -> Bytes {
        (0..n)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<_>>()
            .into()
    }
}
