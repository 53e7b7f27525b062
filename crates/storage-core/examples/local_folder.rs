//! The `Bucket` handle on a local folder: no credentials, no server.
//!
//! `cargo run -p storage-core --example local_folder`
//!
//! In a fresh temporary folder it:
//! 1. writes objects with a content type and user metadata, lists them by "directory",
//!    and reads one back whole and by byte range;
//! 2. creates a key only if absent, updates it by ETag compare-and-swap, and shows that a
//!    second writer holding the old ETag is refused (`StorageError::Precondition`);
//! 3. answers a conditional read with "not modified", renames an object, counts the
//!    bucket with `stats`, and deletes everything with `delete_many`.

use futures::TryStreamExt;
use storage_core::{Bucket, PutOpts, StorageError};

#[tokio::main]
async fn main() -> storage_core::Result<()> {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let bucket = Bucket::local("example", dir.path())?;
    println!(
        "bucket {:?} (provider {}) in {}",
        bucket.name(),
        bucket.provider(),
        dir.path().display()
    );

    // 1. Objects, metadata, listing, ranged reads.
    bucket
        .put_with(
            "reports/2026/summary.txt",
            "quarterly summary: all green",
            PutOpts::default()
                .with_content_type("text/plain")
                .with_metadata("author", "ana"),
        )
        .await?;
    bucket
        .put("reports/2026/q1.csv", "month,total\njan,3\n")
        .await?;
    bucket.put("reports/readme.txt", "see 2026/").await?;

    let listing = bucket.list_dir("reports").await?;
    println!(
        "list_dir(reports): {} object(s), sub-folders {:?}",
        listing.objects.len(),
        listing.prefixes
    );
    assert_eq!(
        listing.objects.len(),
        1,
        "only readme.txt sits directly under reports/"
    );
    assert_eq!(listing.prefixes.len(), 1, "2026/ is a sub-folder");

    let mut all: Vec<_> = bucket.list("reports").try_collect().await?;
    all.sort_by(|a, b| a.key.cmp(&b.key));
    for o in &all {
        println!(
            "  {:<28} {:>3} B  etag {}",
            o.key,
            o.size,
            o.etag.as_deref().unwrap_or("-")
        );
    }
    assert_eq!(all.len(), 3);

    let summary = bucket.get("reports/2026/summary.txt").await?;
    assert_eq!(summary.info.content_type(), Some("text/plain"));
    assert_eq!(
        summary.info.metadata.get("author").map(String::as_str),
        Some("ana")
    );
    let head = bucket.get_range("reports/2026/summary.txt", 0..9).await?;
    println!(
        "range 0..9 of summary.txt: {:?} (metadata {:?})",
        std::str::from_utf8(&head.bytes).unwrap_or("?"),
        summary.info.metadata
    );
    assert_eq!(head.bytes, "quarterly");

    // 2. Create-if-absent and compare-and-swap.
    let created = bucket
        .put_with("counter", "1", PutOpts::if_absent())
        .await?;
    let again = bucket.put_with("counter", "1", PutOpts::if_absent()).await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        "a second create must be refused, got {again:?}"
    );
    let old_etag = created.etag.clone().expect("local folder returns ETags");
    bucket
        .put_with("counter", "2", PutOpts::if_match(&old_etag))
        .await?;
    let stale = bucket
        .put_with("counter", "3", PutOpts::if_match(&old_etag))
        .await;
    let Err(refused) = stale else {
        panic!("the stale writer's compare-and-swap must be refused");
    };
    assert!(matches!(refused, StorageError::Precondition { .. }));
    println!(
        "compare-and-swap: update on the current ETag applied; stale writer got refused ({refused})"
    );
    let counter = bucket.get("counter").await?;
    assert_eq!(counter.bytes, "2", "the stale write must not land");

    // 3. Conditional read, rename, stats, bulk delete.
    let current = counter.info.etag.clone().expect("etag");
    let unchanged = bucket.get_if_none_match("counter", &current).await?;
    assert!(unchanged.is_none(), "same ETag reads as not modified");
    println!("get_if_none_match with the current ETag: not modified");

    bucket
        .rename("reports/readme.txt", "reports/README.txt")
        .await?;
    assert!(!bucket.exists("reports/readme.txt").await?);
    assert!(bucket.exists("reports/README.txt").await?);

    let stats = bucket.stats("").await?;
    println!(
        "stats: {} object(s), {} byte(s)",
        stats.objects, stats.bytes
    );
    assert_eq!(stats.objects, 4);

    let keys: Vec<String> = bucket.list("").map_ok(|o| o.key).try_collect().await?;
    let report = bucket.delete_many(&keys).await;
    println!(
        "delete_many: {} deleted, {} failed",
        report.deleted.len(),
        report.failed.len()
    );
    assert!(report.failed.is_empty());
    assert_eq!(bucket.stats("").await?.objects, 0);
    println!("done");
    Ok(())
}
