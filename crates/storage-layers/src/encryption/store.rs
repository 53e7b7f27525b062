//! The layer and its store: encrypt on put, decrypt on get (whole, streamed or by range).

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use object_store::path::Path;
use object_store::{
    Attribute, GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore, Result as OsResult,
};

use storage_core::{StorageError, StrataStore};

use super::format::{Header, STORED_CHUNK, chunk_count, corrupt, encrypt_all, plain_len};
use super::keyring::{Cipher, Keyring};
use super::upload::Sealer;
use super::{CHUNK_SIZE, ENCRYPTION_METADATA, FORMAT, HEADER_LEN};
use crate::transform::{EncodingUpload, byte_transforming_strata_store, check_range, range_err};
use crate::util::{cpu, into_stream, os_err, payload_bytes};

/// Attributes without this layer's marker, as the caller wrote them.
fn strip_marker(attrs: &mut object_store::Attributes) {
    attrs.remove(&Attribute::Metadata(ENCRYPTION_METADATA.into()));
}

/// Encrypts on put and decrypts on get; see the [module docs](super).
#[derive(Debug, Clone)]
pub struct EncryptionLayer {
    keyring: Arc<Keyring>,
    allow_plaintext: bool,
}

impl EncryptionLayer {
    /// Encrypt with `keyring`'s primary key; decrypt with any of its keys.
    pub fn new(keyring: Keyring) -> Self {
        EncryptionLayer {
            keyring: Arc::new(keyring),
            allow_plaintext: false,
        }
    }

    /// Return objects that are not encrypted (written before encryption was enabled) as
    /// they are, instead of failing with `Corrupt`. Off by default: with it on, whoever can
    /// write the bucket can plant plaintext that reads as if it were authenticated.
    pub fn with_allow_plaintext(mut self, yes: bool) -> Self {
        self.allow_plaintext = yes;
        self
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Wrap a concrete store.
    pub fn wrap<T: StrataStore>(&self, inner: T) -> EncryptionStore<T> {
        EncryptionStore {
            inner: Arc::new(inner),
            cfg: Arc::new(self.clone()),
        }
    }
}

crate::util::layer_wraps!(EncryptionLayer);

/// An encrypting store; made by [`EncryptionLayer`].
pub struct EncryptionStore<T: StrataStore> {
    inner: Arc<T>,
    cfg: Arc<EncryptionLayer>,
}

crate::util::layer_store_fmt!(EncryptionStore);

impl EncryptionLayer {
    fn primary(&self) -> Result<(&str, &Cipher), StorageError> {
        self.keyring.primary().ok_or_else(|| {
            StorageError::invalid_config(
                "encryption.keys",
                "the keyring is empty; add at least one key to write encrypted objects",
            )
        })
    }

    fn cipher_for(&self, header: &Header, key: &str) -> Result<Cipher, StorageError> {
        self.keyring.get(&header.key_id).cloned().ok_or_else(|| {
            StorageError::invalid_config(
                "encryption.keys",
                format!(
                    "object `{key}` was encrypted with key id `{}`, which is not in the keyring (known: {}); add that key to read it",
                    header.key_id,
                    self.keyring.key_ids().join(", ")
                ),
            )
        })
    }

    /// A listed object's size: the plaintext size, unless plaintext objects are allowed
    /// (then listings show stored sizes; see the module docs).
    fn listed(&self, mut meta: ObjectMeta) -> ObjectMeta {
        if !self.allow_plaintext
            && let Some(p) = plain_len(meta.size)
        {
            meta.size = p;
        }
        meta
    }

    fn not_encrypted(&self, key: &str) -> object_store::Error {
        os_err(corrupt(
            key,
            "the object is not encrypted (no Strata encryption header); it was written without the encryption layer. Enable allow_plaintext to read such objects".into(),
        ))
    }
}

/// Streaming decryption of a whole object.
struct Decryptor {
    cfg: Arc<EncryptionLayer>,
    key: String,
    header: Option<(Header, Cipher)>,
    buf: BytesMut,
    next: u64,
    chunks: u64,
    stored: u64,
}

impl Decryptor {
    fn push(&mut self, data: &[u8], out: &mut Vec<Bytes>) -> Result<(), StorageError> {
        let mut data = data;
        if self.header.is_none() {
            let need = (HEADER_LEN as usize).saturating_sub(self.buf.len());
            let take = need.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < HEADER_LEN as usize {
                return Ok(());
            }
            let h = Header::parse(&self.buf, &self.key)?.ok_or_else(|| {
                corrupt(&self.key, "the object lost its encryption header".into())
            })?;
            let cipher = self.cfg.cipher_for(&h, &self.key)?;
            self.buf.clear();
            self.header = Some((h, cipher));
        }
        let (h, cipher) = self.header.as_ref().expect("set above");
        let sc = STORED_CHUNK as usize;
        // Chunk by chunk: copy one stored chunk and decrypt it while it is still in cache,
        // rather than buffering the whole body first. The last chunk waits for `finish`.
        while !data.is_empty() && self.next + 1 < self.chunks {
            let take = (sc - self.buf.len()).min(data.len());
            if self.buf.is_empty() && take == sc {
                let chunk = BytesMut::from(&data[..sc]);
                out.push(h.open(cipher, self.next, false, chunk, &self.key)?);
            } else {
                self.buf.extend_from_slice(&data[..take]);
                if self.buf.len() < sc {
                    return Ok(());
                }
                let chunk = self.buf.split();
                out.push(h.open(cipher, self.next, false, chunk, &self.key)?);
            }
            data = &data[take..];
            self.next += 1;
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn finish(&mut self) -> Result<Bytes, StorageError> {
        let Some((h, cipher)) = self.header.as_ref() else {
            return Err(corrupt(
                &self.key,
                "the object is shorter than its encryption header".into(),
            ));
        };
        let expected = self.stored - HEADER_LEN - self.next * STORED_CHUNK;
        if self.next + 1 != self.chunks || self.buf.len() as u64 != expected {
            return Err(corrupt(
                &self.key,
                "the encrypted object is truncated".into(),
            ));
        }
        let chunk = std::mem::take(&mut self.buf);
        h.open(cipher, self.next, true, chunk, &self.key)
    }
}

impl<T: StrataStore> EncryptionStore<T> {
    /// Fetch and decrypt plaintext `range` (already resolved) given the header and stored size.
    async fn read_range(
        &self,
        location: &Path,
        header: &Header,
        cipher: &Cipher,
        stored: u64,
        range: Range<u64>,
        etag: Option<String>,
    ) -> OsResult<Bytes> {
        let key = location.as_ref();
        let plain = plain_size(key, stored)?;
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let chunks = chunk_count(plain);
        let first = range.start / CHUNK_SIZE;
        let last = (range.end - 1) / CHUNK_SIZE;
        let s = HEADER_LEN + first * STORED_CHUNK;
        let e = (HEADER_LEN + (last + 1) * STORED_CHUNK).min(stored);
        let opts = GetOptions::new().with_range(Some(s..e)).with_if_match(etag);
        let mut data =
            BytesMut::from(&self.inner.get_opts(location, opts).await?.bytes().await?[..]);
        if data.len() as u64 != e - s {
            return Err(os_err(corrupt(
                key,
                "the backend returned a short range".into(),
            )));
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for i in first..=last {
            let len = STORED_CHUNK.min(data.len() as u64) as usize;
            let chunk = data.split_to(len);
            let p = header
                .open(cipher, i, i + 1 == chunks, chunk, key)
                .map_err(os_err)?;
            let chunk_start = i * CHUNK_SIZE;
            let from = range.start.saturating_sub(chunk_start).min(p.len() as u64) as usize;
            let to = (range.end - chunk_start).min(p.len() as u64) as usize;
            out.extend_from_slice(&p[from..to]);
        }
        Ok(out.freeze())
    }

    /// Fetch the header (and the stored size and ETag) honouring the caller's conditions.
    async fn header(
        &self,
        location: &Path,
        options: &GetOptions,
    ) -> OsResult<Option<(Header, Cipher, GetResult)>> {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(0..HEADER_LEN)),
            head: false,
            ..options.clone()
        };
        let res = self.inner.get_opts(location, opts).await?;
        let meta_only = GetResult {
            payload: object_store::GetResultPayload::Stream(stream::empty().boxed()),
            meta: res.meta.clone(),
            range: res.range.clone(),
            attributes: res.attributes.clone(),
            extensions: res.extensions.clone(),
        };
        let bytes = res.bytes().await?;
        match Header::parse(&bytes, location.as_ref()).map_err(os_err)? {
            None => Ok(None),
            Some(h) => {
                let cipher = self.cfg.cipher_for(&h, location.as_ref()).map_err(os_err)?;
                Ok(Some((h, cipher, meta_only)))
            }
        }
    }
}

// A presigned URL would hand out ciphertext.
byte_transforming_strata_store!(
    EncryptionStore,
    "encrypted bucket",
    "presigned URLs: a URL would download ciphertext (the key never leaves this \
     process) and an upload through one would be stored unencrypted; read and write \
     through Strata (or `strata serve`, which decrypts)"
);

#[deny(clippy::missing_trait_methods)]
impl<T: StrataStore> ObjectStore for EncryptionStore<T> {
    storage_core::store_fn!(put_opts, |this, location, payload, mut opts| {
        let (id, cipher) = this.cfg.primary().map_err(os_err)?;
        let header = Header::new(id);
        let cipher = cipher.clone();
        let plain = payload_bytes(&payload);
        let stored = cpu(plain.len(), move || encrypt_all(&cipher, &header, &plain)).await;
        opts.attributes.insert(
            Attribute::Metadata(ENCRYPTION_METADATA.into()),
            FORMAT.into(),
        );
        this.inner.put_opts(location, stored.into(), opts).await
    });

    storage_core::store_fn!(put_multipart_opts, |this, location, mut opts| {
        let (id, cipher) = this.cfg.primary().map_err(os_err)?;
        let header = Header::new(id);
        opts.attributes.insert(
            Attribute::Metadata(ENCRYPTION_METADATA.into()),
            FORMAT.into(),
        );
        let upload = this.inner.put_multipart_opts(location, opts).await?;
        let sealer = Sealer {
            cipher: cipher.clone(),
            out: header.raw.to_vec(),
            header,
            pending: Vec::new(),
            next: 0,
        };
        Ok(Box::new(EncodingUpload::new(upload, sealer)))
    });

    storage_core::store_fn!(get_opts, |this, location, options| {
        let key = location.to_string();
        if options.head {
            let mut res = this.inner.get_opts(location, options).await?;
            let marked = res
                .attributes
                .get(&Attribute::Metadata(ENCRYPTION_METADATA.into()))
                .is_some();
            if (marked || !this.cfg.allow_plaintext)
                && let Some(p) = plain_len(res.meta.size)
            {
                res.meta.size = p;
                res.range = 0..p;
            }
            strip_marker(&mut res.attributes);
            return Ok(res);
        }
        if let Some(wanted) = options.range.clone() {
            let Some((header, cipher, meta)) = this.header(location, &options).await? else {
                if this.cfg.allow_plaintext {
                    return this.inner.get_opts(location, options).await;
                }
                return Err(this.cfg.not_encrypted(&key));
            };
            let stored = meta.meta.size;
            let plain = plain_size(&key, stored)?;
            let range = wanted.as_range(plain).map_err(|e| range_err(&key, e))?;
            let bytes = this
                .read_range(
                    location,
                    &header,
                    &cipher,
                    stored,
                    range.clone(),
                    meta.meta.e_tag.clone(),
                )
                .await?;
            let (mut m, _) = into_stream(meta);
            strip_marker(&mut m.attributes);
            m.meta.size = plain;
            m.range = range;
            return Ok(m.with_bytes(bytes));
        }
        let res = this.inner.get_opts(location, options).await?;
        let stored = res.meta.size;
        let Some(plain) = plain_len(stored) else {
            if this.cfg.allow_plaintext {
                return Ok(res);
            }
            return Err(this.cfg.not_encrypted(&key));
        };
        let (mut meta, mut body) = into_stream(res);
        // Peek the header: a plaintext object whose size happens to fit the format must
        // still pass through when allowed.
        // Peek the first chunks (without copying them) until the header is in hand: a
        // plaintext object whose size happens to fit the format must still pass through
        // when allowed.
        let mut peeked: Vec<Bytes> = Vec::new();
        let mut head = BytesMut::new();
        while (head.len() as u64) < HEADER_LEN.min(stored) {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    let need = HEADER_LEN as usize - head.len();
                    head.extend_from_slice(&chunk[..need.min(chunk.len())]);
                    peeked.push(chunk);
                }
                None => break,
            }
        }
        let body = stream::iter(peeked.into_iter().map(Ok)).chain(body).boxed();
        match Header::parse(&head, &key).map_err(os_err)? {
            None if this.cfg.allow_plaintext => return Ok(meta.with_stream(body)),
            None => return Err(this.cfg.not_encrypted(&key)),
            // A key id missing from the keyring fails the call itself, not the body.
            Some(h) => {
                this.cfg.cipher_for(&h, &key).map_err(os_err)?;
            }
        }
        let dec = Decryptor {
            cfg: Arc::clone(&this.cfg),
            key: key.clone(),
            header: None,
            buf: BytesMut::new(),
            next: 0,
            chunks: chunk_count(plain),
            stored,
        };
        let ready: Vec<Bytes> = Vec::new();
        meta.meta.size = plain;
        meta.range = 0..plain;
        strip_marker(&mut meta.attributes);
        let s = stream::unfold(
            (
                Some(body),
                dec,
                ready.into_iter().collect::<std::collections::VecDeque<_>>(),
            ),
            |(mut body, mut dec, mut ready)| async move {
                loop {
                    if let Some(b) = ready.pop_front() {
                        return Some((Ok(b), (body, dec, ready)));
                    }
                    let b = body.as_mut()?;
                    match b.next().await {
                        Some(Ok(data)) => {
                            let mut out = Vec::new();
                            if let Err(e) = dec.push(&data, &mut out) {
                                return Some((Err(os_err(e)), (None, dec, ready)));
                            }
                            ready.extend(out);
                        }
                        Some(Err(e)) => return Some((Err(e), (None, dec, ready))),
                        None => {
                            let last = dec.finish().map_err(os_err);
                            return Some((last, (None, dec, ready)));
                        }
                    }
                }
            },
        )
        .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.is_empty())))
        .fuse()
        .boxed();
        Ok(meta.with_stream(s))
    });

    storage_core::store_fn!(get_ranges, |this, location, ranges| {
        let key = location.to_string();
        let Some((header, cipher, meta)) = this.header(location, &GetOptions::new()).await? else {
            if this.cfg.allow_plaintext {
                return this.inner.get_ranges(location, ranges).await;
            }
            return Err(this.cfg.not_encrypted(&key));
        };
        let stored = meta.meta.size;
        let plain = plain_size(&key, stored)?;
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            check_range(&key, r, plain)?;
            out.push(
                this.read_range(
                    location,
                    &header,
                    &cipher,
                    stored,
                    r.clone(),
                    meta.meta.e_tag.clone(),
                )
                .await?,
            );
        }
        Ok(out)
    });

    storage_core::store_fn!(list, |this, prefix| {
        let sizes = list_sizes(Arc::clone(&this.cfg));
        this.inner.list(prefix).map(move |r| r.map(&sizes)).boxed()
    });

    storage_core::store_fn!(list_with_offset, |this, prefix, offset| {
        let sizes = list_sizes(Arc::clone(&this.cfg));
        this.inner
            .list_with_offset(prefix, offset)
            .map(move |r| r.map(&sizes))
            .boxed()
    });

    storage_core::store_fn!(list_with_delimiter, |this, prefix| {
        let mut r = this.inner.list_with_delimiter(prefix).await?;
        r.objects = r.objects.into_iter().map(|m| this.cfg.listed(m)).collect();
        Ok(r)
    });

    // Deletes, copies and renames move stored objects whole: the header travels with them.
    storage_core::forward_object_store!(@methods inner: delete_stream, copy_opts, rename_opts);
}

/// A size fixer for listings that does not borrow the store.
/// The plaintext size of a stored object of `stored` bytes, or `Corrupt` naming `key`.
fn plain_size(key: &str, stored: u64) -> OsResult<u64> {
    plain_len(stored).ok_or_else(|| {
        os_err(corrupt(
            key,
            "the stored size is not a valid encrypted size".into(),
        ))
    })
}

fn list_sizes(
    cfg: Arc<EncryptionLayer>,
) -> impl Fn(ObjectMeta) -> ObjectMeta + Send + Sync + 'static {
    move |meta| cfg.listed(meta)
}

#[cfg(test)]
mod tests {
    use crate::util::test_support::read;
    use object_store::ObjectStoreExt;
    use storage_core::MemoryStore;

    use super::*;
    use crate::encryption::stored_len;
    use crate::encryption::test_support::{data, keyring};

    #[tokio::test]
    async fn round_trip_sizes_and_ranges() {
        let mem = Arc::new(MemoryStore::new());
        let store = EncryptionLayer::new(keyring()).wrap(Arc::clone(&mem));
        for n in [
            0usize,
            1,
            1000,
            CHUNK_SIZE as usize,
            CHUNK_SIZE as usize + 7,
            300_000,
        ] {
            let p = Path::from(format!("o{n}"));
            let d = data(n);
            store.put(&p, d.clone().into()).await.unwrap();
            assert_eq!(mem.head(&p).await.unwrap().size, stored_len(n as u64));
            let got = store.get(&p).await.unwrap();
            assert_eq!(got.meta.size, n as u64);
            assert_eq!(got.bytes().await.unwrap(), d, "{n}");
            assert_eq!(store.head(&p).await.unwrap().size, n as u64);
            if n > 10 {
                let r = (n as u64 / 3)..(n as u64 - 2);
                assert_eq!(
                    store.get_range(&p, r.clone()).await.unwrap(),
                    d.slice(r.start as usize..r.end as usize)
                );
                let rs = store.get_ranges(&p, &[0..1, r.clone()]).await.unwrap();
                assert_eq!(rs[1], d.slice(r.start as usize..r.end as usize));
            }
        }
        let listed: Vec<_> = store.list(None).map(|m| m.unwrap().size).collect().await;
        assert!(listed.contains(&300_000) && listed.contains(&0));
    }

    #[tokio::test]
    async fn tampering_any_byte_is_an_authentication_error() {
        let mem = Arc::new(MemoryStore::new());
        let store = EncryptionLayer::new(keyring()).wrap(Arc::clone(&mem));
        let p = Path::from("t");
        let d = data(150_000);
        store.put(&p, d.into()).await.unwrap();
        let good = mem.get(&p).await.unwrap().bytes().await.unwrap();
        // Header (version, chunk size, nonce base, reserved), first chunk, a tag, the last
        // chunk.
        for at in [
            4usize,
            6,
            45,
            60,
            HEADER_LEN as usize + 10,
            HEADER_LEN as usize + STORED_CHUNK as usize - 3,
            good.len() - 1,
        ] {
            let mut bad = good.to_vec();
            bad[at] ^= 0x01;
            mem.put(&p, bad.into()).await.unwrap();
            let whole = match store.get(&p).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            let err = StorageError::from_object_store("t", whole.unwrap_err());
            assert!(
                matches!(err, StorageError::Corrupt { .. }),
                "byte {at}: {err}"
            );
        }
        // A changed key id cannot be authenticated without the key: it reads as a key id
        // missing from the keyring, still an error and never plaintext.
        let mut bad = good.to_vec();
        bad[11] ^= 0x01;
        mem.put(&p, bad.into()).await.unwrap();
        assert!(store.get(&p).await.is_err());
        // Truncation is caught too.
        mem.put(&p, good.slice(..good.len() - STORED_CHUNK as usize).into())
            .await
            .unwrap();
        assert!(
            store.get(&p).await.is_err() || store.get(&p).await.unwrap().bytes().await.is_err()
        );
    }

    #[tokio::test]
    async fn wrong_key_and_unknown_key_id_are_clear_errors() {
        let mem = Arc::new(MemoryStore::new());
        let p = Path::from("w");
        EncryptionLayer::new(keyring())
            .wrap(Arc::clone(&mem))
            .put(&p, "secret".into())
            .await
            .unwrap();

        let same_id_other_key = EncryptionLayer::new(keyring()).wrap(Arc::clone(&mem));
        let err = StorageError::from_object_store(
            "t",
            match same_id_other_key.get(&p).await {
                Ok(r) => r.bytes().await.unwrap_err(),
                Err(e) => e,
            },
        );
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("authentication failed"), "{err}");

        let other_id = EncryptionLayer::new(
            Keyring::new()
                .with_key("k2", &Keyring::generate_key())
                .unwrap(),
        )
        .wrap(Arc::clone(&mem));
        let err = StorageError::from_object_store("t", other_id.get(&p).await.unwrap_err());
        assert!(matches!(err, StorageError::InvalidConfig { .. }), "{err}");
        assert!(err.to_string().contains("`k1`"), "{err}");
    }

    #[tokio::test]
    async fn rotation_reads_old_writes_new() {
        let mem = Arc::new(MemoryStore::new());
        let old = Keyring::generate_key();
        let v1 = Keyring::new().with_key("2025", &old).unwrap();
        EncryptionLayer::new(v1)
            .wrap(Arc::clone(&mem))
            .put(&Path::from("a"), "old".into())
            .await
            .unwrap();
        let v2 = Keyring::new()
            .with_key("2025", &old)
            .unwrap()
            .with_key("2026", &Keyring::generate_key())
            .unwrap();
        assert_eq!(v2.primary_id(), Some("2026"));
        let store = EncryptionLayer::new(v2).wrap(Arc::clone(&mem));
        assert_eq!(read(&store, "a").await, "old");
        store.put(&Path::from("b"), "new".into()).await.unwrap();
        let raw = mem
            .get_range(&Path::from("b"), 0..HEADER_LEN)
            .await
            .unwrap();
        assert_eq!(&raw[10..14], b"2026");
    }

    #[tokio::test]
    async fn plaintext_objects_fail_unless_allowed() {
        let mem = Arc::new(MemoryStore::new());
        mem.put(&Path::from("plain"), "hello".into()).await.unwrap();
        let strict = EncryptionLayer::new(keyring()).wrap(Arc::clone(&mem));
        let err = StorageError::from_object_store(
            "t",
            strict.get(&Path::from("plain")).await.unwrap_err(),
        );
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        let lenient = EncryptionLayer::new(keyring())
            .with_allow_plaintext(true)
            .wrap(Arc::clone(&mem));
        assert_eq!(read(&lenient, "plain").await, "hello");
    }
}
