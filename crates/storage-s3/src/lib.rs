//! # storage-s3
//!
//! Amazon S3 and S3-compatible servers as a Strata [`Bucket`]. An [`S3Config`] (from TOML,
//! code, or seed 002's environment variables via [`S3Config::from_env`]) is validated and
//! turned into an `object_store` `AmazonS3`, with:
//!
//! - custom endpoints, path-style or virtual-hosted requests, plain HTTP for loopback servers;
//! - credentials: static keys, the `AWS_*` environment, or the default chain (web identity,
//!   ECS, instance metadata);
//! - server-side encryption: SSE-S3 (`AES256`), SSE-KMS, SSE-C;
//! - conditional put by ETag (`If-Match` / `If-None-Match`), conditional delete (`If-Match`
//!   on DELETE, which `object_store` cannot send: see [`S3Config::conditional_delete`]),
//!   presigned GET/PUT URLs, batch delete (on or off), retry and timeout settings, a CDN base
//!   URL for `url_for`.
//!
//! ```
//! use storage_core::config::Env;
//! use storage_s3::S3Config;
//!
//! // Seed 002's variables, as a deployment file would set them.
//! let env = Env::from_pairs([
//!     ("STORAGE_PROVIDER", "s3"),
//!     ("STORAGE_BUCKET", "credlink-proofs"),
//!     ("STORAGE_REGION", "us-east-1"),
//!     ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
//!     ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
//!     ("STORAGE_TIMEOUT", "30000"),
//! ]);
//! let cfg = S3Config::from_env(&env)?;
//! assert_eq!(cfg.bucket, "credlink-proofs");
//! assert_eq!(cfg.timeout, Some(std::time::Duration::from_secs(30)));
//! // Secrets never print.
//! assert!(!format!("{cfg:?}").contains("wJalrXUtnFEMI"));
//! let bucket = cfg.build("proofs")?;
//! assert_eq!(bucket.provider(), "s3");
//! # Ok::<(), storage_core::StorageError>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut, S3CopyIfNotExists};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use serde::{Deserialize, Serialize};
use storage_core::config::{Env, duration_str, validate_bucket_name, validate_credential};
use storage_core::{Bucket, Capabilities, Result, Secret, StorageError};
use url::Url;

mod store;

pub use store::{S3Store, classify};

/// HTTP retries of unconditional requests when `max_retries` is not set and no retry layer
/// owns retries (the facade sets 0 under `[layers.retry]`).
pub const DEFAULT_MAX_RETRIES: usize = 3;
/// Client timeout when `timeout` is not set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where credentials come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialSource {
    /// `access_key_id` + `secret_access_key` in the config when given, else the default chain.
    #[default]
    Auto,
    /// Only the keys written in the config.
    Static,
    /// The `AWS_*` environment variables and the default chain (web identity, ECS, IMDS).
    Environment,
    /// No signing: public buckets.
    Anonymous,
}

/// Server-side encryption.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ServerSideEncryption {
    /// SSE-S3: keys managed by S3 (`AES256`).
    SseS3,
    /// SSE-KMS with a KMS key id or ARN.
    SseKms {
        /// KMS key id or ARN.
        key_id: String,
    },
    /// SSE-C: a customer-provided 256-bit key, base64-encoded.
    SseC {
        /// Base64 of the 32-byte key.
        key: Secret,
    },
}

impl std::fmt::Debug for ServerSideEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SseS3 => f.write_str("SseS3"),
            Self::SseKms { key_id } => f.debug_struct("SseKms").field("key_id", key_id).finish(),
            Self::SseC { .. } => f.write_str("SseC { key: *** }"),
        }
    }
}

/// Settings of one S3 (or S3-compatible) bucket. A field left out of a config file takes
/// its value from [`S3Config::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Remote bucket name. May be left out of a shared connection block; the bucket that
    /// uses the connection fills it in.
    pub bucket: String,
    /// Region (default `us-east-1`; R2 uses `auto`).
    pub region: Option<String>,
    /// Custom endpoint, e.g. `http://127.0.0.1:9000` or an R2 account endpoint.
    pub endpoint: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`). Defaults to on when an endpoint is set.
    pub path_style: Option<bool>,
    /// Allow `http://` endpoints (loopback test servers).
    pub allow_http: bool,
    /// Where credentials come from.
    pub credentials: CredentialSource,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key (redacted in logs).
    pub secret_access_key: Option<Secret>,
    /// Session token for temporary credentials.
    pub session_token: Option<Secret>,
    /// Server-side encryption.
    pub encryption: Option<ServerSideEncryption>,
    /// Compare-and-swap writes with `If-Match` / `If-None-Match` (default on).
    pub conditional_put: bool,
    /// Delete-if-match as a DELETE carrying `If-Match`, which S3 evaluates atomically.
    /// Default: on for AWS S3 (no `endpoint`), off for other endpoints, because a server
    /// that ignores `If-Match` on DELETE would delete unconditionally. Turn it on for a
    /// server known to honour it; off, `delete_if_match` answers `NotSupported`.
    pub conditional_delete: Option<bool>,
    /// Batch delete with `DeleteObjects` (default on); off sends one DELETE per key.
    pub bulk_delete: bool,
    /// HTTP retries inside the client for 5xx/timeouts (default 3).
    pub max_retries: Option<usize>,
    /// Per-request timeout (default 30s).
    #[serde(with = "duration_str::option")]
    pub timeout: Option<Duration>,
    /// Connect timeout (default 5s).
    #[serde(with = "duration_str::option")]
    pub connect_timeout: Option<Duration>,
    /// Public or CDN base URL for `url_for`.
    pub cdn_url: Option<String>,
    /// Multipart part size in bytes for streamed uploads (default 8 MiB, minimum 5 MiB).
    pub part_size: Option<usize>,
    /// Keep idle connections (default on). s3s-fs stalls on reused connections; benches
    /// against it turn this off.
    pub keep_alive: bool,
}

impl Default for S3Config {
    /// No bucket yet (a shared connection block leaves it to each bucket), AWS's region and
    /// endpoint, credentials from the config or the default chain, conditional put and batch
    /// delete on, the client's retry and timeout defaults.
    fn default() -> Self {
        S3Config {
            bucket: String::new(),
            region: None,
            endpoint: None,
            path_style: None,
            allow_http: false,
            credentials: CredentialSource::Auto,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            encryption: None,
            conditional_put: true,
            conditional_delete: None,
            bulk_delete: true,
            max_retries: None,
            timeout: None,
            connect_timeout: None,
            cdn_url: None,
            part_size: None,
            keep_alive: true,
        }
    }
}

impl S3Config {
    /// Defaults for `bucket`.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Config {
            bucket: bucket.into(),
            ..S3Config::default()
        }
    }

    /// Read seed 002's variables: `STORAGE_BUCKET`, `STORAGE_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `STORAGE_CDN_URL`, `STORAGE_MAX_RETRIES`,
    /// `STORAGE_TIMEOUT` (milliseconds, or `30s`), plus `AWS_ENDPOINT` / `AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, `AWS_BUCKET`, `AWS_ALLOW_HTTP`, `STORAGE_PATH_STYLE`.
    /// `STORAGE_PROVIDER`, when set, must be `s3` (use `storage-r2` for `r2`).
    pub fn from_env(env: &Env) -> Result<Self> {
        if let Some(p) = env.get("STORAGE_PROVIDER")
            && !p.eq_ignore_ascii_case("s3")
        {
            return Err(StorageError::invalid_config(
                "STORAGE_PROVIDER",
                format!(
                    "`{p}` is not handled by storage-s3; allowed here: s3 (use storage-r2 for r2)"
                ),
            ));
        }
        let (_, bucket) = env
            .first(&["STORAGE_BUCKET", "AWS_BUCKET", "AWS_BUCKET_NAME"])
            .ok_or_else(|| {
                StorageError::invalid_config("STORAGE_BUCKET", "is not set; name the S3 bucket")
            })?;
        let mut cfg = S3Config::new(bucket);
        cfg.region = env
            .first(&["STORAGE_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"])
            .map(|(_, v)| v);
        cfg.endpoint = env
            .first(&["AWS_ENDPOINT", "AWS_ENDPOINT_URL", "STORAGE_ENDPOINT"])
            .map(|(_, v)| v);
        cfg.access_key_id = env.get("AWS_ACCESS_KEY_ID");
        cfg.secret_access_key = env.get("AWS_SECRET_ACCESS_KEY").map(Secret::new);
        cfg.session_token = env.get("AWS_SESSION_TOKEN").map(Secret::new);
        cfg.cdn_url = env.get("STORAGE_CDN_URL");
        cfg.max_retries = env.parse("STORAGE_MAX_RETRIES")?;
        cfg.timeout = env.duration("STORAGE_TIMEOUT", Duration::from_millis(1))?;
        cfg.allow_http = env.bool("AWS_ALLOW_HTTP")?.unwrap_or(false);
        cfg.path_style = env.bool("STORAGE_PATH_STYLE")?;
        cfg.validate("")?;
        Ok(cfg)
    }

    /// Check every field; errors name the field under `field_prefix` (e.g. `buckets.media.`).
    pub fn validate(&self, field_prefix: &str) -> Result<()> {
        let f = |name: &str| format!("{field_prefix}{name}");
        validate_bucket_name(&f("bucket"), &self.bucket)?;
        if let Some(r) = &self.region
            && (r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(StorageError::invalid_config(
                f("region"),
                format!("`{r}` is not a region name such as us-east-1 (or auto for R2)"),
            ));
        }
        if let Some(e) = &self.endpoint {
            let url = Url::parse(e).map_err(|err| {
                StorageError::invalid_config(
                    f("endpoint"),
                    format!("`{e}` is not a URL ({err}); write e.g. https://s3.example.com"),
                )
            })?;
            match url.scheme() {
                "https" => {}
                "http" if self.allow_http => {}
                "http" => {
                    return Err(StorageError::invalid_config(
                        f("endpoint"),
                        format!(
                            "`{e}` is plain HTTP; set allow_http = true (AWS_ALLOW_HTTP=true) for a local test server, or use https"
                        ),
                    ));
                }
                other => {
                    return Err(StorageError::invalid_config(
                        f("endpoint"),
                        format!("scheme `{other}` is not http or https"),
                    ));
                }
            }
        }
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) => {
                return Err(StorageError::invalid_config(
                    f("secret_access_key"),
                    "access_key_id is set but secret_access_key is missing (AWS_SECRET_ACCESS_KEY)",
                ));
            }
            (None, Some(_)) => {
                return Err(StorageError::invalid_config(
                    f("access_key_id"),
                    "secret_access_key is set but access_key_id is missing (AWS_ACCESS_KEY_ID)",
                ));
            }
            _ => {}
        }
        // An empty key is an unset variable or a placeholder, and a line break in one comes
        // from a key file: never a credential, and one that cannot travel in a header made
        // the signer panic on the first request.
        for (name, value) in [
            ("access_key_id", self.access_key_id.as_deref()),
            (
                "secret_access_key",
                self.secret_access_key.as_ref().map(Secret::expose),
            ),
            (
                "session_token",
                self.session_token.as_ref().map(Secret::expose),
            ),
        ] {
            if let Some(v) = value {
                validate_credential(&f(name), v)?;
            }
        }
        if self.credentials == CredentialSource::Static && self.access_key_id.is_none() {
            return Err(StorageError::invalid_config(
                f("credentials"),
                "credentials = \"static\" needs access_key_id and secret_access_key",
            ));
        }
        if let Some(ServerSideEncryption::SseC { key }) = &self.encryption {
            let decoded_len = base64_decoded_len(key.expose());
            if decoded_len != Some(32) {
                return Err(StorageError::invalid_config(
                    f("encryption.key"),
                    "an SSE-C key must be 32 bytes, base64-encoded (44 characters)",
                ));
            }
        }
        for (name, t) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if t.is_some_and(|t| t.is_zero()) {
                return Err(StorageError::invalid_config(
                    f(name),
                    "must be more than zero (0s fails every request); write e.g. \"30s\", or remove it for the default",
                ));
            }
        }
        if let Some(p) = self.part_size
            && p < 5 * 1024 * 1024
        {
            return Err(StorageError::invalid_config(
                f("part_size"),
                format!("{p} bytes is below S3's 5 MiB (5242880) minimum part size"),
            ));
        }
        if let Some(u) = &self.cdn_url {
            Url::parse(u).map_err(|e| {
                StorageError::invalid_config(f("cdn_url"), format!("`{u}` is not a URL ({e})"))
            })?;
        }
        Ok(())
    }

    /// The configured `object_store` builder (with the configured HTTP retries).
    pub fn builder(&self) -> Result<AmazonS3Builder> {
        self.builder_with_retries(self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES))
    }

    fn builder_with_retries(&self, max_retries: usize) -> Result<AmazonS3Builder> {
        self.validate("")?;
        let mut b = match self.credentials {
            CredentialSource::Environment => AmazonS3Builder::from_env(),
            CredentialSource::Auto if self.access_key_id.is_none() => AmazonS3Builder::from_env(),
            _ => AmazonS3Builder::new(),
        };
        b = b
            .with_bucket_name(&self.bucket)
            .with_region(self.region.as_deref().unwrap_or("us-east-1"))
            .with_allow_http(self.allow_http)
            .with_disable_bulk_delete(!self.bulk_delete)
            .with_conditional_put(if self.conditional_put {
                S3ConditionalPut::ETagMatch
            } else {
                S3ConditionalPut::Disabled
            })
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e);
        }
        let path_style = self.path_style.unwrap_or(self.endpoint.is_some());
        b = b.with_virtual_hosted_style_request(!path_style);
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            b = b
                .with_access_key_id(id)
                .with_secret_access_key(secret.expose());
            if let Some(t) = &self.session_token {
                b = b.with_token(t.expose());
            }
        }
        if self.credentials == CredentialSource::Anonymous {
            b = b.with_skip_signature(true);
        }
        match &self.encryption {
            None => {}
            Some(ServerSideEncryption::SseS3) => {
                let key: AmazonS3ConfigKey = "aws_server_side_encryption"
                    .parse()
                    .map_err(|e| StorageError::from_object_store("s3", e))?;
                b = b.with_config(key, "AES256");
            }
            Some(ServerSideEncryption::SseKms { key_id }) => b = b.with_sse_kms_encryption(key_id),
            Some(ServerSideEncryption::SseC { key }) => b = b.with_ssec_encryption(key.expose()),
        }
        b = b
            .with_http_connector(store::StatusKeepingConnector::default())
            .with_client_options(self.client_options())
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries,
                retry_timeout: Duration::from_secs(180),
            });
        Ok(b)
    }

    /// The HTTP client settings of every request to this bucket (the conditional DELETE,
    /// which `object_store` has no method for, included).
    fn client_options(&self) -> ClientOptions {
        let client = ClientOptions::new()
            .with_allow_http(self.allow_http)
            .with_timeout(self.timeout.unwrap_or(DEFAULT_TIMEOUT))
            .with_connect_timeout(self.connect_timeout.unwrap_or(Duration::from_secs(5)));
        if self.keep_alive {
            client
        } else {
            client.with_pool_max_idle_per_host(0)
        }
    }

    /// Whether `delete_if_match` is sent to the server: as configured, else only to AWS
    /// itself, and never unsigned (a presigned DELETE needs credentials).
    pub fn conditional_delete_enabled(&self) -> bool {
        self.credentials != CredentialSource::Anonymous
            && self.conditional_delete.unwrap_or(self.endpoint.is_none())
    }

    /// Build a [`Bucket`] named `name`.
    pub fn build(&self, name: &str) -> Result<Bucket> {
        self.build_as(name, "s3", Capabilities::S3)
    }

    /// Build with a provider label and base capabilities (used by `storage-r2`).
    pub fn build_as(&self, name: &str, provider: &str, caps: Capabilities) -> Result<Bucket> {
        let build = |retries| {
            self.builder_with_retries(retries)?
                .build()
                .map_err(|e| StorageError::from_object_store(name, e))
        };
        let mut caps = caps.with_conditional_put(self.conditional_put);
        if !self.bulk_delete {
            caps = caps.with_max_delete_batch(1);
        }
        if self.credentials == CredentialSource::Anonymous {
            caps = caps.with_presign(false);
        }
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let conditional_delete = if self.conditional_delete_enabled() {
            Some(store::ConditionalDeleteClient::new(
                &self.client_options(),
                timeout,
            )?)
        } else {
            None
        };
        let s3 = S3Store::new(
            build(self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES))?,
            // Conditional writes are never resent by the HTTP client: see `store`.
            build(0)?,
            timeout,
            caps,
            conditional_delete,
        );
        let endpoint = self.endpoint.clone().unwrap_or_else(|| {
            format!(
                "s3.{}.amazonaws.com",
                self.region.as_deref().unwrap_or("us-east-1")
            )
        });
        let mut builder = Bucket::builder(name, Arc::new(s3))
            .location(format!(
                "s3://{}/{}",
                endpoint.trim_end_matches('/'),
                self.bucket
            ))
            .provider(provider);
        if let Some(p) = self.part_size {
            builder = builder.part_size(p)?;
        }
        if let Some(u) = &self.cdn_url {
            builder = builder.public_url(
                Url::parse(u)
                    .map_err(|e| StorageError::invalid_config("cdn_url", e.to_string()))?,
            );
        }
        tracing::debug!(bucket = name, provider, remote = %self.bucket, "built S3 bucket");
        Ok(builder.build())
    }
}

/// Length of base64 `s` once decoded, if it is well-formed base64.
fn base64_decoded_len(s: &str) -> Option<usize> {
    let s = s.trim();
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let body = s.trim_end_matches('=');
    if s.len() - body.len() > 2
        || !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    {
        return None;
    }
    Some(body.len() * 3 / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn conditional_delete_only_where_the_server_is_known_to_honour_it() {
        let mut aws = S3Config::new("docs");
        aws.access_key_id = Some("AK".into());
        aws.secret_access_key = Some(Secret::new("SK"));
        assert!(
            aws.conditional_delete_enabled(),
            "AWS S3 honours If-Match on DELETE"
        );
        assert!(aws.build("docs").unwrap().capabilities().delete_if_match);

        let mut custom = aws.clone();
        custom.endpoint = Some("https://s3.example.com".into());
        assert!(!custom.conditional_delete_enabled(), "unknown servers: off");
        let bucket = custom.build("docs").unwrap();
        assert!(!bucket.capabilities().delete_if_match);

        custom.conditional_delete = Some(true);
        assert!(custom.build("docs").unwrap().capabilities().delete_if_match);

        let mut anonymous = aws.clone();
        anonymous.credentials = CredentialSource::Anonymous;
        anonymous.conditional_delete = Some(true);
        assert!(
            !anonymous.conditional_delete_enabled(),
            "a DELETE must be signed"
        );
    }

    #[tokio::test]
    async fn conditional_delete_off_is_not_supported() {
        let mut custom = S3Config::new("docs");
        custom.endpoint = Some("https://s3.example.com".into());
        custom.access_key_id = Some("AK".into());
        custom.secret_access_key = Some(Secret::new("SK"));
        let err = custom
            .build("docs")
            .unwrap()
            .delete_if_match("a", "\"e\"")
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::NotSupported { .. }), "{err}");
    }

    #[test]
    fn seed_002_variables() {
        let cfg = S3Config::from_env(&env(&[
            ("STORAGE_BUCKET", "proofs"),
            ("STORAGE_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("STORAGE_CDN_URL", "https://cdn.example.com"),
            ("STORAGE_MAX_RETRIES", "5"),
            ("STORAGE_TIMEOUT", "2500"),
            ("AWS_ENDPOINT", "http://127.0.0.1:9000"),
            ("AWS_ALLOW_HTTP", "true"),
        ]))
        .unwrap();
        assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
        assert_eq!(cfg.max_retries, Some(5));
        assert_eq!(cfg.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(cfg.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(cfg.secret_access_key.as_ref().unwrap().expose(), "SK");
    }

    #[test]
    fn env_errors_name_the_variable() {
        let e = S3Config::from_env(&env(&[])).unwrap_err().to_string();
        assert!(e.contains("STORAGE_BUCKET"), "{e}");
        let e = S3Config::from_env(&env(&[
            ("STORAGE_BUCKET", "b-1"),
            ("STORAGE_MAX_RETRIES", "many"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("STORAGE_MAX_RETRIES") && e.contains("many"),
            "{e}"
        );
        let e = S3Config::from_env(&env(&[
            ("STORAGE_PROVIDER", "gcs"),
            ("STORAGE_BUCKET", "b-1"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("STORAGE_PROVIDER"), "{e}");
    }

    #[test]
    fn http_endpoint_needs_allow_http() {
        let mut c = S3Config::new("bkt");
        c.endpoint = Some("http://127.0.0.1:1".into());
        assert!(
            c.validate("buckets.x.")
                .unwrap_err()
                .to_string()
                .contains("buckets.x.endpoint")
        );
        c.allow_http = true;
        c.validate("").unwrap();
    }

    #[test]
    fn sse_c_key_length_checked_and_redacted() {
        let mut c = S3Config::new("bkt");
        c.encryption = Some(ServerSideEncryption::SseC {
            key: Secret::new("c2hvcnQ="),
        });
        assert!(c.validate("").unwrap_err().to_string().contains("32 bytes"));
        assert!(!format!("{c:?}").contains("c2hvcnQ"));
    }

    #[test]
    fn toml_round_trip() {
        let c: S3Config = storage_core::config::from_toml_str(
            "bucket = 'media'\nregion = 'us-east-2'\ntimeout = '10s'\n[encryption]\nkind = 'sse-kms'\nkey_id = 'arn:aws:kms:k'\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.timeout, Some(Duration::from_secs(10)));
        assert_eq!(
            c.encryption,
            Some(ServerSideEncryption::SseKms {
                key_id: "arn:aws:kms:k".into()
            })
        );
        assert!(c.conditional_put && c.bulk_delete);
    }
}
