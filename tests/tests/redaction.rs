//! Secrets never appear in Debug, Display, serialised config or tracing output.

use storage_core::Secret;
use storage_r2::R2Config;
use storage_s3::{S3Config, ServerSideEncryption};
use strata::Strata;
use strata_testkit::tracing_capture::Captured;

const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
const SSE_C: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

#[test]
fn secrets_never_print() {
    let mut s3 = S3Config::new("bkt-1");
    s3.access_key_id = Some("AKIDEXAMPLE".into());
    s3.secret_access_key = Some(Secret::new(SECRET));
    s3.session_token = Some(Secret::new(SECRET));
    s3.encryption = Some(ServerSideEncryption::SseC {
        key: Secret::new(SSE_C),
    });
    let r2 = R2Config {
        account_id: "0123456789abcdef0123456789abcdef".into(),
        bucket: "bkt-2".into(),
        access_key_id: "k".into(),
        secret_access_key: Secret::new(SECRET),
        jurisdiction: Default::default(),
        endpoint: None,
        allow_http: false,
        cdn_url: None,
        max_retries: None,
        timeout: None,
        connect_timeout: None,
        part_size: None,
        keep_alive: true,
    };
    let toml = format!(
        "[connections.aws]\nkind = 's3'\naccess_key_id = 'AK'\nsecret_access_key = '{SECRET}'\n[buckets.media]\nconnection = 'aws'\nbucket = 'media-bkt'\n"
    );
    let strata = Strata::from_toml_str(&toml, "strata.toml").unwrap();
    let s3_bucket = s3.build("media").unwrap();
    let r2_bucket = r2.build("proofs").unwrap();

    let captured = Captured::default();
    captured.with_default(tracing::Level::TRACE, || {
        tracing::info!(?s3, ?r2, "configs");
        tracing::info!(bucket = ?s3_bucket, r2 = ?r2_bucket, strata = ?strata, "handles");
        // Building logs too.
        let _ = s3.build("again").unwrap();
    });
    let logs = captured.text();
    assert!(
        logs.contains("configs") && logs.contains("handles"),
        "the subscriber captured the events"
    );

    let rendered = [
        format!("{s3:?}"),
        format!("{r2:?}"),
        format!("{}", Secret::new(SECRET)),
        format!("{s3_bucket:?} {r2_bucket:?} {strata:?}"),
        serde_json::to_string(&s3).unwrap(),
        serde_json::to_string(&r2).unwrap(),
        logs,
    ];
    for text in &rendered {
        assert!(!text.contains(SECRET), "secret leaked in: {text}");
        assert!(!text.contains(SSE_C), "SSE-C key leaked in: {text}");
    }
    assert!(
        rendered[0].contains("***"),
        "redaction is visible: {}",
        rendered[0]
    );
}
