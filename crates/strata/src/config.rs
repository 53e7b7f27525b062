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
    /// Layers around every bucket that has no `[buckets.NAME.layers]` of its own.
    #[cfg(feature = "layers")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<storage_layers::config::LayersConfig>,
    /// Legacy (seed 004): one bucket for every data type. Deprecated; use `[routes.*]`.
    #[cfg(feature = "router")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Data types → bucket and folder prefix (`[routes.records]`).
    #[cfg(feature = "router")]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routes: BTreeMap<String, storage_router::RouteConfig>,
    /// Ordered read sets: a primary and fallbacks (`[sources.tide]`).
    #[cfg(feature = "router")]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, storage_router::SourceConfig>,
    /// Tenant-scoped views (`[tenants.acme]`).
    #[cfg(feature = "router")]
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenants: BTreeMap<String, storage_router::TenantConfig>,
    /// How recent failures lower a bucket's read priority.
    #[cfg(feature = "router")]
    #[serde(default)]
    pub bucket_health: storage_router::HealthConfig,
    /// `[serve]`: settings of `strata serve` (parsed by `storage-serve`; opaque here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<toml::Table>,
}

impl StrataConfig {
    /// The routing part of the file.
    #[cfg(feature = "router")]
    pub fn router_config(&self) -> storage_router::RouterConfig {
        storage_router::RouterConfig {
            bucket: self.bucket.clone(),
            routes: self.routes.clone(),
            sources: self.sources.clone(),
            tenants: self.tenants.clone(),
            bucket_health: self.bucket_health,
        }
    }
}

/// One connection: where and how to reach a storage service.
///
/// In TOML: `kind = "s3" | "r2" | "fs" | "memory"`, the provider's settings, and optionally
/// `type_buckets` (data type → bucket handle, for routing).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RawConnection")]
pub struct ConnectionConfig {
    /// Provider settings.
    #[serde(flatten)]
    pub provider: ProviderConfig,
    /// Per-type buckets of this connection (`records = "records-bucket"`), consulted by
    /// routes that name no bucket.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub type_buckets: BTreeMap<String, String>,
}

/// Provider settings of a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "with `s3` alone, S3 is the one large variant; a config is built once per connection, and a Box would change every match on it"
)]
pub enum ProviderConfig {
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

/// The connection block as written, before the provider settings are typed.
#[derive(Deserialize)]
struct RawConnection {
    #[serde(default)]
    type_buckets: BTreeMap<String, String>,
    #[serde(flatten)]
    rest: toml::Table,
}

impl TryFrom<RawConnection> for ConnectionConfig {
    type Error = String;

    fn try_from(raw: RawConnection) -> std::result::Result<Self, String> {
        let kind = raw
            .rest
            .get("kind")
            .and_then(|k| k.as_str())
            .map(str::to_string);
        let provider: ProviderConfig =
            toml::Value::Table(raw.rest.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let msg = e.message().trim().to_string();
                    match kind {
                        None => "missing `kind`; set kind = \"s3\", \"r2\", \"fs\" or \"memory\""
                            .to_string(),
                        Some(k)
                            if msg.contains("unknown variant")
                                && !crate::enabled_providers().contains(&k.as_str()) =>
                        {
                            format!(
                                "kind `{k}` is not available; allowed: {}",
                                crate::enabled_providers().join(", ")
                            )
                        }
                        Some(k) => match culprit(&raw.rest, &msg) {
                            Some(key) => storage_core::config::field_message(
                                &key,
                                format!("{msg} (in a `{k}` connection)"),
                            ),
                            None => format!("in a `{k}` connection: {msg}"),
                        },
                    }
                })?;
        Ok(ConnectionConfig {
            provider,
            type_buckets: raw.type_buckets,
        })
    }
}

/// The key of a connection block that `message` is about. The provider settings are typed
/// as a whole, after the file was read, so the error has lost its place: the culprit is the
/// key whose removal changes the error (a wrong type becomes "missing field" or goes away).
fn culprit(table: &toml::Table, message: &str) -> Option<String> {
    table.keys().filter(|key| *key != "kind").find_map(|key| {
        let mut without = table.clone();
        without.remove(key);
        let changed = toml::Value::Table(without)
            .try_into::<ProviderConfig>()
            .map_or_else(|e| e.message().trim() != message, |_| true);
        changed.then(|| key.clone())
    })
}

impl ConnectionConfig {
    /// `s3`, `r2`, `fs` or `memory`.
    pub fn kind(&self) -> &'static str {
        match &self.provider {
            #[cfg(feature = "s3")]
            ProviderConfig::S3(_) => "s3",
            #[cfg(feature = "r2")]
            ProviderConfig::R2(_) => "r2",
            ProviderConfig::Fs(_) => "fs",
            ProviderConfig::Memory(_) => "memory",
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
    /// `"fsync"` (default): every write is on stable storage before it returns. `"none"`:
    /// no fsync, for scratch data (an acknowledged write can be lost to a power loss).
    #[serde(default)]
    pub durability: storage_core::Durability,
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
    /// Buckets to serve from, in order, when this one is *unavailable* (not when an object
    /// is merely missing): seed 002's provider with fallback.
    #[cfg(feature = "router")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<String>,
    /// Buckets every write is mirrored to (seed 003's hybrid mode); reads prefer this bucket
    /// and fall back to the mirrors.
    #[cfg(feature = "router")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror: Vec<String>,
    /// Layers around this bucket's store (`[buckets.NAME.layers]`); replaces the top-level
    /// `[layers]` for this bucket.
    #[cfg(feature = "layers")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<storage_layers::config::LayersConfig>,
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
                    if known.is_empty() {
                        "(none: add a [connections.NAME] block)".to_string()
                    } else {
                        known.join(", ")
                    }
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

#[cfg(all(test, feature = "s3"))]
mod tests {
    use crate::Strata;

    fn error(text: &str) -> String {
        match Strata::from_toml_str(text, "s.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    const S3: &str = "[connections.aws]\nkind = 's3'\nregion = 'us-east-1'\nendpoint = 'http://127.0.0.1:9'\nallow_http = true\n";

    #[test]
    fn a_wrong_type_in_a_connection_names_its_line_and_field() {
        let e = error("[connections.bad]\nkind = 's3'\nregion = 'eu-west-1'\nmax_retries = 'x'\n");
        assert!(
            e.contains("s.toml:4: connections.bad.max_retries")
                && e.contains("invalid type: string \"x\""),
            "{e}"
        );
        let e = error("[connections.bad]\nkind = 's3'\ntimeout = 30\n");
        assert!(e.contains("s.toml:3: connections.bad.timeout"), "{e}");
        let e = error("[connections.bad]\nkind = 's3'\ncolour = 'red'\n");
        assert!(
            e.contains("s.toml:3: connections.bad.colour") && e.contains("unknown field"),
            "{e}"
        );
    }

    #[test]
    fn settings_checked_after_parsing_name_their_line() {
        let e = error(&format!(
            "{S3}access_key_id = 'AK'\nsecret_access_key = ''\n[buckets.m]\nconnection = 'aws'\nbucket = 'media'\n"
        ));
        assert!(
            e.contains("s.toml:7: connections.aws.secret_access_key") && e.contains("is empty"),
            "{e}"
        );
        let e = error(&format!(
            "{S3}connect_timeout = '0s'\n[buckets.m]\nconnection = 'aws'\nbucket = 'media'\n"
        ));
        assert!(
            e.contains("s.toml:6: connections.aws.connect_timeout") && e.contains("more than zero"),
            "{e}"
        );
    }

    #[cfg(feature = "layers")]
    #[test]
    fn layer_settings_name_their_table_and_line() {
        let mem = "[connections.mem]\nkind = 'memory'\n[buckets.m]\nconnection = 'mem'\n";
        let e = error(&format!("{mem}[layers.timeout]\noperation = '0s'\n"));
        assert!(e.contains("s.toml:6: layers.timeout.operation"), "{e}");
        let e = error(&format!(
            "{mem}[buckets.m.layers.compression]\ndefault = 'gzip'\nlevel = 12\n"
        ));
        assert!(
            e.contains("s.toml:7: buckets.m.layers.compression.level") && e.contains("gzip"),
            "{e}"
        );
    }
}
