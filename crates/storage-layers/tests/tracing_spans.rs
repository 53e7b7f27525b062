//! The metrics layer's `tracing` output: one `storage_op` span per call carrying store, op,
//! key, bytes, outcome and latency, with a closing event (seed 002's performance logging).

use object_store::ObjectStoreExt;
use object_store::path::Path;
use storage_core::MemoryStore;
use storage_layers::metrics::MetricsLayer;
use strata_testkit::tracing_capture::Captured;

#[test]
fn each_call_logs_a_span_with_its_outcome() {
    let out = Captured::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    out.with_default(tracing::Level::DEBUG, || {
        rt.block_on(async {
            let store = MetricsLayer::new("media").wrap(MemoryStore::new());
            store
                .put(&Path::from("users/1.json"), "hello".into())
                .await
                .unwrap();
            let _ = store.get(&Path::from("users/missing.json")).await;
        })
    });
    let text = out.text();
    let put = text
        .lines()
        .find(|l| l.contains("op=\"put\""))
        .unwrap_or_else(|| panic!("no put span in:\n{text}"));
    for field in [
        "storage_op",
        "store=media",
        "key=\"users/1.json\"",
        "bytes=5",
        "outcome=\"ok\"",
        "latency_ms=",
    ] {
        assert!(put.contains(field), "`{field}` missing from: {put}");
    }
    let get = text
        .lines()
        .find(|l| l.contains("op=\"get\""))
        .unwrap_or_else(|| panic!("no get span in:\n{text}"));
    assert!(get.contains("outcome=\"not_found\""), "{get}");
}
