//! Graph construction: the parameters, the choice of builder, the thread pool a build runs on,
//! and the flat [`Graph`] every builder produces.
//!
//! Two builders produce the same [`Graph`]: our own ([`Builder::Native`], in `native.rs`), which
//! inserts in parallel straight into flat adjacency arrays, and hnsw_rs ([`Builder::HnswRs`]),
//! which builds its own structure in parallel through a distance adapter over our kernels and is
//! then read out through its public API. hnsw_rs is an implementation detail of this file:
//! nothing else in the crate names it, and its structure is dropped as soon as the graph has been
//! extracted.

use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};

use bulkhead_distance::{Kernels, Metric, VectorArena};
use hnsw_rs::anndists::dist::distances::Distance;
use hnsw_rs::hnsw::Hnsw;

use crate::IndexError;

/// Marks an unused adjacency slot; valid ids are below `u32::MAX` because an arena holds at most
/// `u32::MAX` rows.
pub(crate) const NO_NEIGHBOUR: u32 = u32::MAX;

/// The most layers a graph has (hnsw_rs's `NB_LAYER_MAX`; the native builder caps its level draws
/// to match), so the most upper levels a graph has is one less.
pub(crate) const MAX_LAYERS: usize = 16;

/// HNSW construction parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HnswParams {
    /// Neighbours kept per node on the upper levels; level 0 keeps `2·m`. Supported: `4..=64`.
    pub m: usize,
    /// Beam width while inserting. Supported: `m..=2000`.
    pub ef_construction: usize,
}

impl Default for HnswParams {
    /// `m = 16`, `ef_construction = 200`: the values the benchmarks compare at.
    fn default() -> Self {
        Self { m: 16, ef_construction: 200 }
    }
}

impl HnswParams {
    /// The supported range of `m`.
    pub const M_RANGE: std::ops::RangeInclusive<usize> = 4..=64;
    /// The largest supported `ef_construction`.
    pub const MAX_EF_CONSTRUCTION: usize = 2000;

    /// Checks both parameters against their supported ranges.
    ///
    /// # Errors
    ///
    /// [`IndexError::InvalidParams`] naming the rule that was broken.
    pub fn validate(&self) -> Result<(), IndexError> {
        if !Self::M_RANGE.contains(&self.m) {
            return Err(IndexError::InvalidParams { reason: "m must be in 4..=64" });
        }
        if self.ef_construction < self.m || self.ef_construction > Self::MAX_EF_CONSTRUCTION {
            return Err(IndexError::InvalidParams { reason: "ef_construction must be in m..=2000" });
        }
        Ok(())
    }
}

/// Which construction builds a segment's graph. Both produce the same kind of frozen segment,
/// searched by the same loop; they differ in build time, build memory and the edges they choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Builder {
    /// Our own parallel construction (`native.rs`): writes straight into the segment's flat
    /// adjacency, deterministic for a given seed on one thread.
    #[default]
    Native,
    /// hnsw_rs 0.3.5's parallel insertion, read out into the segment's arrays; kept to measure
    /// against.
    HnswRs,
}

impl Builder {
    /// Returns the name used in reports and on the command line: `"native"` or `"hnsw_rs"`.
    pub fn name(self) -> &'static str {
        match self {
            Builder::Native => "native",
            Builder::HnswRs => "hnsw_rs",
        }
    }
}

/// How a graph is built: the builder, its threads and its seed. The defaults (`new`) are the
/// native builder on rayon's global pool (every core) with a fixed seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BuildOptions {
    /// Which construction runs.
    pub builder: Builder,
    /// Threads to build on: `None` for rayon's global pool (every core), `Some(1)` for the calling
    /// thread alone (the native builder is then deterministic), more for a pool of that size made
    /// for the build.
    pub threads: Option<NonZeroUsize>,
    /// Seed of the native builder's level draws (hnsw_rs draws its own).
    pub seed: u64,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildOptions {
    /// The seed of [`new`](Self::new).
    pub const DEFAULT_SEED: u64 = 0x6275_6c6b_6865_6164;

    /// Returns the default options: [`Builder::Native`], every core, [`DEFAULT_SEED`](Self::DEFAULT_SEED).
    pub const fn new() -> Self {
        Self { builder: Builder::Native, threads: None, seed: Self::DEFAULT_SEED }
    }

    /// Returns these options with `builder`.
    pub const fn with_builder(self, builder: Builder) -> Self {
        Self { builder, ..self }
    }

    /// Returns these options with `threads` (`None`: every core).
    pub const fn with_threads(self, threads: Option<NonZeroUsize>) -> Self {
        Self { threads, ..self }
    }

    /// Returns these options with `seed`.
    pub const fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }
}

/// Where a build's parallel work runs.
pub(crate) enum Executor {
    /// rayon's global pool.
    Global,
    /// A pool made for this build.
    Pool(rayon::ThreadPool),
}

impl Executor {
    /// Returns the executor for `threads` (see [`BuildOptions::threads`]).
    fn new(threads: Option<NonZeroUsize>) -> Result<Self, IndexError> {
        match threads {
            None => Ok(Self::Global),
            Some(threads) => rayon::ThreadPoolBuilder::new()
                .num_threads(threads.get())
                .thread_name(|index| format!("bulkhead-build-{index}"))
                .build()
                .map(Self::Pool)
                .map_err(|_| IndexError::BuildFailed),
        }
    }

    /// Returns how many threads the work runs on.
    pub(crate) fn threads(&self) -> usize {
        match self {
            Self::Global => rayon::current_num_threads(),
            Self::Pool(pool) => pool.current_num_threads(),
        }
    }

    /// Runs `work` with this executor's pool as the one rayon's parallel iterators use.
    pub(crate) fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        match self {
            Self::Global => work(),
            Self::Pool(pool) => pool.install(work),
        }
    }
}

/// The frozen, read-only HNSW graph over the ids `0..n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Graph {
    /// Upper-level degree bound; level 0 stores `2·m` slots per node.
    pub(crate) m: usize,
    /// Level-0 adjacency, `n · 2m` slots: node `i`'s neighbours are
    /// `level0[i·2m .. (i+1)·2m]`, closest first, padded with [`NO_NEIGHBOUR`] at the end.
    pub(crate) level0: Vec<u32>,
    /// Levels `1..=max_level`, lowest first.
    pub(crate) upper: Vec<UpperLevel>,
    /// Where every search starts: a node on the top level. Meaningless when `n == 0`.
    pub(crate) entry: u32,
}

/// One upper level in sparse form: the nodes present on it and their adjacency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UpperLevel {
    /// The ids present on this level, strictly increasing.
    pub(crate) nodes: Vec<u32>,
    /// `nodes.len() · m` slots: the neighbours of `nodes[j]` are `links[j·m .. (j+1)·m]`, padded
    /// with [`NO_NEIGHBOUR`]. Every neighbour is itself in `nodes`.
    pub(crate) links: Vec<u32>,
}

impl Graph {
    /// Returns an empty graph (no nodes).
    pub(crate) fn empty(m: usize) -> Self {
        Self { m, level0: Vec::new(), upper: Vec::new(), entry: NO_NEIGHBOUR }
    }

    /// Returns the number of nodes.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.level0.len() / self.stride0()
    }

    /// Returns the number of level-0 slots per node.
    #[inline]
    pub(crate) fn stride0(&self) -> usize {
        2 * self.m
    }

    /// Returns node `id`'s level-0 slots (neighbours, then padding).
    #[inline]
    pub(crate) fn neighbours0(&self, id: u32) -> &[u32] {
        let stride = self.stride0();
        let start = id as usize * stride;
        &self.level0[start..start + stride]
    }

    /// Returns the highest level (0 when there are no upper levels).
    #[inline]
    pub(crate) fn max_level(&self) -> usize {
        self.upper.len()
    }

    /// Returns node `id`'s slots on upper level `level` (1-based), or an empty slice if the node is
    /// not on that level.
    #[inline]
    pub(crate) fn neighbours_upper(&self, level: usize, id: u32) -> &[u32] {
        let Some(layer) = level.checked_sub(1).and_then(|index| self.upper.get(index)) else {
            return &[];
        };
        match layer.nodes.binary_search(&id) {
            Ok(position) => &layer.links[position * self.m..(position + 1) * self.m],
            Err(_) => &[],
        }
    }

    /// Returns the heap bytes of the adjacency.
    pub(crate) fn heap_bytes(&self) -> usize {
        let upper: usize =
            self.upper.iter().map(|layer| (layer.nodes.len() + layer.links.len()) * size_of::<u32>()).sum();
        self.level0.len() * size_of::<u32>() + upper
    }
}

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

/// How many times at most a build reports its progress.
pub(crate) const PROGRESS_STEPS: usize = 100;
/// The fewest rows inserted between two progress reports, so that small builds stay one parallel
/// batch.
pub(crate) const MIN_PROGRESS_CHUNK: usize = 1_000;

/// Builds the graph over every row of `arena` with the builder `options` names, calling
/// `progress(inserted, total)` on the calling thread after each chunk of insertions.
///
/// # Errors
///
/// [`IndexError::InvalidParams`] for parameters out of range (checked before any work);
/// [`IndexError::BuildFailed`] if the builder panics or breaks an invariant, or the build's thread
/// pool cannot be started.
pub(crate) fn build_graph(
    arena: &VectorArena,
    metric: Metric,
    params: HnswParams,
    options: BuildOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Graph, IndexError> {
    build_graph_with_fault(arena, metric, params, options, progress, None)
}

/// As [`build_graph`]; `fault` makes the native builder panic while inserting that node (tests).
pub(crate) fn build_graph_with_fault(
    arena: &VectorArena,
    metric: Metric,
    params: HnswParams,
    options: BuildOptions,
    progress: &mut dyn FnMut(usize, usize),
    fault: Option<u32>,
) -> Result<Graph, IndexError> {
    params.validate()?;
    if arena.is_empty() {
        return Ok(Graph::empty(params.m));
    }
    let executor = Executor::new(options.threads)?;
    // Neither builder should panic on validated input (finite rows, parameters in range): hnsw_rs
    // has no error values, so its malformed states end in `panic!`, and ours would panic only on a
    // bug. Catching the panic keeps it from unwinding through the caller; rayon carries a worker's
    // panic back to this thread. Everything the build touches is dropped inside the closure, so no
    // broken state is observed afterwards.
    panic::catch_unwind(AssertUnwindSafe(|| match options.builder {
        Builder::Native => {
            crate::native::build(arena, metric, params, options.seed, &executor, progress, fault)
        }
        Builder::HnswRs => build_hnsw_rs(arena, metric, params, &executor, progress),
    }))
    .map_err(|_| IndexError::BuildFailed)?
}

/// Extends `base` (the graph over the first `base.len()` rows of `arena`) with the rows after
/// them, with the native builder (hnsw_rs cannot extend a graph it did not build), on the threads
/// `options` names, catching a panic as [`build_graph`] does.
///
/// # Errors
///
/// As [`build_graph`]; [`IndexError::BuildFailed`] also if `base` does not fit `arena` or
/// `params.m`.
pub(crate) fn extend_graph(
    arena: &VectorArena,
    metric: Metric,
    params: HnswParams,
    base: &Graph,
    options: BuildOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Graph, IndexError> {
    params.validate()?;
    if base.len() == 0 {
        return build_graph(arena, metric, params, options.with_builder(Builder::Native), progress);
    }
    let executor = Executor::new(options.threads)?;
    panic::catch_unwind(AssertUnwindSafe(|| {
        crate::native::extend(arena, metric, params, base, options.seed, &executor, progress)
    }))
    .map_err(|_| IndexError::BuildFailed)?
}

/// Builds the graph with hnsw_rs, in parallel, and extracts it.
fn build_hnsw_rs(
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
            let slots = &mut level0[id * stride0..(id + 1) * stride0];
            for (slot, target) in slots.iter_mut().zip(list) {
                *slot = target;
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
            for (slot, target) in links[position * m..(position + 1) * m].iter_mut().zip(targets) {
                *slot = target;
            }
        }
        upper.push(UpperLevel { nodes, links });
    }
    Ok(Graph { m, level0, upper, entry })
}
