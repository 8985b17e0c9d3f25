//! `bulkhead serve`: the gRPC server over the data directory until SIGINT or SIGTERM. Its settings
//! come from flags, their environment variables and the `--config` file (`bulkhead_server::config`
//! stacks them); before anything is generated or opened, a server that would listen beyond loopback
//! without TLS or explicit secrets is refused (`--allow-insecure-public` overrides, loudly). Then the
//! TLS files, the admin token and master key (development ones generated loudly on first use), the
//! database, the metrics endpoint, and a graceful stop: calls in flight get a grace period, the store
//! is flushed.

use crate::datadir;
use crate::output::Output;
use crate::secrets::{self, DEV_ADMIN_TOKEN, DEV_MASTER_KEY};
use anyhow::{Context, Result, bail};
use bulkhead_query::{Database, MASTER_KEY_ENV, MasterKey};
use bulkhead_server::config::{
    ClusterConfig, LimitsConfig, LogConfig, LogFormat, QuotasConfig, ServeConfig, StorageConfig, TlsConfig,
};
use bulkhead_server::{ADMIN_TOKEN_ENV, APPROVER_TOKEN_ENV, Server, ServerLimits, ServerTls};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// `bulkhead serve`. Every setting can also come from an environment variable or the `--config`
/// file: a flag wins over its variable, which wins over the file, which wins over the default.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// A TOML file with any of the settings below (docs/bulkhead.example.toml); relative paths in
    /// it are relative to the file.
    #[arg(long, env = "BULKHEAD_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective settings (after flags, environment and file) as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Address to listen on [default: 127.0.0.1:7450]. Without TLS, keep it on loopback (or behind a
    /// TLS-terminating proxy): credentials travel in the clear.
    #[arg(long, env = "BULKHEAD_LISTEN")]
    listen: Option<SocketAddr>,
    /// The server's certificate chain (PEM, server certificate first): serve over TLS.
    #[arg(long, env = "BULKHEAD_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM, mode 0600).
    #[arg(long, env = "BULKHEAD_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A file holding the admin token (mode 0600). Without it, the token is read from
    /// BULKHEAD_ADMIN_TOKEN, and failing that a development token is generated in the data directory.
    #[arg(long, env = "BULKHEAD_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// A file holding the approver token (mode 0600, at least 32 characters, not the admin token):
    /// the second credential, which alone approves break-glass grants. Without it (or
    /// BULKHEAD_APPROVER_TOKEN), break-glass is unavailable.
    #[arg(long, env = "BULKHEAD_APPROVER_TOKEN_FILE")]
    approver_token_file: Option<PathBuf>,
    /// The request deadline, in milliseconds [default: 30000].
    #[arg(long, env = "BULKHEAD_REQUEST_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: Option<u64>,
    /// Storage operations run at once [default: 64].
    #[arg(long, env = "BULKHEAD_MAX_CONCURRENT_WORK", value_parser = clap::value_parser!(u64).range(1..))]
    max_concurrent_work: Option<u64>,
    /// Memory for loaded search state (indexes, arenas, bitmaps) over all tenants, in bytes; least
    /// recently used collections are evicted beyond it [default: 2147483648].
    #[arg(long, env = "BULKHEAD_INDEX_MEMORY_BUDGET_BYTES")]
    index_memory_budget_bytes: Option<usize>,
    /// Client connections open at once; at the cap the server stops accepting until one closes
    /// [default: 1024].
    #[arg(long, env = "BULKHEAD_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Request bytes held in memory at once, all calls together; a request that does not fit waits
    /// for room within its deadline [default: 536870912].
    #[arg(long, env = "BULKHEAD_REQUEST_MEMORY_BUDGET_BYTES")]
    request_memory_budget_bytes: Option<usize>,
    /// Requests a second of a tenant whose policy sets none [default: no limit].
    #[arg(
        long,
        env = "BULKHEAD_TENANT_REQUESTS_PER_SECOND",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    tenant_requests_per_second: Option<u32>,
    /// Upserted bytes a second of a tenant whose policy sets none [default: no limit].
    #[arg(
        long,
        env = "BULKHEAD_TENANT_WRITE_BYTES_PER_SECOND",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    tenant_write_bytes_per_second: Option<u64>,
    /// Searches at once of a tenant whose policy sets none [default: 16].
    #[arg(
        long,
        env = "BULKHEAD_TENANT_MAX_CONCURRENT_SEARCHES",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    tenant_max_concurrent_searches: Option<u32>,
    /// Work permits one tenant may hold at once [default: half of --max-concurrent-work].
    #[arg(long, env = "BULKHEAD_TENANT_MAX_WORK", value_parser = clap::value_parser!(u32).range(1..))]
    tenant_max_work: Option<u32>,
    /// Points a tenant whose policy sets no max_vectors may store [default: 100000000].
    #[arg(long, env = "BULKHEAD_TENANT_MAX_VECTORS")]
    tenant_max_vectors: Option<u64>,
    /// Bytes a tenant whose policy sets no max_stored_bytes may store (vectors and encoded payloads)
    /// [default: 1099511627776].
    #[arg(long, env = "BULKHEAD_TENANT_MAX_STORED_BYTES")]
    tenant_max_stored_bytes: Option<u64>,
    /// Collections a tenant whose policy sets no max_collections may have, at most 1024 [default:
    /// 1024].
    #[arg(long, env = "BULKHEAD_TENANT_MAX_COLLECTIONS")]
    tenant_max_collections: Option<u32>,
    /// The tier of a tenant created without one: `partitioned` (its own column family), `shared`
    /// (one column family for many small tenants) or `dedicated` (a RocksDB instance of its own)
    /// [default: partitioned].
    #[arg(long, env = "BULKHEAD_DEFAULT_TIER")]
    default_tier: Option<String>,
    /// Where dedicated tenants' RocksDB instances are, one directory each; it may be on another
    /// disk [default: dedicated/ in the data directory].
    #[arg(long, env = "BULKHEAD_DEDICATED_DIR")]
    dedicated_dir: Option<PathBuf>,
    /// RocksDB's block cache, shared by every column family, memtables included [default:
    /// 134217728].
    #[arg(long, env = "BULKHEAD_ROCKSDB_CACHE_BYTES")]
    rocksdb_cache_bytes: Option<u64>,
    /// The memtables of all column families together, within the cache [default: 67108864].
    #[arg(long, env = "BULKHEAD_ROCKSDB_WRITE_BUFFER_BYTES")]
    rocksdb_write_buffer_bytes: Option<u64>,
    /// The previous master key (mode 0600), after a master-key rotation: a keyring still under it is
    /// re-wrapped under the current key at start. Drop the flag once the server has started.
    #[arg(long, env = "BULKHEAD_PREVIOUS_MASTER_KEY_FILE")]
    previous_master_key_file: Option<PathBuf>,
    /// Keep audit events this many days, then prune them (leaving a verifiable checkpoint) [default:
    /// forever].
    #[arg(long, env = "BULKHEAD_AUDIT_RETENTION_DAYS", value_parser = clap::value_parser!(u64).range(1..))]
    audit_retention_days: Option<u64>,
    /// Serve beyond loopback although TLS, an explicit master key or an explicit admin token is
    /// missing (refused without this flag). Only for a trusted network or a TLS-terminating proxy
    /// in front; logged as an error at every start.
    #[arg(long, env = "BULKHEAD_ALLOW_INSECURE_PUBLIC")]
    allow_insecure_public: bool,
    /// Where to serve the metrics (`GET /metrics`, OpenMetrics text for Prometheus) and the
    /// liveness probe (`GET /healthz`), or `off` [default: 127.0.0.1:7451 if that port is free, else
    /// none with a warning; a given address that is taken stops the start]. Keep it on loopback or a
    /// private network: it shows every tenant's traffic (by opaque uid).
    #[arg(long, env = "BULKHEAD_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// The log filter: a level (error, warn, info, debug, trace) or tracing directives [default: info].
    #[arg(long, env = "BULKHEAD_LOG")]
    log_level: Option<String>,
    /// The log format [default: text].
    #[arg(long, env = "BULKHEAD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
    /// Join a cluster of Bulkhead nodes through etcd, `etcd://host:port[,host:port...]`
    /// (docs/CLUSTER.md) [default: serve alone].
    #[arg(long, env = "BULKHEAD_CLUSTER")]
    cluster: Option<String>,
    /// The cluster's name; several clusters may share one etcd [default: default].
    #[arg(long, env = "BULKHEAD_CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// This node's id in the cluster, unique among the live nodes (needed with --cluster).
    #[arg(long, env = "BULKHEAD_NODE_ID")]
    node_id: Option<String>,
    /// Where clients and other nodes reach this node, host:port [default: the listen address].
    #[arg(long, env = "BULKHEAD_ADVERTISE")]
    advertise: Option<String>,
    /// How many tenants this node takes, relative to the other nodes [default: 1].
    #[arg(long, env = "BULKHEAD_NODE_CAPACITY", value_parser = clap::value_parser!(u32).range(1..))]
    node_capacity: Option<u32>,
    /// The node's lease in etcd, in seconds: a node that stops renewing it (stopped, or cut off
    /// from etcd) drops out of the cluster's view when it expires [default: 10].
    #[arg(long, env = "BULKHEAD_LEASE_TTL_SECS", value_parser = clap::value_parser!(u32).range(5..))]
    lease_ttl_secs: Option<u32>,
}

/// [`LogFormat`] as the command line names it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// The default metrics address: loopback, next to the gRPC port.
const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:7451";

/// How long calls in flight may take to finish after SIGINT or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Runs `bulkhead serve` (or, with `--print-config`, prints its settings). `data_dir` and
/// `master_key_file` are the global flags.
pub(crate) fn run(
    data_dir: Option<&Path>,
    master_key_file: Option<&Path>,
    args: &ServeArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    // The server's settings come first: the config file may set its log level and format.
    let settings = settings(data_dir, master_key_file, args)?;
    if args.print_config {
        return print_config(&settings, &mut Output::new(out, json));
    }
    // `--json` asks for JSON log lines, unless --log-format (or its variable) says otherwise.
    let format = match args.log_format {
        None if json => LogFormat::Json,
        _ => settings.log_format(),
    };
    crate::init_logging(settings.log_level(), format)?;
    serve(&settings)
}

/// The settings of `bulkhead serve`: the command line (flags and their environment variables, with
/// the global `--data-dir` and `--master-key-file`) over the config file over the defaults.
fn settings(
    data_dir: Option<&Path>,
    master_key_file: Option<&Path>,
    args: &ServeArgs,
) -> Result<ServeConfig> {
    let mut file = match &args.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    let command_line = ServeConfig {
        listen: args.listen,
        data_dir: data_dir.map(Path::to_owned),
        master_key_file: master_key_file.map(Path::to_owned),
        previous_master_key_file: args.previous_master_key_file.clone(),
        admin_token_file: args.admin_token_file.clone(),
        approver_token_file: args.approver_token_file.clone(),
        metrics_listen: args.metrics_listen.clone(),
        audit_retention_days: args.audit_retention_days,
        allow_insecure_public: args.allow_insecure_public.then_some(true),
        tls: TlsConfig { cert: args.tls_cert.clone(), key: args.tls_key.clone() },
        limits: LimitsConfig {
            request_timeout_ms: args.request_timeout_ms,
            max_concurrent_work: args.max_concurrent_work.map(|n| n as usize),
            index_memory_budget_bytes: args.index_memory_budget_bytes,
            max_connections: args.max_connections.map(|n| n as usize),
            request_memory_budget_bytes: args.request_memory_budget_bytes,
        },
        quotas: QuotasConfig {
            requests_per_second: args.tenant_requests_per_second,
            write_bytes_per_second: args.tenant_write_bytes_per_second,
            max_concurrent_searches: args.tenant_max_concurrent_searches,
            max_tenant_work: args.tenant_max_work,
            max_vectors: args.tenant_max_vectors,
            max_stored_bytes: args.tenant_max_stored_bytes,
            max_collections: args.tenant_max_collections,
        },
        storage: StorageConfig {
            default_tier: args.default_tier.clone(),
            dedicated_dir: args.dedicated_dir.clone(),
            cache_bytes: args.rocksdb_cache_bytes,
            write_buffer_bytes: args.rocksdb_write_buffer_bytes,
        },
        cluster: ClusterConfig {
            etcd: args.cluster.clone(),
            name: args.cluster_name.clone(),
            node_id: args.node_id.clone(),
            advertise: args.advertise.clone(),
            capacity: args.node_capacity,
            lease_ttl_secs: args.lease_ttl_secs,
        },
        log: LogConfig { level: args.log_level.clone(), format: args.log_format.map(LogFormat::from) },
    };
    // A key or token given in the environment itself outranks a file named in the config file, as
    // every environment variable outranks the file.
    if std::env::var_os(MASTER_KEY_ENV).is_some() {
        file.master_key_file = None;
    }
    if std::env::var_os(ADMIN_TOKEN_ENV).is_some() {
        file.admin_token_file = None;
    }
    if std::env::var_os(APPROVER_TOKEN_ENV).is_some() {
        file.approver_token_file = None;
    }
    let settings = file.overlay(command_line);
    settings.validate()?;
    settings.tls_files()?;
    Ok(settings)
}

/// `bulkhead serve --print-config`: the effective settings as a config file, with comments saying
/// where the secrets come from (never the secrets); with `--json`, `{"settings": ..., "notes": [..]}`.
fn print_config(settings: &ServeConfig, out: &mut Output<'_>) -> Result<()> {
    let data_dir = settings.data_dir();
    let mut notes = Vec::new();
    if settings.master_key_file.is_none() {
        if std::env::var_os(MASTER_KEY_ENV).is_some() {
            notes.push(format!("master key: from {MASTER_KEY_ENV}"));
        } else {
            notes.push(format!("master key: development key {}", data_dir.join(DEV_MASTER_KEY).display()));
        }
    }
    if settings.admin_token_file.is_none() {
        if std::env::var_os(ADMIN_TOKEN_ENV).is_some() {
            notes.push(format!("admin token: from {ADMIN_TOKEN_ENV}"));
        } else {
            let token = data_dir.join(DEV_ADMIN_TOKEN);
            notes.push(format!("admin token: development token {}", token.display()));
        }
    }
    if settings.approver_token_file.is_none() {
        if std::env::var_os(APPROVER_TOKEN_ENV).is_some() {
            notes.push(format!("approver token: from {APPROVER_TOKEN_ENV}"));
        } else {
            notes.push("approver token: none (break-glass access is off)".to_owned());
        }
    }
    if settings.tls_files()?.is_none() {
        notes.push("TLS: off (plaintext gRPC)".to_owned());
    }
    if out.is_json() {
        let value = serde_json::to_value(settings).context("the settings as JSON")?;
        return out.line(serde_json::json!({ "settings": value, "notes": notes }));
    }
    for note in notes {
        out.line(format_args!("# {note}"))?;
    }
    // The TOML ends with its own newline.
    let toml = settings.to_toml()?;
    out.line(toml.strip_suffix('\n').unwrap_or(&toml))
}

/// Runs the server until SIGINT or SIGTERM, then finishes the calls in flight and flushes.
fn serve(settings: &ServeConfig) -> Result<()> {
    refuse_exposure(settings)?;
    // Held until the process exits (after the flush).
    let _lock = datadir::lock(&settings.data_dir(), "bulkhead serve")?;
    let (server, db) = open(settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve_until_signal(server, settings))?;
    db.operator().flush().context("flushing the store")?;
    tracing::info!("stopped; store flushed");
    Ok(())
}

/// Before anything is generated or opened: a server that others can reach must not hand them
/// plaintext credentials or data protected by a key that sits in the data directory.
fn refuse_exposure(settings: &ServeConfig) -> Result<()> {
    let missing = settings.exposure()?;
    if missing.is_empty() {
        return Ok(());
    }
    let listen = settings.listen();
    if !settings.allow_insecure_public() {
        anyhow::bail!(
            "refusing to listen on {listen}, beyond loopback, without {}: configure them, listen on \
             127.0.0.1 behind a TLS-terminating proxy, or pass --allow-insecure-public \
             (allow_insecure_public = true) to accept the risk",
            missing.join(", ")
        );
    }
    tracing::error!(
        address = %listen,
        missing = %missing.join(", "),
        "SERVING BEYOND LOOPBACK INSECURELY (--allow-insecure-public): credentials or keys are exposed"
    );
    Ok(())
}

/// The server over the opened database: TLS files first (a bad certificate or key stops the start
/// before the database is opened), then the admin token, the master key (and the previous one after
/// a master-key rotation) and the database.
fn open(settings: &ServeConfig) -> Result<(Server, Arc<Database>)> {
    let data_dir = settings.data_dir();
    let tls = match settings.tls_files()? {
        Some((cert, key)) => Some(ServerTls::from_pem_files(cert, key)?),
        None => None,
    };
    let (admin, development_admin) =
        secrets::server_admin_token(&data_dir, settings.admin_token_file.as_deref())?;
    let approver = secrets::approver_token(settings.approver_token_file.as_deref())?;
    let master = secrets::master_key(&data_dir, settings.master_key_file.as_deref())?;
    let previous = match &settings.previous_master_key_file {
        Some(file) => Some(MasterKey::from_file(file).context("the previous master key")?),
        None => None,
    };
    let options = settings.store_options();
    let db = Arc::new(
        Database::open_with_previous(&data_dir.join("db"), master, previous, options)
            .map_err(|e| datadir::explain_open_error(&data_dir, e))?
            .with_index_memory_budget(settings.index_memory_budget_bytes()),
    );
    let limits = ServerLimits {
        request_timeout: settings.request_timeout(),
        max_concurrent_work: settings.max_concurrent_work(),
        max_connections: settings.max_connections(),
        request_memory_budget_bytes: settings.request_memory_budget_bytes(),
        audit_retention: settings.audit_retention(),
        quotas: settings.quota_defaults(),
        ..ServerLimits::default()
    };
    let mut server = Server::new(Arc::clone(&db), admin, limits);
    if development_admin {
        // The development token may issue any key of any tenant (the benchmark harness issues
        // several per tenant through it); a configured one issues only a tenant's first key.
        server = server.with_development_admin_token()?;
    }
    match approver {
        Some(approver) => server = server.with_approver(approver)?,
        None => tracing::info!(
            "break-glass access is off: no approver token (--approver-token-file or {APPROVER_TOKEN_ENV})"
        ),
    }
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    Ok((server, db))
}

/// Binds every port (gRPC, then metrics), says so, serves (and the metrics) until a signal, then
/// gives calls in flight a grace period: a client that keeps an idle connection open past it does
/// not hold the shutdown (and the flush) hostage. A port that is taken stops the start before the
/// line that says the server serves.
async fn serve_until_signal(server: Server, settings: &ServeConfig) -> Result<()> {
    let listen = settings.listen();
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| port_error(e, "gRPC", listen, "choose another with --listen ADDRESS"))?;
    let address = listener.local_addr()?;
    let metrics = metrics_listener(settings).await?;
    // Before the line that says the server serves: from then on a signal stops it cleanly.
    let signal = shutdown_signal()?;
    let metrics = match metrics {
        Some(listener) => {
            log_metrics(listener.local_addr()?);
            Some(server.serve_metrics(listener))
        }
        None => None,
    };
    // Joined before the line that says the server serves, so that a node whose id is taken or whose
    // etcd is unreachable never says it serves.
    let membership = crate::cluster::join(&settings.cluster, address).await?;
    log_serving(&server, settings, address);
    let (signalled, stopping) = tokio::sync::oneshot::channel::<()>();
    // A node whose lease etcd has expired (cut off from etcd for longer than its TTL) stops as on
    // a signal: by then its record is gone and another process may hold its id.
    let fence = membership.as_ref().map(bulkhead_cluster::Membership::fence);
    let lost = fence.clone();
    let serve = server.serve(listener, async move {
        tokio::select! {
            () = signal => {}
            () = crate::cluster::lease_lost(lost) => {}
        }
        let _ = signalled.send(());
    });
    let grace = async {
        if stopping.await.is_ok() {
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = serve => served,
        () = grace => {
            let grace = SHUTDOWN_GRACE.as_secs();
            tracing::warn!("connections still open {grace} s after the signal; stopping anyway");
            Ok(())
        }
    };
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    if fence.as_ref().is_some_and(bulkhead_cluster::Fence::is_closed_for_good) {
        bail!("stopped: this node's lease expired in etcd (cut off for longer than its TTL)");
    }
    crate::cluster::leave(membership).await;
    Ok(served?)
}

/// Says whether the server speaks TLS, then that it serves (with its address, data directory and
/// SIMD instruction set).
fn log_serving(server: &Server, settings: &ServeConfig, address: SocketAddr) {
    let tls = server.is_tls();
    if let Some(cert) = settings.tls.cert.as_deref().filter(|_| tls) {
        tracing::info!(cert = %cert.display(), "TLS on (rustls)");
    } else if address.ip().is_loopback() {
        tracing::info!("TLS off: serving plaintext gRPC (give --tls-cert and --tls-key to serve TLS)");
    } else {
        tracing::warn!(
            %address,
            "TLS off: serving plaintext gRPC beyond loopback: credentials travel in the clear"
        );
    }
    tracing::info!(
        %address,
        tls,
        data_dir = %settings.data_dir().display(),
        simd = %bulkhead_distance::active_isa(),
        "bulkhead serving bulkhead.v1 (DataPlane, Admin, reflection, grpc.health.v1)"
    );
}

/// The metrics endpoint's listener: the configured address, none if `off`, else the default one if
/// its port is free (with a warning if not).
async fn metrics_listener(settings: &ServeConfig) -> Result<Option<TcpListener>> {
    match settings.metrics_listen.as_deref() {
        Some("off") => Ok(None),
        Some(address) => {
            let address: SocketAddr = address.parse().context("--metrics-listen: an address or `off`")?;
            let listener = TcpListener::bind(address).await.map_err(|e| {
                let fix = "choose another with --metrics-listen ADDRESS, or turn the endpoint off with \
                           --metrics-listen off";
                port_error(e, "metrics", address, fix)
            })?;
            Ok(Some(listener))
        }
        None => match TcpListener::bind(DEFAULT_METRICS_ADDRESS).await {
            Ok(listener) => Ok(Some(listener)),
            Err(e) => {
                tracing::warn!(
                    address = DEFAULT_METRICS_ADDRESS,
                    error = %e,
                    "no metrics endpoint: the default port is taken"
                );
                Ok(None)
            }
        },
    }
}

/// A port that could not be bound, with what to do: a taken one is most often another server.
fn port_error(error: std::io::Error, what: &str, address: SocketAddr, fix: &str) -> anyhow::Error {
    let why = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "it is taken by another process (another bulkhead serve?)".to_owned()
        }
        std::io::ErrorKind::AddrNotAvailable => "no interface of this machine has that address".to_owned(),
        std::io::ErrorKind::PermissionDenied => {
            "this user may not listen there (a port below 1024?)".to_owned()
        }
        _ => error.to_string(),
    };
    anyhow::anyhow!("cannot listen for {what} on {address}: {why} ({error}); {fix}")
}

fn log_metrics(address: SocketAddr) {
    if address.ip().is_loopback() {
        tracing::info!(%address, "metrics at /metrics, liveness at /healthz");
    } else {
        tracing::warn!(
            %address,
            "metrics at /metrics (liveness at /healthz) beyond loopback: they show every tenant's \
             traffic (by opaque uid) to whoever can reach them"
        );
    }
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so that a signal sent as soon as the server has said
/// it serves stops it cleanly instead of killing it.
fn shutdown_signal() -> Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutdown signal received: finishing calls in flight");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown signal received: finishing calls in flight");
        })
    }
}
