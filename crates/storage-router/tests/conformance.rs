//! `object_store`'s own conformance checks against every store this crate makes, so code
//! written for `object_store` (DataFusion, parquet, delta-rs) can rely on them.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::integration::*;
use storage_core::{Bucket, LocalStore, MemoryStore};
use storage_router::{FailoverStore, MirrorStore, ReadPolicy, Route, SourceSet};

fn memory() -> Arc<dyn storage_core::StrataStore> {
    Arc::new(MemoryStore::new())
}

/// Each check expects an empty store, so each gets a fresh one from `make`.
async fn conformance(make: impl Fn() -> Arc<dyn ObjectStore>) {
    put_get_delete_list(make().as_ref()).await;
    put_get_attributes(make().as_ref()).await;
    get_opts(make().as_ref()).await;
    put_opts(make().as_ref(), true).await;
    stream_get(make().as_ref()).await;
    list_uses_directories_correctly(make().as_ref()).await;
    list_with_delimiter(make().as_ref()).await;
    rename_and_copy(make().as_ref()).await;
    copy_if_not_exists(make().as_ref()).await;
    copy_rename_nonexistent_object(make().as_ref()).await;
    list_with_offset_exclusivity(make().as_ref()).await;
}

#[tokio::test]
async fn failover_store_conforms() {
    conformance(|| Arc::new(FailoverStore::new(("a", memory()), ("b", memory())))).await;
}

#[tokio::test]
async fn mirror_store_conforms_over_memory_and_a_local_folder() {
    let dirs = std::sync::Mutex::new(Vec::new());
    conformance(|| {
        let dir = tempfile::tempdir().unwrap();
        let local: Arc<dyn storage_core::StrataStore> =
            Arc::new(LocalStore::new(dir.path()).unwrap());
        dirs.lock().unwrap().push(dir);
        Arc::new(MirrorStore::new(vec![
            ("cloud".into(), memory()),
            ("local".into(), local),
        ]))
    })
    .await;
}

#[tokio::test]
async fn a_source_set_store_conforms() {
    conformance(|| {
        SourceSet::new(
            "s",
            vec![Bucket::memory("a"), Bucket::memory("b")],
            ReadPolicy::Sequential,
        )
        .unwrap()
        .store()
    })
    .await;
}

#[tokio::test]
async fn a_routed_view_conforms() {
    conformance(|| {
        Route::new("records", Bucket::memory("m"), "records")
            .unwrap()
            .handle()
            .object_store()
    })
    .await;
}
