//! The one fallback engine: every read over several buckets or stores runs here — source
//! sets ([`SourceSet`](crate::SourceSet) `get`/`head`), their store
//! ([`FallbackStore`](crate::FallbackStore)), failover and mirror stores, and a route's
//! offload fallback. They differ only in configuration: which answers move the read on
//! ([`FallbackOn`]), the [`ReadPolicy`], and whether bucket health is kept.
//!
//! The sequential path is a plain loop: no allocation unless a bucket fails, no lock unless
//! a bucket has been failing, and one clock read per request. Parallel and hedged reads run
//! their requests in one `FuturesUnordered`; the hedged one is a small state machine whose
//! hedge delays come from each bucket's observed latency and hit rate (see
//! [`Hedging`](crate::Hedging)) and whose extra requests are paid for from a token budget.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use storage_core::{ErrorKind, Result, StorageError};
use tokio::time::Instant;

use crate::failure::{AllBucketsFailed, BucketFailure, is_final_answer, is_unavailable};
use crate::health::{HealthTracker, Slot};
use crate::read::{HedgeDelay, Hedging, ReadPolicy};

/// Observed answers a bucket needs before its hedge delay is learnt rather than the cap.
pub(crate) const MIN_SAMPLES: usize = 16;
/// One hedge, in milli-tokens.
const TOKEN: i64 = 1000;
/// Tokens a set may save up (and starts with): a hundred hedges, so that a burst of slow
/// answers under concurrent reads is still hedged (tower's retry budget allows the same: 10
/// a second over its 10 s window); over time extra requests stay within the budget.
const BURST: i64 = 100 * TOKEN;

/// Which answers move a read on to the next member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FallbackOn {
    /// "Not found" only; any failure is the answer (a route's offload target: an outage of
    /// the archive must not read as "no such object").
    Miss,
    /// Unavailability only (retryable errors, timeouts, open circuits); "not found" is the
    /// answer (provider failover).
    Unavailable,
    /// "Not found" and failures; definite answers about the request (bad key, not
    /// modified, failed precondition) stop the read (source sets, mirrors).
    MissOrFailure,
}

enum Class<T> {
    Hit(T),
    Miss,
    Failed(StorageError),
    Final(StorageError),
}

impl FallbackOn {
    fn classify<T>(self, r: Result<T>) -> Class<T> {
        let e = match r {
            Ok(v) => return Class::Hit(v),
            Err(e) => e,
        };
        let miss = e.kind() == ErrorKind::NotFound;
        match self {
            FallbackOn::Miss if miss => Class::Miss,
            FallbackOn::Miss => Class::Final(e),
            FallbackOn::Unavailable if is_unavailable(&e) => Class::Failed(e),
            FallbackOn::Unavailable => Class::Final(e),
            FallbackOn::MissOrFailure if miss => Class::Miss,
            FallbackOn::MissOrFailure if is_final_answer(&e) => Class::Final(e),
            FallbackOn::MissOrFailure => Class::Failed(e),
        }
    }
}

/// What a read found: the member (index in configured order), its value, and the members
/// that failed before it.
pub(crate) struct Answer<T> {
    pub index: usize,
    pub value: T,
    pub skipped: Vec<BucketFailure>,
}

/// Requests made by the reads of one source set, for reports and budgets.
///
/// A request is *extra* when a sequential read would not have made it: one to a bucket
/// after the first that had the key (or had not answered yet when the read ended), or a
/// second GET of the same object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// Reads.
    pub reads: u64,
    /// Requests sent to buckets.
    pub requests: u64,
    /// Requests sequential reads would have sent for the same answers.
    pub sequential_requests: u64,
    /// `requests - sequential_requests`.
    pub extra_requests: u64,
    /// Requests started by a hedge timer.
    pub hedges: u64,
    /// Hedges not sent because the budget was spent.
    pub hedges_denied: u64,
}

impl ReadStats {
    /// Extra requests per sequential request (0.05: 5% more than sequential reads).
    pub fn extra_ratio(&self) -> f64 {
        if self.sequential_requests == 0 {
            0.0
        } else {
            self.extra_requests as f64 / self.sequential_requests as f64
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    sequential: AtomicU64,
    extra: AtomicU64,
    hedges: AtomicU64,
    denied: AtomicU64,
}

/// The latest 64 outcomes of one member in this set (bit set: it had the key).
#[derive(Debug, Default)]
struct HitHistory {
    bits: AtomicU64,
    count: AtomicU64,
}

impl HitHistory {
    fn record(&self, hit: bool) {
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b << 1 | u64::from(hit))
            });
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Share of hits among the recorded outcomes, once there are enough of them.
    fn rate(&self) -> Option<f64> {
        let n = self.count.load(Ordering::Relaxed).min(64) as u32;
        if (n as usize) < MIN_SAMPLES {
            return None;
        }
        let mask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        let hits = (self.bits.load(Ordering::Relaxed) & mask).count_ones();
        Some(f64::from(hits) / f64::from(n))
    }
}

/// The fallback engine over a fixed list of members. Cheap to clone (shared state: health
/// handles, hit histories, the hedge budget and the counters).
#[derive(Clone)]
pub(crate) struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// Name in "all buckets of `...` failed" and in logs.
    label: String,
    /// Backend named by the "not found" of a read that found nothing.
    miss_backend: String,
    names: Box<[String]>,
    on: FallbackOn,
    policy: ReadPolicy,
    health: Option<(HealthTracker, Box<[Arc<Slot>]>)>,
    /// Whether sequential reads are timed: with health kept and a hedged policy.
    timed: bool,
    hits: Box<[HitHistory]>,
    tokens: AtomicI64,
    counters: Counters,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("label", &self.inner.label)
            .field("members", &self.inner.names)
            .field("on", &self.inner.on)
            .field("policy", &self.inner.policy)
            .field("health", &self.inner.health.is_some())
            .finish()
    }
}

/// Priority order of one read: configured order unless some member is demoted.
enum Order {
    Configured(usize),
    Ranked(Vec<usize>),
}

impl Order {
    fn len(&self) -> usize {
        match self {
            Order::Configured(n) => *n,
            Order::Ranked(v) => v.len(),
        }
    }

    fn get(&self, rank: usize) -> usize {
        match self {
            Order::Configured(_) => rank,
            Order::Ranked(v) => v[rank],
        }
    }
}

/// Where one member stands within a parallel or hedged read.
enum State<T> {
    NotAsked,
    /// Asked at `start`; `sampled` once its latency went into the window as "at least the
    /// hedge delay" (see `Engine::hedged`).
    Running {
        start: Instant,
        sampled: bool,
    },
    Hit(T),
    Missed,
    Failed(StorageError),
}

struct Done<T> {
    rank: usize,
    latency: Duration,
    result: Result<T>,
}

async fn timed<T, Fut>(rank: usize, fut: Fut) -> Done<T>
where
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let result = fut.await;
    Done {
        rank,
        latency: start.elapsed(),
        result,
    }
}

/// A hedge delay, and whether it was learnt (or is the cap for want of observations).
#[derive(Debug, Clone, Copy)]
struct Delay {
    wait: Duration,
    learnt: bool,
}

impl Delay {
    fn learnt(wait: Duration) -> Self {
        Delay { wait, learnt: true }
    }

    fn cold(wait: Duration) -> Self {
        Delay {
            wait,
            learnt: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Hedge {
    /// A second request to the member at this rank.
    Again(usize),
    /// The member at this rank.
    Next(usize),
}

impl Engine {
    /// An engine over `names` (configured order). `label` names the set in errors and
    /// logs, `miss_backend` is the backend of the "not found" of a read that found nothing.
    /// With `health`, answers are recorded there and demoted members are tried last.
    pub(crate) fn new(
        label: impl Into<String>,
        miss_backend: impl Into<String>,
        names: Vec<String>,
        on: FallbackOn,
        policy: ReadPolicy,
        health: Option<HealthTracker>,
    ) -> Self {
        assert!(
            !names.is_empty(),
            "a fallback engine needs at least one member; this is a programming error"
        );
        let health = health.map(|h| {
            let slots = names.iter().map(|n| h.slot(n)).collect();
            (h, slots)
        });
        let budget = match policy {
            ReadPolicy::Hedged(h) if h.budget == 0.0 => 0,
            _ => BURST,
        };
        Engine {
            inner: Arc::new(Inner {
                label: label.into(),
                miss_backend: miss_backend.into(),
                hits: names.iter().map(|_| HitHistory::default()).collect(),
                names: names.into(),
                on,
                policy,
                timed: health.is_some() && matches!(policy, ReadPolicy::Hedged(_)),
                health,
                tokens: AtomicI64::new(budget),
                counters: Counters::default(),
            }),
        }
    }

    /// The same members and settings with another policy and health tracker (fresh
    /// statistics).
    pub(crate) fn reconfigured(&self, policy: ReadPolicy, health: Option<HealthTracker>) -> Self {
        let i = &self.inner;
        Engine::new(
            i.label.clone(),
            i.miss_backend.clone(),
            i.names.to_vec(),
            i.on,
            policy,
            health,
        )
    }

    pub(crate) fn policy(&self) -> ReadPolicy {
        self.inner.policy
    }

    pub(crate) fn name(&self, index: usize) -> &str {
        &self.inner.names[index]
    }

    pub(crate) fn stats(&self) -> ReadStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReadStats {
            reads: get(&c.reads),
            requests: get(&c.sequential) + get(&c.extra),
            sequential_requests: get(&c.sequential),
            extra_requests: get(&c.extra),
            hedges: get(&c.hedges),
            hedges_denied: get(&c.denied),
        }
    }

    fn order(&self) -> Order {
        let n = self.inner.names.len();
        if let Some((tracker, slots)) = &self.inner.health
            && slots.iter().any(|s| tracker.slot_is_demoted(s))
        {
            let (mut ranked, demoted): (Vec<usize>, Vec<usize>) =
                (0..n).partition(|&i| !tracker.slot_is_demoted(&slots[i]));
            ranked.extend(demoted);
            return Order::Ranked(ranked);
        }
        Order::Configured(n)
    }

    /// Member indices in the order reads try them now: configured order, demoted last.
    pub(crate) fn priority(&self) -> Vec<usize> {
        let order = self.order();
        (0..order.len()).map(|r| order.get(r)).collect()
    }

    /// Record an answer of member `index` obtained outside [`read`](Self::read) (listings).
    pub(crate) fn observe<T>(&self, index: usize, r: &Result<T>, latency: Duration) {
        if let Some((_, slots)) = &self.inner.health {
            slots[index].record(r, latency);
        }
    }

    fn slot(&self, index: usize) -> Option<&Slot> {
        self.inner.health.as_ref().map(|(_, s)| &*s[index])
    }

    fn count(&self, requests: u64, sequential: u64) {
        let c = &self.inner.counters;
        c.reads.fetch_add(1, Ordering::Relaxed);
        c.sequential.fetch_add(sequential, Ordering::Relaxed);
        let extra = requests.saturating_sub(sequential);
        if extra > 0 {
            c.extra.fetch_add(extra, Ordering::Relaxed);
        }
    }

    fn skip(&self, index: usize, key: &str, error: StorageError) -> BucketFailure {
        let bucket = &self.inner.names[index];
        tracing::warn!(set = %self.inner.label, bucket = %bucket, key, error = %error, "bucket failed; trying the next one");
        BucketFailure {
            bucket: bucket.clone(),
            error,
        }
    }

    /// The error of a read that found nothing: "not found" if any member said so (failures
    /// elsewhere are logged), the one failure of a one-member read as it is, else every
    /// failure.
    fn exhausted(
        &self,
        key: &str,
        misses: usize,
        mut failures: Vec<BucketFailure>,
    ) -> StorageError {
        if misses > 0 {
            if !failures.is_empty() {
                tracing::warn!(
                    set = %self.inner.label,
                    key,
                    failed = failures.len(),
                    "not found in the buckets that answered; some buckets failed and were skipped"
                );
            }
            return StorageError::NotFound {
                backend: self.inner.miss_backend.clone(),
                key: key.to_string(),
            };
        }
        if failures.len() == 1 && self.inner.names.len() == 1 {
            return failures.pop().expect("one failure").error;
        }
        AllBucketsFailed {
            set: self.inner.label.clone(),
            failures,
        }
        .into_error()
    }

    /// Read `key` under `policy`: `op(index)` asks the member at `index` (configured order).
    /// A hit returns at once (parallel: once every member above it has missed); a member
    /// that fails is logged, recorded and skipped as [`FallbackOn`] says.
    pub(crate) async fn read<T, F, Fut>(
        &self,
        key: &str,
        policy: ReadPolicy,
        op: F,
    ) -> Result<Answer<T>>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let order = self.order();
        // The concurrent paths are boxed so that their larger state (a set of running
        // requests, timers) does not inflate the future of every sequential read.
        match policy {
            ReadPolicy::Sequential => self.sequential(key, &order, &op).await,
            ReadPolicy::Parallel => Box::pin(self.parallel(key, &order, &op)).await,
            ReadPolicy::Hedged(h) => Box::pin(self.hedged(key, &order, h, &op)).await,
        }
    }

    async fn sequential<T, F, Fut>(&self, key: &str, order: &Order, op: &F) -> Result<Answer<T>>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let n = order.len();
        let mut misses = 0;
        let mut skipped = Vec::new();
        // Timed only where adaptive hedging learns from it, with one clock read per
        // request (each starts when the previous one ended): the clock is the largest cost
        // of this loop after the requests themselves.
        let mut last = self.inner.timed.then(Instant::now);
        for rank in 0..n {
            let i = order.get(rank);
            let r = op(i).await;
            if let Some((_, slots)) = &self.inner.health {
                let latency = last.map(|start| {
                    let end = Instant::now();
                    last = Some(end);
                    end - start
                });
                slots[i].record_answer(&r, latency, true);
            }
            match self.inner.on.classify(r) {
                Class::Hit(value) => {
                    self.count(rank as u64 + 1, rank as u64 + 1);
                    return Ok(Answer {
                        index: i,
                        value,
                        skipped,
                    });
                }
                Class::Miss => misses += 1,
                Class::Failed(e) => skipped.push(self.skip(i, key, e)),
                Class::Final(e) => {
                    self.count(rank as u64 + 1, rank as u64 + 1);
                    return Err(e);
                }
            }
        }
        self.count(n as u64, n as u64);
        Err(self.exhausted(key, misses, skipped))
    }

    /// Record a finished request of a parallel or hedged read and classify it.
    /// `sampled`: its latency is in the window already (it was hedged past).
    fn finish<T>(&self, order: &Order, done: Done<T>, sampled: bool) -> (usize, Class<T>) {
        let i = order.get(done.rank);
        if let Some(slot) = self.slot(i) {
            slot.record_answer(&done.result, Some(done.latency), !sampled);
        }
        let class = self.inner.on.classify(done.result);
        let hit = match &class {
            Class::Hit(_) => Some(true),
            Class::Miss | Class::Failed(_) => Some(false),
            Class::Final(_) => None,
        };
        if let Some(hit) = hit {
            self.inner.hits[i].record(hit);
        }
        (i, class)
    }

    /// Count a finished parallel or hedged read and return what sequential reads would
    /// have spent on it: every member up to the first that hit or had not answered.
    /// Requests still running, and not yet sampled when they were hedged past, are recorded
    /// at their elapsed time (a lower bound of their latency).
    fn settle<T>(&self, order: &Order, states: &[State<T>], requests: u64) -> u64 {
        let mut sequential = None;
        for (rank, s) in states.iter().enumerate() {
            match s {
                State::Running { start, sampled } => {
                    if !sampled && let Some(slot) = self.slot(order.get(rank)) {
                        slot.record_latency(start.elapsed());
                    }
                    sequential.get_or_insert(rank as u64 + 1);
                }
                State::Hit(_) => {
                    sequential.get_or_insert(rank as u64 + 1);
                }
                _ => {}
            }
        }
        let asked = states
            .iter()
            .rposition(|s| !matches!(s, State::NotAsked))
            .map_or(0, |r| r as u64 + 1);
        let sequential = sequential.unwrap_or(asked);
        self.count(requests, sequential);
        sequential
    }

    fn failures<T>(&self, order: &Order, states: &mut [State<T>]) -> Vec<BucketFailure> {
        states
            .iter_mut()
            .enumerate()
            .filter_map(|(rank, s)| match std::mem::replace(s, State::NotAsked) {
                State::Failed(error) => Some(BucketFailure {
                    bucket: self.inner.names[order.get(rank)].clone(),
                    error,
                }),
                _ => None,
            })
            .collect()
    }

    async fn parallel<T, F, Fut>(&self, key: &str, order: &Order, op: &F) -> Result<Answer<T>>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let n = order.len();
        let now = Instant::now();
        let mut states: Vec<State<T>> = (0..n)
            .map(|_| State::Running {
                start: now,
                sampled: false,
            })
            .collect();
        let mut running: FuturesUnordered<_> = (0..n)
            .map(|rank| timed(rank, op(order.get(rank))))
            .collect();
        let mut misses = 0;
        while let Some(done) = running.next().await {
            let rank = done.rank;
            let (i, class) = self.finish(order, done, false);
            states[rank] = match class {
                Class::Hit(v) => State::Hit(v),
                Class::Miss => {
                    misses += 1;
                    State::Missed
                }
                Class::Failed(e) => {
                    let f = self.skip(i, key, e);
                    State::Failed(f.error)
                }
                Class::Final(e) => {
                    self.settle(order, &states, n as u64);
                    return Err(e);
                }
            };
            // The highest-priority hit wins once every member above it has missed.
            let Some(first) = states
                .iter()
                .position(|s| matches!(s, State::Running { .. } | State::Hit(_)))
            else {
                continue;
            };
            if matches!(states[first], State::Hit(_)) {
                self.settle(order, &states, n as u64);
                let State::Hit(value) = std::mem::replace(&mut states[first], State::Missed) else {
                    unreachable!("matched just above")
                };
                return Ok(Answer {
                    index: order.get(first),
                    value,
                    skipped: self.failures(order, &mut states),
                });
            }
        }
        self.settle(order, &states, n as u64);
        let failures = self.failures(order, &mut states);
        Err(self.exhausted(key, misses, failures))
    }

    /// How long to wait, after asking the member at `index`, before asking the next.
    fn delay_past(&self, index: usize, h: &Hedging) -> Delay {
        let (quantile, floor, cap) = match h.delay {
            HedgeDelay::Fixed(d) => return Delay::learnt(d),
            HedgeDelay::Adaptive {
                quantile,
                floor,
                cap,
            } => (quantile, floor, cap),
        };
        let Some(hit_rate) = self.inner.hits[index].rate() else {
            return Delay::cold(cap);
        };
        // Hedging at delay d is wasted when the member has the key and answers after d:
        // P = hit_rate * P(latency > d). Keep P within 1 - quantile.
        let level = if hit_rate > 0.0 {
            1.0 - (1.0 - quantile) / hit_rate
        } else {
            f64::NEG_INFINITY
        };
        // (With a tolerance: 1 - 0.1 / 0.1 is not exactly zero in floating point.)
        if level <= 1e-9 {
            return Delay::learnt(Duration::ZERO);
        }
        self.latency_quantile(index, level)
            .map_or(Delay::cold(cap), |q| Delay::learnt(q.clamp(floor, cap)))
    }

    /// How long to wait before a second request to the member at `index`: such a request
    /// is always extra if the first one answers, so the plain `quantile` applies.
    fn delay_again(&self, index: usize, h: &Hedging) -> Delay {
        match h.delay {
            HedgeDelay::Fixed(d) => Delay::learnt(d),
            HedgeDelay::Adaptive {
                quantile,
                floor,
                cap,
            } => self
                .latency_quantile(index, quantile)
                .map_or(Delay::cold(cap), |q| Delay::learnt(q.clamp(floor, cap))),
        }
    }

    fn latency_quantile(&self, index: usize, level: f64) -> Option<Duration> {
        self.slot(index)?.latency_quantile(level, MIN_SAMPLES)
    }

    fn next_hedge<T>(
        &self,
        h: &Hedging,
        order: &Order,
        states: &[State<T>],
        asked: usize,
        again_sent: bool,
    ) -> Option<(Hedge, Delay)> {
        let front = asked - 1;
        let index = order.get(front);
        let past = (asked < order.len()).then(|| self.delay_past(index, h));
        if h.within_bucket
            && !again_sent
            && matches!(states[front], State::Running { .. })
            && past.is_none_or(|d| !d.wait.is_zero())
        {
            return Some((Hedge::Again(front), self.delay_again(index, h)));
        }
        past.map(|d| (Hedge::Next(asked), d))
    }

    /// Take in the answers that are ready at the same instant as a hit, so that members
    /// which missed are not counted as if they might have had the key.
    fn drain_ready<T, S>(&self, order: &Order, running: &mut S, states: &mut [State<()>])
    where
        S: futures::Stream<Item = Done<T>> + Unpin,
    {
        while let Some(Some(done)) = running.next().now_or_never() {
            let rank = done.rank;
            let running_now = matches!(states[rank], State::Running { .. });
            let (_, class) = self.finish(order, done, sampled(&states[rank]));
            if running_now {
                states[rank] = match class {
                    Class::Hit(_) => State::Hit(()),
                    Class::Miss => State::Missed,
                    Class::Failed(e) | Class::Final(e) => State::Failed(e),
                };
            }
        }
    }

    fn take_token(&self) -> bool {
        self.inner
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t >= TOKEN).then_some(t - TOKEN)
            })
            .is_ok()
    }

    /// Settle the budget of one hedged read: tokens reserved for hedges that turned out
    /// not to be extra come back, extra requests beyond them are charged, and the read
    /// earns `budget` tokens per sequential request.
    fn pay(&self, h: &Hedging, reserved: u64, requests: u64, sequential: u64) {
        let extra = requests.saturating_sub(sequential) as i64;
        let earned = (h.budget * sequential as f64 * TOKEN as f64) as i64;
        let delta = earned + reserved as i64 * TOKEN - extra * TOKEN;
        let cap = if h.budget > 0.0 { BURST } else { 0 };
        let _ = self
            .inner
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t + delta).min(cap))
            });
    }

    async fn hedged<T, F, Fut>(
        &self,
        key: &str,
        order: &Order,
        h: Hedging,
        op: &F,
    ) -> Result<Answer<T>>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let n = order.len();
        // Values are returned as soon as they arrive, so the states hold none.
        let mut states: Vec<State<()>> = (0..n).map(|_| State::NotAsked).collect();
        let mut running = FuturesUnordered::new();
        let mut last = Instant::now();
        running.push(timed(0, op(order.get(0))));
        states[0] = State::Running {
            start: last,
            sampled: false,
        };
        let (mut asked, mut requests, mut reserved) = (1, 1u64, 0u64);
        let mut again_sent = false;
        let mut out_of_budget = false;
        let mut misses = 0;
        loop {
            let hedge = if out_of_budget {
                None
            } else {
                self.next_hedge(&h, order, &states, asked, again_sent)
            };
            let at = hedge.map(|(_, d)| last + d.wait);
            tokio::select! {
                biased;
                Some(done) = running.next() => {
                    let rank = done.rank;
                    let was_running = matches!(states[rank], State::Running { .. });
                    let (i, class) = self.finish(order, done, sampled(&states[rank]));
                    match class {
                        Class::Hit(value) => {
                            states[rank] = State::Hit(());
                            self.drain_ready(order, &mut running, &mut states);
                            let sequential = self.settle(order, &states, requests);
                            self.pay(&h, reserved, requests, sequential);
                            return Ok(Answer {
                                index: i,
                                value,
                                skipped: self.failures(order, &mut states),
                            });
                        }
                        Class::Final(e) => {
                            let sequential = self.settle(order, &states, requests);
                            self.pay(&h, reserved, requests, sequential);
                            return Err(e);
                        }
                        // A second answer for the same member says nothing new, but a miss
                        // is the better word than an earlier failure.
                        Class::Miss => {
                            if !matches!(states[rank], State::Missed) {
                                misses += 1;
                                states[rank] = State::Missed;
                            }
                        }
                        Class::Failed(e) => {
                            if was_running {
                                let f = self.skip(i, key, e);
                                states[rank] = State::Failed(f.error);
                            }
                        }
                    }
                    // A fast miss (or failure) frees its slot: ask the next member now.
                    if was_running && asked < n {
                        let now = Instant::now();
                        running.push(timed(asked, op(order.get(asked))));
                        states[asked] = State::Running {
                            start: now,
                            sampled: false,
                        };
                        asked += 1;
                        requests += 1;
                        again_sent = false;
                        last = now;
                    }
                }
                _ = sleep_until_opt(at), if at.is_some() => {
                    let (what, delay) = hedge.expect("a timer only runs for a hedge");
                    if self.take_token() {
                        self.inner.counters.hedges.fetch_add(1, Ordering::Relaxed);
                        // The member hedged past has taken at least the delay: that is its
                        // sample if it never answers (the read ends first). Recording the
                        // delay, not the later moment the read ended, keeps slow answers
                        // that were cut short from pushing the next delay up step by step.
                        // Not while the delay is the cap for want of data: that would
                        // teach the cap instead of the bucket's latency.
                        let front = asked - 1;
                        if let State::Running { start, sampled: sampled @ false } =
                            &mut states[front]
                            && delay.learnt
                        {
                            *sampled = true;
                            if let Some(slot) = self.slot(order.get(front)) {
                                slot.record_latency(at.expect("a timer has a time") - *start);
                            }
                        }
                        reserved += 1;
                        requests += 1;
                        let rank = match what {
                            Hedge::Again(rank) => {
                                again_sent = true;
                                rank
                            }
                            Hedge::Next(rank) => {
                                states[rank] = State::Running {
                                    start: Instant::now(),
                                    sampled: false,
                                };
                                asked += 1;
                                again_sent = false;
                                rank
                            }
                        };
                        running.push(timed(rank, op(order.get(rank))));
                        // On schedule, not from "now": the timer fires up to a tick late,
                        // and that lateness must not add up over several hedges.
                        last = at.expect("checked by the branch guard");
                    } else {
                        self.inner.counters.denied.fetch_add(1, Ordering::Relaxed);
                        out_of_budget = true;
                    }
                }
                else => break,
            }
        }
        let sequential = self.settle(order, &states, requests);
        self.pay(&h, reserved, requests, sequential);
        let failures = self.failures(order, &mut states);
        Err(self.exhausted(key, misses, failures))
    }
}

fn sampled<T>(s: &State<T>) -> bool {
    matches!(s, State::Running { sampled: true, .. })
}

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    //! The hedging logic on a paused clock: every time below is exact.

    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// A scripted member: whether it has the key, and how long each call takes (the
    /// scripted latencies first, then `usual`).
    struct Member {
        has: bool,
        usual: Duration,
        script: Mutex<VecDeque<Duration>>,
        calls: AtomicU32,
    }

    fn member(has: bool, usual_ms: u64) -> Member {
        Member {
            has,
            usual: Duration::from_millis(usual_ms),
            script: Mutex::default(),
            calls: AtomicU32::new(0),
        }
    }

    impl Member {
        fn then(&self, ms: u64) {
            self.script
                .lock()
                .unwrap()
                .push_back(Duration::from_millis(ms));
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }

        fn call(&self, i: usize) -> impl Future<Output = Result<usize>> + use<'_> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let latency = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(self.usual);
            async move {
                tokio::time::sleep(latency).await;
                if self.has {
                    Ok(i)
                } else {
                    Err(StorageError::NotFound {
                        backend: format!("m{i}"),
                        key: "k".into(),
                    })
                }
            }
        }
    }

    fn engine(n: usize, policy: ReadPolicy) -> Engine {
        Engine::new(
            "t",
            "set `t`",
            (0..n).map(|i| format!("m{i}")).collect(),
            FallbackOn::MissOrFailure,
            policy,
            Some(HealthTracker::default()),
        )
    }

    /// One read; which member answered and how long it took.
    async fn read(e: &Engine, members: &[Member]) -> (usize, Duration) {
        let start = Instant::now();
        let a = e
            .read("k", e.policy(), |i| members[i].call(i))
            .await
            .expect("a hit");
        (a.index, start.elapsed())
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn the_delay_is_learnt_from_observed_latency() {
        let members = [member(true, 10), member(true, 5)];
        let e = engine(2, ReadPolicy::hedged());
        // Cold: nothing observed yet, so a slow primary is hedged after the cap (50 ms).
        members[0].then(300);
        assert_eq!(read(&e, &members).await, (1, ms(55)));
        // The primary answers in 10 ms from now on; with enough answers its p95 is the delay.
        for _ in 0..40 {
            assert_eq!(read(&e, &members).await, (0, ms(10)));
        }
        assert_eq!(
            e.stats().hedges,
            1,
            "a primary answering on time is never hedged"
        );
        members[0].then(300);
        assert_eq!(
            read(&e, &members).await,
            (1, ms(15)),
            "hedged after the primary's observed p95 (10 ms), not the 50 ms cap"
        );
        let s = e.stats();
        assert_eq!(
            (s.reads, s.requests, s.hedges, s.extra_requests),
            (42, 44, 2, 2)
        );
    }

    #[test]
    fn the_delay_is_a_hit_rate_adjusted_quantile_between_floor_and_cap() {
        let h = Hedging::default().with_delay(HedgeDelay::Adaptive {
            quantile: 0.9,
            floor: ms(4),
            cap: ms(30),
        });
        // Latencies 1..=20 ms, and a hit history of `hits` in 20 answers.
        let delay = |hits: usize, scale: u64| {
            let e = engine(2, ReadPolicy::Hedged(h));
            for n in 1..=20 {
                e.slot(0).unwrap().record_latency(ms(n * scale));
                e.inner.hits[0].record(n as usize <= hits);
            }
            e.delay_past(0, &h).wait
        };
        // Always has the key: the p90 (18 ms).
        assert_eq!(delay(20, 1), ms(18));
        // Has it half the time: waste = 0.5 * P(latency > d) <= 0.1, so the p80 (16 ms).
        assert_eq!(delay(10, 1), ms(16));
        // Has it at most 10% of the time: hedging now wastes at most 10%.
        assert_eq!(delay(2, 1), Duration::ZERO);
        // Clamped: the p90 of 10..=200 ms is 180 ms, over the cap; of 0.1..2 ms, under the floor.
        assert_eq!(delay(20, 10), ms(30));
        let e = engine(2, ReadPolicy::Hedged(h));
        for _ in 0..20 {
            e.slot(0)
                .unwrap()
                .record_latency(Duration::from_micros(500));
            e.inner.hits[0].record(true);
        }
        assert_eq!(e.delay_past(0, &h).wait, ms(4));
        // Too few observations: the cap.
        let e = engine(2, ReadPolicy::Hedged(h));
        e.slot(0).unwrap().record_latency(ms(1));
        assert_eq!(e.delay_past(0, &h).wait, ms(30));
        // A second GET of the same object is always extra if the first answers: plain p90.
        assert_eq!(
            {
                let e = engine(2, ReadPolicy::Hedged(h));
                for n in 1..=20 {
                    e.slot(0).unwrap().record_latency(ms(n));
                    e.inner.hits[0].record(false);
                }
                (e.delay_past(0, &h).wait, e.delay_again(0, &h).wait)
            },
            (Duration::ZERO, ms(18))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_miss_moves_on_at_once_and_a_bucket_that_never_has_the_key_is_hedged_past() {
        let members = [
            member(false, 10),
            member(false, 10),
            member(false, 10),
            member(true, 10),
        ];
        let e = engine(4, ReadPolicy::hedged());
        // Cold (delay = the 50 ms cap): each miss moves on at once, so 4 x 10 ms.
        assert_eq!(read(&e, &members).await, (3, ms(40)));
        for _ in 1..MIN_SAMPLES {
            read(&e, &members).await;
        }
        // The first three never have the key: waiting for them buys nothing, so all four
        // are asked at once, and no request is extra (sequential asks all four too).
        assert_eq!(read(&e, &members).await, (3, ms(10)));
        let s = e.stats();
        assert_eq!(s.requests, 4 * 17);
        assert_eq!((s.extra_requests, s.sequential_requests), (0, 4 * 17));
        assert_eq!(s.hedges_denied, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_caps_extra_requests() {
        // Every hedge is wasted: the primary always has the key and answers in 10 ms, but
        // the delay is fixed at 1 ms.
        let members = [member(true, 10), member(true, 10)];
        let e = engine(2, ReadPolicy::Hedged(Hedging::fixed(ms(1))));
        for _ in 0..1111 {
            assert_eq!(read(&e, &members).await, (0, ms(10)));
        }
        let s = e.stats();
        // 100 saved tokens and 0.1 per read: the first 111 reads hedge (the last 11 on the
        // tokens the first 110 earned), then one read in ten.
        assert_eq!(s.hedges, 111 + 100);
        assert_eq!(s.extra_requests, 211);
        assert_eq!(s.hedges_denied, 1111 - 211);
        assert_eq!((s.requests, s.sequential_requests), (1111 + 211, 1111));
        assert!(s.extra_requests as f64 <= 0.1 * 1111.0 + 100.0);
        assert_eq!(members[1].calls(), 211);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_budget_never_hedges() {
        let members = [member(true, 10), member(true, 1)];
        let e = engine(
            2,
            ReadPolicy::Hedged(Hedging::fixed(ms(1)).with_budget(0.0)),
        );
        for _ in 0..5 {
            assert_eq!(read(&e, &members).await, (0, ms(10)));
        }
        assert_eq!((e.stats().hedges, e.stats().hedges_denied), (0, 5));
        assert_eq!(members[1].calls(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn hedging_within_one_bucket_sends_a_second_get_of_the_same_object() {
        let within = ReadPolicy::Hedged(Hedging::fixed(ms(20)).with_within_bucket(true));
        let members = [member(true, 10)];
        members[0].then(200);
        let e = engine(1, within);
        assert_eq!(
            read(&e, &members).await,
            (0, ms(30)),
            "20 ms + the 10 ms retry"
        );
        assert_eq!(members[0].calls(), 2);
        assert_eq!(e.stats().extra_requests, 1);
        // Off by default: the slow GET is waited for.
        let members = [member(true, 10)];
        members[0].then(200);
        let e = engine(1, ReadPolicy::Hedged(Hedging::fixed(ms(20))));
        assert_eq!(read(&e, &members).await, (0, ms(200)));
        assert_eq!(members[0].calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn within_bucket_comes_before_the_next_bucket_and_adapts_too() {
        let members = [member(true, 10), member(true, 10)];
        let e = engine(
            2,
            ReadPolicy::Hedged(Hedging::default().with_within_bucket(true)),
        );
        for _ in 0..MIN_SAMPLES {
            read(&e, &members).await;
        }
        // Both GETs to the primary are slow: the second one goes out after the learnt
        // 10 ms, the next bucket 10 ms later, and answers 10 ms after that.
        members[0].then(500);
        members[0].then(500);
        assert_eq!(read(&e, &members).await, (1, ms(30)));
        assert_eq!((members[0].calls(), members[1].calls()), (18, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn parallel_counts_requests_below_the_winner_as_extra() {
        let members = [member(false, 5), member(true, 5), member(true, 5)];
        let e = engine(3, ReadPolicy::Parallel);
        assert_eq!(read(&e, &members).await, (1, ms(5)));
        let s = e.stats();
        assert_eq!(
            (s.requests, s.sequential_requests, s.extra_requests),
            (3, 2, 1)
        );
    }

    #[test]
    fn a_read_future_is_small() {
        let members = [member(true, 1)];
        let e = engine(1, ReadPolicy::Sequential);
        let read = e.read("k", ReadPolicy::Sequential, |i| members[i].call(i));
        // The sequential loop and a box for the others, not the hedged state machine.
        assert!(
            std::mem::size_of_val(&read) < 512,
            "{}",
            std::mem::size_of_val(&read)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn sequential_reads_are_timed_only_where_hedging_learns_from_them() {
        let members = [member(false, 3), member(true, 7)];
        // A hedged set reading sequentially (e.g. `get_with`) feeds the latency windows,
        // one sample per request.
        let e = engine(2, ReadPolicy::hedged());
        let start = Instant::now();
        e.read("k", ReadPolicy::Sequential, |i| members[i].call(i))
            .await
            .unwrap();
        assert_eq!(start.elapsed(), ms(10));
        let latency = |e: &Engine, i: usize| e.slot(i).unwrap().latency_quantile(1.0, 1);
        assert_eq!((latency(&e, 0), latency(&e, 1)), (Some(ms(3)), Some(ms(7))));
        // A sequential set keeps health (answers, failures) without reading the clock.
        let e = engine(2, ReadPolicy::Sequential);
        assert_eq!(read(&e, &members).await, (1, ms(10)));
        assert_eq!((latency(&e, 0), latency(&e, 1)), (None, None));
        let h = e.inner.health.as_ref().unwrap().0.snapshot("m0", None);
        assert_eq!((h.ok, h.latency_ms), (1, None));
    }
}
