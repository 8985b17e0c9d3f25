//! Many small tenants on one node (issue 10's scale curve): for each count, a fresh data directory
//! gets that many tenants in one tier, each with one collection of a few points (created by two
//! threads through the embedded API, in a child process), then is opened again in another child
//! process, whose resident memory is measured before the open (the empty process), after it (idle
//! tenants), after a search in 1,000 of them, and after a search in every one of them (each then
//! holds its keys, counters, policy and a small exact-scan index in memory). Reports those, the
//! creation time, the directory's size and column families, the open time, and what RocksDB's
//! shared block cache holds.
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example tenant_scale --release -- \
//!     --tier shared --tenants 1000,10000,100000
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

use anyhow::{Context, Result, bail};
use bulkhead_query::{Database, DocId, MasterKey, Metric, NewPoint, Placement, StoreOptions, TenantName};
use clap::Parser;
use std::path::Path;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    /// The tier every tenant is created in: shared, partitioned or dedicated.
    #[arg(long, default_value = "shared")]
    tier: String,
    /// The tenant counts to measure, each in a fresh directory.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    tenants: Vec<usize>,
    /// Points per tenant.
    #[arg(long, default_value_t = 10)]
    points: usize,
    /// Dimensions of each point.
    #[arg(long, default_value_t = 16)]
    dimension: usize,
    /// Where the temporary directories go (default: the system's temporary directory).
    #[arg(long)]
    scratch: Option<std::path::PathBuf>,
    /// Internal: the phase a child process runs (`create` or `measure`) ...
    #[arg(long, hide = true)]
    phase: Option<String>,
    /// ... over this directory.
    #[arg(long, hide = true)]
    phase_dir: Option<std::path::PathBuf>,
}

/// The process's resident memory, in MiB.
fn rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok(kib / 1024.0)
}

fn dir_mib(path: &Path) -> Result<f64> {
    let mut bytes = 0u64;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        bytes += if meta.is_dir() { (dir_mib(&entry.path())? * 1048576.0) as u64 } else { meta.len() };
    }
    Ok(bytes as f64 / 1048576.0)
}

fn name(i: usize) -> Result<TenantName> {
    Ok(TenantName::new(format!("t{i:06}"))?)
}

fn vector(seed: usize, dimension: usize) -> Vec<f32> {
    (0..dimension).map(|d| ((seed * 31 + d * 7) % 97) as f32 / 97.0 + 0.01).collect()
}

/// Creates tenants `from..to`, each with a collection of `points` points.
fn create(db: &Database, from: usize, to: usize, args: &Args) -> Result<()> {
    for i in from..to {
        let name = name(i)?;
        db.operator().create_tenant(&name)?;
        let scope = db.operator().trusted_host_scope(&name, "tenant_scale benchmark")?;
        let tenant = db.tenant(&scope)?;
        tenant.create_collection("docs", args.dimension, Metric::Cosine)?;
        let points = (0..args.points)
            .map(|p| Ok(NewPoint::new(DocId::new(format!("d{p}"))?, vector(i + p, args.dimension), "x")))
            .collect::<Result<Vec<_>>>()?;
        tenant.upsert("docs", &points)?;
    }
    Ok(())
}

/// Searches tenants `0..count` once each.
fn touch(db: &Database, count: usize, args: &Args) -> Result<()> {
    for i in 0..count {
        let scope = db.operator().trusted_host_scope(&name(i)?, "tenant_scale benchmark")?;
        let hits = db.tenant(&scope)?.search("docs", &vector(i, args.dimension), 3)?;
        if hits.len() != 3.min(args.points) {
            bail!("tenant {i} answered {} hits", hits.len());
        }
    }
    Ok(())
}

/// What one phase, run in its own process, measured (one line of `key=value` on its stdout).
fn phase_line(fields: &[(&str, f64)]) {
    let text: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{}", text.join(" "));
}

/// Runs this program again for one phase, in a fresh process (so that each phase's resident
/// memory is its own), and parses what it measured.
fn run_phase(args: &[String]) -> Result<std::collections::HashMap<String, f64>> {
    let output = std::process::Command::new(std::env::current_exe()?).args(args).output()?;
    if !output.status.success() {
        bail!("phase {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8(output.stdout)?;
    let line = text.lines().last().context("no output")?;
    line.split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').context("key=value")?;
            Ok((k.to_owned(), v.parse()?))
        })
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tier = Placement::from_name(&args.tier).context("--tier is shared, partitioned or dedicated")?;
    let options = || StoreOptions { default_placement: tier, ..StoreOptions::default() };
    if let Some(dir) = &args.phase_dir {
        let path = dir.join("db");
        let count = *args.tenants.first().context("one count")?;
        if args.phase.as_deref() == Some("create") {
            let master = MasterKey::from_file(&dir.join("master.key"))?;
            let started = Instant::now();
            let db = Database::open(&path, master, options())?;
            let (db_ref, args_ref, half) = (&db, &args, count / 2);
            std::thread::scope(|s| -> Result<()> {
                let first = s.spawn(move || create(db_ref, 0, half, args_ref));
                create(db_ref, half, count, args_ref)?;
                first.join().map_err(|_| anyhow::anyhow!("a creating thread panicked"))?
            })?;
            db.operator().flush()?;
            drop(db);
            phase_line(&[("created", started.elapsed().as_secs_f64())]);
        } else {
            let base = rss_mib()?;
            let started = Instant::now();
            let db = Database::open(&path, MasterKey::from_file(&dir.join("master.key"))?, options())?;
            let opened = started.elapsed().as_secs_f64();
            let idle = rss_mib()?;
            let families = db.column_family_count()? as f64;
            touch(&db, count.min(1_000), &args)?;
            let some = rss_mib()?;
            touch(&db, count, &args)?;
            let all = rss_mib()?;
            let cache = db.engine_memory_bytes() as f64 / 1048576.0;
            phase_line(&[
                ("base", base),
                ("opened", opened),
                ("idle", idle),
                ("families", families),
                ("some", some),
                ("all", all),
                ("cache", cache),
            ]);
        }
        return Ok(());
    }
    println!(
        "tier {}, {} points of {} dimensions per tenant; load average {}",
        tier.name(),
        args.points,
        args.dimension,
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    println!(
        "{:>8} {:>9} {:>8} {:>9} {:>5} {:>8} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9}",
        "tenants",
        "create s",
        "ms each",
        "dir MiB",
        "CFs",
        "open s",
        "empty MiB",
        "idle MiB",
        "1k used",
        "all used",
        "KiB/used",
        "cache MiB"
    );
    for &count in &args.tenants {
        let scratch = match &args.scratch {
            Some(dir) => tempfile::tempdir_in(dir)?,
            None => tempfile::tempdir()?,
        };
        MasterKey::generate().write_new_file(&scratch.path().join("master.key"))?;
        let common = |phase: &str| -> Vec<String> {
            vec![
                "--phase".into(),
                phase.into(),
                "--phase-dir".into(),
                scratch.path().display().to_string(),
                "--tier".into(),
                args.tier.clone(),
                "--tenants".into(),
                count.to_string(),
                "--points".into(),
                args.points.to_string(),
                "--dimension".into(),
                args.dimension.to_string(),
            ]
        };
        let created = run_phase(&common("create"))?["created"];
        let size = dir_mib(&scratch.path().join("db"))?;
        let m = run_phase(&common("measure"))?;
        println!(
            "{count:>8} {created:>9.1} {:>8.2} {size:>9.1} {:>5} {:>8.2} {:>9.1} {:>9.1} {:>10.1} {:>10.1} \
             {:>10.1} {:>9.1}",
            created * 1000.0 / count as f64,
            m["families"],
            m["opened"],
            m["base"],
            m["idle"],
            m["some"],
            m["all"],
            (m["all"] - m["idle"]) * 1024.0 / count as f64,
            m["cache"],
        );
    }
    Ok(())
}
