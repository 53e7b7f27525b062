//! Seed 003's hybrid mode with R2 down: writes succeed on the local folder, are owed in the
//! outbox, and reach R2 (moto behind a fault proxy that refuses every connection while "down")
//! by replay: bytes on R2, a newer R2 write kept, a dataset merged into R2's manifest.

use std::time::Duration;

use serde_json::json;
use storage_core::config::Env;
use storage_core::{Bucket, PutOpts};
use strata::Strata;
use strata::manifest::{Dataset, Format, SearchQuery};
use strata_testkit::fault_proxy::{Fault, FaultPlan, FaultProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_writes_while_r2_is_down_reach_r2_by_replay() {
    let Some(server) = strata_testkit::moto_env() else {
        return;
    };
    // Every request is refused (the connection reset) while the rate is 1.
    let proxy = FaultProxy::start(
        &server.endpoint,
        FaultPlan::only(Fault::ResetBefore, Duration::ZERO),
    )
    .await
    .unwrap();
    proxy.set_rate(0.0);
    let home = tempfile::tempdir().unwrap();
    let endpoint = proxy.endpoint();
    let env = Env::from_pairs([
        ("STORAGE_BACKEND", "hybrid"),
        ("R2_ENDPOINT", endpoint.as_str()),
        ("R2_ACCOUNT_ID", "0123456789abcdef0123456789abcdef"),
        ("R2_ACCESS_KEY_ID", server.access_key.as_str()),
        ("R2_SECRET_ACCESS_KEY", server.secret_key.expose()),
        ("R2_BUCKET", server.bucket.as_str()),
        ("STORAGE_MAX_RETRIES", "0"),
        ("STRATA_HOME", home.path().to_str().unwrap()),
    ]);
    let strata = Strata::from_env_vars(&env).unwrap();
    let hybrid = strata.bucket("default").unwrap();
    let outbox = strata.outbox("default").unwrap();
    assert_eq!(
        outbox.members(),
        vec!["r2".to_string(), "local".to_string()]
    );
    // R2 itself, straight to moto: what "R2" holds, and another machine writing to it.
    let r2 = strata_testkit::s3_config(&server)
        .build("r2-direct")
        .unwrap();

    let run = strata_testkit::run_prefix("hybrid-outbox");
    let key = |k: &str| format!("{run}/{k}");
    let module = format!("outbox{:08x}", fastrand::u32(..));
    let user = "u1";
    let ds = Dataset::new(hybrid.clone());
    // One JSONL row written to `ds`'s dataset of this run's module and user.
    let write_row = async |ds: &Dataset, t: &str, d: &str| {
        let row = json!({"timestamp": t, "description": d});
        ds.write(&module, user, &[row], Format::Jsonl)
            .await
            .unwrap()
    };

    // Before the outage: both copies.
    hybrid.put(key("kept.txt"), "v0").await.unwrap();
    hybrid.put(key("gone.txt"), "delete me").await.unwrap();
    write_row(&ds, "2026-01-01T00:00:00Z", "before outage").await;
    assert!(outbox.pending().await.unwrap().is_empty());

    proxy.set_rate(1.0);
    // R2 is down: writes, a delete, a document and a dataset all succeed locally.
    hybrid
        .put(key("a.txt"), "written while down")
        .await
        .unwrap();
    hybrid
        .put(key("kept.txt"), "v1 (older than R2's next write)")
        .await
        .unwrap();
    hybrid.delete(key("gone.txt")).await.unwrap();
    hybrid
        .put_with(key("doc.json"), "{\"n\":1}", PutOpts::if_absent())
        .await
        .unwrap();
    let written = write_row(&ds, "2026-01-02T00:00:00Z", "during outage coffee").await;
    assert!(hybrid.exists(&written.key).await.unwrap());
    let owed = outbox.pending().await.unwrap();
    assert!(
        owed.iter()
            .all(|e| e.owed_to == vec!["r2".to_string()] && !e.intent),
        "{owed:?}"
    );
    let owed_keys: Vec<&str> = owed
        .iter()
        .flat_map(|e| e.keys.iter().map(String::as_str))
        .collect();
    for k in [
        key("a.txt"),
        key("gone.txt"),
        key("doc.json"),
        written.key.clone(),
    ] {
        assert!(
            owed_keys.contains(&k.as_str()),
            "{k} not owed: {owed_keys:?}"
        );
    }
    assert!(
        owed_keys.iter().any(|k| k.ends_with("/head.json")),
        "{owed_keys:?}"
    );
    let r = outbox.replay().await.unwrap();
    assert_eq!(
        (r.delivered, r.unavailable.clone()),
        (0, vec!["r2".to_string()]),
        "{r:?}"
    );
    assert_eq!(r.pending, owed.len());

    proxy.set_rate(0.0);
    // Back up. Another machine writes to R2 first: a newer `kept.txt` (a later second than
    // the owed write: R2 reports whole seconds) and an append to the same manifest.
    let owed_at = owed
        .iter()
        .find(|e| e.keys == vec![key("kept.txt")])
        .unwrap()
        .time;
    let next_second = owed_at.timestamp() + 1;
    while chrono::Utc::now().timestamp() < next_second {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    r2.put(key("kept.txt"), "v2 written to R2 after it came back")
        .await
        .unwrap();
    let other = Dataset::new(r2.clone());
    write_row(&other, "2026-01-03T00:00:00Z", "other machine").await;

    let r = outbox.replay().await.unwrap();
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(r.merged, 1, "the manifest head is merged: {r:?}");
    assert_eq!(
        r.kept_newer
            .iter()
            .map(|n| n.key.clone())
            .collect::<Vec<_>>(),
        vec![key("kept.txt")],
        "{r:?}"
    );
    assert!(outbox.pending().await.unwrap().is_empty());

    // Every owed object is on R2 with the local copy's bytes; the newer R2 write is kept.
    let local = Bucket::local("local", home.path().join("default")).unwrap();
    for k in [key("a.txt"), key("doc.json"), written.key.clone()] {
        let on_r2 = r2.get(&k).await.unwrap();
        assert_eq!(on_r2.bytes, local.get(&k).await.unwrap().bytes, "{k}");
        assert_eq!(on_r2.info.size, on_r2.bytes.len() as u64);
    }
    assert_eq!(
        r2.get(key("kept.txt")).await.unwrap().bytes,
        "v2 written to R2 after it came back"
    );
    assert!(!r2.exists(key("gone.txt")).await.unwrap());

    // The dataset, searched on R2 alone: every entry, once.
    let on_r2 = Dataset::new(r2.clone());
    let entries = on_r2
        .manifest(&module, user)
        .unwrap()
        .entries()
        .await
        .unwrap();
    let mut keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!((entries.len(), keys.len()), (3, 3), "{entries:?}");
    assert!(keys.contains(&written.key.as_str()));
    for needle in ["before outage", "during outage coffee", "other machine"] {
        let found = on_r2
            .search(&module, user, &SearchQuery::new(needle))
            .await
            .unwrap();
        assert_eq!(found.total, 1, "{needle}: {keys:?}");
    }
    // The local copy keeps its own head (the merged one lists a segment only R2 has), whole:
    // every entry it lists is there.
    let local_ds = Dataset::new(local.clone());
    for (needle, n) in [
        ("during outage coffee", 1),
        ("before outage", 1),
        ("other machine", 0),
    ] {
        let found = local_ds
            .search(&module, user, &SearchQuery::new(needle))
            .await
            .unwrap();
        assert_eq!(found.total, n, "{needle}");
    }
}
