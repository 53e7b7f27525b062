//! Project automation for Strata, run as `cargo xtask <command>`.
//!
//! - `test [ARGS]`: install the S3 test servers if missing, start them on free loopback
//!   ports, run `cargo test --workspace ARGS` against them, stop them on every exit path.
//! - `ci [--full] [--keep-going]`: `cargo fmt --check`, tidy, clippy with `-D warnings`,
//!   `test`, every example run, clippy and tests of every crate alone and of the facade per
//!   feature set, rustdoc with warnings denied, `cargo deny check`. `--full` adds the
//!   doctests of every crate alone and of each facade feature set (see `ci::ci`);
//!   `--keep-going` runs every step even after a failure and lists the failed ones at the end.
//! - `bench [--report] [--quick] [--from LOG]...`: the benchmarks, each comparing Strata with a
//!   baseline in one run; `--report` writes `docs/benchmarks.md` with tables and SVG charts
//!   (see `report`), `--quick` runs fewer rounds, `--from` reports an earlier run's output.
//! - `servers [--install]`: install the servers, or start them and print their variables
//!   (for running single tests by hand) until interrupted.
//! - `tidy`: the workspace's own rules (also run as tests).
//! - `release VERSION [--dry-run]`: bump, roll the changelog, package in order, tag, publish.

use std::process::Command;

mod ci;
mod release;
mod report;
mod servers;
mod tidy;

/// Error type of the xtask: a message for the user.
pub type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Run a command, echoing it, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    println!("xtask: $ {}", show(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", show(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", show(cmd)).into())
    }
}

/// `cmd` as a shell line, for messages.
pub fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cargo`, as the one running us.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn usage() -> &'static str {
    "usage: cargo xtask <test [CARGO TEST ARGS] | ci [--full] [--keep-going] | bench [--report] [--quick] [--from LOG]... | servers [--install] | tidy | release VERSION [--dry-run]>"
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => ci::test(&args[1..]),
        Some("ci") => ci::ci(
            args.iter().any(|a| a == "--full"),
            args.iter().any(|a| a == "--keep-going"),
        ),
        Some("bench") => ci::bench(&args[1..]),
        Some("servers") => ci::servers(args.iter().any(|a| a == "--install")),
        Some("tidy") => tidy::run(&ci::workspace_root()),
        Some("release") => match args.get(1).filter(|a| !a.starts_with("--")) {
            Some(version) => release::release(
                &ci::workspace_root(),
                version,
                args.iter().any(|a| a == "--dry-run"),
            ),
            None => Err(format!("release needs a version\n{}", usage()).into()),
        },
        Some("-h" | "--help" | "help") | None => {
            println!("{}", usage());
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n{}", usage()).into()),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e}");
        std::process::exit(1);
    }
}
