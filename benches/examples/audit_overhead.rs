//! What the access audit trail costs a search: debian-minilm behind its HNSW segment, the same 2,000
//! queries through the embedded API with the trail on and off, alternated round by round in one
//! process on one index so that both see the same machine. Each search with the trail on also hashes
//! its query vector and collection, chains an event (HMAC) and writes it to RocksDB's write-ahead log.
//! Prints the median per-query latency of each and their ratio (issue 8's bar: at most 1.10).
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example audit_overhead --release [DATASET_DIR]
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

mod common;

use anyhow::Result;
use bulkhead_query::{DocId, Metric, NewPoint, TenantName};
use common::{Dataset, TempDatabase, bench_scope, build_graph, upsert_rows};
use std::time::Instant;

const K: usize = 10;
const EF: usize = 64;
const ROUNDS: usize = 25;

fn main() -> Result<()> {
    let Dataset { base, queries, .. } = Dataset::load()?;
    println!("active ISA: {}", bulkhead_distance::active_isa());
    let data = TempDatabase::new()?;
    let name = TenantName::new("bench")?;
    let db = data.open(usize::MAX)?;
    db.operator().create_tenant(&name)?;
    let tenant = db.tenant(&bench_scope(&db, &name)?)?;
    tenant.create_collection("docs", base.dim(), Metric::Cosine)?;
    upsert_rows(&tenant, "docs", &base, |i, row| {
        Ok(NewPoint::new(DocId::new(i.to_string())?, row.to_vec(), ""))
    })?;
    let trigger = NewPoint::new(DocId::new("0")?, base.row(0).unwrap_or_default().to_vec(), "");
    let (built, _) = build_graph(&db, &tenant, "docs", trigger)?;
    println!(
        "{} points, segment built in {:.1} s; k = {K}, ef = {EF}, one thread",
        base.len(),
        built.as_secs_f64()
    );

    // Wall time per query, and of it the thread's time on a core (the rest is waiting: for a core,
    // or blocked in a call such as the write-ahead log's).
    let (mut on_cpu, mut off_cpu) = (Vec::new(), Vec::new());
    let mut pass = |audit: bool| -> Result<f64> {
        db.set_access_audit(audit);
        let cpu = thread_cpu_ns()?;
        let start = Instant::now();
        for query in queries.rows() {
            std::hint::black_box(tenant.search_with_ef("docs", query, K, Some(EF))?);
        }
        let wall = start.elapsed().as_secs_f64() * 1e6 / queries.len() as f64;
        let cpu = (thread_cpu_ns()? - cpu) as f64 / 1e3 / queries.len() as f64;
        if audit {
            on_cpu.push(cpu)
        } else {
            off_cpu.push(cpu)
        }
        Ok(wall)
    };
    pass(true)?;
    pass(false)?;
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always runs on a warmer cache.
        if round % 2 == 0 {
            on.push(pass(true)?);
            off.push(pass(false)?);
        } else {
            off.push(pass(false)?);
            on.push(pass(true)?);
        }
        println!("round {round}: audit on {:.1} µs/query, off {:.1} µs/query", on[round], off[round]);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // Each round's two passes ran back to back on the same machine: their ratio is the paired
    // measure, and its median the least moved by the machine's drift between rounds.
    let mut paired: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
    let paired = median(&mut paired);
    let (on, off) = (median(&mut on), median(&mut off));
    // The warm-up passes are the first of each list.
    let (on_cpu, off_cpu) = (median(&mut on_cpu[1..].to_vec()), median(&mut off_cpu[1..].to_vec()));
    println!("on a core: audit on {on_cpu:.1} µs/query, off {off_cpu:.1} µs/query (medians)");
    println!(
        "median over {ROUNDS} rounds: audit on {on:.1} µs/query, off {off:.1} µs/query, ratio {:.3}; \
         median of the rounds' ratios {paired:.3}",
        on / off
    );
    let uid = db.operator().tenant_info(&name)?.uid;
    let check = db.operator().audit_verify(uid)?;
    println!("the trail holds {} events and verifies: {}", check.events, check.first_broken.is_none());
    Ok(())
}

/// This thread's time on a core so far, in nanoseconds (the kernel's scheduler statistics).
fn thread_cpu_ns() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let first = stat.split_whitespace().next().ok_or_else(|| anyhow::anyhow!("empty schedstat"))?;
    Ok(first.parse()?)
}
