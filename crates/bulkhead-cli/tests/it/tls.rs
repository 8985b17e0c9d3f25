//! The binary over TLS: `serve` from a config file with TLS in it, `admin` and `client` with
//! `--tls-ca` (host:port and https://), a client without it told to use TLS, a world-readable key
//! refused at start. The certificates are made in the test (the server's `tests/it/certs.rs`); the
//! server's TLS in process is tested in `crates/bulkhead-server/tests/it/tls.rs`.

use crate::certs::{key_body, self_signed, set_mode};
use crate::serve::{bulkhead, ok, start_serve};

/// The binary end to end: `serve --config` with TLS in the file, `admin` and `client` with
/// `--tls-ca` (host:port and https://), a client without it told to use TLS, a world-readable key
/// refused at start.
#[test]
fn the_binary_serves_tls_from_its_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = self_signed(dir.path(), "server", &["localhost", "127.0.0.1"], 0o600);
    std::fs::write(
        dir.path().join("bulkhead.toml"),
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n\n\
         [tls]\ncert = \"server.crt\"\nkey = \"server.key\"\n",
    )
    .expect("config");
    // From another directory: the file's relative paths are the file's.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bulkhead.toml");
    let config = config.to_str().expect("utf-8");
    let server = start_serve(elsewhere.path(), &["--config", config], &[]).expect("serving over TLS");
    assert!(server.startup.contains("TLS on"), "{}", server.startup);
    assert!(server.startup.contains("tls=true"), "{}", server.startup);
    assert!(dir.path().join("data/dev-admin.token").exists(), "data_dir relative to the file");

    let ca = cert.cert.to_str().expect("utf-8");
    let token = dir.path().join("data/dev-admin.token");
    let token = token.to_str().expect("utf-8");
    let https = format!("https://{}", server.address);
    let env = [("BULKHEAD_SERVER", server.address.as_str()), ("BULKHEAD_ADMIN_TOKEN_FILE", token)];
    let created = ok(bulkhead(dir.path(), &["admin", "--tls-ca", ca, "tenant", "create", "acme"], &env));
    assert!(created.contains("created tenant acme"), "{created}");
    let key = ok(bulkhead(
        dir.path(),
        &["admin", "--server", &https, "--tls-ca", ca, "key", "issue", "acme", "--role", "tenant-admin"],
        &env,
    ));
    let as_admin = [env[0], ("BULKHEAD_API_KEY", key.trim()), ("BULKHEAD_TLS_CA", ca)];
    ok(bulkhead(dir.path(), &["client", "create-collection", "docs", "--dim", "3"], &as_admin));
    ok(bulkhead(
        dir.path(),
        &["client", "upsert", "docs", "--id", "a", "--vector", "1,0,0", "--text", "hi"],
        &as_admin,
    ));
    let hits =
        ok(bulkhead(dir.path(), &["client", "search", "docs", "--vector", "1,0,0", "--k", "1"], &as_admin));
    assert!(hits.contains("a\thi"), "{hits}");

    // The same call without --tls-ca: refused, with the way out in the message.
    let plaintext = bulkhead(dir.path(), &["client", "count", "docs"], &as_admin[..2]);
    assert!(!plaintext.status.success());
    let stderr = String::from_utf8_lossy(&plaintext.stderr);
    assert!(stderr.contains("https://") && stderr.contains("--tls-ca"), "{stderr}");
    assert!(!stderr.contains(key.trim()), "{stderr}");
    let rest = server.stop();
    assert!(!rest.contains(&key_body(&cert.key_pem)[..40]) && !rest.contains(key.trim()), "{rest}");

    // A world-readable key stops the start with the master key's refusal.
    set_mode(&cert.key, 0o644);
    let refused = start_serve(elsewhere.path(), &["--config", config], &[]).err().expect("refused");
    assert!(refused.contains("TLS private key file") && refused.contains("chmod 600"), "{refused}");
}
