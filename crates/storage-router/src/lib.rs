//! # storage-router
//!
//! Multi-bucket routing for Strata (DESIGN.md §4): where each kind of data lives, and how to
//! read and write across several buckets as if they were one.
//!
//! - **routes**: data types (`records`, `versions`, `content`, `backups`, `logs`, and your
//!   own) map to a bucket and a folder prefix ([`Router::route`] → a scoped [`Bucket`](storage_core::Bucket), described by [`Route`]);
//!   [`layout`] has seed 004's key layouts; the legacy single `bucket` still works;
//! - **source sets**: an ordered primary + fallbacks read with a [`ReadPolicy`]
//!   (sequential, parallel, hedged with adaptive delays and a request budget: [`Hedging`]),
//!   merged listings, health-based priority ([`SourceSet`], [`HealthTracker`]);
//! - **tenants**: a scope that cannot reach outside its prefix or bucket ([`Router::tenant`]);
//! - **stores**: [`FailoverStore`] (seed 002 provider fallback), [`MirrorStore`] (seed 003
//!   hybrid mode) and [`FallbackStore`] (a source set as one store) are plain
//!   `object_store::ObjectStore`s;
//! - **one fallback engine** reads for all of them: a source set's `get`, its store,
//!   failover and mirror reads, and a route's offload fallback differ only in which answers
//!   move a read on and in the policy, never in code;
//! - **offload** of old objects ([`offload()`]) and **sync/migrate** between buckets
//!   ([`sync()`]): resumable, verified, with progress.
//!
//! Every configuration error names the file, the field path and what is allowed.
//!
//! ```
//! use storage_core::Bucket;
//! use storage_router::{Router, RouterConfig, layout};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
//! let config = RouterConfig::from_toml_str(r#"
//!     [routes.records]
//!     bucket = "hot"
//!     [routes.versions]
//!     bucket = "cheap"
//!     [sources.tide]
//!     buckets = ["agent", "server-001", "server-002"]
//!     policy = "parallel"
//! "#, "strata.toml")?;
//! # let buckets = ["hot", "cheap", "agent", "server-001", "server-002"].map(Bucket::memory);
//! let router = Router::from_buckets(buckets, &config, "strata.toml")?;
//!
//! // Seed 004: records/{collection}/{id}/head.json in the `hot` bucket.
//! let records = router.route("records")?;
//! records.put(&layout::record_head("users", "42")?, "{}").await?;
//! assert!(router.bucket("hot")?.exists("records/users/42/head.json").await?);
//!
//! // Seed 000: read from whichever bucket of the set has it, and say which.
//! router.bucket("server-002")?.put("users/u1/tides/t1.json", "{}").await?;
//! let found = router.read_any("tide", "users/u1/tides/t1.json").await?;
//! assert_eq!(found.bucket, "server-002");
//! # Ok(()) }
//! ```

mod config;
mod copy;
mod engine;
mod failure;
mod health;
pub mod layout;
mod listing;
mod offload;
pub mod outbox;
mod read;
mod route;
mod router;
mod source;
mod stores;
mod sync;

pub use config::{
    BUILTIN_ROUTES, DEFAULT_HEDGE_DELAY, HealthConfig, OffloadConfig, PolicyName, RouteConfig,
    RouterConfig, SourceConfig, TenantConfig,
};
pub use engine::ReadStats;
pub use failure::{AllBucketsFailed, BucketFailure};
pub use health::{BucketHealth, HealthTracker};
pub use listing::{ListedObject, MergedListing, merged_list};
pub use offload::{OffloadOptions, OffloadReport, offload};
pub use outbox::{
    AUTO_REPLAY_INTERVAL, ENTRY_FORMAT, OUTBOX_FOLDER, Outbox, OwedOp, OwedWrite, ReplayMerge,
    ReplayNote, ReplayReport, STAMP_META,
};
pub use read::{
    DEFAULT_HEDGE_BUDGET, DEFAULT_HEDGE_FLOOR, DEFAULT_HEDGE_QUANTILE, Found, HedgeDelay, Hedging,
    ReadPolicy,
};
pub use route::{OffloadTarget, Route, RoutedTarget};
pub use router::{BucketEntry, OffloadInfo, RouteInfo, Router, RouterInfo, TenantInfo};
pub use source::{MirrorCopy, MirrorReport, SourceInfo, SourceSet};
pub use stores::{
    DELETE_BATCH, FailoverStore, FallbackStore, MirrorRequirement, MirrorStore, OffloadStore,
    failover_bucket,
};
pub use sync::{CHECKPOINT_FOLDER, CompareMode, SyncOptions, SyncProgress, SyncReport, sync};
