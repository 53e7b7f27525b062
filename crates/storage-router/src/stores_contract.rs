//! [`StrataStore`] for the router's multi-store types: capabilities are the primary's (it
//! decides every write), a conditional delete is decided by the primary alone, and a
//! presigned GET names the member the read engine would serve the object from.

use std::time::Duration;

use async_trait::async_trait;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use storage_core::store::not_supported;
use storage_core::{Capabilities, PresignMethod, StrataStore};
use url::Url;

use super::{Core, FailoverStore, FallbackStore, MirrorStore, OffloadStore, OsResult, Writes};

impl Core {
    fn capabilities(&self) -> Capabilities {
        let mut caps = self.primary().store.capabilities();
        if matches!(self.writes, Writes::Mirror(_)) {
            // Deciding on the primary would leave the other copies behind.
            caps.delete_if_match = false;
        }
        caps
    }

    async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()> {
        if matches!(self.writes, Writes::Mirror(_)) {
            return Err(not_supported(
                &self.label,
                "delete-if-match on a mirror (one copy would decide, the others would stay); \
                 delete through each bucket, or use a plain delete",
            ));
        }
        let primary = self.primary().store.delete_if_match(location, etag).await;
        if !self.deletes_everywhere {
            // Conditional operations never fail over: one store decides.
            return primary;
        }
        // An offload route: the member holding the object decides (the route's folder
        // first, the target when it is not there), and no copy of the key outlives it.
        match primary {
            Ok(()) => {
                for m in &self.members[1..] {
                    match m.store.delete(location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Err(object_store::Error::NotFound { .. }) => {
                let mut last = primary;
                for m in &self.members[1..] {
                    last = m.store.delete_if_match(location, etag).await;
                    if !matches!(last, Err(object_store::Error::NotFound { .. })) {
                        return last;
                    }
                }
                last
            }
            Err(e) => Err(e),
        }
    }

    async fn presign(
        &self,
        method: PresignMethod,
        location: &Path,
        expires_in: Duration,
    ) -> OsResult<Url> {
        if method == PresignMethod::Get {
            // The member a read would be served from; a key found nowhere is signed for the
            // primary, where a later write would put it.
            let found = self
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
        self.primary()
            .store
            .presign(method, location, expires_in)
            .await
    }
}

macro_rules! contract {
    ($($name:ident),*) => {$(
        #[async_trait]
        impl StrataStore for $name {
            fn capabilities(&self) -> Capabilities {
                self.core.capabilities()
            }

            async fn delete_if_match(&self, location: &Path, etag: &str) -> OsResult<()> {
                self.core.delete_if_match(location, etag).await
            }

            async fn presign(
                &self,
                method: PresignMethod,
                location: &Path,
                expires_in: Duration,
            ) -> OsResult<Url> {
                self.core.presign(method, location, expires_in).await
            }
        }
    )*};
}

contract!(FailoverStore, MirrorStore, FallbackStore, OffloadStore);
