//! # storage-layers
//!
//! Layers for Strata stores. Each one wraps any [`StrataStore`](storage_core::StrataStore)
//! in another that adds one behaviour to every operation of the contract (conditional
//! deletes and presigned URLs included) and reports the capabilities of the stack beneath
//! it, narrowed where it changes stored bytes. They compose with each other, and each stack
//! is still an `ObjectStore` for anything written for `object_store`.
//!
//! | module | layer | cargo feature |
//! |---|---|---|
//! | [`retry`] | exponential backoff with full jitter, retry budget, safe conditional writes, resumed GET streams | `retry` |
//! | [`timeout`] | per call and per stream-idle deadlines | `timeout` |
//! | [`limit`] | concurrency limit, shareable across stores | `limit` |
//! | [`breaker`] | circuit breaker (closed → open → half-open) | `breaker` |
//! | [`recovery`] | `withErrorHandling`: retry / fallback value or function / fail fast (falling back to another store is `storage-router`'s) | `recovery` |
//! | [`metrics`] | `tracing` span per call, counters and latency histograms, errors by key prefix | `metrics` (+ `metrics-crate`) |
//! | [`chaos`] | injected errors, lost acknowledgements, torn streams, latency; seeded | `chaos` |
//! | [`compression`] | gzip / zstd with `Content-Encoding` | `compression`, `zstd` |
//! | `cache` | moka read cache, ETag revalidation | `cache` |
//! | `encryption` | chunked AES-256-GCM, key rotation | `encryption` |
//!
//! The default features are the light ones (everything but `cache`, `zstd`, `encryption`
//! and `metrics-crate`); `full` enables all.
//!
//! Every layer is a builder (`XxxLayer::default().with_…()`) implementing
//! [`storage_core::Layer`], and makes an `XxxStore<T>` that prints as `XxxStore(inner)`.
//! [`config::LayersConfig`] builds a whole stack from a `[layers]` config table in one
//! documented order:
//!
//! ```text
//! metrics → cache → compression → encryption → retry → breaker → limit → timeout → backend
//! ```
//!
//! (see [`config`] for why, and each module for what goes wrong in another order).
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use object_store::{ObjectStoreExt, path::Path};
//! use storage_core::{Bucket, MemoryStore, StackBuilder};
//! use storage_layers::{
//!     breaker::CircuitBreakerLayer, chaos::ChaosLayer, metrics::MetricsLayer,
//!     retry::RetryLayer, timeout::TimeoutLayer,
//! };
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
//! let metrics = MetricsLayer::new("docs");
//! let store = StackBuilder::new()
//!     .layer(metrics.clone())
//!     .layer(RetryLayer::default().with_max_attempts(8).with_base_delay(Duration::ZERO))
//!     .layer(CircuitBreakerLayer::new(20, Duration::from_secs(30)))
//!     .layer(TimeoutLayer::default().with_operation_timeout(Duration::from_secs(5)))
//!     // A backend that fails a third of the calls:
//!     .layer(ChaosLayer::default().with_seed(1).with_error_rate(0.3))
//!     .build(Arc::new(MemoryStore::new()));
//!
//! let bucket = Bucket::builder("docs", store).build();
//! for i in 0..20 {
//!     bucket.put(&format!("notes/{i}.txt"), format!("note {i}")).await?;
//! }
//! assert_eq!(bucket.get("notes/7.txt").await?.bytes, "note 7");
//! assert_eq!(metrics.stats().ops["put"].errors, 0); // every fault was retried away
//! # Ok(()) }
//! ```

#[cfg(any(
    feature = "breaker",
    feature = "timeout",
    feature = "limit",
    feature = "metrics",
    feature = "chaos"
))]
mod guard;
#[cfg(any(feature = "compression", feature = "encryption"))]
mod transform;
mod util;

#[cfg(feature = "breaker")]
pub mod breaker;
#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "chaos")]
pub mod chaos;
#[cfg(feature = "compression")]
pub mod compression;
pub mod config;
#[cfg(feature = "encryption")]
pub mod encryption;
#[cfg(feature = "limit")]
pub mod limit;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "recovery")]
pub mod recovery;
#[cfg(feature = "retry")]
pub mod retry;
#[cfg(feature = "timeout")]
pub mod timeout;

pub use config::LayersConfig;
