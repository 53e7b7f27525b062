//! Building a [`Strata`] from environment variables alone (seed 002's `STORAGE_PROVIDER`,
//! seed 003's `STORAGE_BACKEND`, `STRATA_CONFIG`, `STRATA_HOME`), with per-bucket
//! compression (`STRATA_COMPRESSION*`) and server-side encryption (`STRATA_SSE*`): what
//! seed 002 passed per call (`compress: true, encryption: true`), set once for the bucket.

use std::collections::BTreeMap;
use std::path::Path;
#[cfg(feature = "layers")]
use std::sync::Arc;

use storage_core::StorageError as E;
use storage_core::config::Env;

use crate::{Bucket, CONFIG_ENV, DEFAULT_HOME, HOME_ENV, Result, Strata, enabled_providers};

impl Strata {
    /// Build from the process environment (see [`Strata::from_env_vars`]).
    pub fn from_env() -> Result<Strata> {
        Self::from_env_vars(&Env::process())
    }

    /// Build from environment variables, in this order:
    ///
    /// 1. `STRATA_CONFIG=path.toml` → [`Strata::from_config`].
    /// 2. Seed 002's `STORAGE_PROVIDER=s3|r2` with `STORAGE_*`/`AWS_*` or `R2_*` → one bucket
    ///    named `default`.
    /// 3. Seed 003's `STORAGE_BACKEND=r2|local|hybrid` (`r2` with `R2_*`/`R2_ENDPOINT`;
    ///    `local` = a folder `default` under `$STRATA_HOME`; `hybrid` = R2 mirrored to that
    ///    folder) → bucket `default`.
    /// 4. Otherwise the embedded default under `$STRATA_HOME` or `./.strata`.
    ///
    /// With 2 and 3, the `default` bucket can also compress and encrypt:
    ///
    /// | variable | values | effect |
    /// |---|---|---|
    /// | `STRATA_COMPRESSION` | `gzip`, `zstd`, `none` | compress every put of at least `STRATA_COMPRESSION_MIN_SIZE` bytes (the compression layer; `zstd` needs the `layers-full` feature) |
    /// | `STRATA_COMPRESSION_LEVEL` | gzip 0-9, zstd 1-22 | codec level (default: the codec's) |
    /// | `STRATA_COMPRESSION_MIN_SIZE` | bytes | smaller puts are stored as is (default 1024) |
    /// | `STRATA_SSE` | `AES256` (SSE-S3), `aws:kms` (SSE-KMS), `sse-c`, `none` | S3 server-side encryption of every put (S3 only) |
    /// | `STRATA_SSE_KMS_KEY_ID` | KMS key id or ARN | the key for `aws:kms` (alone, it implies `aws:kms`) |
    /// | `STRATA_SSE_CUSTOMER_KEY` | base64 of 32 bytes | the key for `sse-c` |
    ///
    /// A bad value is an [`InvalidConfig`](crate::StorageError::InvalidConfig) naming the variable.
    /// These variables are refused where they would be ignored: beside `STRATA_CONFIG`
    /// (write `[layers.compression]` or the connection's `encryption` in the file instead)
    /// and in the embedded default (whose buckets are created on demand).
    ///
    /// ```
    /// # #[cfg(feature = "layers")] {
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let home = tempfile::tempdir().unwrap();
    /// use strata::core::config::Env;
    /// let env = Env::from_pairs([
    ///     ("STORAGE_BACKEND", "local"),
    ///     ("STRATA_HOME", home.path().to_str().unwrap()),
    ///     ("STRATA_COMPRESSION", "gzip"),
    /// ]);
    /// let strata = strata::Strata::from_env_vars(&env).unwrap();
    /// let logs = strata.bucket("default").unwrap();
    /// logs.put("app.log", "line\n".repeat(1000)).await.unwrap();
    /// assert_eq!(logs.get("app.log").await.unwrap().bytes.len(), 5000);
    /// // On disk it is gzip: far smaller than the 5000 bytes written.
    /// let on_disk = std::fs::metadata(home.path().join("default/app.log")).unwrap().len();
    /// assert!(on_disk < 200, "{on_disk}");
    /// # });
    /// # }
    /// ```
    pub fn from_env_vars(env: &Env) -> Result<Strata> {
        let extras = EnvExtras::read(env)?;
        if let Some(path) = env.get(CONFIG_ENV) {
            if let Some(var) = extras.first_set() {
                return Err(E::invalid_config(
                    var,
                    format!(
                        "applies to env-only setups (STORAGE_PROVIDER / STORAGE_BACKEND), but {CONFIG_ENV}={path} is set: configure it in that file instead ([layers.compression], or the connection's `encryption` table) and unset {var}"
                    ),
                ));
            }
            return Self::from_config(path);
        }
        let single = |bucket: Bucket, origin: &str| -> Result<Strata> {
            #[cfg(feature = "layers")]
            let (bucket, stacks) = extras.wrap(bucket)?;
            Ok(Strata {
                buckets: BTreeMap::from([("default".to_string(), bucket)]),
                #[cfg(feature = "router")]
                router: None,
                #[cfg(feature = "layers")]
                stacks,
                on_demand_root: None,
                origin: origin.to_string(),
            })
        };
        // `STORAGE_PROVIDER=r2` and `STORAGE_BACKEND=r2` are the same setup.
        #[cfg(feature = "r2")]
        let r2 = |var: &str| -> Result<Strata> {
            extras.no_sse(&format!("{var}=r2"))?;
            single(
                storage_r2::R2Config::from_env(env)?.build("default")?,
                &format!("environment ({var}=r2)"),
            )
        };
        if let Some(p) = env.get("STORAGE_PROVIDER") {
            return match p.to_ascii_lowercase().as_str() {
                #[cfg(feature = "s3")]
                "s3" => {
                    let mut s3 = storage_s3::S3Config::from_env(env)?;
                    s3.encryption = extras.sse.clone();
                    s3.validate("")?;
                    single(s3.build("default")?, "environment (STORAGE_PROVIDER=s3)")
                }
                #[cfg(feature = "r2")]
                "r2" => r2("STORAGE_PROVIDER"),
                other => Err(E::invalid_config(
                    "STORAGE_PROVIDER",
                    format!(
                        "`{other}` is not supported by this build; allowed: {}",
                        enabled_providers().join(", ")
                    ),
                )),
            };
        }
        if let Some(b) = env.get("STORAGE_BACKEND") {
            let home = env.get(HOME_ENV).unwrap_or_else(|| DEFAULT_HOME.into());
            return match b.to_ascii_lowercase().as_str() {
                #[cfg(feature = "r2")]
                "r2" => r2("STORAGE_BACKEND"),
                "local" | "sqlite" => {
                    extras.no_sse("STORAGE_BACKEND=local")?;
                    single(
                        Bucket::local("default", Path::new(&home).join("default"))?,
                        "environment (STORAGE_BACKEND=local)",
                    )
                }
                #[cfg(all(feature = "router", feature = "r2"))]
                "hybrid" => {
                    extras.no_sse("STORAGE_BACKEND=hybrid")?;
                    // Seed 003's hybrid mode: R2 is the primary, every write is mirrored to the
                    // local folder, and reads fall back to it.
                    // Writes R2 misses are owed in the outbox and replayed (hybrid.rs).
                    let r2 = storage_r2::R2Config::from_env(env)?.build("r2")?;
                    let dir = Path::new(&home).join("default");
                    let local = Bucket::local("local", &dir)?;
                    let bucket = crate::hybrid::hybrid_bucket(&r2, &local, &dir)?;
                    single(bucket, "environment (STORAGE_BACKEND=hybrid)")
                }
                #[cfg(not(all(feature = "router", feature = "r2")))]
                "hybrid" => Err(E::invalid_config(
                    "STORAGE_BACKEND",
                    "`hybrid` (R2 mirrored to a local folder) needs the `router` and `r2` features of the strata crate",
                )),
                other => Err(E::invalid_config(
                    "STORAGE_BACKEND",
                    format!("`{other}` is not one of r2, local, hybrid"),
                )),
            };
        }
        if let Some(var) = extras.first_set() {
            return Err(E::invalid_config(
                var,
                "applies to the `default` bucket of an env-only setup, and none is chosen: set STORAGE_PROVIDER=s3|r2 or STORAGE_BACKEND=r2|local|hybrid (the embedded default creates buckets on demand and takes no per-bucket settings; use a config file with [layers.compression] for it)",
            ));
        }
        Ok(Self::embedded_default())
    }
}

/// Compression: `STRATA_COMPRESSION`.
pub const COMPRESSION_ENV: &str = "STRATA_COMPRESSION";
/// Compression level: `STRATA_COMPRESSION_LEVEL`.
pub const COMPRESSION_LEVEL_ENV: &str = "STRATA_COMPRESSION_LEVEL";
/// Smallest payload that is compressed: `STRATA_COMPRESSION_MIN_SIZE`.
pub const COMPRESSION_MIN_SIZE_ENV: &str = "STRATA_COMPRESSION_MIN_SIZE";
/// Server-side encryption: `STRATA_SSE`.
pub const SSE_ENV: &str = "STRATA_SSE";
/// KMS key for SSE-KMS: `STRATA_SSE_KMS_KEY_ID`.
pub const SSE_KMS_KEY_ID_ENV: &str = "STRATA_SSE_KMS_KEY_ID";
/// Customer key for SSE-C: `STRATA_SSE_CUSTOMER_KEY`.
pub const SSE_CUSTOMER_KEY_ENV: &str = "STRATA_SSE_CUSTOMER_KEY";

const ALL: [&str; 6] = [
    COMPRESSION_ENV,
    COMPRESSION_LEVEL_ENV,
    COMPRESSION_MIN_SIZE_ENV,
    SSE_ENV,
    SSE_KMS_KEY_ID_ENV,
    SSE_CUSTOMER_KEY_ENV,
];

/// The per-bucket settings of an env-only setup, checked before anything is built.
struct EnvExtras {
    /// The first of the variables that is set (for "this is ignored here" errors).
    set: Option<&'static str>,
    /// Codec name (`gzip`, `zstd`; `none` and unset are `None`), level and threshold.
    #[cfg_attr(not(feature = "layers"), allow(dead_code))]
    compression: Option<(&'static str, Option<i32>, Option<usize>)>,
    #[cfg(feature = "s3")]
    sse: Option<storage_s3::ServerSideEncryption>,
    #[cfg(not(feature = "s3"))]
    sse: Option<()>,
}

impl EnvExtras {
    fn read(env: &Env) -> Result<EnvExtras> {
        let set = ALL.into_iter().find(|v| env.get(v).is_some());
        let codec = match env.get(COMPRESSION_ENV) {
            None => None,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "gzip" => Some("gzip"),
                "zstd" => Some("zstd"),
                "none" | "off" => None,
                _ => {
                    return Err(E::invalid_config(
                        COMPRESSION_ENV,
                        format!("`{v}` is not a codec; use gzip, zstd or none"),
                    ));
                }
            },
        };
        let level: Option<i32> = env.parse(COMPRESSION_LEVEL_ENV)?;
        let min_size: Option<usize> = env.parse(COMPRESSION_MIN_SIZE_ENV)?;
        let compression = match (codec, level, min_size) {
            (Some(c), _, _) => {
                let range = if c == "gzip" { 0..=9 } else { 1..=22 };
                if let Some(l) = level.filter(|l| !range.contains(l)) {
                    return Err(E::invalid_config(
                        COMPRESSION_LEVEL_ENV,
                        format!(
                            "{l} is not a {c} level; {c} takes {}-{} (unset it for {c}'s default)",
                            range.start(),
                            range.end()
                        ),
                    ));
                }
                Some((c, level, min_size))
            }
            (None, Some(_), _) => {
                return Err(E::invalid_config(
                    COMPRESSION_LEVEL_ENV,
                    format!(
                        "is set, but {COMPRESSION_ENV} is not: set {COMPRESSION_ENV}=gzip or zstd"
                    ),
                ));
            }
            (None, None, Some(_)) => {
                return Err(E::invalid_config(
                    COMPRESSION_MIN_SIZE_ENV,
                    format!(
                        "is set, but {COMPRESSION_ENV} is not: set {COMPRESSION_ENV}=gzip or zstd"
                    ),
                ));
            }
            (None, None, None) => None,
        };
        Ok(EnvExtras {
            set,
            compression,
            sse: read_sse(env)?,
        })
    }

    fn first_set(&self) -> Option<&'static str> {
        self.set
    }

    /// Server-side encryption was asked for where the backend has none to offer.
    fn no_sse(&self, setup: &str) -> Result<()> {
        if self.sse.is_none() {
            return Ok(());
        }
        let why = if setup.contains("r2") || setup.contains("hybrid") {
            "R2 encrypts every object at rest (AES-256) on its own and takes no SSE header from Strata"
        } else {
            "a local folder has no server-side encryption"
        };
        Err(E::invalid_config(
            SSE_ENV,
            format!(
                "server-side encryption needs STORAGE_PROVIDER=s3, but {setup} is set: {why}. Unset {SSE_ENV} (and {SSE_KMS_KEY_ID_ENV} / {SSE_CUSTOMER_KEY_ENV}), or use client-side encryption ([layers.encryption] in a config file)"
            ),
        ))
    }

    /// Put the compression layer around `bucket`, as `[buckets.default.layers.compression]`
    /// would.
    #[cfg(feature = "layers")]
    fn wrap(
        &self,
        bucket: Bucket,
    ) -> Result<(Bucket, BTreeMap<String, Arc<storage_layers::config::Stack>>)> {
        use storage_layers::config::{CodecName, CompressionConfig, LayersConfig};
        let Some((codec, level, min_size)) = self.compression else {
            return Ok((bucket, BTreeMap::new()));
        };
        let mut compression = CompressionConfig {
            default: if codec == "gzip" {
                CodecName::Gzip
            } else {
                CodecName::Zstd
            },
            level,
            ..CompressionConfig::default()
        };
        if let Some(n) = min_size {
            compression.min_size = n;
        }
        let layers = LayersConfig {
            compression: Some(compression),
            ..LayersConfig::default()
        };
        let mut stack = layers
            .build(bucket.store().clone(), "default", &Env::process())
            .map_err(|e| match e {
                // The layer names its `layers.compression.*` field; here it came from a variable.
                E::InvalidConfig { reason, .. } => E::invalid_config(COMPRESSION_ENV, reason),
                other => other,
            })?;
        let builder = match stack.store.take() {
            Some(layered) => bucket.to_builder().store(layered),
            None => bucket.to_builder(),
        };
        Ok((
            builder.build(),
            BTreeMap::from([("default".to_string(), Arc::new(stack))]),
        ))
    }
}

#[cfg(feature = "s3")]
fn read_sse(env: &Env) -> Result<Option<storage_s3::ServerSideEncryption>> {
    use storage_s3::ServerSideEncryption as Sse;
    #[derive(PartialEq)]
    enum Kind {
        Off,
        S3,
        Kms,
        C,
    }
    let kms = env.get(SSE_KMS_KEY_ID_ENV);
    let customer = env.get(SSE_CUSTOMER_KEY_ENV);
    let kind = match env.get(SSE_ENV) {
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "aes256" | "sse-s3" => Kind::S3,
            "aws:kms" | "sse-kms" | "kms" => Kind::Kms,
            "sse-c" => Kind::C,
            "none" | "off" => Kind::Off,
            _ => {
                let hint = if crate::core::config::parse_bool(&v).is_some() {
                    " (seed 002's `encryption: true` is AES256)"
                } else {
                    ""
                };
                return Err(E::invalid_config(
                    SSE_ENV,
                    format!(
                        "`{v}` is not a server-side encryption; use AES256, aws:kms, sse-c or none{hint}"
                    ),
                ));
            }
        },
        None if kms.is_some() && customer.is_some() => {
            return Err(E::invalid_config(
                SSE_ENV,
                format!(
                    "{SSE_KMS_KEY_ID_ENV} and {SSE_CUSTOMER_KEY_ENV} are both set: pick one (SSE-KMS or SSE-C) and unset the other"
                ),
            ));
        }
        None if kms.is_some() => Kind::Kms,
        None if customer.is_some() => Kind::C,
        None => Kind::Off,
    };
    // A key that the chosen kind does not use would be silently ignored: refuse it.
    for (var, value, used_by) in [
        (SSE_KMS_KEY_ID_ENV, &kms, Kind::Kms),
        (SSE_CUSTOMER_KEY_ENV, &customer, Kind::C),
    ] {
        if value.is_some() && kind != used_by {
            return Err(E::invalid_config(
                var,
                format!(
                    "is set, but {SSE_ENV}={} does not use it: unset it, or set {SSE_ENV}={}",
                    env.get(SSE_ENV).unwrap_or_default(),
                    if used_by == Kind::Kms {
                        "aws:kms"
                    } else {
                        "sse-c"
                    }
                ),
            ));
        }
    }
    let missing = |var: &str, what: &str| {
        E::invalid_config(
            var,
            format!(
                "is not set, and {SSE_ENV}={} needs it: {what}",
                env.get(SSE_ENV).unwrap_or_default()
            ),
        )
    };
    Ok(match kind {
        Kind::Off => None,
        Kind::S3 => Some(Sse::SseS3),
        Kind::Kms => Some(Sse::SseKms {
            key_id: kms.ok_or_else(|| missing(SSE_KMS_KEY_ID_ENV, "the KMS key id or ARN"))?,
        }),
        Kind::C => {
            let key = customer
                .ok_or_else(|| missing(SSE_CUSTOMER_KEY_ENV, "a 32-byte key, base64-encoded"))?;
            let sse = Sse::SseC {
                key: crate::Secret::new(key),
            };
            // Checked here so the error names the variable, not `encryption.key`.
            let mut probe = storage_s3::S3Config::new("probe");
            probe.encryption = Some(sse.clone());
            probe.validate("").map_err(|e| match e {
                E::InvalidConfig { reason, .. } => E::invalid_config(SSE_CUSTOMER_KEY_ENV, reason),
                other => other,
            })?;
            Some(sse)
        }
    })
}

#[cfg(not(feature = "s3"))]
fn read_sse(env: &Env) -> Result<Option<()>> {
    match [SSE_ENV, SSE_KMS_KEY_ID_ENV, SSE_CUSTOMER_KEY_ENV]
        .into_iter()
        .find(|v| env.get(v).is_some())
    {
        Some(var) => Err(E::invalid_config(
            var,
            "server-side encryption needs S3, and this build of strata has no `s3` feature",
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(pairs: &[(&str, &str)]) -> String {
        match Strata::from_env_vars(&Env::from_pairs(pairs.iter().copied())) {
            Ok(s) => panic!("accepted {pairs:?}: {}", s.origin()),
            Err(e) => e.to_string(),
        }
    }

    #[cfg(feature = "layers")]
    fn local(home: &Path, extra: &[(&'static str, &'static str)]) -> Vec<(String, String)> {
        let mut v = vec![
            ("STORAGE_BACKEND".to_string(), "local".to_string()),
            (HOME_ENV.to_string(), home.to_str().unwrap().to_string()),
        ];
        v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        v
    }

    /// Variables, and what the error refusing them must say.
    type Refusal<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

    /// Each case's variables, after `base`, are refused with an error saying every part.
    fn refused_saying(base: &[(&str, &str)], cases: &[Refusal<'_>]) {
        for (vars, says) in cases {
            let pairs: Vec<(&str, &str)> = base.iter().chain(vars.iter()).copied().collect();
            let e = error(&pairs);
            for s in *says {
                assert!(e.contains(s), "{vars:?} does not say {s:?}: {e}");
            }
        }
    }

    #[test]
    fn bad_compression_values_name_the_variable_and_the_fix() {
        refused_saying(
            &[("STORAGE_BACKEND", "local"), (HOME_ENV, "/nonexistent")],
            &[
                (
                    &[(COMPRESSION_ENV, "brotli")],
                    &[
                        "STRATA_COMPRESSION",
                        "`brotli` is not a codec; use gzip, zstd or none",
                    ],
                ),
                (
                    &[(COMPRESSION_ENV, "gzip"), (COMPRESSION_LEVEL_ENV, "12")],
                    &[
                        "STRATA_COMPRESSION_LEVEL",
                        "12 is not a gzip level; gzip takes 0-9",
                    ],
                ),
                (
                    &[(COMPRESSION_ENV, "zstd"), (COMPRESSION_LEVEL_ENV, "0")],
                    &["0 is not a zstd level; zstd takes 1-22"],
                ),
                (
                    &[(COMPRESSION_ENV, "zstd"), (COMPRESSION_LEVEL_ENV, "high")],
                    &["STRATA_COMPRESSION_LEVEL", "`high`"],
                ),
                (
                    &[(COMPRESSION_LEVEL_ENV, "3")],
                    &[
                        "STRATA_COMPRESSION_LEVEL",
                        "set STRATA_COMPRESSION=gzip or zstd",
                    ],
                ),
                (
                    &[(COMPRESSION_MIN_SIZE_ENV, "10")],
                    &["STRATA_COMPRESSION_MIN_SIZE"],
                ),
            ],
        );
    }

    #[test]
    fn settings_that_would_be_ignored_are_refused() {
        // Beside a config file: the file's [layers] own compression.
        let e = error(&[(CONFIG_ENV, "strata.toml"), (COMPRESSION_ENV, "gzip")]);
        assert!(
            e.contains("STRATA_COMPRESSION") && e.contains("STRATA_CONFIG=strata.toml is set"),
            "{e}"
        );
        // The embedded default has no `default` bucket to put them on.
        let e = error(&[(SSE_ENV, "AES256")]);
        assert!(
            e.contains("STRATA_SSE") && e.contains("set STORAGE_PROVIDER=s3|r2 or STORAGE_BACKEND"),
            "{e}"
        );
        // A local folder has no server-side encryption.
        let e = error(&[("STORAGE_BACKEND", "local"), (SSE_ENV, "AES256")]);
        assert!(
            e.contains("STRATA_SSE") && e.contains("a local folder has no server-side encryption"),
            "{e}"
        );
    }

    #[cfg(feature = "s3")]
    #[test]
    fn bad_sse_values_name_the_variable_and_the_fix() {
        let s3 = [("STORAGE_PROVIDER", "s3"), ("STORAGE_BUCKET", "proofs")];
        refused_saying(
            &s3,
            &[
                (
                    &[(SSE_ENV, "true")],
                    &[
                        "STRATA_SSE",
                        "`true` is not a server-side encryption; use AES256, aws:kms, sse-c or none",
                        "seed 002's `encryption: true` is AES256",
                    ],
                ),
                (
                    &[(SSE_ENV, "aws:kms")],
                    &[
                        "STRATA_SSE_KMS_KEY_ID",
                        "is not set, and STRATA_SSE=aws:kms needs it",
                    ],
                ),
                (
                    &[(SSE_ENV, "AES256"), (SSE_KMS_KEY_ID_ENV, "k")],
                    &["STRATA_SSE_KMS_KEY_ID", "STRATA_SSE=AES256 does not use it"],
                ),
                (
                    &[(SSE_KMS_KEY_ID_ENV, "k"), (SSE_CUSTOMER_KEY_ENV, "c")],
                    &["are both set: pick one"],
                ),
            ],
        );
        let e = error(&[
            s3[0],
            s3[1],
            (SSE_ENV, "sse-c"),
            (SSE_CUSTOMER_KEY_ENV, "c2hvcnQ="),
        ]);
        assert!(
            e.contains("STRATA_SSE_CUSTOMER_KEY")
                && e.contains("32 bytes")
                && !e.contains("c2hvcnQ"),
            "{e}"
        );
        #[cfg(feature = "r2")]
        {
            let e = error(&[
                ("STORAGE_PROVIDER", "r2"),
                ("R2_ACCOUNT_ID", "0123456789abcdef0123456789abcdef"),
                ("R2_ACCESS_KEY_ID", "k"),
                ("R2_SECRET_ACCESS_KEY", "s"),
                ("R2_BUCKET", "b-1"),
                (SSE_ENV, "AES256"),
            ]);
            assert!(
                e.contains("STRATA_SSE") && e.contains("R2 encrypts every object at rest"),
                "{e}"
            );
        }
        // Good values build (the S3 client is lazy: no request is made).
        for pairs in [
            vec![(SSE_ENV, "AES256")],
            vec![(SSE_ENV, "aws:kms"), (SSE_KMS_KEY_ID_ENV, "arn:aws:kms:k")],
            vec![(SSE_KMS_KEY_ID_ENV, "arn:aws:kms:k")],
            vec![(
                SSE_CUSTOMER_KEY_ENV,
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            )],
            vec![(SSE_ENV, "none")],
        ] {
            let mut all = s3.to_vec();
            all.extend(pairs.iter().copied());
            Strata::from_env_vars(&Env::from_pairs(all.iter().copied()))
                .unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
        }
    }

    #[cfg(all(feature = "layers", feature = "layers-full"))]
    #[tokio::test]
    async fn zstd_from_the_environment_is_stored_compressed_and_read_back() {
        let home = tempfile::tempdir().unwrap();
        let env = Env::from_pairs(local(
            home.path(),
            &[(COMPRESSION_ENV, "zstd"), (COMPRESSION_LEVEL_ENV, "19")],
        ));
        let strata = Strata::from_env_vars(&env).unwrap();
        assert!(strata.layers("default").is_some());
        let b = strata.bucket("default").unwrap();
        let text = "{\"event\":\"upload\",\"ok\":true}\n".repeat(200);
        b.put("events.jsonl", text.clone()).await.unwrap();
        assert_eq!(b.get("events.jsonl").await.unwrap().bytes, text.as_bytes());
        let raw = std::fs::read(home.path().join("default/events.jsonl")).unwrap();
        assert_eq!(&raw[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
        assert!(
            raw.len() < text.len() / 10,
            "{} of {}",
            raw.len(),
            text.len()
        );
        // Below the threshold, stored as is.
        b.put("small.txt", "tiny").await.unwrap();
        assert_eq!(
            std::fs::read(home.path().join("default/small.txt")).unwrap(),
            b"tiny"
        );
    }

    #[cfg(feature = "layers")]
    #[tokio::test]
    async fn compression_none_adds_no_layer() {
        let home = tempfile::tempdir().unwrap();
        let env = Env::from_pairs(local(home.path(), &[(COMPRESSION_ENV, "none")]));
        let strata = Strata::from_env_vars(&env).unwrap();
        assert!(strata.layers("default").is_none());
        let env = Env::from_pairs(local(
            home.path(),
            &[(COMPRESSION_ENV, "gzip"), (COMPRESSION_MIN_SIZE_ENV, "0")],
        ));
        let b = Strata::from_env_vars(&env)
            .unwrap()
            .bucket("default")
            .unwrap();
        b.put("a.txt", "aaaa").await.unwrap();
        let raw = std::fs::read(home.path().join("default/a.txt")).unwrap();
        assert_eq!(
            &raw[..2],
            &[0x1f, 0x8b],
            "gzip magic: min size 0 compresses 4 bytes"
        );
    }
}
