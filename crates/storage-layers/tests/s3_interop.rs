//! Compression and encryption against a real S3 server (moto, started by
//! `cargo xtask test`), and interop: an object Strata stored gzip-compressed is read by an
//! independent client (boto3) and decompressed by it to the right bytes.
//!
//! Without the server variables these tests fail with "run `cargo xtask test`"; with
//! `STRATA_SKIP_S3=1` (and `STRATA_SKIP_PYTHON=1` for boto3) they skip and say so.

mod common;

use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{Attribute, ObjectStore, ObjectStoreExt, PutOptions};
use storage_core::{Bucket, Layer, StorageError};
use storage_layers::compression::{CODEC_METADATA, Codec, CompressionLayer};
use strata_testkit::behaviour::Profile;

fn bucket(hint: &str) -> Option<Bucket> {
    strata_testkit::s3_bucket(hint)
}

/// The behaviour suite on moto through `wrap`. Presigned URLs are signed for the stored
/// bytes and bypass every layer (a presigned GET of an encrypted object would return
/// ciphertext), so the byte-changing layers refuse them and those checks skip.
async fn behaviour_on_s3(
    hint: &str,
    profile: Profile,
    wrap: impl FnOnce(Arc<dyn storage_core::StrataStore>) -> Arc<dyn storage_core::StrataStore>,
) {
    let Some(b) = bucket(hint) else { return };
    let layered = b.to_builder().store(wrap(Arc::clone(b.store()))).build();
    assert!(
        !layered.capabilities().presign,
        "a layer that changes stored bytes must not offer presigned URLs"
    );
    // Every check runs and is reported; exactly the presign checks skip (the layer refuses
    // to sign, and presigned_get_and_put verifies the refusal).
    strata_testkit::behaviour::run(&layered, &profile)
        .await
        .assert_exact_skips(&["presigned_get_and_put", "presigned_url_tampered_or_expired"]);
}

#[tokio::test]
async fn behaviour_suite_through_compression_on_s3() {
    let profile = Profile::moto().named("zstd over moto").compressed();
    behaviour_on_s3("layers-suite-zstd", profile, |s| {
        CompressionLayer::default()
            .with_default(Codec::Zstd)
            .layer(s)
    })
    .await;
}

#[tokio::test]
async fn behaviour_suite_through_encryption_on_s3() {
    let encryption = common::encryption();
    let profile = Profile::moto().named("encryption over moto");
    behaviour_on_s3("layers-suite-aes", profile, |s| encryption.layer(s)).await;
}

#[tokio::test]
async fn compression_layer_on_s3() {
    let Some(b) = bucket("layers-gzip") else {
        return;
    };
    let store = CompressionLayer::default()
        .with_default(Codec::Gzip)
        .with_min_size(0)
        .layer(Arc::clone(b.store()));
    common::object_store_checks(store, common::Checks::SharedServer).await;
}

#[tokio::test]
async fn encryption_layer_on_s3() {
    let Some(b) = bucket("layers-aes") else {
        return;
    };
    let raw = Arc::clone(b.store());
    let store = common::encryption().layer(Arc::clone(&raw));
    common::object_store_checks(store.clone(), common::Checks::SharedServer).await;

    // Ranges over HTTP, then a tampered byte on the server is an authentication error.
    let p = Path::from("enc/range.bin");
    let data: Bytes = (0..300_000u32)
        .map(|i| (i % 241) as u8)
        .collect::<Vec<_>>()
        .into();
    store.put(&p, data.clone().into()).await.unwrap();
    assert_eq!(
        store.get_range(&p, 70_000..140_000).await.unwrap(),
        data.slice(70_000..140_000)
    );
    let mut stored = raw.get(&p).await.unwrap().bytes().await.unwrap().to_vec();
    stored[100_000] ^= 0x80;
    raw.put(&p, stored.into()).await.unwrap();
    let err = match store.get(&p).await {
        Ok(r) => r.bytes().await.unwrap_err(),
        Err(e) => e,
    };
    let err = StorageError::from_object_store("s3", err);
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

const READ_WITH_BOTO3: &str = r#"
import boto3, gzip, json, sys
endpoint, bucket, key, access, secret = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                  aws_secret_access_key=secret, region_name="us-east-1")
o = s3.get_object(Bucket=bucket, Key=key)
body = o["Body"].read()
print(json.dumps({
    "content_encoding": o.get("ContentEncoding"),
    "content_type": o.get("ContentType"),
    "metadata": o.get("Metadata", {}),
    "stored_len": len(body),
    "text": gzip.decompress(body).decode("utf-8"),
}))
"#;

#[tokio::test]
async fn boto3_reads_what_strata_gzipped() {
    let Some(b) = bucket("layers-boto3") else {
        return;
    };
    let Some(python) = strata_testkit::python() else {
        return;
    };
    let server = strata_testkit::moto_env().expect("moto is up when s3_bucket returned a bucket");
    let store = CompressionLayer::default()
        .with_rule("application/json", Some(Codec::Gzip))
        .layer(Arc::clone(b.store()));
    let text: String = (0..2000)
        .map(|i| format!("{{\"id\":{i},\"ok\":true}}\n"))
        .collect();
    let mut opts = PutOptions::default();
    opts.attributes
        .insert(Attribute::ContentType, "application/json".into());
    store
        .put_opts(&Path::from("docs/records.json"), text.clone().into(), opts)
        .await
        .unwrap();

    let full_key = format!(
        "{}/docs/records.json",
        b.prefix().expect("test buckets are prefixed").as_str()
    );
    let out = strata_testkit::stdout_of(
        Command::new(python)
            .args([
                "-c",
                READ_WITH_BOTO3,
                &server.endpoint,
                &server.bucket,
                &full_key,
                &server.access_key,
            ])
            .arg(server.secret_key.expose()),
        "the boto3 reader",
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["content_encoding"], "gzip");
    assert_eq!(v["content_type"], "application/json");
    assert_eq!(v["metadata"][CODEC_METADATA], "gzip");
    assert!(v["stored_len"].as_u64().unwrap() < text.len() as u64 / 4);
    assert_eq!(v["text"], text);

    // And Strata reads it back transparently.
    let back = store.get(&Path::from("docs/records.json")).await.unwrap();
    assert_eq!(back.bytes().await.unwrap(), text);
}
