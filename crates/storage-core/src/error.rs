//! One error type for every Strata crate.
//!
//! `object_store::Error` is mapped here, in [`StorageError::from_object_store`], and nowhere
//! else. Layers that must return `object_store::Error` (because they implement
//! `ObjectStore`) wrap a `StorageError` with [`StorageError::into_object_store`]; the mapping
//! back recovers the original variant, so a `CircuitOpen` raised three layers down still
//! reaches the application as `CircuitOpen`.

use std::fmt;
use std::time::Duration;

/// Boxed source error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`StorageError`] as the default error.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Every failure a Strata store can report.
///
/// Each variant carries the backend name (`backend`) and, where one is involved, the key.
/// Use [`StorageError::is_retryable`] to decide whether repeating the call can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object does not exist.
    #[error("{backend}: object `{key}` not found")]
    NotFound {
        /// Backend name.
        backend: String,
        /// Key that was looked up.
        key: String,
    },
    /// A create-if-absent write found an existing object.
    #[error("{backend}: object `{key}` already exists (the write asked for create-if-absent)")]
    AlreadyExists {
        /// Backend name.
        backend: String,
        /// Key that already exists.
        key: String,
    },
    /// A conditional operation's precondition (ETag / version) did not hold.
    #[error("{backend}: precondition failed for `{key}`: {detail}")]
    Precondition {
        /// Backend name.
        backend: String,
        /// Key the condition was about.
        key: String,
        /// What was expected, where known.
        detail: String,
    },
    /// A conditional read found the object unchanged (If-None-Match matched).
    #[error("{backend}: object `{key}` not modified since ETag {etag}")]
    NotModified {
        /// Backend name.
        backend: String,
        /// Key.
        key: String,
        /// The ETag that matched.
        etag: String,
    },
    /// The credentials are valid but not allowed to do this.
    #[error("{backend}: access denied for `{key}`: {source}")]
    AccessDenied {
        /// Backend name.
        backend: String,
        /// Key, or empty.
        key: String,
        /// Underlying error.
        source: BoxError,
    },
    /// The credentials are missing, wrong or expired.
    #[error("{backend}: not authenticated: {source} (check the access key and secret)")]
    Unauthenticated {
        /// Backend name.
        backend: String,
        /// Underlying error.
        source: BoxError,
    },
    /// The provider refused because of a quota or rate limit.
    #[error("{backend}: quota or rate limit exceeded: {detail}")]
    QuotaExceeded {
        /// Backend name.
        backend: String,
        /// Provider message.
        detail: String,
    },
    /// A key broke a validation rule.
    #[error("invalid key `{key}`: {rule}")]
    InvalidKey {
        /// The offending key (escaped for display).
        key: String,
        /// The rule it broke and how to fix it.
        rule: String,
    },
    /// A configuration value is wrong. `field` names it (`buckets.media.region`, `R2_ACCOUNT_ID`).
    #[error("invalid configuration `{field}`: {reason}")]
    InvalidConfig {
        /// Field path or environment variable.
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// An argument to an operation is out of range (presign expiry, metadata size, ...).
    #[error("invalid input `{field}`: {reason}")]
    InvalidInput {
        /// Which argument.
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The operation did not finish in time.
    #[error("{backend}: {operation} timed out after {}", human_duration(*after))]
    Timeout {
        /// Backend name.
        backend: String,
        /// Operation name.
        operation: String,
        /// Configured limit.
        after: Duration,
        /// What timed out below, where known (the HTTP client's error, say).
        #[source]
        source: Option<BoxError>,
    },
    /// The backend is unreachable or answered 5xx.
    #[error("{backend}: unavailable: {source}")]
    Unavailable {
        /// Backend name.
        backend: String,
        /// Underlying error.
        source: BoxError,
    },
    /// A circuit breaker is open and failed the call fast.
    #[error(
        "{backend}: circuit open after repeated failures, failing fast; retry after {}",
        human_duration(*retry_after)
    )]
    CircuitOpen {
        /// Backend name.
        backend: String,
        /// Time until the breaker lets a probe through.
        retry_after: Duration,
    },
    /// The object exists but its TTL has passed.
    #[error("{backend}: object `{key}` expired at {expired_at}")]
    Expired {
        /// Backend name.
        backend: String,
        /// Key.
        key: String,
        /// RFC 3339 expiry time.
        expired_at: String,
    },
    /// The backend cannot do this operation.
    #[error("{backend} does not support {operation}")]
    NotSupported {
        /// Backend name.
        backend: String,
        /// Operation name.
        operation: String,
    },
    /// A conflict that retrying with fresh state did not resolve (CAS retries exhausted).
    #[error(
        "{backend}: conflict on `{key}` after {attempts} attempts{}",
        last_etag.as_deref().map(|e| format!(" (last seen ETag {e})")).unwrap_or_default()
    )]
    Conflict {
        /// Backend name.
        backend: String,
        /// Key.
        key: String,
        /// Attempts made.
        attempts: u32,
        /// Last ETag observed.
        last_etag: Option<String>,
    },
    /// A write's answer was lost and what happened can no longer be determined (e.g. too
    /// many other writes landed before it could be checked). It may or may not have been
    /// applied; it was deliberately not repeated, so it was not applied twice. Not
    /// retryable: read the current state and decide.
    #[error("{backend}: outcome of the write to `{key}` is unknown: {detail}")]
    Ambiguous {
        /// Backend name.
        backend: String,
        /// Key.
        key: String,
        /// What is known.
        detail: String,
    },
    /// A copy succeeded but deleting the source failed: both copies exist, nothing was lost.
    #[error(
        "{backend}: moved `{from}` to `{to}` but could not delete the source ({source}); both copies exist, delete `{from}` by hand or retry"
    )]
    PartialMove {
        /// Backend name.
        backend: String,
        /// Source key (still present).
        from: String,
        /// Destination key (written).
        to: String,
        /// Why the delete failed.
        source: Box<StorageError>,
    },
    /// Stored data could not be decoded (bad JSON, wrong key, tampered ciphertext, ...).
    #[error("{backend}: cannot decode `{key}`: {reason}")]
    Corrupt {
        /// Backend name.
        backend: String,
        /// Key.
        key: String,
        /// What failed.
        reason: String,
    },
    /// Any other backend failure.
    #[error("{backend}: backend error{}: {source}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Backend {
        /// Backend name.
        backend: String,
        /// HTTP status, where known.
        status: Option<u16>,
        /// Underlying error.
        source: BoxError,
    },
}

/// A duration as people write it: `250ms`, `1.5s`, `30s`, `2m 30s` (never Rust's `Debug`).
fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) && d.subsec_millis() != 0 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

/// A coarse classification of errors, handy for metrics and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`StorageError::NotFound`] and [`StorageError::Expired`].
    NotFound,
    /// AlreadyExists, Precondition, Conflict.
    Conflict,
    /// NotModified.
    NotModified,
    /// AccessDenied, Unauthenticated.
    Auth,
    /// QuotaExceeded.
    Quota,
    /// InvalidKey, InvalidConfig, InvalidInput.
    BadInput,
    /// Timeout.
    Timeout,
    /// Unavailable, CircuitOpen.
    Unavailable,
    /// NotSupported.
    NotSupported,
    /// Corrupt, PartialMove, Ambiguous, Backend.
    Other,
}

impl ErrorKind {
    /// Stable lowercase name, for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::NotModified => "not_modified",
            ErrorKind::Auth => "auth",
            ErrorKind::Quota => "quota",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotSupported => "not_supported",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Wrapper that lets a [`StorageError`] travel through `object_store::Error::Generic`.
#[derive(Debug)]
struct Carried(StorageError);

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Carried {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl StorageError {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        use StorageError::*;
        match self {
            NotFound { .. } | Expired { .. } => ErrorKind::NotFound,
            AlreadyExists { .. } | Precondition { .. } | Conflict { .. } => ErrorKind::Conflict,
            NotModified { .. } => ErrorKind::NotModified,
            AccessDenied { .. } | Unauthenticated { .. } => ErrorKind::Auth,
            QuotaExceeded { .. } => ErrorKind::Quota,
            InvalidKey { .. } | InvalidConfig { .. } | InvalidInput { .. } => ErrorKind::BadInput,
            Timeout { .. } => ErrorKind::Timeout,
            Unavailable { .. } | CircuitOpen { .. } => ErrorKind::Unavailable,
            NotSupported { .. } => ErrorKind::NotSupported,
            PartialMove { .. } | Corrupt { .. } | Ambiguous { .. } | Backend { .. } => {
                ErrorKind::Other
            }
        }
    }

    /// Whether repeating the same call may succeed: timeouts, unavailability, rate limits and
    /// 5xx/429 backend errors. Preconditions, not-found, bad input and auth never are.
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::Timeout { .. }
            | StorageError::Unavailable { .. }
            | StorageError::QuotaExceeded { .. } => true,
            StorageError::Backend { status, .. } => {
                matches!(status, None | Some(408 | 429 | 500..=599))
            }
            _ => false,
        }
    }

    /// Whether this is [`StorageError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// Whether this is a failed precondition, an existing object on create, or a CAS conflict.
    pub fn is_conflict(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }

    /// The backend name carried by this error, if any.
    pub fn backend(&self) -> Option<&str> {
        use StorageError::*;
        match self {
            NotFound { backend, .. }
            | AlreadyExists { backend, .. }
            | Precondition { backend, .. }
            | NotModified { backend, .. }
            | AccessDenied { backend, .. }
            | Unauthenticated { backend, .. }
            | QuotaExceeded { backend, .. }
            | Timeout { backend, .. }
            | Unavailable { backend, .. }
            | CircuitOpen { backend, .. }
            | Expired { backend, .. }
            | NotSupported { backend, .. }
            | Conflict { backend, .. }
            | PartialMove { backend, .. }
            | Ambiguous { backend, .. }
            | Corrupt { backend, .. }
            | Backend { backend, .. } => Some(backend),
            InvalidKey { .. } | InvalidConfig { .. } | InvalidInput { .. } => None,
        }
    }

    /// Shorthand for [`StorageError::InvalidConfig`].
    pub fn invalid_config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StorageError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StorageError::InvalidInput`].
    pub fn invalid_input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StorageError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StorageError::NotSupported`].
    pub fn not_supported(backend: impl Into<String>, operation: impl Into<String>) -> Self {
        StorageError::NotSupported {
            backend: backend.into(),
            operation: operation.into(),
        }
    }

    /// Map an `object_store` error. `backend` names the store, for messages.
    ///
    /// HTTP status decides first, then the provider's error code (S3 `SlowDown`,
    /// `ConditionalRequestConflict`, ...) refines it. A [`StorageError`] wrapped by
    /// [`StorageError::into_object_store`] comes back unchanged.
    #[cold]
    #[inline(never)]
    pub fn from_object_store(backend: &str, err: object_store::Error) -> Self {
        use object_store::Error as E;
        let backend_s = backend.to_string();
        match err {
            E::NotFound { path, .. } => StorageError::NotFound {
                backend: backend_s,
                key: path,
            },
            E::AlreadyExists { path, .. } => StorageError::AlreadyExists {
                backend: backend_s,
                key: path,
            },
            E::Precondition { path, source } => {
                let detail = source.to_string();
                // S3 answers a concurrent conditional write with 409 ConditionalRequestConflict:
                // the same outcome for the caller as a stale ETag — re-read and retry.
                StorageError::Precondition {
                    backend: backend_s,
                    key: path,
                    detail,
                }
            }
            E::NotModified { path, source } => StorageError::NotModified {
                backend: backend_s,
                key: path,
                etag: source.to_string(),
            },
            E::PermissionDenied { path, source } => StorageError::AccessDenied {
                backend: backend_s,
                key: path,
                source,
            },
            E::Unauthenticated { source, .. } => StorageError::Unauthenticated {
                backend: backend_s,
                source,
            },
            E::InvalidPath { source } => StorageError::InvalidKey {
                key: String::new(),
                rule: source.to_string(),
            },
            E::NotSupported { source } => StorageError::NotSupported {
                backend: backend_s,
                operation: source.to_string(),
            },
            E::NotImplemented { operation, .. } => StorageError::NotSupported {
                backend: backend_s,
                operation,
            },
            E::UnknownConfigurationKey { key, store } => StorageError::InvalidConfig {
                field: key,
                reason: format!("not a configuration key of the {store} store"),
            },
            E::Generic { store, source } => match source.downcast::<Carried>() {
                Ok(carried) => carried.0,
                Err(source) => classify_generic(backend_s, store, source),
            },
            other => StorageError::Backend {
                backend: backend_s,
                status: None,
                source: Box::new(other),
            },
        }
    }

    /// Wrap this error so it can be returned from an `ObjectStore` method.
    ///
    /// Variants with an `object_store` twin (NotFound, AlreadyExists, Precondition,
    /// NotModified) become that twin so generic `object_store` users see the usual error;
    /// the rest travel inside `Generic` and are recovered by [`StorageError::from_object_store`].
    pub fn into_object_store(self) -> object_store::Error {
        match self {
            StorageError::NotFound { key, .. } => object_store::Error::NotFound {
                path: key.clone(),
                source: format!("object `{key}` not found").into(),
            },
            StorageError::AlreadyExists { key, .. } => object_store::Error::AlreadyExists {
                path: key.clone(),
                source: format!("object `{key}` already exists").into(),
            },
            StorageError::Precondition { key, detail, .. } => object_store::Error::Precondition {
                path: key,
                source: detail.into(),
            },
            StorageError::NotModified { key, etag, .. } => object_store::Error::NotModified {
                path: key,
                source: etag.into(),
            },
            other => object_store::Error::Generic {
                store: "strata",
                source: Box::new(Carried(other)),
            },
        }
    }
}

/// Classify an opaque client error by the HTTP status and S3 error code in its text.
fn classify_generic(backend: String, store: &'static str, source: BoxError) -> StorageError {
    // Provider error codes (S3's SlowDown, NoSuchBucket, ...) are matched by the provider
    // crate before an error gets here; this only reads what any store's chain can say: an
    // HTTP status and I/O error kinds, wherever they sit in the chain.
    let status = status_in_chain(source.as_ref());
    let io = error_sources(source.as_ref()).find_map(io_kind);
    use std::io::ErrorKind as Io;
    match (status, io) {
        (Some(429), _) => StorageError::QuotaExceeded {
            backend,
            detail: source.to_string(),
        },
        (Some(409), _) => StorageError::Precondition {
            backend,
            key: String::new(),
            detail: source.to_string(),
        },
        (Some(401), _) => StorageError::Unauthenticated { backend, source },
        (Some(403), _) => StorageError::AccessDenied {
            backend,
            key: String::new(),
            source,
        },
        (Some(500..=599 | 408), _) => StorageError::Unavailable { backend, source },
        (None, Some(Io::TimedOut)) => StorageError::Timeout {
            backend,
            operation: format!("{store} request"),
            after: Duration::ZERO,
            source: Some(source),
        },
        (
            None,
            Some(
                Io::ConnectionRefused
                | Io::ConnectionReset
                | Io::ConnectionAborted
                | Io::BrokenPipe
                | Io::UnexpectedEof
                | Io::Interrupted,
            ),
        ) => StorageError::Unavailable { backend, source },
        (status, _) => StorageError::Backend {
            backend,
            status,
            source,
        },
    }
}

/// The kind of the I/O error `e` is, looking inside `io::Error::other` wrappers (whose
/// `source()` skips the wrapped error itself); `Other` is no answer.
pub fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let io = e.downcast_ref::<std::io::Error>()?;
    match io.kind() {
        std::io::ErrorKind::Other => io.get_ref().and_then(|inner| io_kind(inner)),
        kind => Some(kind),
    }
}

/// `err` and every error below it, outermost first.
pub fn error_sources<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

/// The first HTTP status (400-599) any error in the chain states in its message.
pub fn status_in_chain(err: &(dyn std::error::Error + 'static)) -> Option<u16> {
    error_sources(err).find_map(|e| find_status(&e.to_string()))
}

/// Find an HTTP status in an error message (`... status 503 ...`, `Server returned 404`,
/// object_store's `status code: 503`).
fn find_status(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    for (i, w) in bytes.windows(3).enumerate() {
        if w.iter().all(u8::is_ascii_digit)
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            && bytes.get(i + 3).is_none_or(|b| !b.is_ascii_alphanumeric())
        {
            let n: u16 = std::str::from_utf8(w).ok()?.parse().ok()?;
            if (400..600).contains(&n) {
                let before = text[..i].to_ascii_lowercase();
                if before.ends_with("status ")
                    || before.ends_with("status: ")
                    || before.ends_with("returned ")
                    || before.ends_with("code ")
                    || before.ends_with("code: ")
                    || before.ends_with("http ")
                {
                    return Some(n);
                }
            }
        }
    }
    None
}

impl From<object_store::path::Error> for StorageError {
    fn from(e: object_store::path::Error) -> Self {
        StorageError::InvalidKey {
            key: String::new(),
            rule: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carried_errors_round_trip() {
        let err = StorageError::CircuitOpen {
            backend: "s3".into(),
            retry_after: Duration::from_secs(3),
        };
        let back = StorageError::from_object_store("outer", err.into_object_store());
        assert!(matches!(back, StorageError::CircuitOpen { backend, .. } if backend == "s3"));
    }

    #[test]
    fn status_codes_and_io_kinds_classify_from_the_chain() {
        // object_store's own wording.
        assert_eq!(
            find_status("Server returned non-2xx status code: 503 Service Unavailable: <Error>"),
            Some(503)
        );
        assert_eq!(find_status("connection reset"), None);
        let e = classify_generic(
            "s3".into(),
            "S3",
            "Server returned status 429 Too Many".into(),
        );
        assert!(matches!(e, StorageError::QuotaExceeded { .. }));
        assert!(e.is_retryable());
        let e = classify_generic("s3".into(), "S3", "request failed, status 500".into());
        assert!(matches!(e, StorageError::Unavailable { .. }));
        let e = classify_generic("s3".into(), "S3", "status 403 Forbidden".into());
        assert!(matches!(e, StorageError::AccessDenied { .. }));
        assert!(!e.is_retryable());
        // The I/O kind is found below the top-level message.
        let deep: BoxError = Box::new(std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "slow",
        )));
        let e = classify_generic("x".into(), "X", Box::new(Wrapped(deep)));
        assert!(
            matches!(
                e,
                StorageError::Timeout {
                    source: Some(_),
                    ..
                }
            ),
            "{e:?}"
        );
        // No text guessing: a message that merely mentions a timeout is not one.
        let e = classify_generic("x".into(), "X", "the word timeout".into());
        assert!(matches!(e, StorageError::Backend { .. }), "{e:?}");
    }

    #[derive(Debug)]
    struct Wrapped(BoxError);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(self.0.as_ref())
        }
    }

    #[test]
    fn not_found_maps_and_is_not_retryable() {
        let e = StorageError::from_object_store(
            "memory",
            object_store::Error::NotFound {
                path: "a/b".into(),
                source: "gone".into(),
            },
        );
        assert!(e.is_not_found());
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("a/b"));
    }
}
