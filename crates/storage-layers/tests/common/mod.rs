//! Test support shared by the layer tests.
#![allow(dead_code)]

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::integration::*;
use storage_layers::encryption::{EncryptionLayer, Keyring};

/// A keyring holding one fresh key, `k1`.
pub fn one_key() -> Keyring {
    Keyring::new()
        .with_key("k1", &Keyring::generate_key())
        .unwrap()
}

/// An encryption layer under [`one_key`].
pub fn encryption() -> EncryptionLayer {
    EncryptionLayer::new(one_key())
}

/// Which of `object_store`'s integration checks a store runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Every check: any store with conditional writes and multipart uploads.
    All,
    /// Everything but `list_with_delimiter`, whose check compares listed sizes with the
    /// bytes written: under compression a listing shows the stored (compressed) size,
    /// documented in `storage_layers::compression` (a listing carries no metadata to undo it
    /// with).
    AllButListedSizes,
    /// The checks that fit a shared S3 server: the offset and streaming checks and the
    /// multipart races, which upload tens of MiB, stay with the memory runs.
    SharedServer,
}

/// `object_store`'s integration checks on `store`, as `which` says.
pub async fn object_store_checks(store: Arc<dyn ObjectStore>, which: Checks) {
    let all = which != Checks::SharedServer;
    let s: &dyn ObjectStore = store.as_ref();
    put_get_delete_list(&store).await;
    if all {
        list_with_offset_exclusivity(&store).await;
    }
    get_opts(s).await;
    list_uses_directories_correctly(&store).await;
    match which {
        Checks::All => list_with_delimiter(&store).await,
        // list_with_delimiter would also have cleaned up the previous check's objects.
        Checks::AllButListedSizes => delete_all(&store).await,
        Checks::SharedServer => {}
    }
    rename_and_copy(&store).await;
    copy_if_not_exists(&store).await;
    copy_rename_nonexistent_object(&store).await;
    if all {
        stream_get(&store).await;
    }
    put_opts(s, true).await;
    put_get_attributes(s).await;
    if all {
        multipart_race_condition(s, true).await;
        multipart_out_of_order(s).await;
    }
}

async fn delete_all(store: &Arc<dyn ObjectStore>) {
    use futures::{StreamExt, TryStreamExt};
    let all = store.list(None).map_ok(|m| m.location).boxed();
    store
        .delete_stream(all)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}
