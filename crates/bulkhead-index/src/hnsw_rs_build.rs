//! The hnsw_rs construction ([`Builder::HnswRs`](crate::Builder)), compiled only with the `hnsw-rs`
//! feature: hnsw_rs builds its own structure in parallel through a distance adapter over our kernels,
//! and the graph is read out through its public API into our [`Graph`]. hnsw_rs is an implementation
//! detail of this file: nothing else in the crate names it, and its structure is dropped as soon as
//! the graph has been extracted. It is kept to measure our own builder against; the server binary is
//! built without it (hnsw_rs ends the process on some inputs).

use bulkhead_distance::{Kernels, Metric, VectorArena};
use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::hnsw::Hnsw;

use crate::IndexError;
use crate::construct::{
    Executor, Graph, HnswParams, MAX_LAYERS, MIN_PROGRESS_CHUNK, NO_NEIGHBOUR, PROGRESS_STEPS, UpperLevel,
};

/// The hnsw_rs distance: our kernels, with NaN (impossible for the finite rows an arena holds)
/// mapped to the largest distance so that hnsw_rs, which panics on NaN, never sees one.
struct KernelDistance {
    kernels: &'static Kernels,
    metric: Metric,
}

impl Distance<f32> for KernelDistance {
    #[inline]
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        match self.kernels.distance(self.metric, a, b) {
            Ok(distance) if !distance.is_nan() => distance,
            _ => f32::MAX,
        }
    }
}

/// Builds the graph with hnsw_rs, in parallel, and extracts it.
pub(crate) fn build(
    arena: &VectorArena,
    metric: Metric,
    params: HnswParams,
    executor: &Executor,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Graph, IndexError> {
    let n = arena.len();
    let rows: Vec<(&[f32], usize)> = arena.iter().zip(0..n).collect();
    let distance = KernelDistance { kernels: Kernels::active(), metric };
    let hnsw = Hnsw::<f32, KernelDistance>::new(params.m, n, MAX_LAYERS, params.ef_construction, distance);
    // Inserting in chunks lets the caller see progress between them; each chunk is still inserted
    // in parallel, and a chunk boundary only waits for the chunk's slowest insertion.
    let chunk = (n / PROGRESS_STEPS).max(MIN_PROGRESS_CHUNK);
    let mut done = 0;
    for part in rows.chunks(chunk) {
        executor.install(|| hnsw.parallel_insert_slice(&part.to_vec()));
        done += part.len();
        progress(done, n);
    }
    extract(&hnsw, n, params.m)
}

/// Copies hnsw_rs's graph into a [`Graph`], keeping at most `2m` level-0 and `m` upper-level
/// neighbours per node, dropping self-loops, duplicates and ids out of range, and keeping only
/// upper-level edges whose target is on that level.
fn extract(hnsw: &Hnsw<'_, f32, KernelDistance>, n: usize, m: usize) -> Result<Graph, IndexError> {
    let stride0 = 2 * m;
    let mut level0 = vec![NO_NEIGHBOUR; n * stride0];
    let mut levels = vec![0u8; n];
    // Per node, its upper-level lists (index 0 = level 1), filled in a second pass.
    let mut upper_lists: Vec<(u32, Vec<Vec<u32>>)> = Vec::new();
    let mut seen = vec![false; n];
    for point in hnsw.get_point_indexation() {
        let id = point.get_origin_id();
        if id >= n || seen[id] {
            return Err(IndexError::BuildFailed);
        }
        seen[id] = true;
        let level = usize::from(point.get_point_id().0).min(MAX_LAYERS - 1);
        levels[id] = level as u8;
        let neighbourhood = point.get_neighborhood_id();
        let mut lists = neighbourhood.iter().map(|layer| {
            let mut kept: Vec<u32> = Vec::with_capacity(layer.len());
            for neighbour in layer {
                let target = neighbour.get_origin_id();
                if target < n && target != id && !kept.contains(&(target as u32)) {
                    kept.push(target as u32);
                }
            }
            kept
        });
        if let Some(list) = lists.next() {
            let entries = &mut level0[id * stride0..(id + 1) * stride0];
            for (entry, target) in entries.iter_mut().zip(list) {
                *entry = target;
            }
        }
        if level > 0 {
            upper_lists.push((id as u32, lists.take(level).collect()));
        }
    }
    if seen.iter().any(|&present| !present) {
        return Err(IndexError::BuildFailed);
    }
    let max_level = levels.iter().copied().max().map_or(0, usize::from);
    // The entry point: the lowest id on the top level (hnsw_rs keeps the first node to reach the
    // top; any node there serves, since the top level is connected through its own lists).
    let entry =
        levels.iter().position(|&level| usize::from(level) == max_level).map_or(NO_NEIGHBOUR, |id| id as u32);
    upper_lists.sort_unstable_by_key(|&(id, _)| id);
    let mut upper = Vec::with_capacity(max_level);
    for level in 1..=max_level {
        let nodes: Vec<u32> = upper_lists
            .iter()
            .filter(|(id, _)| usize::from(levels[*id as usize]) >= level)
            .map(|&(id, _)| id)
            .collect();
        let mut links = vec![NO_NEIGHBOUR; nodes.len() * m];
        for (position, &id) in nodes.iter().enumerate() {
            let Ok(index) = upper_lists.binary_search_by_key(&id, |&(node, _)| node) else {
                continue;
            };
            let Some(list) = upper_lists[index].1.get(level - 1) else {
                continue;
            };
            let targets =
                list.iter().copied().filter(|&target| usize::from(levels[target as usize]) >= level);
            for (entry, target) in links[position * m..(position + 1) * m].iter_mut().zip(targets) {
                *entry = target;
            }
        }
        upper.push(UpperLevel { nodes, links });
    }
    Ok(Graph { m, level0, upper, entry })
}
