//! `strata doc ...`: typed JSON documents with compare-and-swap (`storage-cas`).
//!
//! A collection is `NAME:PREFIX`: documents live at `PREFIX/{id}.json` in bucket `NAME`
//! (`app:assistants` → `assistants/asst_1.json`), or follow `--scheme TEMPLATE`
//! (`--scheme 'messages/{thread}/{id}.json'`, ids then `thread/id`). Versioned records
//! (`history`, `revert`, `commit`) use seed 004's layout. `NAME:COLLECTION` keeps both in
//! bucket `NAME` (`records/{collection}/{id}/head.json`,
//! `versions/{collection}/{id}/v{n}.json`); a bare `COLLECTION` follows the config's routes:
//! heads under `[routes.records]`, versions under `[routes.versions]` (each its own bucket
//! and prefix, as seed 004 keeps versions on cheaper storage).
//!
//! Exit codes: 3 when the document is missing, 4 on a failed `--if-match`, an existing
//! document on `create`, or a conflict that retries did not resolve.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use futures::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use storage_core::StorageError;
use strata::cas::{
    BackoffStrategy, Collection, RecordLayout, SweepOptions, Ttl, Versioned, VersionedRecords,
    WriteOpts,
};

use crate::address::Address;
use crate::output::{CliError, CliResult, Ctx};

command_group! {
    /// `strata doc`.
    #[derive(Debug, Subcommand)]
    pub enum DocCommand {
        /// Print a document (its JSON value; `--json` adds ETag, expiry and metadata).
        Get(GetArgs) => get,
        /// Write a document (unconditionally, or only over ETAG with `--if-match`).
        Put(PutArgs) => |ctx, a| put(ctx, a, false),
        /// Create a document; exit 4 if it exists.
        Create(PutArgs) => |ctx, a| put(ctx, a, true),
        /// Change a document with a JSON merge patch and/or `--set path=value`, re-read and
        /// re-applied if another writer gets in between (or only over ETAG with `--if-match`).
        Update(UpdateArgs) => update,
        /// Delete a document (only if its ETag is ETAG with `--if-match`).
        Rm(RmArgs) => rm,
        /// List document ids.
        Ls(LsArgs) => ls,
        /// Delete expired documents (and their attachments).
        Sweep(SweepArgs) => sweep,
        /// Commit a new version of a versioned record.
        Commit(CommitArgs) => commit,
        /// List the versions of a versioned record.
        History(HistoryArgs) => history,
        /// Commit an old version's value again as the newest version.
        Revert(RevertArgs) => revert,
    }
}

/// Where a collection lives.
#[derive(Debug, Args)]
pub struct CollectionArg {
    /// Collection: NAME:PREFIX (documents at PREFIX/{id}.json).
    pub collection: String,
    /// Key template instead of PREFIX/{id}.json, e.g. 'messages/{thread}/{id}.json'.
    #[arg(long, value_name = "TEMPLATE")]
    pub scheme: Option<String>,
}

/// `strata doc get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub coll: CollectionArg,
    /// Document id.
    pub id: String,
    /// Also show a document whose TTL has passed.
    #[arg(long)]
    pub include_expired: bool,
}

/// `strata doc put` / `create`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub coll: CollectionArg,
    /// Document id.
    pub id: String,
    #[command(flatten)]
    pub value: ValueArg,
    /// Expire after this long (`30d`, `24h`, `90s`); `never` for no expiry.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Only replace the document whose ETag is this: exit 4 otherwise.
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
}

/// `strata doc update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub coll: CollectionArg,
    /// Document id.
    pub id: String,
    /// A JSON merge patch (RFC 7396): objects merge, `null` deletes a field.
    #[arg(long, short = 'p', value_name = "JSON")]
    pub merge: Option<String>,
    /// Set one field: `a.b.c=value` (value parsed as JSON, else taken as a string);
    /// repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Start from `{}` when the document does not exist (default: exit 3).
    #[arg(long)]
    pub create: bool,
    /// Only update the document whose ETag is this (one attempt): exit 4 otherwise.
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
    /// Expire after this long; `never` for no expiry. Default: the collection default.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Give up after this many retries on conflict (default: no count, retry until
    /// --deadline; jittered backoff from 5 ms up to 500 ms).
    #[arg(long)]
    pub retries: Option<u32>,
    /// Stop retrying conflicts once this long has passed since the first attempt.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub deadline: String,
}

/// `strata doc rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    #[command(flatten)]
    pub coll: CollectionArg,
    /// Document id.
    pub id: String,
    /// Only delete the document whose ETag is this: exit 4 otherwise.
    #[arg(long, value_name = "ETAG")]
    pub if_match: Option<String>,
    /// Delete the document's attachments too.
    #[arg(long)]
    pub attachments: bool,
}

/// `strata doc ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub coll: CollectionArg,
    /// Only ids starting with these parts (e.g. the thread of `{thread}/{id}`).
    #[arg(long)]
    pub parent: Option<String>,
}

/// `strata doc sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub coll: CollectionArg,
    /// Keep attachments of swept documents.
    #[arg(long)]
    pub keep_attachments: bool,
}

/// A JSON value given on the command line, in a file, or on standard input.
#[derive(Debug, Args)]
pub struct ValueArg {
    /// The JSON value (default: read from --file, else stdin).
    #[arg(long, short)]
    pub data: Option<String>,
    /// Read the JSON value from this file.
    #[arg(long, short, conflicts_with = "data")]
    pub file: Option<PathBuf>,
}

/// One versioned record: where the records live and the record's id.
#[derive(Debug, Args)]
pub struct RecordArg {
    /// Versioned records: NAME:COLLECTION (one bucket), or COLLECTION alone (heads and
    /// versions where [routes.records] and [routes.versions] put them).
    pub records: String,
    /// Record id.
    pub id: String,
}

/// `strata doc commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    #[command(flatten)]
    pub record: RecordArg,
    #[command(flatten)]
    pub value: ValueArg,
}

/// `strata doc history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub record: RecordArg,
}

/// `strata doc revert`.
#[derive(Debug, Args)]
pub struct RevertArgs {
    #[command(flatten)]
    pub record: RecordArg,
    /// The version whose value becomes the newest version.
    pub version: u64,
}

fn collection(ctx: &Ctx, c: &CollectionArg) -> CliResult<Collection<Value>> {
    let (name, prefix) = Address::remote(&c.collection)?;
    let scheme = match (&c.scheme, prefix.trim_end_matches('/')) {
        (Some(t), "") => t.clone(),
        (Some(t), p) => format!("{p}/{t}"),
        (None, "") => {
            return Err(CliError::bad_input(format!(
                "`{}` names no collection; write NAME:PREFIX (e.g. app:assistants) or give --scheme",
                c.collection
            )));
        }
        (None, p) => format!("{p}/{{id}}.json"),
    };
    Ok(Collection::new(&ctx.strata.bucket(&name)?, &scheme)?)
}

fn records(ctx: &Ctx, spec: &str) -> CliResult<VersionedRecords<Value>> {
    if !spec.contains(':') {
        return routed_records(ctx, spec);
    }
    let (name, collection) = Address::remote(spec)?;
    if collection.is_empty() {
        return Err(CliError::bad_input(format!(
            "`{spec}` names no collection; write NAME:COLLECTION (e.g. app:users)"
        )));
    }
    Ok(VersionedRecords::new(
        &ctx.strata.bucket(&name)?,
        &collection,
    )?)
}

/// Records of `collection` with heads under `[routes.records]` and versions under
/// `[routes.versions]`, each route's prefix standing for the layout's `records/` and
/// `versions/` folders.
fn routed_records(ctx: &Ctx, collection: &str) -> CliResult<VersionedRecords<Value>> {
    if collection.is_empty() {
        return Err(CliError::bad_input(
            "no collection given; write COLLECTION (routed by [routes.records] and [routes.versions]) or NAME:COLLECTION",
        ));
    }
    let unrouted = |e: StorageError| {
        CliError::bad_input(format!(
            "`{collection}` has no NAME:, so its heads follow [routes.records] and its versions [routes.versions], but {e}; write NAME:COLLECTION to keep both in one bucket"
        ))
    };
    let router = ctx.strata.router().map_err(unrouted)?;
    let scoped =
        |route: &str| -> CliResult<storage_core::Bucket> { router.route(route).map_err(unrouted) };
    let layout = RecordLayout {
        head: "{collection}/{id}/head.json".into(),
        version: "{collection}/{id}/v{version}.json".into(),
    };
    Ok(VersionedRecords::with_layout(
        &scoped("records")?,
        &scoped("versions")?,
        collection,
        &layout,
    )?)
}

/// The last instant an RFC 3339 timestamp (four-digit year) can write,
/// 9999-12-31T23:59:59Z in unix seconds: an expiry after it could not be read back.
const LAST_READABLE_EXPIRY: u64 = 253_402_300_799;

/// `doc update`'s conflict policy: retry until `--deadline`, at most `--retries` times.
fn update_backoff(a: &UpdateArgs) -> CliResult<BackoffStrategy> {
    let deadline = storage_core::config::parse_duration(&a.deadline)
        .map_err(|e| CliError::bad_input(format!("--deadline {}: {e}", a.deadline)))?;
    if deadline.is_zero() {
        return Err(CliError::bad_input(format!(
            "--deadline {}: give a positive duration such as 30s (use --retries 0 for a single attempt)",
            a.deadline
        )));
    }
    let b = BackoffStrategy::UNTIL_DEADLINE.with_deadline(deadline);
    Ok(match a.retries {
        Some(n) => b.with_max_retries(n),
        None => b,
    })
}

fn parse_ttl(ttl: Option<&str>) -> CliResult<Ttl> {
    let s = match ttl {
        None => return Ok(Ttl::CollectionDefault),
        Some("never" | "none") => return Ok(Ttl::Never),
        Some(s) => s,
    };
    let ttl = storage_core::config::parse_duration(s)
        .map_err(|e| CliError::bad_input(format!("--ttl {s}: {e}")))?;
    if ttl < std::time::Duration::from_secs(1) {
        return Err(CliError::bad_input(format!(
            "--ttl {s}: a document must live at least 1s (it would expire before anyone reads it); use --ttl never for no expiry"
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if now.saturating_add(ttl.as_secs()) > LAST_READABLE_EXPIRY {
        return Err(CliError::bad_input(format!(
            "--ttl {s}: the expiry would fall after the year 9999, which cannot be recorded; use --ttl never for no expiry, or a shorter TTL such as 3650d"
        )));
    }
    Ok(Ttl::After(ttl))
}

impl ValueArg {
    /// The value, parsed from `--data`, `--file` or standard input.
    async fn read(self) -> CliResult<Value> {
        let text = match (self.data, self.file) {
            (Some(d), _) => d,
            (None, Some(path)) => tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", path.display())))?,
            (None, None) => {
                let mut s = String::new();
                tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::stdin(), &mut s)
                    .await
                    .map_err(|e| CliError::bad_input(format!("cannot read stdin: {e}")))?;
                s
            }
        };
        serde_json::from_str(&text)
            .map_err(|e| CliError::bad_input(format!("the value is not valid JSON: {e}")))
    }
}

fn not_found(c: &Collection<Value>, id: &str) -> CliError {
    let key = c.key_for(id).map(|k| k.to_string()).unwrap_or_default();
    StorageError::NotFound {
        backend: c.bucket().name().to_string(),
        key,
    }
    .into()
}

#[derive(Serialize)]
struct DocOutput<'a> {
    id: &'a str,
    key: &'a str,
    etag: &'a str,
    version: Option<&'a str>,
    expires_at: Option<String>,
    metadata: &'a std::collections::BTreeMap<String, String>,
    value: &'a Value,
}

impl<'a> From<&'a Versioned<Value>> for DocOutput<'a> {
    fn from(d: &'a Versioned<Value>) -> Self {
        DocOutput {
            id: &d.id,
            key: &d.key,
            etag: &d.etag,
            version: d.version.as_deref(),
            expires_at: d.expires_at.map(|t| t.to_rfc3339()),
            metadata: &d.metadata,
            value: &d.value,
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

async fn get(ctx: &Ctx, a: GetArgs) -> CliResult {
    let c = collection(ctx, &a.coll)?;
    let doc = if a.include_expired {
        c.get_including_expired(&a.id).await?
    } else {
        c.get_checked(&a.id).await?
    };
    let doc = doc.ok_or_else(|| not_found(&c, &a.id))?;
    ctx.emit(pretty(&doc.value), &DocOutput::from(&doc));
    Ok(())
}

#[derive(Serialize)]
struct WriteOutput<'a> {
    id: &'a str,
    key: String,
    etag: Option<&'a str>,
    expires_at: Option<String>,
}

async fn put(ctx: &Ctx, a: PutArgs, create: bool) -> CliResult {
    let c = collection(ctx, &a.coll)?;
    let value = a.value.read().await?;
    let opts = WriteOpts {
        ttl: parse_ttl(a.ttl.as_deref())?,
        ..Default::default()
    };
    let w = match (create, &a.if_match) {
        (true, Some(_)) => {
            return Err(CliError::bad_input(
                "`create` cannot take --if-match: it only writes absent documents",
            ));
        }
        (true, None) => c.create_with(&a.id, &value, &opts).await?,
        (false, Some(etag)) => c.put_if_match_with(&a.id, &value, etag, &opts).await?,
        (false, None) => c.put_with(&a.id, &value, &opts).await?,
    };
    let key = c.key_for(&a.id)?.to_string();
    ctx.done(
        format!(
            "{} {key} (etag {})",
            if create { "created" } else { "put" },
            w.etag.as_deref().unwrap_or("unknown")
        ),
        &WriteOutput {
            id: &a.id,
            key: key.clone(),
            etag: w.etag.as_deref(),
            expires_at: w.expires_at.map(|t| t.to_rfc3339()),
        },
    );
    Ok(())
}

/// Apply an RFC 7396 JSON merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let obj = target.as_object_mut().expect("made an object above");
            for (k, v) in fields {
                if v.is_null() {
                    obj.remove(k);
                } else {
                    merge_patch(obj.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Apply `a.b.c=value`: the value is parsed as JSON, or taken as a string when it is not.
pub fn set_path(target: &mut Value, assignment: &str) -> CliResult<()> {
    let (path, raw) = assignment.split_once('=').ok_or_else(|| {
        CliError::bad_input(format!(
            "--set `{assignment}`: write PATH=VALUE, e.g. --set status=done or --set limits.max=10"
        ))
    })?;
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(CliError::bad_input(format!(
            "--set `{assignment}`: the path must be field names separated by `.`"
        )));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let mut at = target;
    for field in path.split('.') {
        if !at.is_object() {
            *at = Value::Object(Default::default());
        }
        at = at
            .as_object_mut()
            .expect("made an object above")
            .entry(field.to_string())
            .or_insert(Value::Null);
    }
    *at = value;
    Ok(())
}

const CREATE_HINT: &str = "add --create to start from an empty document {} when it does not exist";

/// A failed `doc update` with the flag that fixes it: `--create` for a missing document,
/// `--retries` / `--deadline` for a conflict that retries did not resolve.
fn update_hint(e: StorageError, a: &UpdateArgs) -> CliError {
    let hint = match &e {
        StorageError::NotFound { .. } if !a.create => Some(CREATE_HINT.to_string()),
        StorageError::Conflict { .. } => Some(format!(
            "other writers kept changing the document; allow more time with --deadline (now {}){}",
            a.deadline,
            match a.retries {
                Some(n) => format!(" or more --retries (now {n})"),
                None => String::new(),
            }
        )),
        StorageError::Precondition { .. } => Some(
            "the document changed since you read its ETag; read it again (strata doc get ... --json) and retry with the new ETag".to_string(),
        ),
        _ => None,
    };
    let err = CliError::from(e);
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

#[derive(Serialize)]
struct UpdateOutput<'a> {
    id: &'a str,
    etag: Option<String>,
    previous_etag: Option<String>,
    attempts: u32,
    value: Option<Value>,
}

async fn update(ctx: &Ctx, a: UpdateArgs) -> CliResult {
    if a.merge.is_none() && a.set.is_empty() {
        return Err(CliError::bad_input(
            "nothing to change: give --merge JSON and/or --set PATH=VALUE",
        ));
    }
    let patch: Option<Value> = match &a.merge {
        Some(m) => Some(
            serde_json::from_str(m)
                .map_err(|e| CliError::bad_input(format!("--merge is not valid JSON: {e}")))?,
        ),
        None => None,
    };
    let apply = |mut v: Value| -> CliResult<Value> {
        if let Some(p) = &patch {
            merge_patch(&mut v, p);
        }
        for s in &a.set {
            set_path(&mut v, s)?;
        }
        Ok(v)
    };
    let opts = WriteOpts {
        ttl: parse_ttl(a.ttl.as_deref())?,
        ..Default::default()
    };
    let c = collection(ctx, &a.coll)?;
    let out = if let Some(etag) = &a.if_match {
        // One attempt, against exactly the version the caller saw.
        let doc = c
            .get(&a.id)
            .await?
            .ok_or_else(|| not_found(&c, &a.id).hint(CREATE_HINT))?;
        if !storage_core::etag_eq(&doc.etag, etag) {
            return Err(StorageError::Precondition {
                backend: c.bucket().name().to_string(),
                key: doc.key.clone(),
                detail: format!("expected ETag {etag}, found {}", doc.etag),
            }
            .into());
        }
        let value = apply(doc.value)?;
        let w = c.put_if_match_with(&a.id, &value, etag, &opts).await?;
        UpdateOutput {
            id: &a.id,
            etag: w.etag,
            previous_etag: Some(doc.etag),
            attempts: 1,
            value: Some(value),
        }
    } else {
        let c = c.with_backoff(update_backoff(&a)?);
        let mut closure_error = None;
        let result = c
            .update_with_opts(&a.id, &opts, |cur| {
                let base = match cur {
                    Some(v) => v,
                    None if a.create => Value::Object(Default::default()),
                    None => {
                        return Err(StorageError::NotFound {
                            backend: c.bucket().name().to_string(),
                            key: c.key_for(&a.id)?.to_string(),
                        });
                    }
                };
                match apply(base) {
                    Ok(v) => Ok(Some(v)),
                    Err(e) => {
                        let msg = e.message.clone();
                        closure_error = Some(e);
                        Err(StorageError::invalid_input("update", msg))
                    }
                }
            })
            .await;
        if let Some(e) = closure_error {
            return Err(e);
        }
        let u = result.map_err(|e| update_hint(e, &a))?;
        UpdateOutput {
            id: &a.id,
            etag: u.etag,
            previous_etag: u.previous_etag,
            attempts: u.attempts,
            value: u.value,
        }
    };
    ctx.done(
        format!(
            "updated {} (etag {}, {} attempt{})",
            a.id,
            out.etag.as_deref().unwrap_or("-"),
            out.attempts,
            if out.attempts == 1 { "" } else { "s" }
        ),
        &out,
    );
    Ok(())
}

#[derive(Serialize)]
struct RmOutput<'a> {
    id: &'a str,
    deleted: bool,
    attachments_deleted: u64,
}

async fn rm(ctx: &Ctx, a: RmArgs) -> CliResult {
    let c = collection(ctx, &a.coll)?;
    match &a.if_match {
        Some(etag) => c.delete_if_match(&a.id, etag).await?,
        None => c.delete(&a.id).await?,
    }
    let attachments_deleted = if a.attachments {
        c.delete_attachments(&a.id).await?
    } else {
        0
    };
    ctx.done(
        format!("deleted {}", a.id),
        &RmOutput {
            id: &a.id,
            deleted: true,
            attachments_deleted,
        },
    );
    Ok(())
}

async fn ls(ctx: &Ctx, a: LsArgs) -> CliResult {
    let c = collection(ctx, &a.coll)?;
    let mut ids: Vec<String> = c
        .list_in(a.parent.as_deref().unwrap_or(""))
        .try_collect()
        .await?;
    ids.sort();
    let mut lines = ctx.lines();
    for id in &ids {
        lines.item(id, &serde_json::json!({ "id": id }))?;
    }
    lines.flush()
}

#[derive(Serialize)]
struct SweepOutput {
    scanned: u64,
    expired: u64,
    deleted: u64,
    skipped_changed: u64,
    attachments_deleted: u64,
    failed: Vec<(String, String)>,
}

async fn sweep(ctx: &Ctx, a: SweepArgs) -> CliResult {
    let c = collection(ctx, &a.coll)?;
    let r = c
        .sweep_with(SweepOptions {
            delete_attachments: !a.keep_attachments,
            ..Default::default()
        })
        .await?;
    let out = SweepOutput {
        scanned: r.scanned,
        expired: r.expired,
        deleted: r.deleted,
        skipped_changed: r.skipped_changed,
        attachments_deleted: r.attachments_deleted,
        failed: r
            .failed
            .iter()
            .map(|(k, e)| (k.clone(), e.to_string()))
            .collect(),
    };
    ctx.done(
        format!(
            "scanned {}, expired {}, deleted {} ({} attachments), kept {} rewritten, {} failed",
            out.scanned,
            out.expired,
            out.deleted,
            out.attachments_deleted,
            out.skipped_changed,
            out.failed.len()
        ),
        &out,
    );
    if let Some((key, err)) = out.failed.first() {
        return Err(CliError::other(format!(
            "{} expired documents could not be deleted (first: {key}: {err})",
            out.failed.len()
        )));
    }
    Ok(())
}

#[derive(Serialize)]
struct CommitOutput<'a> {
    id: &'a str,
    version: u64,
    etag: String,
    attempts: u32,
}

impl<'a> CommitOutput<'a> {
    fn new(id: &'a str, c: strata::cas::Commit) -> Self {
        CommitOutput {
            id,
            version: c.version,
            etag: c.etag,
            attempts: c.attempts,
        }
    }
}

async fn commit(ctx: &Ctx, a: CommitArgs) -> CliResult {
    let RecordArg { records: spec, id } = &a.record;
    let r = records(ctx, spec)?;
    let value = a.value.read().await?;
    let c = r.commit(id, &value).await?;
    ctx.done(
        format!("committed {id} v{}", c.version),
        &CommitOutput::new(id, c),
    );
    Ok(())
}

async fn history(ctx: &Ctx, a: HistoryArgs) -> CliResult {
    let RecordArg { records: spec, id } = &a.record;
    let r = records(ctx, spec)?;
    let versions = r.history(id).await?;
    if versions.is_empty() {
        return Err(StorageError::NotFound {
            backend: spec.clone(),
            key: r.head_key(id)?.to_string(),
        }
        .into());
    }
    ctx.list(&versions, |v| {
        format!(
            "v{:<5} {}  {} B",
            v.version,
            v.last_modified.format("%Y-%m-%d %H:%M:%S"),
            v.size
        )
    })
}

async fn revert(ctx: &Ctx, a: RevertArgs) -> CliResult {
    let RecordArg { records: spec, id } = &a.record;
    let r = records(ctx, spec)?;
    let c = r.revert(id, a.version).await?;
    ctx.done(
        format!("reverted {id} to v{} as v{}", a.version, c.version),
        &CommitOutput::new(id, c),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{EXIT_BAD_INPUT, EXIT_CONFLICT, EXIT_NOT_FOUND};
    use serde_json::json;

    fn ctx(dir: &std::path::Path) -> Ctx {
        Ctx::with(strata::Strata::embedded(dir), true, true)
    }

    fn coll(spec: &str) -> CollectionArg {
        CollectionArg {
            collection: spec.into(),
            scheme: None,
        }
    }

    /// The exit code `cmd` fails with; panics when it succeeds.
    async fn exit_code_of(cmd: DocCommand, ctx: &Ctx) -> u8 {
        cmd.run(ctx).await.unwrap_err().code
    }

    fn get_args(id: &str) -> GetArgs {
        GetArgs {
            coll: coll("app:assistants"),
            id: id.into(),
            include_expired: false,
        }
    }

    fn put_args(id: &str, data: &str) -> PutArgs {
        PutArgs {
            coll: coll("app:assistants"),
            id: id.into(),
            value: ValueArg {
                data: Some(data.into()),
                file: None,
            },
            ttl: None,
            if_match: None,
        }
    }

    fn update_args(id: &str) -> UpdateArgs {
        UpdateArgs {
            coll: coll("app:assistants"),
            id: id.into(),
            merge: None,
            set: vec![],
            create: false,
            if_match: None,
            ttl: None,
            retries: Some(3),
            deadline: "30s".into(),
        }
    }

    #[test]
    fn update_errors_hint_at_the_flag_that_fixes_them() {
        let mut a = update_args("7");
        a.retries = Some(3);
        let conflict = StorageError::Conflict {
            backend: "app".into(),
            key: "users/7.json".into(),
            attempts: 4,
            last_etag: Some("\"e1\"".into()),
        };
        let e = update_hint(conflict, &a);
        assert_eq!(e.code, EXIT_CONFLICT);
        assert_eq!(
            e.message,
            "app: conflict on `users/7.json` after 4 attempts (last seen ETag \"e1\")"
        );
        assert_eq!(
            e.hint.as_deref(),
            Some(
                "other writers kept changing the document; allow more time with --deadline (now 30s) or more --retries (now 3)"
            )
        );
        let missing = StorageError::NotFound {
            backend: "app".into(),
            key: "users/7.json".into(),
        };
        let e = update_hint(missing, &a);
        assert_eq!(e.code, EXIT_NOT_FOUND);
        assert_eq!(e.hint.as_deref(), Some(CREATE_HINT));
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut v = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut v, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(v, json!({"a": "z", "c": {"d": "e"}}));
        let mut v = json!([1, 2]);
        merge_patch(&mut v, &json!({"x": 1}));
        assert_eq!(v, json!({"x": 1}));
    }

    #[test]
    fn set_path_creates_objects_and_parses_values() {
        let mut v = json!({"a": 1});
        set_path(&mut v, "limits.max=10").unwrap();
        set_path(&mut v, "status=done").unwrap();
        set_path(&mut v, "flags=[1,2]").unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "limits": {"max": 10}, "status": "done", "flags": [1, 2]})
        );
        assert_eq!(set_path(&mut v, "nope").unwrap_err().code, EXIT_BAD_INPUT);
        assert_eq!(set_path(&mut v, "a..b=1").unwrap_err().code, EXIT_BAD_INPUT);
    }

    #[tokio::test]
    async fn put_get_update_rm_with_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        DocCommand::Create(put_args("a1", r#"{"name":"Ada","runs":0}"#))
            .run(&ctx)
            .await
            .unwrap();
        // create again: conflict, exit 4
        let err = DocCommand::Create(put_args("a1", "{}"))
            .run(&ctx)
            .await
            .unwrap_err();
        assert_eq!(err.code, EXIT_CONFLICT, "{}", err.message);

        let c = collection(&ctx, &coll("app:assistants")).unwrap();
        let doc = c.get("a1").await.unwrap().unwrap();
        assert!(dir.path().join("app/assistants/a1.json").exists());

        let mut u = update_args("a1");
        u.merge = Some(r#"{"model":"m2"}"#.into());
        u.set = vec!["runs=1".into()];
        DocCommand::Update(u).run(&ctx).await.unwrap();
        let now = c.get("a1").await.unwrap().unwrap();
        assert_eq!(now.value, json!({"name": "Ada", "runs": 1, "model": "m2"}));

        // --if-match with the stale ETag: exit 4, unchanged
        let mut u = update_args("a1");
        u.set = vec!["runs=99".into()];
        u.if_match = Some(doc.etag.clone());
        let err = DocCommand::Update(u).run(&ctx).await.unwrap_err();
        assert_eq!(err.code, EXIT_CONFLICT, "{}", err.message);
        let mut p = put_args("a1", "{}");
        p.if_match = Some(doc.etag.clone());
        assert_eq!(exit_code_of(DocCommand::Put(p), &ctx).await, EXIT_CONFLICT);
        // with the current one: ok
        let mut u = update_args("a1");
        u.set = vec!["runs=2".into()];
        u.if_match = Some(now.etag.clone());
        DocCommand::Update(u).run(&ctx).await.unwrap();
        assert_eq!(c.get("a1").await.unwrap().unwrap().value["runs"], 2);

        // update of a missing document: exit 3, unless --create
        let mut u = update_args("nobody");
        u.set = vec!["x=1".into()];
        assert_eq!(
            exit_code_of(DocCommand::Update(u), &ctx).await,
            EXIT_NOT_FOUND
        );
        let mut u = update_args("nobody");
        u.set = vec!["x=1".into()];
        u.create = true;
        DocCommand::Update(u).run(&ctx).await.unwrap();
        assert_eq!(
            c.get("nobody").await.unwrap().unwrap().value,
            json!({"x": 1})
        );
        // a bad --set is bad input, not a retry
        let mut u = update_args("nobody");
        u.set = vec!["oops".into()];
        assert_eq!(
            exit_code_of(DocCommand::Update(u), &ctx).await,
            EXIT_BAD_INPUT
        );

        // get of a missing document: exit 3
        assert_eq!(
            exit_code_of(DocCommand::Get(get_args("ghost")), &ctx).await,
            EXIT_NOT_FOUND
        );

        // rm --if-match stale: exit 4; current: deleted
        let cur = c.get("a1").await.unwrap().unwrap();
        let rm = |etag: &str| RmArgs {
            coll: coll("app:assistants"),
            id: "a1".into(),
            if_match: Some(etag.into()),
            attachments: false,
        };
        assert_eq!(
            exit_code_of(DocCommand::Rm(rm(&doc.etag)), &ctx).await,
            EXIT_CONFLICT
        );
        DocCommand::Rm(rm(&cur.etag)).run(&ctx).await.unwrap();
        assert!(c.get("a1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn ttl_sweep_ls_and_schemes() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        let scheme = CollectionArg {
            collection: "app:".into(),
            scheme: Some("messages/{thread}/{id}.json".into()),
        };
        let c = collection(&ctx, &scheme).unwrap();
        c.put("t1/m1", &json!(1)).await.unwrap();
        c.put("t1/m2", &json!(2)).await.unwrap();
        c.put("t2/m1", &json!(3)).await.unwrap();
        assert!(dir.path().join("app/messages/t1/m2.json").exists());
        DocCommand::Ls(LsArgs {
            coll: CollectionArg {
                collection: "app:".into(),
                scheme: Some("messages/{thread}/{id}.json".into()),
            },
            parent: Some("t1".into()),
        })
        .run(&ctx)
        .await
        .unwrap();

        // TTLs the CLI refuses: none is written.
        for bad in ["soon", "0s", "500ms", "1000000000d"] {
            let mut p = put_args("bad", "{}");
            p.ttl = Some(bad.into());
            let e = DocCommand::Put(p).run(&ctx).await.unwrap_err();
            assert_eq!(e.code, EXIT_BAD_INPUT, "{bad}: {}", e.message);
            assert!(e.message.contains(&format!("--ttl {bad}")), "{}", e.message);
        }
        let a = collection(&ctx, &coll("app:assistants")).unwrap();
        assert!(a.get_including_expired("bad").await.unwrap().is_none());
        // A document written in 2020 (by a handle whose clock says so) with a 1s TTL has
        // expired: no sleeping needed.
        let in_2020 = "2020-01-01T00:00:00Z".parse().unwrap();
        a.clone()
            .with_clock(std::sync::Arc::new(strata::cas::ManualClock::new(in_2020)))
            .put_with(
                "short",
                &json!({}),
                &WriteOpts::ttl(std::time::Duration::from_secs(1)),
            )
            .await
            .unwrap();
        assert!(
            a.get("short").await.unwrap().is_none(),
            "expired reads as absent"
        );
        let doc = a.get_including_expired("short").await.unwrap().unwrap();
        assert!(doc.expires_at.is_some());
        assert_eq!(
            exit_code_of(DocCommand::Get(get_args("short")), &ctx).await,
            EXIT_NOT_FOUND
        );
        DocCommand::Sweep(SweepArgs {
            coll: coll("app:assistants"),
            keep_attachments: false,
        })
        .run(&ctx)
        .await
        .unwrap();
        assert!(a.get_including_expired("short").await.unwrap().is_none());

        assert_eq!(
            collection(&ctx, &coll("app:")).unwrap_err().code,
            EXIT_BAD_INPUT,
            "no prefix and no scheme"
        );
    }

    /// `strata doc commit RECORDS ID` of each value in turn.
    async fn commit_versions(ctx: &Ctx, records: &str, id: &str, values: &[Value]) {
        for v in values {
            DocCommand::Commit(CommitArgs {
                record: RecordArg {
                    records: records.into(),
                    id: id.into(),
                },
                value: ValueArg {
                    data: Some(v.to_string()),
                    file: None,
                },
            })
            .run(ctx)
            .await
            .unwrap();
        }
    }

    /// `strata doc revert RECORDS ID VERSION`.
    async fn revert_to(ctx: &Ctx, records: &str, id: &str, version: u64) {
        DocCommand::Revert(RevertArgs {
            record: RecordArg {
                records: records.into(),
                id: id.into(),
            },
            version,
        })
        .run(ctx)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn versioned_records_follow_the_records_and_versions_routes() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = r#"
[connections.disk]
kind = "fs"
root = "data"

[buckets.hot]
connection = "disk"
[buckets.cold]
connection = "disk"

[routes.records]
bucket = "hot"
prefix = "heads"
[routes.versions]
bucket = "cold"
prefix = "history"
"#;
        let path = dir.path().join("strata.toml");
        std::fs::write(&path, cfg).unwrap();
        let routed = Ctx::with(strata::Strata::from_config(&path).unwrap(), true, true);
        commit_versions(&routed, "users", "42", &[json!({"n": 0}), json!({"n": 1})]).await;
        let data = dir.path().join("data");
        assert!(data.join("hot/heads/users/42/head.json").is_file());
        assert!(data.join("cold/history/users/42/v1.json").is_file());
        assert!(!data.join("hot/history").exists() && !data.join("cold/heads").exists());
        revert_to(&routed, "users", "42", 0).await;
        let head = records(&routed, "users")
            .unwrap()
            .get("42")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((head.version, head.value), (2, json!({"n": 0})));

        // Without the routes, the bare form says what to configure.
        let plain = tempfile::tempdir().unwrap();
        let err = records(&ctx(plain.path()), "users").unwrap_err();
        assert!(err.message.contains("[routes.records]"), "{}", err.message);
        assert_eq!(err.code, EXIT_BAD_INPUT);
    }

    #[tokio::test]
    async fn versioned_commit_history_revert() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx(dir.path());
        commit_versions(&ctx, "app:users", "42", &[json!({"n": 0}), json!({"n": 1})]).await;
        DocCommand::History(HistoryArgs {
            record: RecordArg {
                records: "app:users".into(),
                id: "42".into(),
            },
        })
        .run(&ctx)
        .await
        .unwrap();
        revert_to(&ctx, "app:users", "42", 0).await;
        let r = records(&ctx, "app:users").unwrap();
        let head = r.get("42").await.unwrap().unwrap();
        assert_eq!((head.version, head.value), (2, json!({"n": 0})));
        assert!(dir.path().join("app/versions/users/42/v2.json").exists());
        let err = DocCommand::History(HistoryArgs {
            record: RecordArg {
                records: "app:users".into(),
                id: "nobody".into(),
            },
        })
        .run(&ctx)
        .await
        .unwrap_err();
        assert_eq!(err.code, EXIT_NOT_FOUND);
    }
}
