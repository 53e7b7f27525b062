//! A tiny S3-speaking HTTP server on loopback for CLI tests that need a backend to behave
//! in one exact way: answer every request with 503 SlowDown, or serve a large listing page
//! by page and hold a page back until the test says so. Plain `std::net`, one thread per
//! connection, HTTP/1.1 with keep-alive; nothing but what `object_store`'s S3 client sends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What the server answers.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body (XML).
    pub body: String,
}

/// A request as the handler sees it.
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path and query, as sent (`/bucket?list-type=2&prefix=a`).
    pub target: String,
}

impl Request {
    /// The value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, q) = self.target.split_once('?')?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| decode(v))
        })
    }
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running server. It lives until the test process ends (its threads are detached).
pub struct FakeS3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Every request line seen, in order.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Serve `handler` on a free loopback port.
pub fn serve(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeS3 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log2 = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (handler, log) = (handler.clone(), log2.clone());
            std::thread::spawn(move || {
                let _ = connection(conn, &*handler, &log);
            });
        }
    });
    FakeS3 { endpoint, log }
}

fn connection(
    conn: TcpStream,
    handler: &(dyn Fn(&Request) -> Reply + Send + Sync),
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        log.lock().unwrap().push(format!("{method} {target}"));
        let reply = handler(&Request { method, target });
        let reason = match reply.status {
            200 => "OK",
            403 => "Forbidden",
            404 => "Not Found",
            503 => "Service Unavailable",
            _ => "Status",
        };
        write!(
            out,
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{}",
            reply.status,
            reply.body.len(),
            reply.body
        )?;
        out.flush()?;
    }
}

/// An S3 error body.
pub fn error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fake</RequestId></Error>"
    )
}

/// A ListObjectsV2 page of `keys`; `next` is the continuation token of the next page.
pub fn list_page(bucket: &str, keys: &[String], next: Option<&str>) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{bucket}</Name><Prefix></Prefix><KeyCount>{}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>{}</IsTruncated>",
        keys.len(),
        next.is_some()
    );
    if let Some(n) = next {
        x.push_str(&format!(
            "<NextContinuationToken>{n}</NextContinuationToken>"
        ));
    }
    for k in keys {
        x.push_str(&format!(
            "<Contents><Key>{k}</Key><LastModified>2026-12-01T00:00:00.000Z</LastModified><ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>"
        ));
    }
    x.push_str("</ListBucketResult>");
    x
}

/// A config file naming bucket `fake` on `endpoint`, with the client's own retries off so a
/// failure surfaces at once.
pub fn config(dir: &std::path::Path, endpoint: &str, secret: &str) -> std::path::PathBuf {
    super::s3_config(
        dir,
        "s3",
        endpoint,
        ("AKFAKE", secret),
        "region = \"us-east-1\"\nmax_retries = 0\n\n[buckets.fake]\nconnection = \"s3\"\nbucket = \"fake\"\n",
    )
}
