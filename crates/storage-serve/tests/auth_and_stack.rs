//! Signatures, presigned URLs, per-credential buckets and anonymous reads; and the Strata
//! stack seen through the endpoint (fallback reads, encryption, compression).

mod common;

use common::{assert_errors, python, run_python, run_python_on_fresh_server, start};
use serde_json::json;

const AUTH_CONFIG: &str = r#"
[connections.disk]
kind = "fs"
root = "{ROOT}"

[buckets.main]
connection = "disk"
bucket = "main"

[buckets.public]
connection = "disk"
bucket = "public"

[tenants.acme]
bucket = "main"
prefix = "tenants/acme"

[tenants.globex]
bucket = "main"
prefix = "tenants/globex"

[serve]
anonymous_read = ["public"]

[serve.credentials.admin]
access_key = "AKADMIN"
secret_key = "admin-secret-9f8e7d"
buckets = ["*"]

[serve.credentials.acme]
access_key = "AKACME"
secret_key = "acme-secret-1a2b3c"
buckets = ["acme"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signatures_presigned_urls_tenants_and_anonymous_reads() {
    let logs = strata_testkit::tracing_capture::Captured::global();
    let Some(out) = run_python_on_fresh_server(
        AUTH_CONFIG,
        r#"
import time, urllib.request, urllib.error
ep = os.environ["EP"]
admin = client(ak="AKADMIN", sk="admin-secret-9f8e7d")
acme = client(ak="AKACME", sk="acme-secret-1a2b3c")
wrong = client(ak="AKADMIN", sk="not-the-secret")
unknown = client(ak="AKNOBODY", sk="whatever")
admin.put_object(Bucket="globex", Key="secret.txt", Body=b"globex data")
admin.put_object(Bucket="public", Key="hello.txt", Body=b"hi all")
acme.put_object(Bucket="acme", Key="mine.txt", Body=b"acme data")
out["admin_sees_acme_under_main"] = admin.get_object(Bucket="main", Key="tenants/acme/mine.txt")["Body"].read().decode()
out["wrong_secret"] = code(wrong.get_object, Bucket="public", Key="hello.txt")
out["unknown_key"] = code(unknown.list_buckets)
out["acme_reads_globex"] = code(acme.get_object, Bucket="globex", Key="secret.txt")
out["acme_lists_globex"] = code(acme.list_objects_v2, Bucket="globex")
out["acme_reads_main"] = code(acme.get_object, Bucket="main", Key="tenants/globex/secret.txt")
out["acme_copies_from_globex"] = code(acme.copy_object, Bucket="acme", Key="stolen", CopySource={"Bucket": "globex", "Key": "secret.txt"})
out["acme_escapes"] = code(acme.get_object, Bucket="acme", Key="../globex/secret.txt")
out["acme_buckets"] = sorted(b["Name"] for b in acme.list_buckets()["Buckets"])
out["admin_buckets"] = sorted(b["Name"] for b in admin.list_buckets()["Buckets"])

def fetch(url, method="GET", data=None):
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req) as r:
            return [r.status, r.read().decode()]
    except urllib.error.HTTPError as e:
        return [e.code, ""]

url = acme.generate_presigned_url("get_object", Params={"Bucket": "acme", "Key": "mine.txt"}, ExpiresIn=300)
out["presigned"] = fetch(url)
out["tampered"] = fetch(url.replace("mine.txt", "other.txt"))
sig = url.split("X-Amz-Signature=")[1][:64]
flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
out["tampered_signature"] = fetch(url.replace(sig, flipped))
put_url = acme.generate_presigned_url("put_object", Params={"Bucket": "acme", "Key": "up.txt"}, ExpiresIn=300)
out["presigned_put"] = fetch(put_url, "PUT", b"uploaded")[0]
out["presigned_put_body"] = acme.get_object(Bucket="acme", Key="up.txt")["Body"].read().decode()
short = acme.generate_presigned_url("get_object", Params={"Bucket": "acme", "Key": "mine.txt"}, ExpiresIn=1)
time.sleep(2.5)
out["expired"] = fetch(short)
cross = acme.generate_presigned_url("get_object", Params={"Bucket": "globex", "Key": "secret.txt"}, ExpiresIn=300)
out["presigned_other_tenant"] = fetch(cross)
out["anonymous_public"] = fetch(f"{ep}/public/hello.txt")
out["anonymous_list_public"] = fetch(f"{ep}/public?list-type=2")[0]
out["anonymous_put_public"] = fetch(f"{ep}/public/x.txt", "PUT", b"x")[0]
out["anonymous_main"] = fetch(f"{ep}/main/tenants/acme/mine.txt")[0]
out["anonymous_list_buckets"] = fetch(f"{ep}/")[0]
"#,
    )
    .await
    else {
        return;
    };
    assert_eq!(out["admin_sees_acme_under_main"], "acme data");
    assert_errors(
        &out,
        &[
            ("wrong_secret", "SignatureDoesNotMatch", 403),
            ("unknown_key", "InvalidAccessKeyId", 403),
            ("acme_reads_globex", "AccessDenied", 403),
            ("acme_lists_globex", "AccessDenied", 403),
            ("acme_reads_main", "AccessDenied", 403),
            ("acme_copies_from_globex", "AccessDenied", 403),
            ("acme_escapes", "InvalidArgument", 400),
        ],
    );
    assert_eq!(out["acme_buckets"], json!(["acme"]));
    assert_eq!(
        out["admin_buckets"],
        json!(["acme", "globex", "main", "public"])
    );
    assert_eq!(out["presigned"], json!([200, "acme data"]));
    assert_eq!(out["tampered"][0], 403);
    assert_eq!(out["tampered_signature"][0], 403);
    assert_eq!(out["presigned_put"], 200);
    assert_eq!(out["presigned_put_body"], "uploaded");
    assert_eq!(out["expired"][0], 403);
    assert_eq!(out["presigned_other_tenant"][0], 403);
    assert_eq!(out["anonymous_public"], json!([200, "hi all"]));
    assert_eq!(out["anonymous_list_public"], 200);
    assert_eq!(out["anonymous_put_public"], 403);
    assert_eq!(out["anonymous_main"], 403);
    assert_eq!(out["anonymous_list_buckets"], 403);

    let logs = logs.text();
    assert!(
        logs.contains("strata_serve::access"),
        "the access log reaches tracing"
    );
    for secret in [
        "admin-secret-9f8e7d",
        "acme-secret-1a2b3c",
        "not-the-secret",
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stack_fallback_encryption_and_compression_through_the_endpoint() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[serve.credentials.test]
access_key = "test-ak"
secret_key = "test-sk-0123456789"
buckets = ["*"]

[connections.disk]
kind = "fs"
root = "{ROOT}"

[buckets.fresh]
connection = "disk"
bucket = "fresh"

[buckets.archive]
connection = "disk"
bucket = "archive"

[sources.tide]
buckets = ["fresh", "archive"]

[buckets.vault]
connection = "disk"
bucket = "vault"

[buckets.vault.layers.encryption]
keys = [{ id = "k1", key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" }]

[buckets.zipped]
connection = "disk"
bucket = "zipped"

[buckets.zipped.layers.compression]
default = "gzip"
min_size = 16
"#;
    let server = start(config, dir.path()).await;
    let out = run_python(
        &py,
        r#"
s3.put_object(Bucket="archive", Key="old.txt", Body=b"only in the archive")
s3.put_object(Bucket="fresh", Key="new.txt", Body=b"in fresh")
out["fallback"] = s3.get_object(Bucket="tide", Key="old.txt")["Body"].read().decode()
out["primary"] = s3.get_object(Bucket="tide", Key="new.txt")["Body"].read().decode()
out["merged"] = [o["Key"] for o in s3.list_objects_v2(Bucket="tide")["Contents"]]
out["missing"] = code(s3.get_object, Bucket="tide", Key="nowhere")
plain = b"top secret plaintext " * 1000
s3.put_object(Bucket="vault", Key="s.txt", Body=plain)
out["vault"] = s3.get_object(Bucket="vault", Key="s.txt")["Body"].read() == plain
out["vault_range"] = s3.get_object(Bucket="vault", Key="s.txt", Range="bytes=4-9")["Body"].read().decode()
text = b"compress me please " * 500
s3.put_object(Bucket="zipped", Key="z.txt", Body=text)
out["zipped"] = s3.get_object(Bucket="zipped", Key="z.txt")["Body"].read() == text
"#,
        &[("EP", &server.endpoint)],
    )
    .await;
    assert_eq!(out["fallback"], "only in the archive");
    assert_eq!(out["primary"], "in fresh");
    assert_eq!(out["merged"], json!(["new.txt", "old.txt"]));
    assert_eq!(out["missing"], json!(["NoSuchKey", 404]));
    assert_eq!(out["vault"], true);
    assert_eq!(out["vault_range"], "secret");
    assert_eq!(out["zipped"], true);
    // On disk: ciphertext, and fewer (compressed) bytes.
    let on_disk = std::fs::read(dir.path().join("vault/s.txt")).unwrap();
    assert!(
        !on_disk
            .windows(b"top secret".len())
            .any(|w| w == b"top secret"),
        "the vault's file holds plaintext"
    );
    let zipped = std::fs::read(dir.path().join("zipped/z.txt")).unwrap();
    assert!(
        zipped.len() < 9500 / 4 && zipped.starts_with(&[0x1f, 0x8b]),
        "z.txt is stored gzip-compressed ({} bytes)",
        zipped.len()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_metrics_on_the_admin_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[layers.breaker]\n[layers.cache]\n",
        common::open_config(&["media"])
    );
    let server = start(&config, dir.path()).await;
    let admin = server.admin.clone().unwrap();
    let client = reqwest::Client::new();
    let put = client
        .put(format!("{}/media/k", server.endpoint))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let missing = client
        .get(format!("{}/media/nothing", server.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let health = client.get(format!("{admin}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let h: serde_json::Value = serde_json::from_str(&health.text().await.unwrap()).unwrap();
    assert_eq!(h["ok"], true);
    assert_eq!(h["buckets"][0]["bucket"], "media");
    assert_eq!(h["buckets"][0]["ok"], true);
    let metrics = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "strata_serve_requests_total{method=\"PUT\",status=\"200\"}",
        "strata_serve_requests_total{method=\"GET\",status=\"404\"}",
        "strata_serve_errors_total{code=\"NoSuchKey\"}",
        "strata_serve_request_duration_seconds_bucket",
        "strata_serve_received_bytes_total",
        "strata_serve_breaker_state{bucket=\"media\"} 0",
        "strata_serve_cache_misses_total{bucket=\"media\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    server.stop().await;
}

/// Strata's own S3 backend as the client: a second Strata setup whose bucket is the served
/// one. Conditional writes and deletes travel through both, and presigned URLs for a served
/// local folder work with a plain HTTP client.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strata_s3_client_presigns_and_writes_conditionally_through_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&common::fs_config(&["media"]), dir.path()).await;
    let client_config = format!(
        "[connections.served]\nkind = \"s3\"\nendpoint = \"{}\"\nallow_http = true\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nconditional_delete = true\n\
         [buckets.media]\nconnection = \"served\"\n",
        server.endpoint,
        common::AK,
        common::SK
    );
    let remote = strata::Strata::from_toml_str(&client_config, "client.toml").unwrap();
    let media = remote.bucket("media").unwrap();
    let first = media
        .put_with("doc.json", "{\"v\":1}", strata::PutOpts::if_absent())
        .await
        .unwrap();
    let again = media
        .put_with("doc.json", "{\"v\":9}", strata::PutOpts::if_absent())
        .await
        .unwrap_err();
    assert!(
        matches!(again, strata::StorageError::AlreadyExists { .. }),
        "{again}"
    );
    let seen = media.get("doc.json").await.unwrap();
    assert_eq!(seen.info.etag, first.etag);
    // Two writers that both read `seen`: the first replaces it, the second is then stale.
    let replace_seen = |body: &'static str| {
        media.put_with(
            "doc.json",
            body,
            strata::PutOpts::replacing(&seen.info).unwrap(),
        )
    };
    replace_seen("{\"v\":2}").await.unwrap();
    let stale = replace_seen("{\"v\":3}").await.unwrap_err();
    assert!(
        matches!(stale, strata::StorageError::Precondition { .. }),
        "{stale}"
    );
    let url = media
        .presign(
            strata::PresignMethod::Get,
            "doc.json",
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    let fetched = reqwest::get(url.as_str()).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.text().await.unwrap(), "{\"v\":2}");
    let current = media.head("doc.json").await.unwrap();
    let wrong = media
        .delete_if_match("doc.json", "\"nope\"")
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, strata::StorageError::Precondition { .. }),
        "{wrong}"
    );
    media
        .delete_if_match("doc.json", current.etag.as_deref().unwrap())
        .await
        .unwrap();
    assert!(!media.exists("doc.json").await.unwrap());
    // What the endpoint wrote is on disk as a plain file.
    assert!(!dir.path().join("media/doc.json").exists());
    server.stop().await;
}
