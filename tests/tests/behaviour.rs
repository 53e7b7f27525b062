//! The behaviour suite, unchanged, against every backend: memory, local folder, the moto S3
//! server, the signature-checking s3s-fs server, and R2's config path pointed at moto.

use storage_core::{Bucket, StorageError};
use strata_testkit::behaviour::{Profile, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    let report = run(&Bucket::memory("memory"), &Profile::embedded("memory")).await;
    assert!(
        report
            .skipped
            .iter()
            .all(|(name, _)| name.starts_with("presign")),
        "{:?}",
        report.skipped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local("local", dir.path()).unwrap();
    let report = run(&bucket, &Profile::embedded("local folder")).await;
    assert!(
        report
            .skipped
            .iter()
            .all(|(name, _)| name.starts_with("presign")),
        "{:?}",
        report.skipped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_folder_with_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local("local", dir.path())
        .unwrap()
        .to_builder()
        .prefix("tenant-a/app")
        .unwrap()
        .build();
    let report = run(&bucket, &Profile::embedded("local folder, prefixed")).await;
    // Exactly the presign checks are skipped (a folder has no endpoint); every other check,
    // conditional delete included, ran through the scope.
    let skipped: Vec<&str> = report.skipped.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        skipped,
        ["presigned_get_and_put", "presigned_url_tampered_or_expired"],
        "{report:?}"
    );
    assert!(report.passed.contains(&"conditional_delete"), "{report:?}");
    // Everything landed under the prefix.
    assert!(dir.path().join("tenant-a/app").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_moto() {
    let Some(bucket) = strata_testkit::s3_bucket("suite") else {
        return;
    };
    let report = run(&bucket, &Profile::moto()).await;
    assert!(report.passed.contains(&"presigned_get_and_put"));
    assert!(report.passed.contains(&"conditional_get"));
    assert!(report.passed.contains(&"conditional_delete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_signatures() {
    let Some(bucket) = strata_testkit::sigv4_bucket("suite") else {
        return;
    };
    let report = run(&bucket, &Profile::s3s_fs()).await;
    assert!(report.passed.contains(&"presigned_url_tampered_or_expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_config_path_over_moto() {
    let Some(bucket) = strata_testkit::r2_bucket("suite") else {
        return;
    };
    assert_eq!(bucket.provider(), "r2");
    assert_eq!(bucket.capabilities().max_delete_batch, 700);
    let report = run(&bucket, &Profile::moto()).await;
    assert!(
        report.passed.contains(&"delete_many_1500_keys"),
        "1500 keys in batches of 700"
    );
}

#[tokio::test]
async fn wrong_secret_is_rejected_by_the_signature_server() {
    let Some(server) = strata_testkit::sigv4_env() else {
        return;
    };
    let mut cfg = strata_testkit::s3_config(&server);
    cfg.secret_access_key = Some(storage_core::Secret::new("not-the-secret"));
    cfg.max_retries = Some(0);
    let bucket = cfg.build("wrong-key").unwrap();
    let err = bucket.put("strata-test/wrong-key", "x").await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::AccessDenied { .. } | StorageError::Unauthenticated { .. }
        ),
        "{err:?}"
    );
}

/// The DELETE behind `delete_if_match` on S3 is signed outside `object_store`'s request path
/// (presigned by its signer): the signature-checking server must accept it, and refuse it
/// under a wrong secret. s3s-fs ignores the `If-Match` itself; moto checks the condition in
/// the behaviour suite's `conditional_delete`.
#[tokio::test]
async fn conditional_delete_is_signed_for_the_signature_server() {
    let Some(server) = strata_testkit::sigv4_env() else {
        return;
    };
    let mut cfg = strata_testkit::s3_config(&server);
    cfg.keep_alive = false;
    cfg.conditional_delete = Some(true);
    let bucket = cfg.build("signed-delete").unwrap();
    let key = format!("{}/doc", strata_testkit::run_prefix("signed-delete"));
    let w = bucket.put(&key, "x").await.unwrap();
    let etag = w.etag.expect("S3 returns an ETag");

    let mut wrong = cfg.clone();
    wrong.secret_access_key = Some(storage_core::Secret::new("not-the-secret"));
    let err = wrong
        .build("wrong-key")
        .unwrap()
        .delete_if_match(&key, &etag)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::AccessDenied { .. }),
        "a wrongly signed DELETE: {err:?}"
    );
    assert!(
        bucket.exists(&key).await.unwrap(),
        "the refused DELETE deleted"
    );

    bucket.delete_if_match(&key, &etag).await.unwrap();
    assert!(
        !bucket.exists(&key).await.unwrap(),
        "the signed DELETE was not applied"
    );
}
