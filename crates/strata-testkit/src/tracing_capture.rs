//! What `tracing` writes, captured as plain text for tests that assert on spans, events and
//! warnings (the metrics layer's spans, deprecation warnings, the access log, redaction).
//!
//! ```
//! use strata_testkit::tracing_capture::Captured;
//! let logs = Captured::default();
//! logs.with_default(tracing::Level::INFO, || tracing::warn!("deprecated"));
//! assert!(logs.text().contains("WARN") && logs.text().contains("deprecated"));
//! ```

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing::Level;

/// A shared buffer that a `tracing_subscriber::fmt` subscriber writes into, without ANSI
/// colours. Clones share the buffer.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Runs `f` with a subscriber that records events up to `level` here, for this thread
    /// only, and returns what `f` returns.
    pub fn with_default<R>(&self, level: Level, f: impl FnOnce() -> R) -> R {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f)
    }

    /// The capture of the process-wide subscriber (events up to `TRACE`), installed on the
    /// first call; later calls return the same capture. For code that logs from other
    /// threads, such as a server's tasks.
    pub fn global() -> Captured {
        static LOGS: OnceLock<Captured> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Captured::default();
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .with_max_level(Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            logs
        })
        .clone()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.0.lock().unwrap().is_empty()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
