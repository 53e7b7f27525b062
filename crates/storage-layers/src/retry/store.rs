//! The retrying store: which calls are resent, and which are sent once.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStore, PutMode, Result as OsResult};
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

#[deny(clippy::missing_trait_methods)]
impl<T: StrataStore> StrataStore for RetryStore<T> {
    // Sent once, as conditional puts are: `Bucket` repeats it and can tell its own lost
    // delete from another writer's (`storage_core::conditional`).
    storage_core::forward_object_store!(@methods inner: capabilities, key_prefix, delete_if_match);

    storage_core::store_fn!(presign, |this, method, location, expires_in| {
        this.policy
            .run("presign", location.as_ref(), || {
                this.inner.presign(method, location, expires_in)
            })
            .await
    });
}

#[deny(clippy::missing_trait_methods)]
impl<T: StrataStore> ObjectStore for RetryStore<T> {
    storage_core::store_fn!(put_opts, |this, location, payload, opts| {
        if opts.mode != PutMode::Overwrite {
            // Sent once: a conditional write is repeated only by the layer that can tell its
            // own earlier attempt from another writer's (`storage_core::conditional`).
            return this.inner.put_opts(location, payload, opts).await;
        }
        // An overwrite is idempotent for its own key state, so it is resent; it is
        // at-least-once, though: a resend can land after another writer's later put and undo
        // it. Writers that race on a key use conditional writes.
        this.policy
            .run("put", location.as_ref(), || {
                this.inner.put_opts(location, payload.clone(), opts.clone())
            })
            .await
    });

    storage_core::store_fn!(put_multipart_opts, |this, location, opts| {
        // Starting an upload is idempotent (an unused upload id is cleaned up by the
        // bucket's lifecycle); parts are not retried here, see the module docs.
        this.policy
            .run("put_multipart", location.as_ref(), || {
                this.inner.put_multipart_opts(location, opts.clone())
            })
            .await
    });

    storage_core::store_fn!(get_opts, |this, location, options| {
        let op = if options.head { "head" } else { "get" };
        let res = this
            .policy
            .run(op, location.as_ref(), || {
                this.inner.get_opts(location, options.clone())
            })
            .await?;
        if options.head || !matches!(res.payload, GetResultPayload::Stream(_)) {
            return Ok(res);
        }
        Ok(resumable(
            Arc::clone(&this.inner),
            Arc::clone(&this.policy),
            location.clone(),
            options,
            res,
        ))
    });

    storage_core::store_fn!(get_ranges, |this, location, ranges| {
        this.policy
            .run("get_ranges", location.as_ref(), || {
                this.inner.get_ranges(location, ranges)
            })
            .await
    });

    storage_core::store_fn!(delete_stream, |this, locations| this.deletes(locations));

    storage_core::store_fn!(list, |this, prefix| resumable_list(
        Arc::clone(&this.inner),
        Arc::clone(&this.policy),
        prefix.cloned(),
        None,
    ));

    storage_core::store_fn!(list_with_offset, |this, prefix, offset| resumable_list(
        Arc::clone(&this.inner),
        Arc::clone(&this.policy),
        prefix.cloned(),
        Some(offset.clone()),
    ));

    storage_core::store_fn!(list_with_delimiter, |this, prefix| {
        let key = prefix.map(|p| p.to_string()).unwrap_or_default();
        this.policy
            .run("list_with_delimiter", &key, || {
                this.inner.list_with_delimiter(prefix)
            })
            .await
    });

    storage_core::store_fn!(copy_opts, |this, from, to, options| this
        .copy_resolving(from, to, options)
        .await);

    storage_core::store_fn!(rename_opts, |this, from, to, options| this
        .rename_resolving(from, to, options)
        .await);
}

impl<T: StrataStore> RetryStore<T> {
    /// A delete stream that keeps the backend's batching and retries the failed entries.
    fn deletes(
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
