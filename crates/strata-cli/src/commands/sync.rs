//! Moving data between buckets: `strata sync SRC DST`, `strata migrate SRC DST` and
//! `strata offload ROUTE`.

use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use strata::router::{CompareMode, OffloadOptions, SyncOptions, SyncReport, sync};

use crate::address::Address;
use crate::output::{CliError, CliResult, Ctx, human_bytes};

/// How `sync` recognises objects that are already identical.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompareArg {
    /// Size, then content-MD5 ETags where both providers have them, else the checkpoint or
    /// a hash of both copies.
    Auto,
    /// Size and ETag only (same provider kind on both sides).
    Etag,
    /// Size and an MD5 of both copies' bytes (reads both).
    Hash,
}

/// `strata sync` / `strata migrate`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source: NAME: or NAME:PREFIX.
    pub src: String,
    /// Destination: NAME: or NAME:PREFIX (default: the same keys as the source).
    pub dest: String,
    /// Only keys under this prefix (same as writing NAME:PREFIX).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Show what would be copied; copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How identical objects are recognised.
    #[arg(long, value_enum, default_value = "auto")]
    pub compare: CompareArg,
    /// Objects copied at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Do not check each copy after writing it (sync only; migrate always verifies).
    #[arg(long)]
    pub no_verify: bool,
    /// Keep no checkpoint in the destination (resuming then compares objects instead).
    #[arg(long)]
    pub no_checkpoint: bool,
}

/// `strata offload`.
#[derive(Debug, Args)]
pub struct OffloadArgs {
    /// Route whose old objects move (`[routes.NAME.offload]` says where).
    pub route: String,
    /// Move objects older than this (`30d`, `12h`); default: the route's `after_days`.
    #[arg(long)]
    pub older_than: Option<String>,
    /// Show what would move; move nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn split(addr: &str, prefix: Option<&str>) -> CliResult<(String, String)> {
    let (name, key) = Address::remote(addr)?;
    let key = key.trim_end_matches('/').to_string();
    match (prefix, key.is_empty()) {
        (Some(p), true) => Ok((name, p.trim_end_matches('/').to_string())),
        (Some(_), false) => Err(CliError::bad_input(format!(
            "`{addr}` already has a prefix; give it either as NAME:PREFIX or with --prefix, not both"
        ))),
        (None, _) => Ok((name, key)),
    }
}

/// Run `sync` (`migrate = false`) or `migrate`.
pub async fn run_sync(ctx: &Ctx, a: SyncArgs, migrate: bool) -> CliResult {
    if migrate && a.no_verify {
        return Err(CliError::bad_input(
            "migrate always verifies its copies; use `strata sync --no-verify` to skip verification",
        ));
    }
    let (src_name, src_prefix) = split(&a.src, a.prefix.as_deref())?;
    let (dst_name, dst_prefix) = split(&a.dest, None)?;
    let src = ctx.strata.bucket(&src_name)?;
    let dst = ctx.strata.bucket(&dst_name)?;
    // `new:` keeps the source's keys, so its scope is the source prefix in `new`.
    let dst_scope = if dst_prefix.is_empty() {
        &src_prefix
    } else {
        &dst_prefix
    };
    if src.scopes_overlap(&src_prefix, &dst, dst_scope) {
        return Err(CliError::bad_input(format!(
            "`{}` and `{}` overlap ({} and {}): a {} would copy objects onto themselves or into their own folder, again on every run. Choose a destination outside the source",
            a.src,
            a.dest,
            src.stored_at(&src_prefix).trim_end_matches('/'),
            dst.stored_at(dst_scope).trim_end_matches('/'),
            if migrate { "migration" } else { "sync" }
        )));
    }
    let opts = SyncOptions {
        // `new:` keeps the source's keys; `new:PREFIX` puts them under PREFIX instead.
        dest_prefix: (!dst_prefix.is_empty()).then_some(dst_prefix),
        prefix: src_prefix,
        dry_run: a.dry_run,
        compare: match a.compare {
            CompareArg::Auto => CompareMode::Auto,
            CompareArg::Etag => CompareMode::SizeAndEtag,
            CompareArg::Hash => CompareMode::Hash,
        },
        verify: migrate || !a.no_verify,
        checkpoint: !a.no_checkpoint,
        concurrency: a.concurrency.max(1),
        ..SyncOptions::default()
    };
    let what = if migrate { "migrate" } else { "sync" };
    let mut bar: Option<ProgressBar> = None;
    let report = sync(&src, &dst, &opts, |p| {
        let b = bar.get_or_insert_with(|| ctx.progress(p.total_bytes, true, what));
        b.set_position(p.bytes_copied + p.bytes_skipped);
        b.set_message(format!("{what} {}/{}", p.done, p.total));
    })
    .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let text = summary(&report, &src_name, &dst_name, migrate);
    if a.dry_run {
        ctx.emit(text, &report);
    } else {
        ctx.done(text, &report);
    }
    if report.is_complete() {
        Ok(())
    } else {
        Err(CliError::other(match &report.aborted {
            Some(why) => why.clone(),
            None => format!(
                "{} object(s) failed; run the same command again to retry them",
                report.failed.len()
            ),
        }))
    }
}

fn summary(r: &SyncReport, src: &str, dst: &str, migrate: bool) -> String {
    let p = &r.progress;
    let verb = if r.dry_run { "would copy" } else { "copied" };
    let mut text = format!(
        "{src} → {dst}: {verb} {} object(s) ({}), skipped {} identical ({}), failed {}",
        p.copied,
        human_bytes(p.bytes_copied),
        p.skipped,
        human_bytes(p.bytes_skipped),
        p.failed
    );
    if !r.dry_run {
        text.push_str(&format!("; verified {}", r.verified));
    }
    if r.dry_run {
        for k in &r.copied_keys {
            text.push_str(&format!("\n  would copy {k}"));
        }
    }
    for (k, e) in &r.failed {
        text.push_str(&format!("\n  FAILED {k}: {e}"));
    }
    if migrate && r.is_complete() && !r.dry_run {
        text.push_str(&format!(
            "\nmigration complete: every object of {src} is in {dst}, verified"
        ));
    }
    text
}

/// Run `offload`.
pub async fn run_offload(ctx: &Ctx, a: OffloadArgs) -> CliResult {
    let older_than = match &a.older_than {
        Some(s) => Some(storage_core::config::parse_duration(s).map_err(CliError::bad_input)?),
        None => None,
    };
    let opts = OffloadOptions {
        older_than,
        dry_run: a.dry_run,
        ..OffloadOptions::default()
    };
    let report = ctx.strata.router()?.offload(&a.route, &opts).await?;
    let verb = if a.dry_run { "would move" } else { "moved" };
    let mut text = format!(
        "{}: {verb} {} of {} object(s) ({}), skipped {}, failed {}",
        report.route,
        report.moved.len(),
        report.scanned,
        human_bytes(report.bytes),
        report.skipped.len(),
        report.failed.len()
    );
    for f in &report.failed {
        text.push_str(&format!("\n  FAILED {f}"));
    }
    if a.dry_run {
        ctx.emit(text, &report);
    } else {
        ctx.done(text, &report);
    }
    CliError::unless_failed(report.failed.len(), |n| {
        format!("{n} object(s) could not be offloaded; they are still readable where they were")
    })
}
