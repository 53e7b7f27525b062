//! Binary attachments stored beside a document (seed 001's `putFile` / `getFile`).

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use storage_core::{Key, PutOpts, Result, StorageError};

use crate::collection::{Collection, Written, delete_all, user_metadata};

/// Attachments of the document at `KEY` live under `KEY.attachments/`: a sibling, not a
/// child, so the document key never has to be a folder (some S3-compatible servers cannot
/// hold both `a/b` and `a/b/c`) and listings of the collection skip them.
pub const ATTACHMENTS_SUFFIX: &str = ".attachments";

/// User-metadata name of an attachment's original filename (percent-encoded UTF-8, because
/// S3 metadata values must be ASCII).
pub const FILENAME_META: &str = "strata-filename";

/// A binary attachment: bytes plus content type, filename and user metadata.
///
/// ```
/// use storage_cas::{Attachment, Collection};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
/// # let bucket = storage_core::Bucket::memory("m");
/// let files: Collection<serde_json::Value> = Collection::new(&bucket, "files/{id}.json")?;
/// files.put("f1", &serde_json::json!({"title": "Holiday"})).await?;
/// let photo = Attachment::new(vec![0xFF, 0xD8, 0xFF])
///     .with_content_type("image/jpeg")
///     .with_filename("plage d'été.jpg");
/// files.put_attachment("f1", "photo", photo).await?;
///
/// let back = files.get_attachment("f1", "photo").await?.unwrap();
/// assert_eq!(back.content_type.as_deref(), Some("image/jpeg"));
/// assert_eq!(back.filename.as_deref(), Some("plage d'été.jpg"));
/// assert_eq!(files.delete_with_attachments("f1").await?, 1);
/// assert!(files.get_attachment("f1", "photo").await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attachment {
    /// The bytes.
    pub bytes: Bytes,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Original filename (any UTF-8).
    pub filename: Option<String>,
    /// User metadata (ASCII names and values; `strata-*` names are reserved).
    pub metadata: BTreeMap<String, String>,
    /// ETag, when read from the store.
    pub etag: Option<String>,
}

impl Attachment {
    /// An attachment holding `bytes`.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Attachment {
            bytes: bytes.into(),
            ..Default::default()
        }
    }

    /// Set the content type.
    pub fn with_content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }

    /// Set the original filename.
    pub fn with_filename(mut self, name: impl Into<String>) -> Self {
        self.filename = Some(name.into());
        self
    }

    /// Add one user metadata entry.
    pub fn with_metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }
}

/// One attachment in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachmentInfo {
    /// Attachment name (what was passed to [`Collection::put_attachment`]).
    pub name: String,
    /// Object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag.
    pub etag: Option<String>,
    /// Last write.
    pub last_modified: DateTime<Utc>,
}

fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (b' '..=b'~').contains(&b) && b != b'%' && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pct_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl<T> Collection<T>
where
    T: Serialize + DeserializeOwned + Send,
{
    /// The folder holding the attachments of document `id`.
    pub fn attachments_prefix(&self, id: &str) -> Result<Key> {
        let doc = self.key_for(id)?;
        Key::new(format!("{doc}{ATTACHMENTS_SUFFIX}"))
    }

    fn attachment_key(&self, id: &str, name: &str) -> Result<Key> {
        let prefix = self.attachments_prefix(id)?;
        prefix.join(name).map_err(|e| {
            StorageError::invalid_input(
                "attachment name",
                format!(
                    "`{}` is not a valid attachment name: {e}",
                    name.escape_debug()
                ),
            )
        })
    }

    /// Store `attachment` as `name` beside document `id` (unconditionally; the document
    /// need not exist yet). `name` may contain `/` but no `.`/`..` segments.
    pub async fn put_attachment(
        &self,
        id: &str,
        name: &str,
        attachment: Attachment,
    ) -> Result<Written> {
        let key = self.attachment_key(id, name)?;
        let mut opts = PutOpts {
            content_type: attachment.content_type.clone(),
            metadata: user_metadata(&attachment.metadata),
            ..Default::default()
        };
        if let Some(f) = &attachment.filename {
            let encoded = pct_encode(f);
            opts.content_disposition = Some(format!(
                "attachment; filename=\"{encoded}\"; filename*=UTF-8''{}",
                encoded.replace(' ', "%20")
            ));
            opts.metadata.insert(FILENAME_META.to_string(), encoded);
        }
        let w = self
            .bucket
            .put_with(key.as_str(), attachment.bytes, opts)
            .await?;
        Ok(Written {
            etag: w.etag,
            version: w.version,
            expires_at: None,
            superseded: false,
        })
    }

    /// Read attachment `name` of document `id`; `None` if there is none.
    pub async fn get_attachment(&self, id: &str, name: &str) -> Result<Option<Attachment>> {
        let key = self.attachment_key(id, name)?;
        let obj = match self.bucket.get(key.as_str()).await {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let filename = obj
            .info
            .metadata
            .get(FILENAME_META)
            .and_then(|f| pct_decode(f));
        Ok(Some(Attachment {
            content_type: obj.info.content_type().map(str::to_string),
            filename,
            metadata: user_metadata(&obj.info.metadata),
            etag: obj.info.etag.clone(),
            bytes: obj.bytes,
        }))
    }

    /// The attachments of document `id`, sorted by name.
    pub async fn list_attachments(&self, id: &str) -> Result<Vec<AttachmentInfo>> {
        let prefix = self.attachments_prefix(id)?;
        let strip = format!("{prefix}/");
        let mut out: Vec<AttachmentInfo> = self
            .bucket
            .list(prefix.as_str())
            .map_ok(|o| AttachmentInfo {
                name: o.key.strip_prefix(&strip).unwrap_or(&o.key).to_string(),
                key: o.key,
                size: o.size,
                etag: o.etag,
                last_modified: o.last_modified,
            })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Delete attachment `name` of document `id` (a missing one is fine).
    pub async fn delete_attachment(&self, id: &str, name: &str) -> Result<()> {
        let key = self.attachment_key(id, name)?;
        self.bucket.delete(key.as_str()).await
    }

    /// Delete every attachment of document `id` in batches; returns how many were deleted.
    pub async fn delete_attachments(&self, id: &str) -> Result<u64> {
        let keys: Vec<String> = self
            .list_attachments(id)
            .await?
            .into_iter()
            .map(|a| a.key)
            .collect();
        delete_all(&self.bucket, &keys, |n| {
            format!("deleted {n} attachments of `{id}`")
        })
        .await
    }

    /// Delete document `id` (unconditionally) and then all its attachments; returns how many
    /// attachments were deleted. If deleting an attachment fails the document is already
    /// gone; calling this again finishes the job.
    pub async fn delete_with_attachments(&self, id: &str) -> Result<u64> {
        self.delete(id).await?;
        self.delete_attachments(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filename_encoding_round_trips() {
        for name in [
            "photo.jpg",
            "plage d'été.jpg",
            "100% \"real\"\\.txt",
            "日本.png",
        ] {
            let enc = pct_encode(name);
            assert!(enc.chars().all(|c| (' '..='~').contains(&c)), "{enc}");
            assert_eq!(pct_decode(&enc).as_deref(), Some(name));
        }
        assert_eq!(pct_decode("%zz"), None);
    }
}
