//! The two graph builders side by side on one dataset: build time (wall and CPU), level-0 degree,
//! and recall@10, distances per query and one-thread queries/s per ef.
//!
//! ```text
//! CARGO_TARGET_DIR=... cargo run -p bulkhead-benches --example builders --release -- DIR [N]
//! ```
//! `DIR` holds base.fvecs and query.fvecs (unit vectors: the dot metric); the truth is an exact
//! scan of the first `N` base vectors (default 20,000). A third argument (`native` or `hnsw_rs`)
//! runs that builder alone.
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bulkhead_distance::VectorArena;
use bulkhead_index::eval;
use bulkhead_index::fvecs::read_fvecs;
use bulkhead_index::{BuildOptions, Builder, FrozenSegment, HnswParams, InternalId, Metric, SearchParams};

const K: usize = 10;

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(args.next().context("usage: builders DIR [N]")?);
    let n: usize = args.next().map_or(Ok(20_000), |n| n.to_string_lossy().parse()).context("N")?;
    let only = args.next().map(|name| name.to_string_lossy().into_owned());
    let base = read_fvecs(&dir.join("base.fvecs"), Some(n)).context("base.fvecs")?;
    let queries = read_fvecs(&dir.join("query.fvecs"), Some(1_000)).context("query.fvecs")?;
    let queries: Vec<&[f32]> = queries.rows().collect();
    let mut truth = None;
    for builder in [Builder::Native, Builder::HnswRs] {
        if only.as_deref().is_some_and(|name| name != builder.name()) {
            continue;
        }
        let mut arena = VectorArena::with_capacity(base.dim(), base.len())?;
        for row in base.rows() {
            arena.push(row)?;
        }
        let cpu = cpu_seconds();
        let started = Instant::now();
        let options = BuildOptions::new().with_builder(builder);
        let segment = FrozenSegment::build_with_options(
            arena,
            Metric::UnitDot,
            HnswParams::default(),
            options,
            |_, _| {},
        )?;
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let truth = match &truth {
            Some(truth) => truth,
            None => truth.insert(eval::exact_truth(&segment, &queries, K, None, 2)?),
        };
        let degrees: Vec<usize> = (0..segment.len() as u32)
            .map(|id| segment.base_neighbours(InternalId::new(id)).count())
            .collect();
        let mean = degrees.iter().sum::<usize>() as f64 / degrees.len() as f64;
        let full = degrees.iter().filter(|&&d| d == 2 * HnswParams::default().m).count();
        println!(
            "{}: build {wall:.1} s wall, {cpu:.1} s CPU; level-0 degree mean {mean:.1}, {full} full; max level {}",
            builder.name(),
            segment.max_level()
        );
        for ef in [16, 32, 64, 128] {
            let m = eval::measure(&segment, &queries, truth, &SearchParams::new(K, ef), None, 1, 1)?;
            println!(
                "  ef {ef:>4}: recall {:.4}  dist/q {:>6.0}  q/s {:>7.0}",
                m.recall,
                m.distances_per_query,
                m.median_qps()
            );
        }
    }
    Ok(())
}

/// Process CPU time (every thread) from `/proc/self/stat`, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |at| &stat[at + 1..]);
    let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}
