//! End-to-end search through the embedded API on debian-minilm: the same 2,000 queries against one
//! collection, first on the exact scan, then once the background HNSW segment is installed, then
//! after a restart that loads the segment's sealed snapshot. Prints recall@10 (against `gt.ivecs`)
//! and single-thread queries/s, the first-query latency of the cold collection with and without a
//! snapshot, and the process's memory idle, loaded and after eviction. Everything is real: RocksDB on
//! disk, sealed records, a tenant scope, payloads decrypted for every hit.
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example collection_search --release [DATASET_DIR]
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

use anyhow::{Context, Result};
use bulkhead_index::fvecs::{read_fvecs, read_ivecs};
use bulkhead_query::{Database, DocId, MasterKey, Metric, NewPoint, StoreOptions, TenantName};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const K: usize = 10;

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../shared/datasets/debian-minilm"));
    let base = read_fvecs(&dir.join("base.fvecs"), None).context("base.fvecs")?;
    let queries = read_fvecs(&dir.join("query.fvecs"), None).context("query.fvecs")?;
    let gt = read_ivecs(&dir.join("gt.ivecs"), None).context("gt.ivecs")?;
    println!("active ISA: {}", bulkhead_distance::active_isa());
    let data = tempfile::tempdir()?;
    let key_file = data.path().join("master.key");
    MasterKey::generate().write_new_file(&key_file)?;
    let open = |threshold: usize| -> Result<Database> {
        let db = Database::open(
            &data.path().join("db"),
            MasterKey::from_file(&key_file)?,
            StoreOptions::default(),
        )?;
        Ok(db.with_graph_threshold(threshold))
    };
    let name = TenantName::new("bench")?;
    let db = open(usize::MAX)?;
    db.operator().create_tenant(&name)?;
    let scope = db.operator().trusted_host_scope(&name, "benchmark")?;
    let tenant = db.tenant(&scope)?;
    tenant.create_collection("docs", base.dim(), Metric::Cosine)?;
    let start = Instant::now();
    let rows: Vec<&[f32]> = base.rows().collect();
    for (chunk_index, chunk) in rows.chunks(1000).enumerate() {
        let points = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                Ok(NewPoint::new(DocId::new((chunk_index * 1000 + j).to_string())?, v.to_vec(), ""))
            })
            .collect::<Result<Vec<_>>>()?;
        tenant.upsert("docs", &points)?;
    }
    println!(
        "upserted {} points in {:.1} s (sealed, one RocksDB batch per 1,000)",
        base.len(),
        start.elapsed().as_secs_f64()
    );

    drop(tenant);
    drop(db);
    let db = open(usize::MAX)?;
    let scope = db.operator().trusted_host_scope(&name, "benchmark")?;
    let tenant = db.tenant(&scope)?;
    let query0 = queries.row(0).context("a query")?;
    let start = Instant::now();
    tenant.search("docs", query0, K)?;
    println!(
        "after a restart, first query without a snapshot (loads every vector for exact search): {:.0} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );

    let run = |tenant: &bulkhead_query::Tenant<'_>, label: &str| -> Result<()> {
        let mut found = 0usize;
        let mut best = Duration::MAX;
        for _ in 0..3 {
            found = 0;
            let start = Instant::now();
            for (q, query) in queries.rows().enumerate() {
                let hits = tenant.search("docs", query, K)?;
                let truth = &gt.row(q).context("ground truth row")?[..K];
                found +=
                    hits.iter().filter(|h| truth.iter().any(|&t| t.to_string() == h.id.as_str())).count();
            }
            best = best.min(start.elapsed());
        }
        let qps = queries.len() as f64 / best.as_secs_f64();
        println!(
            "{label}: recall@10 {:.3}, {:.0} queries/s (one thread, best of 3)",
            found as f64 / (queries.len() * K) as f64,
            qps
        );
        Ok(())
    };
    run(&tenant, "exact scan")?;

    // Lower the threshold; the next write starts a background build of the whole collection.
    db.set_graph_threshold(1000);
    let start = Instant::now();
    let first = base.row(0).context("a base row")?;
    tenant.upsert("docs", &[NewPoint::new(DocId::new("0")?, first.to_vec(), "")])?;
    loop {
        let status = tenant.graph_status("docs")?;
        if status.graph_points > 0 && !status.building {
            println!("background build: {:.1} s ({status:?})", start.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    run(&tenant, "HNSW segment (ef 64)")?;
    while !tenant.graph_status("docs")?.snapshot_saved {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("snapshot saved {:.1} s after the build started", start.elapsed().as_secs_f64());
    drop(tenant);
    drop(db);

    let before_open = rss_mib()?;
    let db = open(1000)?;
    let scope = db.operator().trusted_host_scope(&name, "benchmark")?;
    let tenant = db.tenant(&scope)?;
    let idle = rss_mib()?;
    let start = Instant::now();
    tenant.search("docs", query0, K)?;
    let first = start.elapsed();
    let status = tenant.graph_status("docs")?;
    let loaded = rss_mib()?;
    println!(
        "after a restart, first query from the snapshot: {:.0} ms ({status:?})",
        first.as_secs_f64() * 1000.0
    );
    run(&tenant, "HNSW segment after a restart (ef 64)")?;
    // A budget of zero evicts every collection but the one being loaded.
    db.set_index_memory_budget(0);
    tenant.create_collection("tiny", base.dim(), Metric::Cosine)?;
    tenant.upsert("tiny", &[NewPoint::new(DocId::new("t")?, query0.to_vec(), "")])?;
    tenant.search("tiny", query0, 1)?;
    let evicted = rss_mib()?;
    println!(
        "process RSS: {before_open:.0} MiB before opening, {idle:.0} MiB open and idle, {loaded:.0} MiB with the \
         collection loaded (state estimate {:.0} MiB), {evicted:.0} MiB after it was evicted (docs loaded: {}, \
         index memory now {} bytes)",
        status.memory_bytes as f64 / (1 << 20) as f64,
        tenant.graph_status("docs")?.loaded,
        db.index_memory()
    );
    Ok(())
}

/// The process's resident set in MiB (Linux `/proc/self/statm`, 4 KiB pages).
fn rss_mib() -> Result<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: f64 = statm.split_whitespace().nth(1).context("statm")?.parse()?;
    Ok(pages * 4096.0 / (1 << 20) as f64)
}

/// The package's directory, as cargo gives it when it runs this binary. The compile-time value is
/// only a fallback: a target directory shared between checkouts can hold a binary built in another
/// one, and cargo reuses it when the sources match.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
}
