//! Copying one object between buckets with bounded memory, keeping its headers and user
//! metadata, and hashing it on the way.

use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use storage_core::{Bucket, Key, ObjectInfo, PutOpts, Result, StorageError, WriteResult};

/// What a copy wrote.
#[derive(Debug, Clone)]
pub(crate) struct Copied {
    pub(crate) write: WriteResult,
    pub(crate) md5: String,
    pub(crate) source: ObjectInfo,
}

/// Headers and metadata of `info` as write options, optionally with a new storage class.
pub(crate) fn put_opts_from(info: &ObjectInfo, storage_class: Option<&str>) -> PutOpts {
    let h = |name: &str| info.headers.get(name).cloned();
    PutOpts {
        content_type: h("content-type"),
        cache_control: h("cache-control"),
        content_disposition: h("content-disposition"),
        content_encoding: h("content-encoding"),
        storage_class: storage_class
            .map(str::to_string)
            .or_else(|| h("storage-class")),
        metadata: info.metadata.clone(),
        ..PutOpts::default()
    }
}

/// Stream `src_key` of `src` into `dst_key` of `dst`.
pub(crate) async fn copy_object(
    src: &Bucket,
    src_key: &Key,
    dst: &Bucket,
    dst_key: &Key,
    storage_class: Option<&str>,
) -> Result<Copied> {
    let s = src.get_stream(src_key).await?;
    let opts = put_opts_from(&s.info, storage_class);
    let hasher = Arc::new(Mutex::new(Md5::new()));
    let h = hasher.clone();
    let body = s.stream.inspect_ok(move |chunk| {
        h.lock().unwrap_or_else(|p| p.into_inner()).update(chunk);
    });
    let write = dst.put_stream(dst_key, body, opts).await?;
    let md5 = hex::encode(
        hasher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .finalize(),
    );
    if write.size != s.info.size {
        return Err(StorageError::Corrupt {
            backend: dst.name().to_string(),
            key: dst_key.to_string(),
            reason: format!(
                "copied {} bytes but the source `{}` in `{}` has {}",
                write.size,
                src_key,
                src.name(),
                s.info.size
            ),
        });
    }
    Ok(Copied {
        write,
        md5,
        source: s.info,
    })
}

/// MD5 (hex) of an object's bytes, read as a stream.
pub(crate) async fn md5_of(bucket: &Bucket, key: &Key) -> Result<String> {
    let s = bucket.get_stream(key).await?;
    let mut hasher = Md5::new();
    let mut stream = s.stream;
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Whether an ETag is a plain MD5 of the content (S3/R2 single-part uploads): 32 hex digits.
pub(crate) fn etag_md5(etag: Option<&str>) -> Option<String> {
    let e = etag?.trim().trim_start_matches("W/").trim_matches('"');
    (e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit())).then(|| e.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_md5_etags() {
        assert_eq!(
            etag_md5(Some("\"9E107D9D372BB6826BD81D3542A419D6\"")).as_deref(),
            Some("9e107d9d372bb6826bd81d3542a419d6")
        );
        assert_eq!(
            etag_md5(Some("\"abc-2\"")),
            None,
            "multipart ETags are not MD5s"
        );
        assert_eq!(etag_md5(Some("3")), None);
        assert_eq!(etag_md5(None), None);
    }
}
