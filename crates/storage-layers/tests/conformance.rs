//! `object_store`'s own conformance checks (`object_store::integration`) against every layer
//! wrapped around `storage_core::MemoryStore`, and against the full default stack.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Checks;
use object_store::ObjectStore;
use storage_core::{Layer, MemoryStore, Secret, StrataStore};
use storage_layers::breaker::CircuitBreakerLayer;
use storage_layers::cache::CacheLayer;
use storage_layers::chaos::ChaosLayer;
use storage_layers::compression::{Codec, CompressionLayer};
use storage_layers::config::LayersConfig;
use storage_layers::encryption::Keyring;
use storage_layers::limit::ConcurrencyLimitLayer;
use storage_layers::metrics::MetricsLayer;
use storage_layers::retry::RetryLayer;
use storage_layers::timeout::TimeoutLayer;

fn memory() -> Arc<dyn StrataStore> {
    Arc::new(MemoryStore::new())
}

/// The checks that apply to any store with conditional writes and multipart uploads.
async fn conformance(store: Arc<dyn ObjectStore>) {
    common::object_store_checks(store, Checks::All).await;
}

/// Everything but the listed sizes (see [`Checks::AllButListedSizes`]).
async fn conformance_but_listed_sizes(store: Arc<dyn ObjectStore>) {
    common::object_store_checks(store, Checks::AllButListedSizes).await;
}

#[tokio::test]
async fn bare_memory_store() {
    conformance(memory()).await;
}

#[tokio::test]
async fn retry_layer() {
    conformance(RetryLayer::default().layer(memory())).await;
}

#[tokio::test]
async fn timeout_layer() {
    conformance(TimeoutLayer::default().layer(memory())).await;
}

#[tokio::test]
async fn limit_layer() {
    conformance(ConcurrencyLimitLayer::new(4).layer(memory())).await;
}

#[tokio::test]
async fn breaker_layer() {
    conformance(CircuitBreakerLayer::default().layer(memory())).await;
}

#[tokio::test]
async fn metrics_layer() {
    let m = MetricsLayer::new("conformance");
    conformance(m.layer(memory())).await;
    assert!(m.stats().total_calls() > 50);
}

#[tokio::test]
async fn chaos_layer_without_faults() {
    conformance(ChaosLayer::default().layer(memory())).await;
}

/// `inner` behind a compression layer that compresses every object with `codec`.
fn compressing_everything(codec: Codec, inner: Arc<dyn StrataStore>) -> Arc<dyn StrataStore> {
    CompressionLayer::default()
        .with_default(codec)
        .with_min_size(0)
        .layer(inner)
}

#[tokio::test]
async fn compression_layer_gzip_everything() {
    conformance_but_listed_sizes(compressing_everything(Codec::Gzip, memory())).await;
}

#[tokio::test]
async fn compression_layer_zstd_everything() {
    conformance_but_listed_sizes(compressing_everything(Codec::Zstd, memory())).await;
}

#[tokio::test]
async fn compressed_listings_show_stored_sizes() {
    use futures::TryStreamExt;
    use object_store::{ObjectStoreExt, path::Path};
    let store = CompressionLayer::default()
        .with_default(Codec::Gzip)
        .layer(memory());
    let body = "x".repeat(10_000);
    store
        .put(&Path::from("a"), body.clone().into())
        .await
        .unwrap();
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert!(listed[0].size < 200, "{}", listed[0].size);
    assert_eq!(store.head(&Path::from("a")).await.unwrap().size, 10_000);
}

#[tokio::test]
async fn cache_layer() {
    conformance(CacheLayer::default().layer(memory())).await;
}

#[tokio::test]
async fn cache_layer_serving_fresh_entries() {
    // Own writes must still be seen when entries are served without revalidation.
    conformance(
        CacheLayer::default()
            .with_revalidate_after(Duration::from_secs(3600))
            .layer(memory()),
    )
    .await;
}

#[tokio::test]
async fn encryption_layer() {
    conformance(common::encryption().layer(memory())).await;
}

fn local_folder() -> (tempfile::TempDir, Arc<dyn StrataStore>) {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn StrataStore> = Arc::new(storage_core::LocalStore::new(dir.path()).unwrap());
    (dir, local)
}

#[tokio::test]
async fn bare_local_folder_store() {
    let (_dir, local) = local_folder();
    conformance(local).await;
}

#[tokio::test]
async fn encryption_on_the_local_folder() {
    let (_dir, local) = local_folder();
    conformance(common::encryption().layer(local)).await;
}

/// Compression over the local folder, whose attributes (the layer's markers) travel with
/// the data in one rename: even the CAS race never reads a compressed object raw.
#[tokio::test]
async fn compression_on_the_local_folder() {
    let (_dir, local) = local_folder();
    conformance_but_listed_sizes(compressing_everything(Codec::Gzip, local)).await;
}

#[tokio::test]
async fn full_default_stack() {
    let key = Keyring::generate_key();
    let toml = format!(
        r#"
[metrics]
[cache]
[compression]
default = "zstd"
min_size = 0
[encryption]
keys = [{{ id = "k1", key = "{}" }}]
[retry]
[breaker]
[limit]
[timeout]
[chaos]
"#,
        Secret::expose(&key)
    );
    let cfg = LayersConfig::from_toml(&toml, "test.toml").unwrap();
    conformance_but_listed_sizes(cfg.apply(memory()).unwrap()).await;
    // Without compression the full stack passes every check, listed sizes included.
    let no_compression = toml.replace("[compression]\ndefault = \"zstd\"\nmin_size = 0\n", "");
    let cfg = LayersConfig::from_toml(&no_compression, "test.toml").unwrap();
    assert!(cfg.compression.is_none());
    conformance(cfg.apply(memory()).unwrap()).await;
}
