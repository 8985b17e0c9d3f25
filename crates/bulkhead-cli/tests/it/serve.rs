//! `bulkhead serve` as an operator runs it: the real binary on a fresh data directory with no
//! arguments but an ephemeral port, driven by `bulkhead admin` and `bulkhead client` as in the
//! README, then stopped with SIGTERM (finishing cleanly and flushing).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn bulkhead(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("BULKHEAD_MASTER_KEY")
        .env_remove("BULKHEAD_API_KEY")
        .env_remove("BULKHEAD_ADMIN_TOKEN")
        .env_remove("BULKHEAD_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run bulkhead")
}

pub fn ok(output: Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// A running `bulkhead serve` process, its log so far, and the address it listens on. Dropping it
/// kills the process (a test that fails midway leaves no server behind).
pub struct Running {
    child: std::process::Child,
    stderr: BufReader<std::process::ChildStderr>,
    pub startup: String,
    pub address: String,
}

/// Starts `bulkhead serve ARGS` in `dir` with a clean environment plus `env`, and waits for the line
/// that says it serves; `Err` holds the log of a server that exited instead.
pub fn start_serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Running, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    cmd.current_dir(dir).arg("serve").args(args).env("NO_COLOR", "1").stderr(Stdio::piped());
    for var in ["BULKHEAD_MASTER_KEY", "BULKHEAD_ADMIN_TOKEN", "BULKHEAD_DATA_DIR", "BULKHEAD_LOG"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("start bulkhead serve");
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    // Held from here on, so that the process is killed and reaped however this ends.
    let mut running = Running { child, stderr, startup: String::new(), address: String::new() };
    loop {
        let mut line = String::new();
        if running.stderr.read_line(&mut line).expect("read log") == 0 {
            return Err(std::mem::take(&mut running.startup));
        }
        running.startup.push_str(&line);
        if line.contains("bulkhead serving") {
            // `address=127.0.0.1:7450` in text logs, `"address":"127.0.0.1:7450"` in JSON ones.
            let address = match line.find("address=") {
                Some(at) => line[at + "address=".len()..].split_whitespace().next(),
                None => line.split("\"address\":\"").nth(1).and_then(|rest| rest.split('"').next()),
            };
            running.address = address.expect("address field").to_owned();
            return Ok(running);
        }
    }
}

impl Running {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the rest of the log once the process has exited 0.
    pub fn stop(mut self) -> String {
        let killed =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(killed.success());
        let mut rest = String::new();
        for line in (&mut self.stderr).lines() {
            rest.push_str(&line.expect("log"));
            rest.push('\n');
        }
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status:?}: {rest}");
        rest
    }
}

impl Running {
    /// Waits for the process to exit by itself (at most `limit`); its status and the rest of its
    /// log.
    pub fn wait_exit(mut self, limit: std::time::Duration) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not exit within {limit:?}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let mut rest = String::new();
        for line in (&mut self.stderr).lines() {
            rest.push_str(&line.expect("log"));
            rest.push('\n');
        }
        (status, rest)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn serve_admin_client_walkthrough() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]).expect("serving");
    let (startup, address) = (server.startup.clone(), server.address.clone());
    assert!(startup.contains("TLS off: serving plaintext"), "{startup}");
    assert!(startup.contains("DEVELOPMENT master key"), "{startup}");
    assert!(startup.contains("DEVELOPMENT admin token"), "{startup}");
    assert!(startup.contains("simd="), "the active ISA is logged: {startup}");
    assert!(dir.path().join("bulkhead-data/dev-master.key").exists());
    let env = [("BULKHEAD_SERVER", address.as_str())];

    assert!(
        ok(bulkhead(dir.path(), &["admin", "tenant", "create", "acme"], &env))
            .contains("created tenant acme")
    );
    let admin_key =
        ok(bulkhead(dir.path(), &["admin", "key", "issue", "acme", "--role", "tenant-admin"], &env));
    let admin_key = admin_key.trim();
    let reader = ok(bulkhead(dir.path(), &["admin", "key", "issue", "acme", "--role", "reader"], &env));
    let reader = reader.trim();
    assert!(admin_key.starts_with("bk_") && reader.starts_with("bk_"));
    let as_admin = [env[0], ("BULKHEAD_API_KEY", admin_key)];
    let as_reader = [env[0], ("BULKHEAD_API_KEY", reader)];
    ok(bulkhead(dir.path(), &["client", "create-collection", "docs", "--dim", "3"], &as_admin));
    ok(bulkhead(
        dir.path(),
        &["client", "upsert", "docs", "--id", "a", "--vector", "1,0,0", "--text", "hello"],
        &as_admin,
    ));
    ok(bulkhead(
        dir.path(),
        &["client", "upsert", "docs", "--id", "b", "--vector", "0,1,0", "--text", "world"],
        &as_admin,
    ));
    let hits = ok(bulkhead(
        dir.path(),
        &["client", "search", "docs", "--vector", "0.9,0.1,0", "--k", "1"],
        &as_reader,
    ));
    assert!(hits.contains("a\thello"), "{hits}");
    let denied =
        bulkhead(dir.path(), &["client", "upsert", "docs", "--id", "c", "--vector", "0,0,1"], &as_reader);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("PermissionDenied"));

    let listed = ok(bulkhead(dir.path(), &["admin", "--json", "key", "list", "acme"], &env));
    let keys: serde_json::Value = serde_json::from_str(listed.trim()).expect("json");
    assert_eq!(keys.as_array().map(Vec::len), Some(2));
    let key_id = reader.split('_').nth(1).expect("key id");
    ok(bulkhead(dir.path(), &["admin", "key", "revoke", "acme", key_id], &env));
    let revoked = bulkhead(dir.path(), &["client", "count", "docs"], &as_reader);
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("invalid or expired credential"));
    assert_eq!(ok(bulkhead(dir.path(), &["client", "count", "docs"], &as_admin)).trim(), "2");

    rotate_keys(dir.path(), &env, &as_admin);
    audit_and_policy(dir.path(), &env, &as_admin);

    // Delete needs --yes, then shreds the tenant: its keys stop working.
    assert!(!bulkhead(dir.path(), &["admin", "tenant", "delete", "acme"], &env).status.success());
    let deleted = ok(bulkhead(dir.path(), &["admin", "tenant", "delete", "acme", "--yes"], &env));
    assert!(deleted.contains("keys destroyed"), "{deleted}");
    let gone = bulkhead(dir.path(), &["client", "count", "docs"], &as_admin);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("invalid or expired credential"));

    // SIGTERM: the server finishes, flushes and exits 0.
    let rest = server.stop();
    assert!(rest.contains("store flushed"), "{rest}");
    for secret in [admin_key, reader] {
        assert!(!startup.contains(secret) && !rest.contains(secret), "a key reached the server log");
    }
}

/// The server's default storage quotas are its settings: a tenant whose policy sets none is held to
/// them, and the refusal names the quota and its limit.
#[test]
fn the_default_storage_quotas_are_the_servers_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--listen", "127.0.0.1:0", "--tenant-max-vectors", "1"];
    let server = start_serve(dir.path(), &args, &[]).expect("serving");
    let env = [("BULKHEAD_SERVER", server.address.as_str())];
    ok(bulkhead(dir.path(), &["admin", "tenant", "create", "acme"], &env));
    let key = ok(bulkhead(dir.path(), &["admin", "key", "issue", "acme", "--role", "tenant-admin"], &env));
    let as_admin = [env[0], ("BULKHEAD_API_KEY", key.trim())];
    ok(bulkhead(dir.path(), &["client", "create-collection", "docs", "--dim", "3"], &as_admin));
    let upsert = |id: &str| ["client", "upsert", "docs", "--id", id, "--vector", "1,0,0"].map(str::to_owned);
    ok(bulkhead(dir.path(), &upsert("a").each_ref().map(String::as_str), &as_admin));
    let refused = bulkhead(dir.path(), &upsert("b").each_ref().map(String::as_str), &as_admin);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("ResourceExhausted") && stderr.contains("max_vectors of 1"), "{stderr}");
    assert_eq!(ok(bulkhead(dir.path(), &["client", "count", "docs"], &as_admin)).trim(), "1");
    server.stop();
}

/// The walkthrough's key rotations: the tenant's key (the command follows the server's re-sealing
/// to the end), then the master key from a file on the server's host; the data stays readable.
fn rotate_keys(dir: &Path, env: &[(&str, &str)], as_admin: &[(&str, &str)]) {
    let rotated = ok(bulkhead(dir, &["admin", "rotate-tenant-key", "acme"], env));
    assert!(rotated.contains("rotation finished"), "{rotated}");
    let status = ok(bulkhead(dir, &["admin", "rotation-status", "acme"], env));
    assert!(status.contains("key generation 2, no rotation running"), "{status}");
    let new_key = dir.join("new-master.key");
    ok(bulkhead(dir, &["generate-master-key", new_key.to_str().expect("utf-8")], &[]));
    let master = ok(bulkhead(dir, &["admin", "rotate-master-key", new_key.to_str().expect("utf-8")], env));
    assert!(master.contains("master key version 2"), "{master}");
    assert_eq!(ok(bulkhead(dir, &["client", "count", "docs"], as_admin)).trim(), "2");
}

/// The walkthrough's audit trail and policy: the tenant-admin exports its own tenant's events as
/// JSON lines, the operator exports them too; a policy is shown, set and in force; every chain
/// verifies.
fn audit_and_policy(dir: &Path, env: &[(&str, &str)], as_admin: &[(&str, &str)]) {
    let trail = ok(bulkhead(dir, &["client", "audit-export"], as_admin));
    let operations: Vec<String> = trail
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["operation"].to_string())
        .collect();
    for expected in
        ["\"tenant-created\"", "\"upsert\"", "\"search\"", "\"authenticate\"", "\"api-key-revoked\""]
    {
        assert!(operations.iter().any(|op| op == expected), "{expected} in {operations:?}");
    }
    assert!(!trail.contains("docs"), "the collection's name appears only hashed");
    let admin_export = ok(bulkhead(dir, &["admin", "audit", "export", "acme"], env));
    assert!(admin_export.lines().count() > operations.len(), "the operator sees the tenant's export too");
    // A policy: shown at version 0, set from a JSON file, then in force (k above its limit refused).
    let shown = ok(bulkhead(dir, &["admin", "policy", "show", "acme"], env));
    assert!(shown.contains("\"version\": 0"), "{shown}");
    let policy_file = dir.join("policy.json");
    std::fs::write(&policy_file, r#"{"denied":[{"role":"reader","operation":"count"}],"max_k":2}"#)
        .expect("write");
    let set = ok(bulkhead(
        dir,
        &[
            "admin",
            "policy",
            "set",
            "acme",
            "--file",
            policy_file.to_str().expect("utf-8"),
            "--expected-version",
            "0",
            "--note",
            "tighter k",
        ],
        env,
    ));
    assert!(set.contains("policy version 1 in force"), "{set}");
    let over = bulkhead(dir, &["client", "search", "docs", "--vector", "1,0,0", "--k", "3"], as_admin);
    assert!(String::from_utf8_lossy(&over.stderr).contains("must be 1 to 2"), "{over:?}");
    let verified = ok(bulkhead(dir, &["admin", "audit", "verify"], env));
    assert!(verified.lines().count() >= 2 && !verified.contains("BROKEN"), "{verified}");
}

/// Safe by default: a server that would listen beyond loopback refuses to start without TLS, an
/// explicit master key and an explicit admin token (before it generates or opens anything), unless
/// the operator says `--allow-insecure-public`, which it then logs as an error.
#[test]
fn serving_beyond_loopback_needs_tls_and_explicit_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let refused = start_serve(dir.path(), &["--listen", "0.0.0.0:0", "--metrics-listen", "off"], &[])
        .err()
        .expect("refused");
    for missing in ["TLS (--tls-cert and --tls-key)", "an explicit master key", "an explicit admin token"] {
        assert!(refused.contains(missing), "{refused}");
    }
    assert!(refused.contains("--allow-insecure-public"), "{refused}");
    assert!(!dir.path().join("bulkhead-data").exists(), "nothing was generated or opened");
    // An explicit master key and token but no TLS: still refused, naming only what is missing.
    let key = dir.path().join("master.key");
    ok(bulkhead(dir.path(), &["generate-master-key", key.to_str().expect("path")], &[]));
    let token = ("BULKHEAD_ADMIN_TOKEN", "an-admin-token-of-at-least-32-characters!");
    let explicit = [token, ("BULKHEAD_MASTER_KEY_FILE", key.to_str().expect("path"))];
    let refused = start_serve(dir.path(), &["--listen", "0.0.0.0:0", "--metrics-listen", "off"], &explicit)
        .err()
        .expect("refused without TLS");
    assert!(refused.contains("without TLS (--tls-cert and --tls-key):"), "{refused}");
    assert!(
        !refused.contains("an explicit master key") && !refused.contains("an explicit admin token"),
        "{refused}"
    );
    // Allowed explicitly: it serves, and says loudly what is exposed.
    let server = start_serve(
        dir.path(),
        &["--listen", "0.0.0.0:0", "--metrics-listen", "off", "--allow-insecure-public"],
        &[],
    )
    .expect("serving when allowed");
    assert!(server.startup.contains("SERVING BEYOND LOOPBACK INSECURELY"), "{}", server.startup);
    server.stop();
}

/// The CLI does not send a credential in plaintext to a server that is not on loopback.
#[test]
fn the_cli_refuses_to_send_credentials_in_clear_beyond_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, env) in [
        (
            vec!["admin", "--server", "10.1.2.3:7450", "tenant", "list"],
            vec![("BULKHEAD_ADMIN_TOKEN", "an-admin-token-of-at-least-32-characters!")],
        ),
        (
            vec!["client", "--server", "http://db.example:7450", "collections"],
            vec![("BULKHEAD_API_KEY", "bk_00_11")],
        ),
    ] {
        let refused = bulkhead(dir.path(), &args, &env);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("not a loopback address") && stderr.contains("--insecure-plaintext"),
            "{stderr}"
        );
        assert!(!stderr.contains("an-admin-token") && !stderr.contains("bk_00_11"), "{stderr}");
    }
}

/// A data directory a server holds open is named as such, with the server's process id and what to
/// do instead, both to an embedded command and to a second server; once the server stops, the
/// directory is free.
#[test]
fn a_data_directory_held_by_a_server_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--listen", "127.0.0.1:0", "--metrics-listen", "off"];
    let server = start_serve(dir.path(), &args, &[]).expect("serving");
    let holder =
        format!("the data directory bulkhead-data is in use by process {} (bulkhead serve)", server.pid());
    let embedded = bulkhead(dir.path(), &["tenant", "list"], &[]);
    assert!(!embedded.status.success());
    let stderr = String::from_utf8_lossy(&embedded.stderr);
    assert!(stderr.contains(&holder) && stderr.contains("bulkhead admin"), "{stderr}");
    assert!(!stderr.contains("LOCK"), "not RocksDB's error: {stderr}");
    let second = start_serve(dir.path(), &args, &[]).err().expect("refused");
    assert!(second.contains(&holder), "{second}");
    assert!(!second.contains("bulkhead serving"), "{second}");
    server.stop();
    ok(bulkhead(dir.path(), &["tenant", "list"], &[]));
}

/// The operations endpoints of the real binary: the gRPC health service says SERVING, `/healthz`
/// beside `/metrics` answers 200, and every port is bound before the server says it serves: an
/// explicit metrics port that is taken stops the start with a clear error and no "serving" line.
#[test]
fn health_endpoints_and_every_port_bound_before_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"];
    let server = start_serve(dir.path(), &args, &[]).expect("serving");
    let metrics_line =
        server.startup.lines().find(|l| l.contains("liveness at /healthz")).expect("the metrics line");
    let metrics = metrics_line.split("address=").nth(1).and_then(|r| r.split_whitespace().next());
    let metrics = metrics.expect("the metrics address").to_owned();
    let (status, body) = http_get(&metrics, "/healthz");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\n"));
    assert_eq!(http_get(&metrics, "/metrics").0, "HTTP/1.1 200 OK");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let channel = bulkhead_server::client::connect(&server.address).await.expect("connect");
        for service in ["", "bulkhead.v1.DataPlane", "bulkhead.v1.Admin"] {
            let status = bulkhead_server::client::health(channel.clone(), service).await.expect("health");
            assert_eq!(status, "SERVING", "{service:?}");
        }
    });

    // The metrics port of the running server, given explicitly to a second server on another data
    // directory: refused before it says it serves, naming the port and what to do.
    let taken = ["--listen", "127.0.0.1:0", "--metrics-listen", &metrics, "--data-dir", "other"];
    let refused = start_serve(dir.path(), &taken, &[]).err().expect("refused");
    assert!(!refused.contains("bulkhead serving"), "{refused}");
    assert!(refused.contains(&format!("cannot listen for metrics on {metrics}: it is taken")), "{refused}");
    assert!(refused.contains("--metrics-listen off"), "{refused}");
    server.stop();
}

/// `GET path` over HTTP/1.1: the status line and the body.
fn http_get(address: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a response");
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// The environment the process `pid` runs with, from `/proc`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn environment_of(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    raw.split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_server_runs_with_its_allocator_settings_unless_the_operator_set_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The same process (it executed itself again, keeping its id), with the tunables added. glibc
    // 2.36 cuts the variable in place at each `:` as it parses it; joined again, the entries show it
    // whole, whichever way this glibc leaves it.
    let server = start_serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]).expect("serving");
    let environment = environment_of(server.pid());
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get).max(2);
    let expected =
        format!("GLIBC_TUNABLES=glibc.malloc.arena_max={cores}:glibc.malloc.trim_threshold=1048576");
    assert!(environment.join(":").contains(&expected), "{environment:?}");
    assert!(environment.iter().any(|v| v == "BULKHEAD_ALLOCATOR_TUNED=1"), "{environment:?}");
    assert!(!server.startup.contains("default allocator settings"), "{}", server.startup);
    server.stop();
    // An operator's own malloc settings are kept as they are, and the server does not execute again.
    let own = [("GLIBC_TUNABLES", "glibc.malloc.arena_max=3")];
    let server = start_serve(dir.path(), &["--listen", "127.0.0.1:0"], &own).expect("serving");
    let environment = environment_of(server.pid());
    assert!(environment.iter().any(|v| v == "GLIBC_TUNABLES=glibc.malloc.arena_max=3"), "{environment:?}");
    assert!(!environment.iter().any(|v| v.starts_with("BULKHEAD_ALLOCATOR_TUNED")), "{environment:?}");
    server.stop();
}
