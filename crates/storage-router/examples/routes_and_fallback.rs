//! Routing data types to buckets, reading across a primary and a fallback, tenant scopes
//! and a verified sync, on local folders (no credentials, no server).
//!
//! `cargo run -p storage-router --example routes_and_fallback`
//!
//! Four local-folder buckets (`hot`, `cheap`, `primary`, `backup`) in a temporary directory,
//! and a router configured from TOML:
//! 1. `records` go to `hot`, `versions` to `cheap`, with seed 004's key layouts;
//! 2. the source set `archive` = `primary` then `backup`, read sequentially: a key only the
//!    fallback has is answered by `backup`, and the router says so;
//! 3. the tenant `acme` writes under its own prefix and cannot reach outside it;
//! 4. `sync` copies `primary` to `backup` (verified), and a second run copies nothing.

use storage_core::Bucket;
use storage_router::{Router, RouterConfig, SyncOptions, layout, sync};

const CONFIG: &str = r#"
[routes.records]
bucket = "hot"

[routes.versions]
bucket = "cheap"

[sources.archive]
buckets = ["primary", "backup"]
policy = "sequential"

[tenants.acme]
bucket = "hot"
prefix = "tenants/acme"
"#;

#[tokio::main]
async fn main() -> storage_core::Result<()> {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let mut buckets = Vec::new();
    for name in ["hot", "cheap", "primary", "backup"] {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).expect("create a bucket folder");
        buckets.push(Bucket::local(name, &folder)?);
    }
    let config = RouterConfig::from_toml_str(CONFIG, "strata.toml")?;
    let router = Router::from_buckets(buckets, &config, "strata.toml")?;

    // 1. Routes: each data type lands in its bucket under its folder.
    let records = router.route("records")?;
    let versions = router.route("versions")?;
    let head = layout::record_head("users", "42")?;
    let version = layout::record_version("users", "42", 0)?;
    records.put(&head, r#"{"name":"Ada"}"#).await?;
    versions.put(&version, r#"{"name":"Ada"}"#).await?;
    // Where they landed: the route's bucket, under its folder.
    let (to_records, to_versions) = (
        router.route_info("records")?,
        router.route_info("versions")?,
    );
    let head_key = format!("{}/{head}", to_records.prefix());
    let version_key = format!("{}/{version}", to_versions.prefix());
    println!("records  -> {}: {head_key}", to_records.bucket().name());
    println!("versions -> {}: {version_key}", to_versions.bucket().name());
    assert!(router.bucket("hot")?.exists(&head_key).await?);
    assert!(router.bucket("cheap")?.exists(&version_key).await?);
    assert!(!router.bucket("cheap")?.exists(&head_key).await?);

    // 2. Sequential read across primary and fallback.
    router
        .bucket("primary")?
        .put("reports/new.csv", "a,b\n1,2\n")
        .await?;
    router
        .bucket("backup")?
        .put("reports/2019.csv", "a,b\n0,0\n")
        .await?;
    let recent = router.read_any("archive", "reports/new.csv").await?;
    let old = router.read_any("archive", "reports/2019.csv").await?;
    println!(
        "read_any(archive): reports/new.csv from {}, reports/2019.csv from {} (primary lacks it)",
        recent.bucket, old.bucket
    );
    assert_eq!(recent.bucket, "primary");
    assert_eq!(
        old.bucket, "backup",
        "the fallback answers what the primary lacks"
    );
    assert_eq!(old.value.bytes, "a,b\n0,0\n");
    assert!(
        router
            .read_any("archive", "reports/none.csv")
            .await
            .is_err()
    );

    // 3. A tenant scope.
    let acme = router.tenant("acme")?;
    acme.put("invoices/1.json", "{}").await?;
    println!(
        "tenant acme wrote invoices/1.json at {}",
        acme.stored_at("invoices/1.json")
    );
    assert!(
        router
            .bucket("hot")?
            .exists("tenants/acme/invoices/1.json")
            .await?
    );
    // Same bucket, but the tenant only sees its own folder: `records/...` means
    // `tenants/acme/records/...` to it.
    assert!(!acme.exists(head_key.as_str()).await?);
    println!("tenant acme looking up {head_key}: not found (it sees only tenants/acme/)");
    let escape = acme.get("../../records/users/42/head.json").await;
    println!(
        "tenant acme reading ../../records/...: {}",
        match &escape {
            Err(e) => format!("refused ({e})"),
            Ok(_) => "allowed (wrong!)".into(),
        }
    );
    assert!(
        escape.is_err(),
        "a tenant must not reach outside its prefix"
    );

    // 4. Sync primary -> backup, verified; running it again copies nothing.
    let primary = router.bucket("primary")?;
    let backup = router.bucket("backup")?;
    let first = sync(primary, backup, &SyncOptions::default(), |_| {}).await?;
    let second = sync(primary, backup, &SyncOptions::default(), |_| {}).await?;
    println!(
        "sync primary -> backup: {} copied ({} verified); again: {} copied, {} skipped",
        first.progress.copied, first.verified, second.progress.copied, second.progress.skipped
    );
    assert_eq!(first.progress.copied, 1);
    assert!(first.failed.is_empty());
    assert_eq!(second.progress.copied, 0);
    assert_eq!(backup.get("reports/new.csv").await?.bytes, "a,b\n1,2\n");
    println!("done");
    Ok(())
}
