//! The document crate's writes: each is a [`Bucket`] conditional write, which carries a
//! write id and resolves a lost answer itself (see [`storage_core::conditional`]). Nothing
//! here retries or guesses: this module only shapes the request.

use std::collections::BTreeMap;

use bytes::Bytes;
use storage_core::{
    Bucket, Key, ObjectInfo, PutOpts, Replaces, Result, StorageError, WriteCondition,
};

pub use storage_core::conditional::{WRITE_ID_META, WRITE_LOG_META};

/// An object read whole, with its ETag.
#[derive(Debug, Clone)]
pub(crate) struct Raw {
    pub bytes: Bytes,
    pub info: ObjectInfo,
    pub etag: String,
}

pub(crate) fn missing_etag(bucket: &Bucket, key: &Key) -> StorageError {
    StorageError::not_supported(
        bucket.name(),
        format!("compare-and-swap on `{key}`: the backend returned no ETag"),
    )
}

/// Read `key`; a missing object is `Ok(None)`.
pub(crate) async fn read(bucket: &Bucket, key: &Key) -> Result<Option<Raw>> {
    match bucket.get(key.as_str()).await {
        Ok(obj) => {
            let etag = obj
                .info
                .etag
                .clone()
                .ok_or_else(|| missing_etag(bucket, key))?;
            Ok(Some(Raw {
                bytes: obj.bytes,
                info: obj.info,
                etag,
            }))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// A write that is known to have applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Committed {
    /// ETag our write produced (`None` only for a superseded write whose ETag the object's
    /// write log no longer holds).
    pub etag: Option<String>,
    /// Version id, where the backend versions objects and it is known.
    pub version: Option<String>,
    /// Our write applied but another writer has replaced it since.
    pub superseded: bool,
}

/// One conditional write of a document-like object.
#[derive(Debug, Clone)]
pub(crate) struct WriteRequest<'a> {
    pub key: &'a Key,
    pub body: Bytes,
    pub condition: WriteCondition,
    /// User metadata (without Strata's write bookkeeping).
    pub metadata: BTreeMap<String, String>,
    pub content_type: Option<&'a str>,
    /// The object this write replaces, as last read (feeds the write log).
    pub previous: Option<&'a ObjectInfo>,
}

/// Write `req` through the bucket's conditional write. A conflict is returned as
/// `Precondition` (put-if-match) or `AlreadyExists` (create).
pub(crate) async fn write(bucket: &Bucket, req: WriteRequest<'_>) -> Result<Committed> {
    let mut metadata = req.metadata;
    metadata.remove(WRITE_ID_META);
    metadata.remove(WRITE_LOG_META);
    let opts = PutOpts {
        condition: req.condition,
        content_type: req.content_type.map(str::to_string),
        metadata,
        replaces: req.previous.and_then(Replaces::of),
        ..Default::default()
    };
    let w = bucket.put_with(req.key.as_str(), req.body, opts).await?;
    if w.etag.is_none() && !w.superseded {
        return Err(missing_etag(bucket, req.key));
    }
    Ok(Committed {
        etag: w.etag,
        version: w.version,
        superseded: w.superseded,
    })
}

/// Delete `key` only while its ETag is `etag` (a lost answer is resolved by the bucket).
pub(crate) async fn delete_if_match(bucket: &Bucket, key: &Key, etag: &str) -> Result<()> {
    bucket.delete_if_match(key.as_str(), etag).await
}
