//! Request-body integrity: `Content-MD5` and the `x-amz-checksum-*` values (headers, or
//! trailers of an aws-chunked body, which current SDKs send by default) checked while the
//! body streams through. A mismatch ends the stream with an error before its end reaches
//! the store, so `put_stream` writes nothing (a one-part body is written only after its
//! end; a multipart one is aborted).

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use s3s::TrailingHeaders;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{ChecksumAlgorithm, StreamingBlob};
use s3s::{S3Error, S3ErrorCode};
use storage_core::StorageError;

/// The values a body must hash to, from the request's headers.
#[derive(Debug, Default, Clone)]
pub(crate) struct Expected {
    pub content_md5: Option<String>,
    pub algorithm: Option<ChecksumAlgorithm>,
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub crc64nvme: Option<String>,
}

/// The [`Expected`] values of a request that sends a body (`PutObject`, `UploadPart`): the
/// same fields, but s3s gives those input types no common trait.
macro_rules! expected_of {
    ($input:ident) => {
        $crate::checksum::Expected {
            content_md5: $input.content_md5,
            algorithm: $input.checksum_algorithm,
            crc32: $input.checksum_crc32,
            crc32c: $input.checksum_crc32c,
            sha1: $input.checksum_sha1,
            sha256: $input.checksum_sha256,
            crc64nvme: $input.checksum_crc64nvme,
        }
    };
}
pub(crate) use expected_of;

/// Set when a body failed its check, so the operation answers `BadDigest`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdict(Arc<Mutex<Option<String>>>);

impl Verdict {
    /// The `BadDigest` error if the body failed its check.
    pub(crate) fn error(&self) -> Option<S3Error> {
        let msg = self.0.lock().ok()?.clone()?;
        Some(S3Error::with_message(S3ErrorCode::BadDigest, msg))
    }
}

/// `body` with every declared checksum verified at its end.
pub(crate) fn verified(
    body: Option<StreamingBlob>,
    expected: Expected,
    trailers: Option<TrailingHeaders>,
) -> (BoxStream<'static, storage_core::Result<Bytes>>, Verdict) {
    let verdict = Verdict::default();
    let mut hasher = ChecksumHasher::default();
    let wants = |alg: &str, value: &Option<String>| {
        value.is_some()
            || expected
                .algorithm
                .as_ref()
                .is_some_and(|a| a.as_str() == alg)
    };
    if wants(ChecksumAlgorithm::CRC32, &expected.crc32) {
        hasher.crc32 = Some(Default::default());
    }
    if wants(ChecksumAlgorithm::CRC32C, &expected.crc32c) {
        hasher.crc32c = Some(Default::default());
    }
    if wants(ChecksumAlgorithm::SHA1, &expected.sha1) {
        hasher.sha1 = Some(Default::default());
    }
    if wants(ChecksumAlgorithm::SHA256, &expected.sha256) {
        hasher.sha256 = Some(Default::default());
    }
    if wants(ChecksumAlgorithm::CRC64NVME, &expected.crc64nvme) {
        hasher.crc64nvme = Some(Default::default());
    }
    let md5 = expected.content_md5.is_some().then(Md5::new);
    let body = crate::s3::body_stream(body);
    let state = State {
        body,
        hasher: Some(hasher),
        md5,
        expected,
        trailers,
        verdict: verdict.clone(),
    };
    let stream = futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        match st.body.next().await {
            Some(Ok(chunk)) => {
                if let Some(h) = st.hasher.as_mut() {
                    h.update(&chunk);
                }
                if let Some(m) = st.md5.as_mut() {
                    m.update(&chunk);
                }
                Some((Ok(chunk), Some(st)))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None => match st.check() {
                Ok(()) => None,
                Err(msg) => {
                    if let Ok(mut v) = st.verdict.0.lock() {
                        *v = Some(msg.clone());
                    }
                    Some((Err(StorageError::invalid_input("body", msg)), None))
                }
            },
        }
    })
    .boxed();
    (stream, verdict)
}

struct State {
    body: BoxStream<'static, storage_core::Result<Bytes>>,
    hasher: Option<ChecksumHasher>,
    md5: Option<Md5>,
    expected: Expected,
    trailers: Option<TrailingHeaders>,
    verdict: Verdict,
}

impl State {
    /// Compare what was hashed with what the headers and trailers declared.
    fn check(&mut self) -> Result<(), String> {
        let mut exp = self.expected.clone();
        if let Some(t) = self.trailers.as_ref().and_then(TrailingHeaders::take) {
            let get = |n: &str| t.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            exp.crc32 = exp.crc32.or_else(|| get("x-amz-checksum-crc32"));
            exp.crc32c = exp.crc32c.or_else(|| get("x-amz-checksum-crc32c"));
            exp.sha1 = exp.sha1.or_else(|| get("x-amz-checksum-sha1"));
            exp.sha256 = exp.sha256.or_else(|| get("x-amz-checksum-sha256"));
            exp.crc64nvme = exp.crc64nvme.or_else(|| get("x-amz-checksum-crc64nvme"));
        }
        if let (Some(m), Some(want)) = (self.md5.take(), exp.content_md5.as_ref()) {
            let got = base64::engine::general_purpose::STANDARD.encode(m.finalize());
            if &got != want {
                return Err(format!(
                    "Content-MD5 mismatch: the header says {want}, the body hashes to {got}"
                ));
            }
        }
        let got = self.hasher.take().unwrap_or_default().finalize();
        let pairs = [
            ("crc32", exp.crc32, got.checksum_crc32),
            ("crc32c", exp.crc32c, got.checksum_crc32c),
            ("sha1", exp.sha1, got.checksum_sha1),
            ("sha256", exp.sha256, got.checksum_sha256),
            ("crc64nvme", exp.crc64nvme, got.checksum_crc64nvme),
        ];
        for (name, want, got) in pairs {
            if let (Some(want), Some(got)) = (want, got)
                && want != got
            {
                return Err(format!(
                    "x-amz-checksum-{name} mismatch: the request says {want}, the body hashes to {got}"
                ));
            }
        }
        Ok(())
    }
}
