//! `Strata::from_env` with the seeds' variables, against the moto server, and a config file
//! naming buckets on several connections.

use storage_core::config::Env;
use strata::Strata;
use strata_testkit::ServerEnv;

/// Seed 002's variables for an S3 bucket on the moto server.
fn seed_002_on_moto(server: &ServerEnv) -> Vec<(&'static str, &str)> {
    vec![
        ("STORAGE_PROVIDER", "s3"),
        ("STORAGE_BUCKET", server.bucket.as_str()),
        ("STORAGE_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", server.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", server.secret_key.expose()),
        ("AWS_ENDPOINT", server.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ]
}

#[tokio::test]
async fn seed_002_storage_provider_s3() {
    let Some(server) = strata_testkit::moto_env() else {
        return;
    };
    let mut pairs = seed_002_on_moto(&server);
    pairs.extend([
        ("STORAGE_CDN_URL", "https://cdn.example.com"),
        ("STORAGE_MAX_RETRIES", "2"),
        ("STORAGE_TIMEOUT", "10000"),
    ]);
    let env = Env::from_pairs(pairs);
    let strata = Strata::from_env_vars(&env).unwrap();
    let b = strata.bucket("default").unwrap();
    let key = format!("{}/seed002.txt", strata_testkit::run_prefix("env"));
    b.put(&key, "via seed 002 variables").await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().bytes, "via seed 002 variables");
    assert_eq!(
        b.url_for(&key).unwrap().as_str(),
        format!("https://cdn.example.com/{key}")
    );
}

#[tokio::test]
async fn seed_003_hybrid_mirrors_to_local_and_falls_back() {
    let Some(server) = strata_testkit::moto_env() else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([
        ("STORAGE_BACKEND", "hybrid"),
        ("R2_ENDPOINT", server.endpoint.as_str()),
        ("R2_ACCOUNT_ID", "0123456789abcdef0123456789abcdef"),
        ("R2_ACCESS_KEY_ID", server.access_key.as_str()),
        ("R2_SECRET_ACCESS_KEY", server.secret_key.expose()),
        ("R2_BUCKET", server.bucket.as_str()),
        ("STRATA_HOME", home.path().to_str().unwrap()),
    ]);
    let strata = Strata::from_env_vars(&env).unwrap();
    let b = strata.bucket("default").unwrap();
    assert_eq!(b.provider(), "hybrid");
    let key = format!("{}/hybrid.json", strata_testkit::run_prefix("hybrid"));
    b.put(&key, "{\"a\":1}").await.unwrap();
    // The write reached the local mirror as a plain file.
    let local = home.path().join("default").join(&key);
    assert_eq!(std::fs::read_to_string(&local).unwrap(), "{\"a\":1}");
    // Reads prefer R2 but fall back to the local copy when R2 misses it.
    let only_local = format!("{}/only-local.txt", strata_testkit::run_prefix("hybrid"));
    let local_bucket = storage_core::Bucket::local("l", home.path().join("default")).unwrap();
    local_bucket.put(&only_local, "local").await.unwrap();
    assert_eq!(b.get(&only_local).await.unwrap().bytes, "local");
}

#[tokio::test]
async fn config_file_with_s3_and_fs_connections() {
    let Some(server) = strata_testkit::moto_env() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = strata_testkit::run_prefix("cfg");
    let cfg = format!(
        r#"
[connections.moto]
kind = "s3"
endpoint = "{endpoint}"
allow_http = true
region = "us-east-1"
access_key_id = "{ak}"
secret_access_key = "{sk}"

[connections.disk]
kind = "fs"
root = "data"

[buckets.remote]
connection = "moto"
bucket = "{bucket}"
prefix = "{prefix}"

[buckets.local]
connection = "disk"
"#,
        endpoint = server.endpoint,
        ak = server.access_key,
        sk = server.secret_key.expose(),
        bucket = server.bucket,
    );
    let path = dir.path().join("strata.toml");
    std::fs::write(&path, cfg).unwrap();
    let strata = Strata::from_config(&path).unwrap();
    assert_eq!(strata.bucket_names(), ["local", "remote"]);
    let remote = strata.bucket("remote").unwrap();
    remote.put("x.txt", "r").await.unwrap();
    strata
        .bucket("local")
        .unwrap()
        .put("y.txt", "l")
        .await
        .unwrap();
    // fs roots are relative to the config file's folder.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("data/local/y.txt")).unwrap(),
        "l"
    );
    // The remote bucket's prefix is applied on the server.
    let raw = strata_testkit::s3_config(&server).build("raw").unwrap();
    assert_eq!(raw.get(format!("{prefix}/x.txt")).await.unwrap().bytes, "r");
}

#[tokio::test]
async fn sse_s3_encryption_round_trip() {
    let Some(server) = strata_testkit::moto_env() else {
        return;
    };
    let mut cfg = strata_testkit::s3_config(&server);
    cfg.encryption = Some(storage_s3::ServerSideEncryption::SseS3);
    let b = cfg.build("sse").unwrap();
    let key = format!("{}/sse.txt", strata_testkit::run_prefix("sse"));
    b.put(&key, "encrypted at rest").await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().bytes, "encrypted at rest");
}

/// Seed 002's variables plus `STRATA_COMPRESSION` and `STRATA_SSE`: the object is stored
/// gzip-compressed (the server's Content-Encoding and length say so) and with the SSE that
/// was asked for (moto echoes `x-amz-server-side-encryption`), and reads back as written.
#[tokio::test]
async fn seed_002_env_turns_on_compression_and_sse() {
    let Some(server) = strata_testkit::moto_env() else {
        return;
    };
    let kms_key = "arn:aws:kms:us-east-1:123456789012:key/strata-env-test";
    let text = "{\"proof\":\"c2pa\",\"ok\":true}\n".repeat(200);
    for (sse, kms, stored_as) in [
        ("AES256", None, "AES256"),
        ("aws:kms", Some(kms_key), "aws:kms"),
    ] {
        let mut pairs = seed_002_on_moto(&server);
        pairs.extend([
            ("STRATA_COMPRESSION", "gzip"),
            ("STRATA_COMPRESSION_LEVEL", "9"),
            ("STRATA_SSE", sse),
        ]);
        if let Some(k) = kms {
            pairs.push(("STRATA_SSE_KMS_KEY_ID", k));
        }
        let strata = Strata::from_env_vars(&Env::from_pairs(pairs)).unwrap();
        let b = strata.bucket("default").unwrap();
        let key = format!("{}/proof.jsonl", strata_testkit::run_prefix("env-sse"));
        b.put(&key, text.clone()).await.unwrap();
        assert_eq!(b.get(&key).await.unwrap().bytes, text.as_bytes());

        // What the server stored, fetched with a presigned GET from a plain bucket (no
        // layers, no transparent decompression: reqwest here has no gzip feature).
        let url = strata_testkit::s3_config(&server)
            .build("raw")
            .unwrap()
            .presign(
                strata::PresignMethod::Get,
                &key,
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap();
        let response = reqwest::get(url.clone()).await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            header("x-amz-server-side-encryption").as_deref(),
            Some(stored_as),
            "{sse}"
        );
        assert_eq!(
            header("x-amz-server-side-encryption-aws-kms-key-id").as_deref(),
            kms,
            "{sse}"
        );
        assert_eq!(header("content-encoding").as_deref(), Some("gzip"));
        let stored = response.bytes().await.unwrap();
        assert_eq!(&stored[..2], &[0x1f, 0x8b], "gzip magic");
        assert!(
            stored.len() < text.len() / 10,
            "stored {} bytes of {}",
            stored.len(),
            text.len()
        );
    }
}
