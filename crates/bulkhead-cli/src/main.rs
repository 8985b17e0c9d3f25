//! The `bulkhead` binary, one module per command family: `serve` runs the gRPC server over a data
//! directory; `admin` and `client` talk to a running one (`remote.rs` holds what they share);
//! `embedded` works on a data directory directly, authenticating with an API key exactly as a
//! remote client does; `bench` measures the index on an fvecs dataset. `args.rs` holds the argument
//! types several commands share, `secrets.rs` where the master key and admin token come from, and
//! `output.rs` what the commands print, as text or (with `--json`) as JSON; `load.rs` reads the
//! files of `client upsert --file`.

use anyhow::{Context, Result};
use bulkhead_server::config::{DEFAULT_DATA_DIR, LogFormat};
use clap::{Parser, Subcommand};
use output::Output;
use std::path::PathBuf;

mod admin;
mod allocator;
mod args;
mod bench;
mod client;
mod cluster;
mod datadir;
mod embedded;
mod load;
mod output;
mod remote;
mod secrets;
mod serve;

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
    /// Print JSON instead of text: one JSON value a line (`serve`: JSON log lines, and the
    /// settings as JSON with --print-config; `bench`: the text report on stderr, its numbers as
    /// one JSON object on stdout).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gRPC server (data plane, admin plane, reflection) on the data directory until SIGINT
    /// or SIGTERM. The first run generates a development master key and admin token in it, loudly.
    Serve(Box<serve::ServeArgs>),
    /// Administers a running server (tenants, API keys) with the admin token.
    Admin(Box<admin::AdminArgs>),
    /// Calls a running server's data plane (collections, upsert, search) with an API key.
    Client(Box<client::ClientArgs>),
    /// Writes a new random master key to FILE (created with mode 0600; an existing file is never
    /// overwritten), for `--master-key-file` or `bulkhead admin rotate-master-key`.
    GenerateMasterKey {
        /// Where to write it.
        file: PathBuf,
    },
    #[command(flatten)]
    Embedded(embedded::EmbeddedCommand),
    /// Measures the HNSW index on an fvecs/ivecs dataset: build time, memory, recall and queries/s,
    /// unfiltered and filtered (needs no data directory or key). See docs/BENCHMARKS.md.
    Bench(Box<bench::BenchArgs>),
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the cause chain, never a backtrace: the operator needs the reason, and
            // error messages carry no tenant data by construction.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one command. The server sets up its own logging (its config file may set the level and
/// format); every other command only warns, unless BULKHEAD_LOG says otherwise.
fn run(cli: Cli) -> Result<()> {
    let Cli { data_dir, master_key_file, json, command } = cli;
    if matches!(command, Command::Serve(_)) {
        // Before anything starts: returns only if the process already runs with them, or could not
        // execute itself (then the server runs with glibc's defaults, and says so).
        if let Some(error) = allocator::reexec_with_server_tunables() {
            eprintln!("warning: running with glibc's default allocator settings: {error}");
        }
    } else {
        let filter = std::env::var("BULKHEAD_LOG").unwrap_or_else(|_| "warn".to_owned());
        init_logging(&filter, LogFormat::Text).or_else(|_| init_logging("warn", LogFormat::Text))?;
    }
    let key_file = master_key_file.as_deref();
    let out = &mut std::io::stdout().lock();
    match command {
        // The data directory may also come from serve's config file, below the flag.
        Command::Serve(args) => serve::run(data_dir.as_deref(), key_file, &args, json, out),
        Command::Admin(args) => admin::run(&or_default(data_dir), *args, &mut Output::new(out, json)),
        Command::Client(args) => client::run(*args, &mut Output::new(out, json)),
        Command::GenerateMasterKey { file } => {
            secrets::generate_master_key(&file)?;
            let file = file.display().to_string();
            Output::new(out, json).record(
                || serde_json::json!({ "master_key_file": file }),
                || format!("wrote a new master key to {file} (mode 0600)"),
            )
        }
        Command::Embedded(command) => {
            embedded::run(&or_default(data_dir), key_file, command, &mut Output::new(out, json))
        }
        // The benchmark builds its index in memory: no data directory, no master key.
        Command::Bench(args) => bench::run(&args, json, out),
    }
}

/// The data directory given, or the default one.
fn or_default(data_dir: Option<PathBuf>) -> PathBuf {
    data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// Logs to stderr through `filter` (a level or tracing directives), as text or JSON lines.
pub(crate) fn init_logging(filter: &str, format: LogFormat) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("the log filter {filter:?} is not valid"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}
