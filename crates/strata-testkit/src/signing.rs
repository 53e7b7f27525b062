//! A store that signs URLs without a server, for tests of code that hands out presigned
//! URLs (manifests, the CLI) on the embedded backends, which have no signer.

use std::time::Duration;

use object_store::path::Path;
use storage_core::{Capabilities, PresignMethod};
use url::Url;

use crate::test_store::{Hooks, TestStore};

/// `inner`, claiming presign, whose URLs are
/// `https://signed.example/{path}?m={Get|Put}&e={seconds}`: they prove which path, method and
/// expiry reached the store, and can be fetched by nothing.
pub type FakeSigningStore = TestStore<FakeSigner>;

/// The hooks of a [`FakeSigningStore`].
#[derive(Debug, Default)]
pub struct FakeSigner;

impl Hooks for FakeSigner {
    const NAME: &'static str = "FakeSigningStore";

    fn capabilities(&self, inner: Capabilities) -> Capabilities {
        inner.with_presign(true)
    }

    fn presign(&self, method: PresignMethod, location: &Path, expires_in: Duration) -> Option<Url> {
        Some(
            Url::parse(&format!(
                "https://signed.example/{location}?m={method:?}&e={}",
                expires_in.as_secs()
            ))
            .expect("a valid URL"),
        )
    }
}
