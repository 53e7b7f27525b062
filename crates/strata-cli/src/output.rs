//! Shared context of every command: the configured setup, output mode, errors and exit codes.

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use storage_core::{ErrorKind, StorageError};
use strata::Strata;

/// Exit code: usage or bad input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: not found.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code: precondition failed or conflict.
pub const EXIT_CONFLICT: u8 = 4;
/// Exit code: anything else.
pub const EXIT_OTHER: u8 = 1;

/// A failed command: a message and the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: u8,
    /// What went wrong and how to fix it.
    pub message: String,
    /// Error kind for `--json`.
    pub kind: &'static str,
}

impl CliError {
    /// Bad input (exit 2).
    pub fn bad_input(message: impl Display) -> Self {
        CliError {
            code: EXIT_BAD_INPUT,
            message: message.to_string(),
            kind: ErrorKind::BadInput.as_str(),
        }
    }

    /// Any other failure (exit 1).
    pub fn other(message: impl Display) -> Self {
        CliError {
            code: EXIT_OTHER,
            message: message.to_string(),
            kind: ErrorKind::Other.as_str(),
        }
    }

    /// Print to stderr (JSON with `--json`) and return the exit code.
    pub fn report(&self, json: bool) -> ExitCode {
        if json {
            let v = serde_json::json!({"error": {"kind": self.kind, "message": self.message, "exit_code": self.code}});
            eprintln!("{v}");
        } else {
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.code)
    }
}

impl From<StorageError> for CliError {
    fn from(e: StorageError) -> Self {
        let kind = e.kind();
        let code = match kind {
            ErrorKind::NotFound => EXIT_NOT_FOUND,
            ErrorKind::Conflict => EXIT_CONFLICT,
            ErrorKind::BadInput => EXIT_BAD_INPUT,
            _ => EXIT_OTHER,
        };
        CliError {
            code,
            message: e.to_string(),
            kind: kind.as_str(),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            EXIT_NOT_FOUND
        } else {
            EXIT_OTHER
        };
        CliError {
            code,
            message: e.to_string(),
            kind: if code == EXIT_NOT_FOUND {
                "not_found"
            } else {
                "other"
            },
        }
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
}

impl Ctx {
    /// Load the config (or the embedded default).
    pub fn new(config: Option<&Path>, json: bool, quiet: bool) -> CliResult<Self> {
        let strata = match config {
            Some(path) => Strata::from_config(path)?,
            None => Strata::from_env()?,
        };
        Ok(Ctx {
            strata,
            json,
            quiet,
        })
    }

    /// Print one result: `human` as text, or `value` as JSON with `--json`.
    pub fn emit<T: Serialize>(&self, human: impl Display, value: &T) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            );
        } else {
            let text = human.to_string();
            if !text.is_empty() {
                println!("{text}");
            }
        }
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
