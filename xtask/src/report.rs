//! `cargo xtask bench --report`: `docs/benchmarks.md` and its charts, from the `BENCH {json}`
//! lines the benches print (`strata_testkit::bench`).
//!
//! Only those lines are read, so a bench may reword its human output freely. Each group of
//! ratios (one bench, one group) becomes a table and a bar chart of the ratios against the
//! 1.0 of its baseline, with the goal marked; each latency distribution becomes a CDF chart;
//! figures that are not ratios (counts, peak memory) get a table. The goals are gathered in
//! one table at the top, met or missed, and the benches' whole human output is kept at the
//! end, so every figure in the report can be traced to the run that printed it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use plotters::prelude::*;
use serde_json::Value as Json;

use crate::Result;

/// Higher (a rate) or lower (a time) ratio is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// What one `BENCH` line measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Figure {
    /// Strata / baseline (1.0 = the baseline).
    Ratio(f64),
    /// A figure in a unit (a count, MiB).
    Value(f64, String),
    /// `(fraction, milliseconds)` points of a latency distribution.
    Cdf(Vec<(f64, f64)>),
}

/// One `BENCH` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub bench: String,
    pub group: String,
    pub row: String,
    pub figure: Figure,
    pub better: Better,
    pub baseline: String,
    pub goal: Option<f64>,
    pub spread: Option<(f64, f64)>,
    pub rounds: Option<u64>,
    pub note: String,
}

impl Row {
    /// The ratio or value, where there is one.
    fn number(&self) -> Option<f64> {
        match &self.figure {
            Figure::Ratio(x) | Figure::Value(x, _) => Some(*x),
            Figure::Cdf(_) => None,
        }
    }

    /// Whether the row meets its goal (`None`: no goal, or no figure).
    pub fn met(&self) -> Option<bool> {
        let (x, goal) = (self.number()?, self.goal?);
        if !x.is_finite() {
            return Some(false);
        }
        Some(match self.better {
            Better::Higher => x >= goal,
            Better::Lower => x <= goal,
        })
    }

    fn shown(&self) -> String {
        match &self.figure {
            Figure::Ratio(x) if x.is_finite() => format!("{x:.2}x"),
            Figure::Ratio(_) => "n/a".into(),
            Figure::Value(x, unit) if unit == "count" => format!("{x:.0}"),
            Figure::Value(x, unit) => format!("{x:.1} {unit}"),
            Figure::Cdf(_) => String::new(),
        }
    }

    fn goal_shown(&self) -> String {
        let Some(goal) = self.goal else {
            return "reference".into();
        };
        let op = match self.better {
            Better::Higher => "≥",
            Better::Lower => "≤",
        };
        match &self.figure {
            Figure::Value(_, unit) if unit == "count" => format!("{op} {goal:.0}"),
            Figure::Value(_, unit) => format!("{op} {goal} {unit}"),
            _ => format!("{op} {goal:.2}x"),
        }
    }

    fn verdict(&self) -> &'static str {
        match self.met() {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        }
    }
}

/// One output from several runs' outputs, in the order they ran: a bench that a later run
/// printed rows for keeps only that run's rows. Every run's own lines are kept, each run
/// under a line naming it, so the report still shows what each printed.
pub fn combine(outputs: &[String]) -> Result<String> {
    let benches_of = |output: &str| -> Result<Vec<String>> {
        Ok(parse(output)?.into_iter().map(|r| r.bench).collect())
    };
    let mut later: Vec<Vec<String>> = Vec::new();
    for output in outputs {
        later.push(benches_of(output)?);
    }
    let mut combined = String::new();
    for (i, output) in outputs.iter().enumerate() {
        let replaced: Vec<&String> = later[i + 1..].iter().flatten().collect();
        let _ = writeln!(combined, "xtask: run {} of {}", i + 1, outputs.len());
        for line in output.lines() {
            if let Some(json) = line.trim_start().strip_prefix("BENCH ") {
                let row = parse_row(json).map_err(|e| format!("run {}: {e}: {line}", i + 1))?;
                if replaced.contains(&&row.bench) {
                    continue;
                }
            }
            combined.push_str(line);
            combined.push('\n');
        }
    }
    Ok(combined)
}

/// How many runs [`combine`] joined into `output` (0: a single run's own output).
fn runs_in(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.starts_with("xtask: run ") && l.contains(" of "))
        .count()
}

/// The `BENCH` lines of `output`; a malformed one is an error naming its line.
pub fn parse(output: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (n, line) in output.lines().enumerate() {
        let Some(json) = line.trim_start().strip_prefix("BENCH ") else {
            continue;
        };
        let row =
            parse_row(json).map_err(|e| format!("bench output line {}: {e}: {line}", n + 1))?;
        rows.push(row);
    }
    Ok(rows)
}

fn parse_row(json: &str) -> Result<Row, String> {
    let v: Json = serde_json::from_str(json).map_err(|e| format!("not JSON ({e})"))?;
    let text = |name: &str| -> Result<String, String> {
        v.get(name)
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no string field `{name}`"))
    };
    let number = |name: &str| v.get(name).and_then(Json::as_f64);
    // `null` (a NaN the bench could not print) stays a figure, shown as "n/a".
    let number_or_nan = |name: &str| number(name).unwrap_or(f64::NAN);
    let figure = if let Some(points) = v.get("cdf") {
        let points = points
            .as_array()
            .ok_or("`cdf` is not a list")?
            .iter()
            .map(|p| {
                match (
                    p.get(0).and_then(Json::as_f64),
                    p.get(1).and_then(Json::as_f64),
                ) {
                    (Some(q), Some(ms)) => Ok((q, ms)),
                    _ => Err(format!("`cdf` point {p} is not [fraction, ms]")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Figure::Cdf(points)
    } else if v.get("ratio").is_some() {
        Figure::Ratio(number_or_nan("ratio"))
    } else if v.get("value").is_some() {
        Figure::Value(number_or_nan("value"), text("unit")?)
    } else {
        return Err("neither `ratio`, `value` nor `cdf`".into());
    };
    let better = match v.get("better").and_then(Json::as_str) {
        Some("lower") => Better::Lower,
        Some("higher") | None => Better::Higher,
        Some(other) => return Err(format!("`better` is `{other}`, not `higher` or `lower`")),
    };
    Ok(Row {
        bench: text("bench")?,
        group: text("group")?,
        row: text("row")?,
        figure,
        better,
        baseline: text("baseline").unwrap_or_default(),
        goal: number("goal"),
        spread: number("low").zip(number("high")),
        rounds: v.get("rounds").and_then(Json::as_u64),
        note: text("note").unwrap_or_default(),
    })
}

/// Where and how the run was made, for the report's header.
pub struct Run {
    /// The machine, the toolchain and the commit (see [`describe_machine`]).
    pub machine: Vec<(String, String)>,
    /// Whether it ran with `--quick` (fewer rounds).
    pub quick: bool,
}

/// CPU, cores, memory, OS, rustc, commit and date of this run.
pub fn describe_machine(root: &Path) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or_else(
            || "unknown".into(),
            |kb| format!("{:.1} GiB", kb / 1048576.0),
        );
    let out = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let commit = out("git", &["log", "-1", "--format=%h %s"]);
    let dirty = out("git", &["status", "--porcelain", "--untracked-files=no"]);
    let commit = if dirty.is_empty() || dirty == "unknown" {
        commit
    } else {
        format!("{commit} (with uncommitted changes)")
    };
    vec![
        ("date".into(), out("date", &["-u", "+%Y-%m-%d %H:%M UTC"])),
        ("commit".into(), commit),
        ("CPU".into(), format!("{cpu}, {cores} cores available")),
        ("memory".into(), mem),
        ("OS".into(), out("uname", &["-srm"])),
        ("rustc".into(), out("rustc", &["--version"])),
    ]
}

/// File-name-safe form of `s`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-');
    out.chars()
        .take(60)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// The rows of one group, under its name.
type Group<'a> = (String, Vec<&'a Row>);

/// Rows grouped by bench then group, each in the order the benches printed them.
fn grouped(rows: &[Row]) -> Vec<(String, Vec<Group<'_>>)> {
    let mut benches: Vec<(String, Vec<Group<'_>>)> = Vec::new();
    for r in rows {
        let b = match benches.iter().position(|(b, _)| *b == r.bench) {
            Some(i) => i,
            None => {
                benches.push((r.bench.clone(), Vec::new()));
                benches.len() - 1
            }
        };
        let groups = &mut benches[b].1;
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, v)) => v.push(r),
            None => groups.push((r.group.clone(), vec![r])),
        }
    }
    benches
}

/// The benches `cargo xtask bench` runs, with what each compares (for the report's headings
/// and to say which printed nothing).
pub const BENCHES: &[(&str, &str)] = &[
    (
        "bucket_vs_raw",
        "Strata `Bucket` against raw `object_store` on the same store (throughput ratios; higher is better)",
    ),
    (
        "routing",
        "The router's fallback reads, hedging, engine overhead and merged listings",
    ),
    (
        "contention",
        "`Collection::update_with` under contention and against a hand-written CAS loop",
    ),
    (
        "layers",
        "What each storage layer adds to a 4 KiB put + get (time ratios; lower is better)",
    ),
    (
        "manifest_bench",
        "Manifest search and dataset reads: Parquet against JSONL, and against DuckDB",
    ),
    (
        "fault_soak",
        "Wrong answers under injected faults below the HTTP client, Strata beside raw `object_store`",
    ),
];

/// Write `docs/benchmarks.md` and `docs/benchmarks/*.svg` under `root` from the bench
/// `output`; returns the number of goals met and the number of goals.
pub fn write(root: &Path, output: &str, run: &Run) -> Result<(usize, usize)> {
    let rows = parse(output)?;
    if rows.is_empty() {
        return Err("the bench output has no `BENCH {json}` lines: nothing to report (did the benches run?)".into());
    }
    let charts = root.join("docs").join("benchmarks");
    std::fs::create_dir_all(&charts)
        .map_err(|e| format!("cannot create {}: {e}", charts.display()))?;
    // Charts of an earlier run whose group is gone would be left behind, stale.
    for entry in std::fs::read_dir(&charts)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "svg") {
            std::fs::remove_file(&path)?;
        }
    }
    let goals: Vec<&Row> = rows.iter().filter(|r| r.met().is_some()).collect();
    let met = goals.iter().filter(|r| r.met() == Some(true)).count();

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench --report` from {}{}; do not edit by \
         hand, run it again. Every figure is a ratio measured side by side in one process \
         (Strata and its baseline interleaved, round after round), because absolute times on \
         a shared machine are noise. A ratio's spread is the range of the rounds' own ratios \
         (25th-75th percentile, or smallest-largest where a bench says so).\n",
        match runs_in(output) {
            0 | 1 => "one run of every bench".to_string(),
            n => format!(
                "{n} runs: a run of every bench, then re-runs of some (`--from` given {n} times), \
                 each re-run's rows replacing the same bench's earlier rows; the benches' own \
                 output below shows each run"
            ),
        },
        if run.quick {
            " **with `--quick`** (fewer rounds: a smoke run, noisier than a full one)"
        } else {
            ""
        }
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    for (k, v) in &run.machine {
        let _ = writeln!(md, "| {k} | {} |", cell(v));
    }
    let _ = writeln!(md, "\n## Goals: {met} of {} met\n", goals.len());
    let _ = writeln!(
        md,
        "| bench | group | row | figure | goal | |\n|---|---|---|---|---|---|"
    );
    for r in &goals {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            r.bench,
            cell(&r.group),
            cell(&r.row),
            r.shown(),
            r.goal_shown(),
            r.verdict()
        );
    }
    let printed = grouped(&rows);
    let silent: Vec<&str> = BENCHES
        .iter()
        .map(|(b, _)| *b)
        .filter(|b| !printed.iter().any(|(p, _)| p == b))
        .collect();
    if !silent.is_empty() {
        let _ = writeln!(
            md,
            "\nNo figures from: {} (skipped: see the output at the end for why).",
            silent.join(", ")
        );
    }
    for (bench, groups) in &printed {
        let about = BENCHES
            .iter()
            .find(|(b, _)| b == bench)
            .map_or("", |(_, a)| a);
        let _ = writeln!(md, "\n## {bench}\n\n{about}.");
        for (group, rows) in groups {
            let _ = writeln!(md, "\n### {}\n", cell(group));
            let file = format!("{}-{}.svg", slug(bench), slug(group));
            let ratios: Vec<&Row> = rows
                .iter()
                .copied()
                .filter(|r| matches!(r.figure, Figure::Ratio(x) if x.is_finite()))
                .collect();
            let cdfs: Vec<&Row> = rows
                .iter()
                .copied()
                .filter(|r| matches!(r.figure, Figure::Cdf(_)))
                .collect();
            if !ratios.is_empty() {
                bar_chart(&charts.join(&file), group, &ratios)?;
                let _ = writeln!(md, "![{}](benchmarks/{file})\n", cell(group));
            }
            if !cdfs.is_empty() {
                cdf_chart(&charts.join(&file), group, &cdfs)?;
                let _ = writeln!(md, "![{}](benchmarks/{file})\n", cell(group));
                let _ = writeln!(
                    md,
                    "| row | p50 | p90 | p99 | p99.9 | max |\n|---|---|---|---|---|---|"
                );
                for r in &cdfs {
                    let Figure::Cdf(points) = &r.figure else {
                        continue;
                    };
                    let at = |q: f64| {
                        points
                            .iter()
                            .find(|(p, _)| (p - q).abs() < 1e-9)
                            .map_or("".into(), |(_, ms)| format!("{ms:.1} ms"))
                    };
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {} | {} |",
                        cell(&r.row),
                        at(0.5),
                        at(0.9),
                        at(0.99),
                        at(0.999),
                        at(1.0)
                    );
                }
                continue;
            }
            let baselines: Vec<&str> = {
                let mut b: Vec<&str> = rows.iter().map(|r| r.baseline.as_str()).collect();
                b.dedup();
                b.retain(|s| !s.is_empty());
                b
            };
            if baselines.len() == 1 {
                let _ = writeln!(md, "Baseline (1.0): {}.\n", baselines[0]);
            }
            let per_row_baseline = baselines.len() > 1;
            let _ = write!(md, "| row | figure | spread | rounds | goal | |");
            if per_row_baseline {
                let _ = write!(md, " baseline |");
            }
            let _ = writeln!(md, " detail |");
            let _ = writeln!(
                md,
                "|---|---|---|---|---|---|{}---|",
                if per_row_baseline { "---|" } else { "" }
            );
            for r in rows {
                let spread = r
                    .spread
                    .map_or(String::new(), |(lo, hi)| format!("{lo:.2}-{hi:.2}"));
                let rounds = r.rounds.map_or(String::new(), |n| n.to_string());
                let _ = write!(
                    md,
                    "| {} | {} | {spread} | {rounds} | {} | {} |",
                    cell(&r.row),
                    r.shown(),
                    r.goal_shown(),
                    r.verdict()
                );
                if per_row_baseline {
                    let _ = write!(md, " {} |", cell(&r.baseline));
                }
                let _ = writeln!(md, " {} |", cell(&r.note));
            }
        }
    }
    let human: Vec<&str> = output
        .lines()
        .filter(|l| !l.trim_start().starts_with("BENCH "))
        .collect();
    let _ = writeln!(
        md,
        "\n## The benches' own output\n\n<details><summary>{} lines, as printed by the run above</summary>\n\n```text\n{}\n```\n\n</details>",
        human.len(),
        human.join("\n").replace("```", "'''")
    );
    let path = root.join("docs").join("benchmarks.md");
    std::fs::write(&path, md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((met, goals.len()))
}

/// `s` fit for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

const MET: RGBColor = RGBColor(46, 139, 87);
const MISSED: RGBColor = RGBColor(200, 55, 45);
const REFERENCE: RGBColor = RGBColor(120, 144, 170);
const GOAL: RGBColor = RGBColor(20, 20, 20);

type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn draw_err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> Box<dyn std::error::Error> + '_ {
    move |e| format!("cannot draw {}: {e:?}", path.display()).into()
}

/// Every chart's last steps: its legend in the lower right, then the file written.
fn finish<'c, 'b: 'c, CT: CoordTranslate>(
    mut chart: ChartContext<'c, SVGBackend<'b>, CT>,
    root: &DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    path: &Path,
) -> DrawResult<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(draw_err(path))?;
    root.present().map_err(draw_err(path))?;
    Ok(())
}

/// Horizontal bars of `rows`' ratios, a line at 1.0 (the baseline), each goal a black tick,
/// each spread a whisker; green meets its goal, red misses it, grey-blue has none.
fn bar_chart(path: &Path, title: &str, rows: &[&Row]) -> DrawResult<()> {
    let err = draw_err(path);
    let n = rows.len();
    let longest = rows
        .iter()
        .map(|r| r.row.chars().count())
        .max()
        .unwrap_or(8);
    let label_area = (longest as u32 * 7 + 16).clamp(80, 420);
    let height = 90 + 30 * n as u32;
    let top = rows
        .iter()
        .flat_map(|r| {
            let x = r.number().unwrap_or(1.0);
            [x, r.goal.unwrap_or(1.0), r.spread.map_or(x, |s| s.1), 1.0]
        })
        .fold(0.0f64, f64::max);
    let xmax = (top * 1.12).max(1.2);
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let better = match rows[0].better {
        Better::Higher => "higher is better",
        Better::Lower => "lower is better",
    };
    let caption = format!("{title} ({better})");
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(label_area)
        .build_cartesian_2d(0.0..xmax, (0..n as i32).into_segmented())
        .map_err(&err)?;
    let names: Vec<String> = rows.iter().map(|r| r.row.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("ratio to the baseline (1.0)")
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names
                .get(usize::try_from(*i).unwrap_or(usize::MAX))
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(&err)?;
    // Row i is drawn in segment n-1-i, so the first row printed is at the top.
    let seg = |i: usize| (n - 1 - i) as i32;
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let color = match r.met() {
                Some(true) => MET,
                Some(false) => MISSED,
                None => REFERENCE,
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(seg(i))),
                    (r.number().unwrap_or(0.0), SegmentValue::Exact(seg(i) + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))
        .map_err(&err)?;
    chart
        .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            let (lo, hi) = r.spread?;
            Some(PathElement::new(
                vec![
                    (lo, SegmentValue::CenterOf(seg(i))),
                    (hi, SegmentValue::CenterOf(seg(i))),
                ],
                GOAL.stroke_width(1),
            ))
        }))
        .map_err(&err)?;
    chart
        .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            let goal = r.goal?;
            Some(PathElement::new(
                vec![
                    (goal, SegmentValue::Exact(seg(i))),
                    (goal, SegmentValue::Exact(seg(i) + 1)),
                ],
                GOAL.stroke_width(3),
            ))
        }))
        .map_err(&err)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![
                (1.0, SegmentValue::Exact(0)),
                (1.0, SegmentValue::Exact(n as i32)),
            ],
            BLACK.stroke_width(1),
        )))
        .map_err(&err)?
        .label("baseline 1.0; thick tick: goal; whisker: spread")
        .legend(|(x, y)| PathElement::new(vec![(x, y - 6), (x, y + 6)], BLACK.stroke_width(3)));
    chart
        .draw_series(rows.iter().enumerate().map(|(i, r)| {
            let x = r.number().unwrap_or(0.0);
            Text::new(
                format!("{x:.2}"),
                (x + xmax * 0.01, SegmentValue::CenterOf(seg(i))),
                ("sans-serif", 12),
            )
        }))
        .map_err(&err)?;
    finish(chart, &root, path)
}

/// Latency distributions: fraction of reads at or under each latency, latency on a log axis.
fn cdf_chart(path: &Path, title: &str, rows: &[&Row]) -> DrawResult<()> {
    let err = draw_err(path);
    let points: BTreeMap<&str, &[(f64, f64)]> = rows
        .iter()
        .filter_map(|r| match &r.figure {
            Figure::Cdf(p) if !p.is_empty() => Some((r.row.as_str(), p.as_slice())),
            _ => None,
        })
        .collect();
    let all = points.values().flat_map(|p| p.iter().map(|(_, ms)| *ms));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), ms| (lo.min(ms), hi.max(ms)));
    let (lo, hi) = ((lo * 0.8).max(0.01), (hi * 1.25).max(lo * 2.0));
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(&err)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("fraction of reads at or under")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(&err)?;
    let colors = [MISSED, MET, REFERENCE, BLACK];
    for (i, (name, pts)) in points.iter().enumerate() {
        let color = colors[i % colors.len()];
        // A step per sample point: the fraction holds until the next latency.
        let mut line = Vec::new();
        let mut prev_q = 0.0;
        for &(q, ms) in pts.iter() {
            line.push((ms, prev_q));
            line.push((ms, q));
            prev_q = q;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                line,
                color.stroke_width(2),
            )))
            .map_err(&err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    finish(chart, &root, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = r#"human line
BENCH {"bench":"bucket_vs_raw","group":"local","row":"put 4 KiB","ratio":0.93,"better":"higher","baseline":"LocalFileSystem","goal":0.95,"low":0.9,"high":0.97,"rounds":61,"note":"a | b"}
BENCH {"bench":"bucket_vs_raw","group":"local","row":"get 4 KiB","ratio":1.02,"better":"higher","baseline":"LocalFileSystem","goal":0.95}
BENCH {"bench":"routing","group":"overhead","row":"set","ratio":1.3,"better":"lower","baseline":"loop"}
BENCH {"bench":"routing","group":"tail","row":"sequential","cdf":[[0.5,10],[0.99,210],[1,212]]}
BENCH {"bench":"fault_soak","group":"soak","row":"strata: lost","value":0,"unit":"count","better":"lower","goal":0}
"#;

    #[test]
    fn lines_parse_into_rows_with_their_goals() {
        let rows = parse(OUTPUT).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[0].figure, Figure::Ratio(0.93));
        assert_eq!(rows[0].spread, Some((0.9, 0.97)));
        assert_eq!(rows[0].rounds, Some(61));
        assert_eq!(rows[0].met(), Some(false));
        assert_eq!(rows[1].met(), Some(true));
        assert_eq!(rows[2].better, Better::Lower);
        assert_eq!(rows[2].met(), None);
        assert_eq!(
            rows[3].figure,
            Figure::Cdf(vec![(0.5, 10.0), (0.99, 210.0), (1.0, 212.0)])
        );
        assert_eq!(rows[4].figure, Figure::Value(0.0, "count".into()));
        assert_eq!(rows[4].met(), Some(true));
    }

    #[test]
    fn a_later_run_replaces_the_rows_of_the_benches_it_ran() {
        let rerun = r#"rerun line
BENCH {"bench":"routing","group":"overhead","row":"set","ratio":0.9,"better":"lower","baseline":"loop"}
"#;
        let combined = combine(&[OUTPUT.to_string(), rerun.to_string()]).unwrap();
        let rows = parse(&combined).unwrap();
        let routing: Vec<&Row> = rows.iter().filter(|r| r.bench == "routing").collect();
        assert_eq!(routing.len(), 1, "{combined}");
        assert_eq!(routing[0].figure, Figure::Ratio(0.9));
        // The benches the later run did not touch keep their rows.
        assert_eq!(
            rows.iter().filter(|r| r.bench == "bucket_vs_raw").count(),
            2
        );
        assert_eq!(rows.iter().filter(|r| r.bench == "fault_soak").count(), 1);
        // Both runs' own lines stay.
        assert!(combined.contains("human line") && combined.contains("rerun line"));
        assert!(combined.contains("xtask: run 2 of 2"), "{combined}");
        assert_eq!(runs_in(&combined), 2);
        assert_eq!(runs_in(OUTPUT), 0);
    }

    #[test]
    fn a_lower_is_better_goal_is_met_at_or_under_it() {
        let mut row = parse(OUTPUT).unwrap().remove(2);
        row.goal = Some(1.3);
        assert_eq!(row.met(), Some(true));
        row.goal = Some(1.29);
        assert_eq!(row.met(), Some(false));
    }

    #[test]
    fn a_malformed_line_names_its_line_and_field() {
        let e = parse("x\nBENCH {\"bench\":\"b\",\"group\":\"g\",\"ratio\":1}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("`row`"), "{e}");
        let e = parse("BENCH {nope").unwrap_err().to_string();
        assert!(e.contains("line 1: not JSON"), "{e}");
    }

    #[test]
    fn the_report_has_every_row_goal_chart_and_the_human_output() {
        let root = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let run = Run {
            machine: vec![("CPU".into(), "test cpu".into())],
            quick: true,
        };
        assert_eq!(write(&root, OUTPUT, &run).unwrap(), (2, 3));
        let md = std::fs::read_to_string(root.join("docs/benchmarks.md")).unwrap();
        assert!(md.contains("## Goals: 2 of 3 met"), "{md}");
        assert!(
            md.contains("| bucket_vs_raw | local | put 4 KiB | 0.93x | ≥ 0.95x | **missed** |"),
            "{md}"
        );
        assert!(
            md.contains("| put 4 KiB | 0.93x | 0.90-0.97 | 61 | ≥ 0.95x | **missed** | a \\| b |"),
            "{md}"
        );
        assert!(
            md.contains("| sequential | 10.0 ms |  | 210.0 ms |  | 212.0 ms |"),
            "{md}"
        );
        assert!(md.contains("with `--quick`"));
        assert!(md.contains("| CPU | test cpu |"));
        assert!(
            md.contains("No figures from: contention, layers, manifest_bench"),
            "{md}"
        );
        assert!(md.contains("```text\nhuman line\n```"), "{md}");
        assert!(
            md.contains("![local](benchmarks/bucket-vs-raw-local.svg)"),
            "{md}"
        );
        let svg =
            std::fs::read_to_string(root.join("docs/benchmarks/bucket-vs-raw-local.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("put 4 KiB"),
            "{svg}"
        );
        let cdf = std::fs::read_to_string(root.join("docs/benchmarks/routing-tail.svg")).unwrap();
        assert!(cdf.contains("sequential"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn no_bench_lines_is_an_error() {
        let run = Run {
            machine: Vec::new(),
            quick: false,
        };
        let e = write(Path::new("/nonexistent"), "only human output\n", &run)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `BENCH {json}` lines"), "{e}");
    }

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug("fallback reads (4 buckets x 10 ms, key in the 4th)"),
            "fallback-reads-4-buckets-x-10-ms-key-in-the-4th"
        );
        assert_eq!(slug("local fsync/none"), "local-fsync-none");
    }
}
