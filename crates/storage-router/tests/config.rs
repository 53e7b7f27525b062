//! Configuration: validation errors (file + field + what is allowed), route resolution
//! order, legacy single-bucket equivalence, tenants that cannot escape.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use storage_core::{Bucket, ObjectInfo, StorageError};
use storage_router::{BUILTIN_ROUTES, Router, RouterConfig, layout};

const ORIGIN: &str = "conf/strata.toml";

fn buckets(names: &[&str]) -> BTreeMap<String, Bucket> {
    names
        .iter()
        .map(|n| (n.to_string(), Bucket::memory(*n)))
        .collect()
}

fn build(toml: &str, names: &[&str]) -> storage_core::Result<Router> {
    let cfg = RouterConfig::from_toml_str(toml, ORIGIN)?;
    Router::new(
        buckets(names),
        BTreeMap::new(),
        BTreeMap::new(),
        &cfg,
        ORIGIN,
    )
}

#[test]
fn config_errors_name_file_field_and_what_is_allowed() {
    // (toml, field path the message must name, another phrase it must contain)
    let cases: &[(&str, &str, &str)] = &[
        (
            "[routes.records]\nbucket = \"nope\"",
            "routes.records.bucket",
            "known buckets: `archive`, `main`",
        ),
        (
            "[routes.records]\nbucket = \"main\"\ncolour = \"red\"",
            "conf/strata.toml:3: routes.records.colour",
            "unknown field `colour`",
        ),
        ("bucket = \"ghost\"", "bucket", "known buckets"),
        (
            "[routes.records]\nbucket = \"main\"\nprefix = \"../up\"",
            "routes.records.prefix",
            "`..`",
        ),
        (
            "[routes.records]\nbucket = \"main\"\nprefix = \"/abs\"",
            "routes.records.prefix",
            "start with `/`",
        ),
        (
            "[routes.\"bad name!\"]\nbucket = \"main\"",
            "routes.bad name!",
            "letters, digits",
        ),
        (
            "[routes.a]\nbucket = \"main\"\nprefix = \"data\"\n[routes.b]\nbucket = \"main\"\nprefix = \"data/b\"",
            "routes.b.prefix",
            "overlaps route `a`",
        ),
        (
            "[routes.custom]\nprefix = \"x\"",
            "routes.custom.bucket",
            "no bucket for data type `custom`",
        ),
        (
            "[sources.tide]\nbuckets = []",
            "sources.tide.buckets",
            "at least one bucket",
        ),
        (
            "[sources.tide]\nbuckets = [\"main\", \"nope\"]",
            "sources.tide.buckets[1]",
            "known buckets",
        ),
        (
            "[sources.tide]\nbuckets = [\"main\", \"main\"]",
            "sources.tide.buckets[1]",
            "listed twice",
        ),
        (
            "[sources.tide]\nbuckets = [\"main\"]\npolicy = \"fastest\"",
            "conf/strata.toml:3: sources.tide.policy",
            "sequential",
        ),
        (
            "[sources.tide]\nbuckets = [\"main\"]\nhedge_delay = \"50ms\"",
            "sources.tide.hedge_delay",
            "policy = \"hedged\"",
        ),
        (
            "[sources.tide]\nbuckets = [\"main\"]\npolicy = \"hedged\"\nhedge_delay = \"soon\"",
            "conf/strata.toml:4: sources.tide.hedge_delay",
            "not a duration",
        ),
        ("[tenants.acme]", "tenants.acme", "a `prefix`"),
        (
            "[tenants.acme]\nprefix = \"t/acme\"",
            "tenants.acme.bucket",
            "known buckets",
        ),
        (
            "[routes.records]\nbucket = \"main\"\n[tenants.acme]\nbucket = \"main\"\nprefix = \"records/acme\"",
            "tenants.acme.prefix",
            "overlaps route `records`",
        ),
        (
            "[routes.records]\nbucket = \"main\"\n[routes.records.offload]\nafter_days = 0\nbucket = \"archive\"",
            "routes.records.offload.after_days",
            "at least 1",
        ),
        (
            "[routes.records]\nbucket = \"main\"\n[routes.records.offload]\nafter_days = 30",
            "routes.records.offload",
            "storage_class",
        ),
        (
            "[routes.records]\nbucket = \"main\"\n[routes.records.offload]\nafter_days = 30\nbucket = \"cold\"",
            "routes.records.offload.bucket",
            "`archive`, `main`",
        ),
        (
            "[routes.records]\nbucket = \"main\"\n[routes.records.offload]\nafter_days = 30\nstorage_class = \"glacier\"",
            "routes.records.offload.storage_class",
            "GLACIER_IR",
        ),
        (
            "[routes.records]\nconnection = \"aws\"",
            "routes.records.connection",
            "unknown connection `aws`",
        ),
    ];
    assert!(cases.len() >= 10);
    for (toml, field, phrase) in cases {
        let err = match build(toml, &["main", "archive"]) {
            Ok(_) => panic!("accepted:\n{toml}"),
            Err(e) => e,
        };
        assert!(
            matches!(err, StorageError::InvalidConfig { .. }),
            "{toml}\n→ not InvalidConfig: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(ORIGIN),
            "{toml}\n→ does not name the file: {msg}"
        );
        assert!(
            msg.contains(field),
            "{toml}\n→ does not name `{field}`: {msg}"
        );
        assert!(msg.contains(phrase), "{toml}\n→ lacks `{phrase}`: {msg}");
    }
}

#[test]
fn route_resolution_order() {
    let names = ["own", "typed", "legacy"];
    let bucket_connections: BTreeMap<String, String> = names
        .iter()
        .map(|n| (n.to_string(), "s3-primary".to_string()))
        .collect();
    let type_buckets = BTreeMap::from([(
        "s3-primary".to_string(),
        BTreeMap::from([
            ("versions".to_string(), "typed".to_string()),
            ("records".to_string(), "typed".to_string()),
        ]),
    )]);
    let cfg = RouterConfig::from_toml_str(
        "bucket = \"legacy\"\n[routes.records]\nbucket = \"own\"\n",
        ORIGIN,
    )
    .unwrap();
    let r = Router::new(
        buckets(&names),
        bucket_connections,
        type_buckets,
        &cfg,
        ORIGIN,
    )
    .unwrap();
    // 1. the route's own bucket beats the connection's per-type bucket
    assert_eq!(r.route_info("records").unwrap().bucket().name(), "own");
    // 2. the connection's per-type bucket beats the legacy bucket
    assert_eq!(r.route_info("versions").unwrap().bucket().name(), "typed");
    // 3. the legacy bucket for the rest
    assert_eq!(r.route_info("content").unwrap().bucket().name(), "legacy");
    assert_eq!(r.route_info("logs").unwrap().prefix(), "logs");
    let info = r.info();
    assert_eq!(info.legacy_bucket.as_deref(), Some("legacy"));
    assert_eq!(info.buckets[0].connection.as_deref(), Some("s3-primary"));
}

#[test]
fn per_type_bucket_must_exist() {
    let type_buckets = BTreeMap::from([(
        "s3".to_string(),
        BTreeMap::from([("records".to_string(), "gone".to_string())]),
    )]);
    let err = Router::new(
        buckets(&["main"]),
        BTreeMap::new(),
        type_buckets,
        &RouterConfig::default(),
        ORIGIN,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(ORIGIN) && err.contains("connections.s3.type_buckets.records"),
        "{err}"
    );
    assert!(err.contains("`main`"), "{err}");
}

#[test]
fn unknown_route_bucket_and_source_list_the_valid_names() {
    let r = build(
        "[routes.records]\nbucket = \"a\"\n[sources.s]\nbuckets = [\"a\", \"b\"]",
        &["a", "b"],
    )
    .unwrap();
    let e = r.bucket("TIDES_SERVER_004").unwrap_err();
    assert!(matches!(e, StorageError::InvalidInput { .. }));
    assert!(e.to_string().contains("`a`, `b`"), "{e}");
    let e = r.route("recrods").unwrap_err().to_string();
    assert!(e.contains("`records`"), "{e}");
    let e = r.source("nope").unwrap_err().to_string();
    assert!(e.contains("`s`"), "{e}");
    // A built-in route with no bucket anywhere explains how to configure one.
    let e = r.route("versions").unwrap_err();
    assert!(matches!(e, StorageError::InvalidConfig { .. }));
    assert!(e.to_string().contains("routes.versions.bucket"), "{e}");
}

async fn keys(b: &Bucket) -> Vec<String> {
    let mut v: Vec<ObjectInfo> = b.list("").try_collect().await.unwrap();
    v.sort_by(|a, b| a.key.cmp(&b.key));
    v.into_iter().map(|o| o.key).collect()
}

#[tokio::test]
async fn legacy_single_bucket_behaves_like_explicit_routes() {
    let legacy = build("bucket = \"data\"", &["data", "other"]).unwrap();
    let explicit_toml: String = BUILTIN_ROUTES
        .iter()
        .map(|r| format!("[routes.{r}]\nbucket = \"data\"\nprefix = \"{r}\"\n"))
        .collect();
    let explicit = build(&explicit_toml, &["data", "other"]).unwrap();
    for router in [&legacy, &explicit] {
        for route in BUILTIN_ROUTES {
            let r = router.route_info(route).unwrap();
            assert_eq!(r.bucket().name(), "data");
            assert_eq!(r.prefix(), route);
        }
        router
            .route("records")
            .unwrap()
            .put(&layout::record_head("users", "42").unwrap(), "{}")
            .await
            .unwrap();
        router
            .route("versions")
            .unwrap()
            .put(&layout::record_version("users", "42", 0).unwrap(), "{}")
            .await
            .unwrap();
        router
            .route("content")
            .unwrap()
            .put(
                &layout::content_blob("users", "42", "avatar").unwrap(),
                "png",
            )
            .await
            .unwrap();
    }
    let a = keys(legacy.bucket("data").unwrap()).await;
    let b = keys(explicit.bucket("data").unwrap()).await;
    assert_eq!(a, b);
    assert_eq!(
        a,
        [
            "content/users/42/avatar/blob.bin",
            "records/users/42/head.json",
            "versions/users/42/v0.json"
        ]
    );
    // The seed's layout, read back through the route.
    let got = legacy
        .route("records")
        .unwrap()
        .get("users/42/head.json")
        .await
        .unwrap();
    assert_eq!(
        got.info.key, "users/42/head.json",
        "keys come back relative"
    );
}

#[tokio::test]
async fn one_bucket_and_no_config_routes_everything_there() {
    let r = build("", &["only"]).unwrap();
    for route in BUILTIN_ROUTES {
        assert_eq!(r.route_info(route).unwrap().bucket().name(), "only");
    }
}

#[tokio::test]
async fn custom_prefixes_and_user_defined_types() {
    let r = build(
        "[routes.records]\nbucket = \"main\"\nprefix = \"r\"\n[routes.thumbnails]\nbucket = \"media\"\n[routes.everything]\nbucket = \"scratch\"\nprefix = \"\"",
        &["main", "media", "scratch"],
    )
    .unwrap();
    // (route, key written through it, bucket, where the object lands there)
    let cases = [
        ("records", "a/head.json", "main", "r/a/head.json"),
        ("thumbnails", "x.png", "media", "thumbnails/x.png"),
        ("everything", "top.txt", "scratch", "top.txt"),
    ];
    for (route, key, _, _) in cases {
        r.route(route).unwrap().put(key, route).await.unwrap();
    }
    for (route, _, bucket, stored) in cases {
        let there = r.bucket(bucket).unwrap().exists(stored).await.unwrap();
        assert!(there, "{route}: {bucket}:{stored}");
    }
    let listed: Vec<ObjectInfo> = r
        .route("records")
        .unwrap()
        .list("")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed[0].key, "a/head.json");
}

#[tokio::test]
async fn routed_keys_cannot_escape_their_prefix() {
    let r = build("[routes.records]\nbucket = \"main\"", &["main"]).unwrap();
    let records = r.route("records").unwrap();
    for bad in [
        "../versions/x",
        "a/../../b",
        "/etc/passwd",
        "",
        "a//b",
        "./a",
    ] {
        let err = records.put(bad, "x").await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidKey { .. }),
            "{bad}: {err}"
        );
    }
    assert!(keys(r.bucket("main").unwrap()).await.is_empty());
}

#[tokio::test]
async fn tenants_cannot_reach_outside_their_scope() {
    let r = build(
        "[tenants.acme]\nbucket = \"shared\"\nprefix = \"tenants/acme\"\n[tenants.globex]\nbucket = \"shared\"\nprefix = \"tenants/globex\"\n[tenants.solo]\nbucket = \"solo-bucket\"",
        &["shared", "solo-bucket"],
    )
    .unwrap();
    let shared = r.bucket("shared").unwrap().clone();
    shared
        .put("tenants/globex/secret.txt", "globex data")
        .await
        .unwrap();
    shared.put("root-secret.txt", "root").await.unwrap();
    let acme = r.tenant("acme").unwrap();
    let escapes = [
        "../globex/secret.txt",
        "..%2Fglobex%2Fsecret.txt",
        "%2e%2e/globex/secret.txt",
        "..%2fglobex/secret.txt",
        "a/../../globex/secret.txt",
        "/tenants/globex/secret.txt",
        "/root-secret.txt",
        "..\\globex\\secret.txt",
        "x%5C..%5Cy",
        "",
        "a//b",
    ];
    for key in escapes {
        let put = acme.put(key, "overwrite").await.unwrap_err();
        assert!(
            matches!(put, StorageError::InvalidKey { .. }),
            "put {key:?}: {put}"
        );
        let get = acme.get(key).await.unwrap_err();
        assert!(
            matches!(get, StorageError::InvalidKey { .. }),
            "get {key:?}: {get}"
        );
        assert!(acme.delete(key).await.is_err(), "delete {key:?}");
    }
    // Listing with a hostile prefix is rejected too, and a normal listing sees only acme.
    assert!(
        acme.list("../globex")
            .try_collect::<Vec<_>>()
            .await
            .is_err()
    );
    acme.put("mine.txt", "acme").await.unwrap();
    let listed: Vec<ObjectInfo> = acme.list("").try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key, "mine.txt");
    assert_eq!(
        shared.get("tenants/globex/secret.txt").await.unwrap().bytes,
        "globex data"
    );
    // The tenant's store view is confined the same way.
    let store = acme.store();
    let seen: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert_eq!(seen.len(), 1);
    // A tenant with its own bucket lives at that bucket's root.
    let solo = r.tenant("solo").unwrap();
    solo.put("a.txt", "1").await.unwrap();
    assert!(
        r.bucket("solo-bucket")
            .unwrap()
            .exists("a.txt")
            .await
            .unwrap()
    );
    assert!(solo.put("../x", "1").await.is_err());
    assert!(
        r.tenant("initech")
            .unwrap_err()
            .to_string()
            .contains("`acme`")
    );
}

#[test]
fn tenants_may_not_overlap_each_other() {
    let err = build(
        "[tenants.a]\nbucket = \"s\"\nprefix = \"t/a\"\n[tenants.b]\nbucket = \"s\"\nprefix = \"t/a/b\"",
        &["s"],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("tenants.b.prefix") && err.contains("overlaps tenant `a`"),
        "{err}"
    );
}

#[test]
fn info_lists_routes_sources_tenants_and_providers() {
    let r = build(
        "[routes.records]\nbucket = \"agent\"\n[routes.records.offload]\nafter_days = 30\nbucket = \"server-001\"\n[sources.tide]\nbuckets = [\"agent\", \"server-001\"]\npolicy = \"hedged\"\nhedge_delay = \"20ms\"\n[tenants.acme]\nbucket = \"agent\"\nprefix = \"tenants/acme\"",
        &["agent", "server-001"],
    )
    .unwrap();
    let info = r.info();
    let tide = &info.sources[0];
    assert_eq!(tide.primary, "agent");
    assert_eq!(tide.fallbacks, ["server-001"]);
    assert_eq!(tide.providers, ["memory", "memory"]);
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["sources"][0]["policy"]["policy"], "hedged");
    assert_eq!(json["sources"][0]["policy"]["delay"], "20ms");
    let records = json["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "records")
        .unwrap();
    assert_eq!(records["bucket"], "agent");
    assert_eq!(records["prefix"], "records");
    assert_eq!(records["provider"], "memory");
    assert_eq!(records["offload"]["bucket"], "server-001");
    assert_eq!(json["tenants"][0]["prefix"], "tenants/acme");
    assert_eq!(json["origin"], ORIGIN);
}

#[test]
fn the_legacy_bucket_logs_a_deprecation_warning() {
    // `tracing_subscriber::fmt()` records up to INFO unless told otherwise.
    let captured = strata_testkit::tracing_capture::Captured::default();
    captured.with_default(tracing::Level::INFO, || {
        build("[routes.records]\nbucket = \"data\"", &["data"]).unwrap();
    });
    assert!(captured.is_empty(), "no warning without the legacy form");
    captured.with_default(tracing::Level::INFO, || {
        build("bucket = \"data\"", &["data"]).unwrap();
    });
    let log = captured.text();
    assert!(log.contains("WARN") && log.contains("deprecated"), "{log}");
    assert!(
        log.contains("[routes.records]") && log.contains(ORIGIN),
        "says what to write instead, and where: {log}"
    );
}

#[tokio::test]
async fn the_router_is_one_object_store() {
    use object_store::{ObjectStoreExt, path::Path};
    let r = build(
        "[sources.default]\nbuckets = [\"hot\", \"cold\"]",
        &["hot", "cold"],
    )
    .unwrap();
    r.bucket("cold")
        .unwrap()
        .put("old.parquet", "PAR1")
        .await
        .unwrap();
    let store = r.store().unwrap();
    let got = strata_testkit::body(&store, "old.parquet").await;
    assert_eq!(got, "PAR1");
    store
        .put(&Path::from("new.parquet"), "PAR1".into())
        .await
        .unwrap();
    assert!(
        r.bucket("hot")
            .unwrap()
            .exists("new.parquet")
            .await
            .unwrap(),
        "writes go to the primary"
    );
    // Without a default (or single) source set it says how to get one.
    let two = build(
        "[sources.a]\nbuckets = [\"hot\"]\n[sources.b]\nbuckets = [\"cold\"]",
        &["hot", "cold"],
    )
    .unwrap();
    let err = two.store().unwrap_err().to_string();
    assert!(
        err.contains("sources.default") && err.contains("`a`, `b`"),
        "{err}"
    );
}
