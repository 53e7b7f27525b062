//! Machine-readable result lines for the benchmarks, read by `cargo xtask bench --report`.
//!
//! Every bench prints its human table as before and, beside each ratio it measures, one line
//! `BENCH {json}` ([`Ratio::print`]): the bench, the group the row belongs to (one table and
//! one chart in `docs/benchmarks.md`), the row, the ratio to the baseline (1.0 = the
//! baseline), whether higher or lower is better, the goal if the row has one, the baseline's
//! name, and the spread and number of rounds behind the ratio. A latency distribution is
//! one [`Cdf`] line. The report is built from these lines only, so rewording a bench's human
//! output never breaks it.
//!
//! ```
//! use strata_testkit::bench::{Better, Ratio};
//! let line = Ratio::new("bucket_vs_raw", "local", "put 4 KiB", 0.97, Better::Higher)
//!     .baseline("object_store LocalFileSystem")
//!     .goal(0.95)
//!     .spread(0.93, 1.01)
//!     .rounds(61)
//!     .line();
//! assert!(line.starts_with("BENCH {\"bench\":\"bucket_vs_raw\""));
//! assert!(line.contains("\"goal\":0.95"));
//! ```

use std::fmt::Write as _;

/// Whether a ratio above 1.0 is good (a rate: Strata / baseline throughput) or bad (a time:
/// Strata / baseline duration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// A throughput ratio: a goal is met at or above it.
    Higher,
    /// A time ratio: a goal is met at or below it.
    Lower,
}

/// One ratio measured by a bench, printed as a `BENCH {json}` line.
#[derive(Debug, Clone)]
pub struct Ratio {
    at: Row,
    ratio: f64,
    better: Better,
    baseline: String,
    goal: Option<f64>,
    spread: Option<(f64, f64)>,
    rounds: Option<usize>,
    note: String,
}

impl Ratio {
    /// `ratio` of row `row` in `group` of bench `bench`.
    pub fn new(bench: &str, group: &str, row: &str, ratio: f64, better: Better) -> Self {
        Ratio {
            at: Row::new(bench, group, row),
            ratio,
            better,
            baseline: String::new(),
            goal: None,
            spread: None,
            rounds: None,
            note: String::new(),
        }
    }

    /// What the ratio is measured against (the 1.0 of the chart).
    pub fn baseline(mut self, name: &str) -> Self {
        self.baseline = name.into();
        self
    }

    /// The goal, where `target` says the row has one.
    pub fn goal_if(self, target: bool, goal: f64) -> Self {
        if target { self.goal(goal) } else { self }
    }

    /// The spread of the rounds' ratios (e.g. 25th-75th percentile, or smallest-largest).
    pub fn spread(mut self, low: f64, high: f64) -> Self {
        self.spread = Some((low, high));
        self
    }

    /// Rounds (or samples) behind the ratio.
    pub fn rounds(mut self, rounds: usize) -> Self {
        self.rounds = Some(rounds);
        self
    }

    /// The `BENCH {json}` line.
    pub fn line(&self) -> String {
        let mut s = self.at.open_line();
        field_num(&mut s, "ratio", self.ratio);
        field_str(&mut s, "better", better_str(self.better));
        field_str(&mut s, "baseline", &self.baseline);
        field_opt_num(&mut s, "goal", self.goal);
        if let Some((low, high)) = self.spread {
            field_num(&mut s, "low", low);
            field_num(&mut s, "high", high);
        }
        if let Some(rounds) = self.rounds {
            let _ = write!(s, "\"rounds\":{rounds},");
        }
        close_line(s, &self.note)
    }
}

/// A figure that is not a ratio (a count, a peak memory size), printed as a `BENCH {json}`
/// line with its unit; shown in the report's tables, and in a chart only if it has a goal.
#[derive(Debug, Clone)]
pub struct Value {
    at: Row,
    value: f64,
    unit: String,
    better: Better,
    goal: Option<f64>,
    note: String,
}

impl Value {
    /// `value` (in `unit`) of row `row` in `group` of bench `bench`.
    pub fn new(
        bench: &str,
        group: &str,
        row: &str,
        value: f64,
        unit: &str,
        better: Better,
    ) -> Self {
        Value {
            at: Row::new(bench, group, row),
            value,
            unit: unit.into(),
            better,
            goal: None,
            note: String::new(),
        }
    }

    /// The `BENCH {json}` line.
    pub fn line(&self) -> String {
        let mut s = self.at.open_line();
        field_num(&mut s, "value", self.value);
        field_str(&mut s, "unit", &self.unit);
        field_str(&mut s, "better", better_str(self.better));
        field_opt_num(&mut s, "goal", self.goal);
        close_line(s, &self.note)
    }
}

/// What the line types share, written once: printing, and for the rows a chart holds to a
/// goal ([`Ratio`], [`Value`]) the goal and the remark.
macro_rules! line_methods {
    (print: $($ty:ident),+) => {$(
        impl $ty {
            /// Print [`line`](Self::line).
            pub fn print(&self) {
                println!("{}", self.line());
            }
        }
    )+};
    (goal, note: $($ty:ident),+) => {$(
        impl $ty {
            /// The goal this row is held to (rows without one are references).
            pub fn goal(mut self, goal: f64) -> Self {
                self.goal = Some(goal);
                self
            }

            /// A short remark shown beside the row (e.g. the absolute figures).
            pub fn note(mut self, note: impl Into<String>) -> Self {
                self.note = note.into();
                self
            }
        }
    )+};
}

line_methods!(print: Ratio, Value, Cdf);
line_methods!(goal, note: Ratio, Value);

/// Where a line's figure belongs: the bench, the group of rows (one table and one chart)
/// and the row.
#[derive(Debug, Clone)]
struct Row {
    bench: String,
    group: String,
    row: String,
}

impl Row {
    fn new(bench: &str, group: &str, row: &str) -> Self {
        Row {
            bench: bench.into(),
            group: group.into(),
            row: row.into(),
        }
    }

    /// `BENCH {` and the fields naming the row, each followed by a comma.
    fn open_line(&self) -> String {
        let mut s = String::from("BENCH {");
        field_str(&mut s, "bench", &self.bench);
        field_str(&mut s, "group", &self.group);
        field_str(&mut s, "row", &self.row);
        s
    }
}

/// The note (when there is one) and the closing brace in place of the last comma.
fn close_line(mut s: String, note: &str) -> String {
    if !note.is_empty() {
        field_str(&mut s, "note", note);
    }
    s.pop(); // the last comma
    s.push('}');
    s
}

fn better_str(better: Better) -> &'static str {
    match better {
        Better::Higher => "higher",
        Better::Lower => "lower",
    }
}

/// A latency distribution (a CDF chart in the report): `(fraction, milliseconds)` points.
#[derive(Debug, Clone)]
pub struct Cdf {
    at: Row,
    points: Vec<(f64, f64)>,
}

impl Cdf {
    /// The distribution of `sorted_ms` (ascending latencies in milliseconds), sampled at
    /// fractions fine enough to show a tail down to 1 in 1,000.
    pub fn from_sorted(bench: &str, group: &str, row: &str, sorted_ms: &[f64]) -> Self {
        const AT: [f64; 21] = [
            0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98,
            0.99, 0.995, 0.998, 0.999, 1.0,
        ];
        let points = if sorted_ms.is_empty() {
            Vec::new()
        } else {
            AT.iter()
                .map(|&q| {
                    let rank =
                        ((q * sorted_ms.len() as f64).ceil() as usize).clamp(1, sorted_ms.len());
                    (q, sorted_ms[rank - 1])
                })
                .collect()
        };
        Cdf {
            at: Row::new(bench, group, row),
            points,
        }
    }

    /// The `BENCH {json}` line.
    pub fn line(&self) -> String {
        let mut s = self.at.open_line();
        s.push_str("\"cdf\":[");
        for (i, (q, ms)) in self.points.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "[{},{}]", num(*q), num(*ms));
        }
        s.push_str("]}");
        s
    }
}

/// Whether `STRATA_BENCH_QUICK` is set (to anything but `0`): benches then run fewer rounds
/// and operations, for a smoke run of the whole set (`cargo xtask bench --quick`). Its
/// figures are noisier; the report says it was quick.
pub fn quick() -> bool {
    std::env::var("STRATA_BENCH_QUICK").is_ok_and(|v| v != "0")
}

/// `full` normally, `quick` under [`quick`].
pub fn scaled(full: usize, quick_value: usize) -> usize {
    if quick() { quick_value } else { full }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".into()
        } else {
            s.into()
        }
    } else {
        "null".into()
    }
}

fn field_num(s: &mut String, name: &str, x: f64) {
    let _ = write!(s, "\"{name}\":{},", num(x));
}

fn field_opt_num(s: &mut String, name: &str, x: Option<f64>) {
    if let Some(x) = x {
        field_num(s, name, x);
    }
}

fn field_str(s: &mut String, name: &str, value: &str) {
    let _ = write!(s, "\"{name}\":\"");
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push_str("\",");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_line_is_one_json_object_with_every_field() {
        let line = Ratio::new("b", "g \"x\"", "put\\1", 1.0 / 3.0, Better::Lower)
            .baseline("raw")
            .goal(1.1)
            .spread(0.25, 0.5)
            .rounds(7)
            .note("n")
            .line();
        assert_eq!(
            line,
            r#"BENCH {"bench":"b","group":"g \"x\"","row":"put\\1","ratio":0.3333,"better":"lower","baseline":"raw","goal":1.1,"low":0.25,"high":0.5,"rounds":7,"note":"n"}"#
        );
    }

    #[test]
    fn a_ratio_without_goal_or_spread_leaves_them_out() {
        let line = Ratio::new("b", "g", "r", f64::NAN, Better::Higher).line();
        assert_eq!(
            line,
            r#"BENCH {"bench":"b","group":"g","row":"r","ratio":null,"better":"higher","baseline":""}"#
        );
    }

    #[test]
    fn a_value_line_carries_its_unit() {
        let line = Value::new("b", "g", "peak RSS", 21.5, "MiB", Better::Lower)
            .goal(64.0)
            .line();
        assert_eq!(
            line,
            r#"BENCH {"bench":"b","group":"g","row":"peak RSS","value":21.5,"unit":"MiB","better":"lower","goal":64}"#
        );
    }

    #[test]
    fn a_cdf_samples_nearest_ranks() {
        let ms: Vec<f64> = (1..=1000).map(f64::from).collect();
        let line = Cdf::from_sorted("b", "g", "r", &ms).line();
        assert!(line.starts_with(
            r#"BENCH {"bench":"b","group":"g","row":"r","cdf":[[0.01,10],[0.05,50],"#
        ));
        assert!(line.ends_with("[0.999,999],[1,1000]]}"), "{line}");
    }
}
