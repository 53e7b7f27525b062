//! # storage-serve: a Strata setup as an S3-compatible endpoint
//!
//! Every bucket handle, route and tenant view of a [`strata::Strata`] setup appears as an
//! S3 bucket, so boto3, the AWS SDKs, the aws CLI, pyarrow and Spark reach routes, fallback
//! reads, tenants, encryption, compression and atomic conditional writes with no binding.
//! `strata serve` is this crate behind a command line; embed it in your own program the
//! same way:
//!
//! ```
//! use storage_serve::{ServeConfig, Server};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> strata::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let strata = strata::Strata::embedded(dir.path());
//! strata.bucket("photos")?.put("cat.jpg", "meow").await?;
//!
//! let mut config = ServeConfig::default();
//! config.listen = "127.0.0.1:0".parse().unwrap(); // any free port
//! config.admin = None;
//! let server = Server::new(strata, config)?.bind().await?;
//! let url = format!("http://{}/photos/cat.jpg", server.local_addr());
//!
//! // No [serve.credentials]: a loopback endpoint that needs no signature.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let task = tokio::spawn(server.run_until(async { let _ = stopped.await; }));
//! # let body = fetch(&url).await;
//! # assert_eq!(body, "meow");
//! // ... any S3 client now reads s3://photos/cat.jpg from `url`'s host ...
//! stop.send(()).unwrap();
//! task.await.unwrap()?;
//! # Ok(()) }
//! # async fn fetch(url: &str) -> String {
//! #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! #     let u = url.strip_prefix("http://").unwrap();
//! #     let (host, path) = u.split_at(u.find('/').unwrap());
//! #     let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
//! #     s.write_all(format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
//! #     let mut out = String::new();
//! #     s.read_to_string(&mut out).await.unwrap();
//! #     out.rsplit("\r\n\r\n").next().unwrap().to_string()
//! # }
//! ```
//!
//! What each part does:
//! - [`config`]: the `[serve]` table (listeners, credentials, limits).
//! - [`catalog`]: which S3 bucket name is which Strata handle.
//! - [`auth`]: SigV4 and presigned-URL secrets for `s3s`, and the buckets each key reaches.
//! - [`StrataS3`]: the S3 operations over `Bucket` handles; conditional requests become
//!   Strata's conditional operations (atomic on every backend that has them, including a
//!   local folder shared by several processes); multipart uploads keep their parts as
//!   objects, so any process on the same storage can continue an upload.
//! - [`metrics`](mod@metrics): Prometheus counters and histograms, served on the admin listener with
//!   `/health`.

pub mod auth;
pub mod catalog;
mod checksum;
pub mod config;
pub mod error;
pub mod metrics;
mod multipart;
mod s3;
mod server;
mod whole;

pub use config::{CredentialConfig, ServeConfig};
pub use s3::StrataS3;
pub use server::{Bound, Server, shutdown_signal};

/// Install a global Prometheus recorder for the `metrics` facade (histogram buckets for
/// the request latency) and return its handle for [`Server::with_prometheus`]; `None` when
/// the program already installed a recorder.
pub fn install_prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(metrics::LATENCY.to_string()),
            &[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
            ],
        )
        .ok()?
        .install_recorder()
        .ok()
}
