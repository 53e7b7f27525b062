//! Reading one key from an ordered set of buckets under a policy.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use storage_core::{Bucket, ErrorKind, Result, StorageError};
use tokio::time::Instant;

use crate::config::{DEFAULT_HEDGE_DELAY, PolicyName, SourceConfig};
use crate::failure::{AllBucketsFailed, BucketFailure, is_final_answer};
use crate::health::HealthTracker;

/// How a read over several buckets proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase", tag = "policy")]
pub enum ReadPolicy {
    /// One bucket after another in priority order; stop at the first hit (seed 000).
    #[default]
    Sequential,
    /// Every bucket at once; the hit from the highest-priority bucket wins, so the answer
    /// is the same as `Sequential`'s, in the time of the slowest bucket that must be asked.
    /// It costs a request to every bucket (and, for `get`, possibly several bodies): use it
    /// for small objects or when latency matters more than egress.
    Parallel,
    /// Ask the first bucket; if it has not answered after `delay` (or has missed), also ask
    /// the next, and so on. The first hit wins: this trades strict priority for latency.
    Hedged {
        /// Delay before starting the next bucket.
        #[serde(serialize_with = "ser_duration")]
        delay: Duration,
    },
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}ms", d.as_millis()))
}

impl ReadPolicy {
    /// The policy a `[sources.NAME]` table describes.
    pub fn from_config(source: &SourceConfig) -> Self {
        match source.policy {
            PolicyName::Sequential => ReadPolicy::Sequential,
            PolicyName::Parallel => ReadPolicy::Parallel,
            PolicyName::Hedged => ReadPolicy::Hedged {
                delay: source.hedge_delay.unwrap_or(DEFAULT_HEDGE_DELAY),
            },
        }
    }

    /// Parse `sequential`, `parallel`, `hedged` or `hedged:50ms` (for command lines).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "sequential" => Ok(ReadPolicy::Sequential),
            "parallel" => Ok(ReadPolicy::Parallel),
            "hedged" => Ok(ReadPolicy::Hedged {
                delay: DEFAULT_HEDGE_DELAY,
            }),
            other => match other.strip_prefix("hedged:") {
                Some(d) => storage_core::config::parse_duration(d)
                    .map(|delay| ReadPolicy::Hedged { delay })
                    .map_err(|e| StorageError::invalid_input("policy", e)),
                None => Err(StorageError::invalid_input(
                    "policy",
                    format!(
                        "`{other}` is not a read policy; use sequential, parallel, hedged or hedged:50ms"
                    ),
                )),
            },
        }
    }
}

/// A value read from one bucket of a set, and which bucket answered.
#[derive(Debug)]
pub struct Found<T> {
    /// Bucket handle name that answered.
    pub bucket: String,
    /// What it answered.
    pub value: T,
    /// Buckets that failed (were skipped) before the answer was found.
    pub skipped: Vec<BucketFailure>,
}

enum Outcome<T> {
    Hit(T),
    Miss,
    Failed(StorageError),
}

/// Run `op` against `buckets` (already in priority order) under `policy`.
///
/// A hit returns at once. A bucket that fails is logged, recorded in `health` and skipped.
/// If no bucket has the object and at least one said so, the result is `NotFound` (naming
/// the set); if every bucket failed, an [`AllBucketsFailed`] error lists each failure.
pub async fn read_any<T, F, Fut>(
    set: &str,
    key: &str,
    buckets: &[Bucket],
    policy: ReadPolicy,
    health: &HealthTracker,
    op: F,
) -> Result<Found<T>>
where
    F: Fn(Bucket) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if buckets.is_empty() {
        return Err(StorageError::invalid_input(
            "buckets",
            format!("set `{set}` has no buckets to read `{key}` from"),
        ));
    }
    let attempt = |i: usize| -> BoxFuture<'static, (usize, Result<T>)> {
        let bucket = buckets[i].clone();
        let name = bucket.name().to_string();
        let health = health.clone();
        let fut = op(bucket);
        Box::pin(async move {
            let start = Instant::now();
            let r = fut.await;
            health.record(&name, &r, start.elapsed());
            (i, r)
        })
    };
    let mut outcomes: Vec<Option<Outcome<T>>> = (0..buckets.len()).map(|_| None).collect();
    let classify = |i: usize, r: Result<T>| -> Result<Outcome<T>> {
        match r {
            Ok(v) => Ok(Outcome::Hit(v)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Outcome::Miss),
            Err(e) if is_final_answer(&e) => Err(e),
            Err(e) => {
                tracing::warn!(set, bucket = buckets[i].name(), key, error = %e, "bucket failed; trying the next one");
                Ok(Outcome::Failed(e))
            }
        }
    };
    match policy {
        ReadPolicy::Sequential => {
            for i in 0..buckets.len() {
                let (_, r) = attempt(i).await;
                match classify(i, r)? {
                    Outcome::Hit(v) => return Ok(found(buckets, i, v, &mut outcomes)),
                    other => outcomes[i] = Some(other),
                }
            }
        }
        ReadPolicy::Parallel => {
            let mut running: FuturesUnordered<_> = (0..buckets.len()).map(attempt).collect();
            while let Some((i, r)) = running.next().await {
                outcomes[i] = Some(classify(i, r)?);
                // The highest-priority hit wins once every bucket above it has missed.
                for j in 0..buckets.len() {
                    match &outcomes[j] {
                        None => break,
                        Some(Outcome::Hit(_)) => {
                            let Some(Outcome::Hit(v)) = outcomes[j].take() else {
                                unreachable!("checked just above")
                            };
                            return Ok(found(buckets, j, v, &mut outcomes));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        ReadPolicy::Hedged { delay } => {
            let mut running = FuturesUnordered::new();
            running.push(attempt(0));
            let mut next = 1;
            let mut last_start = Instant::now();
            while !running.is_empty() {
                let hedge = tokio::time::sleep_until(last_start + delay);
                tokio::select! {
                    Some((i, r)) = running.next() => {
                        match classify(i, r)? {
                            Outcome::Hit(v) => return Ok(found(buckets, i, v, &mut outcomes)),
                            other => outcomes[i] = Some(other),
                        }
                        // A miss frees its slot: ask the next bucket now rather than later.
                        if next < buckets.len() {
                            running.push(attempt(next));
                            next += 1;
                            last_start = Instant::now();
                        }
                    }
                    _ = hedge, if next < buckets.len() => {
                        running.push(attempt(next));
                        next += 1;
                        // On schedule, not from "now": the timer fires up to a tick late,
                        // and that lateness must not add up over several hedges.
                        last_start += delay;
                    }
                }
            }
        }
    }
    let misses = outcomes
        .iter()
        .filter(|o| matches!(o, Some(Outcome::Miss)))
        .count();
    let failures = take_failures(buckets, &mut outcomes);
    if misses > 0 {
        if !failures.is_empty() {
            tracing::warn!(
                set,
                key,
                failed = failures.len(),
                "not found in the buckets that answered; some buckets failed and were skipped"
            );
        }
        return Err(StorageError::NotFound {
            backend: format!("set `{set}`"),
            key: key.to_string(),
        });
    }
    Err(AllBucketsFailed {
        set: set.to_string(),
        failures,
    }
    .into_error())
}

fn take_failures<T>(buckets: &[Bucket], outcomes: &mut [Option<Outcome<T>>]) -> Vec<BucketFailure> {
    outcomes
        .iter_mut()
        .enumerate()
        .filter_map(|(i, o)| match o.take() {
            Some(Outcome::Failed(error)) => Some(BucketFailure {
                bucket: buckets[i].name().to_string(),
                error,
            }),
            _ => None,
        })
        .collect()
}

fn found<T>(
    buckets: &[Bucket],
    i: usize,
    value: T,
    outcomes: &mut [Option<Outcome<T>>],
) -> Found<T> {
    tracing::debug!(bucket = buckets[i].name(), priority = i, "read-any: found");
    Found {
        bucket: buckets[i].name().to_string(),
        value,
        skipped: take_failures(buckets, outcomes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies() {
        assert_eq!(
            ReadPolicy::parse("hedged:20ms").unwrap(),
            ReadPolicy::Hedged {
                delay: Duration::from_millis(20)
            }
        );
        assert_eq!(ReadPolicy::parse("parallel").unwrap(), ReadPolicy::Parallel);
        let err = ReadPolicy::parse("fastest").unwrap_err().to_string();
        assert!(err.contains("sequential, parallel, hedged"), "{err}");
    }
}
