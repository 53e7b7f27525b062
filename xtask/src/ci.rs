//! `test`, `ci`, `bench` and `servers`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Result, cargo, run, servers};

/// The workspace root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_path_buf()
}

fn log_dir() -> PathBuf {
    workspace_root().join("target").join("xtask")
}

/// Run `cmd` with the servers' variables set.
fn with_servers(cmd: &mut Command) -> Result<()> {
    servers::install(false)?;
    let running = servers::start(&log_dir())?;
    for (k, v) in &running.env {
        cmd.env(k, v);
    }
    // `running` drops (stopping the servers) after the command, whatever its outcome.
    let outcome = run(cmd);
    drop(running);
    outcome
}

/// `cargo xtask test [ARGS]`: every crate with every feature, against the S3 servers.
pub fn test(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .args(["test", "--workspace", "--all-features"])
        .args(args);
    with_servers(&mut cmd)
}

/// Facade features that `ci` also checks one at a time (besides none, default and all).
pub const FACADE_FEATURES: &[&str] = &[
    "s3",
    "r2",
    "router",
    "cas",
    "manifest",
    "manifest-parquet",
    "layers",
    "layers-full",
];

/// `cargo xtask ci [--full] [--keep-going]`: the one command that says "ready".
///
/// In order (each step prints its time, and a table of all of them closes the run):
/// 1. `cargo fmt --check`, tidy, clippy `-D warnings` on the workspace with all targets and
///    all features.
/// 2. `cargo test --workspace --all-features` against the S3 servers (the S3 proof; this
///    also runs the doctests of every crate and of `docs/guides/*.md`, through
///    `strata-tests`), then every example (`crates/*/examples/*.rs`) from the executables
///    that build already made, failing on a non-zero exit.
/// 3. Every crate alone with its default features: `cargo clippy -p X --all-targets -D
///    warnings`, so a crate that needs something it does not declare, or code (tests
///    included) that is dead under its own features, fails here; then the `strata` facade
///    the same way with no features, each of [`FACADE_FEATURES`] alone, and all features;
///    and `storage-manifest` without its default `parquet` feature.
/// 4. rustdoc with warnings denied, cargo-deny (bans, licenses, sources).
///
/// Step 3 type-checks every target (tests and examples too) under each feature resolution
/// but does not build or run the tests again: step 2 ran every one of them with all
/// features, and codegen plus linking of about 80 test executables per feature set is
/// what made a cold `ci` pass 45 minutes on the 2-core CI machine (38 min were spent before
/// the facade sets in December 2026). `--full` also runs `cargo test -p X` for each crate
/// alone and each facade feature set (no S3 servers there: `STRATA_SKIP_S3=1` and
/// `STRATA_SKIP_PYTHON=1`; step 2 already ran those checks), doctests included.
///
/// `--keep-going` runs every step even after one fails and lists the failed ones at the end.
pub fn ci(full: bool, keep_going: bool) -> Result<()> {
    let root = workspace_root();
    let mut timer = Timer {
        keep_going,
        ..Timer::default()
    };
    timer.step("fmt --check", || {
        run(cargo().current_dir(&root).args(["fmt", "--all", "--check"]))
    })?;
    timer.step("tidy", || crate::tidy::run(&root))?;
    timer.step("clippy --workspace --all-features", || {
        run(cargo()
            .current_dir(&root)
            .args(["clippy", "--workspace", "--all-targets", "--all-features"])
            .args(DENY_WARNINGS))
    })?;
    timer.step("test --workspace --all-features (servers)", || test(&[]))?;
    timer.step("examples", || run_examples(&root))?;

    // A crate alone: its own feature resolution. Clippy with `--all-targets` type-checks the
    // tests under it; `--full` also builds and runs them (doctests included).
    let alone = |args: &[&str]| -> Result<()> {
        run(cargo()
            .current_dir(&root)
            .arg("clippy")
            .args(args)
            .arg("--all-targets")
            .args(DENY_WARNINGS))?;
        if full {
            run(cargo()
                .current_dir(&root)
                .arg("test")
                .args(args)
                .env("STRATA_SKIP_S3", "1")
                .env("STRATA_SKIP_PYTHON", "1"))?;
        }
        Ok(())
    };
    for krate in workspace_crates(&root)? {
        timer.step(&format!("{krate} alone"), || alone(&["-p", &krate]))?;
    }
    // storage-manifest's Parquet is a default feature; the crate must also work without it.
    timer.step("storage-manifest --no-default-features", || {
        alone(&["-p", "storage-manifest", "--no-default-features"])
    })?;
    for set in facade_feature_sets(&root)? {
        timer.step(&format!("strata {}", set.join(" ")), || {
            let mut args = vec!["-p", "strata"];
            args.extend(set.iter().map(String::as_str));
            alone(&args)
        })?;
    }

    timer.step("doc", || {
        run(cargo()
            .current_dir(&root)
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    timer.step("deny", || {
        ensure_cargo_deny()?;
        // Advisories need the RustSec database from GitHub, which this network cannot
        // reach: licenses, bans (openssl) and sources (crates.io only) are checked offline.
        run(cargo()
            .current_dir(&root)
            .args(["deny", "check", "bans", "licenses", "sources"]))
    })?;
    timer.report();
    if !timer.failed.is_empty() {
        return Err(format!("ci failed in: {}", timer.failed.join(", ")).into());
    }
    println!("xtask: ci passed");
    Ok(())
}

const DENY_WARNINGS: &[&str] = &["--", "-D", "warnings"];

/// The facade's feature sets besides its defaults (checked as a crate alone): none, each
/// of [`FACADE_FEATURES`] that `crates/strata/Cargo.toml` declares, all.
fn facade_feature_sets(root: &Path) -> Result<Vec<Vec<String>>> {
    let manifest = std::fs::read_to_string(root.join("crates/strata/Cargo.toml"))?;
    let declared = |f: &str| manifest.lines().any(|l| l.starts_with(&format!("{f} = [")));
    let mut sets = vec![vec!["--no-default-features".to_string()]];
    for f in FACADE_FEATURES {
        if declared(f) {
            sets.push(vec![
                "--no-default-features".into(),
                "--features".into(),
                (*f).into(),
            ]);
        } else {
            println!("xtask: crates/strata/Cargo.toml has no feature `{f}`; not checked");
        }
    }
    sets.push(vec!["--all-features".into()]);
    Ok(sets)
}

/// Run every example of the workspace, as built by `cargo test --workspace --all-features`
/// (so all `required-features` are on and nothing is rebuilt), from the workspace root.
fn run_examples(root: &Path) -> Result<()> {
    let out = cargo()
        .current_dir(root)
        .args(["test", "--workspace", "--all-features", "--no-run"])
        .args(["--message-format=json", "--quiet"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo test --no-run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo test --workspace --all-features --no-run` failed ({})",
            out.status
        )
        .into());
    }
    let examples = example_executables(&String::from_utf8_lossy(&out.stdout))?;
    if examples.is_empty() {
        return Err("cargo listed no example executables: is crates/*/examples empty?".into());
    }
    let mut failed = Vec::new();
    for (name, exe) in &examples {
        println!("xtask: example {name}");
        if let Err(e) = run(Command::new(exe).current_dir(root)) {
            eprintln!("xtask: example {name} failed: {e}");
            failed.push(name.as_str());
        }
    }
    if failed.is_empty() {
        println!("xtask: {} examples ran", examples.len());
        Ok(())
    } else {
        Err(format!("examples failed: {}", failed.join(", ")).into())
    }
}

/// `(name, executable)` of each example in cargo's `--message-format=json` output; an error
/// when two packages' examples share an executable (cargo would keep only one of them).
fn example_executables(json_lines: &str) -> Result<Vec<(String, String)>> {
    let mut found: Vec<(String, String, String)> = json_lines
        .lines()
        .filter(|l| l.contains(r#""reason":"compiler-artifact""#))
        .filter(|l| l.contains(r#""kind":["example"]"#))
        .filter_map(|l| {
            let target = &l[l.find(r#""target":"#)?..];
            let name = json_str(target, "name")?;
            let exe = json_str(l, "executable")?;
            let package = json_str(l, "package_id")?;
            Some((exe, name, package))
        })
        .collect();
    found.sort();
    found.dedup();
    if let Some(pair) = found.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!(
            "the examples `{}` of {} and of {} are both built as {}: cargo keeps only one; give them different names",
            pair[0].1, pair[0].2, pair[1].2, pair[0].0
        )
        .into());
    }
    Ok(found
        .into_iter()
        .map(|(exe, name, _)| (name, exe))
        .collect())
}

/// The first string value of `"key":"..."` in a JSON text (cargo's messages have no
/// escaped quotes in names and paths; `\\` and `\"` are unescaped anyway).
fn json_str(json: &str, key: &str) -> Option<String> {
    let pattern = format!(r#""{key}":""#);
    let rest = &json[json.find(&pattern)? + pattern.len()..];
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}

/// Wall-clock time of each ci step, printed as it ends and as a table at the end.
#[derive(Default)]
struct Timer {
    steps: Vec<(String, Duration)>,
    /// Go on after a failed step (its error is printed and its name kept in `failed`).
    keep_going: bool,
    failed: Vec<String>,
}

impl Timer {
    fn step(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
        let start = Instant::now();
        let outcome = f();
        let took = start.elapsed();
        println!("xtask: step `{name}`: {}", minutes(took));
        self.steps.push((name.to_string(), took));
        match outcome {
            Err(e) if self.keep_going => {
                eprintln!("xtask: step `{name}` failed (going on): {e}");
                self.failed.push(name.to_string());
                Ok(())
            }
            Err(e) => {
                self.report();
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    fn report(&self) {
        println!("xtask: step times");
        for (name, took) in &self.steps {
            let mark = if self.failed.contains(name) {
                "  FAILED"
            } else {
                ""
            };
            println!("xtask:   {:>7}  {name}{mark}", minutes(*took));
        }
        let total: Duration = self.steps.iter().map(|(_, t)| *t).sum();
        println!("xtask:   {:>7}  total", minutes(total));
    }
}

fn minutes(d: Duration) -> String {
    format!("{}:{:02}", d.as_secs() / 60, d.as_secs() % 60)
}

/// Install cargo-deny (once, into cargo's bin folder) when it is missing.
fn ensure_cargo_deny() -> Result<()> {
    let installed = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        println!("xtask: installing cargo-deny (once, ~5 min on 2 cores)");
        run(cargo()
            .args(["install", "cargo-deny", "--locked", "--quiet"])
            .env_remove("CARGO_TARGET_DIR"))?;
    }
    Ok(())
}

/// The crate folders under `crates/` (those with a `Cargo.toml`), sorted.
pub fn crate_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root.join("crates"))? {
        let path = entry?.path();
        if path.join("Cargo.toml").exists() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// Names of the crates under `crates/`.
pub fn workspace_crates(root: &Path) -> Result<Vec<String>> {
    Ok(crate_dirs(root)?
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect())
}

/// Options of `cargo xtask bench`.
#[derive(Debug, Default, PartialEq)]
pub struct BenchArgs {
    /// Write `docs/benchmarks.md` and its charts.
    pub report: bool,
    /// `STRATA_BENCH_QUICK=1`: fewer rounds, a smoke run.
    pub quick: bool,
    /// Read the output of earlier runs instead of running the benches; with several, a
    /// bench that a later one ran replaces its rows from the earlier ones (a full run, then
    /// a re-run of the benches a change touched).
    pub from: Vec<PathBuf>,
    /// Passed on to `cargo bench`.
    pub cargo: Vec<String>,
}

impl BenchArgs {
    /// `[--report] [--quick] [--from LOG]... [CARGO BENCH ARGS]`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut out = BenchArgs::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--report" => out.report = true,
                "--quick" => out.quick = true,
                "--from" => match it.next() {
                    Some(p) => out.from.push(PathBuf::from(p)),
                    None => {
                        return Err(
                            "--from needs the file a `cargo xtask bench` run saved its output in (e.g. target/xtask/bench-output.txt)".into(),
                        );
                    }
                },
                _ => out.cargo.push(a.clone()),
            }
        }
        if !out.from.is_empty() && (out.quick || !out.cargo.is_empty()) {
            return Err("--from reads an earlier run's output: --quick and cargo bench arguments would not apply to it".into());
        }
        Ok(out)
    }
}

/// `cargo xtask bench [--report] [--quick] [--from LOG]... [ARGS]`: every benchmark, servers
/// running, ratios printed by each; their output is kept in `target/xtask/bench-output.txt`.
/// `--report` then writes `docs/benchmarks.md` and `docs/benchmarks/*.svg` from it (or, with
/// `--from LOG`, from an earlier run's output, without running anything; `--from` given
/// again adds a later run whose benches replace the same benches of the earlier ones).
pub fn bench(args: &[String]) -> Result<()> {
    let opts = BenchArgs::parse(args)?;
    let root = workspace_root();
    let (output, quick) = match opts.from.as_slice() {
        [] => {
            let mut cmd = cargo();
            cmd.current_dir(&root)
                .args(["bench", "--workspace"])
                .args(&opts.cargo);
            if opts.quick {
                cmd.env("STRATA_BENCH_QUICK", "1");
            }
            std::fs::create_dir_all(log_dir())?;
            let log = log_dir().join("bench-output.txt");
            let started = Instant::now();
            let output = with_servers_tee(&mut cmd, &log, opts.quick)?;
            println!(
                "xtask: benches done in {:.0?}; output kept in {}",
                started.elapsed(),
                log.display()
            );
            (output, opts.quick)
        }
        logs => {
            let mut texts = Vec::new();
            for log in logs {
                texts.push(
                    std::fs::read_to_string(log)
                        .map_err(|e| format!("cannot read bench output {}: {e}", log.display()))?,
                );
            }
            // A quick run says so in its first line (see below).
            let quick = texts.iter().any(|t| t.starts_with(QUICK_MARK));
            (crate::report::combine(&texts)?, quick)
        }
    };
    if opts.report {
        let run = crate::report::Run {
            machine: crate::report::describe_machine(&root),
            quick,
        };
        let (met, goals) = crate::report::write(&root, &output, &run)?;
        println!(
            "xtask: wrote docs/benchmarks.md and docs/benchmarks/*.svg: {met} of {goals} goals met"
        );
    }
    Ok(())
}

/// First line of the saved output of a `--quick` run.
const QUICK_MARK: &str = "xtask: quick run (STRATA_BENCH_QUICK=1)";

/// Run `cmd` with the servers' variables set, printing its standard output as it comes and
/// saving it to `log` (also when it fails, so a report can still be made from it with
/// `--from`); returns that output.
fn with_servers_tee(cmd: &mut Command, log: &Path, quick: bool) -> Result<String> {
    use std::io::{BufRead, BufReader, Write};
    servers::install(false)?;
    let running = servers::start(&log_dir())?;
    for (k, v) in &running.env {
        cmd.env(k, v);
    }
    println!(
        "xtask: $ {} (output also in {})",
        crate::show(cmd),
        log.display()
    );
    let mut file =
        std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let mut output = String::new();
    if quick {
        output.push_str(QUICK_MARK);
        output.push('\n');
        writeln!(file, "{QUICK_MARK}")?;
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", crate::show(cmd)))?;
    let stdout = child.stdout.take().expect("piped above");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        writeln!(file, "{line}")?;
        output.push_str(&line);
        output.push('\n');
    }
    let status = child.wait()?;
    drop(running);
    if status.success() {
        Ok(output)
    } else {
        Err(format!(
            "`{}` failed ({status}); its output so far is in {}",
            crate::show(cmd),
            log.display()
        )
        .into())
    }
}

/// `cargo xtask servers [--install]`.
pub fn servers(install_only: bool) -> Result<()> {
    servers::install(false)?;
    if install_only {
        return Ok(());
    }
    let running = servers::start(&log_dir())?;
    for (k, v) in &running.env {
        println!("export {k}={v}");
    }
    println!("xtask: servers running; stop them by killing this process group (Ctrl-C)");
    let _keep = running;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(package: &str, kind: &str, name: &str, exe: &str) -> String {
        format!(
            r#"{{"reason":"compiler-artifact","package_id":"path+file:///w/crates/{package}#0.1.0","manifest_path":"/w/Cargo.toml","target":{{"kind":["{kind}"],"crate_types":["bin"],"name":"{name}","src_path":"/w/x.rs"}},"profile":{{"test":false}},"features":[],"executable":{exe},"fresh":true}}"#
        )
    }

    /// An example `name` of `package`, built to `/t/examples/NAME`.
    fn example(package: &str, name: &str) -> String {
        artifact(
            package,
            "example",
            name,
            &format!(r#""/t/examples/{name}""#),
        )
    }

    #[test]
    fn bench_args_parse_and_refuse_what_from_cannot_honour() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            BenchArgs::parse(&args(&["--report", "--quick", "-p", "storage-cas"])).unwrap(),
            BenchArgs {
                report: true,
                quick: true,
                from: Vec::new(),
                cargo: args(&["-p", "storage-cas"]),
            }
        );
        assert_eq!(
            BenchArgs::parse(&args(&[
                "--report",
                "--from",
                "full.txt",
                "--from",
                "rerun.txt"
            ]))
            .unwrap()
            .from,
            [PathBuf::from("full.txt"), PathBuf::from("rerun.txt")]
        );
        let e = BenchArgs::parse(&args(&["--from"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--from needs"), "{e}");
        let e = BenchArgs::parse(&args(&["--from", "x", "--quick"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("would not apply"), "{e}");
    }

    #[test]
    fn examples_are_found_in_cargo_json() {
        let json = [
            example("storage-core", "local_folder"),
            artifact("storage-core", "lib", "storage_core", "null"),
            artifact(
                "storage-core",
                "test",
                "behaviour",
                r#""/t/deps/behaviour-2""#,
            ),
            example("storage-core", "local_folder"),
            r#"{"reason":"build-finished","success":true}"#.to_string(),
        ]
        .join("\n");
        assert_eq!(
            example_executables(&json).unwrap(),
            vec![(
                "local_folder".to_string(),
                "/t/examples/local_folder".to_string()
            )]
        );
    }

    #[test]
    fn examples_sharing_an_executable_are_an_error() {
        let json = [
            example("storage-s3", "from_env"),
            example("storage-r2", "from_env"),
        ]
        .join("\n");
        let err = example_executables(&json).unwrap_err().to_string();
        for needle in ["`from_env`", "storage-s3", "storage-r2", "different names"] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }

    #[test]
    fn json_strings_are_unescaped() {
        assert_eq!(
            json_str(r#"{"a":"x\"y\\z","b":"c"}"#, "a").as_deref(),
            Some(r#"x"y\z"#)
        );
        assert_eq!(json_str(r#"{"a":null}"#, "a"), None);
    }

    #[test]
    fn facade_sets_follow_the_facade_manifest() {
        let sets = facade_feature_sets(&workspace_root()).unwrap();
        assert_eq!(sets.first().unwrap(), &["--no-default-features"]);
        assert_eq!(sets.last().unwrap(), &["--all-features"]);
        assert!(sets.iter().any(|s| s.last().is_some_and(|f| f == "router")));
    }
}
