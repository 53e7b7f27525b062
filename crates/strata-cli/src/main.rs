//! `strata`: the command-line tool of the Strata workspace.
//!
//! Addresses are rclone-style `NAME:KEY` (`photos:2026/cat.jpg`); anything without `NAME:`
//! is a local path. With no configuration the embedded default is used: a local folder
//! store under `./.strata` (or `$STRATA_HOME`), each NAME a folder. `--config FILE` (or
//! `STRATA_CONFIG`) selects a TOML file that names buckets on s3, r2, fs or memory.
//!
//! Output is human-readable by default and JSON with `--json` (NDJSON for listings). Exit
//! codes: 0 ok, 1 internal, 2 usage or bad input, 3 not found, 4 precondition failed /
//! conflict, 5 temporary backend failure, 6 access denied (see `help::MAIN`).

mod address;
mod commands;
mod help;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Ctx;

/// Object storage across S3, R2 and local folders: objects, documents, datasets, buckets.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about,
    long_about = "Object storage across S3, R2 and local folders: objects, typed JSON documents with \
compare-and-swap, datasets with a searchable manifest, bucket health, sync and migration.\n\n\
With no configuration it works on the embedded default, a local folder: try \
`strata put notes:hello.txt --data hi` then `strata ls notes:`.",
    after_help = help::MAIN
)]
struct Cli {
    /// Config file (TOML). Default: $STRATA_CONFIG, else the STORAGE_* variables, else the
    /// embedded default (a local folder: $STRATA_HOME or ./.strata).
    #[arg(long, global = true, env = "STRATA_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON instead of text (for scripts); listings print one object per line.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars, and nothing on success for commands that change things.
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
    #[command(subcommand, after_help = help::DOC)]
    Doc(commands::doc::DocCommand),
    /// JSON, JSONL and Parquet datasets with a searchable manifest.
    #[command(subcommand, after_help = help::DATASET)]
    Dataset(commands::dataset::DatasetCommand),
    /// Buckets of the setup (routes and source sets with a config file) and their health.
    #[command(subcommand)]
    Buckets(commands::buckets::BucketsCommand),
    /// Alias of `strata buckets health` (kept for scripts).
    #[command(hide = true)]
    Health(commands::buckets::HealthArgs),
    /// Copy everything (or a prefix) from one bucket to another, skipping identical objects;
    /// resumable, verified.
    #[command(after_help = help::SYNC)]
    Sync(commands::sync::SyncArgs),
    /// Like sync, always verified: move a bucket's data to another bucket or provider.
    #[command(after_help = help::MIGRATE)]
    Migrate(commands::sync::SyncArgs),
    /// Move a route's old objects to its offload bucket or storage class.
    #[command(after_help = help::OFFLOAD)]
    Offload(commands::sync::OffloadArgs),
    /// Serve every bucket, route and tenant as an S3-compatible endpoint (docs/serve.md).
    Serve(commands::serve::ServeArgs),
    /// Writes a mirrored bucket owes to copies that missed them: pending, replay.
    #[command(subcommand)]
    Mirror(commands::mirror::MirrorCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(after_help = help::COMPLETIONS)]
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, or write one page per command into a folder.
    #[command(after_help = help::MAN)]
    Man {
        /// Write `strata.1`, `strata-put.1`, ... into this folder instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// `strata completions` and `strata man`: generated from the clap definitions, so they
/// need no configuration.
fn generate(command: &Command) -> Option<std::io::Result<()>> {
    use clap::CommandFactory;
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "strata",
                &mut std::io::stdout(),
            );
            Some(Ok(()))
        }
        Command::Man { out_dir: None } => {
            Some(clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()))
        }
        Command::Man { out_dir: Some(dir) } => Some(
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), dir)),
        ),
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(done) = generate(&cli.command) {
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => output::CliError::from(e).report(cli.json),
        };
    }
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // [telemetry] / STRATA_PROMETHEUS_* / OTEL_*: exported and flushed when `telemetry` drops.
    let telemetry = match strata::telemetry::Telemetry::install_from(cli.config.as_deref()) {
        Ok(t) => t,
        Err(e) => return output::CliError::from(e).report(cli.json),
    };
    telemetry.init_tracing(tracing_subscriber::Layer::with_filter(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(output::stderr_colour()),
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| filter.into()),
    ));
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
    // `serve` exposes the same recorder on its admin listener when [telemetry.prometheus]
    // installed one (there is one global recorder per process).
    let prometheus = telemetry.prometheus().cloned();
    let result = runtime.block_on(async move {
        let ctx = Ctx::new(cli.config.as_deref(), cli.json, cli.quiet)?;
        match cli.command {
            Command::Object(c) => c.run(&ctx).await,
            Command::Doc(c) => c.run(&ctx).await,
            Command::Dataset(c) => c.run(&ctx).await,
            Command::Buckets(c) => c.run(&ctx).await,
            Command::Health(a) => commands::buckets::health(&ctx, a).await,
            Command::Sync(a) => commands::sync::run_sync(&ctx, a, false).await,
            Command::Migrate(a) => commands::sync::run_sync(&ctx, a, true).await,
            Command::Offload(a) => commands::sync::run_offload(&ctx, a).await,
            Command::Serve(a) => {
                commands::serve::run(&ctx, cli.config.as_deref(), a, prometheus).await
            }
            Command::Mirror(c) => c.run(&ctx).await,
            Command::Completions { .. } | Command::Man { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that closed the pipe (`strata ls -r | head`) has what it wanted.
        Err(e) if e.code == 0 => ExitCode::SUCCESS,
        Err(e) => e.report(json),
    }
}
