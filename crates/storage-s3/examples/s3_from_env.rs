//! An S3 bucket configured from environment variables, inspected without any network call.
//!
//! `cargo run -p storage-s3 --example s3_from_env`
//!
//! Builds an [`S3Config`] from seed 002's variables (given as pairs here, as a deployment
//! file would set them; `Env::process()` reads the real environment), then shows the
//! resulting `Bucket`: provider, capabilities, the CDN URL of a key, and presigned GET and
//! PUT URLs (signed locally with the static keys: no request is sent, no server or real
//! credentials are needed). It also shows the error a missing setting produces.

use std::time::Duration;

use storage_core::config::Env;
use storage_core::{PresignMethod, StorageError};
use storage_s3::S3Config;

const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";

#[tokio::main]
async fn main() -> storage_core::Result<()> {
    let env = Env::from_pairs([
        ("STORAGE_PROVIDER", "s3"),
        ("STORAGE_BUCKET", "credlink-proofs"),
        ("STORAGE_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("STORAGE_CDN_URL", "https://cdn.example.com"),
        ("STORAGE_TIMEOUT", "30000"),
        ("STORAGE_MAX_RETRIES", "5"),
    ]);
    let cfg = S3Config::from_env(&env)?;
    println!(
        "config: bucket {}, region {:?}, timeout {:?}, retries {:?}",
        cfg.bucket, cfg.region, cfg.timeout, cfg.max_retries
    );
    assert_eq!(cfg.timeout, Some(Duration::from_secs(30)));
    let printed = format!("{cfg:?}");
    assert!(!printed.contains(SECRET), "the secret key must never print");
    println!("Debug output of the config hides the secret key: ok");

    let bucket = cfg.build("proofs")?;
    let caps = bucket.capabilities();
    println!("{:?} on {}: {caps:?}", bucket.name(), bucket.provider());
    assert_eq!(bucket.provider(), "s3");
    assert!(caps.presign && caps.put_if_match);

    let public = bucket.url_for("proofs/2026/abc.json")?;
    println!("url_for: {public}");
    assert_eq!(
        public.as_str(),
        "https://cdn.example.com/proofs/2026/abc.json"
    );

    // Every presigned URL is signed and never carries the secret.
    let presign = async |method: PresignMethod, key: &str, secs: u64| {
        let url = bucket
            .presign(method, key, Duration::from_secs(secs))
            .await?;
        assert!(url.as_str().contains("X-Amz-Signature="));
        assert!(!url.as_str().contains(SECRET));
        Ok::<_, StorageError>(url)
    };
    let get = presign(PresignMethod::Get, "proofs/2026/abc.json", 900).await?;
    let put = presign(PresignMethod::Put, "uploads/new.bin", 60).await?;
    println!("presigned GET (15 min): {get}");
    println!("presigned PUT (1 min):  {put}");
    assert!(get.as_str().contains("credlink-proofs"));
    assert!(get.as_str().contains("X-Amz-Expires=900"));

    // Presigned URLs are capped at S3's 7 days.
    let too_long = bucket
        .presign(PresignMethod::Get, "a", Duration::from_secs(8 * 24 * 3600))
        .await;
    assert!(matches!(too_long, Err(StorageError::InvalidInput { .. })));

    // A missing setting is named in the error.
    let missing = S3Config::from_env(&Env::from_pairs([("STORAGE_REGION", "eu-west-1")]));
    match missing {
        Err(e @ StorageError::InvalidConfig { .. }) => {
            println!("without STORAGE_BUCKET: {e}");
            assert!(e.to_string().contains("STORAGE_BUCKET"));
        }
        other => panic!("expected an InvalidConfig error, got {other:?}"),
    }
    println!("done (no request was sent)");
    Ok(())
}
