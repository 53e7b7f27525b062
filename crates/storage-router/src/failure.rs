//! Per-bucket failures, and the error for "every bucket of a set failed".

use std::fmt;

use serde::Serialize;
use storage_core::{ErrorKind, StorageError};

/// One bucket's failure inside a multi-bucket operation.
#[derive(Debug)]
pub struct BucketFailure {
    /// Bucket handle name.
    pub bucket: String,
    /// What went wrong there.
    pub error: StorageError,
}

impl Serialize for BucketFailure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("BucketFailure", 3)?;
        st.serialize_field("bucket", &self.bucket)?;
        st.serialize_field("kind", self.error.kind().as_str())?;
        st.serialize_field("error", &self.error.to_string())?;
        st.end()
    }
}

impl fmt::Display for BucketFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.bucket, self.error)
    }
}

/// Every bucket of a source set failed. Travels as the `source` of
/// [`StorageError::Unavailable`]; downcast to read the failures one by one.
///
/// ```
/// # use storage_router::{AllBucketsFailed, BucketFailure};
/// # use storage_core::StorageError;
/// let all = AllBucketsFailed {
///     set: "tide".into(),
///     failures: vec![BucketFailure {
///         bucket: "agent".into(),
///         error: StorageError::invalid_input("x", "y"),
///     }],
/// };
/// let err = all.into_error();
/// assert!(err.to_string().contains("agent"));
/// let back = AllBucketsFailed::from_error(&err).unwrap();
/// assert_eq!(back.failures[0].bucket, "agent");
/// ```
#[derive(Debug)]
pub struct AllBucketsFailed {
    /// Name of the set (source set, mirror, ...).
    pub set: String,
    /// Each bucket's failure, in the order tried.
    pub failures: Vec<BucketFailure>,
}

impl fmt::Display for AllBucketsFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all {} bucket(s) of `{}` failed: ",
            self.failures.len(),
            self.set
        )?;
        for (i, failure) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "[{failure}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for AllBucketsFailed {}

impl AllBucketsFailed {
    /// As a [`StorageError::Unavailable`] whose backend is the set's name.
    pub fn into_error(self) -> StorageError {
        StorageError::Unavailable {
            backend: format!("set `{}`", self.set),
            source: Box::new(self),
        }
    }

    /// The failures inside an error made by [`AllBucketsFailed::into_error`].
    pub fn from_error(err: &StorageError) -> Option<&AllBucketsFailed> {
        match err {
            StorageError::Unavailable { source, .. } => source.downcast_ref(),
            _ => None,
        }
    }
}

/// Whether an error means the bucket (not the object) is unavailable: retryable errors,
/// timeouts, open circuits. This is what triggers provider failover.
pub(crate) fn is_unavailable(err: &StorageError) -> bool {
    err.is_retryable() || matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
}

/// Whether an error is a definite answer that every bucket would give alike (bad key or
/// argument, not modified, failed precondition), so trying other buckets is pointless.
pub(crate) fn is_final_answer(err: &StorageError) -> bool {
    matches!(
        err,
        StorageError::InvalidKey { .. }
            | StorageError::InvalidInput { .. }
            | StorageError::NotModified { .. }
            | StorageError::Precondition { .. }
    )
}

/// Whether an error counts against the bucket's health: anything but an answer about the
/// object (not found, expired, or a final answer).
pub(crate) fn is_bucket_failure(err: &StorageError) -> bool {
    !(matches!(err.kind(), ErrorKind::NotFound) || is_final_answer(err))
}
