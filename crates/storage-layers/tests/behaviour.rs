//! The foundation's behaviour suite (`strata_testkit::behaviour`), unchanged, against a
//! `Bucket` whose store is each layer wrapped around memory — and against a retrying stack
//! over a backend that fails 10% of calls.

use std::sync::Arc;
use std::time::Duration;

use storage_core::{Bucket, Layer, StrataStore};
use storage_layers::breaker::CircuitBreakerLayer;
use storage_layers::cache::CacheLayer;
use storage_layers::chaos::ChaosLayer;
use storage_layers::compression::{Codec, CompressionLayer};
use storage_layers::encryption::{EncryptionLayer, Keyring};
use storage_layers::limit::ConcurrencyLimitLayer;
use storage_layers::metrics::MetricsLayer;
use storage_layers::retry::{RetryBudget, RetryLayer};
use storage_layers::timeout::TimeoutLayer;
use strata_testkit::behaviour::{self, Profile};

/// Checks no memory stack can run: it has no HTTP endpoint to sign URLs for.
const NO_PRESIGN: &[&str] = &["presigned_get_and_put", "presigned_url_tampered_or_expired"];

/// Run the suite over `wrap(memory)` and assert exactly which checks were skipped: every
/// other check ran and passed, conditional deletes through the layer under test included.
async fn suite(name: &str, wrap: impl FnOnce(Arc<dyn StrataStore>) -> Arc<dyn StrataStore>) {
    let base = Bucket::memory(name);
    let layered = wrap(Arc::clone(base.store()));
    let bucket = base.to_builder().store(layered).build();
    let report = behaviour::run(&bucket, &Profile::embedded(name)).await;
    let skipped: Vec<&str> = report.skipped.iter().map(|(check, _)| *check).collect();
    assert_eq!(skipped, NO_PRESIGN, "{name}: {report:?}");
    assert!(
        report.passed.contains(&"conditional_delete"),
        "{name}: {report:?}"
    );
}

#[tokio::test]
async fn retry() {
    suite("retry", |s| RetryLayer::default().layer(s)).await;
}

#[tokio::test]
async fn timeout() {
    suite("timeout", |s| TimeoutLayer::default().layer(s)).await;
}

#[tokio::test]
async fn limit() {
    suite("limit", |s| ConcurrencyLimitLayer::new(8).layer(s)).await;
}

#[tokio::test]
async fn breaker() {
    suite("breaker", |s| CircuitBreakerLayer::default().layer(s)).await;
}

#[tokio::test]
async fn metrics() {
    suite("metrics", |s| MetricsLayer::new("m").layer(s)).await;
}

#[tokio::test]
async fn cache() {
    suite("cache", |s| CacheLayer::default().layer(s)).await;
}

#[tokio::test]
async fn compression() {
    suite("compression", |s| {
        CompressionLayer::default()
            .with_default(Codec::Zstd)
            .layer(s)
    })
    .await;
}

#[tokio::test]
async fn encryption() {
    let ring = Keyring::new()
        .with_key("k1", &Keyring::generate_key())
        .unwrap();
    suite("encryption", |s| EncryptionLayer::new(ring).layer(s)).await;
}

/// Retry + breaker + timeout over a backend that fails 10% of calls, loses 2% of write
/// acknowledgements and tears 2% of GET bodies: the suite cannot tell.
#[tokio::test]
async fn resilient_stack_over_a_flaky_backend() {
    let retry = RetryLayer::default()
        .with_max_attempts(10)
        .with_base_delay(Duration::from_micros(100))
        .with_max_delay(Duration::from_millis(5))
        .with_budget(Arc::new(RetryBudget::unlimited()));
    let chaos = ChaosLayer::default()
        .with_seed(11)
        .with_error_rate(0.10)
        .with_lost_ack_rate(0.02)
        .with_torn_stream_rate(0.02)
        // Parts and completions are the HTTP client's to retry (storage_layers::retry, "Streams").
        .with_multipart(false);
    let c2 = chaos.clone();
    suite("flaky", move |s| {
        let s = c2.layer(s);
        let s = TimeoutLayer::default().layer(s);
        let s = CircuitBreakerLayer::new(20, Duration::from_millis(10)).layer(s);
        retry.layer(s)
    })
    .await;
    assert!(chaos.stats().injected_errors > 10, "{:?}", chaos.stats());
}
