//! Small helpers shared by the layers: error classification without consuming the error,
//! operation names, and stream plumbing.
//!
//! Which helpers are used depends on the layers compiled in, hence the blanket allowance.
#![allow(dead_code)]

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::{GetResult, GetResultPayload, PutPayload};
use storage_core::{ErrorKind, StorageError};

/// What a layer needs to know about an `object_store` error to decide what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ErrorClass {
    /// The coarse kind, as [`StorageError::kind`] would say.
    pub kind: ErrorKind,
    /// As [`StorageError::is_retryable`] would say.
    pub retryable: bool,
}

impl ErrorClass {
    /// Whether a write that failed this way may nevertheless have been applied: the request
    /// may have reached the backend before the failure (timeouts, 5xx, dropped connections).
    /// A rate-limit answer (429 / SlowDown) means the backend refused the request.
    pub fn ambiguous(self) -> bool {
        self.retryable && self.kind != ErrorKind::Quota
    }
}

/// The `StorageError` carried inside `object_store::Error::Generic` by
/// [`StorageError::into_object_store`], if this error is one.
pub(crate) fn carried(err: &object_store::Error) -> Option<&StorageError> {
    match err {
        object_store::Error::Generic { source, .. } => {
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(e) = cur {
                if let Some(se) = e.downcast_ref::<StorageError>() {
                    return Some(se);
                }
                cur = e.source();
            }
            None
        }
        _ => None,
    }
}

/// Classify an `object_store` error exactly as [`StorageError::from_object_store`] would,
/// without consuming it (so a layer can still return the caller's original error).
pub(crate) fn classify(err: &object_store::Error) -> ErrorClass {
    use object_store::Error as E;
    if let Some(se) = carried(err) {
        return ErrorClass {
            kind: se.kind(),
            retryable: se.is_retryable(),
        };
    }
    let no = |kind| ErrorClass {
        kind,
        retryable: false,
    };
    match err {
        E::NotFound { .. } => no(ErrorKind::NotFound),
        E::AlreadyExists { .. } | E::Precondition { .. } => no(ErrorKind::Conflict),
        E::NotModified { .. } => no(ErrorKind::NotModified),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => no(ErrorKind::Auth),
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => no(ErrorKind::BadInput),
        E::NotSupported { .. } | E::NotImplemented { .. } => no(ErrorKind::NotSupported),
        other => {
            // Generic client errors are classified by their text (HTTP status, S3 code); a
            // string copy keeps the original intact for the caller.
            let copy = E::Generic {
                store: "classify",
                source: other.to_string().into(),
            };
            let se = StorageError::from_object_store("classify", copy);
            ErrorClass {
                kind: se.kind(),
                retryable: se.is_retryable(),
            }
        }
    }
}

/// A `StorageError` as an `object_store` error.
pub(crate) fn os_err(e: StorageError) -> object_store::Error {
    e.into_object_store()
}

/// The payload's bytes as one buffer (copies only when it has several chunks).
#[cfg_attr(
    not(any(
        feature = "retry",
        feature = "compression",
        feature = "encryption",
        feature = "cache"
    )),
    allow(dead_code)
)]
pub(crate) fn payload_bytes(payload: &PutPayload) -> Bytes {
    let mut iter = payload.iter();
    match (iter.next(), iter.next()) {
        (None, _) => Bytes::new(),
        (Some(one), None) => one.clone(),
        _ => {
            let mut v = Vec::with_capacity(payload.content_length());
            for chunk in payload.iter() {
                v.extend_from_slice(chunk);
            }
            Bytes::from(v)
        }
    }
}

/// The body of a `GetResult` as a stream, whatever its payload kind.
#[cfg_attr(
    not(any(
        feature = "timeout",
        feature = "retry",
        feature = "chaos",
        feature = "metrics"
    )),
    allow(dead_code)
)]
pub(crate) fn into_stream(
    r: GetResult,
) -> (
    GetResultMeta,
    BoxStream<'static, object_store::Result<Bytes>>,
) {
    let meta = GetResultMeta {
        meta: r.meta.clone(),
        range: r.range.clone(),
        attributes: r.attributes.clone(),
        extensions: r.extensions.clone(),
    };
    (meta, r.into_stream())
}

/// Everything of a `GetResult` but its body.
pub(crate) struct GetResultMeta {
    pub meta: object_store::ObjectMeta,
    pub range: std::ops::Range<u64>,
    pub attributes: object_store::Attributes,
    pub extensions: object_store::Extensions,
}

impl GetResultMeta {
    /// Put a body back.
    pub fn with_stream(self, s: BoxStream<'static, object_store::Result<Bytes>>) -> GetResult {
        GetResult {
            payload: GetResultPayload::Stream(s),
            meta: self.meta,
            range: self.range,
            attributes: self.attributes,
            extensions: self.extensions,
        }
    }

    /// Put a buffered body back.
    #[cfg_attr(
        not(any(feature = "compression", feature = "encryption", feature = "cache")),
        allow(dead_code)
    )]
    pub fn with_bytes(self, b: Bytes) -> GetResult {
        self.with_stream(futures::stream::once(async move { Ok(b) }).boxed())
    }
}

/// Run CPU-heavy work off the async threads when it is big enough to matter.
#[cfg(any(feature = "compression", feature = "encryption"))]
pub(crate) async fn cpu<R: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    if len < 256 * 1024 {
        return f();
    }
    tokio::task::spawn_blocking(f)
        .await
        .expect("compression/encryption worker panicked")
}

/// Key of a path for messages and metrics.
/// `path` as the layers see it: without `beneath`, the prefix between them and the backend
/// (conditional-delete hooks get backend paths).
#[allow(dead_code)] // used by the cache and metrics layers, each behind its feature
pub(crate) fn above(
    path: &object_store::path::Path,
    beneath: Option<&object_store::path::Path>,
) -> object_store::path::Path {
    match beneath.and_then(|b| path.prefix_match(b)) {
        Some(rest) => object_store::path::Path::from_iter(rest),
        None => path.clone(),
    }
}

pub(crate) fn key_prefix(key: &str, depth: usize) -> String {
    if depth == 0 {
        return String::new();
    }
    let mut parts = key.split('/');
    let segments: Vec<&str> = parts.by_ref().take(depth).collect();
    // A key with no more segments than `depth` is a file name, not a prefix: keep its folders.
    if parts.next().is_none() {
        segments[..segments.len().saturating_sub(1)].join("/")
    } else {
        segments.join("/")
    }
}

/// `storage_core::Layer` for a layer builder `Name` whose `wrap(inner)` makes its store.
#[allow(unused_macros)] // used by the layers, each behind its feature
macro_rules! layer_wraps {
    ($layer:ident) => {
        impl storage_core::Layer for $layer {
            fn layer(
                &self,
                inner: std::sync::Arc<dyn storage_core::StrataStore>,
            ) -> std::sync::Arc<dyn storage_core::StrataStore> {
                // `DynStore`: the layer calls the store beneath directly, not through `Arc`'s impl.
                std::sync::Arc::new(self.wrap(storage_core::DynStore::new(inner)))
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use layer_wraps;

/// `Debug` and `Display` of a layer's store `Name<T>` with an `inner` field: `Name(inner)`.
#[allow(unused_macros)] // used by the layers, each behind its feature
macro_rules! layer_store_fmt {
    ($store:ident) => {
        impl<T: storage_core::StrataStore> std::fmt::Debug for $store<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($store), "({:?})"), self.inner)
            }
        }

        impl<T: storage_core::StrataStore> std::fmt::Display for $store<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($store), "({})"), self.inner)
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use layer_store_fmt;

/// Helpers for the layers' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use bytes::Bytes;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt};

    /// The whole body of `key` in `store`; panics on any error.
    pub(crate) async fn read(store: &dyn ObjectStore, key: &str) -> Bytes {
        store
            .get(&Path::from(key))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_matches_core_mapping() {
        let e = object_store::Error::NotFound {
            path: "a".into(),
            source: "x".into(),
        };
        assert_eq!(classify(&e).kind, ErrorKind::NotFound);
        assert!(!classify(&e).retryable);
        let carried = StorageError::Timeout {
            backend: "b".into(),
            operation: "get".into(),
            after: std::time::Duration::from_secs(1),
            source: None,
        }
        .into_object_store();
        assert_eq!(classify(&carried).kind, ErrorKind::Timeout);
        assert!(classify(&carried).retryable && classify(&carried).ambiguous());
        let slow = object_store::Error::Generic {
            store: "S3",
            // S3's SlowDown code is matched by storage-s3; any store's 429 is a rate limit.
            source: "Server returned status 429 Too Many Requests".into(),
        };
        assert_eq!(classify(&slow).kind, ErrorKind::Quota);
        assert!(classify(&slow).retryable && !classify(&slow).ambiguous());
    }

    #[test]
    fn prefixes() {
        assert_eq!(key_prefix("users/42/profile.json", 1), "users");
        assert_eq!(key_prefix("users/42/profile.json", 2), "users/42");
        assert_eq!(key_prefix("users/42/profile.json", 5), "users/42");
        assert_eq!(key_prefix("top.json", 1), "");
    }
}
