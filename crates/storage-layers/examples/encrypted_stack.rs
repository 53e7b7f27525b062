//! A layered store on a local folder: compression, client-side encryption, and retries over
//! a backend that fails 30 % of its calls. No credentials, no server.
//!
//! `cargo run -p storage-layers --example encrypted_stack`
//!
//! (Encryption is behind the non-default `encryption` feature; the crate's dev-dependencies
//! switch on `full`, so the command above needs no `--features`.)
//!
//! It stacks `metrics → compression → encryption → retry → chaos → local folder`, then:
//! 1. writes 20 JSON documents and reads them back intact although the chaos layer failed
//!    about a third of the backend calls (the retry layer absorbed every one);
//! 2. shows the bytes on disk are compressed-then-encrypted: no plaintext, smaller than the
//!    input;
//! 3. flips one stored byte and shows the read fails with `StorageError::Corrupt` instead of
//!    returning altered data; a keyring with the wrong key fails the same way.

use std::sync::Arc;
use std::time::Duration;

use object_store::{ObjectStoreExt, PutPayload, path::Path};
use storage_core::{Bucket, LocalStore, Secret, StackBuilder, StorageError};
use storage_layers::chaos::ChaosLayer;
use storage_layers::compression::{Codec, CompressionLayer};
use storage_layers::encryption::{EncryptionLayer, Keyring};
use storage_layers::metrics::MetricsLayer;
use storage_layers::retry::{RetryBudget, RetryLayer};

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn document(i: usize) -> String {
    let lines: Vec<String> = (0..40)
        .map(|n| format!("{{\"doc\":{i},\"line\":{n},\"text\":\"confidential ledger entry\"}}"))
        .collect();
    lines.join("\n")
}

#[tokio::main]
async fn main() -> storage_core::Result<()> {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let backend: Arc<dyn storage_core::StrataStore> = Arc::new(LocalStore::new(dir.path())?);

    let keyring = Keyring::new().with_key("2026-01", &Secret::new(KEY_HEX))?;
    let metrics = MetricsLayer::new("vault");
    let chaos = ChaosLayer::default().with_seed(7).with_error_rate(0.3);
    let store = StackBuilder::new()
        .layer(metrics.clone())
        .layer(CompressionLayer::default().with_default(Codec::Gzip))
        .layer(EncryptionLayer::new(keyring))
        .layer(
            RetryLayer::default()
                .with_max_attempts(10)
                .with_base_delay(Duration::from_millis(1))
                // The default budget (10 retries, refilled by 0.2 per success) sustains
                // about one retry per five calls, sparing a backend in an outage; this
                // backend fails three calls in ten and the demo wants every one retried.
                .with_budget(Arc::new(RetryBudget::new(1_000, 1.0))),
        )
        .layer(chaos.clone())
        .build(backend.clone());
    // Keep the local folder's capabilities (atomic conditional writes), swap in the stack.
    let bucket = Bucket::local("vault", dir.path())?
        .to_builder()
        .store(store)
        .build();

    // 1. Writes and reads through an unreliable backend.
    for i in 0..20 {
        bucket.put(format!("ledger/{i}.jsonl"), document(i)).await?;
    }
    for i in 0..20 {
        let back = bucket.get(format!("ledger/{i}.jsonl")).await?;
        assert_eq!(
            back.bytes,
            document(i),
            "document {i} must read back intact"
        );
    }
    let faults = chaos.stats().injected_errors;
    let seen = metrics.stats();
    let errors: u64 = seen.ops.values().map(|o| o.errors).sum();
    println!(
        "20 documents written and read back intact; the backend failed {faults} call(s), \
         the application saw {errors} error(s)"
    );
    assert!(faults > 0, "the chaos layer should have injected faults");
    assert_eq!(errors, 0, "every injected fault must be retried away");

    // 2. What is on disk.
    let raw = backend
        .get(&Path::from("ledger/3.jsonl"))
        .await
        .map_err(|e| StorageError::from_object_store("vault", e))?
        .bytes()
        .await
        .map_err(|e| StorageError::from_object_store("vault", e))?;
    let plain_len = document(3).len();
    println!(
        "ledger/3.jsonl: {plain_len} B of plaintext stored as {} B, starting {:?}",
        raw.len(),
        String::from_utf8_lossy(&raw[..4])
    );
    assert_eq!(
        &raw[..4],
        b"SGCM",
        "stored bytes are in the encryption format"
    );
    assert!(
        !raw.windows(12).any(|w| w == b"confidential"),
        "no plaintext on disk"
    );
    assert!(raw.len() < plain_len, "compressed before it was encrypted");

    // 3. Tampering is detected.
    let mut tampered = raw.to_vec();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    backend
        .put(&Path::from("ledger/3.jsonl"), PutPayload::from(tampered))
        .await
        .map_err(|e| StorageError::from_object_store("vault", e))?;
    let read = bucket.get("ledger/3.jsonl").await;
    match &read {
        Err(e @ StorageError::Corrupt { .. }) => println!("after flipping one stored bit: {e}"),
        other => panic!("a tampered object must fail with Corrupt, got {other:?}"),
    }

    // The same key id with different key bytes cannot read the others either.
    let wrong = Keyring::new().with_key("2026-01", &Keyring::generate_key())?;
    let wrong_store = StackBuilder::new()
        .layer(CompressionLayer::default())
        .layer(EncryptionLayer::new(wrong))
        .build(backend.clone());
    let wrong_bucket = Bucket::builder("vault-wrong-key", wrong_store).build();
    let denied = wrong_bucket.get("ledger/4.jsonl").await;
    assert!(
        matches!(denied, Err(StorageError::Corrupt { .. })),
        "the wrong key must fail with Corrupt, got {denied:?}"
    );
    println!("reading with the wrong key: refused (Corrupt)");
    println!("done");
    Ok(())
}
