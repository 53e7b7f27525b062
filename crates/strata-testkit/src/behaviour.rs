//! The behaviour suite: one set of checks, run unchanged against every backend.
//!
//! Each check takes a [`Bucket`] (already scoped to a fresh prefix) and either passes,
//! panics with the check's name and what differed, or is skipped with a reason taken from
//! the bucket's [`Capabilities`](storage_core::Capabilities) or the server [`Profile`]. A
//! skip is reported, never counted as a pass.

use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use storage_core::{Bucket, PresignMethod, PutOpts, StorageError};

/// What the server under test can prove, beyond the bucket's capabilities.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Name for reports.
    pub name: String,
    /// The server rejects bad signatures (s3s-fs does; moto does not).
    pub verifies_signatures: bool,
    /// Conditional writes are atomic under concurrency.
    pub atomic_cas: bool,
    /// Run the heavy checks (1100-key listing, 1500-key delete, 64 MiB stream).
    pub heavy: bool,
}

impl Profile {
    /// Memory and local folder.
    pub fn embedded(name: &str) -> Self {
        Profile {
            name: name.into(),
            verifies_signatures: false,
            atomic_cas: true,
            heavy: true,
        }
    }

    /// moto: full S3 semantics, no signature checks.
    pub fn moto() -> Self {
        Profile {
            name: "moto".into(),
            verifies_signatures: false,
            atomic_cas: true,
            heavy: true,
        }
    }

    /// s3s-fs: checks signatures; conditional writes not atomic.
    pub fn s3s_fs() -> Self {
        Profile {
            name: "s3s-fs".into(),
            verifies_signatures: true,
            atomic_cas: false,
            heavy: true,
        }
    }
}

/// What ran.
#[derive(Debug, Default)]
pub struct Report {
    /// Checks that passed.
    pub passed: Vec<&'static str>,
    /// Checks skipped, with why.
    pub skipped: Vec<(&'static str, String)>,
}

enum Outcome {
    Passed,
    Skipped(String),
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Run every check against `bucket`; panics on the first failure.
        pub async fn run(bucket: &Bucket, profile: &Profile) -> Report {
            let mut report = Report::default();
            $(
                match $name(bucket, profile).await {
                    Outcome::Passed => report.passed.push(stringify!($name)),
                    Outcome::Skipped(why) => {
                        eprintln!("SKIPPED [{}] {}: {}", profile.name, stringify!($name), why);
                        report.skipped.push((stringify!($name), why));
                    }
                }
            )*
            eprintln!(
                "behaviour suite [{}]: {} passed, {} skipped",
                profile.name,
                report.passed.len(),
                report.skipped.len()
            );
            report
        }
    };
}

checks!(
    put_get_round_trip,
    metadata_round_trip,
    tags_and_storage_class_accepted,
    exists_and_delete,
    ranges,
    listing_prefix_delimiter_offset,
    listing_past_1000_keys,
    delete_many_1500_keys,
    streamed_64_mib,
    conditional_create_and_update,
    conditional_writes_race_one_winner,
    conditional_get,
    conditional_delete,
    copy_and_move,
    presigned_get_and_put,
    presigned_url_tampered_or_expired,
    stats_and_health,
    invalid_keys_rejected,
);

fn pattern(offset: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| {
            let x = offset + i as u64;
            (x.wrapping_mul(31) ^ (x >> 7)) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

async fn put_get_round_trip(b: &Bucket, _: &Profile) -> Outcome {
    let body = pattern(0, 10_000);
    let w = b.put("rt/a.bin", body.clone()).await.expect("put");
    assert_eq!(w.size, 10_000);
    let o = b.get("rt/a.bin").await.expect("get");
    assert_eq!(o.bytes, body, "get returns what put wrote");
    assert_eq!(o.info.size, 10_000);
    assert!(o.info.etag.is_some(), "reads return the ETag they saw");
    let h = b.head("rt/a.bin").await.expect("head");
    assert_eq!(h.etag, o.info.etag, "head and get agree on the ETag");
    assert!(
        storage_core::etag_eq(w.etag.as_deref().unwrap(), h.etag.as_deref().unwrap()),
        "put returns the stored ETag"
    );
    // Overwrite changes the ETag.
    let w2 = b.put("rt/a.bin", "other").await.expect("overwrite");
    assert_ne!(w2.etag, w.etag);
    assert_eq!(b.get("rt/a.bin").await.unwrap().bytes, "other");
    // Empty objects.
    b.put("rt/empty", Bytes::new()).await.expect("empty put");
    assert_eq!(b.get("rt/empty").await.unwrap().bytes.len(), 0);
    let missing = b.get("rt/missing").await.unwrap_err();
    assert!(
        missing.is_not_found(),
        "missing object → NotFound, got {missing}"
    );
    Outcome::Passed
}

async fn metadata_round_trip(b: &Bucket, _: &Profile) -> Outcome {
    if !b.capabilities().metadata {
        return Outcome::Skipped(format!("{} does not store metadata", b.provider()));
    }
    let opts = PutOpts {
        content_type: Some("application/json".into()),
        cache_control: Some("max-age=60".into()),
        content_disposition: Some("attachment; filename=\"r.json\"".into()),
        ..Default::default()
    }
    .with_metadata("owner", "ana")
    .with_metadata("purpose", "suite");
    b.put_with("meta/r.json", "{}", opts)
        .await
        .expect("put with metadata");
    let h = b.head("meta/r.json").await.expect("head");
    assert_eq!(h.content_type(), Some("application/json"), "{h:?}");
    assert_eq!(
        h.headers.get("cache-control").map(String::as_str),
        Some("max-age=60")
    );
    assert_eq!(
        h.headers.get("content-disposition").map(String::as_str),
        Some("attachment; filename=\"r.json\"")
    );
    assert_eq!(
        h.metadata.get("owner").map(String::as_str),
        Some("ana"),
        "{h:?}"
    );
    assert_eq!(h.metadata.get("purpose").map(String::as_str), Some("suite"));
    let g = b.get("meta/r.json").await.unwrap();
    assert_eq!(
        g.info.metadata, h.metadata,
        "get and head report the same metadata"
    );
    // Too much metadata is refused before any request.
    let big = "x".repeat(2100);
    let e = b
        .put_with("meta/big", "x", PutOpts::default().with_metadata("k", big))
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::InvalidInput { .. }), "{e}");
    assert!(
        !b.exists("meta/big").await.unwrap(),
        "a refused write wrote nothing"
    );
    Outcome::Passed
}

async fn tags_and_storage_class_accepted(b: &Bucket, _: &Profile) -> Outcome {
    let mut opts = PutOpts::default()
        .with_tag("team", "data")
        .with_tag("tier", "hot");
    if b.capabilities().storage_class {
        opts.storage_class = Some("STANDARD".into());
    }
    b.put_with("tags/a", "tagged", opts)
        .await
        .expect("put with tags (and storage class)");
    assert_eq!(b.get("tags/a").await.unwrap().bytes, "tagged");
    let e = b
        .put_with("tags/b", "x", PutOpts::default().with_tag("", "empty key"))
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::InvalidInput { .. }), "{e}");
    Outcome::Passed
}

async fn exists_and_delete(b: &Bucket, _: &Profile) -> Outcome {
    b.put("ex/a", "1").await.unwrap();
    assert!(b.exists("ex/a").await.unwrap());
    assert!(!b.exists("ex/b").await.unwrap());
    b.delete("ex/a").await.unwrap();
    assert!(!b.exists("ex/a").await.unwrap());
    b.delete("ex/a")
        .await
        .expect("deleting a missing object succeeds");
    Outcome::Passed
}

async fn ranges(b: &Bucket, _: &Profile) -> Outcome {
    let body = pattern(0, 100_000);
    b.put("rg/x", body.clone()).await.unwrap();
    let r = b.get_range("rg/x", 1000..2500).await.unwrap();
    assert_eq!(r.bytes, body.slice(1000..2500));
    let tail = b.get_range("rg/x", 99_990..200_000).await.unwrap();
    assert_eq!(
        tail.bytes,
        body.slice(99_990..),
        "a range past the end returns the rest"
    );
    let e = b.get_range("rg/x", 5..5).await.unwrap_err();
    assert!(matches!(e, StorageError::InvalidInput { .. }), "{e}");
    Outcome::Passed
}

async fn listing_prefix_delimiter_offset(b: &Bucket, _: &Profile) -> Outcome {
    for k in ["ls/a/1", "ls/a/2", "ls/b/1", "ls/c", "lsx/other"] {
        b.put(k, k.to_string()).await.unwrap();
    }
    let mut all: Vec<String> = b.list("ls").map_ok(|o| o.key).try_collect().await.unwrap();
    all.sort();
    assert_eq!(
        all,
        ["ls/a/1", "ls/a/2", "ls/b/1", "ls/c"],
        "prefix is per segment"
    );
    let dir = b.list_dir("ls").await.unwrap();
    assert_eq!(dir.prefixes, ["ls/a/", "ls/b/"]);
    assert_eq!(
        dir.objects
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        ["ls/c"]
    );
    let mut after: Vec<String> = b
        .list_after("ls", Some("ls/a/2"))
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap();
    after.sort();
    assert_eq!(after, ["ls/b/1", "ls/c"], "offset is exclusive");
    Outcome::Passed
}

async fn put_many(b: &Bucket, prefix: &str, n: usize) {
    stream::iter(0..n)
        .map(|i| {
            let b = b.clone();
            let key = format!("{prefix}/k{i:05}");
            async move { b.put(&key, Bytes::from_static(b"x")).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("bulk put");
}

async fn listing_past_1000_keys(b: &Bucket, p: &Profile) -> Outcome {
    if !p.heavy {
        return Outcome::Skipped("heavy checks disabled for this profile".into());
    }
    put_many(b, "many", 1100).await;
    let keys: Vec<String> = b
        .list("many")
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(keys.len(), 1100, "listing pages past 1000 keys");
    let stats = b.stats("many").await.unwrap();
    assert_eq!(stats.objects, 1100);
    assert_eq!(stats.bytes, 1100);
    Outcome::Passed
}

async fn delete_many_1500_keys(b: &Bucket, p: &Profile) -> Outcome {
    if !p.heavy {
        return Outcome::Skipped("heavy checks disabled for this profile".into());
    }
    put_many(b, "del", 1500).await;
    let mut keys: Vec<String> = (0..1500).map(|i| format!("del/k{i:05}")).collect();
    keys.push("bad//key".into());
    let report = b.delete_many(&keys).await;
    assert_eq!(
        report.deleted.len(),
        1500,
        "failed: {:?}",
        report.failed.first()
    );
    assert_eq!(
        report.failed.len(),
        1,
        "the invalid key is reported, not sent"
    );
    assert_eq!(report.failed[0].0, "bad//key");
    let left: Vec<_> = b.list("del").try_collect().await.unwrap();
    assert!(left.is_empty(), "{} objects left", left.len());
    Outcome::Passed
}

async fn streamed_64_mib(b: &Bucket, p: &Profile) -> Outcome {
    if !p.heavy {
        return Outcome::Skipped("heavy checks disabled for this profile".into());
    }
    const CHUNK: usize = 1 << 20;
    const TOTAL: u64 = 64 << 20;
    let chunks =
        stream::iter(0..(TOTAL / CHUNK as u64)).map(|i| Ok(pattern(i * CHUNK as u64, CHUNK)));
    let w = b
        .put_stream("big/64mib.bin", chunks, PutOpts::default())
        .await
        .expect("streamed put");
    assert_eq!(w.size, TOTAL);
    let s = b.get_stream("big/64mib.bin").await.expect("streamed get");
    assert_eq!(s.info.size, TOTAL);
    let mut offset = 0u64;
    let mut body = s.stream;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        assert_eq!(
            chunk,
            pattern(offset, chunk.len()),
            "bytes differ at offset {offset}"
        );
        offset += chunk.len() as u64;
    }
    assert_eq!(offset, TOTAL);
    Outcome::Passed
}

async fn conditional_create_and_update(b: &Bucket, _: &Profile) -> Outcome {
    if !b.capabilities().put_if_match {
        let e = b
            .put_with("cas/x", "1", PutOpts::if_match("x"))
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::NotSupported { .. }), "{e}");
        return Outcome::Skipped(format!(
            "{} has no conditional put; NotSupported verified",
            b.provider()
        ));
    }
    let first = b
        .put_with("cas/doc", "v1", PutOpts::if_absent())
        .await
        .expect("create");
    let again = b
        .put_with("cas/doc", "v1b", PutOpts::if_absent())
        .await
        .unwrap_err();
    assert!(
        matches!(again, StorageError::AlreadyExists { .. }),
        "{again}"
    );
    let etag = first.etag.clone().unwrap();
    // Quoted or not, the same ETag matches.
    let quoted = format!("\"{}\"", etag.trim_matches('"'));
    let second = b
        .put_with("cas/doc", "v2", PutOpts::if_match(&quoted))
        .await
        .expect("update");
    let stale = b
        .put_with("cas/doc", "v3", PutOpts::if_match(&etag))
        .await
        .unwrap_err();
    assert!(
        matches!(stale, StorageError::Precondition { .. }),
        "{stale}"
    );
    assert_eq!(
        b.get("cas/doc").await.unwrap().bytes,
        "v2",
        "the stale write changed nothing"
    );
    let missing = b
        .put_with("cas/none", "x", PutOpts::if_match(second.etag.unwrap()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            missing,
            StorageError::Precondition { .. } | StorageError::NotFound { .. }
        ),
        "{missing}"
    );
    Outcome::Passed
}

/// Writers racing with the same precondition: never more than one wins a round, the others
/// are told so, and the object holds the winner's bytes. This is what compare-and-swap
/// stands on; a server that checks the precondition and stores without a lock between
/// fails it. Over a faulty stack (the layers' chaos tests) a writer may instead get an
/// error whose outcome is unknown; a round may then have no acknowledged winner, and the
/// object holds whatever that writer stored.
async fn conditional_writes_race_one_winner(b: &Bucket, p: &Profile) -> Outcome {
    if !(b.capabilities().put_if_match && b.capabilities().create_if_absent) {
        return Outcome::Skipped(format!("{} has no conditional put", b.provider()));
    }
    if !p.atomic_cas {
        return Outcome::Skipped(format!(
            "{}'s conditional writes are not atomic under concurrency (a server limitation)",
            p.name
        ));
    }
    const WRITERS: usize = 12;
    const ROUNDS: usize = 6;
    let key = "race/doc";
    let mut precondition = PutOpts::if_absent();
    let mut acknowledged = 0;
    for round in 0..ROUNDS {
        let attempts = (0..WRITERS).map(|w| {
            let opts = precondition.clone();
            async move {
                let body = format!("round {round} writer {w}");
                (body.clone(), b.put_with(key, body, opts).await)
            }
        });
        let results = futures::future::join_all(attempts).await;
        let (mut winners, mut unknown) = (Vec::new(), 0);
        for (body, r) in results {
            match r {
                Ok(w) => winners.push((body, w)),
                Err(StorageError::Precondition { .. } | StorageError::AlreadyExists { .. }) => {}
                Err(_) => unknown += 1,
            }
        }
        assert!(
            winners.len() <= 1,
            "round {round}: {} of {WRITERS} writers with the same precondition succeeded",
            winners.len()
        );
        let stored = b.get(key).await.expect("read the object");
        match winners.pop() {
            Some((body, _)) => {
                assert_eq!(
                    stored.bytes, body,
                    "round {round}: the object is not the winner's"
                );
                acknowledged += 1;
            }
            None => assert!(
                unknown > 0,
                "round {round}: every writer was told it lost, and none got an error"
            ),
        }
        let etag = stored.info.etag.expect("a read returns the ETag it saw");
        precondition = PutOpts::if_match(etag);
    }
    assert!(acknowledged > 0, "no round had an acknowledged winner");
    Outcome::Passed
}

async fn conditional_get(b: &Bucket, _: &Profile) -> Outcome {
    if !b.capabilities().get_if_none_match {
        return Outcome::Skipped(format!("{} ignores conditional GET headers", b.provider()));
    }
    let w = b.put("cg/a", "same").await.unwrap();
    let etag = w.etag.unwrap();
    assert!(
        b.get_if_none_match("cg/a", &etag).await.unwrap().is_none(),
        "unchanged → None"
    );
    b.put("cg/a", "changed").await.unwrap();
    let o = b
        .get_if_none_match("cg/a", &etag)
        .await
        .unwrap()
        .expect("changed → Some");
    assert_eq!(o.bytes, "changed");
    Outcome::Passed
}

async fn conditional_delete(b: &Bucket, _: &Profile) -> Outcome {
    if !b.capabilities().delete_if_match {
        let e = b.delete_if_match("cd/a", "x").await.unwrap_err();
        assert!(matches!(e, StorageError::NotSupported { .. }), "{e}");
        return Outcome::Skipped(format!(
            "{} has no atomic delete-if-match; NotSupported verified",
            b.provider()
        ));
    }
    let w = b.put("cd/a", "1").await.unwrap();
    b.put("cd/a", "2").await.unwrap();
    let e = b
        .delete_if_match("cd/a", w.etag.as_deref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, StorageError::Precondition { .. }), "{e}");
    assert!(b.exists("cd/a").await.unwrap());
    let now = b.head("cd/a").await.unwrap().etag.unwrap();
    b.delete_if_match("cd/a", &now).await.unwrap();
    assert!(!b.exists("cd/a").await.unwrap());
    let gone = b.delete_if_match("cd/a", &now).await.unwrap_err();
    assert!(matches!(gone, StorageError::NotFound { .. }), "{gone}");
    Outcome::Passed
}

async fn copy_and_move(b: &Bucket, _: &Profile) -> Outcome {
    b.put("cp/src", "payload").await.unwrap();
    b.copy("cp/src", "cp/dst").await.unwrap();
    assert_eq!(b.get("cp/dst").await.unwrap().bytes, "payload");
    assert!(b.exists("cp/src").await.unwrap(), "copy keeps the source");
    b.rename("cp/src", "cp/moved").await.unwrap();
    assert!(
        !b.exists("cp/src").await.unwrap(),
        "move removes the source"
    );
    assert_eq!(b.get("cp/moved").await.unwrap().bytes, "payload");
    let e = b.copy("cp/nothing", "cp/x").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    Outcome::Passed
}

async fn presigned_get_and_put(b: &Bucket, _: &Profile) -> Outcome {
    let too_long = b
        .presign(PresignMethod::Get, "ps/a", Duration::from_secs(8 * 86400))
        .await
        .unwrap_err();
    assert!(too_long.to_string().contains("7 day"), "{too_long}");
    if !b.capabilities().presign {
        let e = b
            .presign(PresignMethod::Get, "ps/a", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::NotSupported { .. }), "{e}");
        return Outcome::Skipped(format!(
            "{} cannot presign; NotSupported verified",
            b.provider()
        ));
    }
    b.put("ps/a.txt", "presigned body").await.unwrap();
    let url = b
        .presign(PresignMethod::Get, "ps/a.txt", Duration::from_secs(300))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let resp = client
        .get(url.clone())
        .send()
        .await
        .expect("fetch presigned GET");
    assert_eq!(resp.status().as_u16(), 200, "{url}");
    assert_eq!(resp.bytes().await.unwrap(), "presigned body");
    let put_url = b
        .presign(PresignMethod::Put, "ps/up.txt", Duration::from_secs(300))
        .await
        .unwrap();
    let resp = client
        .put(put_url)
        .body("uploaded")
        .send()
        .await
        .expect("presigned PUT");
    assert!(
        resp.status().is_success(),
        "presigned PUT: {}",
        resp.status()
    );
    assert_eq!(b.get("ps/up.txt").await.unwrap().bytes, "uploaded");
    Outcome::Passed
}

async fn presigned_url_tampered_or_expired(b: &Bucket, p: &Profile) -> Outcome {
    if !p.verifies_signatures || !b.capabilities().presign {
        return Outcome::Skipped(format!("{} does not verify signatures", p.name));
    }
    b.put("ps/secret.txt", "s").await.unwrap();
    let client = reqwest::Client::new();
    let url = b
        .presign(
            PresignMethod::Get,
            "ps/secret.txt",
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    let tampered = url.as_str().replace("secret.txt", "secret.txt2");
    let resp = client.get(&tampered).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403, "a tampered URL is rejected");
    let mut sig_changed = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "X-Amz-Signature" {
                let mut s = v.to_string();
                let last = s.pop().unwrap();
                s.push(if last == '0' { '1' } else { '0' });
                s
            } else {
                v.to_string()
            };
            (k.to_string(), v)
        })
        .collect();
    sig_changed.query_pairs_mut().clear().extend_pairs(pairs);
    assert_eq!(
        client
            .get(sig_changed)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let short = b
        .presign(PresignMethod::Get, "ps/secret.txt", Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = client.get(short).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403, "an expired URL is rejected");
    Outcome::Passed
}

async fn stats_and_health(b: &Bucket, _: &Profile) -> Outcome {
    b.put("st/a", "12345").await.unwrap();
    b.put("st/b/c", "123").await.unwrap();
    let s = b.stats("st").await.unwrap();
    assert_eq!((s.objects, s.bytes), (2, 8));
    let h = b.health().await;
    assert!(h.ok, "health: {:?}", h.error);
    Outcome::Passed
}

async fn invalid_keys_rejected(b: &Bucket, _: &Profile) -> Outcome {
    for k in ["", "/abs", "a//b", "../x", "a/./b"] {
        let e = b.put(k, "x").await.unwrap_err();
        assert!(matches!(e, StorageError::InvalidKey { .. }), "{k:?}: {e}");
    }
    Outcome::Passed
}
