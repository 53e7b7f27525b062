//! boto3 scripts against an S3 endpoint (`strata serve`), run by the Python from
//! [`crate::python`]: the lines every script starts with, and the racing conditional writers
//! that both the in-process server tests and the `strata serve` process tests run.
//!
//! Scripts print JSON; this crate does not parse it (the tests do, with their own
//! `serde_json`), so [`run`] hands back the line the script printed.

use std::path::Path;
use std::process::Command;

/// The lines every script starts with: `client(ep, ak, sk)` (path-style addressing, SigV4, no
/// retries, so each answer is the server's first; each argument defaults to the `EP`, `AK`
/// or `SK` environment variable), `s3 = client()`, `code(f, *a, **k)` for the S3 error code
/// and HTTP status of a call that must fail, and `out = {}` for the results.
pub const PRELUDE: &str = r#"
import json, os, sys, threading
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

def client(ep=None, ak=None, sk=None):
    return boto3.client(
        "s3",
        endpoint_url=ep or os.environ["EP"],
        aws_access_key_id=ak or os.environ["AK"],
        aws_secret_access_key=sk or os.environ["SK"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1},
                      max_pool_connections=64),
    )

s3 = client()

def code(f, *a, **k):
    """The S3 error code and HTTP status of a call that must fail."""
    try:
        f(*a, **k)
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    return ["no error", 200]

out = {}
"#;

/// Run [`PRELUDE`], then `script`, then `print(json.dumps(out))` with `py` and the
/// environment variables `env`: the JSON of `out`, or, when the script fails, a message with
/// its exit status and everything it printed.
pub fn run(py: &Path, script: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let stdout = run_program(
        py,
        &format!("{PRELUDE}\n{script}\nprint(json.dumps(out))\n"),
        env,
    )?;
    Ok(stdout.lines().last().unwrap_or_default().to_string())
}

/// Standard output of `program`, or a message with the exit status and both outputs.
fn run_program(py: &Path, program: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let output = Command::new(py)
        .arg("-c")
        .arg(program)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "python failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// How many clients race each conditional write in [`racing_writers`].
pub const WRITERS: usize = 32;

/// Each round: seed a key, then [`WRITERS`] threads, client `i` on endpoint `i % n`, pass a
/// barrier together and each send one conditional PutObject (mode `if_match`: all with the
/// seed's ETag; mode `create`: all with `If-None-Match: *` on a new key). Prints a line per
/// mode and round: `RACE mode round 200s 412s seen statuses`, where `seen` says per endpoint
/// (`1` or `0`) whether it serves the single winner's body afterwards.
const RACE: &str = r#"
eps = os.environ["EPS"].split(",")
direct = [client(ep) for ep in eps]
clients = [client(eps[i % len(eps)]) for i in range(WRITERS)]
for rnd in range(int(os.environ["ROUNDS"])):
    key = f"race-{os.environ['TAG']}-{rnd}"
    seed = direct[0].put_object(Bucket="media", Key=key, Body=b"seed")["ETag"]
    for mode in ["if_match", "create"]:
        k = key if mode == "if_match" else key + "-new"
        barrier = threading.Barrier(WRITERS)
        statuses = [None] * WRITERS
        def go(i):
            barrier.wait()
            try:
                if mode == "if_match":
                    clients[i].put_object(Bucket="media", Key=k, Body=f"w{i}".encode(), IfMatch=seed)
                else:
                    clients[i].put_object(Bucket="media", Key=k, Body=f"w{i}".encode(), IfNoneMatch="*")
                statuses[i] = 200
            except ClientError as e:
                statuses[i] = e.response["ResponseMetadata"]["HTTPStatusCode"]
        ts = [threading.Thread(target=go, args=(i,)) for i in range(WRITERS)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        winners = [i for i, s in enumerate(statuses) if s == 200]
        want = f"w{winners[0]}" if len(winners) == 1 else None
        seen = ["1" if c.get_object(Bucket="media", Key=k)["Body"].read().decode() == want else "0" for c in direct]
        print("RACE", mode, rnd, statuses.count(200), statuses.count(412), ",".join(seen), ",".join(map(str, statuses)))
"#;

/// Race [`WRITERS`] boto3 clients, spread over `endpoints`, for `rounds` rounds of each
/// conditional write (`If-Match` with the current ETag, `If-None-Match: *`) on keys
/// `race-{tag}-…` of bucket `media`, signing with `keys` (access key, secret). `Ok` when
/// every round had exactly one winner, every other writer was refused with 412, and every
/// endpoint serves the winner's body afterwards; otherwise a message naming each round that
/// did not.
pub fn racing_writers(
    py: &Path,
    endpoints: &[&str],
    (access_key, secret_key): (&str, &str),
    rounds: usize,
    tag: &str,
) -> Result<(), String> {
    let eps = endpoints.join(",");
    let rounds_text = rounds.to_string();
    let program = format!("{PRELUDE}\nWRITERS = {WRITERS}\n{RACE}");
    let env = [
        ("EP", endpoints[0]),
        ("EPS", eps.as_str()),
        ("AK", access_key),
        ("SK", secret_key),
        ("ROUNDS", rounds_text.as_str()),
        ("TAG", tag),
    ];
    let stdout = run_program(py, &program, &env)?;
    let all_seen = vec!["1"; endpoints.len()].join(",");
    let refused = (WRITERS - 1).to_string();
    let want = ["1", refused.as_str(), all_seen.as_str()];
    let mut wrong = Vec::new();
    for mode in ["if_match", "create"] {
        let lines: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with(&format!("RACE {mode} ")))
            .collect();
        if lines.len() != rounds {
            wrong.push(format!(
                "{mode}: {} rounds reported, want {rounds}",
                lines.len()
            ));
        }
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.get(3..6) != Some(&want[..]) {
                wrong.push(format!(
                    "{line}: want one 200, {} 412 and every endpoint serving the winner's body ({all_seen})",
                    WRITERS - 1
                ));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "racing writers through {eps}:\n{}\nfull output:\n{stdout}",
            wrong.join("\n")
        ))
    }
}
