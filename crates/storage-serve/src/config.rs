//! The `[serve]` table of `strata.toml`.
//!
//! ```toml
//! [serve]
//! listen = "127.0.0.1:9000"        # the S3 endpoint
//! admin = "127.0.0.1:9001"         # /health and /metrics
//! anonymous_read = ["public"]      # buckets anyone may read without a signature
//! max_body_bytes = 5368709120      # largest request body (5 GiB, S3's single-put limit)
//! max_header_bytes = 65536
//! request_timeout = "15m"
//! max_concurrency = 256
//! max_conditional_bytes = 268435456  # conditional writes over 8 MiB held at once (256 MiB)
//!
//! [serve.credentials.app]
//! access_key = "AKIAAPP"
//! secret_key = "..."               # never printed: a storage_core::Secret
//! buckets = ["media", "acme"]      # or ["*"] for every served bucket
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use storage_core::{Result, Secret, StorageError};

/// Default S3 listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";
/// Default admin listener (`/health`, `/metrics`).
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9001";

/// Settings of the server (`[serve]`); a field left out takes its value from
/// [`ServeConfig::default`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address of the S3 endpoint.
    pub listen: SocketAddr,
    /// Address of the admin endpoint (`/health`, `/metrics`); `None` turns it off.
    pub admin: Option<SocketAddr>,
    /// Access keys, by a name used in logs. With none, every request is allowed (only on a
    /// loopback address).
    pub credentials: BTreeMap<String, CredentialConfig>,
    /// Buckets that unsigned requests may read (GET, HEAD, list). Everything else unsigned is
    /// 403 once credentials are configured.
    pub anonymous_read: Vec<String>,
    /// Largest request body accepted, in bytes (a multipart part counts on its own).
    pub max_body_bytes: u64,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Longest a request may take, body included (`"15m"`, `"30s"`).
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
    /// Requests served at once; more wait (the client sees latency, not errors).
    pub max_concurrency: usize,
    /// Request bodies over 1 MiB (parts, large puts) read at once; more wait before any of
    /// their body is read. Each may be held whole (a signed payload is hashed before the
    /// operation runs; a part is buffered up to the bucket's part size, 8 MiB by default),
    /// so this bounds memory under many parallel uploads.
    pub max_parts_in_flight: usize,
    /// Bytes that conditional writes (If-Match / If-None-Match: `*` on PutObject and
    /// CompleteMultipartUpload) larger than one part (8 MiB) may hold in memory, all such
    /// writes together; one larger than this is refused with `EntityTooLarge`. Backends apply
    /// a condition only to a write sent in one request, so such a body is held whole (see
    /// the crate's `whole` module); others wait for room before reading their body.
    pub max_conditional_bytes: u64,
    /// How long in-flight requests may take to finish after SIGTERM / Ctrl-C.
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_grace: Duration,
    /// Routes to serve. [`ServeConfig::from_toml_str`] sets it to the file's `[routes.*]`
    /// names, so the built-in routes a file does not name (`records`, `versions`, ... that
    /// exist whenever one bucket is defined) do not crowd the bucket list; `None` serves
    /// every route.
    #[serde(skip)]
    pub routes: Option<Vec<String>>,
}

/// One access key (`[serve.credentials.NAME]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The access key id clients sign with.
    pub access_key: String,
    /// The secret; `Debug`/`Display`/serialisation print `***`.
    pub secret_key: Secret,
    /// Served bucket names this key may reach; `"*"` means all.
    pub buckets: Vec<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            admin: Some(DEFAULT_ADMIN.parse().expect("valid default address")),
            credentials: BTreeMap::new(),
            anonymous_read: Vec::new(),
            max_body_bytes: 5 * 1024 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(15 * 60),
            max_concurrency: 256,
            max_parts_in_flight: 4,
            max_conditional_bytes: crate::whole::DEFAULT_MAX_CONDITIONAL_BYTES,
            shutdown_grace: Duration::from_secs(30),
            routes: None,
        }
    }
}

impl ServeConfig {
    /// The `[serve]` table of a whole `strata.toml` text (defaults when there is none).
    /// `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<ServeConfig> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            StorageError::invalid_config(origin, format!("not valid TOML: {}", e.message()))
        })?;
        let mut cfg = match table.get("serve") {
            None => ServeConfig::default(),
            Some(v) => {
                let cfg: ServeConfig = v.clone().try_into().map_err(|e: toml::de::Error| {
                    StorageError::invalid_config(
                        format!("{origin}: [serve]"),
                        e.message().trim().to_string(),
                    )
                })?;
                cfg.validate(origin)?;
                cfg
            }
        };
        cfg.routes = Some(
            table
                .get("routes")
                .and_then(|r| r.as_table())
                .map(|t| t.keys().cloned().collect())
                .unwrap_or_default(),
        );
        Ok(cfg)
    }

    /// Check what serde cannot: non-empty keys, unique access keys, sane limits.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let mut seen = BTreeMap::new();
        for (name, c) in &self.credentials {
            let field = format!("{origin}: serve.credentials.{name}");
            if c.access_key.is_empty() || c.secret_key.is_empty() {
                return Err(StorageError::invalid_config(
                    field,
                    "access_key and secret_key must both be set and non-empty",
                ));
            }
            if let Some(other) = seen.insert(c.access_key.clone(), name.clone()) {
                return Err(StorageError::invalid_config(
                    field,
                    format!(
                        "access key `{}` is also used by serve.credentials.{other}; each credential needs its own",
                        c.access_key
                    ),
                ));
            }
            if c.buckets.is_empty() {
                return Err(StorageError::invalid_config(
                    field,
                    "`buckets` is empty: list the served buckets this key may reach, or [\"*\"] for all",
                ));
            }
        }
        if self.max_concurrency == 0 || self.max_parts_in_flight == 0 {
            return Err(StorageError::invalid_config(
                format!("{origin}: [serve]"),
                "max_concurrency and max_parts_in_flight must be at least 1",
            ));
        }
        if self.max_header_bytes < 8192 {
            return Err(StorageError::invalid_config(
                format!("{origin}: serve.max_header_bytes"),
                "must be at least 8192 bytes (SigV4 requests carry large headers)",
            ));
        }
        Ok(())
    }

    /// Whether requests are checked at all.
    pub fn auth_enabled(&self) -> bool {
        !self.credentials.is_empty()
    }
}

/// `"15m"`-style durations, as everywhere else in `strata.toml`.
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. \"30s\" or \"15m\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credentials_and_limits() {
        let cfg = ServeConfig::from_toml_str(
            r#"
[buckets.x]
connection = "c"
[serve]
listen = "127.0.0.1:7000"
request_timeout = "30s"
anonymous_read = ["pub"]
[serve.credentials.app]
access_key = "AK"
secret_key = "very-secret"
buckets = ["x"]
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 7000);
        assert_eq!(cfg.request_timeout, Duration::from_secs(30));
        assert_eq!(cfg.credentials["app"].secret_key.expose(), "very-secret");
        assert!(!format!("{cfg:?}").contains("very-secret"));
    }

    #[test]
    fn rejects_unknown_fields_and_duplicate_keys() {
        let e = ServeConfig::from_toml_str("[serve]\nlisten_on = 1\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("listen_on"), "{e}");
        let e = ServeConfig::from_toml_str(
            "[serve.credentials.a]\naccess_key='K'\nsecret_key='s'\nbuckets=['*']\n[serve.credentials.b]\naccess_key='K'\nsecret_key='t'\nbuckets=['*']\n",
            "t.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("also used by"), "{e}");
    }
}
