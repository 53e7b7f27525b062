//! With the `metrics-crate` feature the metrics layer reports to the `metrics` facade:
//! checked with a small recorder that keeps counter totals and histogram sample counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use storage_core::MemoryStore;
use storage_layers::metrics::MetricsLayer;

type Totals = Arc<Mutex<BTreeMap<String, f64>>>;

struct Entry(String, Totals);

impl CounterFn for Entry {
    fn increment(&self, value: u64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() += value as f64;
    }
    fn absolute(&self, value: u64) {
        self.1.lock().unwrap().insert(self.0.clone(), value as f64);
    }
}

impl HistogramFn for Entry {
    fn record(&self, _value: f64) {
        *self.1.lock().unwrap().entry(self.0.clone()).or_default() += 1.0;
    }
}

#[derive(Default)]
struct TestRecorder(Totals);

fn name(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Entry(name(key), Arc::clone(&self.0))))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Entry(name(key), Arc::clone(&self.0))))
    }
}

#[test]
fn metrics_facade_receives_counters_and_latencies() {
    let recorder = TestRecorder::default();
    let totals = Arc::clone(&recorder.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let store = MetricsLayer::new("media").wrap(MemoryStore::new());
            store
                .put(&Path::from("a/1"), vec![0u8; 100].into())
                .await
                .unwrap();
            store
                .put(&Path::from("a/2"), vec![0u8; 50].into())
                .await
                .unwrap();
            assert!(store.get(&Path::from("a/missing")).await.is_err());
        })
    });
    let t = totals.lock().unwrap();
    assert_eq!(
        t["strata_storage_ops_total{op=put,outcome=ok,store=media}"], 2.0,
        "{t:#?}"
    );
    assert_eq!(t["strata_storage_bytes_total{op=put,store=media}"], 150.0);
    assert_eq!(
        t["strata_storage_errors_total{kind=not_found,op=get,store=media}"],
        1.0
    );
    assert_eq!(t["strata_storage_op_seconds{op=put,store=media}"], 2.0);
}
