//! Bucket and routing commands: `strata buckets info|health` (and the aliases `buckets
//! get|ls` of `strata get|ls --any|--route`).
//!
//! `info` shows the buckets of the setup (in the embedded default: the sub-folders of its
//! folder) and, with a config file, its router (`[routes.*]`, `[sources.*]`, `[tenants.*]`):
//! which bucket each data type lives in and the read sets with their fallbacks. `health`
//! probes buckets now.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use storage_core::ObjectInfo;
use strata::router::{ReadPolicy, Router};
use tokio::io::AsyncWriteExt;

use crate::output::{CliError, CliResult, Ctx, human_bytes};

/// `strata buckets ...`.
#[derive(Debug, Subcommand)]
pub enum BucketsCommand {
    /// The buckets (in the embedded default: the sub-folders of $STRATA_HOME or ./.strata)
    /// with their providers; with a config file also routes (data type → bucket/prefix),
    /// source sets (primary and fallbacks) and tenants.
    #[command(after_help = crate::help::BUCKETS_INFO)]
    Info,
    /// Probe buckets now (every bucket, or the NAMEs given): provider, latency, and the
    /// error of a failing one. Exit 0 when all answer, else the exit code of the first
    /// failure's cause (5 unreachable or overloaded, 6 denied). `strata health` is an alias.
    #[command(after_help = crate::help::BUCKETS_HEALTH)]
    Health(HealthArgs),
    /// Alias of `strata get KEY --any SOURCE` / `--route ROUTE` (kept for scripts).
    #[command(hide = true)]
    Get(SourceGetArgs),
    /// Alias of `strata ls PREFIX --any SOURCE` / `--route ROUTE` (kept for scripts).
    #[command(hide = true)]
    Ls(SourceLsArgs),
}

/// `strata buckets health` / `strata health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Bucket names (default: every bucket of the setup).
    pub buckets: Vec<String>,
}

/// `--source NAME` or `--route NAME`, exactly one: what `buckets get|ls` read through.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// Source set (`[sources.NAME]`).
    #[arg(
        long,
        short,
        required_unless_present = "route",
        conflicts_with = "route"
    )]
    pub source: Option<String>,
    /// Route (`records`, `versions`, ... or `[routes.NAME]`).
    #[arg(long, short)]
    pub route: Option<String>,
}

impl SetArgs {
    fn via(self) -> CliResult<Via> {
        Via::of(self.source, self.route)
            .ok_or_else(|| CliError::bad_input("give --source NAME or --route NAME"))
    }
}

/// What a key is read (or a prefix listed) through when it is not one bucket's.
pub(crate) enum Via {
    /// A source set (`[sources.NAME]`): its buckets in order.
    Source(String),
    /// A route (`[routes.NAME]`): its bucket and prefix.
    Route(String),
}

impl Via {
    /// The route when one is given (clap keeps the two apart), else the source set; `None`
    /// when neither is: the key is one bucket's.
    pub(crate) fn of(source: Option<String>, route: Option<String>) -> Option<Via> {
        route.map(Via::Route).or(source.map(Via::Source))
    }
}

/// `strata buckets get`.
#[derive(Debug, Args)]
// The shared flags' help, worded for what this command does with them.
#[command(mut_arg("source", |a| a.help("Source set to read from (`[sources.NAME]`)")))]
#[command(mut_arg("route", |a| a.help("Route to read from (`records`, `versions`, ... or `[routes.NAME]`)")))]
pub struct SourceGetArgs {
    /// Key to read.
    pub key: String,
    #[command(flatten)]
    pub set: SetArgs,
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
#[command(mut_arg("source", |a| a.help("Source set to list (`[sources.NAME]`)")))]
#[command(mut_arg("route", |a| a.help("Route to list (`records`, `versions`, ... or `[routes.NAME]`)")))]
pub struct SourceLsArgs {
    /// Prefix to list (empty: everything).
    #[arg(default_value = "")]
    pub prefix: String,
    #[command(flatten)]
    pub set: SetArgs,
    /// Long format: bucket, size, modified.
    #[arg(long, short)]
    pub long: bool,
}

impl BucketsCommand {
    /// Run the command.
    pub async fn run(self, ctx: &Ctx) -> CliResult {
        match self {
            BucketsCommand::Info => info(ctx),
            BucketsCommand::Health(a) => health(ctx, a).await,
            BucketsCommand::Get(a) => {
                let via = a.set.via()?;
                get(ctx, via, &a.key, a.from, a.policy, a.output).await
            }
            BucketsCommand::Ls(a) => ls(ctx, a.set.via()?, &a.prefix, a.long).await,
        }
    }
}

/// The router of the configured setup.
fn router(ctx: &Ctx) -> CliResult<Router> {
    Ok(ctx.strata.router()?.clone())
}

#[derive(Serialize)]
struct PlainInfo {
    origin: String,
    embedded: bool,
    buckets: Vec<PlainBucket>,
}

#[derive(Serialize)]
struct PlainBucket {
    name: String,
    provider: String,
}

fn info(ctx: &Ctx) -> CliResult {
    if ctx.strata.router().is_err() {
        // No router without a config file (the embedded default, or an env-only setup):
        // the buckets are all there is. In the embedded default they are the folders.
        let names = ctx.strata.bucket_names();
        let mut buckets = Vec::new();
        for name in names {
            let provider = ctx.strata.bucket(&name)?.provider().to_string();
            buckets.push(PlainBucket { name, provider });
        }
        let mut t = format!("config: {}\n\nbuckets:", ctx.strata.origin());
        if buckets.is_empty() {
            t.push_str("\n  (none yet: `strata put NAME:KEY ...` creates folder NAME)");
        }
        for b in &buckets {
            let _ = write!(t, "\n  {:<20} {}", b.name, b.provider);
        }
        t.push_str(
            "\n\nroutes, sources and tenants need a config file (--config FILE or STRATA_CONFIG)",
        );
        ctx.emit(
            t,
            &PlainInfo {
                origin: ctx.strata.origin().to_string(),
                embedded: ctx.strata.is_embedded(),
                buckets,
            },
        );
        return Ok(());
    }
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

/// One bucket's probe, a line of `health --json`.
#[derive(Serialize)]
struct HealthLine {
    bucket: String,
    provider: String,
    ok: bool,
    /// Milliseconds the probe took.
    latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The exit code this failure maps to (5 temporary, 6 denied, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<u8>,
}

/// Probe each bucket with one small listing (as `Bucket::health` does), keeping the error
/// itself so the exit code says what kind of failure it was.
pub(crate) async fn health(ctx: &Ctx, a: HealthArgs) -> CliResult {
    let names = if a.buckets.is_empty() {
        ctx.strata.bucket_names()
    } else {
        a.buckets
    };
    if names.is_empty() {
        return Err(CliError::bad_input(format!(
            "no buckets to probe in {}; name some (strata buckets health NAME...) or create one (strata put NAME:KEY ...)",
            ctx.strata.origin()
        )));
    }
    let buckets = names
        .iter()
        .map(|n| ctx.strata.bucket(n))
        .collect::<Result<Vec<_>, _>>()?;
    let probes = futures::future::join_all(buckets.iter().map(|b| async move {
        let start = std::time::Instant::now();
        let r = b.list_dir("strata-health-probe").await;
        (b, start.elapsed(), r.err())
    }))
    .await;
    let mut lines = ctx.lines();
    let mut first_failure = None;
    let mut failed = 0;
    for (b, latency, err) in probes {
        let line = HealthLine {
            bucket: b.name().to_string(),
            provider: b.provider().to_string(),
            ok: err.is_none(),
            latency_ms: (latency.as_secs_f64() * 10_000.0).round() / 10.0,
            error: err.as_ref().map(|e| e.to_string()),
            exit_code: err.as_ref().map(crate::output::exit_code),
        };
        lines.item(
            format_args!(
                "{:<20} {:<8} {:>8.1} ms  {}",
                line.bucket,
                line.provider,
                line.latency_ms,
                match &line.error {
                    None => "ok".to_string(),
                    Some(e) => format!("FAILING: {e}"),
                }
            ),
            &line,
        )?;
        if let Some(e) = err {
            failed += 1;
            first_failure.get_or_insert(e);
        }
    }
    lines.flush()?;
    match first_failure {
        None => Ok(()),
        Some(e) => Err(CliError::caused_by(
            &e,
            format!("{failed} of {} bucket(s) failing", names.len()),
        )),
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

/// Read `key` through `via`: from the route's bucket, or from the first bucket of the
/// source set that has it (`from` one bucket of it, or by `policy`); to `output` or stdout.
pub(crate) async fn get(
    ctx: &Ctx,
    via: Via,
    key: &str,
    from: Option<String>,
    policy: Option<String>,
    output: Option<PathBuf>,
) -> CliResult {
    let router = router(ctx)?;
    let (bucket, obj, skipped) = match &via {
        Via::Route(route) => {
            if from.is_some() || policy.is_some() {
                return Err(CliError::bad_input(
                    "--from and --policy apply to --source, not --route",
                ));
            }
            let r = router.route_info(route)?;
            let obj = r.handle().get(key).await?;
            (r.bucket().name().to_string(), obj, Vec::new())
        }
        Via::Source(source) => {
            let set = router.source(source)?;
            match from {
                Some(name) => {
                    let obj = set.get_from(&name, key).await?;
                    (name, obj, Vec::new())
                }
                None => {
                    let policy = match &policy {
                        Some(p) => ReadPolicy::parse(p)?,
                        None => set.policy(),
                    };
                    let found = set.get_with(key, policy).await?;
                    (found.bucket, found.value, found.skipped)
                }
            }
        }
    };
    if !ctx.json {
        for s in &skipped {
            eprintln!("warning: skipped a failing bucket: {s}");
        }
    }
    match &output {
        Some(path) => {
            tokio::fs::write(path, &obj.bytes).await?;
            let out = GetOutput {
                bucket: &bucket,
                key,
                size: obj.info.size,
                etag: obj.info.etag.as_deref(),
                skipped: &skipped,
            };
            ctx.done(
                format!(
                    "got {} from {bucket} → {} ({})",
                    key,
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

/// List `prefix` through `via`: under the route, or across the source set (merged, each key
/// with its bucket; an error when a bucket could not be listed).
pub(crate) async fn ls(ctx: &Ctx, via: Via, prefix: &str, long: bool) -> CliResult {
    let router = router(ctx)?;
    let prefix = prefix.trim_end_matches('/');
    let source = match via {
        Via::Source(source) => source,
        Via::Route(route) => {
            let r = router.route(&route)?;
            let mut lines = ctx.lines();
            super::object::print_stream(&mut lines, r.list(prefix), |l, o: ObjectInfo| {
                let human = if long {
                    format!(
                        "{:>10}  {}  {}",
                        o.size,
                        o.last_modified.format("%Y-%m-%d %H:%M:%S"),
                        o.key
                    )
                } else {
                    o.key.clone()
                };
                l.item(human, &super::object::ListItem::object(&o, false))
            })
            .await?;
            return Ok(());
        }
    };
    let set = router.source(&source)?;
    let listing = set.list(prefix).await;
    ctx.list(&listing.entries, |e| {
        if long {
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
    })?;
    if listing.is_partial() {
        let which: Vec<String> = listing.partial.iter().map(|f| f.to_string()).collect();
        return Err(CliError::caused_by(
            &listing.partial[0].error,
            format!(
                "the listing is partial: {} bucket(s) could not be listed: {}",
                listing.partial.len(),
                which.join("; ")
            ),
        ));
    }
    Ok(())
}
