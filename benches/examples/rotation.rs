//! How long the key operations of the operations runbook take, on debian-minilm's 61,666 vectors
//! (one collection, 123,332 sealed records) and on a thousand small tenants: a tenant-key rotation
//! driven in steps, with the latency of searches and writes running between the steps; an online
//! master-key rotation; a tenant deletion.
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example rotation --release [DATASET_DIR]
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

use anyhow::{Context, Result};
use bulkhead_index::fvecs::read_fvecs;
use bulkhead_query::{Database, DocId, MasterKey, Metric, NewPoint, StoreOptions, TenantName};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Records re-sealed per rotation step (one write batch, one hold of the tenant's write lock).
const STEP: usize = 256;

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../shared/datasets/debian-minilm"));
    let base = read_fvecs(&dir.join("base.fvecs"), None).context("base.fvecs")?;
    let queries = read_fvecs(&dir.join("query.fvecs"), None).context("query.fvecs")?;
    let data = tempfile::tempdir()?;
    let db = Database::open(&data.path().join("db"), MasterKey::generate(), StoreOptions::default())?
        .with_graph_threshold(usize::MAX);
    let name = TenantName::new("bench")?;
    db.operator().create_tenant(&name)?;
    let scope = db.operator().trusted_host_scope(&name, "benchmark")?;
    let tenant = db.tenant(&scope)?;
    tenant.create_collection("docs", base.dim(), Metric::Cosine)?;
    let rows: Vec<&[f32]> = base.rows().collect();
    for (c, chunk) in rows.chunks(1000).enumerate() {
        let points = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| Ok(NewPoint::new(DocId::new((c * 1000 + j).to_string())?, v.to_vec(), "some text")))
            .collect::<Result<Vec<_>>>()?;
        tenant.upsert("docs", &points)?;
    }
    let query = queries.row(0).context("query")?;
    tenant.search("docs", query, 10)?;

    // Foreground latency alone, then between rotation steps.
    let foreground = |n: usize| -> Result<(Duration, Duration)> {
        let (mut searches, mut writes) = (Vec::new(), Vec::new());
        for i in 0..n {
            let started = Instant::now();
            tenant.search("docs", queries.row(i % queries.len()).context("query")?, 10)?;
            searches.push(started.elapsed());
            let started = Instant::now();
            let v = rows[i % rows.len()].to_vec();
            tenant.upsert("docs", &[NewPoint::new(DocId::new(format!("w{i}"))?, v, "w")])?;
            writes.push(started.elapsed());
        }
        Ok((median(&mut searches), median(&mut writes)))
    };
    let (search_alone, write_alone) = foreground(200)?;
    let started = Instant::now();
    let first = db.operator().rotate_tenant_key(&name)?;
    let uid = db.operator().tenant_info(&name)?.uid;
    let (mut steps, mut step_times) = (0, Vec::new());
    let (mut search_during, mut write_during) = (Vec::new(), Vec::new());
    loop {
        let step_started = Instant::now();
        let progress = db.operator().rotation_step(uid, STEP)?.context("rotation running")?;
        step_times.push(step_started.elapsed());
        steps += 1;
        if progress.finished {
            break;
        }
        // One search and one write between steps, as a busy tenant would send them.
        let (s, w) = foreground(1)?;
        search_during.push(s);
        write_during.push(w);
    }
    let total = started.elapsed();
    println!(
        "tenant-key rotation of {} records: {:.1} s in {steps} steps of {STEP} (median step {:.1} ms, max {:.1} ms)",
        first.total,
        total.as_secs_f64(),
        median(&mut step_times).as_secs_f64() * 1e3,
        step_times.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    println!(
        "foreground medians: search {:.2} ms alone, {:.2} ms during; write {:.2} ms alone, {:.2} ms during",
        search_alone.as_secs_f64() * 1e3,
        median(&mut search_during).as_secs_f64() * 1e3,
        write_alone.as_secs_f64() * 1e3,
        median(&mut write_during).as_secs_f64() * 1e3,
    );
    drop(tenant);

    for i in 0..1000 {
        db.operator().create_tenant(&TenantName::new(format!("small{i}"))?)?;
    }
    let started = Instant::now();
    let version = db.operator().rotate_master_key(MasterKey::generate())?;
    println!(
        "master-key rotation to version {version} over 1,001 tenants (2 wrapped keys each, plus the registry's): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let started = Instant::now();
    db.delete_tenant(&name)?;
    println!(
        "tenant deletion (keys destroyed and synced, column family of 123k records dropped): {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// The package's directory, as cargo gives it when it runs this binary (see `collection_search`).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
