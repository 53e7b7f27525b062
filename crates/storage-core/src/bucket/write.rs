//! The write side of [`Bucket`]: puts (whole, conditional, streamed), deletes, copies and moves.

use bytes::Bytes;
use futures::future::Either;
use futures::stream::{self, Stream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, WriteMultipart,
};

use super::{Bucket, DeleteReport, PutOpts, WriteCondition, WriteResult};
use crate::conditional;
use crate::error::{Result, StorageError};
use crate::key::AsKey;
use crate::store::StrataStore;

impl Bucket {
    /// Write `data` (anything convertible to bytes) unconditionally.
    pub fn put(
        &self,
        key: impl AsKey,
        data: impl Into<Bytes>,
    ) -> impl Future<Output = Result<WriteResult>> + Send + '_ {
        self.write_whole(
            key.key_text(),
            self.path_of(&key),
            data.into(),
            PutOpts::default(),
        )
    }

    /// Write `data` with options (condition, headers, metadata, tags, storage class).
    pub fn put_with(
        &self,
        key: impl AsKey,
        data: impl Into<Bytes>,
        opts: PutOpts,
    ) -> impl Future<Output = Result<WriteResult>> + Send + '_ {
        self.write_whole(key.key_text(), self.path_of(&key), data.into(), opts)
    }

    /// The write behind [`put`](Self::put) and [`put_with`](Self::put_with). As in
    /// [`read_whole`](Self::read_whole), the checks run before the future is made, which
    /// then holds only what the store needs.
    fn write_whole(
        &self,
        key: &str,
        path: Result<Path>,
        bytes: Bytes,
        opts: PutOpts,
    ) -> impl Future<Output = Result<WriteResult>> + Send + use<'_> {
        let path = match path {
            Ok(path) => path,
            Err(e) => return Either::Left(Either::Left(std::future::ready(Err(e)))),
        };
        if opts.condition != WriteCondition::Overwrite {
            // The key is copied so the future does not borrow the caller's `&str`.
            let key = key.to_string();
            return Either::Left(Either::Right(Box::pin(async move {
                self.write_conditional(&key, path, bytes, opts).await
            })));
        }
        let put = match self.prepare_put(opts) {
            Ok(prepared) => prepared,
            Err(e) => return Either::Left(Either::Left(std::future::ready(Err(e)))),
        };
        let size = bytes.len() as u64;
        Either::Right(async move {
            let r = self
                .shared
                .store
                .put_opts(&path, PutPayload::from(bytes), put)
                .await
                .map_err(|e| self.err(e))?;
            Ok(WriteResult {
                etag: r.e_tag,
                version: r.version,
                size,
                superseded: false,
            })
        })
    }

    /// A create-if-absent or put-if-match, stamped with a write id and resolved by
    /// [`conditional`](crate::conditional) when its answer is lost.
    async fn write_conditional(
        &self,
        key: &str,
        path: Path,
        bytes: Bytes,
        mut opts: PutOpts,
    ) -> Result<WriteResult> {
        let stamped = conditional::stamp(&mut opts);
        let put = self.prepare_put(opts)?;
        conditional::write(self, key, &path, bytes, put, &stamped).await
    }

    fn prepare_put(&self, opts: PutOpts) -> Result<PutOptions> {
        let (attributes, tags) = opts.to_attributes()?;
        self.check_condition(&opts.condition)?;
        let put = PutOptions {
            mode: opts.mode(),
            tags,
            attributes,
            ..Default::default()
        };
        Ok(put)
    }

    fn check_condition(&self, c: &WriteCondition) -> Result<()> {
        let supported = match c {
            WriteCondition::Overwrite => true,
            WriteCondition::IfAbsent => self.shared.capabilities.create_if_absent,
            WriteCondition::IfMatch { .. } => self.shared.capabilities.put_if_match,
        };
        if supported {
            Ok(())
        } else {
            Err(StorageError::not_supported(
                self.shared.name.as_ref(),
                format!("conditional put ({c:?})"),
            ))
        }
    }

    /// Write a stream of chunks with bounded memory.
    ///
    /// Bodies up to one part (8 MiB by default) are sent in one request and honour
    /// `opts.condition`; larger ones become a multipart upload with equal-sized parts and at
    /// most `upload_concurrency` parts in flight, so memory stays near
    /// `(upload_concurrency + 1) × part_size` whatever the body size. A multipart body with a
    /// condition other than `Overwrite` is rejected before anything is written, because S3
    /// cannot apply preconditions to multipart uploads atomically. On error the upload is
    /// aborted: no partial object becomes visible.
    pub async fn put_stream<S>(
        &self,
        key: impl AsKey,
        stream: S,
        opts: PutOpts,
    ) -> Result<WriteResult>
    where
        S: Stream<Item = Result<Bytes>> + Send,
    {
        let path = self.path_of(&key)?;
        let (attributes, tags) = opts.to_attributes()?;
        self.check_condition(&opts.condition)?;
        let key = key.key_text();
        let mut stream = std::pin::pin!(stream);
        let mut head: Vec<Bytes> = Vec::new();
        let mut head_len = 0usize;
        // Read up to one part: a small body goes out as a single (conditional) put.
        while head_len <= self.shared.part_size {
            match stream.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    head_len += chunk.len();
                    head.push(chunk);
                }
                None if opts.condition != WriteCondition::Overwrite => {
                    let body: Vec<u8> = head.concat();
                    return self
                        .write_conditional(key, path, Bytes::from(body), opts)
                        .await;
                }
                None => {
                    let payload: PutPayload = head.into_iter().collect();
                    let put = PutOptions {
                        mode: opts.mode(),
                        tags,
                        attributes,
                        ..Default::default()
                    };
                    let r = self
                        .shared
                        .store
                        .put_opts(&path, payload, put)
                        .await
                        .map_err(|e| self.err(e))?;
                    return Ok(WriteResult {
                        etag: r.e_tag,
                        version: r.version,
                        size: head_len as u64,
                        superseded: false,
                    });
                }
            }
        }
        if opts.condition != WriteCondition::Overwrite {
            return Err(StorageError::invalid_input(
                "condition",
                format!(
                    "a conditional write must fit in one part ({} bytes); this body is larger. Write it unconditionally, or raise part_size",
                    self.shared.part_size
                ),
            ));
        }
        let upload = self
            .shared
            .store
            .put_multipart_opts(
                &path,
                PutMultipartOptions {
                    tags,
                    attributes,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.err(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.shared.part_size);
        let mut size = 0u64;
        let body = stream::iter(head.into_iter().map(Ok)).chain(stream);
        let mut body = std::pin::pin!(body);
        let outcome: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                writer
                    .wait_for_capacity(self.shared.upload_concurrency)
                    .await
                    .map_err(|e| self.err(e))?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                let r = writer.finish().await.map_err(|e| self.err(e))?;
                Ok(WriteResult {
                    etag: r.e_tag,
                    version: r.version,
                    size,
                    superseded: false,
                })
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Delete an object. Deleting a missing object succeeds (as on S3).
    pub async fn delete(&self, key: impl AsKey) -> Result<()> {
        let path = self.path_of(&key)?;
        match self.shared.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Delete only if the object's ETag is `etag`.
    pub async fn delete_if_match(&self, key: impl AsKey, etag: &str) -> Result<()> {
        let key = self.check_key(key)?;
        let path = key.to_path();
        conditional::delete_if_match(self, key.as_str(), etag, || async {
            self.shared
                .store
                .delete_if_match(&path, etag)
                .await
                .map_err(|e| self.unsupported_names_handle(e))
        })
        .await
    }

    /// Delete many keys in batches of the backend's limit. Never fails as a whole: each key
    /// is reported deleted or failed. Invalid keys are reported failed without a request.
    pub async fn delete_many<I, K>(&self, keys: I) -> DeleteReport
    where
        I: IntoIterator<Item = K>,
        K: AsKey,
    {
        let mut report = DeleteReport::default();
        let mut valid = Vec::new();
        for k in keys {
            match self.check_key(&k) {
                Ok(key) => valid.push(key),
                Err(e) => report.failed.push((k.key_text().to_string(), e)),
            }
        }
        let batch = self.shared.capabilities.max_delete_batch.max(1);
        for chunk in valid.chunks(batch) {
            let paths: Vec<object_store::Result<Path>> =
                chunk.iter().map(|k| Ok(k.to_path())).collect();
            let results: Vec<object_store::Result<Path>> = self
                .shared
                .store
                .delete_stream(stream::iter(paths).boxed())
                .collect()
                .await;
            // delete_stream yields one result per input, in order.
            for (key, r) in chunk.iter().zip(results) {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {
                        report.deleted.push(key.to_string())
                    }
                    Err(e) => report.failed.push((key.to_string(), self.err(e))),
                }
            }
        }
        report
    }

    /// Copy `from` to `to` inside this bucket (server-side where the backend can).
    pub async fn copy(&self, from: impl AsKey, to: impl AsKey) -> Result<()> {
        self.copy_in_mode(&from, &to, CopyMode::Overwrite).await
    }

    /// Copy only if `to` does not exist.
    ///
    /// On S3 this is `object_store`'s multipart copy with a conditional completion, which does
    /// not carry user metadata, Content-Type or Content-Encoding over; copy unconditionally
    /// (or re-put) when those matter.
    pub async fn copy_if_absent(&self, from: impl AsKey, to: impl AsKey) -> Result<()> {
        self.copy_in_mode(&from, &to, CopyMode::Create).await
    }

    async fn copy_in_mode(
        &self,
        from: &(impl AsKey + ?Sized),
        to: &(impl AsKey + ?Sized),
        mode: CopyMode,
    ) -> Result<()> {
        let (from, to) = self.source_and_destination(from, to, "copy")?;
        let options = CopyOptions::new().with_mode(mode);
        self.shared
            .store
            .copy_opts(&from.to_path(), &to.to_path(), options)
            .await
            .map_err(|e| self.err(e))
    }

    /// Move `from` to `to`: copy, then delete the source. If the delete fails, both copies
    /// remain and the error is [`StorageError::PartialMove`]: data is never lost.
    pub async fn rename(&self, from: impl AsKey, to: impl AsKey) -> Result<()> {
        let (from, to) = self.source_and_destination(&from, &to, "move")?;
        self.copy(&from, &to).await?;
        if let Err(e) = self.shared.store.delete(&from.to_path()).await {
            return Err(StorageError::PartialMove {
                backend: self.shared.name.to_string(),
                from: from.to_string(),
                to: to.to_string(),
                source: Box::new(self.err(e)),
            });
        }
        Ok(())
    }
}
