//! Streams that survive a torn connection: listings resume after their last entry, GET
//! bodies from their next byte (pinned to the first response's ETag).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetResult, ObjectMeta, Result as OsResult};
use storage_core::StrataStore;

use super::policy::Policy;
use crate::util::{classify, into_stream};

/// A listing that survives a torn page. A retryable failure before the first entry restarts
/// it; one after resumes after the last entry yielded (`list_with_offset`), which is exact
/// where the store lists in key order, as S3 does. Where the entries seen so far were not in
/// key order (a local folder lists in directory order) the failure is returned instead:
/// resuming by offset could skip entries.
pub(super) fn resumable_list<T: StrataStore>(
    inner: Arc<T>,
    policy: Arc<Policy>,
    prefix: Option<Path>,
    offset: Option<Path>,
) -> BoxStream<'static, OsResult<ObjectMeta>> {
    struct State<T: StrataStore> {
        inner: Arc<T>,
        policy: Arc<Policy>,
        prefix: Option<Path>,
        /// The listing continues after this (the caller's offset, then the last entry).
        after: Option<Path>,
        yielded: bool,
        sorted: bool,
        attempt: u32,
        started: tokio::time::Instant,
        current: BoxStream<'static, OsResult<ObjectMeta>>,
        done: bool,
    }
    fn open<T: StrataStore>(
        inner: &Arc<T>,
        prefix: &Option<Path>,
        after: &Option<Path>,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        match after {
            Some(after) => inner.list_with_offset(prefix.as_ref(), after),
            None => inner.list(prefix.as_ref()),
        }
    }
    let state = State {
        current: open(&inner, &prefix, &offset),
        inner,
        policy,
        prefix,
        after: offset,
        yielded: false,
        sorted: true,
        attempt: 1,
        started: tokio::time::Instant::now(),
        done: false,
    };
    stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.current.next().await {
                Some(Ok(meta)) => {
                    if st.yielded && st.after.as_ref().is_some_and(|a| meta.location <= *a) {
                        st.sorted = false;
                    }
                    st.after = Some(meta.location.clone());
                    st.yielded = true;
                    return Some((Ok(meta), st));
                }
                None => return None,
                Some(Err(e)) => {
                    let resumable = !st.yielded || st.sorted;
                    if !resumable
                        || !st
                            .policy
                            .should_retry(classify(&e), st.attempt, st.started, "list", "")
                            .await
                    {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    if st.yielded {
                        st.policy
                            .counters
                            .resumed_streams
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    st.attempt += 1;
                    st.current = open(&st.inner, &st.prefix, &st.after);
                }
            }
        }
    })
    .fuse()
    .boxed()
}

/// Wrap a GET body so a retryable mid-stream failure resumes from the next byte.
pub(super) fn resumable<T: StrataStore>(
    inner: Arc<T>,
    policy: Arc<Policy>,
    location: Path,
    options: GetOptions,
    res: GetResult,
) -> GetResult {
    let (meta, body) = into_stream(res);
    let etag = meta.meta.e_tag.clone();
    let version = meta.meta.version.clone();
    let end = meta.range.end;
    struct State<T: StrataStore> {
        inner: Arc<T>,
        policy: Arc<Policy>,
        location: Path,
        options: GetOptions,
        etag: Option<String>,
        version: Option<String>,
        body: BoxStream<'static, OsResult<Bytes>>,
        next: u64,
        end: u64,
        attempt: u32,
        started: tokio::time::Instant,
        done: bool,
    }
    let state = State {
        inner,
        policy,
        location,
        options,
        etag,
        version,
        body,
        next: meta.range.start,
        end,
        attempt: 1,
        started: tokio::time::Instant::now(),
        done: false,
    };
    let s = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.body.next().await {
                Some(Ok(b)) => {
                    st.next += b.len() as u64;
                    return Some((Ok(b), st));
                }
                None => return None,
                Some(Err(e)) => {
                    let class = classify(&e);
                    let key = st.location.to_string();
                    if st.next >= st.end
                        || !st
                            .policy
                            .should_retry(class, st.attempt, st.started, "get body", &key)
                            .await
                    {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                    st.attempt += 1;
                    // Resume exactly where the torn body stopped, pinned to the same object
                    // version so the two halves cannot come from different writes.
                    let mut opts = GetOptions::new()
                        .with_range(Some(st.next..st.end))
                        .with_version(st.version.clone());
                    opts.if_match = st.etag.clone().or(st.options.if_match.clone());
                    opts.extensions = st.options.extensions.clone();
                    match st.inner.get_opts(&st.location, opts).await {
                        Ok(r) => {
                            st.policy
                                .counters
                                .resumed_streams
                                .fetch_add(1, Ordering::Relaxed);
                            st.body = r.into_stream();
                        }
                        Err(e2) => {
                            // The resume call failing is handled like a body failure: keep
                            // going while attempts and budget last.
                            st.body = stream::once(async move { Err(e2) }).boxed();
                        }
                    }
                }
            }
        }
    });
    meta.with_stream(s.fuse().boxed())
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use storage_core::MemoryStore;

    use crate::chaos::ChaosLayer;
    use crate::retry::test_support::fast;

    use super::*;

    #[tokio::test]
    async fn torn_streams_are_resumed() {
        let chaos = ChaosLayer::default()
            .with_seed(4)
            .with_torn_stream_rate(0.5);
        let retry = fast().with_max_attempts(20);
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let p = Path::from("big");
        store.put(&p, data.clone().into()).await.unwrap();
        for _ in 0..10 {
            let got = store.get(&p).await.unwrap().bytes().await.unwrap();
            assert_eq!(got, data);
        }
        assert!(chaos.stats().torn_streams > 0);
        assert_eq!(retry.stats().resumed_streams, chaos.stats().torn_streams);
    }
}
