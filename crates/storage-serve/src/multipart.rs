//! Multipart uploads with no state in the process: each upload is a folder of objects in
//! the backing bucket (`.strata-serve/uploads/ID/`): `upload.json` (bucket, key, headers)
//! and one object per part. Any `strata serve` process on the same storage can take the
//! next request of an upload, and completion streams the parts, in order, into one
//! streamed (multipart) write of the final object, so memory stays bounded whatever the
//! size. A conditional completion (`If-Match`, `If-None-Match: *`) is one conditional write
//! of the whole object instead, held in memory under the server's budget (see
//! [`crate::whole`] for why no backend offers anything else atomic).

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders};
use serde::{Deserialize, Serialize};
use storage_core::{PutOpts, StorageError, WriteCondition};

use crate::catalog::{UPLOADS_PREFIX, View};
use crate::checksum::{self, expected_of};
use crate::error::{invalid, to_s3};
use crate::metrics;
use crate::s3::{StrataS3, etag_out, put_opts_of, timestamp, write_condition};
use crate::whole;

/// Largest part number S3 allows.
const MAX_PART_NUMBER: i32 = 10_000;

/// What `upload.json` records.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// Served bucket name the upload belongs to.
    bucket: String,
    key: String,
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
}

fn folder(id: &str) -> String {
    format!("{UPLOADS_PREFIX}/uploads/{id}")
}

fn part_key(id: &str, n: i32) -> String {
    format!("{}/part-{n:05}", folder(id))
}

fn no_such_upload(id: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchUpload,
        format!(
            "no multipart upload `{id}` for this bucket and key (completed, aborted, or never created)"
        ),
    )
}

/// Upload ids are 32 hex digits; anything else cannot name a folder of ours.
fn check_id(id: &str) -> S3Result<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(no_such_upload(id))
    }
}

/// The upload's manifest, checked against the bucket and key of the request.
async fn manifest(view: &View, id: &str, key: &str) -> S3Result<Manifest> {
    check_id(id)?;
    let obj = match view.base.get(format!("{}/upload.json", folder(id))).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Err(no_such_upload(id)),
        Err(e) => return Err(to_s3(e)),
    };
    let m: Manifest = serde_json::from_slice(&obj.bytes)
        .map_err(|e| to_s3(StorageError::invalid_input("upload.json", e.to_string())))?;
    if m.bucket != view.name || m.key != key {
        return Err(no_such_upload(id));
    }
    Ok(m)
}

/// Parts stored so far: number → (size, ETag, last modified).
async fn stored_parts(
    view: &View,
    id: &str,
) -> S3Result<std::collections::BTreeMap<i32, storage_core::ObjectInfo>> {
    let prefix = format!("{}/", folder(id));
    let mut parts = std::collections::BTreeMap::new();
    let mut list = view.base.list(&prefix);
    while let Some(o) = list.next().await {
        let o = o.map_err(to_s3)?;
        let name = o.key.rsplit('/').next().unwrap_or_default();
        if let Some(n) = name
            .strip_prefix("part-")
            .and_then(|n| n.parse::<i32>().ok())
        {
            parts.insert(n, o);
        }
    }
    Ok(parts)
}

pub(crate) async fn create_multipart_upload(
    s3: &StrataS3,
    input: CreateMultipartUploadInput,
) -> S3Result<CreateMultipartUploadOutput> {
    let view = s3.view(&input.bucket)?;
    view.key(&input.key).map_err(to_s3)?;
    let opts = put_opts_of!(input);
    // Checked now, so a bad header fails before any part is sent.
    opts.to_attributes().map_err(to_s3)?;
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let m = Manifest {
        bucket: view.name.clone(),
        key: input.key.clone(),
        content_type: opts.content_type,
        cache_control: opts.cache_control,
        content_disposition: opts.content_disposition,
        content_encoding: opts.content_encoding,
        metadata: opts.metadata,
    };
    let json = serde_json::to_vec(&m).expect("a manifest serialises");
    view.base
        .put_with(
            format!("{}/upload.json", folder(&id)),
            json,
            PutOpts::if_absent(),
        )
        .await
        .map_err(to_s3)?;
    Ok(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(id),
        ..Default::default()
    })
}

pub(crate) async fn upload_part(
    s3: &StrataS3,
    input: UploadPartInput,
    trailers: Option<TrailingHeaders>,
) -> S3Result<UploadPartOutput> {
    let view = s3.view(&input.bucket)?;
    if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
        return Err(invalid(format!(
            "part number {} is outside 1..=10000",
            input.part_number
        )));
    }
    manifest(&view, &input.upload_id, &input.key).await?;
    let (body, verdict) = checksum::verified(input.body, expected_of!(input), trailers);
    let w = view
        .base
        .put_stream(
            part_key(&input.upload_id, input.part_number),
            metrics::count_in(body),
            PutOpts::default(),
        )
        .await
        .map_err(|e| verdict.error().unwrap_or_else(|| to_s3(e)))?;
    Ok(UploadPartOutput {
        e_tag: etag_out(w.etag.as_deref()),
        ..Default::default()
    })
}

pub(crate) async fn list_parts(s3: &StrataS3, input: ListPartsInput) -> S3Result<ListPartsOutput> {
    let view = s3.view(&input.bucket)?;
    manifest(&view, &input.upload_id, &input.key).await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = input.part_number_marker.unwrap_or(0);
    let all = stored_parts(&view, &input.upload_id).await?;
    let mut after = all.range(marker + 1..);
    let parts: Vec<Part> = after
        .by_ref()
        .take(max)
        .map(|(n, o)| Part {
            part_number: Some(*n),
            size: Some(o.size as i64),
            e_tag: etag_out(o.etag.as_deref()),
            last_modified: Some(timestamp(o.last_modified)),
            ..Default::default()
        })
        .collect();
    let truncated = after.next().is_some();
    let next = parts.last().and_then(|p| p.part_number);
    Ok(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        is_truncated: Some(truncated),
        parts: Some(parts),
        ..Default::default()
    })
}

pub(crate) async fn abort_multipart_upload(
    s3: &StrataS3,
    input: AbortMultipartUploadInput,
) -> S3Result<AbortMultipartUploadOutput> {
    let view = s3.view(&input.bucket)?;
    manifest(&view, &input.upload_id, &input.key).await?;
    remove(&view, &input.upload_id).await?;
    Ok(AbortMultipartUploadOutput::default())
}

/// Delete an upload's folder: parts first, the manifest last, so a failure part-way leaves
/// an upload that can still be aborted again.
async fn remove(view: &View, id: &str) -> S3Result<()> {
    let parts = stored_parts(view, id).await?;
    let keys: Vec<String> = parts.into_values().map(|o| o.key).collect();
    let report = view.base.delete_many(&keys).await;
    if let Some((_, e)) = report.failed.into_iter().next() {
        return Err(to_s3(e));
    }
    view.base
        .delete(format!("{}/upload.json", folder(id)))
        .await
        .map_err(to_s3)
}

pub(crate) async fn complete_multipart_upload(
    s3: &StrataS3,
    input: CompleteMultipartUploadInput,
) -> S3Result<CompleteMultipartUploadOutput> {
    let view = s3.view(&input.bucket)?;
    let key = view.key(&input.key).map_err(to_s3)?;
    let m = manifest(&view, &input.upload_id, &input.key).await?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let wanted = input
        .multipart_upload
        .and_then(|u| u.parts)
        .unwrap_or_default();
    if wanted.is_empty() {
        return Err(S3Error::with_message(
            S3ErrorCode::MalformedXML,
            "CompleteMultipartUpload lists no parts",
        ));
    }
    let stored = stored_parts(&view, &input.upload_id).await?;
    let mut chosen = Vec::with_capacity(wanted.len());
    let mut total = 0u64;
    let mut previous = 0;
    for p in &wanted {
        let n = p.part_number.unwrap_or(0);
        if n <= previous {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidPartOrder,
                "parts must be listed in ascending order of part number, each once",
            ));
        }
        previous = n;
        let Some(info) = stored.get(&n) else {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidPart,
                format!("part {n} was not uploaded"),
            ));
        };
        if let Some(e) = &p.e_tag
            && info.etag.as_deref().map(|s| s.trim_matches('"')) != Some(e.value())
        {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidPart,
                format!("part {n}: the ETag does not match the uploaded part"),
            ));
        }
        chosen.push(info.key.clone());
        total += info.size;
    }
    let mut opts = PutOpts {
        content_type: m.content_type,
        cache_control: m.cache_control,
        content_disposition: m.content_disposition,
        content_encoding: m.content_encoding,
        metadata: m.metadata,
        ..Default::default()
    };
    opts.condition = condition;
    let parts = concat(view.base.clone(), chosen);
    let written = if opts.condition == WriteCondition::Overwrite {
        // Streamed: a multipart write of the target, memory bounded whatever the size.
        view.bucket.put_stream(key.as_str(), parts, opts).await
    } else {
        // One conditional request of the whole object, the only write every backend applies
        // a condition to atomically (see `whole`); over one part it takes its size from the
        // server's budget first.
        let _held = s3.whole.hold(total).await?;
        whole::precheck(&view.bucket, key.as_str(), &opts.condition).await?;
        match whole::collect(parts, total).await {
            Ok(bytes) => view.bucket.put_with(key.as_str(), bytes, opts).await,
            Err(e) => Err(e),
        }
    }
    .map_err(to_s3)?;
    remove(&view, &input.upload_id).await?;
    Ok(CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: etag_out(written.etag.as_deref()),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        ..Default::default()
    })
}

/// The parts' bytes in order, one part open at a time.
fn concat(
    base: storage_core::Bucket,
    keys: Vec<String>,
) -> futures::stream::BoxStream<'static, storage_core::Result<Bytes>> {
    type Open = Option<futures::stream::BoxStream<'static, storage_core::Result<Bytes>>>;
    let state: (storage_core::Bucket, std::vec::IntoIter<String>, Open) =
        (base, keys.into_iter(), None);
    stream::unfold(state, |(base, mut keys, mut open)| async move {
        loop {
            if let Some(s) = open.as_mut()
                && let Some(item) = s.next().await
            {
                return Some((item, (base, keys, open)));
            }
            let k = keys.next()?;
            match base.get_stream(&k).await {
                Ok(o) => open = Some(o.stream),
                Err(e) => return Some((Err(e), (base, Vec::new().into_iter(), None))),
            }
        }
    })
    .boxed()
}
