//! The `bulkhead` binary. `bulkhead serve` runs the gRPC server over a data directory, and
//! `bulkhead admin ...` / `bulkhead client ...` talk to a running one (`remote.rs`). The embedded
//! commands work on a data directory directly: operator commands (tenants, API keys) and data commands
//! that authenticate with an API key exactly as a remote client does.

use anyhow::{Context, Result, bail};
use bulkhead_query::{
    Database, DocId, MASTER_KEY_ENV, MasterKey, Metric, NewPoint, Role, StoreOptions, TenantName, limits,
};
use bulkhead_server::config::{DEFAULT_DATA_DIR, LogFormat};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

mod bench;
mod remote;

/// Bulkhead: a tenant-partitioned, encrypted vector database.
///
/// The argument types have no `Debug`: they carry API keys, ids, texts and vectors.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The data directory [default: bulkhead-data].
    #[arg(long, global = true, env = "BULKHEAD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A file holding the master key (64 hex characters, mode 0600). Without it, the key is read from
    /// the BULKHEAD_MASTER_KEY environment variable, and failing that a development key is generated
    /// inside the data directory.
    #[arg(long, global = true, env = "BULKHEAD_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gRPC server (data plane, admin plane, reflection) on the data directory until SIGINT
    /// or SIGTERM. The first run generates a development master key and admin token in it, loudly.
    Serve(remote::ServeArgs),
    /// Administers a running server (tenants, API keys) with the admin token.
    Admin(Box<remote::AdminArgs>),
    /// Calls a running server's data plane (collections, upsert, search) with an API key.
    Client(Box<remote::ClientArgs>),
    /// Writes a new random master key to FILE (created with mode 0600; an existing file is never
    /// overwritten), for `--master-key-file` or `bulkhead admin rotate-master-key`.
    GenerateMasterKey {
        /// Where to write it.
        file: PathBuf,
    },
    /// Runs the whole path once on the data directory: a tenant, an API key, a collection, an upsert,
    /// a search, a revocation.
    Demo,
    /// Operator commands for tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Operator commands for API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Collections of the API key's tenant.
    #[command(subcommand)]
    Collection(CollectionCommand),
    /// Inserts or replaces one point.
    Upsert {
        /// The collection.
        collection: String,
        /// The document id.
        #[arg(long)]
        id: String,
        /// The vector, as comma-separated numbers.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        vector: Vec<f32>,
        /// The chunk's text.
        #[arg(long, default_value = "")]
        text: String,
        #[command(flatten)]
        key: ApiKeyArg,
    },
    /// Searches a collection.
    Search {
        /// The collection.
        collection: String,
        /// The query vector, as comma-separated numbers.
        #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
        vector: Vec<f32>,
        /// How many results.
        #[arg(long, default_value_t = 5)]
        k: usize,
        #[command(flatten)]
        key: ApiKeyArg,
    },
    /// Measures the HNSW index on an fvecs/ivecs dataset: build time, memory, recall and queries/s,
    /// unfiltered and filtered (needs no data directory or key). See docs/BENCHMARKS.md.
    Bench(Box<bench::BenchArgs>),
}

#[derive(clap::Args)]
pub(crate) struct ApiKeyArg {
    /// The API key (prefer the environment variable, which stays out of shell history).
    #[arg(long = "api-key", env = "BULKHEAD_API_KEY", hide_env_values = true)]
    pub(crate) token: String,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Creates a tenant with its own keys and column family.
    Create { name: String },
    /// Lists tenants.
    List,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Issues an API key; it is printed once and never stored.
    Issue {
        tenant: String,
        /// reader, writer or tenant-admin.
        #[arg(long, default_value = "writer")]
        role: String,
        /// A label for the operator's list.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Lists a tenant's keys (ids, roles, state; never secrets).
    List { tenant: String },
    /// Revokes a key by id.
    Revoke { tenant: String, key_id: String },
}

#[derive(Subcommand)]
enum CollectionCommand {
    /// Creates a collection (needs a tenant-admin key).
    Create {
        name: String,
        #[arg(long)]
        dim: usize,
        /// cosine, dot or l2.
        #[arg(long, default_value = "cosine")]
        metric: String,
        #[command(flatten)]
        key: ApiKeyArg,
    },
    /// Lists the tenant's collections.
    List {
        #[command(flatten)]
        key: ApiKeyArg,
    },
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the cause chain, never a backtrace: the operator needs the reason, and
            // error messages carry no tenant data by construction.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Serve(args) = &cli.command {
        // The server's settings come first: the config file may set its log level and format.
        let settings = remote::serve_settings(cli.data_dir.as_deref(), cli.master_key_file.as_deref(), args)?;
        if args.print_config() {
            return remote::print_config(&settings, &mut std::io::stdout().lock());
        }
        init_logging(settings.log_level(), settings.log_format())?;
        return remote::serve(&settings);
    }
    // Commands other than the server only warn, unless BULKHEAD_LOG says otherwise.
    let filter = std::env::var("BULKHEAD_LOG").unwrap_or_else(|_| "warn".to_owned());
    init_logging(&filter, LogFormat::Text).or_else(|_| init_logging("warn", LogFormat::Text))?;
    let data_dir = cli.data_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let data_dir = data_dir.as_path();
    match cli.command {
        // The benchmark builds its index in memory: no data directory, no master key.
        Command::Bench(args) => return bench::run(&args, &mut std::io::stdout().lock()),
        Command::Admin(args) => return remote::admin(data_dir, *args, &mut std::io::stdout().lock()),
        Command::Client(args) => return remote::client(*args, &mut std::io::stdout().lock()),
        Command::GenerateMasterKey { file } => {
            MasterKey::generate()
                .write_new_file(&file)
                .with_context(|| format!("writing {}", file.display()))?;
            return Ok(());
        }
        _ => {}
    }
    let master = load_master_key(data_dir, cli.master_key_file.as_deref())?;
    let db = Database::open(&data_dir.join("db"), master, StoreOptions::default())
        .with_context(|| format!("opening {}", data_dir.display()))?;
    let mut out = std::io::stdout().lock();
    run(&db, cli.command, &mut out)?;
    db.operator().flush()?;
    Ok(())
}

/// Logs to stderr through `filter` (a level or tracing directives), as text or JSON lines.
fn init_logging(filter: &str, format: LogFormat) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("the log filter {filter:?} is not valid"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// The master key: from `--master-key-file`, else the environment, else a development key kept in the
/// data directory (created on first use, with a warning).
pub(crate) fn load_master_key(data_dir: &Path, file: Option<&Path>) -> Result<MasterKey> {
    if let Some(file) = file {
        return Ok(MasterKey::from_file(file)?);
    }
    if std::env::var_os(MASTER_KEY_ENV).is_some() {
        return Ok(MasterKey::from_env(MASTER_KEY_ENV)?);
    }
    let dev_key = data_dir.join("dev-master.key");
    if !dev_key.exists() {
        std::fs::create_dir_all(data_dir)?;
        MasterKey::generate().write_new_file(&dev_key)?;
        tracing::warn!(
            path = %dev_key.display(),
            "generated a DEVELOPMENT master key inside the data directory; anyone who can read the directory \
             can read the data. Use --master-key-file or {MASTER_KEY_ENV} in production"
        );
    }
    Ok(MasterKey::from_file(&dev_key)?)
}

fn parse_metric(text: &str) -> Result<Metric> {
    Metric::parse(text).with_context(|| format!("unknown metric {text:?}: use cosine, dot or l2"))
}

fn run(db: &Database, command: Command, out: &mut impl Write) -> Result<()> {
    let store = db.operator();
    match command {
        Command::Demo => demo(db, out)?,
        Command::Tenant(TenantCommand::Create { name }) => {
            let info = store.create_tenant(&TenantName::new(name)?)?;
            writeln!(out, "created tenant {} (uid {})", info.name.as_str(), info.uid.short())?;
        }
        Command::Tenant(TenantCommand::List) => {
            for t in store.list_tenants()? {
                writeln!(out, "{}\tuid {}", t.name.as_str(), t.uid.short())?;
            }
        }
        Command::Key(KeyCommand::Issue { tenant, role, label }) => {
            let role = Role::parse(&role).context("role must be reader, writer or tenant-admin")?;
            let key = store.issue_api_key(&TenantName::new(tenant)?, role, &label, None)?;
            writeln!(out, "{}", key.token)?;
        }
        Command::Key(KeyCommand::List { tenant }) => {
            for k in store.list_api_keys(&TenantName::new(tenant)?)? {
                let state = if k.revoked { "revoked" } else { "active" };
                writeln!(out, "{}\t{}\t{}\t{}", k.key_id, k.role.as_str(), state, k.label)?;
            }
        }
        Command::Key(KeyCommand::Revoke { tenant, key_id }) => {
            store.revoke_api_key(&TenantName::new(tenant)?, &key_id)?;
            writeln!(out, "revoked {key_id}")?;
        }
        Command::Collection(CollectionCommand::Create { name, dim, metric, key }) => {
            let scope = store.authenticate(&key.token)?;
            let info = db.tenant(&scope)?.create_collection(&name, dim, parse_metric(&metric)?)?;
            writeln!(
                out,
                "created collection {} ({} dimensions, {})",
                info.name.as_str(),
                info.dimension,
                info.metric.as_str()
            )?;
        }
        Command::Collection(CollectionCommand::List { key }) => {
            let scope = store.authenticate(&key.token)?;
            let tenant = db.tenant(&scope)?;
            for c in tenant.collections()? {
                let count = tenant.count(c.name.as_str())?;
                writeln!(
                    out,
                    "{}\t{} dims\t{}\t{count} points",
                    c.name.as_str(),
                    c.dimension,
                    c.metric.as_str()
                )?;
            }
        }
        Command::Upsert { collection, id, vector, text, key } => {
            let scope = store.authenticate(&key.token)?;
            let versions =
                db.tenant(&scope)?.upsert(&collection, &[NewPoint::new(DocId::new(id)?, vector, text)])?;
            writeln!(out, "upserted (version {})", versions[0])?;
        }
        Command::Bench(args) => bench::run(&args, out)?,
        Command::Serve(_) | Command::Admin(_) | Command::Client(_) | Command::GenerateMasterKey { .. } => {
            bail!("network commands are dispatched before the data directory is opened")
        }
        Command::Search { collection, vector, k, key } => {
            let scope = store.authenticate(&key.token)?;
            for hit in db.tenant(&scope)?.search(&collection, &vector, k)? {
                writeln!(out, "{:.4}\t{}\t{}", hit.score, hit.id.as_str(), hit.text)?;
            }
        }
    }
    Ok(())
}

/// The walkthrough in one command, on its own tenant so that it can run again and again.
fn demo(db: &Database, out: &mut impl Write) -> Result<()> {
    let store = db.operator();
    let name = TenantName::new(format!("demo-{}", store.list_tenants()?.len() + 1))?;
    store.create_tenant(&name)?;
    writeln!(out, "1. created tenant {}", name.as_str())?;
    let admin = store.issue_api_key(&name, Role::TenantAdmin, "demo admin", None)?;
    let reader = store.issue_api_key(&name, Role::Reader, "demo reader", None)?;
    writeln!(out, "2. issued a tenant-admin key and a reader key (shown once; not stored)")?;

    let scope = store.authenticate(&admin.token)?;
    let tenant = db.tenant(&scope)?;
    tenant.create_collection("docs", 4, Metric::Cosine)?;
    let docs = [
        ("rust", [0.9, 0.1, 0.0, 0.0], "Rust is a systems programming language."),
        ("rocksdb", [0.7, 0.6, 0.1, 0.0], "RocksDB is an embedded key-value store."),
        ("aes", [0.0, 0.2, 0.9, 0.1], "AES-GCM is an authenticated cipher."),
        ("hnsw", [0.3, 0.8, 0.0, 0.4], "HNSW is a graph index for nearest neighbours."),
    ];
    let points: Vec<NewPoint> = docs
        .iter()
        .map(|(id, v, text)| Ok(NewPoint::new(DocId::new(*id)?, v.to_vec(), *text)))
        .collect::<Result<_>>()?;
    tenant.upsert("docs", &points)?;
    writeln!(out, "3. created collection docs (4 dimensions, cosine) and upserted {} points", points.len())?;

    let scope = store.authenticate(&reader.token)?;
    let hits = db.tenant(&scope)?.search("docs", &[0.8, 0.3, 0.0, 0.0], 3)?;
    writeln!(out, "4. searched as the reader (k = 3, at most {}):", limits::MAX_K)?;
    for hit in &hits {
        writeln!(
            out,
            "   {:.4}  {:<8} {}  (version {}, key generation {})",
            hit.score,
            hit.id.as_str(),
            hit.text,
            hit.version,
            hit.key_generation
        )?;
    }
    store.revoke_api_key(&name, &reader.key_id)?;
    if store.authenticate(&reader.token).is_ok() {
        bail!("a revoked key still authenticated");
    }
    writeln!(out, "5. revoked the reader key; it no longer authenticates")?;
    writeln!(out, "data directory: {}", store.path().display())?;
    Ok(())
}
