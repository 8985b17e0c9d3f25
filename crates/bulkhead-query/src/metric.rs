//! The one mapping from a collection's metric (the storage crate's `Metric`, which ranks by the
//! inner product for `Dot`) to the distance kernels' (whose `Dot` is `1 - a·b` for unit vectors):
//! which kernel scores a collection's rows, the ranking distance of one row, and the score a hit
//! reports.

use crate::{QueryError, Result};
use bulkhead_distance::Kernels;
use bulkhead_storage::Metric;

/// The kernel metric that ranks a collection of `metric` (smaller is closer), and that its graphs
/// are built over; `None` for dot collections, which rank by the raw inner product, stay exact, and
/// are never given a graph (the kernels' dot distance assumes unit vectors).
pub(crate) fn kernel_metric(metric: Metric) -> Option<bulkhead_distance::Metric> {
    match metric {
        Metric::Cosine => Some(bulkhead_distance::Metric::Cosine),
        Metric::L2 => Some(bulkhead_distance::Metric::L2),
        Metric::Dot => None,
    }
}

/// The ranking distance of one row (see `FlatIndex::top_k`): what the batch scan computes, for a
/// single vector.
pub(crate) fn ranking_distance(metric: Metric, query: &[f32], row: &[f32]) -> Result<f32> {
    let kernels = Kernels::active();
    match kernel_metric(metric) {
        Some(kernel) => kernels.distance(kernel, query, row),
        None => kernels.dot(query, row).map(|d| -d),
    }
    .map_err(QueryError::Kernel)
}

/// The score reported to clients for a ranking distance: similarity for cosine and dot, distance
/// for L2.
pub(crate) fn score(metric: Metric, distance: f32) -> f32 {
    match metric {
        Metric::Dot => -distance,
        Metric::L2 => distance.sqrt(),
        Metric::Cosine => 1.0 - distance,
    }
}
