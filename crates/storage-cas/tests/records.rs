//! Versioned records (seed 004) and attachments.

mod common;

use serde::{Deserialize, Serialize};
use storage_cas::{Attachment, Collection, RecordLayout, VersionedRecords};
use storage_core::{Bucket, StorageError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
}

fn user(n: &str) -> User {
    User { name: n.into() }
}

#[tokio::test]
async fn commit_history_get_version_revert_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for bucket in common::every_backend(dir.path()) {
        let recs: VersionedRecords<User> = VersionedRecords::new(&bucket, "users").unwrap();
        assert!(recs.get("u1").await.unwrap().is_none());
        assert!(recs.history("u1").await.unwrap().is_empty());
        for (i, n) in ["ada", "ada l", "ada lovelace"].iter().enumerate() {
            let c = recs.commit("u1", &user(n)).await.unwrap();
            assert_eq!(c.version, i as u64);
            assert_eq!(c.attempts, 1);
        }
        // seed 004's layout
        for k in [
            "records/users/u1/head.json",
            "versions/users/u1/v0.json",
            "versions/users/u1/v1.json",
            "versions/users/u1/v2.json",
        ] {
            assert!(bucket.exists(k).await.unwrap(), "{k}");
        }
        let head = recs.get("u1").await.unwrap().unwrap();
        assert_eq!(
            (head.version, head.value.clone()),
            (2, user("ada lovelace"))
        );
        let v1 = recs.get_version("u1", 1).await.unwrap().unwrap();
        assert_eq!(v1.value, user("ada l"));
        assert!(recs.get_version("u1", 9).await.unwrap().is_none());
        let hist = recs.history("u1").await.unwrap();
        assert_eq!(
            hist.iter().map(|v| v.version).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(hist[1].key, "versions/users/u1/v1.json");

        // revert = a new version with the old value; history is never rewritten
        let r = recs.revert("u1", 0).await.unwrap();
        assert_eq!(r.version, 3);
        assert_eq!(recs.get("u1").await.unwrap().unwrap().value, user("ada"));
        assert_eq!(recs.history("u1").await.unwrap().len(), 4);
        let err = recs.revert("u1", 42).await.unwrap_err();
        assert!(
            matches!(err, StorageError::NotFound { ref key, .. } if key == "versions/users/u1/v42.json"),
            "{err}"
        );

        // another record is independent; ids are validated
        assert_eq!(recs.commit("u2", &user("bob")).await.unwrap().version, 0);
        assert!(recs.commit("../u1", &user("x")).await.is_err());

        // delete removes head and versions
        assert_eq!(recs.delete("u1").await.unwrap(), 4);
        assert!(recs.get("u1").await.unwrap().is_none());
        assert!(recs.history("u1").await.unwrap().is_empty());
        assert_eq!(recs.history("u2").await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_stalled_committer_is_helped_not_overwritten() {
    let bucket = Bucket::memory("m");
    let recs: VersionedRecords<User> = VersionedRecords::new(&bucket, "users").unwrap();
    // What a committer that stopped before moving the head leaves: version `n` alone.
    let stalled_commit = async |id: &str, n: u64, name: &str| {
        let body = format!(
            r#"{{"version":{n},"committed_at":"2026-01-01T00:00:00Z","value":{{"name":"{name}"}}}}"#
        );
        bucket
            .put(&format!("versions/users/{id}/v{n}.json"), body)
            .await
            .unwrap();
    };
    recs.commit("u", &user("v0")).await.unwrap();
    stalled_commit("u", 1, "v1").await;
    assert_eq!(
        recs.get("u").await.unwrap().unwrap().version,
        0,
        "head lags"
    );
    let c = recs.commit("u", &user("v2")).await.unwrap();
    assert_eq!(
        c.version, 2,
        "v1 is kept, the new value gets the next number"
    );
    assert_eq!(c.attempts, 2);
    assert_eq!(
        recs.get_version("u", 1).await.unwrap().unwrap().value,
        user("v1")
    );
    assert_eq!(recs.get("u").await.unwrap().unwrap().value, user("v2"));

    // Same with no head at all (the very first committer stopped after v0).
    stalled_commit("w", 0, "w0").await;
    assert_eq!(recs.commit("w", &user("w1")).await.unwrap().version, 1);
    assert_eq!(recs.history("w").await.unwrap().len(), 2);
}

#[tokio::test]
async fn custom_layout_in_two_buckets() {
    let heads = Bucket::memory("records");
    let versions = Bucket::memory("versions");
    let layout = RecordLayout {
        head: "{collection}/{tenant}/{id}/current.json".into(),
        version: "history/{collection}/{tenant}/{id}/{version}.json".into(),
    };
    let recs: VersionedRecords<User> =
        VersionedRecords::with_layout(&heads, &versions, "people", &layout).unwrap();
    recs.commit("acme/u1", &user("a")).await.unwrap();
    recs.commit("acme/u1", &user("b")).await.unwrap();
    assert!(heads.exists("people/acme/u1/current.json").await.unwrap());
    assert!(
        versions
            .exists("history/people/acme/u1/1.json")
            .await
            .unwrap()
    );
    assert!(!heads.exists("history/people/acme/u1/1.json").await.unwrap());
    assert_eq!(recs.history("acme/u1").await.unwrap().len(), 2);
    assert_eq!(recs.get("acme/u1").await.unwrap().unwrap().value, user("b"));

    for bad in [
        RecordLayout {
            head: "r/{id}.json".into(),
            version: "v/{version}/{id}.json".into(),
        },
        RecordLayout {
            head: "r/{id}.json".into(),
            version: "v/{other}/v{version}.json".into(),
        },
        RecordLayout {
            head: "r/{id}.json".into(),
            version: "v/{id}.json".into(),
        },
    ] {
        let err = VersionedRecords::<User>::with_layout(&heads, &versions, "c", &bad).unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidConfig { .. }),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("{version}"), "{err}");
    }
    let err = VersionedRecords::<User>::new(&heads, "a/b").unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err}");
}

#[tokio::test]
async fn attachments_live_beside_their_document() {
    let dir = tempfile::tempdir().unwrap();
    for bucket in common::every_backend(dir.path()) {
        let files: Collection<User> = Collection::new(&bucket, "files/{id}.json").unwrap();
        files.put("f1", &user("doc")).await.unwrap();
        let a = Attachment::new(&b"\x89PNG"[..])
            .with_content_type("image/png")
            .with_filename("Größe 100%.png")
            .with_metadata("source", "camera");
        files.put_attachment("f1", "images/cover", a).await.unwrap();
        files
            .put_attachment(
                "f1",
                "notes.txt",
                Attachment::new("hello").with_content_type("text/plain"),
            )
            .await
            .unwrap();
        assert!(
            bucket
                .exists("files/f1.json.attachments/images/cover")
                .await
                .unwrap()
        );

        let got = files
            .get_attachment("f1", "images/cover")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&got.bytes[..], b"\x89PNG");
        assert_eq!(got.content_type.as_deref(), Some("image/png"));
        assert_eq!(got.filename.as_deref(), Some("Größe 100%.png"));
        assert_eq!(
            got.metadata.get("source").map(String::as_str),
            Some("camera")
        );
        assert!(got.etag.is_some());
        let info = bucket
            .head("files/f1.json.attachments/images/cover")
            .await
            .unwrap();
        let cd = info
            .headers
            .get("content-disposition")
            .cloned()
            .unwrap_or_default();
        assert!(cd.starts_with("attachment;"), "{cd}");

        let names: Vec<String> = files
            .list_attachments("f1")
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["images/cover", "notes.txt"]);
        assert!(
            files
                .get_attachment("f1", "missing")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            files
                .put_attachment("f1", "../escape", Attachment::new("x"))
                .await
                .is_err()
        );

        // The collection's listing does not see attachments.
        use futures::TryStreamExt;
        let ids: Vec<String> = files.list().try_collect().await.unwrap();
        assert_eq!(ids, ["f1"]);

        files.delete_attachment("f1", "notes.txt").await.unwrap();
        assert_eq!(files.list_attachments("f1").await.unwrap().len(), 1);
        // Plain delete keeps attachments; delete_with_attachments removes them.
        assert_eq!(files.delete_with_attachments("f1").await.unwrap(), 1);
        assert!(files.get("f1").await.unwrap().is_none());
        assert!(files.list_attachments("f1").await.unwrap().is_empty());
    }
}
