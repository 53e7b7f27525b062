//! Transparent compression: gzip (always) and zstd (`zstd` feature).
//!
//! # Choosing what is compressed
//!
//! For each put, in this order:
//! 1. a request attribute `Attribute::Metadata("strata-compress")` = `gzip` / `zstd` / `none`
//!    on the put (removed before storing) — see [`compress_with`];
//! 2. the first content-type rule whose prefix matches the put's `Content-Type`
//!    ([`CompressionLayer::with_rule`], e.g. `application/json` → zstd);
//! 3. the layer's default codec (none unless set).
//!
//! Payloads smaller than [`CompressionLayer::with_min_size`] (default 1 KiB) and puts that
//! already carry a `Content-Encoding` are stored as they are.
//!
//! # What is stored
//!
//! The compressed bytes, with `Content-Encoding: gzip` (or `zstd`) so that boto3, curl
//! (`--compressed`) or a browser can decode them, plus user metadata
//! `strata-compression: gzip|zstd` and `strata-uncompressed-size: N`. On get, objects with
//! both markers are decompressed and returned without them; all other objects (written
//! before compression was enabled, or by other clients, even with a `Content-Encoding` of
//! their own) pass through unchanged, bytes and attributes as stored.
//!
//! # What size, range and ETag mean
//!
//! - `get`/`head` report the **uncompressed** size (from the stored metadata; a multipart
//!   upload cannot know it in advance, so its `head` reports the stored size). `list`
//!   reports the **stored** (compressed) size: listings carry no metadata.
//! - Ranges are in uncompressed bytes: the layer fetches the whole object, decompresses it
//!   and slices (**decompress-then-slice**). A range read of a compressed object therefore
//!   costs a whole-object read; do not compress objects you read by ranges (Parquet, media).
//! - The ETag is the backend's ETag of the **stored** bytes: conditional reads and writes
//!   (If-Match, If-None-Match, compare-and-swap) work unchanged, and the ETag changes
//!   whenever the stored bytes do.
//!
//! # Multipart uploads
//!
//! Content-type rules and the default codec apply to single puts only. A multipart upload
//! is compressed (as it streams, in parts of at least 5 MiB) only when it asks with the
//! request attribute: its uncompressed size is unknown when the upload starts, so its
//! `head` reports the stored size, and large objects are usually read by ranges, which
//! compression turns into whole-object reads.
//!
//! # Presigned and public URLs
//!
//! They serve the stored bytes with their `Content-Encoding`: browsers and
//! `curl --compressed` decode gzip transparently; zstd needs a client that supports it, so
//! prefer gzip for objects shared through URLs.
//!
//! # Copies
//!
//! `copy` and `rename` keep the stored bytes and attributes. For copy-if-absent of a
//! compressed object the layer copies through the client (read, then write with
//! create-if-absent): S3's emulated copy-if-absent (a multipart upload of copied parts)
//! drops metadata and `Content-Encoding`, which would leave a copy that reads back as raw
//! compressed bytes.
//!
//! # Where it belongs
//!
//! Above encryption (compress, then encrypt: ciphertext does not compress) and above retry
//! (compress once, resend the same bytes), below the cache (cache what the application
//! reads): `metrics → cache → **compression** → encryption → retry → …`. Compressing secret
//! data before encryption can leak information through the compressed length when an
//! attacker controls part of the plaintext (CRIME/BREACH); leave such objects uncompressed.
//!
//! ```
//! use std::sync::Arc;
//! use object_store::{Attribute, ObjectStoreExt, PutOptions, path::Path};
//! use storage_core::{Layer, MemoryStore};
//! use storage_layers::compression::{Codec, CompressionLayer};
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let backend = Arc::new(MemoryStore::new());
//! let store = CompressionLayer::default().with_default(Codec::Gzip).layer(backend.clone());
//! let json = "{\"a\": 1}".repeat(1000);
//! store.put(&Path::from("doc.json"), json.clone().into()).await.unwrap();
//!
//! // Stored compressed, marked for other clients...
//! let raw = backend.get(&Path::from("doc.json")).await.unwrap();
//! assert_eq!(raw.attributes.get(&Attribute::ContentEncoding).unwrap().as_ref(), "gzip");
//! assert!(raw.meta.size < 200);
//! // ...and read back as written.
//! assert_eq!(store.get(&Path::from("doc.json")).await.unwrap().bytes().await.unwrap(), json);
//! # }
//! ```

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, CopyMode, CopyOptions, GetOptions, ObjectStore,
    ObjectStoreExt, PutMode, PutOptions, RenameTargetMode, Result as OsResult,
};

use storage_core::{StorageError, StrataStore};

use crate::transform::{
    EncodingUpload, PartEncoder, byte_transforming_strata_store, check_range, range_err,
};
use crate::util::{cpu, into_stream, os_err, payload_bytes};

/// Request attribute choosing the codec of one put: `gzip`, `zstd` or `none`.
pub const COMPRESS_ATTRIBUTE: &str = "strata-compress";
/// Stored metadata naming the codec.
pub const CODEC_METADATA: &str = "strata-compression";
/// Stored metadata holding the uncompressed size.
pub const SIZE_METADATA: &str = "strata-uncompressed-size";

/// A compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Codec {
    /// gzip (RFC 1952), readable by every HTTP client.
    Gzip,
    /// zstd (RFC 8878): faster and smaller; needs the `zstd` feature.
    Zstd,
}

impl Codec {
    /// The `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
        }
    }

    /// Parse a `Content-Encoding` token.
    pub fn parse(s: &str) -> Option<Codec> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Some(Codec::Gzip),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }

    #[cfg_attr(feature = "zstd", allow(dead_code))]
    fn unavailable() -> StorageError {
        StorageError::not_supported(
            "compression",
            "zstd (storage-layers was built without the `zstd` feature)",
        )
    }

    /// Compress `data` at `level` (None = the codec's default).
    pub fn compress(self, data: &[u8], level: Option<i32>) -> storage_core::Result<Vec<u8>> {
        let mut enc = Encoder::new(self, level)?;
        enc.write(data)?;
        enc.finish()
    }

    /// Decompress `data`.
    pub fn decompress(self, data: &[u8]) -> storage_core::Result<Vec<u8>> {
        self.decompress_limited(data, u64::MAX)
    }

    /// Decompress `data`, refusing output larger than `max` bytes (a small object that
    /// inflates to gigabytes, a "decompression bomb", fails instead of exhausting memory).
    pub fn decompress_limited(self, data: &[u8], max: u64) -> storage_core::Result<Vec<u8>> {
        let mut out = Vec::new();
        let cap = max.saturating_add(1);
        let res = match self {
            Codec::Gzip => flate2::read::MultiGzDecoder::new(data)
                .take(cap)
                .read_to_end(&mut out),
            #[cfg(feature = "zstd")]
            Codec::Zstd => zstd::stream::read::Decoder::new(data)
                .and_then(|d| d.take(cap).read_to_end(&mut out)),
            #[cfg(not(feature = "zstd"))]
            Codec::Zstd => return Err(Codec::unavailable()),
        };
        res.map_err(|e| StorageError::Corrupt {
            backend: "compression".into(),
            key: String::new(),
            reason: format!("{} data does not decompress: {e}", self.as_str()),
        })?;
        if out.len() as u64 > max {
            return Err(StorageError::invalid_input(
                "max_decompressed_bytes",
                format!(
                    "the object decompresses to more than {max} bytes, the layer's limit; raise it with CompressionLayer::with_max_decompressed_bytes if this object is legitimate"
                ),
            ));
        }
        Ok(out)
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A streaming encoder into a growing buffer.
enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

fn io_err(e: std::io::Error) -> StorageError {
    StorageError::Backend {
        backend: "compression".into(),
        status: None,
        source: Box::new(e),
    }
}

impl Encoder {
    fn new(codec: Codec, level: Option<i32>) -> storage_core::Result<Encoder> {
        Ok(match codec {
            Codec::Gzip => {
                let level = level.map_or(flate2::Compression::default(), |l| {
                    flate2::Compression::new(l.clamp(0, 9) as u32)
                });
                Encoder::Gzip(flate2::write::GzEncoder::new(Vec::new(), level))
            }
            #[cfg(feature = "zstd")]
            Codec::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(Vec::new(), level.unwrap_or(3))
                    .map_err(io_err)?,
            ),
            #[cfg(not(feature = "zstd"))]
            Codec::Zstd => {
                let _ = level;
                return Err(Codec::unavailable());
            }
        })
    }
}

/// Compressed output is sent as it is produced (see "Multipart uploads").
impl PartEncoder for Encoder {
    const NAME: &'static str = "Compressing";

    fn write(&mut self, data: &[u8]) -> storage_core::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.write_all(data),
        }
        .map_err(io_err)
    }

    /// Compressed bytes produced so far (taken out of the buffer).
    fn take(&mut self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => std::mem::take(e.get_mut()),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => std::mem::take(e.get_mut()),
        }
    }

    fn buffered(&self) -> usize {
        match self {
            Encoder::Gzip(e) => e.get_ref().len(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.get_ref().len(),
        }
    }

    fn finish(self) -> storage_core::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.finish(),
        }
        .map_err(io_err)
    }
}

/// Ask for `codec` (or `None`: no compression) on one put, overriding the layer's rules.
///
/// ```
/// use object_store::PutOptions;
/// use storage_layers::compression::{compress_with, Codec};
/// let mut opts = PutOptions::default();
/// compress_with(&mut opts.attributes, Some(Codec::Gzip));
/// ```
pub fn compress_with(attributes: &mut Attributes, codec: Option<Codec>) {
    attributes.insert(
        Attribute::Metadata(COMPRESS_ATTRIBUTE.into()),
        AttributeValue::from(codec.map_or("none", Codec::as_str)),
    );
}

/// Compresses on put and decompresses on get; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct CompressionLayer {
    default: Option<Codec>,
    rules: Vec<(String, Option<Codec>)>,
    min_size: usize,
    level: Option<i32>,
    max_decompressed: u64,
}

impl Default for CompressionLayer {
    /// No default codec and no rules (only puts that ask are compressed), 1 KiB minimum,
    /// reads refused above 1 GiB decompressed.
    fn default() -> Self {
        CompressionLayer {
            default: None,
            rules: Vec::new(),
            min_size: 1024,
            level: None,
            max_decompressed: 1 << 30,
        }
    }
}

impl CompressionLayer {
    /// Compress every put not matched by a rule with `codec`.
    pub fn with_default(mut self, codec: Codec) -> Self {
        self.default = Some(codec);
        self
    }

    /// Puts whose `Content-Type` starts with `prefix` use `codec` (`None`: stored as is).
    /// Rules are tried in the order added.
    pub fn with_rule(
        mut self,
        content_type_prefix: impl Into<String>,
        codec: Option<Codec>,
    ) -> Self {
        self.rules
            .push((content_type_prefix.into().to_ascii_lowercase(), codec));
        self
    }

    /// Payloads smaller than this are stored uncompressed.
    pub fn with_min_size(mut self, bytes: usize) -> Self {
        self.min_size = bytes;
        self
    }

    /// Largest decompressed object a read accepts (default 1 GiB); a get decompresses the
    /// whole object in memory, so this bounds the memory one read can take.
    pub fn with_max_decompressed_bytes(mut self, bytes: u64) -> Self {
        self.max_decompressed = bytes;
        self
    }

    /// Compression level (gzip 0-9, zstd 1-22); default: each codec's default.
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = Some(level);
        self
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> CompressionStore<T> {
        CompressionStore {
            inner: Arc::new(inner),
            cfg: Arc::new(self.clone()),
        }
    }

    /// Which codec a put with these attributes gets; strips the request attribute.
    fn choose(&self, attrs: &mut Attributes) -> Option<Codec> {
        let requested = attrs
            .remove(&Attribute::Metadata(COMPRESS_ATTRIBUTE.into()))
            .map(|v| Codec::parse(v.as_ref()));
        if attrs.get(&Attribute::ContentEncoding).is_some() {
            return None;
        }
        if let Some(choice) = requested {
            return choice;
        }
        if let Some(ct) = attrs.get(&Attribute::ContentType) {
            let ct = ct.as_ref().to_ascii_lowercase();
            if let Some((_, codec)) = self.rules.iter().find(|(p, _)| ct.starts_with(p.as_str())) {
                return *codec;
            }
        }
        self.default
    }
}

crate::util::layer_wraps!(CompressionLayer);

/// A compressing store; made by [`CompressionLayer`].
pub struct CompressionStore<T: StrataStore> {
    inner: Arc<T>,
    cfg: Arc<CompressionLayer>,
}

crate::util::layer_store_fmt!(CompressionStore);

/// The codec a stored object was compressed with by this layer: both the marker metadata and
/// a matching `Content-Encoding` must be present. Objects other clients uploaded with a
/// `Content-Encoding` of their own pass through untouched, as a plain HTTP GET would.
fn stored_codec(attrs: &Attributes) -> Option<Codec> {
    let marker = attrs
        .get(&Attribute::Metadata(CODEC_METADATA.into()))
        .and_then(|v| Codec::parse(v.as_ref()))?;
    let encoding = attrs
        .get(&Attribute::ContentEncoding)
        .and_then(|v| Codec::parse(v.as_ref()))?;
    (marker == encoding).then_some(marker)
}

/// Errors that are the backend's answer about the object (not about the range asked for).
fn is_answer(e: &object_store::Error) -> bool {
    use storage_core::ErrorKind::*;
    matches!(
        crate::util::classify(e).kind,
        NotFound | Conflict | NotModified | Auth | Timeout | Unavailable
    )
}

fn strip_markers(attrs: &Attributes) -> Attributes {
    attrs
        .iter()
        .filter(|(k, _)| {
            !matches!(k, Attribute::ContentEncoding)
                && !matches!(k, Attribute::Metadata(m) if m == CODEC_METADATA || m == SIZE_METADATA)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn stored_size(attrs: &Attributes) -> Option<u64> {
    attrs
        .get(&Attribute::Metadata(SIZE_METADATA.into()))
        .and_then(|v| v.as_ref().parse().ok())
}

// A presigned URL would hand out the stored (compressed) bytes.
byte_transforming_strata_store!(
    CompressionStore,
    "compressed bucket",
    "presigned URLs: a URL would download the compressed bytes and an upload through \
     one would skip compression; read and write through Strata (or `strata serve`), \
     or presign from a bucket without the compression layer"
);

#[deny(clippy::missing_trait_methods)]
impl<T: StrataStore> ObjectStore for CompressionStore<T> {
    storage_core::store_fn!(put_opts, |this, location, payload, mut opts| {
        let codec = this.cfg.choose(&mut opts.attributes);
        let Some(codec) = codec.filter(|_| payload.content_length() >= this.cfg.min_size) else {
            return this.inner.put_opts(location, payload, opts).await;
        };
        let data = payload_bytes(&payload);
        let len = data.len();
        let level = this.cfg.level;
        let compressed = cpu(len, move || codec.compress(&data, level))
            .await
            .map_err(os_err)?;
        opts.attributes
            .insert(Attribute::ContentEncoding, codec.as_str().into());
        opts.attributes.insert(
            Attribute::Metadata(CODEC_METADATA.into()),
            codec.as_str().into(),
        );
        opts.attributes.insert(
            Attribute::Metadata(SIZE_METADATA.into()),
            len.to_string().into(),
        );
        this.inner.put_opts(location, compressed.into(), opts).await
    });

    storage_core::store_fn!(put_multipart_opts, |this, location, mut opts| {
        // Only an explicit request compresses a multipart upload: see "Multipart uploads".
        let asked = opts
            .attributes
            .get(&Attribute::Metadata(COMPRESS_ATTRIBUTE.into()))
            .and_then(|v| Codec::parse(v.as_ref()));
        let chosen = this.cfg.choose(&mut opts.attributes);
        let Some(codec) = asked.and(chosen) else {
            return this.inner.put_multipart_opts(location, opts).await;
        };
        let encoder = Encoder::new(codec, this.cfg.level).map_err(os_err)?;
        opts.attributes
            .insert(Attribute::ContentEncoding, codec.as_str().into());
        opts.attributes.insert(
            Attribute::Metadata(CODEC_METADATA.into()),
            codec.as_str().into(),
        );
        let upload = this.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(EncodingUpload::new(upload, encoder)))
    });

    storage_core::store_fn!(get_opts, |this, location, options| {
        let wanted = options.range.clone();
        let head = options.head;
        let mut res = match this.inner.get_opts(location, options.clone()).await {
            Ok(r) => r,
            // A range valid for the uncompressed object can be out of range for the stored
            // (smaller) one: learn whether the object is compressed before failing.
            Err(e) if wanted.is_some() && !is_answer(&e) => {
                let probe = GetOptions {
                    range: None,
                    head: true,
                    ..options.clone()
                };
                match this.inner.get_opts(location, probe).await {
                    Ok(h) if stored_codec(&h.attributes).is_some() => h,
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let Some(codec) = stored_codec(&res.attributes) else {
            return Ok(res);
        };
        if head {
            if let Some(size) = stored_size(&res.attributes) {
                res.meta.size = size;
                res.range = 0..size;
            }
            res.attributes = strip_markers(&res.attributes);
            return Ok(res);
        }
        if wanted.is_some() {
            // Ranges are in uncompressed bytes: read the whole stored object (pinned to the
            // version just seen), then slice.
            let whole = GetOptions {
                range: None,
                if_match: res.meta.e_tag.clone().or(options.if_match.clone()),
                version: res.meta.version.clone().or(options.version.clone()),
                ..options
            };
            res = this.inner.get_opts(location, whole).await?;
        }
        let (mut meta, body) = into_stream(res);
        let stored = object_store::GetResult {
            payload: object_store::GetResultPayload::Stream(body),
            meta: meta.meta.clone(),
            range: meta.range.clone(),
            attributes: Attributes::new(),
            extensions: Default::default(),
        }
        .bytes()
        .await?;
        let key = location.to_string();
        let max = this.cfg.max_decompressed;
        let plain = cpu(stored.len(), move || codec.decompress_limited(&stored, max))
            .await
            .map_err(|e| match e {
                StorageError::Corrupt {
                    backend, reason, ..
                } => os_err(StorageError::Corrupt {
                    backend,
                    key: key.clone(),
                    reason,
                }),
                other => os_err(other),
            })?;
        let plain = Bytes::from(plain);
        let total = plain.len() as u64;
        let range = match &wanted {
            None => 0..total,
            Some(r) => r
                .as_range(total)
                .map_err(|e| range_err(location.as_ref(), e))?,
        };
        meta.meta.size = total;
        meta.attributes = strip_markers(&meta.attributes);
        let body = plain.slice(range.start as usize..range.end as usize);
        meta.range = range;
        Ok(meta.with_bytes(body))
    });

    storage_core::store_fn!(get_ranges, |this, location, ranges| {
        let head = this
            .inner
            .get_opts(location, GetOptions::new().with_head(true))
            .await?;
        if stored_codec(&head.attributes).is_none() {
            return this.inner.get_ranges(location, ranges).await;
        }
        let pinned = GetOptions::new().with_if_match(head.meta.e_tag.clone());
        let whole = this.get_opts(location, pinned).await?.bytes().await?;
        ranges
            .iter()
            .map(|r| {
                check_range(location.as_ref(), r, whole.len() as u64)?;
                Ok(whole.slice(r.start as usize..r.end as usize))
            })
            .collect()
    });

    // Listings report stored sizes (see "What size, range and ETag mean").
    storage_core::forward_object_store!(@methods inner:
        delete_stream, list, list_with_offset, list_with_delimiter);

    storage_core::store_fn!(copy_opts, |this, from, to, options| {
        if matches!(options.mode, CopyMode::Create) {
            return this.copy_create(from, to).await;
        }
        this.inner.copy_opts(from, to, options).await
    });

    storage_core::store_fn!(rename_opts, |this, from, to, options| {
        if matches!(options.target_mode, RenameTargetMode::Create) {
            this.copy_create(from, to).await?;
            return this.inner.delete(from).await;
        }
        this.inner.rename_opts(from, to, options).await
    });
}

impl<T: StrataStore> CompressionStore<T> {
    /// Copy-if-absent that keeps a compressed object's markers.
    ///
    /// S3 has no atomic copy-if-absent; `object_store` emulates it with a multipart upload
    /// of copied parts, which does not carry metadata or `Content-Encoding` over, so the
    /// copy would read back as raw compressed bytes. For compressed sources the layer copies
    /// through the client instead: read the stored bytes and attributes, write them with
    /// create-if-absent. Other objects use the backend's copy.
    async fn copy_create(&self, from: &Path, to: &Path) -> OsResult<()> {
        let head = self
            .inner
            .get_opts(from, GetOptions::new().with_head(true))
            .await?;
        if stored_codec(&head.attributes).is_none() {
            return self
                .inner
                .copy_opts(from, to, CopyOptions::new().with_mode(CopyMode::Create))
                .await;
        }
        let src = self
            .inner
            .get_opts(
                from,
                GetOptions::new().with_if_match(head.meta.e_tag.clone()),
            )
            .await?;
        let attributes = src.attributes.clone();
        let bytes = src.bytes().await?;
        let opts = PutOptions {
            mode: PutMode::Create,
            attributes,
            ..Default::default()
        };
        self.inner.put_opts(to, bytes.into(), opts).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_support::read;
    use object_store::{GetRange, ObjectStoreExt, PutMultipartOptions, WriteMultipart};
    use storage_core::MemoryStore;

    fn json(n: usize) -> String {
        (0..n)
            .map(|i| format!("{{\"id\":{i},\"name\":\"user{i}\",\"active\":true}}\n"))
            .collect()
    }

    /// A layer compressing every object of 1 KiB or more with `codec`.
    fn compressing(codec: Codec) -> CompressionLayer {
        CompressionLayer::default().with_default(codec)
    }

    fn put_opts(ct: &str) -> PutOptions {
        let mut o = PutOptions::default();
        o.attributes
            .insert(Attribute::ContentType, ct.to_string().into());
        o
    }

    #[tokio::test]
    async fn content_type_rules_and_request_override() {
        let mem = Arc::new(MemoryStore::new());
        let layer = CompressionLayer::default()
            .with_rule("application/json", Some(Codec::Zstd))
            .with_rule("image/", None)
            .with_default(Codec::Gzip);
        let store = layer.wrap(Arc::clone(&mem));
        let body = json(500);
        let cases = [
            ("a.json", "application/json", Some("zstd")),
            ("b.txt", "text/plain", Some("gzip")),
            ("c.png", "image/png", None),
        ];
        for (key, ct, expect) in cases {
            let p = Path::from(key);
            store
                .put_opts(&p, body.clone().into(), put_opts(ct))
                .await
                .unwrap();
            let raw = mem.get(&p).await.unwrap();
            assert_eq!(
                raw.attributes
                    .get(&Attribute::ContentEncoding)
                    .map(|v| v.as_ref().to_string()),
                expect.map(str::to_string),
                "{key}"
            );
            let back = store.get(&p).await.unwrap();
            assert_eq!(back.meta.size, body.len() as u64);
            assert!(back.attributes.get(&Attribute::ContentEncoding).is_none());
            assert_eq!(back.bytes().await.unwrap(), body);
        }
        // A put can ask for no compression.
        let mut o = put_opts("text/plain");
        compress_with(&mut o.attributes, None);
        store
            .put_opts(&Path::from("d"), body.clone().into(), o)
            .await
            .unwrap();
        let raw = mem.get(&Path::from("d")).await.unwrap();
        assert!(raw.attributes.get(&Attribute::ContentEncoding).is_none());
        assert!(
            raw.attributes
                .get(&Attribute::Metadata(COMPRESS_ATTRIBUTE.into()))
                .is_none()
        );
    }

    #[tokio::test]
    async fn small_and_foreign_objects_pass_through() {
        let mem = Arc::new(MemoryStore::new());
        let store = compressing(Codec::Gzip).wrap(Arc::clone(&mem));
        store.put(&Path::from("tiny"), "hi".into()).await.unwrap();
        assert_eq!(read(&mem, "tiny").await, "hi");
        mem.put(&Path::from("plain"), json(100).into())
            .await
            .unwrap();
        assert_eq!(read(&store, "plain").await, json(100));
    }

    /// A gzip-compressing store over memory holding `body` at `key`.
    async fn gzip_holding(key: &str, body: &Bytes) -> (CompressionStore<MemoryStore>, Path) {
        let store = compressing(Codec::Gzip).wrap(MemoryStore::new());
        let p = Path::from(key);
        store.put(&p, body.clone().into()).await.unwrap();
        (store, p)
    }

    #[tokio::test]
    async fn ranges_are_in_uncompressed_bytes() {
        let body = Bytes::from(json(1000));
        let (store, p) = gzip_holding("r", &body).await;
        assert_eq!(
            store.get_range(&p, 100..200).await.unwrap(),
            body.slice(100..200)
        );
        let r = store
            .get_opts(&p, GetOptions::new().with_range(Some(GetRange::Suffix(10))))
            .await
            .unwrap();
        assert_eq!(r.range.end, body.len() as u64);
        assert_eq!(r.bytes().await.unwrap(), body.slice(body.len() - 10..));
        let parts = store.get_ranges(&p, &[0..5, 50..60]).await.unwrap();
        assert_eq!(parts, vec![body.slice(0..5), body.slice(50..60)]);
        assert_eq!(store.head(&p).await.unwrap().size, body.len() as u64);
    }

    #[tokio::test]
    async fn ranges_beyond_the_stored_size_still_work() {
        let body = Bytes::from("a".repeat(100_000));
        let (store, p) = gzip_holding("z", &body).await;
        assert_eq!(
            store.get_range(&p, 99_990..100_000).await.unwrap(),
            body.slice(99_990..)
        );
        let r = store
            .get_opts(
                &p,
                GetOptions::new().with_range(Some(GetRange::Offset(99_000))),
            )
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 1000);
        assert!(store.get_range(&p, 200_000..200_001).await.is_err());
    }

    #[tokio::test]
    async fn conditional_writes_use_the_stored_etag() {
        let store = compressing(Codec::Gzip).wrap(MemoryStore::new());
        let p = Path::from("cas");
        let first = store.put(&p, json(100).into()).await.unwrap();
        let got = store.get(&p).await.unwrap();
        assert_eq!(got.meta.e_tag, first.e_tag);
        store
            .put_opts(
                &p,
                json(200).into(),
                object_store::PutMode::Update(first.clone().into()).into(),
            )
            .await
            .unwrap();
        let stale = store
            .put_opts(
                &p,
                json(300).into(),
                object_store::PutMode::Update(first.into()).into(),
            )
            .await;
        assert!(matches!(
            stale,
            Err(object_store::Error::Precondition { .. })
        ));
    }

    #[tokio::test]
    async fn multipart_uploads_compress_as_they_stream() {
        let mem = Arc::new(MemoryStore::new());
        let store = compressing(Codec::Zstd).wrap(Arc::clone(&mem));
        let p = Path::from("mp");
        let body = json(200_000); // ~9 MiB of JSON
        // The default codec does not apply to multipart uploads...
        let mut w = WriteMultipart::new(store.put_multipart(&p).await.unwrap());
        w.write(body.as_bytes());
        w.finish().await.unwrap();
        assert_eq!(mem.head(&p).await.unwrap().size, body.len() as u64);
        // ...an explicit request does.
        let mut opts = PutMultipartOptions::default();
        compress_with(&mut opts.attributes, Some(Codec::Zstd));
        let upload = store.put_multipart_opts(&p, opts).await.unwrap();
        let mut w = WriteMultipart::new_with_chunk_size(upload, 1024 * 1024);
        w.write(body.as_bytes());
        w.finish().await.unwrap();
        let raw = mem.head(&p).await.unwrap();
        assert!(
            raw.size < body.len() as u64 / 4,
            "stored {} of {}",
            raw.size,
            body.len()
        );
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), body);
    }

    #[tokio::test]
    async fn decompression_bombs_are_refused() {
        let store = CompressionLayer::default()
            .with_default(Codec::Zstd)
            .with_max_decompressed_bytes(1 << 20)
            .wrap(MemoryStore::new());
        let p = Path::from("bomb");
        store.put(&p, vec![0u8; 8 << 20].into()).await.unwrap();
        let err = StorageError::from_object_store("t", store.get(&p).await.unwrap_err());
        assert!(matches!(err, StorageError::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("1048576"), "{err}");
    }

    #[test]
    fn corrupt_data_is_a_typed_error() {
        let mut z = Codec::Gzip.compress(b"hello hello hello", None).unwrap();
        let n = z.len();
        z[n / 2] ^= 0xff;
        z.truncate(n - 3);
        let e = Codec::Gzip.decompress(&z).unwrap_err();
        assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
    }
}
