//! [`S3Store`]: `object_store`'s `AmazonS3` with Strata's two S3 rules applied in one place.
//!
//! 1. **A conditional request is never resent by the HTTP client.** `object_store`'s client
//!    resends a request after a 5xx (and an `If-Match` PUT after a 409); when the first send
//!    was applied, the resend answers 412 for our own write. So conditional writes
//!    (create-if-absent, put-if-match, copy-if-absent) go through a second client built with
//!    HTTP retries off, and only [`Bucket`](storage_core::Bucket)'s conditional-write loop,
//!    which can tell its own write from another's, repeats them. Every other request uses
//!    the client with the configured HTTP retries.
//! 2. **Errors are typed from the error chain, and S3's error codes are matched here**
//!    ([`classify`]): a transport timeout is `Timeout` with the configured duration and its
//!    source, a 5xx or a dropped connection or torn body is `Unavailable`, `SlowDown` and 429
//!    are `QuotaExceeded`, `ConditionalRequestConflict` and 409 are `Precondition`,
//!    credential codes are `Unauthenticated`, `NoSuchBucket` is `InvalidConfig`. Nothing above
//!    guesses from message text.
//! 3. **An error answer keeps its status even when its body is cut** (`StatusKeeping`):
//!    `object_store` reads an error body to build its error, and a body cut mid-way used to
//!    lose the status (a missing key then read as a transport failure). The connector reads
//!    error bodies itself and replaces a cut one with an empty body, so a 404 is `NotFound`
//!    and a 500 is retried as a 500.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::aws::AmazonS3;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService,
    ReqwestConnector,
};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    ClientOptions, CopyMode, GetResultPayload, MultipartUpload, ObjectStore, PutMode, PutPayload,
    PutResult, Result as OsResult,
};
use storage_core::attrs::validate_attributes;
use storage_core::{Capabilities, PresignMethod, StorageError, StrataStore};

/// `AmazonS3` with conditional requests sent once and errors typed; see the module docs.
#[derive(Debug, Clone)]
pub struct S3Store {
    /// Reads, listings, unconditional writes and deletes: HTTP retries as configured.
    plain: Arc<AmazonS3>,
    /// Conditional writes: HTTP retries off.
    conditional: Arc<AmazonS3>,
    /// The client timeout, reported in `Timeout` errors.
    timeout: Duration,
    /// What this bucket is configured to support.
    capabilities: Capabilities,
    /// Sends DELETE with If-Match; present when the server is known to honour it.
    conditional_delete: Option<ConditionalDeleteClient>,
}

impl fmt::Display for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Store({})", self.plain)
    }
}

impl S3Store {
    pub(crate) fn new(
        plain: AmazonS3,
        conditional: AmazonS3,
        timeout: Duration,
        capabilities: Capabilities,
        conditional_delete: Option<ConditionalDeleteClient>,
    ) -> Self {
        let mut capabilities = capabilities;
        capabilities.delete_if_match = conditional_delete.is_some();
        S3Store {
            plain: Arc::new(plain),
            conditional: Arc::new(conditional),
            timeout,
            capabilities,
            conditional_delete,
        }
    }

    fn map(&self, e: object_store::Error) -> object_store::Error {
        map_error(e, self.timeout)
    }

    /// A stream whose errors are typed like every other S3 error.
    fn map_stream<T: Send + 'static>(
        &self,
        s: BoxStream<'static, OsResult<T>>,
    ) -> BoxStream<'static, OsResult<T>> {
        let timeout = self.timeout;
        s.map(move |r| r.map_err(|e| map_error(e, timeout))).boxed()
    }
}

fn map_error(e: object_store::Error, timeout: Duration) -> object_store::Error {
    use object_store::Error as E;
    match e {
        // Already typed by object_store from the status; kept as they are so generic
        // `object_store` callers see the usual variants.
        E::NotFound { .. } | E::Precondition { .. } | E::NotModified { .. } => e,
        // object_store maps every 409 to AlreadyExists; on S3 a 409 to a conditional request
        // is ConditionalRequestConflict (a concurrent conditional write), which is a
        // precondition failure, not an existing object.
        E::AlreadyExists { path, source } => {
            if chain_text(source.as_ref()).contains("ConditionalRequestConflict") {
                E::Precondition { path, source }
            } else {
                E::AlreadyExists { path, source }
            }
        }
        E::Generic { source, .. } => classify("s3", source, timeout).into_object_store(),
        E::PermissionDenied { path, source } => {
            if is_credential_error(&chain_text(source.as_ref())) {
                StorageError::Unauthenticated {
                    backend: "s3".into(),
                    source,
                }
                .into_object_store()
            } else {
                E::PermissionDenied { path, source }
            }
        }
        other => other,
    }
}

fn is_credential_error(text: &str) -> bool {
    text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("ExpiredToken")
}

/// Every message in the chain, joined (S3 error codes sit in the innermost body).
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    storage_core::error_sources(err)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the error chain says about an S3 request: the transport failure kind and the HTTP
/// status, wherever in the chain they sit.
#[derive(Debug, Default, PartialEq, Eq)]
struct ChainFacts {
    transport: Option<HttpErrorKind>,
    /// A reqwest error (the conditional DELETE's client): timed out, or failed in transport.
    reqwest_timeout: bool,
    reqwest_transport: bool,
    io: Option<std::io::ErrorKind>,
    status: Option<u16>,
}

fn facts(err: &(dyn StdError + 'static)) -> ChainFacts {
    let sources = || storage_core::error_sources(err);
    let reqwest = || sources().filter_map(|e| e.downcast_ref::<reqwest::Error>());
    ChainFacts {
        transport: sources().find_map(|e| e.downcast_ref::<HttpError>().map(HttpError::kind)),
        reqwest_timeout: reqwest().any(|r| r.is_timeout()),
        reqwest_transport: reqwest().any(|r| r.is_connect() || r.is_request() || r.is_body()),
        io: sources().find_map(storage_core::io_kind),
        status: storage_core::status_in_chain(err),
    }
}

/// Type an S3 failure from its error chain; see the module docs.
pub fn classify(
    backend: &str,
    source: Box<dyn StdError + Send + Sync + 'static>,
    timeout: Duration,
) -> StorageError {
    let backend = backend.to_string();
    let f = facts(source.as_ref());
    let text = chain_text(source.as_ref());
    if text.contains("SlowDown") || f.status == Some(429) || text.contains("QuotaExceeded") {
        return StorageError::QuotaExceeded {
            backend,
            detail: first_line(&text),
        };
    }
    if text.contains("ConditionalRequestConflict") || f.status == Some(409) {
        return StorageError::Precondition {
            backend,
            key: String::new(),
            detail: first_line(&text),
        };
    }
    if is_credential_error(&text) || f.status == Some(401) {
        return StorageError::Unauthenticated { backend, source };
    }
    if f.status == Some(403) {
        return StorageError::AccessDenied {
            backend,
            key: String::new(),
            source,
        };
    }
    if text.contains("NoSuchBucket") {
        return StorageError::InvalidConfig {
            field: "bucket".into(),
            reason: format!(
                "the bucket does not exist on {backend}: {}",
                first_line(&text)
            ),
        };
    }
    if let Some(s) = f.status {
        if (500..600).contains(&s) || s == 408 {
            return StorageError::Unavailable { backend, source };
        }
        return StorageError::Backend {
            backend,
            status: Some(s),
            source,
        };
    }
    if f.transport == Some(HttpErrorKind::Timeout)
        || f.io == Some(std::io::ErrorKind::TimedOut)
        || f.reqwest_timeout
    {
        return StorageError::Timeout {
            backend,
            operation: "S3 request".into(),
            after: timeout,
            source: Some(source),
        };
    }
    // Connection refused or reset, a torn body or listing, a failed decode of a cut answer:
    // the server may be back on the next try.
    if f.transport.is_some() || f.io.is_some() || f.reqwest_transport {
        return StorageError::Unavailable { backend, source };
    }
    StorageError::Backend {
        backend,
        status: None,
        source,
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// The S3 clients' HTTP connector: `object_store`'s reqwest client, with error answers read
/// whole here so a cut error body cannot hide the status (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct StatusKeepingConnector(ReqwestConnector);

impl HttpConnector for StatusKeepingConnector {
    fn connect(&self, options: &ClientOptions) -> OsResult<HttpClient> {
        Ok(HttpClient::new(StatusKeeping(self.0.connect(options)?)))
    }
}

/// An [`HttpService`] that reads error bodies (non-2xx, non-304) in full and answers a cut
/// one with an empty body and the status it had.
#[derive(Debug)]
pub(crate) struct StatusKeeping(HttpClient);

#[async_trait]
impl HttpService for StatusKeeping {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let res = self.0.execute(req).await?;
        let status = res.status();
        if status.is_success() || status.is_redirection() {
            return Ok(res);
        }
        let (parts, body) = res.into_parts();
        let body = match body.bytes().await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%status, error = %e, "error answer with a cut body: keeping its status");
                Bytes::new()
            }
        };
        Ok(HttpResponse::from_parts(parts, body.into()))
    }
}

fn is_conditional(mode: &PutMode) -> bool {
    !matches!(mode, PutMode::Overwrite)
}

impl StrataStore for S3Store {
    storage_core::store_fn!(capabilities, |this| this.capabilities);
    storage_core::store_fn!(key_prefix, |_| None);

    storage_core::store_fn!(delete_if_match, |this, location, etag| {
        match &this.conditional_delete {
            Some(client) => client.send(&this.plain, location, etag).await,
            None => Err(storage_core::store::not_supported(
                "s3",
                "delete-if-match on this server (set conditional_delete = true if it honours \
                 If-Match on DELETE)",
            )),
        }
    });

    storage_core::store_fn!(presign, |this, method, location, expires_in| {
        if !this.capabilities.presign {
            return Err(storage_core::store::not_supported(
                "s3",
                "presigned URLs with anonymous access (there is no key to sign with)",
            ));
        }
        let m = match method {
            PresignMethod::Get => object_store::signer::Method::GET,
            PresignMethod::Put => object_store::signer::Method::PUT,
        };
        this.plain
            .signed_url(m, location, expires_in)
            .await
            .map_err(|e| this.map(e))
    });
}

/// Delete-if-match as a DELETE with `If-Match`, which S3 evaluates atomically (412 when the
/// ETag differs). `object_store` has no conditional DELETE, so the request is presigned by
/// its SigV4 signer (credentials, session tokens and refreshes as for every other request)
/// and sent by an HTTP client made from the bucket's own `ClientOptions` (timeouts, proxy,
/// pool) and connector. It is not resent here: after a lost answer, a second attempt would
/// find the object gone; `Bucket`'s conditional loop resolves that.
#[derive(Debug, Clone)]
pub(crate) struct ConditionalDeleteClient {
    http: HttpClient,
    /// The client timeout, reported in `Timeout` errors.
    timeout: Duration,
}

impl ConditionalDeleteClient {
    pub(crate) fn new(options: &ClientOptions, timeout: Duration) -> storage_core::Result<Self> {
        let http = StatusKeepingConnector::default()
            .connect(options)
            .map_err(|e| StorageError::from_object_store("s3", e))?;
        Ok(ConditionalDeleteClient { http, timeout })
    }

    async fn send(&self, signer: &AmazonS3, path: &Path, etag: &str) -> OsResult<()> {
        // Long enough for a slow request; the URL is used once, at once.
        let url = signer
            .signed_url(
                object_store::signer::Method::DELETE,
                path,
                Duration::from_secs(300),
            )
            .await?;
        let bare = etag.trim().trim_start_matches("W/").trim_matches('"');
        let request = http::Request::builder()
            .method(http::Method::DELETE)
            .uri(url.as_str())
            .header("If-Match", format!("\"{bare}\""))
            .body(object_store::client::HttpRequestBody::empty())
            .map_err(|e| classify("s3", Box::new(e), self.timeout).into_object_store())?;
        let response = self
            .http
            .execute(request)
            .await
            // Typed from the error itself (timeout, connection), like every S3 error.
            .map_err(|e| classify("s3", Box::new(e), self.timeout).into_object_store())?;
        let status = response.status().as_u16();
        let answer = || async {
            let body = response.into_body().bytes().await.unwrap_or_default();
            let body: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            format!("DELETE {path} with If-Match {etag}: HTTP {status} {body}")
        };
        match status {
            200..=299 => Ok(()),
            404 => Err(object_store::Error::NotFound {
                path: path.to_string(),
                source: answer().await.into(),
            }),
            // 409: another request changed the object while this one was evaluated.
            409 | 412 => Err(object_store::Error::Precondition {
                path: path.to_string(),
                source: answer().await.into(),
            }),
            401 | 403 => Err(object_store::Error::PermissionDenied {
                path: path.to_string(),
                source: answer().await.into(),
            }),
            _ => Err(classify("s3", answer().await.into(), self.timeout).into_object_store()),
        }
    }
}

#[deny(clippy::missing_trait_methods)]
impl ObjectStore for S3Store {
    storage_core::store_fn!(put_opts, |this, location, payload, opts| {
        // The signer panics on a header value it cannot send: refuse it as bad input, for
        // callers that write through the raw store as well as through `Bucket`.
        validate_attributes(&opts.attributes).map_err(StorageError::into_object_store)?;
        let client = if is_conditional(&opts.mode) {
            &this.conditional
        } else {
            &this.plain
        };
        client
            .put_opts(location, payload, opts)
            .await
            .map_err(|e| this.map(e))
    });

    storage_core::store_fn!(put_multipart_opts, |this, location, opts| {
        validate_attributes(&opts.attributes).map_err(StorageError::into_object_store)?;
        let upload = this
            .plain
            .put_multipart_opts(location, opts)
            .await
            .map_err(|e| this.map(e))?;
        Ok(Box::new(MappedUpload {
            inner: upload,
            timeout: this.timeout,
        }))
    });

    storage_core::store_fn!(get_opts, |this, location, options| {
        let mut r = this
            .plain
            .get_opts(location, options)
            .await
            .map_err(|e| this.map(e))?;
        if let GetResultPayload::Stream(s) = r.payload {
            r.payload = GetResultPayload::Stream(this.map_stream(s));
        }
        Ok(r)
    });

    storage_core::store_fn!(get_ranges, |this, location, ranges| {
        this.plain
            .get_ranges(location, ranges)
            .await
            .map_err(|e| this.map(e))
    });

    storage_core::store_fn!(delete_stream, |this, locations| {
        this.map_stream(this.plain.delete_stream(locations))
    });

    storage_core::store_fn!(list, |this, prefix| {
        this.map_stream(this.plain.list(prefix))
    });

    storage_core::store_fn!(list_with_offset, |this, prefix, offset| {
        this.map_stream(this.plain.list_with_offset(prefix, offset))
    });

    storage_core::store_fn!(list_with_delimiter, |this, prefix| {
        this.plain
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| this.map(e))
    });

    storage_core::store_fn!(copy_opts, |this, from, to, options| {
        let client = match options.mode {
            CopyMode::Create => &this.conditional,
            _ => &this.plain,
        };
        client
            .copy_opts(from, to, options)
            .await
            .map_err(|e| this.map(e))
    });

    storage_core::store_fn!(rename_opts, |this, from, to, options| {
        // object_store's S3 rename is copy + delete; a no-replace rename is a conditional
        // copy, so it takes the client that does not resend.
        let client = match options.target_mode {
            object_store::RenameTargetMode::Overwrite => &this.plain,
            _ => &this.conditional,
        };
        client
            .rename_opts(from, to, options)
            .await
            .map_err(|e| this.map(e))
    });
}

/// A multipart upload whose errors are typed like every other S3 error.
#[derive(Debug)]
struct MappedUpload {
    inner: Box<dyn MultipartUpload>,
    timeout: Duration,
}

#[async_trait]
impl MultipartUpload for MappedUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let timeout = self.timeout;
        let part = self.inner.put_part(data);
        Box::pin(async move { part.await.map_err(|e| map_error(e, timeout)) })
    }

    async fn complete(&mut self) -> OsResult<PutResult> {
        self.inner
            .complete()
            .await
            .map_err(|e| map_error(e, self.timeout))
    }

    async fn abort(&mut self) -> OsResult<()> {
        self.inner
            .abort()
            .await
            .map_err(|e| map_error(e, self.timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Msg(&'static str, Option<Box<dyn StdError + Send + Sync>>);
    impl fmt::Display for Msg {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Msg {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
        }
    }

    fn chain(outer: &'static str, inner: &'static str) -> Box<dyn StdError + Send + Sync> {
        Box::new(Msg(outer, Some(Box::new(Msg(inner, None)))))
    }

    #[test]
    fn codes_and_statuses_deep_in_the_chain_decide_the_variant() {
        let t = Duration::from_secs(7);
        /// Whether an error is the variant a row expects.
        type IsExpected = fn(&StorageError) -> bool;
        let statuses: [(&str, &str, IsExpected); 3] = [
            (
                "Error performing PUT http://x/k in 3ms",
                "Server returned non-2xx status code: 500 Internal Server Error: <Code>InternalError</Code>",
                |e| matches!(e, StorageError::Unavailable { .. }),
            ),
            (
                "request failed",
                "Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>",
                |e| matches!(e, StorageError::QuotaExceeded { .. }),
            ),
            (
                "request failed",
                "Server returned non-2xx status code: 409 Conflict: <Code>ConditionalRequestConflict</Code>",
                |e| matches!(e, StorageError::Precondition { .. }),
            ),
        ];
        for (outer, inner, expected) in statuses {
            let e = classify("s3", chain(outer, inner), t);
            assert!(expected(&e), "{inner}: {e:?}");
        }
        let e = classify(
            "s3",
            Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow")),
            t,
        );
        match e {
            StorageError::Timeout { after, source, .. } => {
                assert_eq!(after, t);
                assert!(source.is_some());
            }
            other => panic!("{other:?}"),
        }
        let e = classify(
            "s3",
            Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )),
            t,
        );
        assert!(matches!(e, StorageError::Unavailable { .. }), "{e:?}");
    }
}
