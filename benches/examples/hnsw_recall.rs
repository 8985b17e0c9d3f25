//! Exact scan against graph walk on small segments of debian-minilm: how
//! `Planner::EXACT_SEGMENT_MAX` was chosen.
//!
//! For segments of the first 500 to 8,000 base vectors (M = 16, ef_construction = 200,
//! `Metric::UnitDot`), prints single-thread queries/s of the exact scan and of the graph walk at
//! ef = 64, and the walk's recall@10 against the scan. Recall, throughput and memory of a whole
//! dataset, filtered and not, are measured by `bulkhead bench` (see `docs/BENCHMARKS.md`); both use
//! `bulkhead_index::eval`.
//!
//! ```text
//! CARGO_TARGET_DIR=... cargo run -p bulkhead-benches --example hnsw_recall --release [DATASET_DIR]
//! ```
#![expect(clippy::print_stdout, reason = "a harness whose output is its report")]

use std::path::PathBuf;

use anyhow::{Context, Result};
use bulkhead_index::eval;
use bulkhead_index::fvecs::read_fvecs;
use bulkhead_index::{FrozenSegment, HnswParams, Metric, SearchParams, Strategy};

const K: usize = 10;

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../shared/datasets/debian-minilm"));
    let base = read_fvecs(&dir.join("base.fvecs"), Some(8_000)).context("base.fvecs")?;
    let queries = read_fvecs(&dir.join("query.fvecs"), None).context("query.fvecs")?;
    let queries: Vec<&[f32]> = queries.rows().collect();
    println!("small segments: exact scan vs graph walk (ef = 64, recall vs exact, 1 thread, median of 3)");
    println!("{:>7} {:>12} {:>12} {:>8}", "n", "exact q/s", "graph q/s", "recall");
    for n in [500, 1_000, 2_000, 4_000, 8_000] {
        let small = FrozenSegment::build_from_rows(
            base.dim(),
            base.rows().take(n),
            Metric::UnitDot,
            HnswParams::default(),
        )?;
        let truth = eval::exact_truth(&small, &queries, K, None, 1)?;
        let exact = SearchParams::new(K, 64).with_strategy(Strategy::Exact);
        let exact = eval::measure(&small, &queries, &truth, &exact, None, 1, 3)?;
        let graph = SearchParams::new(K, 64).with_strategy(Strategy::Graph);
        let graph = eval::measure(&small, &queries, &truth, &graph, None, 1, 3)?;
        println!("{n:>7} {:>12.0} {:>12.0} {:>8.4}", exact.median_qps(), graph.median_qps(), graph.recall);
    }
    Ok(())
}

/// The package's directory, as cargo gives it when it runs this binary. The compile-time value is
/// only a fallback: a target directory shared between checkouts can hold a binary built in another
/// one, and cargo reuses it when the sources match.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}
