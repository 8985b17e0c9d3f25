//! Many small tenants on one node (issue 10's scale curve): for each count, a fresh data directory
//! gets that many tenants in one tier, each with one collection of a few points (created by two
//! threads through the embedded API), then is closed and opened again. Reports the creation time,
//! the directory's size and column families, the open time, the process's resident memory after
//! the open (idle tenants), after a search in 1,000 of them, and after a search in every one of
//! them (each then holds its keys, counters, policy and a small exact-scan index in memory), and
//! what RocksDB's shared block cache holds.
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
    /// The tier every tenant is created in: shared or partitioned.
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

fn main() -> Result<()> {
    let args = Args::parse();
    let tier = Placement::from_name(&args.tier).context("--tier is shared or partitioned")?;
    println!(
        "tier {}, {} points of {} dimensions per tenant; load average {}",
        tier.name(),
        args.points,
        args.dimension,
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );
    println!(
        "{:>8} {:>9} {:>8} {:>9} {:>5} {:>8} {:>9} {:>10} {:>10} {:>10} {:>9} {:>10}",
        "tenants",
        "create s",
        "ms each",
        "dir MiB",
        "CFs",
        "open s",
        "idle MiB",
        "1k used",
        "all used",
        "KiB/used",
        "cache MiB",
        "base MiB"
    );
    for &count in &args.tenants {
        let scratch = match &args.scratch {
            Some(dir) => tempfile::tempdir_in(dir)?,
            None => tempfile::tempdir()?,
        };
        let path = scratch.path().join("db");
        let master = MasterKey::generate();
        let key = scratch.path().join("master.key");
        master.write_new_file(&key)?;
        let options = || StoreOptions { default_placement: tier, ..StoreOptions::default() };
        let started = Instant::now();
        {
            let db = Database::open(&path, master, options())?;
            let (db, args, half) = (&db, &args, count / 2);
            std::thread::scope(|s| -> Result<()> {
                let first = s.spawn(move || create(db, 0, half, args));
                create(db, half, count, args)?;
                first.join().map_err(|_| anyhow::anyhow!("a creating thread panicked"))?
            })?;
            db.operator().flush()?;
        }
        let created = started.elapsed().as_secs_f64();
        let size = dir_mib(&path)?;
        let base = rss_mib()?;
        let started = Instant::now();
        let db = Database::open(&path, MasterKey::from_file(&key)?, options())?;
        let opened = started.elapsed().as_secs_f64();
        let idle = rss_mib()?;
        let families = db.column_family_count()?;
        touch(&db, count.min(1_000), &args)?;
        let some = rss_mib()?;
        touch(&db, count, &args)?;
        let all = rss_mib()?;
        let cache = db.engine_memory_bytes() as f64 / 1048576.0;
        println!(
            "{count:>8} {created:>9.1} {:>8.2} {size:>9.1} {families:>5} {opened:>8.2} {idle:>9.1} {some:>10.1} \
             {all:>10.1} {:>10.1} {cache:>9.1} {base:>10.1}",
            created * 1000.0 / count as f64,
            (all - idle) * 1024.0 / count as f64,
        );
        drop(db);
    }
    Ok(())
}
