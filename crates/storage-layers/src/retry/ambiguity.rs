//! Copies and renames whose answer was lost: retried, and resolved by looking at the
//! objects (conditional puts and deletes are not: see the [module docs](super)).

use std::future::Future;
use std::sync::atomic::Ordering;

use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, ObjectStore, ObjectStoreExt, RenameOptions, RenameTargetMode,
    Result as OsResult,
};
use storage_core::{ErrorKind, StrataStore};

use super::store::RetryStore;
use crate::util::{ErrorClass, classify};

impl<T: StrataStore> RetryStore<T> {
    async fn same_bytes(&self, a: &Path, b: &Path) -> bool {
        let (x, y) = futures::join!(self.inner.get(a), self.inner.get(b));
        match (x, y) {
            (Ok(x), Ok(y)) => match futures::join!(x.bytes(), y.bytes()) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            },
            _ => false,
        }
    }

    async fn exists(&self, p: &Path) -> Option<bool> {
        match self.inner.head(p).await {
            Ok(_) => Some(true),
            Err(e) if classify(&e).kind == ErrorKind::NotFound => Some(false),
            Err(_) => None,
        }
    }

    /// Run `attempt` under the policy until it succeeds or the policy gives up. Once an
    /// attempt failed ambiguously (it may have been applied), each later failure is first
    /// handed to `settle`, which may tell from the objects what the earlier attempt did
    /// (`None`: not a case it can tell, retry as usual).
    async fn resolving<A, AFut, S, SFut>(
        &self,
        op: &str,
        key: &str,
        mut attempt: A,
        mut settle: S,
    ) -> OsResult<()>
    where
        A: FnMut() -> AFut,
        AFut: Future<Output = OsResult<()>>,
        S: FnMut(ErrorClass) -> SFut,
        SFut: Future<Output = Option<Settled>>,
    {
        let mut attempts = 1;
        let started = tokio::time::Instant::now();
        let mut ambiguous: Option<object_store::Error> = None;
        loop {
            let err = match attempt().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let class = classify(&err);
            if let Some(first) = ambiguous.take() {
                let counters = &self.policy.counters;
                match settle(class).await {
                    Some(Settled::Recovered) => {
                        counters.recovered_writes.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    Some(Settled::Done(res)) => return res,
                    Some(Settled::Stands) => return Err(err),
                    Some(Settled::Unknown) => {
                        counters.unknown_outcomes.fetch_add(1, Ordering::Relaxed);
                        return Err(first);
                    }
                    None => ambiguous = Some(first),
                }
            }
            if !self
                .policy
                .should_retry(class, attempts, started, op, key)
                .await
            {
                return Err(err);
            }
            if class.ambiguous() && ambiguous.is_none() {
                ambiguous = Some(err);
            }
            attempts += 1;
        }
    }

    /// A copy, retried; after an ambiguous failure a copy-if-absent that then meets an
    /// existing destination holding the source's bytes is our own earlier attempt: success.
    pub(super) async fn copy_resolving(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> OsResult<()> {
        let create = matches!(options.mode, CopyMode::Create);
        let attempt = || self.inner.copy_opts(from, to, options.clone());
        let settle = move |class: ErrorClass| async move {
            if !create || class.kind != ErrorKind::Conflict {
                return None;
            }
            // Our earlier attempt may have created the destination.
            if self.same_bytes(from, to).await {
                return Some(Settled::Recovered);
            }
            // Another object is at the destination either way: the copy-if-absent answer
            // stands.
            Some(Settled::Stands)
        };
        self.resolving("copy", to.as_ref(), attempt, settle).await
    }

    /// A rename, retried; after an ambiguous failure the state of source and destination
    /// says whether an earlier attempt moved (or half-moved) the object.
    pub(super) async fn rename_resolving(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> OsResult<()> {
        let create = matches!(options.target_mode, RenameTargetMode::Create);
        let attempt = || self.inner.rename_opts(from, to, options.clone());
        let settle = move |class: ErrorClass| async move {
            if !matches!(class.kind, ErrorKind::NotFound | ErrorKind::Conflict) {
                return None;
            }
            // An earlier attempt may have done the move (source gone, destination there),
            // or copied without deleting the source.
            let source = self.exists(from).await;
            let dest = self.exists(to).await;
            Some(match (source, dest) {
                (Some(false), Some(true)) => Settled::Recovered,
                (Some(true), Some(true)) if create && self.same_bytes(from, to).await => {
                    // Copied but the source delete was lost: finish the move.
                    let delete = self
                        .policy
                        .run("rename", from.as_ref(), || self.inner.delete(from))
                        .await;
                    Settled::Done(delete)
                }
                // Source still there, another object at the destination: nothing moved.
                (Some(true), Some(true)) if create => Settled::Stands,
                _ => Settled::Unknown,
            })
        };
        self.resolving("rename", to.as_ref(), attempt, settle).await
    }
}

/// What a copy's or rename's `settle` made of a failure that followed an ambiguous one.
enum Settled {
    /// The earlier attempt did it: success (counted as a recovered write).
    Recovered,
    /// The outcome is known.
    Done(OsResult<()>),
    /// This failure is the answer.
    Stands,
    /// What happened cannot be told: the first, ambiguous failure is the answer (counted as
    /// an unknown outcome).
    Unknown,
}

#[cfg(test)]
mod tests {
    use storage_core::MemoryStore;

    use super::*;
    use crate::chaos::ChaosLayer;
    use crate::retry::test_support::fast;

    #[tokio::test]
    async fn lost_ack_on_rename_is_success() {
        let chaos = ChaosLayer::default().with_lost_ack_rate(1.0);
        let mem = MemoryStore::new();
        mem.put(&Path::from("a"), "x".into()).await.unwrap();
        let store = fast().wrap(chaos.wrap(mem.clone()));
        store
            .rename(&Path::from("a"), &Path::from("b"))
            .await
            .unwrap();
        assert!(mem.head(&Path::from("a")).await.is_err());
        assert!(mem.head(&Path::from("b")).await.is_ok());
    }
}
