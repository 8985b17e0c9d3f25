//! What a tenant's tier costs its writes: one tenant in each tier (partitioned, shared, dedicated)
//! of one database, the same small upserts to each, alternated round by round so that all three see
//! the same machine. Every write carries its access event (as the server's do), so a dedicated
//! tenant's write commits in two RocksDB instances (`engine/dedicated.rs`: its records with an
//! intent, then the event in the main instance, then the intent deleted) where the others commit one
//! batch. Prints the median latency of an upsert of 1 point and of 100 points in each tier, and each
//! tier's ratio to the partitioned one.
//!
//! ```text
//! . scripts/env.sh && cargo run -p bulkhead-benches --example tier_writes --release
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

mod common;

use anyhow::Result;
use bulkhead_query::{DocId, Metric, NewPoint, Placement, TenantName};
use common::{TempDatabase, bench_scope};
use std::time::Instant;

const ROUNDS: usize = 20;
const SINGLES_PER_ROUND: usize = 100;
const BATCHES_PER_ROUND: usize = 5;
const DIM: usize = 384;

fn point(tier: usize, n: usize) -> Result<NewPoint> {
    let vector = (0..DIM).map(|j| ((n * 31 + j * 7 + tier) % 97) as f32 / 97.0 + 0.01).collect();
    Ok(NewPoint::new(DocId::new(format!("p{n}"))?, vector, "a short text of the kind a chunk carries"))
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() -> Result<()> {
    let data = TempDatabase::new()?;
    // No graph is built: the write path alone is measured.
    let db = data.open(usize::MAX)?;
    let tiers = [Placement::OwnColumnFamily, Placement::Shared, Placement::Dedicated];
    let mut tenants = Vec::new();
    for tier in tiers {
        let name = TenantName::new(tier.name())?;
        db.operator().create_tenant_in(&name, tier)?;
        let tenant = db.tenant(&bench_scope(&db, &name)?)?;
        tenant.create_collection("docs", DIM, Metric::Cosine)?;
        tenants.push(tenant);
    }
    let (mut singles, mut batches) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
    let mut next = 0;
    for _ in 0..ROUNDS {
        for (t, tenant) in tenants.iter().enumerate() {
            for _ in 0..SINGLES_PER_ROUND {
                let p = [point(t, next)?];
                next += 1;
                let started = Instant::now();
                tenant.upsert("docs", &p)?;
                singles[t].push(started.elapsed().as_secs_f64() * 1e6);
            }
            for _ in 0..BATCHES_PER_ROUND {
                let batch = (0..100).map(|i| point(t, next + i)).collect::<Result<Vec<_>>>()?;
                next += 100;
                let started = Instant::now();
                tenant.upsert("docs", &batch)?;
                batches[t].push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{ROUNDS} rounds, {DIM} dimensions, durability: process (the default); load average {}",
        load.trim()
    );
    println!("{:>12} {:>14} {:>8} {:>16} {:>8}", "tier", "1 point µs", "ratio", "100 points µs", "ratio");
    let (base_one, base_hundred) = (median(singles[0].clone()), median(batches[0].clone()));
    for (t, tier) in tiers.iter().enumerate() {
        let (one, hundred) = (median(singles[t].clone()), median(batches[t].clone()));
        println!(
            "{:>12} {:>14.1} {:>8.2} {:>16.1} {:>8.2}",
            tier.name(),
            one,
            one / base_one,
            hundred,
            hundred / base_hundred
        );
    }
    Ok(())
}
