//! Strata errors as S3 error codes: one function, used by every operation.

use s3s::{S3Error, S3ErrorCode};
use storage_core::StorageError;

/// The S3 answer for a Strata error. Messages never carry secrets (Strata's errors do not).
pub fn to_s3(e: StorageError) -> S3Error {
    use StorageError as E;
    let code = match &e {
        E::NotFound { .. } => S3ErrorCode::NoSuchKey,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::Conflict { .. } => {
            S3ErrorCode::PreconditionFailed
        }
        E::NotModified { .. } => S3ErrorCode::NotModified,
        E::AccessDenied { .. } | E::Unauthenticated { .. } => S3ErrorCode::AccessDenied,
        E::QuotaExceeded { .. } => S3ErrorCode::SlowDown,
        E::InvalidKey { rule, .. } if rule.contains("1024") => S3ErrorCode::KeyTooLongError,
        E::InvalidKey { .. } | E::InvalidInput { .. } => S3ErrorCode::InvalidArgument,
        E::Timeout { .. } => S3ErrorCode::ServiceUnavailable,
        E::Unavailable { .. } | E::CircuitOpen { .. } => S3ErrorCode::ServiceUnavailable,
        E::Expired { .. } => S3ErrorCode::NoSuchKey,
        E::NotSupported { .. } => S3ErrorCode::NotImplemented,
        // A conditional write whose outcome is unknown: S3 answers 409 for a conflicting
        // conditional request in flight, and clients retry it with a fresh read.
        E::Ambiguous { .. } => S3ErrorCode::ConditionalRequestConflict,
        _ => S3ErrorCode::InternalError,
    };
    crate::metrics::error(code.as_str());
    if code == S3ErrorCode::InternalError {
        tracing::warn!(error = %e, "strata serve: backend error");
    }
    S3Error::with_message(code, e.to_string())
}

/// `NoSuchBucket` naming the bucket.
pub fn no_such_bucket(name: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchBucket,
        format!("no served bucket named `{name}`"),
    )
}

/// `AccessDenied` with a reason.
pub fn denied(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, msg.into())
}

/// `InvalidArgument` with a reason.
pub fn invalid(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, msg.into())
}

/// `NotImplemented` with a reason.
pub fn not_implemented(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::NotImplemented, msg.into())
}
