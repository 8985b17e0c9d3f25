//! The settings of `bulkhead serve`: the example file in `docs/` parses (with its commented-out
//! settings too) and sets every setting there is; unknown keys and invalid values are errors that
//! name them. How the binary layers flags, environment and file is tested with the binary, in
//! `crates/bulkhead-cli/tests/it/config.rs`.

use bulkhead_server::config::{
    ClusterConfig, DEFAULT_LISTEN, LimitsConfig, LogConfig, LogFormat, QuotasConfig, ServeConfig,
    StorageConfig, TlsConfig,
};
use std::path::{Path, PathBuf};

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
        approver_token_file,
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
        quotas:
            QuotasConfig {
                requests_per_second,
                write_bytes_per_second,
                max_concurrent_searches,
                max_tenant_work,
                max_vectors,
                max_stored_bytes,
                max_collections,
            },
        storage: StorageConfig { default_tier, dedicated_dir, cache_bytes, write_buffer_bytes },
        cluster: ClusterConfig { etcd, name, node_id, advertise, capacity, lease_ttl_secs },
        log: LogConfig { level, format },
    } = full;
    assert!(etcd.is_some() && name.is_some() && node_id.is_some() && advertise.is_some());
    assert_eq!((capacity, lease_ttl_secs), (Some(1), Some(10)), "the documented defaults");
    assert!(listen.is_some() && data_dir.is_some() && master_key_file.is_some());
    assert!(previous_master_key_file.is_some() && admin_token_file.is_some());
    assert!(approver_token_file.is_some(), "an example (no default: break-glass is off without it)");
    assert!(metrics_listen.is_some() && audit_retention_days.is_some());
    assert_eq!(allow_insecure_public, Some(false), "the documented default");
    assert!(cert.is_some() && key.is_some() && level.is_some() && format.is_some());
    // The documented defaults are the code's.
    assert_eq!(request_timeout_ms, Some(bulkhead_server::limits::REQUEST_TIMEOUT_MS));
    assert_eq!(max_concurrent_work, Some(bulkhead_server::limits::MAX_CONCURRENT_WORK));
    assert_eq!(index_memory_budget_bytes, Some(bulkhead_query::DEFAULT_INDEX_MEMORY_BUDGET));
    assert_eq!(max_connections, Some(bulkhead_server::limits::MAX_CONNECTIONS));
    assert_eq!(request_memory_budget_bytes, Some(bulkhead_server::limits::REQUEST_MEMORY_BUDGET_BYTES));
    assert_eq!(max_vectors, Some(bulkhead_query::DEFAULT_MAX_VECTORS));
    assert_eq!(max_stored_bytes, Some(bulkhead_query::DEFAULT_MAX_STORED_BYTES));
    assert_eq!(max_collections, Some(bulkhead_query::DEFAULT_MAX_COLLECTIONS));
    assert_eq!(level.as_deref(), Some(bulkhead_server::config::DEFAULT_LOG_LEVEL));
    let memory = bulkhead_query::EngineMemory::default();
    assert_eq!(default_tier.as_deref(), Some("partitioned"));
    assert!(dedicated_dir.is_some(), "an example");
    assert_eq!(cache_bytes, Some(memory.cache_bytes as u64));
    assert_eq!(write_buffer_bytes, Some(memory.write_buffer_bytes as u64));
    assert!(requests_per_second.is_some() && write_bytes_per_second.is_some(), "no default, an example");
    assert_eq!(max_concurrent_searches, Some(bulkhead_server::limits::MAX_TENANT_SEARCHES));
    let half = bulkhead_server::limits::MAX_CONCURRENT_WORK / 2;
    assert_eq!(max_tenant_work.map(|w| w as usize), Some(half));
    assert_eq!(bulkhead_server::client::DEFAULT_ADDRESS.parse().ok(), Some(DEFAULT_LISTEN));
}

#[test]
fn the_cluster_settings_name_etcds_members_as_client_urls() {
    let text =
        "[cluster]\netcd = \"etcd://10.0.0.1:2379,etcd-2.internal:2379,[::1]:2379\"\nnode_id = \"n1\"\n";
    let parsed = ServeConfig::parse(text, Path::new("/")).expect("parses");
    let endpoints = parsed.cluster.endpoints().expect("valid").expect("set");
    assert_eq!(endpoints, ["http://10.0.0.1:2379", "http://etcd-2.internal:2379", "http://[::1]:2379"]);
    assert_eq!(ServeConfig::default().cluster.endpoints().expect("valid"), None, "alone by default");
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
        ("[storage]\ndefault_tier = \"isolated\"\n", "default_tier"),
        ("[storage]\ncache_bytes = 1024\n", "cache_bytes"),
        ("[storage]\ncache_bytes = 16777216\nwrite_buffer_bytes = 33554432\n", "write_buffer_bytes"),
        ("[limits]\nmax_connections = 0\n", "max_connections"),
        ("[limits]\nrequest_memory_budget_bytes = 1048576\n", "request_memory_budget_bytes"),
        ("[limits]\nrequest_timeout_ms = \"soon\"\n", "request_timeout_ms"),
        ("[log]\nformat = \"xml\"\n", "format"),
        ("[quotas]\nrequests_per_second = 0\n", "[quotas]"),
        ("[quotas]\nmax_tenant_work = 65\n", "max_tenant_work"),
        ("[quotas]\nmax_searches = 1\n", "max_searches"),
        ("[quotas]\nmax_collections = 1025\n", "quotas.max_collections"),
        ("[quotas]\nmax_vector = 1\n", "max_vector"),
        ("[log]\nlevel = \"=^.^=\"\n", "log.level"),
        ("[cluster]\netcd = \"http://10.0.0.1:2379\"\nnode_id = \"n1\"\n", "cluster.etcd"),
        ("[cluster]\netcd = \"etcd://10.0.0.1\"\nnode_id = \"n1\"\n", "cluster.etcd"),
        ("[cluster]\netcd = \"etcd://a:1,:2\"\nnode_id = \"n1\"\n", "cluster.etcd"),
        ("[cluster]\netcd = \"etcd://10.0.0.1:2379\"\n", "cluster.node_id"),
        ("[cluster]\netcd = \"etcd://a:1\"\nnode_id = \"n\"\ncapacity = 0\n", "cluster.capacity"),
        ("[cluster]\netcd = \"etcd://a:1\"\nnode_id = \"n\"\nlease_ttl_secs = 2\n", "lease_ttl_secs"),
        ("[cluster]\nnode_id = \"n1\"\n", "cluster.etcd"),
        ("[cluster]\netcd = \"etcd://a:1, b:2\"\nnode_id = \"n1\"\n", "cluster.etcd"),
        ("[cluster]\netcd = \"etcd://::1:2379\"\nnode_id = \"n1\"\n", "cluster.etcd"),
        ("[cluster]\netcd = \"etcd://user@a:1\"\nnode_id = \"n1\"\n", "cluster.etcd"),
        ("[cluster]\netcd = \"etcd://a:0\"\nnode_id = \"n1\"\n", "cluster.etcd"),
        ("[cluster]\nnode = \"n1\"\n", "node"),
    ] {
        let error = ServeConfig::parse(text, base).expect_err(text);
        assert!(format!("{error:#}").contains(named), "{text:?} gave {error:#}");
    }
}
