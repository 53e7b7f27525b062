//! Several stores as one `ObjectStore`: failover, mirroring, and a source set's fallback
//! reads. Each is a plain `object_store::ObjectStore`, so it can be handed to DataFusion,
//! the parquet reader or another Strata layer unchanged.
//!
//! | store | reads | writes | listings |
//! |---|---|---|---|
//! | [`FailoverStore`] | primary; the next store only when the primary is *unavailable* (retryable error, timeout, open circuit) — never because an object is missing | primary; unconditional writes fail over like reads, conditional ones never do (a CAS must be decided by one store) | primary, failing over when unavailable |
//! | [`MirrorStore`] | primary first, then the others on a miss *or* a failure | every store (see [`MirrorRequirement`]) | primary, failing over when unavailable |
//! | [`FallbackStore`] | under the source set's [`ReadPolicy`] (sequential, parallel, hedged), in priority order (demoted stores last), on a miss or a failure | primary only | merged across stores, de-duplicated; a store that fails makes the listing end in an error rather than silently lose keys |

use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use storage_core::{Bucket, DynStore, ErrorKind, StorageError, StrataStore};
use tokio::time::Instant;

use crate::engine::{Engine, FallbackOn};
use crate::failure::{AllBucketsFailed, BucketFailure, is_unavailable};
use crate::listing::{collect_listings, merge_by_priority};
use crate::outbox::{Outbox, OwedOp, Ticket};
use crate::read::ReadPolicy;

// The contract's side operations (capabilities, delete-if-match, presign) of the three
// multi-store types; a child module, so it reads `Core` as this module does.
#[path = "stores_contract.rs"]
mod contract;

type OsResult<T> = object_store::Result<T>;

#[derive(Debug, Clone)]
struct Member {
    name: String,
    /// Called directly, not through `Arc`'s `ObjectStore` impl (see `DynStore`).
    store: DynStore,
}

/// One write on a member's store, as the write paths pass it around.
type MemberOp<'a, T> = &'a dyn Fn(DynStore) -> BoxFuture<'static, OsResult<T>>;

impl Member {
    /// Runs `op` on this member's store; an error names the member. `op` is called at once,
    /// so the returned future holds only the call's own future, not `op`.
    fn call<T>(
        &self,
        op: MemberOp<'_, T>,
    ) -> impl Future<Output = Result<T, StorageError>> + use<'_, T> {
        let call = op(self.store.clone());
        async move {
            call.await
                .map_err(|e| StorageError::from_object_store(&self.name, e))
        }
    }
}

/// The failure of a batch delete, as `path`'s own error: the same `object_store` variant,
/// so callers still tell a refusal from an outage, with the batch's message.
fn batch_failure(
    store: &'static str,
    e: &object_store::Error,
    path: &Path,
    batch: usize,
) -> object_store::Error {
    use object_store::Error as E;
    let source = format!("the batch delete of {batch} keys holding `{path}` failed: {e}").into();
    let path = path.to_string();
    match e {
        E::PermissionDenied { .. } => E::PermissionDenied { path, source },
        E::Unauthenticated { .. } => E::Unauthenticated { path, source },
        E::Precondition { .. } => E::Precondition { path, source },
        _ => E::Generic { store, source },
    }
}

/// A put of `payload` at `location` with `opts`, as the write paths run it on each member.
fn put_op<'a>(
    location: &'a Path,
    payload: &'a PutPayload,
    opts: &'a PutOptions,
) -> impl Fn(DynStore) -> BoxFuture<'static, OsResult<PutResult>> + Send + Sync + 'a {
    move |s| {
        let (l, p, o) = (location.clone(), payload.clone(), opts.clone());
        Box::pin(async move { s.put_opts(&l, p, o).await })
    }
}

/// `opts` without its condition: what the copies after the deciding one are written with.
fn overwrite(opts: &PutOptions) -> PutOptions {
    PutOptions {
        mode: PutMode::Overwrite,
        ..opts.clone()
    }
}

/// `kind` and the members' names joined by `sep`, e.g. `failover s3->r2`.
fn label_of(kind: &str, stores: &[(String, Arc<dyn StrataStore>)], sep: &str) -> String {
    let names: Vec<&str> = stores.iter().map(|(n, _)| n.as_str()).collect();
    format!("{kind} {}", names.join(sep))
}

/// Keys per batch delete sent to a member: the smallest `DeleteObjects` limit among the
/// providers Strata knows (R2 takes 700; S3 1000), since a member's limit is not known here.
pub const DELETE_BATCH: usize = 700;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    Primary,
    Failover,
    Mirror(MirrorRequirement),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lists {
    PrimaryWithFailover,
    Merged,
}

/// Which mirrored copies must succeed for a [`MirrorStore`] write to succeed. Failed copies
/// are always logged (`tracing::warn!`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MirrorRequirement {
    /// At least one copy (seed 003 hybrid mode: with the cloud down, the local copy is
    /// enough, and reads fall back to it).
    #[default]
    Any,
    /// The primary's copy.
    Primary,
    /// Every copy.
    All,
}

#[derive(Debug)]
struct Core {
    kind: &'static str,
    label: String,
    members: Vec<Member>,
    /// Reads: the fallback engine over the members (with the source set's health and
    /// policy for a [`FallbackStore`]).
    engine: Engine,
    writes: Writes,
    lists: Lists,
    /// Where a mirror records writes some copies missed ([`MirrorStore::with_outbox`]).
    outbox: std::sync::OnceLock<Outbox>,
    /// Deletes remove the key from every member, writes still go to the primary alone
    /// ([`OffloadStore`]: an offloaded copy must not outlive the object).
    deletes_everywhere: bool,
    /// The `Arc` this core lives in (it is made only by [`Core::new`]): listings and delete
    /// streams outlive the call that starts them, so they hold the core.
    me: Weak<Core>,
}

/// A sequential engine without health over `members`, moving on as `on` says: failover and
/// mirror reads.
fn sequential_engine(
    label: &str,
    members: &[(String, Arc<dyn StrataStore>)],
    on: FallbackOn,
) -> Engine {
    let names = members.iter().map(|(n, _)| n.clone()).collect();
    Engine::new(label, label, names, on, ReadPolicy::Sequential, None)
}

impl Core {
    fn new(
        kind: &'static str,
        label: String,
        members: Vec<(String, Arc<dyn StrataStore>)>,
        engine: Engine,
        writes: Writes,
        lists: Lists,
        deletes_everywhere: bool,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Core {
            kind,
            label,
            members: members
                .into_iter()
                .map(|(name, store)| Member {
                    name,
                    store: DynStore::new(store),
                })
                .collect(),
            engine,
            writes,
            lists,
            outbox: std::sync::OnceLock::new(),
            deletes_everywhere,
            me: me.clone(),
        })
    }

    /// A failover or mirror core: reads go through `stores` in order (moving on as `on`
    /// says), listings ask the primary and fail over.
    fn chained(
        kind: &'static str,
        label: String,
        stores: Vec<(String, Arc<dyn StrataStore>)>,
        on: FallbackOn,
        writes: Writes,
    ) -> Arc<Self> {
        let engine = sequential_engine(&label, &stores, on);
        Core::new(
            kind,
            label,
            stores,
            engine,
            writes,
            Lists::PrimaryWithFailover,
            false,
        )
    }

    fn arc(&self) -> Arc<Core> {
        self.me
            .upgrade()
            .expect("a core is reached only through its Arc")
    }

    /// Tell the outbox the primary answered (it may replay in the background).
    fn primary_answered(&self) {
        if let Some(o) = self.outbox.get() {
            o.primary_answered();
        }
    }

    fn primary(&self) -> &Member {
        &self.members[0]
    }

    /// Run `op` on the members through the fallback engine, under its policy.
    async fn read<'a, T, F, Fut>(&'a self, location: &Path, op: F) -> OsResult<T>
    where
        F: Fn(&'a DynStore) -> Fut,
        Fut: std::future::Future<Output = OsResult<T>> + 'a,
    {
        self.engine
            .read(location.as_ref(), self.engine.policy(), |i| {
                let m = &self.members[i];
                op(&m.store)
                    .map(move |r| r.map_err(|e| StorageError::from_object_store(&m.name, e)))
            })
            .await
            .map(|a| {
                if a.index == 0 {
                    self.primary_answered();
                }
                a.value
            })
            .map_err(StorageError::into_object_store)
    }

    /// Run a write on the primary, failing over to the next members while the error says
    /// "unavailable" and `may_fail_over` holds.
    async fn write_failover<T, F>(&self, may_fail_over: bool, op: F) -> OsResult<T>
    where
        F: Fn(DynStore) -> BoxFuture<'static, OsResult<T>>,
    {
        let mut failures = Vec::new();
        let last = self.members.len() - 1;
        for (i, m) in self.members.iter().enumerate() {
            match m.call(&op).await {
                Ok(v) => return Ok(v),
                Err(e) if may_fail_over && i < last && is_unavailable(&e) => {
                    tracing::warn!(store = %self.label, bucket = %m.name, error = %e, "write failed; failing over to the next store");
                    failures.push(BucketFailure {
                        bucket: m.name.clone(),
                        error: e,
                    });
                }
                Err(e) if failures.is_empty() => return Err(e.into_object_store()),
                Err(e) => {
                    failures.push(BucketFailure {
                        bucket: m.name.clone(),
                        error: e,
                    });
                    break;
                }
            }
        }
        Err(AllBucketsFailed {
            set: self.label.clone(),
            failures,
        }
        .into_error()
        .into_object_store())
    }

    /// Run a write on every member; decide by `req`. `conditional` writes go to the
    /// primary first and, only if it succeeds, to the rest via `rest_op`.
    async fn write_mirror<T, F, G>(
        &self,
        req: MirrorRequirement,
        conditional: bool,
        op: F,
        rest_op: G,
    ) -> OsResult<T>
    where
        F: Fn(DynStore) -> BoxFuture<'static, OsResult<T>>,
        G: Fn(DynStore) -> BoxFuture<'static, OsResult<T>>,
    {
        let mut results: Vec<(String, Result<T, StorageError>)> = Vec::new();
        let rest: &[Member] = if conditional {
            let p = self.primary();
            let r = p.call(&op).await;
            if let Err(e) = r {
                return Err(e.into_object_store());
            }
            results.push((p.name.clone(), r));
            &self.members[1..]
        } else {
            &self.members
        };
        let f: MemberOp<'_, T> = if conditional { &rest_op } else { &op };
        results.extend(self.copy_to(rest, f, "mirror copy failed").await);
        self.decide(req, results)
    }

    /// Runs `op` on each of `members` at once, in their order; each failure is logged as
    /// `failed` (what it means for the write). `op` is called for every member before this
    /// returns, so the future does not hold it.
    fn copy_to<'s, T>(
        &'s self,
        members: &'s [Member],
        op: MemberOp<'_, T>,
        failed: &'s str,
    ) -> impl Future<Output = Vec<(String, Result<T, StorageError>)>> + use<'s, T> {
        let calls = join_all(members.iter().map(|m| {
            let call = m.call(op);
            async move { (m.name.clone(), call.await) }
        }));
        async move {
            let outcomes = calls.await;
            for (name, r) in &outcomes {
                if let Err(e) = r {
                    tracing::warn!(store = %self.label, bucket = %name, error = %e, "{failed}");
                }
            }
            outcomes
        }
    }

    /// The answer of a mirrored write from each copy's result (primary first), by `req`.
    fn decide<T>(
        &self,
        req: MirrorRequirement,
        mut results: Vec<(String, Result<T, StorageError>)>,
    ) -> OsResult<T> {
        let primary_ok = results[0].1.is_ok();
        let all_ok = results.iter().all(|(_, r)| r.is_ok());
        let any_ok = results.iter().any(|(_, r)| r.is_ok());
        let accepted = match req {
            MirrorRequirement::Any => any_ok,
            MirrorRequirement::Primary => primary_ok,
            MirrorRequirement::All => all_ok,
        };
        if accepted {
            // Prefer the primary's answer (its ETag is the one reads will see first).
            let i = results.iter().position(|(_, r)| r.is_ok()).unwrap_or(0);
            let (_, r) = results.swap_remove(i);
            return r.map_err(StorageError::into_object_store);
        }
        // The primary's answer about the object (not found, already exists, ...) is the
        // answer; only outages are reported per copy.
        if let Some((_, Err(e))) = results.first()
            && matches!(
                e.kind(),
                ErrorKind::NotFound
                    | ErrorKind::Conflict
                    | ErrorKind::NotModified
                    | ErrorKind::BadInput
            )
        {
            let (_, r) = results.swap_remove(0);
            return r.map_err(StorageError::into_object_store);
        }
        let failures: Vec<BucketFailure> = results
            .into_iter()
            .filter_map(|(bucket, r)| r.err().map(|error| BucketFailure { bucket, error }))
            .collect();
        Err(AllBucketsFailed {
            set: self.label.clone(),
            failures,
        }
        .into_error()
        .into_object_store())
    }

    /// A mirrored write recorded in `ticket`'s outbox entry. A conditional write is decided
    /// by the primary or, while it is unavailable and any copy will do, by the next member;
    /// the others get the unconditional `rest_op`. The copies written and missed are
    /// recorded before the answer is returned.
    #[allow(clippy::too_many_arguments)]
    async fn write_owed<T, F, G>(
        &self,
        ticket: Ticket,
        req: MirrorRequirement,
        conditional: bool,
        op: F,
        rest_op: G,
        etag_of: fn(&T) -> Option<String>,
    ) -> OsResult<T>
    where
        F: Fn(DynStore) -> BoxFuture<'static, OsResult<T>>,
        G: Fn(DynStore) -> BoxFuture<'static, OsResult<T>>,
    {
        let mut results: Vec<(String, Result<T, StorageError>)> = Vec::new();
        let mut start = 0;
        // Each round either ends or moves on to the next member.
        while conditional && start < self.members.len() {
            let m = &self.members[start];
            let r = m.call(&op).await;
            start += 1;
            match r {
                Ok(v) => {
                    results.push((m.name.clone(), Ok(v)));
                    break;
                }
                Err(e)
                    if req == MirrorRequirement::Any
                        && start < self.members.len()
                        && is_unavailable(&e) =>
                {
                    tracing::warn!(store = %self.label, bucket = %m.name, error = %e, "conditional write decided by the next copy; owed to this one");
                    results.push((m.name.clone(), Err(e)));
                }
                Err(e) => {
                    // Refused (or nobody could decide): nothing was written.
                    ticket.finish(Vec::new(), Vec::new()).await;
                    if start == 1 && !is_unavailable(&e) {
                        self.primary_answered();
                    }
                    if results.is_empty() || !is_unavailable(&e) {
                        return Err(e.into_object_store());
                    }
                    results.push((m.name.clone(), Err(e)));
                    return self.decide(req, results);
                }
            }
        }
        let f: MemberOp<'_, T> = if conditional { &rest_op } else { &op };
        let copies = &self.members[start..];
        results.extend(
            self.copy_to(copies, f, "mirror copy failed; owed in the outbox")
                .await,
        );
        let written = results
            .iter()
            .filter_map(|(n, r)| r.as_ref().ok().map(|v| (n.clone(), etag_of(v))))
            .collect();
        let failed = results
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(n, _)| n.clone())
            .collect();
        ticket.finish(written, failed).await;
        if results[0].1.is_ok() {
            self.primary_answered();
        }
        self.decide(req, results)
    }

    async fn delete_batch(&self, batch: Vec<OsResult<Path>>) -> Vec<OsResult<Path>> {
        let paths: Arc<Vec<Path>> = Arc::new(
            batch
                .iter()
                .filter_map(|r| r.as_ref().ok().cloned())
                .collect(),
        );
        let outcome = if paths.is_empty() {
            Ok(())
        } else {
            let op = |s: DynStore| -> BoxFuture<'static, OsResult<()>> {
                let paths = paths.clone();
                Box::pin(async move {
                    let keys = stream::iter(paths.iter().cloned().map(Ok).collect::<Vec<_>>());
                    let mut results = s.delete_stream(keys.boxed());
                    while let Some(r) = results.next().await {
                        match r {
                            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                })
            };
            match self.writes {
                Writes::Primary if self.deletes_everywhere => {
                    let mut outcome = Ok(());
                    for m in &self.members {
                        if let Err(e) = op(m.store.clone()).await {
                            outcome = Err(e);
                            break;
                        }
                    }
                    outcome
                }
                Writes::Primary => op(self.primary().store.clone()).await,
                Writes::Failover => self.write_failover(true, op).await,
                Writes::Mirror(req) => match self.outbox.get() {
                    Some(ob) => {
                        let keys: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
                        for k in &keys {
                            ob.settle_key(k).await;
                        }
                        match ob.begin(OwedOp::Delete, keys, None).await {
                            Ok(ticket) => {
                                self.write_owed(ticket, req, false, op, op, |_| None).await
                            }
                            Err(e) => Err(e),
                        }
                    }
                    None => self.write_mirror(req, false, op, op).await,
                },
            }
        };
        let failure = outcome.err();
        batch
            .into_iter()
            .map(|r| {
                let path = r?;
                match &failure {
                    None => Ok(path),
                    Some(e) => Err(batch_failure(self.kind, e, &path, paths.len())),
                }
            })
            .collect()
    }
}

impl fmt::Display for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}: {}", m.name, m.store))
            .collect();
        write!(f, "{}({})", self.kind, members.join(", "))
    }
}

impl ObjectStore for Core {
    storage_core::store_fn!(put_opts, |this, location, payload, opts| {
        let op = put_op(location, &payload, &opts);
        match this.writes {
            Writes::Primary => op(this.primary().store.clone()).await,
            Writes::Failover => {
                this.write_failover(opts.mode == PutMode::Overwrite, op)
                    .await
            }
            Writes::Mirror(req) if this.outbox.get().is_some() => {
                let ob = this.outbox.get().expect("checked");
                ob.settle_key(location.as_ref()).await;
                let ticket = ob
                    .begin(OwedOp::Put, vec![location.to_string()], None)
                    .await?;
                // The entry's stamp on every copy (`op` above borrows `opts`: a clone, beside
                // the journal write this path makes anyway).
                let stamped = PutOptions {
                    attributes: ticket.stamped(opts.attributes.clone()),
                    ..opts.clone()
                };
                let op = put_op(location, &payload, &stamped);
                let rest_opts = overwrite(&stamped);
                let rest = put_op(location, &payload, &rest_opts);
                let conditional = stamped.mode != PutMode::Overwrite;
                this.write_owed(ticket, req, conditional, op, rest, |r| r.e_tag.clone())
                    .await
            }
            Writes::Mirror(req) => {
                let conditional = opts.mode != PutMode::Overwrite;
                let rest_opts = overwrite(&opts);
                let rest = put_op(location, &payload, &rest_opts);
                this.write_mirror(req, conditional, op, rest).await
            }
        }
    });

    storage_core::store_fn!(put_multipart_opts, |this, location, opts| {
        let op = |s: DynStore| -> BoxFuture<'static, OsResult<Box<dyn MultipartUpload>>> {
            let (l, o) = (location.clone(), opts.clone());
            Box::pin(async move { s.put_multipart_opts(&l, o).await })
        };
        match this.writes {
            Writes::Primary => op(this.primary().store.clone()).await,
            Writes::Failover => this.write_failover(true, op).await,
            Writes::Mirror(req) => {
                let ticket = match this.outbox.get() {
                    Some(ob) => {
                        ob.settle_key(location.as_ref()).await;
                        Some(
                            ob.begin(OwedOp::Put, vec![location.to_string()], None)
                                .await?,
                        )
                    }
                    None => None,
                };
                let opts = match &ticket {
                    Some(t) => PutMultipartOptions {
                        attributes: t.stamped(opts.attributes.clone()),
                        ..opts.clone()
                    },
                    None => opts.clone(),
                };
                let op = |s: DynStore| -> BoxFuture<'static, OsResult<Box<dyn MultipartUpload>>> {
                    let (l, o) = (location.clone(), opts.clone());
                    Box::pin(async move { s.put_multipart_opts(&l, o).await })
                };
                let started = join_all(this.members.iter().map(|m| {
                    let fut = op(m.store.clone());
                    async move { (m.name.clone(), fut.await) }
                }))
                .await;
                let mut uploads = Vec::new();
                let mut failures = Vec::new();
                for (i, (name, r)) in started.into_iter().enumerate() {
                    match r {
                        Ok(u) => uploads.push((name, u)),
                        Err(e) => {
                            let error = StorageError::from_object_store(&name, e);
                            tracing::warn!(store = %this.label, bucket = %name, error = %error, "mirror upload could not start");
                            let required = req == MirrorRequirement::All
                                || (req == MirrorRequirement::Primary && i == 0);
                            failures.push((
                                required,
                                BucketFailure {
                                    bucket: name,
                                    error,
                                },
                            ));
                        }
                    }
                }
                if uploads.is_empty() || failures.iter().any(|(required, _)| *required) {
                    for (_, mut u) in uploads {
                        let _ = u.abort().await;
                    }
                    if let Some(t) = ticket {
                        t.finish(Vec::new(), Vec::new()).await;
                    }
                    return Err(AllBucketsFailed {
                        set: this.label.clone(),
                        failures: failures.into_iter().map(|(_, f)| f).collect(),
                    }
                    .into_error()
                    .into_object_store());
                }
                let missed = failures.into_iter().map(|(_, f)| f.bucket).collect();
                Ok(Box::new(MirrorUpload {
                    uploads,
                    owed: ticket.map(|t| (t, missed)),
                }))
            }
        }
    });

    storage_core::store_fn!(get_opts, |this, location, options| {
        this.read(location, |s| s.get_opts(location, options.clone()))
            .await
    });

    storage_core::store_fn!(get_ranges, |this, location, ranges| {
        this.read(location, |s| s.get_ranges(location, ranges))
            .await
    });

    // Deletes go to the members in batches of at most [`DELETE_BATCH`] keys (one
    // `DeleteObjects` request each on S3), in input order. Writes to the primary alone
    // pass each key's own result through; failover and mirror stores run every batch
    // through their write policy, and when it fails each key of the batch reports the
    // failure (deleting again is harmless).
    storage_core::store_fn!(delete_stream, |this, locations| {
        // `ready_chunks`, not `chunks`: a caller feeding keys one at a time and waiting for
        // each answer must not wait for a batch to fill.
        let batches = locations.ready_chunks(DELETE_BATCH);
        if this.writes == Writes::Primary && !this.deletes_everywhere {
            let store = this.primary().store.clone();
            return batches
                .flat_map(move |batch| store.delete_stream(stream::iter(batch).boxed()))
                .map(|r| match r {
                    // Already gone is deleted, as for a single delete.
                    Err(object_store::Error::NotFound { path, .. }) => {
                        Ok(Path::parse(&path).unwrap_or_else(|_| Path::from(path)))
                    }
                    r => r,
                })
                .boxed();
        }
        let core = this.arc();
        batches
            .then(move |batch| {
                let core = core.clone();
                async move { core.delete_batch(batch).await }
            })
            .flat_map(stream::iter)
            .boxed()
    });

    storage_core::store_fn!(list, |this, prefix| {
        let prefix = prefix.cloned();
        let core = this.arc();
        match this.lists {
            Lists::PrimaryWithFailover => stream::once(async move {
                let last = core.members.len() - 1;
                for (i, m) in core.members.iter().enumerate() {
                    let mut s = m.store.list(prefix.as_ref());
                    match s.next().await {
                        None => return stream::empty().boxed(),
                        Some(Ok(first)) => return stream::once(async { Ok(first) }).chain(s).boxed(),
                        Some(Err(e)) => {
                            let e = StorageError::from_object_store(&m.name, e);
                            if i < last && is_unavailable(&e) {
                                tracing::warn!(store = %core.label, bucket = %m.name, error = %e, "listing failed; failing over to the next store");
                                continue;
                            }
                            return stream::once(async { Err(e.into_object_store()) }).boxed();
                        }
                    }
                }
                stream::empty().boxed()
            })
            .flatten()
            .boxed(),
            Lists::Merged => stream::once(async move {
                let core = &*core;
                let ranks = core.engine.priority();
                let (found, failures) = collect_listings(ranks.iter().map(|&i| {
                    let m = &core.members[i];
                    let s = m.store.list(prefix.as_ref());
                    let listing = async move {
                        let start = Instant::now();
                        let r: Result<Vec<ObjectMeta>, StorageError> = s
                            .try_collect()
                            .await
                            .map_err(|e| StorageError::from_object_store(&m.name, e));
                        core.engine.observe(i, &r, start.elapsed());
                        r
                    };
                    (m.name.as_str(), listing)
                }))
                .await;
                let all = merge_by_priority(found, |o: &ObjectMeta| o.location.as_ref());
                let tail = (!failures.is_empty()).then(|| {
                    Err(partial_listing_error(&core.label, failures))
                });
                stream::iter(all.into_iter().map(|(_, o)| Ok(o)).chain(tail))
            })
            .flatten()
            .boxed(),
        }
    });

    storage_core::store_fn!(list_with_delimiter, |this, prefix| {
        match this.lists {
            Lists::PrimaryWithFailover => {
                let mut last_err = None;
                for (i, m) in this.members.iter().enumerate() {
                    match m.store.list_with_delimiter(prefix).await {
                        Ok(r) => {
                            if i == 0 {
                                // A health check: the outbox may replay now.
                                this.primary_answered();
                            }
                            return Ok(r);
                        }
                        Err(e) => {
                            let e = StorageError::from_object_store(&m.name, e);
                            if !is_unavailable(&e) {
                                return Err(e.into_object_store());
                            }
                            last_err = Some(e);
                        }
                    }
                }
                Err(last_err
                    .map(StorageError::into_object_store)
                    .unwrap_or_else(|| unreachable_empty(this.kind)))
            }
            Lists::Merged => {
                let (listed, failures) =
                    collect_listings(this.engine.priority().into_iter().map(|i| {
                        let m = &this.members[i];
                        let listing = m
                            .store
                            .list_with_delimiter(prefix)
                            .map(|r| r.map_err(|e| StorageError::from_object_store(&m.name, e)));
                        (m.name.as_str(), listing)
                    }))
                    .await;
                if !failures.is_empty() {
                    return Err(partial_listing_error(&this.label, failures));
                }
                let mut prefixes = Vec::new();
                let mut objects = Vec::with_capacity(listed.len());
                for (priority, l) in listed {
                    objects.push((priority, l.objects));
                    prefixes.extend(l.common_prefixes);
                }
                let objects = merge_by_priority(objects, |o: &ObjectMeta| o.location.as_ref());
                prefixes.sort_unstable();
                prefixes.dedup();
                Ok(ListResult {
                    common_prefixes: prefixes,
                    objects: objects.into_iter().map(|(_, o)| o).collect(),
                    extensions: Default::default(),
                })
            }
        }
    });

    storage_core::store_fn!(copy_opts, |this, from, to, options| {
        let op = |s: DynStore| -> BoxFuture<'static, OsResult<()>> {
            let (f, t, o) = (from.clone(), to.clone(), options.clone());
            Box::pin(async move { s.copy_opts(&f, &t, o).await })
        };
        match this.writes {
            Writes::Primary => op(this.primary().store.clone()).await,
            Writes::Failover => {
                this.write_failover(options.mode == object_store::CopyMode::Overwrite, op)
                    .await
            }
            Writes::Mirror(req) if this.outbox.get().is_some() => {
                let ob = this.outbox.get().expect("checked");
                ob.settle_key(to.as_ref()).await;
                let ticket = ob
                    .begin(OwedOp::Copy, vec![to.to_string()], Some(from.to_string()))
                    .await?;
                let conditional = options.mode != object_store::CopyMode::Overwrite;
                let rest = |s: DynStore| -> BoxFuture<'static, OsResult<()>> {
                    let (f, t) = (from.clone(), to.clone());
                    Box::pin(async move { s.copy(&f, &t).await })
                };
                this.write_owed(ticket, req, conditional, op, rest, |_| None)
                    .await
            }
            Writes::Mirror(req) => {
                let conditional = options.mode != object_store::CopyMode::Overwrite;
                let rest = |s: DynStore| -> BoxFuture<'static, OsResult<()>> {
                    let (f, t) = (from.clone(), to.clone());
                    Box::pin(async move { s.copy(&f, &t).await })
                };
                this.write_mirror(req, conditional, op, rest).await
            }
        }
    });
}

fn partial_listing_error(label: &str, failures: Vec<BucketFailure>) -> object_store::Error {
    let all = AllBucketsFailed {
        set: label.to_string(),
        failures,
    };
    StorageError::Unavailable {
        backend: label.to_string(),
        source: format!(
            "listing is partial, the keys above may be incomplete: {}",
            all.failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
        .into(),
    }
    .into_object_store()
}

fn unreachable_empty(kind: &str) -> object_store::Error {
    StorageError::invalid_config(kind, "has no stores").into_object_store()
}

/// A multipart upload fanned out to several stores: each part goes to every upload.
struct MirrorUpload {
    uploads: Vec<(String, Box<dyn MultipartUpload>)>,
    /// With an outbox: the write's entry and the members whose upload could not start.
    owed: Option<(Ticket, Vec<String>)>,
}

impl fmt::Debug for MirrorUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MirrorUpload")
            .field("uploads", &self.uploads)
            .field("owed", &self.owed.as_ref().map(|(t, m)| (t.stamp(), m)))
            .finish()
    }
}

#[async_trait]
impl MultipartUpload for MirrorUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let parts: Vec<UploadPart> = self
            .uploads
            .iter_mut()
            .map(|(_, u)| u.put_part(data.clone()))
            .collect();
        Box::pin(async move {
            for r in join_all(parts).await {
                r?;
            }
            Ok(())
        })
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        let mut first = None;
        let mut written = Vec::new();
        for (name, u) in &mut self.uploads {
            // An error leaves the write's intent in the outbox: the replay finds which
            // members completed.
            let r = u.complete().await?;
            written.push((name.clone(), r.e_tag.clone()));
            first.get_or_insert(r);
        }
        if let Some((ticket, missed)) = self.owed.take() {
            ticket.finish(written, missed).await;
        }
        first.ok_or_else(|| unreachable_empty("MirrorUpload"))
    }

    async fn abort(&mut self) -> OsResult<()> {
        if let Some((ticket, _)) = self.owed.take() {
            ticket.finish(Vec::new(), Vec::new()).await;
        }
        let mut result = Ok(());
        for (_, u) in &mut self.uploads {
            if let Err(e) = u.abort().await {
                result = Err(e);
            }
        }
        result
    }
}

macro_rules! multi_store {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            core: Arc<Core>,
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.core, f)
            }
        }

        #[deny(clippy::missing_trait_methods)]
        impl ObjectStore for $name {
            storage_core::forward_object_store!(@methods *core:
                put_opts, put_multipart_opts, get_opts, get_ranges, delete_stream, list,
                list_with_offset, list_with_delimiter, copy_opts, rename_opts);
        }

        #[deny(clippy::missing_trait_methods)]
        impl StrataStore for $name {
            storage_core::forward_object_store!(@methods *core:
                capabilities, key_prefix, delete_if_match, presign);
        }
    };
}

multi_store!(
    /// A store with fallback providers (seed 002 `createWithFallback`): everything goes to
    /// the primary; when the primary is *unavailable* (retryable error, timeout, open
    /// circuit), reads, listings and unconditional writes go to the next store. A missing
    /// object is an answer, not an outage: it never triggers failover. Conditional writes
    /// never fail over, because a compare-and-swap must be decided by one store.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use object_store::{ObjectStore, ObjectStoreExt, path::Path};
    /// use storage_core::{MemoryStore, StrataStore};
    /// use storage_router::FailoverStore;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> object_store::Result<()> {
    /// let primary: Arc<dyn StrataStore> = Arc::new(MemoryStore::new());
    /// let fallback: Arc<dyn StrataStore> = Arc::new(MemoryStore::new());
    /// let store = FailoverStore::new(("s3", primary), ("r2", fallback.clone()));
    /// store.put(&Path::from("a"), "1".into()).await?;
    /// // Missing in the primary is "not found", even though nothing is wrong with it.
    /// fallback.put(&Path::from("only-in-fallback"), "x".into()).await?;
    /// assert!(store.get(&Path::from("only-in-fallback")).await.is_err());
    /// # Ok(()) }
    /// ```
    FailoverStore
);

multi_store!(
    /// Writes go to every store (seed 003 hybrid mode: R2 mirrored to a local folder);
    /// reads prefer the primary and fall back to the others on a miss or a failure;
    /// listings come from the primary, or the next store when it is unavailable.
    ///
    /// A conditional write (create-if-absent, if-match) is decided by the primary alone and
    /// copied to the others only when it succeeds. Which copies must succeed is a
    /// [`MirrorRequirement`] (default: any). Multipart uploads go to every store that
    /// accepted the upload, and every part must reach all of them. For a per-copy report
    /// use [`SourceSet::mirror_put`](crate::SourceSet::mirror_put). Without an outbox, objects
    /// written while the primary was down exist only in the other stores: reads find them, but
    /// the primary's listings do not until you bring it up to date with
    /// [`sync`](crate::sync()) from a mirror. With one ([`MirrorStore::with_outbox`]), every
    /// write a copy missed is recorded and replayed to it (see [`Outbox`](crate::Outbox)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use object_store::{ObjectStore, ObjectStoreExt, path::Path};
    /// use storage_core::{MemoryStore, StrataStore};
    /// use storage_router::MirrorStore;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> object_store::Result<()> {
    /// let cloud: Arc<dyn StrataStore> = Arc::new(MemoryStore::new());
    /// let local: Arc<dyn StrataStore> = Arc::new(MemoryStore::new());
    /// let hybrid = MirrorStore::new(vec![("r2".into(), cloud.clone()), ("local".into(), local.clone())]);
    /// hybrid.put(&Path::from("a"), "1".into()).await?;
    /// assert!(cloud.head(&Path::from("a")).await.is_ok() && local.head(&Path::from("a")).await.is_ok());
    /// # Ok(()) }
    /// ```
    MirrorStore
);

multi_store!(
    /// A route whose old objects were moved to a separate offload target (seed 004
    /// `s3Offload`), as one store: reads look in the route's own folder first and in the
    /// target only when the object is not there (an outage of either is the answer, never
    /// "not found"); listings merge both; writes and copies go to the route's folder; a
    /// delete removes the key from both, so an offloaded copy never outlives its object.
    /// [`Router::route`](crate::Router::route) builds one for a route with an offload
    /// target in another bucket or folder.
    OffloadStore
);

multi_store!(
    /// A source set as one store: reads follow the set's [`ReadPolicy`](crate::ReadPolicy)
    /// over the stores in priority order (recently failing ones last), falling back on a
    /// miss or a failure, exactly like [`SourceSet::get`](crate::SourceSet::get); listings are merged across all stores
    /// and de-duplicated (first by priority wins), ending in an error if a store could not be
    /// listed; writes, copies and deletes go to the primary. Made by [`SourceSet::store`](crate::SourceSet::store).
    FallbackStore
);

impl FailoverStore {
    /// `primary`, falling over to `fallback`. Each is `(name, store)`; names appear in errors.
    pub fn new(
        primary: (impl Into<String>, Arc<dyn StrataStore>),
        fallback: (impl Into<String>, Arc<dyn StrataStore>),
    ) -> Self {
        Self::chain(vec![
            (primary.0.into(), primary.1),
            (fallback.0.into(), fallback.1),
        ])
    }

    /// A primary and several fallbacks, tried in order.
    ///
    /// # Panics
    /// If `stores` is empty.
    pub fn chain(stores: Vec<(String, Arc<dyn StrataStore>)>) -> Self {
        FailoverStore {
            core: Core::chained(
                "FailoverStore",
                label_of("failover", &stores, "->"),
                stores,
                FallbackOn::Unavailable,
                Writes::Failover,
            ),
        }
    }
}

/// A [`Bucket`] that behaves like `primary` but fails over to `fallback` when `primary` is
/// unavailable (seed 002 `createWithFallback`): same name, provider, capabilities and
/// presigner as the primary; its store is a [`FailoverStore`]. Conditional writes and
/// deletes are decided by the primary alone.
///
/// ```
/// use storage_core::Bucket;
/// use storage_router::failover_bucket;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// let s3 = Bucket::memory("media");
/// let r2 = Bucket::memory("media-r2");
/// let media = failover_bucket(&s3, &r2);
/// media.put("a.png", "png").await?;
/// assert!(s3.exists("a.png").await?);
/// # Ok(()) }
/// ```
pub fn failover_bucket(primary: &Bucket, fallback: &Bucket) -> Bucket {
    let store = FailoverStore::new(
        (primary.name(), primary.store().clone()),
        (fallback.name(), fallback.store().clone()),
    );
    primary.to_builder().store(Arc::new(store)).build()
}

impl MirrorStore {
    /// Mirror writes to `stores` (primary first), requiring any one copy to succeed.
    ///
    /// # Panics
    /// If `stores` is empty.
    pub fn new(stores: Vec<(String, Arc<dyn StrataStore>)>) -> Self {
        Self::with_requirement(stores, MirrorRequirement::Any)
    }

    /// Mirror writes, with `requirement` deciding which copies must succeed.
    ///
    /// # Panics
    /// If `stores` is empty.
    pub fn with_requirement(
        stores: Vec<(String, Arc<dyn StrataStore>)>,
        requirement: MirrorRequirement,
    ) -> Self {
        MirrorStore {
            core: Core::chained(
                "MirrorStore",
                label_of("mirror", &stores, "+"),
                stores,
                FallbackOn::MissOrFailure,
                Writes::Mirror(requirement),
            ),
        }
    }
}

impl MirrorStore {
    /// Mirror writes, recording in `outbox` every write some copies missed, and replaying
    /// it to them when they answer again (see [`Outbox`](crate::Outbox): what is owed, when
    /// it is replayed, the conflict rule). With [`MirrorRequirement::Any`], a conditional
    /// write whose primary is unavailable is decided by the next member.
    ///
    /// # Panics
    /// If `stores` is empty.
    pub fn with_outbox(
        stores: Vec<(String, Arc<dyn StrataStore>)>,
        requirement: MirrorRequirement,
        outbox: Outbox,
    ) -> Self {
        let store = Self::with_requirement(stores.clone(), requirement);
        outbox.attach(
            stores
                .into_iter()
                .map(|(name, store)| (name, store as Arc<dyn ObjectStore>))
                .collect(),
        );
        let _ = store.core.outbox.set(outbox);
        store
    }

    /// The outbox, if the mirror has one.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.core.outbox.get()
    }
}

impl OffloadStore {
    /// `here` (the route's folder) first, then `target` (its offload folder); each is
    /// `(name, store)`, names appear in errors.
    pub fn new(
        label: impl Into<String>,
        here: (String, Arc<dyn StrataStore>),
        target: (String, Arc<dyn StrataStore>),
    ) -> Self {
        let label = label.into();
        let members = vec![here, target];
        // Only a miss moves on: an outage of the route's own folder is the answer.
        let engine = sequential_engine(&label, &members, FallbackOn::Miss);
        let core = Core::new(
            "OffloadStore",
            label,
            members,
            engine,
            Writes::Primary,
            Lists::Merged,
            true,
        );
        OffloadStore { core }
    }
}

impl FallbackStore {
    /// Over `members` (configured order), reading through `engine` (a source set's: its
    /// policy, health and budget).
    pub(crate) fn over(
        label: String,
        members: Vec<(String, Arc<dyn StrataStore>)>,
        engine: Engine,
    ) -> Self {
        FallbackStore {
            core: Core::new(
                "FallbackStore",
                label,
                members,
                engine,
                Writes::Primary,
                Lists::Merged,
                false,
            ),
        }
    }
}
