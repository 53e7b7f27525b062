//! Named keys (see the [module docs](super#keys)).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use storage_core::{Secret, StorageError};

use super::MAX_KEY_ID;

/// An AES-256-GCM key ready for use, shared by the clones of a keyring and by every
/// in-flight operation (aws-lc-rs keys are not `Clone`).
pub(super) type Cipher = Arc<LessSafeKey>;

/// Fill `buf` from the operating system's secure random source.
pub(super) fn random_bytes(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("the operating system's random source failed");
}

/// Named AES-256 keys; see the [module docs](super#keys).
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<(String, Cipher)>,
    primary: Option<usize>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids())
            .field("primary", &self.primary_id())
            .finish()
    }
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Keyring::default()
    }

    /// A new random key, base64-encoded, for `strata` key generation and tests.
    pub fn generate_key() -> Secret {
        use base64::Engine;
        let mut k = [0u8; 32];
        random_bytes(&mut k);
        Secret::new(base64::engine::general_purpose::STANDARD.encode(k))
    }

    /// Add key `id` (1-32 ASCII letters, digits, `-`, `_`, `.`) with the 32-byte value in
    /// `key` (64 hex characters or base64). It becomes the primary key.
    pub fn with_key(mut self, id: &str, key: &Secret) -> storage_core::Result<Self> {
        let field = format!("encryption.keys.{id}");
        if id.is_empty()
            || id.len() > MAX_KEY_ID
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(StorageError::invalid_config(
                field,
                format!("key id must be 1-{MAX_KEY_ID} ASCII letters, digits, `-`, `_` or `.`"),
            ));
        }
        let bytes = decode_key(key.expose()).ok_or_else(|| {
            StorageError::invalid_config(
                &field,
                "the key must be 32 bytes written as 64 hex characters or as base64 (44 characters); generate one with `openssl rand -base64 32`",
            )
        })?;
        let cipher = Arc::new(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte AES-256 key"),
        ));
        self.keys.retain(|(k, _)| k != id);
        self.keys.push((id.to_string(), cipher));
        self.primary = Some(self.keys.len() - 1);
        Ok(self)
    }

    /// Encrypt new objects with key `id` (which must be in the keyring).
    pub fn with_primary(mut self, id: &str) -> storage_core::Result<Self> {
        let i = self.keys.iter().position(|(k, _)| k == id).ok_or_else(|| {
            StorageError::invalid_config(
                "encryption.primary",
                format!(
                    "key id `{id}` is not in the keyring (known: {})",
                    self.key_ids().join(", ")
                ),
            )
        })?;
        self.primary = Some(i);
        Ok(self)
    }

    /// Key ids, in the order added.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// The key id new objects are encrypted with.
    pub fn primary_id(&self) -> Option<&str> {
        self.primary.map(|i| self.keys[i].0.as_str())
    }

    pub(super) fn primary(&self) -> Option<(&str, &Cipher)> {
        self.primary
            .map(|i| (self.keys[i].0.as_str(), &self.keys[i].1))
    }

    pub(super) fn get(&self, id: &str) -> Option<&Cipher> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, c)| c)
    }
}

fn decode_key(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let s = s.trim();
    let bytes = if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
            .ok()?
    };
    (bytes.len() == 32).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encryption::test_support::keyring;

    #[test]
    fn keys_are_validated_and_never_shown() {
        let err = Keyring::new()
            .with_key("k", &Secret::new("too-short"))
            .unwrap_err();
        assert!(err.to_string().contains("32 bytes"), "{err}");
        assert!(!err.to_string().contains("too-short"));
        assert!(
            Keyring::new()
                .with_key("bad id!", &Keyring::generate_key())
                .is_err()
        );
        let kr = keyring();
        let dbg = format!("{kr:?}");
        assert!(dbg.contains("k1") && !dbg.contains("cipher"), "{dbg}");
    }
}
