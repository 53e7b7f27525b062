//! Sync / migrate: copies, skips identical objects, resumes after interruption without
//! losing or duplicating anything, verifies, reports progress, dry-runs.

mod common;

use std::sync::atomic::Ordering;

use common::{faulty_bucket, faulty_local};
use futures::TryStreamExt;
use storage_core::{Bucket, ObjectInfo, PutOpts};
use storage_router::{CompareMode, SyncOptions, SyncProgress, sync};

async fn fill(b: &Bucket, n: usize) {
    for i in 0..n {
        b.put(format!("data/{i:02}.txt"), format!("object number {i}"))
            .await
            .unwrap();
    }
}

async fn data_keys(b: &Bucket) -> Vec<String> {
    let mut v: Vec<ObjectInfo> = b.list("data").try_collect().await.unwrap();
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v.into_iter().map(|o| o.key).collect()
}

async fn assert_same(src: &Bucket, dst: &Bucket) {
    let keys = data_keys(src).await;
    assert_eq!(keys, data_keys(dst).await);
    for k in keys {
        assert_eq!(
            src.get(&k).await.unwrap().bytes,
            dst.get(&k).await.unwrap().bytes,
            "{k}"
        );
    }
}

#[tokio::test]
async fn copies_everything_with_metadata_and_reports_progress() {
    let dir = tempfile::tempdir().unwrap();
    let src = Bucket::memory("old");
    let dst = Bucket::local("new", dir.path()).unwrap();
    fill(&src, 5).await;
    src.put_with(
        "data/meta.json",
        "{}",
        PutOpts::default()
            .with_content_type("application/json")
            .with_metadata("owner", "ops"),
    )
    .await
    .unwrap();
    let mut seen: Vec<SyncProgress> = Vec::new();
    let report = sync(&src, &dst, &SyncOptions::default(), |p| seen.push(p))
        .await
        .unwrap();
    assert!(report.is_complete());
    assert_eq!(report.progress.copied, 6);
    assert_eq!(report.progress.total, 6);
    let bytes: u64 = 2
        + (0..5)
            .map(|i| format!("object number {i}").len() as u64)
            .sum::<u64>();
    assert_eq!(report.progress.bytes_copied, bytes);
    assert_eq!(report.progress.total_bytes, bytes);
    assert_eq!(report.verified, 6);
    assert_eq!(seen.len(), 6, "one progress call per object");
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done));
    assert_eq!(seen.last().unwrap(), &report.progress);
    assert_same(&src, &dst).await;
    let info = dst.head("data/meta.json").await.unwrap();
    assert_eq!(info.content_type(), Some("application/json"));
    assert_eq!(info.metadata.get("owner").map(String::as_str), Some("ops"));
    // The checkpoint lives in the destination but is not data.
    assert_eq!(data_keys(&dst).await.len(), 6);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["copied"], 6);
    assert_eq!(json["source"], "old");
    assert_eq!(json["failed"], 0);
    assert_eq!(json["failures"], serde_json::json!([]));
}

#[tokio::test]
async fn identical_objects_are_skipped_and_changed_ones_recopied() {
    let src = Bucket::memory("a");
    let dst = Bucket::memory("b");
    fill(&src, 4).await;
    sync(&src, &dst, &SyncOptions::default(), |_| {})
        .await
        .unwrap();
    // Same size, different bytes: must be noticed even though memory ETags say nothing.
    src.put("data/01.txt", "OBJECT NUMBER 1").await.unwrap();
    for compare in [CompareMode::Auto, CompareMode::Hash] {
        let opts = SyncOptions {
            compare,
            checkpoint: compare == CompareMode::Auto,
            ..Default::default()
        };
        let r = sync(&src, &dst, &opts, |_| {}).await.unwrap();
        if compare == CompareMode::Auto {
            assert_eq!(r.copied_keys, ["data/01.txt"]);
            assert_eq!(r.progress.skipped, 3);
        } else {
            assert_eq!(r.progress.copied, 0, "already fixed by the Auto run");
            assert_eq!(r.progress.skipped, 4);
        }
    }
    assert_same(&src, &dst).await;
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let src = Bucket::memory("a");
    let (dst, df) = faulty_bucket("b");
    fill(&src, 3).await;
    dst.put("data/00.txt", "object number 0").await.unwrap();
    let puts = df.puts();
    let opts = SyncOptions {
        dry_run: true,
        ..Default::default()
    };
    let r = sync(&src, &dst, &opts, |_| {}).await.unwrap();
    assert!(r.dry_run);
    assert_eq!(r.copied_keys, ["data/01.txt", "data/02.txt"]);
    assert_eq!(r.progress.skipped, 1);
    assert_eq!(df.puts(), puts, "no data written");
    let all: Vec<ObjectInfo> = dst.list("").try_collect().await.unwrap();
    assert_eq!(all.len(), 1, "no checkpoint written either");
}

#[tokio::test]
async fn a_prefix_can_move_to_another_prefix() {
    let src = Bucket::memory("a");
    let dst = Bucket::memory("b");
    fill(&src, 2).await;
    src.put("other/x", "not synced").await.unwrap();
    let opts = SyncOptions {
        prefix: "data".into(),
        dest_prefix: Some("archive/2026".into()),
        ..Default::default()
    };
    let r = sync(&src, &dst, &opts, |_| {}).await.unwrap();
    assert_eq!(r.progress.copied, 2);
    assert!(dst.exists("archive/2026/00.txt").await.unwrap());
    assert!(!dst.exists("other/x").await.unwrap());
}

async fn interrupted_then_resumed(checkpoint: bool) {
    let src = Bucket::memory("old");
    let dir = tempfile::tempdir().unwrap();
    let (dst, df) = faulty_local("new", dir.path());
    fill(&src, 10).await;
    // The destination goes away after 3 objects.
    df.fail_puts_after.store(3, Ordering::SeqCst);
    let opts = SyncOptions {
        concurrency: 1,
        checkpoint,
        checkpoint_every: 1,
        ..Default::default()
    };
    let first = sync(&src, &dst, &opts, |_| {}).await.unwrap();
    assert!(!first.is_complete());
    assert!(
        first
            .aborted
            .as_deref()
            .unwrap()
            .contains("run the sync again")
    );
    assert_eq!(first.progress.copied, 3);
    assert_eq!(first.failed.len(), 1);
    assert_eq!(data_keys(&dst).await.len(), 3);

    // It comes back; run again.
    df.fail_puts_after.store(-1, Ordering::SeqCst);
    let gets_before = df.gets();
    let second = sync(&src, &dst, &opts, |_| {}).await.unwrap();
    assert!(second.is_complete(), "{:?}", second.failed);
    assert_eq!(second.progress.copied, 7);
    assert_eq!(second.progress.skipped, 3);
    // Nothing copied twice: exactly one data write per object over both runs.
    assert_eq!(df.puts(), 10);
    // With the checkpoint, the 3 done objects were recognised without reading them back:
    // the only destination reads are the 7 verifications.
    let dst_reads = df.gets() - gets_before;
    assert_same(&src, &dst).await;
    // Without a checkpoint the 3 are compared by content hash: the local folder's ETags are
    // version ids, not MD5s, so each of the 3 is read once more and hashed.
    assert_eq!(dst_reads, if checkpoint { 7 } else { 10 });
}

#[tokio::test]
async fn interrupted_sync_resumes_from_its_checkpoint() {
    interrupted_then_resumed(true).await;
}

#[tokio::test]
async fn interrupted_sync_resumes_by_comparing_without_a_checkpoint() {
    interrupted_then_resumed(false).await;
}

#[tokio::test]
async fn verification_catches_a_bad_copy() {
    let src = Bucket::memory("a");
    let (dst, lossy) = faulty_bucket("lossy");
    lossy.truncate_puts.store(true, Ordering::SeqCst);
    fill(&src, 2).await;
    let r = sync(&src, &dst, &SyncOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(!r.is_complete());
    assert_eq!(r.failed.len(), 2);
    assert!(
        r.failed[0].1.contains("verification failed"),
        "{:?}",
        r.failed
    );
    assert!(
        r.aborted.is_none(),
        "a bad object is not an outage: the run went on"
    );
}
