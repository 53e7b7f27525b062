//! Shared context of every command: the configured setup, output mode, errors and exit codes.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use storage_core::{ErrorKind, StorageError};
use strata::Strata;

/// Exit code: a bug or an error of no other kind (internal).
pub const EXIT_INTERNAL: u8 = 1;
/// Exit code: usage or bad input (a flag, an address, a key, the config file): fix the
/// command, retrying as it is will fail again.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: not found.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: precondition failed or conflict.
pub const EXIT_CONFLICT: u8 = 4;
/// Exit code: the backend failed for now (unreachable, 5xx, timeout, throttled, circuit
/// open): the same command may succeed later.
pub const EXIT_TEMPORARY: u8 = 5;
/// Exit code: access denied or not authenticated (credentials or permissions).
pub const EXIT_DENIED: u8 = 6;

/// The exit code a storage error maps to.
pub fn exit_code(e: &StorageError) -> u8 {
    match e {
        StorageError::Backend { status, .. } => match status {
            Some(401 | 403) => EXIT_DENIED,
            Some(404) => EXIT_NOT_FOUND,
            Some(409 | 412) => EXIT_CONFLICT,
            Some(400) => EXIT_BAD_INPUT,
            _ if e.is_retryable() => EXIT_TEMPORARY,
            _ => EXIT_INTERNAL,
        },
        StorageError::PartialMove { source, .. } => exit_code(source),
        _ => match e.kind() {
            ErrorKind::NotFound => EXIT_NOT_FOUND,
            ErrorKind::Conflict => EXIT_CONFLICT,
            ErrorKind::BadInput | ErrorKind::NotSupported => EXIT_BAD_INPUT,
            ErrorKind::Timeout | ErrorKind::Unavailable | ErrorKind::Quota => EXIT_TEMPORARY,
            ErrorKind::Auth => EXIT_DENIED,
            _ => EXIT_INTERNAL,
        },
    }
}

/// The `kind` of `--json` errors for an exit code.
fn kind_for(code: u8) -> &'static str {
    match code {
        EXIT_BAD_INPUT => ErrorKind::BadInput.as_str(),
        EXIT_NOT_FOUND => ErrorKind::NotFound.as_str(),
        EXIT_CONFLICT => ErrorKind::Conflict.as_str(),
        EXIT_TEMPORARY => "temporary",
        EXIT_DENIED => "denied",
        _ => "internal",
    }
}

/// Whether standard error gets colour: only on a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
pub fn stderr_colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// A failed command: a message, an optional hint and the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: u8,
    /// What went wrong.
    pub message: String,
    /// Error kind for `--json`: `bad_input`, `not_found`, `conflict`, `temporary`,
    /// `denied` or `internal`, one per exit code.
    pub kind: &'static str,
    /// How to fix it, where a flag or a command does.
    pub hint: Option<String>,
}

impl CliError {
    fn with_code(code: u8, message: impl Display) -> Self {
        CliError {
            code,
            message: message.to_string(),
            kind: kind_for(code),
            hint: None,
        }
    }

    /// Bad input (exit 2).
    pub fn bad_input(message: impl Display) -> Self {
        Self::with_code(EXIT_BAD_INPUT, message)
    }

    /// Any other failure (exit 1).
    pub fn other(message: impl Display) -> Self {
        Self::with_code(EXIT_INTERNAL, message)
    }

    /// `Ok` when nothing of a batch failed, else exit 1 with `message(failed)`: a batch
    /// command reports every item first, then fails as a whole.
    pub fn unless_failed(failed: usize, message: impl FnOnce(usize) -> String) -> CliResult {
        match failed {
            0 => Ok(()),
            n => Err(Self::other(message(n))),
        }
    }

    /// Failure with the exit code of `cause` (e.g. several failed deletes: the first's).
    pub fn caused_by(cause: &StorageError, message: impl Display) -> Self {
        CliError {
            hint: default_hint(cause),
            ..Self::with_code(exit_code(cause), message)
        }
    }

    /// Add (or replace) the hint.
    pub fn hint(mut self, hint: impl Display) -> Self {
        self.hint = Some(hint.to_string());
        self
    }

    /// Print to stderr (JSON with `--json`) and return the exit code.
    pub fn report(&self, json: bool) -> ExitCode {
        if json {
            let mut e = serde_json::json!({"kind": self.kind, "message": self.message, "exit_code": self.code});
            if let Some(h) = &self.hint {
                e["hint"] = h.as_str().into();
            }
            eprintln!("{}", serde_json::json!({ "error": e }));
        } else {
            let (red, yellow, reset) = if stderr_colour() {
                ("\x1b[1;31m", "\x1b[33m", "\x1b[0m")
            } else {
                ("", "", "")
            };
            eprintln!("{red}error:{reset} {}", self.message);
            if let Some(h) = &self.hint {
                eprintln!("{yellow}hint:{reset} {h}");
            }
        }
        ExitCode::from(self.code)
    }
}

/// The hint for an error whose cause a person can act on.
fn default_hint(e: &StorageError) -> Option<String> {
    match exit_code(e) {
        EXIT_TEMPORARY => Some(
            "this is temporary (the backend is unreachable, overloaded or timed out): run the command again later (exit code 5)".into(),
        ),
        EXIT_DENIED => Some(
            "check the credentials (access key and secret) and the permissions of the connection in your config".into(),
        ),
        _ => None,
    }
}

impl From<StorageError> for CliError {
    fn from(e: StorageError) -> Self {
        let code = exit_code(&e);
        CliError {
            code,
            hint: default_hint(&e),
            message: e.to_string(),
            kind: kind_for(code),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            // `strata get big | head`: the reader has what it wanted.
            return closed(e);
        }
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
            std::io::ErrorKind::PermissionDenied => EXIT_DENIED,
            _ => EXIT_INTERNAL,
        };
        CliError::with_code(code, e)
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// What every command gets.
pub struct Ctx {
    /// The configured buckets.
    pub strata: Strata,
    /// `--json`.
    pub json: bool,
    /// `--quiet`.
    pub quiet: bool,
    /// The config file's text, when there is one (to tell which buckets change sizes).
    config_text: Option<String>,
}

impl Ctx {
    /// Load the config (or the embedded default).
    pub fn new(config: Option<&Path>, json: bool, quiet: bool) -> CliResult<Self> {
        let (strata, config_text) = match config {
            Some(path) => (
                Strata::from_config(path)?,
                std::fs::read_to_string(path).ok(),
            ),
            None => (Strata::from_env()?, None),
        };
        Ok(Ctx {
            strata,
            json,
            quiet,
            config_text,
        })
    }

    /// A context over `strata` (tests).
    #[cfg(test)]
    pub fn with(strata: Strata, json: bool, quiet: bool) -> Self {
        Ctx {
            strata,
            json,
            quiet,
            config_text: None,
        }
    }

    /// Whether bucket `name` compresses what it stores (`[layers.compression]` or
    /// `[buckets.NAME.layers.compression]` in the config, or `STRATA_COMPRESSION` in an
    /// env-only setup): its listings then show stored (compressed) sizes, `head` the
    /// original ones.
    pub fn compresses(&self, name: &str) -> bool {
        /// The parts of the config file that say where compression is on.
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(default)]
            layers: Option<Layers>,
            #[serde(default)]
            buckets: std::collections::BTreeMap<String, BucketLayers>,
        }
        #[derive(serde::Deserialize)]
        struct BucketLayers {
            #[serde(default)]
            layers: Option<Layers>,
        }
        #[derive(serde::Deserialize)]
        struct Layers {
            #[serde(default)]
            compression: Option<serde::de::IgnoredAny>,
        }
        if self.config_text.is_none() {
            // An env-only setup turns compression on for its one bucket, `default`, with
            // STRATA_COMPRESSION (the embedded default has no codecs).
            return name == "default"
                && !self.strata.is_embedded()
                && std::env::var("STRATA_COMPRESSION")
                    .is_ok_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"));
        }
        let Some(cfg) = self
            .config_text
            .as_deref()
            .and_then(|t| storage_core::config::from_toml_str::<File>(t, "config").ok())
        else {
            return false;
        };
        // A bucket's own `[buckets.NAME.layers]` replaces the top-level `[layers]`.
        let layers = match cfg.buckets.get(name).and_then(|b| b.layers.as_ref()) {
            Some(own) => Some(own),
            None => cfg.layers.as_ref(),
        };
        layers.is_some_and(|l| l.compression.is_some())
    }

    /// Print a command's product (what was asked for): `human` as text, or `value` as one
    /// line of JSON with `--json`. Printed with `--quiet` too.
    pub fn emit<T: Serialize>(&self, human: impl Display, value: &T) {
        let mut out = std::io::stdout().lock();
        let _ = if self.json {
            writeln!(out, "{}", to_json(value))
        } else {
            let text = human.to_string();
            if text.is_empty() {
                Ok(())
            } else {
                writeln!(out, "{text}")
            }
        };
    }

    /// Print what a command that changes something did. With `--quiet` a success prints
    /// nothing (JSON is still printed with `--json`: a script asked for it).
    pub fn done<T: Serialize>(&self, human: impl Display, value: &T) {
        if self.quiet && !self.json {
            return;
        }
        self.emit(human, value);
    }

    /// A writer for a listing: one line per item as it arrives (NDJSON with `--json`).
    pub fn lines(&self) -> Lines {
        Lines {
            out: std::io::BufWriter::new(std::io::stdout()),
            json: self.json,
        }
    }

    /// Print a listing already in hand: each item as `human(item)`, or as its JSON line.
    pub fn list<'a, T: Serialize + 'a, D: Display>(
        &self,
        items: impl IntoIterator<Item = &'a T>,
        human: impl Fn(&T) -> D,
    ) -> CliResult {
        let mut lines = self.lines();
        for item in items {
            lines.item(human(item), item)?;
        }
        lines.flush()
    }

    /// A progress bar on stderr (hidden with `--quiet`, `--json`, or when stderr is not a
    /// terminal). `total` in bytes when `bytes`, else items.
    pub fn progress(&self, total: u64, bytes: bool, what: &str) -> ProgressBar {
        if self.quiet || self.json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        let template = if bytes {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// A listing being printed: each item is one line (text, or one JSON object with `--json`:
/// NDJSON). Lines are buffered and flushed by [`Lines::flush`], which listings call whenever
/// the next page is not there yet, so output appears page by page.
pub struct Lines {
    out: std::io::BufWriter<std::io::Stdout>,
    json: bool,
}

impl Lines {
    /// One item: `human` as text, or `value` as one JSON line with `--json`.
    pub fn item<T: Serialize>(&mut self, human: impl Display, value: &T) -> CliResult {
        let r = if self.json {
            writeln!(self.out, "{}", to_json(value))
        } else {
            writeln!(self.out, "{human}")
        };
        r.map_err(closed)
    }

    /// Print everything so far.
    pub fn flush(&mut self) -> CliResult {
        self.out.flush().map_err(closed)
    }
}

/// A write to stdout that failed. A closed pipe (`strata ls -r | head`) is how the reader
/// says it has enough: stop quietly, with success.
fn closed(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError {
            code: 0,
            message: String::new(),
            kind: "closed",
            hint: None,
        }
    } else {
        CliError::from(e)
    }
}

/// Bytes as `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
