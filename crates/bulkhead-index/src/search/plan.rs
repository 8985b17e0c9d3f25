//! Which way a search finds its candidates: the caller's `Strategy`, the `Plan` a search ran, and
//! the `Planner`'s thresholds between a graph walk and an exact scan.

/// How a search should find its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Let the planner choose (see [`Planner`]).
    #[default]
    Auto,
    /// Walk the graph (still falling back to an exact scan if it finds fewer than `k` results).
    Graph,
    /// Scan every visible vector exactly: the ground truth, used by tests and benchmarks.
    Exact,
}

/// The plan a search actually ran, for tests, metrics and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Plan {
    /// Nothing to search: `k == 0` or no visible vectors.
    #[default]
    Empty,
    /// An exact scan of the whole arena (small segments, or [`Strategy::Exact`]).
    ExactAll,
    /// An exact scan of the allowed ids only (small allowed sets).
    ExactAllowed,
    /// A graph walk.
    Graph,
    /// A graph walk that found fewer than `k` results, followed by an exact scan.
    GraphThenExact,
}

/// The planner's thresholds, chosen by measurement on debian-minilm (384-d, M = 16): the segment
/// size with the `hnsw_recall` example of `bulkhead-benches`, the filtered ones with the filtered
/// sections of `bulkhead bench`.
#[derive(Debug, Clone, Copy)]
pub struct Planner;

impl Planner {
    /// Segments with at most this many vectors are always scanned exactly: below it one
    /// `distances_all` pass over contiguous rows beats the graph walk's scattered reads (measured:
    /// exact 25k vs graph 19k queries/s at 1,000 vectors, 7k vs 12k at 2,000).
    pub const EXACT_SEGMENT_MAX: usize = 1_500;
    /// A filtered search scans the allowed set exactly when its estimated size is at most
    /// `max(FILTER_EXACT_EF_FACTOR · ef, FILTER_EXACT_FRACTION · len)`. Measured: scanning 619
    /// allowed ids (1%) runs at ~40k queries/s with exact recall, while the filtered walk at 1%
    /// loses connectivity (recall 0.85 at ef = 64); scanning 6,128 ids (10%) runs at ~1.5k
    /// queries/s against ~5k for the walk at ef = 32 (random allowed sets, `hnsw_recall`).
    pub const FILTER_EXACT_EF_FACTOR: usize = 16;
    /// See [`FILTER_EXACT_EF_FACTOR`](Self::FILTER_EXACT_EF_FACTOR). Allowed sets that follow
    /// the data (a principal's ACL groups: the Debian sections of debian-minilm, the
    /// `acl_search` example) are harder for the walk than random ones: at 3.7–6.7% of the corpus
    /// visible it reached recall@10 0.943–0.975 at ef = 64 in 520–730 µs a query end to end,
    /// while the exact scan of 1,609 ids took 358 µs with exact recall. 0.03 left those sets to
    /// the walk; 0.07 (4,300 of 61,666 ids) scans them.
    pub const FILTER_EXACT_FRACTION: f64 = 0.07;

    /// Returns whether an allowed set of about `allowed` ids out of `len` should be scanned
    /// exactly at beam width `ef`.
    pub fn prefers_exact_filtered(allowed: usize, len: usize, ef: usize) -> bool {
        let by_ef = Self::FILTER_EXACT_EF_FACTOR.saturating_mul(ef);
        let by_fraction = (len as f64 * Self::FILTER_EXACT_FRACTION) as usize;
        allowed <= by_ef.max(by_fraction)
    }
}
