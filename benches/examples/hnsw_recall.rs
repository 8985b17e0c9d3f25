//! Recall and throughput harness for `bulkhead-index` on debian-minilm (61,666 × 384, MiniLM).
//!
//! Builds one segment over every base vector (M = 16, ef_construction = 200, `Metric::Dot`), then
//! prints the build time, bytes per vector, recall@10 against `gt.ivecs` and single-thread
//! queries/s at ef = 16, 32, 64, 128, and the same for random allowed sets of 1%, 10% and 50%
//! (recall against an exact scan of the allowed set). The last section times exact scans against
//! graph walks on small segments, which is how `Planner::EXACT_SEGMENT_MAX` was chosen.
//!
//! ```text
//! CARGO_TARGET_DIR=... cargo run -p bulkhead-benches --example hnsw_recall --release [DATASET_DIR]
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

mod common;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use bulkhead_index::{
    FrozenSegment, HnswParams, IdSet, InternalId, Metric, Plan, SearchParams, SearchScratch, Strategy,
};
use common::Dataset;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const K: usize = 10;

fn main() -> Result<()> {
    let Dataset { base, queries, gt, .. } = Dataset::load()?;
    let queries: Vec<&[f32]> = queries.rows().collect();
    println!(
        "debian-minilm: {} base × {}, {} queries, isa {}",
        base.len(),
        base.dim(),
        queries.len(),
        bulkhead_distance::active_isa()
    );

    // `HNSW_SEGMENT_CACHE=path` reuses a segment serialised by an earlier run (for profiling the
    // search without rebuilding); without it the build is timed.
    let cache = std::env::var_os("HNSW_SEGMENT_CACHE").map(PathBuf::from);
    let segment = match cache.as_deref().filter(|path| path.is_file()) {
        Some(path) => {
            let started = Instant::now();
            let segment = FrozenSegment::from_bytes(&std::fs::read(path)?)?;
            println!("loaded {} in {:.2} s", path.display(), started.elapsed().as_secs_f64());
            segment
        }
        None => {
            let started = Instant::now();
            let segment =
                FrozenSegment::build_from_rows(base.dim(), base.rows(), Metric::Dot, HnswParams::default())?;
            println!(
                "build: {:.1} s on {} threads",
                started.elapsed().as_secs_f64(),
                std::thread::available_parallelism().map_or(1, usize::from),
            );
            if let Some(path) = &cache {
                std::fs::write(path, segment.to_bytes())?;
            }
            segment
        }
    };
    println!("bytes per vector {:.0} (max level {})", segment.bytes_per_vector(), segment.max_level());
    let sections = std::env::var("HNSW_SECTIONS").unwrap_or_else(|_| "ufs".to_owned());

    let mut scratch = SearchScratch::new();
    if !sections.contains('u') {
        return filtered_and_small(&segment, &base, &queries, &sections, &mut scratch);
    }
    println!("\nunfiltered (recall@10 vs gt.ivecs, 1 thread)");
    println!("{:>6} {:>8} {:>10} {:>12}", "ef", "recall", "queries/s", "distances/q");
    let truth: Vec<Vec<u32>> =
        (0..queries.len()).map(|i| gt.row(i).map(|row| row[..K].to_vec()).unwrap_or_default()).collect();
    for ef in [16, 32, 64, 128] {
        let params = SearchParams::new(K, ef).with_strategy(Strategy::Graph);
        let (recall, qps, dists, _) = run(&segment, &queries, &truth, &params, None, &mut scratch)?;
        println!("{ef:>6} {recall:>8.4} {qps:>10.0} {dists:>12.0}");
    }

    filtered_and_small(&segment, &base, &queries, &sections, &mut scratch)
}

/// The filtered (`f` in `sections`) and small-segment (`s`) sections.
fn filtered_and_small(
    segment: &FrozenSegment,
    base: &bulkhead_index::fvecs::Fvecs,
    queries: &[&[f32]],
    sections: &str,
    scratch: &mut SearchScratch,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(0x5eed_1dc5);
    let fractions: &[f64] = if sections.contains('f') { &[0.01, 0.10, 0.50] } else { &[] };
    for &fraction in fractions {
        let filter = IdSet::from_ids(
            segment.len(),
            (0..segment.len() as u32).filter(|_| rng.gen_bool(fraction)).map(InternalId::new),
        )?;
        let exact = SearchParams::new(K, K).with_strategy(Strategy::Exact);
        let truth: Vec<Vec<u32>> = queries
            .iter()
            .map(|q| {
                segment
                    .search_filtered(q, &exact, &filter, scratch)
                    .map(|hits| hits.iter().map(|hit| hit.id.get()).collect())
            })
            .collect::<Result<_, _>>()?;
        println!(
            "\nfiltered {:.0}% ({} allowed; recall@10 vs exact scan of the allowed set)",
            fraction * 100.0,
            filter.len()
        );
        println!(
            "{:>6} {:>8} {:>8} {:>10} {:>12}  plan",
            "ef", "strategy", "recall", "queries/s", "distances/q"
        );
        for ef in [16, 32, 64, 128] {
            for strategy in [Strategy::Auto, Strategy::Graph] {
                let params = SearchParams::new(K, ef).with_strategy(strategy);
                let (recall, qps, dists, plan) =
                    run(segment, queries, &truth, &params, Some(&filter), scratch)?;
                println!(
                    "{ef:>6} {:>8} {recall:>8.4} {qps:>10.0} {dists:>12.0}  {plan:?}",
                    format!("{strategy:?}")
                );
            }
        }
    }

    if !sections.contains('s') {
        return Ok(());
    }
    println!("\nsmall segments: exact scan vs graph walk (ef = 64, recall vs exact)");
    println!("{:>7} {:>12} {:>12} {:>8}", "n", "exact q/s", "graph q/s", "recall");
    for n in [500, 1_000, 2_000, 4_000, 8_000] {
        let small = FrozenSegment::build_from_rows(
            base.dim(),
            base.rows().take(n),
            Metric::Dot,
            HnswParams::default(),
        )?;
        let exact = SearchParams::new(K, 64).with_strategy(Strategy::Exact);
        let truth: Vec<Vec<u32>> = queries
            .iter()
            .map(|q| {
                small.search(q, &exact, scratch).map(|hits| hits.iter().map(|hit| hit.id.get()).collect())
            })
            .collect::<Result<_, _>>()?;
        let (_, exact_qps, _, _) = run(&small, queries, &truth, &exact, None, scratch)?;
        let graph = SearchParams::new(K, 64).with_strategy(Strategy::Graph);
        let (recall, graph_qps, _, _) = run(&small, queries, &truth, &graph, None, scratch)?;
        println!("{n:>7} {exact_qps:>12.0} {graph_qps:>12.0} {recall:>8.4}");
    }
    Ok(())
}

/// Runs every query once untimed (warm-up), then three timed passes, and returns recall@10, the
/// best pass's queries per second (the machine is shared, so the fastest pass is the one least
/// disturbed), mean distances computed per query, and the last plan.
fn run(
    segment: &FrozenSegment,
    queries: &[&[f32]],
    truth: &[Vec<u32>],
    params: &SearchParams,
    filter: Option<&IdSet>,
    scratch: &mut SearchScratch,
) -> Result<(f64, f64, f64, Plan)> {
    let mut found = 0usize;
    let mut expected = 0usize;
    let mut distances = 0usize;
    let mut elapsed = f64::INFINITY;
    for pass in 0..4 {
        let started = Instant::now();
        for (query, truth) in queries.iter().zip(truth) {
            let hits = match filter {
                Some(f) => segment.search_filtered(query, params, f, scratch)?,
                None => segment.search(query, params, scratch)?,
            };
            if pass == 1 {
                found += hits.iter().filter(|h| truth.contains(&h.id.get())).count();
                expected += truth.len().min(K);
                distances += scratch.last_distance_count();
            }
        }
        if pass > 0 {
            elapsed = elapsed.min(started.elapsed().as_secs_f64());
        }
    }
    let n = queries.len() as f64;
    Ok((found as f64 / expected.max(1) as f64, n / elapsed, distances as f64 / n, scratch.last_plan()))
}
