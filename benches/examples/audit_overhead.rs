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
const ROUNDS: usize = 7;

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

    let pass = |audit: bool| -> Result<f64> {
        db.set_access_audit(audit);
        let start = Instant::now();
        for query in queries.rows() {
            std::hint::black_box(tenant.search_with_ef("docs", query, K, Some(EF))?);
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / queries.len() as f64)
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
    let (on, off) = (median(&mut on), median(&mut off));
    println!(
        "median over {ROUNDS} rounds: audit on {on:.1} µs/query, off {off:.1} µs/query, ratio {:.3}",
        on / off
    );
    let uid = db.operator().tenant_info(&name)?.uid;
    let check = db.operator().audit_verify(uid)?;
    println!("the trail holds {} events and verifies: {}", check.events, check.first_broken.is_none());
    Ok(())
}
