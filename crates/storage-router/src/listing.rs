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
    let (found, partial) = collect_listings(buckets.iter().map(|b| {
        let health = health.clone();
        let listing = async move {
            let start = Instant::now();
            let r: storage_core::Result<Vec<ObjectInfo>> = b.list(prefix).try_collect().await;
            health.record(b.name(), &r, start.elapsed());
            r
        };
        (b.name(), listing)
    }))
    .await;
    for failure in &partial {
        tracing::warn!(bucket = %failure.bucket, prefix, error = %failure.error, "listing failed; the merged listing is partial");
    }
    MergedListing {
        entries: merge_by_priority(found, |o: &ObjectInfo| o.key.as_str())
            .into_iter()
            .map(|(p, info)| ListedObject {
                bucket: buckets[p].name().to_string(),
                info,
            })
            .collect(),
        partial,
    }
}

/// Run the listings of several members (`(name, listing)`, in priority order) concurrently:
/// what each member that answered listed, as `(priority, answer)` for [`merge_by_priority`],
/// and a [`BucketFailure`] naming each member that failed. The one gathering of every merged
/// listing (`merged_list`, and a merged store's `list` and `list_with_delimiter`).
pub(crate) async fn collect_listings<T>(
    listings: impl IntoIterator<Item = (&str, impl Future<Output = storage_core::Result<T>>)>,
) -> (Vec<(usize, T)>, Vec<BucketFailure>) {
    let (names, listings): (Vec<&str>, Vec<_>) = listings.into_iter().unzip();
    let mut found = Vec::with_capacity(listings.len());
    let mut failures = Vec::new();
    for (priority, (name, r)) in names.into_iter().zip(join_all(listings).await).enumerate() {
        match r {
            Ok(answer) => found.push((priority, answer)),
            Err(error) => failures.push(BucketFailure {
                bucket: name.to_string(),
                error,
            }),
        }
    }
    (found, failures)
}

/// Listings of several members (`(priority, entries)`, lower priority first) merged into one
/// in key order, keeping for each key the entry of the first member holding it. The one
/// merge of every merged listing (source sets, offload routes, `merged_list`).
///
/// Listings that each come sorted (S3 and memory listings do) are merged in one pass; any
/// other is sorted first.
pub(crate) fn merge_by_priority<T>(
    mut listings: Vec<(usize, Vec<T>)>,
    key: impl Fn(&T) -> &str,
) -> Vec<(usize, T)> {
    listings.sort_by_key(|(priority, _)| *priority);
    for (_, entries) in &mut listings {
        if !entries.is_sorted_by(|a, b| key(a) <= key(b)) {
            entries.sort_by(|a, b| key(a).cmp(key(b)));
        }
        // Taken from the back from here on: the smallest key is each listing's last entry.
        entries.reverse();
    }
    let total = listings.iter().map(|(_, e)| e.len()).sum();
    let mut out: Vec<(usize, T)> = Vec::with_capacity(total);
    loop {
        // The smallest key among the heads; on a tie the first member (lowest priority) wins.
        let mut smallest: Option<(usize, &str)> = None;
        for (i, (_, entries)) in listings.iter().enumerate() {
            if let Some(head) = entries.last().map(&key)
                && smallest.is_none_or(|(_, min)| head < min)
            {
                smallest = Some((i, head));
            }
        }
        let Some((i, _)) = smallest else {
            return out;
        };
        let priority = listings[i].0;
        let entry = listings[i].1.pop().expect("a head was found");
        if out.last().is_some_and(|(_, last)| key(last) == key(&entry)) {
            continue;
        }
        out.push((priority, entry));
    }
}

#[cfg(test)]
mod tests {
    use super::merge_by_priority;

    #[test]
    fn the_first_member_holding_a_key_wins_and_unsorted_listings_are_sorted_first() {
        let listings = vec![
            (1, vec!["b", "d", "a"]),
            (0, vec!["a", "c", "d"]),
            (2, vec!["e", "a", "b"]),
        ];
        let merged = merge_by_priority(
            listings
                .into_iter()
                .map(|(p, v)| (p, v.into_iter().map(|k| (k, p)).collect()))
                .collect(),
            |(k, _): &(&str, usize)| k,
        );
        let got: Vec<(usize, &str)> = merged
            .iter()
            .map(|(p, (k, from))| {
                assert_eq!(p, from);
                (*p, *k)
            })
            .collect();
        assert_eq!(got, [(0, "a"), (1, "b"), (0, "c"), (0, "d"), (2, "e")]);
    }

    #[test]
    fn nothing_to_merge_is_empty() {
        assert!(merge_by_priority(Vec::<(usize, Vec<String>)>::new(), |s: &String| s).is_empty());
        assert!(merge_by_priority(vec![(0, Vec::<String>::new())], |s: &String| s).is_empty());
    }
}
