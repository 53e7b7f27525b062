//! Telemetry export (cargo feature `telemetry`): the storage layers' `metrics` counters to a
//! Prometheus scrape endpoint or text file, and `tracing` spans plus those counters to an
//! OpenTelemetry collector over OTLP/HTTP.
//!
//! The metrics layer (`[layers.metrics]`) records `strata_storage_ops_total`,
//! `strata_storage_errors_total`, `strata_storage_bytes_total` and the histogram
//! `strata_storage_op_seconds` in the [`metrics`] facade, and a `storage_op` span per call in
//! `tracing`. Neither goes anywhere until an exporter is installed: that is this module.
//!
//! From configuration (`[telemetry]` in `strata.toml`, or `STRATA_PROMETHEUS_LISTEN`,
//! `STRATA_PROMETHEUS_FILE`, `OTEL_EXPORTER_OTLP_ENDPOINT`, ...; see
//! [`TelemetryConfig::resolve`]):
//!
//! ```no_run
//! # fn main() -> strata::Result<()> {
//! use strata::config::TelemetryConfig;
//! use strata::core::config::Env;
//! use strata::telemetry::Telemetry;
//!
//! let cfg = TelemetryConfig::resolve(None, &Env::process())?;
//! let telemetry = Telemetry::install(&cfg)?; // the global `metrics` recorder
//! // Spans: your own fmt layer (with its own filter) plus the OTLP layer.
//! telemetry.init_tracing(tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
//! // ... use Strata; dropping `telemetry` exports what is left and writes the file.
//! # Ok(()) }
//! ```
//!
//! In code, with exporters of your own (any `opentelemetry_sdk` span or metric exporter; the
//! test below uses the in-memory ones):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> strata::Result<()> {
//! use strata::telemetry::Telemetry;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
//! let telemetry = Telemetry::builder()
//!     .prometheus_handle()            // render the text exposition yourself
//!     .span_exporter(spans.clone())
//!     .build()?;
//! let strata = strata::Strata::from_toml_str(
//!     "[connections.mem]\nkind = 'memory'\n[buckets.logs]\nconnection = 'mem'\n[layers.metrics]\n",
//!     "inline",
//! )?;
//! let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer());
//! let _spans = tracing::subscriber::set_default(subscriber);
//! let recorder = telemetry.recorder();
//! let _metrics = metrics::set_default_local_recorder(&recorder);
//! strata.bucket("logs")?.put("a.txt", "hello").await?;
//! telemetry.flush()?;
//! assert!(telemetry.prometheus().unwrap().render().contains("strata_storage_ops_total"));
//! assert_eq!(spans.get_finished_spans().unwrap()[0].name, "storage_op");
//! # Ok(()) }
//! ```
//!
//! Why the OTLP client runs on a runtime of its own: the SDK exports from its own threads
//! (the batch span processor, the periodic metric reader), where no Tokio runtime is
//! running, and reqwest's async client needs one ("there is no reactor running"). Its
//! `blocking` feature would change the features of the reqwest every other crate builds;
//! instead each request is spawned on one small runtime thread owned by [`Telemetry`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, exporter::PushMetricExporter};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use storage_core::StorageError as E;
use tracing_subscriber::Layer;

use crate::Result;
pub use crate::config::{OtlpConfig, PrometheusConfig, TelemetryConfig};

/// Upper bounds (seconds) of `strata_storage_op_seconds` in the Prometheus exposition.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installed exporters. Dropping it exports what is buffered (spans, metrics), writes the
/// Prometheus file a last time and stops the exporters' threads.
pub struct Telemetry {
    recorder: SharedRecorder,
    prometheus: Option<PrometheusHandle>,
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    filter: String,
    service_name: String,
    file: Option<FileWriter>,
    /// Runs the scrape listener and the OTLP requests.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("prometheus", &self.prometheus.is_some())
            .field("file", &self.file.as_ref().map(|w| &w.path))
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .field("filter", &self.filter)
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl Telemetry {
    /// Build the exporters of `cfg` and install the process-wide [`metrics`] recorder.
    /// Spans need a subscriber too: [`init_tracing`](Self::init_tracing) or
    /// [`tracing_layer`](Self::tracing_layer). An empty config installs nothing.
    pub fn install(cfg: &TelemetryConfig) -> Result<Telemetry> {
        let telemetry = Self::from_config(cfg)?;
        if telemetry.exports_metrics() {
            metrics::set_global_recorder(telemetry.recorder()).map_err(|_| {
                E::invalid_config(
                    "telemetry",
                    "a `metrics` recorder is already installed in this process; install the telemetry once, before anything else records metrics",
                )
            })?;
        }
        Ok(telemetry)
    }

    /// [`TelemetryConfig::resolve`] (the `[telemetry]` table of `config_file` or
    /// `$STRATA_CONFIG`, then the variables) and [`install`](Self::install): what the CLI
    /// does at start-up.
    pub fn install_from(config_file: Option<&std::path::Path>) -> Result<Telemetry> {
        Self::install(&TelemetryConfig::resolve(
            config_file,
            &storage_core::config::Env::process(),
        )?)
    }

    /// Build the exporters of `cfg` without installing anything global.
    pub fn from_config(cfg: &TelemetryConfig) -> Result<Telemetry> {
        cfg.validate("telemetry.")?;
        let mut b = Telemetry::builder();
        if let Some(p) = &cfg.prometheus {
            b = b.prometheus(p.clone());
        }
        if let Some(o) = &cfg.otlp {
            b = b.otlp(o)?;
        }
        b.build()
    }

    /// Exporters chosen in code.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    /// The recorder that feeds every configured metrics exporter, for
    /// `metrics::set_global_recorder` or `metrics::with_local_recorder`.
    pub fn recorder(&self) -> SharedRecorder {
        self.recorder.clone()
    }

    /// Whether any metrics exporter is configured.
    pub fn exports_metrics(&self) -> bool {
        self.prometheus.is_some() || self.meter.is_some()
    }

    /// The Prometheus handle (render the text exposition with `.render()`), when Prometheus
    /// is configured. `strata serve` can answer `/metrics` with it.
    pub fn prometheus(&self) -> Option<&PrometheusHandle> {
        self.prometheus.as_ref()
    }

    /// The `tracing` layer that exports spans over OTLP (or to the span exporter given to
    /// the builder), filtered by its own filter (`[telemetry.otlp] filter`, default `info`),
    /// independent of any log filter. `None` when no span exporter is configured.
    pub fn tracing_layer<S>(&self) -> Option<Box<dyn Layer<S> + Send + Sync + 'static>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        let provider = self.tracer.as_ref()?;
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("strata"))
                .with_filter(filter)
                .boxed(),
        )
    }

    /// Set the global `tracing` subscriber: `layer` (say, a fmt layer with its own filter)
    /// and [`tracing_layer`](Self::tracing_layer). Does nothing when a global subscriber
    /// is already set.
    pub fn init_tracing<L>(&self, layer: L)
    where
        L: Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
    {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry()
            .with(layer)
            .with(self.tracing_layer());
        let _ = tracing::subscriber::set_global_default(subscriber);
    }

    /// Export buffered spans and metrics now, and rewrite the Prometheus file.
    pub fn flush(&self) -> Result<()> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            E::invalid_config(
                "telemetry",
                format!("exporting {what} failed: {e} (is the collector reachable?)"),
            )
        };
        if let Some(t) = &self.tracer {
            t.force_flush().map_err(|e| fail("spans", &e))?;
        }
        if let Some(m) = &self.meter {
            m.force_flush().map_err(|e| fail("metrics", &e))?;
        }
        if let Some(w) = &self.file {
            write_file(
                &w.path,
                self.prometheus.as_ref().expect("file implies prometheus"),
            )
            .map_err(|e| fail("the Prometheus file", &e))?;
        }
        Ok(())
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(w) = self.file.take() {
            let _ = w.stop.send(());
            let _ = w.thread.join();
        }
        // Shutdown exports what is buffered; errors here have nowhere to go but the log.
        if let Some(t) = self.tracer.take()
            && let Err(e) = t.shutdown()
        {
            tracing::warn!("telemetry: exporting the last spans failed: {e}");
        }
        if let Some(m) = self.meter.take()
            && let Err(e) = m.shutdown()
        {
            tracing::warn!("telemetry: exporting the last metrics failed: {e}");
        }
        if let Some(rt) = self.runtime.take() {
            // Never block here: Telemetry may be dropped inside another runtime.
            rt.shutdown_background();
        }
    }
}

/// Exporters chosen in code; [`build`](Self::build) starts them.
#[derive(Default)]
pub struct TelemetryBuilder {
    prometheus: Option<PrometheusConfig>,
    tracer: Option<opentelemetry_sdk::trace::TracerProviderBuilder>,
    meter: Option<opentelemetry_sdk::metrics::MeterProviderBuilder>,
    filter: Option<String>,
    service_name: Option<String>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("prometheus", &self.prometheus)
            .field("traces", &self.tracer.is_some())
            .field("metrics", &self.meter.is_some())
            .finish()
    }
}

impl TelemetryBuilder {
    /// Prometheus: a scrape endpoint (`listen`) and/or a text file (`file`).
    pub fn prometheus(mut self, cfg: PrometheusConfig) -> Self {
        self.prometheus = Some(cfg);
        self
    }

    /// Prometheus with neither endpoint nor file: render it yourself from
    /// [`Telemetry::prometheus`] (e.g. on your own HTTP server).
    pub fn prometheus_handle(self) -> Self {
        self.prometheus(PrometheusConfig::default())
    }

    /// Export spans with `exporter` (batched, on the SDK's thread).
    pub fn span_exporter(mut self, exporter: impl SpanExporter + 'static) -> Self {
        let b = self
            .tracer
            .take()
            .unwrap_or_else(SdkTracerProvider::builder)
            .with_batch_exporter(exporter);
        self.tracer = Some(b);
        self
    }

    /// Export the `metrics` counters with `exporter` every `interval` (and on flush).
    pub fn metric_exporter(
        mut self,
        exporter: impl PushMetricExporter + 'static,
        interval: Duration,
    ) -> Self {
        let reader = PeriodicReader::builder(exporter)
            .with_interval(interval)
            .build();
        let b = self
            .meter
            .take()
            .unwrap_or_else(SdkMeterProvider::builder)
            .with_reader(reader);
        self.meter = Some(b);
        self
    }

    /// Which spans are exported (a `tracing` filter; default `info`).
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// `service.name` of the exported resource (default `strata`).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// OTLP/HTTP exporters for spans and metrics, as `cfg` says.
    pub fn otlp(mut self, cfg: &OtlpConfig) -> Result<Self> {
        let field = |f: &str| format!("telemetry.otlp.{f}");
        tracing_subscriber::EnvFilter::try_new(&cfg.filter).map_err(|e| {
            E::invalid_config(
                field("filter"),
                format!("`{}` is not a tracing filter: {e}", cfg.filter),
            )
        })?;
        let client = OnRuntime {
            client: reqwest::Client::builder()
                .timeout(cfg.timeout)
                .build()
                .map_err(|e| {
                    E::invalid_config(
                        field("endpoint"),
                        format!("cannot make an HTTP client: {e}"),
                    )
                })?,
            runtime: self.runtime()?.handle().clone(),
        };
        let base = cfg.endpoint.trim_end_matches('/');
        let bad = |e: opentelemetry_otlp::ExporterBuildError| {
            E::invalid_config(field("endpoint"), e.to_string())
        };
        if cfg.traces {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client.clone())
                .with_endpoint(format!("{base}/v1/traces"))
                .with_timeout(cfg.timeout)
                .build()
                .map_err(bad)?;
            self = self.span_exporter(exporter);
        }
        if cfg.metrics {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_endpoint(format!("{base}/v1/metrics"))
                .with_timeout(cfg.timeout)
                .build()
                .map_err(bad)?;
            self = self.metric_exporter(exporter, cfg.interval);
        }
        self.filter = Some(cfg.filter.clone());
        self.service_name = Some(cfg.service_name.clone());
        Ok(self)
    }

    fn runtime(&mut self) -> Result<&tokio::runtime::Runtime> {
        if self.runtime.is_none() {
            self.runtime = Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("strata-telemetry")
                    .enable_all()
                    .build()
                    .map_err(|e| {
                        E::invalid_config(
                            "telemetry",
                            format!("cannot start its runtime thread: {e}"),
                        )
                    })?,
            );
        }
        Ok(self.runtime.as_ref().expect("set above"))
    }

    /// Start the exporters.
    pub fn build(mut self) -> Result<Telemetry> {
        let service_name = self.service_name.take().unwrap_or_else(|| "strata".into());
        let resource = Resource::builder()
            .with_service_name(service_name.clone())
            .build();
        let mut prometheus = None;
        let mut file = None;
        if let Some(cfg) = self.prometheus.take() {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("strata_storage_op_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .map_err(|e| E::invalid_config("telemetry.prometheus", e.to_string()))?;
            let recorder = match &cfg.listen {
                Some(listen) => {
                    let field = "telemetry.prometheus.listen";
                    let addr: std::net::SocketAddr = listen.parse().map_err(|_| {
                        E::invalid_config(field, format!("`{listen}` is not IP:PORT"))
                    })?;
                    let rt = self.runtime()?;
                    // `build` spawns its upkeep task and binds the listener: inside the runtime.
                    let _enter = rt.enter();
                    let (recorder, server) =
                        builder.with_http_listener(addr).build().map_err(|e| {
                            E::invalid_config(field, format!("cannot listen on {addr}: {e}"))
                        })?;
                    rt.spawn(server);
                    recorder
                }
                None => builder.build_recorder(),
            };
            let handle = recorder.handle();
            if let Some(path) = cfg.file.clone() {
                crate::config::check_file("telemetry.prometheus.file", &path)?;
                write_file(&path, &handle).map_err(|e| {
                    E::invalid_config(
                        "telemetry.prometheus.file",
                        format!("cannot write `{}`: {e}", path.display()),
                    )
                })?;
                file = Some(FileWriter::start(path, handle.clone(), cfg.interval));
            }
            prometheus = Some((recorder, handle));
        }
        let tracer = self
            .tracer
            .take()
            .map(|b| b.with_resource(resource.clone()).build());
        let meter = self.meter.take().map(|b| b.with_resource(resource).build());
        let otel = meter.as_ref().map(|m| OtelRecorder::new(m.meter("strata")));
        let (prom_recorder, prom_handle) = match prometheus {
            Some((r, h)) => (Some(r), Some(h)),
            None => (None, None),
        };
        Ok(Telemetry {
            recorder: SharedRecorder {
                prometheus: prom_recorder.map(Arc::new),
                otel: otel.map(Arc::new),
            },
            prometheus: prom_handle,
            tracer,
            meter,
            filter: self.filter.take().unwrap_or_else(|| "info".into()),
            service_name,
            file,
            runtime: self.runtime.take(),
        })
    }
}

/// Rewrites the Prometheus file every interval; also runs the recorder's upkeep (which
/// drains histogram samples).
struct FileWriter {
    path: PathBuf,
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl FileWriter {
    fn start(path: PathBuf, handle: PrometheusHandle, interval: Duration) -> FileWriter {
        let (stop, stopped) = mpsc::channel::<()>();
        let p = path.clone();
        let thread = std::thread::Builder::new()
            .name("strata-prometheus-file".into())
            .spawn(move || {
                loop {
                    let last = !matches!(
                        stopped.recv_timeout(interval),
                        Err(mpsc::RecvTimeoutError::Timeout)
                    );
                    handle.run_upkeep();
                    if let Err(e) = write_file(&p, &handle) {
                        tracing::warn!("telemetry: cannot write {}: {e}", p.display());
                    }
                    if last {
                        break;
                    }
                }
            })
            .expect("spawn the Prometheus file thread");
        FileWriter { path, stop, thread }
    }
}

/// Write to a temporary file beside `path`, then rename: a reader (node_exporter) never
/// sees half a file.
fn write_file(path: &std::path::Path, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, handle.render())?;
    std::fs::rename(&tmp, path)
}

/// The reqwest client, with every request spawned on the telemetry runtime (see the module
/// docs for why).
#[derive(Debug, Clone)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> std::result::Result<
        opentelemetry_http::Response<opentelemetry_http::Bytes>,
        opentelemetry_http::HttpError,
    > {
        let client = self.client.clone();
        self.runtime
            .spawn(
                async move { opentelemetry_http::HttpClient::send_bytes(&client, request).await },
            )
            .await
            .map_err(|e| Box::new(e) as opentelemetry_http::HttpError)?
    }
}

/// Feeds the Prometheus recorder and the OpenTelemetry bridge with every measurement. A
/// cloneable handle (`metrics::set_global_recorder` takes it by value): every clone feeds
/// the same exporters.
#[derive(Clone)]
pub struct SharedRecorder {
    prometheus: Option<Arc<metrics_exporter_prometheus::PrometheusRecorder>>,
    otel: Option<Arc<OtelRecorder>>,
}

impl std::fmt::Debug for SharedRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRecorder")
            .field("prometheus", &self.prometheus.is_some())
            .field("otel", &self.otel.is_some())
            .finish()
    }
}

struct Tee<T>(Vec<T>);

/// A handle `metrics` hands out: the no-op one, and one that feeds several.
trait Handle: Sized {
    fn noop() -> Self;
    fn tee(all: Vec<Self>) -> Self;
}

macro_rules! tee_handles {
    ($($handle:ident),+) => {$(
        impl Handle for $handle {
            fn noop() -> Self {
                $handle::noop()
            }
            fn tee(all: Vec<Self>) -> Self {
                $handle::from_arc(Arc::new(Tee(all)))
            }
        }
    )+};
}
tee_handles!(Counter, Gauge, Histogram);

impl CounterFn for Tee<Counter> {
    fn increment(&self, value: u64) {
        self.0.iter().for_each(|c| c.increment(value));
    }
    fn absolute(&self, value: u64) {
        self.0.iter().for_each(|c| c.absolute(value));
    }
}

impl GaugeFn for Tee<Gauge> {
    fn increment(&self, value: f64) {
        self.0.iter().for_each(|g| g.increment(value));
    }
    fn decrement(&self, value: f64) {
        self.0.iter().for_each(|g| g.decrement(value));
    }
    fn set(&self, value: f64) {
        self.0.iter().for_each(|g| g.set(value));
    }
}

impl HistogramFn for Tee<Histogram> {
    fn record(&self, value: f64) {
        self.0.iter().for_each(|h| h.record(value));
    }
}

impl SharedRecorder {
    /// Descriptions go to Prometheus only (the OpenTelemetry instruments are made without).
    fn describe(&self, describe: impl FnOnce(&metrics_exporter_prometheus::PrometheusRecorder)) {
        if let Some(p) = &self.prometheus {
            describe(p);
        }
    }

    /// One handle for what the sinks register: a no-op for none, the handle itself for one,
    /// a [`Tee`] of them for both.
    fn register<H: Handle>(
        &self,
        prometheus: impl FnOnce(&metrics_exporter_prometheus::PrometheusRecorder) -> H,
        otel: impl FnOnce(&OtelRecorder) -> H,
    ) -> H {
        let registered = [
            self.prometheus.as_deref().map(prometheus),
            self.otel.as_deref().map(otel),
        ];
        let mut all: Vec<H> = registered.into_iter().flatten().collect();
        match all.len() {
            0 => H::noop(),
            1 => all.pop().expect("one"),
            _ => H::tee(all),
        }
    }
}

impl Recorder for SharedRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(|p| p.describe_counter(key, unit, description));
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(|p| p.describe_gauge(key, unit, description));
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(|p| p.describe_histogram(key, unit, description));
    }
    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.register(|p| p.register_counter(key, metadata), |o| o.counter(key))
    }
    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.register(|p| p.register_gauge(key, metadata), |o| o.gauge(key))
    }
    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.register(
            |p| p.register_histogram(key, metadata),
            |o| o.histogram(key),
        )
    }
}

/// The `metrics` facade into OpenTelemetry instruments: a counter becomes a monotonic
/// `Counter<u64>`, a gauge a `Gauge<f64>`, a histogram a `Histogram<f64>`; labels become
/// attributes. Instruments are made once per name.
struct OtelRecorder {
    meter: opentelemetry::metrics::Meter,
    counters: Mutex<HashMap<String, opentelemetry::metrics::Counter<u64>>>,
    gauges: Mutex<HashMap<String, opentelemetry::metrics::Gauge<f64>>>,
    histograms: Mutex<HashMap<String, opentelemetry::metrics::Histogram<f64>>>,
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_string(), l.value().to_string()))
        .collect()
}

impl OtelRecorder {
    fn new(meter: opentelemetry::metrics::Meter) -> Self {
        OtelRecorder {
            meter,
            counters: Mutex::default(),
            gauges: Mutex::default(),
            histograms: Mutex::default(),
        }
    }

    fn counter(&self, key: &Key) -> Counter {
        let inst = instrument(&self.counters, key, |n| self.meter.u64_counter(n).build());
        Counter::from_arc(Arc::new(OtelCounter {
            inst,
            attrs: attributes(key),
            last: AtomicU64::new(0),
        }))
    }

    fn gauge(&self, key: &Key) -> Gauge {
        let inst = instrument(&self.gauges, key, |n| self.meter.f64_gauge(n).build());
        Gauge::from_arc(Arc::new(OtelGauge {
            inst,
            attrs: attributes(key),
            value: AtomicU64::new(0f64.to_bits()),
        }))
    }

    fn histogram(&self, key: &Key) -> Histogram {
        let inst = instrument(&self.histograms, key, |n| {
            self.meter
                .f64_histogram(n)
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build()
        });
        Histogram::from_arc(Arc::new(OtelHistogram {
            inst,
            attrs: attributes(key),
        }))
    }
}

/// The instrument for `key`'s name in `made`, made by `make` the first time.
fn instrument<I: Clone>(
    made: &Mutex<HashMap<String, I>>,
    key: &Key,
    make: impl FnOnce(String) -> I,
) -> I {
    let name = key.name().to_string();
    made.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(name.clone())
        .or_insert_with(|| make(name))
        .clone()
}

struct OtelCounter {
    inst: opentelemetry::metrics::Counter<u64>,
    attrs: Vec<KeyValue>,
    /// For `absolute`: OpenTelemetry counters only add, so the difference is added.
    last: AtomicU64,
}

impl CounterFn for OtelCounter {
    fn increment(&self, value: u64) {
        self.last.fetch_add(value, Ordering::Relaxed);
        self.inst.add(value, &self.attrs);
    }
    fn absolute(&self, value: u64) {
        let before = self.last.fetch_max(value, Ordering::Relaxed);
        if value > before {
            self.inst.add(value - before, &self.attrs);
        }
    }
}

struct OtelGauge {
    inst: opentelemetry::metrics::Gauge<f64>,
    attrs: Vec<KeyValue>,
    value: AtomicU64,
}

impl OtelGauge {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let mut now = 0.0;
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                now = f(f64::from_bits(bits));
                Some(now.to_bits())
            });
        self.inst.record(now, &self.attrs);
    }
}

impl GaugeFn for OtelGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

struct OtelHistogram {
    inst: opentelemetry::metrics::Histogram<f64>,
    attrs: Vec<KeyValue>,
}

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.inst.record(value, &self.attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use storage_core::config::Env;
    use tracing_subscriber::layer::SubscriberExt;

    const CONFIG: &str = "[connections.mem]\nkind = 'memory'\n[buckets.logs]\nconnection = 'mem'\n[layers.metrics]\n";

    /// put ok, get ok, get of a missing key: three calls through the metrics layer.
    async fn three_calls() {
        let strata = crate::Strata::from_toml_str(CONFIG, "inline").unwrap();
        let logs = strata.bucket("logs").unwrap();
        logs.put("a.txt", "hello").await.unwrap();
        assert_eq!(logs.get("a.txt").await.unwrap().bytes, "hello");
        assert!(logs.get("missing.txt").await.is_err());
    }

    #[tokio::test]
    async fn prometheus_text_counts_the_bucket_operations() {
        let telemetry = Telemetry::builder().prometheus_handle().build().unwrap();
        {
            let recorder = telemetry.recorder();
            let _local = metrics::set_default_local_recorder(&recorder);
            three_calls().await;
        }
        let text = telemetry.prometheus().unwrap().render();
        for line in [
            "strata_storage_ops_total{store=\"logs\",op=\"put\",outcome=\"ok\"} 1",
            "strata_storage_ops_total{store=\"logs\",op=\"get\",outcome=\"ok\"} 1",
            "strata_storage_ops_total{store=\"logs\",op=\"get\",outcome=\"not_found\"} 1",
            "strata_storage_errors_total{store=\"logs\",op=\"get\",kind=\"not_found\"} 1",
            "strata_storage_bytes_total{store=\"logs\",op=\"put\"} 5",
            "strata_storage_op_seconds_bucket{store=\"logs\",op=\"get\",le=\"+Inf\"} 2",
            "strata_storage_op_seconds_count{store=\"logs\",op=\"put\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
    }

    #[tokio::test]
    async fn spans_and_metrics_reach_opentelemetry_exporters() {
        let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let metrics_out = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
        let telemetry = Telemetry::builder()
            .span_exporter(spans.clone())
            .metric_exporter(metrics_out.clone(), Duration::from_secs(3600))
            .service_name("strata-test")
            .build()
            .unwrap();
        {
            let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer());
            let _spans = tracing::subscriber::set_default(subscriber);
            let recorder = telemetry.recorder();
            let _local = metrics::set_default_local_recorder(&recorder);
            three_calls().await;
        }
        telemetry.flush().unwrap();

        let finished = spans.get_finished_spans().unwrap();
        let mut ops: Vec<(String, String)> = finished
            .iter()
            .filter(|s| s.name == "storage_op")
            .map(|s| {
                let attr = |k: &str| {
                    s.attributes
                        .iter()
                        .find(|kv| kv.key.as_str() == k)
                        .map(|kv| kv.value.to_string())
                        .unwrap_or_default()
                };
                (attr("op"), attr("outcome"))
            })
            .collect();
        ops.sort();
        assert_eq!(
            ops,
            [
                ("get".to_string(), "not_found".to_string()),
                ("get".to_string(), "ok".to_string()),
                ("put".to_string(), "ok".to_string()),
            ]
        );

        let exported = metrics_out.get_finished_metrics().unwrap();
        let last = exported.last().expect("one export");
        assert!(
            last.resource()
                .iter()
                .any(|(k, v)| k.as_str() == "service.name" && v.to_string() == "strata-test")
        );
        let mut calls = Vec::new();
        for m in last.scope_metrics().flat_map(|s| s.metrics()) {
            if m.name() != "strata_storage_ops_total" {
                continue;
            }
            let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() else {
                panic!("ops_total is a u64 sum: {:?}", m.data());
            };
            for p in sum.data_points() {
                let attr = |k: &str| {
                    p.attributes()
                        .find(|kv| kv.key.as_str() == k)
                        .map(|kv| kv.value.to_string())
                        .unwrap_or_default()
                };
                calls.push((attr("op"), attr("outcome"), p.value()));
            }
        }
        calls.sort();
        assert_eq!(
            calls,
            [
                ("get".to_string(), "not_found".to_string(), 1),
                ("get".to_string(), "ok".to_string(), 1),
                ("put".to_string(), "ok".to_string(), 1),
            ]
        );
    }

    #[tokio::test]
    async fn the_prometheus_file_is_written_on_flush_and_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata.prom");
        let cfg = PrometheusConfig {
            file: Some(path.clone()),
            ..PrometheusConfig::default()
        };
        let telemetry = Telemetry::builder().prometheus(cfg).build().unwrap();
        // Written at once (empty), so a collector never finds the file missing.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        {
            let recorder = telemetry.recorder();
            let _local = metrics::set_default_local_recorder(&recorder);
            three_calls().await;
        }
        telemetry.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("strata_storage_ops_total{store=\"logs\",op=\"put\",outcome=\"ok\"} 1"),
            "{text}"
        );
        drop(telemetry);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("strata_storage_ops_total")
        );
        assert!(!dir.path().join("strata.prom.tmp").exists());
    }

    #[tokio::test]
    async fn the_scrape_endpoint_answers_with_the_text() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = PrometheusConfig {
            listen: Some(format!("127.0.0.1:{port}")),
            ..PrometheusConfig::default()
        };
        let telemetry = Telemetry::builder().prometheus(cfg).build().unwrap();
        {
            let recorder = telemetry.recorder();
            let _local = metrics::set_default_local_recorder(&recorder);
            three_calls().await;
        }
        let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            body.contains("strata_storage_ops_total{store=\"logs\",op=\"put\",outcome=\"ok\"} 1"),
            "{body}"
        );
    }

    /// A stand-in collector on loopback: records method, path, content type and body size of
    /// each request and answers 200.
    async fn collector() -> (String, Arc<Mutex<Vec<(String, String, String, usize)>>>) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut conn = BufReader::new(socket);
                    loop {
                        let mut request_line = String::new();
                        if conn.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let (mut length, mut content_type) = (0usize, String::new());
                        loop {
                            let mut h = String::new();
                            conn.read_line(&mut h).await.unwrap();
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (name, value) = h.split_once(':').unwrap();
                            match name.to_ascii_lowercase().as_str() {
                                "content-length" => length = value.trim().parse().unwrap(),
                                "content-type" => content_type = value.trim().to_string(),
                                _ => {}
                            }
                        }
                        let mut body = vec![0; length];
                        conn.read_exact(&mut body).await.unwrap();
                        let mut parts = request_line.split_whitespace();
                        let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
                        log.lock().unwrap().push((
                            method.to_string(),
                            path.to_string(),
                            content_type,
                            length,
                        ));
                        conn.get_mut()
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                            .await
                            .unwrap();
                    }
                });
            }
        });
        (url, seen)
    }

    /// The OTLP exporters as configured (reqwest on the telemetry runtime, called from the
    /// SDK's own threads) deliver spans and metrics over HTTP.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn otlp_over_http_reaches_a_collector() {
        let (url, seen) = collector().await;
        let cfg = TelemetryConfig {
            prometheus: None,
            otlp: Some(OtlpConfig::new(url)),
        };
        let telemetry = Telemetry::from_config(&cfg).unwrap();
        {
            let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer());
            let _spans = tracing::subscriber::set_default(subscriber);
            let recorder = telemetry.recorder();
            let _local = metrics::set_default_local_recorder(&recorder);
            three_calls().await;
        }
        tokio::task::block_in_place(|| telemetry.flush()).unwrap();
        let seen = seen.lock().unwrap().clone();
        for path in ["/v1/traces", "/v1/metrics"] {
            assert!(
                seen.iter().any(|(m, p, ct, len)| m == "POST"
                    && p == path
                    && ct == "application/x-protobuf"
                    && *len > 100),
                "no protobuf POST to {path}: {seen:?}"
            );
        }
        // And an unreachable collector is an error of flush, not a hang or a panic.
        let dead = TelemetryConfig {
            prometheus: None,
            otlp: Some(OtlpConfig::new("http://127.0.0.1:9")),
        };
        let telemetry = Telemetry::from_config(&dead).unwrap();
        {
            let subscriber = tracing_subscriber::registry().with(telemetry.tracing_layer());
            let _spans = tracing::subscriber::set_default(subscriber);
            three_calls().await;
        }
        let e = tokio::task::block_in_place(|| telemetry.flush())
            .unwrap_err()
            .to_string();
        assert!(e.contains("exporting spans failed"), "{e}");
    }

    #[test]
    fn bad_telemetry_config_names_the_field_and_line() {
        let cases: [(&str, &[&str]); 5] = [
            (
                "[telemetry.prometheus]\nlisten = 'localhost'\n",
                &[
                    "s.toml:7: telemetry.prometheus.listen",
                    "`localhost` is not an address to listen on; write IP:PORT",
                ],
            ),
            (
                "[telemetry.prometheus]\nfile = '/no/such/folder/x.prom'\n",
                &[
                    "telemetry.prometheus.file",
                    "`/no/such/folder` does not exist",
                ],
            ),
            (
                "[telemetry.prometheus]\ninterval = '30s'\n",
                &["telemetry.prometheus", "exports nothing"],
            ),
            (
                "[telemetry.otlp]\nendpoint = 'localhost:4318'\n",
                &["s.toml:7: telemetry.otlp.endpoint", "is not an http(s) URL"],
            ),
            (
                "[telemetry.otlp]\nendpoint = 'http://c:4318'\nprotocol = 'grpc'\n",
                &["s.toml:8", "unknown field `protocol`"],
            ),
        ];
        for (telemetry, says) in cases {
            crate::refused::assert_says(&format!("{CONFIG}{telemetry}"), says);
        }
        let e = crate::refused::error(&format!(
            "{CONFIG}[telemetry.otlp]\nendpoint = 'http://c:4318'\ninterval = '0s'\n"
        ));
        assert!(
            e.contains("telemetry.otlp.interval") || e.contains("s.toml:8"),
            "{e}"
        );
    }

    #[test]
    fn telemetry_variables_override_the_file_and_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("strata.toml");
        std::fs::write(
            &file,
            format!("{CONFIG}[telemetry.otlp]\nendpoint = 'http://file:4318'\ntraces = false\n"),
        )
        .unwrap();
        let env = Env::from_pairs([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SERVICE_NAME", "proofs"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("STRATA_PROMETHEUS_LISTEN", "127.0.0.1:9464"),
        ]);
        let cfg = TelemetryConfig::resolve(Some(&file), &env).unwrap();
        let otlp = cfg.otlp.as_ref().unwrap();
        assert_eq!(otlp.endpoint, "http://collector:4318");
        assert_eq!(otlp.service_name, "proofs");
        assert!(!otlp.traces && !otlp.metrics);
        assert_eq!(
            cfg.prometheus.as_ref().unwrap().listen.as_deref(),
            Some("127.0.0.1:9464")
        );
        // No file, no variables: nothing to export.
        assert!(
            TelemetryConfig::resolve(None, &Env::from_pairs::<&str, &str>([]))
                .unwrap()
                .is_empty()
        );

        let err = |pairs: &[(&str, &str)]| {
            TelemetryConfig::resolve(None, &Env::from_pairs(pairs.iter().copied()))
                .unwrap_err()
                .to_string()
        };
        let e = err(&[("STRATA_PROMETHEUS_LISTEN", "9464")]);
        assert!(
            e.contains("STRATA_PROMETHEUS_LISTEN") && e.contains("`9464`"),
            "{e}"
        );
        let e = err(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]);
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && e.contains("not an http(s) URL"),
            "{e}"
        );
        let e = err(&[("OTEL_TRACES_EXPORTER", "otlp")]);
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && e.contains("OTEL_TRACES_EXPORTER=otlp"),
            "{e}"
        );
        let e = err(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "jaeger"),
        ]);
        assert!(
            e.contains("OTEL_TRACES_EXPORTER") && e.contains("use otlp or none"),
            "{e}"
        );
        let e = err(&[(
            "STRATA_PROMETHEUS_FILE",
            dir.path().join("nope/x.prom").to_str().unwrap(),
        )]);
        assert!(
            e.contains("STRATA_PROMETHEUS_FILE") && e.contains("does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_span_filter_is_named() {
        let mut cfg = OtlpConfig::new("http://127.0.0.1:9");
        cfg.filter = "strata=loud".into();
        let e = Telemetry::builder().otlp(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("telemetry.otlp.filter") && e.contains("strata=loud"),
            "{e}"
        );
    }
}
