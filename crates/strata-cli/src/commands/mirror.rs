//! The mirror outbox: `strata mirror pending [BUCKET]` lists the writes a mirrored bucket owes
//! to the copies that missed them (hybrid mode with R2 down, a mirror bucket whose copy
//! failed), and `strata mirror replay [BUCKET]` copies them now (docs/operations.md,
//! "Hybrid mode and the outbox").

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use serde::Serialize;
use storage_core::StorageError;
use strata::router::{OwedOp, OwedWrite, ReplayReport};

use crate::output::{CliError, CliResult, Ctx};

/// `strata mirror ...`.
#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// List the writes a mirrored bucket owes to copies that missed them (one JSON object a
    /// line with --json). Exit 0 whether or not anything is owed.
    Pending(MirrorArgs),
    /// Copy every owed write to the copies that missed it, verified; a copy holding a newer
    /// write is kept, and writes that cannot be ordered are reported and left owed (exit 4);
    /// a copy that still does not answer keeps its writes owed (the exit code of an outage).
    /// Safe to run again at any time.
    Replay(MirrorArgs),
}

/// The bucket whose outbox to use.
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Mirrored bucket (default: `default`, hybrid mode's bucket, or the only mirrored one).
    pub bucket: Option<String>,
}

impl MirrorCommand {
    /// Run the command.
    pub async fn run(self, ctx: &Ctx) -> CliResult {
        match self {
            MirrorCommand::Pending(a) => pending(ctx, a).await,
            MirrorCommand::Replay(a) => replay(ctx, a).await,
        }
    }
}

fn bucket_name(ctx: &Ctx, a: &MirrorArgs) -> CliResult<String> {
    if let Some(b) = &a.bucket {
        return Ok(b.clone());
    }
    let mirrored = ctx.strata.mirrored_buckets();
    match mirrored.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::bad_input(format!(
            "no bucket of {} is mirrored, so nothing can be owed; set STORAGE_BACKEND=hybrid or give a bucket `mirror = [...]` in the config",
            ctx.strata.origin()
        ))),
        many => Err(CliError::bad_input(format!(
            "several buckets are mirrored ({}); name one: `strata mirror pending BUCKET`",
            many.join(", ")
        ))),
    }
}

fn op_name(op: OwedOp) -> &'static str {
    match op {
        OwedOp::Put => "put",
        OwedOp::Copy => "copy",
        OwedOp::Delete => "delete",
    }
}

#[derive(Serialize)]
struct PendingLine<'a> {
    bucket: &'a str,
    #[serde(flatten)]
    entry: &'a OwedWrite,
}

async fn pending(ctx: &Ctx, a: MirrorArgs) -> CliResult {
    let name = bucket_name(ctx, &a)?;
    let outbox = ctx.strata.outbox(&name)?;
    let entries = outbox.pending().await?;
    if ctx.json {
        // NDJSON: one owed write a line.
        let mut lines = ctx.lines();
        for e in &entries {
            lines.item(
                "",
                &PendingLine {
                    bucket: &name,
                    entry: e,
                },
            )?;
        }
        return lines.flush();
    }
    let mut t = String::new();
    if entries.is_empty() {
        let _ = write!(
            t,
            "nothing owed: every copy of `{name}` ({}) has every write",
            outbox.members().join(", ")
        );
    } else {
        let _ = writeln!(t, "{} write(s) of `{name}` owed:", entries.len());
        for e in &entries {
            let keys = if e.keys.len() == 1 {
                e.keys[0].clone()
            } else {
                format!("{} keys ({}, ...)", e.keys.len(), e.keys[0])
            };
            let from = match (&e.held_by, e.intent) {
                (_, true) => {
                    "outcome not recorded (the writer stopped); replay finds the copies".to_string()
                }
                (Some(h), _) => format!("held by {h}"),
                (None, _) => "tombstone".to_string(),
            };
            let _ = writeln!(
                t,
                "  {}  {:<6} {}  → {}  ({from})",
                e.time.format("%Y-%m-%d %H:%M:%S%.3f"),
                op_name(e.op),
                keys,
                e.owed_to.join(", "),
            );
        }
        let _ = write!(t, "run `strata mirror replay {name}` to copy them now");
    }
    ctx.emit(t, &());
    Ok(())
}

async fn replay(ctx: &Ctx, a: MirrorArgs) -> CliResult {
    let name = bucket_name(ctx, &a)?;
    let outbox = ctx.strata.outbox(&name)?;
    let total = outbox.pending().await?.len();
    let bar = ctx.progress(total as u64, false, "replaying");
    let report = outbox
        .replay_with(|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await?;
    bar.finish_and_clear();
    ctx.emit(human(&name, &report), &report);
    if let Some(first) = report.undecided.first() {
        let cause = StorageError::Precondition {
            backend: first.bucket.clone(),
            key: first.key.clone(),
            detail: first.reason.clone(),
        };
        return Err(CliError::caused_by(
            &cause,
            format!(
                "{} owed write(s) of `{name}` could not be ordered against the copy's own write and were left owed",
                report.undecided.len()
            ),
        )
        .hint("read both copies, write the one to keep again (a new write is newer than both), then run the replay again"));
    }
    if report.pending > 0 && !report.unavailable.is_empty() {
        let cause = StorageError::Unavailable {
            backend: report.unavailable.join(", "),
            source: "did not answer during the replay".into(),
        };
        return Err(CliError::caused_by(
            &cause,
            format!(
                "{} write(s) of `{name}` are still owed: {} did not answer",
                report.pending,
                report.unavailable.join(", ")
            ),
        )
        .hint(format!(
            "they are kept in the outbox; run `strata mirror replay {name}` again once it is back (later writes and reads replay them too)"
        )));
    }
    if !report.failed.is_empty() {
        return Err(CliError::other(format!(
            "{} copy(ies) of `{name}` failed; they stay owed",
            report.failed.len()
        ))
        .hint(format!(
            "fix the cause above, then run `strata mirror replay {name}` again"
        )));
    }
    Ok(())
}

fn human(name: &str, r: &ReplayReport) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "`{name}`: {} entr(ies): {} copied, {} merged, {} already there, {} superseded by a later write",
        r.entries, r.delivered, r.merged, r.already, r.superseded
    );
    for n in &r.kept_newer {
        let _ = writeln!(t, "  kept newer  {}  on {}: {}", n.key, n.bucket, n.reason);
    }
    for n in &r.undecided {
        let _ = writeln!(t, "  UNDECIDED   {}  on {}: {}", n.key, n.bucket, n.reason);
    }
    for n in &r.failed {
        let _ = writeln!(t, "  FAILED      {}  on {}: {}", n.key, n.bucket, n.reason);
    }
    if !r.unavailable.is_empty() {
        let _ = writeln!(
            t,
            "  unavailable: {} (their writes stay owed)",
            r.unavailable.join(", ")
        );
    }
    let _ = write!(
        t,
        "{}",
        if r.pending == 0 {
            "nothing owed any more".to_string()
        } else {
            format!("{} entr(ies) still owed", r.pending)
        }
    );
    t
}
