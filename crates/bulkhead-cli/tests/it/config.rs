//! The settings of `bulkhead serve` as the binary reads them: a flag beats its environment
//! variable, which beats the config file, which beats the default (read back with
//! `--print-config`); a config file with an unknown key stops the start, naming the file and the
//! key; JSON logs are JSON. The schema itself is tested in `crates/bulkhead-server/tests/it/config.rs`.

use crate::serve::start_serve;
use bulkhead_server::config::{DEFAULT_LISTEN, LogFormat, ServeConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary refuses to start on a config file with an unknown key, naming the file and the key.
#[test]
fn a_bad_config_file_stops_the_start_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nlisten_adress = \"127.0.0.1:0\"\n").expect("write");
    let refused = serve(dir.path(), &["--config", file.to_str().expect("utf-8")], &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("listen_adress") && stderr.contains("bad.toml"), "{stderr}");
    assert!(!dir.path().join("bulkhead-data").exists(), "nothing was created");
}

/// `bulkhead serve ARGS` in `dir` with only `env` in its environment.
fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .current_dir(dir)
        .arg("serve")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run bulkhead serve")
}

/// The effective settings, as `--print-config` prints them (itself a valid config file), and its
/// comments.
fn effective(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (ServeConfig, String) {
    let mut all = args.to_vec();
    all.push("--print-config");
    let output = serve(dir, &all, env);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    (ServeConfig::parse(&text, Path::new("")).expect("--print-config prints a config file"), text)
}

#[test]
fn a_flag_beats_its_environment_variable_beats_the_file_beats_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bulkhead.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1111\"\ndata_dir = \"data\"\nmaster_key_file = \"master.key\"\n\
         [limits]\nrequest_timeout_ms = 1000\nmax_concurrent_work = 8\n[log]\nlevel = \"debug\"\n",
    )
    .expect("config");
    let config = file.to_str().expect("utf-8");
    let env = [
        ("BULKHEAD_LISTEN", "127.0.0.1:2222"),
        ("BULKHEAD_REQUEST_TIMEOUT_MS", "2000"),
        ("BULKHEAD_LOG_FORMAT", "json"),
    ];

    // All three layers: the flag wins for listen, the environment for the deadline and the format,
    // the file for the rest; relative paths in the file are the file's.
    let (all, _) = effective(dir.path(), &["--config", config, "--listen", "127.0.0.1:3333"], &env);
    assert_eq!(all.listen, Some("127.0.0.1:3333".parse().expect("addr")));
    assert_eq!(all.limits.request_timeout_ms, Some(2000));
    assert_eq!(all.log.format, Some(LogFormat::Json));
    assert_eq!(all.limits.max_concurrent_work, Some(8));
    assert_eq!(all.log.level.as_deref(), Some("debug"));
    assert_eq!(all.data_dir, Some(dir.path().join("data")));
    assert_eq!(all.master_key_file, Some(dir.path().join("master.key")));

    // The default storage quotas take the same layers.
    let (quotas, _) = effective(
        dir.path(),
        &["--config", config, "--tenant-max-vectors", "5"],
        &[("BULKHEAD_TENANT_MAX_VECTORS", "6"), ("BULKHEAD_TENANT_MAX_COLLECTIONS", "7")],
    );
    let expected = bulkhead_query::StorageQuotas { max_vectors: 5, max_collections: 7, ..Default::default() };
    assert_eq!(quotas.storage_quotas(), expected);

    // Without the flag, the environment; without either, the file.
    let (env_wins, _) = effective(dir.path(), &["--config", config], &env);
    assert_eq!(env_wins.listen, Some("127.0.0.1:2222".parse().expect("addr")));
    let (file_wins, _) = effective(dir.path(), &["--config", config], &[]);
    assert_eq!(file_wins.listen, Some("127.0.0.1:1111".parse().expect("addr")));
    assert_eq!(file_wins.limits.request_timeout_ms, Some(1000));
    assert_eq!(file_wins.log.format, Some(LogFormat::Text));
    // The config file itself may come from the environment; the global --data-dir beats the file.
    let (global, _) = effective(dir.path(), &["--data-dir", "elsewhere"], &[("BULKHEAD_CONFIG", config)]);
    assert_eq!(global.data_dir, Some(PathBuf::from("elsewhere")));
    assert_eq!(global.listen, Some("127.0.0.1:1111".parse().expect("addr")));

    // The master key itself in the environment beats the file's key file, as any variable beats the
    // file; the printout says where it comes from and never prints it.
    let key = "11".repeat(32);
    let (from_env, text) = effective(dir.path(), &["--config", config], &[("BULKHEAD_MASTER_KEY", &key)]);
    assert_eq!(from_env.master_key_file, None);
    assert!(text.contains("# master key: from BULKHEAD_MASTER_KEY") && !text.contains(&key), "{text}");

    // No file, no flags: the defaults.
    let (defaults, text) = effective(dir.path(), &[], &[]);
    assert_eq!(defaults.listen, Some(DEFAULT_LISTEN));
    assert_eq!(defaults.data_dir, Some(PathBuf::from("bulkhead-data")));
    assert_eq!(defaults.limits.request_timeout_ms, Some(bulkhead_server::limits::REQUEST_TIMEOUT_MS));
    assert_eq!(defaults.limits.max_concurrent_work, Some(bulkhead_server::limits::MAX_CONCURRENT_WORK));
    assert_eq!(defaults.limits.index_memory_budget_bytes, Some(bulkhead_query::DEFAULT_INDEX_MEMORY_BUDGET));
    assert_eq!(defaults.storage_quotas(), bulkhead_query::StorageQuotas::default());
    assert_eq!(defaults.log.level.as_deref(), Some("info"));
    assert!(text.contains("# TLS: off") && text.contains("development key"), "{text}");
    assert!(!dir.path().join("bulkhead-data").exists(), "--print-config touches nothing");

    // A certificate without its key is refused before anything starts.
    let half = serve(dir.path(), &["--tls-cert", "server.crt", "--print-config"], &[]);
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key"), "{half:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        start_serve(dir.path(), &["--listen", "127.0.0.1:0", "--log-format", "json"], &[]).expect("serving");
    let startup = server.startup.clone();
    server.stop();
    for line in startup.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert!(event.get("level").is_some() && event.get("fields").is_some(), "{line}");
    }
    assert!(startup.contains("TLS off"), "{startup}");
}
