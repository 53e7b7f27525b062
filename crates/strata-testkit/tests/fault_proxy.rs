//! The fault proxy in front of moto: what a raw `object_store` S3 client (no retries) sees
//! for each fault, checked against a direct, fault-free read of moto.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload, RetryConfig};
use strata_testkit::fault_proxy::{Fault, FaultPlan, FaultProxy, RequestRecord};
use strata_testkit::{ServerEnv, moto_env, run_prefix};

/// A raw S3 client without retries, so each call is exactly one request.
fn client(server: &ServerEnv, endpoint: &str, timeout: Option<Duration>) -> AmazonS3 {
    let mut options = ClientOptions::new().with_allow_http(true);
    if let Some(timeout) = timeout {
        options = options.with_timeout(timeout);
    }
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(&server.bucket)
        .with_access_key_id(&server.access_key)
        .with_secret_access_key(server.secret_key.expose())
        .with_region("us-east-1")
        .with_virtual_hosted_style_request(false)
        .with_client_options(options)
        .with_retry(RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        })
        .build()
        .expect("valid S3 client config")
}

struct Setup {
    proxy: FaultProxy,
    /// Through the proxy.
    faulty: AmazonS3,
    /// Straight to moto: the oracle.
    direct: AmazonS3,
    prefix: String,
}

impl Setup {
    async fn new(plan: FaultPlan, timeout: Option<Duration>) -> Option<Setup> {
        let server = moto_env()?;
        let proxy = FaultProxy::start(&server.endpoint, plan)
            .await
            .expect("proxy starts");
        Some(Setup {
            faulty: client(&server, &proxy.endpoint(), timeout),
            direct: client(&server, &server.endpoint, None),
            proxy,
            prefix: run_prefix("fault-proxy"),
        })
    }

    /// Every request given `fault`, at once; no client timeout.
    async fn only(fault: Fault) -> Option<Setup> {
        Setup::new(FaultPlan::only(fault, Duration::ZERO), None).await
    }

    fn path(&self, name: &str) -> Path {
        Path::from(format!("{}/{name}", self.prefix))
    }

    /// A put of `body` at [`path`](Self::path) `name` through the proxy, which must fail.
    async fn failed_put(&self, name: &str, body: &'static [u8]) -> (Path, object_store::Error) {
        let path = self.path(name);
        let err = self
            .faulty
            .put(&path, PutPayload::from_static(body))
            .await
            .unwrap_err();
        (path, err)
    }

    /// A put through the proxy, which gives it `fault`, must fail: once the proxy has
    /// settled, it saw one PUT, given `fault`, which reached moto (answered 200) and landed
    /// exactly when `applied`. Returns the client's error.
    async fn put_fails_under(&self, fault: Fault, applied: bool) -> object_store::Error {
        let (path, err) = self.failed_put("put", b"landed").await;
        // A delayed request may still be on its way to moto.
        assert!(self.proxy.settle("put", Duration::from_secs(10)).await);
        assert_eq!(
            faults(&self.proxy.records()),
            [("PUT".into(), Some(fault), applied.then_some(200))]
        );
        let landed = applied.then_some(&b"landed"[..]);
        assert_eq!(self.on_server(&path).await.as_deref(), landed, "{fault}");
        err
    }

    async fn on_server(&self, path: &Path) -> Option<Bytes> {
        match self.direct.get(path).await {
            Ok(result) => Some(result.bytes().await.expect("direct read")),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("direct read of {path}: {e}"),
        }
    }
}

fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(" <- ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// The transport error kind in the chain, if the request failed below HTTP.
fn transport_kind(error: &(dyn std::error::Error + 'static)) -> Option<HttpErrorKind> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return Some(http.kind());
        }
        current = e.source();
    }
    None
}

/// A request interrupted below HTTP, whose error chain says `says`; returns the chain.
fn assert_interrupted(error: &object_store::Error, says: &str) -> String {
    let text = chain(error);
    assert_eq!(
        transport_kind(error),
        Some(HttpErrorKind::Interrupted),
        "{text}"
    );
    assert!(text.contains(says), "{text}");
    text
}

/// A TCP reset as the client sees it: an interrupted request, no HTTP status.
fn assert_reset(error: &object_store::Error) {
    let text = assert_interrupted(error, "Connection reset by peer");
    assert!(!text.contains("Server returned"), "{text}");
}

/// A body cut short of its Content-Length: an error, never short data.
fn assert_torn(error: &object_store::Error) {
    assert_interrupted(error, "end of file before message length reached");
}

fn faults(records: &[RequestRecord]) -> Vec<(String, Option<Fault>, Option<u16>)> {
    records
        .iter()
        .map(|r| (r.method.clone(), r.fault, r.upstream_status))
        .collect()
}

#[tokio::test]
async fn rate_zero_is_transparent_and_keeps_connections_alive() {
    let Some(s) = Setup::new(FaultPlan::none(), None).await else {
        return;
    };
    let path = s.path("plain");
    let data = Bytes::from_static(b"hello through the proxy");
    s.faulty.put(&path, data.clone().into()).await.unwrap();
    assert_eq!(
        s.faulty.get(&path).await.unwrap().bytes().await.unwrap(),
        data
    );
    assert_eq!(s.faulty.head(&path).await.unwrap().size, data.len() as u64);
    let range = s.faulty.get_range(&path, 6..13).await.unwrap();
    assert_eq!(range, Bytes::from_static(b"through"));

    // Conditional headers reach moto: a second create is refused.
    let created = s.path("created");
    let create = || {
        s.faulty.put_opts(
            &created,
            PutPayload::from_static(b"1"),
            PutMode::Create.into(),
        )
    };
    create().await.unwrap();
    let err = create().await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{}",
        chain(&err)
    );

    // Multipart: a 5 MiB part and a short last one.
    let big = s.path("multipart");
    let part = Bytes::from(vec![7u8; 5 << 20]);
    let mut upload = s.faulty.put_multipart(&big).await.unwrap();
    upload.put_part(part.clone().into()).await.unwrap();
    upload
        .put_part(Bytes::from_static(b"tail").into())
        .await
        .unwrap();
    upload.complete().await.unwrap();
    let whole = s.on_server(&big).await.expect("multipart object on moto");
    assert_eq!(whole.len(), part.len() + 4);
    assert_eq!(&whole[part.len()..], b"tail");

    let prefix = Path::from(s.prefix.as_str());
    let mut listed: Vec<String> = s
        .faulty
        .list(Some(&prefix))
        .map_ok(|meta| meta.location.filename().unwrap_or_default().to_owned())
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(listed, ["created", "multipart", "plain"]);

    for p in [&path, &created, &big] {
        s.faulty.delete(p).await.unwrap();
    }
    assert!(matches!(
        s.faulty.get(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));
    assert_eq!(s.on_server(&created).await, None);

    let records = s.proxy.records();
    assert!(
        records
            .iter()
            .all(|r| r.fault.is_none() && r.note.is_none()),
        "{records:#?}"
    );
    assert!(
        records.iter().all(|r| r.upstream_status.is_some()),
        "{records:#?}"
    );
    let methods: Vec<&str> = records.iter().map(|r| r.method.as_str()).collect();
    // put, get, head, range, 2 creates, multipart (create, 2 parts, complete), list,
    // 3 deletes (object_store deletes with POST ?delete), get.
    assert_eq!(
        methods,
        [
            "PUT", "GET", "HEAD", "GET", "PUT", "PUT", "POST", "PUT", "PUT", "POST", "GET", "POST",
            "POST", "POST", "GET"
        ]
    );
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..15).collect::<Vec<_>>()
    );
    // One client calling in sequence: every request on the first connection.
    assert!(records.iter().all(|r| r.connection == 0), "{records:#?}");
    assert!(s.proxy.counts().is_empty());
    println!("{}", s.proxy.summary());
}

#[tokio::test]
async fn unavailable_503_before_is_not_applied() {
    let Some(s) = Setup::only(Fault::Unavailable503Before).await else {
        return;
    };
    let err = s.put_fails_under(Fault::Unavailable503Before, false).await;
    let text = chain(&err);
    assert!(matches!(err, object_store::Error::Generic { .. }), "{text}");
    assert!(text.contains("503 Service Unavailable"), "{text}");
    assert!(text.contains("<Code>ServiceUnavailable</Code>"), "{text}");
    assert_eq!(transport_kind(&err), None, "{text}");
}

#[tokio::test]
async fn internal_error_500_after_is_applied() {
    let Some(s) = Setup::only(Fault::InternalError500After).await else {
        return;
    };
    let text = chain(&s.put_fails_under(Fault::InternalError500After, true).await);
    assert!(text.contains("500 Internal Server Error"), "{text}");
    assert!(text.contains("<Code>InternalError</Code>"), "{text}");
    assert_eq!(s.proxy.counts()[&Fault::InternalError500After], 1);
}

#[tokio::test]
async fn delay_past_timeout_times_out_an_applied_write() {
    let plan = FaultPlan::only(Fault::DelayPastTimeout, Duration::from_secs(30));
    let Some(s) = Setup::new(plan, Some(Duration::from_millis(500))).await else {
        return;
    };
    // The proxy forwarded before holding; the hold is past moto's answer.
    let err = s.put_fails_under(Fault::DelayPastTimeout, true).await;
    assert_eq!(
        transport_kind(&err),
        Some(HttpErrorKind::Timeout),
        "{}",
        chain(&err)
    );
}

/// A reset is a transport error whether it comes before the request reached moto or after
/// it was applied.
#[tokio::test]
async fn resets_are_transport_errors_applied_only_after() {
    for (fault, applied) in [(Fault::ResetBefore, false), (Fault::ResetAfter, true)] {
        let Some(s) = Setup::only(fault).await else {
            return;
        };
        assert_reset(&s.put_fails_under(fault, applied).await);
    }
}

#[tokio::test]
async fn torn_bodies_are_errors_not_short_data() {
    let Some(s) = Setup::only(Fault::TornBody).await else {
        return;
    };
    let path = s.path("torn");
    let data = Bytes::from(vec![b'z'; 64 << 10]);
    s.proxy.set_rate(0.0);
    s.faulty.put(&path, data.clone().into()).await.unwrap();
    s.proxy.set_rate(1.0);

    // The status and headers arrive whole; the body stops halfway.
    let result = s.faulty.get(&path).await.expect("headers arrive");
    assert_eq!(result.meta.size, data.len() as u64);
    assert_torn(&result.bytes().await.unwrap_err());

    // A listing's XML is cut too.
    let prefix = Path::from(s.prefix.as_str());
    let listed: Result<Vec<_>, _> = s.faulty.list(Some(&prefix)).try_collect().await;
    assert_torn(&listed.unwrap_err());

    // An error answer's XML is cut too: raw object_store then loses the 404 (it reports the
    // body error), which is what the layers above must cope with.
    let err = s.faulty.get(&s.path("missing")).await.unwrap_err();
    assert_torn(&err);
    assert!(
        matches!(err, object_store::Error::Generic { .. }),
        "{err:?}"
    );

    // HEAD has no body: its connection is closed before the status.
    assert_reset(&s.faulty.head(&path).await.unwrap_err());

    let records = s.proxy.records();
    assert_eq!(
        faults(&records),
        [
            ("PUT".into(), None, Some(200)),
            ("GET".into(), Some(Fault::TornBody), Some(200)),
            ("GET".into(), Some(Fault::TornBody), Some(200)),
            ("GET".into(), Some(Fault::TornBody), Some(404)),
            ("HEAD".into(), Some(Fault::TornBody), Some(200)),
        ]
    );
    assert_eq!(s.on_server(&path).await, Some(data));
}

/// After each fault the client opens a new connection, and then keeps it: a faulted
/// connection is never reused, a healthy one is.
#[tokio::test]
async fn faulted_connections_are_closed_and_healthy_ones_reused() {
    for fault in [
        Fault::Unavailable503Before,
        Fault::InternalError500After,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::TornBody,
    ] {
        let mut plan = FaultPlan::only(fault, Duration::ZERO);
        plan.max_requests = Some(1);
        let Some(s) = Setup::new(plan, None).await else {
            return;
        };
        let path = s.path("conn");
        s.direct
            .put(&path, PutPayload::from_static(b"0123456789"))
            .await
            .unwrap();
        let failed = match s.faulty.get(&path).await {
            Ok(result) => result.bytes().await.is_err(),
            Err(_) => true,
        };
        assert!(failed, "{fault}");
        for _ in 0..2 {
            let got = s.faulty.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(got, Bytes::from_static(b"0123456789"), "{fault}");
        }
        let records = s.proxy.records();
        let connections: Vec<(u64, Option<Fault>)> =
            records.iter().map(|r| (r.connection, r.fault)).collect();
        assert_eq!(
            connections,
            [(0, Some(fault)), (1, None), (1, None)],
            "{fault}"
        );
    }
}

#[tokio::test]
async fn summary_counts_by_kind() {
    let plan = FaultPlan::mixed(3, 1.0, Duration::ZERO);
    let Some(s) = Setup::new(plan, Some(Duration::from_secs(5))).await else {
        return;
    };
    let path = s.path("summary");
    for _ in 0..12 {
        let _ = s.faulty.head(&path).await;
    }
    let counts = s.proxy.counts();
    assert_eq!(counts.values().sum::<u64>(), 12);
    let summary = s.proxy.summary();
    assert!(
        summary.starts_with("fault proxy (seed 3, rate 1): 12 requests, 12 faulted ("),
        "{summary}"
    );
    for fault in Fault::ALL {
        let n = counts.get(&fault).copied().unwrap_or(0);
        assert!(
            summary.contains(&format!("{} {n}", fault.name())),
            "{summary}"
        );
    }
}

/// s3s-fs checks every signature: requests through the proxy still verify.
#[tokio::test]
async fn signatures_still_verify_through_the_proxy() {
    let Some(server) = strata_testkit::sigv4_env() else {
        return;
    };
    let proxy = FaultProxy::start(&server.endpoint, FaultPlan::none())
        .await
        .unwrap();
    let store = client(&server, &proxy.endpoint(), None);
    let path = Path::from(format!("{}/signed", run_prefix("fault-proxy-sigv4")));
    store
        .put(&path, PutPayload::from_static(b"signed"))
        .await
        .unwrap();
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, Bytes::from_static(b"signed"));
    store.delete(&path).await.unwrap();

    // The control: a wrong secret is refused through the proxy, so the server does check.
    let wrong = ServerEnv {
        secret_key: storage_core::Secret::new("not-the-secret"),
        ..server.clone()
    };
    let err = client(&wrong, &proxy.endpoint(), None)
        .put(&path, PutPayload::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(chain(&err).contains("403"), "{}", chain(&err));
    let seen: Vec<(String, Option<u16>)> = proxy
        .records()
        .into_iter()
        .map(|r| (r.method, r.upstream_status))
        .collect();
    let expected = [("PUT", 200), ("GET", 200), ("POST", 200), ("PUT", 403)]
        .map(|(method, status)| (method.to_owned(), Some(status)));
    assert_eq!(seen, expected);
}

/// Concurrent clients: every request is numbered once, in arrival order, and answered.
#[tokio::test]
async fn concurrent_requests_are_each_recorded_once() {
    let Some(s) = Setup::new(FaultPlan::none(), None).await else {
        return;
    };
    let puts = (0..32).map(|i| {
        let path = s.path(&format!("c{i}"));
        let store = &s.faulty;
        async move {
            store
                .put(&path, PutPayload::from(vec![i as u8; 1000]))
                .await
        }
    });
    for result in futures::future::join_all(puts).await {
        result.unwrap();
    }
    let records = s.proxy.records();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..32).collect::<Vec<_>>()
    );
    let mut targets: Vec<&str> = records.iter().map(|r| r.target.as_str()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), 32);
    assert!(records.iter().all(|r| r.upstream_status == Some(200)));
    for i in [0u8, 31] {
        let got = s.on_server(&s.path(&format!("c{i}"))).await.unwrap();
        assert_eq!(got, Bytes::from(vec![i; 1000]));
    }
}

/// A client that gives up while the upstream is still working does not stop the request:
/// it is delivered, answered and recorded, and `settle` waits for that.
#[tokio::test]
async fn a_request_outlives_its_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A slow upstream: answers each request a second after reading it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "request cut: {:?}",
                String::from_utf8_lossy(&request)
            );
            request.extend_from_slice(&buf[..n]);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    let proxy = FaultProxy::start(&upstream, FaultPlan::none())
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client
        .get(format!("{}/bucket/slow", proxy.endpoint()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(proxy.settle("/bucket/slow", Duration::from_secs(10)).await);
    let records = proxy.records();
    assert_eq!(faults(&records), [("GET".into(), None, Some(200))]);
    let request = server.await.unwrap();
    assert!(
        request.starts_with("GET /bucket/slow HTTP/1.1\r\n"),
        "{request}"
    );
}

/// A body over the limit is refused, never forwarded.
#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let Some(server) = moto_env() else {
        return;
    };
    let proxy = FaultProxy::start(&server.endpoint, FaultPlan::none())
        .await
        .unwrap();
    let body = vec![0u8; strata_testkit::fault_proxy::MAX_BODY + 1];
    let answer = reqwest::Client::new()
        .put(format!("{}/{}/too-large", proxy.endpoint(), server.bucket))
        .body(body)
        .send()
        .await;
    // The proxy answers 413 without reading the body; the client may see the answer or,
    // still sending, a reset. Either way nothing reached moto.
    if let Ok(answer) = answer {
        assert_eq!(answer.status(), 413);
    }
    let records = proxy.records();
    assert_eq!(faults(&records), [("PUT".into(), None, None)]);
    assert_eq!(
        records[0].note.as_deref(),
        Some("request body over 67108864 bytes: not forwarded")
    );
}
