//! The mirror outbox: writes a down primary missed are recorded durably and replayed, the
//! newer write wins, and a crash between a copy and its record loses nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Faults, faulty_bucket, faulty_over};
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use storage_core::{Bucket, LocalStore, MemoryStore, PutOpts, StorageError, StrataStore};
use storage_router::{
    MirrorRequirement, MirrorStore, OUTBOX_FOLDER, Outbox, OwedOp, ReplayMerge, ReplayNote,
    STAMP_META,
};

fn p(s: &str) -> Path {
    Path::from(s)
}

async fn text(store: &dyn ObjectStore, key: &str) -> Option<String> {
    match store.get(&p(key)).await {
        Ok(r) => Some(String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("reading {key}: {e}"),
    }
}

/// A hybrid setup: a faulty primary ("r2"), a local copy, and a journal.
struct Hybrid {
    primary: Bucket,
    pf: Arc<Faults>,
    local: Arc<dyn StrataStore>,
    journal: Arc<dyn ObjectStore>,
}

impl Hybrid {
    fn new() -> Self {
        let (primary, pf) = faulty_bucket("r2");
        Hybrid {
            primary,
            pf,
            local: Arc::new(MemoryStore::new()),
            journal: Arc::new(MemoryStore::new()),
        }
    }

    /// A mirror over the setup, as a process would open it (a fresh outbox on the journal).
    /// Without background replays, so each test's replay report is exact.
    fn open(&self) -> (MirrorStore, Outbox) {
        self.open_with(Outbox::new(self.journal.clone()).with_auto_replay(false))
    }

    /// A new setup, and a mirror over it (see [`open`](Self::open)).
    fn opened() -> (Self, MirrorStore, Outbox) {
        let h = Hybrid::new();
        let (store, outbox) = h.open();
        (h, store, outbox)
    }

    fn open_with(&self, outbox: Outbox) -> (MirrorStore, Outbox) {
        let store = MirrorStore::with_outbox(
            vec![
                ("r2".into(), self.primary.store().clone()),
                ("local".into(), self.local.clone()),
            ],
            MirrorRequirement::Any,
            outbox.clone(),
        );
        (store, outbox)
    }

    fn primary(&self) -> &dyn ObjectStore {
        self.primary.store().as_ref()
    }
}

/// The keys a replay report's notes name.
fn keys(notes: &[ReplayNote]) -> Vec<&str> {
    notes.iter().map(|n| n.key.as_str()).collect()
}

#[tokio::test]
async fn writes_while_the_primary_is_down_are_owed_and_replayed() {
    let (h, store, outbox) = Hybrid::opened();
    // Before the outage: both copies.
    store.put(&p("old.txt"), "v0".into()).await.unwrap();
    store.put(&p("gone.txt"), "bye".into()).await.unwrap();
    assert!(outbox.pending().await.unwrap().is_empty());

    h.pf.set_down(true);
    store.put(&p("old.txt"), "v1".into()).await.unwrap();
    let mut attrs = Attributes::new();
    attrs.insert(Attribute::ContentType, "application/json".into());
    let opts = PutOptions {
        attributes: attrs,
        ..Default::default()
    };
    store
        .put_opts(&p("new.json"), PutPayload::from("{\"a\":1}"), opts)
        .await
        .unwrap();
    store.delete(&p("gone.txt")).await.unwrap();
    store.copy(&p("new.json"), &p("copy.json")).await.unwrap();

    let pending = outbox.pending().await.unwrap();
    let summary: Vec<(OwedOp, Vec<String>, Vec<String>, bool)> = pending
        .iter()
        .map(|e| (e.op, e.keys.clone(), e.owed_to.clone(), e.intent))
        .collect();
    let r2 = vec!["r2".to_string()];
    assert_eq!(
        summary,
        vec![
            (OwedOp::Put, vec!["old.txt".into()], r2.clone(), false),
            (OwedOp::Put, vec!["new.json".into()], r2.clone(), false),
            (OwedOp::Delete, vec!["gone.txt".into()], r2.clone(), false),
            (OwedOp::Copy, vec!["copy.json".into()], r2.clone(), false),
        ]
    );
    assert!(pending.iter().all(|e| e.held_by.as_deref() != Some("r2")));
    // While down, a replay delivers nothing and keeps everything.
    let r = outbox.replay().await.unwrap();
    assert_eq!((r.delivered, r.pending), (0, 4), "{r:?}");
    assert_eq!(r.unavailable, vec!["r2".to_string()]);

    h.pf.set_down(false);
    let r = outbox.replay().await.unwrap();
    assert_eq!(
        (r.delivered, r.pending, r.superseded, r.entries),
        (4, 0, 0, 4),
        "{r:?}"
    );
    assert!(r.is_clean(), "{r:?}");
    assert_eq!(text(h.primary(), "old.txt").await.as_deref(), Some("v1"));
    assert_eq!(
        text(h.primary(), "new.json").await.as_deref(),
        Some("{\"a\":1}")
    );
    assert_eq!(
        text(h.primary(), "copy.json").await.as_deref(),
        Some("{\"a\":1}")
    );
    assert_eq!(text(h.primary(), "gone.txt").await, None);
    // Attributes travel with the bytes, and the copy is the same write on both sides.
    let got = h.primary().get(&p("new.json")).await.unwrap();
    assert_eq!(
        got.attributes
            .get(&Attribute::ContentType)
            .map(|v| v.as_ref()),
        Some("application/json")
    );
    let local = h.local.get(&p("new.json")).await.unwrap();
    let stamp = Attribute::Metadata(STAMP_META.into());
    assert_eq!(got.attributes.get(&stamp), local.attributes.get(&stamp));
    assert!(outbox.pending().await.unwrap().is_empty());
    // Idempotent: a second replay has nothing to do.
    let again = outbox.replay().await.unwrap();
    assert_eq!((again.entries, again.delivered), (0, 0));
}

#[tokio::test]
async fn a_newer_primary_write_is_never_overwritten() {
    let (h, store, outbox) = Hybrid::opened();
    h.pf.set_down(true);
    store
        .put(&p("doc"), "written during the outage".into())
        .await
        .unwrap();
    store
        .put(&p("tie"), "same millisecond".into())
        .await
        .unwrap();
    // Written twice during the outage: the first entry is superseded by the second.
    store.put(&p("twice"), "x".into()).await.unwrap();
    store.put(&p("twice"), "y".into()).await.unwrap();
    let entries = outbox.pending().await.unwrap();
    assert_eq!(entries.len(), 4);
    h.pf.set_down(false);

    // After the primary came back, other writers wrote straight to it: one with a later
    // stamp (another Strata process), one whose stamp has the owed write's millisecond.
    let later = format!("{:013}-other-1", entries[0].time.timestamp_millis() + 5);
    let same = format!("{:013}-other-2", entries[1].time.timestamp_millis());
    for (key, stamp, body) in [("doc", later, "newer"), ("tie", same, "rival")] {
        let mut attrs = Attributes::new();
        attrs.insert(Attribute::Metadata(STAMP_META.into()), stamp.into());
        let opts = PutOptions {
            attributes: attrs,
            ..Default::default()
        };
        h.primary()
            .put_opts(&p(key), PutPayload::from(body), opts)
            .await
            .unwrap();
    }

    let r = outbox.replay().await.unwrap();
    assert_eq!(r.delivered, 1, "{r:?}");
    assert_eq!(r.superseded, 1, "{r:?}");
    assert_eq!(keys(&r.kept_newer), ["doc"]);
    assert_eq!(keys(&r.undecided), ["tie"]);
    assert_eq!(r.pending, 1, "the undecided write stays owed: {r:?}");
    assert_eq!(text(h.primary(), "doc").await.as_deref(), Some("newer"));
    assert_eq!(text(h.primary(), "tie").await.as_deref(), Some("rival"));
    assert_eq!(text(h.primary(), "twice").await.as_deref(), Some("y"));
    let left = outbox.pending().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].keys, vec!["tie".to_string()]);
}

#[tokio::test]
async fn an_older_primary_copy_is_replaced_and_a_tombstone_keeps_a_newer_write() {
    let (h, store, outbox) = Hybrid::opened();
    store.put(&p("k"), "before".into()).await.unwrap();
    store.put(&p("d"), "to delete".into()).await.unwrap();
    h.pf.set_down(true);
    store.put(&p("k"), "during".into()).await.unwrap();
    store.delete(&p("d")).await.unwrap();
    h.pf.set_down(false);
    // `d` is written again on the primary after the delete (a later stamp).
    let t = outbox.pending().await.unwrap()[1].time.timestamp_millis();
    let mut attrs = Attributes::new();
    attrs.insert(
        Attribute::Metadata(STAMP_META.into()),
        format!("{:013}-other-0", t + 1).into(),
    );
    let opts = PutOptions {
        attributes: attrs,
        ..Default::default()
    };
    h.primary()
        .put_opts(&p("d"), PutPayload::from("again"), opts)
        .await
        .unwrap();

    let r = outbox.replay().await.unwrap();
    assert_eq!(r.delivered, 1, "{r:?}");
    assert_eq!(r.kept_newer.len(), 1, "{r:?}");
    assert_eq!(text(h.primary(), "k").await.as_deref(), Some("during"));
    assert_eq!(text(h.primary(), "d").await.as_deref(), Some("again"));
    assert!(r.is_clean());
}

#[tokio::test]
async fn a_crash_between_the_local_copy_and_its_record_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (primary, pf) = faulty_bucket("r2");
    let local: Arc<dyn StrataStore> = Arc::new(LocalStore::new(dir.path().join("local")).unwrap());
    let journal_root = dir.path().join("outbox");
    let open = |outbox: Outbox| {
        MirrorStore::with_outbox(
            vec![
                ("r2".into(), primary.store().clone()),
                ("local".into(), local.clone()),
            ],
            MirrorRequirement::Any,
            outbox,
        )
    };
    // The primary hangs: the write reaches the local copy and then the process "dies"
    // (the task is aborted) before the outcome can be recorded.
    pf.set_latency(Duration::from_secs(3600));
    let store = open(Outbox::local(&journal_root).unwrap());
    let writer = tokio::spawn(async move { store.put(&p("precious"), "only copy".into()).await });
    while text(local.as_ref(), "precious").await.is_none() {
        tokio::task::yield_now().await;
    }
    // The order: the intent was durable before the local copy existed.
    let journal = Outbox::local(&journal_root).unwrap();
    let seen = journal.pending().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].intent && seen[0].keys == vec!["precious".to_string()]);
    writer.abort();
    assert!(writer.await.unwrap_err().is_cancelled());

    // "Restart": a new process opens the same journal with the primary answering.
    pf.set_latency(Duration::ZERO);
    let outbox = Outbox::local(&journal_root).unwrap();
    let _store = open(outbox.clone());
    let r = outbox.replay().await.unwrap();
    assert_eq!((r.delivered, r.pending), (1, 0), "{r:?}");
    assert_eq!(
        text(primary.store().as_ref(), "precious").await.as_deref(),
        Some("only copy")
    );
    assert!(outbox.pending().await.unwrap().is_empty());
    // The journal is ordinary files under the outbox folder, now gone.
    assert!(
        !journal_root
            .join(OUTBOX_FOLDER)
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}

#[tokio::test]
async fn an_intent_that_landed_nowhere_is_dropped() {
    let h = Hybrid::new();
    // Both copies hang: the write is aborted before reaching either.
    h.pf.set_latency(Duration::from_secs(3600));
    let (lb, lf) = faulty_over("local", h.local.clone());
    lf.set_latency(Duration::from_secs(3600));
    let outbox = Outbox::new(h.journal.clone());
    let store = MirrorStore::with_outbox(
        vec![
            ("r2".into(), h.primary.store().clone()),
            ("local".into(), lb.store().clone()),
        ],
        MirrorRequirement::Any,
        outbox.clone(),
    );
    let writer = tokio::spawn(async move { store.put(&p("never"), "x".into()).await });
    while outbox.pending().await.unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    writer.abort();
    let _ = writer.await;
    h.pf.set_latency(Duration::ZERO);
    lf.set_latency(Duration::ZERO);
    let (_store, fresh) = h.open();
    let r = fresh.replay().await.unwrap();
    assert_eq!((r.superseded, r.delivered, r.pending), (1, 0, 0), "{r:?}");
    assert_eq!(text(h.primary(), "never").await, None);
}

#[tokio::test]
async fn conditional_writes_are_decided_by_the_local_copy_while_the_primary_is_down() {
    let (h, store, outbox) = Hybrid::opened();
    let bucket = Bucket::builder("hybrid", Arc::new(store)).build();
    h.pf.set_down(true);
    let w = bucket
        .put_with("doc.json", "1", PutOpts::if_absent())
        .await
        .unwrap();
    // A stale compare-and-swap is refused by the copy deciding it, as a conflict.
    let err = bucket
        .put_with("doc.json", "2", PutOpts::if_match("\"stale\""))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let etag = w.etag.clone().unwrap();
    bucket
        .put_with("doc.json", "2", PutOpts::if_match(etag))
        .await
        .unwrap();
    let err = bucket
        .put_with("doc.json", "3", PutOpts::if_absent())
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
    // Two writes owed; the first was found superseded by the second when the third write
    // settled the key first (the refused writes owe nothing).
    let owed = outbox.pending().await.unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0].owed_to, vec!["r2".to_string()]);

    h.pf.set_down(false);
    let r = outbox.replay().await.unwrap();
    assert_eq!((r.delivered, r.superseded, r.pending), (1, 0, 0), "{r:?}");
    assert_eq!(text(h.primary(), "doc.json").await.as_deref(), Some("2"));
}

#[tokio::test]
async fn the_primary_answering_again_replays_in_the_background() {
    let h = Hybrid::new();
    let (store, outbox) = h.open_with(Outbox::new(h.journal.clone()));
    h.pf.set_down(true);
    store.put(&p("a"), "1".into()).await.unwrap();
    // A health check while down changes nothing.
    let bucket = Bucket::builder("hybrid", Arc::new(store.clone())).build();
    assert!(bucket.health().await.ok, "the local copy answers the probe");
    outbox.idle().await;
    assert_eq!(outbox.pending().await.unwrap().len(), 1);

    h.pf.set_down(false);
    // Any call the primary answers (here a health check) starts the replay.
    assert!(bucket.health().await.ok);
    outbox.idle().await;
    assert!(outbox.pending().await.unwrap().is_empty());
    assert_eq!(text(h.primary(), "a").await.as_deref(), Some("1"));
}

/// A toy mergeable document: a JSON array of strings naming keys (like a manifest head
/// listing segments).
#[derive(Debug)]
struct ListMerge;

impl ReplayMerge for ListMerge {
    fn applies(&self, key: &str) -> bool {
        key.ends_with("index.json")
    }
    fn missing_references(
        &self,
        _key: &str,
        ours: &[u8],
        theirs: Option<&[u8]>,
    ) -> storage_core::Result<Vec<String>> {
        let ours: Vec<String> = serde_json::from_slice(ours).unwrap();
        let theirs: Vec<String> = theirs
            .map(|t| serde_json::from_slice(t).unwrap())
            .unwrap_or_default();
        Ok(ours.into_iter().filter(|k| !theirs.contains(k)).collect())
    }
    fn merge(
        &self,
        _key: &str,
        ours: &[u8],
        theirs: &[u8],
        present: &dyn Fn(&str) -> bool,
    ) -> storage_core::Result<Vec<u8>> {
        let ours: Vec<String> = serde_json::from_slice(ours).unwrap();
        let mut merged: Vec<String> = serde_json::from_slice(theirs).unwrap();
        for k in ours {
            if !merged.contains(&k) && present(&k) {
                merged.push(k);
            }
        }
        Ok(serde_json::to_vec(&merged).unwrap())
    }
}

#[tokio::test]
async fn mergeable_documents_are_merged_not_overwritten() {
    let h = Hybrid::new();
    let (store, outbox) = h.open_with(
        Outbox::new(h.journal.clone())
            .with_auto_replay(false)
            .with_merge(Arc::new(ListMerge)),
    );
    for k in ["seg/1", "seg/folded"] {
        store.put(&p(k), "x".into()).await.unwrap();
    }
    store
        .put(&p("index.json"), r#"["seg/1","seg/folded"]"#.into())
        .await
        .unwrap();
    h.pf.set_down(true);
    store.put(&p("seg/2"), "x".into()).await.unwrap();
    store
        .put(&p("index.json"), r#"["seg/1","seg/folded","seg/2"]"#.into())
        .await
        .unwrap();
    h.pf.set_down(false);
    // Meanwhile on the primary: another writer appended seg/3, and a compaction folded
    // seg/folded into part/1 and deleted it.
    h.primary().put(&p("seg/3"), "x".into()).await.unwrap();
    h.primary().put(&p("part/1"), "x".into()).await.unwrap();
    h.primary().delete(&p("seg/folded")).await.unwrap();
    h.primary()
        .put(&p("index.json"), r#"["part/1","seg/1","seg/3"]"#.into())
        .await
        .unwrap();

    let r = outbox.replay().await.unwrap();
    assert_eq!((r.delivered, r.merged, r.pending), (1, 1, 0), "{r:?}");
    assert_eq!(
        text(h.primary(), "index.json").await.as_deref(),
        Some(r#"["part/1","seg/1","seg/3","seg/2"]"#)
    );
    // The holder keeps its own document: the merged one lists part/1 and seg/3, which only
    // the primary has.
    assert_eq!(
        text(h.local.as_ref(), "index.json").await.as_deref(),
        Some(r#"["seg/1","seg/folded","seg/2"]"#)
    );
}
