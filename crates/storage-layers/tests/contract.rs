//! The store contract through every layer: a conditional delete is retried, broken, timed
//! out and measured like any other call (it used to go beneath the layers), each layer
//! reports the capabilities of its stack, and the layers that change stored bytes refuse to
//! hand out presigned URLs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use storage_core::{
    Bucket, Capabilities, Declared, Layer, MemoryStore, PresignMethod, StorageError, StrataStore,
};
use storage_layers::breaker::CircuitBreakerLayer;
use storage_layers::cache::CacheLayer;
use storage_layers::chaos::{ChaosLayer, ChaosTarget};
use storage_layers::compression::{Codec, CompressionLayer};
use storage_layers::limit::ConcurrencyLimitLayer;
use storage_layers::metrics::MetricsLayer;
use storage_layers::retry::RetryLayer;
use storage_layers::timeout::TimeoutLayer;
use strata_testkit::FakeSigningStore;

/// Memory that can sign (fake URLs), so presign capabilities can be seen to pass or narrow.
fn signing_memory() -> Arc<dyn StrataStore> {
    Arc::new(FakeSigningStore::new(Arc::new(MemoryStore::new())))
}

#[tokio::test]
async fn every_layer_reports_the_capabilities_of_its_stack() {
    let passing: Vec<(&str, Box<dyn Layer>)> = vec![
        ("retry", Box::new(RetryLayer::default())),
        ("timeout", Box::new(TimeoutLayer::default())),
        ("limit", Box::new(ConcurrencyLimitLayer::new(4))),
        ("breaker", Box::new(CircuitBreakerLayer::default())),
        ("metrics", Box::new(MetricsLayer::new("m"))),
        ("cache", Box::new(CacheLayer::default())),
        ("chaos", Box::new(ChaosLayer::default())),
    ];
    for (name, layer) in passing {
        let bucket = Bucket::builder(name, layer.layer(signing_memory())).build();
        let caps = bucket.capabilities();
        assert!(
            caps.presign && caps.delete_if_match && caps.put_if_match,
            "{name}: {caps:?}"
        );
        let url = bucket
            .presign(PresignMethod::Get, "a/b.txt", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://signed.example/a/b.txt?m=Get&e=60",
            "{name}"
        );
    }
    let byte_changing: Vec<(&str, Box<dyn Layer>, &str)> = vec![
        (
            "compression",
            Box::new(CompressionLayer::default().with_default(Codec::Gzip)),
            "compressed bytes",
        ),
        ("encryption", Box::new(common::encryption()), "ciphertext"),
    ];
    for (name, layer, why) in byte_changing {
        // Wherever the layer sits, the stack above it cannot sign.
        let stack = RetryLayer::default().layer(layer.layer(signing_memory()));
        let bucket = Bucket::builder(name, stack).build();
        let caps = bucket.capabilities();
        assert!(!caps.presign && caps.delete_if_match, "{name}: {caps:?}");
        for method in [PresignMethod::Get, PresignMethod::Put] {
            let err = bucket
                .presign(method, "a/b.txt", Duration::from_secs(60))
                .await
                .unwrap_err();
            match &err {
                StorageError::NotSupported { backend, operation } => {
                    assert_eq!(backend, &format!("{name} (custom)"));
                    assert!(operation.contains(why), "{name}: {err}");
                }
                other => panic!("{name}: expected NotSupported, got {other}"),
            }
        }
    }
}

#[tokio::test]
async fn a_conditional_delete_is_measured_and_invalidates_the_cache() {
    let metrics = MetricsLayer::new("m");
    let cache = CacheLayer::default().with_revalidate_after(Duration::from_secs(3600));
    let store = metrics.layer(cache.layer(Arc::new(MemoryStore::new())));
    let bucket = Bucket::builder("b", store).build();
    let etag = bucket.put("k", "v").await.unwrap().etag.unwrap();
    bucket.get("k").await.unwrap(); // cached for an hour without asking
    bucket.delete_if_match("k", &etag).await.unwrap();
    assert!(bucket.get("k").await.unwrap_err().is_not_found());
    let stats = metrics.stats();
    assert_eq!(stats.ops["delete_if_match"].calls, 1, "{stats:?}");
}

#[tokio::test]
async fn a_conditional_delete_is_broken_by_the_breaker() {
    // Every call below the breaker fails: after 3 failures the breaker opens, and the
    // fourth conditional delete never reaches the store.
    let chaos = ChaosLayer::default().with_error_rate(1.0);
    let stack = CircuitBreakerLayer::new(3, Duration::from_secs(3600))
        .layer(chaos.layer(Arc::new(MemoryStore::new())));
    for i in 0..3 {
        let err = stack
            .delete_if_match(&"k".into(), "\"e\"")
            .await
            .unwrap_err();
        let err = StorageError::from_object_store("b", err);
        assert!(
            matches!(err, StorageError::Unavailable { .. }),
            "call {i}: {err}"
        );
    }
    let err = StorageError::from_object_store(
        "b",
        stack
            .delete_if_match(&"k".into(), "\"e\"")
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, StorageError::CircuitOpen { .. }), "{err}");
    assert_eq!(
        chaos.stats().injected_errors,
        3,
        "the open breaker kept the fourth call"
    );
}

#[tokio::test(start_paused = true)]
async fn a_conditional_delete_is_timed_out() {
    let chaos =
        ChaosLayer::default().with_latency(Duration::from_secs(10), Duration::from_secs(10));
    let stack = TimeoutLayer::default()
        .with_operation_timeout(Duration::from_secs(1))
        .layer(chaos.layer(Arc::new(MemoryStore::new())));
    let bucket = Bucket::builder("b", stack).build();
    let err = bucket.delete_if_match("k", "\"e\"").await.unwrap_err();
    // The delete may have landed after the timeout: Bucket says so rather than guessing.
    assert!(
        matches!(
            err,
            StorageError::Timeout { .. } | StorageError::Ambiguous { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_conditional_delete_is_repeated_by_the_bucket_not_the_retry_layer() {
    // Injected write failures (seeded; reads are left alone so Bucket can settle each
    // failed attempt by reading the object): Bucket's conditional loop repeats the delete
    // until it lands; the retry layer passes each attempt through once.
    let backend = Arc::new(MemoryStore::new());
    let chaos = ChaosLayer::default()
        .with_seed(7)
        .with_error_rate(0.3)
        .with_target(ChaosTarget::Writes);
    let metrics = MetricsLayer::new("below-retry");
    let stack = RetryLayer::default()
        .with_base_delay(Duration::ZERO)
        .layer(metrics.layer(chaos.layer(backend.clone())));
    let bucket = Bucket::builder("b", stack).build();
    let mut deleted = 0;
    for i in 0..20 {
        let key = format!("k{i}");
        let put = loop {
            if let Ok(w) = bucket.put(&key, "v").await {
                break w;
            }
        };
        bucket
            .delete_if_match(&key, put.etag.as_deref().unwrap())
            .await
            .unwrap();
        deleted += 1;
    }
    assert_eq!(deleted, 20);
    let stats = metrics.stats();
    let attempts = stats.ops["delete_if_match"].calls;
    let failed = stats.ops["delete_if_match"].errors;
    assert!(failed > 0, "the seed injects failures: {stats:?}");
    // Each failure was followed by exactly one more attempt (by Bucket), none by the layer.
    assert_eq!(attempts, 20 + failed, "{stats:?}");
}

/// A store that sends an empty object's body as no chunk at all, as S3 does (memory sends
/// one empty chunk). It joins the contract through `Declared`, as memory.
#[derive(Debug)]
struct NoChunkForEmpty {
    inner: Arc<dyn object_store::ObjectStore>,
}

impl std::fmt::Display for NoChunkForEmpty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoChunkForEmpty({})", self.inner)
    }
}

impl object_store::ObjectStore for NoChunkForEmpty {
    storage_core::forward_object_store!(@methods inner:
        put_opts, put_multipart_opts, get_ranges, delete_stream, list, list_with_offset,
        list_with_delimiter, copy_opts, rename_opts);

    storage_core::store_fn!(get_opts, |this, location, options| {
        let mut r = this.inner.get_opts(location, options).await?;
        if r.meta.size == 0 {
            r.payload = object_store::GetResultPayload::Stream(Box::pin(futures::stream::empty()));
        }
        Ok(r)
    });
}

/// Every layer's body and listing streams end cleanly and stay ended: `object_store`'s
/// `GetResult::bytes()` polls a body once more after its end, and an unfused stream panicked
/// there ("Unfold must not be polled after it returned Poll::Ready(None)") for an empty
/// object on S3.
#[tokio::test]
async fn empty_bodies_and_listings_end_cleanly_through_every_layer() {
    use futures::StreamExt;
    use object_store::{ObjectStoreExt, PutPayload, path::Path};
    let layers: Vec<(&str, Box<dyn Layer>)> = vec![
        ("retry", Box::new(RetryLayer::default())),
        (
            "timeout",
            Box::new(TimeoutLayer::default().with_idle_timeout(Duration::from_secs(5))),
        ),
        ("limit", Box::new(ConcurrencyLimitLayer::new(4))),
        ("breaker", Box::new(CircuitBreakerLayer::default())),
        ("metrics", Box::new(MetricsLayer::new("m"))),
        ("cache", Box::new(CacheLayer::default())),
        ("chaos", Box::new(ChaosLayer::default())),
        (
            "compression",
            Box::new(CompressionLayer::default().with_default(Codec::Gzip)),
        ),
        ("encryption", Box::new(common::encryption())),
    ];
    for (name, layer) in layers {
        let no_chunk = NoChunkForEmpty {
            inner: Arc::new(MemoryStore::new()),
        };
        let store = layer.layer(Arc::new(Declared::new(
            Arc::new(no_chunk),
            Capabilities::MEMORY,
        )));
        let empty = Path::from("empty");
        store.put(&empty, PutPayload::default()).await.unwrap();
        let body = store.get(&empty).await.unwrap().bytes().await;
        assert_eq!(body.unwrap().len(), 0, "{name}");
        let mut listing = store.list(Some(&Path::from("nothing-here")));
        assert!(listing.next().await.is_none(), "{name}");
        assert!(
            listing.next().await.is_none(),
            "{name}: polled after its end"
        );
        let mut listing = store.list(None);
        assert!(listing.next().await.is_some(), "{name}");
        assert!(listing.next().await.is_none(), "{name}");
        assert!(
            listing.next().await.is_none(),
            "{name}: polled after its end"
        );
    }
}
