//! The behaviour suite (`strata_testkit::behaviour`) as one test per check per stack: the
//! bare backends (memory, local folder, the moto S3 server, the signature-checking s3s-fs
//! server, R2's config path pointed at moto) and the stacks users run, built by
//! `Strata::from_toml_str` from a config file's text: a bucket with layers (metrics, cache,
//! retry, breaker, limit, timeout), one with compression and encryption, a bucket that
//! fails over to another, a mirrored bucket, and routes and tenants (`strata.router()?`) on
//! plain and layered buckets, one route with an offload target. Each stack asserts the
//! exact set of checks it skips; every trial runs on a fresh bucket (a fresh memory store,
//! temporary folder or random prefix).
//!
//! S3 stacks need the servers of `cargo xtask test`; with `STRATA_SKIP_S3=1` (and no server
//! variables) their trials print `SKIPPED` and pass.

use std::path::Path;

use storage_core::{Bucket, StorageError};
use strata::Strata;
use strata_testkit::behaviour::{Profile, Subject};
use strata_testkit::behaviour_tests;
use tempfile::TempDir;

// --- Bare backends -------------------------------------------------------------------------

behaviour_tests!(
    memory,
    setup = |_| Bucket::memory("memory"),
    profile = Profile::embedded("memory"),
    // Memory has no endpoint to sign URLs for.
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    local_folder,
    setup = |_| local_folder(None),
    profile = Profile::embedded("local folder"),
    // A folder has no endpoint to sign URLs for.
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    local_folder_with_prefix,
    setup = |_| local_folder(Some("tenant-a/app")),
    profile = Profile::embedded("local folder, prefixed"),
    // Exactly the presign checks; conditional delete included, everything runs through the
    // scope.
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    s3_moto,
    setup = strata_testkit::s3_bucket,
    profile = Profile::moto(),
    // moto accepts any signature.
    skips = [presigned_url_tampered_or_expired],
);

behaviour_tests!(
    s3s_fs,
    setup = strata_testkit::sigv4_bucket,
    profile = Profile::s3s_fs(),
    // s3s-fs: conditional writes not atomic, conditional GET and DELETE ignored (TESTING.md).
    skips = [
        conditional_writes_race_one_winner,
        conditional_get,
        conditional_delete
    ],
);

behaviour_tests!(
    r2_config_path_over_moto,
    setup = |hint: &str| {
        let bucket = strata_testkit::r2_bucket(hint)?;
        assert_eq!(bucket.provider(), "r2");
        assert_eq!(bucket.capabilities().max_delete_batch, 700);
        Some(bucket)
    },
    profile = Profile::moto().named("r2 over moto"),
    // moto accepts any signature; R2's config path claims no conditional DELETE.
    skips = [conditional_delete, presigned_url_tampered_or_expired],
);

fn local_folder(prefix: Option<&str>) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let mut bucket = Bucket::local("local", dir.path()).unwrap();
    if let Some(p) = prefix {
        bucket = bucket.to_builder().prefix(p).unwrap().build();
    }
    Subject::new(bucket).keeping(dir)
}

#[tokio::test]
async fn prefixed_local_folder_writes_under_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Bucket::local("local", dir.path())
        .unwrap()
        .to_builder()
        .prefix("tenant-a/app")
        .unwrap()
        .build();
    bucket.put("a/b.txt", "x").await.unwrap();
    assert!(dir.path().join("tenant-a/app/a/b.txt").is_file());
}

// --- Stacks built from a config file --------------------------------------------------------

/// Where a configured bucket lives.
#[derive(Clone, Copy)]
enum Backend {
    Memory,
    Local,
    Moto,
}

/// `[connections.NAME_conn]` and `[buckets.NAME]` for a bucket handle on `backend` under a
/// fresh prefix (a local folder under `root`); `None` when the S3 tests are knowingly skipped.
fn bucket_toml(name: &str, backend: Backend, root: &Path, hint: &str) -> Option<String> {
    let (connection, remote) = match backend {
        Backend::Memory => ("kind = \"memory\"".to_string(), String::new()),
        Backend::Local => (
            format!("kind = \"fs\"\nroot = {:?}", root.display().to_string()),
            String::new(),
        ),
        Backend::Moto => {
            let server = strata_testkit::moto_env()?;
            (
                format!(
                    "kind = \"s3\"\nendpoint = {:?}\nallow_http = true\ncredentials = \"static\"\naccess_key_id = {:?}\nsecret_access_key = {:?}\n# moto honours If-Match on DELETE.\nconditional_delete = true",
                    server.endpoint,
                    server.access_key,
                    server.secret_key.expose(),
                ),
                format!("bucket = {:?}\n", server.bucket),
            )
        }
    };
    let prefix = strata_testkit::run_prefix(&format!("{name}-{hint}"));
    Some(format!(
        "[connections.{name}_conn]\n{connection}\n\n[buckets.{name}]\nconnection = \"{name}_conn\"\n{remote}prefix = {prefix:?}\n\n"
    ))
}

/// Bucket `bucket` of the setup `toml` describes, as `Strata::from_toml_str` builds it.
fn configured(toml: String, bucket: &str, dir: TempDir) -> Subject {
    let strata = Strata::from_toml_str(&toml, "behaviour test")
        .unwrap_or_else(|e| panic!("{e}\n--- config ---\n{toml}"));
    Subject::new(strata.bucket(bucket).unwrap()).keeping(dir)
}

/// The resilience and observability layers users put around a bucket.
const LAYERS: &str = r#"
[layers.metrics]
[layers.cache]
[layers.retry]
base_delay = "5ms"
max_delay = "100ms"
[layers.breaker]
[layers.limit]
max_concurrency = 16
[layers.timeout]
"#;

/// Compression and client-side encryption (which refuse presigned URLs: a URL would serve
/// the stored, transformed bytes).
const SEALED: &str = r#"
[layers.compression]
default = "zstd"
min_size = 0
[layers.encryption]
keys = [{ id = "k1", key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" }]
"#;

/// One bucket `main` on `backend` with `layers`.
fn layered(backend: Backend, layers: &str, hint: &str) -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let toml = bucket_toml("main", backend, dir.path(), hint)? + layers;
    Some(configured(toml, "main", dir))
}

/// Bucket `main` on `primary` with `field = ["spare"]` (`failover` or `mirror`), `spare` on
/// `secondary`.
fn pair(field: &str, primary: Backend, secondary: Backend, hint: &str) -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let toml = bucket_toml("main", primary, dir.path(), hint)?
        + &format!("{field} = [\"spare\"]\n\n")
        + &bucket_toml("spare", secondary, dir.path(), hint)?;
    Some(configured(toml, "main", dir))
}

behaviour_tests!(
    layered_memory,
    setup = |hint| layered(Backend::Memory, LAYERS, hint),
    profile = Profile::embedded("layers over memory"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    layered_moto,
    setup = |hint| layered(Backend::Moto, LAYERS, hint),
    profile = Profile::moto().named("layers over moto"),
    skips = [presigned_url_tampered_or_expired],
);

behaviour_tests!(
    sealed_memory,
    setup = |hint| layered(Backend::Memory, SEALED, hint),
    profile = Profile::embedded("compression + encryption over memory").compressed(),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    sealed_moto,
    setup = |hint| layered(Backend::Moto, SEALED, hint),
    profile = Profile::moto()
        .named("compression + encryption over moto")
        .compressed(),
    // Exactly the presign checks: the layers refuse to sign URLs for transformed bytes.
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    failover_memory_to_local,
    setup = |hint| pair("failover", Backend::Memory, Backend::Local, hint),
    profile = Profile::embedded("memory failing over to a local folder"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    failover_moto_to_local,
    setup = |hint| pair("failover", Backend::Moto, Backend::Local, hint),
    profile = Profile::moto().named("moto failing over to a local folder"),
    skips = [presigned_url_tampered_or_expired],
);

behaviour_tests!(
    mirror_memory_to_local,
    setup = |hint| pair("mirror", Backend::Memory, Backend::Local, hint),
    profile = Profile::embedded("memory mirrored to a local folder"),
    // A mirror refuses conditional deletes: deciding on the primary would leave the copies.
    skips = [
        conditional_delete,
        presigned_get_and_put,
        presigned_url_tampered_or_expired
    ],
);

behaviour_tests!(
    mirror_moto_to_local,
    setup = |hint| pair("mirror", Backend::Moto, Backend::Local, hint),
    profile = Profile::moto().named("moto mirrored to a local folder (hybrid)"),
    // A mirror refuses conditional deletes: deciding on the primary would leave the copies.
    skips = [conditional_delete, presigned_url_tampered_or_expired],
);

/// Route `events` or tenant `acme` (`scope` is `"route"` or `"tenant"`) of bucket `main` on
/// `backend` (with `layers`), as `strata.router()?.route(..)` / `.tenant(..)` hands it out.
/// `extra` is more config (an offload target and its bucket).
fn scoped(
    scope: &str,
    backend: Backend,
    layers: &str,
    extra: impl FnOnce(&Path) -> Option<String>,
    hint: &str,
) -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let (table, name) = match scope {
        "route" => ("routes", "events"),
        _ => ("tenants", "acme"),
    };
    let toml = bucket_toml("main", backend, dir.path(), hint)?
        + layers
        + &format!("\n[{table}.{name}]\nbucket = \"main\"\nprefix = \"{scope}s/{name}\"\n\n")
        + &extra(dir.path())?;
    let strata = Strata::from_toml_str(&toml, "behaviour test")
        .unwrap_or_else(|e| panic!("{e}\n--- config ---\n{toml}"));
    let router = strata.router().unwrap();
    let bucket = match scope {
        "route" => router.route(name),
        _ => router.tenant(name),
    }
    .unwrap();
    Some(Subject::new(bucket).keeping(dir))
}

/// An offload target for route `events`: bucket `archive` on a local folder.
fn offload_to_local(root: &Path, hint: &str) -> Option<String> {
    Some(
        "[routes.events.offload]\nafter_days = 30\nbucket = \"archive\"\n\n".to_string()
            + &bucket_toml("archive", Backend::Local, root, hint)?,
    )
}

behaviour_tests!(
    route_memory,
    setup = |hint| scoped("route", Backend::Memory, "", |_| Some(String::new()), hint),
    profile = Profile::embedded("route on memory"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    route_with_offload_moto,
    setup = |hint| scoped(
        "route",
        Backend::Moto,
        LAYERS,
        |root| offload_to_local(root, hint),
        hint
    ),
    profile = Profile::moto().named("route on layered moto, offloading to a local folder"),
    skips = [presigned_url_tampered_or_expired],
);

behaviour_tests!(
    tenant_memory,
    setup = |hint| scoped("tenant", Backend::Memory, "", |_| Some(String::new()), hint),
    profile = Profile::embedded("tenant on memory"),
    skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
);

behaviour_tests!(
    tenant_moto,
    setup = |hint| scoped(
        "tenant",
        Backend::Moto,
        LAYERS,
        |_| Some(String::new()),
        hint
    ),
    profile = Profile::moto().named("tenant on layered moto"),
    skips = [presigned_url_tampered_or_expired],
);

// --- Signatures -----------------------------------------------------------------------------

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
