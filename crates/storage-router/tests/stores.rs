//! FailoverStore, MirrorStore and FallbackStore as plain `ObjectStore`s.

mod common;

use std::sync::Arc;

use common::{faulty_bucket, faulty_local};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use storage_core::{Bucket, MemoryStore, PutOpts, StorageError, StrataStore};
use storage_router::{
    AllBucketsFailed, FailoverStore, MirrorRequirement, MirrorStore, ReadPolicy, SourceSet,
};

fn p(s: &str) -> Path {
    Path::from(s)
}

async fn text(store: &dyn ObjectStore, key: &str) -> object_store::Result<String> {
    let b = store.get(&p(key)).await?.bytes().await?;
    Ok(String::from_utf8(b.to_vec()).unwrap())
}

/// A create of `key` through `store` is refused: the key exists.
async fn create_is_refused(store: &impl ObjectStore, key: &str) {
    let err = store
        .put_opts(&p(key), "again".into(), PutOptions::from(PutMode::Create))
        .await
        .unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{key}: {err}"
    );
}

#[tokio::test]
async fn failover_serves_from_the_fallback_only_when_the_primary_is_unavailable() {
    let (primary, pf) = faulty_bucket("s3");
    let (fallback, _) = faulty_bucket("r2");
    let store = FailoverStore::new(
        ("s3", primary.store().clone()),
        ("r2", fallback.store().clone()),
    );
    primary.put("both", "from s3").await.unwrap();
    fallback.put("both", "from r2").await.unwrap();
    fallback.put("only-r2", "r2").await.unwrap();

    assert_eq!(text(&store, "both").await.unwrap(), "from s3");
    // Missing in a healthy primary is an answer: no failover.
    let err = text(&store, "only-r2").await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");

    pf.set_down(true);
    assert_eq!(text(&store, "both").await.unwrap(), "from r2");
    assert_eq!(text(&store, "only-r2").await.unwrap(), "r2");
    // Unconditional writes fail over too...
    store
        .put(&p("new"), "written during outage".into())
        .await
        .unwrap();
    assert_eq!(
        fallback.get("new").await.unwrap().bytes,
        "written during outage"
    );
    // ...but a compare-and-swap is never decided by the fallback.
    let err = store
        .put_opts(&p("cas"), "x".into(), PutOptions::from(PutMode::Create))
        .await
        .unwrap_err();
    let err = StorageError::from_object_store("failover", err);
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
    assert!(!fallback.exists("cas").await.unwrap());
    // Listing fails over as well.
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 3);
    // Both down: the error names each store's failure.
    let (fb2, ff2) = faulty_bucket("r2b");
    ff2.set_down(true);
    let both_down = FailoverStore::new(
        ("s3", primary.store().clone()),
        ("r2b", fb2.store().clone()),
    );
    let err = StorageError::from_object_store("x", text(&both_down, "both").await.unwrap_err());
    let all = AllBucketsFailed::from_error(&err).expect("lists failures");
    assert_eq!(all.failures.len(), 2, "{err}");
}

#[tokio::test]
async fn failover_does_not_mask_other_errors() {
    let primary: Arc<dyn StrataStore> = Arc::new(MemoryStore::new());
    let (fallback, _) = faulty_bucket("fb");
    let store = FailoverStore::new(("p", primary.clone()), ("fb", fallback.store().clone()));
    primary.put(&p("k"), "v".into()).await.unwrap();
    create_is_refused(&store, "k").await;
    assert!(!fallback.exists("k").await.unwrap());
}

#[tokio::test]
async fn mirror_writes_everywhere_and_reads_prefer_the_primary() {
    let dir = tempfile::tempdir().unwrap();
    let (cloud, cf) = faulty_bucket("r2");
    let (local, lf) = faulty_local("local", dir.path());
    let r2_and_local = || {
        vec![
            ("r2".into(), cloud.store().clone()),
            ("local".into(), local.store().clone()),
        ]
    };
    let hybrid = MirrorStore::new(r2_and_local());
    hybrid.put(&p("a.json"), "v1".into()).await.unwrap();
    assert_eq!(cloud.get("a.json").await.unwrap().bytes, "v1");
    assert_eq!(local.get("a.json").await.unwrap().bytes, "v1");

    // Cloud down (seed 003 "R2 connection failures: automatic fallback"): writes land
    // locally, reads fall back.
    cf.set_down(true);
    hybrid.put(&p("b.json"), "offline".into()).await.unwrap();
    assert_eq!(text(&hybrid, "b.json").await.unwrap(), "offline");
    assert_eq!(text(&hybrid, "a.json").await.unwrap(), "v1");
    cf.set_down(false);
    // Back up: the primary misses b.json, the mirror still serves it.
    assert_eq!(text(&hybrid, "b.json").await.unwrap(), "offline");

    // With the primary required, an outage fails the write.
    let strict = MirrorStore::with_requirement(r2_and_local(), MirrorRequirement::Primary);
    cf.set_down(true);
    assert!(strict.put(&p("c.json"), "x".into()).await.is_err());
    cf.set_down(false);
    // With every copy required, a local failure fails the write.
    let all = MirrorStore::with_requirement(r2_and_local(), MirrorRequirement::All);
    lf.set_down(true);
    let err =
        StorageError::from_object_store("m", all.put(&p("d.json"), "x".into()).await.unwrap_err());
    assert!(err.to_string().contains("local"), "{err}");
    lf.set_down(false);

    // Deletes and copies go everywhere.
    hybrid.copy(&p("a.json"), &p("a2.json")).await.unwrap();
    assert!(local.exists("a2.json").await.unwrap() && cloud.exists("a2.json").await.unwrap());
    hybrid.delete(&p("a.json")).await.unwrap();
    assert!(!local.exists("a.json").await.unwrap() && !cloud.exists("a.json").await.unwrap());
}

#[tokio::test]
async fn mirror_conditional_writes_are_decided_by_the_primary() {
    let primary = Bucket::memory("p");
    let mirror = Bucket::memory("m");
    let store = MirrorStore::new(vec![
        ("p".into(), primary.store().clone()),
        ("m".into(), mirror.store().clone()),
    ]);
    // The mirror already has the key, the primary does not: create succeeds on the primary
    // and the mirror copy is overwritten to follow it.
    mirror.put("k", "stale").await.unwrap();
    store
        .put_opts(&p("k"), "fresh".into(), PutOptions::from(PutMode::Create))
        .await
        .unwrap();
    assert_eq!(mirror.get("k").await.unwrap().bytes, "fresh");
    create_is_refused(&store, "k").await;
    assert_eq!(mirror.get("k").await.unwrap().bytes, "fresh");
}

#[tokio::test]
async fn mirror_multipart_reaches_every_copy() {
    let a = Bucket::memory("a");
    let b = Bucket::memory("b");
    let store: Arc<dyn ObjectStore> = Arc::new(MirrorStore::new(vec![
        ("a".into(), a.store().clone()),
        ("b".into(), b.store().clone()),
    ]));
    let bucket = Bucket::builder("mirror", store)
        .part_size(5 * 1024 * 1024)
        .unwrap()
        .build();
    let big = vec![7u8; 11 * 1024 * 1024];
    let chunks = big
        .chunks(1024 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect::<Vec<_>>();
    bucket
        .put_stream("big.bin", futures::stream::iter(chunks), PutOpts::default())
        .await
        .unwrap();
    assert_eq!(a.head("big.bin").await.unwrap().size, big.len() as u64);
    assert_eq!(b.get("big.bin").await.unwrap().bytes.len(), big.len());
}

#[tokio::test]
async fn source_set_mirror_put_reports_each_copy() {
    let (a, _) = faulty_bucket("agent");
    let (b, bf) = faulty_bucket("server-001");
    let (c, _) = faulty_bucket("server-002");
    let set = SourceSet::new(
        "tide",
        vec![a.clone(), b, c.clone()],
        ReadPolicy::Sequential,
    )
    .unwrap();
    bf.set_down(true);
    let report = set.mirror_put("t.json", "{}", PutOpts::default()).await;
    assert_eq!(report.succeeded(), ["agent", "server-002"]);
    assert_eq!(report.failed().len(), 1);
    assert_eq!(report.failed()[0].0, "server-001");
    assert!(!report.all_ok());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["failed"][0]["bucket"], "server-001");
    // Conditional: the primary decides; on failure nothing else is written.
    let report = set.mirror_put("t.json", "{}", PutOpts::if_absent()).await;
    assert!(report.succeeded().is_empty());
    assert!(matches!(
        report.copies[0].result,
        Err(StorageError::AlreadyExists { .. })
    ));
    bf.set_down(false);
    let report = set.mirror_put("new.json", "1", PutOpts::if_absent()).await;
    assert!(report.all_ok(), "{report:?}");
    assert!(c.exists("new.json").await.unwrap());
}

#[tokio::test]
async fn a_source_set_is_one_store_for_object_store_users() {
    let (agent, af) = faulty_bucket("agent");
    let s1 = Bucket::memory("server-001");
    let s2 = Bucket::memory("server-002");
    agent.put("d/a", "agent").await.unwrap();
    s1.put("d/a", "s1").await.unwrap();
    s1.put("d/b", "s1").await.unwrap();
    s2.put("d/c", "s2").await.unwrap();
    let set = SourceSet::new("tide", vec![agent.clone(), s1, s2], ReadPolicy::Sequential).unwrap();
    let store = set.store();
    assert_eq!(text(store.as_ref(), "d/a").await.unwrap(), "agent");
    assert_eq!(text(store.as_ref(), "d/c").await.unwrap(), "s2");
    let ranges = store.get_ranges(&p("d/b"), &[0..1, 1..2]).await.unwrap();
    assert_eq!(ranges, ["s", "1"]);
    let mut keys: Vec<String> = store
        .list(Some(&p("d")))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys, ["d/a", "d/b", "d/c"]);
    let dir = store.list_with_delimiter(None).await.unwrap();
    assert_eq!(dir.common_prefixes, [p("d")]);
    // Writes go to the primary.
    store.put(&p("d/new"), PutPayload::from("n")).await.unwrap();
    assert!(agent.exists("d/new").await.unwrap());
    // A bucket down: reads still answer, the listing refuses to be silently short.
    af.set_down(true);
    assert_eq!(text(store.as_ref(), "d/a").await.unwrap(), "s1");
    let listed: Result<Vec<_>, _> = store.list(Some(&p("d"))).try_collect().await;
    let err = listed.unwrap_err().to_string();
    assert!(err.contains("partial") && err.contains("agent"), "{err}");
    assert!(store.list_with_delimiter(None).await.is_err());
}

#[tokio::test]
async fn a_failover_bucket_keeps_the_primary_identity() {
    let (primary, pf) = faulty_bucket("s3");
    let fallback = Bucket::memory("r2");
    fallback.put("k", "from r2").await.unwrap();
    let b = storage_router::failover_bucket(&primary, &fallback);
    assert_eq!((b.name(), b.provider()), ("s3", "memory"));
    assert!(
        b.get("k").await.unwrap_err().is_not_found(),
        "missing is not an outage"
    );
    pf.set_down(true);
    assert_eq!(b.get("k").await.unwrap().bytes, "from r2");
}

fn counting_memory() -> Arc<strata_testkit::CountingStore> {
    Arc::new(strata_testkit::CountingStore::new(Arc::new(
        MemoryStore::new(),
    )))
}

#[tokio::test]
async fn deletes_reach_every_store_in_batches() {
    let (a, b) = (counting_memory(), counting_memory());
    let members: Vec<(String, Arc<dyn StrataStore>)> =
        vec![("a".into(), a.clone()), ("b".into(), b.clone())];
    let mirror = Bucket::builder("m", Arc::new(MirrorStore::new(members))).build();
    let keys: Vec<String> = (0..1500).map(|i| format!("k/{i:04}")).collect();
    for k in &keys {
        mirror.put(k, "x").await.unwrap();
    }
    let report = mirror.delete_many(&keys).await;
    assert_eq!(report.deleted.len(), 1500);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for (name, store) in [("a", &a), ("b", &b)] {
        let (calls, deleted) = store.deletes();
        assert_eq!(deleted, 1500, "{name}");
        // Bucket::delete_many sends 1000 + 500 keys; each is cut into batches of 700.
        assert_eq!(calls, 3, "{name}: {calls} delete calls for 1500 keys");
        let left: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert!(left.is_empty(), "{name} kept {} objects", left.len());
    }
}

#[tokio::test]
async fn a_failed_delete_batch_fails_over_whole_and_reports_every_key() {
    let (primary, pf) = faulty_bucket("s3");
    let fallback = counting_memory();
    let store = FailoverStore::new(
        ("s3", primary.store().clone()),
        ("r2", fallback.clone() as Arc<dyn StrataStore>),
    );
    let bucket = Bucket::builder("media", Arc::new(store)).build();
    let keys: Vec<String> = (0..10).map(|i| format!("k/{i}")).collect();
    for k in &keys {
        fallback.put(&p(k), PutPayload::from("x")).await.unwrap();
    }
    pf.set_down(true);
    let report = bucket.delete_many(&keys).await;
    assert_eq!(report.deleted.len(), 10, "{:?}", report.failed);
    assert_eq!(fallback.deletes(), (1, 10), "one batch on the fallback");

    // With no other store to turn to, a failed batch fails each of its keys.
    let (refusing, rf) = faulty_bucket("s3");
    rf.set_down(true);
    let only = Bucket::builder("solo", refusing.store().clone()).build();
    let mirror = Bucket::builder(
        "m",
        Arc::new(MirrorStore::with_requirement(
            vec![("s3".into(), only.store().clone())],
            MirrorRequirement::All,
        )),
    )
    .build();
    let report = mirror.delete_many(&keys).await;
    assert_eq!(report.failed.len(), 10);
    assert!(report.deleted.is_empty());
    let named = report
        .failed
        .iter()
        .filter(|(key, err)| {
            let text = err.to_string();
            text.contains("batch delete of 10 keys") && text.contains(key.as_str())
        })
        .count();
    // Each key reports the store's failure and names the batch it was in.
    assert_eq!(named, 10, "{:?}", report.failed);
}
