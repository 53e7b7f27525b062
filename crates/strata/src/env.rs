//! Building a [`Strata`] from environment variables alone (seed 002's `STORAGE_PROVIDER`,
//! seed 003's `STORAGE_BACKEND`, `STRATA_CONFIG`, `STRATA_HOME`).

use std::collections::BTreeMap;
use std::path::Path;

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
    /// 3. Seed 003's `STORAGE_BACKEND=r2|local` (`r2` with `R2_*`/`R2_ENDPOINT`; `local` = the
    ///    embedded default) → bucket `default`.
    /// 4. Otherwise the embedded default under `$STRATA_HOME` or `./.strata`.
    pub fn from_env_vars(env: &Env) -> Result<Strata> {
        if let Some(path) = env.get(CONFIG_ENV) {
            return Self::from_config(path);
        }
        let single = |bucket: Bucket, origin: &str| Strata {
            buckets: BTreeMap::from([("default".to_string(), bucket)]),
            #[cfg(feature = "router")]
            router: None,
            #[cfg(feature = "layers")]
            stacks: BTreeMap::new(),
            on_demand_root: None,
            origin: origin.to_string(),
        };
        if let Some(p) = env.get("STORAGE_PROVIDER") {
            return match p.to_ascii_lowercase().as_str() {
                #[cfg(feature = "s3")]
                "s3" => Ok(single(
                    storage_s3::S3Config::from_env(env)?.build("default")?,
                    "environment (STORAGE_PROVIDER=s3)",
                )),
                #[cfg(feature = "r2")]
                "r2" => Ok(single(
                    storage_r2::R2Config::from_env(env)?.build("default")?,
                    "environment (STORAGE_PROVIDER=r2)",
                )),
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
                "r2" => Ok(single(
                    storage_r2::R2Config::from_env(env)?.build("default")?,
                    "environment (STORAGE_BACKEND=r2)",
                )),
                "local" | "sqlite" => Ok(single(
                    Bucket::local("default", Path::new(&home).join("default"))?,
                    "environment (STORAGE_BACKEND=local)",
                )),
                #[cfg(all(feature = "router", feature = "r2"))]
                "hybrid" => {
                    // Seed 003's hybrid mode: R2 is the primary, every write is mirrored to the
                    // local folder, and reads fall back to it.
                    // Writes R2 misses are owed in the outbox and replayed (hybrid.rs).
                    let r2 = storage_r2::R2Config::from_env(env)?.build("r2")?;
                    let dir = Path::new(&home).join("default");
                    let local = Bucket::local("local", &dir)?;
                    let bucket = crate::hybrid::hybrid_bucket(&r2, &local, &dir)?;
                    Ok(single(bucket, "environment (STORAGE_BACKEND=hybrid)"))
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
        Ok(Self::embedded_default())
    }
}
