//! `strata`: the command-line tool of the Strata workspace.
//!
//! Addresses are rclone-style `NAME:KEY` (`photos:2026/cat.jpg`); anything without `NAME:`
//! is a local path. With no configuration the embedded default is used: a local folder
//! store under `./.strata` (or `$STRATA_HOME`), each NAME a folder. `--config FILE` (or
//! `STRATA_CONFIG`) selects a TOML file that names buckets on s3, r2, fs or memory.
//!
//! Output is human-readable by default and JSON with `--json`. Exit codes: 0 ok, 2 usage or
//! bad input, 3 not found, 4 precondition failed / conflict, 1 anything else.

mod address;
mod commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Ctx;

/// Object storage across S3, R2 and local folders.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, long_about = None)]
struct Cli {
    /// Config file (TOML). Default: $STRATA_CONFIG, else the embedded local-folder store.
    #[arg(long, global = true, env = "STRATA_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON instead of text (for scripts).
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Log what happens (`-v` info, `-vv` debug) to stderr.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Object(commands::object::ObjectCommand),
    /// Typed JSON documents with ETag compare-and-swap, TTL and versioned records.
    #[command(subcommand)]
    Doc(commands::doc::DocCommand),
    /// JSON, JSONL and Parquet datasets with a searchable manifest.
    #[command(subcommand)]
    Dataset(commands::dataset::DatasetCommand),
    /// Buckets, routes and source sets: info, health, and get/ls across a source set.
    #[command(subcommand)]
    Buckets(commands::buckets::BucketsCommand),
    /// Copy everything (or a prefix) from one bucket to another, skipping identical objects;
    /// resumable, verified.
    Sync(commands::sync::SyncArgs),
    /// Like sync, always verified: move a bucket's data to another bucket or provider.
    Migrate(commands::sync::SyncArgs),
    /// Move a route's old objects to its offload bucket or storage class.
    Offload(commands::sync::OffloadArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.json;
    let result = runtime.block_on(async move {
        let ctx = Ctx::new(cli.config.as_deref(), cli.json, cli.quiet)?;
        match cli.command {
            Command::Object(c) => c.run(&ctx).await,
            Command::Doc(c) => c.run(&ctx).await,
            Command::Dataset(c) => c.run(&ctx).await,
            Command::Buckets(c) => c.run(&ctx).await,
            Command::Sync(a) => commands::sync::run_sync(&ctx, a, false).await,
            Command::Migrate(a) => commands::sync::run_sync(&ctx, a, true).await,
            Command::Offload(a) => commands::sync::run_offload(&ctx, a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(json),
    }
}
