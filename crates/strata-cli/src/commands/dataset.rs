//! Dataset commands: `strata dataset write|ls|read|search|verify|rebuild|compact|presign`.
//!
//! Datasets live in one bucket (`--bucket`, default `default`, or `$STRATA_DATASET_BUCKET`)
//! under `{module}/{user}/{yyyy}/{mm}/{dd}/{id}.{ext}`, indexed by the manifest under
//! `manifests/{module}/{user}/` (see the `storage-manifest` crate).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use strata::manifest::{
    Compression, Dataset, EntryFilter, Format, ManifestEntry, ReadOptions, SearchQuery, TimeRange,
    WriteOptions,
};
use tokio::io::AsyncReadExt;

use super::object::ExpiresArg;
use super::parse_pairs;
use crate::output::{CliError, CliResult, Ctx, human_bytes};

command_group! {
    /// Dataset commands.
    #[derive(Debug, Subcommand)]
    pub enum DatasetCommand {
        /// Write records (JSON array or JSONL from a file or stdin) as one new file.
        Write(WriteArgs) => write,
        /// List the files in MODULE USER's manifest.
        Ls(ListArgs) => ls,
        /// Print records as JSONL: one file (ID) or every file, optionally in a time window.
        Read(ReadArgs) => read,
        /// Search MODULE USER's manifest (and with --deep, the files).
        Search(SearchArgs) => search,
        /// Compare the manifest with the stored files: missing, orphaned, size/ETag mismatch.
        Verify(TargetArgs) => verify,
        /// Rebuild the manifest from a listing of the stored files.
        Rebuild(TargetArgs) => rebuild,
        /// Fold the manifest's segments into Parquet (readable by pyarrow, DuckDB, Spark).
        Compact(CompactArgs) => compact,
        /// Print a presigned download URL for a dataset file (KEY from `ls`).
        Presign(PresignArgs) => presign,
    }
}

/// Where the datasets are.
#[derive(Debug, Args)]
pub struct BucketArg {
    /// Bucket holding the datasets.
    #[arg(long, env = "STRATA_DATASET_BUCKET", default_value = "default")]
    pub bucket: String,
}

/// MODULE USER.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Module (e.g. `finance`).
    pub module: String,
    /// User (e.g. `user123`).
    pub user: String,
    #[command(flatten)]
    pub bucket: BucketArg,
}

/// File format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// One JSON document.
    Json,
    /// One record per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Json => Format::Json,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Parquet => Format::Parquet,
        }
    }
}

/// Parquet compression.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    /// Snappy (fast).
    Snappy,
    /// Zstandard level 3 (smaller).
    Zstd,
}

/// `strata dataset write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Format of the stored file.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Input: a JSON array, one JSON object, or JSONL (`-` for stdin).
    #[arg(long, short)]
    pub file: PathBuf,
    /// Record field holding each record's time.
    #[arg(long, default_value = "timestamp")]
    pub time_field: String,
    /// Records carry no time field.
    #[arg(long, conflicts_with = "time_field")]
    pub no_time_field: bool,
    /// Parquet compression.
    #[arg(long, value_enum, default_value = "snappy")]
    pub compression: CompressionArg,
    /// Tag `k=v` for the manifest entry (repeatable).
    #[arg(long = "tag", value_name = "K=V")]
    pub tags: Vec<String>,
}

/// A time window.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// From this time on (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Before this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
}

impl RangeArgs {
    fn range(&self) -> CliResult<TimeRange> {
        Ok(TimeRange::parse(self.from.as_deref(), self.to.as_deref())?)
    }
}

/// `strata dataset ls`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Only this format.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
}

/// `strata dataset read`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// File id (from `write` or `ls`); without it, every file.
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Only these fields (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
}

/// `strata dataset search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Words to find (all must occur; case-insensitive).
    pub query: String,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Only this format.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Only entries tagged `k=v` (repeatable).
    #[arg(long = "tag", value_name = "K=V")]
    pub tags: Vec<String>,
    /// Confirm in the files (reads every candidate file).
    #[arg(long)]
    pub deep: bool,
    /// Skip this many hits.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Hits per page.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// `strata dataset compact`.
#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Merge everything (all parts too) into one Parquet file sorted by time.
    #[arg(long)]
    pub all: bool,
}

/// `strata dataset presign`.
#[derive(Debug, Args)]
pub struct PresignArgs {
    /// Object key of a dataset file (`finance/user123/2024/01/15/ID.parquet`).
    pub key: String,
    #[command(flatten)]
    pub expires: ExpiresArg,
    #[command(flatten)]
    pub bucket: BucketArg,
}

fn dataset(ctx: &Ctx, bucket: &BucketArg) -> CliResult<Dataset> {
    Ok(Dataset::new(ctx.strata.bucket(&bucket.bucket)?))
}

/// Input records: a JSON array, a single JSON object, or JSONL. Parsing advances `bar` by
/// the bytes consumed, so a large file shows progress.
fn parse_records(text: &str, bar: &indicatif::ProgressBar) -> CliResult<Vec<Value>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let v: Vec<Value> = serde_json::from_str(trimmed)
            .map_err(|e| CliError::bad_input(format!("input is not a valid JSON array: {e}")))?;
        bar.inc(text.len() as u64);
        return Ok(v);
    }
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate() {
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => records.push(v),
            // A pretty-printed single document is not JSONL; accept it whole.
            Err(_) if n == 0 => {
                if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
                    bar.inc(text.len() as u64);
                    return Ok(vec![v]);
                }
                return Err(CliError::bad_input(
                    "input line 1 is not JSON; give a JSON array, one JSON object or JSONL (one record per line)",
                ));
            }
            Err(e) => {
                return Err(CliError::bad_input(format!(
                    "input line {} is not valid JSON: {e}",
                    n + 1
                )));
            }
        }
    }
    Ok(records)
}

fn span(e: &ManifestEntry) -> String {
    format!(
        "{} .. {}",
        e.min_time.format("%Y-%m-%dT%H:%M:%SZ"),
        e.max_time.format("%Y-%m-%dT%H:%M:%SZ")
    )
}

async fn write(ctx: &Ctx, a: WriteArgs) -> CliResult {
    let ds = dataset(ctx, &a.target.bucket)?;
    let mut text = String::new();
    if a.file.as_os_str() == "-" {
        tokio::io::stdin().read_to_string(&mut text).await?;
    } else {
        text = tokio::fs::read_to_string(&a.file).await.map_err(|e| {
            CliError::from(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", a.file.display()),
            ))
        })?;
    }
    let bar = ctx.progress(text.len() as u64, true, "parsing");
    let records = parse_records(&text, &bar)?;
    drop(text);
    bar.set_message(format!("writing {} record(s)", records.len()));
    let mut opts = WriteOptions::default()
        .with_time_field((!a.no_time_field).then_some(a.time_field.as_str()))
        .with_compression(match a.compression {
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Zstd => Compression::Zstd(3),
        });
    for (k, v) in parse_pairs::<Vec<_>>("--tag", "source=bank", &a.tags)? {
        opts = opts.with_tag(k, v);
    }
    let written = ds
        .write_with(
            &a.target.module,
            &a.target.user,
            &records,
            a.format.into(),
            &opts,
        )
        .await;
    bar.finish_and_clear();
    let e = written?;
    ctx.done(
        format!(
            "wrote {} ({} row(s), {}, {}), id {}, ETag {}",
            e.key,
            e.rows,
            human_bytes(e.bytes),
            span(&e),
            e.id,
            e.etag.as_deref().unwrap_or("-")
        ),
        &e,
    );
    Ok(())
}

async fn ls(ctx: &Ctx, a: ListArgs) -> CliResult {
    let ds = dataset(ctx, &a.target.bucket)?;
    let filter = EntryFilter {
        range: a.range.range()?,
        format: a.format.map(Into::into),
        tags: Default::default(),
    };
    let mut entries = ds
        .manifest(&a.target.module, &a.target.user)?
        .scan(&filter)
        .await?;
    entries.sort_by(|x, y| x.key.cmp(&y.key));
    ctx.list(&entries, |e| {
        format!(
            "{}  {:<7} {:>8} rows {:>10}  {}",
            e.key,
            e.format,
            e.rows,
            human_bytes(e.bytes),
            span(e)
        )
    })
}

async fn read(ctx: &Ctx, a: ReadArgs) -> CliResult {
    let ds = dataset(ctx, &a.target.bucket)?;
    let mut opts = ReadOptions::default().with_range(a.range.range()?);
    if !a.columns.is_empty() {
        opts = opts.with_columns(a.columns.iter().cloned());
    }
    let (module, user) = (&a.target.module, &a.target.user);
    // Records are printed as JSON lines in both modes: that is already script-friendly.
    match &a.id {
        Some(id) => {
            for r in ds.read_with(module, user, id, &opts).await? {
                println!("{r}");
            }
        }
        None => {
            let mut records = ds.read_all(module, user, &opts).await?;
            while let Some(r) = records.try_next().await? {
                println!("{r}");
            }
        }
    }
    Ok(())
}

async fn search(ctx: &Ctx, a: SearchArgs) -> CliResult {
    let ds = dataset(ctx, &a.target.bucket)?;
    let mut q = SearchQuery::new(&a.query)
        .with_range(a.range.range()?)
        .page(a.offset, a.limit)
        .deep(a.deep);
    if let Some(f) = a.format {
        q = q.with_format(f.into());
    }
    for (k, v) in parse_pairs::<Vec<_>>("--tag", "source=bank", &a.tags)? {
        q = q.with_tag(k, v);
    }
    let results = ds.search(&a.target.module, &a.target.user, &q).await?;
    let mut lines = ctx.lines();
    for h in &results.hits {
        let matched = h
            .matched_rows
            .map(|m| format!(", {m} matching row(s)"))
            .unwrap_or_default();
        lines.item(
            format_args!(
                "{:>4}  {}  {} row(s){matched}  {}",
                h.score,
                h.entry.key,
                h.entry.rows,
                span(&h.entry)
            ),
            h,
        )?;
    }
    // The last line says which page this was: `{"page": {...}}` with `--json`.
    let shown = results.hits.len();
    let mut summary = format!("{shown} of {} hit(s)", results.total);
    if let Some(next) = results.next_offset {
        summary.push_str(&format!("; next page: --offset {next}"));
    }
    lines.item(
        summary,
        &serde_json::json!({"page": {"shown": shown, "total": results.total, "offset": a.offset, "next_offset": results.next_offset}}),
    )?;
    lines.flush()
}

async fn verify(ctx: &Ctx, a: TargetArgs) -> CliResult {
    let ds = dataset(ctx, &a.bucket)?;
    let r = ds.verify(&a.module, &a.user).await?;
    let mut text = vec![format!(
        "{} manifest entries, {} stored objects",
        r.entries, r.objects
    )];
    text.extend(
        r.missing
            .iter()
            .map(|k| format!("missing   {k} (in the manifest, not stored)")),
    );
    text.extend(
        r.orphaned
            .iter()
            .map(|k| format!("orphaned  {k} (stored, not in the manifest)")),
    );
    text.extend(
        r.size_mismatch
            .iter()
            .map(|(k, want, have)| format!("size      {k}: manifest {want} bytes, stored {have}")),
    );
    text.extend(
        r.etag_mismatch
            .iter()
            .map(|(k, want, have)| format!("etag      {k}: manifest {want}, stored {have}")),
    );
    ctx.emit(text.join("\n"), &r);
    if r.is_clean() {
        Ok(())
    } else {
        Err(CliError::other(format!(
            "manifest and store disagree; run `strata dataset rebuild {} {}` to rebuild the manifest from the stored files",
            a.module, a.user
        )))
    }
}

async fn rebuild(ctx: &Ctx, a: TargetArgs) -> CliResult {
    let ds = dataset(ctx, &a.bucket)?;
    let bar = ctx.progress(0, false, "rebuilding from a listing");
    let r = ds.rebuild(&a.module, &a.user).await;
    bar.finish_and_clear();
    let r = r?;
    let mut text = vec![format!(
        "rebuilt the manifest of {}/{}: {} entries",
        a.module, a.user, r.entries
    )];
    text.extend(
        r.skipped
            .iter()
            .map(|(k, why)| format!("skipped {k}: {why}")),
    );
    ctx.done(text.join("\n"), &r);
    Ok(())
}

async fn compact(ctx: &Ctx, a: CompactArgs) -> CliResult {
    let ds = dataset(ctx, &a.target.bucket)?;
    let manifest = ds.manifest(&a.target.module, &a.target.user)?;
    let head = manifest.head().await?;
    let bar = ctx.progress(head.entries(), false, "compacting entries");
    let r = if a.all {
        manifest.compact_all().await
    } else {
        manifest.compact().await
    };
    bar.finish_and_clear();
    let r = r?;
    let text = match &r.part {
        Some(part) => format!(
            "folded {} segment(s) and {} part(s) into {part} ({} entries)",
            r.segments_folded, r.parts_merged, r.entries
        ),
        None => "nothing to compact".to_string(),
    };
    ctx.done(text, &r);
    Ok(())
}

#[derive(Serialize)]
struct PresignOutput {
    url: String,
    key: String,
    expires_in_seconds: u64,
}

async fn presign(ctx: &Ctx, a: PresignArgs) -> CliResult {
    let ds = dataset(ctx, &a.bucket)?;
    let expires = a.expires.duration()?;
    let url = ds.presign(&a.key, expires).await?;
    ctx.emit(
        url.as_str(),
        &PresignOutput {
            url: url.to_string(),
            key: a.key,
            expires_in_seconds: expires.as_secs(),
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;
    use strata::Strata;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: DatasetCommand,
    }

    async fn run(ctx: &Ctx, args: &[&str]) -> CliResult {
        let cli = TestCli::try_parse_from(std::iter::once("dataset").chain(args.iter().copied()))
            .map_err(|e| CliError::bad_input(e.to_string()))?;
        cli.command.run(ctx).await
    }

    #[tokio::test]
    async fn write_ls_read_search_verify_rebuild_compact() {
        let home = tempfile::tempdir().unwrap();
        let ctx = Ctx::with(Strata::embedded(home.path()), true, true);
        let input = home.path().join("tx.jsonl");
        std::fs::write(
            &input,
            "{\"timestamp\":\"2024-01-15T08:00:00Z\",\"amount\":4.5,\"description\":\"Coffee\"}\n\
             {\"timestamp\":\"2024-01-16T08:00:00Z\",\"amount\":9.0,\"description\":\"Lunch\"}\n",
        )
        .unwrap();
        let file = input.to_str().unwrap();
        for format in ["json", "jsonl", "parquet"] {
            run(
                &ctx,
                &[
                    "write",
                    "finance",
                    "user123",
                    "--format",
                    format,
                    "--file",
                    file,
                    "--tag",
                    "source=bank",
                ],
            )
            .await
            .unwrap();
        }
        run(&ctx, &["ls", "finance", "user123"]).await.unwrap();
        run(
            &ctx,
            &["read", "finance", "user123", "--from", "2024-01-16"],
        )
        .await
        .unwrap();
        run(
            &ctx,
            &[
                "search",
                "finance",
                "user123",
                "coffee",
                "--deep",
                "--tag",
                "source=bank",
            ],
        )
        .await
        .unwrap();
        run(&ctx, &["compact", "finance", "user123", "--all"])
            .await
            .unwrap();
        run(&ctx, &["verify", "finance", "user123"]).await.unwrap();

        // What the commands did, checked through the library on the same folder.
        let ds = Dataset::new(ctx.strata.bucket("default").unwrap());
        let manifest = ds.manifest("finance", "user123").unwrap();
        let entries = manifest.entries().await.unwrap();
        assert_eq!(entries.len(), 3);
        assert!(
            entries
                .iter()
                .all(|e| e.rows == 2 && e.tags["source"] == "bank")
        );
        let parquet = entries
            .iter()
            .find(|e| e.format == Format::Parquet)
            .unwrap();
        let records = ds.read("finance", "user123", &parquet.id).await.unwrap();
        assert_eq!(
            records[1],
            json!({"timestamp": "2024-01-16T08:00:00Z", "amount": 9.0, "description": "Lunch"})
        );
        let head = manifest.head().await.unwrap();
        assert!(
            head.segments.is_empty() && head.parts.len() == 1,
            "compacted: {head:?}"
        );

        // Drift makes verify fail (exit 1) until a rebuild.
        ds.bucket().delete(&entries[0].key).await.unwrap();
        let err = run(&ctx, &["verify", "finance", "user123"])
            .await
            .unwrap_err();
        assert_eq!(err.code, crate::output::EXIT_INTERNAL);
        assert!(err.message.contains("rebuild"), "{}", err.message);
        run(&ctx, &["rebuild", "finance", "user123"]).await.unwrap();
        run(&ctx, &["verify", "finance", "user123"]).await.unwrap();
    }

    #[tokio::test]
    async fn bad_input_exits_2_and_names_the_problem() {
        let home = tempfile::tempdir().unwrap();
        let ctx = Ctx::with(Strata::embedded(home.path()), true, true);
        let input = home.path().join("bad.jsonl");
        std::fs::write(&input, "{\"amount\": 1}\n{\"amount\": \"x\"}\n").unwrap();
        let file = input.to_str().unwrap();
        let err = run(
            &ctx,
            &[
                "write", "finance", "u", "--format", "parquet", "--file", file,
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, crate::output::EXIT_BAD_INPUT);
        assert!(err.message.contains("records[1].amount"), "{}", err.message);

        std::fs::write(&input, "{\"amount\": 1}\nnot json\n").unwrap();
        let err = run(
            &ctx,
            &["write", "finance", "u", "--format", "jsonl", "--file", file],
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, crate::output::EXIT_BAD_INPUT);
        assert!(err.message.contains("line 2"), "{}", err.message);

        let err = run(&ctx, &["ls", "finance", "u", "--from", "tomorrow"])
            .await
            .unwrap_err();
        assert_eq!(err.code, crate::output::EXIT_BAD_INPUT);
        let err = run(&ctx, &["read", "finance", "u", "--id", "nope"])
            .await
            .unwrap_err();
        assert_eq!(err.code, crate::output::EXIT_BAD_INPUT);
        // The embedded local-folder store has no presigner.
        let err = run(&ctx, &["presign", "finance/u/2024/01/01/x.json"])
            .await
            .unwrap_err();
        assert!(err.message.contains("presigned"), "{}", err.message);
    }

    #[test]
    fn input_forms() {
        let bar = indicatif::ProgressBar::hidden();
        assert_eq!(
            parse_records("[{\"a\":1},{\"a\":2}]", &bar).unwrap().len(),
            2
        );
        assert_eq!(
            parse_records("{\n  \"a\": 1\n}\n", &bar).unwrap(),
            vec![json!({"a": 1})]
        );
        assert_eq!(
            parse_records("{\"a\":1}\n\n{\"a\":2}\n", &bar)
                .unwrap()
                .len(),
            2
        );
    }
}
