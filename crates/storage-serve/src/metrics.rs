//! Prometheus metrics of the endpoint (names start with `strata_serve_`), recorded through
//! the `metrics` facade: whatever recorder the program installed receives them, and
//! [`crate::Server`] renders a `metrics-exporter-prometheus` handle on `/metrics`.

use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

/// Requests answered, by method and status (`strata_serve_requests_total`).
pub const REQUESTS: &str = "strata_serve_requests_total";
/// Request latency to the response head, seconds (`strata_serve_request_duration_seconds`).
pub const LATENCY: &str = "strata_serve_request_duration_seconds";
/// Body bytes received (`strata_serve_received_bytes_total`).
pub const BYTES_IN: &str = "strata_serve_received_bytes_total";
/// Object bytes sent (`strata_serve_sent_bytes_total`).
pub const BYTES_OUT: &str = "strata_serve_sent_bytes_total";
/// S3 errors answered, by code (`strata_serve_errors_total`).
pub const ERRORS: &str = "strata_serve_errors_total";
/// Requests being served now (`strata_serve_in_flight`).
pub const IN_FLIGHT: &str = "strata_serve_in_flight";

pub(crate) fn request(method: &str, status: u16, took: Duration) {
    metrics::counter!(REQUESTS, "method" => method.to_string(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(LATENCY, "method" => method.to_string()).record(took.as_secs_f64());
}

pub(crate) fn error(code: &str) {
    metrics::counter!(ERRORS, "code" => code.to_string()).increment(1);
}

pub(crate) fn in_flight(delta: f64) {
    metrics::gauge!(IN_FLIGHT).increment(delta);
}

pub(crate) fn bytes_out(n: u64) {
    metrics::counter!(BYTES_OUT).increment(n);
}

/// Count a request body's bytes as they stream through.
pub(crate) fn count_in(
    s: BoxStream<'static, storage_core::Result<Bytes>>,
) -> BoxStream<'static, storage_core::Result<Bytes>> {
    let c = metrics::counter!(BYTES_IN);
    s.inspect(move |r| {
        if let Ok(b) = r {
            c.increment(b.len() as u64);
        }
    })
    .boxed()
}
