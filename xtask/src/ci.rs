//! `test`, `ci`, `bench` and `servers`.

use std::path::PathBuf;
use std::process::Command;

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

/// Facade feature sets checked by `ci`: none, default, each alone, all.
pub const FACADE_FEATURES: &[&str] = &[
    "s3",
    "r2",
    "router",
    "cas",
    "manifest",
    "layers",
    "layers-full",
];

/// `cargo xtask ci [--full]`.
///
/// Always: fmt, tidy, clippy (all targets, all features), every crate and every facade
/// feature set type-checked on its own, the tests against the S3 servers, rustdoc with
/// warnings denied, cargo-deny. `--full` also runs clippy and the tests of every crate on
/// its own and of the facade per feature set (slow: each is a separate build).
pub fn ci(full: bool) -> Result<()> {
    let root = workspace_root();
    run(cargo().current_dir(&root).args(["fmt", "--all", "--check"]))?;
    crate::tidy::run(&root)?;
    run(cargo().current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    let crates = workspace_crates(&root)?;
    let (lint, verb): (&[&str], &str) = if full {
        (&["--all-targets", "--", "-D", "warnings"], "clippy")
    } else {
        (&[], "check")
    };
    for krate in &crates {
        run(cargo()
            .current_dir(&root)
            .args([verb, "-p", krate])
            .args(lint))?;
    }
    let mut sets: Vec<Vec<&str>> = vec![vec!["--no-default-features"], vec![]];
    for f in FACADE_FEATURES {
        sets.push(vec!["--no-default-features", "--features", f]);
    }
    for set in &sets {
        run(cargo()
            .current_dir(&root)
            .args([verb, "-p", "strata"])
            .args(set)
            .args(lint))?;
    }
    test(&[])?;
    if full {
        for krate in &crates {
            let mut cmd = cargo();
            cmd.current_dir(&root).args(["test", "-p", krate]);
            with_servers(&mut cmd)?;
        }
        for set in &sets {
            run(cargo()
                .current_dir(&root)
                .args(["test", "-p", "strata"])
                .args(set))?;
        }
    }
    run(cargo()
        .current_dir(&root)
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    ensure_cargo_deny()?;
    // Advisories need the RustSec database from GitHub, which this network cannot reach:
    // licenses, bans (openssl) and sources (crates.io only) are checked offline.
    run(cargo()
        .current_dir(&root)
        .args(["deny", "check", "bans", "licenses", "sources"]))?;
    println!("xtask: ci passed");
    Ok(())
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

/// Names of the crates under `crates/`.
pub fn workspace_crates(root: &std::path::Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join("crates"))? {
        let path = entry?.path();
        if path.join("Cargo.toml").exists() {
            names.push(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    names.sort();
    Ok(names)
}

/// `cargo xtask bench`: every benchmark, servers running, ratios printed by each.
pub fn bench(args: &[String]) -> Result<()> {
    let root = workspace_root();
    let mut cmd = cargo();
    cmd.current_dir(&root)
        .args(["bench", "--workspace"])
        .args(args);
    with_servers(&mut cmd)
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
