//! Every bad input gets an error that names what was wrong. Each row: the input, the
//! expected error variant, and words the message must contain.

use std::time::Duration;

use storage_core::config::Env;
use storage_core::{Bucket, PresignMethod, PutOpts, StorageError};
use storage_r2::R2Config;
use storage_s3::S3Config;
use strata::Strata;

/// Which `StorageError::Invalid*` variant a case expects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Variant {
    Key,
    Config,
    Input,
}

fn variant(e: &StorageError) -> Option<Variant> {
    match e {
        StorageError::InvalidKey { .. } => Some(Variant::Key),
        StorageError::InvalidConfig { .. } => Some(Variant::Config),
        StorageError::InvalidInput { .. } => Some(Variant::Input),
        _ => None,
    }
}

/// One row: name, outcome, expected variant, words the message must contain.
type Case = (
    &'static str,
    Result<(), StorageError>,
    Variant,
    &'static [&'static str],
);

fn s3_env(extra: &[(&str, &str)]) -> Result<S3Config, StorageError> {
    let mut v = vec![("STORAGE_BUCKET", "good-bucket")];
    v.extend_from_slice(extra);
    S3Config::from_env(&Env::from_pairs(v))
}

fn s3_with(f: impl FnOnce(&mut S3Config)) -> Result<(), StorageError> {
    let mut c = S3Config::new("good-bucket");
    f(&mut c);
    c.validate("buckets.media.")
}

fn toml(text: &str) -> Result<(), StorageError> {
    Strata::from_toml_str(text, "strata.toml").map(|_| ())
}

#[tokio::test]
async fn bad_inputs_name_the_problem() {
    let b = Bucket::memory("m");
    let long_key = "k".repeat(1025);
    let big_meta = "x".repeat(2100);
    let cases: Vec<Case> = vec![
        (
            "empty key",
            b.put("", "x").await.map(|_| ()),
            Variant::Key,
            &["empty"],
        ),
        (
            "leading slash",
            b.put("/etc/passwd", "x").await.map(|_| ()),
            Variant::Key,
            &["/etc/passwd", "leading slash"],
        ),
        (
            "empty segment",
            b.put("a//b", "x").await.map(|_| ()),
            Variant::Key,
            &["a//b", "empty segment"],
        ),
        (
            "dot-dot",
            b.put("a/../b", "x").await.map(|_| ()),
            Variant::Key,
            &["a/../b", "`..`"],
        ),
        (
            "control char",
            b.put("a\u{7}b", "x").await.map(|_| ()),
            Variant::Key,
            &["control"],
        ),
        (
            "key too long",
            b.put(&long_key, "x").await.map(|_| ()),
            Variant::Key,
            &["1024", "1025"],
        ),
        (
            "reserved folder",
            b.put(".strata-sys/locks/1", "x").await.map(|_| ()),
            Variant::Key,
            &["reserved"],
        ),
        (
            "bucket name too short",
            s3_with(|c| c.bucket = "ab".into()),
            Variant::Config,
            &["buckets.media.bucket", "`ab`", "3-63"],
        ),
        (
            "bucket name uppercase",
            s3_with(|c| c.bucket = "My_Bucket".into()),
            Variant::Config,
            &["My_Bucket", "'M'"],
        ),
        (
            "bucket name edge",
            s3_with(|c| c.bucket = "-edge-".into()),
            Variant::Config,
            &["start and end"],
        ),
        (
            "endpoint not a URL",
            s3_with(|c| c.endpoint = Some("not a url".into())),
            Variant::Config,
            &["buckets.media.endpoint", "not a URL"],
        ),
        (
            "http without allow_http",
            s3_with(|c| c.endpoint = Some("http://10.0.0.1:9000".into())),
            Variant::Config,
            &["endpoint", "allow_http"],
        ),
        (
            "key id without secret",
            s3_with(|c| c.access_key_id = Some("AK".into())),
            Variant::Config,
            &["secret_access_key"],
        ),
        (
            "part size too small",
            s3_with(|c| c.part_size = Some(1024)),
            Variant::Config,
            &["part_size", "5 MiB"],
        ),
        (
            "retries not a number",
            s3_env(&[("STORAGE_MAX_RETRIES", "many")]).map(|_| ()),
            Variant::Config,
            &["STORAGE_MAX_RETRIES", "many"],
        ),
        (
            "timeout not a duration",
            s3_env(&[("STORAGE_TIMEOUT", "soon")]).map(|_| ()),
            Variant::Config,
            &["STORAGE_TIMEOUT", "soon"],
        ),
        (
            "bucket missing from env",
            S3Config::from_env(&Env::from_pairs([("STORAGE_REGION", "x")])).map(|_| ()),
            Variant::Config,
            &["STORAGE_BUCKET"],
        ),
        (
            "R2 account malformed",
            R2Config::from_env(&Env::from_pairs([
                ("R2_ACCOUNT_ID", "xyz"),
                ("R2_ACCESS_KEY_ID", "k"),
                ("R2_SECRET_ACCESS_KEY", "s"),
                ("R2_BUCKET", "bkt"),
            ]))
            .map(|_| ()),
            Variant::Config,
            &["R2_ACCOUNT_ID", "32 hexadecimal"],
        ),
        (
            "toml unknown field",
            toml(
                "[connections.m]\nkind = 'memory'\n\n[buckets.a]\nconnection = 'm'\ncolour = 'red'\n",
            ),
            Variant::Config,
            &["strata.toml:6", "colour"],
        ),
        (
            "toml unknown connection",
            toml("[connections.m]\nkind = 'memory'\n[buckets.a]\nconnection = 'n'\n"),
            Variant::Config,
            &["buckets.a.connection", "`n`", "known connections: m"],
        ),
        (
            "toml unknown kind",
            toml("[connections.g]\nkind = 'gcs'\n"),
            Variant::Config,
            &["strata.toml", "gcs"],
        ),
        (
            "toml bad handle name",
            toml("[connections.m]\nkind = 'memory'\n[buckets.'bad name']\nconnection = 'm'\n"),
            Variant::Config,
            &["buckets.bad name", "letters, digits"],
        ),
        (
            "presign beyond 7 days",
            b.presign(PresignMethod::Get, "a", Duration::from_secs(8 * 86400))
                .await
                .map(|_| ()),
            Variant::Input,
            &["expires", "7 day"],
        ),
        (
            "presign zero",
            b.presign(PresignMethod::Get, "a", Duration::ZERO)
                .await
                .map(|_| ()),
            Variant::Input,
            &["at least 1 second"],
        ),
        (
            "metadata too large",
            b.put_with("a", "x", PutOpts::default().with_metadata("note", big_meta))
                .await
                .map(|_| ()),
            Variant::Input,
            &["2048", "metadata"],
        ),
        (
            "metadata bad name",
            b.put_with("a", "x", PutOpts::default().with_metadata("bad name", "v"))
                .await
                .map(|_| ()),
            Variant::Input,
            &["bad name"],
        ),
        (
            "metadata non-ascii",
            b.put_with("a", "x", PutOpts::default().with_metadata("who", "Zoë"))
                .await
                .map(|_| ()),
            Variant::Input,
            &["printable ASCII"],
        ),
        (
            "empty range",
            b.get_range("a", 10..10).await.map(|_| ()),
            Variant::Input,
            &["range", "10..10"],
        ),
        (
            "unknown bucket",
            Strata::from_toml_str(
                "[connections.m]\nkind = 'memory'\n[buckets.agent]\nconnection = 'm'\n",
                "strata.toml",
            )
            .unwrap()
            .bucket("nope")
            .map(|_| ()),
            Variant::Input,
            &["nope", "valid names: agent"],
        ),
    ];
    assert!(cases.len() >= 20);
    for (name, result, want, needles) in cases {
        let err = result.expect_err(name);
        assert_eq!(variant(&err), Some(want), "{name}: wrong variant: {err:?}");
        let msg = err.to_string();
        for n in needles {
            assert!(
                msg.contains(n),
                "{name}: message {msg:?} should mention {n:?}"
            );
        }
    }
    // Nothing was written by any of the refused puts.
    assert!(!b.exists("a").await.unwrap());
}
