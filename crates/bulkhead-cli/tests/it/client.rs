//! `bulkhead client` against the real binary's server: describe, get, delete, drop-collection and
//! `upsert --file` (JSON lines and fvecs, in several batches), and every bad input of a file refused
//! by its line or record with nothing written; a tenant-admin's own keys (`client key`).

use crate::serve::{Running, bulkhead, ok, start_serve};
use std::path::Path;

/// A server with tenant `acme`, its tenant-admin key, and a collection `docs` of `dim` dimensions.
fn setup(dir: &Path, dim: &str) -> (Running, Vec<(&'static str, String)>) {
    let server =
        start_serve(dir, &["--listen", "127.0.0.1:0", "--metrics-listen", "off"], &[]).expect("serving");
    let env = [("BULKHEAD_SERVER", server.address.as_str())];
    ok(bulkhead(dir, &["admin", "tenant", "create", "acme"], &env));
    let key = ok(bulkhead(dir, &["admin", "key", "issue", "acme", "--role", "tenant-admin"], &env));
    let env = vec![("BULKHEAD_SERVER", server.address.clone()), ("BULKHEAD_API_KEY", key.trim().to_owned())];
    ok(client(dir, &env, &["create-collection", "docs", "--dim", dim]));
    (server, env)
}

/// `bulkhead client ARGS` with `env`.
fn client(dir: &Path, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let all: Vec<&str> = ["client"].into_iter().chain(args.iter().copied()).collect();
    bulkhead(dir, &all, &env)
}

fn failed(output: std::process::Output) -> String {
    assert!(!output.status.success(), "succeeded: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8(output.stderr).expect("utf-8")
}

fn count(dir: &Path, env: &[(&str, String)]) -> u64 {
    ok(client(dir, env, &["count", "docs"])).trim().parse().expect("a count")
}

#[test]
fn get_describe_delete_and_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, env) = setup(dir.path(), "3");
    let file = dir.path().join("points.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"id": "a", "vector": [1, 0, 0], "text": "hello", "metadata": {"lang": "en", "year": 2024}}"#,
            "\n",
            r#"{"id": "b", "vector": [0, 1, 0], "text": "for alice", "acl": {"users": ["alice"]}, "#,
            r#""source_uri": "https://wiki/b"}"#,
            "\n",
            r#"{"id": "c", "vector": [0, 0, 1], "metadata": {"tags": ["x", "y"], "draft": true}}"#,
            "\n",
        ),
    )
    .expect("write");
    let loaded = ok(client(dir.path(), &env, &["upsert", "docs", "--file", file.to_str().expect("utf-8")]));
    assert!(loaded.contains("upserted 3 points") && loaded.contains("in 1 batches"), "{loaded}");

    let got = ok(client(dir.path(), &env, &["get", "docs", "a", "b"]));
    assert!(got.contains("a\tversion") && got.contains("hello") && got.contains(r#""lang":"en""#), "{got}");
    assert!(got.contains("source: https://wiki/b"), "{got}");
    let json = ok(client(dir.path(), &env, &["--json", "get", "docs", "c", "--with-vector"]));
    let point: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    assert_eq!(point["id"], "c");
    assert_eq!(point["vector"], serde_json::json!([0.0, 0.0, 1.0]));
    assert_eq!(point["metadata"], serde_json::json!({"draft": true, "tags": ["x", "y"]}));
    // As bob (through a key that may name its user), alice's point is not found; the found one is
    // still printed and the command fails.
    let admin = [("BULKHEAD_SERVER", env[0].1.as_str())];
    let issue = ["admin", "key", "issue", "acme", "--role", "reader", "--on-behalf-of"];
    let backend = ok(bulkhead(dir.path(), &issue, &admin));
    let backend = [env[0].clone(), ("BULKHEAD_API_KEY", backend.trim().to_owned())];
    let as_bob = client(dir.path(), &backend, &["get", "docs", "a", "b", "--as-user", "bob"]);
    assert!(String::from_utf8_lossy(&as_bob.stdout).contains("hello"));
    let stderr = failed(as_bob);
    assert!(stderr.contains("NotFound") && stderr.contains("1 of the ids not found"), "{stderr}");
    assert!(!stderr.contains("for alice"), "{stderr}");

    let described = ok(client(dir.path(), &env, &["describe", "docs"]));
    assert!(described.starts_with("docs\t3 dims\tcosine\tcreated "), "{described}");
    assert!(described.contains("index: ") && described.contains("exact-scan delta"), "{described}");
    let described = ok(client(dir.path(), &env, &["describe", "docs", "--json"]));
    let described: serde_json::Value = serde_json::from_str(described.trim()).expect("json");
    assert_eq!((described["dimension"].as_u64(), described["metric"].as_str()), (Some(3), Some("cosine")));
    assert!(described["index"]["delta_points"].is_u64(), "{described}");

    let deleted = ok(client(dir.path(), &env, &["delete", "docs", "a", "zzz"]));
    assert_eq!(deleted.trim(), "deleted 1 of 2 points");
    assert_eq!(count(dir.path(), &env), 2);
    let missing = failed(client(dir.path(), &env, &["describe", "nope"]));
    assert!(missing.contains("NotFound"), "{missing}");

    let refused = failed(client(dir.path(), &env, &["drop-collection", "docs"]));
    assert!(refused.contains("add --yes"), "{refused}");
    assert_eq!(count(dir.path(), &env), 2, "nothing dropped without --yes");
    let dropped = ok(client(dir.path(), &env, &["drop-collection", "docs", "--yes"]));
    assert_eq!(dropped.trim(), "dropped collection docs");
    assert!(failed(client(dir.path(), &env, &["count", "docs"])).contains("NotFound"));
    server.stop();
}

fn fvecs(records: impl IntoIterator<Item = Vec<f32>>) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for v in r {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[test]
fn upsert_file_streams_batches_and_refuses_bad_input_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, env) = setup(dir.path(), "4");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_owned();

    // 2,500 JSON lines: three batches (at most 1,024 points each); the progress goes to stderr.
    let lines: String = (0..2500)
        .map(|i| format!("{{\"id\": \"p{i}\", \"vector\": [1, {i}, 0, 0.5], \"text\": \"chunk {i}\"}}\n"))
        .collect();
    std::fs::write(path("many.jsonl"), &lines).expect("write");
    let loaded = client(dir.path(), &env, &["upsert", "docs", "--file", &path("many.jsonl")]);
    assert!(String::from_utf8_lossy(&loaded.stderr).contains("% of the file"), "{loaded:?}");
    assert!(ok(loaded).contains("upserted 2500 points"), "three batches");
    assert_eq!(count(dir.path(), &env), 2500);
    let json = ok(client(dir.path(), &env, &["--json", "upsert", "docs", "--file", &path("many.jsonl")]));
    let summary: serde_json::Value = serde_json::from_str(json.trim()).expect("json");
    assert_eq!((summary["upserted"].as_u64(), summary["batches"].as_u64()), (Some(2500), Some(3)));

    // fvecs: ids from the prefix and the record number.
    let vectors = fvecs((0..10).map(|i| vec![i as f32, 1.0, 0.0, 0.0]));
    std::fs::write(path("base.fvecs"), &vectors).expect("write");
    let loaded = ok(client(
        dir.path(),
        &env,
        &["upsert", "docs", "--file", &path("base.fvecs"), "--id-prefix", "vec-"],
    ));
    assert!(loaded.contains("upserted 10 points"), "{loaded}");
    assert_eq!(count(dir.path(), &env), 2510);
    assert!(ok(client(dir.path(), &env, &["get", "docs", "vec-9"])).starts_with("vec-9\t"));

    // Bad input: each refused naming its place and what to check, and nothing of the file written
    // (the whole file is checked before the first batch is sent).
    let bad_line = format!("{lines}{{\"id\": \"late\", \"vector\": [1, 2, 3]}}\n");
    std::fs::write(path("wrong-dim.jsonl"), &bad_line).expect("write");
    std::fs::write(path("bad-json.jsonl"), "{\"id\": \"x\", \"vector\": [1, 0, 0, 0]}\n{\"id\": \"y\",\n")
        .expect("write");
    std::fs::write(path("wrong.fvecs"), fvecs([vec![1.0; 4], vec![1.0; 8]])).expect("write");
    std::fs::write(path("cut.fvecs"), &vectors[..vectors.len() - 3]).expect("write");
    for (file, expected) in [
        ("missing.jsonl", vec!["opening", "missing.jsonl", "check the path"]),
        ("wrong-dim.jsonl", vec!["line 2501: the vector has 3 values, but the collection's vectors have 4"]),
        ("bad-json.jsonl", vec!["line 2: not valid JSON", "one JSON object"]),
        ("wrong.fvecs", vec!["record 1 (byte 20): dimension 8", "have 4", "not ivecs or bvecs"]),
        ("cut.fvecs", vec!["record 9 (byte 180): the file ends after 13 of the record's 16", "truncated"]),
    ] {
        let stderr = failed(client(dir.path(), &env, &["upsert", "docs", "--file", &path(file)]));
        for part in expected {
            assert!(stderr.contains(part), "{file}: {part} in {stderr}");
        }
        assert_eq!(count(dir.path(), &env), 2510, "{file}: nothing written");
    }
    // From stdin a file is not read twice: the points before a bad line's batch are written, and
    // the error says how many.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.current_dir(dir.path()).args(["client", "upsert", "docs", "--file", "-"]);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let input = std::fs::File::open(path("wrong-dim.jsonl")).expect("open");
    let streamed = cmd.stdin(input).output().expect("run");
    let stderr = failed(streamed);
    assert!(
        stderr.contains("line 2501") && stderr.contains("2048 points before it were upserted"),
        "{stderr}"
    );
    // The server's own refusals name the batch: a metadata field name over its limit.
    let long = format!(
        "{{\"id\": \"big\", \"vector\": [1, 0, 0, 0], \"metadata\": {{\"{}\": 1}}}}\n",
        "k".repeat(200)
    );
    std::fs::write(path("long-key.jsonl"), long).expect("write");
    let stderr = failed(client(dir.path(), &env, &["upsert", "docs", "--file", &path("long-key.jsonl")]));
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("batch of 1 points from line 1"),
        "{stderr}"
    );
    server.stop();
}

/// Every command answers in JSON with `--json`, wherever it stands; the API key is accepted before
/// or after the subcommand, and its absence is a message that says where to give it; `key list`
/// shows each key's role, whom it acts for, its expiry and whether it has expired.
#[test]
fn json_everywhere_the_api_key_anywhere_and_key_list_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, env) = setup(dir.path(), "3");
    let (address, key) = (env[0].1.clone(), env[1].1.clone());
    let only_server = [("BULKHEAD_SERVER", address.as_str())];
    let json = |output: std::process::Output| -> serde_json::Value {
        let text = ok(output);
        assert_eq!(text.lines().count(), 1, "{text}");
        serde_json::from_str(text.trim()).expect("one JSON line")
    };
    // The key after the subcommand, before it, or in the environment; --json anywhere.
    let after = ["client", "upsert", "docs", "--id", "a", "--vector", "1,0,0", "--api-key", &key, "--json"];
    assert!(json(bulkhead(dir.path(), &after, &only_server))["version"].is_u64());
    let before = ["--json", "client", "--api-key", &key, "count", "docs"];
    assert_eq!(json(bulkhead(dir.path(), &before, &only_server))["count"], 1);
    let collections = json(client(dir.path(), &env, &["collections", "--json"]));
    assert_eq!(collections[0]["name"], "docs");
    assert_eq!(collections[0]["metric"], "cosine");
    let created = json(client(dir.path(), &env, &["--json", "create-collection", "more", "--dim", "2"]));
    assert_eq!((created["name"].as_str(), created["dimension"].as_u64()), (Some("more"), Some(2)));
    let hits = json(client(dir.path(), &env, &["search", "docs", "--vector", "1,0,0", "--json"]));
    assert_eq!(hits["id"], "a");
    let dropped = json(client(dir.path(), &env, &["drop-collection", "more", "--yes", "--json"]));
    assert_eq!(dropped["dropped"], "more");
    let missing = bulkhead(dir.path(), &["client", "count", "docs"], &only_server);
    let stderr = failed(missing);
    assert!(stderr.contains("no API key") && stderr.contains("BULKHEAD_API_KEY"), "{stderr}");

    // key list: role, binding, expiry, state.
    let admin = |args: &[&str]| ok(bulkhead(dir.path(), &[&["admin"], args].concat(), &only_server));
    admin(&["key", "issue", "acme", "--role", "reader", "--user", "alice", "--groups", "eng,ops"]);
    admin(&["key", "issue", "acme", "--role", "reader", "--on-behalf-of", "--expires-in-secs", "3600"]);
    // The server refuses an expiry that is not in the future, and the binary's clock cannot be
    // moved: this key is given one second, and the list waits for it to pass.
    let issued = std::time::Instant::now();
    admin(&["key", "issue", "acme", "--role", "writer", "--expires-in-secs", "1", "--label", "old"]);
    std::thread::sleep(std::time::Duration::from_millis(1100).saturating_sub(issued.elapsed()));
    let listed = admin(&["key", "list", "acme"]);
    let line = |needle: &str| listed.lines().find(|l| l.contains(needle)).expect(needle).to_owned();
    let columns = |l: String| l.split('\t').map(str::to_owned).collect::<Vec<_>>();
    let alice = columns(line("user alice"));
    assert_eq!(alice[1..], ["reader", "user alice (groups eng,ops)", "no expiry", "active", ""]);
    let backend = columns(line("on behalf of"));
    assert_eq!(backend[1..3], ["reader", "service, on behalf of users"]);
    assert!(backend[3].starts_with("expires 20") && backend[3].ends_with(" UTC"), "{backend:?}");
    assert_eq!(backend[4], "active");
    let old = columns(line("\told"));
    assert_eq!(old[1..3], ["writer", "service"]);
    assert!(old[3].starts_with("expired 20"), "{old:?}");
    assert_eq!(old[4], "expired");
    let keys = json(bulkhead(dir.path(), &["admin", "key", "list", "acme", "--json"], &only_server));
    let keys = keys.as_array().expect("a list");
    assert_eq!(keys.len(), 4);
    let by_label = |label: &str| keys.iter().find(|k| k["label"] == label).expect("key");
    assert_eq!(
        (by_label("old")["expired"].as_bool(), by_label("old")["state"].as_str()),
        (Some(true), Some("expired"))
    );
    let alice = keys.iter().find(|k| !k["user"].is_null()).expect("alice's key");
    assert_eq!(alice["user"], serde_json::json!({ "user": "alice", "groups": ["eng", "ops"] }));
    assert_eq!(alice["expired"], false);
    server.stop();
}

/// The commands without a server answer in JSON too: `generate-master-key`, `serve --print-config`.
#[test]
fn json_without_a_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("master.key");
    let key = key.to_str().expect("utf-8");
    let written = ok(bulkhead(dir.path(), &["--json", "generate-master-key", key], &[]));
    let written: serde_json::Value = serde_json::from_str(written.trim()).expect("json");
    assert_eq!(written["master_key_file"], key);
    let config =
        ok(bulkhead(dir.path(), &["serve", "--print-config", "--json", "--listen", "127.0.0.1:9"], &[]));
    let config: serde_json::Value = serde_json::from_str(config.trim()).expect("json");
    assert_eq!(config["settings"]["listen"], "127.0.0.1:9");
    assert!(
        config["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("TLS")))
    );
    assert!(!dir.path().join("bulkhead-data").exists(), "--print-config touches nothing");
}

#[test]
fn a_tenant_admin_issues_lists_and_revokes_its_own_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, env) = setup(dir.path(), "3");
    let reader = ok(client(dir.path(), &env, &["key", "issue", "--role", "reader", "--label", "backend"]));
    let reader = reader.trim().to_owned();
    assert!(reader.starts_with("bk_"), "only the token on stdout: {reader}");
    let as_reader = vec![env[0].clone(), ("BULKHEAD_API_KEY", reader.clone())];
    assert_eq!(count(dir.path(), &as_reader), 0, "the new key reads");
    let refused = failed(client(dir.path(), &as_reader, &["key", "issue", "--role", "reader"]));
    assert!(refused.to_lowercase().contains("permission"), "a reader issues no keys: {refused}");
    let listed = ok(client(dir.path(), &env, &["--json", "key", "list"]));
    let keys: Vec<serde_json::Value> = serde_json::from_str(listed.trim()).expect("a JSON array");
    let backend = keys.iter().find(|k| k["label"] == "backend").expect("the new key listed");
    assert_eq!(backend["role"], "reader", "{backend}");
    let key_id = backend["key_id"].as_str().expect("key id").to_owned();
    assert!(reader.contains(&key_id), "the token names its key id");
    ok(client(dir.path(), &env, &["key", "revoke", &key_id]));
    let gone = failed(client(dir.path(), &as_reader, &["count", "docs"]));
    assert!(gone.to_lowercase().contains("unauthenticated") || gone.contains("revoked"), "{gone}");
    drop(server);
}
