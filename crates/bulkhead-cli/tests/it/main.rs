//! The `bulkhead` binary end to end (`CARGO_BIN_EXE_bulkhead`). This file: the embedded commands'
//! walkthrough on a fresh data directory; the modules: `serve` (the server as an operator runs it,
//! with `admin` and `client`), `client` (the data plane's commands and bulk loads from a file), `config` (where `serve` takes its settings from), `tls` (the binary
//! over TLS), `admission` (hostile requests against the real binary, its memory read from `/proc`)
//! and `bench`. The server's in-process tests are in `crates/bulkhead-server/tests/it/`, whose
//! `wire.rs` and `certs.rs` these tests share.

mod admission;
mod archive;
mod bench;
mod client;
mod cluster;
mod config;
mod serve;
mod tls;

#[allow(dead_code, reason = "shared with the server's tests, which use the parts these do not")]
#[path = "../../../bulkhead-server/tests/it/certs.rs"]
mod certs;
#[allow(dead_code, reason = "shared with the server's tests, which use the parts these do not")]
#[path = "../../../bulkhead-server/tests/it/wire.rs"]
mod wire;

use serve::ok;
use std::path::Path;
use std::process::Output;

/// `bulkhead --data-dir DATA ARGS`, with `api_key` as BULKHEAD_API_KEY when given.
fn bulkhead(data: &Path, args: &[&str], api_key: Option<&str>) -> Output {
    let mut all = vec!["--data-dir", data.to_str().expect("utf-8")];
    all.extend_from_slice(args);
    let env: Vec<(&str, &str)> = api_key.map(|key| ("BULKHEAD_API_KEY", key)).into_iter().collect();
    serve::bulkhead(data.parent().expect("the data directory's parent"), &all, &env)
}

#[test]
fn walkthrough() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let first = bulkhead(&data, &["tenant", "create", "acme"], None);
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("DEVELOPMENT master key"),
        "loud warning on first use"
    );
    assert!(ok(first).contains("created tenant acme"));
    let admin =
        ok(bulkhead(&data, &["key", "issue", "acme", "--role", "tenant-admin"], None)).trim().to_owned();
    let reader = ok(bulkhead(&data, &["key", "issue", "acme", "--role", "reader"], None)).trim().to_owned();
    assert!(admin.starts_with("bk_"));
    ok(bulkhead(&data, &["collection", "create", "docs", "--dim", "3", "--metric", "cosine"], Some(&admin)));
    ok(bulkhead(
        &data,
        &["upsert", "docs", "--id", "a", "--vector", "1,0,0", "--text", "hello"],
        Some(&admin),
    ));
    ok(bulkhead(
        &data,
        &["upsert", "docs", "--id", "b", "--vector", "0,1,0", "--text", "world"],
        Some(&admin),
    ));
    let hits = ok(bulkhead(&data, &["search", "docs", "--vector", "0.9,0.1,0", "--k", "1"], Some(&reader)));
    assert!(hits.contains("a\thello"), "{hits}");

    // A reader cannot write; a revoked key cannot read; nothing changed.
    let denied = bulkhead(&data, &["upsert", "docs", "--id", "c", "--vector", "0,0,1"], Some(&reader));
    assert!(!denied.status.success());
    let key_id = reader.split('_').nth(1).expect("key id");
    ok(bulkhead(&data, &["key", "revoke", "acme", key_id], None));
    let revoked = bulkhead(&data, &["search", "docs", "--vector", "1,0,0"], Some(&reader));
    assert!(!revoked.status.success());
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("invalid or expired credential"));
    let listed = ok(bulkhead(&data, &["collection", "list"], Some(&admin)));
    assert!(listed.contains("docs\t3 dims\tcosine\t2 points"), "{listed}");

    // --json everywhere, and the API key after the subcommand.
    let json = |args: &[&str]| -> serde_json::Value {
        let text = ok(bulkhead(&data, args, None));
        serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("one JSON value: {text}"))
    };
    let listed = json(&["--json", "collection", "list", "--api-key", &admin]);
    assert_eq!((listed[0]["name"].as_str(), listed[0]["points"].as_u64()), (Some("docs"), Some(2)));
    let hit = json(&["search", "docs", "--vector", "1,0,0", "--k", "1", "--json", "--api-key", &admin]);
    assert_eq!(hit["id"], "a");
    let keys = json(&["--json", "key", "list", "acme"]);
    let mut states: Vec<_> = keys.as_array().expect("list").iter().map(|k| k["state"].to_string()).collect();
    states.sort();
    assert_eq!(states, ["\"active\"", "\"revoked\""], "{keys}");
    assert!(json(&["--json", "tenant", "list"])[0]["uid"].is_string());
    let missing = bulkhead(&data, &["collection", "list"], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no API key"));

    let demo = ok(bulkhead(&data, &["demo"], None));
    assert!(demo.contains("5. revoked the reader key"), "{demo}");
    let demo = ok(bulkhead(&data, &["demo", "--json"], None));
    for line in demo.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("a JSON line: {line}"));
    }
    assert!(
        demo.lines().count() == 4 && demo.contains("\"data_dir\""),
        "three hits, then the summary: {demo}"
    );
}
