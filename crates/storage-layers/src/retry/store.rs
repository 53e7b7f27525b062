//! The retrying store: which calls are resent, and which are sent once.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    Result as OsResult,
};
use storage_core::StrataStore;

use super::policy::Policy;
use super::resume::{resumable, resumable_list};
use crate::util::classify;

/// A store that retries; made by [`RetryLayer`](super::RetryLayer).
pub struct RetryStore<T: StrataStore> {
    pub(super) inner: Arc<T>,
    pub(super) policy: Arc<Policy>,
}

crate::util::layer_store_fmt!(RetryStore);

crate::util::strata_store!(RetryStore {
    capabilities: |this| this.inner.capabilities(),
    // Sent once, as conditional puts are: `Bucket` repeats it and can tell its own lost
    // delete from another writer's (`storage_core::conditional`).
    delete_if_match: |this, location, etag| this.inner.delete_if_match(location, etag).await,
    presign: |this, method, location, expires_in| {
        this.policy
            .run("presign", location.as_ref(), || {
                this.inner.presign(method, location, expires_in)
            })
            .await
    },
});

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: StrataStore> ObjectStore for RetryStore<T> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> OsResult<PutResult> {
        if opts.mode != PutMode::Overwrite {
            // Sent once: a conditional write is repeated only by the layer that can tell its
            // own earlier attempt from another writer's (`storage_core::conditional`).
            return self.inner.put_opts(location, payload, opts).await;
        }
        // An overwrite is idempotent for its own key state, so it is resent; it is
        // at-least-once, though: a resend can land after another writer's later put and undo
        // it. Writers that race on a key use conditional writes.
        self.policy
            .run("put", location.as_ref(), || {
                self.inner.put_opts(location, payload.clone(), opts.clone())
            })
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> OsResult<Box<dyn MultipartUpload>> {
        // Starting an upload is idempotent (an unused upload id is cleaned up by the
        // bucket's lifecycle); parts are not retried here, see the module docs.
        self.policy
            .run("put_multipart", location.as_ref(), || {
                self.inner.put_multipart_opts(location, opts.clone())
            })
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> OsResult<GetResult> {
        let op = if options.head { "head" } else { "get" };
        let res = self
            .policy
            .run(op, location.as_ref(), || {
                self.inner.get_opts(location, options.clone())
            })
            .await?;
        if options.head || !matches!(res.payload, GetResultPayload::Stream(_)) {
            return Ok(res);
        }
        Ok(resumable(
            Arc::clone(&self.inner),
            Arc::clone(&self.policy),
            location.clone(),
            options,
            res,
        ))
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> OsResult<Vec<Bytes>> {
        self.policy
            .run("get_ranges", location.as_ref(), || {
                self.inner.get_ranges(location, ranges)
            })
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, OsResult<Path>>,
    ) -> BoxStream<'static, OsResult<Path>> {
        // Keep the backend's batching: send batches, then retry only the failed entries one
        // by one (deleting an absent object succeeds, so a retried delete is idempotent).
        let inner = Arc::clone(&self.inner);
        let policy = Arc::clone(&self.policy);
        locations
            .ready_chunks(1000)
            .then(move |batch| {
                let inner = Arc::clone(&inner);
                let policy = Arc::clone(&policy);
                async move {
                    let paths: Vec<Option<Path>> =
                        batch.iter().map(|r| r.as_ref().ok().cloned()).collect();
                    let results: Vec<OsResult<Path>> = inner
                        .delete_stream(stream::iter(batch).boxed())
                        .collect()
                        .await;
                    if results.len() != paths.len() {
                        return stream::iter(results);
                    }
                    let mut out = Vec::with_capacity(results.len());
                    for (res, path) in results.into_iter().zip(paths) {
                        match (res, path) {
                            (Err(e), Some(path)) if classify(&e).retryable => {
                                let mut attempt = 1;
                                let started = tokio::time::Instant::now();
                                let mut last = Err(e);
                                while let Err(e) = &last {
                                    if !policy
                                        .should_retry(
                                            classify(e),
                                            attempt,
                                            started,
                                            "delete",
                                            path.as_ref(),
                                        )
                                        .await
                                    {
                                        break;
                                    }
                                    attempt += 1;
                                    let one = path.clone();
                                    last = inner
                                        .delete_stream(stream::once(async move { Ok(one) }).boxed())
                                        .next()
                                        .await
                                        .unwrap_or(Ok(path.clone()));
                                }
                                out.push(last);
                            }
                            (res, _) => out.push(res),
                        }
                    }
                    stream::iter(out)
                }
            })
            .flatten()
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, OsResult<ObjectMeta>> {
        resumable_list(
            Arc::clone(&self.inner),
            Arc::clone(&self.policy),
            prefix.cloned(),
            None,
        )
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        resumable_list(
            Arc::clone(&self.inner),
            Arc::clone(&self.policy),
            prefix.cloned(),
            Some(offset.clone()),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> OsResult<ListResult> {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        self.policy
            .run("list_with_delimiter", &key, || {
                self.inner.list_with_delimiter(prefix)
            })
            .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> OsResult<()> {
        self.copy_resolving(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> OsResult<()> {
        self.rename_resolving(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use storage_core::MemoryStore;

    use super::*;
    use crate::chaos::ChaosLayer;
    use crate::retry::test_support::fast;

    #[tokio::test]
    async fn conditional_writes_are_sent_once_whatever_they_answer() {
        // Lost answers, plain failures: a create or compare-and-swap is never resent here
        // (Bucket's conditional write owns that, with the write id).
        let p = Path::from("doc");
        for lost_ack in [true, false] {
            let mem = MemoryStore::new();
            let first = mem.put(&p, "v1".into()).await.unwrap();
            let chaos = if lost_ack {
                ChaosLayer::default().with_lost_ack_rate(1.0)
            } else {
                ChaosLayer::default()
                    .with_error_rate(1.0)
                    .with_target(crate::chaos::ChaosTarget::Writes)
            };
            let retry = fast().with_max_attempts(10);
            let store = retry.wrap(chaos.wrap(mem.clone()));
            let new = Path::from("new");
            let create = store.put_opts(&new, "x".into(), PutMode::Create.into());
            assert!(create.await.is_err());
            let update = store.put_opts(&p, "x".into(), PutMode::Update(first.into()).into());
            assert!(update.await.is_err());
            let stats = chaos.stats();
            assert_eq!(
                stats.injected_errors + stats.lost_acks,
                2,
                "one attempt each"
            );
            assert_eq!(retry.stats().retries, 0);
        }
        let mem = MemoryStore::new();
        // An unconditional put through the same faults is retried until it lands.
        let chaos = ChaosLayer::default().with_seed(2).with_error_rate(0.5);
        let retry = fast().with_max_attempts(30);
        retry
            .wrap(chaos.wrap(mem.clone()))
            .put(&p, "v2".into())
            .await
            .unwrap();
        assert!(retry.stats().retries > 0);
        assert_eq!(mem.get(&p).await.unwrap().bytes().await.unwrap(), "v2");
    }
}
