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

/// `cargo xtask test [ARGS]`.
pub fn test(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .args(["test", "--workspace"])
        .args(args);
    with_servers(&mut cmd)
}

/// `cargo xtask ci [--full]`.
pub fn ci(full: bool) -> Result<()> {
    let root = workspace_root();
    run(cargo().current_dir(&root).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(&root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    test(&[])?;
    run(cargo()
        .current_dir(&root)
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    if full {
        println!("xtask: --full: checking every crate on its own");
        for krate in workspace_crates(&root)? {
            run(cargo().current_dir(&root).args([
                "clippy",
                "-p",
                &krate,
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
        }
    }
    match Command::new("cargo-deny").arg("--version").output() {
        Ok(o) if o.status.success() => run(cargo().current_dir(&root).args(["deny", "check"]))?,
        _ => println!(
            "xtask: cargo-deny is not installed; skipping `cargo deny check` (install: cargo install cargo-deny --locked)"
        ),
    }
    println!("xtask: ci passed");
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
