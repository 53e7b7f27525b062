//! [`StrataStore`] for the router's multi-store types: capabilities and key prefix are the
//! primary's (it decides every write), a conditional delete is decided by the primary alone, and a
//! presigned GET names the member the read engine would serve the object from.

use object_store::ObjectStoreExt;
use storage_core::store::not_supported;
use storage_core::{PresignMethod, StrataStore};

use super::{Core, Writes};

impl StrataStore for Core {
    storage_core::store_fn!(capabilities, |this| {
        let mut caps = this.primary().store.capabilities();
        if matches!(this.writes, Writes::Mirror(_)) {
            // Deciding on the primary would leave the other copies behind.
            caps.delete_if_match = false;
        }
        caps
    });

    // The primary's: it takes every write, and a bucket built over this store keeps the
    // primary's folder for its public URLs.
    storage_core::store_fn!(key_prefix, |this| this.primary().store.key_prefix());

    storage_core::store_fn!(delete_if_match, |this, location, etag| {
        if matches!(this.writes, Writes::Mirror(_)) {
            return Err(not_supported(
                &this.label,
                "delete-if-match on a mirror (one copy would decide, the others would stay); \
                 delete through each bucket, or use a plain delete",
            ));
        }
        let primary = this.primary().store.delete_if_match(location, etag).await;
        if !this.deletes_everywhere {
            // Conditional operations never fail over: one store decides.
            return primary;
        }
        // An offload route: the member holding the object decides (the route's folder
        // first, the target when it is not there), and no copy of the key outlives it.
        match primary {
            Ok(()) => {
                for m in &this.members[1..] {
                    match m.store.delete(location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Err(object_store::Error::NotFound { .. }) => {
                let mut last = primary;
                for m in &this.members[1..] {
                    last = m.store.delete_if_match(location, etag).await;
                    if !matches!(last, Err(object_store::Error::NotFound { .. })) {
                        return last;
                    }
                }
                last
            }
            Err(e) => Err(e),
        }
    });

    storage_core::store_fn!(presign, |this, method, location, expires_in| {
        if method == PresignMethod::Get {
            // The member a read would be served from; a key found nowhere is signed for the
            // primary, where a later write would put it.
            let found = this
                .read(location, |store| async move {
                    store.head(location).await?;
                    store.presign(method, location, expires_in).await
                })
                .await;
            match found {
                Ok(url) => return Ok(url),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        this.primary()
            .store
            .presign(method, location, expires_in)
            .await
    });
}
