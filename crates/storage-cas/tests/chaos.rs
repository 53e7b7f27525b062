//! The contention proof again, through `storage-layers`' chaos layer injecting lost
//! answers (applied, then reported failed) and failures before the store. Writers in this
//! process are queued per key (the default), so a lost answer is checked before anyone
//! else commits; racing writers with lost answers are covered in `contention.rs`.

mod common;

use std::sync::Arc;

use common::{check_counter, check_versions};
use storage_core::{Bucket, Layer};
use storage_layers::chaos::{ChaosFault, ChaosLayer, ChaosTarget};

fn chaotic(bucket: &Bucket, chaos: &ChaosLayer) -> Bucket {
    bucket
        .to_builder()
        .store(chaos.layer(Arc::clone(bucket.store())))
        .build()
}

fn layer(seed: u64, fault: ChaosFault) -> ChaosLayer {
    ChaosLayer::default()
        .with_seed(seed)
        .with_target(ChaosTarget::Writes)
        .with_error_rate(0.05)
        .with_fault(fault)
        .with_lost_ack_rate(0.1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_through_chaos_on_memory() {
    let chaos = layer(1, ChaosFault::Timeout);
    check_counter(&chaotic(&Bucket::memory("mem"), &chaos), 16, 50, true).await;
    let stats = chaos.stats();
    assert!(
        stats.lost_acks > 0 && stats.injected_errors > 0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_through_chaos_on_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let chaos = layer(2, ChaosFault::Unavailable);
    check_counter(
        &chaotic(&Bucket::local("fs", dir.path()).unwrap(), &chaos),
        16,
        50,
        true,
    )
    .await;
    assert!(chaos.stats().lost_acks > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_committers_through_chaos() {
    let chaos = layer(3, ChaosFault::ServerError);
    check_versions(&chaotic(&Bucket::memory("mem"), &chaos), 8, 25, true).await;
    assert!(chaos.stats().lost_acks > 0);
}
