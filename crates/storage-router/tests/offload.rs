//! Offload (seed 004 s3Offload): old objects move, reads still find them.

use std::time::{Duration, SystemTime};

use chrono::Utc;
use futures::TryStreamExt;
use storage_core::{Bucket, ObjectInfo, PutOpts};
use storage_router::{OffloadOptions, Router, RouterConfig};

mod common;

fn age_file(root: &std::path::Path, key: &str, days: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(root.join(key))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

#[tokio::test]
async fn old_objects_move_to_the_offload_bucket_and_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let main = Bucket::local("main", dir.path()).unwrap();
    let archive = Bucket::memory("archive");
    let cfg = RouterConfig::from_toml_str(
        "[routes.logs]\nbucket = \"main\"\n[routes.logs.offload]\nafter_days = 30\nbucket = \"archive\"\n",
        "strata.toml",
    )
    .unwrap();
    let router =
        Router::from_buckets([main.clone(), archive.clone()], &cfg, "strata.toml").unwrap();
    let logs = router.route("logs").unwrap();
    logs.put_with(
        "activity/old/log.json",
        "old entry",
        PutOpts::default().with_content_type("application/json"),
    )
    .await
    .unwrap();
    logs.put("activity/new/log.json", "new entry")
        .await
        .unwrap();
    age_file(dir.path(), "logs/activity/old/log.json", 45);

    // Dry run: reports, moves nothing.
    let dry = router
        .offload(
            "logs",
            &OffloadOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(dry.moved, ["activity/old/log.json"]);
    assert!(main.exists("logs/activity/old/log.json").await.unwrap());

    let report = router
        .offload("logs", &OffloadOptions::default())
        .await
        .unwrap();
    assert_eq!(report.scanned, 2);
    assert_eq!(report.moved, ["activity/old/log.json"]);
    assert_eq!(report.bytes, 9);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(!main.exists("logs/activity/old/log.json").await.unwrap());
    assert!(archive.exists("logs/activity/old/log.json").await.unwrap());
    assert!(main.exists("logs/activity/new/log.json").await.unwrap());

    // Reads through the route still find it, with its headers.
    let obj = logs.get("activity/old/log.json").await.unwrap();
    assert_eq!(obj.bytes, "old entry");
    assert_eq!(obj.info.key, "activity/old/log.json");
    assert!(logs.exists("activity/old/log.json").await.unwrap());
    assert_eq!(
        logs.get_range("activity/old/log.json", 4..9)
            .await
            .unwrap()
            .bytes,
        "entry"
    );
    let s = logs.get_stream("activity/old/log.json").await.unwrap();
    assert_eq!(s.info.size, 9);
    assert_eq!(logs.head("activity/old/log.json").await.unwrap().size, 9);
    let mut listed: Vec<ObjectInfo> = logs.list("activity").try_collect().await.unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["activity/new/log.json", "activity/old/log.json"]);
    // Missing everywhere is still NotFound.
    assert!(
        logs.get("activity/none/log.json")
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Deleting through the route removes the offloaded copy too.
    logs.delete("activity/old/log.json").await.unwrap();
    assert!(!archive.exists("logs/activity/old/log.json").await.unwrap());

    // A later run with everything young moves nothing.
    let again = router
        .offload("logs", &OffloadOptions::default())
        .await
        .unwrap();
    assert!(again.moved.is_empty());
}

#[tokio::test]
async fn offload_to_a_storage_class_rewrites_in_place_once() {
    let main = Bucket::memory("main");
    let cfg = RouterConfig::from_toml_str(
        "[routes.backups]\nbucket = \"main\"\n[routes.backups.offload]\nafter_days = 7\nstorage_class = \"GLACIER_IR\"\n",
        "strata.toml",
    )
    .unwrap();
    let router = Router::from_buckets([main.clone()], &cfg, "strata.toml").unwrap();
    let backups = router.route("backups").unwrap();
    backups
        .put_with(
            "docs/2026-01-01/snapshot.json",
            "{}",
            PutOpts::default().with_metadata("owner", "ops"),
        )
        .await
        .unwrap();
    let later = OffloadOptions {
        now: Utc::now() + chrono::Duration::days(8),
        ..Default::default()
    };
    let report = router.offload("backups", &later).await.unwrap();
    assert_eq!(report.moved, ["docs/2026-01-01/snapshot.json"]);
    let info = main
        .head("backups/docs/2026-01-01/snapshot.json")
        .await
        .unwrap();
    assert_eq!(
        info.headers.get("storage-class").map(String::as_str),
        Some("GLACIER_IR")
    );
    assert_eq!(
        info.metadata.get("owner").map(String::as_str),
        Some("ops"),
        "metadata kept"
    );
    // Rewriting reset its age; even judged as old, it is already in the class: skipped.
    let much_later = OffloadOptions {
        now: Utc::now() + chrono::Duration::days(30),
        ..Default::default()
    };
    let again = router.offload("backups", &much_later).await.unwrap();
    assert!(again.moved.is_empty());
    assert_eq!(again.skipped, ["docs/2026-01-01/snapshot.json"]);
}

#[tokio::test]
async fn a_route_without_offload_says_how_to_add_one() {
    let router =
        Router::from_buckets([Bucket::memory("m")], &RouterConfig::default(), "s.toml").unwrap();
    let err = router
        .offload("records", &OffloadOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("[routes.records.offload]"), "{err}");
}

/// `route` refuses to delete `key` under `etag`: a precondition failure.
async fn delete_refused(route: &Bucket, key: &str, etag: &str) {
    use storage_core::StorageError;
    let err = route.delete_if_match(key, etag).await.unwrap_err();
    assert!(
        matches!(err, StorageError::Precondition { .. }),
        "{key}: {err}"
    );
}

/// Writes `body` at `key` of `bucket`: the ETag it was given.
async fn put_etag(bucket: &Bucket, key: &str, body: &'static str) -> String {
    bucket.put(key, body).await.unwrap().etag.unwrap()
}

/// The handle of route `logs` (folder `logs/` of `main`) offloading to `old-logs/` of
/// `archive`.
fn logs_route(main: &Bucket, archive: &Bucket) -> Bucket {
    use storage_core::Key;
    use storage_router::{OffloadTarget, Route};
    Route::new("logs", main.clone(), "logs")
        .unwrap()
        .with_offload(OffloadTarget {
            bucket: archive.clone(),
            prefix: Some(Key::new("old-logs").unwrap()),
            storage_class: None,
            after_days: 30,
        })
        .unwrap()
        .handle()
        .clone()
}

/// The offload fallback is the fallback engine moving on only on a miss: an outage of either
/// folder is the answer, never "not found", and the archive is not asked when the route's
/// own bucket is down.
#[tokio::test]
async fn offload_reads_move_on_only_when_the_route_misses() {
    use storage_core::StorageError;
    let (main, main_faults) = common::faulty_bucket("main");
    let (archive, archive_faults) = common::faulty_bucket("archive");
    let route = logs_route(&main, &archive);
    archive.put("old-logs/a.json", "archived").await.unwrap();
    assert_eq!(route.get("a.json").await.unwrap().bytes, "archived");
    assert_eq!(route.head("a.json").await.unwrap().key, "a.json");
    // Missing in both: the route's own "not found".
    let err = route.get("b.json").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("main"), "{err}");
    // The archive is down: that is the answer, not "not found".
    archive_faults.set_down(true);
    let err = route.get("a.json").await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
    archive_faults.set_down(false);
    // The route's bucket is down: the archive is not asked.
    main_faults.set_down(true);
    let asked = archive_faults.gets();
    let err = route.get("a.json").await.unwrap_err();
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
    assert_eq!(archive_faults.gets(), asked);
}

/// A conditional delete through an offload route is decided by the folder holding the object
/// (the route's own first, the offload folder when it is not there), and a delete that
/// succeeds leaves no copy of the key in either folder.
#[tokio::test]
async fn conditional_deletes_are_decided_by_the_folder_holding_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let main = Bucket::local("main", dir.path().join("main")).unwrap();
    let archive = Bucket::local("archive", dir.path().join("archive")).unwrap();
    let route = logs_route(&main, &archive);
    assert!(route.capabilities().delete_if_match);

    // Only in the offload folder: a stale ETag is refused there and deletes nothing...
    let old = put_etag(&archive, "old-logs/only-archived.json", "v1").await;
    delete_refused(&route, "only-archived.json", "\"stale\"").await;
    assert!(archive.exists("old-logs/only-archived.json").await.unwrap());
    // ...and its own ETag deletes it.
    route
        .delete_if_match("only-archived.json", &old)
        .await
        .unwrap();
    assert!(!archive.exists("old-logs/only-archived.json").await.unwrap());

    // In both folders: the route's own copy decides, and a success removes both copies.
    let here = put_etag(&main, "logs/both.json", "new").await;
    let there = put_etag(&archive, "old-logs/both.json", "old").await;
    delete_refused(&route, "both.json", &there).await;
    assert!(main.exists("logs/both.json").await.unwrap());
    assert!(archive.exists("old-logs/both.json").await.unwrap());
    route.delete_if_match("both.json", &here).await.unwrap();
    assert!(!main.exists("logs/both.json").await.unwrap());
    assert!(!archive.exists("old-logs/both.json").await.unwrap());

    // In neither: not found, naming the route's own bucket.
    let err = route
        .delete_if_match("nowhere.json", &here)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    // A plain delete reaches both folders too.
    main.put("logs/plain.json", "new").await.unwrap();
    archive.put("old-logs/plain.json", "old").await.unwrap();
    route.delete("plain.json").await.unwrap();
    assert!(!main.exists("logs/plain.json").await.unwrap());
    assert!(!archive.exists("old-logs/plain.json").await.unwrap());
}
