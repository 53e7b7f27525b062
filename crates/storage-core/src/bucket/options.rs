//! What a write or a presigned URL asks for: [`PutOpts`], [`WriteCondition`], [`PresignMethod`].

use std::collections::BTreeMap;

use object_store::{Attribute, Attributes, PutMode, TagSet, UpdateVersion};
use serde::Serialize;

use super::results::ObjectInfo;
use crate::attrs::{validate_attributes, validate_user_metadata};
use crate::conditional::Replaces;
use crate::error::{Result, StorageError};

/// HTTP method of a presigned URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PresignMethod {
    /// Download.
    Get,
    /// Upload.
    Put,
}

/// The precondition of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WriteCondition {
    /// Write whatever is there.
    #[default]
    Overwrite,
    /// Create only; an existing object is `AlreadyExists`.
    IfAbsent,
    /// Replace only the object with this ETag (and version, where the backend has them);
    /// anything else is `Precondition`.
    IfMatch {
        /// Expected ETag.
        etag: String,
        /// Expected version, where the backend versions objects.
        version: Option<String>,
    },
}

/// Options for a put.
#[derive(Debug, Clone, Default)]
pub struct PutOpts {
    /// Precondition.
    pub condition: WriteCondition,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// User metadata (`x-amz-meta-*`); at most 2 KiB in all.
    pub metadata: BTreeMap<String, String>,
    /// Object tags.
    pub tags: BTreeMap<String, String>,
    /// Storage class (`STANDARD`, `STANDARD_IA`, `GLACIER_IR`, ...).
    pub storage_class: Option<String>,
    /// The object a compare-and-swap replaces (set by [`PutOpts::replacing`]): its write id
    /// and log seed this write's log, so concurrent writers can resolve lost answers (see
    /// [`conditional`](crate::conditional)).
    pub replaces: Option<Replaces>,
}

impl PutOpts {
    /// Create-if-absent.
    pub fn if_absent() -> Self {
        PutOpts {
            condition: WriteCondition::IfAbsent,
            ..Default::default()
        }
    }

    /// Put-if-match.
    pub fn if_match(etag: impl Into<String>) -> Self {
        PutOpts {
            condition: WriteCondition::IfMatch {
                etag: etag.into(),
                version: None,
            },
            ..Default::default()
        }
    }

    /// Compare-and-swap over `info`, the object as last read: put-if-match on its ETag (and
    /// version), carrying its write history so that any writer whose answer was lost can
    /// still tell whether its write landed. Prefer this to [`if_match`](Self::if_match)
    /// whenever the object was read first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> storage_core::Result<()> {
    /// use storage_core::{Bucket, PutOpts};
    /// let bucket = Bucket::memory("docs");
    /// bucket.put_with("n", "1", PutOpts::if_absent()).await?;
    /// let seen = bucket.get("n").await?;
    /// bucket.put_with("n", "2", PutOpts::replacing(&seen.info)?).await?;
    /// assert_eq!(bucket.get("n").await?.bytes, "2");
    /// # Ok(()) }
    /// ```
    pub fn replacing(info: &ObjectInfo) -> Result<Self> {
        let replaces = Replaces::of(info).ok_or_else(|| {
            StorageError::not_supported(
                "store",
                format!(
                    "compare-and-swap on `{}`: the backend returned no ETag",
                    info.key
                ),
            )
        })?;
        Ok(PutOpts {
            condition: WriteCondition::IfMatch {
                etag: replaces.etag().to_string(),
                version: info.version.clone(),
            },
            replaces: Some(replaces),
            ..Default::default()
        })
    }

    /// Set the content type.
    pub fn with_content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }

    /// Add one user metadata entry.
    pub fn with_metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }

    /// Add one tag.
    pub fn with_tag(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.tags.insert(k.into(), v.into());
        self
    }

    /// Validate, then translate to `object_store` attributes and tags.
    pub fn to_attributes(&self) -> Result<(Attributes, TagSet)> {
        if self.has_no_attributes() {
            return Ok((Attributes::new(), TagSet::default()));
        }
        validate_user_metadata(self.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let mut attrs = Attributes::new();
        let headers = [
            (Attribute::ContentType, &self.content_type),
            (Attribute::CacheControl, &self.cache_control),
            (Attribute::ContentDisposition, &self.content_disposition),
            (Attribute::ContentEncoding, &self.content_encoding),
            (Attribute::StorageClass, &self.storage_class),
        ];
        for (attr, value) in headers {
            if let Some(v) = value {
                attrs.insert(attr, v.clone().into());
            }
        }
        for (k, v) in &self.metadata {
            attrs.insert(Attribute::Metadata(k.clone().into()), v.clone().into());
        }
        let mut tags = TagSet::default();
        for (k, v) in &self.tags {
            if k.is_empty() || k.len() > 128 || v.len() > 256 {
                return Err(StorageError::invalid_input(
                    format!("tag `{k}`"),
                    "tag keys must be 1-128 characters and values at most 256",
                ));
            }
            tags.push(k, v);
        }
        validate_attributes(&attrs)?;
        Ok((attrs, tags))
    }

    /// No headers, metadata or tags: most writes, which then skip the translation.
    fn has_no_attributes(&self) -> bool {
        self.content_type.is_none()
            && self.cache_control.is_none()
            && self.content_disposition.is_none()
            && self.content_encoding.is_none()
            && self.storage_class.is_none()
            && self.metadata.is_empty()
            && self.tags.is_empty()
    }

    pub(super) fn mode(&self) -> PutMode {
        match &self.condition {
            WriteCondition::Overwrite => PutMode::Overwrite,
            WriteCondition::IfAbsent => PutMode::Create,
            WriteCondition::IfMatch { etag, version } => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.clone()),
                version: version.clone(),
            }),
        }
    }
}
