//! `LayersConfig`: the `[layers]` table of a Strata config file, and the one documented order
//! in which [`LayersConfig::apply`] stacks the layers it enables.
//!
//! A layer is enabled by the presence of its table; every field has a default.
//!
//! ```toml
//! [layers.metrics]
//! name = "media"
//! [layers.timeout]
//! operation = "30s"
//! idle = "30s"
//! [layers.retry]
//! max_attempts = 4
//! base_delay = "100ms"
//! [layers.breaker]
//! failure_threshold = 5
//! recovery_timeout = "30s"
//! [layers.limit]
//! max_concurrency = 64
//! [layers.cache]
//! max_bytes = 67108864
//! revalidate_after = "0s"
//! [layers.compression]
//! default = "gzip"
//! rules = [{ content_type = "application/json", codec = "zstd" }, { content_type = "image/", codec = "none" }]
//! [layers.encryption]
//! keys = [{ id = "2026-01", key_env = "STRATA_KEY_2026_01" }]
//! ```
//!
//! # The order (outermost first)
//!
//! ```text
//! metrics → cache → compression → encryption → retry → breaker → limit → timeout → [chaos] → backend
//! ```
//!
//! - **metrics** outermost: it measures what the application sees — one call however many
//!   retries it took, cache hits included, errors as finally returned.
//! - **cache** next: hits skip everything below; it holds plaintext, so a hit costs neither
//!   decompression nor decryption; revalidations go through the resilience layers.
//! - **compression** above **encryption**: compress, then encrypt (ciphertext does not
//!   compress).
//! - both above **retry**: the payload is encoded once and the same bytes are resent;
//!   retry's check of ambiguous conditional writes compares stored bytes exactly.
//! - **retry** above **breaker**: each attempt is one breaker outcome, and an open breaker's
//!   `CircuitOpen` (not retryable) ends the retry loop at once instead of a retry storm.
//! - **breaker** above **limit**: calls the open breaker rejects never wait for a permit.
//! - **limit** above **timeout**: waiting for a permit is not charged as backend slowness
//!   (otherwise congestion alone causes timeouts that open the breaker); retry above limit
//!   means a call sleeping out its backoff holds no permit.
//! - **timeout** innermost: a deadline per attempt, so a hung attempt is retried and counts
//!   as a breaker failure.
//! - **chaos** (tests only) directly on the backend, standing in for its faults.
//!
//! Each layer's module docs say what goes wrong in other orders.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use storage_core::StrataStore;
use storage_core::config::{Env, at_least_one, duration_str};
use storage_core::{Result, Secret, StorageError};

/// The `[layers]` table; see the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayersConfig {
    /// Metrics and tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    /// Read cache (`cache` feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// Compression (`compression` feature; zstd needs `zstd`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionConfig>,
    /// Client-side encryption (`encryption` feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionConfig>,
    /// Retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// Concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitConfig>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<TimeoutConfig>,
    /// Fault injection, for tests and benchmarks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<ChaosConfig>,
}

/// `[layers.metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Store name in spans and metrics (default: the bucket name given to `apply_named`).
    pub name: Option<String>,
    /// Key segments grouping errors by prefix (default 1).
    pub prefix_depth: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            name: None,
            prefix_depth: 1,
        }
    }
}

/// `[layers.timeout]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    /// Per call (default 30s).
    #[serde(with = "duration_str::nonzero")]
    pub operation: Duration,
    /// Longest gap between chunks of a GET body or entries of a listing (default 30s).
    #[serde(with = "duration_str::nonzero")]
    pub idle: Duration,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig {
            operation: Duration::from_secs(30),
            idle: Duration::from_secs(30),
        }
    }
}

/// `[layers.retry]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts including the first (default 4).
    #[serde(deserialize_with = "at_least_one")]
    pub max_attempts: u32,
    /// First backoff (default 100ms), doubled per retry, full jitter.
    #[serde(with = "duration_str")]
    pub base_delay: Duration,
    /// Longest backoff (default 10s).
    #[serde(with = "duration_str")]
    pub max_delay: Duration,
    /// Retry budget: tokens kept (default 10).
    pub budget_tokens: u32,
    /// Retry budget: tokens earned per successful call (default 0.2).
    pub budget_per_success: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            budget_tokens: 10,
            budget_per_success: 0.2,
        }
    }
}

/// `[layers.breaker]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failures that open it (default 5).
    #[serde(deserialize_with = "at_least_one")]
    pub failure_threshold: u32,
    /// Time open before a probe (default 30s).
    #[serde(with = "duration_str::nonzero")]
    pub recovery_timeout: Duration,
    /// Also open at this failure rate (0..=1) over the last `window` calls.
    pub failure_rate: Option<f64>,
    /// Calls in the rate window (default 20).
    #[serde(deserialize_with = "at_least_one")]
    pub window: usize,
    /// Calls needed before the rate rule applies (default 10).
    pub min_calls: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            recovery_timeout: Duration::from_secs(30),
            failure_rate: None,
            window: 20,
            min_calls: 10,
        }
    }
}

/// `[layers.limit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitConfig {
    /// Calls in flight at once (default 64).
    #[serde(deserialize_with = "at_least_one")]
    pub max_concurrency: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            max_concurrency: 64,
        }
    }
}

/// `[layers.cache]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Bytes of cached bodies (default 64 MiB).
    pub max_bytes: u64,
    /// Entries (default 10,000).
    pub max_entries: u64,
    /// Largest object cached (default 4 MiB).
    pub max_object_bytes: u64,
    /// Evict this long after filling (default 5m).
    #[serde(with = "duration_str")]
    pub ttl: Duration,
    /// Serve without revalidating for this long (default 0s: always revalidate).
    #[serde(with = "duration_str")]
    pub revalidate_after: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 64 << 20,
            max_entries: 10_000,
            max_object_bytes: 4 << 20,
            ttl: Duration::from_secs(300),
            revalidate_after: Duration::ZERO,
        }
    }
}

/// A codec name in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecName {
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// Store uncompressed.
    None,
}

/// One content-type rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionRule {
    /// Content-Type prefix (`application/json`, `image/`).
    pub content_type: String,
    /// Codec for matching puts.
    pub codec: CodecName,
}

/// `[layers.compression]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompressionConfig {
    /// Codec for puts no rule matches (default none: only puts that ask).
    pub default: CodecName,
    /// Content-type rules, first match wins.
    pub rules: Vec<CompressionRule>,
    /// Smaller payloads are stored as is (default 1024).
    pub min_size: usize,
    /// Level (gzip 0-9, zstd 1-22).
    #[serde(deserialize_with = "compression_level")]
    pub level: Option<i32>,
}

/// Gzip knows levels 0-9 and zstd 1-22; anything else is refused where it is read (the
/// gzip encoder would otherwise quietly use 9 for 99).
fn compression_level<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<i32>, D::Error> {
    let level = i32::deserialize(d)?;
    if !(0..=22).contains(&level) {
        return Err(serde::de::Error::custom(format!(
            "{level} is not a compression level: gzip takes 0-9, zstd 1-22 (remove it for each codec's default)"
        )));
    }
    Ok(Some(level))
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            default: CodecName::None,
            rules: Vec::new(),
            min_size: 1024,
            level: None,
        }
    }
}

/// One key of `[layers.encryption]`: the value inline (`key`) or from an environment
/// variable (`key_env`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id written in each object's header (1-32 of `A-Za-z0-9-_.`).
    pub id: String,
    /// The 32-byte key, hex or base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// Environment variable holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_env: Option<String>,
}

/// `[layers.encryption]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// Keys; the last one (or `primary`) encrypts new objects.
    pub keys: Vec<KeyConfig>,
    /// Key id for new objects.
    pub primary: Option<String>,
    /// Read objects that are not encrypted as they are (default false).
    pub allow_plaintext: bool,
}

/// The kind of error the chaos layer injects (`fault` in `[layers.chaos]`; the chaos module
/// names it `ChaosFault`). Defined here, with the config, so a config naming one parses
/// whether or not the `chaos` feature is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultName {
    /// `StorageError::Unavailable` (a dropped connection or 503): retryable, ambiguous.
    #[default]
    Unavailable,
    /// `StorageError::Timeout`: retryable, ambiguous.
    Timeout,
    /// `StorageError::QuotaExceeded` (429 / SlowDown): retryable, never applied.
    SlowDown,
    /// `StorageError::Backend` with HTTP 500: retryable, ambiguous.
    ServerError,
    /// `StorageError::AccessDenied`: not retryable.
    AccessDenied,
}

/// `[layers.chaos]` (tests and benchmarks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChaosConfig {
    /// Generator seed.
    pub seed: u64,
    /// Share of calls failed before the backend.
    pub error_rate: f64,
    /// Kind of injected error.
    pub fault: FaultName,
    /// Share of writes applied and then reported failed.
    pub lost_ack_rate: f64,
    /// Share of GET bodies cut short.
    pub torn_stream_rate: f64,
    /// Added latency, lower bound.
    #[serde(with = "duration_str")]
    pub latency_min: Duration,
    /// Added latency, upper bound.
    #[serde(with = "duration_str")]
    pub latency_max: Duration,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            seed: 0,
            error_rate: 0.0,
            fault: FaultName::Unavailable,
            lost_ack_rate: 0.0,
            torn_stream_rate: 0.0,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
        }
    }
}

/// The layers built by [`LayersConfig::build`], kept so their counters can be read.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Stack {
    /// The wrapped store.
    pub store: Option<Arc<dyn StrataStore>>,
    /// Metrics layer, if enabled.
    #[cfg(feature = "metrics")]
    pub metrics: Option<crate::metrics::MetricsLayer>,
    /// Cache layer, if enabled.
    #[cfg(feature = "cache")]
    pub cache: Option<crate::cache::CacheLayer>,
    /// Retry layer, if enabled.
    #[cfg(feature = "retry")]
    pub retry: Option<crate::retry::RetryLayer>,
    /// Breaker, if enabled.
    #[cfg(feature = "breaker")]
    pub breaker: Option<crate::breaker::CircuitBreakerLayer>,
    /// Concurrency limit, if enabled: its pool is this stack's (or the one it was given).
    #[cfg(feature = "limit")]
    pub limit: Option<crate::limit::ConcurrencyLimitLayer>,
    /// Chaos layer, if enabled.
    #[cfg(feature = "chaos")]
    pub chaos: Option<crate::chaos::ChaosLayer>,
}

#[allow(dead_code)]
fn missing_feature(section: &str, feature: &str) -> StorageError {
    StorageError::invalid_config(
        format!("layers.{section}"),
        format!(
            "storage-layers was built without its `{feature}` cargo feature; enable it (or `full`) to use this layer"
        ),
    )
}

#[allow(dead_code)]
fn rate(field: &str, v: f64) -> Result<f64> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(StorageError::invalid_config(
            field,
            format!("{v} is not a rate; use a number from 0.0 to 1.0"),
        ))
    }
}

impl LayersConfig {
    /// Parse a `[layers]` table from TOML text (errors name `origin`, the line and field).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        storage_core::config::from_toml_str(text, origin)
    }

    /// Whether no layer is enabled.
    pub fn is_empty(&self) -> bool {
        *self == LayersConfig::default()
    }

    /// Wrap `store` in the enabled layers, in the [documented order](self); keys named by
    /// `key_env` are read from the process environment.
    pub fn apply(&self, store: Arc<dyn StrataStore>) -> Result<Arc<dyn StrataStore>> {
        Ok(self
            .build(store, "storage", &Env::process())?
            .store
            .expect("build sets the store"))
    }

    /// Like [`apply`](Self::apply), naming the store (`name` appears in metrics, spans and
    /// breaker errors) and reading `key_env` variables from `env`; returns the layers too,
    /// so their counters can be read.
    ///
    /// A `[layers.limit]` table gives the stack a concurrency pool of its own: two stacks
    /// built by two calls never share a limit (see
    /// [`build_with_limit_pool`](Self::build_with_limit_pool) for buckets that should).
    pub fn build(&self, store: Arc<dyn StrataStore>, name: &str, env: &Env) -> Result<Stack> {
        self.build_stack(store, name, env, None)
    }

    /// Like [`build`](Self::build), with the concurrency limit (if `[layers.limit]` is
    /// enabled) drawing from `pool` instead of a pool of its own, so stacks built with clones
    /// of one pool share one limit; the pool's size applies, not `max_concurrency`.
    #[cfg(feature = "limit")]
    pub fn build_with_limit_pool(
        &self,
        store: Arc<dyn StrataStore>,
        name: &str,
        env: &Env,
        pool: &crate::limit::LimitPool,
    ) -> Result<Stack> {
        self.build_stack(store, name, env, Some(pool))
    }

    #[allow(unused_mut)] // `s` is only reassigned when a layer's feature is compiled in
    fn build_stack(
        &self,
        store: Arc<dyn StrataStore>,
        name: &str,
        env: &Env,
        #[cfg(feature = "limit")] pool: Option<&crate::limit::LimitPool>,
        #[cfg(not(feature = "limit"))] pool: Option<&()>,
    ) -> Result<Stack> {
        let _ = (name, env, pool);
        let mut stack = Stack::default();
        let mut s = store;

        if let Some(c) = &self.chaos {
            #[cfg(feature = "chaos")]
            {
                let mut l = crate::chaos::ChaosLayer::default()
                    .with_seed(c.seed)
                    .with_error_rate(rate("layers.chaos.error_rate", c.error_rate)?)
                    .with_fault(c.fault)
                    .with_lost_ack_rate(rate("layers.chaos.lost_ack_rate", c.lost_ack_rate)?)
                    .with_torn_stream_rate(rate(
                        "layers.chaos.torn_stream_rate",
                        c.torn_stream_rate,
                    )?);
                if !c.latency_max.is_zero() {
                    l = l.with_latency(c.latency_min, c.latency_max);
                }
                s = storage_core::Layer::layer(&l, s);
                stack.chaos = Some(l);
            }
            #[cfg(not(feature = "chaos"))]
            {
                let _ = c;
                return Err(missing_feature("chaos", "chaos"));
            }
        }
        if let Some(c) = &self.timeout {
            #[cfg(feature = "timeout")]
            {
                let l = crate::timeout::TimeoutLayer::default()
                    .with_operation_timeout(c.operation)
                    .with_idle_timeout(c.idle)
                    .with_name(name);
                s = storage_core::Layer::layer(&l, s);
            }
            #[cfg(not(feature = "timeout"))]
            {
                let _ = c;
                return Err(missing_feature("timeout", "timeout"));
            }
        }
        if let Some(c) = &self.limit {
            #[cfg(feature = "limit")]
            {
                if c.max_concurrency == 0 {
                    return Err(StorageError::invalid_config(
                        "layers.limit.max_concurrency",
                        "must be at least 1",
                    ));
                }
                let l = match pool {
                    Some(pool) => crate::limit::ConcurrencyLimitLayer::with_pool(pool.clone()),
                    None => crate::limit::ConcurrencyLimitLayer::new(c.max_concurrency),
                };
                s = storage_core::Layer::layer(&l, s);
                stack.limit = Some(l);
            }
            #[cfg(not(feature = "limit"))]
            {
                let _ = c;
                return Err(missing_feature("limit", "limit"));
            }
        }
        if let Some(c) = &self.breaker {
            #[cfg(feature = "breaker")]
            {
                let mut l = crate::breaker::CircuitBreakerLayer::new(
                    c.failure_threshold,
                    c.recovery_timeout,
                )
                .with_name(name);
                if let Some(r) = c.failure_rate {
                    l = l.with_failure_rate(
                        rate("layers.breaker.failure_rate", r)?,
                        c.window,
                        c.min_calls,
                    );
                }
                s = storage_core::Layer::layer(&l, s);
                stack.breaker = Some(l);
            }
            #[cfg(not(feature = "breaker"))]
            {
                let _ = c;
                return Err(missing_feature("breaker", "breaker"));
            }
        }
        if let Some(c) = &self.retry {
            #[cfg(feature = "retry")]
            {
                if c.max_attempts == 0 {
                    return Err(StorageError::invalid_config(
                        "layers.retry.max_attempts",
                        "must be at least 1 (1 = no retries)",
                    ));
                }
                let l = crate::retry::RetryLayer::default()
                    .with_max_attempts(c.max_attempts)
                    .with_base_delay(c.base_delay)
                    .with_max_delay(c.max_delay)
                    .with_budget(Arc::new(crate::retry::RetryBudget::new(
                        c.budget_tokens,
                        c.budget_per_success,
                    )));
                s = storage_core::Layer::layer(&l, s);
                stack.retry = Some(l);
            }
            #[cfg(not(feature = "retry"))]
            {
                let _ = c;
                return Err(missing_feature("retry", "retry"));
            }
        }
        if let Some(c) = &self.encryption {
            #[cfg(feature = "encryption")]
            {
                use crate::encryption::{EncryptionLayer, Keyring};
                if c.keys.is_empty() {
                    return Err(StorageError::invalid_config(
                        "layers.encryption.keys",
                        "no keys; add `keys = [{ id = \"...\", key_env = \"VAR\" }]`",
                    ));
                }
                let mut ring = Keyring::new();
                for k in &c.keys {
                    let secret = match (&k.key, &k.key_env) {
                        (Some(s), None) => s.clone(),
                        (None, Some(var)) => Secret::new(env.require(var)?),
                        _ => {
                            return Err(StorageError::invalid_config(
                                format!("layers.encryption.keys.{}", k.id),
                                "give exactly one of `key` and `key_env`",
                            ));
                        }
                    };
                    ring = ring.with_key(&k.id, &secret)?;
                }
                if let Some(p) = &c.primary {
                    ring = ring.with_primary(p)?;
                }
                let l = EncryptionLayer::new(ring).with_allow_plaintext(c.allow_plaintext);
                s = storage_core::Layer::layer(&l, s);
            }
            #[cfg(not(feature = "encryption"))]
            {
                let _ = c;
                return Err(missing_feature("encryption", "encryption"));
            }
        }
        if let Some(c) = &self.compression {
            #[cfg(feature = "compression")]
            {
                use crate::compression::{Codec, CompressionLayer};
                let codec = |field: &str, n: CodecName| -> Result<Option<Codec>> {
                    match n {
                        CodecName::Gzip => Ok(Some(Codec::Gzip)),
                        CodecName::None => Ok(None),
                        CodecName::Zstd if cfg!(feature = "zstd") => Ok(Some(Codec::Zstd)),
                        CodecName::Zstd => Err(StorageError::invalid_config(
                            field,
                            "zstd needs storage-layers' `zstd` cargo feature; use gzip or enable it",
                        )),
                    }
                };
                let mut l = CompressionLayer::default().with_min_size(c.min_size);
                if let Some(d) = codec("layers.compression.default", c.default)? {
                    l = l.with_default(d);
                }
                for r in &c.rules {
                    l = l.with_rule(&r.content_type, codec("layers.compression.rules", r.codec)?);
                }
                if let Some(level) = c.level {
                    let gzip = c.default == CodecName::Gzip
                        || c.rules.iter().any(|r| r.codec == CodecName::Gzip);
                    if gzip && level > 9 {
                        return Err(StorageError::invalid_config(
                            "layers.compression.level",
                            format!(
                                "{level} is above gzip's highest level 9, and gzip is used here; use 0-9, or zstd for levels up to 22"
                            ),
                        ));
                    }
                    l = l.with_level(level);
                }
                s = storage_core::Layer::layer(&l, s);
            }
            #[cfg(not(feature = "compression"))]
            {
                let _ = c;
                return Err(missing_feature("compression", "compression"));
            }
        }
        if let Some(c) = &self.cache {
            #[cfg(feature = "cache")]
            {
                let l = crate::cache::CacheLayer::default()
                    .with_max_bytes(c.max_bytes)
                    .with_max_entries(c.max_entries)
                    .with_max_object_bytes(c.max_object_bytes)
                    .with_ttl(c.ttl)
                    .with_revalidate_after(c.revalidate_after);
                s = storage_core::Layer::layer(&l, s);
                stack.cache = Some(l);
            }
            #[cfg(not(feature = "cache"))]
            {
                let _ = c;
                return Err(missing_feature("cache", "cache"));
            }
        }
        if let Some(c) = &self.metrics {
            #[cfg(feature = "metrics")]
            {
                let l = crate::metrics::MetricsLayer::new(
                    c.name.clone().unwrap_or_else(|| name.to_string()),
                )
                .with_prefix_depth(c.prefix_depth);
                s = storage_core::Layer::layer(&l, s);
                stack.metrics = Some(l);
            }
            #[cfg(not(feature = "metrics"))]
            {
                let _ = c;
                return Err(missing_feature("metrics", "metrics"));
            }
        }
        stack.store = Some(s);
        Ok(stack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_core::MemoryStore;

    const FULL: &str = r#"
[metrics]
name = "media"
[timeout]
operation = "5s"
idle = "1s"
[retry]
max_attempts = 3
base_delay = "10ms"
[breaker]
failure_threshold = 4
recovery_timeout = "1m"
failure_rate = 0.5
[limit]
max_concurrency = 8
[cache]
max_bytes = 1048576
revalidate_after = "0s"
[compression]
default = "gzip"
rules = [{ content_type = "application/json", codec = "zstd" }]
[encryption]
keys = [{ id = "k1", key_env = "TEST_KEY" }]
"#;

    #[test]
    fn full_config_applies_in_the_documented_order() {
        let cfg = LayersConfig::from_toml(FULL, "strata.toml").unwrap();
        let key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let env = Env::from_pairs([("TEST_KEY", key)]);
        let stack = cfg
            .build(Arc::new(MemoryStore::new()), "media", &env)
            .unwrap();
        let shown = stack.store.unwrap().to_string();
        assert_eq!(
            shown,
            "MetricsStore(CacheStore(CompressionStore(EncryptionStore(RetryStore(BreakerStore(LimitStore(8, TimeoutStore(MemoryStore))))))))"
        );
        assert!(stack.metrics.is_some() && stack.breaker.is_some());
        // The key never shows in a dump of the config.
        assert!(!format!("{cfg:?}").contains(key));
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let err = LayersConfig::from_toml("[retry]\nmax_attempt = 3\n", "strata.toml").unwrap_err();
        assert!(
            err.to_string().contains("max_attempt") && err.to_string().contains("strata.toml:2"),
            "{err}"
        );
        let err =
            LayersConfig::from_toml("[timeout]\noperation = \"soon\"\n", "s.toml").unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
        let cfg = LayersConfig::from_toml("[chaos]\nerror_rate = 2.0\n", "s.toml").unwrap();
        let err = cfg.apply(Arc::new(MemoryStore::new())).unwrap_err();
        assert!(err.to_string().contains("layers.chaos.error_rate"), "{err}");
        let cfg = LayersConfig::from_toml(
            "[encryption]\nkeys = [{ id = \"k\", key_env = \"NOPE_NOT_SET\" }]\n",
            "s.toml",
        )
        .unwrap();
        let err = cfg
            .build(
                Arc::new(MemoryStore::new()),
                "x",
                &Env::from_pairs::<String, String>([]),
            )
            .unwrap_err();
        assert!(err.to_string().contains("NOPE_NOT_SET"), "{err}");
    }

    #[test]
    fn zero_and_out_of_range_values_are_refused_at_their_line() {
        let cases = [
            (
                "[timeout]\nidle = \"5s\"\noperation = \"0s\"\n",
                "s.toml:3: timeout.operation",
                "more than zero",
            ),
            (
                "[timeout]\nidle = \"0ms\"\n",
                "s.toml:2: timeout.idle",
                "more than zero",
            ),
            (
                "[breaker]\nfailure_threshold = 0\n",
                "s.toml:2: breaker.failure_threshold",
                "at least 1",
            ),
            (
                "[breaker]\nrecovery_timeout = \"0s\"\n",
                "s.toml:2: breaker.recovery_timeout",
                "more than zero",
            ),
            (
                "[breaker]\nwindow = 0\n",
                "s.toml:2: breaker.window",
                "at least 1",
            ),
            (
                "[retry]\nmax_attempts = 0\n",
                "s.toml:2: retry.max_attempts",
                "at least 1",
            ),
            (
                "[limit]\nmax_concurrency = 0\n",
                "s.toml:2: limit.max_concurrency",
                "at least 1",
            ),
            (
                "[compression]\nlevel = 99\n",
                "s.toml:2: compression.level",
                "gzip takes 0-9",
            ),
        ];
        for (text, place, why) in cases {
            let err = LayersConfig::from_toml(text, "s.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(place) && err.contains(why), "{text}: {err}");
        }
        // A level zstd takes is still too high for gzip, which only the build can see.
        let cfg =
            LayersConfig::from_toml("[compression]\ndefault = \"gzip\"\nlevel = 15\n", "s.toml")
                .unwrap();
        let err = cfg.apply(Arc::new(MemoryStore::new())).unwrap_err();
        assert!(
            err.to_string().contains("layers.compression.level")
                && err.to_string().contains("gzip's highest level 9"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stacks_share_a_limit_only_when_given_the_same_pool() {
        use object_store::{ObjectStoreExt, path::Path};
        let cfg = LayersConfig::from_toml("[limit]\nmax_concurrency = 1\n", "s.toml").unwrap();
        let env = Env::from_pairs::<String, String>([]);
        let stack = |pool: Option<&crate::limit::LimitPool>| {
            let store = Arc::new(MemoryStore::new());
            let built = match pool {
                Some(p) => cfg.build_with_limit_pool(store, "b", &env, p),
                None => cfg.build(store, "b", &env),
            };
            built.unwrap()
        };
        let busy = |s: &Stack| s.limit.as_ref().unwrap().available() == 0;
        let x = Path::from("x");
        let blocked = |s: Arc<dyn StrataStore>| {
            let x = x.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(1), s.get(&x))
                    .await
                    .is_err()
            }
        };
        for shared in [false, true] {
            let pool = crate::limit::LimitPool::new(1);
            let (a, b) = if shared {
                (stack(Some(&pool)), stack(Some(&pool)))
            } else {
                (stack(None), stack(None))
            };
            let (sa, sb) = (a.store.clone().unwrap(), b.store.clone().unwrap());
            sa.put(&x, "1".into()).await.unwrap();
            sb.put(&x, "1".into()).await.unwrap();
            // A body held through stack a holds a's one permit...
            let held = sa.get(&x).await.unwrap();
            assert!(busy(&a));
            // ...which stack b waits for only when it was given the same pool.
            assert_eq!(busy(&b), shared, "shared: {shared}");
            assert_eq!(blocked(sb.clone()).await, shared, "shared: {shared}");
            drop(held);
            assert!(!blocked(sb).await);
        }
    }

    #[test]
    fn empty_config_is_the_bare_store() {
        let cfg = LayersConfig::from_toml("", "s.toml").unwrap();
        assert!(cfg.is_empty());
        assert_eq!(
            cfg.apply(Arc::new(MemoryStore::new())).unwrap().to_string(),
            "MemoryStore"
        );
    }
}
