//! Merged listings across a source set.

mod common;

use std::time::Duration;

use common::faulty_bucket;
use storage_core::Bucket;
use storage_router::{HealthTracker, ReadPolicy, SourceSet, merged_list};
use tokio::time::Instant;

#[tokio::test]
async fn merged_in_key_order_deduplicated_and_tagged() {
    let agent = Bucket::memory("agent");
    let s1 = Bucket::memory("server-001");
    let s2 = Bucket::memory("server-002");
    agent.put("users/u1/tides/b.json", "agent-b").await.unwrap();
    s1.put("users/u1/tides/a.json", "s1-a").await.unwrap();
    s1.put("users/u1/tides/b.json", "s1-b-longer")
        .await
        .unwrap();
    s2.put("users/u1/tides/c.json", "s2-c").await.unwrap();
    s2.put("users/u1/tides/a.json", "s2-a-longer")
        .await
        .unwrap();
    s2.put("users/u2/tides/z.json", "other user").await.unwrap();
    let set = SourceSet::new("tide", vec![agent, s1, s2], ReadPolicy::Sequential).unwrap();
    let listing = set.list("users/u1").await;
    assert!(!listing.is_partial());
    let got: Vec<(&str, &str, u64)> = listing
        .entries
        .iter()
        .map(|e| (e.info.key.as_str(), e.bucket.as_str(), e.info.size))
        .collect();
    assert_eq!(
        got,
        [
            ("users/u1/tides/a.json", "server-001", 4),
            ("users/u1/tides/b.json", "agent", 7),
            ("users/u1/tides/c.json", "server-002", 4),
        ]
    );
}

#[tokio::test]
async fn a_failing_bucket_makes_the_listing_partial_and_says_so() {
    let (a, _) = faulty_bucket("agent");
    let (b, b_faults) = faulty_bucket("server-001");
    a.put("k/1", "x").await.unwrap();
    b.put("k/2", "y").await.unwrap();
    b_faults.set_down(true);
    let set = SourceSet::new("tide", vec![a, b], ReadPolicy::Parallel).unwrap();
    let listing = set.list("k").await;
    assert!(listing.is_partial());
    assert_eq!(listing.keys().collect::<Vec<_>>(), ["k/1"]);
    assert_eq!(listing.partial[0].bucket, "server-001");
    assert!(
        listing.partial[0]
            .error
            .to_string()
            .contains("injected outage")
    );
    let json = serde_json::to_value(&listing).unwrap();
    assert_eq!(json["partial"][0]["bucket"], "server-001");
    assert_eq!(json["partial"][0]["kind"], "unavailable");
    assert_eq!(json["entries"][0]["bucket"], "agent");
    assert_eq!(json["entries"][0]["key"], "k/1");
}

#[tokio::test(start_paused = true)]
async fn buckets_are_listed_concurrently() {
    let mut buckets = Vec::new();
    for i in 0..4 {
        let (b, f) = faulty_bucket(&format!("b{i}"));
        b.put(format!("k/{i}"), "x").await.unwrap();
        f.set_latency(Duration::from_millis(20 * (i + 1)));
        buckets.push(b);
    }
    let start = Instant::now();
    let listing = merged_list(&buckets, "k", &HealthTracker::default()).await;
    assert_eq!(listing.entries.len(), 4);
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(80),
        "the slowest, not the sum"
    );
}
