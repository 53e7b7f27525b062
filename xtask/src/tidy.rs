//! `cargo xtask tidy`: the workspace's own rules, also run as `#[test]`s.
//!
//! Every crate under `crates/` has a README, `[lints] workspace = true`, a doc comment for
//! each cargo feature (`## ...` above it), a crate-root doc comment with a runnable example,
//! and no `todo` / `unimplemented` macro calls outside tests. `unsafe` is allowed in one place
//! only ([`UNSAFE_ALLOWED_IN`]). A user who depends only on
//! `storage-cas` + `storage-core`, or on `storage-manifest` without default features (JSON and
//! JSONL datasets), does not compile arrow, parquet or the AWS client.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

/// The one file that may allow `unsafe_code` (the workspace lint denies it): the local-folder
/// backend's inode-generation ioctl, which rustix has no safe wrapper for.
pub const UNSAFE_ALLOWED_IN: &str = "crates/storage-core/src/backend/local.rs";

/// One broken rule.
#[derive(Debug)]
pub struct Problem(pub String);

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Check the per-crate rules.
pub fn check_crates(root: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    for dir in crate::ci::crate_dirs(root).unwrap_or_default() {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if !dir.join("README.md").exists() {
            problems.push(Problem(format!("{name}: no README.md")));
        }
        if !manifest.contains("[lints]\nworkspace = true") {
            problems.push(Problem(format!(
                "{name}: Cargo.toml lacks `[lints] workspace = true`"
            )));
        }
        // Every feature has a `## doc` line right above it.
        if let Some(features) = manifest.split("[features]").nth(1) {
            let section = features.split("\n[").next().unwrap_or("");
            let lines: Vec<&str> = section.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let t = line.trim();
                if t.is_empty() || t.starts_with('#') || t.starts_with('"') || t.starts_with(']') {
                    continue;
                }
                if let Some((feat, _)) = t.split_once('=') {
                    let feat = feat.trim();
                    if feat == "default" {
                        continue;
                    }
                    let documented = i > 0 && lines[i - 1].trim_start().starts_with("##");
                    if !documented {
                        problems.push(Problem(format!(
                            "{name}: feature `{feat}` has no `## doc` line above it"
                        )));
                    }
                }
            }
        }
        let root_file = if dir.join("src/lib.rs").exists() {
            dir.join("src/lib.rs")
        } else {
            dir.join("src/main.rs")
        };
        let text = std::fs::read_to_string(&root_file).unwrap_or_default();
        if !text.trim_start().starts_with("//!") {
            problems.push(Problem(format!(
                "{name}: {} does not open with a `//!` crate doc",
                root_file.display()
            )));
        }
        let is_bin = root_file.ends_with("main.rs");
        if !is_bin
            && !text
                .lines()
                .take_while(|l| l.starts_with("//!") || l.trim().is_empty() || l.starts_with("#!"))
                .any(|l| l.contains("```"))
        {
            problems.push(Problem(format!(
                "{name}: the crate doc has no example (a ``` block)"
            )));
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for f in files {
            let src = std::fs::read_to_string(&f).unwrap_or_default();
            // Spelled in two parts so this checker does not flag itself.
            if src.contains(concat!("allow(unsafe", "_code)")) && !f.ends_with(UNSAFE_ALLOWED_IN) {
                problems.push(Problem(format!(
                    "{}: allows unsafe code; only {UNSAFE_ALLOWED_IN} may (see Cargo.toml's lints)",
                    f.display()
                )));
            }
            // Only code before the first `#[cfg(test)]` counts as shipped.
            let shipped = src.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in shipped.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                // Spelled in two parts so this checker does not flag itself.
                let stubs = [concat!("todo", "!("), concat!("unimplemented", "!(")];
                if stubs.iter().any(|s| code.contains(s)) {
                    problems.push(Problem(format!(
                        "{}:{}: stub in shipped code",
                        f.display(),
                        n + 1
                    )));
                }
            }
        }
    }
    problems
}

/// `cargo tree` of a package: the names of everything it compiles (normal dependencies).
/// `features`: `None` = its default features; `Some(list)` = `--no-default-features` plus
/// `list` (which may be empty).
pub fn dependency_names(
    root: &Path,
    package: &str,
    features: Option<&[&str]>,
) -> Result<Vec<String>> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root).args([
        "tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}",
    ]);
    if let Some(features) = features {
        cmd.arg("--no-default-features");
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree -p {package} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Heavy crates a light user must never compile (and every `arrow-*` crate, see [`is_heavy`]).
pub const HEAVY: &[&str] = &[
    "arrow-array",
    "arrow-schema",
    "parquet",
    "aws-lc-rs",
    "aws-lc-sys",
    "reqwest",
    "rustls",
];

/// Whether `name` is a heavy crate: one of [`HEAVY`] or any `arrow-*` crate.
pub fn is_heavy(name: &str) -> bool {
    HEAVY.contains(&name) || name.starts_with("arrow")
}

/// A package build that must compile nothing heavy: package, features (`None` = default;
/// `Some` = `--no-default-features` plus these), and who relies on it.
pub type LightBuild = (&'static str, Option<&'static [&'static str]>, &'static str);

/// The builds [`check_light`] checks.
pub const LIGHT: &[LightBuild] = &[
    // `storage-cas` with `storage-core`'s memory backend.
    ("storage-cas", None, "a documents-only user"),
    // What the facade's `manifest` feature (without `manifest-parquet`) compiles.
    (
        "storage-manifest",
        Some(&[]),
        "a JSON/JSONL dataset user (`--no-default-features`)",
    ),
];

/// Check that no [`LIGHT`] build compiles a heavy crate ([`is_heavy`]).
pub fn check_light(root: &Path) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for &(package, features, who) in LIGHT {
        let mut heavy: Vec<String> = dependency_names(root, package, features)?
            .into_iter()
            .filter(|n| is_heavy(n))
            .collect();
        heavy.sort();
        heavy.dedup();
        let build = match features {
            None => package.to_string(),
            Some([]) => format!("{package} --no-default-features"),
            Some(f) => format!("{package} --no-default-features --features {}", f.join(",")),
        };
        problems.extend(
            heavy
                .into_iter()
                .map(|h| Problem(format!("{build} compiles `{h}`: {who} must not need it"))),
        );
    }
    Ok(problems)
}

/// `cargo xtask tidy`.
pub fn run(root: &Path) -> Result<()> {
    let mut problems = check_crates(root);
    problems.extend(check_light(root)?);
    if problems.is_empty() {
        println!("xtask: tidy: all crates follow the rules");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {}", p.0);
    }
    Err(format!("{} tidy problem(s)", problems.len()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn every_crate_follows_the_rules() {
        let problems = check_crates(&root());
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn light_users_compile_no_arrow_parquet_or_aws() {
        // Documents-only (storage-cas) and JSON/JSONL datasets (storage-manifest without its
        // default `parquet` feature).
        for &(package, features, _) in LIGHT {
            let names = dependency_names(&root(), package, features).unwrap();
            assert!(
                names.iter().any(|n| n == "storage-core"),
                "the tree of {package} was read: {names:?}"
            );
        }
        let problems = check_light(&root()).unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn the_check_would_notice_a_heavy_crate() {
        // storage-manifest with its default `parquet` feature legitimately compiles arrow and
        // parquet: the same test must flag them, so the light builds above prove something.
        let names = dependency_names(&root(), "storage-manifest", None).unwrap();
        for heavy in ["parquet", "arrow-array", "arrow-schema"] {
            assert!(names.iter().any(|n| n == heavy), "{heavy}: {names:?}");
            assert!(is_heavy(heavy));
        }
        assert!(
            names
                .iter()
                .any(|n| is_heavy(n) && !HEAVY.contains(&n.as_str())),
            "arrow's own dependencies (arrow-buffer, ...) count too: {names:?}"
        );
    }
}
