//! The longer help texts: addresses, config lookup, exit codes and examples.
//!
//! Kept here, as constants, so `main.rs` and the command modules stay readable and the
//! snapshot tests (`tests/snapshots/`) show every change to them.

/// `strata --help`, after the list of commands.
pub const MAIN: &str = "\
Addresses:
  NAME:KEY         an object in bucket NAME (photos:2026/cat.jpg)
  NAME: or NAME:PREFIX
                   a whole bucket, or everything under PREFIX (photos:2026/)
  anything else    a local path (./cat.jpg, /tmp/x, C:\\x, ./odd:name)

Configuration (first found wins):
  1. --config FILE           a TOML file naming connections and buckets (s3, r2, fs, memory)
  2. STRATA_CONFIG=FILE      the same, from the environment
  3. STORAGE_PROVIDER / STORAGE_BACKEND / R2_* variables (env-only setups, see docs)
  4. the embedded default    a local folder, $STRATA_HOME or ./.strata; each NAME is a
                             sub-folder, created on first write. No account, no server.

Exit codes:
  0  ok
  1  internal error (a bug, or a failure of no other kind)
  2  bad input: a flag, an address, a key or the config file; fix the command
  3  not found
  4  conflict: a condition (--if-match, --if-absent) failed or writers kept colliding
  5  temporary backend failure (unreachable, timeout, throttled, circuit open): retry later
  6  access denied or not authenticated: check credentials and permissions

Output is text for people; --json prints JSON for scripts: one object, or for listings one
object per line (NDJSON), as items arrive. Errors go to stderr (as JSON with --json).

Examples:
  strata put photos:2026/cat.jpg --file cat.jpg --tag project=apollo
  strata ls -r --json photos:2026/ | jq -r .key
  strata --config prod.toml get records:users/42.json -o user.json
  strata doc update app:users 42 --set plan=pro --create
  strata completions bash > /etc/bash_completion.d/strata
";

/// `strata put --help`.
pub const PUT: &str = "\
Examples:
  strata put photos:2026/cat.jpg --file cat.jpg
  strata put notes:todo.txt --data 'buy milk' --meta owner=ana --tag team=ops
  tar c dir | strata put backups:dir.tar --stdin --if-absent
";

/// `strata get --help`.
pub const GET: &str = "\
`get KEY --any SOURCE` and `get KEY --route ROUTE` are the canonical forms of what
`strata buckets get` did (kept as an alias for scripts).

Examples:
  strata get photos:2026/cat.jpg -o cat.jpg
  strata get notes:todo.txt | less
  strata --config prod.toml get users/42.json --any users --policy hedged:50ms
";

/// `strata ls --help`.
pub const LS: &str = "\
Without -r, one level: sub-folders (ending in /) then objects. With -r, every object below,
printed page by page as the backend answers (S3 and R2 list in key order; a local folder in
folder order). With --json, one JSON object per line (NDJSON): {\"key\", \"size\",
\"last_modified\", \"etag\"} per object, {\"prefix\"} per sub-folder. Where the bucket compresses,
-l marks stored (compressed) sizes with * and --json adds \"size_is\": \"stored\".
`ls PREFIX --any SOURCE` / `--route ROUTE` are the canonical forms of `strata buckets ls`.

Examples:
  strata ls photos:
  strata ls -rl photos:2026/
  strata ls -r --json photos: | jq -r 'select(.size > 1000000) | .key'
";

/// `strata rm --help`.
pub const RM: &str = "\
Examples:
  strata rm photos:2026/cat.jpg photos:2026/dog.jpg
  strata rm photos: --prefix 2025/ --dry-run
  strata rm scratch: --all
";

/// `strata cp --help` and `strata mv --help`.
pub const CP: &str = "\
Examples:
  strata cp ./report.pdf docs:2026/report.pdf
  strata cp -r photos:2026/ ./backup/
  strata cp -r ./site/ web: --dry-run
";

/// `strata stat --help`.
pub const STAT: &str = "\
`size` is the original size (what `get` returns). Where the bucket compresses, `stored`
(--json: `stored_size`) is the size of the stored bytes.

Examples:
  strata stat photos:2026/cat.jpg
  strata stat --json photos:2026/cat.jpg | jq -r .etag
";

/// `strata presign --help`.
pub const PRESIGN: &str = "\
Examples:
  strata presign media:video.mp4 --expires 15m
  strata presign uploads:in/file.bin --method put --expires 1h
";

/// `strata stats --help`.
pub const STATS: &str = "\
Counts what a listing shows: where the bucket compresses, bytes are stored (compressed)
bytes, and the output says so.

Examples:
  strata stats photos:
  strata stats --json photos:2026/
";

/// `strata buckets info --help`.
pub const BUCKETS_INFO: &str = "\
Examples:
  strata buckets info
  strata --config prod.toml buckets info --json
";

/// `strata buckets health --help`.
pub const BUCKETS_HEALTH: &str = "\
With --json, one JSON object per bucket and line: {\"bucket\", \"provider\", \"ok\",
\"latency_ms\", \"error\", \"exit_code\"}.

Examples:
  strata buckets health
  strata --config prod.toml buckets health media archive --json
";

/// `strata doc --help`.
pub const DOC: &str = "\
A collection is NAME:PREFIX: documents live at PREFIX/{id}.json in bucket NAME, or follow
--scheme 'messages/{thread}/{id}.json'.

Examples:
  strata doc put app:users 42 --data '{\"name\": \"Ana\"}'
  strata doc update app:users 42 --set plan=pro --create
  strata doc get app:users 42 --json
";

/// `strata dataset --help`.
pub const DATASET: &str = "\
Examples:
  strata dataset write finance ana --format parquet --file tx.jsonl
  strata dataset search finance ana coffee --from 2026-01-01
  strata dataset compact finance ana
";

/// `strata sync --help`.
pub const SYNC: &str = "\
Examples:
  strata --config prod.toml sync media: backup:
  strata --config prod.toml sync media:2026/ backup: --dry-run
";

/// `strata migrate --help`.
pub const MIGRATE: &str = "\
Examples:
  strata --config move.toml migrate old-s3: new-r2:
  strata --config move.toml migrate old-s3:2025/ new-r2:archive/2025/ --dry-run
";

/// `strata offload --help`.
pub const OFFLOAD: &str = "\
Examples:
  strata --config prod.toml offload logs --dry-run
  strata --config prod.toml offload logs --older-than 90d
";

/// `strata completions --help`.
pub const COMPLETIONS: &str = "\
Examples:
  strata completions bash > ~/.local/share/bash-completion/completions/strata
  strata completions zsh > \"${fpath[1]}/_strata\"
  strata completions fish > ~/.config/fish/completions/strata.fish
";

/// `strata man --help`.
pub const MAN: &str = "\
Examples:
  strata man | man -l -
  strata man --out-dir /usr/local/share/man/man1
";
