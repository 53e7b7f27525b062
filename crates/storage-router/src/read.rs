//! Read policies: how a read over several buckets proceeds. The engine that carries them
//! out is [`crate::engine`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::ser::SerializeMap;
use storage_core::{Result, StorageError};

use crate::config::{DEFAULT_HEDGE_DELAY, PolicyName, SourceConfig};
use crate::failure::BucketFailure;

/// How a read over several buckets proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ReadPolicy {
    /// One bucket after another in priority order; stop at the first hit (seed 000).
    #[default]
    Sequential,
    /// Every bucket at once; the hit from the highest-priority bucket wins, so the answer
    /// is the same as `Sequential`'s, in the time of the slowest bucket that must be asked.
    /// It costs a request to every bucket (and, for `get`, possibly several bodies): use it
    /// for small objects or when latency matters more than egress.
    Parallel,
    /// Ask the first bucket; if it has not answered after a delay (or has missed), also ask
    /// the next, and so on. The first hit wins: this trades strict priority for latency.
    /// See [`Hedging`].
    Hedged(Hedging),
}

/// How hedged reads decide when to send the next request, and how many extra requests they
/// may spend.
///
/// - **Delay**: [`HedgeDelay::Adaptive`] (the default) learns it per bucket. Hedging past a
///   bucket is wasted only if that bucket would have had the key and answered later; the
///   delay is the shortest one that keeps that chance within `1 - quantile`: the
///   `1 - (1 - quantile) / hit_rate` quantile of the bucket's recent answer latencies,
///   clamped to `[floor, cap]`. A bucket that rarely has the key (hit rate at most
///   `1 - quantile`) is hedged past at once; one that always has it, after its `quantile`
///   latency. Until a bucket has 16 observed answers the delay is `cap`.
/// - **Fast miss**: a bucket that answers "not found" (or fails) frees its slot: the next
///   bucket is asked at once, whatever the delay.
/// - **Budget**: a request is *extra* when a sequential read would not have made it (a
///   bucket after the one that had the key, or a second GET of the same object). Each
///   read earns `budget` × its sequential requests in tokens (at most 100 saved up), each
///   hedge spends one, and a read with no token left waits like a sequential one. So over
///   time extra requests stay within `budget` of the sequential ones;
///   [`ReadStats`](crate::ReadStats) reports them.
/// - **Within one bucket** (opt-in): before moving on, send a second GET of the same
///   object to the bucket that is slow (another server may answer it sooner); with one
///   bucket this is the only hedge there is.
///
/// ```
/// use std::time::Duration;
/// use storage_router::{HedgeDelay, Hedging, ReadPolicy};
/// let p = ReadPolicy::Hedged(Hedging::default().with_budget(0.05).with_within_bucket(true));
/// assert_eq!(p.to_string(), "hedged adaptive p95 1ms..50ms, budget 5%, within bucket");
/// let fixed = ReadPolicy::parse("hedged:20ms").unwrap();
/// assert_eq!(fixed, ReadPolicy::Hedged(Hedging::fixed(Duration::from_millis(20))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hedging {
    /// When to send the next request.
    pub delay: HedgeDelay,
    /// Extra requests allowed, as a fraction of the requests sequential reads would make.
    pub budget: f64,
    /// Send a second GET to the same bucket before moving on to the next.
    pub within_bucket: bool,
}

/// When a hedged read sends its next request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// Always after this long.
    Fixed(Duration),
    /// Learnt from each bucket's recent latencies and hit rate; see [`Hedging`].
    Adaptive {
        /// Latency quantile of a bucket that always has the key (0 < q ≤ 1).
        quantile: f64,
        /// Least delay past a bucket that usually has the key.
        floor: Duration,
        /// Longest delay, and the delay while a bucket has too few observations.
        cap: Duration,
    },
}

/// Default `hedge_quantile`.
pub const DEFAULT_HEDGE_QUANTILE: f64 = 0.95;
/// Default `hedge_floor`.
pub const DEFAULT_HEDGE_FLOOR: Duration = Duration::from_millis(1);
/// Default `hedge_budget`.
pub const DEFAULT_HEDGE_BUDGET: f64 = 0.1;

impl Default for HedgeDelay {
    fn default() -> Self {
        HedgeDelay::Adaptive {
            quantile: DEFAULT_HEDGE_QUANTILE,
            floor: DEFAULT_HEDGE_FLOOR,
            cap: DEFAULT_HEDGE_DELAY,
        }
    }
}

impl Default for Hedging {
    fn default() -> Self {
        Hedging {
            delay: HedgeDelay::default(),
            budget: DEFAULT_HEDGE_BUDGET,
            within_bucket: false,
        }
    }
}

impl Hedging {
    /// Hedge after a fixed `delay`, with the default budget.
    pub fn fixed(delay: Duration) -> Self {
        Hedging {
            delay: HedgeDelay::Fixed(delay),
            ..Hedging::default()
        }
    }

    /// Use another delay rule.
    pub fn with_delay(mut self, delay: HedgeDelay) -> Self {
        self.delay = delay;
        self
    }

    /// Allow `budget` extra requests per sequential request (0.1: at most 10% more).
    pub fn with_budget(mut self, budget: f64) -> Self {
        self.budget = budget;
        self
    }

    /// Also hedge within one bucket (a second GET of the same object).
    pub fn with_within_bucket(mut self, yes: bool) -> Self {
        self.within_bucket = yes;
        self
    }

    /// Check the numbers; `Err((field, reason))` names the config field at fault.
    fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if !(self.budget.is_finite() && (0.0..=1.0).contains(&self.budget)) {
            return Err((
                "hedge_budget",
                format!(
                    "{} is not a fraction between 0 and 1; e.g. 0.1 allows 10% more requests than sequential reads",
                    self.budget
                ),
            ));
        }
        match self.delay {
            HedgeDelay::Fixed(d) if d.is_zero() => Err((
                "hedge_delay",
                "must be more than zero (zero would be policy = \"parallel\"); e.g. \"50ms\""
                    .into(),
            )),
            HedgeDelay::Fixed(_) => Ok(()),
            HedgeDelay::Adaptive {
                quantile,
                floor,
                cap,
            } => {
                if !(quantile.is_finite() && quantile > 0.0 && quantile <= 1.0) {
                    return Err((
                        "hedge_quantile",
                        format!("{quantile} is not a quantile above 0 and at most 1; e.g. 0.95"),
                    ));
                }
                if cap.is_zero() {
                    return Err(("hedge_cap", "must be more than zero; e.g. \"50ms\"".into()));
                }
                if floor > cap {
                    return Err((
                        "hedge_floor",
                        format!(
                            "{floor:?} is above hedge_cap ({cap:?}); the floor must not exceed the cap"
                        ),
                    ));
                }
                Ok(())
            }
        }
    }
}

impl ReadPolicy {
    /// Hedged reads with the adaptive defaults.
    pub fn hedged() -> Self {
        ReadPolicy::Hedged(Hedging::default())
    }

    /// The policy a `[sources.NAME]` table describes. An error names the field (relative to
    /// the table) and the fix.
    pub fn from_config(source: &SourceConfig) -> Result<Self> {
        let bad = |field: &str, reason: String| StorageError::invalid_config(field, reason);
        let hedge_fields = [
            ("hedge_delay", source.hedge_delay.is_some()),
            ("hedge_quantile", source.hedge_quantile.is_some()),
            ("hedge_floor", source.hedge_floor.is_some()),
            ("hedge_cap", source.hedge_cap.is_some()),
            ("hedge_budget", source.hedge_budget.is_some()),
            ("hedge_within_bucket", source.hedge_within_bucket.is_some()),
        ];
        if source.policy != PolicyName::Hedged {
            if let Some((field, _)) = hedge_fields.iter().find(|(_, set)| *set) {
                return Err(bad(
                    field,
                    format!(
                        "only applies to policy = \"hedged\" (this set's policy is {:?}); remove it or set policy = \"hedged\"",
                        source.policy
                    )
                    .to_lowercase(),
                ));
            }
            return Ok(match source.policy {
                PolicyName::Parallel => ReadPolicy::Parallel,
                _ => ReadPolicy::Sequential,
            });
        }
        let delay = match source.hedge_delay {
            Some(d) => {
                if let Some((field, _)) = hedge_fields[1..4].iter().find(|(_, set)| *set) {
                    return Err(bad(
                        field,
                        "tunes the adaptive delay, but hedge_delay fixes it; remove hedge_delay to adapt, or remove this".into(),
                    ));
                }
                HedgeDelay::Fixed(d)
            }
            None => HedgeDelay::Adaptive {
                quantile: source.hedge_quantile.unwrap_or(DEFAULT_HEDGE_QUANTILE),
                floor: source.hedge_floor.unwrap_or(DEFAULT_HEDGE_FLOOR),
                cap: source.hedge_cap.unwrap_or(DEFAULT_HEDGE_DELAY),
            },
        };
        let hedging = Hedging {
            delay,
            budget: source.hedge_budget.unwrap_or(DEFAULT_HEDGE_BUDGET),
            within_bucket: source.hedge_within_bucket.unwrap_or(false),
        };
        hedging
            .validate()
            .map_err(|(field, reason)| bad(field, reason))?;
        Ok(ReadPolicy::Hedged(hedging))
    }

    /// Parse `sequential`, `parallel`, `hedged` (adaptive) or `hedged:50ms` (fixed delay),
    /// for command lines.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        match s {
            "sequential" => Ok(ReadPolicy::Sequential),
            "parallel" => Ok(ReadPolicy::Parallel),
            "hedged" => Ok(ReadPolicy::hedged()),
            other => match other.strip_prefix("hedged:") {
                Some(d) => {
                    let h = storage_core::config::parse_duration(d)
                        .map(Hedging::fixed)
                        .map_err(|e| StorageError::invalid_input("policy", e))?;
                    h.validate()
                        .map_err(|(_, reason)| StorageError::invalid_input("policy", reason))?;
                    Ok(ReadPolicy::Hedged(h))
                }
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

impl fmt::Display for ReadPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadPolicy::Sequential => f.write_str("sequential"),
            ReadPolicy::Parallel => f.write_str("parallel"),
            ReadPolicy::Hedged(h) => {
                match h.delay {
                    HedgeDelay::Fixed(d) => write!(f, "hedged {d:?}")?,
                    HedgeDelay::Adaptive {
                        quantile,
                        floor,
                        cap,
                    } => write!(
                        f,
                        "hedged adaptive p{} {floor:?}..{cap:?}",
                        quantile * 100.0
                    )?,
                }
                write!(f, ", budget {}%", h.budget * 100.0)?;
                if h.within_bucket {
                    f.write_str(", within bucket")?;
                }
                Ok(())
            }
        }
    }
}

fn ms(d: &Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// `{"policy": "hedged", "delay": "adaptive", "quantile": 0.95, ...}`, for `--json`.
impl Serialize for ReadPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            ReadPolicy::Sequential => m.serialize_entry("policy", "sequential")?,
            ReadPolicy::Parallel => m.serialize_entry("policy", "parallel")?,
            ReadPolicy::Hedged(h) => {
                m.serialize_entry("policy", "hedged")?;
                match h.delay {
                    HedgeDelay::Fixed(d) => m.serialize_entry("delay", &ms(&d))?,
                    HedgeDelay::Adaptive {
                        quantile,
                        floor,
                        cap,
                    } => {
                        m.serialize_entry("delay", "adaptive")?;
                        m.serialize_entry("quantile", &quantile)?;
                        m.serialize_entry("floor", &ms(&floor))?;
                        m.serialize_entry("cap", &ms(&cap))?;
                    }
                }
                m.serialize_entry("budget", &h.budget)?;
                m.serialize_entry("within_bucket", &h.within_bucket)?;
            }
        }
        m.end()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies() {
        assert_eq!(
            ReadPolicy::parse("hedged:20ms").unwrap(),
            ReadPolicy::Hedged(Hedging::fixed(Duration::from_millis(20)))
        );
        assert_eq!(ReadPolicy::parse("hedged").unwrap(), ReadPolicy::hedged());
        assert_eq!(ReadPolicy::parse("parallel").unwrap(), ReadPolicy::Parallel);
        let err = ReadPolicy::parse("fastest").unwrap_err().to_string();
        assert!(err.contains("sequential, parallel, hedged"), "{err}");
        let err = ReadPolicy::parse("hedged:0ms").unwrap_err().to_string();
        assert!(err.contains("more than zero"), "{err}");
    }

    fn hedged_source() -> SourceConfig {
        SourceConfig {
            buckets: vec!["a".into()],
            policy: PolicyName::Hedged,
            ..SourceConfig::default()
        }
    }

    fn config_error(src: &SourceConfig) -> (String, String) {
        match ReadPolicy::from_config(src).unwrap_err() {
            StorageError::InvalidConfig { field, reason } => (field, reason),
            other => panic!("not a config error: {other}"),
        }
    }

    #[test]
    fn config_builds_adaptive_or_fixed_hedging() {
        assert_eq!(
            ReadPolicy::from_config(&hedged_source()).unwrap(),
            ReadPolicy::hedged()
        );
        let src = SourceConfig {
            hedge_quantile: Some(0.95),
            hedge_floor: Some(Duration::from_millis(2)),
            hedge_cap: Some(Duration::from_millis(80)),
            hedge_budget: Some(0.02),
            hedge_within_bucket: Some(true),
            ..hedged_source()
        };
        let want = Hedging {
            delay: HedgeDelay::Adaptive {
                quantile: 0.95,
                floor: Duration::from_millis(2),
                cap: Duration::from_millis(80),
            },
            budget: 0.02,
            within_bucket: true,
        };
        assert_eq!(
            ReadPolicy::from_config(&src).unwrap(),
            ReadPolicy::Hedged(want)
        );
        let fixed = SourceConfig {
            hedge_delay: Some(Duration::from_millis(50)),
            ..hedged_source()
        };
        assert_eq!(
            ReadPolicy::from_config(&fixed).unwrap(),
            ReadPolicy::Hedged(Hedging::fixed(Duration::from_millis(50)))
        );
    }

    #[test]
    fn config_errors_name_the_field_and_the_fix() {
        let cases = [
            (
                SourceConfig {
                    hedge_budget: Some(0.1),
                    ..SourceConfig::default()
                },
                "hedge_budget",
                "only applies to policy = \"hedged\"",
            ),
            (
                SourceConfig {
                    hedge_budget: Some(1.5),
                    ..hedged_source()
                },
                "hedge_budget",
                "between 0 and 1",
            ),
            (
                SourceConfig {
                    hedge_quantile: Some(0.0),
                    ..hedged_source()
                },
                "hedge_quantile",
                "above 0 and at most 1",
            ),
            (
                SourceConfig {
                    hedge_floor: Some(Duration::from_millis(90)),
                    ..hedged_source()
                },
                "hedge_floor",
                "must not exceed the cap",
            ),
            (
                SourceConfig {
                    hedge_cap: Some(Duration::ZERO),
                    ..hedged_source()
                },
                "hedge_cap",
                "more than zero",
            ),
            (
                SourceConfig {
                    hedge_delay: Some(Duration::from_millis(5)),
                    hedge_cap: Some(Duration::from_millis(9)),
                    ..hedged_source()
                },
                "hedge_cap",
                "remove hedge_delay to adapt",
            ),
            (
                SourceConfig {
                    hedge_delay: Some(Duration::ZERO),
                    ..hedged_source()
                },
                "hedge_delay",
                "more than zero",
            ),
        ];
        for (src, field, words) in cases {
            let (f, reason) = config_error(&src);
            assert_eq!(f, field, "{src:?}");
            assert!(reason.contains(words), "{field}: {reason}");
        }
    }

    #[test]
    fn shows_and_serialises_the_policy() {
        let json = serde_json::to_value(ReadPolicy::hedged()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"policy": "hedged", "delay": "adaptive", "quantile": 0.95,
                "floor": "1ms", "cap": "50ms", "budget": 0.1, "within_bucket": false})
        );
        let fixed = ReadPolicy::Hedged(Hedging::fixed(Duration::from_millis(20)));
        assert_eq!(serde_json::to_value(fixed).unwrap()["delay"], "20ms");
        assert_eq!(fixed.to_string(), "hedged 20ms, budget 10%");
        assert_eq!(
            serde_json::to_value(ReadPolicy::Parallel).unwrap(),
            serde_json::json!({"policy": "parallel"})
        );
    }
}
