//! The binary's network commands: `bulkhead serve` (the gRPC server over the data directory),
//! `bulkhead admin ...` (the admin plane, with the admin token) and `bulkhead client ...` (the data
//! plane, with an API key), both talking to a running server.

use anyhow::{Context, Result};
use bulkhead_query::{Database, StoreOptions};
use bulkhead_server::client::{self, DEFAULT_ADDRESS};
use bulkhead_server::config::{LimitsConfig, LogConfig, LogFormat, ServeConfig, TlsConfig};
use bulkhead_server::proto as pb;
use bulkhead_server::{ADMIN_TOKEN_ENV, AdminToken, ClientTls, Server, ServerLimits, ServerTls};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Where to serve the metrics (`GET /metrics`, OpenMetrics text for Prometheus), or `off`
    /// [default: 127.0.0.1:7451 if that port is free, else none with a warning]. Keep it on loopback
    /// or a private network: it shows every tenant's traffic (by opaque uid).
    #[arg(long, env = "BULKHEAD_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// The log filter: a level (error, warn, info, debug, trace) or tracing directives [default: info].
    #[arg(long, env = "BULKHEAD_LOG")]
    log_level: Option<String>,
    /// The log format [default: text].
    #[arg(long, env = "BULKHEAD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
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

impl ServeArgs {
    /// Whether to print the settings instead of serving.
    pub(crate) fn print_config(&self) -> bool {
        self.print_config
    }
}

/// The settings of `bulkhead serve`: the command line (flags and their environment variables, with
/// the global `--data-dir` and `--master-key-file`) over the config file over the defaults.
pub(crate) fn serve_settings(
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
        log: LogConfig { level: args.log_level.clone(), format: args.log_format.map(LogFormat::from) },
    };
    // A key or token given in the environment itself outranks a file named in the config file, as
    // every environment variable outranks the file.
    if std::env::var_os(bulkhead_query::MASTER_KEY_ENV).is_some() {
        file.master_key_file = None;
    }
    if std::env::var_os(ADMIN_TOKEN_ENV).is_some() {
        file.admin_token_file = None;
    }
    let settings = file.overlay(command_line);
    settings.validate()?;
    settings.tls_files()?;
    Ok(settings)
}

/// `bulkhead serve --print-config`: the effective settings as a config file, with comments saying
/// where the secrets come from (never the secrets).
pub(crate) fn print_config(settings: &ServeConfig, out: &mut impl Write) -> Result<()> {
    let data_dir = settings.data_dir();
    if settings.master_key_file.is_none() {
        if std::env::var_os(bulkhead_query::MASTER_KEY_ENV).is_some() {
            writeln!(out, "# master key: from {}", bulkhead_query::MASTER_KEY_ENV)?;
        } else {
            writeln!(out, "# master key: development key {}", data_dir.join("dev-master.key").display())?;
        }
    }
    if settings.admin_token_file.is_none() {
        if std::env::var_os(ADMIN_TOKEN_ENV).is_some() {
            writeln!(out, "# admin token: from {ADMIN_TOKEN_ENV}")?;
        } else {
            writeln!(out, "# admin token: development token {}", data_dir.join("dev-admin.token").display())?;
        }
    }
    if settings.tls_files()?.is_none() {
        writeln!(out, "# TLS: off (plaintext gRPC)")?;
    }
    write!(out, "{}", settings.to_toml()?)?;
    Ok(())
}

/// The default metrics address: loopback, next to the gRPC port.
const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:7451";

/// The admin token of `bulkhead serve`: from the file, else the environment, else a development token
/// kept in the data directory (created on first use, loudly).
fn server_admin_token(data_dir: &Path, file: Option<&Path>) -> Result<AdminToken> {
    if let Some(file) = file {
        return Ok(AdminToken::from_file(file)?);
    }
    if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV) {
        return AdminToken::new(token).with_context(|| format!("reading {ADMIN_TOKEN_ENV}"));
    }
    let dev = data_dir.join("dev-admin.token");
    if !dev.exists() {
        std::fs::create_dir_all(data_dir)?;
        AdminToken::generate().write_new_file(&dev)?;
        tracing::warn!(
            path = %dev.display(),
            "generated a DEVELOPMENT admin token inside the data directory; anyone who can read it \
             administers every tenant. Use --admin-token-file or {ADMIN_TOKEN_ENV} in production"
        );
    }
    Ok(AdminToken::from_file(&dev)?)
}

/// How long calls in flight may take to finish after SIGINT or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Runs the server until SIGINT or SIGTERM, then finishes the calls in flight and flushes.
pub(crate) fn serve(settings: &ServeConfig) -> Result<()> {
    let data_dir = settings.data_dir();
    let data_dir = data_dir.as_path();
    // Before anything is generated or opened: a server that others can reach must not hand them
    // plaintext credentials or data protected by a key that sits in the data directory.
    let missing = settings.exposure()?;
    if !missing.is_empty() {
        let listen = settings.listen();
        if !settings.allow_insecure_public() {
            anyhow::bail!(
                "refusing to listen on {listen}, beyond loopback, without {}: configure them, listen on \
                 127.0.0.1 behind a TLS-terminating proxy, or pass --allow-insecure-public (allow_insecure_public \
                 = true) to accept the risk",
                missing.join(", ")
            );
        }
        tracing::error!(
            address = %listen,
            missing = %missing.join(", "),
            "SERVING BEYOND LOOPBACK INSECURELY (--allow-insecure-public): credentials or keys are exposed"
        );
    }
    // TLS files first: a bad certificate or key stops the start before the database is opened.
    let tls = match settings.tls_files()? {
        Some((cert, key)) => Some(ServerTls::from_pem_files(cert, key)?),
        None => None,
    };
    let admin = server_admin_token(data_dir, settings.admin_token_file.as_deref())?;
    let master = crate::load_master_key(data_dir, settings.master_key_file.as_deref())?;
    let previous = match &settings.previous_master_key_file {
        Some(file) => Some(bulkhead_query::MasterKey::from_file(file).context("the previous master key")?),
        None => None,
    };
    let db = Arc::new(
        Database::open_with_previous(&data_dir.join("db"), master, previous, StoreOptions::default())
            .with_context(|| format!("opening {}", data_dir.display()))?
            .with_index_memory_budget(settings.index_memory_budget_bytes()),
    );
    let limits = ServerLimits {
        request_timeout: settings.request_timeout(),
        max_concurrent_work: settings.max_concurrent_work(),
        max_connections: settings.max_connections(),
        request_memory_budget_bytes: settings.request_memory_budget_bytes(),
        audit_retention: settings.audit_retention(),
        ..ServerLimits::default()
    };
    let mut server = Server::new(Arc::clone(&db), admin, limits);
    if let Some(tls) = tls {
        server = server.with_tls(tls);
    }
    let listen = settings.listen();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr()?;
        // Before the line that says the server serves: from then on a signal stops it cleanly.
        let signal = shutdown_signal()?;
        let tls = server.is_tls();
        if let Some(cert) = settings.tls.cert.as_deref().filter(|_| tls) {
            tracing::info!(cert = %cert.display(), "TLS on (rustls)");
        } else if address.ip().is_loopback() {
            tracing::info!("TLS off: serving plaintext gRPC (give --tls-cert and --tls-key to serve TLS)");
        } else {
            tracing::warn!(%address, "TLS off: serving plaintext gRPC beyond loopback: credentials travel in the clear");
        }
        tracing::info!(
            %address,
            tls,
            data_dir = %data_dir.display(),
            simd = %bulkhead_distance::active_isa(),
            "bulkhead serving bulkhead.v1 (DataPlane, Admin, reflection)"
        );
        // After the signal, calls in flight get a grace period to finish; a client that keeps an
        // idle connection open past it does not hold the shutdown (and the flush) hostage.
        let (signalled, stopping) = tokio::sync::oneshot::channel::<()>();
        let metrics = match settings.metrics_listen.as_deref() {
            Some("off") => None,
            Some(address) => {
                let address: SocketAddr = address.parse().context("--metrics-listen: an address or `off`")?;
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("listening for metrics on {address}"))?;
                Some(listener)
            }
            None => match tokio::net::TcpListener::bind(DEFAULT_METRICS_ADDRESS).await {
                Ok(listener) => Some(listener),
                Err(e) => {
                    tracing::warn!(address = DEFAULT_METRICS_ADDRESS, error = %e, "no metrics endpoint: the default port is taken");
                    None
                }
            },
        };
        let metrics = match metrics {
            Some(listener) => {
                let address = listener.local_addr()?;
                if address.ip().is_loopback() {
                    tracing::info!(%address, "metrics at /metrics");
                } else {
                    tracing::warn!(%address, "metrics at /metrics beyond loopback: they show every tenant's traffic (by opaque uid) to whoever can reach them");
                }
                Some(server.serve_metrics(listener))
            }
            None => None,
        };
        let serve = server.serve(listener, async move {
            signal.await;
            let _ = signalled.send(());
        });
        let served = tokio::select! {
            served = serve => served,
            () = async {
                if stopping.await.is_ok() {
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!("connections still open {} s after the signal; stopping anyway", SHUTDOWN_GRACE.as_secs());
                Ok(())
            }
        };
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        anyhow::Ok(served?)
    })?;
    db.operator().flush().context("flushing the store")?;
    tracing::info!("stopped; store flushed");
    Ok(())
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

/// Options every remote command shares.
#[derive(clap::Args)]
pub(crate) struct RemoteArgs {
    /// The server's address: host:port, http://host:port, or https://host:port (with --tls-ca).
    #[arg(long, env = "BULKHEAD_SERVER", default_value = DEFAULT_ADDRESS, global = true)]
    server: String,
    /// The CA or self-signed certificate (PEM) to trust: connect over TLS.
    #[arg(long, env = "BULKHEAD_TLS_CA", global = true)]
    tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry, when it is not the host of --server (for
    /// instance when connecting by IP address to a certificate issued for a DNS name).
    #[arg(long, env = "BULKHEAD_TLS_DOMAIN", global = true)]
    tls_domain: Option<String>,
    /// Send the credential in plaintext to a server that is not on loopback (refused without this
    /// flag: anyone on the path would read the admin token or API key).
    #[arg(long, env = "BULKHEAD_INSECURE_PLAINTEXT", global = true)]
    insecure_plaintext: bool,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

impl RemoteArgs {
    /// A channel to the server, over TLS when --tls-ca is given.
    async fn connect(&self) -> Result<client::Channel> {
        let tls = match &self.tls_ca {
            Some(ca) => Some(ClientTls::from_pem_file(ca, self.tls_domain.clone())?),
            None if self.tls_domain.is_some() => anyhow::bail!("--tls-domain needs --tls-ca"),
            None => None,
        };
        if tls.is_none() && !self.insecure_plaintext && !client::is_loopback_address(&self.server) {
            anyhow::bail!(
                "{} is not a loopback address and the connection would be plaintext: the credential would \
                 travel in the clear. Connect over TLS (https:// and --tls-ca FILE), or pass --insecure-plaintext",
                self.server
            );
        }
        Ok(client::connect_with(&self.server, tls.as_ref()).await?)
    }

    /// Whether calls go over TLS.
    fn tls(&self) -> bool {
        self.tls_ca.is_some()
    }
}

/// `bulkhead admin ...`.
#[derive(clap::Args)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// A file holding the admin token. Without it: BULKHEAD_ADMIN_TOKEN, else the development token in
    /// the data directory.
    #[arg(long, env = "BULKHEAD_ADMIN_TOKEN_FILE", global = true)]
    admin_token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Tenants.
    #[command(subcommand)]
    Tenant(AdminTenant),
    /// API keys.
    #[command(subcommand)]
    Key(AdminKey),
    /// Starts a tenant-key rotation and, unless `--no-wait`, shows its progress until it finishes
    /// (the server keeps going if this command is interrupted, and after a restart).
    RotateTenantKey {
        tenant: String,
        /// Return at once instead of following the progress.
        #[arg(long)]
        no_wait: bool,
    },
    /// Shows a tenant's key generation and any rotation in progress.
    RotationStatus { tenant: String },
    /// Re-wraps every data key under the master key in FILE (a path on the server's host, mode
    /// 0600). Restart the server with `--master-key-file FILE` (the old key as
    /// `--previous-master-key-file` until it has started once).
    RotateMasterKey { new_key_file: String },
    /// The audit trail: verify chains, export a tenant's events.
    #[command(subcommand)]
    Audit(AdminAudit),
    /// A tenant's versioned policy.
    #[command(subcommand)]
    Policy(AdminPolicy),
}

#[derive(clap::Subcommand)]
enum AdminPolicy {
    /// Prints the tenant's policy in force, with its version, as JSON.
    Show { tenant: String },
    /// Replaces the tenant's policy with the JSON in FILE (the shape `show` prints:
    /// `{"denied":[{"role":"reader","operation":"count"}],"max_k":100,"max_ef":null,
    /// "max_filter_conditions":null,"source_uri_prefixes":["https://wiki/"]}`), if it is still at
    /// --expected-version.
    Set {
        tenant: String,
        /// The policy, as JSON.
        #[arg(long)]
        file: PathBuf,
        /// The version being replaced (what `show` printed).
        #[arg(long)]
        expected_version: u64,
        /// Why (kept in the tenant's audit trail; no tenant data).
        #[arg(long)]
        note: String,
    },
}

fn policy_json(policy: &pb::PolicyResponse) -> serde_json::Value {
    let p = policy.policy.clone().unwrap_or_default();
    serde_json::json!({
        "version": policy.version,
        "changed_ms": policy.changed_ms,
        "policy": {
            "denied": p.denied.iter().map(|d| serde_json::json!({ "role": role_name(d.role), "operation": d.operation })).collect::<Vec<_>>(),
            "max_k": p.max_k,
            "max_ef": p.max_ef,
            "max_filter_conditions": p.max_filter_conditions,
            "source_uri_prefixes": p.source_uri_prefixes,
        }
    })
}

fn policy_from_json(text: &str) -> Result<pb::TenantPolicy> {
    let value: serde_json::Value = serde_json::from_str(text).context("the policy file is not JSON")?;
    // `show` prints the policy inside {"version", "policy"}; accept either shape.
    let p = value.get("policy").unwrap_or(&value);
    let limit = |name: &str| -> Result<Option<u32>> {
        match p.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => Ok(Some(
                v.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .with_context(|| format!("{name}: a number"))?,
            )),
        }
    };
    let mut denied = Vec::new();
    for d in p.get("denied").and_then(|d| d.as_array()).map(Vec::as_slice).unwrap_or_default() {
        let role = match d.get("role").and_then(|r| r.as_str()) {
            Some("reader") => pb::Role::Reader,
            Some("writer") => pb::Role::Writer,
            Some("tenant-admin") => pb::Role::TenantAdmin,
            _ => anyhow::bail!("denied: role must be reader, writer or tenant-admin"),
        };
        let operation = d.get("operation").and_then(|o| o.as_str()).context("denied: an operation name")?;
        denied.push(pb::DeniedOperation { role: role as i32, operation: operation.to_owned() });
    }
    let source_uri_prefixes = p
        .get("source_uri_prefixes")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().map(str::to_owned).context("source_uri_prefixes: strings"))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(pb::TenantPolicy {
        denied,
        max_k: limit("max_k")?,
        max_ef: limit("max_ef")?,
        max_filter_conditions: limit("max_filter_conditions")?,
        source_uri_prefixes,
    })
}

#[derive(clap::Subcommand)]
enum AdminAudit {
    /// Recomputes the audit chain of TENANT (a name, or the full uid of a deleted tenant), or of
    /// every chain, and reports the first broken event of each. Fails if any chain is broken.
    Verify { tenant: Option<String> },
    /// Writes TENANT's audit events as JSON lines, oldest first.
    Export {
        tenant: String,
        /// Only events at or after this time (milliseconds since the Unix epoch).
        #[arg(long, default_value_t = 0)]
        since_ms: u64,
    },
}

#[derive(clap::Subcommand)]
enum AdminTenant {
    /// Creates a tenant.
    Create { name: String },
    /// Lists tenants.
    List,
    /// Describes a tenant.
    Describe { name: String },
    /// Deletes a tenant by crypto-shredding: its keys are destroyed first, then its data. Irreversible.
    Delete {
        name: String,
        /// Confirms the deletion (required).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(clap::Subcommand)]
enum AdminKey {
    /// Issues an API key; the token is printed once and never stored.
    Issue {
        tenant: String,
        /// reader, writer or tenant-admin.
        #[arg(long, default_value = "writer")]
        role: String,
        /// A label for the operator's list.
        #[arg(long, default_value = "")]
        label: String,
        /// Make the key expire after this many seconds.
        #[arg(long)]
        expires_in_secs: Option<u64>,
        /// A service key whose requests may name the end user they act for (and then see only what
        /// that user may read).
        #[arg(long, conflicts_with = "user")]
        on_behalf_of: bool,
        /// A user's own key: every search, get and count runs as this user.
        #[arg(long)]
        user: Option<String>,
        /// The user's groups (with `--user`), comma-separated.
        #[arg(long, value_delimiter = ',', requires = "user")]
        groups: Vec<String>,
    },
    /// Lists a tenant's keys (ids, roles, state; never secrets).
    List { tenant: String },
    /// Revokes a key by id.
    Revoke { tenant: String, key_id: String },
    /// Revokes every key of a tenant at once (then rotate its data key).
    RevokeAll { tenant: String },
}

fn client_admin_token(data_dir: &Path, file: Option<&Path>) -> Result<AdminToken> {
    if let Some(file) = file {
        return Ok(AdminToken::from_file(file)?);
    }
    if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV) {
        return AdminToken::new(token).with_context(|| format!("reading {ADMIN_TOKEN_ENV}"));
    }
    let dev = data_dir.join("dev-admin.token");
    AdminToken::from_file(&dev).with_context(|| {
        format!("no admin token: pass --admin-token-file, set {ADMIN_TOKEN_ENV}, or run next to a development server")
    })
}

fn role_name(role: i32) -> &'static str {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Reader) => "reader",
        Ok(pb::Role::Writer) => "writer",
        Ok(pb::Role::TenantAdmin) => "tenant-admin",
        _ => "unknown",
    }
}

fn rotation_json(tenant: &str, s: &pb::RotationStatus) -> serde_json::Value {
    serde_json::json!({
        "tenant": tenant, "running": s.running, "key_generation": s.key_generation, "done": s.done, "total": s.total,
    })
}

fn tenant_json(t: &pb::Tenant) -> serde_json::Value {
    serde_json::json!({ "name": t.name, "uid": t.uid, "created_ms": t.created_ms, "placement": t.placement })
}

/// The one-line error of a failed call (with a hint when a plaintext client meets a TLS server).
fn status_error(tls: bool) -> impl Fn(client::Status) -> anyhow::Error + Copy {
    move |e| anyhow::anyhow!(client::describe_status(&e, tls))
}

pub(crate) fn admin(data_dir: &Path, args: AdminArgs, out: &mut impl Write) -> Result<()> {
    let token = client_admin_token(data_dir, args.admin_token_file.as_deref())?;
    let json = args.remote.json;
    let status = status_error(args.remote.tls());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let channel = args.remote.connect().await?;
        let mut admin = client::admin(channel);
        let token = token.expose();
        match args.command {
            AdminCommand::Tenant(AdminTenant::Create { name }) => {
                let t = admin
                    .create_tenant(client::authorized(pb::CreateTenantRequest { name }, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if json {
                    writeln!(out, "{}", tenant_json(&t))?;
                } else {
                    writeln!(out, "created tenant {} (uid {})", t.name, t.uid)?;
                }
            }
            AdminCommand::Tenant(AdminTenant::List) => {
                let list = admin
                    .list_tenants(client::authorized(pb::ListTenantsRequest {}, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if json {
                    let all: Vec<_> = list.tenants.iter().map(tenant_json).collect();
                    writeln!(out, "{}", serde_json::Value::Array(all))?;
                } else {
                    for t in list.tenants {
                        writeln!(out, "{}\tuid {}", t.name, t.uid)?;
                    }
                }
            }
            AdminCommand::Tenant(AdminTenant::Describe { name }) => {
                let t = admin
                    .describe_tenant(client::authorized(pb::DescribeTenantRequest { name }, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if json {
                    writeln!(out, "{}", tenant_json(&t))?;
                } else {
                    writeln!(out, "{}\tuid {}\tcreated {}\t{}", t.name, t.uid, t.created_ms, t.placement)?;
                }
            }
            AdminCommand::Tenant(AdminTenant::Delete { name, yes }) => {
                anyhow::ensure!(yes, "deleting a tenant destroys its keys and data for good: add --yes");
                let deleted = admin
                    .delete_tenant(client::authorized(pb::DeleteTenantRequest { name: name.clone() }, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if json {
                    writeln!(out, "{}", serde_json::json!({ "deleted": name, "revoked_keys": deleted.revoked_keys }))?;
                } else {
                    writeln!(out, "deleted tenant {name}: keys destroyed, {} API keys revoked", deleted.revoked_keys)?;
                }
            }
            AdminCommand::RotateTenantKey { tenant, no_wait } => {
                let mut status_now = admin
                    .rotate_tenant_key(client::authorized(pb::RotateTenantKeyRequest { tenant: tenant.clone() }, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if !json {
                    writeln!(out, "rotation started: new writes are sealed under key generation {}", status_now.key_generation)?;
                }
                let bar = (!no_wait && !json).then(|| {
                    let bar = indicatif::ProgressBar::new(status_now.total.max(1));
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("re-sealing {bar:40} {pos}/{len} records ({eta} left)")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    bar
                });
                while !no_wait && status_now.running {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    status_now = admin
                        .get_rotation_status(client::authorized(pb::GetRotationStatusRequest { tenant: tenant.clone() }, token)?)
                        .await
                        .map_err(status)?
                        .into_inner();
                    if let Some(bar) = &bar {
                        bar.set_length(status_now.total.max(status_now.done).max(1));
                        bar.set_position(status_now.done);
                    }
                }
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                if json {
                    writeln!(out, "{}", rotation_json(&tenant, &status_now))?;
                } else if !no_wait {
                    writeln!(out, "rotation finished: every record is under generation {}; the old key is destroyed", status_now.key_generation)?;
                }
            }
            AdminCommand::RotationStatus { tenant } => {
                let status_now = admin
                    .get_rotation_status(client::authorized(pb::GetRotationStatusRequest { tenant: tenant.clone() }, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if json {
                    writeln!(out, "{}", rotation_json(&tenant, &status_now))?;
                } else if status_now.running {
                    writeln!(out, "{tenant}: rotating to generation {}, {} of {} records scanned", status_now.key_generation, status_now.done, status_now.total)?;
                } else {
                    writeln!(out, "{tenant}: key generation {}, no rotation running", status_now.key_generation)?;
                }
            }
            AdminCommand::Audit(AdminAudit::Export { tenant, since_ms }) => {
                let mut from_seq = 0;
                loop {
                    let request = pb::ExportAuditRequest { tenant: tenant.clone(), since_ms, from_seq, limit: 0 };
                    let page = admin.export_audit(client::authorized(request, token)?).await.map_err(status)?;
                    match write_audit_page(page.into_inner(), out)? {
                        Some(next) => from_seq = next,
                        None => break,
                    }
                }
            }
            AdminCommand::Policy(AdminPolicy::Show { tenant }) => {
                let request = pb::GetPolicyRequest { tenant };
                let policy = admin.get_policy(client::authorized(request, token)?).await.map_err(status)?.into_inner();
                writeln!(out, "{}", serde_json::to_string_pretty(&policy_json(&policy))?)?;
            }
            AdminCommand::Policy(AdminPolicy::Set { tenant, file, expected_version, note }) => {
                let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
                let request = pb::SetPolicyRequest { tenant, policy: Some(policy_from_json(&text)?), expected_version, note };
                let policy = admin.set_policy(client::authorized(request, token)?).await.map_err(status)?.into_inner();
                if json {
                    writeln!(out, "{}", policy_json(&policy))?;
                } else {
                    writeln!(out, "policy version {} in force", policy.version)?;
                }
            }
            AdminCommand::Audit(AdminAudit::Verify { tenant }) => {
                let request = pb::VerifyAuditRequest { tenant: tenant.unwrap_or_default() };
                let checked = admin.verify_audit(client::authorized(request, token)?).await.map_err(status)?.into_inner();
                let mut broken = checked.chains.iter().filter(|c| c.first_broken.is_some()).count();
                for c in &checked.chains {
                    let reason = c.broken_reason.as_deref().unwrap_or("broken");
                    if json {
                        writeln!(out, "{}", serde_json::json!({ "tenant_uid": c.tenant_uid, "events": c.events, "first_seq": c.first_seq, "first_broken": c.first_broken, "broken_reason": c.broken_reason }))?;
                    } else if let Some(seq) = c.first_broken {
                        writeln!(out, "{}: BROKEN ({reason}) at event {seq} ({} events from {})", c.tenant_uid, c.events, c.first_seq)?;
                    } else {
                        writeln!(out, "{}: intact, {} events from {}", c.tenant_uid, c.events, c.first_seq)?;
                    }
                }
                if let Some(registered) = checked.chains_registered {
                    let expected = checked.chains_expected;
                    if expected != Some(registered) {
                        broken += 1;
                        let expected = expected.map_or("an unreadable count".to_owned(), |n| n.to_string());
                        if json {
                            writeln!(out, "{}", serde_json::json!({ "chains_registered": registered, "chains_expected": checked.chains_expected }))?;
                        } else {
                            writeln!(out, "chain directory: BROKEN, {registered} chains registered, expected {expected} (a whole chain was removed)")?;
                        }
                    }
                }
                if broken > 0 {
                    anyhow::bail!("{broken} audit chain(s) broken");
                }
            }
            AdminCommand::RotateMasterKey { new_key_file } => {
                let rotated = admin
                    .rotate_master_key(client::authorized(pb::RotateMasterKeyRequest { new_key_file }, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if json {
                    writeln!(out, "{}", serde_json::json!({ "master_version": rotated.master_version }))?;
                } else {
                    writeln!(out, "every data key is re-wrapped under master key version {}; restart the server with the new key file", rotated.master_version)?;
                }
            }
            AdminCommand::Key(AdminKey::Issue { tenant, role, label, expires_in_secs, on_behalf_of, user, groups }) => {
                let role = match role.as_str() {
                    "reader" => pb::Role::Reader,
                    "writer" => pb::Role::Writer,
                    "tenant-admin" => pb::Role::TenantAdmin,
                    _ => anyhow::bail!("role must be reader, writer or tenant-admin"),
                };
                let expires_ms = expires_in_secs.map(|s| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    now.saturating_add(s.saturating_mul(1000))
                });
                let binding = match user {
                    Some(user) => Some(pb::issue_api_key_request::Binding::User(pb::UserBinding { user, groups })),
                    None => on_behalf_of.then_some(pb::issue_api_key_request::Binding::OnBehalfOf(true)),
                };
                let request = pb::IssueApiKeyRequest { tenant, role: role as i32, label, expires_ms, binding };
                let issued = admin
                    .issue_api_key(client::authorized(request, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if json {
                    writeln!(
                        out,
                        "{}",
                        serde_json::json!({ "token": issued.token, "key_id": issued.key_id })
                    )?;
                } else {
                    // Only the token on stdout, so that `$(bulkhead admin key issue ...)` captures it.
                    writeln!(out, "{}", issued.token)?;
                }
            }
            AdminCommand::Key(AdminKey::List { tenant }) => {
                let list = admin
                    .list_api_keys(client::authorized(pb::ListApiKeysRequest { tenant }, token)?)
                    .await
                    .map_err(status)?
                    .into_inner();
                if json {
                    let all: Vec<_> = list
                        .keys
                        .iter()
                        .map(|k| {
                            serde_json::json!({
                                "key_id": k.key_id, "role": role_name(k.role), "label": k.label,
                                "created_ms": k.created_ms, "expires_ms": k.expires_ms, "revoked": k.revoked,
                            })
                        })
                        .collect();
                    writeln!(out, "{}", serde_json::Value::Array(all))?;
                } else {
                    for k in list.keys {
                        let state = if k.revoked { "revoked" } else { "active" };
                        writeln!(out, "{}\t{}\t{}\t{}", k.key_id, role_name(k.role), state, k.label)?;
                    }
                }
            }
            AdminCommand::Key(AdminKey::RevokeAll { tenant }) => {
                let request = pb::RevokeAllApiKeysRequest { tenant: tenant.clone() };
                let revoked = admin.revoke_all_api_keys(client::authorized(request, token)?).await.map_err(status)?.into_inner();
                if json {
                    writeln!(out, "{}", serde_json::json!({ "tenant": tenant, "revoked": revoked.revoked }))?;
                } else {
                    writeln!(out, "revoked {} keys of {tenant}", revoked.revoked)?;
                }
            }
            AdminCommand::Key(AdminKey::Revoke { tenant, key_id }) => {
                let request = pb::RevokeApiKeyRequest { tenant, key_id: key_id.clone() };
                admin.revoke_api_key(client::authorized(request, token)?).await.map_err(status)?;
                if json {
                    writeln!(out, "{}", serde_json::json!({ "revoked": key_id }))?;
                } else {
                    writeln!(out, "revoked {key_id}")?;
                }
            }
        }
        Ok(())
    })
}

/// `bulkhead client ...`: the data plane of a running server, with an API key.
#[derive(clap::Args)]
pub(crate) struct ClientArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    key: crate::ApiKeyArg,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(clap::Subcommand)]
enum ClientCommand {
    /// Creates a collection (needs a tenant-admin key).
    CreateCollection {
        name: String,
        #[arg(long)]
        dim: u32,
        /// cosine, dot or l2.
        #[arg(long, default_value = "cosine")]
        metric: String,
    },
    /// Lists the tenant's collections.
    Collections,
    /// Inserts or replaces one point.
    Upsert {
        collection: String,
        #[arg(long)]
        id: String,
        /// The vector, as comma-separated numbers.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        vector: Vec<f32>,
        #[arg(long, default_value = "")]
        text: String,
        #[arg(long)]
        source_uri: Option<String>,
        /// Restrict reading to these users (comma-separated); with --groups, an ACL.
        #[arg(long, value_delimiter = ',')]
        users: Vec<String>,
        /// Restrict reading to these groups (comma-separated).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
    },
    /// Searches a collection.
    Search {
        collection: String,
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        vector: Vec<f32>,
        #[arg(long, default_value_t = 5)]
        k: u32,
        /// Search on behalf of this user (only documents it may read).
        #[arg(long = "as-user")]
        as_user: Option<String>,
        /// The user's groups (comma-separated).
        #[arg(long = "as-groups", value_delimiter = ',')]
        as_groups: Vec<String>,
    },
    /// Counts a collection's points.
    Count { collection: String },
    /// Writes the key's own tenant's audit events as JSON lines (needs a tenant-admin key).
    AuditExport {
        /// Only events at or after this time (milliseconds since the Unix epoch).
        #[arg(long, default_value_t = 0)]
        since_ms: u64,
    },
}

/// Writes a page of audit events as JSON lines; returns where the next page starts.
fn write_audit_page(page: pb::ExportAuditResponse, out: &mut impl Write) -> Result<Option<u64>> {
    for e in &page.events {
        let line = serde_json::json!({
            "seq": e.seq,
            "time_ms": e.time_ms,
            "operation": e.operation,
            "key_id": e.key_id,
            "outcome": e.outcome,
            "key_generation": e.key_generation,
            "principal_hash": e.principal_hash,
            "collection_hash": e.collection_hash,
            "query_hash": e.query_hash,
            "document_hashes": e.document_hashes,
        });
        writeln!(out, "{line}")?;
    }
    Ok(page.next_seq)
}

pub(crate) fn client(args: ClientArgs, out: &mut impl Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let json = args.remote.json;
    let status = status_error(args.remote.tls());
    runtime.block_on(async {
        let channel = args.remote.connect().await?;
        let mut data = client::data_plane(channel);
        let token = args.key.token.as_str();
        match args.command {
            ClientCommand::CreateCollection { name, dim, metric } => {
                let metric = match metric.as_str() {
                    "cosine" => pb::Metric::Cosine,
                    "dot" => pb::Metric::Dot,
                    "l2" => pb::Metric::L2,
                    _ => anyhow::bail!("metric must be cosine, dot or l2"),
                };
                let request = pb::CreateCollectionRequest { name, dimension: dim, metric: metric as i32 };
                let c = data.create_collection(client::authorized(request, token)?).await.map_err(status)?;
                let c = c.into_inner();
                writeln!(out, "created collection {} ({} dimensions)", c.name, c.dimension)?;
            }
            ClientCommand::Collections => {
                let request = pb::ListCollectionsRequest {};
                let list =
                    data.list_collections(client::authorized(request, token)?).await.map_err(status)?;
                for c in list.into_inner().collections {
                    writeln!(out, "{}\t{} dims", c.name, c.dimension)?;
                }
            }
            ClientCommand::Upsert { collection, id, vector, text, source_uri, users, groups } => {
                let acl = (!users.is_empty() || !groups.is_empty()).then_some(pb::Acl { users, groups });
                let point = pb::Point { id, vector, text, metadata: Default::default(), source_uri, acl };
                let request = pb::UpsertRequest { collection, points: vec![point] };
                let r = data.upsert(client::authorized(request, token)?).await.map_err(status)?.into_inner();
                writeln!(out, "upserted (version {})", r.versions.first().copied().unwrap_or_default())?;
            }
            ClientCommand::Search { collection, vector, k, as_user, as_groups } => {
                let principal = as_user.map(|user| pb::Principal { user, groups: as_groups });
                let request = pb::SearchRequest { collection, vector, k, ef: None, filter: None, principal };
                let r = data.search(client::authorized(request, token)?).await.map_err(status)?.into_inner();
                for hit in r.hits {
                    if json {
                        let hit = serde_json::json!({
                            "id": hit.id, "score": hit.score, "text": hit.text, "source_uri": hit.source_uri,
                            "version": hit.version, "key_generation": hit.key_generation,
                        });
                        writeln!(out, "{hit}")?;
                    } else {
                        writeln!(out, "{:.4}\t{}\t{}", hit.score, hit.id, hit.text)?;
                    }
                }
            }
            ClientCommand::Count { collection } => {
                let request = pb::CountRequest { collection };
                let r = data.count(client::authorized(request, token)?).await.map_err(status)?.into_inner();
                writeln!(out, "{}", r.count)?;
            }
            ClientCommand::AuditExport { since_ms } => {
                let mut from_seq = 0;
                loop {
                    let request = pb::ExportOwnAuditRequest { since_ms, from_seq, limit: 0 };
                    let page =
                        data.export_audit(client::authorized(request, token)?).await.map_err(status)?;
                    match write_audit_page(page.into_inner(), out)? {
                        Some(next) => from_seq = next,
                        None => break,
                    }
                }
            }
        }
        Ok(())
    })
}
