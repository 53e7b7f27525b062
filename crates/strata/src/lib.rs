//! # Strata
//!
//! One well-made way to keep data in object storage (AWS S3, Cloudflare R2, any
//! S3-compatible server, a local folder) across many buckets. This crate is the facade: it
//! re-exports the `storage-*` crates behind cargo features and builds a whole setup from
//! one TOML file ([`Strata::from_config`]), from the environment ([`Strata::from_env`]), or
//! with no configuration at all: the embedded default, a local folder
//! ([`Strata::embedded`]), so everything works on a laptop without a cloud account.
//!
//! ```
//! use strata::Strata;
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> strata::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! // No config: every bucket name is a folder under the root.
//! let strata = Strata::embedded(dir.path());
//! let photos = strata.bucket("photos")?;
//! photos.put("2026/cat.jpg", vec![0xff, 0xd8]).await?;
//! assert!(photos.exists("2026/cat.jpg").await?);
//!
//! // The same, from a config file.
//! let toml = format!(
//!     "[connections.disk]\nkind = 'fs'\nroot = '{}'\n\n[buckets.media]\nconnection = 'disk'\nbucket = 'photos'\n",
//!     dir.path().display()
//! );
//! let strata = Strata::from_toml_str(&toml, "strata.toml")?;
//! let media = strata.bucket("media")?;
//! assert_eq!(media.get("2026/cat.jpg").await?.bytes.len(), 2);
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `s3` | yes | [`s3`]: Amazon S3 and S3-compatible servers |
//! | `r2` | yes | [`r2`]: Cloudflare R2 (implies `s3`) |
//! | `router` | no | `router`: routes per data type, source sets with fallback reads, tenants, mirror writes, offload, sync |
//! | `cas` | no | `cas`: typed JSON documents with ETag compare-and-swap, TTL, versioned records |
//! | `manifest` | no | `manifest`: JSON/JSONL datasets with a searchable manifest, no arrow or parquet (implies `cas`) |
//! | `manifest-parquet` | no | Parquet dataset files and manifests compacted into Parquet (implies `manifest`; adds arrow + parquet) |
//! | `layers` | no | `layers`: retry, timeout, limit, circuit breaker, recovery, chaos, metrics, gzip |
//! | `layers-full` | no | every layer, plus read cache, zstd and client-side encryption |
//!
//! With no features you still get [`core`], the memory and local-folder backends and the
//! whole [`Bucket`] API.

#![cfg_attr(docsrs, feature(doc_cfg))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod config;
mod env;
#[cfg(feature = "router")]
mod hybrid;
#[cfg(feature = "telemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "telemetry")))]
pub mod telemetry;

pub use config::{BucketConfig, ConnectionConfig, ProviderConfig, StrataConfig};
#[cfg(feature = "cas")]
#[cfg_attr(docsrs, doc(cfg(feature = "cas")))]
pub use storage_cas as cas;
pub use storage_core as core;
pub use storage_core::{
    Bucket, Capabilities, Key, ObjectInfo, PresignMethod, PutOpts, Result, Secret, StorageError,
    WriteCondition,
};
#[cfg(feature = "layers")]
#[cfg_attr(docsrs, doc(cfg(feature = "layers")))]
pub use storage_layers as layers;
#[cfg(feature = "manifest")]
#[cfg_attr(docsrs, doc(cfg(feature = "manifest")))]
pub use storage_manifest as manifest;
#[cfg(feature = "r2")]
#[cfg_attr(docsrs, doc(cfg(feature = "r2")))]
pub use storage_r2 as r2;
#[cfg(feature = "router")]
#[cfg_attr(docsrs, doc(cfg(feature = "router")))]
pub use storage_router as router;
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use storage_s3 as s3;

use storage_core::config::Env;
use storage_core::{MemoryStore, StorageError as E};

/// Variable naming the config file for [`Strata::from_env`].
pub const CONFIG_ENV: &str = "STRATA_CONFIG";
/// Variable naming the embedded default's folder.
pub const HOME_ENV: &str = "STRATA_HOME";
/// The embedded default's folder when `STRATA_HOME` is not set.
pub const DEFAULT_HOME: &str = ".strata";

/// A configured set of named buckets.
#[derive(Debug, Clone)]
pub struct Strata {
    buckets: BTreeMap<String, Bucket>,
    #[cfg(feature = "router")]
    router: Option<storage_router::Router>,
    /// The layers built for each bucket from `[layers]`, kept so their counters can be read.
    #[cfg(feature = "layers")]
    stacks: BTreeMap<String, std::sync::Arc<storage_layers::config::Stack>>,
    /// Embedded default: any valid name is a folder under this root.
    on_demand_root: Option<PathBuf>,
    origin: String,
}

impl Strata {
    /// The embedded default: a local folder store under `root`, where each bucket name is a
    /// sub-folder created on first use. No credentials, no server.
    pub fn embedded(root: impl AsRef<Path>) -> Strata {
        Strata {
            buckets: BTreeMap::new(),
            #[cfg(feature = "router")]
            router: None,
            #[cfg(feature = "layers")]
            stacks: BTreeMap::new(),
            on_demand_root: Some(root.as_ref().to_path_buf()),
            origin: format!("embedded default ({})", root.as_ref().display()),
        }
    }

    /// The embedded default at `$STRATA_HOME`, or `./.strata`.
    pub fn embedded_default() -> Strata {
        Self::embedded(
            Env::process()
                .get(HOME_ENV)
                .unwrap_or_else(|| DEFAULT_HOME.into()),
        )
    }

    /// Load `path` (TOML). Errors name the file, the field and what is allowed.
    pub fn from_config(path: impl AsRef<Path>) -> Result<Strata> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            E::invalid_config(
                path.display().to_string(),
                format!("cannot read the config file: {e}"),
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml_in(&text, &path.display().to_string(), base)
    }

    /// Parse TOML text; `origin` names it in errors; relative `fs` roots are relative to the
    /// current folder.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Strata> {
        Self::from_toml_in(text, origin, Path::new("."))
    }

    fn from_toml_in(text: &str, origin: &str, base: &Path) -> Result<Strata> {
        let cfg: StrataConfig = storage_core::config::from_toml_str(text, origin)?;
        // Checks made after parsing name the field; the text says on which line it is.
        Self::from_parsed(&cfg, origin, base)
            .map_err(|e| storage_core::config::locate_error(e, text, origin))
    }

    /// Build from an already-parsed config.
    pub fn from_parsed(cfg: &StrataConfig, origin: &str, base: &Path) -> Result<Strata> {
        config::validate(cfg, origin)?;
        let mut memory: BTreeMap<(String, String), Arc<MemoryStore>> = BTreeMap::new();
        let mut buckets = BTreeMap::new();
        #[cfg(feature = "layers")]
        let mut stacks = BTreeMap::new();
        for (name, b) in &cfg.buckets {
            let conn = &cfg.connections[&b.connection];
            let remote = b.bucket.clone().unwrap_or_else(|| name.clone());
            let field = |f: &str| format!("{origin}: buckets.{name}.{f}");
            // One retrier per request: under a retry layer the S3 client's HTTP retries are
            // off (both retrying would multiply attempts).
            #[cfg(all(feature = "layers", any(feature = "s3", feature = "r2")))]
            let retry_layer = b
                .layers
                .as_ref()
                .or(cfg.layers.as_ref())
                .is_some_and(|l| l.retry.is_some());
            #[cfg(all(not(feature = "layers"), any(feature = "s3", feature = "r2")))]
            let retry_layer = false;
            #[cfg(any(feature = "s3", feature = "r2"))]
            let http_retries = |configured: Option<usize>| -> Result<Option<usize>> {
                match configured {
                    _ if !retry_layer => Ok(configured),
                    Some(n) if n > 0 => Err(E::invalid_config(
                        format!("{origin}: connections.{}.max_retries", b.connection),
                        format!(
                            "is {n}, but bucket `{name}` also has [layers.retry]: both would retry every request (up to attempts x {}). Remove max_retries (the retry layer then owns retries) or remove [layers.retry]",
                            n + 1
                        ),
                    )),
                    _ => Ok(Some(0)),
                }
            };
            // An S3 or R2 connection (the same fields, no shared trait) gets the handle's
            // remote bucket, its retries and its CDN URL alike.
            #[cfg(any(feature = "s3", feature = "r2"))]
            macro_rules! remote_bucket {
                ($connection:expr) => {{
                    let mut c = $connection.clone();
                    c.bucket = remote;
                    c.max_retries = http_retries(c.max_retries)?;
                    if b.cdn_url.is_some() {
                        c.cdn_url = b.cdn_url.clone();
                    }
                    c.validate(&format!(
                        "{origin}: buckets.{name}/connections.{}.",
                        b.connection
                    ))?;
                    c.build(name)?
                }};
            }
            let bucket = match &conn.provider {
                #[cfg(feature = "s3")]
                ProviderConfig::S3(s3) => remote_bucket!(s3),
                #[cfg(feature = "r2")]
                ProviderConfig::R2(r2) => remote_bucket!(r2),
                ProviderConfig::Fs(fs) => {
                    storage_core::Key::new(&remote)
                        .map_err(|e| E::invalid_config(field("bucket"), e.to_string()))?;
                    let root = base.join(&fs.root).join(&remote);
                    storage_core::LocalStore::new(root)?
                        .with_durability(fs.durability)
                        .into_bucket(name)
                }
                ProviderConfig::Memory(_) => {
                    let store = memory
                        .entry((b.connection.clone(), remote.clone()))
                        .or_insert_with(|| Arc::new(MemoryStore::new()))
                        .clone();
                    Bucket::on_memory_store(
                        name,
                        store,
                        format!("memory:{}/{remote}", b.connection),
                    )
                }
            };
            let mut builder = bucket.to_builder();
            if let Some(p) = &b.prefix {
                builder = builder.prefix(p)?;
            }
            if let (Some(url), "fs" | "memory") = (&b.cdn_url, conn.kind()) {
                builder = builder.public_url(url::Url::parse(url).map_err(|e| {
                    E::invalid_config(field("cdn_url"), format!("`{url}` is not a URL ({e})"))
                })?);
            }
            #[cfg(feature = "layers")]
            if let Some(layers) = b
                .layers
                .as_ref()
                .or(cfg.layers.as_ref())
                .filter(|l| !l.is_empty())
            {
                let built = builder.build();
                let mut stack = layers
                    .build(built.store().clone(), name, &Env::process())
                    .map_err(|e| match e {
                        // The layers name their own fields (`layers.timeout.operation`):
                        // say which table of this file they come from.
                        E::InvalidConfig { field, reason } if field.starts_with("layers.") => {
                            let table = if b.layers.is_some() {
                                format!("buckets.{name}.")
                            } else {
                                String::new()
                            };
                            E::invalid_config(format!("{origin}: {table}{field}"), reason)
                        }
                        other => other,
                    })?;
                builder = match stack.store.take() {
                    Some(layered) => built.to_builder().store(layered),
                    None => built.to_builder(),
                };
                stacks.insert(name.clone(), std::sync::Arc::new(stack));
            }
            buckets.insert(name.clone(), builder.build());
        }
        #[cfg(feature = "router")]
        let buckets = wrap_failover_and_mirrors(cfg, origin, buckets)?;
        #[cfg(feature = "router")]
        let router = {
            let bucket_connections = cfg
                .buckets
                .iter()
                .map(|(n, b)| (n.clone(), b.connection.clone()))
                .collect();
            let type_buckets = cfg
                .connections
                .iter()
                .filter(|(_, c)| !c.type_buckets.is_empty())
                .map(|(n, c)| (n.clone(), c.type_buckets.clone()))
                .collect();
            Some(storage_router::Router::new(
                buckets.clone(),
                bucket_connections,
                type_buckets,
                &cfg.router_config(),
                origin,
            )?)
        };
        Ok(Strata {
            buckets,
            #[cfg(feature = "router")]
            router,
            #[cfg(feature = "layers")]
            stacks,
            on_demand_root: None,
            origin: origin.to_string(),
        })
    }

    /// The layers configured for bucket `name` (`[layers]` or `[buckets.NAME.layers]`), to
    /// read their counters: metrics snapshots, cache hit rates, retry and breaker state.
    /// `None` when the bucket has no layers.
    ///
    /// ```
    /// # fn main() -> storage_core::Result<()> {
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let strata = strata::Strata::from_toml_str(
    ///     "[connections.mem]\nkind = 'memory'\n[buckets.logs]\nconnection = 'mem'\n[layers.metrics]\n",
    ///     "inline",
    /// )?;
    /// strata.bucket("logs")?.put("a.txt", "hello").await?;
    /// let metrics = strata.layers("logs").and_then(|l| l.metrics.as_ref()).unwrap();
    /// assert_eq!(metrics.stats().total_calls(), 1);
    /// # Ok(()) })
    /// # }
    /// ```
    #[cfg(feature = "layers")]
    #[cfg_attr(docsrs, doc(cfg(feature = "layers")))]
    pub fn layers(&self, name: &str) -> Option<&storage_layers::config::Stack> {
        self.stacks.get(name).map(|s| s.as_ref())
    }

    /// The bucket called `name`. With a config, an unknown name is an error listing the
    /// valid ones; in the embedded default any valid name is a folder, created on first use.
    pub fn bucket(&self, name: &str) -> Result<Bucket> {
        if let Some(b) = self.buckets.get(name) {
            return Ok(b.clone());
        }
        if let Some(root) = &self.on_demand_root {
            storage_core::config::validate_name("bucket", name)?;
            return Bucket::local(name, root.join(name));
        }
        Err(E::invalid_input(
            "bucket",
            format!(
                "no bucket named `{name}` in {}; valid names: {}",
                self.origin,
                if self.buckets.is_empty() {
                    "(none configured)".to_string()
                } else {
                    self.bucket_names().join(", ")
                }
            ),
        ))
    }

    /// Names of the configured buckets (in the embedded default: the existing folders).
    pub fn bucket_names(&self) -> Vec<String> {
        if let Some(root) = &self.on_demand_root {
            let mut names: Vec<String> = std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| storage_core::config::validate_name("", n).is_ok())
                .collect();
            names.sort();
            return names;
        }
        self.buckets.keys().cloned().collect()
    }

    /// Where this setup came from (file name, `environment (...)`, `embedded default (...)`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The router built from `[routes]`, `[sources]` and `[tenants]` (config files only).
    #[cfg(feature = "router")]
    #[cfg_attr(docsrs, doc(cfg(feature = "router")))]
    pub fn router(&self) -> Result<&storage_router::Router> {
        self.router.as_ref().ok_or_else(|| {
            E::invalid_config(
                self.origin.clone(),
                "routing needs a config file with [buckets] (and [routes]/[sources]); pass --config or set STRATA_CONFIG",
            )
        })
    }

    /// Whether this is the embedded default.
    pub fn is_embedded(&self) -> bool {
        self.on_demand_root.is_some()
    }
}

/// Wrap buckets that name `failover` or `mirror` buckets. The wrapped stores use the other
/// buckets as configured (never already-wrapped ones), so chains cannot loop.
#[cfg(feature = "router")]
fn wrap_failover_and_mirrors(
    cfg: &StrataConfig,
    origin: &str,
    plain: BTreeMap<String, Bucket>,
) -> Result<BTreeMap<String, Bucket>> {
    let mut out = plain.clone();
    for (name, b) in &cfg.buckets {
        for (field, list) in [("failover", &b.failover), ("mirror", &b.mirror)] {
            if list.is_empty() {
                continue;
            }
            let mut members = vec![(name.clone(), out[name].store().clone())];
            for other in list {
                let Some(ob) = plain.get(other).filter(|_| other != name) else {
                    return Err(E::invalid_config(
                        format!("{origin}: buckets.{name}.{field}"),
                        format!(
                            "`{other}` is not another configured bucket; known: {}",
                            plain
                                .keys()
                                .filter(|k| *k != name)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                members.push((other.clone(), ob.store().clone()));
            }
            let store: Arc<dyn storage_core::StrataStore> = if field == "failover" {
                Arc::new(storage_router::FailoverStore::chain(members))
            } else {
                // With an outbox for the writes a mirror misses (hybrid.rs).
                let mirrors: Vec<&Bucket> = list.iter().filter_map(|o| plain.get(o)).collect();
                let home = Env::process()
                    .get(HOME_ENV)
                    .unwrap_or_else(|| DEFAULT_HOME.into());
                hybrid::mirror_store(name, &out[name], members, &mirrors, Path::new(&home))?
            };
            let current = out.remove(name).expect("built above");
            // A mirror refuses conditional deletes itself: deciding on the primary would
            // leave the other copies behind.
            out.insert(name.clone(), current.to_builder().store(store).build());
        }
    }
    Ok(out)
}

/// Providers compiled into this build.
pub fn enabled_providers() -> Vec<&'static str> {
    let mut v = vec!["fs", "memory"];
    if cfg!(feature = "s3") {
        v.push("s3");
    }
    if cfg!(feature = "r2") {
        v.push("r2");
    }
    v
}

/// Checks of refused config files, shared by the modules' tests.
#[cfg(test)]
pub(crate) mod refused {
    /// What config `text` (a file named `s.toml`) is refused with; panics when accepted.
    pub(crate) fn error(text: &str) -> String {
        match crate::Strata::from_toml_str(text, "s.toml") {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    /// Config `text` is refused with an error that says each of `says` (where:
    /// `s.toml:LINE: field`, and why).
    pub(crate) fn assert_says(text: &str, says: &[&str]) {
        let e = error(text);
        assert!(says.iter().all(|s| e.contains(s)), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The setup of `rest` (a config file's text) with a `disk` connection on a new
    /// temporary folder, which lives as long as the first half of the pair.
    #[cfg(feature = "layers")]
    pub(super) fn on_disk(rest: &str) -> (tempfile::TempDir, Strata) {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[connections.disk]\nkind = 'fs'\nroot = '{}'\n{rest}",
            dir.path().display()
        );
        let strata = Strata::from_toml_str(&toml, "strata.toml").unwrap();
        (dir, strata)
    }

    #[test]
    fn unknown_bucket_lists_valid_names() {
        let s = Strata::from_toml_str(
            "[connections.m]\nkind = 'memory'\n[buckets.agent]\nconnection = 'm'\n[buckets.server-001]\nconnection = 'm'\n",
            "x.toml",
        )
        .unwrap();
        let e = s.bucket("nope").unwrap_err().to_string();
        assert!(e.contains("agent, server-001"), "{e}");
    }

    #[test]
    fn bucket_with_unknown_connection_names_field() {
        crate::refused::assert_says(
            "[connections.m]\nkind = 'memory'\n[buckets.a]\nconnection = 'x'\n",
            &["s.toml:4: buckets.a.connection", "known connections: m"],
        );
    }

    #[test]
    fn fs_durability_is_fsync_unless_set_to_none_and_a_typo_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let toml = |extra: &str| {
            format!(
                "[connections.disk]\nkind = 'fs'\nroot = '{}'\n{extra}\n[buckets.a]\nconnection = 'disk'\n",
                dir.path().display()
            )
        };
        for (extra, shown) in [
            ("", "durability: Fsync"),
            ("durability = 'fsync'", "durability: Fsync"),
            ("durability = 'none'", "durability: None"),
        ] {
            let s = Strata::from_toml_str(&toml(extra), "x.toml").unwrap();
            let store = format!("{:?}", s.bucket("a").unwrap().store());
            assert!(store.contains(shown), "{extra:?}: {store}");
        }
        let e = Strata::from_toml_str(&toml("durability = 'sync'"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`fs` connection")
                && e.contains("`sync`")
                && e.contains("`fsync`")
                && e.contains("`none`"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn memory_buckets_on_one_connection_are_separate() {
        let s = Strata::from_toml_str(
            "[connections.m]\nkind = 'memory'\n[buckets.a]\nconnection = 'm'\n[buckets.b]\nconnection = 'm'\nprefix = 'p'\n",
            "x.toml",
        )
        .unwrap();
        s.bucket("a").unwrap().put("k", "1").await.unwrap();
        assert!(!s.bucket("b").unwrap().exists("k").await.unwrap());
    }

    #[cfg(feature = "layers-full")]
    #[tokio::test]
    async fn delete_if_match_reaches_a_read_cache_that_does_not_revalidate() {
        let (_dir, s) = on_disk(
            "[layers.cache]\nrevalidate_after = '1h'\n[layers.metrics]\n[buckets.docs]\nconnection = 'disk'\n[buckets.sub]\nconnection = 'disk'\nprefix = 'p'\n",
        );
        let sub = s.bucket("sub").unwrap();
        // As `strata doc` does for a route: a prefix added after the layers.
        let routed = sub.to_builder().prefix("r").unwrap().build();
        // (label, bucket whose `[layers]` stack it uses, handle)
        for (name, stack, bucket) in [
            ("docs", "docs", s.bucket("docs").unwrap()),
            ("sub", "sub", sub),
            ("sub/r", "sub", routed),
        ] {
            let etag = bucket.put("k", "v").await.unwrap().etag.unwrap();
            let hits = || {
                s.layers(stack)
                    .unwrap()
                    .cache
                    .as_ref()
                    .unwrap()
                    .stats()
                    .hits
            };
            bucket.get("k").await.unwrap();
            let before = hits();
            bucket.get("k").await.unwrap();
            assert_eq!(hits(), before + 1, "{name}: the second read is a cache hit");
            let stale = bucket.delete_if_match("k", "\"stale\"").await.unwrap_err();
            assert!(stale.is_conflict(), "{name}: {stale}");
            bucket.delete_if_match("k", &etag).await.unwrap();
            let e = bucket.get("k").await.unwrap_err();
            assert!(
                e.is_not_found(),
                "{name}: the cache served a deleted object: {e}"
            );
        }
        // The metrics layer measured every conditional delete, failed ones as errors.
        for (stack, calls) in [("docs", 2), ("sub", 4)] {
            let m = s.layers(stack).unwrap().metrics.as_ref().unwrap().stats();
            let op = &m.ops["delete_if_match"];
            assert_eq!((op.calls, op.errors), (calls, calls / 2), "{stack}: {m:?}");
            // Keys as the bucket's layers see them: without the bucket's own prefix `p`.
            let prefixes: Vec<&str> = m.errors_by_prefix.keys().map(|(_, p)| p.as_str()).collect();
            assert!(!prefixes.contains(&"p"), "{stack}: {prefixes:?}");
        }
    }
}

#[cfg(all(test, feature = "layers"))]
mod layer_tests {
    use super::tests::on_disk;

    #[tokio::test]
    async fn config_layers_wrap_the_bucket() {
        let (_dir, s) = on_disk(
            "\n[layers.compression]\ndefault = 'gzip'\nmin_size = 10\n\n[layers.retry]\nmax_attempts = 3\n\n[buckets.logs]\nconnection = 'disk'\n\n[buckets.raw]\nconnection = 'disk'\nbucket = 'logs'\n[buckets.raw.layers]\n",
        );
        let text = "the same line again and again\n".repeat(200);
        s.bucket("logs")
            .unwrap()
            .put("app.log", text.clone())
            .await
            .unwrap();
        // Stored compressed (the raw view has an empty [layers] table: no layers).
        let stored = s.bucket("raw").unwrap().get("app.log").await.unwrap();
        assert!(
            stored.bytes.len() < text.len() / 4,
            "{} bytes stored",
            stored.bytes.len()
        );
        assert_eq!(
            stored
                .info
                .headers
                .get("content-encoding")
                .map(String::as_str),
            Some("gzip")
        );
        // Read back transparently through the layered bucket.
        assert_eq!(
            s.bucket("logs")
                .unwrap()
                .get("app.log")
                .await
                .unwrap()
                .bytes,
            text
        );
    }
}

#[cfg(all(test, feature = "router", feature = "s3"))]
mod failover_tests {
    use super::*;

    #[tokio::test]
    async fn failover_and_mirror_from_config() {
        let dir = tempfile::tempdir().unwrap();
        // Port 1 on loopback refuses connections: the primary is unavailable.
        let toml = format!(
            r#"
[connections.down]
kind = "s3"
endpoint = "http://127.0.0.1:1"
allow_http = true
access_key_id = "a"
secret_access_key = "b"
max_retries = 0

[connections.disk]
kind = "fs"
root = "{root}"

[buckets.primary]
connection = "down"
bucket = "primary-bucket"
failover = ["spare"]

[buckets.spare]
connection = "disk"

[buckets.hybrid]
connection = "disk"
mirror = ["copy"]

[buckets.copy]
connection = "disk"
"#,
            root = dir.path().display()
        );
        let s = Strata::from_toml_str(&toml, "strata.toml").unwrap();
        s.bucket("spare")
            .unwrap()
            .put("a.txt", "from spare")
            .await
            .unwrap();
        assert_eq!(
            s.bucket("primary")
                .unwrap()
                .get("a.txt")
                .await
                .unwrap()
                .bytes,
            "from spare"
        );
        s.bucket("hybrid")
            .unwrap()
            .put("m.txt", "mirrored")
            .await
            .unwrap();
        assert_eq!(
            s.bucket("copy").unwrap().get("m.txt").await.unwrap().bytes,
            "mirrored"
        );

        let bad = toml.replace("failover = [\"spare\"]", "failover = [\"nope\"]");
        let e = Strata::from_toml_str(&bad, "strata.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("buckets.primary.failover") && e.contains("`nope`"),
            "{e}"
        );
    }
}

#[cfg(all(test, feature = "router"))]
mod isolation_tests {
    use super::*;

    fn config(dir: &Path, route_prefix: &str) -> String {
        format!(
            r#"
[connections.disk]
kind = "fs"
root = "{root}"

[buckets.a]
connection = "disk"
bucket = "shared"

[buckets.b]
connection = "disk"
bucket = "shared"

[tenants.acme]
bucket = "a"
prefix = "tenants/acme"

[routes.records]
bucket = "b"
prefix = "{route_prefix}"
"#,
            root = dir.display()
        )
    }

    #[test]
    fn two_handles_on_one_folder_cannot_share_a_scope() {
        let dir = tempfile::tempdir().unwrap();
        // The route covers the whole folder, tenant acme's data included: refused, although
        // the two use different handle names.
        let e = Strata::from_toml_str(&config(dir.path(), ""), "strata.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("same storage") && e.contains("tenant `acme`"),
            "{e}"
        );
        // Disjoint folders in the same storage are fine.
        Strata::from_toml_str(&config(dir.path(), "records"), "strata.toml").unwrap();
    }
}

#[cfg(all(test, feature = "layers", feature = "s3"))]
mod retry_owner_tests {
    use super::*;

    const S3: &str = "[connections.s3]\nkind = 's3'\nendpoint = 'http://127.0.0.1:1'\nallow_http = true\naccess_key_id = 'a'\nsecret_access_key = 'b'\n";

    #[test]
    fn http_retries_and_a_retry_layer_are_not_stacked() {
        // Both retrying: refused, naming the field and the fix.
        let both =
            format!("{S3}max_retries = 2\n[buckets.bkt]\nconnection = 's3'\n[layers.retry]\n");
        let e = Strata::from_toml_str(&both, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("connections.s3.max_retries"), "{e}");
        assert!(e.contains("Remove max_retries"), "{e}");
        // The layer alone, or the HTTP retry alone (no layer), are fine.
        let layer = format!("{S3}[buckets.bkt]\nconnection = 's3'\n[layers.retry]\n");
        Strata::from_toml_str(&layer, "s.toml").unwrap();
        let http = format!("{S3}max_retries = 2\n[buckets.bkt]\nconnection = 's3'\n");
        Strata::from_toml_str(&http, "s.toml").unwrap();
        // An explicit 0 next to the layer says the same as the default.
        let zero =
            format!("{S3}max_retries = 0\n[buckets.bkt]\nconnection = 's3'\n[layers.retry]\n");
        Strata::from_toml_str(&zero, "s.toml").unwrap();
    }
}
