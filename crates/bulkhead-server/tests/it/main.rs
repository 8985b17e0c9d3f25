//! The `bulkhead` binary and its gRPC server end to end. This file: the embedded commands' walkthrough
//! on a fresh data directory; the modules: the server (`grpc`, `auth`, `admission`, `limits`, `logs`, `serve`, `tls`, `config`).

mod admission;
mod auth;
mod bench;
mod config;
mod grpc;
mod harness;
mod limits;
mod logs;
mod metrics;
mod serve;
mod tls;

use std::path::Path;
use std::process::{Command, Output};

fn bulkhead(data: &Path, args: &[&str], api_key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("BULKHEAD_MASTER_KEY")
        .env_remove("BULKHEAD_API_KEY");
    if let Some(key) = api_key {
        cmd.env("BULKHEAD_API_KEY", key);
    }
    cmd.output().expect("run bulkhead")
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
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

    let demo = ok(bulkhead(&data, &["demo"], None));
    assert!(demo.contains("5. revoked the reader key"), "{demo}");
}
