//! The settings of `bulkhead serve`: the example file in `docs/` parses (with its commented-out
//! settings too) and sets every setting there is; a flag beats its environment variable, which beats
//! the config file, which beats the default (read back with `--print-config`); unknown keys and
//! invalid values are errors that name them; JSON logs are JSON.

use crate::serve::start_serve;
use bulkhead_server::config::{DEFAULT_LISTEN, LimitsConfig, LogConfig, LogFormat, ServeConfig, TlsConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/bulkhead.example.toml")
}

#[test]
fn the_example_file_parses_and_sets_every_setting() {
    let text = std::fs::read_to_string(example()).expect("docs/bulkhead.example.toml");
    let parsed = ServeConfig::from_file(&example()).expect("the example parses");
    assert_eq!(parsed.log.format, Some(LogFormat::Json));
    // With every `# key = value` line uncommented, every setting is set: the example documents all
    // of them (this destructuring stops compiling when a setting is added).
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest
                    .split_once(" = ")
                    .is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')) =>
            {
                rest
            }
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let full =
        ServeConfig::parse(&uncommented, Path::new("/etc/bulkhead")).expect("uncommented example parses");
    let ServeConfig {
        listen,
        data_dir,
        master_key_file,
        previous_master_key_file,
        admin_token_file,
        metrics_listen,
        audit_retention_days,
        allow_insecure_public,
        tls: TlsConfig { cert, key },
        limits:
            LimitsConfig {
                request_timeout_ms,
                max_concurrent_work,
                index_memory_budget_bytes,
                max_connections,
                request_memory_budget_bytes,
            },
        log: LogConfig { level, format },
    } = full;
    assert!(listen.is_some() && data_dir.is_some() && master_key_file.is_some());
    assert!(previous_master_key_file.is_some() && admin_token_file.is_some());
    assert!(metrics_listen.is_some() && audit_retention_days.is_some());
    assert_eq!(allow_insecure_public, Some(false), "the documented default");
    assert!(cert.is_some() && key.is_some() && level.is_some() && format.is_some());
    // The documented defaults are the code's.
    assert_eq!(request_timeout_ms, Some(bulkhead_server::limits::REQUEST_TIMEOUT_MS));
    assert_eq!(max_concurrent_work, Some(bulkhead_server::limits::MAX_CONCURRENT_WORK));
    assert_eq!(index_memory_budget_bytes, Some(bulkhead_query::DEFAULT_INDEX_MEMORY_BUDGET));
    assert_eq!(max_connections, Some(bulkhead_server::limits::MAX_CONNECTIONS));
    assert_eq!(request_memory_budget_bytes, Some(bulkhead_server::limits::REQUEST_MEMORY_BUDGET_BYTES));
    assert_eq!(level.as_deref(), Some(bulkhead_server::config::DEFAULT_LOG_LEVEL));
    assert_eq!(bulkhead_server::client::DEFAULT_ADDRESS.parse().ok(), Some(DEFAULT_LISTEN));
}

#[test]
fn unknown_keys_and_bad_values_are_errors_that_name_them() {
    let base = Path::new("/");
    for (text, named) in [
        ("listen = \"127.0.0.1:1\"\nlisten_adress = \"127.0.0.1:2\"\n", "listen_adress"),
        ("[tls]\ncertificate = \"server.crt\"\n", "certificate"),
        ("[limits]\nmax_message_bytes = 1\n", "max_message_bytes"),
        ("[logging]\nlevel = \"info\"\n", "logging"),
        ("listen = \"not an address\"\n", "listen"),
        ("[limits]\nmax_concurrent_work = 0\n", "max_concurrent_work"),
        ("[limits]\nmax_connections = 0\n", "max_connections"),
        ("[limits]\nrequest_memory_budget_bytes = 1048576\n", "request_memory_budget_bytes"),
        ("[limits]\nrequest_timeout_ms = \"soon\"\n", "request_timeout_ms"),
        ("[log]\nformat = \"xml\"\n", "format"),
        ("[log]\nlevel = \"=^.^=\"\n", "log.level"),
    ] {
        let error = ServeConfig::parse(text, base).expect_err(text);
        assert!(format!("{error:#}").contains(named), "{text:?} gave {error:#}");
    }
    // The binary refuses to start on one, naming the file and the key.
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
