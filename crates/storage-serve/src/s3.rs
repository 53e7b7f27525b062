//! The S3 operations, each mapped onto a `Bucket` call of the served handle.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use storage_core::conditional::{WRITE_ID_META, WRITE_LOG_META};
use storage_core::object_store::{GetOptions, GetRange, GetResult, ObjectStore};
use storage_core::{ObjectInfo, PutOpts, StorageError, WriteCondition};

use crate::auth::Policy;
use crate::catalog::{Catalog, View, is_reserved};
use crate::checksum::{self, expected_of};
use crate::error::{invalid, no_such_bucket, not_implemented, to_s3};
use crate::metrics;
use crate::whole::{self, Budget, DEFAULT_MAX_CONDITIONAL_BYTES};

/// Bodies up to this size are read whole before the response starts (bounded: at most this
/// much per request in memory); larger ones stream.
const SMALL_READ: u64 = 256 * 1024;

/// Most keys one listing page returns (S3's limit).
pub const MAX_KEYS: usize = 1000;

/// The S3 implementation over a [`Catalog`].
#[derive(Debug, Clone)]
pub struct StrataS3 {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) policy: Arc<Policy>,
    /// Memory for conditional writes over one part (see [`crate::whole`]).
    pub(crate) whole: Arc<Budget>,
    started: SystemTime,
}

impl StrataS3 {
    /// Serve `catalog` under `policy`.
    pub fn new(catalog: Arc<Catalog>, policy: Arc<Policy>) -> StrataS3 {
        StrataS3 {
            catalog,
            policy,
            whole: Arc::new(Budget::new(DEFAULT_MAX_CONDITIONAL_BYTES)),
            started: SystemTime::now(),
        }
    }

    /// Hold at most `bytes` of conditional writes over one part (8 MiB) in memory at once;
    /// a larger one is refused (`serve.max_conditional_bytes`, 256 MiB by default).
    pub fn with_max_conditional_bytes(mut self, bytes: u64) -> StrataS3 {
        self.whole = Arc::new(Budget::new(bytes));
        self
    }

    pub(crate) fn view(&self, name: &str) -> S3Result<View> {
        self.catalog.get(name).ok_or_else(|| no_such_bucket(name))
    }

    /// The empty answer of a request about bucket `name` itself (HeadBucket,
    /// GetBucketLocation): `NoSuchBucket` unless it is served.
    fn served<O: Default>(&self, name: &str) -> S3Result<S3Response<O>> {
        self.view(name)?;
        Ok(S3Response::new(O::default()))
    }
}

/// One method of the `S3` trait from a closure-like body that gets the server and the
/// request: the trait's signature (as `#[async_trait]` writes it) is written here once.
/// The body runs in an `async` block, so it may `.await` and use `?`.
macro_rules! s3_fn {
    ($method:ident($input:ty) -> $output:ty, |$this:ident, $req:ident| $body:expr) => {
        fn $method<'life0, 'async_trait>(
            &'life0 self,
            $req: S3Request<$input>,
        ) -> ::core::pin::Pin<
            Box<
                dyn ::core::future::Future<Output = S3Result<S3Response<$output>>>
                    + Send
                    + 'async_trait,
            >,
        >
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            let $this = self;
            Box::pin(async move { $body })
        }
    };
    (@multipart $($method:ident($input:ty) -> $output:ty),+ $(,)?) => {
        $(s3_fn!($method($input) -> $output, |this, req| {
            Ok(S3Response::new(crate::multipart::$method(this, req.input).await?))
        });)+
    };
}

// ---- conversions ----------------------------------------------------------------------

/// A Strata ETag (`"abc"`) as S3 sends it.
pub(crate) fn etag_out(etag: Option<&str>) -> Option<ETag> {
    etag.map(|e| ETag::Strong(e.trim_start_matches("W/").trim_matches('"').to_string()))
}

/// A client's ETag in the quoted form Strata's stores compare.
pub(crate) fn etag_in(etag: &ETag) -> String {
    format!("\"{}\"", etag.value())
}

pub(crate) fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from(SystemTime::from(t))
}

fn chrono_of(t: &Timestamp) -> S3Result<DateTime<Utc>> {
    let odt: time::OffsetDateTime = t.clone().into();
    DateTime::from_timestamp(odt.unix_timestamp(), odt.nanosecond())
        .ok_or_else(|| invalid("timestamp out of range"))
}

/// User metadata as S3 shows it: Strata's own write-id bookkeeping hidden.
pub(crate) fn user_metadata(info: &ObjectInfo) -> Option<Metadata> {
    let m: Metadata = info
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != WRITE_ID_META && k.as_str() != WRITE_LOG_META)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!m.is_empty()).then_some(m)
}

fn header(info: &ObjectInfo, name: &str) -> Option<String> {
    info.headers.get(name).cloned()
}

fn content_type_of(info: &ObjectInfo) -> Option<ContentType> {
    header(info, "content-type").and_then(|c| c.parse().ok())
}

/// Put options from content headers and user metadata (a request's, or a stored object's
/// for a copy), without Strata's own write stamps.
pub(crate) fn put_opts(
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    metadata: Option<Metadata>,
) -> PutOpts {
    let mut opts = PutOpts {
        content_type,
        cache_control,
        content_disposition,
        content_encoding,
        ..Default::default()
    };
    for (k, v) in metadata.unwrap_or_default() {
        let k = k.to_ascii_lowercase();
        // A Strata client's own write stamps: the server's `Bucket` stamps each
        // conditional write itself, and hides the stamps from clients.
        if k == WRITE_ID_META || k == WRITE_LOG_META {
            continue;
        }
        opts.metadata.insert(k, v);
    }
    opts
}

/// [`put_opts`] from a request that writes an object (`PutObject`, `CopyObject` with
/// `REPLACE`, `CreateMultipartUpload`): the same fields, but s3s gives those input types no
/// common trait.
macro_rules! put_opts_of {
    ($input:ident) => {
        $crate::s3::put_opts(
            $input.content_type,
            $input.cache_control,
            $input.content_disposition,
            $input.content_encoding,
            $input.metadata,
        )
    };
}
pub(crate) use put_opts_of;

/// A write condition from `If-Match` / `If-None-Match`.
pub(crate) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<WriteCondition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(WriteCondition::Overwrite),
        (None, Some(ETagCondition::Any)) => Ok(WriteCondition::IfAbsent),
        (Some(ETagCondition::ETag(e)), None) => Ok(WriteCondition::IfMatch {
            etag: etag_in(e),
            version: None,
        }),
        (Some(ETagCondition::Any), None) => Err(not_implemented(
            "If-Match: * on a write; send the object's ETag instead",
        )),
        (None, Some(ETagCondition::ETag(_))) => Err(not_implemented(
            "If-None-Match with an ETag on a write; only If-None-Match: * (create) is supported",
        )),
        (Some(_), Some(_)) => Err(invalid(
            "If-Match and If-None-Match together on a write; send one",
        )),
    }
}

/// The request body as a stream of Strata results.
pub(crate) fn body_stream(
    body: Option<StreamingBlob>,
) -> BoxStream<'static, storage_core::Result<Bytes>> {
    match body {
        None => futures::stream::empty().boxed(),
        Some(b) => b
            .map_err(|e| {
                StorageError::invalid_input("body", format!("reading the request body: {e}"))
            })
            .boxed(),
    }
}

fn get_range(r: &Range) -> GetRange {
    match *r {
        Range::Int {
            first,
            last: Some(last),
        } => GetRange::Bounded(first..last.saturating_add(1)),
        Range::Int { first, last: None } => GetRange::Offset(first),
        Range::Suffix { length } => GetRange::Suffix(length),
    }
}

/// GET/HEAD preconditions as `object_store` options (the store applies them atomically with
/// the read; they are checked again on what it returns, for backends that ignore them).
fn read_options(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<GetOptions> {
    let cond = |c: &ETagCondition| match c {
        ETagCondition::Any => "*".to_string(),
        ETagCondition::ETag(e) => etag_in(e),
    };
    let mut o = GetOptions {
        if_match: if_match.map(cond),
        if_none_match: if_none_match.map(cond),
        ..Default::default()
    };
    // RFC 9110: If-None-Match wins over If-Modified-Since, If-Match over If-Unmodified-Since.
    if o.if_none_match.is_none() {
        o.if_modified_since = if_modified_since.map(chrono_of).transpose()?;
    }
    if o.if_match.is_none() {
        o.if_unmodified_since = if_unmodified_since.map(chrono_of).transpose()?;
    }
    Ok(o)
}

/// [`read_options`] from the `If-*` fields of a `GetObject` or `HeadObject` input (the same
/// fields, but s3s gives the input types no common trait).
macro_rules! read_options_of {
    ($input:ident) => {
        read_options(
            $input.if_match.as_ref(),
            $input.if_none_match.as_ref(),
            $input.if_modified_since.as_ref(),
            $input.if_unmodified_since.as_ref(),
        )
    };
}

/// Read through the view's whole stack with `options`; answers as S3 expects.
async fn read(view: &View, key: &str, options: GetOptions) -> S3Result<(ObjectInfo, GetResult)> {
    let path = view.key(key).map_err(to_s3)?.to_path();
    let store = view.bucket.store();
    let checks = options.clone();
    let r = store
        .get_opts(&path, options)
        .await
        .map_err(|e| to_s3(StorageError::from_object_store(view.bucket.name(), e)))?;
    if let Err(e) = checks.check_preconditions(&r.meta) {
        return Err(to_s3(StorageError::from_object_store(
            view.bucket.name(),
            e,
        )));
    }
    let mut info = ObjectInfo::from_meta(&r.meta);
    info.key = key.to_string();
    for (k, v) in storage_core::attrs::attributes_to_map(&r.attributes) {
        match k.strip_prefix(storage_core::attrs::META_PREFIX) {
            Some(m) => info.metadata.insert(m.to_string(), v),
            None => info.headers.insert(k, v),
        };
    }
    Ok((info, r))
}

// ---- listings --------------------------------------------------------------------------

/// One page of a listing, whatever the API version.
struct Page {
    objects: Vec<ObjectInfo>,
    prefixes: Vec<String>,
    /// More entries follow the last one returned.
    truncated: bool,
    /// The last entry returned (a key or a common prefix).
    last: Option<String>,
}

/// Entries of `view` whose key starts with `prefix`, grouped at `delimiter`, strictly after
/// `after`, in key order, at most `max` of them.
///
/// Memory is bounded by `max`: a backend that lists in no particular order (the local
/// folder) is walked once per page, keeping only the `max + 1` smallest entries.
async fn list_page(
    view: &View,
    prefix: &str,
    delimiter: Option<&str>,
    after: Option<&str>,
    max: usize,
) -> S3Result<Page> {
    let hide = view.holds_uploads();
    // The folder to ask the store for: `object_store` lists by whole path segments.
    let dir = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let mut entries: BTreeMap<String, Option<ObjectInfo>> = BTreeMap::new();
    let keep = max + 1;
    let push = |entries: &mut BTreeMap<String, Option<ObjectInfo>>,
                name: String,
                info: Option<ObjectInfo>| {
        if after.is_some_and(|a| name.as_str() <= a) || entries.contains_key(&name) {
            return;
        }
        if entries.len() >= keep {
            let last = entries.keys().next_back().cloned().unwrap_or_default();
            if name >= last {
                return;
            }
            entries.remove(&last);
        }
        entries.insert(name, info);
    };
    if delimiter == Some("/") {
        let level = view.bucket.list_dir(dir).await.map_err(to_s3)?;
        for p in level.prefixes {
            if p.starts_with(prefix) && !(hide && is_reserved(&p)) {
                push(&mut entries, p, None);
            }
        }
        for o in level.objects {
            if o.key.starts_with(prefix) && !(hide && is_reserved(&o.key)) {
                push(&mut entries, o.key.clone(), Some(o));
            }
        }
    } else {
        // Start the walk after `after` where it lies under the folder (S3 backends skip
        // there server-side).
        let offset = after.filter(|a| a.starts_with(dir) && !a.is_empty());
        let mut stream = view.bucket.list_after(dir, offset);
        while let Some(o) = stream.next().await {
            let o = o.map_err(to_s3)?;
            if !o.key.starts_with(prefix) || (hide && is_reserved(&o.key)) {
                continue;
            }
            match delimiter.filter(|d| !d.is_empty()) {
                Some(d) => match o.key[prefix.len()..].find(d) {
                    Some(i) => {
                        let p = o.key[..prefix.len() + i + d.len()].to_string();
                        push(&mut entries, p, None);
                    }
                    None => push(&mut entries, o.key.clone(), Some(o)),
                },
                None => push(&mut entries, o.key.clone(), Some(o)),
            }
        }
    }
    let truncated = entries.len() > max;
    let mut page = Page {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated,
        last: None,
    };
    for (name, info) in entries.into_iter().take(max) {
        page.last = Some(name.clone());
        match info {
            Some(i) => page.objects.push(i),
            None => page.prefixes.push(name),
        }
    }
    Ok(page)
}

/// Percent-encode for `encoding-type=url` (everything but unreserved characters and `/`).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn max_keys(m: Option<i32>) -> usize {
    m.map(|m| usize::try_from(m).unwrap_or(0).min(MAX_KEYS))
        .unwrap_or(MAX_KEYS)
}

/// Names as a listing answers them: percent-encoded when the client sent
/// `encoding-type=url`.
#[derive(Clone, Copy)]
struct Names {
    url: bool,
}

impl Names {
    fn of(encoding: Option<&EncodingType>) -> Names {
        Names {
            url: encoding.is_some_and(|e| e.as_str() == EncodingType::URL),
        }
    }

    fn enc(self, s: String) -> String {
        if self.url { url_encode(&s) } else { s }
    }
}

/// What both ListObjects versions answer alike for one page.
struct Listing {
    /// The prefix asked for, encoded.
    prefix: String,
    max: usize,
    page: Page,
    names: Names,
}

impl Listing {
    /// The page of `prefix` (none: everything) grouped at `delimiter`, strictly after
    /// `after` (none or empty: from the start), at most `max_keys` (S3's limit when absent).
    async fn read(
        view: &View,
        prefix: Option<String>,
        delimiter: Option<&str>,
        after: Option<String>,
        max_keys_asked: Option<i32>,
        encoding: Option<&EncodingType>,
    ) -> S3Result<Listing> {
        let prefix = prefix.unwrap_or_default();
        let max = max_keys(max_keys_asked);
        let after = after.filter(|a| !a.is_empty());
        let page = list_page(view, &prefix, delimiter, after.as_deref(), max).await?;
        let names = Names::of(encoding);
        Ok(Listing {
            prefix: names.enc(prefix),
            max,
            page,
            names,
        })
    }

    fn common_prefixes(&mut self) -> CommonPrefixList {
        let names = self.names;
        std::mem::take(&mut self.page.prefixes)
            .into_iter()
            .map(|p| CommonPrefix {
                prefix: Some(names.enc(p)),
            })
            .collect()
    }

    fn contents(&mut self) -> ObjectList {
        let names = self.names;
        std::mem::take(&mut self.page.objects)
            .into_iter()
            .map(|o| Object {
                e_tag: etag_out(o.etag.as_deref()),
                key: Some(names.enc(o.key)),
                last_modified: Some(timestamp(o.last_modified)),
                size: Some(o.size as i64),
                storage_class: Some(ObjectStorageClass::from_static(
                    ObjectStorageClass::STANDARD,
                )),
                ..Default::default()
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl S3 for StrataS3 {
    s3_fn!(list_buckets(ListBucketsInput) -> ListBucketsOutput, |this, req| {
        let created = Timestamp::from(this.started);
        let buckets = this
            .catalog
            .names()
            .into_iter()
            .filter(|n| this.policy.may_reach(req.credentials.as_ref(), n))
            .map(|n| Bucket {
                name: Some(n),
                creation_date: Some(created.clone()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            ..Default::default()
        }))
    });

    s3_fn!(head_bucket(HeadBucketInput) -> HeadBucketOutput, |this, req| {
        this.served(&req.input.bucket)
    });

    s3_fn!(get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput, |this, req| {
        this.served(&req.input.bucket)
    });

    s3_fn!(create_bucket(CreateBucketInput) -> CreateBucketOutput, |this, req| {
        let name = &req.input.bucket;
        if this.catalog.get(name).is_some() {
            return Err(S3Error::with_message(
                S3ErrorCode::BucketAlreadyOwnedByYou,
                format!("`{name}` is already served"),
            ));
        }
        this.catalog.create(name).map_err(to_s3)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    });

    s3_fn!(get_object(GetObjectInput) -> GetObjectOutput, |this, req| {
        let input = req.input;
        let view = this.view(&input.bucket)?;
        if input.part_number.is_some() {
            return Err(not_implemented("GetObject with partNumber; use a Range"));
        }
        let mut options = read_options_of!(input)?;
        options.range = input.range.as_ref().map(get_range);
        let (info, r) = match read(&view, &input.key, options).await {
            Ok(x) => x,
            Err(e) => return Err(range_error(&view, &input.key, input.range.as_ref(), e).await),
        };
        let range = r.range.clone();
        let size = r.meta.size;
        let partial = input.range.is_some();
        let name = view.bucket.name().to_string();
        let bytes = range.end - range.start;
        metrics::bytes_out(bytes);
        let body = if bytes <= SMALL_READ {
            // A small body in one read (one trip to the blocking pool for a local file,
            // where a stream takes one per 8 KiB chunk).
            let whole = r
                .bytes()
                .await
                .map_err(|e| to_s3(StorageError::from_object_store(&name, e)))?;
            futures::stream::once(async move { Ok::<_, StorageError>(whole) }).boxed()
        } else {
            r.into_stream()
                .map_err(move |e| StorageError::from_object_store(&name, e))
                .boxed()
        };
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(SyncStream::new(body))),
            content_length: Some(bytes as i64),
            content_range: partial.then(|| {
                format!(
                    "bytes {}-{}/{}",
                    range.start,
                    range.end.saturating_sub(1),
                    size
                )
            }),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(info.last_modified)),
            e_tag: etag_out(info.etag.as_deref()),
            metadata: user_metadata(&info),
            content_type: input
                .response_content_type
                .and_then(|c| c.parse().ok())
                .or_else(|| content_type_of(&info)),
            content_encoding: input
                .response_content_encoding
                .or_else(|| header(&info, "content-encoding")),
            content_disposition: input
                .response_content_disposition
                .or_else(|| header(&info, "content-disposition")),
            cache_control: input
                .response_cache_control
                .or_else(|| header(&info, "cache-control")),
            content_language: header(&info, "content-language"),
            ..Default::default()
        }))
    });

    s3_fn!(head_object(HeadObjectInput) -> HeadObjectOutput, |this, req| {
        let input = req.input;
        let view = this.view(&input.bucket)?;
        let mut options = read_options_of!(input)?;
        options.head = true;
        let (info, _) = read(&view, &input.key, options).await?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(info.size as i64),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(info.last_modified)),
            e_tag: etag_out(info.etag.as_deref()),
            metadata: user_metadata(&info),
            content_type: content_type_of(&info),
            content_encoding: header(&info, "content-encoding"),
            content_disposition: header(&info, "content-disposition"),
            cache_control: header(&info, "cache-control"),
            content_language: header(&info, "content-language"),
            ..Default::default()
        }))
    });

    s3_fn!(put_object(PutObjectInput) -> PutObjectOutput, |this, req| {
        let trailers = req.trailing_headers;
        let input = req.input;
        let view = this.view(&input.bucket)?;
        let key = view.key(&input.key).map_err(to_s3)?;
        let mut opts = put_opts_of!(input);
        opts.condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let size = input.content_length.and_then(|n| u64::try_from(n).ok());
        let (body, verdict) = checksum::verified(input.body, expected_of!(input), trailers);
        let body = metrics::count_in(body);
        let w = match size {
            // A conditional body of known size goes out whole, in one conditional request,
            // whatever its size (see `whole`); `put_stream` refuses one over a part.
            Some(size) if opts.condition != WriteCondition::Overwrite => {
                let held = this.whole.hold(size).await?;
                if held.is_some() {
                    whole::precheck(&view.bucket, key.as_str(), &opts.condition).await?;
                }
                match whole::collect(body, size).await {
                    Ok(bytes) => view.bucket.put_with(key.as_str(), bytes, opts).await,
                    Err(e) => Err(e),
                }
            }
            _ => view.bucket.put_stream(key.as_str(), body, opts).await,
        }
        .map_err(|e| verdict.error().unwrap_or_else(|| to_s3(e)))?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: etag_out(w.etag.as_deref()),
            ..Default::default()
        }))
    });

    s3_fn!(delete_object(DeleteObjectInput) -> DeleteObjectOutput, |this, req| {
        let input = req.input;
        let view = this.view(&input.bucket)?;
        let key = view.key(&input.key).map_err(to_s3)?;
        match &input.if_match {
            None => view.bucket.delete(key.as_str()).await.map_err(to_s3)?,
            Some(ETagCondition::ETag(e)) => view
                .bucket
                .delete_if_match(key.as_str(), &etag_in(e))
                .await
                .map_err(to_s3)?,
            Some(ETagCondition::Any) => {
                // "Delete only if it exists": a missing object is 404, as on S3.
                view.bucket.head(key.as_str()).await.map_err(to_s3)?;
                view.bucket.delete(key.as_str()).await.map_err(to_s3)?
            }
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    });

    s3_fn!(delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput, |this, req| {
        let input = req.input;
        let view = this.view(&input.bucket)?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut errors = Vec::new();
        let mut keys = Vec::new();
        for o in input.delete.objects {
            match view.key(&o.key) {
                Ok(_) => keys.push(o.key),
                Err(e) => errors.push(Error {
                    code: Some("InvalidArgument".into()),
                    key: Some(o.key),
                    message: Some(e.to_string()),
                    ..Default::default()
                }),
            }
        }
        let report = view.bucket.delete_many(&keys).await;
        for (key, e) in report.failed {
            let s3 = to_s3(e);
            errors.push(Error {
                code: Some(s3.code().as_str().to_string()),
                key: Some(key),
                message: s3.message().map(str::to_string),
                ..Default::default()
            });
        }
        let deleted = (!quiet).then(|| {
            report
                .deleted
                .into_iter()
                .map(|k| DeletedObject {
                    key: Some(k),
                    ..Default::default()
                })
                .collect()
        });
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted,
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    });

    s3_fn!(copy_object(CopyObjectInput) -> CopyObjectOutput, |this, req| {
        let input = req.input;
        let (src_bucket, src_key) = match &input.copy_source {
            CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
            _ => return Err(not_implemented("copy from an access point or outpost")),
        };
        if !this.policy.may_reach(req.credentials.as_ref(), &src_bucket) {
            return Err(crate::error::denied(format!(
                "this credential may not read the copy source bucket `{src_bucket}`"
            )));
        }
        let src = this.view(&src_bucket)?;
        let dst = this.view(&input.bucket)?;
        let dst_key = dst.key(&input.key).map_err(to_s3)?;
        let options = read_options(
            input.copy_source_if_match.as_ref(),
            input.copy_source_if_none_match.as_ref(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        )?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        // A copy whose preconditions fail is 412, never 304.
        let precondition = |e: S3Error| {
            if *e.code() == S3ErrorCode::NotModified {
                S3Error::with_message(S3ErrorCode::PreconditionFailed, "copy source not modified")
            } else {
                e
            }
        };
        let (info, r) = read(&src, &src_key, options).await.map_err(precondition)?;
        let opts = if replace {
            put_opts_of!(input)
        } else {
            put_opts(
                header(&info, "content-type"),
                header(&info, "cache-control"),
                header(&info, "content-disposition"),
                header(&info, "content-encoding"),
                user_metadata(&info),
            )
        };
        // Same handle, metadata kept: the backend's own copy (server-side on S3).
        let w = if !replace && src.name == dst.name && src_key != dst_key.as_str() {
            drop(r);
            dst.bucket
                .copy(&src_key, dst_key.as_str())
                .await
                .map_err(to_s3)?;
            let head = dst.bucket.head(dst_key.as_str()).await.map_err(to_s3)?;
            (head.etag, head.last_modified)
        } else {
            let name = src.bucket.name().to_string();
            let body = r
                .into_stream()
                .map_err(move |e| StorageError::from_object_store(&name, e));
            let w = dst
                .bucket
                .put_stream(dst_key.as_str(), body, opts)
                .await
                .map_err(to_s3)?;
            (w.etag, Utc::now())
        };
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: etag_out(w.0.as_deref()),
                last_modified: Some(timestamp(w.1)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    });

    s3_fn!(list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output, |this, req| {
        let input = req.input;
        let view = this.view(&input.bucket)?;
        let after = input
            .continuation_token
            .clone()
            .or(input.start_after.clone());
        let mut l = Listing::read(
            &view,
            input.prefix,
            input.delimiter.as_deref(),
            after,
            input.max_keys,
            input.encoding_type.as_ref(),
        )
        .await?;
        let key_count = (l.page.objects.len() + l.page.prefixes.len()) as i32;
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            common_prefixes: Some(l.common_prefixes()),
            contents: Some(l.contents()),
            start_after: input.start_after.map(|s| l.names.enc(s)),
            delimiter: input.delimiter.map(|d| l.names.enc(d)),
            encoding_type: input.encoding_type,
            prefix: Some(l.prefix),
            max_keys: Some(l.max as i32),
            is_truncated: Some(l.page.truncated),
            next_continuation_token: l.page.last.filter(|_| l.page.truncated),
            ..Default::default()
        }))
    });

    s3_fn!(list_objects(ListObjectsInput) -> ListObjectsOutput, |this, req| {
        let input = req.input;
        let view = this.view(&input.bucket)?;
        let mut l = Listing::read(
            &view,
            input.prefix,
            input.delimiter.as_deref(),
            input.marker.clone(),
            input.max_keys,
            input.encoding_type.as_ref(),
        )
        .await?;
        // S3 sends NextMarker only with a delimiter; clients use the last key otherwise.
        let next_marker = (l.page.truncated && input.delimiter.is_some())
            .then(|| l.page.last.clone().map(|m| l.names.enc(m)))
            .flatten();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            marker: input.marker.map(|m| l.names.enc(m)),
            next_marker,
            common_prefixes: Some(l.common_prefixes()),
            contents: Some(l.contents()),
            delimiter: input.delimiter.map(|d| l.names.enc(d)),
            encoding_type: input.encoding_type,
            prefix: Some(l.prefix),
            max_keys: Some(l.max as i32),
            is_truncated: Some(l.page.truncated),
            ..Default::default()
        }))
    });

    // Multipart uploads: in `crate::multipart`, a function of the same name each, from the
    // request's input to the answer.
    s3_fn!(@multipart
        create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput,
        list_parts(ListPartsInput) -> ListPartsOutput,
        complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput,
        abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput,
    );

    s3_fn!(upload_part(UploadPartInput) -> UploadPartOutput, |this, req| {
        let trailers = req.trailing_headers;
        let answer = crate::multipart::upload_part(this, req.input, trailers).await?;
        Ok(S3Response::new(answer))
    });
}

/// A failed ranged read: `InvalidRange` when the range lies past the object's end.
async fn range_error(view: &View, key: &str, range: Option<&Range>, e: S3Error) -> S3Error {
    let Some(range) = range else { return e };
    if matches!(
        e.code(),
        S3ErrorCode::NoSuchKey | S3ErrorCode::PreconditionFailed | S3ErrorCode::NotModified
    ) {
        return e;
    }
    match view.bucket.head(key).await {
        Ok(info) if range.check(info.size).is_err() => S3Error::with_message(
            S3ErrorCode::InvalidRange,
            format!(
                "the range is not satisfiable: the object is {} bytes",
                info.size
            ),
        ),
        _ => e,
    }
}

/// A stream that is `Sync` because it is only ever polled through `&mut` (what
/// `StreamingBlob` asks of a body).
pub(crate) struct SyncStream<T>(std::sync::Mutex<BoxStream<'static, T>>);

impl<T> SyncStream<T> {
    pub(crate) fn new(s: BoxStream<'static, T>) -> Self {
        SyncStream(std::sync::Mutex::new(s))
    }
}

impl<T> futures::Stream for SyncStream<T> {
    type Item = T;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        // `get_mut` takes no lock: the `&mut` proves exclusive access.
        match self.get_mut().0.get_mut() {
            Ok(s) => s.poll_next_unpin(cx),
            Err(poisoned) => poisoned.into_inner().poll_next_unpin(cx),
        }
    }
}
