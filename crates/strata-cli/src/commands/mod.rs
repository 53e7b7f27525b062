//! One module per command group. Each exposes a clap `Subcommand` (or `Args`) type with an
//! `async fn run(self, ctx: &Ctx) -> CliResult` (a group of several commands declares its enum
//! and `run` together with `command_group!`), and `main.rs` adds one enum variant and one
//! match arm for it. Print with `ctx.emit(human_text, &serializable)` so `--json` works;
//! return `CliError`s (a `StorageError` converts and picks the exit code); draw progress with
//! `ctx.progress(total, bytes, "what")`.

/// A command group: its clap enum, and its `run`, which hands each variant's arguments to
/// the function written after it, `(ctx, args)` in, `CliResult` out. One table, so a new
/// command is one line and no variant can be left out of `run`.
macro_rules! command_group {
    (
        $(#[$meta:meta])*
        pub enum $group:ident {
            $( $(#[$variant_meta:meta])* $variant:ident($args:ty) => $run:expr, )*
        }
    ) => {
        $(#[$meta])*
        pub enum $group {
            $( $(#[$variant_meta])* $variant($args), )*
        }

        impl $group {
            /// Run the command.
            pub async fn run(self, ctx: &crate::output::Ctx) -> crate::output::CliResult {
                match self {
                    $( $group::$variant(a) => $run(ctx, a).await, )*
                }
            }
        }
    };
}

pub mod buckets;
pub mod dataset;
pub mod doc;
pub mod mirror;
pub mod object;
pub mod serve;
pub mod sync;

/// Repeatable `FLAG k=v` arguments as (key, value) pairs, the key trimmed; `example` (`k=v`)
/// shows the form in the error.
pub(crate) fn parse_pairs<C: FromIterator<(String, String)>>(
    flag: &str,
    example: &str,
    pairs: &[String],
) -> crate::output::CliResult<C> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| {
                    crate::output::CliError::bad_input(format!(
                        "{flag} `{p}` is not K=V, e.g. {flag} {example}"
                    ))
                })
        })
        .collect()
}
