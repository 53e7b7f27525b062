//! The listeners: the S3 endpoint with its limits, and the admin endpoint.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::PrometheusHandle;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::validation::NameValidation;
use s3s::{Body, S3Error, S3ErrorCode};
use storage_core::{Result, StorageError};
use strata::Strata;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::auth::{Access, Auth, Policy};
use crate::catalog::Catalog;
use crate::config::ServeConfig;
use crate::s3::StrataS3;

/// Bucket names are whatever the config calls its handles, not only AWS-style names.
struct AnyName;

impl NameValidation for AnyName {
    fn validate_bucket_name(&self, name: &str) -> bool {
        !name.is_empty() && name.len() <= 255 && !name.contains('/')
    }
}

/// A configured server, not yet listening.
pub struct Server {
    strata: Strata,
    config: ServeConfig,
    catalog: Arc<Catalog>,
    policy: Arc<Policy>,
    prometheus: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("origin", &self.strata.origin())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Serve `strata` with `config`. Refuses a non-loopback listener without credentials.
    pub fn new(strata: Strata, config: ServeConfig) -> Result<Server> {
        config.validate(strata.origin())?;
        if !config.auth_enabled() && !config.listen.ip().is_loopback() {
            return Err(StorageError::invalid_config(
                format!("{}: serve.listen", strata.origin()),
                format!(
                    "{} is not a loopback address and no [serve.credentials] are configured: anyone could read and write every bucket. Add credentials or listen on 127.0.0.1",
                    config.listen
                ),
            ));
        }
        let catalog = Arc::new(Catalog::new(&strata, config.routes.as_deref())?);
        for name in &config.anonymous_read {
            if catalog.get(name).is_none() {
                return Err(StorageError::invalid_config(
                    format!("{}: serve.anonymous_read", strata.origin()),
                    format!(
                        "`{name}` is not a served bucket; served: {}",
                        catalog.names().join(", ")
                    ),
                ));
            }
        }
        let policy = Arc::new(Policy::new(&config));
        Ok(Server {
            strata,
            config,
            catalog,
            policy,
            prometheus: None,
        })
    }

    /// Render this handle on the admin listener's `/metrics` (install its recorder with
    /// `metrics::set_global_recorder` or `PrometheusBuilder::install_recorder`).
    pub fn with_prometheus(mut self, handle: PrometheusHandle) -> Server {
        self.prometheus = Some(handle);
        self
    }

    /// The served bucket names.
    pub fn bucket_names(&self) -> Vec<String> {
        self.catalog.names()
    }

    /// Bind both listeners (port 0 picks a free port; see [`Bound::local_addr`]).
    pub async fn bind(self) -> Result<Bound> {
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr).await.map_err(|e| {
                StorageError::invalid_config(
                    format!("serve.{what}"),
                    format!("cannot listen on {addr}: {e}"),
                )
            })
        };
        let s3_listener = bind(self.config.listen, "listen").await?;
        let admin_listener = match self.config.admin {
            Some(a) => Some(bind(a, "admin").await?),
            None => None,
        };
        let s3 = StrataS3::new(self.catalog.clone(), self.policy.clone())
            .with_max_conditional_bytes(self.config.max_conditional_bytes);
        let mut b = S3ServiceBuilder::new(s3);
        if self.policy.enabled() {
            b.set_auth(Auth(self.policy.clone()));
            b.set_access(Access(self.policy.clone()));
        }
        b.set_validation(AnyName);
        let state = Arc::new(State {
            service: b.build(),
            permits: Semaphore::new(self.config.max_concurrency),
            large_bodies: Semaphore::new(self.config.max_parts_in_flight),
            max_body: self.config.max_body_bytes,
            timeout: self.config.request_timeout,
            policy: self.policy.clone(),
        });
        Ok(Bound {
            s3_listener,
            admin_listener,
            state,
            catalog: self.catalog,
            strata: self.strata,
            config: self.config,
            prometheus: self.prometheus,
        })
    }
}

/// Bodies larger than this take a `max_parts_in_flight` permit.
const LARGE_BODY: u64 = 1024 * 1024;

struct State {
    service: S3Service,
    permits: Semaphore,
    large_bodies: Semaphore,
    max_body: u64,
    timeout: Duration,
    policy: Arc<Policy>,
}

/// A server with its listeners bound; [`run_until`](Bound::run_until) serves.
pub struct Bound {
    s3_listener: TcpListener,
    admin_listener: Option<TcpListener>,
    state: Arc<State>,
    catalog: Arc<Catalog>,
    strata: Strata,
    config: ServeConfig,
    prometheus: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("s3", &self.local_addr())
            .field("admin", &self.admin_addr())
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// Address of the S3 endpoint.
    pub fn local_addr(&self) -> SocketAddr {
        self.s3_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Address of the admin endpoint, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// Serve until `shutdown` completes; then stop accepting, let in-flight requests finish
    /// (up to `shutdown_grace`), and return.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let admin = self.admin_listener.map(|l| {
            let catalog = self.catalog.clone();
            let strata = self.strata.clone();
            let prometheus = self.prometheus.clone();
            tokio::spawn(admin_loop(l, catalog, strata, prometheus))
        });
        let mut http = ConnBuilder::new(TokioExecutor::new());
        http.http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_buf_size(self.config.max_header_bytes.max(8192))
            .header_read_timeout(Duration::from_secs(30));
        http.http2()
            .max_header_list_size(u32::try_from(self.config.max_header_bytes).unwrap_or(u32::MAX));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        tracing::info!(
            s3 = %self.s3_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            buckets = ?self.catalog.names(),
            auth = self.state.policy.enabled(),
            "strata serve: listening"
        );
        loop {
            let (socket, peer) = tokio::select! {
                r = self.s3_listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "strata serve: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = shutdown.as_mut() => break,
            };
            let _ = socket.set_nodelay(true);
            let state = self.state.clone();
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
            });
            let conn = http
                .serve_connection(TokioIo::new(socket), svc)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
        tracing::info!("strata serve: shutting down, letting in-flight requests finish");
        if let Some(a) = admin {
            a.abort();
        }
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(self.config.shutdown_grace) => {
                tracing::warn!(grace = ?self.config.shutdown_grace, "strata serve: requests still running after the grace period; stopping anyway");
            }
        }
        tracing::info!("strata serve: stopped");
        Ok(())
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn s3_error_response(code: S3ErrorCode, msg: String) -> Response<Body> {
    crate::metrics::error(code.as_str());
    match S3Error::with_message(code, msg).to_http_response() {
        Ok(r) => r,
        Err(_) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}

/// One request: concurrency permit, body limit, timeout, metrics and the access log.
async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    // The path only: a presigned URL's query carries a signature, which stays out of logs.
    let path = req.uri().path().to_string();
    // A response sent before the request body was read to its end must close the
    // connection (see `Tracked`); requests without a body, and HTTP/2 streams, need nothing.
    let ended = (req.version() <= hyper::Version::HTTP_11
        && !hyper::body::Body::is_end_stream(req.body()))
    .then(|| Arc::new(AtomicBool::new(false)));
    let Ok(_permit) = state.permits.acquire().await else {
        return s3_error_response(S3ErrorCode::ServiceUnavailable, "shutting down".into());
    };
    crate::metrics::in_flight(1.0);
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let resp = if declared.is_some_and(|n| n > state.max_body) {
        s3_error_response(
            S3ErrorCode::EntityTooLarge,
            format!(
                "the body is {} bytes; this endpoint accepts at most {} (serve.max_body_bytes); use a multipart upload",
                declared.unwrap_or_default(),
                state.max_body
            ),
        )
    } else {
        // A large body may be buffered whole (s3s hashes a signed payload before the
        // operation runs; a part is held up to one bucket part): bound how many at once,
        // before anything is read.
        let _large = match declared {
            Some(n) if n > LARGE_BODY => state.large_bodies.acquire().await.ok(),
            _ => None,
        };
        let max = usize::try_from(state.max_body).unwrap_or(usize::MAX);
        let req = req.map(|b| {
            let inner = Limited::new(b, max);
            match &ended {
                Some(ended) => Body::http_body_unsync(Tracked {
                    inner,
                    ended: ended.clone(),
                }),
                None => Body::http_body_unsync(inner),
            }
        });
        match tokio::time::timeout(state.timeout, state.service.call(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = ?e, "strata serve: request failed");
                s3_error_response(S3ErrorCode::InternalError, "the request failed".into())
            }
            Err(_) => s3_error_response(
                S3ErrorCode::RequestTimeout,
                format!(
                    "the request took longer than {} (serve.request_timeout)",
                    humantime::format_duration(state.timeout)
                ),
            ),
        }
    };
    let mut resp = resp;
    if ended.is_some_and(|e| !e.load(Ordering::Acquire)) {
        resp.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    crate::metrics::in_flight(-1.0);
    let took = start.elapsed();
    let status = resp.status().as_u16();
    crate::metrics::request(method.as_str(), status, took);
    tracing::info!(
        target: "strata_serve::access",
        %peer,
        method = %method,
        path = %path,
        status,
        ms = took.as_secs_f64() * 1000.0,
        "request"
    );
    resp
}

/// A request body that records whether it was read to its end.
///
/// An operation may answer before it reads the body (`NoSuchUpload` for a part, a failed
/// precondition, a refused size). The connection must then close: a client that sent
/// `Expect: 100-continue` and got that final answer never sends the body it declared (boto3
/// does this on every PutObject and UploadPart) yet keeps the connection for its next
/// request, and hyper, draining the unread body once the answer is out, would take that many
/// bytes of the next request as body. A HEAD that follows a refused 1-byte part then arrives
/// as `EAD /bucket/key` and fails its signature check: 403 instead of 404, when the next
/// request is sent before the drain, as happens under load. With `Connection: close` on such
/// an answer, the client opens a new connection for its next request.
struct Tracked<B> {
    inner: B,
    ended: Arc<AtomicBool>,
}

impl<B> hyper::body::Body for Tracked<B>
where
    B: hyper::body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        let at_end = match &polled {
            std::task::Poll::Ready(None) => true,
            std::task::Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if at_end {
            this.ended.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

async fn admin_loop(
    listener: TcpListener,
    catalog: Arc<Catalog>,
    strata: Strata,
    prometheus: Option<PrometheusHandle>,
) {
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let catalog = catalog.clone();
        let strata = strata.clone();
        let prometheus = prometheus.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let catalog = catalog.clone();
            let strata = strata.clone();
            let prometheus = prometheus.clone();
            async move {
                Ok::<_, Infallible>(
                    admin(req.uri().path(), &catalog, &strata, prometheus.as_ref()).await,
                )
            }
        });
        let conn = http
            .serve_connection(TokioIo::new(socket), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn admin(
    path: &str,
    catalog: &Catalog,
    strata: &Strata,
    prometheus: Option<&PrometheusHandle>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            ctype.parse().expect("a valid content type"),
        );
        r
    };
    match path {
        "/health" => {
            let mut buckets = Vec::new();
            for v in catalog.views() {
                let h = v.bucket.health().await;
                buckets.push(serde_json::json!({
                    "bucket": v.name,
                    "kind": v.kind,
                    "provider": h.provider,
                    "ok": h.ok,
                    "latency_ms": h.latency.as_secs_f64() * 1000.0,
                    "error": h.error,
                }));
            }
            let breakers = strata
                .router()
                .map(|r| serde_json::to_value(r.health()).unwrap_or_default())
                .unwrap_or_default();
            let ok = buckets.iter().all(|b| b["ok"] == true);
            let body = serde_json::json!({ "ok": ok, "buckets": buckets, "router": breakers });
            reply(
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                "application/json",
                body.to_string(),
            )
        }
        "/metrics" => match prometheus {
            Some(h) => {
                let mut text = h.render();
                layer_metrics(strata, &mut text);
                reply(StatusCode::OK, "text/plain; version=0.0.4", text)
            }
            None => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "no Prometheus recorder was given to this server (Server::with_prometheus)\n"
                    .into(),
            ),
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "strata serve admin: GET /health or /metrics\n".into(),
        ),
    }
}

/// Breaker states and cache counters of every bucket's layers, in Prometheus text: read
/// from the layers' own counters at scrape time.
fn layer_metrics(strata: &Strata, out: &mut String) {
    use std::fmt::Write as _;
    use strata::layers::breaker::BreakerState;
    let mut breakers = String::new();
    let mut hits = String::new();
    let mut misses = String::new();
    for name in strata.bucket_names() {
        let Some(stack) = strata.layers(&name) else {
            continue;
        };
        if let Some(b) = &stack.breaker {
            let state = match b.state() {
                BreakerState::Closed => 0,
                BreakerState::HalfOpen => 1,
                BreakerState::Open => 2,
            };
            let _ = writeln!(
                breakers,
                "strata_serve_breaker_state{{bucket=\"{name}\"}} {state}"
            );
        }
        if let Some(c) = &stack.cache {
            let st = c.stats();
            let _ = writeln!(
                hits,
                "strata_serve_cache_hits_total{{bucket=\"{name}\"}} {}",
                st.hits
            );
            let _ = writeln!(
                misses,
                "strata_serve_cache_misses_total{{bucket=\"{name}\"}} {}",
                st.misses
            );
        }
    }
    if !breakers.is_empty() {
        out.push_str("# HELP strata_serve_breaker_state Circuit breaker of each bucket: 0 closed, 1 half-open, 2 open.\n# TYPE strata_serve_breaker_state gauge\n");
        out.push_str(&breakers);
    }
    if !hits.is_empty() {
        out.push_str("# HELP strata_serve_cache_hits_total Reads answered by each bucket's read cache.\n# TYPE strata_serve_cache_hits_total counter\n");
        out.push_str(&hits);
        out.push_str("# HELP strata_serve_cache_misses_total Reads each bucket's read cache sent to the backend.\n# TYPE strata_serve_cache_misses_total counter\n");
        out.push_str(&misses);
    }
}
