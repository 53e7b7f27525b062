//! The foundation's behaviour suite (`strata_testkit::behaviour`), unchanged, as one trial
//! per check against a `Bucket` whose store is each layer wrapped around memory, and as one
//! report (`behaviour::run`) against a retrying stack over a backend that fails 10% of calls.
//! The stacks `Strata::from_toml_str` builds (all layers together, over memory and S3) are in
//! `tests/tests/behaviour.rs` of the workspace.

mod common;

use std::sync::Arc;
use std::time::Duration;

use storage_core::{Bucket, Layer, StrataStore};
use storage_layers::breaker::CircuitBreakerLayer;
use storage_layers::cache::CacheLayer;
use storage_layers::chaos::ChaosLayer;
use storage_layers::compression::{Codec, CompressionLayer};
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

/// One trial per check for the layer `$layer` (made afresh for each trial) over memory,
/// profile `Profile::embedded("$name")` unless given. Every stack skips exactly the presign
/// checks (memory has no endpoint to sign URLs for); every other check, conditional deletes
/// through the layer under test included, must pass.
macro_rules! layer_trials {
    ($name:ident, $layer:expr) => {
        layer_trials!($name, $layer, Profile::embedded(stringify!($name)));
    };
    ($name:ident, $layer:expr, $profile:expr) => {
        behaviour_tests!(
            $name,
            setup = |_| wrapped(stringify!($name), |s| Layer::layer(&$layer, s)),
            profile = $profile,
            skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
        );
    };
}

layer_trials!(retry, RetryLayer::default());
layer_trials!(timeout, TimeoutLayer::default());
layer_trials!(limit, ConcurrencyLimitLayer::new(8));
layer_trials!(breaker, CircuitBreakerLayer::default());
layer_trials!(metrics, MetricsLayer::new("m"));
layer_trials!(cache, CacheLayer::default());
layer_trials!(
    compression,
    CompressionLayer::default().with_default(Codec::Zstd),
    Profile::embedded("compression").compressed()
);
layer_trials!(encryption, common::encryption());

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
