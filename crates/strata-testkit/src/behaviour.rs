//! The behaviour suite: one set of checks, run unchanged against every backend and stack.
//!
//! Each check takes a [`Bucket`] (already scoped to a fresh prefix) and either passes,
//! panics with the check's name and what differed, or is skipped with a reason taken from
//! the bucket's [`Capabilities`](storage_core::Capabilities) or the server [`Profile`]. A
//! skip is reported, never counted as a pass.
//!
//! Two ways to run it:
//!
//! - [`behaviour_tests!`](crate::behaviour_tests): one test (trial) per check, each on a fresh
//!   bucket from the caller's setup, asserting the exact set of checks that stack skips.
//!   `cargo test` then names every check of every stack and reports every failure. This is
//!   how backends and stacks are tested.
//! - [`run`] / [`run_all`]: every check in order on one bucket, for callers that want a
//!   [`Report`]. A failing check does not stop the others; [`run`] fails at the end
//!   listing every failure.
//!
//! The checks are listed once (`__behaviour_with_checks!` below): adding a check there adds
//! it to [`CHECKS`], to [`run`] and a trial to every `behaviour_tests!` caller.
//!
//! ```no_run
//! use storage_core::Bucket;
//! use strata_testkit::behaviour::Profile;
//!
//! strata_testkit::behaviour_tests!(
//!     memory,
//!     setup = |_hint| Bucket::memory("memory"),
//!     profile = Profile::embedded("memory"),
//!     // A memory store has no endpoint to sign URLs for.
//!     skips = [presigned_get_and_put, presigned_url_tampered_or_expired],
//! );
//! # fn main() {}
//! ```

use std::any::Any;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use storage_core::{Bucket, PresignMethod, PutOpts, StorageError};

/// What the server under test can prove, beyond the bucket's capabilities.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Name for reports.
    pub name: String,
    /// The server rejects bad signatures (s3s-fs does; moto does not).
    pub verifies_signatures: bool,
    /// Conditional writes are atomic under concurrency.
    pub atomic_cas: bool,
    /// Run the heavy checks (1100-key listing, 1500-key delete, 64 MiB stream).
    pub heavy: bool,
    /// The stack compresses what it stores: listings, and so `stats`, report the stored
    /// (compressed) sizes, as the compression layer documents (`get` and `head` report the
    /// uncompressed ones).
    pub compressed: bool,
}

impl Profile {
    /// Memory and local folder.
    pub fn embedded(name: &str) -> Self {
        Profile {
            name: name.into(),
            verifies_signatures: false,
            atomic_cas: true,
            heavy: true,
            compressed: false,
        }
    }

    /// moto: full S3 semantics, no signature checks.
    pub fn moto() -> Self {
        Profile {
            name: "moto".into(),
            verifies_signatures: false,
            atomic_cas: true,
            heavy: true,
            compressed: false,
        }
    }

    /// s3s-fs: checks signatures; conditional writes not atomic.
    pub fn s3s_fs() -> Self {
        Profile {
            name: "s3s-fs".into(),
            verifies_signatures: true,
            atomic_cas: false,
            heavy: true,
            compressed: false,
        }
    }

    /// The same profile under another name (a stack over that server).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// The same profile for a stack that compresses what it stores.
    pub fn compressed(mut self) -> Self {
        self.compressed = true;
        self
    }
}

/// What ran.
#[derive(Debug, Default)]
pub struct Report {
    /// Checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks skipped, with why.
    pub skipped: Vec<(&'static str, String)>,
    /// Checks that failed, with the panic message ([`run_all`] only: [`run`] panics instead).
    pub failed: Vec<(&'static str, String)>,
}

impl Report {
    /// Names of the skipped checks, in suite order.
    pub fn skipped_names(&self) -> Vec<&'static str> {
        self.skipped.iter().map(|(name, _)| *name).collect()
    }

    /// Panic unless no check failed and exactly `expected` were skipped (in suite order).
    pub fn assert_exact_skips(&self, expected: &[&str]) {
        assert!(self.failed.is_empty(), "checks failed: {:?}", self.failed);
        assert_eq!(
            self.skipped_names(),
            expected,
            "skipped checks differ from the expected set: {:?}",
            self.skipped
        );
    }
}

/// How a check ended when it did not fail (a failure is a panic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// The check could not run here, and why.
    Skipped(String),
}

/// A check as a function pointer.
pub type CheckFn = for<'a> fn(&'a Bucket, &'a Profile) -> BoxFuture<'a, Outcome>;

/// One check of the suite.
#[derive(Clone, Copy)]
pub struct Check {
    /// Its name: also the name of its trial in `behaviour_tests!`.
    pub name: &'static str,
    /// Run it.
    pub run: CheckFn,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The one list of checks, in the order [`run`] runs them. Expands the `__behaviour_expand!`
/// arm named by its arguments with the list appended: the table in this module, and the
/// trials of each `behaviour_tests!` caller.
#[doc(hidden)]
#[macro_export]
macro_rules! __behaviour_with_checks {
    ($($args:tt)*) => {
        $crate::__behaviour_expand! {
            [$($args)*]
            put_get_round_trip,
            metadata_round_trip,
            tags_and_storage_class_accepted,
            exists_and_delete,
            ranges,
            listing_prefix_delimiter_offset,
            listing_past_1000_keys,
            delete_many_1500_keys,
            streamed_64_mib,
            conditional_create_and_update,
            conditional_writes_race_one_winner,
            conditional_get,
            conditional_delete,
            copy_and_move,
            presigned_get_and_put,
            presigned_url_tampered_or_expired,
            stats_and_health,
            invalid_keys_rejected,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __behaviour_expand {
    ([table] $($name:ident),* $(,)?) => {
        /// Each check boxed as a [`CheckFn`]; `behaviour_tests!` names them to check, at
        /// compile time, that an expected skip is a check.
        #[doc(hidden)]
        pub mod check_fns {
            use super::{Bucket, BoxFuture, Outcome, Profile};
            $(
                #[allow(missing_docs)]
                pub fn $name<'a>(b: &'a Bucket, p: &'a Profile) -> BoxFuture<'a, Outcome> {
                    Box::pin(super::$name(b, p))
                }
            )*
        }

        /// Every check, in the order [`run`] runs them.
        pub const CHECKS: &[Check] = &[$(Check { name: stringify!($name), run: check_fns::$name }),*];
    };
    ([trials $module:ident, $setup:expr, $profile:expr, [$($skip:ident),*]] $($name:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            // An expected skip that is not a check does not compile.
            #[allow(unused_imports)]
            use $crate::behaviour::check_fns::{$($skip as _),*};

            const EXPECTED_SKIPS: &[&str] = &[$(stringify!($skip)),*];

            $(
                #[test]
                fn $name() {
                    $crate::behaviour::trial(
                        stringify!($module),
                        stringify!($name),
                        $setup,
                        $profile,
                        EXPECTED_SKIPS,
                    );
                }
            )*
        }
    };
}

/// One test (trial) per check of the behaviour suite, in a module named `$module`:
///
/// ```text
/// behaviour_tests!(
///     NAME,                          // module of the trials: NAME::put_get_round_trip, ...
///     setup = |hint: &str| ...,      // a fresh bucket per trial: Bucket, Subject, or Option of either
///     profile = Profile::...,        // what the server proves
///     skips = [check, ...],          // exactly the checks this stack must skip
/// );
/// ```
///
/// Each trial calls `setup` with a hint naming the stack and the check (for a fresh
/// prefix, e.g. [`crate::s3_bucket`]), asserts the bucket is empty, runs its check and
/// asserts the outcome: a check in `skips` must be skipped (its reason is printed), any
/// other must pass. A setup returning `None` (S3 servers knowingly skipped with
/// `STRATA_SKIP_S3=1`) skips the trial and says so. The module body sees the caller's
/// items (`use super::*`). Trials build their own tokio runtime, so they are plain
/// `#[test]`s.
#[macro_export]
macro_rules! behaviour_tests {
    (
        $module:ident,
        setup = $setup:expr,
        profile = $profile:expr,
        skips = [$($skip:ident),* $(,)?] $(,)?
    ) => {
        $crate::__behaviour_with_checks! { trials $module, $setup, $profile, [$($skip),*] }
    };
}

crate::__behaviour_with_checks! { table }

/// A bucket for one trial, with whatever must live as long as it (a temporary folder).
pub struct Subject {
    bucket: Bucket,
    _keep: Vec<Box<dyn Any + Send>>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl Subject {
    /// A subject over `bucket`.
    pub fn new(bucket: Bucket) -> Self {
        Subject {
            bucket,
            _keep: Vec::new(),
        }
    }

    /// Keep `guard` (e.g. a `tempfile::TempDir`) alive until the trial ends.
    pub fn keeping(mut self, guard: impl Any + Send) -> Self {
        self._keep.push(Box::new(guard));
        self
    }

    /// The bucket under test.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }
}

/// What a `behaviour_tests!` setup may return; `None` skips the trial (its setup says why).
pub trait IntoSubject {
    /// The subject, if there is one.
    fn into_subject(self) -> Option<Subject>;
}

impl IntoSubject for Subject {
    fn into_subject(self) -> Option<Subject> {
        Some(self)
    }
}

impl IntoSubject for Bucket {
    fn into_subject(self) -> Option<Subject> {
        Some(Subject::new(self))
    }
}

impl<T: IntoSubject> IntoSubject for Option<T> {
    fn into_subject(self) -> Option<Subject> {
        self.and_then(IntoSubject::into_subject)
    }
}

/// One trial of `behaviour_tests!`: `check` on a fresh bucket from `setup`, asserting it
/// passes, or is skipped when it is one of `expected_skips`.
pub fn trial<S: IntoSubject>(
    stack: &str,
    check: &'static str,
    setup: impl FnOnce(&str) -> S,
    profile: Profile,
    expected_skips: &[&str],
) {
    let Some(found) = CHECKS.iter().find(|c| c.name == check) else {
        panic!("`{check}` is not a behaviour check; checks: {CHECKS:?}");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let hint = format!("{stack}-{check}");
        let Some(subject) = setup(&hint).into_subject() else {
            eprintln!("SKIPPED [{stack}] {check}: the setup has no bucket (see above)");
            return;
        };
        let bucket = subject.bucket();
        let existing: Vec<_> = bucket
            .list("")
            .take(1)
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("[{stack}] {check}: listing the fresh bucket: {e}"));
        assert!(
            existing.is_empty(),
            "[{stack}] {check}: the setup's bucket is not fresh: {:?} is already there",
            existing[0].key
        );
        let outcome = (found.run)(bucket, &profile).await;
        match (outcome, expected_skips.contains(&check)) {
            (Outcome::Passed, false) => {}
            (Outcome::Skipped(why), true) => {
                eprintln!("SKIPPED [{stack}] {check} (expected): {why}");
            }
            (Outcome::Passed, true) => panic!(
                "[{stack}] {check} passed, but this stack is expected to skip it: remove it from the skips"
            ),
            (Outcome::Skipped(why), false) => {
                panic!("[{stack}] {check} was skipped, but this stack must pass it: {why}")
            }
        }
    });
}

/// Run every check against `bucket`, in order, each in its own task so that a failing check
/// does not stop the others; panics at the end, listing every failure.
pub async fn run(bucket: &Bucket, profile: &Profile) -> Report {
    let report = run_all(bucket, profile).await;
    if !report.failed.is_empty() {
        let list: Vec<String> = report
            .failed
            .iter()
            .map(|(name, why)| format!("  {name}: {why}"))
            .collect();
        panic!(
            "behaviour suite [{}]: {} of {} checks failed:\n{}",
            profile.name,
            report.failed.len(),
            CHECKS.len(),
            list.join("\n")
        );
    }
    report
}

/// Run every check against `bucket`, in order, each in its own task; failures are in
/// [`Report::failed`], never a panic. Needs a tokio runtime.
pub async fn run_all(bucket: &Bucket, profile: &Profile) -> Report {
    let mut report = Report::default();
    for check in CHECKS {
        let (b, p, run) = (bucket.clone(), profile.clone(), check.run);
        match tokio::spawn(async move { run(&b, &p).await }).await {
            Ok(Outcome::Passed) => report.passed.push(check.name),
            Ok(Outcome::Skipped(why)) => {
                eprintln!("SKIPPED [{}] {}: {}", profile.name, check.name, why);
                report.skipped.push((check.name, why));
            }
            Err(e) => {
                let why = if e.is_panic() {
                    panic_message(e.into_panic())
                } else {
                    e.to_string()
                };
                eprintln!("FAILED [{}] {}: {}", profile.name, check.name, why);
                report.failed.push((check.name, why));
            }
        }
    }
    eprintln!(
        "behaviour suite [{}]: {} passed, {} skipped, {} failed",
        profile.name,
        report.passed.len(),
        report.skipped.len(),
        report.failed.len()
    );
    report
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "(a panic without a message)".into(),
        },
    }
}

fn pattern(offset: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| {
            let x = offset + i as u64;
            (x.wrapping_mul(31) ^ (x >> 7)) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn put_get_round_trip(b: &Bucket, _: &Profile) -> Outcome {
    let body = pattern(0, 10_000);
    let w = b.put("rt/a.bin", body.clone()).await.expect("put");
    assert_eq!(w.size, 10_000);
    let o = b.get("rt/a.bin").await.expect("get");
    assert_eq!(o.bytes, body, "get returns what put wrote");
    assert_eq!(o.info.size, 10_000);
    assert!(o.info.etag.is_some(), "reads return the ETag they saw");
    let h = b.head("rt/a.bin").await.expect("head");
    assert_eq!(h.etag, o.info.etag, "head and get agree on the ETag");
    assert!(
        storage_core::etag_eq(w.etag.as_deref().unwrap(), h.etag.as_deref().unwrap()),
        "put returns the stored ETag"
    );
    // Overwrite changes the ETag.
    let w2 = b.put("rt/a.bin", "other").await.expect("overwrite");
    assert_ne!(w2.etag, w.etag);
    assert_eq!(b.get("rt/a.bin").await.unwrap().bytes, "other");
    // Empty objects.
    b.put("rt/empty", Bytes::new()).await.expect("empty put");
    assert_eq!(b.get("rt/empty").await.unwrap().bytes.len(), 0);
    let missing = b.get("rt/missing").await.unwrap_err();
    assert!(
        missing.is_not_found(),
        "missing object → NotFound, got {missing}"
    );
    Outcome::Passed
}

async fn metadata_round_trip(b: &Bucket, _: &Profile) -> Outcome {
    if !b.capabilities().metadata {
        return Outcome::Skipped(format!("{} does not store metadata", b.provider()));
    }
    let opts = PutOpts {
        content_type: Some("application/json".into()),
        cache_control: Some("max-age=60".into()),
        content_disposition: Some("attachment; filename=\"r.json\"".into()),
        ..Default::default()
    }
    .with_metadata("owner", "ana")
    .with_metadata("purpose", "suite");
    b.put_with("meta/r.json", "{}", opts)
        .await
        .expect("put with metadata");
    let h = b.head("meta/r.json").await.expect("head");
    assert_eq!(h.content_type(), Some("application/json"), "{h:?}");
    assert_eq!(
        h.headers.get("cache-control").map(String::as_str),
        Some("max-age=60")
    );
    assert_eq!(
        h.headers.get("content-disposition").map(String::as_str),
        Some("attachment; filename=\"r.json\"")
    );
    assert_eq!(
        h.metadata.get("owner").map(String::as_str),
        Some("ana"),
        "{h:?}"
    );
    assert_eq!(h.metadata.get("purpose").map(String::as_str), Some("suite"));
    let g = b.get("meta/r.json").await.unwrap();
    assert_eq!(
        g.info.metadata, h.metadata,
        "get and head report the same metadata"
    );
    // Too much metadata is refused before any request.
    let big = "x".repeat(2100);
    let e = b
        .put_with("meta/big", "x", PutOpts::default().with_metadata("k", big))
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::InvalidInput { .. }), "{e}");
    assert!(
        !b.exists("meta/big").await.unwrap(),
        "a refused write wrote nothing"
    );
    Outcome::Passed
}

async fn tags_and_storage_class_accepted(b: &Bucket, _: &Profile) -> Outcome {
    let mut opts = PutOpts::default()
        .with_tag("team", "data")
        .with_tag("tier", "hot");
    if b.capabilities().storage_class {
        opts.storage_class = Some("STANDARD".into());
    }
    b.put_with("tags/a", "tagged", opts)
        .await
        .expect("put with tags (and storage class)");
    assert_eq!(b.get("tags/a").await.unwrap().bytes, "tagged");
    let e = b
        .put_with("tags/b", "x", PutOpts::default().with_tag("", "empty key"))
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::InvalidInput { .. }), "{e}");
    Outcome::Passed
}

async fn exists_and_delete(b: &Bucket, _: &Profile) -> Outcome {
    b.put("ex/a", "1").await.unwrap();
    assert!(b.exists("ex/a").await.unwrap());
    assert!(!b.exists("ex/b").await.unwrap());
    b.delete("ex/a").await.unwrap();
    assert!(!b.exists("ex/a").await.unwrap());
    b.delete("ex/a")
        .await
        .expect("deleting a missing object succeeds");
    Outcome::Passed
}

async fn ranges(b: &Bucket, _: &Profile) -> Outcome {
    let body = pattern(0, 100_000);
    b.put("rg/x", body.clone()).await.unwrap();
    let r = b.get_range("rg/x", 1000..2500).await.unwrap();
    assert_eq!(r.bytes, body.slice(1000..2500));
    let tail = b.get_range("rg/x", 99_990..200_000).await.unwrap();
    assert_eq!(
        tail.bytes,
        body.slice(99_990..),
        "a range past the end returns the rest"
    );
    let e = b.get_range("rg/x", 5..5).await.unwrap_err();
    assert!(matches!(e, StorageError::InvalidInput { .. }), "{e}");
    Outcome::Passed
}

async fn listing_prefix_delimiter_offset(b: &Bucket, _: &Profile) -> Outcome {
    for k in ["ls/a/1", "ls/a/2", "ls/b/1", "ls/c", "lsx/other"] {
        b.put(k, k.to_string()).await.unwrap();
    }
    let mut all = crate::keys(b.list("ls")).await;
    all.sort();
    assert_eq!(
        all,
        ["ls/a/1", "ls/a/2", "ls/b/1", "ls/c"],
        "prefix is per segment"
    );
    let dir = b.list_dir("ls").await.unwrap();
    assert_eq!(dir.prefixes, ["ls/a/", "ls/b/"]);
    assert_eq!(
        dir.objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["ls/c"]
    );
    let mut after = crate::keys(b.list_after("ls", Some("ls/a/2"))).await;
    after.sort();
    assert_eq!(after, ["ls/b/1", "ls/c"], "offset is exclusive");
    Outcome::Passed
}

async fn put_many(b: &Bucket, prefix: &str, n: usize) {
    stream::iter(0..n)
        .map(|i| {
            let b = b.clone();
            let key = format!("{prefix}/k{i:05}");
            async move { b.put(&key, Bytes::from_static(b"x")).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("bulk put");
}

async fn listing_past_1000_keys(b: &Bucket, p: &Profile) -> Outcome {
    if !p.heavy {
        return Outcome::Skipped("heavy checks disabled for this profile".into());
    }
    put_many(b, "many", 1100).await;
    let keys = crate::keys(b.list("many")).await;
    assert_eq!(keys.len(), 1100, "listing pages past 1000 keys");
    let stats = b.stats("many").await.unwrap();
    assert_eq!(stats.objects, 1100);
    assert_eq!(stats.bytes, expected_bytes(b, p, "many", 1100).await);
    Outcome::Passed
}

async fn delete_many_1500_keys(b: &Bucket, p: &Profile) -> Outcome {
    if !p.heavy {
        return Outcome::Skipped("heavy checks disabled for this profile".into());
    }
    put_many(b, "del", 1500).await;
    let mut keys: Vec<String> = (0..1500).map(|i| format!("del/k{i:05}")).collect();
    keys.push("bad//key".into());
    let report = b.delete_many(&keys).await;
    assert_eq!(
        report.deleted.len(),
        1500,
        "failed: {:?}",
        report.failed.first()
    );
    assert_eq!(
        report.failed.len(),
        1,
        "the invalid key is reported, not sent"
    );
    assert_eq!(report.failed[0].0, "bad//key");
    let left: Vec<_> = b.list("del").try_collect().await.unwrap();
    assert!(left.is_empty(), "{} objects left", left.len());
    Outcome::Passed
}

async fn streamed_64_mib(b: &Bucket, p: &Profile) -> Outcome {
    if !p.heavy {
        return Outcome::Skipped("heavy checks disabled for this profile".into());
    }
    const CHUNK: usize = 1 << 20;
    const TOTAL: u64 = 64 << 20;
    let chunks =
        stream::iter(0..(TOTAL / CHUNK as u64)).map(|i| Ok(pattern(i * CHUNK as u64, CHUNK)));
    let w = b
        .put_stream("big/64mib.bin", chunks, PutOpts::default())
        .await
        .expect("streamed put");
    assert_eq!(w.size, TOTAL);
    let s = b.get_stream("big/64mib.bin").await.expect("streamed get");
    assert_eq!(s.info.size, TOTAL);
    let mut offset = 0u64;
    let mut body = s.stream;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        assert_eq!(
            chunk,
            pattern(offset, chunk.len()),
            "bytes differ at offset {offset}"
        );
        offset += chunk.len() as u64;
    }
    assert_eq!(offset, TOTAL);
    Outcome::Passed
}

async fn conditional_create_and_update(b: &Bucket, _: &Profile) -> Outcome {
    if !b.capabilities().put_if_match {
        let e = b
            .put_with("cas/x", "1", PutOpts::if_match("x"))
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::NotSupported { .. }), "{e}");
        return Outcome::Skipped(format!("no conditional put; NotSupported verified: {e}"));
    }
    let first = b
        .put_with("cas/doc", "v1", PutOpts::if_absent())
        .await
        .expect("create");
    let again = b
        .put_with("cas/doc", "v1b", PutOpts::if_absent())
        .await
        .unwrap_err();
    assert!(
        matches!(again, StorageError::AlreadyExists { .. }),
        "{again}"
    );
    let etag = first.etag.clone().unwrap();
    // Quoted or not, the same ETag matches.
    let quoted = format!("\"{}\"", etag.trim_matches('"'));
    let second = b
        .put_with("cas/doc", "v2", PutOpts::if_match(&quoted))
        .await
        .expect("update");
    let stale = b
        .put_with("cas/doc", "v3", PutOpts::if_match(&etag))
        .await
        .unwrap_err();
    assert!(
        matches!(stale, StorageError::Precondition { .. }),
        "{stale}"
    );
    assert_eq!(
        b.get("cas/doc").await.unwrap().bytes,
        "v2",
        "the stale write changed nothing"
    );
    let missing = b
        .put_with("cas/none", "x", PutOpts::if_match(second.etag.unwrap()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            StorageError::Precondition { .. } | StorageError::NotFound { .. }
        ),
        "{missing}"
    );
    Outcome::Passed
}

/// Writers racing with the same precondition: never more than one wins a round, the others
/// are told so, and the object holds the winner's bytes. This is what compare-and-swap
/// stands on; a server that checks the precondition and stores without a lock between
/// fails it. Over a faulty stack (the layers' chaos tests) a writer may instead get an
/// error whose outcome is unknown; a round may then have no acknowledged winner, and the
/// object holds whatever that writer stored.
async fn conditional_writes_race_one_winner(b: &Bucket, p: &Profile) -> Outcome {
    if !(b.capabilities().put_if_match && b.capabilities().create_if_absent) {
        return Outcome::Skipped(format!("{} has no conditional put", b.provider()));
    }
    if !p.atomic_cas {
        return Outcome::Skipped(format!(
            "{}'s conditional writes are not atomic under concurrency (a server limitation)",
            p.name
        ));
    }
    const WRITERS: usize = 12;
    const ROUNDS: usize = 6;
    let key = "race/doc";
    let mut precondition = PutOpts::if_absent();
    let mut acknowledged = 0;
    for round in 0..ROUNDS {
        let attempts = (0..WRITERS).map(|w| {
            let opts = precondition.clone();
            async move {
                let body = format!("round {round} writer {w}");
                (body.clone(), b.put_with(key, body, opts).await)
            }
        });
        let results = futures::future::join_all(attempts).await;
        let (mut winners, mut unknown) = (Vec::new(), 0);
        for (body, r) in results {
            match r {
                Ok(w) => winners.push((body, w)),
                Err(StorageError::Precondition { .. } | StorageError::AlreadyExists { .. }) => {}
                Err(_) => unknown += 1,
            }
        }
        assert!(
            winners.len() <= 1,
            "round {round}: {} of {WRITERS} writers with the same precondition succeeded",
            winners.len()
        );
        let stored = b.get(key).await.expect("read the object");
        match winners.pop() {
            Some((body, _)) => {
                assert_eq!(
                    stored.bytes, body,
                    "round {round}: the object is not the winner's"
                );
                acknowledged += 1;
            }
            None => assert!(
                unknown > 0,
                "round {round}: every writer was told it lost, and none got an error"
            ),
        }
        let etag = stored.info.etag.expect("a read returns the ETag it saw");
        precondition = PutOpts::if_match(etag);
    }
    assert!(acknowledged > 0, "no round had an acknowledged winner");
    Outcome::Passed
}

async fn conditional_get(b: &Bucket, _: &Profile) -> Outcome {
    if !b.capabilities().get_if_none_match {
        return Outcome::Skipped(format!("{} ignores conditional GET headers", b.provider()));
    }
    let w = b.put("cg/a", "same").await.unwrap();
    let etag = w.etag.unwrap();
    assert!(
        b.get_if_none_match("cg/a", &etag).await.unwrap().is_none(),
        "unchanged → None"
    );
    b.put("cg/a", "changed").await.unwrap();
    let o = b
        .get_if_none_match("cg/a", &etag)
        .await
        .unwrap()
        .expect("changed → Some");
    assert_eq!(o.bytes, "changed");
    Outcome::Passed
}

async fn conditional_delete(b: &Bucket, _: &Profile) -> Outcome {
    if !b.capabilities().delete_if_match {
        let e = b.delete_if_match("cd/a", "x").await.unwrap_err();
        assert!(matches!(e, StorageError::NotSupported { .. }), "{e}");
        return Outcome::Skipped(format!(
            "no atomic delete-if-match; NotSupported verified: {e}"
        ));
    }
    let w = b.put("cd/a", "1").await.unwrap();
    b.put("cd/a", "2").await.unwrap();
    let e = b
        .delete_if_match("cd/a", w.etag.as_deref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::Precondition { .. }), "{e}");
    assert!(b.exists("cd/a").await.unwrap());
    let now = b.head("cd/a").await.unwrap().etag.unwrap();
    b.delete_if_match("cd/a", &now).await.unwrap();
    assert!(!b.exists("cd/a").await.unwrap());
    let gone = b.delete_if_match("cd/a", &now).await.unwrap_err();
    assert!(matches!(gone, StorageError::NotFound { .. }), "{gone}");
    Outcome::Passed
}

async fn copy_and_move(b: &Bucket, _: &Profile) -> Outcome {
    b.put("cp/src", "payload").await.unwrap();
    b.copy("cp/src", "cp/dst").await.unwrap();
    assert_eq!(b.get("cp/dst").await.unwrap().bytes, "payload");
    assert!(b.exists("cp/src").await.unwrap(), "copy keeps the source");
    b.rename("cp/src", "cp/moved").await.unwrap();
    assert!(
        !b.exists("cp/src").await.unwrap(),
        "move removes the source"
    );
    assert_eq!(b.get("cp/moved").await.unwrap().bytes, "payload");
    let e = b.copy("cp/nothing", "cp/x").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    Outcome::Passed
}

async fn presigned_get_and_put(b: &Bucket, _: &Profile) -> Outcome {
    let too_long = b
        .presign(PresignMethod::Get, "ps/a", Duration::from_secs(8 * 86400))
        .await
        .unwrap_err();
    assert!(too_long.to_string().contains("7 day"), "{too_long}");
    if !b.capabilities().presign {
        let e = b
            .presign(PresignMethod::Get, "ps/a", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::NotSupported { .. }), "{e}");
        return Outcome::Skipped(format!("cannot presign; NotSupported verified: {e}"));
    }
    b.put("ps/a.txt", "presigned body").await.unwrap();
    let url = b
        .presign(PresignMethod::Get, "ps/a.txt", Duration::from_secs(300))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let resp = client
        .get(url.clone())
        .send()
        .await
        .expect("fetch presigned GET");
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    assert_eq!(resp.bytes().await.unwrap(), "presigned body");
    let put_url = b
        .presign(PresignMethod::Put, "ps/up.txt", Duration::from_secs(300))
        .await
        .unwrap();
    let resp = client
        .put(put_url)
        .body("uploaded")
        .send()
        .await
        .expect("presigned PUT");
    assert!(
        resp.status().is_success(),
        "presigned PUT: {}",
        resp.status()
    );
    assert_eq!(b.get("ps/up.txt").await.unwrap().bytes, "uploaded");
    Outcome::Passed
}

async fn presigned_url_tampered_or_expired(b: &Bucket, p: &Profile) -> Outcome {
    if !b.capabilities().presign {
        return Outcome::Skipped(
            "this stack cannot presign (presigned_get_and_put verifies the refusal)".into(),
        );
    }
    if !p.verifies_signatures {
        return Outcome::Skipped(format!("{} does not verify signatures", p.name));
    }
    b.put("ps/secret.txt", "s").await.unwrap();
    let client = reqwest::Client::new();
    let url = b
        .presign(
            PresignMethod::Get,
            "ps/secret.txt",
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let tampered = url.as_str().replace("secret.txt", "secret.txt2");
    let resp = client.get(&tampered).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403, "a tampered URL is rejected");
    let mut sig_changed = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Signature" {
                let mut s = v.to_string();
                let last = s.pop().unwrap();
                s.push(if last == '0' { '1' } else { '0' });
                s
            } else {
                v.to_string()
            };
            (k.to_string(), v)
        })
        .collect();
    sig_changed.query_pairs_mut().clear().extend_pairs(pairs);
    assert_eq!(
        client
            .get(sig_changed)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let short = b
        .presign(PresignMethod::Get, "ps/secret.txt", Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = client.get(short).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403, "an expired URL is rejected");
    Outcome::Passed
}

/// What `stats(prefix)` must count as bytes for objects of `logical` bytes in all: those
/// bytes, or over a compressing stack the stored sizes its listing reports.
async fn expected_bytes(b: &Bucket, p: &Profile, prefix: &str, logical: u64) -> u64 {
    if !p.compressed {
        return logical;
    }
    let listed: Vec<u64> = b
        .list(prefix)
        .map_ok(|o| o.size)
        .try_collect()
        .await
        .unwrap();
    listed.iter().sum()
}

async fn stats_and_health(b: &Bucket, p: &Profile) -> Outcome {
    b.put("st/a", "12345").await.unwrap();
    b.put("st/b/c", "123").await.unwrap();
    let s = b.stats("st").await.unwrap();
    assert_eq!(
        (s.objects, s.bytes),
        (2, expected_bytes(b, p, "st", 8).await)
    );
    assert_eq!(
        b.head("st/a").await.unwrap().size,
        5,
        "head reports the size written"
    );
    let h = b.health().await;
    assert!(h.ok, "health: {:?}", h.error);
    Outcome::Passed
}

async fn invalid_keys_rejected(b: &Bucket, _: &Profile) -> Outcome {
    for k in ["", "/abs", "a//b", "../x", "a/./b"] {
        let e = b.put(k, "x").await.unwrap_err();
        assert!(matches!(e, StorageError::InvalidKey { .. }), "{k:?}: {e}");
    }
    Outcome::Passed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeSigningStore;

    /// A failing check does not stop the suite: every check runs, and every failure is
    /// reported with its message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_reports_every_failure() {
        // Claims presign with URLs nothing serves: both presign checks fail.
        let lying = || FakeSigningStore::wrap(&Bucket::memory("lying")).0;
        let bucket = lying();
        let profile = Profile {
            verifies_signatures: true,
            heavy: false,
            ..Profile::embedded("lying")
        };
        let report = run_all(&bucket, &profile).await;
        let failed: Vec<&str> = report.failed.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            failed,
            ["presigned_get_and_put", "presigned_url_tampered_or_expired"],
            "{report:?}"
        );
        assert!(
            report.passed.contains(&"invalid_keys_rejected"),
            "{report:?}"
        );
        assert_eq!(
            report.passed.len() + report.skipped.len() + report.failed.len(),
            CHECKS.len()
        );
        let fresh = lying();
        let panicked = std::panic::AssertUnwindSafe(run(&fresh, &profile));
        let message = match futures::FutureExt::catch_unwind(panicked).await {
            Ok(_) => panic!("run() must fail when a check fails"),
            Err(payload) => panic_message(payload),
        };
        assert!(message.contains("2 of 18 checks failed"), "{message}");
        assert!(
            message.contains("presigned_url_tampered_or_expired"),
            "{message}"
        );
    }

    #[test]
    fn every_check_is_listed_once() {
        let mut names: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CHECKS.len());
    }
}
