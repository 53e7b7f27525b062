//! Listing several buckets at once, merged in key order and de-duplicated.

use futures::TryStreamExt;
use futures::future::join_all;
use serde::Serialize;
use storage_core::{Bucket, ObjectInfo};
use tokio::time::Instant;

use crate::failure::BucketFailure;
use crate::health::HealthTracker;

/// One entry of a merged listing: an object and the bucket it was listed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedObject {
    /// Bucket handle name (the highest-priority bucket holding this key).
    pub bucket: String,
    /// The object.
    #[serde(flatten)]
    pub info: ObjectInfo,
}

/// A listing merged across buckets.
#[derive(Debug, Default, Serialize)]
pub struct MergedListing {
    /// Objects in key order, one per key: the copy from the highest-priority bucket.
    pub entries: Vec<ListedObject>,
    /// Buckets whose listing failed: when not empty, `entries` may be missing keys that
    /// only those buckets hold.
    pub partial: Vec<BucketFailure>,
}

impl MergedListing {
    /// Whether some bucket could not be listed.
    pub fn is_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.info.key.as_str())
    }
}

/// List `prefix` in every bucket concurrently (buckets in priority order), merge in key
/// order and keep, for each key, the entry from the first bucket. A bucket whose listing
/// fails is reported in [`MergedListing::partial`], never silently dropped.
pub async fn merged_list(
    buckets: &[Bucket],
    prefix: &str,
    health: &HealthTracker,
) -> MergedListing {
    let listings = join_all(buckets.iter().map(|b| {
        let health = health.clone();
        async move {
            let start = Instant::now();
            let r: storage_core::Result<Vec<ObjectInfo>> = b.list(prefix).try_collect().await;
            health.record(b.name(), &r, start.elapsed());
            r
        }
    }))
    .await;
    let mut all: Vec<(usize, ObjectInfo)> = Vec::new();
    let mut partial = Vec::new();
    for (priority, r) in listings.into_iter().enumerate() {
        match r {
            Ok(objects) => all.extend(objects.into_iter().map(|o| (priority, o))),
            Err(error) => {
                tracing::warn!(bucket = buckets[priority].name(), prefix, error = %error, "listing failed; the merged listing is partial");
                partial.push(BucketFailure {
                    bucket: buckets[priority].name().to_string(),
                    error,
                })
            }
        }
    }
    // Sort by key, then priority: the first entry of each key run is the one to keep.
    all.sort_unstable_by(|(pa, a), (pb, b)| a.key.cmp(&b.key).then(pa.cmp(pb)));
    all.dedup_by(|later, first| later.1.key == first.1.key);
    MergedListing {
        entries: all
            .into_iter()
            .map(|(p, info)| ListedObject {
                bucket: buckets[p].name().to_string(),
                info,
            })
            .collect(),
        partial,
    }
}
