//! The foundation's behaviour suite (`strata_testkit::behaviour`), unchanged, as one trial
//! per check against a `Bucket` whose store is each layer wrapped around memory, and as one
//! report (`behaviour::run`) against a retrying stack over a backend that fails 10% of calls.
//! The stacks `Strata::from_toml_str` builds (all layers together, over memory and S3) are in
//! `tests/tests/behaviour.rs` of the workspace.

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
use strata_testkit::behaviour_tests;

/// A fresh memory bucket whose store is `wrap(memory)`.
fn wrapped(name: &str, wrap: impl FnOnce(Arc<dyn StrataStore>) -> Arc<dyn StrataStore>) -> Bucket {
    let base = Bucket::memory(name);
    let layered = wrap(Arc::clone(base.store()));
    base.to_builder().store(layered).build()
}

// One trial per check per layer over memory. Every stack skips exactly the presign checks
// (memory has no endpoint to sign URLs for); every other check, conditional deletes through
// the layer under test included, must pass.

behaviour_tests!(
    retry,
    setup = |_| wrapped("retry", |s| RetryLayer::default().layer(s)),
    profile = Profile::embedded("retry"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    timeout,
    setup = |_| wrapped("timeout", |s| TimeoutLayer::default().layer(s)),
    profile = Profile::embedded("timeout"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    limit,
    setup = |_| wrapped("limit", |s| ConcurrencyLimitLayer::new(8).layer(s)),
    profile = Profile::embedded("limit"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    breaker,
    setup = |_| wrapped("breaker", |s| CircuitBreakerLayer::default().layer(s)),
    profile = Profile::embedded("breaker"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    metrics,
    setup = |_| wrapped("metrics", |s| MetricsLayer::new("m").layer(s)),
    profile = Profile::embedded("metrics"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    cache,
    setup = |_| wrapped("cache", |s| CacheLayer::default().layer(s)),
    profile = Profile::embedded("cache"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    compression,
    setup = |_| wrapped("compression", |s| {
        CompressionLayer::default()
            .with_default(Codec::Zstd)
            .layer(s)
    }),
    profile = Profile::embedded("compression").compressed(),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    encryption,
    setup = |_| {
        let ring = Keyring::new()
            .with_key("k1", &Keyring::generate_key())
            .unwrap();
        wrapped("encryption", |s| EncryptionLayer::new(ring).layer(s))
    },
    profile = Profile::embedded("encryption"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

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
    let bucket = wrapped("flaky", move |s| {
        let s = c2.layer(s);
        let s = TimeoutLayer::default().layer(s);
        let s = CircuitBreakerLayer::new(20, Duration::from_millis(10)).layer(s);
        retry.layer(s)
    });
    // The whole suite on one bucket, every check reported; exactly the presign checks skip.
    behaviour::run(&bucket, &Profile::embedded("flaky"))
        .await
        .assert_exact_skips(&["presigned_get_and_put", "presigned_url_tampered_or_expired"]);
    assert!(chaos.stats().injected_errors > 10, "{:?}", chaos.stats());
}
