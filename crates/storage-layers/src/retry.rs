//! Retry with exponential backoff, full jitter, an attempt limit and a shared retry budget.
//!
//! Only errors for which [`StorageError::is_retryable`](storage_core::StorageError::is_retryable) holds are retried (timeouts,
//! unavailability, rate limits, 5xx): not-found, preconditions, bad input and auth failures
//! are returned at once.
//!
//! # Where it belongs
//!
//! Outside the circuit breaker, the concurrency limit and the per-attempt timeout, inside
//! compression and encryption:
//! `… → compression → encryption → **retry** → breaker → limit → timeout → backend`.
//! - Breaker inside retry: every attempt is counted, and once the breaker opens its
//!   `CircuitOpen` (not retryable) stops the retry loop at once. With the breaker outside,
//!   a dead backend takes a full retry storm per call before the breaker sees one failure.
//! - Limit inside retry: a call waiting out its backoff does not hold a concurrency permit.
//! - Timeout inside retry: each attempt gets its own deadline and a hung attempt is retried;
//!   with the timeout outside, one hung attempt spends the whole deadline.
//! - Compression and encryption outside retry: the payload is encoded once and the same bytes
//!   are resent; the conditional-write check below compares stored bytes exactly.
//!
//! # Conditional writes are not retried here
//!
//! A `PutMode::Create` or `PutMode::Update` write is passed through once, whatever it
//! answers. After an ambiguous failure (timeout, reset, 5xx: the backend may have applied it)
//! only a layer that knows the write's identity can tell "my earlier attempt landed" from
//! "another writer won", so the one owner of those retries is
//! [`Bucket`](storage_core::Bucket)'s conditional write (`storage_core::conditional`), which
//! stamps a write id into the object's metadata and checks it. A blind resend here would
//! answer `Precondition` for our own write and make a compare-and-swap loop apply its change
//! twice. `copy` with `CopyMode::Create` and `rename` without replace are checked after an
//! ambiguous failure (the destination holding the source's bytes, or the source gone and the
//! destination present, is success).
//!
//! # Deadline
//!
//! Besides the attempt count, no retry starts later than the deadline (default 30 s) after
//! the first attempt began ([`RetryLayer::with_deadline`]), so a slow backend cannot hold a
//! call for attempts × timeout.
//!
//! # Streams
//!
//! A listing torn mid-way (a cut page) resumes after the last entry it yielded, where the
//! store lists in key order (S3); see `resumable_list`.
//!
//! A GET whose body fails mid-way with a retryable error is resumed from the next byte with a
//! ranged GET pinned to the first response's ETag (`If-Match`), so a torn stream neither
//! restarts nor mixes two versions. `list` is retried only if it fails before its first
//! entry. Multipart parts and completions are not retried here: each `put_part` call takes
//! the next part number, so a part cannot be resent under its own number, and `complete`
//! cannot be called twice, through the `MultipartUpload` trait. The S3 client's own HTTP
//! retry covers both (it resends the same request); a failure beyond it fails the upload,
//! which the caller aborts and restarts (starting an upload is retried).
//!
//! # One retrier per request
//!
//! The S3 backend's HTTP client can retry too. Stacked, the two multiply (4 attempts here ×
//! 4 there = 16 requests for one call), so there is one owner: when a stack has a retry
//! layer, the facade builds its S3 clients with HTTP retries off (`max_retries = 0`), and
//! an explicit `max_retries` above 0 next to `[layers.retry]` is a configuration error. The
//! S3 backend never lets its HTTP client resend a conditional request in any case.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use object_store::{ObjectStoreExt, path::Path};
//! use storage_core::{Layer, MemoryStore};
//! use storage_layers::{chaos::ChaosLayer, retry::RetryLayer};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let flaky = ChaosLayer::default().with_seed(3).with_error_rate(0.5)
//!     .layer(Arc::new(MemoryStore::new()));
//! let retry = RetryLayer::default().with_max_attempts(10).with_base_delay(Duration::ZERO);
//! let store = retry.layer(flaky);
//! store.put(&Path::from("a"), "v".into()).await.unwrap();
//! assert_eq!(store.get(&Path::from("a")).await.unwrap().bytes().await.unwrap(), "v");
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, RenameTargetMode, Result as OsResult,
};
use storage_core::backoff::{BackoffStrategy, Jitter};
use storage_core::{Capabilities, ErrorKind, Layer, PresignMethod, StrataStore};
use url::Url;

/// Default [`RetryLayer::with_deadline`].
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

use crate::util::{ErrorClass, classify, into_stream};

/// A token bucket limiting retries to a share of successful traffic (like tower's budget).
///
/// Each retry takes one token; each first-try success puts back `deposit_per_success`
/// (at most `max_tokens` are kept). With the defaults (10 tokens, 0.2 per success) a busy
/// store retries at most about one call in five once the initial reserve is spent, so an
/// outage does not multiply load on the backend. Share one budget across stores with
/// [`RetryLayer::with_budget`].
#[derive(Debug)]
pub struct RetryBudget {
    tokens: Mutex<f64>,
    max_tokens: f64,
    deposit_per_success: f64,
}

impl RetryBudget {
    /// A budget holding at most `max_tokens` retries, refilled by `deposit_per_success` per
    /// successful call. Starts full.
    pub fn new(max_tokens: u32, deposit_per_success: f64) -> Self {
        RetryBudget {
            tokens: Mutex::new(f64::from(max_tokens)),
            max_tokens: f64::from(max_tokens),
            deposit_per_success: deposit_per_success.max(0.0),
        }
    }

    /// A budget that never runs out.
    pub fn unlimited() -> Self {
        RetryBudget::new(u32::MAX, 0.0)
    }

    /// Take one retry token; false when the budget is spent.
    pub fn withdraw(&self) -> bool {
        let mut t = self.tokens.lock().expect("retry budget");
        if *t >= 1.0 {
            *t -= 1.0;
            true
        } else {
            false
        }
    }

    /// Credit a success.
    pub fn deposit(&self) {
        let mut t = self.tokens.lock().expect("retry budget");
        *t = (*t + self.deposit_per_success).min(self.max_tokens);
    }

    /// Tokens left.
    pub fn remaining(&self) -> f64 {
        *self.tokens.lock().expect("retry budget")
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(10, 0.2)
    }
}

/// Counters of a [`RetryLayer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryStats {
    /// Retries made (attempts after the first).
    pub retries: u64,
    /// Calls that failed retryably but were not retried because the budget was spent.
    pub budget_exhausted: u64,
    /// Calls that failed after the last allowed attempt.
    pub gave_up: u64,
    /// Copies and renames whose answer was lost, found to have been applied (answered as
    /// success). Conditional puts are not retried here (see the module docs).
    pub recovered_writes: u64,
    /// GET bodies and listings resumed after a mid-stream failure.
    pub resumed_streams: u64,
    /// Renames whose outcome could not be determined (returned as their
    /// ambiguous error, never as a conflict).
    pub unknown_outcomes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    retries: AtomicU64,
    budget_exhausted: AtomicU64,
    gave_up: AtomicU64,
    recovered_writes: AtomicU64,
    resumed_streams: AtomicU64,
    unknown_outcomes: AtomicU64,
}

/// Retries failed calls; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: Arc<Policy>,
}

#[derive(Debug)]
struct Policy {
    max_attempts: u32,
    deadline: Duration,
    base_delay: Duration,
    max_delay: Duration,
    budget: Arc<RetryBudget>,
    rng: Mutex<fastrand::Rng>,
    counters: Counters,
}

impl Default for RetryLayer {
    /// 4 attempts within a 30 s deadline, backoff from 100 ms doubling to at most 10 s with
    /// full jitter, a fresh
    /// [`RetryBudget::default`] shared by every store made from this layer.
    fn default() -> Self {
        RetryLayer {
            policy: Arc::new(Policy {
                max_attempts: 4,
                deadline: DEFAULT_DEADLINE,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(10),
                budget: Arc::new(RetryBudget::default()),
                rng: Mutex::new(fastrand::Rng::new()),
                counters: Counters::default(),
            }),
        }
    }
}

impl RetryLayer {
    fn edit(mut self, f: impl FnOnce(&mut Policy)) -> Self {
        f(policy_mut(&mut self.policy));
        self
    }

    /// Total attempts including the first (at least 1).
    pub fn with_max_attempts(self, attempts: u32) -> Self {
        self.edit(|p| p.max_attempts = attempts.max(1))
    }

    /// No retry starts later than this after the first attempt began (default 30 s).
    pub fn with_deadline(self, deadline: Duration) -> Self {
        self.edit(|p| p.deadline = deadline)
    }

    /// Backoff before the first retry; it doubles each time (before jitter).
    pub fn with_base_delay(self, delay: Duration) -> Self {
        self.edit(|p| p.base_delay = delay)
    }

    /// Longest backoff.
    pub fn with_max_delay(self, delay: Duration) -> Self {
        self.edit(|p| p.max_delay = delay)
    }

    /// Use this budget (share one `Arc` between layers to share it between stores).
    pub fn with_budget(self, budget: Arc<RetryBudget>) -> Self {
        self.edit(|p| p.budget = budget)
    }

    /// Seed the jitter, for reproducible tests.
    pub fn with_jitter_seed(self, seed: u64) -> Self {
        self.edit(|p| p.rng = Mutex::new(fastrand::Rng::with_seed(seed)))
    }

    /// The budget in use.
    pub fn budget(&self) -> Arc<RetryBudget> {
        Arc::clone(&self.policy.budget)
    }

    /// What the stores made from this layer did so far.
    pub fn stats(&self) -> RetryStats {
        let c = &self.policy.counters;
        RetryStats {
            retries: c.retries.load(Ordering::Relaxed),
            budget_exhausted: c.budget_exhausted.load(Ordering::Relaxed),
            gave_up: c.gave_up.load(Ordering::Relaxed),
            recovered_writes: c.recovered_writes.load(Ordering::Relaxed),
            resumed_streams: c.resumed_streams.load(Ordering::Relaxed),
            unknown_outcomes: c.unknown_outcomes.load(Ordering::Relaxed),
        }
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> RetryStore<T> {
        RetryStore {
            inner: Arc::new(inner),
            policy: Arc::clone(&self.policy),
        }
    }
}

/// Like `Arc::make_mut`, for a policy that is not `Clone`: a shared policy is copied with
/// fresh counters, which is what a builder step wants (a reconfigured layer counts anew).
fn policy_mut(this: &mut Arc<Policy>) -> &mut Policy {
    {
        if Arc::get_mut(this).is_none() {
            let p = Policy {
                max_attempts: this.max_attempts,
                deadline: this.deadline,
                base_delay: this.base_delay,
                max_delay: this.max_delay,
                budget: Arc::clone(&this.budget),
                rng: Mutex::new(fastrand::Rng::new()),
                counters: Counters::default(),
            };
            *this = Arc::new(p);
        }
        Arc::get_mut(this).expect("unique after copy")
    }
}

impl Layer for RetryLayer {
    fn layer(&self, inner: Arc<dyn StrataStore>) -> Arc<dyn StrataStore> {
        Arc::new(self.wrap(inner))
    }
}

impl Policy {
    /// The backoff as the workspace's one backoff type: full jitter, uniform in
    /// `0..=min(max_delay, base * 2^(attempt-1))`, none once the deadline would pass.
    fn strategy(&self) -> BackoffStrategy {
        BackoffStrategy::custom(self.max_attempts - 1, self.base_delay, self.max_delay)
            .with_jitter(Jitter::Full)
            .with_deadline(self.deadline)
    }

    /// Decide whether to retry after `attempt` failed with `class`; sleeps the backoff if so.
    /// `started` is when the call's first attempt began.
    async fn should_retry(
        &self,
        class: ErrorClass,
        attempt: u32,
        started: tokio::time::Instant,
        op: &str,
        key: &str,
    ) -> bool {
        if !class.retryable {
            return false;
        }
        let delay = {
            let mut rng = self.rng.lock().expect("jitter rng");
            self.strategy()
                .next_delay_with(attempt, started.elapsed(), || rng.f64())
        };
        let Some(delay) = delay else {
            self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(op, key, attempt, kind = %class.kind, "giving up: last attempt made or deadline reached");
            return false;
        };
        if !self.budget.withdraw() {
            self.counters
                .budget_exhausted
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(op, key, attempt, "retry budget spent; not retrying");
            return false;
        }
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(op, key, attempt, ?delay, kind = %class.kind, "retrying");
        tokio::time::sleep(delay).await;
        true
    }

    async fn run<R, F, Fut>(&self, op: &str, key: &str, mut call: F) -> OsResult<R>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = OsResult<R>>,
    {
        let mut attempt = 1;
        let started = tokio::time::Instant::now();
        loop {
            match call().await {
                Ok(v) => {
                    if attempt == 1 {
                        self.budget.deposit();
                    }
                    return Ok(v);
                }
                Err(e) => {
                    if !self
                        .should_retry(classify(&e), attempt, started, op, key)
                        .await
                    {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        }
    }
}

/// A store that retries; made by [`RetryLayer`].
pub struct RetryStore<T: StrataStore> {
    inner: Arc<T>,
    policy: Arc<Policy>,
}

impl<T: StrataStore> fmt::Debug for RetryStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryStore({:?})", self.inner)
    }
}

impl<T: StrataStore> fmt::Display for RetryStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryStore({})", self.inner)
    }
}

impl<T: StrataStore> RetryStore<T> {
    async fn same_bytes(&self, a: &Path, b: &Path) -> bool {
        let (x, y) = futures::join!(self.inner.get(a), self.inner.get(b));
        match (x, y) {
            (Ok(x), Ok(y)) => match futures::join!(x.bytes(), y.bytes()) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            },
            _ => false,
        }
    }

    async fn exists(&self, p: &Path) -> Option<bool> {
        match self.inner.head(p).await {
            Ok(_) => Some(true),
            Err(e) if classify(&e).kind == ErrorKind::NotFound => Some(false),
            Err(_) => None,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<T: StrataStore> StrataStore for RetryStore<T> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()> {
        // Sent once, as conditional puts are: `Bucket` repeats it and can tell its own lost
        // delete from another writer's (`storage_core::conditional`).
        self.inner.delete_if_match(location, etag).await
    }

    async fn presign(
        &self,
        method: PresignMethod,
        location: &Path,
        expires_in: Duration,
    ) -> OsResult<Url> {
        self.policy
            .run("presign", location.as_ref(), || {
                self.inner.presign(method, location, expires_in)
            })
            .await
    }
}

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
        let create = matches!(options.mode, CopyMode::Create);
        let mut attempt = 1;
        let started = tokio::time::Instant::now();
        let mut ambiguous: Option<object_store::Error> = None;
        loop {
            let err = match self.inner.copy_opts(from, to, options.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let class = classify(&err);
            if create
                && class.kind == ErrorKind::Conflict
                && let Some(first) = ambiguous.take()
            {
                // Our earlier attempt may have created the destination.
                if self.same_bytes(from, to).await {
                    self.policy
                        .counters
                        .recovered_writes
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                // Another object is at the destination either way: the copy-if-absent answer
                // stands.
                drop(first);
                return Err(err);
            }
            if !self
                .policy
                .should_retry(class, attempt, started, "copy", to.as_ref())
                .await
            {
                return Err(err);
            }
            if class.ambiguous() && ambiguous.is_none() {
                ambiguous = Some(err);
            }
            attempt += 1;
        }
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> OsResult<()> {
        let mut attempt = 1;
        let started = tokio::time::Instant::now();
        let mut ambiguous: Option<object_store::Error> = None;
        loop {
            let err = match self.inner.rename_opts(from, to, options.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let class = classify(&err);
            if ambiguous.is_some()
                && matches!(class.kind, ErrorKind::NotFound | ErrorKind::Conflict)
            {
                // An earlier attempt may have done the move (source gone, destination there),
                // or copied without deleting the source.
                let source = self.exists(from).await;
                let dest = self.exists(to).await;
                match (source, dest) {
                    (Some(false), Some(true)) => {
                        self.policy
                            .counters
                            .recovered_writes
                            .fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    (Some(true), Some(true))
                        if matches!(options.target_mode, RenameTargetMode::Create)
                            && self.same_bytes(from, to).await =>
                    {
                        // Copied but the source delete was lost: finish the move.
                        return self
                            .policy
                            .run("rename", from.as_ref(), || self.inner.delete(from))
                            .await;
                    }
                    // Source still there, another object at the destination: nothing moved.
                    (Some(true), Some(true))
                        if matches!(options.target_mode, RenameTargetMode::Create) =>
                    {
                        return Err(err);
                    }
                    _ => {
                        self.policy
                            .counters
                            .unknown_outcomes
                            .fetch_add(1, Ordering::Relaxed);
                        return Err(ambiguous.take().unwrap_or(err));
                    }
                }
            }
            if !self
                .policy
                .should_retry(class, attempt, started, "rename", to.as_ref())
                .await
            {
                return Err(err);
            }
            if class.ambiguous() && ambiguous.is_none() {
                ambiguous = Some(err);
            }
            attempt += 1;
        }
    }
}

/// A listing that survives a torn page. A retryable failure before the first entry restarts
/// it; one after resumes after the last entry yielded (`list_with_offset`), which is exact
/// where the store lists in key order, as S3 does. Where the entries seen so far were not in
/// key order (a local folder lists in directory order) the failure is returned instead:
/// resuming by offset could skip entries.
fn resumable_list<T: StrataStore>(
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
    .boxed()
}

/// Wrap a GET body so a retryable mid-stream failure resumes from the next byte.
fn resumable<T: StrataStore>(
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
    meta.with_stream(s.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::{ChaosFault, ChaosLayer};
    use storage_core::{MemoryStore, StorageError};

    fn fast() -> RetryLayer {
        RetryLayer::default()
            .with_base_delay(Duration::ZERO)
            .with_budget(Arc::new(RetryBudget::unlimited()))
    }

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let chaos = ChaosLayer::default().with_seed(9).with_error_rate(0.5);
        let retry = fast().with_max_attempts(20);
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        for i in 0..20 {
            let p = Path::from(format!("k{i}"));
            store.put(&p, format!("v{i}").into()).await.unwrap();
            assert_eq!(
                store.get(&p).await.unwrap().bytes().await.unwrap(),
                format!("v{i}")
            );
        }
        assert!(retry.stats().retries > 0);
        assert_eq!(retry.stats().retries, chaos.stats().injected_errors);
    }

    #[tokio::test]
    async fn does_not_retry_non_retryable() {
        let chaos = ChaosLayer::default()
            .with_error_rate(1.0)
            .with_fault(ChaosFault::AccessDenied);
        let retry = fast();
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        let err = store.put(&Path::from("a"), "x".into()).await.unwrap_err();
        let err = StorageError::from_object_store("t", err);
        assert!(matches!(err, StorageError::AccessDenied { .. }), "{err}");
        assert_eq!(chaos.stats().injected_errors, 1);
        assert_eq!(retry.stats().retries, 0);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let chaos = ChaosLayer::default().with_error_rate(1.0);
        let retry = fast().with_max_attempts(3);
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        assert!(store.get(&Path::from("a")).await.is_err());
        assert_eq!(chaos.stats().injected_errors, 3);
        assert_eq!(retry.stats().gave_up, 1);
    }

    #[tokio::test]
    async fn budget_stops_retry_storms() {
        let chaos = ChaosLayer::default().with_error_rate(1.0);
        let retry = RetryLayer::default()
            .with_base_delay(Duration::ZERO)
            .with_max_attempts(10)
            .with_budget(Arc::new(RetryBudget::new(5, 0.1)));
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        for _ in 0..4 {
            assert!(store.get(&Path::from("a")).await.is_err());
        }
        assert_eq!(retry.stats().retries, 5);
        assert_eq!(chaos.stats().injected_errors, 4 + 5);
        assert!(retry.stats().budget_exhausted >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_grows_exponentially_with_full_jitter() {
        let retry = RetryLayer::default()
            .with_base_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(1))
            .with_jitter_seed(5);
        let p = &retry.policy;
        let mut rng = fastrand::Rng::with_seed(5);
        let backoff = |attempt: u32, rng: &mut fastrand::Rng| {
            p.strategy()
                .with_max_retries(100)
                .next_delay_with(attempt, Duration::ZERO, || rng.f64())
                .unwrap()
        };
        for attempt in 1..=8u32 {
            let cap =
                Duration::from_millis(100 * (1u64 << (attempt - 1))).min(Duration::from_secs(1));
            for _ in 0..20 {
                assert!(backoff(attempt, &mut rng) <= cap);
            }
            // The window itself doubles up to the cap: 100, 200, 400, 800 ms, then 1 s.
            let window = p
                .strategy()
                .with_max_retries(100)
                .next_delay_with(attempt, Duration::ZERO, || 1.0)
                .unwrap();
            assert_eq!(window, cap, "attempt {attempt}");
        }
        // Jitter spreads the delays (not all equal).
        let draws: Vec<_> = (0..10).map(|_| backoff(4, &mut rng)).collect();
        assert!(draws.iter().any(|d| *d != draws[0]));
    }

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

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_retries_before_the_attempt_count() {
        let chaos = ChaosLayer::default().with_error_rate(1.0);
        let retry = RetryLayer::default()
            .with_max_attempts(1000)
            .with_base_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(1))
            .with_deadline(Duration::from_secs(10))
            .with_budget(Arc::new(RetryBudget::unlimited()));
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        let started = tokio::time::Instant::now();
        store.get(&Path::from("x")).await.unwrap_err();
        assert!(started.elapsed() <= Duration::from_secs(10));
        let made = retry.stats().retries;
        assert!((1..1000).contains(&made), "{made}");
        assert_eq!(retry.stats().gave_up, 1);
    }

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

    #[tokio::test]
    async fn lost_ack_on_rename_is_success() {
        let chaos = ChaosLayer::default().with_lost_ack_rate(1.0);
        let mem = MemoryStore::new();
        mem.put(&Path::from("a"), "x".into()).await.unwrap();
        let store = fast().wrap(chaos.wrap(mem.clone()));
        store
            .rename(&Path::from("a"), &Path::from("b"))
            .await
            .unwrap();
        assert!(mem.head(&Path::from("a")).await.is_err());
        assert!(mem.head(&Path::from("b")).await.is_ok());
    }
}
