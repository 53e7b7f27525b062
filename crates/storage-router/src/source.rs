//! An ordered set of buckets read as one: a primary and its fallbacks (seed 000).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::join_all;
use object_store::ObjectStore;
use serde::Serialize;
use storage_core::{
    Bucket, Object, ObjectInfo, PutOpts, Result, StorageError, WriteCondition, WriteResult,
};

use crate::engine::{Engine, FallbackOn, ReadStats};
use crate::health::HealthTracker;
use crate::listing::{MergedListing, merged_list};
use crate::read::{Found, ReadPolicy};
use crate::stores::{FallbackStore, MirrorStore};

/// An ordered read set: the first bucket is the primary, the rest are fallbacks.
///
/// Reads go through [`get`](Self::get) under the set's [`ReadPolicy`]; buckets that failed
/// recently are tried last (see [`HealthTracker`]). The set's [`store`](Self::store) reads
/// through the same engine, policy, health and hedge budget. Cheap to clone.
///
/// ```
/// use storage_core::Bucket;
/// use storage_router::{ReadPolicy, SourceSet};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let agent = Bucket::memory("agent");
/// let server = Bucket::memory("server-001");
/// server.put("users/u1/tides/t1.json", "{}").await?;
/// let tide = SourceSet::new("tide", vec![agent, server], ReadPolicy::Sequential)?;
/// let found = tide.get("users/u1/tides/t1.json").await?;
/// assert_eq!(found.bucket, "server-001");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SourceSet {
    name: String,
    buckets: Vec<Bucket>,
    health: HealthTracker,
    engine: Engine,
}

/// One copy of a mirrored write.
#[derive(Debug)]
pub struct MirrorCopy {
    /// Bucket handle name.
    pub bucket: String,
    /// What the write produced there.
    pub result: Result<WriteResult>,
}

/// Result of [`SourceSet::mirror_put`]: which copies were written.
#[derive(Debug)]
pub struct MirrorReport {
    /// Key written.
    pub key: String,
    /// One entry per bucket, primary first.
    pub copies: Vec<MirrorCopy>,
}

impl MirrorReport {
    /// Buckets that hold the new data.
    pub fn succeeded(&self) -> Vec<&str> {
        self.copies
            .iter()
            .filter(|c| c.result.is_ok())
            .map(|c| c.bucket.as_str())
            .collect()
    }

    /// Buckets that do not, with why.
    pub fn failed(&self) -> Vec<(&str, &StorageError)> {
        self.copies
            .iter()
            .filter_map(|c| c.result.as_ref().err().map(|e| (c.bucket.as_str(), e)))
            .collect()
    }

    /// Whether every copy was written.
    pub fn all_ok(&self) -> bool {
        self.copies.iter().all(|c| c.result.is_ok())
    }
}

impl Serialize for MirrorReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("MirrorReport", 3)?;
        st.serialize_field("key", &self.key)?;
        st.serialize_field("succeeded", &self.succeeded())?;
        let failed: Vec<BucketFailureView<'_>> = self
            .failed()
            .into_iter()
            .map(|(bucket, e)| BucketFailureView {
                bucket,
                error: e.to_string(),
            })
            .collect();
        st.serialize_field("failed", &failed)?;
        st.end()
    }
}

#[derive(Serialize)]
struct BucketFailureView<'a> {
    bucket: &'a str,
    error: String,
}

/// Primary, fallbacks and policy of a set, for `strata buckets info`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    /// Set name.
    pub name: String,
    /// First bucket.
    pub primary: String,
    /// The others, in order.
    pub fallbacks: Vec<String>,
    /// Read policy.
    pub policy: ReadPolicy,
    /// Provider of each bucket, in the same order as `[primary, fallbacks..]`.
    pub providers: Vec<String>,
}

impl SourceSet {
    /// A set over `buckets` (primary first) with its own health tracker.
    pub fn new(name: impl Into<String>, buckets: Vec<Bucket>, policy: ReadPolicy) -> Result<Self> {
        let name = name.into();
        if buckets.is_empty() {
            return Err(StorageError::invalid_config(
                format!("sources.{name}.buckets"),
                "a source set needs at least one bucket",
            ));
        }
        let health = HealthTracker::default();
        let engine = Engine::new(
            name.clone(),
            format!("set `{name}`"),
            buckets.iter().map(|b| b.name().to_string()).collect(),
            FallbackOn::MissOrFailure,
            policy,
            Some(health.clone()),
        );
        Ok(SourceSet {
            name,
            buckets,
            health,
            engine,
        })
    }

    /// Share `health` with other sets (the router shares one tracker across all of them).
    pub fn with_health(mut self, health: HealthTracker) -> Self {
        self.engine = self
            .engine
            .reconfigured(self.policy(), Some(health.clone()));
        self.health = health;
        self
    }

    /// Use another read policy.
    pub fn with_policy(mut self, policy: ReadPolicy) -> Self {
        self.engine = self.engine.reconfigured(policy, Some(self.health.clone()));
        self
    }

    /// Set name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Buckets in configured order.
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// The primary bucket.
    pub fn primary(&self) -> &Bucket {
        &self.buckets[0]
    }

    /// Read policy.
    pub fn policy(&self) -> ReadPolicy {
        self.engine.policy()
    }

    /// Requests the set's reads have made so far (through [`get`](Self::get),
    /// [`head`](Self::head) and [`store`](Self::store)), and how many of them were extra
    /// compared with sequential reads.
    pub fn read_stats(&self) -> ReadStats {
        self.engine.stats()
    }

    /// The health tracker.
    pub fn health(&self) -> &HealthTracker {
        &self.health
    }

    /// Buckets in the order reads try them now: configured order, demoted ones last.
    pub fn priority_order(&self) -> Vec<Bucket> {
        self.engine
            .priority()
            .into_iter()
            .map(|i| self.buckets[i].clone())
            .collect()
    }

    /// Read `key` from the first bucket that has it, under the set's policy.
    pub async fn get(&self, key: &str) -> Result<Found<Object>> {
        self.read(key, self.policy(), |b| b.get(key)).await
    }

    /// Read `key` under another policy.
    pub async fn get_with(&self, key: &str, policy: ReadPolicy) -> Result<Found<Object>> {
        self.read(key, policy, |b| b.get(key)).await
    }

    /// Metadata of `key` from the first bucket that has it.
    pub async fn head(&self, key: &str) -> Result<Found<ObjectInfo>> {
        self.read(key, self.policy(), |b| b.head(key)).await
    }

    /// The engine's read, its answer named. Not an `async fn`: each nested async layer
    /// moves the whole read state once more, which a loop over memory buckets measures.
    fn read<'a, T, F, Fut>(
        &'a self,
        key: &'a str,
        policy: ReadPolicy,
        op: F,
    ) -> impl Future<Output = Result<Found<T>>> + 'a
    where
        F: Fn(&'a Bucket) -> Fut + 'a,
        Fut: Future<Output = Result<T>> + 'a,
        T: 'a,
    {
        self.engine
            .read(key, policy, move |i| op(&self.buckets[i]))
            .map(move |r| {
                r.map(|a| Found {
                    bucket: self.engine.name(a.index).to_string(),
                    value: a.value,
                    skipped: a.skipped,
                })
            })
    }

    /// Read `key` from one named bucket of the set (seed 000 `getTideDataFromServer`);
    /// an unknown name is an error listing the valid ones.
    pub async fn get_from(&self, bucket: &str, key: &str) -> Result<Object> {
        let b = self
            .buckets
            .iter()
            .find(|b| b.name() == bucket)
            .ok_or_else(|| {
                StorageError::invalid_input(
                    "bucket",
                    format!(
                        "`{bucket}` is not a bucket of source `{}`; valid names: {}",
                        self.name,
                        names(&self.buckets)
                    ),
                )
            })?;
        b.get(key).await
    }

    /// List `prefix` across every bucket, merged, de-duplicated, tagged with the bucket.
    pub async fn list(&self, prefix: &str) -> MergedListing {
        merged_list(&self.priority_order(), prefix, &self.health).await
    }

    /// Write `data` to every bucket of the set and report which copies succeeded.
    ///
    /// An unconditional write goes to all buckets at once. A conditional one (if-absent,
    /// if-match) is decided by the primary alone: only when it succeeds are the other copies
    /// written, unconditionally, so the fallbacks follow the primary's history.
    pub async fn mirror_put(
        &self,
        key: &str,
        data: impl Into<Bytes>,
        opts: PutOpts,
    ) -> MirrorReport {
        let data: Bytes = data.into();
        let mut copies = Vec::with_capacity(self.buckets.len());
        let rest: &[Bucket] = if opts.condition == WriteCondition::Overwrite {
            &self.buckets
        } else {
            let primary = &self.buckets[0];
            let r = primary.put_with(key, data.clone(), opts.clone()).await;
            let primary_failed = r.is_err();
            copies.push(MirrorCopy {
                bucket: primary.name().to_string(),
                result: r,
            });
            if primary_failed {
                for b in &self.buckets[1..] {
                    copies.push(MirrorCopy {
                        bucket: b.name().to_string(),
                        result: Err(StorageError::invalid_input(
                            "condition",
                            format!(
                                "not written: the conditional write to the primary `{}` failed",
                                primary.name()
                            ),
                        )),
                    });
                }
                return MirrorReport {
                    key: key.to_string(),
                    copies,
                };
            }
            &self.buckets[1..]
        };
        let unconditional = PutOpts {
            condition: WriteCondition::Overwrite,
            ..opts
        };
        let results = join_all(
            rest.iter()
                .map(|b| b.put_with(key, data.clone(), unconditional.clone())),
        )
        .await;
        for (b, result) in rest.iter().zip(results) {
            if let Err(e) = &result {
                tracing::warn!(set = %self.name, bucket = b.name(), key, error = %e, "mirror copy failed");
            }
            copies.push(MirrorCopy {
                bucket: b.name().to_string(),
                result,
            });
        }
        MirrorReport {
            key: key.to_string(),
            copies,
        }
    }

    /// The set as one `object_store` store ([`FallbackStore`]): reads follow the set's
    /// policy through the same engine as [`get`](Self::get) (on a miss or a failure, in
    /// priority order), listings are merged, writes go to the primary.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(FallbackStore::from(self))
    }

    /// The set as a mirroring store: writes go to every bucket, reads prefer the primary.
    pub fn mirror_store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(MirrorStore::new(
            self.buckets
                .iter()
                .map(|b| (b.name().to_string(), b.store().clone()))
                .collect(),
        ))
    }

    /// Primary, fallbacks, policy and providers.
    pub fn info(&self) -> SourceInfo {
        SourceInfo {
            name: self.name.clone(),
            primary: self.buckets[0].name().to_string(),
            fallbacks: self.buckets[1..]
                .iter()
                .map(|b| b.name().to_string())
                .collect(),
            policy: self.policy(),
            providers: self
                .buckets
                .iter()
                .map(|b| b.provider().to_string())
                .collect(),
        }
    }
}

pub(crate) fn names(buckets: &[Bucket]) -> String {
    buckets
        .iter()
        .map(|b| format!("`{}`", b.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<&SourceSet> for FallbackStore {
    /// The set as one store, sharing its engine: policy, health and hedge budget.
    fn from(set: &SourceSet) -> Self {
        FallbackStore::over(
            format!("source {}", set.name),
            set.buckets
                .iter()
                .map(|b| (b.name().to_string(), b.store().clone()))
                .collect(),
            set.engine.clone(),
        )
    }
}
