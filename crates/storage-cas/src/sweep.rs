//! Deleting expired documents.

use futures::stream::{self, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use storage_core::{Result, StorageError};

use crate::collection::{Collection, SweepReport};
use crate::ttl;
use crate::write;

/// How [`Collection::sweep_with`] works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepOptions {
    /// Documents examined (and deleted) per batch; memory stays bounded by it.
    pub batch_size: usize,
    /// HEAD / delete requests in flight at once.
    pub concurrency: usize,
    /// Also delete the attachments of each deleted document.
    pub delete_attachments: bool,
    /// Refuse to run ([`StorageError::NotSupported`]) on a backend without atomic
    /// delete-if-match instead of deleting with unconditional batch deletes.
    pub require_conditional_delete: bool,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            batch_size: 1000,
            concurrency: 16,
            delete_attachments: true,
            require_conditional_delete: false,
        }
    }
}

impl<T> Collection<T>
where
    T: Serialize + DeserializeOwned + Send,
{
    /// Delete every expired document (and its attachments) with [`SweepOptions::default`].
    pub async fn sweep(&self) -> Result<SweepReport> {
        self.sweep_with(SweepOptions::default()).await
    }

    /// Delete every expired document, in batches of `opts.batch_size`, and report counts.
    ///
    /// Expiry is read from each document's metadata (one HEAD per document, as listings
    /// carry no metadata) against the collection's clock. Where the backend has atomic
    /// delete-if-match (memory, local folder, S3 with conditional deletes) each expired
    /// document is deleted only if it is still the object that was found expired: one
    /// rewritten in the meantime is kept and counted in `skipped_changed`. Elsewhere (R2,
    /// S3-compatible servers without conditional deletes) expired documents are removed with
    /// batch deletes, so a document rewritten in the instant between the check and the
    /// delete would be lost too; set `require_conditional_delete` to refuse instead.
    pub async fn sweep_with(&self, opts: SweepOptions) -> Result<SweepReport> {
        let conditional = self.bucket.capabilities().delete_if_match;
        if !conditional && opts.require_conditional_delete {
            return Err(StorageError::not_supported(
                self.bucket.name(),
                "sweeping with conditional deletes (delete-if-match); unset require_conditional_delete to use batch deletes",
            ));
        }
        let batch_size = opts.batch_size.max(1);
        let concurrency = opts.concurrency.max(1);
        let mut report = SweepReport::default();
        let mut ids = self.list().chunks(batch_size);
        while let Some(batch) = ids.next().await {
            let batch: Vec<String> = batch.into_iter().collect::<Result<_>>()?;
            report.scanned += batch.len() as u64;
            let now = self.clock.now();
            // (id, key, etag) of the expired documents of this batch.
            let heads: Vec<Result<Option<(String, String, String)>>> = stream::iter(batch)
                .map(|id| async move {
                    let key = self.key_for(&id)?;
                    let info = self.bucket.head_if_exists(key.as_str()).await?;
                    Ok(info.and_then(|info| {
                        let etag = info.etag.clone()?;
                        ttl::is_expired(&info.metadata, now).then(|| (id, key.to_string(), etag))
                    }))
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            let mut expired = Vec::new();
            for h in heads {
                if let Some(e) = h? {
                    expired.push(e);
                }
            }
            report.expired += expired.len() as u64;
            let mut deleted_ids = Vec::new();
            if conditional {
                let results: Vec<(String, String, Result<()>)> = stream::iter(expired)
                    .map(|(id, key, etag)| async move {
                        let r = match self.key_for(&id) {
                            Ok(k) => write::delete_if_match(&self.bucket, &k, &etag).await,
                            Err(e) => Err(e),
                        };
                        (id, key, r)
                    })
                    .buffer_unordered(concurrency)
                    .collect()
                    .await;
                for (id, key, r) in results {
                    match r {
                        Ok(()) => {
                            report.deleted += 1;
                            deleted_ids.push(id);
                        }
                        Err(e) if e.is_conflict() || e.is_not_found() => {
                            report.skipped_changed += 1
                        }
                        Err(e) => report.failed.push((key, e)),
                    }
                }
            } else {
                let by_key: std::collections::HashMap<String, String> =
                    expired.into_iter().map(|(id, key, _)| (key, id)).collect();
                let r = self.bucket.delete_many(by_key.keys()).await;
                report.deleted += r.deleted.len() as u64;
                deleted_ids.extend(r.deleted.iter().filter_map(|k| by_key.get(k).cloned()));
                report.failed.extend(r.failed);
            }
            if opts.delete_attachments {
                for id in deleted_ids {
                    match self.delete_attachments(&id).await {
                        Ok(n) => report.attachments_deleted += n,
                        Err(e) => report.failed.push((id, e)),
                    }
                }
            }
        }
        Ok(report)
    }
}
