//! Bucket and routing commands: `strata buckets info|health|get|ls`.
//!
//! They operate the router of the configured setup (`[routes.*]`, `[sources.*]`,
//! `[tenants.*]` in the config file): which bucket each data type lives in, the read sets
//! with their fallbacks, and how healthy each bucket is.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use futures::TryStreamExt;
use serde::Serialize;
use storage_core::ObjectInfo;
use strata::router::{ReadPolicy, Router};
use tokio::io::AsyncWriteExt;

use crate::output::{CliError, CliResult, Ctx, human_bytes};

/// `strata buckets ...`.
#[derive(Debug, Subcommand)]
pub enum BucketsCommand {
    /// Buckets, routes (data type → bucket/prefix), source sets (primary and fallbacks),
    /// tenants, and the provider of each.
    Info,
    /// Probe every bucket now and show its health: ok/error counts, latency, last error,
    /// and whether recent failures have lowered its read priority.
    Health,
    /// Read KEY from a source set (the first bucket that has it), from one bucket of it, or
    /// from a route (`--route records`: its bucket and prefix, then its offload target).
    Get(SourceGetArgs),
    /// List PREFIX across a source set: merged, de-duplicated, each key tagged with the
    /// bucket it came from (a bucket that cannot be listed makes the command fail, exit 1,
    /// after printing what it could list); or under a route (`--route records`).
    Ls(SourceLsArgs),
}

/// `strata buckets get`.
#[derive(Debug, Args)]
pub struct SourceGetArgs {
    /// Key to read.
    pub key: String,
    /// Source set to read from (`[sources.NAME]`).
    #[arg(
        long,
        short,
        required_unless_present = "route",
        conflicts_with = "route"
    )]
    pub source: Option<String>,
    /// Route to read from (`records`, `versions`, ... or `[routes.NAME]`).
    #[arg(long, short)]
    pub route: Option<String>,
    /// Read only from this bucket of the set.
    #[arg(long, conflicts_with = "policy")]
    pub from: Option<String>,
    /// Read policy: sequential, parallel, hedged or hedged:50ms (default: the set's).
    #[arg(long)]
    pub policy: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `strata buckets ls`.
#[derive(Debug, Args)]
pub struct SourceLsArgs {
    /// Prefix to list (empty: everything).
    #[arg(default_value = "")]
    pub prefix: String,
    /// Source set to list (`[sources.NAME]`).
    #[arg(
        long,
        short,
        required_unless_present = "route",
        conflicts_with = "route"
    )]
    pub source: Option<String>,
    /// Route to list (`records`, `versions`, ... or `[routes.NAME]`).
    #[arg(long, short)]
    pub route: Option<String>,
    /// Long format: bucket, size, modified.
    #[arg(long, short)]
    pub long: bool,
}

impl BucketsCommand {
    /// Run the command.
    pub async fn run(self, ctx: &Ctx) -> CliResult {
        match self {
            BucketsCommand::Info => info(ctx),
            BucketsCommand::Health => health(ctx).await,
            BucketsCommand::Get(a) => get(ctx, a).await,
            BucketsCommand::Ls(a) => ls(ctx, a).await,
        }
    }
}

/// The router of the configured setup.
fn router(ctx: &Ctx) -> CliResult<Router> {
    Ok(ctx.strata.router()?.clone())
}

fn info(ctx: &Ctx) -> CliResult {
    let info = router(ctx)?.info();
    let mut t = String::new();
    let _ = writeln!(t, "config: {}", info.origin);
    if let Some(legacy) = &info.legacy_bucket {
        let _ = writeln!(t, "legacy bucket (deprecated): {legacy}");
    }
    let _ = writeln!(t, "\nbuckets:");
    for b in &info.buckets {
        let _ = writeln!(
            t,
            "  {:<20} {:<8} {}",
            b.name,
            b.provider,
            b.connection
                .as_deref()
                .map(|c| format!("connection {c}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(t, "\nroutes:");
    for r in &info.routes {
        let prefix = if r.target.prefix.is_empty() {
            "(root)"
        } else {
            &r.target.prefix
        };
        let _ = write!(
            t,
            "  {:<12} → {}/{} ({})",
            r.name, r.target.bucket, prefix, r.target.provider
        );
        if let Some(o) = &r.offload {
            let _ = write!(
                t,
                "; after {} days → {}/{}{}",
                o.after_days,
                o.bucket,
                o.prefix,
                o.storage_class
                    .as_deref()
                    .map(|c| format!(" [{c}]"))
                    .unwrap_or_default()
            );
        }
        t.push('\n');
    }
    if !info.sources.is_empty() {
        let _ = writeln!(t, "\nsources:");
        for s in &info.sources {
            let policy = &s.policy;
            let _ = writeln!(
                t,
                "  {:<12} primary {} → fallbacks {} ({policy})",
                s.name,
                s.primary,
                if s.fallbacks.is_empty() {
                    "none".to_string()
                } else {
                    s.fallbacks.join(", ")
                }
            );
        }
    }
    if !info.tenants.is_empty() {
        let _ = writeln!(t, "\ntenants:");
        for tn in &info.tenants {
            let _ = writeln!(
                t,
                "  {:<12} → {}/{}",
                tn.name, tn.target.bucket, tn.target.prefix
            );
        }
    }
    ctx.emit(t.trim_end(), &info);
    Ok(())
}

async fn health(ctx: &Ctx) -> CliResult {
    let reports = router(ctx)?.probe_health().await;
    if reports.is_empty() {
        return Err(CliError::bad_input("no buckets configured to probe"));
    }
    let text = reports
        .iter()
        .map(|h| {
            format!(
                "{:<20} {:<8} {:>8}  ok {:<4} errors {:<4} {}{}",
                h.bucket,
                h.provider.as_deref().unwrap_or(""),
                h.latency_ms
                    .map(|l| format!("{l:.1} ms"))
                    .unwrap_or_default(),
                h.ok,
                h.errors,
                if h.consecutive_failures == 0 {
                    "healthy".to_string()
                } else {
                    format!("FAILING: {}", h.last_error.as_deref().unwrap_or(""))
                },
                h.demoted_for_ms
                    .map(|ms| format!(" (tried last for {:.0} s more)", ms / 1000.0))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    ctx.emit(text, &reports);
    let failing = reports
        .iter()
        .filter(|h| h.consecutive_failures > 0)
        .count();
    if failing == 0 {
        Ok(())
    } else {
        Err(CliError::other(format!("{failing} bucket(s) failing")))
    }
}

#[derive(Serialize)]
struct GetOutput<'a> {
    bucket: &'a str,
    key: &'a str,
    size: u64,
    etag: Option<&'a str>,
    skipped: &'a [strata::router::BucketFailure],
}

pub(crate) async fn get(ctx: &Ctx, a: SourceGetArgs) -> CliResult {
    let router = router(ctx)?;
    let (bucket, obj, skipped) = match (&a.route, &a.source) {
        (Some(route), _) => {
            if a.from.is_some() || a.policy.is_some() {
                return Err(CliError::bad_input(
                    "--from and --policy apply to --source, not --route",
                ));
            }
            let r = router.route(route)?;
            let obj = r.get(&a.key).await?;
            (r.bucket().name().to_string(), obj, Vec::new())
        }
        (None, Some(source)) => {
            let set = router.source(source)?;
            match &a.from {
                Some(name) => (name.clone(), set.get_from(name, &a.key).await?, Vec::new()),
                None => {
                    let policy = match &a.policy {
                        Some(p) => ReadPolicy::parse(p)?,
                        None => set.policy(),
                    };
                    let found = set.get_with(&a.key, policy).await?;
                    (found.bucket, found.value, found.skipped)
                }
            }
        }
        (None, None) => return Err(CliError::bad_input("give --source NAME or --route NAME")),
    };
    if !ctx.json {
        for s in &skipped {
            eprintln!("warning: skipped a failing bucket: {s}");
        }
    }
    match &a.output {
        Some(path) => {
            tokio::fs::write(path, &obj.bytes).await?;
            let out = GetOutput {
                bucket: &bucket,
                key: &a.key,
                size: obj.info.size,
                etag: obj.info.etag.as_deref(),
                skipped: &skipped,
            };
            ctx.emit(
                format!(
                    "got {} from {bucket} → {} ({})",
                    a.key,
                    path.display(),
                    human_bytes(obj.info.size)
                ),
                &out,
            );
        }
        None => {
            let mut stdout = tokio::io::stdout();
            stdout.write_all(&obj.bytes).await?;
            stdout.flush().await?;
            if !ctx.quiet && !ctx.json {
                eprintln!("(from {bucket})");
            }
        }
    }
    Ok(())
}

pub(crate) async fn ls(ctx: &Ctx, a: SourceLsArgs) -> CliResult {
    let router = router(ctx)?;
    let prefix = a.prefix.trim_end_matches('/');
    if let Some(route) = &a.route {
        let r = router.route(route)?;
        let mut all: Vec<ObjectInfo> = r.list(prefix).try_collect().await?;
        all.sort_by(|x, y| x.key.cmp(&y.key));
        let text = all
            .iter()
            .map(|o| {
                if a.long {
                    format!(
                        "{:>10}  {}  {}",
                        o.size,
                        o.last_modified.format("%Y-%m-%d %H:%M:%S"),
                        o.key
                    )
                } else {
                    o.key.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        ctx.emit(text, &all);
        return Ok(());
    }
    let source = a
        .source
        .as_deref()
        .ok_or_else(|| CliError::bad_input("give --source NAME or --route NAME"))?;
    let set = router.source(source)?;
    let listing = set.list(prefix).await;
    let text = listing
        .entries
        .iter()
        .map(|e| {
            if a.long {
                format!(
                    "{:<16} {:>10}  {}  {}",
                    e.bucket,
                    e.info.size,
                    e.info.last_modified.format("%Y-%m-%d %H:%M:%S"),
                    e.info.key
                )
            } else {
                format!("{}\t{}", e.info.key, e.bucket)
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    ctx.emit(text, &listing);
    if listing.is_partial() {
        let which: Vec<String> = listing.partial.iter().map(|f| f.to_string()).collect();
        return Err(CliError::other(format!(
            "the listing is partial: {} bucket(s) could not be listed: {}",
            listing.partial.len(),
            which.join("; ")
        )));
    }
    Ok(())
}
