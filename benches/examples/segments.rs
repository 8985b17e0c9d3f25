//! How a collection's segments grow through the embedded API on debian-minilm, against one build
//! over everything (what every refill of the delta cost before segments were extended and merged).
//!
//! 1. `full`: every point written with the graph off, then one background build over all of them.
//! 2. `grow`: the default threshold (20,000); two thirds of the points written at full speed, wait
//!    until no job runs; then the last third, wait again. Prints each stage's time, the status
//!    (segments, points in segments and delta, tombstones) and a line per change of it.
//! 3. `churn`: on `grow`, a quarter of the points rewritten with their own vectors (each leaves a
//!    tombstone), then the time until the purge that drops them has run.
//!
//! Then recall@10 (against `gt.ivecs`) and one-thread queries/s of both collections at ef 64, and
//! `grow`'s cold load after a restart. Everything is real: RocksDB on disk, sealed records and
//! snapshots, a tenant scope, payloads decrypted for every hit.
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example segments --release [DATASET_DIR]
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

mod common;

use anyhow::{Context, Result};
use bulkhead_query::{DEFAULT_GRAPH_THRESHOLD, DocId, GraphStatus, Metric, NewPoint, Tenant, TenantName};
use common::{Dataset, TempDatabase, UPSERT_BATCH, bench_scope, build_graph};
use std::time::{Duration, Instant};

const K: usize = 10;

fn main() -> Result<()> {
    let Dataset { base, queries, gt, .. } = Dataset::load()?;
    println!(
        "active ISA: {}, {} points of {} dimensions",
        bulkhead_distance::active_isa(),
        base.len(),
        base.dim()
    );
    let rows: Vec<&[f32]> = base.rows().collect();
    let point = |i: usize| -> Result<NewPoint> {
        Ok(NewPoint::new(DocId::new(i.to_string())?, rows[i].to_vec(), ""))
    };
    let write = |tenant: &Tenant<'_>, collection: &str, range: std::ops::Range<usize>| -> Result<Duration> {
        let start = Instant::now();
        let ids: Vec<usize> = range.collect();
        for chunk in ids.chunks(UPSERT_BATCH) {
            tenant.upsert(collection, &chunk.iter().map(|&i| point(i)).collect::<Result<Vec<_>>>()?)?;
        }
        Ok(start.elapsed())
    };
    let data = TempDatabase::new()?;
    let name = TenantName::new("bench")?;

    // 1. One build over everything.
    let db = data.open(usize::MAX)?;
    db.operator().create_tenant(&name)?;
    let tenant = db.tenant(&bench_scope(&db, &name)?)?;
    tenant.create_collection("full", base.dim(), Metric::Cosine)?;
    write(&tenant, "full", 0..base.len())?;
    let (built, status) = build_graph(&db, &tenant, "full", point(0)?)?;
    println!("full: one build over {} points: {:.1} s ({})", base.len(), built.as_secs_f64(), brief(&status));

    // 2. Growth at the default threshold.
    db.set_graph_threshold(DEFAULT_GRAPH_THRESHOLD);
    tenant.create_collection("grow", base.dim(), Metric::Cosine)?;
    tenant.search("grow", rows[0], 1)?; // load the (empty) state so that writes go through it
    let two_thirds = base.len() * 2 / 3;
    let start = Instant::now();
    let written = write(&tenant, "grow", 0..two_thirds)?;
    let status = settle(&tenant, "grow", start)?;
    println!(
        "grow: {two_thirds} points written in {:.1} s, jobs done {:.1} s after the first write ({})",
        written.as_secs_f64(),
        start.elapsed().as_secs_f64(),
        brief(&status)
    );
    let start = Instant::now();
    let written = write(&tenant, "grow", two_thirds..base.len())?;
    let status = settle(&tenant, "grow", start)?;
    let grown = start.elapsed();
    println!(
        "grow: {} more points written in {:.1} s, jobs done {:.1} s after the first write ({}); \
         the one build over everything took {:.1} s ({:.2}x)",
        base.len() - two_thirds,
        written.as_secs_f64(),
        grown.as_secs_f64(),
        brief(&status),
        built.as_secs_f64(),
        grown.as_secs_f64() / built.as_secs_f64()
    );

    let measure = |tenant: &Tenant<'_>, collection: &str| -> Result<(f64, f64)> {
        let mut rates = Vec::new();
        let mut found = 0usize;
        for _ in 0..3 {
            found = 0;
            let start = Instant::now();
            for (q, query) in queries.rows().enumerate() {
                let hits = tenant.search(collection, query, K)?;
                let truth = &gt.row(q).context("ground truth row")?[..K];
                found +=
                    hits.iter().filter(|h| truth.iter().any(|&t| t.to_string() == h.id.as_str())).count();
            }
            rates.push(queries.len() as f64 / start.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        Ok((found as f64 / (queries.len() * K) as f64, rates[1]))
    };
    for collection in ["full", "grow"] {
        let (recall, qps) = measure(&tenant, collection)?;
        let status = tenant.graph_status(collection)?;
        println!(
            "{collection}: recall@10 {recall:.3}, {qps:.0} queries/s (one thread, ef 64, median of 3; {})",
            brief(&status)
        );
    }

    // 3. Churn: a quarter rewritten, then the purge.
    let quarter = base.len() / 4;
    let start = Instant::now();
    write(&tenant, "grow", 0..quarter)?;
    let status = settle(&tenant, "grow", start)?;
    println!(
        "churn: {quarter} points rewritten, jobs done {:.1} s after the first write ({})",
        start.elapsed().as_secs_f64(),
        brief(&status)
    );
    let (recall, qps) = measure(&tenant, "grow")?;
    println!("grow after churn: recall@10 {recall:.3}, {qps:.0} queries/s");

    drop(tenant);
    drop(db);
    let db = data.open(DEFAULT_GRAPH_THRESHOLD)?;
    let tenant = db.tenant(&bench_scope(&db, &name)?)?;
    let start = Instant::now();
    tenant.search("grow", rows[0], K)?;
    println!(
        "grow after a restart: first query {:.0} ms ({})",
        start.elapsed().as_secs_f64() * 1000.0,
        brief(&tenant.graph_status("grow")?)
    );
    Ok(())
}

/// Waits until no background job runs and every segment is saved, printing each change of the
/// collection's shape with the time since `start`.
fn settle(tenant: &Tenant<'_>, collection: &str, start: Instant) -> Result<GraphStatus> {
    let mut last = None;
    loop {
        let status = tenant.graph_status(collection)?;
        let shape =
            (status.segments, status.graph_points, status.delta_points, status.tombstones, status.building);
        if last != Some(shape) {
            println!("  {:6.1} s  {}", start.elapsed().as_secs_f64(), brief(&status));
            last = Some(shape);
        }
        if !status.building && (status.segments == 0 || status.snapshot_saved) {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn brief(status: &GraphStatus) -> String {
    format!(
        "{} segment(s) with {} points and {} tombstones, {} in the delta{}",
        status.segments,
        status.graph_points,
        status.tombstones,
        status.delta_points,
        if status.building { ", job running" } else { "" }
    )
}
