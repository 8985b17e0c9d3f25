//! The settings of `bulkhead serve` and where they come from: a flag, else its environment variable,
//! else the TOML file of `--config`, else the built-in default. [`ServeConfig`] is both the file's
//! schema (unknown keys are an error naming the key) and the layer the command line and environment
//! make: [`ServeConfig::overlay`] stacks them, and the getters apply the defaults. The commented
//! example `docs/bulkhead.example.toml` is parsed by a test, so it cannot drift from this file.
//!
//! Nothing here holds a secret: the master key, the admin token and the TLS private key appear only
//! as the paths of their files.

use crate::{QuotaDefaults, ServerError, limits};
use bulkhead_query::{EngineMemory, Placement, StorageQuotas, StoreOptions};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// [`crate::client::DEFAULT_ADDRESS`] as an address (`tests/it/config.rs` checks that they agree).
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7450));

/// The data directory when none is configured.
pub const DEFAULT_DATA_DIR: &str = "bulkhead-data";

/// The log filter of the server when none is configured.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Every setting of `bulkhead serve`; `None` means "not set at this layer".
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// The data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The master key file (mode 0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
    /// The previous master key file, after a master-key rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_master_key_file: Option<PathBuf>,
    /// The admin token file (mode 0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
    /// The approver token file (mode 0600): the second credential, which alone approves break-glass
    /// grants. Unset (and no `BULKHEAD_APPROVER_TOKEN`): break-glass is unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver_token_file: Option<PathBuf>,
    /// Where to serve the metrics (an address, or `off`); unset: 127.0.0.1:7451 if free.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Keep audit events this many days (unset: forever).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_retention_days: Option<u64>,
    /// Serve beyond loopback without TLS, or with a development master key or admin token (refused
    /// otherwise; see [`ServeConfig::exposure`]). Logged loudly at every start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_insecure_public: Option<bool>,
    /// TLS: serve over TLS when both are set.
    #[serde(default, skip_serializing_if = "TlsConfig::is_empty")]
    pub tls: TlsConfig,
    /// The server's settable limits.
    #[serde(default, skip_serializing_if = "LimitsConfig::is_empty")]
    pub limits: LimitsConfig,
    /// The quotas of a tenant whose policy sets none (storage, rates, concurrency).
    #[serde(default, skip_serializing_if = "QuotasConfig::is_empty")]
    pub quotas: QuotasConfig,
    /// Where tenants are placed and what memory RocksDB may hold.
    #[serde(default, skip_serializing_if = "StorageConfig::is_empty")]
    pub storage: StorageConfig,
    /// This node in a cluster of Bulkhead nodes agreed through etcd (`docs/CLUSTER.md`).
    #[serde(default, skip_serializing_if = "ClusterConfig::is_empty")]
    pub cluster: ClusterConfig,
    /// Logging.
    #[serde(default, skip_serializing_if = "LogConfig::is_empty")]
    pub log: LogConfig,
}

/// `[tls]`: the server's certificate chain and private key, both PEM.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM), server certificate first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The private key (PEM, mode 0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// `[limits]`: the limits an operator may change (the others are fixed, see `docs/LIMITS.md`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The request deadline, in milliseconds ([`limits::REQUEST_TIMEOUT_MS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// Storage operations run at once ([`limits::MAX_CONCURRENT_WORK`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_work: Option<usize>,
    /// Memory for loaded search state, all tenants, in bytes
    /// ([`bulkhead_query::DEFAULT_INDEX_MEMORY_BUDGET`]); least recently used collections are
    /// evicted beyond it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_memory_budget_bytes: Option<usize>,
    /// Client connections open at once ([`limits::MAX_CONNECTIONS`]); at the cap the server stops
    /// accepting until one closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Request bytes held in memory at once, all calls together
    /// ([`limits::REQUEST_MEMORY_BUDGET_BYTES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_memory_budget_bytes: Option<usize>,
}

/// `[quotas]`: the quotas of each tenant whose policy sets none (see `docs/LIMITS.md`).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    /// Requests a second of one tenant (default: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Upserted bytes a second of one tenant (default: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_bytes_per_second: Option<u64>,
    /// Searches of one tenant at once ([`limits::MAX_TENANT_SEARCHES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_searches: Option<u32>,
    /// Work permits one tenant may hold at once (default: half of `limits.max_concurrent_work`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tenant_work: Option<u32>,
    /// Points one tenant may store ([`bulkhead_query::DEFAULT_MAX_VECTORS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_vectors: Option<u64>,
    /// Bytes one tenant may store ([`bulkhead_query::DEFAULT_MAX_STORED_BYTES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stored_bytes: Option<u64>,
    /// Collections one tenant may have ([`bulkhead_query::DEFAULT_MAX_COLLECTIONS`], also the most).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_collections: Option<u32>,
}

impl QuotasConfig {
    fn is_empty(&self) -> bool {
        *self == QuotasConfig::default()
    }
}

/// `[storage]`: the tier of new tenants and RocksDB's memory.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The tier of a tenant created without one: `partitioned` (the default), `shared` or
    /// `dedicated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_tier: Option<String>,
    /// Where dedicated tenants' RocksDB instances are, one directory each [default: `dedicated/`
    /// in the data directory]. It may be on another disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedicated_dir: Option<PathBuf>,
    /// RocksDB's block cache, shared by every column family, memtables included
    /// ([`EngineMemory::default`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_bytes: Option<u64>,
    /// The memtables of all column families together, within `cache_bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_buffer_bytes: Option<u64>,
}

impl StorageConfig {
    fn is_empty(&self) -> bool {
        *self == StorageConfig::default()
    }
}

/// `[cluster]`: this node in a cluster of Bulkhead nodes that agree through etcd on who serves
/// which tenant (`docs/CLUSTER.md`). Without `etcd`, the server stands alone.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd's members, `etcd://host:port[,host:port...]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<String>,
    /// The cluster's name: several clusters may share one etcd [default: `default`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// This node's id, unique among the live nodes (letters, digits, `-`, `_`, `.`); needed with
    /// `etcd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Where clients and other nodes reach this node, `host:port` [default: the listen address].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
    /// How many tenants this node takes, relative to the others [default: 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// The node's lease in etcd, in seconds: a node that stops renewing it (stopped, or cut off
    /// from etcd) drops out of the cluster's view when it expires [default: 10, at least 5].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ttl_secs: Option<u32>,
}

impl ClusterConfig {
    fn is_empty(&self) -> bool {
        *self == ClusterConfig::default()
    }

    /// etcd's client URLs (`http://host:port`) from `etcd`, if set.
    pub fn endpoints(&self) -> Result<Option<Vec<String>>, ServerError> {
        let Some(etcd) = &self.etcd else { return Ok(None) };
        let invalid = || {
            ServerError::Setting(format!(
                "cluster.etcd {etcd:?} is not etcd://host:port[,host:port...] (no TLS to etcd yet)"
            ))
        };
        let members = etcd.strip_prefix("etcd://").ok_or_else(invalid)?;
        members
            .split(',')
            .map(|member| match member.rsplit_once(':') {
                Some((host, port)) if valid_host(host) && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                    Ok(format!("http://{member}"))
                }
                _ => Err(invalid()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// An etcd member's host: a DNS name or IPv4 address (letters, digits, `-`, `.`), or an IPv6
/// address in brackets.
fn valid_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'),
    }
}

/// The shortest `cluster.lease_ttl_secs` accepted (`bulkhead_cluster::MIN_LEASE_TTL_SECS`).
const MIN_CLUSTER_LEASE_TTL_SECS: u32 = 5;

/// The smallest `storage.cache_bytes` accepted.
const MIN_CACHE_BYTES: u64 = 8 << 20;
/// The smallest `storage.write_buffer_bytes` accepted.
const MIN_WRITE_BUFFER_BYTES: u64 = 1 << 20;

/// `[log]`: what the server logs and how.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: a level (`info`) or directives (`warn,bulkhead_server=debug`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// `text` or `json` (one object per line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl TlsConfig {
    fn is_empty(&self) -> bool {
        self.cert.is_none() && self.key.is_none()
    }
}

impl LimitsConfig {
    fn is_empty(&self) -> bool {
        self.request_timeout_ms.is_none()
            && self.max_concurrent_work.is_none()
            && self.index_memory_budget_bytes.is_none()
            && self.max_connections.is_none()
            && self.request_memory_budget_bytes.is_none()
    }
}

impl LogConfig {
    fn is_empty(&self) -> bool {
        self.level.is_none() && self.format.is_none()
    }
}

impl ServeConfig {
    /// Reads a config file. Relative paths in it are taken relative to the file's directory, so that
    /// the file means the same thing whatever directory the server is started from.
    pub fn from_file(path: &Path) -> Result<ServeConfig, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::ConfigUnreadable { path: path.to_owned(), kind: e.kind() })?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        ServeConfig::parse(&text, base)
            .map_err(|e| ServerError::ConfigFile { path: path.to_owned(), error: Box::new(e) })
    }

    /// Parses a config file's text; relative paths are joined to `base`. An unknown key, a value of
    /// the wrong type or an invalid value is an error that names it.
    pub fn parse(text: &str, base: &Path) -> Result<ServeConfig, ServerError> {
        let mut config: ServeConfig = toml::from_str(text)?;
        config.validate()?;
        for path in [
            &mut config.data_dir,
            &mut config.storage.dedicated_dir,
            &mut config.master_key_file,
            &mut config.previous_master_key_file,
            &mut config.admin_token_file,
            &mut config.approver_token_file,
            &mut config.tls.cert,
            &mut config.tls.key,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        Ok(config)
    }

    /// Checks the values that have a type wider than their meaning.
    pub fn validate(&self) -> Result<(), ServerError> {
        let invalid = |message: String| Err(ServerError::Setting(message));
        if self.limits.request_timeout_ms == Some(0) {
            return invalid("limits.request_timeout_ms must be at least 1".to_owned());
        }
        if self.limits.max_concurrent_work == Some(0) {
            return invalid("limits.max_concurrent_work must be at least 1".to_owned());
        }
        if self.limits.max_connections == Some(0) {
            return invalid("limits.max_connections must be at least 1".to_owned());
        }
        if self
            .limits
            .request_memory_budget_bytes
            .is_some_and(|b| b < limits::wire_reservation(limits::MAX_MESSAGE_BYTES))
        {
            return invalid(format!(
                "limits.request_memory_budget_bytes must be at least {} (three times MAX_MESSAGE_BYTES), so \
                 that the largest upsert fits",
                limits::wire_reservation(limits::MAX_MESSAGE_BYTES)
            ));
        }
        let q = &self.quotas;
        if q.requests_per_second == Some(0)
            || q.write_bytes_per_second == Some(0)
            || q.max_concurrent_searches == Some(0)
            || q.max_tenant_work == Some(0)
        {
            return invalid(
                "every rate and concurrency quota in [quotas] must be at least 1 (leave it out for the \
                 default)"
                    .to_owned(),
            );
        }
        if q.max_tenant_work.is_some_and(|w| w as usize > self.max_concurrent_work()) {
            return invalid("quotas.max_tenant_work must be at most limits.max_concurrent_work".to_owned());
        }
        if self.audit_retention_days == Some(0) {
            return invalid(
                "audit_retention_days must be at least 1 (leave it out to keep events forever)".to_owned(),
            );
        }
        if let Some(listen) = self.metrics_listen.as_deref().filter(|m| *m != "off")
            && listen.parse::<SocketAddr>().is_err()
        {
            return invalid(format!("metrics_listen {listen:?} is neither an address nor `off`"));
        }
        let most = bulkhead_query::limits::MAX_COLLECTIONS_PER_TENANT;
        if self.quotas.max_collections.is_some_and(|n| n as usize > most) {
            return invalid(format!("quotas.max_collections must be at most {most}"));
        }
        if let Some(tier) = &self.storage.default_tier
            && Placement::from_name(tier).is_none()
        {
            return invalid(format!(
                "storage.default_tier {tier:?} is not `partitioned`, `shared` or `dedicated`"
            ));
        }
        let memory = self.engine_memory();
        if (memory.cache_bytes as u64) < MIN_CACHE_BYTES
            || (memory.write_buffer_bytes as u64) < MIN_WRITE_BUFFER_BYTES
            || memory.write_buffer_bytes > memory.cache_bytes
        {
            return invalid(format!(
                "storage.cache_bytes must be at least {MIN_CACHE_BYTES}, storage.write_buffer_bytes at \
                 least {MIN_WRITE_BUFFER_BYTES} and at most storage.cache_bytes"
            ));
        }
        let cluster = &self.cluster;
        if cluster.endpoints()?.is_some() {
            if cluster.node_id.is_none() {
                return invalid("cluster.node_id is needed with cluster.etcd".to_owned());
            }
            if cluster.capacity == Some(0) {
                return invalid("cluster.capacity must be at least 1".to_owned());
            }
            if cluster.lease_ttl_secs.is_some_and(|t| t < MIN_CLUSTER_LEASE_TTL_SECS) {
                return invalid(format!(
                    "cluster.lease_ttl_secs must be at least {MIN_CLUSTER_LEASE_TTL_SECS}"
                ));
            }
        } else if !cluster.is_empty() {
            return invalid("the [cluster] settings need cluster.etcd".to_owned());
        }
        if let Some(level) = &self.log.level
            && let Err(e) = tracing_subscriber::EnvFilter::try_new(level)
        {
            return invalid(format!("log.level {level:?} is not a log filter: {e}"));
        }
        Ok(())
    }

    /// `self` with every setting that `higher` sets replaced by `higher`'s (the command line and the
    /// environment over the file).
    pub fn overlay(self, higher: ServeConfig) -> ServeConfig {
        ServeConfig {
            listen: higher.listen.or(self.listen),
            data_dir: higher.data_dir.or(self.data_dir),
            master_key_file: higher.master_key_file.or(self.master_key_file),
            previous_master_key_file: higher.previous_master_key_file.or(self.previous_master_key_file),
            admin_token_file: higher.admin_token_file.or(self.admin_token_file),
            approver_token_file: higher.approver_token_file.or(self.approver_token_file),
            metrics_listen: higher.metrics_listen.or(self.metrics_listen),
            audit_retention_days: higher.audit_retention_days.or(self.audit_retention_days),
            allow_insecure_public: higher.allow_insecure_public.or(self.allow_insecure_public),
            tls: TlsConfig { cert: higher.tls.cert.or(self.tls.cert), key: higher.tls.key.or(self.tls.key) },
            limits: LimitsConfig {
                request_timeout_ms: higher.limits.request_timeout_ms.or(self.limits.request_timeout_ms),
                max_concurrent_work: higher.limits.max_concurrent_work.or(self.limits.max_concurrent_work),
                index_memory_budget_bytes: higher
                    .limits
                    .index_memory_budget_bytes
                    .or(self.limits.index_memory_budget_bytes),
                max_connections: higher.limits.max_connections.or(self.limits.max_connections),
                request_memory_budget_bytes: higher
                    .limits
                    .request_memory_budget_bytes
                    .or(self.limits.request_memory_budget_bytes),
            },
            quotas: QuotasConfig {
                requests_per_second: higher.quotas.requests_per_second.or(self.quotas.requests_per_second),
                write_bytes_per_second: higher
                    .quotas
                    .write_bytes_per_second
                    .or(self.quotas.write_bytes_per_second),
                max_concurrent_searches: higher
                    .quotas
                    .max_concurrent_searches
                    .or(self.quotas.max_concurrent_searches),
                max_tenant_work: higher.quotas.max_tenant_work.or(self.quotas.max_tenant_work),
                max_vectors: higher.quotas.max_vectors.or(self.quotas.max_vectors),
                max_stored_bytes: higher.quotas.max_stored_bytes.or(self.quotas.max_stored_bytes),
                max_collections: higher.quotas.max_collections.or(self.quotas.max_collections),
            },
            storage: StorageConfig {
                default_tier: higher.storage.default_tier.or(self.storage.default_tier),
                dedicated_dir: higher.storage.dedicated_dir.or(self.storage.dedicated_dir),
                cache_bytes: higher.storage.cache_bytes.or(self.storage.cache_bytes),
                write_buffer_bytes: higher.storage.write_buffer_bytes.or(self.storage.write_buffer_bytes),
            },
            cluster: ClusterConfig {
                etcd: higher.cluster.etcd.or(self.cluster.etcd),
                name: higher.cluster.name.or(self.cluster.name),
                node_id: higher.cluster.node_id.or(self.cluster.node_id),
                advertise: higher.cluster.advertise.or(self.cluster.advertise),
                capacity: higher.cluster.capacity.or(self.cluster.capacity),
                lease_ttl_secs: higher.cluster.lease_ttl_secs.or(self.cluster.lease_ttl_secs),
            },
            log: LogConfig {
                level: higher.log.level.or(self.log.level),
                format: higher.log.format.or(self.log.format),
            },
        }
    }

    /// RocksDB's memory: each `[storage]` setting, or its default ([`EngineMemory::default`]).
    pub fn engine_memory(&self) -> EngineMemory {
        let defaults = EngineMemory::default();
        let bytes =
            |v: Option<u64>, default: usize| v.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX));
        EngineMemory {
            cache_bytes: bytes(self.storage.cache_bytes, defaults.cache_bytes),
            write_buffer_bytes: bytes(self.storage.write_buffer_bytes, defaults.write_buffer_bytes),
        }
    }

    /// The options the server opens its store with: the default tier, where dedicated tenants
    /// are, RocksDB's memory and the storage quotas.
    pub fn store_options(&self) -> StoreOptions {
        let tier = self.storage.default_tier.as_deref().and_then(Placement::from_name);
        StoreOptions {
            default_quotas: self.storage_quotas(),
            default_placement: tier.unwrap_or(Placement::OwnColumnFamily),
            memory: self.engine_memory(),
            dedicated_root: self.storage.dedicated_dir.clone(),
            ..StoreOptions::default()
        }
    }

    /// The quotas of a tenant whose policy sets none: the `[quotas]` set, the rest
    /// [`QuotaDefaults::for_work`] of the server's work permits.
    pub fn quota_defaults(&self) -> QuotaDefaults {
        let defaults = QuotaDefaults::for_work(self.max_concurrent_work());
        let q = &self.quotas;
        QuotaDefaults {
            requests_per_second: q.requests_per_second.or(defaults.requests_per_second),
            write_bytes_per_second: q.write_bytes_per_second.or(defaults.write_bytes_per_second),
            max_concurrent_searches: q.max_concurrent_searches.unwrap_or(defaults.max_concurrent_searches),
            max_tenant_work: q.max_tenant_work.unwrap_or(defaults.max_tenant_work),
            ..defaults
        }
    }

    /// The listen address, or [`DEFAULT_LISTEN`].
    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_LISTEN)
    }

    /// The data directory, or [`DEFAULT_DATA_DIR`].
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    /// The certificate and key files, if TLS is configured; an error if only one of them is.
    pub fn tls_files(&self) -> Result<Option<(&Path, &Path)>, ServerError> {
        match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ServerError::Setting(
                "a TLS certificate needs its private key: set --tls-key (or tls.key)".to_owned(),
            )),
            (None, Some(_)) => Err(ServerError::Setting(
                "a TLS private key needs its certificate: set --tls-cert (or tls.cert)".to_owned(),
            )),
        }
    }

    /// What is missing for the server to be exposed beyond loopback, if it listens there: TLS, an
    /// explicit master key (a file or `BULKHEAD_MASTER_KEY`) and an explicit admin token (a file or
    /// `BULKHEAD_ADMIN_TOKEN`); the development key and token kept in the data directory are for
    /// loopback only. Empty on loopback, and when nothing is missing.
    pub fn exposure(&self) -> Result<Vec<&'static str>, ServerError> {
        let mut missing = Vec::new();
        if self.listen().ip().is_loopback() {
            return Ok(missing);
        }
        if self.tls_files()?.is_none() {
            missing.push("TLS (--tls-cert and --tls-key)");
        }
        if self.master_key_file.is_none() && std::env::var_os(bulkhead_query::MASTER_KEY_ENV).is_none() {
            missing.push("an explicit master key (--master-key-file or BULKHEAD_MASTER_KEY)");
        }
        if self.admin_token_file.is_none() && std::env::var_os(crate::ADMIN_TOKEN_ENV).is_none() {
            missing.push("an explicit admin token (--admin-token-file or BULKHEAD_ADMIN_TOKEN)");
        }
        Ok(missing)
    }

    /// Whether the operator allowed serving beyond loopback with something [`ServeConfig::exposure`]
    /// lists missing.
    pub fn allow_insecure_public(&self) -> bool {
        self.allow_insecure_public.unwrap_or(false)
    }

    /// The request deadline, or [`limits::REQUEST_TIMEOUT`].
    pub fn request_timeout(&self) -> Duration {
        self.limits.request_timeout_ms.map_or(limits::REQUEST_TIMEOUT, Duration::from_millis)
    }

    /// Storage operations run at once, or [`limits::MAX_CONCURRENT_WORK`].
    pub fn max_concurrent_work(&self) -> usize {
        self.limits.max_concurrent_work.unwrap_or(limits::MAX_CONCURRENT_WORK)
    }

    /// The memory budget of loaded search state, or [`bulkhead_query::DEFAULT_INDEX_MEMORY_BUDGET`].
    pub fn index_memory_budget_bytes(&self) -> usize {
        self.limits.index_memory_budget_bytes.unwrap_or(bulkhead_query::DEFAULT_INDEX_MEMORY_BUDGET)
    }

    /// Client connections open at once, or [`limits::MAX_CONNECTIONS`].
    pub fn max_connections(&self) -> usize {
        self.limits.max_connections.unwrap_or(limits::MAX_CONNECTIONS)
    }

    /// The request memory budget, or [`limits::REQUEST_MEMORY_BUDGET_BYTES`].
    pub fn request_memory_budget_bytes(&self) -> usize {
        self.limits.request_memory_budget_bytes.unwrap_or(limits::REQUEST_MEMORY_BUDGET_BYTES)
    }

    /// How long audit events are kept (`None`: forever).
    pub fn audit_retention(&self) -> Option<Duration> {
        self.audit_retention_days.map(|days| Duration::from_secs(days.saturating_mul(86_400)))
    }

    /// The storage quotas of a tenant whose policy sets none: each `[quotas]` setting, or its
    /// default ([`StorageQuotas::default`]).
    pub fn storage_quotas(&self) -> StorageQuotas {
        let defaults = StorageQuotas::default();
        StorageQuotas {
            max_vectors: self.quotas.max_vectors.unwrap_or(defaults.max_vectors),
            max_stored_bytes: self.quotas.max_stored_bytes.unwrap_or(defaults.max_stored_bytes),
            max_collections: self.quotas.max_collections.unwrap_or(defaults.max_collections),
        }
    }

    /// The log filter, or [`DEFAULT_LOG_LEVEL`].
    pub fn log_level(&self) -> &str {
        self.log.level.as_deref().unwrap_or(DEFAULT_LOG_LEVEL)
    }

    /// The log format, or text.
    pub fn log_format(&self) -> LogFormat {
        self.log.format.unwrap_or_default()
    }

    /// The effective settings as a config file (defaults filled in, secrets' files as paths), for
    /// `bulkhead serve --print-config`.
    pub fn to_toml(&self) -> Result<String, ServerError> {
        let effective = ServeConfig {
            listen: Some(self.listen()),
            data_dir: Some(self.data_dir()),
            limits: LimitsConfig {
                request_timeout_ms: Some(self.request_timeout().as_millis() as u64),
                max_concurrent_work: Some(self.max_concurrent_work()),
                index_memory_budget_bytes: Some(self.index_memory_budget_bytes()),
                max_connections: Some(self.max_connections()),
                request_memory_budget_bytes: Some(self.request_memory_budget_bytes()),
            },
            quotas: {
                let q = self.quota_defaults();
                let storage = self.storage_quotas();
                QuotasConfig {
                    requests_per_second: q.requests_per_second,
                    write_bytes_per_second: q.write_bytes_per_second,
                    max_concurrent_searches: Some(q.max_concurrent_searches),
                    max_tenant_work: Some(q.max_tenant_work),
                    max_vectors: Some(storage.max_vectors),
                    max_stored_bytes: Some(storage.max_stored_bytes),
                    max_collections: Some(storage.max_collections),
                }
            },
            log: LogConfig { level: Some(self.log_level().to_owned()), format: Some(self.log_format()) },
            ..self.clone()
        };
        toml::to_string(&effective).map_err(ServerError::ConfigOutput)
    }
}
