//! The same routing, read-any, failover, listing and sync behaviour against the real S3
//! server (moto) that `cargo xtask test` starts: two "buckets", each a fresh random folder.
//! Without the server these tests fail with "run `cargo xtask test`", unless
//! `STRATA_SKIP_S3=1` is set (then they print that they skipped).

mod common;

use std::sync::Arc;

use common::faulty_over;
use object_store::ObjectStore;
use storage_core::{Bucket, StorageError};
use storage_router::{
    AllBucketsFailed, FailoverStore, ReadPolicy, Router, RouterConfig, SyncOptions, layout, sync,
};

fn two_buckets(hint: &str) -> Option<(Bucket, Bucket)> {
    let a = strata_testkit::s3_bucket(&format!("{hint}-a"))?;
    let b = strata_testkit::s3_bucket(&format!("{hint}-b"))?;
    Some((a, b))
}

fn router(a: &Bucket, b: &Bucket) -> Router {
    let toml = format!(
        "[routes.records]\nbucket = \"{a}\"\n[routes.versions]\nbucket = \"{b}\"\n[sources.both]\nbuckets = [\"{a}\", \"{b}\"]\n",
        a = a.name(),
        b = b.name()
    );
    let cfg = RouterConfig::from_toml_str(&toml, "s3-test.toml").unwrap();
    Router::from_buckets([a.clone(), b.clone()], &cfg, "s3-test.toml").unwrap()
}

#[tokio::test]
async fn routing_and_read_any_on_s3() {
    let Some((a, b)) = two_buckets("route") else {
        return;
    };
    let r = router(&a, &b);
    let head = layout::record_head("users", "42").unwrap();
    r.route("records")
        .unwrap()
        .put(&head, "{\"v\":1}")
        .await
        .unwrap();
    r.route("versions")
        .unwrap()
        .put(
            &layout::record_version("users", "42", 0).unwrap(),
            "{\"v\":0}",
        )
        .await
        .unwrap();
    assert!(a.exists("records/users/42/head.json").await.unwrap());
    assert!(b.exists("versions/users/42/v0.json").await.unwrap());
    let set = r.source("both").unwrap();
    for policy in [
        ReadPolicy::Sequential,
        ReadPolicy::Parallel,
        ReadPolicy::hedged(),
        ReadPolicy::Hedged(storage_router::Hedging::fixed(
            std::time::Duration::from_millis(20),
        )),
    ] {
        let first = set
            .get_with("records/users/42/head.json", policy)
            .await
            .unwrap();
        assert_eq!(first.bucket, a.name(), "{policy:?}");
        let last = set
            .get_with("versions/users/42/v0.json", policy)
            .await
            .unwrap();
        assert_eq!(last.bucket, b.name(), "{policy:?}");
        assert_eq!(last.value.bytes, "{\"v\":0}");
        let none = set
            .get_with("records/nobody.json", policy)
            .await
            .unwrap_err();
        assert!(none.is_not_found(), "{policy:?}: {none}");
    }
    let listing = set.list("").await;
    assert!(!listing.is_partial());
    let keys: Vec<&str> = listing.keys().collect();
    assert_eq!(
        keys,
        ["records/users/42/head.json", "versions/users/42/v0.json"]
    );
}

#[tokio::test]
async fn failover_and_outages_on_s3() {
    let Some((a, b)) = two_buckets("failover") else {
        return;
    };
    b.put("k.json", "from fallback").await.unwrap();
    let (down, faults) = faulty_over(a.name(), a.store().clone());
    faults.set_down(true);
    let store = FailoverStore::new(
        (a.name(), down.store().clone()),
        (b.name(), b.store().clone()),
    );
    let got = strata_testkit::body(&store, "k.json").await;
    assert_eq!(got, "from fallback");
    // Read-any skips the dead bucket and says which one answered.
    let set =
        storage_router::SourceSet::new("s", vec![down.clone(), b.clone()], ReadPolicy::Parallel)
            .unwrap();
    let found = set.get("k.json").await.unwrap();
    assert_eq!(found.bucket, b.name());
    assert_eq!(found.skipped.len(), 1);
    // Both unavailable: each failure is listed.
    let (down_b, fb) = faulty_over(b.name(), b.store().clone());
    fb.set_down(true);
    let dead =
        storage_router::SourceSet::new("dead", vec![down, down_b], ReadPolicy::Sequential).unwrap();
    let err = dead.get("k.json").await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }));
    assert_eq!(
        AllBucketsFailed::from_error(&err).unwrap().failures.len(),
        2
    );
}

#[tokio::test]
async fn sync_between_s3_and_memory() {
    let Some((a, b)) = two_buckets("sync") else {
        return;
    };
    for i in 0..5 {
        a.put(format!("data/{i}.txt"), format!("payload {i}"))
            .await
            .unwrap();
    }
    // S3 to S3: ETags are content MD5s, so identical objects are recognised from listings.
    let first = sync(&a, &b, &SyncOptions::default(), |_| {}).await.unwrap();
    assert!(first.is_complete(), "{:?}", first.failed);
    assert_eq!((first.progress.copied, first.verified), (5, 5));
    let again = sync(
        &a,
        &b,
        &SyncOptions {
            checkpoint: false,
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((again.progress.copied, again.progress.skipped), (0, 5));
    // S3 to memory and back (ETags not comparable: hashes or the checkpoint decide).
    let mem = Bucket::memory("mem");
    let down = sync(&b, &mem, &SyncOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(down.progress.copied, 5);
    a.put("data/2.txt", "PAYLOAD 2").await.unwrap();
    let up = sync(&a, &mem, &SyncOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(up.copied_keys, ["data/2.txt"]);
    assert_eq!(mem.get("data/2.txt").await.unwrap().bytes, "PAYLOAD 2");
    let _: Arc<dyn ObjectStore> = mem.object_store();
}
