//! Test support shared by the layer tests.
#![allow(dead_code)]

use storage_layers::encryption::{EncryptionLayer, Keyring};

/// A keyring holding one fresh key, `k1`.
pub fn one_key() -> Keyring {
    Keyring::new()
        .with_key("k1", &Keyring::generate_key())
        .unwrap()
}

/// An encryption layer under [`one_key`].
pub fn encryption() -> EncryptionLayer {
    EncryptionLayer::new(one_key())
}
