//! The bad-input table (issue 17): ordinary mistakes through the CLI, the config file and
//! the environment. Each case asserts the exit code, that the message names what was wrong
//! and how to fix it, and that the stores are byte for byte what they were.
//!
//! Run with `--nocapture` to print the table with each case's exit code.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::Target;

/// Where a case runs.
#[derive(Clone, Copy)]
enum On {
    /// The embedded default under a fresh `STRATA_HOME`.
    Home,
    /// A config file: [`BASE`] followed by this text.
    Config(&'static str),
    /// A config file of exactly this text (for broken files).
    RawConfig(&'static str),
}

struct Case {
    what: &'static str,
    on: On,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    stdin: Option<&'static [u8]>,
    code: i32,
    /// Each must appear in standard error: what was wrong, and how to fix it.
    says: &'static [&'static str],
}

/// An fs connection on the case's root with one bucket, `data`.
const BASE: &str =
    "[connections.disk]\nkind = 'fs'\nroot = '{root}'\n\n[buckets.data]\nconnection = 'disk'\n";

/// An S3 connection that is never contacted (every case fails before a request).
const S3: &str = "[connections.aws]\nkind = 's3'\nregion = 'us-east-1'\nendpoint = 'http://127.0.0.1:9'\nallow_http = true\n";

/// A `logs` route on `data:dir/` whose old objects move to the `archive` bucket.
const OFFLOAD: &str = "[buckets.archive]\nconnection = 'disk'\n[routes.logs]\nbucket = 'data'\nprefix = 'dir'\n[routes.logs.offload]\nafter_days = 30\nbucket = 'archive'\n";

const fn case(
    what: &'static str,
    on: On,
    args: &'static [&'static str],
    code: i32,
    says: &'static [&'static str],
) -> Case {
    Case {
        what,
        on,
        args,
        env: &[],
        stdin: None,
        code,
        says,
    }
}

const fn with_env(mut c: Case, env: &'static [(&'static str, &'static str)]) -> Case {
    c.env = env;
    c
}

const fn with_stdin(mut c: Case, stdin: &'static [u8]) -> Case {
    c.stdin = Some(stdin);
    c
}

use On::{Config, Home, RawConfig};

const LS: &[&str] = &["ls", "data:"];

/// The cases, one a line so the table reads as one (rustfmt would spread each over seven).
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    vec![
        // Keys and addresses.
        case("address without NAME:", Home, &["get", "not-an-address"], 2, &["not-an-address", "NAME:KEY"]),
        case("address with no key", Home, &["get", "data:"], 2, &["no key", "data:path/file.txt"]),
        case("key with leading /", Home, &["put", "data://abs", "--data", "x"], 2, &["/abs", "drop the leading slash"]),
        case("key with //", Home, &["put", "data:a//b", "--data", "x"], 2, &["a//b", "remove the doubled `/`"]),
        case("key with ..", Home, &["put", "data:a/../k", "--data", "x"], 2, &["`..` segment", "from the bucket's root"]),
        case("key with .", Home, &["put", "data:./k", "--data", "x"], 2, &["`.` segment", "from the bucket's root"]),
        case("key with a line break", Home, &["put", "data:a\nb", "--data", "x"], 2, &["control characters", "remove it"]),
        case("key with an escape character", Home, &["put", "data:a\u{1b}[31mb", "--data", "x"], 2, &["control characters", "remove it"]),
        case("key in the reserved folder", Home, &["put", "data:.strata-sys/x", "--data", "x"], 2, &[".strata-sys", "use another folder name"]),
        case("key over 1024 bytes", Home, &["put", "data:{long_key}", "--data", "x"], 2, &["at most 1024 bytes", "shorten it"]),
        case("get key with ..", Home, &["get", "data:../other/x"], 2, &["`..` segment", "from the bucket's root"]),
        case("stat key with //", Home, &["stat", "data:dir//a.txt"], 2, &["dir//a.txt", "remove the doubled `/`"]),
        case("rm key with ..", Home, &["rm", "data:dir/../k"], 2, &["`..` segment", "from the bucket's root"]),
        case("ls prefix with ..", Home, &["ls", "data:../"], 2, &["`..` segment", "from the bucket's root"]),
        case("missing object", Home, &["get", "data:missing.txt"], 3, &["missing.txt", "not found"]),
        case("stat of a missing object", Home, &["stat", "data:nope"], 3, &["nope", "not found"]),
        // Bucket names.
        case("bucket name of 65 characters", Home, &["ls", "{long_name}:"], 2, &["must be 1-64 characters", "letters, digits"]),
        case("bucket name with a dot is a local path", Home, &["get", "da.ta:k"], 2, &["not a remote address", "NAME:KEY"]),
        case("unknown bucket in a config", Config(""), &["ls", "nope:"], 2, &["nope", "valid names: data"]),
        case("config bucket name with a space", Config("[buckets.'my bucket']\nconnection = 'disk'\n"), LS, 2, &["buckets.my bucket", "letters, digits, `-` and `_`"]),
        case("s3 bucket name with capitals", Config("[buckets.media]\nconnection = 'aws'\nbucket = 'My_Bucket'\n{s3}"), LS, 2, &["My_Bucket", "3-63 characters of a-z"]),
        case("s3 bucket name too short", Config("[buckets.media]\nconnection = 'aws'\nbucket = 'ab'\n{s3}"), LS, 2, &["`ab` has 2 characters", "3-63 characters"]),
        case("bucket on an unknown connection", Config("[buckets.x]\nconnection = 'nope'\n"), LS, 2, &["buckets.x.connection", "known connections: disk"]),
        case("fs bucket folder with ..", Config("[buckets.up]\nconnection = 'disk'\nbucket = '../up'\n"), LS, 2, &["buckets.up.bucket", "from the bucket's root"]),
        case("bucket prefix with ..", Config("[buckets.p]\nconnection = 'disk'\nprefix = 'a/../b'\n"), LS, 2, &["buckets.p.prefix", "from the bucket's root"]),
        // Destructive commands.
        case("mv onto itself", Home, &["mv", "data:k", "data:k"], 2, &["same object", "different destination"]),
        case("cp onto itself", Home, &["cp", "data:k", "data:k"], 2, &["same object", "different destination"]),
        case("mv into its own folder name", Home, &["mv", "data:dir/a.txt", "data:dir/"], 2, &["same object", "different destination"]),
        case("mv -r onto itself", Home, &["mv", "-r", "data:dir/", "data:dir/"], 2, &["same folder", "different destination"]),
        case("mv -r into a sub-folder", Home, &["mv", "-r", "data:dir/", "data:dir/sub/"], 2, &["overlap", "outside the source"]),
        case("mv -r a bucket into its folder", Home, &["mv", "-r", "data:", "data:dir/"], 2, &["overlap", "outside the source"]),
        case("cp -r a folder to its bucket root", Home, &["cp", "-r", "data:dir/", "data:"], 2, &["overlap", "not above it"]),
        case("mv to the file behind the object", Home, &["mv", "data:k", "{home}/data/k"], 2, &["same object", "different destination"]),
        case("mv -r from the folder behind the bucket", Home, &["mv", "-r", "{home}/data/", "data:copy/"], 2, &["overlap", "outside the source"]),
        case("mv through two names of one folder", Config("[buckets.alias]\nconnection = 'disk'\nbucket = 'data'\n"), &["mv", "data:k", "alias:k"], 2, &["same object", "different destination"]),
        case("mv -r through two names of one folder", Config("[buckets.alias]\nconnection = 'disk'\nbucket = 'data'\n"), &["mv", "-r", "data:dir/", "alias:dir/"], 2, &["same folder", "different destination"]),
        case("mv through a prefixed name of the same folder", Config("[buckets.sub]\nconnection = 'disk'\nbucket = 'data'\nprefix = 'dir'\n"), &["mv", "data:dir/a.txt", "sub:a.txt"], 2, &["same object", "different destination"]),
        case("cp a prefix without -r", Home, &["cp", "data:dir/", "other:"], 2, &["is a prefix", "add -r"]),
        case("cp a local folder without -r", Home, &["cp", "{dir}/folder", "data:f"], 2, &["is a folder", "add -r"]),
        case("cp between two local paths", Home, &["cp", "{dir}/a.txt", "{dir}/b.txt"], 2, &["both addresses are local", "use your shell's cp"]),
        case("cp a missing local file", Home, &["cp", "{dir}/missing.txt", "data:m"], 3, &["missing.txt", "No such file"]),
        case("rm with an empty prefix", Home, &["rm", "data:", "--prefix", ""], 2, &["every object of `data:`", "--all"]),
        case("rm with prefix /", Home, &["rm", "data:", "--prefix", "/"], 2, &["every object of `data:`", "--all"]),
        case("rm a bucket without a key", Home, &["rm", "data:"], 2, &["no key", "data:path/file.txt"]),
        case("rm --all with a key", Home, &["rm", "data:k", "--all"], 2, &["names a key", "give the bucket alone"]),
        case("rm --prefix over two buckets", Home, &["rm", "data:", "other:", "--prefix", "dir"], 2, &["exactly one NAME:", "--prefix 2025/"]),
        case("rm --prefix with ..", Home, &["rm", "data:", "--prefix", "../x"], 2, &["`..` segment", "from the bucket's root"]),
        case("rm --all --dry-run deletes nothing", Home, &["rm", "data:", "--all", "--dry-run"], 0, &[]),
        case("rm --dry-run of keys deletes nothing", Home, &["rm", "data:k", "data:dir/a.txt", "--dry-run"], 0, &[]),
        case("mv -r --dry-run moves nothing", Home, &["mv", "-r", "data:dir/", "other:moved/", "--dry-run"], 0, &[]),
        case("sync --dry-run copies nothing", Home, &["sync", "data:", "other:", "--dry-run"], 0, &[]),
        case("sync onto itself", Home, &["sync", "data:", "data:"], 2, &["overlap", "outside the source"]),
        case("sync into its own sub-folder", Home, &["sync", "data:", "data:backup/"], 2, &["overlap", "outside the source"]),
        case("migrate through two names of one folder", Config("[buckets.alias]\nconnection = 'disk'\nbucket = 'data'\n"), &["migrate", "data:dir", "alias:"], 2, &["overlap", "outside the source"]),
        case("sync with the prefix given twice", Home, &["sync", "data:dir", "other:", "--prefix", "dir"], 2, &["already has a prefix", "not both"]),
        case("migrate --no-verify", Home, &["migrate", "data:", "other:", "--no-verify"], 2, &["always verifies", "strata sync --no-verify"]),
        case("offload --dry-run moves nothing", Config(OFFLOAD), &["offload", "logs", "--older-than", "0s", "--dry-run"], 0, &[]),
        case("offload of a route without an offload target", Config("[routes.records]\nbucket = 'data'\n"), &["offload", "records"], 2, &["records", "[routes.records.offload]"]),
        case("offload --older-than soon", Config(""), &["offload", "records", "--older-than", "soon"], 2, &["`soon` is not a duration", "e.g. 30s"]),
        // Files and standard input.
        case("put with no source", Home, &["put", "data:important.json"], 2, &["nothing to upload", "--stdin"]),
        with_stdin(case("put --stdin with empty input", Home, &["put", "data:important.json", "--stdin"], 2, &["standard input is empty", "--allow-empty"]), b""),
        with_stdin(case("put --file - with empty input", Home, &["put", "data:important.json", "--file", "-"], 2, &["standard input is empty", "--allow-empty"]), b""),
        case("put an empty file", Home, &["put", "data:k", "--file", "{dir}/empty.txt"], 2, &["empty.txt is empty", "--allow-empty"]),
        case("put empty --data", Home, &["put", "data:k", "--data", ""], 2, &["--data is empty", "--allow-empty"]),
        case("put a missing file", Home, &["put", "data:k", "--file", "{dir}/missing.txt"], 2, &["cannot open", "missing.txt"]),
        case("put a folder as a file", Home, &["put", "data:k", "--file", "{dir}/folder"], 2, &["cannot read", "folder"]),
        case("put --data with --stdin", Home, &["put", "data:k", "--data", "x", "--stdin"], 2, &["--stdin", "cannot be used with"]),
        case("put --if-absent on an existing object", Home, &["put", "data:k", "--data", "x", "--if-absent"], 4, &["already exists", "k"]),
        case("put --if-match with a stale ETag", Home, &["put", "data:k", "--data", "x", "--if-match", "\"stale\""], 4, &["precondition", "k"]),
        case("put --if-absent with --if-match", Home, &["put", "data:k", "--data", "x", "--if-absent", "--if-match", "e"], 2, &["--if-absent", "cannot be used with"]),
        // Metadata and headers.
        case("content type with CR LF", Home, &["put", "data:k", "--data", "x", "--content-type", "text/plain\r\nX-Evil: 1"], 2, &["content type", "printable ASCII"]),
        case("cache control with LF", Home, &["put", "data:k", "--data", "x", "--cache-control", "no-cache\nX: y"], 2, &["cache control", "remove line breaks"]),
        case("content disposition with CR", Home, &["put", "data:k", "--data", "x", "--content-disposition", "attachment\r"], 2, &["content disposition", "printable ASCII"]),
        case("content encoding with a tab", Home, &["put", "data:k", "--data", "x", "--content-encoding", "gzip\t"], 2, &["content encoding", "control character"]),
        case("content type not ASCII", Home, &["put", "data:k", "--data", "x", "--content-type", "tëxt/plain"], 2, &["content type", "percent-encode"]),
        case("content type with a bell on --file", Home, &["put", "data:k", "--file", "{dir}/a.txt", "--content-type", "a\u{7}b"], 2, &["content type", "printable ASCII"]),
        case("metadata name with a space", Home, &["put", "data:k", "--data", "x", "--meta", "bad name=v"], 2, &["metadata name `bad name`", "ASCII letters, digits"]),
        case("metadata without =", Home, &["put", "data:k", "--data", "x", "--meta", "owner"], 2, &["`owner` is not K=V", "--meta owner=ana"]),
        case("metadata value with LF", Home, &["put", "data:k", "--data", "x", "--meta", "k=a\nb"], 2, &["metadata `k`", "printable ASCII"]),
        case("metadata value not ASCII", Home, &["put", "data:k", "--data", "x", "--meta", "k=é"], 2, &["metadata `k`", "encode other text first"]),
        case("metadata over 2 KiB", Home, &["put", "data:k", "--data", "x", "--meta", "k={big}"], 2, &["at most 2048 bytes", "store large values in the object body"]),
        // Presign expiry.
        case("presign longer than 7 days", Home, &["presign", "data:k", "--expires", "8d"], 2, &["7 day maximum", "use at most 7d"]),
        case("presign expiry not a duration", Home, &["presign", "data:k", "--expires", "soon"], 2, &["`soon` is not a duration", "e.g. 30s"]),
        case("presign expiry 0s", Home, &["presign", "data:k", "--expires", "0s"], 2, &["expires", "at least 1 second"]),
        case("presign expiry 500ms", Home, &["presign", "data:k", "--expires", "500ms"], 2, &["expires", "at least 1 second"]),
        case("presign expiry negative", Home, &["presign", "data:k", "--expires=-1h"], 2, &["`-1h` is not a duration", "e.g. 30s"]),
        case("presign method delete", Home, &["presign", "data:k", "--method", "delete"], 2, &["invalid value 'delete'", "possible values: get, put"]),
        case("presign on a local folder", Home, &["presign", "data:k"], 2, &["`data` is a local folder", "use an s3 or r2 bucket"]),
        // TTL.
        case("doc ttl 0s", Home, &["doc", "put", "app:notes", "n1", "--data", "{}", "--ttl", "0s"], 2, &["--ttl 0s", "at least 1s"]),
        case("doc ttl 500ms", Home, &["doc", "put", "app:notes", "n1", "--data", "{}", "--ttl", "500ms"], 2, &["--ttl 500ms", "--ttl never"]),
        case("doc ttl past the year 9999", Home, &["doc", "put", "app:notes", "n1", "--data", "{}", "--ttl", "1000000000d"], 2, &["year 9999", "shorter TTL"]),
        case("doc ttl not a duration", Home, &["doc", "put", "app:notes", "n1", "--data", "{}", "--ttl", "soon"], 2, &["--ttl soon", "e.g. 30s"]),
        // Config values.
        case("config file missing", RawConfig("{missing}"), LS, 2, &["cannot read the config file", "No such file"]),
        case("config TOML syntax error", RawConfig("[connections.disk\nkind = 'fs'\n"), LS, 2, &[".toml:1: connections.disk", "unclosed table, expected `]`"]),
        case("config unknown top-level key", RawConfig("colour = 'red'\n[connections.disk]\nkind = 'fs'\nroot = '{root}'\n"), LS, 2, &[".toml:1: colour", "unknown field `colour`"]),
        case("unknown key in a bucket", Config("colour = 'red'\n"), LS, 2, &[".toml:7: buckets.data.colour", "expected one of `connection`"]),
        case("connection without kind", Config("[connections.x]\nroot = '/tmp'\n"), LS, 2, &["connections.x", "set kind = \"s3\""]),
        case("connection of an unknown kind", Config("[connections.x]\nkind = 'ftp'\n"), LS, 2, &["kind `ftp` is not available", "allowed: fs, memory, s3, r2"]),
        case("wrong type in an s3 connection", Config("[connections.bad]\nkind = 's3'\nregion = 'us-east-1'\ntimeout = 30\n"), LS, 2, &[".toml:10: connections.bad.timeout", "invalid type: integer `30`"]),
        case("unknown key in an s3 connection", Config("[connections.bad]\nkind = 's3'\nregoin = 'x'\n"), LS, 2, &[".toml:9: connections.bad.regoin", "expected one of"]),
        case("empty S3 secret_access_key", Config("[buckets.media]\nconnection = 'aws'\n{s3}access_key_id = 'AK'\nsecret_access_key = ''\n"), LS, 2, &["connections.aws.secret_access_key", "is empty; set the key"]),
        case("empty S3 access_key_id", Config("[buckets.media]\nconnection = 'aws'\n{s3}access_key_id = ''\nsecret_access_key = 'x'\n"), LS, 2, &["connections.aws.access_key_id", "is empty; set the key"]),
        case("S3 secret with a trailing newline", Config("[buckets.media]\nconnection = 'aws'\n{s3}access_key_id = 'AK'\nsecret_access_key = \"SK\\n\"\n"), LS, 2, &["connections.aws.secret_access_key", "strip it"]),
        case("S3 secret without a key id", Config("[buckets.media]\nconnection = 'aws'\n{s3}secret_access_key = 'x'\n"), LS, 2, &[".toml:9: connections.aws.access_key_id", "AWS_ACCESS_KEY_ID"]),
        case("S3 connect_timeout 0s", Config("[buckets.media]\nconnection = 'aws'\n{s3}connect_timeout = '0s'\n"), LS, 2, &["connections.aws.connect_timeout", "more than zero"]),
        case("S3 timeout 0s", Config("[buckets.media]\nconnection = 'aws'\n{s3}timeout = '0s'\n"), LS, 2, &["connections.aws.timeout", "more than zero"]),
        case("S3 timeout not a duration", Config("[buckets.media]\nconnection = 'aws'\n{s3}timeout = 'soon'\n"), LS, 2, &["connections.aws.timeout", "e.g. 30s"]),
        case("S3 endpoint not a URL", Config("[buckets.media]\nconnection = 'aws'\n[connections.aws]\nkind = 's3'\nendpoint = 'not a url'\n"), LS, 2, &["connections.aws.endpoint", "write e.g. https://"]),
        case("S3 plain-HTTP endpoint", Config("[buckets.media]\nconnection = 'aws'\n[connections.aws]\nkind = 's3'\nendpoint = 'http://s3.example.com'\n"), LS, 2, &["plain HTTP", "allow_http = true"]),
        case("S3 region with a space", Config("[buckets.media]\nconnection = 'aws'\n[connections.aws]\nkind = 's3'\nregion = 'eu west'\n"), LS, 2, &["connections.aws.region", "such as us-east-1"]),
        case("S3 part_size below 5 MiB", Config("[buckets.media]\nconnection = 'aws'\n{s3}part_size = 1000\n"), LS, 2, &["connections.aws.part_size", "5 MiB"]),
        case("SSE-C key of the wrong length", Config("[buckets.media]\nconnection = 'aws'\n{s3}encryption = { kind = 'sse-c', key = 'c2hvcnQ=' }\n"), LS, 2, &[".toml:14: connections.aws.encryption.key", "32 bytes, base64-encoded"]),
        case("timeout operation 0s", Config("[layers.timeout]\noperation = '0s'\n"), LS, 2, &[".toml:8: layers.timeout.operation", "more than zero"]),
        case("timeout idle not a duration", Config("[layers.timeout]\nidle = 'soon'\n"), LS, 2, &[".toml:8: layers.timeout.idle", "e.g. 30s"]),
        case("breaker failure_threshold 0", Config("[layers.breaker]\nfailure_threshold = 0\n"), LS, 2, &[".toml:8: layers.breaker.failure_threshold", "at least 1"]),
        case("breaker failure_threshold negative", Config("[layers.breaker]\nfailure_threshold = -1\n"), LS, 2, &["layers.breaker.failure_threshold", "invalid value: integer `-1`"]),
        case("retry max_attempts 0", Config("[layers.retry]\nmax_attempts = 0\n"), LS, 2, &[".toml:8: layers.retry.max_attempts", "at least 1"]),
        case("limit max_concurrency 0", Config("[layers.limit]\nmax_concurrency = 0\n"), LS, 2, &[".toml:8: layers.limit.max_concurrency", "at least 1"]),
        case("gzip level 99", Config("[layers.compression]\ndefault = 'gzip'\nlevel = 99\n"), LS, 2, &[".toml:9: layers.compression.level", "gzip takes 0-9"]),
        case("gzip level 12 on one bucket", Config("[buckets.data.layers.compression]\ndefault = 'gzip'\nlevel = 12\n"), LS, 2, &[".toml:9: buckets.data.layers.compression.level", "use 0-9"]),
        case("unknown codec", Config("[layers.compression]\ndefault = 'lz4'\n"), LS, 2, &["layers.compression.default", "expected one of `gzip`, `zstd`, `none`"]),
        case("chaos error_rate above 1", Config("[layers.chaos]\nerror_rate = 2.0\n"), LS, 2, &["layers.chaos.error_rate", "0"]),
        case("encryption key from an unset variable", Config("[layers.encryption]\nkeys = [{ id = 'k1', key_env = 'STRATA_TEST_NOT_SET_KEY' }]\n"), LS, 2, &["STRATA_TEST_NOT_SET_KEY", "export it"]),
        case("encryption with no keys", Config("[layers.encryption]\nkeys = []\n"), LS, 2, &["layers.encryption.keys", "add `keys = "]),
        case("bucket_health demote_after 0", Config("[bucket_health]\ndemote_after = 0\n"), LS, 2, &[".toml:8: bucket_health.demote_after", "at least 1"]),
        case("bucket_health demote_for 0s", Config("[bucket_health]\ndemote_for = '0s'\n"), LS, 2, &[".toml:8: bucket_health.demote_for", "more than zero"]),
        case("route to an unknown bucket", Config("[routes.records]\nbucket = 'nope'\n"), LS, 2, &["routes.records.bucket", "known buckets"]),
        case("source set listing a bucket twice", Config("[sources.s]\nbuckets = ['data', 'data']\n"), LS, 2, &["sources.s.buckets[1]", "list each bucket once"]),
        case("two tenants on one folder", Config("[tenants.a]\nbucket = 'data'\nprefix = 't'\n[tenants.b]\nbucket = 'data'\nprefix = 't'\n"), LS, 2, &["tenants.", "prefix"]),
        // Environment variables.
        with_env(case("STORAGE_PROVIDER unknown", Home, LS, 2, &["STORAGE_PROVIDER", "s3"]), &[("STORAGE_PROVIDER", "ftp")]),
        with_env(case("STORAGE_BACKEND unknown", Home, LS, 2, &["STORAGE_BACKEND", "local"]), &[("STORAGE_BACKEND", "bogus")]),
        with_env(case("STORAGE_PROVIDER=s3 without a bucket", Home, LS, 2, &["STORAGE_BUCKET", "is not set; name the S3 bucket"]), &[("STORAGE_PROVIDER", "s3")]),
        with_env(case("STORAGE_TIMEOUT not a duration", Home, LS, 2, &["STORAGE_TIMEOUT", "e.g. 30s"]), &[("STORAGE_PROVIDER", "s3"), ("STORAGE_BUCKET", "media"), ("STORAGE_TIMEOUT", "soon")]),
        with_env(case("AWS_ALLOW_HTTP not a boolean", Home, LS, 2, &["AWS_ALLOW_HTTP", "use true or false"]), &[("STORAGE_PROVIDER", "s3"), ("STORAGE_BUCKET", "media"), ("AWS_ALLOW_HTTP", "maybe")]),
        with_env(case("R2 account id not hexadecimal", Home, LS, 2, &["R2_ACCOUNT_ID", "32 hexadecimal characters"]), &[("STORAGE_PROVIDER", "r2"), ("R2_ACCOUNT_ID", "nope"), ("R2_BUCKET", "media"), ("R2_ACCESS_KEY_ID", "a"), ("R2_SECRET_ACCESS_KEY", "b")]),
        with_env(case("STRATA_CONFIG names a missing file", Home, LS, 2, &["cannot read the config file", "No such file"]), &[("STRATA_CONFIG", "{missing}")]),
    ]
}

/// Every regular file under `root` (outside Strata's own `.strata-sys` bookkeeping) with
/// its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    strata_testkit::files_under(root)
        .into_iter()
        .map(|path| path.strip_prefix(root).unwrap().to_path_buf())
        .filter(|rel| !rel.iter().any(|part| part == ".strata-sys"))
        .map(|rel| {
            let bytes = std::fs::read(root.join(&rel)).unwrap();
            (rel, bytes)
        })
        .collect()
}

fn seed(bucket_root: &Path) {
    for (key, value) in [
        ("data/k", "v"),
        ("data/important.json", "{\"a\":1}"),
        ("data/dir/a.txt", "A"),
        ("data/dir/b.txt", "B"),
        ("other/x", "x"),
    ] {
        let p = bucket_root.join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, value).unwrap();
    }
}

#[test]
fn every_bad_input_is_refused_clearly_and_changes_nothing() {
    let long_key = "k".repeat(1025);
    let long_name = "n".repeat(65);
    let big = "v".repeat(3000);
    let cases = cases();
    let mut failures = Vec::new();
    let mut table = Vec::new();
    for c in &cases {
        let home = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let (h, dir) = (home.path(), scratch.path());
        std::fs::write(dir.join("empty.txt"), "").unwrap();
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        std::fs::create_dir_all(dir.join("folder")).unwrap();
        std::fs::write(dir.join("folder/f.txt"), "f").unwrap();
        seed(h);
        let missing = dir.join("missing.toml");
        let fill = |s: &str| {
            s.replace("{home}", &h.display().to_string())
                .replace("{root}", &h.display().to_string())
                .replace("{dir}", &dir.display().to_string())
                .replace("{s3}", S3)
                .replace("{missing}", &missing.display().to_string())
                .replace("{long_key}", &long_key)
                .replace("{long_name}", &long_name)
                .replace("{big}", &big)
        };
        let cfg = dir.join("strata.toml");
        let target = match c.on {
            Home => Target::Home(h),
            Config(extra) => {
                std::fs::write(&cfg, fill(&format!("{BASE}{extra}"))).unwrap();
                Target::Config(&cfg)
            }
            RawConfig("{missing}") => Target::Config(&missing),
            RawConfig(text) => {
                std::fs::write(&cfg, fill(text)).unwrap();
                Target::Config(&cfg)
            }
        };
        let args: Vec<String> = c.args.iter().map(|a| fill(a)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(String, String)> = c
            .env
            .iter()
            .map(|(k, v)| (k.to_string(), fill(v)))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let before = snapshot(h);
        let out = common::run_with(target, &args, &env, c.stdin);
        let after = snapshot(h);
        let code = out.status.code().unwrap_or(-1);
        let stderr = String::from_utf8_lossy(&out.stderr);
        table.push(format!("{code}  {}", c.what));
        let mut wrong = Vec::new();
        if code != c.code {
            wrong.push(format!("exit {code}, want {}", c.code));
        }
        for s in c.says {
            if !stderr.contains(fill(s).as_str()) {
                wrong.push(format!("message lacks {s:?}"));
            }
        }
        if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            wrong.push("panicked".into());
        }
        if before != after {
            wrong.push("the store changed".into());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n    stderr: {}",
                c.what,
                wrong.join("; "),
                stderr.trim()
            ));
        }
    }
    println!(
        "bad-input table ({} cases):\n{}",
        cases.len(),
        table.join("\n")
    );
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The dry runs above changed nothing; these check they said what they would do.
#[test]
fn dry_runs_list_what_would_happen() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    seed(h);
    let out = common::ok(Target::Home(h), &["rm", "data:", "--all", "--dry-run"]);
    for k in [
        "data:k",
        "data:important.json",
        "data:dir/a.txt",
        "data:dir/b.txt",
    ] {
        assert!(out.contains(&format!("would delete {k}")), "{out}");
    }
    assert!(out.contains("would delete 4 object(s)"), "{out}");
    let out = common::ok(
        Target::Home(h),
        &["mv", "-r", "data:dir/", "other:moved/", "--dry-run"],
    );
    assert!(
        out.contains("would move data:dir/a.txt → other:moved/a.txt"),
        "{out}"
    );
    let out = common::ok(Target::Home(h), &["sync", "data:", "other:", "--dry-run"]);
    assert!(out.contains("would copy 4 object(s)"), "{out}");
    let cfg = h.join("strata.toml");
    std::fs::write(
        &cfg,
        format!("{BASE}{OFFLOAD}").replace("{root}", &h.display().to_string()),
    )
    .unwrap();
    let out = common::ok(
        Target::Config(&cfg),
        &["offload", "logs", "--older-than", "0s", "--dry-run"],
    );
    assert!(out.contains("would move 2 of 2 object(s)"), "{out}");
    // Then the real thing does what the dry run said.
    common::ok(Target::Home(h), &["rm", "data:", "--all"]);
    assert_eq!(
        common::ok(Target::Home(h), &["ls", "-r", "data:"]).trim(),
        ""
    );
}

/// On a terminal a whole-bucket rm without `--all` asks, and only `yes` deletes. The
/// terminal is util-linux `script`'s pseudo-terminal, fed the answer.
#[cfg(unix)]
#[test]
fn a_whole_bucket_rm_on_a_terminal_asks_first() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: util-linux `script` is not installed, so no pseudo-terminal");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    seed(h);
    let rm = |answer: &str| {
        let mut child = Command::new("script")
            .args([
                "-qec",
                &format!("{} rm data: --prefix ''", env!("CARGO_BIN_EXE_strata")),
                "/dev/null",
            ])
            .env("STRATA_HOME", h)
            .env_remove("STRATA_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let before = snapshot(h);
    let (code, out) = rm("no\n");
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("delete all 4 object(s) of data:? type `yes`"),
        "{out}"
    );
    assert_eq!(snapshot(h), before);
    let (code, out) = rm("yes\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("deleted 4 object(s)"), "{out}");
    assert!(snapshot(&h.join("data")).is_empty());
    assert_eq!(snapshot(&h.join("other")).len(), 1);
}
