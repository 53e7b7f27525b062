//! Hostile values through the public constructors (issue 17): config files, `PutOpts`,
//! presigning and public URLs. Nothing may panic; header values that could not travel as
//! HTTP headers are `InvalidInput` before any request (the S3 bucket here points at a port
//! nothing listens on, so a request that went out would fail differently).

use proptest::prelude::*;
use storage_core::object_store::path::Path;
use storage_core::object_store::{Attribute, Attributes, ObjectStore, PutOptions};
use storage_core::{Bucket, PresignMethod, PutOpts, StorageError};
use strata::Strata;

/// Strings over the characters that break headers, URLs, keys and names.
fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "Z", "0", "/", ".", "..", "\\", "%", "%0d%0a", "\r", "\n", "\r\n", "\0", "\t", " ",
        "\u{7f}", "\u{85}", "é", "\u{202e}", ":", "@", "?", "#", "'", "\"", "=", "[", "]",
        "http://", "s3://", "-",
    ]);
    prop::collection::vec(pieces, 0..10).prop_map(|v| v.concat())
}

/// `v` as a TOML basic string.
fn toml_str(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const S3: &str = "[connections.c]\nkind = 's3'\nregion = 'us-east-1'\nendpoint = 'http://127.0.0.1:9'\nallow_http = true\nmax_retries = 0\naccess_key_id = 'AK'\nsecret_access_key = 'SK'\n";

/// Config files with one hostile value each (`{v}`).
const TEMPLATES: &[&str] = &[
    "[connections.c]\nkind = 's3'\nregion = {v}\n[buckets.b]\nconnection = 'c'\n",
    "[connections.c]\nkind = 's3'\nendpoint = {v}\n[buckets.b]\nconnection = 'c'\n",
    "[connections.c]\nkind = 's3'\naccess_key_id = {v}\nsecret_access_key = {v}\n[buckets.b]\nconnection = 'c'\n",
    "[connections.c]\nkind = 's3'\ntimeout = {v}\n[buckets.b]\nconnection = 'c'\n",
    "[connections.c]\nkind = 'r2'\naccount_id = {v}\naccess_key_id = 'a'\nsecret_access_key = 'b'\n[buckets.b]\nconnection = 'c'\n",
    "[connections.m]\nkind = 'memory'\n[buckets.b]\nconnection = 'm'\nbucket = {v}\n",
    "[connections.m]\nkind = 'memory'\n[buckets.b]\nconnection = 'm'\nprefix = {v}\n",
    "[connections.m]\nkind = 'memory'\n[buckets.b]\nconnection = 'm'\ncdn_url = {v}\n",
    "[connections.m]\nkind = 'memory'\n[buckets.b]\nconnection = 'm'\n[layers.timeout]\noperation = {v}\n",
    "[connections.m]\nkind = 'memory'\n[buckets.b]\nconnection = 'm'\n[tenants.t]\nbucket = 'b'\nprefix = {v}\n",
    "[connections.m]\nkind = 'memory'\n[buckets.b]\nconnection = 'm'\n[routes.r]\nbucket = 'b'\nprefix = {v}\n",
    "[connections.m]\nkind = 'memory'\n[buckets.b]\nconnection = 'm'\n[sources.s]\nbuckets = ['b']\npolicy = {v}\n",
];

fn s3_bucket() -> Bucket {
    let text = format!(
        "{S3}[buckets.b]\nconnection = 'c'\nbucket = 'media'\ncdn_url = 'https://cdn.example.com/x/'\n"
    );
    Strata::from_toml_str(&text, "s3.toml")
        .unwrap()
        .bucket("b")
        .unwrap()
}

fn header_ok(v: &str) -> bool {
    v.chars().all(|c| (' '..='~').contains(&c))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every config template loads or is refused with an error; none panics.
    #[test]
    fn hostile_config_values_never_panic(v in hostile()) {
        for t in TEMPLATES {
            let text = t.replace("{v}", &toml_str(&v));
            if let Err(e) = Strata::from_toml_str(&text, "h.toml") {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    /// Any text as a config file: an answer, never a panic.
    #[test]
    fn arbitrary_config_text_never_panics(text in "(\\[[a-z.]{0,12}\\]\n|[a-z_]{1,8} = ('[^'\n]{0,6}'|[0-9]{1,3})\n){0,6}") {
        let _ = Strata::from_toml_str(&text, "h.toml");
    }

    /// Put options with hostile headers: refused before any request on every backend when
    /// a header could not be sent, written as given otherwise (memory).
    #[test]
    fn hostile_put_options_are_refused_before_any_request(
        ct in hostile(), cc in hostile(), cd in hostile(), ce in hostile(), sc in hostile(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let opts = PutOpts {
            content_type: Some(ct.clone()),
            cache_control: Some(cc.clone()),
            content_disposition: Some(cd.clone()),
            content_encoding: Some(ce.clone()),
            storage_class: Some(sc.clone()),
            ..Default::default()
        };
        let sendable = [&ct, &cc, &cd, &ce, &sc].iter().all(|v| header_ok(v));
        let memory = Bucket::memory("m");
        let r = rt.block_on(memory.put_with("k", "x", opts.clone()));
        prop_assert_eq!(r.is_ok(), sendable, "{:?}", r);
        if !sendable {
            // On S3 too: the put must stop before the signer sees the value.
            let e = rt.block_on(s3_bucket().put_with("k", "x", opts.clone())).unwrap_err();
            prop_assert!(matches!(e, StorageError::InvalidInput { .. }), "{}", e);
            // And through the raw store, where object_store's signer used to panic.
            let mut raw = Attributes::new();
            for (attr, v) in [
                (Attribute::ContentType, &ct),
                (Attribute::CacheControl, &cc),
                (Attribute::ContentDisposition, &cd),
                (Attribute::ContentEncoding, &ce),
                (Attribute::StorageClass, &sc),
            ] {
                raw.insert(attr, v.clone().into());
            }
            let put = PutOptions { attributes: raw, ..Default::default() };
            let e = rt
                .block_on(s3_bucket().store().put_opts(&Path::from("k"), "x".into(), put))
                .unwrap_err();
            let e = StorageError::from_object_store("b", e);
            prop_assert!(matches!(e, StorageError::InvalidInput { .. }), "{}", e);
        }
    }

    /// Presigned and public URLs for any key and expiry: a URL or an error.
    #[test]
    fn presign_and_url_for_never_panic(key in hostile(), secs in prop_oneof![Just(0u64), 1u64..1_000_000, Just(u64::MAX)]) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let b = s3_bucket();
        for method in [PresignMethod::Get, PresignMethod::Put] {
            let r = rt.block_on(b.presign(method, &key, std::time::Duration::from_secs(secs)));
            if let Ok(url) = r {
                prop_assert!(url.as_str().starts_with("http://127.0.0.1:9/"), "{}", url);
            }
        }
        if let Ok(url) = b.url_for(&key) {
            prop_assert!(url.as_str().starts_with("https://cdn.example.com/x/"), "{}", url);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Credentials that load must sign: a request with them fails (nothing listens on the
    /// port) but never panics.
    #[test]
    fn hostile_credentials_never_panic(ak in hostile(), sk in hostile()) {
        let text = format!(
            "[connections.c]\nkind = 's3'\nregion = 'us-east-1'\nendpoint = 'http://127.0.0.1:9'\nallow_http = true\nmax_retries = 0\naccess_key_id = {}\nsecret_access_key = {}\n[buckets.b]\nconnection = 'c'\nbucket = 'media'\n",
            toml_str(&ak),
            toml_str(&sk)
        );
        if let Ok(s) = Strata::from_toml_str(&text, "h.toml") {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let b = s.bucket("b").unwrap();
            prop_assert!(rt.block_on(b.put("k", "x")).is_err());
            let _ = rt.block_on(b.presign(PresignMethod::Get, "k", std::time::Duration::from_secs(60)));
        }
    }
}
