//! Object commands: put, get, ls, rm, cp, mv, stat, presign, health, stats.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use storage_core::{Bucket, ObjectInfo, PresignMethod, PutOpts, StorageError, WriteCondition};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::buckets::Via;
use crate::address::Address;
use crate::output::{CliError, CliResult, Ctx, human_bytes};

command_group! {
    /// Object commands.
    #[derive(Debug, Subcommand)]
    pub enum ObjectCommand {
        /// Upload a file, text or standard input (`--stdin`) to NAME:KEY.
        #[command(after_help = crate::help::PUT)]
        Put(PutArgs) => put,
        /// Download NAME:KEY to stdout or a file.
        #[command(after_help = crate::help::GET)]
        Get(GetArgs) => get,
        /// List NAME: or NAME:PREFIX.
        #[command(after_help = crate::help::LS)]
        Ls(LsArgs) => ls,
        /// Delete keys, or everything under a prefix.
        #[command(after_help = crate::help::RM)]
        Rm(RmArgs) => rm,
        /// Copy local↔remote or remote↔remote (recursive with -r).
        #[command(after_help = crate::help::CP)]
        Cp(CpArgs) => |ctx, a| cp(ctx, a, false),
        /// Move (copy, then delete the source only if the copy succeeded).
        #[command(after_help = crate::help::CP)]
        Mv(CpArgs) => |ctx, a| cp(ctx, a, true),
        /// Show an object's metadata.
        #[command(after_help = crate::help::STAT)]
        Stat(StatArgs) => stat,
        /// Print a presigned URL for NAME:KEY.
        #[command(after_help = crate::help::PRESIGN)]
        Presign(PresignArgs) => presign,
        /// Count objects and bytes under NAME: or NAME:PREFIX.
        #[command(after_help = crate::help::STATS)]
        Stats(StatsArgs) => stats,
    }
}

/// `strata put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Destination NAME:KEY.
    pub dest: String,
    /// Upload this file (streamed; any size); `-` reads standard input.
    #[arg(long, short, conflicts_with_all = ["data", "stdin"])]
    pub file: Option<PathBuf>,
    /// Upload this text.
    #[arg(long, short, conflicts_with = "stdin")]
    pub data: Option<String>,
    /// Upload standard input (never read unless asked: a forgotten `--file` in a script
    /// must not overwrite an object with nothing).
    #[arg(long)]
    pub stdin: bool,
    /// Accept empty standard input, file or text (refused by default: it would replace the
    /// object with 0 bytes).
    #[arg(long)]
    pub allow_empty: bool,
    /// Content type (default: guessed from the key's extension).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Cache-Control header.
    #[arg(long)]
    pub cache_control: Option<String>,
    /// Content-Disposition header (e.g. `attachment; filename="report.pdf"`).
    #[arg(long)]
    pub content_disposition: Option<String>,
    /// Content-Encoding header of bytes that are already encoded (e.g. `gzip`).
    #[arg(long)]
    pub content_encoding: Option<String>,
    /// User metadata `k=v` (repeatable).
    #[arg(long = "meta", value_name = "K=V")]
    pub meta: Vec<String>,
    /// Object tag `k=v` (repeatable; S3 and R2 keep tags apart from metadata, for
    /// lifecycle rules and access policies).
    #[arg(long = "tag", value_name = "K=V")]
    pub tag: Vec<String>,
    /// Only create: fail with exit 4 if the object exists.
    #[arg(long, conflicts_with = "if_match")]
    pub if_absent: bool,
    /// Only replace the object with this ETag: exit 4 otherwise.
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
}

/// `strata get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Source NAME:KEY (or just KEY with --any / --route).
    pub src: String,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Read KEY from a source set (`[sources.NAME]`): the first bucket that has it.
    #[arg(long, value_name = "SOURCE", conflicts_with = "route")]
    pub any: Option<String>,
    /// With --any: read only from this bucket of the set.
    #[arg(long, requires = "any")]
    pub from: Option<String>,
    /// With --any: sequential, parallel, hedged or hedged:50ms (default: the set's).
    #[arg(long, requires = "any")]
    pub policy: Option<String>,
    /// Read KEY through a route (`records`, ...): its bucket and prefix, then its offload target.
    #[arg(long)]
    pub route: Option<String>,
}

/// `strata ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// NAME: or NAME:PREFIX (or just PREFIX with --any / --route).
    pub target: String,
    /// List PREFIX across a source set: merged, de-duplicated, each key with its bucket.
    #[arg(long, value_name = "SOURCE", conflicts_with = "route")]
    pub any: Option<String>,
    /// List PREFIX under a route (`records`, ...).
    #[arg(long)]
    pub route: Option<String>,
    /// Everything below, not just one level.
    #[arg(long, short)]
    pub recursive: bool,
    /// Long format: size, modified, ETag.
    #[arg(long, short)]
    pub long: bool,
}

/// `strata rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// NAME:KEY addresses (or NAME: with --prefix or --all).
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Delete everything under this prefix of the (single) bucket given as NAME:. An empty
    /// prefix is the whole bucket and needs --all.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Delete every object of the bucket given as NAME: (or confirm that an empty --prefix
    /// means the whole bucket). Without it, a whole-bucket delete asks on a terminal and is
    /// refused elsewhere.
    #[arg(long)]
    pub all: bool,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `strata cp` / `strata mv`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Source: NAME:KEY, NAME:PREFIX/ with -r, or a local path.
    pub src: String,
    /// Destination: NAME:KEY, NAME:PREFIX/, or a local path.
    pub dest: String,
    /// Copy a folder / prefix and everything below it.
    #[arg(long, short)]
    pub recursive: bool,
    /// List what would be copied (or moved); change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `strata stat`.
#[derive(Debug, Args)]
pub struct StatArgs {
    /// NAME:KEY.
    pub target: String,
}

/// HTTP method of a presigned URL.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// Download.
    Get,
    /// Upload.
    Put,
}

/// `strata presign`.
#[derive(Debug, Args)]
pub struct PresignArgs {
    /// NAME:KEY.
    pub target: String,
    #[command(flatten)]
    pub expires: ExpiresArg,
    /// What the URL allows.
    #[arg(long, value_enum, default_value = "get")]
    pub method: MethodArg,
}

/// `strata stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// NAME: or NAME:PREFIX.
    pub target: String,
}

/// A content type for common extensions, so browsers and CDNs serve uploads correctly.
pub fn guess_content_type(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "json" => "application/json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "parquet" => "application/vnd.apache.parquet",
        "txt" | "log" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "wasm" => "application/wasm",
        _ => return None,
    })
}

/// `--tag k=v` pairs, checked against S3's tag rules before anything is uploaded: keys of
/// 1-128 and values of at most 256 characters, letters, digits, spaces and `+ - = . _ : / @`,
/// each key once, at most 10 tags.
pub fn parse_tags(pairs: &[String]) -> CliResult<BTreeMap<String, String>> {
    const ALLOWED: &str = "letters, digits, spaces and + - = . _ : / @";
    let ok = |s: &str| {
        s.chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c))
    };
    let mut tags = BTreeMap::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            return Err(CliError::bad_input(format!(
                "--tag `{p}` is not K=V, e.g. --tag project=apollo"
            )));
        };
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(CliError::bad_input(format!(
                "--tag `{p}`: a tag key must have 1-128 characters and a value at most 256"
            )));
        }
        if !ok(k) || !ok(v) {
            return Err(CliError::bad_input(format!(
                "--tag `{p}`: tags may contain only {ALLOWED}"
            )));
        }
        if tags.insert(k.to_string(), v.to_string()).is_some() {
            return Err(CliError::bad_input(format!(
                "--tag `{k}` is given twice; give each tag key once"
            )));
        }
    }
    if tags.len() > 10 {
        return Err(CliError::bad_input(format!(
            "{} --tag flags: an object can have at most 10 tags",
            tags.len()
        )));
    }
    Ok(tags)
}

/// A file (or standard input) as a stream of 1 MiB chunks, advancing `bar`.
fn file_stream<R: tokio::io::AsyncRead + Unpin + Send>(
    file: R,
    bar: indicatif::ProgressBar,
) -> impl futures::Stream<Item = storage_core::Result<Bytes>> + Send {
    futures::stream::try_unfold((file, bar), |(mut file, bar)| async move {
        let chunk = read_chunk(&mut file)
            .await
            .map_err(|e| StorageError::invalid_input("file", e.to_string()))?;
        if chunk.is_empty() {
            bar.finish_and_clear();
            return Ok(None);
        }
        bar.inc(chunk.len() as u64);
        Ok(Some((chunk, (file, bar))))
    })
}

/// Up to 1 MiB from `file`; empty at its end.
async fn read_chunk<R: tokio::io::AsyncRead + Unpin>(file: &mut R) -> std::io::Result<Bytes> {
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

#[derive(Serialize)]
struct PutOutput<'a> {
    bucket: &'a str,
    key: &'a str,
    etag: Option<String>,
    version: Option<String>,
    size: u64,
}

/// Where `put` takes its bytes from.
enum PutSource {
    Text(String),
    File(PathBuf),
    Stdin,
}

impl PutArgs {
    /// The one source the flags name. Standard input only when asked for: run from cron or
    /// CI with a forgotten `--file`, reading it would write 0 bytes over the object.
    fn source(&mut self) -> CliResult<PutSource> {
        let file = self.file.take();
        match (self.data.take(), file, self.stdin) {
            (Some(text), _, _) => Ok(PutSource::Text(text)),
            (None, Some(p), _) if p.as_os_str() == "-" => Ok(PutSource::Stdin),
            (None, Some(p), _) => Ok(PutSource::File(p)),
            (None, None, true) => Ok(PutSource::Stdin),
            (None, None, false) => Err(CliError::bad_input(format!(
                "nothing to upload to `{}`: give --file PATH, --data TEXT, or --stdin (or --file -) to upload standard input",
                self.dest
            ))),
        }
    }
}

/// The first chunk of `file` (up to 1 MiB), refusing an empty one unless `allow_empty`.
async fn first_chunk<R: tokio::io::AsyncRead + Unpin>(
    file: &mut R,
    what: &str,
    allow_empty: bool,
) -> CliResult<Bytes> {
    let chunk = read_chunk(file)
        .await
        .map_err(|e| CliError::bad_input(format!("cannot read {what}: {e}")))?;
    if chunk.is_empty() && !allow_empty {
        return Err(CliError::bad_input(format!(
            "{what} is empty; refusing to write a 0-byte object. Pass --allow-empty if an empty object is what you want"
        )));
    }
    Ok(chunk)
}

async fn put(ctx: &Ctx, mut a: PutArgs) -> CliResult {
    let (name, key) = Address::remote_key(&a.dest)?;
    let source = a.source()?;
    let bucket = ctx.strata.bucket(&name)?;
    let opts = PutOpts {
        condition: match (a.if_absent, a.if_match) {
            (true, _) => WriteCondition::IfAbsent,
            (false, Some(etag)) => WriteCondition::IfMatch {
                etag,
                version: None,
            },
            (false, None) => WriteCondition::Overwrite,
        },
        content_type: a
            .content_type
            .or_else(|| guess_content_type(&key).map(str::to_string)),
        cache_control: a.cache_control,
        content_disposition: a.content_disposition,
        content_encoding: a.content_encoding,
        metadata: super::parse_pairs("--meta", "owner=ana", &a.meta)?,
        tags: parse_tags(&a.tag)?,
        ..Default::default()
    };
    // Headers, metadata and tags are checked before any input is read.
    opts.to_attributes()?;
    let (mut file, what, bar): (Box<dyn tokio::io::AsyncRead + Unpin + Send>, _, _) = match source {
        PutSource::Text(text) => {
            if text.is_empty() && !a.allow_empty {
                return Err(CliError::bad_input(
                    "--data is empty; refusing to write a 0-byte object. Pass --allow-empty if an empty object is what you want",
                ));
            }
            let result = bucket.put_with(&key, text, opts).await?;
            return put_done(ctx, &name, &key, result);
        }
        PutSource::File(path) => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| CliError::bad_input(format!("cannot open {}: {e}", path.display())))?;
            let len = file.metadata().await?.len();
            (
                Box::new(file),
                path.display().to_string(),
                ctx.progress(len, true, "upload"),
            )
        }
        PutSource::Stdin => (
            Box::new(tokio::io::stdin()),
            "standard input".to_string(),
            indicatif::ProgressBar::hidden(),
        ),
    };
    let first = first_chunk(&mut file, &what, a.allow_empty).await?;
    bar.inc(first.len() as u64);
    let body = futures::stream::once(async move { Ok(first) })
        .chain(file_stream(file, bar))
        .try_filter(|chunk| std::future::ready(!chunk.is_empty()));
    let result = bucket.put_stream(&key, body, opts).await?;
    put_done(ctx, &name, &key, result)
}

fn put_done(ctx: &Ctx, name: &str, key: &str, result: storage_core::WriteResult) -> CliResult {
    ctx.done(
        format!(
            "put {name}:{key} ({}, etag {})",
            human_bytes(result.size),
            result.etag.as_deref().unwrap_or("-")
        ),
        &PutOutput {
            bucket: name,
            key,
            etag: result.etag.clone(),
            version: result.version.clone(),
            size: result.size,
        },
    );
    Ok(())
}

async fn get(ctx: &Ctx, a: GetArgs) -> CliResult {
    if let Some(via) = Via::of(a.any, a.route) {
        return super::buckets::get(ctx, via, &a.src, a.from, a.policy, a.output).await;
    }
    let (name, key) = Address::remote_key(&a.src)?;
    let bucket = ctx.strata.bucket(&name)?;
    let obj = bucket.get_stream(&key).await?;
    let bar = if a.output.is_some() {
        ctx.progress(obj.info.size, true, "download")
    } else {
        indicatif::ProgressBar::hidden()
    };
    match &a.output {
        Some(path) => {
            write_stream_to_file(obj.stream, path, &bar).await?;
            bar.finish_and_clear();
            ctx.done(
                format!(
                    "got {name}:{key} → {} ({})",
                    path.display(),
                    human_bytes(obj.info.size)
                ),
                &obj.info,
            );
        }
        None => {
            let mut out = tokio::io::stdout();
            let mut s = obj.stream;
            while let Some(chunk) = s.next().await {
                out.write_all(&chunk?).await?;
            }
            out.flush().await?;
        }
    }
    Ok(())
}

/// Write a stream to `path` through a temporary file renamed at the end, so a failed
/// download never leaves a truncated file in place.
async fn write_stream_to_file(
    mut stream: futures::stream::BoxStream<'static, storage_core::Result<Bytes>>,
    path: &Path,
    bar: &indicatif::ProgressBar,
) -> CliResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension(format!(
        "{}strata-part",
        path.extension()
            .map(|e| format!("{}.", e.to_string_lossy()))
            .unwrap_or_default()
    ));
    let mut file = tokio::fs::File::create(&tmp).await?;
    let outcome: CliResult = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            bar.inc(chunk.len() as u64);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => Ok(tokio::fs::rename(&tmp, path).await?),
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            Err(e)
        }
    }
}

fn long_line(o: &ObjectInfo, stored: bool) -> String {
    format!(
        "{:>10}{}  {}  {:<34}  {}",
        human_bytes(o.size),
        if stored { "*" } else { "" },
        o.last_modified.format("%Y-%m-%d %H:%M:%S"),
        o.etag.as_deref().unwrap_or("-"),
        o.key
    )
}

/// One line of `ls --json` (NDJSON): an object, or (`prefix`) a folder one level down.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum ListItem<'a> {
    /// An object.
    Object {
        key: &'a str,
        size: u64,
        /// `stored` where the bucket compresses: the size of the stored (compressed)
        /// bytes, not of what `get` returns.
        #[serde(skip_serializing_if = "Option::is_none")]
        size_is: Option<&'static str>,
        last_modified: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        etag: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
    },
    /// A sub-folder (`ls` without `-r`).
    Prefix { prefix: &'a str },
}

impl<'a> ListItem<'a> {
    pub(crate) fn object(o: &'a ObjectInfo, stored: bool) -> Self {
        ListItem::Object {
            key: &o.key,
            size: o.size,
            size_is: stored.then_some("stored"),
            last_modified: o.last_modified.to_rfc3339(),
            etag: o.etag.as_deref(),
            version: o.version.as_deref(),
        }
    }
}

/// Print `stream` through `lines` page by page: everything that has arrived is printed and
/// flushed whenever the next item is not there yet (a listing's next page), so the first
/// lines appear long before a large listing ends, and nothing is collected or sorted.
pub(crate) async fn print_stream<T>(
    lines: &mut crate::output::Lines,
    stream: impl futures::Stream<Item = storage_core::Result<T>>,
    mut each: impl FnMut(&mut crate::output::Lines, T) -> CliResult,
) -> CliResult {
    let mut pages = std::pin::pin!(stream.ready_chunks(4096));
    while let Some(page) = pages.next().await {
        let mut failed = None;
        for item in page {
            match item {
                Ok(item) => each(lines, item)?,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        lines.flush()?;
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Tell a person reading `ls -l` which sizes are stored sizes (on stderr: stdout stays the
/// listing).
fn note_stored_sizes(ctx: &Ctx, name: &str) {
    if !ctx.json && !ctx.quiet {
        eprintln!(
            "note: sizes marked * are stored sizes: bucket `{name}` compresses; `strata stat {name}:KEY` shows the original size"
        );
    }
}

async fn ls(ctx: &Ctx, a: LsArgs) -> CliResult {
    if let Some(via) = Via::of(a.any, a.route) {
        return super::buckets::ls(ctx, via, &a.target, a.long).await;
    }
    let (name, prefix) = Address::remote(&a.target)?;
    let bucket = ctx.strata.bucket(&name)?;
    let prefix = prefix.trim_end_matches('/').to_string();
    let stored = ctx.compresses(&name);
    let mut lines = ctx.lines();
    if a.recursive {
        // Streamed in the backend's order (S3 and R2: key order), never collected first.
        let long = a.long;
        print_stream(&mut lines, bucket.list(&prefix), |l, o| {
            let human = if long {
                long_line(&o, stored)
            } else {
                o.key.clone()
            };
            l.item(human, &ListItem::object(&o, stored))
        })
        .await?;
    } else {
        let listing = bucket.list_dir(&prefix).await?;
        for p in &listing.prefixes {
            let human = if a.long {
                format!("{:>10}  {:19}  {:34}  {p}", "DIR", "", "")
            } else {
                p.clone()
            };
            lines.item(human, &ListItem::Prefix { prefix: p })?;
        }
        for o in &listing.objects {
            let human = if a.long {
                long_line(o, stored)
            } else {
                o.key.clone()
            };
            lines.item(human, &ListItem::object(o, stored))?;
        }
        lines.flush()?;
    }
    if a.long && stored {
        note_stored_sizes(ctx, &name);
    }
    Ok(())
}

#[derive(Serialize)]
struct RmOutput {
    deleted: Vec<String>,
    failed: Vec<(String, String)>,
}

/// Whether the person at the terminal confirms deleting every object of `scope`. Never asks
/// when standard input is not a terminal (scripts, cron, CI): those need `--all`.
fn confirm_whole_bucket(scope: &str, count: usize) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("delete all {count} object(s) of {scope}? type `yes` to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).is_ok() && answer.trim() == "yes"
}

async fn rm(ctx: &Ctx, a: RmArgs) -> CliResult {
    let mut by_bucket: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if a.prefix.is_some() || a.all {
        let [target] = a.targets.as_slice() else {
            return Err(CliError::bad_input(
                "with --prefix or --all give exactly one NAME: (e.g. strata rm photos: --prefix 2025/)",
            ));
        };
        let (name, key) = Address::remote(target)?;
        if !key.is_empty() {
            return Err(CliError::bad_input(format!(
                "`{target}` names a key; with --prefix or --all give the bucket alone (`{name}:`) and the prefix as --prefix {key}"
            )));
        }
        let prefix = a.prefix.as_deref().unwrap_or("").trim_end_matches('/');
        let bucket = ctx.strata.bucket(&name)?;
        let keys: Vec<String> = bucket.list(prefix).map_ok(|o| o.key).try_collect().await?;
        // An empty prefix (often an unset variable in a script) is the whole bucket.
        if prefix.is_empty() && !a.all && !a.dry_run && !confirm_whole_bucket(target, keys.len()) {
            return Err(CliError::bad_input(format!(
                "this would delete every object of `{name}:` ({} object(s)): the prefix is empty. Add --all to delete the whole bucket, give a non-empty --prefix, or try --dry-run first",
                keys.len()
            )));
        }
        by_bucket.insert(name, keys);
    } else {
        // Every key is checked before any is deleted: one typo stops the whole command.
        for t in &a.targets {
            let (name, key) = Address::remote_key(t)?;
            storage_core::Key::new(key.as_str())?;
            by_bucket.entry(name).or_default().push(key);
        }
    }
    let total: usize = by_bucket.values().map(Vec::len).sum();
    if a.dry_run {
        let would: Vec<String> = by_bucket
            .iter()
            .flat_map(|(name, keys)| keys.iter().map(move |k| format!("{name}:{k}")))
            .collect();
        let mut text = format!("would delete {total} object(s)");
        for k in &would {
            text.push_str(&format!("\n  would delete {k}"));
        }
        ctx.emit(
            text,
            &serde_json::json!({ "dry_run": true, "would_delete": would }),
        );
        return Ok(());
    }
    let bar = ctx.progress(total as u64, false, "delete");
    let mut out = RmOutput {
        deleted: Vec::new(),
        failed: Vec::new(),
    };
    for (name, keys) in by_bucket {
        let bucket = ctx.strata.bucket(&name)?;
        for chunk in keys.chunks(1000) {
            let report = bucket.delete_many(chunk).await;
            bar.inc(chunk.len() as u64);
            out.deleted
                .extend(report.deleted.into_iter().map(|k| format!("{name}:{k}")));
            out.failed.extend(
                report
                    .failed
                    .into_iter()
                    .map(|(k, e)| (format!("{name}:{k}"), e.to_string())),
            );
        }
    }
    bar.finish_and_clear();
    let mut text = format!("deleted {} object(s)", out.deleted.len());
    for (k, e) in &out.failed {
        text.push_str(&format!("\nfailed {k}: {e}"));
    }
    ctx.done(text, &out);
    CliError::unless_failed(out.failed.len(), |n| {
        format!("{n} of {total} deletes failed")
    })
}

/// One planned copy.
#[derive(Debug, Clone)]
enum Endpoint {
    Remote(Box<Bucket>, String),
    Local(PathBuf),
}

impl Endpoint {
    fn label(&self) -> String {
        match self {
            Endpoint::Remote(b, k) => format!("{}:{k}", b.name()),
            Endpoint::Local(p) => p.display().to_string(),
        }
    }

    /// Where this end is stored, comparable across bucket names, prefixes and local paths
    /// (see [`Bucket::stored_at`]), without a trailing `/`.
    fn stored_at(&self) -> String {
        let at = match self {
            Endpoint::Remote(b, k) => b.stored_at(k),
            Endpoint::Local(p) => format!("file://{}", canonical_local(p).display()),
        };
        at.trim_end_matches('/').to_string()
    }
}

/// `p` made absolute with symbolic links resolved as far as it exists (a destination may
/// not exist yet), so it compares with a local bucket's canonical folder.
fn canonical_local(p: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut at = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    loop {
        if let Ok(found) = at.canonicalize() {
            return missing.iter().rev().fold(found, |acc, part| acc.join(part));
        }
        match (at.file_name().map(|n| n.to_os_string()), at.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name);
                at = parent.to_path_buf();
            }
            _ => return std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
        }
    }
}

/// Refuse a copy or move whose two ends are one object, or (recursive) whose scopes nest:
/// it would read what it writes, and a move would then delete what it copied.
fn check_distinct(src: &Endpoint, dest: &Endpoint, recursive: bool, verb: &str) -> CliResult {
    let (a, b) = (src.stored_at(), dest.stored_at());
    let nested = |outer: &str, inner: &str| inner.starts_with(&format!("{outer}/"));
    if a == b {
        return Err(CliError::bad_input(format!(
            "`{}` and `{}` are the same {} ({a}); a {verb} onto itself would {}. Give a different destination",
            src.label(),
            dest.label(),
            if recursive { "folder" } else { "object" },
            if verb == "move" {
                "delete what it has just written"
            } else {
                "change nothing"
            }
        )));
    }
    if recursive && (nested(&a, &b) || nested(&b, &a)) {
        return Err(CliError::bad_input(format!(
            "`{}` and `{}` overlap ({a} and {b}): a recursive {verb} would read what it writes. Choose a destination outside the source (and not above it)",
            src.label(),
            dest.label()
        )));
    }
    Ok(())
}

fn resolve(ctx: &Ctx, s: &str) -> CliResult<Endpoint> {
    Ok(match Address::parse(s) {
        Address::Remote { bucket, key } => {
            Endpoint::Remote(Box::new(ctx.strata.bucket(&bucket)?), key)
        }
        Address::Local(p) => Endpoint::Local(p),
    })
}

/// Expand a (possibly recursive) source into (source, destination, size) pairs.
async fn plan(
    src: &Endpoint,
    dest: &Endpoint,
    recursive: bool,
) -> CliResult<Vec<(Endpoint, Endpoint, u64)>> {
    let join_dest = |rel: &str| -> Endpoint {
        match dest {
            Endpoint::Remote(b, k) => {
                let base = k.trim_end_matches('/');
                Endpoint::Remote(
                    b.clone(),
                    if base.is_empty() {
                        rel.to_string()
                    } else {
                        format!("{base}/{rel}")
                    },
                )
            }
            Endpoint::Local(p) => Endpoint::Local(p.join(rel)),
        }
    };
    let dest_is_dir = match dest {
        Endpoint::Remote(_, k) => k.is_empty() || k.ends_with('/'),
        Endpoint::Local(p) => p.is_dir() || p.to_string_lossy().ends_with('/'),
    };
    if !recursive {
        let (size, name) = match src {
            Endpoint::Remote(b, k) => (
                b.head(k).await?.size,
                k.rsplit('/').next().unwrap_or(k).to_string(),
            ),
            Endpoint::Local(p) => {
                let meta = std::fs::metadata(p)
                    .map_err(|e| CliError::from(e).with_context(&p.display().to_string()))?;
                if meta.is_dir() {
                    return Err(CliError::bad_input(format!(
                        "{} is a folder; add -r to copy it recursively",
                        p.display()
                    )));
                }
                (
                    meta.len(),
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            }
        };
        let target = if dest_is_dir {
            join_dest(&name)
        } else {
            dest.clone()
        };
        return Ok(vec![(src.clone(), target, size)]);
    }
    let mut out = Vec::new();
    match src {
        Endpoint::Remote(b, prefix) => {
            let prefix = prefix.trim_end_matches('/');
            let mut objects: Vec<ObjectInfo> = b.list(prefix).try_collect().await?;
            objects.sort_by(|x, y| x.key.cmp(&y.key));
            for o in objects {
                let rel = o
                    .key
                    .strip_prefix(prefix)
                    .unwrap_or(&o.key)
                    .trim_start_matches('/')
                    .to_string();
                out.push((
                    Endpoint::Remote(b.clone(), o.key.clone()),
                    join_dest(&rel),
                    o.size,
                ));
            }
        }
        Endpoint::Local(root) => {
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let rd = std::fs::read_dir(&dir)
                    .map_err(|e| CliError::from(e).with_context(&dir.display().to_string()))?;
                for entry in rd {
                    let entry = entry?;
                    let path = entry.path();
                    let meta = entry.metadata()?;
                    if meta.is_dir() {
                        stack.push(path);
                    } else if meta.is_file() {
                        let rel = path
                            .strip_prefix(root)
                            .unwrap_or(&path)
                            .to_string_lossy()
                            .replace('\\', "/");
                        out.push((Endpoint::Local(path.clone()), join_dest(&rel), meta.len()));
                    }
                }
            }
            out.sort_by_key(|(s, _, _)| s.label());
        }
    }
    Ok(out)
}

impl CliError {
    fn with_context(mut self, what: &str) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

async fn copy_one(src: &Endpoint, dest: &Endpoint, bar: &indicatif::ProgressBar) -> CliResult {
    match (src, dest) {
        (Endpoint::Local(_), Endpoint::Local(_)) => Err(CliError::bad_input(
            "both addresses are local paths; one must be NAME:KEY (use your shell's cp for local copies)",
        )),
        (Endpoint::Remote(sb, sk), Endpoint::Remote(db, dk)) if sb.name() == db.name() => {
            sb.copy(sk, dk).await?;
            bar.inc(sb.head(dk).await.map(|h| h.size).unwrap_or(0));
            Ok(())
        }
        (Endpoint::Remote(sb, sk), Endpoint::Remote(db, dk)) => {
            let obj = sb.get_stream(sk).await?;
            let opts = PutOpts {
                content_type: obj.info.content_type().map(str::to_string),
                metadata: obj.info.metadata.clone(),
                ..Default::default()
            };
            let bar2 = bar.clone();
            let stream = obj.stream.inspect_ok(move |c| bar2.inc(c.len() as u64));
            db.put_stream(dk, stream, opts).await?;
            Ok(())
        }
        (Endpoint::Local(p), Endpoint::Remote(db, dk)) => {
            let file = tokio::fs::File::open(p)
                .await
                .map_err(|e| CliError::from(e).with_context(&p.display().to_string()))?;
            let opts = PutOpts {
                content_type: guess_content_type(dk).map(str::to_string),
                ..Default::default()
            };
            db.put_stream(dk, file_stream(file, bar.clone()), opts)
                .await?;
            Ok(())
        }
        (Endpoint::Remote(sb, sk), Endpoint::Local(p)) => {
            let obj = sb.get_stream(sk).await?;
            write_stream_to_file(obj.stream, p, bar).await
        }
    }
}

#[derive(Serialize)]
struct CopyOutput {
    copied: Vec<(String, String)>,
    bytes: u64,
    moved: bool,
}

async fn cp(ctx: &Ctx, a: CpArgs, remove_source: bool) -> CliResult {
    let src = resolve(ctx, &a.src)?;
    let dest = resolve(ctx, &a.dest)?;
    if let (Endpoint::Remote(_, k), false) = (&src, a.recursive)
        && (k.is_empty() || k.ends_with('/'))
    {
        return Err(CliError::bad_input(format!(
            "`{}` is a prefix; add -r to copy everything under it",
            a.src
        )));
    }
    let verb = if remove_source { "move" } else { "copy" };
    if a.recursive {
        check_distinct(&src, &dest, true, verb)?;
    }
    // A same-bucket move of one object is a rename (copy + delete, never losing data).
    if let (true, false, false, Endpoint::Remote(sb, sk), Endpoint::Remote(db, dk)) =
        (remove_source, a.recursive, a.dry_run, &src, &dest)
        && sb.name() == db.name()
        && !dk.is_empty()
        && !dk.ends_with('/')
    {
        check_distinct(&src, &dest, false, verb)?;
        sb.rename(sk, dk).await?;
        ctx.done(
            format!("moved {} → {}", src.label(), dest.label()),
            &CopyOutput {
                copied: vec![(src.label(), dest.label())],
                bytes: 0,
                moved: true,
            },
        );
        return Ok(());
    }
    let jobs = plan(&src, &dest, a.recursive).await?;
    // Every pair is checked before anything is written: a failure halfway would leave a
    // half-done move behind.
    for (s, d, _) in &jobs {
        check_distinct(s, d, false, verb)?;
    }
    let total: u64 = jobs.iter().map(|(_, _, s)| s).sum();
    if a.dry_run {
        let mut text = format!(
            "would {verb} {} object(s), {}",
            jobs.len(),
            human_bytes(total)
        );
        for (s, d, _) in &jobs {
            text.push_str(&format!("\n  would {verb} {} → {}", s.label(), d.label()));
        }
        let pairs: Vec<(String, String)> = jobs
            .iter()
            .map(|(s, d, _)| (s.label(), d.label()))
            .collect();
        ctx.emit(
            text,
            &serde_json::json!({ "dry_run": true, "would": verb, "pairs": pairs, "bytes": total }),
        );
        return Ok(());
    }
    let bar = ctx.progress(total, true, verb);
    let mut out = CopyOutput {
        copied: Vec::new(),
        bytes: total,
        moved: remove_source,
    };
    for (s, d, _) in &jobs {
        copy_one(s, d, &bar)
            .await
            .map_err(|e| e.with_context(&format!("{} → {}", s.label(), d.label())))?;
        if remove_source {
            match s {
                Endpoint::Remote(b, k) => b.delete(k).await?,
                Endpoint::Local(p) => tokio::fs::remove_file(p).await?,
            }
        }
        out.copied.push((s.label(), d.label()));
    }
    bar.finish_and_clear();
    let done = if remove_source { "moved" } else { "copied" };
    let text = if jobs.len() == 1 {
        format!(
            "{done} {} → {} ({})",
            jobs[0].0.label(),
            jobs[0].1.label(),
            human_bytes(total)
        )
    } else {
        format!("{done} {} object(s), {}", jobs.len(), human_bytes(total))
    };
    ctx.done(text, &out);
    Ok(())
}

#[derive(Serialize)]
struct StatOutput<'a> {
    #[serde(flatten)]
    info: &'a ObjectInfo,
    /// Size of the stored bytes, where a codec (compression) makes it differ from `size`
    /// (the original size, what `get` returns).
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_size: Option<u64>,
}

async fn stat(ctx: &Ctx, a: StatArgs) -> CliResult {
    let (name, key) = Address::remote_key(&a.target)?;
    let bucket = ctx.strata.bucket(&name)?;
    let info = bucket.head(&key).await?;
    // `head` reports the original size; a listing the stored one. Only where the bucket
    // compresses can they differ, so only then is the listing asked.
    let stored_size = if ctx.compresses(&name) {
        // A listing's prefix is whole path segments: list the key's folder, one level.
        let folder = key.rsplit_once('/').map_or("", |(folder, _)| folder);
        bucket
            .list_dir(folder)
            .await?
            .objects
            .into_iter()
            .find(|o| o.key == info.key)
            .map(|o| o.size)
            .filter(|s| *s != info.size)
    } else {
        None
    };
    let mut text = format!(
        "key:       {}\nsize:      {} ({} bytes{})",
        info.key,
        human_bytes(info.size),
        info.size,
        if stored_size.is_some() {
            ", original"
        } else {
            ""
        },
    );
    if let Some(stored) = stored_size {
        text.push_str(&format!(
            "\nstored:    {} ({stored} bytes, compressed)",
            human_bytes(stored)
        ));
    }
    text.push_str(&format!(
        "\nmodified:  {}\netag:      {}\nversion:   {}",
        info.last_modified.to_rfc3339(),
        info.etag.as_deref().unwrap_or("-"),
        info.version.as_deref().unwrap_or("-"),
    ));
    for (k, v) in &info.headers {
        text.push_str(&format!("\n{k}: {v}"));
    }
    for (k, v) in &info.metadata {
        text.push_str(&format!("\nmeta {k}: {v}"));
    }
    ctx.emit(
        text,
        &StatOutput {
            info: &info,
            stored_size,
        },
    );
    Ok(())
}

#[derive(Serialize)]
struct PresignOutput {
    url: String,
    method: &'static str,
    expires_in_seconds: u64,
}

/// `--expires` of a presigned URL (`strata presign`, `strata dataset presign`).
#[derive(Debug, Args)]
pub struct ExpiresArg {
    /// How long the URL works: 30s, 15m, 1h, 7d (at most 7d).
    #[arg(long, default_value = "1h")]
    pub expires: String,
}

impl ExpiresArg {
    /// The duration, checked here so errors echo it as typed (`8d`).
    pub(crate) fn duration(&self) -> CliResult<std::time::Duration> {
        let typed = &self.expires;
        let d = storage_core::config::parse_duration(typed)
            .map_err(|e| CliError::bad_input(format!("--expires: {e}")))?;
        if d < std::time::Duration::from_secs(1) {
            return Err(CliError::bad_input(format!(
                "--expires {typed}: a presigned URL must be valid for at least 1 second"
            )));
        }
        if d > std::time::Duration::from_secs(7 * 24 * 3600) {
            return Err(CliError::bad_input(format!(
                "--expires {typed} is longer than the 7 day maximum S3 allows for presigned URLs; use at most 7d"
            )));
        }
        Ok(d)
    }
}

async fn presign(ctx: &Ctx, a: PresignArgs) -> CliResult {
    let (name, key) = Address::remote_key(&a.target)?;
    let expires = a.expires.duration()?;
    let method = match a.method {
        MethodArg::Get => PresignMethod::Get,
        MethodArg::Put => PresignMethod::Put,
    };
    let bucket = ctx.strata.bucket(&name)?;
    let url = bucket
        .presign(method, &key, expires)
        .await
        .map_err(|e| match e {
            StorageError::NotSupported { .. } if bucket.provider() == "fs" => {
                CliError::from(e).with_context(&format!(
                    "`{name}` is a local folder, which has no URLs to sign; use an s3 or r2 bucket, or read it with `strata get {name}:{key}`"
                ))
            }
            other => other.into(),
        })?;
    ctx.emit(
        url.as_str(),
        &PresignOutput {
            url: url.to_string(),
            method: if matches!(method, PresignMethod::Get) {
                "GET"
            } else {
                "PUT"
            },
            expires_in_seconds: expires.as_secs(),
        },
    );
    Ok(())
}

#[derive(Serialize)]
struct StatsOutput {
    #[serde(flatten)]
    stats: storage_core::BucketStats,
    /// `stored` where the bucket compresses: `bytes` counts stored (compressed) bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    size_is: Option<&'static str>,
}

async fn stats(ctx: &Ctx, a: StatsArgs) -> CliResult {
    let (name, prefix) = Address::remote(&a.target)?;
    let s = ctx
        .strata
        .bucket(&name)?
        .stats(prefix.trim_end_matches('/'))
        .await?;
    let stored = ctx.compresses(&name);
    ctx.emit(
        format!(
            "{} object(s), {} ({} bytes){}",
            s.objects,
            human_bytes(s.bytes),
            s.bytes,
            if stored {
                " stored, compressed: the original sizes are larger"
            } else {
                ""
            }
        ),
        &StatsOutput {
            stats: s,
            size_is: stored.then_some("stored"),
        },
    );
    Ok(())
}
