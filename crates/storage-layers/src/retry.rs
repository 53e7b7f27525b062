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
//! # Conditional writes are not retried blindly
//!
//! A `PutMode::Create` or `PutMode::Update` write that failed *ambiguously* (timeout, dropped
//! connection, 5xx: the backend may have applied it before the failure) cannot simply be
//! resent: if the first attempt landed, the second answers `AlreadyExists`/`Precondition` and
//! the caller would wrongly believe it lost the race. So after an ambiguous failure the layer
//! reads the object (its own reads retried):
//! - absent, or (for `Update`) still at the expected ETag → the write did not land: retry;
//! - for create-if-absent, present with exactly our bytes → our write landed: success (for
//!   compare-and-swap equal bytes prove nothing: writers racing from one ETag usually
//!   compute the same new value, so this case is treated as unknown, below);
//! - anything else: either our write never landed and another writer's did, or ours landed
//!   and was overwritten since — the two cannot be told apart. For create-if-absent the
//!   answer is `AlreadyExists` (another object is there either way; a caller that reads it
//!   never creates twice). For compare-and-swap (`Update`) the layer returns the original
//!   ambiguous error (`Unavailable`, `Timeout`, ...), **never** `Precondition`: that would
//!   tell a CAS loop its write did not happen, and the loop would apply its change a second
//!   time. Counted in [`RetryStats::unknown_outcomes`].
//!
//! If the check's reads fail too, the write is retried and a later conflict answer is
//! checked the same way (still unknown → the ambiguous error). A rate-limit answer
//! (429/SlowDown) means the write was refused, so it is retried directly. Limits: another
//! writer *creating* byte-identical content at the same moment counts as our success (the
//! object is as we wanted it); a write that landed and was undone before the check (deleted
//! again, or set back to identical bytes, which S3 gives the same ETag) reads as not landed
//! and is applied again. `copy` with `CopyMode::Create` and `rename` follow the same rule
//! (the destination holding the source's bytes, or the source gone and the destination
//! present, is success).
//!
//! # Streams
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
//! # Combining with `object_store`'s HTTP retry
//!
//! The S3 backend already retries each HTTP request (`ClientOptions`/`RetryConfig`: by default
//! up to 10 retries within 3 minutes on 5xx, 429 and connection errors). Stacking this layer on
//! top multiplies attempts: 4 attempts here × 11 there = 44 requests for one call. Either keep
//! `object_store`'s retry for transport errors and set this layer to 2-3 attempts (it then
//! adds what the HTTP retry does not cover: timeouts raised by the timeout layer, resumed
//! streams, and the conditional-write check), or lower the S3 client's `max_retries`. The
//! retry budget bounds the total either way.
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
use storage_core::{ErrorKind, Layer, etag_eq};

use crate::util::{ErrorClass, classify, into_stream, payload_bytes};

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
    /// Ambiguous conditional writes found to have been applied (answered as success).
    pub recovered_writes: u64,
    /// GET bodies resumed after a mid-stream failure.
    pub resumed_streams: u64,
    /// Compare-and-swap writes whose outcome could not be determined (returned as their
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
    base_delay: Duration,
    max_delay: Duration,
    budget: Arc<RetryBudget>,
    rng: Mutex<fastrand::Rng>,
    counters: Counters,
}

impl Default for RetryLayer {
    /// 4 attempts, backoff from 100 ms doubling to at most 10 s with full jitter, a fresh
    /// [`RetryBudget::default`] shared by every store made from this layer.
    fn default() -> Self {
        RetryLayer {
            policy: Arc::new(Policy {
                max_attempts: 4,
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
    pub fn wrap<T: ObjectStore>(&self, inner: T) -> RetryStore<T> {
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
    fn layer(&self, inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(self.wrap(inner))
    }
}

impl Policy {
    /// Full jitter: uniform in `0..=min(max_delay, base * 2^(attempt-1))`.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.max_delay);
        let nanos = exp.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.rng.lock().expect("jitter rng").u64(0..=nanos))
    }

    /// Decide whether to retry after `attempt` failed with `class`; sleeps the backoff if so.
    async fn should_retry(&self, class: ErrorClass, attempt: u32, op: &str, key: &str) -> bool {
        if !class.retryable {
            return false;
        }
        if attempt >= self.max_attempts {
            self.counters.gave_up.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(op, key, attempt, kind = %class.kind, "giving up after the last attempt");
            return false;
        }
        if !self.budget.withdraw() {
            self.counters
                .budget_exhausted
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(op, key, attempt, "retry budget spent; not retrying");
            return false;
        }
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        let delay = self.backoff(attempt);
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
        loop {
            match call().await {
                Ok(v) => {
                    if attempt == 1 {
                        self.budget.deposit();
                    }
                    return Ok(v);
                }
                Err(e) => {
                    if !self.should_retry(classify(&e), attempt, op, key).await {
                        return Err(e);
                    }
                    attempt += 1;
                }
            }
        }
    }
}

/// A store that retries; made by [`RetryLayer`].
pub struct RetryStore<T: ObjectStore> {
    inner: Arc<T>,
    policy: Arc<Policy>,
}

impl<T: ObjectStore> fmt::Debug for RetryStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryStore({:?})", self.inner)
    }
}

impl<T: ObjectStore> fmt::Display for RetryStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryStore({})", self.inner)
    }
}

/// What an ambiguous conditional write turned out to be.
enum Landed {
    /// It did not land; retrying is safe.
    No,
    /// It landed; here is its result.
    Yes(PutResult),
    /// Another state than ours and than the one we expected is there: either our write
    /// never landed and another writer's did, or ours landed and was overwritten since.
    /// The two cannot be told apart, so the outcome is unknown.
    Changed,
    /// Could not tell (the check failed too).
    Unknown,
}

impl<T: ObjectStore> RetryStore<T> {
    /// After an ambiguous failure of a conditional put: did our write land?
    async fn check_put(&self, location: &Path, ours: &Bytes, mode: &PutMode) -> Landed {
        // The check's own reads are retried like any read: a fault here must not turn a
        // write that landed into a reported conflict.
        let key = location.as_ref();
        let meta = match self
            .policy
            .run("head", key, || self.inner.head(location))
            .await
        {
            Ok(m) => m,
            Err(e) if classify(&e).kind == ErrorKind::NotFound => return Landed::No,
            Err(_) => return Landed::Unknown,
        };
        if let PutMode::Update(expected) = mode {
            let same_etag = match (&expected.e_tag, &meta.e_tag) {
                (Some(a), Some(b)) => etag_eq(a, b),
                _ => false,
            };
            let same_version = expected.version.is_some() && expected.version == meta.version;
            if same_etag || same_version {
                return Landed::No;
            }
        }
        if meta.size != ours.len() as u64 {
            return Landed::Changed;
        }
        let pinned = GetOptions::new().with_if_match(meta.e_tag.clone());
        let body = self
            .policy
            .run("get", key, || async {
                self.inner
                    .get_opts(location, pinned.clone())
                    .await?
                    .bytes()
                    .await
            })
            .await;
        match body {
            // For compare-and-swap, equal bytes prove nothing: writers racing from the same
            // ETag usually compute the same new value (a counter's n + 1), so another
            // writer's success would be taken for ours and one increment lost.
            Ok(b) if b == *ours && matches!(mode, PutMode::Update(_)) => Landed::Changed,
            Ok(b) if b == *ours => Landed::Yes(PutResult {
                e_tag: meta.e_tag,
                version: meta.version,
                extensions: Default::default(),
            }),
            Ok(_) => Landed::Changed,
            Err(_) => Landed::Unknown,
        }
    }

    /// The answer for an ambiguous conditional write that found another object state.
    ///
    /// Create-if-absent: `AlreadyExists` — another object is there either way, and a caller
    /// that then reads it never applies its create twice. Update (compare-and-swap): the
    /// ambiguous error itself — `Precondition` would tell a CAS loop that its write did not
    /// happen, and it may have (then been overwritten): the loop would apply it twice.
    fn changed(
        &self,
        location: &Path,
        mode: &PutMode,
        ambiguous: object_store::Error,
    ) -> object_store::Error {
        if *mode == PutMode::Create {
            return object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "another object is at this key after an ambiguous failure of this \
                         create-if-absent write"
                    .into(),
            };
        }
        self.policy
            .counters
            .unknown_outcomes
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            key = location.as_ref(),
            "conditional write failed ambiguously and the object changed since; its outcome is unknown"
        );
        ambiguous
    }

    async fn conditional_put(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> OsResult<PutResult> {
        let ours = payload_bytes(&payload);
        let key = location.as_ref();
        let mut attempt = 1;
        // The error of an ambiguous attempt whose outcome the check could not determine.
        let mut unresolved: Option<object_store::Error> = None;
        loop {
            let err = match self
                .inner
                .put_opts(location, payload.clone(), opts.clone())
                .await
            {
                Ok(r) => {
                    if attempt == 1 {
                        self.policy.budget.deposit();
                    }
                    return Ok(r);
                }
                Err(e) => e,
            };
            let class = classify(&err);
            if class.kind == ErrorKind::Conflict
                && let Some(ambiguous) = unresolved.take()
            {
                {
                    // An earlier attempt failed ambiguously and could not be checked: this
                    // conflict may be our own write.
                    return match self.check_put(location, &ours, &opts.mode).await {
                        Landed::Yes(r) => {
                            self.policy
                                .counters
                                .recovered_writes
                                .fetch_add(1, Ordering::Relaxed);
                            Ok(r)
                        }
                        Landed::No => Err(err),
                        // Still unknown: report the ambiguous failure, not a conflict that
                        // may be our own write.
                        Landed::Changed => Err(self.changed(location, &opts.mode, ambiguous)),
                        Landed::Unknown => {
                            self.policy
                                .counters
                                .unknown_outcomes
                                .fetch_add(1, Ordering::Relaxed);
                            Err(ambiguous)
                        }
                    };
                }
            }
            if !class.retryable {
                return Err(err);
            }
            if class.ambiguous() {
                match self.check_put(location, &ours, &opts.mode).await {
                    Landed::Yes(r) => {
                        self.policy
                            .counters
                            .recovered_writes
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(key, "ambiguous conditional write had landed");
                        return Ok(r);
                    }
                    Landed::Changed => return Err(self.changed(location, &opts.mode, err)),
                    Landed::No => unresolved = None,
                    Landed::Unknown => {
                        if !self.policy.should_retry(class, attempt, "put", key).await {
                            return Err(err);
                        }
                        unresolved = Some(err);
                        attempt += 1;
                        continue;
                    }
                }
            }
            if !self.policy.should_retry(class, attempt, "put", key).await {
                return Err(err);
            }
            attempt += 1;
        }
    }

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
impl<T: ObjectStore> ObjectStore for RetryStore<T> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> OsResult<PutResult> {
        if opts.mode != PutMode::Overwrite {
            return self.conditional_put(location, payload, opts).await;
        }
        // An overwrite is idempotent: resending the same bytes is always safe.
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
                                let mut last = Err(e);
                                while let Err(e) = &last {
                                    if !policy
                                        .should_retry(classify(e), attempt, "delete", path.as_ref())
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
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        retry_stream_start(Arc::clone(&self.policy), "list", move || {
            inner.list(prefix.as_ref())
        })
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, OsResult<ObjectMeta>> {
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        let offset = offset.clone();
        retry_stream_start(Arc::clone(&self.policy), "list", move || {
            inner.list_with_offset(prefix.as_ref(), &offset)
        })
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
                .should_retry(class, attempt, "copy", to.as_ref())
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
                .should_retry(class, attempt, "rename", to.as_ref())
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

/// Retry a stream-producing call while it fails before yielding anything.
fn retry_stream_start<I: Send + 'static>(
    policy: Arc<Policy>,
    op: &'static str,
    make: impl Fn() -> BoxStream<'static, OsResult<I>> + Send + Sync + 'static,
) -> BoxStream<'static, OsResult<I>> {
    let start = async move {
        let mut attempt = 1;
        loop {
            let mut s = make();
            match s.next().await {
                Some(Err(e)) => {
                    if !policy.should_retry(classify(&e), attempt, op, "").await {
                        return stream::once(async move { Err(e) }).boxed();
                    }
                    attempt += 1;
                }
                Some(Ok(first)) => {
                    return stream::once(async move { Ok(first) }).chain(s).boxed();
                }
                None => return stream::empty().boxed(),
            }
        }
    };
    futures::FutureExt::flatten_stream(start).boxed()
}

/// Wrap a GET body so a retryable mid-stream failure resumes from the next byte.
fn resumable<T: ObjectStore>(
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
    struct State<T: ObjectStore> {
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
                            .should_retry(class, st.attempt, "get body", &key)
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
        for attempt in 1..=8u32 {
            let cap =
                Duration::from_millis(100 * (1u64 << (attempt - 1))).min(Duration::from_secs(1));
            for _ in 0..20 {
                assert!(p.backoff(attempt) <= cap);
            }
        }
        // Jitter spreads the delays (not all equal).
        let draws: Vec<_> = (0..10).map(|_| p.backoff(4)).collect();
        assert!(draws.iter().any(|d| *d != draws[0]));
    }

    #[tokio::test]
    async fn lost_ack_on_create_is_success_not_already_exists() {
        let chaos = ChaosLayer::default().with_lost_ack_rate(1.0);
        let retry = fast();
        let store = retry.wrap(chaos.wrap(MemoryStore::new()));
        let p = Path::from("doc");
        let r = store
            .put_opts(&p, "mine".into(), PutMode::Create.into())
            .await
            .unwrap();
        assert!(r.e_tag.is_some());
        assert_eq!(retry.stats().recovered_writes, 1);
    }

    #[tokio::test]
    async fn ambiguous_update_over_a_changed_object_is_unknown_not_a_conflict() {
        let mem = MemoryStore::new();
        let p = Path::from("doc");
        let first = mem.put(&p, "v1".into()).await.unwrap();
        // The object changed (another writer, or our own write then overwritten: the layer
        // cannot tell), then our update fails ambiguously.
        mem.put(&p, "theirs".into()).await.unwrap();
        let chaos = ChaosLayer::default()
            .with_error_rate(1.0)
            .with_target(crate::chaos::ChaosTarget::Writes);
        let retry = fast().with_max_attempts(5);
        let store = retry.wrap(chaos.wrap(mem.clone()));
        let err = store
            .put_opts(&p, "ours".into(), PutMode::Update(first.into()).into())
            .await
            .unwrap_err();
        let err = StorageError::from_object_store("t", err);
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        // Only one attempt: no blind retry.
        assert_eq!(chaos.stats().injected_errors, 1);
        assert_eq!(retry.stats().unknown_outcomes, 1);
        assert_eq!(mem.get(&p).await.unwrap().bytes().await.unwrap(), "theirs");
    }

    #[tokio::test]
    async fn ambiguous_create_over_another_object_is_already_exists() {
        let mem = MemoryStore::new();
        let p = Path::from("doc");
        mem.put(&p, "theirs".into()).await.unwrap();
        let chaos = ChaosLayer::default()
            .with_error_rate(1.0)
            .with_target(crate::chaos::ChaosTarget::Writes);
        let store = fast().wrap(chaos.wrap(mem.clone()));
        let err = store
            .put_opts(&p, "ours".into(), PutMode::Create.into())
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::AlreadyExists { .. }),
            "{err}"
        );
        assert_eq!(chaos.stats().injected_errors, 1);
    }

    #[tokio::test]
    async fn ambiguous_update_that_did_not_land_is_retried() {
        let mem = MemoryStore::new();
        let p = Path::from("doc");
        let first = mem.put(&p, "v1".into()).await.unwrap();
        let chaos = ChaosLayer::default().with_seed(2).with_error_rate(0.5);
        let store = fast().with_max_attempts(30).wrap(chaos.wrap(mem.clone()));
        store
            .put_opts(&p, "v2".into(), PutMode::Update(first.into()).into())
            .await
            .unwrap();
        assert_eq!(mem.get(&p).await.unwrap().bytes().await.unwrap(), "v2");
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
