//! Issue 20's CLI features end to end: buckets info/health on the embedded default, the
//! `health` alias, `put --tag`, stored vs original sizes where a bucket compresses, NDJSON
//! listings, completions and the man page.

mod common;

use common::Target::{Config, Home};
use serde_json::Value;

fn ndjson(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object: {e}: {l}"))
        })
        .collect()
}

#[test]
fn buckets_info_and_health_work_on_the_embedded_default() {
    let home = tempfile::tempdir().unwrap();
    let h = Home(home.path());
    let info = common::ok(h, &["buckets", "info"]);
    assert!(info.contains("(none yet"), "{info}");
    common::ok(h, &["put", "photos:a.jpg", "--data", "x"]);
    common::ok(h, &["put", "notes:b.txt", "--data", "y"]);
    let info: Value = serde_json::from_str(&common::ok(h, &["buckets", "info", "--json"])).unwrap();
    assert_eq!(info["embedded"], true);
    assert_eq!(
        info["buckets"],
        serde_json::json!([{"name": "notes", "provider": "fs"}, {"name": "photos", "provider": "fs"}])
    );
    let health = ndjson(&common::ok(h, &["buckets", "health", "--json"]));
    assert_eq!(health.len(), 2, "{health:?}");
    assert!(
        health
            .iter()
            .all(|l| l["ok"] == true && l["provider"] == "fs"),
        "{health:?}"
    );
    // The alias runs the same command.
    let alias = ndjson(&common::ok(h, &["health", "photos", "--json"]));
    assert_eq!(alias.len(), 1);
    assert_eq!(alias[0]["bucket"], "photos");
    assert!(common::ok(h, &["buckets", "health"]).contains("photos"));
}

#[test]
fn listings_print_one_json_object_per_line() {
    let home = tempfile::tempdir().unwrap();
    let h = Home(home.path());
    for k in ["a/1.txt", "a/2.txt", "b.txt"] {
        common::ok(h, &["put", &format!("d:{k}"), "--data", "x"]);
    }
    let top = ndjson(&common::ok(h, &["ls", "d:", "--json"]));
    assert_eq!(top[0], serde_json::json!({"prefix": "a/"}));
    assert_eq!(top[1]["key"], "b.txt");
    assert_eq!(top[1]["size"], 1);
    let mut all: Vec<String> = ndjson(&common::ok(h, &["ls", "-r", "d:", "--json"]))
        .iter()
        .map(|v| v["key"].as_str().unwrap().to_string())
        .collect();
    all.sort();
    assert_eq!(all, ["a/1.txt", "a/2.txt", "b.txt"]);
    common::ok(h, &["doc", "put", "app:users", "1", "--data", "{}"]);
    common::ok(h, &["doc", "put", "app:users", "2", "--data", "{}"]);
    assert_eq!(
        ndjson(&common::ok(h, &["doc", "ls", "app:users", "--json"])),
        [
            serde_json::json!({"id": "1"}),
            serde_json::json!({"id": "2"})
        ]
    );
}

#[test]
fn put_tags_are_validated_and_written() {
    let home = tempfile::tempdir().unwrap();
    let h = Home(home.path());
    common::ok(
        h,
        &[
            "put",
            "b:k",
            "--data",
            "x",
            "--tag",
            "project=apollo",
            "--tag",
            "team=ops",
        ],
    );
    assert_eq!(common::ok(h, &["get", "b:k"]), "x");
    let eleven: Vec<String> = (0..11).map(|i| format!("t{i}=v")).collect();
    let mut args = vec!["put", "b:k2", "--data", "x"];
    for t in &eleven {
        args.extend(["--tag", t]);
    }
    let (code, err) = common::code(h, &args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at most 10 tags"), "{err}");
    let (code, err) = common::code(h, &["put", "b:k3", "--data", "x", "--tag", "=v"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        common::code(h, &["get", "b:k2"]).0,
        3,
        "a refused put wrote nothing"
    );
}

#[test]
fn sizes_say_stored_or_original_where_the_bucket_compresses() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::fs_config(
        dir.path(),
        &dir.path().join("data"),
        "\n[buckets.zipped]\nconnection = 'disk'\n\n[buckets.zipped.layers.compression]\ndefault = 'gzip'\n\n[buckets.plain]\nconnection = 'disk'\n",
    );
    let c = Config(&cfg);
    let text = "all work and no play ".repeat(500);
    common::ok(c, &["put", "zipped:big.txt", "--data", &text]);
    common::ok(c, &["put", "plain:big.txt", "--data", &text]);
    let original = text.len() as u64;

    let stat: Value =
        serde_json::from_str(&common::ok(c, &["stat", "zipped:big.txt", "--json"])).unwrap();
    assert_eq!(stat["size"], original);
    let stored = stat["stored_size"]
        .as_u64()
        .expect("stored_size where compressed");
    assert!(stored < original / 10, "{stat}");
    let human = common::ok(c, &["stat", "zipped:big.txt"]);
    assert!(
        human.contains("bytes, original)") && human.contains("compressed)"),
        "{human}"
    );

    let listed = ndjson(&common::ok(c, &["ls", "-r", "zipped:", "--json"]));
    assert_eq!(listed[0]["size"], stored);
    assert_eq!(listed[0]["size_is"], "stored");
    let out = common::run(c, &["ls", "-rl", "zipped:"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains('*'));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stored sizes"));
    let stats: Value =
        serde_json::from_str(&common::ok(c, &["stats", "zipped:", "--json"])).unwrap();
    assert_eq!(stats["bytes"], stored);
    assert_eq!(stats["size_is"], "stored");

    // A bucket without a codec: one size, no labels.
    let stat: Value =
        serde_json::from_str(&common::ok(c, &["stat", "plain:big.txt", "--json"])).unwrap();
    assert_eq!(stat["size"], original);
    assert!(stat.get("stored_size").is_none(), "{stat}");
    let listed = ndjson(&common::ok(c, &["ls", "-r", "plain:", "--json"]));
    assert!(listed[0].get("size_is").is_none(), "{:?}", listed[0]);
}

#[test]
fn completions_and_man_page_come_from_the_clap_definitions() {
    let home = tempfile::tempdir().unwrap();
    let h = Home(home.path());
    let bash = common::ok(h, &["completions", "bash"]);
    assert!(
        bash.contains("_strata()") && bash.contains("presign"),
        "bash"
    );
    let zsh = common::ok(h, &["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef strata"), "zsh");
    let fish = common::ok(h, &["completions", "fish"]);
    assert!(fish.contains("complete -c strata"), "fish");
    let man = common::ok(h, &["man"]);
    assert!(
        man.contains(".TH strata 1") && man.contains("NAME:KEY"),
        "{}",
        &man[..200.min(man.len())]
    );
    let out = tempfile::tempdir().unwrap();
    common::ok(h, &["man", "--out-dir", out.path().to_str().unwrap()]);
    assert!(out.path().join("strata.1").is_file());
    assert!(out.path().join("strata-put.1").is_file());
    // Neither needs a config: a broken one is not read.
    let bad = out.path().join("bad.toml");
    std::fs::write(&bad, "not toml [").unwrap();
    assert!(
        common::run(Config(&bad), &["completions", "fish"])
            .status
            .success()
    );
}
