//! Limits, timeouts and graceful shutdown, over raw HTTP (unsigned requests on a server
//! without credentials).

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A server of bucket `media` with `[serve]` settings `serve`, on a fresh folder; the folder
/// lives as long as the returned `TempDir`.
async fn serving(serve: &str) -> (tempfile::TempDir, common::Running) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[serve]\n{serve}\n{}", common::open_config(&["media"]));
    let server = common::start(&config, dir.path()).await;
    (dir, server)
}

/// Send `request` on a fresh connection and read until the server closes (or resets) it:
/// the response as text, or `Err` with what arrived when `within` ran out first.
async fn exchange(endpoint: &str, request: &[u8], within: Duration) -> Result<String, String> {
    let addr = endpoint.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    // A reset after the answer (a refused request) still leaves the answer in `out`.
    let read = tokio::time::timeout(within, s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    match read {
        Ok(_) => Ok(text),
        Err(_) => Err(text),
    }
}

/// [`exchange`] of `head` and `body`, which must be answered within a minute.
async fn raw(endpoint: &str, head: &str, body: &[u8]) -> String {
    exchange(
        endpoint,
        &[head.as_bytes(), body].concat(),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|out| panic!("no answer within a minute; so far:\n{out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn body_and_header_limits() {
    let (dir, server) = serving("max_body_bytes = 1024\nmax_header_bytes = 8192").await;
    let ok = raw(
        &server.endpoint,
        "PUT /media/small HTTP/1.1\r\nhost: x\r\ncontent-length: 1024\r\nconnection: close\r\n\r\n",
        &[b'a'; 1024],
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let big = raw(
        &server.endpoint,
        "PUT /media/big HTTP/1.1\r\nhost: x\r\ncontent-length: 1025\r\nconnection: close\r\n\r\n",
        &[b'a'; 1025],
    )
    .await;
    assert!(big.starts_with("HTTP/1.1 400"), "{big}");
    assert!(big.contains("<Code>EntityTooLarge</Code>"), "{big}");
    assert!(!dir.path().join("media/big").exists());
    // A chunked body has no length to check up front: it is cut off at the limit.
    let mut chunked = String::new();
    for _ in 0..3 {
        chunked.push_str(&format!("200\r\n{}\r\n", "b".repeat(512)));
    }
    chunked.push_str("0\r\n\r\n");
    let cut = raw(
        &server.endpoint,
        "PUT /media/chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        chunked.as_bytes(),
    )
    .await;
    assert!(!cut.starts_with("HTTP/1.1 200"), "{cut}");
    assert!(!dir.path().join("media/chunked").exists());
    let huge_header = format!(
        "GET /media/small HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
        "f".repeat(20_000)
    );
    let refused = raw(&server.endpoint, &huge_header, b"").await;
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 431"),
        "{refused}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_slower_than_the_timeout_is_answered_request_timeout() {
    let (dir, server) = serving("request_timeout = \"1s\"").await;
    let out = exchange(
        &server.endpoint,
        b"PUT /media/slow HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\nconnection: close\r\n\r\nab",
        Duration::from_secs(20),
    )
    .await
    .expect("the server answers a stalled upload");
    assert!(out.contains("<Code>RequestTimeout</Code>"), "{out}");
    assert!(!dir.path().join("media/slow").exists());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_lets_an_in_flight_download_finish_and_refuses_new_connections() {
    let (_dir, server) = serving("shutdown_grace = \"30s\"").await;
    let body = vec![b'z'; 32 * 1024 * 1024];
    let client = reqwest::Client::new();
    let put = client
        .put(format!("{}/media/big", server.endpoint))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    // Start a download, read a little of it, then stop the server.
    let mut resp = client
        .get(format!("{}/media/big", server.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = resp.chunk().await.unwrap().unwrap().to_vec();
    let endpoint = server.endpoint.clone();
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Some(c) = resp.chunk().await.unwrap() {
        got.extend_from_slice(&c);
    }
    assert_eq!(
        got.len(),
        body.len(),
        "the in-flight download finished whole"
    );
    stopping.await.unwrap();
    let after = reqwest::Client::new()
        .get(format!("{endpoint}/media/big"))
        .send()
        .await;
    assert!(after.is_err(), "a stopped server accepts nothing");
}

/// boto3 sends `Expect: 100-continue` on every PutObject and UploadPart, and when the answer
/// comes before the body (a part for an unknown upload: `NoSuchUpload`), it never sends the
/// body it declared but keeps the connection. The server must then close it: otherwise the
/// first bytes of the client's next request are read as that body (a HEAD arrived as `EAD`,
/// failed its signature check, and boto3 saw 403 instead of 404 under load). Here the next
/// request is sent at once behind the first, so the server always has it in hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_sent_before_the_body_was_read_closes_the_connection() {
    let (_dir, server) = serving("").await;
    let out = exchange(
        &server.endpoint,
        b"PUT /media/k?partNumber=2&uploadId=0123456789abcdef0123456789abcdef HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\nexpect: 100-continue\r\n\r\nHEAD /media/missing HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|out| panic!("the server kept the connection open:\n{out}"));
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    assert!(out.contains("<Code>NoSuchUpload</Code>"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{out}"
    );
    assert_eq!(
        out.matches("HTTP/1.1 ").count(),
        1,
        "one answer; nothing read the next request's bytes as the body:\n{out}"
    );
    // A request whose body was read keeps its connection.
    let out = exchange(
        &server.endpoint,
        b"PUT /media/k HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nxHEAD /media/k HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await
    .expect("answered");
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    server.stop().await;
}
