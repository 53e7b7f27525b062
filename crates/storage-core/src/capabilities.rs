//! What a backend can do, so callers and tests adapt instead of guessing.

use serde::Serialize;

/// Features a backend supports. Layers and the behaviour suite consult this: an operation a
/// backend lacks returns [`StorageError::NotSupported`](crate::StorageError::NotSupported),
/// and a test of it is reported as skipped with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// `PutMode::Create` is atomic.
    pub create_if_absent: bool,
    /// `PutMode::Update` (compare-and-swap on ETag) is atomic.
    pub put_if_match: bool,
    /// Conditional GET (If-None-Match → not modified, If-Match → precondition).
    pub get_if_none_match: bool,
    /// Atomic delete-if-match.
    pub delete_if_match: bool,
    /// Presigned URLs.
    pub presign: bool,
    /// Copy without moving bytes through the client.
    pub server_side_copy: bool,
    /// Multipart uploads.
    pub multipart: bool,
    /// Object tags.
    pub tags: bool,
    /// User metadata and content headers are stored.
    pub metadata: bool,
    /// Storage classes.
    pub storage_class: bool,
    /// Most keys one batch delete may carry.
    pub max_delete_batch: usize,
}

impl Capabilities {
    /// The in-memory backend.
    pub const MEMORY: Capabilities = Capabilities {
        create_if_absent: true,
        put_if_match: true,
        get_if_none_match: true,
        delete_if_match: true,
        presign: false,
        server_side_copy: true,
        multipart: true,
        tags: true,
        metadata: true,
        storage_class: false,
        max_delete_batch: 1000,
    };

    /// The local-folder backend: the same as [`MEMORY`](Self::MEMORY).
    pub const LOCAL: Capabilities = Self::MEMORY;

    /// Amazon S3 and faithful S3-compatible servers. `delete_if_match` is off here: a
    /// bucket claims it when it is given a conditional-delete hook (`storage-s3` gives one
    /// when its `conditional_delete` setting is on, as it is for AWS itself).
    pub const S3: Capabilities = Capabilities {
        create_if_absent: true,
        put_if_match: true,
        get_if_none_match: true,
        delete_if_match: false,
        presign: true,
        server_side_copy: true,
        multipart: true,
        tags: true,
        metadata: true,
        storage_class: true,
        max_delete_batch: 1000,
    };

    /// A copy with a different delete batch limit.
    pub const fn with_max_delete_batch(mut self, n: usize) -> Self {
        self.max_delete_batch = n;
        self
    }

    /// A copy with presigning switched on or off.
    pub const fn with_presign(mut self, on: bool) -> Self {
        self.presign = on;
        self
    }

    /// A copy with conditional writes switched on or off.
    pub const fn with_conditional_put(mut self, on: bool) -> Self {
        self.put_if_match = on;
        self.create_if_absent = on;
        self
    }

    /// A copy with conditional reads switched on or off.
    pub const fn with_conditional_get(mut self, on: bool) -> Self {
        self.get_if_none_match = on;
        self
    }
}
