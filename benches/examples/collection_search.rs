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

mod common;

use anyhow::{Context, Result};
use bulkhead_query::{DocId, Metric, NewPoint, TenantName};
use common::{Dataset, TempDatabase, bench_scope, build_graph, upsert_rows};
use std::time::{Duration, Instant};

const K: usize = 10;

fn main() -> Result<()> {
    let Dataset { base, queries, gt, .. } = Dataset::load()?;
    println!("active ISA: {}", bulkhead_distance::active_isa());
    let data = TempDatabase::new()?;
    let open = |threshold: usize| data.open(threshold);
    let name = TenantName::new("bench")?;
    let db = open(usize::MAX)?;
    db.operator().create_tenant(&name)?;
    let tenant = db.tenant(&bench_scope(&db, &name)?)?;
    tenant.create_collection("docs", base.dim(), Metric::Cosine)?;
    let elapsed = upsert_rows(&tenant, "docs", &base, |i, row| {
        Ok(NewPoint::new(DocId::new(i.to_string())?, row.to_vec(), ""))
    })?;
    println!(
        "upserted {} points in {:.1} s (sealed, one RocksDB batch per 1,000)",
        base.len(),
        elapsed.as_secs_f64()
    );

    drop(tenant);
    drop(db);
    let db = open(usize::MAX)?;
    let tenant = db.tenant(&bench_scope(&db, &name)?)?;
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

    // Lower the threshold; rewriting a point starts a background build of the whole collection.
    let start = Instant::now();
    let first = base.row(0).context("a base row")?;
    let (_, status) = build_graph(&db, &tenant, "docs", NewPoint::new(DocId::new("0")?, first.to_vec(), ""))?;
    println!("background build: {:.1} s ({status:?})", start.elapsed().as_secs_f64());
    run(&tenant, "HNSW segment (ef 64)")?;
    while !tenant.graph_status("docs")?.snapshot_saved {
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("snapshot saved {:.1} s after the build started", start.elapsed().as_secs_f64());
    drop(tenant);
    drop(db);

    let before_open = rss_mib()?;
    let db = open(1000)?;
    let tenant = db.tenant(&bench_scope(&db, &name)?)?;
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
