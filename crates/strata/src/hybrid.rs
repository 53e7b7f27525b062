//! Mirrored buckets with an outbox: seed 003's hybrid mode (`STORAGE_BACKEND=hybrid`) and
//! config buckets with `mirror = [...]`. Writes a member missed are recorded in the
//! mirror's [`Outbox`] and replayed to it (docs/operations.md, "Hybrid mode and the
//! outbox"); manifest heads are merged on replay, not overwritten.
//!
//! Where the journal lives:
//! - hybrid mode: in the local folder's own bookkeeping folder,
//!   `$STRATA_HOME/default/.strata-sys/outbox/`;
//! - a config mirror: beside the first member on a local folder
//!   (`ROOT/.strata-sys/outbox/NAME/`); with only in-memory members, in memory; with only
//!   remote members, `$STRATA_HOME/outbox/NAME/` (default `./.strata/outbox/NAME/`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use storage_core::object_store::ObjectStore;
use storage_core::{Bucket, MemoryStore, RESERVED_PREFIX, Result, StorageError, StrataStore};
use storage_router::{MirrorRequirement, MirrorStore, Outbox};

use crate::Strata;

/// Outboxes by the location of the bucket they serve: how [`Strata::outbox`] finds a
/// bucket's outbox without the bucket handle carrying it.
fn registry() -> &'static Mutex<HashMap<String, Outbox>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Outbox>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn register(location: &str, outbox: &Outbox) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(location.to_string(), outbox.clone());
}

/// A mirror over `members` (primary first) with an outbox journaled in `journal`, merging
/// manifest heads when the `manifest` feature is on.
fn mirror(
    members: Vec<(String, Arc<dyn StrataStore>)>,
    journal: Arc<dyn ObjectStore>,
) -> (MirrorStore, Outbox) {
    #[allow(unused_mut)]
    let mut outbox = Outbox::new(journal);
    #[cfg(feature = "manifest")]
    {
        outbox = outbox.with_merge(Arc::new(ManifestHeadMerge));
    }
    let store = MirrorStore::with_outbox(members, MirrorRequirement::Any, outbox.clone());
    (store, outbox)
}

/// The folder of a local-folder bucket (`file://` location).
fn local_root(bucket: &Bucket) -> Option<PathBuf> {
    url::Url::parse(bucket.location())
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
}

/// Seed 003's hybrid bucket `default`: R2 primary, mirrored to and falling back on the
/// local folder `local` (at `local_root`), with the outbox in that folder.
#[cfg(feature = "r2")]
pub(crate) fn hybrid_bucket(r2: &Bucket, local: &Bucket, local_dir: &Path) -> Result<Bucket> {
    let journal = storage_core::LocalStore::new(local_dir.join(RESERVED_PREFIX).join("outbox"))?;
    let (store, outbox) = mirror(
        vec![
            ("r2".to_string(), r2.store().clone()),
            ("local".to_string(), local.store().clone()),
        ],
        Arc::new(journal),
    );
    let location = format!("hybrid:{}+{}", r2.location(), local.location());
    register(&location, &outbox);
    Ok(Bucket::builder("default", Arc::new(store))
        .provider("hybrid")
        .location(location)
        .build())
}

/// The store of config bucket `name` mirrored to `mirrors` (see the module docs for where
/// its journal lives); registered under `primary`'s location.
pub(crate) fn mirror_store(
    name: &str,
    primary: &Bucket,
    members: Vec<(String, Arc<dyn StrataStore>)>,
    buckets: &[&Bucket],
    home: &Path,
) -> Result<Arc<dyn StrataStore>> {
    let journal: Arc<dyn ObjectStore> = match buckets.iter().find_map(|b| local_root(b)) {
        Some(root) => Arc::new(storage_core::LocalStore::new(
            root.join(RESERVED_PREFIX).join("outbox").join(name),
        )?),
        None if buckets.iter().all(|b| b.provider() == "memory") => Arc::new(MemoryStore::new()),
        None => Arc::new(storage_core::LocalStore::new(
            home.join("outbox").join(name),
        )?),
    };
    let (store, outbox) = mirror(members, journal);
    register(primary.location(), &outbox);
    Ok(Arc::new(store))
}

impl Strata {
    /// The outbox of mirrored bucket `name` (hybrid mode's `default`, or a config bucket
    /// with `mirror = [...]`): what its mirrors are owed, and their replay.
    ///
    /// ```
    /// # fn main() -> storage_core::Result<()> {
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let strata = strata::Strata::from_toml_str(
    ///     "[connections.mem]\nkind = 'memory'\n[buckets.main]\nconnection = 'mem'\nmirror = ['copy']\n[buckets.copy]\nconnection = 'mem'\n",
    ///     "inline",
    /// )?;
    /// strata.bucket("main")?.put("a.txt", "hello").await?;
    /// let outbox = strata.outbox("main")?;
    /// assert!(outbox.pending().await?.is_empty());
    /// assert!(strata.outbox("copy").is_err()); // not mirrored
    /// # Ok(()) })
    /// # }
    /// ```
    pub fn outbox(&self, name: &str) -> Result<Outbox> {
        let bucket = self.bucket(name)?;
        let found = registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(bucket.location())
            .filter(|o| !o.members().is_empty())
            .cloned();
        found.ok_or_else(|| {
            let mirrored = self.mirrored_buckets();
            StorageError::invalid_input(
                "bucket",
                format!(
                    "`{name}` is not mirrored, so it has no outbox; mirrored buckets: {} (STORAGE_BACKEND=hybrid, or `mirror = [...]` on a bucket in the config)",
                    if mirrored.is_empty() {
                        "none".to_string()
                    } else {
                        mirrored.join(", ")
                    }
                ),
            )
        })
    }

    /// Names of the buckets that have an outbox.
    pub fn mirrored_buckets(&self) -> Vec<String> {
        let reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        self.bucket_names()
            .into_iter()
            .filter(|n| self.bucket(n).is_ok_and(|b| reg.contains_key(b.location())))
            .collect()
    }
}

/// Manifest heads (`…manifests/{module}/{user}/head.json`) merged on replay: the segments
/// and parts only the surviving copy lists are added to the owed member's head, if they
/// reached that member (owed ones are delivered first, in write order); one that is not
/// there was folded by a compaction there and deleted, and is not listed again. Nothing is
/// listed twice (merged by key).
#[cfg(feature = "manifest")]
#[derive(Debug)]
pub(crate) struct ManifestHeadMerge;

#[cfg(feature = "manifest")]
impl ManifestHeadMerge {
    /// The folder the head's keys are relative to, as seen by the mirror (a prefix of the
    /// bucket handle the dataset was given, if any).
    fn base(key: &str) -> &str {
        match key.find("manifests/") {
            Some(0) | None => "",
            Some(i) if key[..i].ends_with('/') => &key[..i],
            Some(_) => "",
        }
    }

    fn parse(doc: &[u8]) -> Result<storage_manifest::ManifestHead> {
        serde_json::from_slice(doc).map_err(|e| StorageError::Corrupt {
            backend: "outbox".into(),
            key: "manifest head".into(),
            reason: format!("not a manifest head: {e}"),
        })
    }
}

#[cfg(feature = "manifest")]
impl storage_router::ReplayMerge for ManifestHeadMerge {
    fn applies(&self, key: &str) -> bool {
        key.ends_with("/head.json")
            && (key.starts_with("manifests/") || key.contains("/manifests/"))
    }

    fn missing_references(
        &self,
        key: &str,
        ours: &[u8],
        theirs: Option<&[u8]>,
    ) -> Result<Vec<String>> {
        let base = Self::base(key);
        let ours = Self::parse(ours)?;
        let theirs = theirs.map(Self::parse).transpose()?.unwrap_or_default();
        let listed: std::collections::HashSet<&str> = theirs
            .segments
            .iter()
            .map(|s| s.key.as_str())
            .chain(theirs.parts.iter().map(|p| p.key.as_str()))
            .collect();
        Ok(ours
            .segments
            .iter()
            .map(|s| s.key.clone())
            .chain(ours.parts.iter().map(|p| p.key.clone()))
            .filter(|k| !listed.contains(k.as_str()))
            .map(|k| format!("{base}{k}"))
            .collect())
    }

    fn merge(
        &self,
        key: &str,
        ours: &[u8],
        theirs: &[u8],
        present: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<u8>> {
        let base = Self::base(key);
        let present = |k: &str| present(&format!("{base}{k}"));
        let ours = Self::parse(ours)?;
        let mut merged = Self::parse(theirs)?;
        let seg: std::collections::HashSet<String> =
            merged.segments.iter().map(|s| s.key.clone()).collect();
        let parts: std::collections::HashSet<String> =
            merged.parts.iter().map(|p| p.key.clone()).collect();
        for s in ours.segments {
            if !seg.contains(&s.key) && present(&s.key) {
                merged.segments.push(s);
            }
        }
        for p in ours.parts {
            if !parts.contains(&p.key) && present(&p.key) {
                merged.parts.push(p);
            }
        }
        merged.updated = merged.updated.max(ours.updated);
        Ok(serde_json::to_vec(&merged).expect("a head serializes"))
    }
}
