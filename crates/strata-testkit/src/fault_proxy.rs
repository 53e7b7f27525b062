//! A fault-injecting HTTP/1.1 reverse proxy on loopback, to put in front of the moto S3
//! server so faults happen *below* the HTTP client, where its own retries and timeouts see
//! them (TESTING.md, "Faults below the HTTP client").
//!
//! Requests are forwarded unchanged (method, target, every header including `Host`,
//! `Authorization` and `x-amz-*`, body), so SigV4 signatures still verify. Each request gets
//! a sequence number and a fault decision in arrival order, from a seeded RNG: the same seed
//! and the same request order replay the same faults. Every request is recorded
//! ([`FaultProxy::records`]).
//!
//! Bounds: the proxy listens on 127.0.0.1 only and forwards only to a loopback upstream;
//! bodies over [`MAX_BODY`] bytes are refused (413); at most [`MAX_CONNECTIONS`] client
//! connections are served at once; an upstream that does not answer within
//! [`UPSTREAM_TIMEOUT`] gets the request a 502; after [`FaultPlan::max_requests`] requests it
//! stops faulting. Dropping the [`FaultProxy`] stops it and closes its connections (a
//! request already forwarded still reaches the upstream, as on a network).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use strata_testkit::fault_proxy::{FaultPlan, FaultProxy};
//!
//! let moto = strata_testkit::moto_env().expect("moto is running");
//! // 10% of requests faulted, delays held for 3 s (longer than the client's timeout).
//! let proxy = FaultProxy::start(&moto.endpoint, FaultPlan::mixed(7, 0.10, Duration::from_secs(3))).await?;
//! let mut cfg = strata_testkit::s3_config(&moto);
//! cfg.endpoint = Some(proxy.endpoint());
//! // ... run the workload through `cfg.build("faulty")`, then:
//! println!("{}", proxy.summary());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::task::AtomicWaker;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request or response body the proxy carries (64 MiB). A larger request is answered
/// 413 without being forwarded; a larger upstream answer becomes a 502.
pub const MAX_BODY: usize = 64 << 20;

/// Client connections served at once; further connections wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// How long the proxy waits for the upstream's whole answer before answering 502.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// One kind of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Answer 503 (S3 XML error, code `ServiceUnavailable`) without forwarding.
    Unavailable503Before,
    /// Forward (the server applies the request), drop its answer, answer 500 (S3 XML error,
    /// code `InternalError`).
    InternalError500After,
    /// Forward, then hold the server's answer for [`FaultPlan::hold`] before sending it: with a
    /// hold longer than the client's timeout the client gives up on an applied request.
    DelayPastTimeout,
    /// Close the connection (TCP reset) without forwarding.
    ResetBefore,
    /// Forward, then close the connection (TCP reset) without an answer.
    ResetAfter,
    /// Forward, send the status, the headers (with the full `Content-Length`) and the first
    /// half of the body, then close. An answer without a body (HEAD, 204, empty) is closed
    /// before the status, as [`Fault::ResetAfter`].
    TornBody,
}

impl Fault {
    /// Every fault, in declaration order.
    pub const ALL: [Fault; 6] = [
        Fault::Unavailable503Before,
        Fault::InternalError500After,
        Fault::DelayPastTimeout,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::TornBody,
    ];

    /// Short name used in summaries: `503-before`, `500-after`, `delay`, `reset-before`,
    /// `reset-after`, `torn-body`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Unavailable503Before => "503-before",
            Fault::InternalError500After => "500-after",
            Fault::DelayPastTimeout => "delay",
            Fault::ResetBefore => "reset-before",
            Fault::ResetAfter => "reset-after",
            Fault::TornBody => "torn-body",
        }
    }

    /// Whether a request with this fault reaches the server (and may have been applied).
    ///
    /// ```
    /// use strata_testkit::fault_proxy::Fault;
    /// assert!(!Fault::Unavailable503Before.reaches_server());
    /// assert!(Fault::InternalError500After.reaches_server());
    /// ```
    pub fn reaches_server(self) -> bool {
        !matches!(self, Fault::Unavailable503Before | Fault::ResetBefore)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What to inject: which faults, how often, and for how many requests.
///
/// ```
/// use std::time::Duration;
/// use strata_testkit::fault_proxy::{Fault, FaultPlan};
///
/// let plan = FaultPlan::mixed(42, 0.1, Duration::from_secs(3));
/// assert_eq!(plan.faults.len(), Fault::ALL.len());
/// let only_torn = FaultPlan::only(Fault::TornBody, Duration::ZERO);
/// assert_eq!(only_torn.rate, 1.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FaultPlan {
    /// Seed of the decision RNG: the same seed and request order give the same faults.
    pub seed: u64,
    /// Share of requests faulted, `0.0..=1.0`.
    pub rate: f64,
    /// Faults to choose from, with relative weights.
    pub faults: Vec<(Fault, u32)>,
    /// How long [`Fault::DelayPastTimeout`] holds an answer (make it longer than the client's
    /// timeout).
    pub hold: Duration,
    /// Requests (counted from the first) that may be faulted; later ones pass through.
    pub max_requests: Option<u64>,
}

impl FaultPlan {
    /// No faults: a transparent proxy (raise the rate later with [`FaultProxy::set_rate`]
    /// only after giving the plan faults).
    pub fn none() -> Self {
        FaultPlan {
            seed: 0,
            rate: 0.0,
            faults: Vec::new(),
            hold: Duration::ZERO,
            max_requests: None,
        }
    }

    /// Every [`Fault`] with equal weight, at `rate`.
    pub fn mixed(seed: u64, rate: f64, hold: Duration) -> Self {
        FaultPlan {
            seed,
            rate,
            faults: Fault::ALL.iter().map(|&f| (f, 1)).collect(),
            hold,
            max_requests: None,
        }
    }

    /// Every request gets `fault` (rate 1, seed 0).
    pub fn only(fault: Fault, hold: Duration) -> Self {
        FaultPlan {
            seed: 0,
            rate: 1.0,
            faults: vec![(fault, 1)],
            hold,
            max_requests: None,
        }
    }

    fn total_weight(&self) -> u64 {
        self.faults.iter().map(|&(_, w)| u64::from(w)).sum()
    }

    fn check_rate(&self, rate: f64) -> Result<(), String> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!(
                "fault rate {rate} is out of range: give a share of requests between 0.0 and 1.0"
            ));
        }
        if rate > 0.0 && self.total_weight() == 0 {
            return Err(format!(
                "fault rate {rate} needs faults to choose from: the plan's `faults` is empty or all weights are 0 (use FaultPlan::mixed or FaultPlan::only)"
            ));
        }
        Ok(())
    }
}

/// One request as the proxy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// Arrival order, from 0.
    pub seq: u64,
    /// The client connection it came on, numbered from 0 in accept order: requests on one
    /// connection show keep-alive; a faulted connection is never reused.
    pub connection: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query, as sent by the client.
    pub target: String,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// Status the upstream answered, when the request was forwarded and answered.
    pub upstream_status: Option<u16>,
    /// What went wrong in the proxy itself (client went away, body too large, upstream
    /// unreachable); `None` when nothing did.
    pub note: Option<String>,
}

/// A running fault proxy. Dropping it stops it and closes its connections.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FaultProxy(http://{} -> http://{})",
            self.addr, self.shared.upstream
        )
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` in front of `upstream`
    /// (`http://127.0.0.1:PORT`; the host must be loopback).
    ///
    /// Fails with `InvalidInput` on a bad upstream or plan (rate outside `0..=1`, a rate
    /// without faults).
    pub async fn start(upstream: &str, plan: FaultPlan) -> io::Result<FaultProxy> {
        plan.check_rate(plan.rate).map_err(invalid_input)?;
        let upstream = loopback_upstream(upstream).await?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            hold: plan.hold,
            seed: plan.seed,
            connections: AtomicU64::new(0),
            in_flight: Mutex::new(std::collections::BTreeMap::new()),
            state: Mutex::new(Decider {
                rng: fastrand::Rng::with_seed(plan.seed),
                total_weight: plan.total_weight(),
                plan,
                records: Vec::new(),
            }),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    /// The proxy's address as an S3 endpoint: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the share of requests faulted from the next request on (0 to set up fixtures
    /// without faults). Decisions stay replayable: every request draws the same random
    /// numbers whatever the rate.
    ///
    /// # Panics
    /// On a rate outside `0.0..=1.0`, or above 0 for a plan without faults.
    pub fn set_rate(&self, rate: f64) {
        let mut state = self.shared.lock();
        if let Err(e) = state.plan.check_rate(rate) {
            panic!("FaultProxy::set_rate: {e}");
        }
        state.plan.rate = rate;
    }

    /// Waits until no forwarded request whose target contains `needle` is still on its way
    /// to or from the upstream, at most `limit`; says whether that happened. A request whose
    /// client timed out or went away is still delivered and may apply after the client's
    /// error: call this before reading the server directly to judge a write's outcome.
    pub async fn settle(&self, needle: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let busy = self
                .shared
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
                .any(|t| t.contains(needle));
            if !busy {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every request so far, in arrival order.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.shared.lock().records.clone()
    }

    /// How many times each fault was injected (faults never injected are absent).
    pub fn counts(&self) -> HashMap<Fault, u64> {
        let mut counts = HashMap::new();
        for fault in self.shared.lock().records.iter().filter_map(|r| r.fault) {
            *counts.entry(fault).or_insert(0) += 1;
        }
        counts
    }

    /// One line for test output: seed, rate, requests, faults by kind, proxy problems.
    ///
    /// `fault proxy (seed 7, rate 0.1): 2000 requests, 201 faulted (503-before 30, ...), 0 proxy problems`
    pub fn summary(&self) -> String {
        let state = self.shared.lock();
        let mut counts = [0u64; Fault::ALL.len()];
        for fault in state.records.iter().filter_map(|r| r.fault) {
            counts[fault as usize] += 1;
        }
        let by_kind: Vec<String> = Fault::ALL
            .iter()
            .zip(counts)
            .map(|(fault, n)| format!("{} {n}", fault.name()))
            .collect();
        let problems = state.records.iter().filter(|r| r.note.is_some()).count();
        format!(
            "fault proxy (seed {}, rate {}): {} requests, {} faulted ({}), {problems} proxy problems",
            self.shared.seed,
            state.plan.rate,
            state.records.len(),
            counts.iter().sum::<u64>(),
            by_kind.join(", "),
        )
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks (a JoinSet): aborting it aborts them.
        self.accept.abort();
    }
}

struct Shared {
    upstream: SocketAddr,
    hold: Duration,
    seed: u64,
    connections: AtomicU64,
    state: Mutex<Decider>,
    /// Targets of the requests forwarded and not yet answered by the upstream, by sequence
    /// number: a request keeps going after its client gave up, as on a real network.
    in_flight: Mutex<std::collections::BTreeMap<u64, String>>,
}

struct Decider {
    rng: fastrand::Rng,
    plan: FaultPlan,
    total_weight: u64,
    records: Vec<RequestRecord>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Decider> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers the request and decides its fault, under one lock so both follow arrival order.
    fn decide(&self, connection: u64, method: &Method, target: String) -> (u64, Option<Fault>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let seq = state.records.len() as u64;
        // Both numbers are drawn for every request, so decisions depend only on the seed and
        // the request order, not on when the rate was changed.
        let roll = state.rng.f64();
        let pick = state.rng.u64(0..state.total_weight.max(1));
        let in_budget = state.plan.max_requests.is_none_or(|max| seq < max);
        let fault = (in_budget && roll < state.plan.rate)
            .then(|| weighted(&state.plan.faults, pick))
            .flatten();
        state.records.push(RequestRecord {
            seq,
            connection,
            method: method.to_string(),
            target,
            fault,
            upstream_status: None,
            note: None,
        });
        (seq, fault)
    }

    fn update(&self, seq: u64, f: impl FnOnce(&mut RequestRecord)) {
        if let Some(record) = self.lock().records.get_mut(seq as usize) {
            f(record);
        }
    }
}

fn weighted(faults: &[(Fault, u32)], mut pick: u64) -> Option<Fault> {
    for &(fault, weight) in faults {
        if pick < u64::from(weight) {
            return Some(fault);
        }
        pick -= u64::from(weight);
    }
    None
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

async fn loopback_upstream(upstream: &str) -> io::Result<SocketAddr> {
    let usage = || {
        format!(
            "fault proxy upstream {upstream:?} is not of the form http://127.0.0.1:PORT (plain HTTP, loopback host, no path)"
        )
    };
    let host_port = upstream
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
        .ok_or_else(|| invalid_input(usage()))?;
    let addrs = tokio::net::lookup_host(host_port)
        .await
        .map_err(|e| invalid_input(format!("{}: {e}", usage())))?;
    let mut seen = Vec::new();
    for addr in addrs {
        if addr.ip().is_loopback() {
            return Ok(addr);
        }
        seen.push(addr.ip().to_string());
    }
    Err(invalid_input(format!(
        "{}: it resolves to {} and the proxy only forwards to loopback",
        usage(),
        seen.join(", ")
    )))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = limit.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors or similar: let connections finish, then accept again.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve(stream, shared.clone(), permit));
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>, _permit: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(ConnState {
        id: shared.connections.fetch_add(1, Ordering::SeqCst),
        ..ConnState::default()
    });
    let io = TokioIo::new(FaultIo {
        stream,
        conn: conn.clone(),
    });
    let service =
        hyper::service::service_fn(move |request| handle(shared.clone(), conn.clone(), request));
    // An error here is an injected close or a client that went away; both end the connection.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await;
}

type ProxyBody = BoxBody<Bytes, io::Error>;

/// Returned by the service to make hyper close the connection without an answer.
#[derive(Debug)]
struct Closed;

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed by the fault proxy")
    }
}

impl std::error::Error for Closed {}

async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Closed> {
    let target = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let (seq, fault) = shared.decide(conn.id, request.method(), target.clone());
    let (parts, body) = request.into_parts();
    let too_large = || {
        let message = format!("request body over {MAX_BODY} bytes: not forwarded");
        shared.update(seq, |r| r.note = Some(message.clone()));
        Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, message))
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return too_large();
    }
    // The whole request is read before any fault, so what the client sees never depends on
    // how far its upload got.
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return too_large(),
        Err(e) => {
            shared.update(seq, |r| {
                r.note = Some(format!("reading the request body: {e}"))
            });
            return Err(Closed);
        }
    };
    match fault {
        Some(Fault::ResetBefore) => return Err(conn.reset()),
        Some(Fault::Unavailable503Before) => {
            return Ok(s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Please reduce your request rate.",
                &target,
                seq,
            ));
        }
        _ => {}
    }
    // Forwarded on a task of its own: if the client gives up (timeout, reset), hyper drops
    // this handler, but a request already sent still reaches the server, as on a network.
    shared
        .in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(seq, target.clone());
    let delivery = {
        let shared = Arc::clone(&shared);
        let request = Request::from_parts(parts, Full::new(body));
        tokio::spawn(async move {
            let forwarded = forward(shared.upstream, request)
                .await
                .map_err(|e| format!("upstream http://{}: {e}", shared.upstream));
            // Recorded here, not by the handler, which is gone if the client gave up; and
            // before leaving `in_flight`, so a settled request's record is complete.
            shared.update(seq, |r| match &forwarded {
                Ok(response) => r.upstream_status = Some(response.status().as_u16()),
                Err(message) => r.note = Some(message.clone()),
            });
            shared
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&seq);
            forwarded
        })
    };
    let response = match delivery.await {
        Ok(Ok(response)) => response,
        Ok(Err(message)) => return Ok(plain(StatusCode::BAD_GATEWAY, message)),
        Err(e) => {
            let message = format!("forwarding task: {e}");
            shared.update(seq, |r| r.note = Some(message.clone()));
            return Ok(plain(StatusCode::BAD_GATEWAY, message));
        }
    };
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    match fault {
        Some(Fault::InternalError500After) => Ok(s3_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
            &target,
            seq,
        )),
        Some(Fault::DelayPastTimeout) => {
            tokio::time::sleep(shared.hold).await;
            Ok(Response::from_parts(head, full(body)))
        }
        Some(Fault::ResetAfter) => Err(conn.reset()),
        Some(Fault::TornBody) if body.is_empty() => Err(conn.reset()),
        Some(Fault::TornBody) => {
            head.headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let half = body.slice(..body.len() / 2);
            Ok(Response::from_parts(
                head,
                TornBody::new(half, conn).boxed(),
            ))
        }
        _ => Ok(Response::from_parts(head, full(body))),
    }
}

/// One request on a fresh upstream connection, answer read whole. A fresh connection per
/// request means a stale keep-alive connection can never make the proxy itself resend.
async fn forward(
    upstream: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Response<Bytes>, String> {
    let exchange = async {
        let stream = TcpStream::connect(upstream)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let exchange = async move {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("answer body: {e}"))?
                .to_bytes();
            // Dropping the sender lets `connection` finish.
            drop(sender);
            Ok(Response::from_parts(head, body))
        };
        let (response, _) = tokio::join!(exchange, connection);
        response
    };
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no whole answer within {UPSTREAM_TIMEOUT:?}"))?
}

/// Connection-level headers of the upstream hop: the answer is re-framed from the buffered
/// body, and client keep-alive is the proxy's business, not the upstream's.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

fn full(body: Bytes) -> ProxyBody {
    Full::new(body).map_err(|never| match never {}).boxed()
}

fn closing(status: StatusCode, content_type: &'static str, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A faulted connection is not reused by the client.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn plain(status: StatusCode, message: String) -> Response<ProxyBody> {
    closing(
        status,
        "text/plain; charset=utf-8",
        format!("fault proxy: {message}\n"),
    )
}

/// An S3-style XML error, as S3 answers a 5xx.
fn s3_error(
    status: StatusCode,
    code: &str,
    message: &str,
    resource: &str,
    seq: u64,
) -> Response<ProxyBody> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message} (injected by the strata-testkit fault proxy, request {seq})</Message><Resource>{}</Resource><RequestId>fault-proxy-{seq}</RequestId></Error>",
        xml_escape(resource)
    );
    let mut response = closing(status, "application/xml", xml);
    if let Ok(id) = HeaderValue::from_str(&format!("fault-proxy-{seq}")) {
        response.headers_mut().insert("x-amz-request-id", id);
    }
    response
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Per-connection state shared by the service and the socket wrapper.
#[derive(Default)]
struct ConnState {
    id: u64,
    /// Set before the service makes hyper drop the connection: the socket resets on drop.
    reset: AtomicBool,
    /// Completed flushes of hyper's write buffer to the socket.
    flushes: AtomicU64,
    flushed: AtomicWaker,
}

impl ConnState {
    fn reset(&self) -> Closed {
        self.reset.store(true, Ordering::SeqCst);
        Closed
    }

    fn flushed(&self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.flushed.wake();
    }
}

/// The client socket, with a flush counter (so a torn body errors only after its half has
/// left hyper's buffer) and a reset on drop for the reset faults.
struct FaultIo {
    stream: TcpStream,
    conn: Arc<ConnState>,
}

impl AsyncRead for FaultIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.stream).poll_flush(cx))?;
        this.conn.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.conn.reset.load(Ordering::SeqCst) {
            // SO_LINGER 0 makes the close a TCP reset. Deprecated in tokio because a non-zero
            // linger blocks on drop; zero never blocks (`set_zero_linger` needs tokio 1.50).
            #[allow(deprecated)]
            let _ = self.stream.set_linger(Some(Duration::ZERO));
        }
    }
}

/// Half a body, then an error once that half has been flushed to the socket: hyper then
/// closes the connection, and the client holds a `Content-Length` it never gets.
struct TornBody {
    half: Option<Bytes>,
    conn: Arc<ConnState>,
    flushes_after_half: Option<u64>,
}

impl TornBody {
    fn new(half: Bytes, conn: Arc<ConnState>) -> Self {
        TornBody {
            half: Some(half).filter(|h| !h.is_empty()),
            conn,
            flushes_after_half: None,
        }
    }
}

impl Body for TornBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(half) = this.half.take() {
            return Poll::Ready(Some(Ok(Frame::data(half))));
        }
        this.conn.flushed.register(cx.waker());
        let flushes = this.conn.flushes.load(Ordering::SeqCst);
        // hyper reaches the socket's flush only with its write buffer empty, so one flush
        // counted after the half was handed over means the half is on the wire.
        match this.flushes_after_half {
            Some(mark) if flushes > mark => Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "body torn by the fault proxy",
            )))),
            Some(_) => Poll::Pending,
            None => {
                this.flushes_after_half = Some(flushes);
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_choice_follows_the_weights() {
        let faults = [
            (Fault::ResetBefore, 2),
            (Fault::TornBody, 0),
            (Fault::ResetAfter, 1),
        ];
        assert_eq!(weighted(&faults, 0), Some(Fault::ResetBefore));
        assert_eq!(weighted(&faults, 1), Some(Fault::ResetBefore));
        assert_eq!(weighted(&faults, 2), Some(Fault::ResetAfter));
        assert_eq!(weighted(&faults, 3), None);
    }

    #[test]
    fn plans_are_checked() {
        let none = FaultPlan::none();
        assert!(none.check_rate(0.0).is_ok());
        let err = none.check_rate(0.5).unwrap_err();
        assert!(err.contains("needs faults to choose from"), "{err}");
        let mixed = FaultPlan::mixed(1, 0.1, Duration::ZERO);
        let err = mixed.check_rate(1.5).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
        assert!(mixed.check_rate(f64::NAN).is_err());
    }

    #[tokio::test]
    async fn upstream_must_be_plain_http_on_loopback() {
        for bad in [
            "127.0.0.1:9000",
            "https://127.0.0.1:9000",
            "http://127.0.0.1:9000/bucket",
        ] {
            let err = loopback_upstream(bad).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(err.to_string().contains("http://127.0.0.1:PORT"), "{err}");
        }
        let err = loopback_upstream("http://192.0.2.1:80").await.unwrap_err();
        assert!(
            err.to_string().contains("only forwards to loopback"),
            "{err}"
        );
        assert_eq!(
            loopback_upstream("http://127.0.0.1:9000/").await.unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 9000))
        );
    }

    #[test]
    fn decisions_replay_from_the_seed_whatever_the_rate() {
        let decide_all = |rates: &[f64]| {
            let shared = Shared {
                upstream: SocketAddr::from(([127, 0, 0, 1], 1)),
                hold: Duration::ZERO,
                seed: 9,
                connections: AtomicU64::new(0),
                in_flight: Mutex::new(std::collections::BTreeMap::new()),
                state: Mutex::new(Decider {
                    rng: fastrand::Rng::with_seed(9),
                    total_weight: 6,
                    plan: FaultPlan::mixed(9, 0.3, Duration::ZERO),
                    records: Vec::new(),
                }),
            };
            rates
                .iter()
                .map(|&rate| {
                    shared.lock().plan.rate = rate;
                    shared.decide(0, &Method::GET, "/".into()).1
                })
                .collect::<Vec<_>>()
        };
        let steady = decide_all(&[0.3; 200]);
        let mut changed = [0.3; 200];
        changed[..50].fill(0.0);
        let after_fixtures = decide_all(&changed);
        assert!(after_fixtures[..50].iter().all(Option::is_none));
        assert_eq!(after_fixtures[50..], steady[50..]);
        let faulted = steady.iter().flatten().count();
        assert!((30..=90).contains(&faulted), "{faulted} of 200 at rate 0.3");
    }
}
