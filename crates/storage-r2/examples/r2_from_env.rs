//! A Cloudflare R2 bucket configured from environment variables, inspected without any
//! network call.
//!
//! `cargo run -p storage-r2 --example r2_from_env`
//!
//! Builds an [`R2Config`] from `R2_*` variables (given as pairs here; `Env::process()`
//! reads the real environment), shows the S3 settings it turns into (account endpoint,
//! region `auto`, EU jurisdiction endpoint), and the resulting `Bucket`: provider,
//! capabilities (batch deletes capped at R2's 700 keys, no conditional delete), the CDN
//! URL of a key and a presigned GET URL (signed locally: no request is sent, no real
//! credentials needed).

use std::time::Duration;

use storage_core::PresignMethod;
use storage_core::config::Env;
use storage_r2::{Jurisdiction, R2_MAX_DELETE_BATCH, R2Config};

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const SECRET: &str = "r2-secret-access-key-example";

#[tokio::main]
async fn main() -> storage_core::Result<()> {
    let env = Env::from_pairs([
        ("R2_ACCOUNT_ID", ACCOUNT),
        ("R2_ACCESS_KEY_ID", "r2-access-key-example"),
        ("R2_SECRET_ACCESS_KEY", SECRET),
        ("R2_BUCKET", "proofs"),
        ("R2_CDN_URL", "https://cdn.example.com"),
    ]);
    let r2 = R2Config::from_env(&env)?;
    let s3 = r2.to_s3_config()?;
    println!(
        "R2 bucket {} -> S3 endpoint {}, region {}",
        r2.bucket,
        s3.endpoint.as_deref().unwrap_or("-"),
        s3.region.as_deref().unwrap_or("-")
    );
    assert_eq!(
        s3.endpoint.as_deref(),
        Some("https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com")
    );
    assert_eq!(s3.region.as_deref(), Some("auto"));
    assert!(
        !format!("{r2:?}").contains(SECRET),
        "the secret must never print"
    );

    // Data kept in the EU: another endpoint, same everything else.
    let eu = R2Config {
        jurisdiction: Jurisdiction::Eu,
        ..r2.clone()
    };
    println!("EU jurisdiction endpoint: {}", eu.endpoint_url());
    assert!(eu.endpoint_url().contains(".eu.r2.cloudflarestorage.com"));

    // What R2 does differently shows in the capabilities: smaller delete batches and no
    // conditional DeleteObject.
    let bucket = r2.build("proofs")?;
    let caps = bucket.capabilities();
    println!("{:?} on {}: {caps:?}", bucket.name(), bucket.provider());
    assert_eq!(bucket.provider(), "r2");
    assert_eq!(caps.max_delete_batch, R2_MAX_DELETE_BATCH);
    assert!(!caps.delete_if_match);

    let logo = "images/logo.png";
    let public = bucket.url_for(logo)?;
    let five_minutes = Duration::from_secs(300);
    let get = bucket
        .presign(PresignMethod::Get, logo, five_minutes)
        .await?;
    println!("url_for: {public}\npresigned GET (5 min): {get}");
    assert_eq!(public.as_str(), "https://cdn.example.com/images/logo.png");
    assert!(get.as_str().contains(".r2.cloudflarestorage.com"));
    assert!(get.as_str().contains("X-Amz-Signature="));
    assert!(!get.as_str().contains(SECRET));

    // A malformed account id is refused with the variable named.
    let bad = R2Config::from_env(&Env::from_pairs([
        ("R2_ACCOUNT_ID", "not-an-account"),
        ("R2_ACCESS_KEY_ID", "k"),
        ("R2_SECRET_ACCESS_KEY", "s"),
        ("R2_BUCKET", "proofs"),
    ]))
    .and_then(|c| c.build("proofs"));
    let err = bad.expect_err("a malformed account id must be refused");
    println!("with R2_ACCOUNT_ID=not-an-account: {err}");
    assert!(err.to_string().contains("R2_ACCOUNT_ID"));
    println!("done (no request was sent)");
    Ok(())
}
