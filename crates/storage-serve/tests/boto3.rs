//! boto3 against `strata serve` on a local folder: round trips, listings, batch deletes,
//! copies, multipart uploads, conditional requests and racing conditional writers.

mod common;

use common::{
    AK, SK, assert_errors, fs_config, python, run_python, run_python_on_fresh_server, start,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trip_metadata_ranges_and_errors() {
    let Some(out) = run_python_on_fresh_server(
        &fs_config(&["media", "other"]),
        r#"
out["buckets"] = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
s3.head_bucket(Bucket="media")
body = bytes(range(256)) * 40
put = s3.put_object(Bucket="media", Key="docs/a b+c.bin", Body=body,
                    ContentType="application/x-test", CacheControl="max-age=60",
                    ContentDisposition="attachment", ContentEncoding="identity",
                    Metadata={"owner": "ada", "n": "1"})
g = s3.get_object(Bucket="media", Key="docs/a b+c.bin")
out["bytes_equal"] = g["Body"].read() == body
out["etag_same"] = g["ETag"] == put["ETag"]
out["content_type"] = g["ContentType"]
out["cache_control"] = g["CacheControl"]
out["disposition"] = g["ContentDisposition"]
out["encoding"] = g["ContentEncoding"]
out["metadata"] = g["Metadata"]
h = s3.head_object(Bucket="media", Key="docs/a b+c.bin")
out["head_len"] = h["ContentLength"]
out["head_meta"] = h["Metadata"]
r = s3.get_object(Bucket="media", Key="docs/a b+c.bin", Range="bytes=2-5")
out["range"] = list(r["Body"].read())
out["range_header"] = r["ContentRange"]
out["range_status"] = r["ResponseMetadata"]["HTTPStatusCode"]
out["suffix"] = list(s3.get_object(Bucket="media", Key="docs/a b+c.bin", Range="bytes=-3")["Body"].read())
out["open_end"] = len(s3.get_object(Bucket="media", Key="docs/a b+c.bin", Range="bytes=10000-")["Body"].read())
out["bad_range"] = code(s3.get_object, Bucket="media", Key="docs/a b+c.bin", Range="bytes=20000-20010")
out["no_key"] = code(s3.get_object, Bucket="media", Key="missing")
out["no_key_head"] = code(s3.head_object, Bucket="media", Key="missing")
out["no_bucket"] = code(s3.get_object, Bucket="nope", Key="x")
out["bad_key"] = code(s3.put_object, Bucket="media", Key="a/../b", Body=b"x")
out["reserved_key"] = code(s3.put_object, Bucket="media", Key=".strata-serve/x", Body=b"x")
# Integrity: a declared checksum or Content-MD5 the body does not match is BadDigest and
# writes nothing; matching ones (and the SDK's default CRC32 trailer) pass.
out["bad_crc32"] = code(s3.put_object, Bucket="media", Key="digest", Body=b"payload", ChecksumCRC32="AAAAAA==")
out["bad_md5"] = code(s3.put_object, Bucket="media", Key="digest", Body=b"payload", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
out["digest_absent"] = code(s3.head_object, Bucket="media", Key="digest")
import base64, hashlib
good_md5 = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
out["good_md5"] = s3.put_object(Bucket="media", Key="digest", Body=b"payload", ContentMD5=good_md5)["ResponseMetadata"]["HTTPStatusCode"]
out["sha256"] = s3.put_object(Bucket="media", Key="digest2", Body=b"payload", ChecksumAlgorithm="SHA256")["ResponseMetadata"]["HTTPStatusCode"]
s3.delete_object(Bucket="media", Key="docs/a b+c.bin")
out["after_delete"] = code(s3.head_object, Bucket="media", Key="docs/a b+c.bin")
out["delete_missing"] = s3.delete_object(Bucket="media", Key="never")["ResponseMetadata"]["HTTPStatusCode"]
"#,
    )
    .await
    else {
        return;
    };
    assert_eq!(out["buckets"], json!(["media", "other"]));
    assert_eq!(out["bytes_equal"], true);
    assert_eq!(out["etag_same"], true);
    assert_eq!(out["content_type"], "application/x-test");
    assert_eq!(out["cache_control"], "max-age=60");
    assert_eq!(out["disposition"], "attachment");
    assert_eq!(out["encoding"], "identity");
    assert_eq!(out["metadata"], json!({"owner": "ada", "n": "1"}));
    assert_eq!(out["head_len"], 10240);
    assert_eq!(out["head_meta"], json!({"owner": "ada", "n": "1"}));
    assert_eq!(out["range"], json!([2, 3, 4, 5]));
    assert_eq!(out["range_header"], "bytes 2-5/10240");
    assert_eq!(out["range_status"], 206);
    assert_eq!(out["suffix"], json!([253, 254, 255]));
    assert_eq!(out["open_end"], 240);
    assert_errors(
        &out,
        &[
            ("bad_range", "InvalidRange", 416),
            ("no_key", "NoSuchKey", 404),
            ("no_key_head", "404", 404),
            ("no_bucket", "NoSuchBucket", 404),
            ("bad_key", "InvalidArgument", 400),
            ("reserved_key", "InvalidArgument", 400),
            ("bad_crc32", "BadDigest", 400),
            ("bad_md5", "BadDigest", 400),
            ("digest_absent", "404", 404),
        ],
    );
    assert_eq!(out["good_md5"], 200);
    assert_eq!(out["sha256"], 200);
    assert_eq!(out["after_delete"], json!(["404", 404]));
    assert_eq!(out["delete_missing"], 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_page_past_1000_keys_and_delete_objects_1500() {
    let Some(out) = run_python_on_fresh_server(
        &fs_config(&["media"]),
        r#"
from concurrent.futures import ThreadPoolExecutor
keys = [f"flat/{i:05d}" for i in range(1500)] + [f"tree/d{i:04d}/f" for i in range(1100)] + ["tree/top"]
with ThreadPoolExecutor(16) as ex:
    list(ex.map(lambda k: s3.put_object(Bucket="media", Key=k, Body=b"x"), keys))

def pages(**kw):
    p = s3.get_paginator("list_objects_v2")
    got, prefixes, n = [], [], 0
    for page in p.paginate(Bucket="media", **kw):
        n += 1
        got += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [c["Prefix"] for c in page.get("CommonPrefixes", [])]
    return got, prefixes, n

flat, _, n = pages(Prefix="flat/")
out["flat"] = [len(flat), n, flat == sorted(flat), flat[0], flat[-1]]
small, _, n = pages(Prefix="flat/", PaginationConfig={"PageSize": 100})
out["small_pages"] = [len(small), n, small == flat]
objs, prefixes, n = pages(Prefix="tree/", Delimiter="/")
out["tree"] = [objs, len(prefixes), n, prefixes[0], prefixes[-1], prefixes == sorted(prefixes)]
after = s3.list_objects_v2(Bucket="media", Prefix="flat/", StartAfter="flat/01490")
out["start_after"] = [o["Key"] for o in after["Contents"]]
top = s3.list_objects_v2(Bucket="media", Delimiter="/")
out["top"] = [c["Prefix"] for c in top["CommonPrefixes"]]
v1 = s3.get_paginator("list_objects")
got, n = [], 0
for page in v1.paginate(Bucket="media", Prefix="flat/"):
    n += 1
    got += [o["Key"] for o in page.get("Contents", [])]
out["v1"] = [len(got), n, got == flat]
v1d = [c["Prefix"] for page in v1.paginate(Bucket="media", Prefix="tree/", Delimiter="/") for c in page.get("CommonPrefixes", [])]
out["v1_delim"] = len(v1d)
mk = s3.list_objects_v2(Bucket="media", Prefix="flat/", MaxKeys=7)
out["max_keys"] = [mk["KeyCount"], mk["IsTruncated"]]
deleted, errors = 0, 0
for i in range(0, 1500, 1000):
    r = s3.delete_objects(Bucket="media", Delete={"Objects": [{"Key": k} for k in flat[i:i+1000]]})
    deleted += len(r.get("Deleted", []))
    errors += len(r.get("Errors", []))
out["deleted"] = [deleted, errors]
out["left"] = s3.list_objects_v2(Bucket="media", Prefix="flat/")["KeyCount"]
q = s3.delete_objects(Bucket="media", Delete={"Objects": [{"Key": "tree/top"}, {"Key": "a/../b"}], "Quiet": True})
out["quiet"] = [len(q.get("Deleted", [])), [e["Code"] for e in q.get("Errors", [])]]
"#,
    )
    .await
    else {
        return;
    };
    assert_eq!(
        out["flat"],
        json!([1500, 2, true, "flat/00000", "flat/01499"])
    );
    assert_eq!(out["small_pages"], json!([1500, 15, true]));
    assert_eq!(
        out["tree"],
        json!([["tree/top"], 1100, 2, "tree/d0000/", "tree/d1099/", true])
    );
    assert_eq!(
        out["start_after"],
        json!([
            "flat/01491",
            "flat/01492",
            "flat/01493",
            "flat/01494",
            "flat/01495",
            "flat/01496",
            "flat/01497",
            "flat/01498",
            "flat/01499"
        ])
    );
    assert_eq!(out["top"], json!(["flat/", "tree/"]));
    assert_eq!(out["v1"], json!([1500, 2, true]));
    assert_eq!(out["v1_delim"], 1100);
    assert_eq!(out["max_keys"], json!([7, true]));
    assert_eq!(out["deleted"], json!([1500, 0]));
    assert_eq!(out["left"], 0);
    assert_eq!(out["quiet"], json!([0, ["InvalidArgument"]]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_object_keeps_or_replaces_metadata() {
    let Some(out) = run_python_on_fresh_server(
        &fs_config(&["media", "other"]),
        r#"
s3.put_object(Bucket="media", Key="src", Body=b"hello", ContentType="text/plain", Metadata={"a": "1"})
s3.copy_object(Bucket="media", Key="same", CopySource={"Bucket": "media", "Key": "src"})
g = s3.get_object(Bucket="media", Key="same")
out["copy"] = [g["Body"].read().decode(), g["ContentType"], g["Metadata"]]
s3.copy_object(Bucket="other", Key="x", CopySource={"Bucket": "media", "Key": "src"})
g = s3.get_object(Bucket="other", Key="x")
out["cross"] = [g["Body"].read().decode(), g["ContentType"], g["Metadata"]]
s3.copy_object(Bucket="media", Key="src", CopySource={"Bucket": "media", "Key": "src"},
               MetadataDirective="REPLACE", ContentType="text/markdown", Metadata={"b": "2"})
g = s3.get_object(Bucket="media", Key="src")
out["replace"] = [g["Body"].read().decode(), g["ContentType"], g["Metadata"]]
etag = g["ETag"]
out["if_match_ok"] = s3.copy_object(Bucket="media", Key="c2", CopySource={"Bucket": "media", "Key": "src"}, CopySourceIfMatch=etag)["ResponseMetadata"]["HTTPStatusCode"]
out["if_match_bad"] = code(s3.copy_object, Bucket="media", Key="c3", CopySource={"Bucket": "media", "Key": "src"}, CopySourceIfMatch='"nope"')
out["if_none_match"] = code(s3.copy_object, Bucket="media", Key="c4", CopySource={"Bucket": "media", "Key": "src"}, CopySourceIfNoneMatch=etag)
out["missing"] = code(s3.copy_object, Bucket="media", Key="c5", CopySource={"Bucket": "media", "Key": "nothing"})
"#,
    )
    .await
    else {
        return;
    };
    assert_eq!(out["copy"], json!(["hello", "text/plain", {"a": "1"}]));
    assert_eq!(out["cross"], json!(["hello", "text/plain", {"a": "1"}]));
    assert_eq!(
        out["replace"],
        json!(["hello", "text/markdown", {"b": "2"}])
    );
    assert_eq!(out["if_match_ok"], 200);
    assert_errors(
        &out,
        &[
            ("if_match_bad", "PreconditionFailed", 412),
            ("if_none_match", "PreconditionFailed", 412),
            ("missing", "NoSuchKey", 404),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_64_mib_upload_ranged_reads_list_parts_and_abort() {
    let Some(out) = run_python_on_fresh_server(
        &fs_config(&["media"]),
        r#"
import hashlib, io, random
from boto3.s3.transfer import TransferConfig
rnd = random.Random(7)
data = rnd.randbytes(64 * 1024 * 1024)
cfg = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=8)
s3.upload_fileobj(io.BytesIO(data), "media", "big.bin", Config=cfg,
                  ExtraArgs={"ContentType": "application/octet-stream", "Metadata": {"kind": "big"}})
h = s3.head_object(Bucket="media", Key="big.bin")
out["size"] = h["ContentLength"]
out["meta"] = [h["ContentType"], h["Metadata"]]
ok = True
for start in [0, 5, 8 * 1024 * 1024 - 3, 33_333_333, 64 * 1024 * 1024 - 10]:
    end = min(start + 99_999, len(data) - 1)
    got = s3.get_object(Bucket="media", Key="big.bin", Range=f"bytes={start}-{end}")["Body"].read()
    ok = ok and got == data[start:end + 1]
out["ranges_ok"] = ok
whole = hashlib.sha256(s3.get_object(Bucket="media", Key="big.bin")["Body"].read()).hexdigest()
out["whole_ok"] = whole == hashlib.sha256(data).hexdigest()
out["no_leftovers"] = [o["Key"] for o in s3.list_objects_v2(Bucket="media").get("Contents", [])]

# The low-level calls: list parts, a wrong ETag, out-of-order parts, abort.
up = s3.create_multipart_upload(Bucket="media", Key="parts.bin")["UploadId"]
p1 = s3.upload_part(Bucket="media", Key="parts.bin", UploadId=up, PartNumber=1, Body=b"a" * (5 * 1024 * 1024))
p2 = s3.upload_part(Bucket="media", Key="parts.bin", UploadId=up, PartNumber=2, Body=b"b" * 10)
lp = s3.list_parts(Bucket="media", Key="parts.bin", UploadId=up)
out["parts"] = [[p["PartNumber"], p["Size"], p["ETag"] == e] for p, e in zip(lp["Parts"], [p1["ETag"], p2["ETag"]])]
out["wrong_etag"] = code(s3.complete_multipart_upload, Bucket="media", Key="parts.bin", UploadId=up,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"zzz"'}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
out["wrong_order"] = code(s3.complete_multipart_upload, Bucket="media", Key="parts.bin", UploadId=up,
    MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": p2["ETag"]}, {"PartNumber": 1, "ETag": p1["ETag"]}]})
out["wrong_key"] = code(s3.list_parts, Bucket="media", Key="other.bin", UploadId=up)
s3.complete_multipart_upload(Bucket="media", Key="parts.bin", UploadId=up,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
body = s3.get_object(Bucket="media", Key="parts.bin")["Body"].read()
out["assembled"] = [len(body), body[:1].decode(), body[-1:].decode()]
out["completed_twice"] = code(s3.list_parts, Bucket="media", Key="parts.bin", UploadId=up)
up2 = s3.create_multipart_upload(Bucket="media", Key="gone.bin")["UploadId"]
s3.upload_part(Bucket="media", Key="gone.bin", UploadId=up2, PartNumber=1, Body=b"x")
s3.abort_multipart_upload(Bucket="media", Key="gone.bin", UploadId=up2)
out["aborted"] = code(s3.upload_part, Bucket="media", Key="gone.bin", UploadId=up2, PartNumber=2, Body=b"x")
out["not_created"] = code(s3.head_object, Bucket="media", Key="gone.bin")
out["bogus_id"] = code(s3.abort_multipart_upload, Bucket="media", Key="gone.bin", UploadId="../../etc")
"#,
    )
    .await
    else {
        return;
    };
    assert_eq!(out["size"], 64 * 1024 * 1024);
    assert_eq!(
        out["meta"],
        json!(["application/octet-stream", {"kind": "big"}])
    );
    assert_eq!(out["ranges_ok"], true);
    assert_eq!(out["whole_ok"], true);
    assert_eq!(out["no_leftovers"], json!(["big.bin"]));
    assert_eq!(out["parts"], json!([[1, 5242880, true], [2, 10, true]]));
    assert_errors(
        &out,
        &[
            ("wrong_etag", "InvalidPart", 400),
            ("wrong_order", "InvalidPartOrder", 400),
            ("wrong_key", "NoSuchUpload", 404),
        ],
    );
    assert_eq!(out["assembled"], json!([5242890, "a", "b"]));
    assert_errors(
        &out,
        &[
            ("completed_twice", "NoSuchUpload", 404),
            ("aborted", "NoSuchUpload", 404),
            ("not_created", "404", 404),
            ("bogus_id", "NoSuchUpload", 404),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_requests() {
    let Some(out) = run_python_on_fresh_server(
        &fs_config(&["media"]),
        r#"
import datetime
first = s3.put_object(Bucket="media", Key="k", Body=b"v1", IfNoneMatch="*")
out["create_again"] = code(s3.put_object, Bucket="media", Key="k", Body=b"v2", IfNoneMatch="*")
out["stale_match"] = code(s3.put_object, Bucket="media", Key="k", Body=b"v2", IfMatch='"stale"')
second = s3.put_object(Bucket="media", Key="k", Body=b"v2", IfMatch=first["ETag"])
out["cas"] = [second["ETag"] != first["ETag"], s3.get_object(Bucket="media", Key="k")["Body"].read().decode()]
out["old_etag"] = code(s3.put_object, Bucket="media", Key="k", Body=b"v3", IfMatch=first["ETag"])
e = second["ETag"]
out["get_inm"] = code(s3.get_object, Bucket="media", Key="k", IfNoneMatch=e)
out["head_inm"] = code(s3.head_object, Bucket="media", Key="k", IfNoneMatch=e)
out["get_inm_other"] = s3.get_object(Bucket="media", Key="k", IfNoneMatch='"other"')["Body"].read().decode()
out["get_im_bad"] = code(s3.get_object, Bucket="media", Key="k", IfMatch='"other"')
out["head_im_bad"] = code(s3.head_object, Bucket="media", Key="k", IfMatch='"other"')
out["get_im_ok"] = s3.get_object(Bucket="media", Key="k", IfMatch=e)["Body"].read().decode()
future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
out["ims_future"] = code(s3.get_object, Bucket="media", Key="k", IfModifiedSince=future)
out["ims_past"] = s3.get_object(Bucket="media", Key="k", IfModifiedSince=past)["Body"].read().decode()
out["ius_past"] = code(s3.get_object, Bucket="media", Key="k", IfUnmodifiedSince=past)
out["del_bad"] = code(s3.delete_object, Bucket="media", Key="k", IfMatch='"other"')
out["still_there"] = s3.get_object(Bucket="media", Key="k")["Body"].read().decode()
out["del_ok"] = s3.delete_object(Bucket="media", Key="k", IfMatch=e)["ResponseMetadata"]["HTTPStatusCode"]
out["gone"] = code(s3.head_object, Bucket="media", Key="k")
out["create_after"] = s3.put_object(Bucket="media", Key="k", Body=b"v4", IfNoneMatch="*")["ResponseMetadata"]["HTTPStatusCode"]
# A conditional multipart completion.
up = s3.create_multipart_upload(Bucket="media", Key="k")["UploadId"]
p = s3.upload_part(Bucket="media", Key="k", UploadId=up, PartNumber=1, Body=b"mp")
parts = {"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]}
out["mpu_exists"] = code(s3.complete_multipart_upload, Bucket="media", Key="k", UploadId=up, MultipartUpload=parts, IfNoneMatch="*")
cur = s3.head_object(Bucket="media", Key="k")["ETag"]
out["mpu_if_match"] = s3.complete_multipart_upload(Bucket="media", Key="k", UploadId=up, MultipartUpload=parts, IfMatch=cur)["ResponseMetadata"]["HTTPStatusCode"]
out["mpu_result"] = s3.get_object(Bucket="media", Key="k")["Body"].read().decode()
"#,
    )
    .await
    else {
        return;
    };
    assert_errors(
        &out,
        &[
            ("create_again", "PreconditionFailed", 412),
            ("stale_match", "PreconditionFailed", 412),
        ],
    );
    assert_eq!(out["cas"], json!([true, "v2"]));
    assert_errors(
        &out,
        &[
            ("old_etag", "PreconditionFailed", 412),
            ("get_inm", "304", 304),
            ("head_inm", "304", 304),
        ],
    );
    assert_eq!(out["get_inm_other"], "v2");
    assert_errors(
        &out,
        &[
            ("get_im_bad", "PreconditionFailed", 412),
            ("head_im_bad", "412", 412),
        ],
    );
    assert_eq!(out["get_im_ok"], "v2");
    assert_eq!(out["ims_future"], json!(["304", 304]));
    assert_eq!(out["ims_past"], "v2");
    assert_errors(
        &out,
        &[
            ("ius_past", "PreconditionFailed", 412),
            ("del_bad", "PreconditionFailed", 412),
        ],
    );
    assert_eq!(out["still_there"], "v2");
    assert_eq!(out["del_ok"], 204);
    assert_eq!(out["gone"], json!(["404", 404]));
    assert_eq!(out["create_after"], 200);
    assert_eq!(out["mpu_exists"], json!(["PreconditionFailed", 412]));
    assert_eq!(out["mpu_if_match"], 200);
    assert_eq!(out["mpu_result"], "mp");
}

/// 32 boto3 threads race one conditional write each; exactly one may win, and every server
/// then serves its body. Run through one server, then through two servers (each with its own
/// store) on the same folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conditional_writers_one_winner_through_one_and_two_servers() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = start(&fs_config(&["media"]), dir.path()).await;
    let b = start(&fs_config(&["media"]), dir.path()).await;
    let one = vec![a.endpoint.clone()];
    let two = vec![a.endpoint.clone(), b.endpoint.clone()];
    for (tag, endpoints) in [("one", one), ("two", two)] {
        let py = py.clone();
        // The script blocks until its 32 threads are done; the servers run meanwhile.
        let raced = tokio::task::spawn_blocking(move || {
            let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
            strata_testkit::boto3::racing_writers(&py, &endpoints, (AK, SK), 5, tag)
        })
        .await
        .unwrap();
        if let Err(e) = raced {
            panic!("{e}");
        }
    }
    a.stop().await;
    b.stop().await;
}

/// Conditional writes over one part (8 MiB): a 20 MiB multipart completion and PutObject
/// with If-None-Match: * or If-Match are applied atomically (held whole, one conditional
/// write), a failed condition leaves the old object as it was, racing completions have one
/// winner, and a body over `max_conditional_bytes` is refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_multipart_complete_and_put_over_one_part() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = start(&fs_config(&["media"]), dir.path()).await;
    let small_dir = tempfile::tempdir().unwrap();
    let small = start(
        &format!(
            "[serve]\nmax_conditional_bytes = 16777216\n{}",
            fs_config(&["media"])
        ),
        small_dir.path(),
    )
    .await;
    let out = run_python(
        &py,
        r#"
import hashlib, random
MiB = 1024 * 1024
rnd = random.Random(18)
data = rnd.randbytes(20 * MiB)

def upload(c, key, body, part=5 * MiB):
    up = c.create_multipart_upload(Bucket="media", Key=key, ContentType="application/x-big", Metadata={"v": "new"})["UploadId"]
    parts = []
    for i in range(0, len(body), part):
        n = len(parts) + 1
        e = c.upload_part(Bucket="media", Key=key, UploadId=up, PartNumber=n, Body=body[i:i + part])["ETag"]
        parts.append({"PartNumber": n, "ETag": e})
    return up, {"Parts": parts}

def complete(c, key, up, parts, **cond):
    return c.complete_multipart_upload(Bucket="media", Key=key, UploadId=up, MultipartUpload=parts, **cond)

def state(c, key):
    g = c.get_object(Bucket="media", Key=key)
    body = g["Body"].read()
    return [len(body), hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest(), g["ETag"], g.get("Metadata", {})]

old = s3.put_object(Bucket="media", Key="big", Body=b"old", Metadata={"v": "old"})["ETag"]
up, parts = upload(s3, "big", data)
out["create_on_existing"] = code(complete, s3, "big", up, parts, IfNoneMatch="*")
out["after_create"] = state(s3, "big")[:2] + [state(s3, "big")[2] == old, state(s3, "big")[3]]
out["wrong_if_match"] = code(complete, s3, "big", up, parts, IfMatch='"not-the-etag"')
out["after_wrong"] = state(s3, "big")[:2] + [state(s3, "big")[2] == old]
r = complete(s3, "big", up, parts, IfMatch=old)
after = state(s3, "big")
out["right_if_match"] = [r["ResponseMetadata"]["HTTPStatusCode"], after[0], after[1], after[2] == r["ETag"], after[3]]
out["upload_gone"] = code(s3.list_parts, Bucket="media", Key="big", UploadId=up)
out["old_etag_now"] = code(complete, s3, "big", *upload(s3, "big", data), IfMatch=old)
up, parts = upload(s3, "fresh", data)
out["create_new"] = complete(s3, "fresh", up, parts, IfNoneMatch="*")["ResponseMetadata"]["HTTPStatusCode"]
out["fresh"] = state(s3, "fresh")[:2]

# PutObject bodies over one part.
out["put_create_existing"] = code(s3.put_object, Bucket="media", Key="fresh", Body=data, IfNoneMatch="*")
cur = s3.head_object(Bucket="media", Key="fresh")["ETag"]
out["put_wrong"] = code(s3.put_object, Bucket="media", Key="fresh", Body=data[::-1], IfMatch=old)
p = s3.put_object(Bucket="media", Key="fresh", Body=data[::-1], IfMatch=cur)
g = s3.get_object(Bucket="media", Key="fresh")
out["put_right"] = [p["ResponseMetadata"]["HTTPStatusCode"], g["Body"].read() == data[::-1], g["ETag"] == p["ETag"]]
out["put_create_new"] = s3.put_object(Bucket="media", Key="fresh2", Body=data, IfNoneMatch="*")["ResponseMetadata"]["HTTPStatusCode"]

# Eight racing 9 MiB completions with the same If-Match: one winner.
seed = s3.put_object(Bucket="media", Key="race", Body=b"seed")["ETag"]
clients = [client() for _ in range(8)]
bodies = [bytes([i]) * (9 * MiB) for i in range(8)]
ups = [upload(clients[i], "race", bodies[i]) for i in range(8)]
barrier = threading.Barrier(8)
statuses = [None] * 8
def go(i):
    barrier.wait()
    try:
        complete(clients[i], "race", *ups[i], IfMatch=seed)
        statuses[i] = 200
    except ClientError as e:
        statuses[i] = e.response["ResponseMetadata"]["HTTPStatusCode"]
ts = [threading.Thread(target=go, args=(i,)) for i in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
won = [i for i, s in enumerate(statuses) if s == 200]
body = s3.get_object(Bucket="media", Key="race")["Body"].read()
out["race"] = [statuses.count(200), statuses.count(412), len(won) == 1 and body == bodies[won[0]]]

# Over the budget: refused before anything is written.
small = client(os.environ["SMALL"])
small.put_object(Bucket="media", Key="big", Body=b"old")
up, parts = upload(small, "big", data)
out["over_budget"] = code(complete, small, "big", up, parts, IfNoneMatch="*")
out["over_budget_put"] = code(small.put_object, Bucket="media", Key="other", Body=data, IfNoneMatch="*")
out["over_budget_left"] = [small.get_object(Bucket="media", Key="big")["Body"].read().decode(), code(small.head_object, Bucket="media", Key="other")]
out["unconditional_still_streams"] = complete(small, "big", up, parts)["ResponseMetadata"]["HTTPStatusCode"]
"#,
        &[("EP", &server.endpoint), ("SMALL", &small.endpoint)],
    )
    .await;
    assert_eq!(
        out["create_on_existing"],
        json!(["PreconditionFailed", 412])
    );
    assert_eq!(out["after_create"], json!([3, false, true, {"v": "old"}]));
    assert_eq!(out["wrong_if_match"], json!(["PreconditionFailed", 412]));
    assert_eq!(out["after_wrong"], json!([3, false, true]));
    assert_eq!(
        out["right_if_match"],
        json!([200, 20 * 1024 * 1024, true, true, {"v": "new"}])
    );
    assert_errors(
        &out,
        &[
            ("upload_gone", "NoSuchUpload", 404),
            ("old_etag_now", "PreconditionFailed", 412),
        ],
    );
    assert_eq!(out["create_new"], 200);
    assert_eq!(out["fresh"], json!([20 * 1024 * 1024, true]));
    assert_eq!(
        out["put_create_existing"],
        json!(["PreconditionFailed", 412])
    );
    assert_eq!(out["put_wrong"], json!(["PreconditionFailed", 412]));
    assert_eq!(out["put_right"], json!([200, true, true]));
    assert_eq!(out["put_create_new"], 200);
    assert_eq!(out["race"], json!([1, 7, true]));
    assert_errors(
        &out,
        &[
            ("over_budget", "EntityTooLarge", 400),
            ("over_budget_put", "EntityTooLarge", 400),
        ],
    );
    assert_eq!(out["over_budget_left"], json!(["old", ["404", 404]]));
    assert_eq!(out["unconditional_still_streams"], 200);
    server.stop().await;
    small.stop().await;
}
