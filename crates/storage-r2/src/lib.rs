//! # storage-r2
//!
//! Cloudflare R2 as a Strata [`Bucket`]. R2 speaks the S3 API with a few differences; this
//! crate turns an [`R2Config`] into a [`storage_s3::S3Config`] and handles the differences
//! in one place, so nothing above it needs to know:
//!
//! | R2 difference | handled by |
//! |---|---|
//! | endpoint `https://{account}.r2.cloudflarestorage.com` (`.eu.` / `.fedramp.` jurisdictions) | [`R2Config::endpoint_url`] |
//! | region is always `auto` | [`R2Config::to_s3_config`] |
//! | `DeleteObjects` takes at most 700 keys | [`R2_MAX_DELETE_BATCH`] in the bucket's capabilities; `Bucket::delete_many` batches to it |
//! | multipart parts must all be the same size (except the last) | `Bucket::put_stream` always uploads equal parts |
//! | rejects `x-amz-checksum-*` headers | the S3 client is never given a checksum algorithm |
//! | multipart ETags are not MD5 of the content | [`ETAG_IS_CONTENT_MD5`] = false; sync compares sizes + content hashes |
//! | no conditional `DeleteObject` (R2's conditional headers cover puts, copies and multipart only) | `conditional_delete` off: `delete_if_match` is `NotSupported`, never an unconditional delete |
//!
//! ```
//! use storage_core::config::Env;
//! use storage_r2::R2Config;
//!
//! let env = Env::from_pairs([
//!     ("R2_ACCOUNT_ID", "0123456789abcdef0123456789abcdef"),
//!     ("R2_ACCESS_KEY_ID", "key"),
//!     ("R2_SECRET_ACCESS_KEY", "secret"),
//!     ("R2_BUCKET", "proofs"),
//!     ("R2_CDN_URL", "https://cdn.example.com"),
//! ]);
//! let r2 = R2Config::from_env(&env)?;
//! let s3 = r2.to_s3_config()?;
//! assert_eq!(s3.endpoint.as_deref(), Some("https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com"));
//! assert_eq!(s3.region.as_deref(), Some("auto"));
//! let bucket = r2.build("proofs")?;
//! assert_eq!(bucket.provider(), "r2");
//! assert_eq!(bucket.capabilities().max_delete_batch, 700);
//! assert!(!bucket.capabilities().delete_if_match, "R2 has no conditional DeleteObject");
//! # Ok::<(), storage_core::StorageError>(())
//! ```

use serde::{Deserialize, Serialize};
use std::time::Duration;

use storage_core::config::{Env, duration_str};
use storage_core::{Bucket, Capabilities, Result, Secret, StorageError};
use storage_s3::{CredentialSource, S3Config};

/// Most keys R2 accepts in one `DeleteObjects` request.
pub const R2_MAX_DELETE_BATCH: usize = 700;

/// Whether an R2 ETag is the MD5 of the content: not for multipart uploads, so never rely on it.
pub const ETAG_IS_CONTENT_MD5: bool = false;

/// R2 data-location jurisdiction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Jurisdiction {
    /// Default (global) endpoint.
    #[default]
    Default,
    /// European Union: `{account}.eu.r2.cloudflarestorage.com`.
    Eu,
    /// FedRAMP: `{account}.fedramp.r2.cloudflarestorage.com`.
    Fedramp,
}

/// Settings of one R2 bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct R2Config {
    /// Cloudflare account id (32 hex characters); may be left out when `endpoint` is set.
    #[serde(default)]
    pub account_id: String,
    /// Remote bucket name. May be left out of a shared connection block.
    #[serde(default)]
    pub bucket: String,
    /// R2 access key id.
    pub access_key_id: String,
    /// R2 secret access key.
    pub secret_access_key: Secret,
    /// Jurisdiction (default global).
    #[serde(default)]
    pub jurisdiction: Jurisdiction,
    /// Endpoint override (tests, or a custom domain for the S3 API).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Allow `http://` for the endpoint override (loopback test servers only).
    #[serde(default)]
    pub allow_http: bool,
    /// Public bucket / CDN URL for `url_for`.
    #[serde(default)]
    pub cdn_url: Option<String>,
    /// HTTP retries inside the client.
    #[serde(default)]
    pub max_retries: Option<usize>,
    /// Per-request timeout (default 30s).
    #[serde(default, with = "duration_str::option")]
    pub timeout: Option<Duration>,
    /// Connect timeout (default 5s).
    #[serde(default, with = "duration_str::option")]
    pub connect_timeout: Option<Duration>,
    /// Multipart part size in bytes for streamed uploads (default 8 MiB, minimum 5 MiB);
    /// every part but the last has this size, as R2 requires.
    #[serde(default)]
    pub part_size: Option<usize>,
    /// Keep idle connections (default on).
    #[serde(default = "yes")]
    pub keep_alive: bool,
}

fn yes() -> bool {
    true
}

impl R2Config {
    /// Read `R2_ACCOUNT_ID`, `R2_ACCESS_KEY_ID`, `R2_SECRET_ACCESS_KEY`, `R2_BUCKET`,
    /// `R2_CDN_URL`, `R2_ENDPOINT` (seed 003), `R2_JURISDICTION`, `STORAGE_MAX_RETRIES`,
    /// `STORAGE_TIMEOUT` (milliseconds, or `30s`).
    /// A missing or malformed variable is `InvalidConfig` naming it.
    pub fn from_env(env: &Env) -> Result<Self> {
        let endpoint = env.get("R2_ENDPOINT");
        let account_id = match env.get("R2_ACCOUNT_ID") {
            Some(a) => a,
            // Seed 003 sets only R2_ENDPOINT; the account is its first host label.
            None => match endpoint.as_deref().and_then(account_from_endpoint) {
                Some(a) => a,
                None => {
                    return Err(StorageError::invalid_config(
                        "R2_ACCOUNT_ID",
                        "is not set; copy the account id from the Cloudflare dashboard (R2 → Overview)",
                    ));
                }
            },
        };
        let jurisdiction = match env.get("R2_JURISDICTION").as_deref() {
            None | Some("default") => Jurisdiction::Default,
            Some("eu") => Jurisdiction::Eu,
            Some("fedramp") => Jurisdiction::Fedramp,
            Some(other) => {
                return Err(StorageError::invalid_config(
                    "R2_JURISDICTION",
                    format!("`{other}` is not one of default, eu, fedramp"),
                ));
            }
        };
        let cfg = R2Config {
            account_id,
            bucket: env
                .first(&["R2_BUCKET", "R2_BUCKET_NAME"])
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    StorageError::invalid_config("R2_BUCKET", "is not set; name the R2 bucket")
                })?,
            access_key_id: env.require("R2_ACCESS_KEY_ID")?,
            secret_access_key: Secret::new(env.require("R2_SECRET_ACCESS_KEY")?),
            jurisdiction,
            allow_http: endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://")),
            endpoint,
            cdn_url: env.get("R2_CDN_URL"),
            max_retries: env.parse("STORAGE_MAX_RETRIES")?,
            timeout: env.duration("STORAGE_TIMEOUT", Duration::from_millis(1))?,
            connect_timeout: None,
            part_size: None,
            keep_alive: true,
        };
        cfg.validate("")?;
        Ok(cfg)
    }

    /// Check the fields; errors name the field under `field_prefix`.
    pub fn validate(&self, field_prefix: &str) -> Result<()> {
        if self.endpoint.is_none()
            && (self.account_id.len() != 32
                || !self.account_id.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(StorageError::invalid_config(
                if field_prefix.is_empty() {
                    "R2_ACCOUNT_ID".to_string()
                } else {
                    format!("{field_prefix}account_id")
                },
                format!(
                    "`{}` is not an R2 account id (32 hexadecimal characters)",
                    self.account_id
                ),
            ));
        }
        // Every other field is an S3 field of the same name, checked (and named) by S3's
        // checks.
        self.s3_equivalent().validate(field_prefix)
    }

    /// The S3 API endpoint for this account and jurisdiction (or the override).
    pub fn endpoint_url(&self) -> String {
        if let Some(e) = &self.endpoint {
            return e.clone();
        }
        match self.jurisdiction {
            Jurisdiction::Default => {
                format!("https://{}.r2.cloudflarestorage.com", self.account_id)
            }
            Jurisdiction::Eu => format!("https://{}.eu.r2.cloudflarestorage.com", self.account_id),
            Jurisdiction::Fedramp => format!(
                "https://{}.fedramp.r2.cloudflarestorage.com",
                self.account_id
            ),
        }
    }

    /// The equivalent S3 settings.
    pub fn to_s3_config(&self) -> Result<S3Config> {
        self.validate("")?;
        Ok(self.s3_equivalent())
    }

    /// The S3 settings of this bucket, unchecked.
    fn s3_equivalent(&self) -> S3Config {
        S3Config {
            region: Some("auto".into()),
            endpoint: Some(self.endpoint_url()),
            path_style: Some(true),
            allow_http: self.allow_http,
            credentials: CredentialSource::Static,
            access_key_id: Some(self.access_key_id.clone()),
            secret_access_key: Some(self.secret_access_key.clone()),
            conditional_put: true,
            // R2 documents If-Match for writes, not for DeleteObject: a DELETE carrying it
            // could delete unconditionally.
            conditional_delete: Some(false),
            max_retries: self.max_retries,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            cdn_url: self.cdn_url.clone(),
            part_size: self.part_size,
            keep_alive: self.keep_alive,
            ..S3Config::new(&self.bucket)
        }
    }

    /// Build a [`Bucket`] named `name` with R2's capabilities.
    pub fn build(&self, name: &str) -> Result<Bucket> {
        self.to_s3_config()?.build_as(name, "r2", r2_capabilities())
    }
}

/// What R2 supports, as far as Strata uses it.
pub fn r2_capabilities() -> Capabilities {
    Capabilities::S3.with_max_delete_batch(R2_MAX_DELETE_BATCH)
}

fn account_from_endpoint(endpoint: &str) -> Option<String> {
    let host = endpoint.split("://").nth(1)?.split(['/', ':']).next()?;
    host.ends_with(".r2.cloudflarestorage.com")
        .then(|| host.split('.').next().map(str::to_string))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

    /// The message of the error `from_env` gives for `vars`.
    fn env_error(vars: Vec<(&str, &str)>) -> String {
        R2Config::from_env(&Env::from_pairs(vars))
            .unwrap_err()
            .to_string()
    }

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("R2_ACCOUNT_ID", ACCOUNT),
            ("R2_ACCESS_KEY_ID", "k"),
            ("R2_SECRET_ACCESS_KEY", "s"),
            ("R2_BUCKET", "bkt"),
        ]
    }

    #[test]
    fn timeouts_and_parts_reach_the_client_config() {
        let mut v = base();
        v.push(("STORAGE_TIMEOUT", "2500"));
        let mut c = R2Config::from_env(&Env::from_pairs(v)).unwrap();
        assert_eq!(c.timeout, Some(std::time::Duration::from_millis(2500)));
        c.connect_timeout = Some(std::time::Duration::from_secs(2));
        c.part_size = Some(16 << 20);
        c.keep_alive = false;
        let s3 = c.to_s3_config().unwrap();
        assert_eq!(s3.timeout, c.timeout);
        assert_eq!(s3.connect_timeout, c.connect_timeout);
        assert_eq!(s3.part_size, Some(16 << 20));
        assert!(!s3.keep_alive);
        c.part_size = Some(1024);
        let e = c.to_s3_config().unwrap_err().to_string();
        assert!(e.contains("part_size"), "{e}");
        let mut v = base();
        v.push(("STORAGE_TIMEOUT", "soon"));
        let e = env_error(v);
        assert!(e.contains("STORAGE_TIMEOUT"), "{e}");
    }

    #[test]
    fn jurisdictions() {
        let mut v = base();
        v.push(("R2_JURISDICTION", "eu"));
        let c = R2Config::from_env(&Env::from_pairs(v)).unwrap();
        assert_eq!(
            c.endpoint_url(),
            format!("https://{ACCOUNT}.eu.r2.cloudflarestorage.com")
        );
        let mut v = base();
        v.push(("R2_JURISDICTION", "mars"));
        let e = env_error(v);
        assert!(e.contains("R2_JURISDICTION") && e.contains("mars"), "{e}");
    }

    #[test]
    fn missing_and_malformed_variables_are_named() {
        for missing in [
            "R2_ACCESS_KEY_ID",
            "R2_SECRET_ACCESS_KEY",
            "R2_BUCKET",
            "R2_ACCOUNT_ID",
        ] {
            let v: Vec<_> = base().into_iter().filter(|(k, _)| *k != missing).collect();
            let e = env_error(v);
            assert!(e.contains(missing), "{missing}: {e}");
        }
        let mut v = base();
        v[0] = ("R2_ACCOUNT_ID", "not-hex");
        let e = env_error(v);
        assert!(
            e.contains("R2_ACCOUNT_ID") && e.contains("32 hexadecimal"),
            "{e}"
        );
    }

    #[test]
    fn seed_003_endpoint_gives_account() {
        let v = vec![
            (
                "R2_ENDPOINT",
                "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com",
            ),
            ("R2_ACCESS_KEY_ID", "k"),
            ("R2_SECRET_ACCESS_KEY", "s"),
            ("R2_BUCKET", "bkt"),
        ];
        let c = R2Config::from_env(&Env::from_pairs(v)).unwrap();
        assert_eq!(c.account_id, ACCOUNT);
    }

    #[test]
    fn quirks_translate() {
        let c = R2Config::from_env(&Env::from_pairs(base())).unwrap();
        let s3 = c.to_s3_config().unwrap();
        assert_eq!(s3.region.as_deref(), Some("auto"));
        assert_eq!(s3.path_style, Some(true));
        assert!(s3.conditional_put);
        let b = c.build("x").unwrap();
        assert_eq!(b.capabilities().max_delete_batch, R2_MAX_DELETE_BATCH);
        assert!(!format!("{c:?} {s3:?}").contains("\"s\""));
    }
}
