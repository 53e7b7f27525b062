//! One module per command group. Each exposes a clap `Subcommand` (or `Args`) type with an
//! `async fn run(self, ctx: &Ctx) -> CliResult`, and `main.rs` adds one enum variant and one
//! match arm for it. Print with `ctx.emit(human_text, &serializable)` so `--json` works;
//! return `CliError`s (a `StorageError` converts and picks the exit code); draw progress with
//! `ctx.progress(total, bytes, "what")`.

pub mod buckets;
pub mod dataset;
pub mod doc;
pub mod mirror;
pub mod object;
pub mod serve;
pub mod sync;
