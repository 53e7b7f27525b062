//! The `strata.toml` schema.
//!
//! ```toml
//! [connections.aws]            # a named endpoint with credentials
//! kind = "s3"                  # s3 | r2 | fs | memory
//! region = "eu-west-1"
//! access_key_id = "AKIA..."
//! secret_access_key = "..."    # never printed
//!
//! [connections.disk]
//! kind = "fs"
//! root = "./data"
//!
//! [buckets.media]              # a named bucket handle on a connection
//! connection = "aws"
//! bucket = "acme-media-prod"   # remote bucket (s3/r2) or sub-folder (fs); default: the handle name
//! prefix = "app"               # optional folder prefix inside it
//! cdn_url = "https://cdn.example.com"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use storage_core::{Result, StorageError};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrataConfig {
    /// Named endpoints with credentials.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Named bucket handles.
    #[serde(default)]
    pub buckets: BTreeMap<String, BucketConfig>,
}

/// One connection: where and how to reach a storage service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ConnectionConfig {
    /// Amazon S3 or an S3-compatible server (every `storage_s3::S3Config` field; `bucket`
    /// comes from each bucket block).
    #[cfg(feature = "s3")]
    S3(storage_s3::S3Config),
    /// Cloudflare R2 (every `storage_r2::R2Config` field; `bucket` from each bucket block).
    #[cfg(feature = "r2")]
    R2(storage_r2::R2Config),
    /// A local folder; each bucket is a sub-folder.
    Fs(FsConnection),
    /// Process memory; each bucket is separate. Gone when the process ends.
    Memory(MemoryConnection),
}

impl ConnectionConfig {
    /// `s3`, `r2`, `fs` or `memory`.
    pub fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "s3")]
            ConnectionConfig::S3(_) => "s3",
            #[cfg(feature = "r2")]
            ConnectionConfig::R2(_) => "r2",
            ConnectionConfig::Fs(_) => "fs",
            ConnectionConfig::Memory(_) => "memory",
        }
    }
}

/// A local-folder connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsConnection {
    /// Folder holding one sub-folder per bucket. Relative paths are relative to the
    /// configuration file's folder.
    pub root: PathBuf,
}

/// An in-memory connection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConnection {}

/// A named bucket handle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Name of a `[connections.*]` block.
    pub connection: String,
    /// Remote bucket name (s3/r2) or sub-folder (fs). Default: the handle's name.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Folder prefix inside the bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Public or CDN base URL for `url_for` (overrides the connection's).
    #[serde(default)]
    pub cdn_url: Option<String>,
}

/// Check the names of connections and buckets, and that every bucket's connection exists.
pub(crate) fn validate(cfg: &StrataConfig, origin: &str) -> Result<()> {
    let field = |path: String| format!("{origin}: {path}");
    for name in cfg.connections.keys() {
        storage_core::config::validate_name(&field(format!("connections.{name}")), name)?;
    }
    for (name, b) in &cfg.buckets {
        storage_core::config::validate_name(&field(format!("buckets.{name}")), name)?;
        if !cfg.connections.contains_key(&b.connection) {
            let known: Vec<&str> = cfg.connections.keys().map(String::as_str).collect();
            return Err(StorageError::invalid_config(
                field(format!("buckets.{name}.connection")),
                format!(
                    "unknown connection `{}`; known connections: {}",
                    b.connection,
                    if known.is_empty() { "(none: add a [connections.NAME] block)".to_string() } else { known.join(", ") }
                ),
            ));
        }
        if let Some(p) = &b.prefix {
            storage_core::Key::new(p.trim_end_matches('/')).map_err(|e| {
                StorageError::invalid_config(field(format!("buckets.{name}.prefix")), e.to_string())
            })?;
        }
    }
    Ok(())
}
