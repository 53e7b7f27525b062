//! Offload (seed 004 `s3Offload`): move a route's old objects to a cheaper bucket or storage
//! class. Reads through the route still find them (its handle reads through an
//! [`OffloadStore`](crate::OffloadStore)).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use storage_core::{Bucket, ObjectInfo, Result, StorageError, etag_eq};

use crate::copy::{copy_object, put_opts_from};
use crate::failure::BucketFailure;
use crate::route::Route;
use crate::router::Router;

/// How to run an offload.
#[derive(Debug, Clone)]
pub struct OffloadOptions {
    /// Objects last modified before `now - older_than` move. Default: the route's
    /// `after_days`.
    pub older_than: Option<Duration>,
    /// The current time (a parameter so runs are reproducible and testable).
    pub now: DateTime<Utc>,
    /// Report what would move without moving anything.
    pub dry_run: bool,
}

impl Default for OffloadOptions {
    fn default() -> Self {
        OffloadOptions {
            older_than: None,
            now: Utc::now(),
            dry_run: false,
        }
    }
}

/// What an offload did.
#[derive(Debug, Default, Serialize)]
pub struct OffloadReport {
    /// Route name.
    pub route: String,
    /// Objects looked at.
    pub scanned: u64,
    /// Keys (relative to the route) moved, or that would move in a dry run.
    pub moved: Vec<String>,
    /// Bytes moved.
    pub bytes: u64,
    /// Old objects left alone (already in the target storage class, or changed meanwhile).
    pub skipped: Vec<String>,
    /// Objects that could not be moved; each is still readable where it was.
    pub failed: Vec<BucketFailure>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl Router {
    /// Offload route `route` (see [`offload`]).
    pub async fn offload(&self, route: &str, opts: &OffloadOptions) -> Result<OffloadReport> {
        offload(self.route_info(route)?, opts).await
    }
}

/// Move the route's objects older than the cut-off to its offload target: copy, verify the
/// size, then delete the original only if it is unchanged (delete-if-match where the
/// backend has it). A failure leaves the object where it was, and readable.
pub async fn offload(route: &Route, opts: &OffloadOptions) -> Result<OffloadReport> {
    let target = route.offload().ok_or_else(|| {
        StorageError::invalid_input(
            "route",
            format!(
                "route `{}` has no offload target; add [routes.{}.offload] with after_days and a bucket or storage_class",
                route.name(),
                route.name()
            ),
        )
    })?;
    let older_than = opts
        .older_than
        .unwrap_or(Duration::from_secs(u64::from(target.after_days) * 86_400));
    let cutoff = opts.now
        - chrono::Duration::from_std(older_than).map_err(|_| {
            StorageError::invalid_input(
                "older_than",
                "the age is too large to compute a cut-off date",
            )
        })?;
    let here = route.here();
    let mut objects: Vec<ObjectInfo> = here.list("").try_collect().await?;
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    let mut report = OffloadReport {
        route: route.name().to_string(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let in_place = target.is_in_place(route);
    for info in objects {
        report.scanned += 1;
        if info.last_modified >= cutoff {
            continue;
        }
        let rel = info.key.clone();
        if in_place {
            // Same key, new storage class: skip objects already there.
            let head = here.head(&rel).await;
            let wanted = target.storage_class.as_deref();
            match head {
                Ok(h) if h.headers.get("storage-class").map(String::as_str) == wanted => {
                    report.skipped.push(rel);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    report.failed.push(BucketFailure {
                        bucket: route.bucket().name().to_string(),
                        error,
                    });
                    continue;
                }
            }
        }
        if opts.dry_run {
            report.bytes += info.size;
            report.moved.push(rel);
            continue;
        }
        match move_one(
            route,
            &rel,
            &info,
            in_place,
            target.storage_class.as_deref(),
        )
        .await
        {
            Ok(true) => {
                report.bytes += info.size;
                report.moved.push(rel);
            }
            Ok(false) => report.skipped.push(rel),
            Err((bucket, error)) => {
                tracing::warn!(route = route.name(), key = %rel, error = %error, "offload failed; the object stays where it was");
                report.failed.push(BucketFailure { bucket, error });
            }
        }
    }
    Ok(report)
}

/// Move one object. `Ok(false)`: it changed meanwhile and was left alone.
async fn move_one(
    route: &Route,
    rel: &str,
    listed: &ObjectInfo,
    in_place: bool,
    storage_class: Option<&str>,
) -> std::result::Result<bool, (String, StorageError)> {
    let src = route.here();
    let src_key = &src
        .check_key(rel)
        .map_err(|e| (src.name().to_string(), e))?;
    if in_place {
        // Rewrite with the new storage class, only if nobody changed it meanwhile.
        let obj = src
            .get(&src_key)
            .await
            .map_err(|e| (src.name().to_string(), e))?;
        let mut opts = put_opts_from(&obj.info, storage_class);
        if let Some(etag) = &obj.info.etag
            && src.capabilities().put_if_match
        {
            opts.condition = storage_core::WriteCondition::IfMatch {
                etag: etag.clone(),
                version: None,
            };
        }
        return match src.put_with(&src_key, obj.bytes, opts).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err((src.name().to_string(), e)),
        };
    }
    let dst: &Bucket = route
        .offloaded()
        .expect("not in place, so there is a separate offload target");
    let dst_key = src_key;
    let copied = copy_object(src, src_key, dst, dst_key, storage_class)
        .await
        .map_err(|e| (dst.name().to_string(), e))?;
    let written = dst
        .head(&dst_key)
        .await
        .map_err(|e| (dst.name().to_string(), e))?;
    if written.size != copied.source.size {
        return Err((
            dst.name().to_string(),
            StorageError::Corrupt {
                backend: dst.name().to_string(),
                key: dst_key.to_string(),
                reason: format!(
                    "offloaded copy has {} bytes, the original {}; the original was kept",
                    written.size, copied.source.size
                ),
            },
        ));
    }
    // Delete the original only if it is still the version we copied.
    let etag = copied.source.etag.clone().or_else(|| listed.etag.clone());
    let deleted = match etag {
        Some(etag) if src.capabilities().delete_if_match => {
            src.delete_if_match(&src_key, &etag).await
        }
        // No atomic delete-if-match (R2, S3-compatible servers without conditional deletes):
        // re-check the ETag right before deleting, so
        // only a write landing in the instant between the check and the delete could be
        // lost, instead of any write made while the copy ran.
        Some(etag) => match src.head(&src_key).await {
            Ok(now) if now.etag.as_deref().is_some_and(|e| etag_eq(e, &etag)) => {
                src.delete(&src_key).await
            }
            Ok(now) => Err(StorageError::Precondition {
                backend: src.name().to_string(),
                key: src_key.to_string(),
                detail: format!(
                    "rewritten during the offload (ETag {:?}, copied {etag})",
                    now.etag
                ),
            }),
            Err(e) => Err(e),
        },
        None => src.delete(&src_key).await,
    };
    match deleted {
        Ok(()) => Ok(true),
        Err(e) if e.is_conflict() => {
            // Rewritten while we copied: the live object wins; drop the stale copy.
            let _ = dst.delete(&dst_key).await;
            Ok(false)
        }
        Err(e) => Err((src.name().to_string(), e)),
    }
}
