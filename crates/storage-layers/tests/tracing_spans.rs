//! The metrics layer's `tracing` output: one `storage_op` span per call carrying store, op,
//! key, bytes, outcome and latency, with a closing event (seed 002's performance logging).

use std::io::Write;
use std::sync::{Arc, Mutex};

use object_store::ObjectStoreExt;
use object_store::path::Path;
use storage_core::MemoryStore;
use storage_layers::metrics::MetricsLayer;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_call_logs_a_span_with_its_outcome() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let store = MetricsLayer::new("media").wrap(MemoryStore::new());
            store
                .put(&Path::from("users/1.json"), "hello".into())
                .await
                .unwrap();
            let _ = store.get(&Path::from("users/missing.json")).await;
        })
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
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
