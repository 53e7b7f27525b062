//! Drift check: `docs/configuration.md` documents every configuration field, every value of
//! every configuration enum, and every environment variable the code reads.
//!
//! - Fields: each config struct is built below with a struct literal that sets every
//!   optional field, serialised to JSON, and each key must be a table row
//!   (`| \`name\` | ...`) under the heading of its TOML table. Adding a field to a config
//!   struct breaks the literal here (compile error) and, once added here, fails the test
//!   until the field is documented.
//! - Enum values: listed through exhaustive `match`es, so a new variant is a compile error
//!   here; each serialised value must appear in its table's section.
//! - Environment variables: every string literal matching `(STORAGE|AWS|R2|STRATA)_[A-Z0-9_]+`
//!   in the non-comment lines of `crates/*/src`, `xtask/src` and `tests/src` must be a table
//!   row under "## Environment variables".
//! - The other way round: every row names a field (or variable) the code has, so a renamed
//!   or removed one fails the test too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use storage_core::Secret;
use storage_r2::{Jurisdiction, R2Config};
use storage_s3::{CredentialSource, S3Config, ServerSideEncryption};
use strata::config::{
    BucketConfig, ConnectionConfig, FsConnection, MemoryConnection, ProviderConfig, StrataConfig,
};
use strata::layers::config::{
    BreakerConfig, CacheConfig, ChaosConfig, CodecName, CompressionConfig, CompressionRule,
    EncryptionConfig, FaultName, KeyConfig, LayersConfig, LimitConfig, MetricsConfig, RetryConfig,
    TimeoutConfig,
};
use strata::router::{
    HealthConfig, OffloadConfig, PolicyName, RouteConfig, SourceConfig, TenantConfig,
};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

fn doc() -> String {
    let path = workspace_root().join("docs/configuration.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The text under the `###` (or `##`) heading whose line is exactly `heading`, up to the
/// next heading of the same or a higher level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut start = None;
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(s) = start {
            let hashes = trimmed.chars().take_while(|c| *c == '#').count();
            if hashes > 0 && hashes <= level && trimmed[hashes..].starts_with(' ') {
                return &doc[s..offset];
            }
        } else if trimmed == heading {
            start = Some(offset + line.len());
        }
        offset += line.len();
    }
    match start {
        Some(s) => &doc[s..],
        None => panic!(
            "docs/configuration.md has no heading line `{heading}`; keep the headings this test looks for"
        ),
    }
}

/// Whether `section` has a table row whose first cell is `` `name` ``.
fn has_row(section: &str, name: &str) -> bool {
    let cell = format!("`{name}`");
    section.lines().any(|l| {
        l.trim_start()
            .strip_prefix('|')
            .and_then(|rest| rest.split('|').next())
            .is_some_and(|first| first.trim() == cell)
    })
}

/// The keys of a struct serialised to a JSON object.
fn keys<T: serde::Serialize>(value: &T) -> Vec<String> {
    match serde_json::to_value(value).expect("config structs serialise") {
        Value::Object(m) => m.keys().cloned().collect(),
        other => panic!("expected a JSON object, got {other}"),
    }
}

/// The first cells (without backticks) of the table rows in `section`, header row excluded.
fn row_names(section: &str) -> Vec<String> {
    section
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('|'))
        .filter_map(|rest| rest.split('|').next())
        .map(str::trim)
        .filter_map(|cell| cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')))
        .map(str::to_string)
        .collect()
}

/// The serialised names of enum `values` ([`value_name`] of each).
fn value_names<T: serde::Serialize>(values: &[T]) -> Vec<String> {
    values.iter().map(value_name).collect()
}

/// A serialised enum value (`"hedged"`), without quotes.
fn value_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value).expect("enum serialises") {
        Value::String(s) => s,
        Value::Object(m) => m
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_string)
            .expect("tagged enum has a `kind`"),
        other => panic!("unexpected enum form {other}"),
    }
}

fn s3_config() -> S3Config {
    S3Config {
        bucket: "media".into(),
        region: Some("us-east-1".into()),
        endpoint: Some("https://s3.example.com".into()),
        path_style: Some(true),
        allow_http: false,
        credentials: CredentialSource::Static,
        access_key_id: Some("AK".into()),
        secret_access_key: Some(Secret::new("SK")),
        session_token: Some(Secret::new("ST")),
        encryption: Some(ServerSideEncryption::SseKms {
            key_id: "arn".into(),
        }),
        conditional_put: true,
        conditional_delete: Some(true),
        bulk_delete: true,
        max_retries: Some(3),
        timeout: Some(Duration::from_secs(30)),
        connect_timeout: Some(Duration::from_secs(5)),
        cdn_url: Some("https://cdn.example.com".into()),
        part_size: Some(8 << 20),
        keep_alive: true,
    }
}

fn r2_config() -> R2Config {
    R2Config {
        account_id: "0123456789abcdef0123456789abcdef".into(),
        bucket: "media".into(),
        access_key_id: "AK".into(),
        secret_access_key: Secret::new("SK"),
        jurisdiction: Jurisdiction::Eu,
        endpoint: Some("https://r2.example.com".into()),
        allow_http: false,
        cdn_url: Some("https://cdn.example.com".into()),
        max_retries: Some(3),
        timeout: Some(std::time::Duration::from_secs(20)),
        connect_timeout: Some(std::time::Duration::from_secs(3)),
        part_size: Some(16 << 20),
        keep_alive: false,
    }
}

fn layers_config() -> LayersConfig {
    LayersConfig {
        metrics: Some(MetricsConfig {
            name: Some("media".into()),
            prefix_depth: 1,
        }),
        cache: Some(CacheConfig::default()),
        compression: Some(CompressionConfig {
            default: CodecName::Gzip,
            rules: vec![compression_rule()],
            min_size: 1024,
            level: Some(6),
        }),
        encryption: Some(EncryptionConfig {
            keys: vec![key_config()],
            primary: Some("k1".into()),
            allow_plaintext: false,
        }),
        retry: Some(RetryConfig::default()),
        breaker: Some(BreakerConfig {
            failure_threshold: 5,
            recovery_timeout: Duration::from_secs(30),
            failure_rate: Some(0.5),
            window: 20,
            min_calls: 10,
        }),
        limit: Some(LimitConfig { max_concurrency: 8 }),
        timeout: Some(TimeoutConfig::default()),
        chaos: Some(ChaosConfig::default()),
    }
}

fn compression_rule() -> CompressionRule {
    CompressionRule {
        content_type: "application/json".into(),
        codec: CodecName::Zstd,
    }
}

fn key_config() -> KeyConfig {
    KeyConfig {
        id: "k1".into(),
        key: Some(Secret::new("x")),
        key_env: Some("KEY_VAR".into()),
    }
}

fn route_config() -> RouteConfig {
    RouteConfig {
        bucket: Some("main".into()),
        connection: Some("aws".into()),
        prefix: Some("records".into()),
        offload: Some(offload_config()),
    }
}

fn offload_config() -> OffloadConfig {
    OffloadConfig {
        after_days: 30,
        bucket: Some("archive".into()),
        prefix: Some("old".into()),
        storage_class: Some("GLACIER_IR".into()),
    }
}

fn source_config() -> SourceConfig {
    SourceConfig {
        buckets: vec!["agent".into()],
        policy: PolicyName::Hedged,
        hedge_delay: Some(Duration::from_millis(50)),
        hedge_quantile: Some(0.95),
        hedge_floor: Some(Duration::from_millis(1)),
        hedge_cap: Some(Duration::from_millis(50)),
        hedge_budget: Some(0.1),
        hedge_within_bucket: Some(false),
    }
}

fn tenant_config() -> TenantConfig {
    TenantConfig {
        bucket: Some("shared".into()),
        prefix: Some("tenants/acme".into()),
    }
}

fn bucket_config() -> BucketConfig {
    BucketConfig {
        connection: "aws".into(),
        bucket: Some("acme-media".into()),
        prefix: Some("app".into()),
        cdn_url: Some("https://cdn.example.com".into()),
        failover: vec!["spare".into()],
        mirror: vec!["copy".into()],
        layers: Some(layers_config()),
    }
}

fn strata_config() -> StrataConfig {
    StrataConfig {
        connections: BTreeMap::from([(
            "aws".to_string(),
            ConnectionConfig {
                provider: ProviderConfig::S3(s3_config()),
                type_buckets: BTreeMap::new(),
            },
        )]),
        buckets: BTreeMap::from([("media".to_string(), bucket_config())]),
        layers: Some(layers_config()),
        bucket: Some("media".into()),
        routes: BTreeMap::from([("records".to_string(), route_config())]),
        sources: BTreeMap::from([("tide".to_string(), source_config())]),
        tenants: BTreeMap::from([("acme".to_string(), tenant_config())]),
        bucket_health: HealthConfig::default(),
        serve: None,
        telemetry: Some(telemetry_config()),
    }
}

fn telemetry_config() -> strata::config::TelemetryConfig {
    strata::config::TelemetryConfig {
        prometheus: Some(strata::config::PrometheusConfig {
            listen: Some("127.0.0.1:9464".into()),
            file: Some("strata.prom".into()),
            ..Default::default()
        }),
        otlp: Some(strata::config::OtlpConfig::new("http://localhost:4318")),
    }
}

fn connection(provider: ProviderConfig) -> ConnectionConfig {
    ConnectionConfig {
        provider,
        type_buckets: BTreeMap::from([("records".to_string(), "media".to_string())]),
    }
}

/// Every configuration table: its heading in docs/configuration.md and its field names.
fn tables() -> Vec<(&'static str, Vec<String>)> {
    let l = layers_config();
    vec![
        ("### Top level", keys(&strata_config())),
        (
            "### `[connections.NAME]` with `kind = \"s3\"`",
            keys(&connection(ProviderConfig::S3(s3_config()))),
        ),
        (
            "### `[connections.NAME]` with `kind = \"r2\"`",
            keys(&connection(ProviderConfig::R2(r2_config()))),
        ),
        (
            "### `[connections.NAME]` with `kind = \"fs\"`",
            keys(&connection(ProviderConfig::Fs(FsConnection {
                root: "./data".into(),
                durability: Default::default(),
            }))),
        ),
        (
            "### `[connections.NAME]` with `kind = \"memory\"`",
            keys(&connection(ProviderConfig::Memory(MemoryConnection {}))),
        ),
        (
            "### `[connections.NAME.encryption]` (s3: server-side encryption)",
            [
                ServerSideEncryption::SseKms { key_id: "k".into() },
                ServerSideEncryption::SseC {
                    key: Secret::new("k"),
                },
            ]
            .iter()
            .flat_map(keys)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        ),
        ("### `[buckets.NAME]`", keys(&bucket_config())),
        ("### `[layers]`", keys(&l)),
        ("### `[layers.metrics]`", keys(&l.metrics)),
        ("### `[layers.cache]`", keys(&l.cache)),
        ("### `[layers.compression]`", keys(&l.compression)),
        (
            "### `[layers.compression]` `rules` entries",
            keys(&compression_rule()),
        ),
        ("### `[layers.encryption]`", keys(&l.encryption)),
        (
            "### `[layers.encryption]` `keys` entries",
            keys(&key_config()),
        ),
        ("### `[layers.retry]`", keys(&l.retry)),
        ("### `[layers.breaker]`", keys(&l.breaker)),
        ("### `[layers.limit]`", keys(&l.limit)),
        ("### `[layers.timeout]`", keys(&l.timeout)),
        ("### `[layers.chaos]`", keys(&l.chaos)),
        ("### `[routes.NAME]`", keys(&route_config())),
        ("### `[routes.NAME.offload]`", keys(&offload_config())),
        ("### `[sources.NAME]`", keys(&source_config())),
        ("### `[tenants.NAME]`", keys(&tenant_config())),
        ("### `[bucket_health]`", keys(&HealthConfig::default())),
        (
            "### `[telemetry.prometheus]`",
            keys(telemetry_config().prometheus.as_ref().unwrap()),
        ),
        (
            "### `[telemetry.otlp]`",
            keys(telemetry_config().otlp.as_ref().unwrap()),
        ),
    ]
}

/// The serialised names of the listed variants of `$enum` (struct variants with a value for
/// each field), in order. They are also matched exhaustively, so a new variant of `$enum`
/// does not compile until it is listed.
macro_rules! every_variant {
    ($enum:ident: $($variant:ident $({ $($field:ident: $value:expr),+ })?),+ $(,)?) => {{
        let all = [$($enum::$variant $({ $($field: $value),+ })?),+];
        for v in &all {
            match v {
                $($enum::$variant $({ $($field: _),+ })?)|+ => {}
            }
        }
        value_names(&all)
    }};
}

/// Every value of every configuration enum, and the heading of the table it is set in.
/// Each enum is listed through [`every_variant!`]: a new variant does not compile until it
/// is listed here (and then documented).
fn enum_values() -> Vec<(&'static str, Vec<String>)> {
    let creds = every_variant!(CredentialSource: Auto, Static, Environment, Anonymous);
    let sse = every_variant!(ServerSideEncryption:
        SseS3,
        SseKms { key_id: "k".into() },
        SseC { key: Secret::new("k") },
    );
    let jurisdictions = every_variant!(Jurisdiction: Default, Eu, Fedramp);
    let codecs = every_variant!(CodecName: Gzip, Zstd, None);
    let faults = every_variant!(FaultName:
        Unavailable,
        Timeout,
        SlowDown,
        ServerError,
        AccessDenied,
    );
    let policies = every_variant!(PolicyName: Sequential, Parallel, Hedged);
    // ProviderConfig is #[non_exhaustive]: its kinds come from the build instead.
    let kinds = strata::enabled_providers()
        .into_iter()
        .map(str::to_string)
        .collect();
    vec![
        ("### `[connections.NAME]` with `kind = \"s3\"`", creds),
        (
            "### `[connections.NAME.encryption]` (s3: server-side encryption)",
            sse,
        ),
        (
            "### `[connections.NAME]` with `kind = \"r2\"`",
            jurisdictions,
        ),
        ("### `[layers.compression]`", codecs),
        ("### `[layers.chaos]`", faults),
        ("### `[sources.NAME]`", policies),
        ("## `strata.toml`", kinds),
    ]
}

/// Fails with `what`, then one entry a line, unless `found` is empty.
fn assert_none(found: Vec<String>, what: &str) {
    assert!(found.is_empty(), "{what}:\n  {}", found.join("\n  "));
}

/// Checks the section under each heading of `tables` against its names: `wrong(section,
/// names)` lists what is wrong there; fails with `what`, then `heading: entry` a line.
fn assert_sections(
    tables: Vec<(&'static str, Vec<String>)>,
    what: &str,
    wrong: impl Fn(&str, &[String]) -> Vec<String>,
) {
    let doc = doc();
    let mut found = Vec::new();
    for (heading, names) in tables {
        for entry in wrong(section(&doc, heading), &names) {
            found.push(format!("{heading}: {entry}"));
        }
    }
    assert_none(found, what);
}

#[test]
fn every_config_field_is_documented_under_its_table() {
    assert_sections(
        tables(),
        "docs/configuration.md lacks a table row (| `field` | type | default | meaning |) for",
        |text, fields| {
            fields
                .iter()
                .filter(|f| !has_row(text, f))
                .map(|f| format!("`{f}`"))
                .collect()
        },
    );
}

#[test]
fn every_documented_field_exists() {
    assert_sections(
        tables(),
        "docs/configuration.md documents fields the code does not have (renamed or removed?)",
        |text, fields| {
            row_names(text)
                .into_iter()
                .filter(|name| !fields.contains(name))
                .map(|name| format!("`{name}`"))
                .collect()
        },
    );
}

#[test]
fn every_config_enum_value_is_documented() {
    assert_sections(
        enum_values(),
        "docs/configuration.md does not mention these values in their table's section",
        |text, values| {
            values
                .iter()
                .filter(|v| {
                    !text.contains(&format!("\"{v}\"")) && !text.contains(&format!("`{v}`"))
                })
                .map(|v| format!("\"{v}\""))
                .collect()
        },
    );
}

/// String literals that look like environment variable names, in non-comment lines.
fn env_var_literals(text: &str) -> BTreeSet<String> {
    const PREFIXES: [&str; 4] = ["STORAGE_", "AWS_", "R2_", "STRATA_"];
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let bytes = line.as_bytes();
        for (i, _) in line.match_indices('"') {
            let rest = &line[i + 1..];
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
                .count();
            let candidate = &rest[..len];
            let closed = bytes.get(i + 1 + len) == Some(&b'"');
            if closed
                && PREFIXES
                    .iter()
                    .any(|p| candidate.len() > p.len() && candidate.starts_with(p))
            {
                found.insert(candidate.to_string());
            }
        }
    }
    found
}

fn env_vars_read_by_the_code() -> BTreeMap<String, PathBuf> {
    let root = workspace_root();
    let mut dirs = vec![root.join("xtask/src"), root.join("tests/src")];
    for c in std::fs::read_dir(root.join("crates"))
        .expect("crates/ exists")
        .flatten()
    {
        dirs.push(c.path().join("src"));
    }
    let files = dirs
        .iter()
        .flat_map(|d| strata_testkit::files_under(d))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"));
    let mut vars = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for v in env_var_literals(&text) {
            vars.entry(v).or_insert_with(|| f.clone());
        }
    }
    vars
}

#[test]
fn the_scanner_finds_literals_and_skips_comments() {
    let found = env_var_literals(
        "let a = env.get(\"STORAGE_BUCKET\");\n/// key_env = \"STRATA_EXAMPLE\"\nlet b = [\"R2_X\", \"R2_\", \"AWS_lower\", \"NOT_THIS\"];\n",
    );
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["R2_X", "STORAGE_BUCKET"]
    );
}

#[test]
fn every_environment_variable_is_documented() {
    let doc = doc();
    let env_section = section(&doc, "## Environment variables");
    let vars = env_vars_read_by_the_code();
    // The scan must see the well-known ones, or it is not scanning what it should.
    for known in [
        "STRATA_CONFIG",
        "STORAGE_PROVIDER",
        "R2_ACCOUNT_ID",
        "STRATA_SKIP_S3",
    ] {
        assert!(
            vars.contains_key(known),
            "the source scan did not find {known}"
        );
    }
    let root = workspace_root();
    let missing: Vec<String> = vars
        .iter()
        .filter(|(v, _)| !has_row(env_section, v))
        .map(|(v, f)| {
            format!(
                "`{v}` (read in {})",
                f.strip_prefix(&root).unwrap_or(f).display()
            )
        })
        .collect();
    assert_none(
        missing,
        "docs/configuration.md, section \"## Environment variables\", lacks a table row (| `NAME` | ...) for",
    );
    let stale: Vec<String> = row_names(env_section)
        .into_iter()
        .filter(|v| !vars.contains_key(v))
        .collect();
    assert!(
        stale.is_empty(),
        "docs/configuration.md documents environment variables no code reads (renamed or removed?): {stale:?}"
    );
}
