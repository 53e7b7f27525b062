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
    /// `[telemetry]`: Prometheus and OTLP export (installed by `strata::telemetry`, feature
    /// `telemetry`; the CLI installs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetryConfig>,
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

/// `[telemetry]`: where metrics and spans go. Installed by
/// `strata::telemetry::Telemetry::install` (cargo feature `telemetry`).
///
/// ```toml
/// [telemetry.prometheus]
/// listen = "127.0.0.1:9464"     # GET /metrics for a Prometheus scrape
/// file = "/var/lib/node_exporter/textfile/strata.prom"   # or a text file, rewritten every interval
///
/// [telemetry.otlp]
/// endpoint = "http://localhost:4318"   # OTLP/HTTP (protobuf): /v1/traces and /v1/metrics
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Prometheus exposition of the `metrics` counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusConfig>,
    /// OTLP export of spans and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpConfig>,
}

/// `[telemetry.prometheus]`; a field left out takes its value from
/// [`PrometheusConfig::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// `HOST:PORT` to serve the text exposition on (any path answers), for a scrape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// File to write the text exposition to, every `interval` and when the program ends
    /// (for node_exporter's textfile collector, or a short-lived CLI run). Written to a
    /// temporary file and renamed, so a reader never sees half of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// How often `file` is rewritten (default 15s).
    #[serde(with = "storage_core::config::duration_str::nonzero")]
    pub interval: std::time::Duration,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            listen: None,
            file: None,
            interval: std::time::Duration::from_secs(15),
        }
    }
}

/// `[telemetry.otlp]`: OTLP over HTTP with protobuf bodies (port 4318 of a collector).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Base URL of the collector (`http://localhost:4318`); `/v1/traces` and `/v1/metrics`
    /// are appended.
    pub endpoint: String,
    /// `service.name` of the exported resource (default `strata`).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Export spans (default true).
    #[serde(default = "yes")]
    pub traces: bool,
    /// Export the `metrics` counters (default true).
    #[serde(default = "yes")]
    pub metrics: bool,
    /// Which spans are exported: a `tracing` filter (default `info`; the storage layers'
    /// `storage_op` spans are `info`).
    #[serde(default = "default_filter")]
    pub filter: String,
    /// How often metrics are pushed (default 60s; also when the program ends).
    #[serde(
        default = "default_push_interval",
        with = "storage_core::config::duration_str::nonzero"
    )]
    pub interval: std::time::Duration,
    /// Timeout of one export request (default 10s).
    #[serde(
        default = "default_export_timeout",
        with = "storage_core::config::duration_str::nonzero"
    )]
    pub timeout: std::time::Duration,
}

impl OtlpConfig {
    /// Defaults for `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        OtlpConfig {
            endpoint: endpoint.into(),
            service_name: default_service_name(),
            traces: true,
            metrics: true,
            filter: default_filter(),
            interval: default_push_interval(),
            timeout: default_export_timeout(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_service_name() -> String {
    "strata".into()
}
fn default_filter() -> String {
    "info".into()
}
fn default_push_interval() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}
fn default_export_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

/// Variables that set (or override) `[telemetry]`.
pub mod telemetry_env {
    /// `[telemetry.prometheus] listen`.
    pub const PROMETHEUS_LISTEN: &str = "STRATA_PROMETHEUS_LISTEN";
    /// `[telemetry.prometheus] file`.
    pub const PROMETHEUS_FILE: &str = "STRATA_PROMETHEUS_FILE";
    /// `[telemetry.otlp] endpoint` (the OpenTelemetry standard variable).
    pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    /// `[telemetry.otlp] service_name` (standard).
    pub const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
    /// `otlp` or `none`: `[telemetry.otlp] traces` (standard).
    pub const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
    /// `otlp` or `none`: `[telemetry.otlp] metrics` (standard).
    pub const METRICS_EXPORTER: &str = "OTEL_METRICS_EXPORTER";
    /// `[telemetry.otlp] filter`.
    pub const FILTER: &str = "STRATA_TELEMETRY_FILTER";
}

impl TelemetryConfig {
    /// Whether nothing is exported.
    pub fn is_empty(&self) -> bool {
        self.prometheus
            .as_ref()
            .is_none_or(|p| p.listen.is_none() && p.file.is_none())
            && self.otlp.is_none()
    }

    /// The `[telemetry]` table of `config_file` (or of `$STRATA_CONFIG` when `None`), with
    /// the variables of [`telemetry_env`] applied over it, checked. No file and no variables:
    /// an empty config (nothing exported).
    pub fn resolve(
        config_file: Option<&std::path::Path>,
        env: &storage_core::config::Env,
    ) -> Result<TelemetryConfig> {
        let path = config_file
            .map(PathBuf::from)
            .or_else(|| env.get(crate::CONFIG_ENV).map(PathBuf::from));
        let mut cfg = match &path {
            Some(p) => {
                let origin = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|e| {
                    StorageError::invalid_config(
                        origin.clone(),
                        format!("cannot read the config file: {e}"),
                    )
                })?;
                let file: StrataConfig = storage_core::config::from_toml_str(&text, &origin)?;
                let cfg = file.telemetry.unwrap_or_default();
                cfg.validate(&format!("{origin}: telemetry."))
                    .map_err(|e| storage_core::config::locate_error(e, &text, &origin))?;
                cfg
            }
            None => TelemetryConfig::default(),
        };
        cfg.apply_env(env)?;
        Ok(cfg)
    }

    /// Apply the variables of [`telemetry_env`]; each wins over the file. Errors name the
    /// variable.
    pub fn apply_env(&mut self, env: &storage_core::config::Env) -> Result<()> {
        use telemetry_env as v;
        if let Some(listen) = env.get(v::PROMETHEUS_LISTEN) {
            check_listen(v::PROMETHEUS_LISTEN, &listen)?;
            self.prometheus.get_or_insert_with(Default::default).listen = Some(listen);
        }
        if let Some(file) = env.get(v::PROMETHEUS_FILE) {
            check_file(v::PROMETHEUS_FILE, std::path::Path::new(&file))?;
            self.prometheus.get_or_insert_with(Default::default).file = Some(file.into());
        }
        if let Some(endpoint) = env.get(v::OTLP_ENDPOINT) {
            check_endpoint(v::OTLP_ENDPOINT, &endpoint)?;
            match &mut self.otlp {
                Some(o) => o.endpoint = endpoint,
                None => self.otlp = Some(OtlpConfig::new(endpoint)),
            }
        }
        let set = |var: &str| -> Result<Option<bool>> {
            match env.get(var) {
                None => Ok(None),
                Some(x) => match x.trim().to_ascii_lowercase().as_str() {
                    "otlp" => Ok(Some(true)),
                    "none" => Ok(Some(false)),
                    _ => Err(StorageError::invalid_config(
                        var,
                        format!("`{x}` is not supported here; use otlp or none"),
                    )),
                },
            }
        };
        let traces = set(v::TRACES_EXPORTER)?;
        let metrics = set(v::METRICS_EXPORTER)?;
        let service = env.get(v::SERVICE_NAME);
        let filter = env.get(v::FILTER);
        if let Some(o) = &mut self.otlp {
            o.traces = traces.unwrap_or(o.traces);
            o.metrics = metrics.unwrap_or(o.metrics);
            if let Some(s) = service {
                o.service_name = s;
            }
            if let Some(f) = filter {
                o.filter = f;
            }
        } else if traces == Some(true) || metrics == Some(true) {
            return Err(StorageError::invalid_config(
                v::OTLP_ENDPOINT,
                format!(
                    "is not set, and {}=otlp asks for OTLP export: set it to the collector's OTLP/HTTP URL (e.g. http://localhost:4318)",
                    if traces == Some(true) {
                        v::TRACES_EXPORTER
                    } else {
                        v::METRICS_EXPORTER
                    }
                ),
            ));
        }
        Ok(())
    }

    /// Check the settings; `prefix` goes before each field name in errors
    /// (`strata.toml: telemetry.`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        if let Some(p) = &self.prometheus {
            if let Some(listen) = &p.listen {
                check_listen(&format!("{prefix}prometheus.listen"), listen)?;
            }
            if let Some(file) = &p.file {
                check_file(&format!("{prefix}prometheus.file"), file)?;
            }
            if p.listen.is_none() && p.file.is_none() {
                return Err(StorageError::invalid_config(
                    format!("{prefix}prometheus"),
                    "exports nothing: set `listen` (HOST:PORT for a scrape) or `file` (a text file), or remove the table",
                ));
            }
        }
        if let Some(o) = &self.otlp {
            check_endpoint(&format!("{prefix}otlp.endpoint"), &o.endpoint)?;
            if o.service_name.trim().is_empty() {
                return Err(StorageError::invalid_config(
                    format!("{prefix}otlp.service_name"),
                    "is empty; name the service (default `strata`)",
                ));
            }
        }
        #[cfg(not(feature = "telemetry"))]
        if !self.is_empty() {
            return Err(StorageError::invalid_config(
                prefix.trim_end_matches('.').to_string(),
                "needs the `telemetry` cargo feature of the strata crate (the strata CLI has it)",
            ));
        }
        Ok(())
    }
}

fn check_listen(field: &str, v: &str) -> Result<()> {
    v.parse::<std::net::SocketAddr>().map(|_| ()).map_err(|_| {
        StorageError::invalid_config(
            field,
            format!("`{v}` is not an address to listen on; write IP:PORT, e.g. 127.0.0.1:9464 (0.0.0.0:9464 for every interface)"),
        )
    })
}

pub(crate) fn check_file(field: &str, path: &std::path::Path) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if path.file_name().is_none() || path.is_dir() {
        return Err(StorageError::invalid_config(
            field,
            format!("`{}` is not a file name", path.display()),
        ));
    }
    if !parent.is_dir() {
        return Err(StorageError::invalid_config(
            field,
            format!(
                "the folder `{}` does not exist; create it or choose another file",
                parent.display()
            ),
        ));
    }
    Ok(())
}

fn check_endpoint(field: &str, v: &str) -> Result<()> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(StorageError::invalid_config(
            field,
            format!(
                "`{v}` is not an http(s) URL; write the collector's OTLP/HTTP base URL, e.g. http://localhost:4318"
            ),
        )),
    }
}

/// Check the names of connections and buckets, and that every bucket's connection exists.
pub(crate) fn validate(cfg: &StrataConfig, origin: &str) -> Result<()> {
    let field = |path: String| format!("{origin}: {path}");
    if let Some(t) = &cfg.telemetry {
        t.validate(&format!("{origin}: telemetry."))?;
    }
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
    use crate::refused::assert_says;

    const S3: &str = "[connections.aws]\nkind = 's3'\nregion = 'us-east-1'\nendpoint = 'http://127.0.0.1:9'\nallow_http = true\n";

    #[test]
    fn a_wrong_type_in_a_connection_names_its_line_and_field() {
        assert_says(
            "[connections.bad]\nkind = 's3'\nregion = 'eu-west-1'\nmax_retries = 'x'\n",
            &[
                "s.toml:4: connections.bad.max_retries",
                "invalid type: string \"x\"",
            ],
        );
        assert_says(
            "[connections.bad]\nkind = 's3'\ntimeout = 30\n",
            &["s.toml:3: connections.bad.timeout"],
        );
        assert_says(
            "[connections.bad]\nkind = 's3'\ncolour = 'red'\n",
            &["s.toml:3: connections.bad.colour", "unknown field"],
        );
    }

    #[test]
    fn settings_checked_after_parsing_name_their_line() {
        let bucket = "[buckets.m]\nconnection = 'aws'\nbucket = 'media'\n";
        assert_says(
            &format!("{S3}access_key_id = 'AK'\nsecret_access_key = ''\n{bucket}"),
            &["s.toml:7: connections.aws.secret_access_key", "is empty"],
        );
        assert_says(
            &format!("{S3}connect_timeout = '0s'\n{bucket}"),
            &[
                "s.toml:6: connections.aws.connect_timeout",
                "more than zero",
            ],
        );
    }

    #[cfg(feature = "layers")]
    #[test]
    fn layer_settings_name_their_table_and_line() {
        let mem = "[connections.mem]\nkind = 'memory'\n[buckets.m]\nconnection = 'mem'\n";
        assert_says(
            &format!("{mem}[layers.timeout]\noperation = '0s'\n"),
            &["s.toml:6: layers.timeout.operation"],
        );
        assert_says(
            &format!("{mem}[buckets.m.layers.compression]\ndefault = 'gzip'\nlevel = 12\n"),
            &["s.toml:7: buckets.m.layers.compression.level", "gzip"],
        );
    }
}
