//! Graph construction: the parameters, the choice of builder, the thread pool a build runs on,
//! and the flat [`Graph`] every builder produces.
//!
//! Two builders produce the same [`Graph`]: our own ([`Builder::Native`], in `native.rs`), which
//! inserts in parallel straight into flat adjacency arrays, and hnsw_rs ([`Builder::HnswRs`]),
//! which builds its own structure in parallel through a distance adapter over our kernels and is
//! then read out through its public API (`hnsw_rs_build.rs`, compiled only with the `hnsw-rs`
//! feature).

use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bulkhead_distance::{Metric, VectorArena};

use crate::IndexError;

/// Marks an unused adjacency entry; valid ids are below `u32::MAX` because an arena holds at most
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
pub enum Builder {
    /// Our own parallel construction (`native.rs`): writes straight into the segment's flat
    /// adjacency, deterministic for a given seed on one thread.
    #[default]
    Native,
    /// hnsw_rs 0.3.5's parallel insertion, read out into the segment's arrays; kept to measure
    /// against, and only in builds with the `hnsw-rs` feature (the server binary has none of it).
    #[cfg(feature = "hnsw-rs")]
    HnswRs,
}

impl Builder {
    /// Returns the name used in reports and on the command line: `"native"` or `"hnsw_rs"`.
    pub fn name(self) -> &'static str {
        match self {
            Builder::Native => "native",
            #[cfg(feature = "hnsw-rs")]
            Builder::HnswRs => "hnsw_rs",
        }
    }
}

/// How a graph is built: the builder, its threads, its seed, and a flag that cancels it. The
/// defaults (`new`) are the native builder on rayon's global pool (every core) with a fixed seed.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Which construction runs.
    pub builder: Builder,
    /// Threads to build on: `None` for rayon's global pool (every core), `Some(1)` for the calling
    /// thread alone (the native builder is then deterministic), more for a pool of that size made
    /// for the build.
    pub threads: Option<NonZeroUsize>,
    /// Seed of the native builder's level draws (hnsw_rs draws its own).
    pub seed: u64,
    /// Once set, the native builder stops before its next chunk of insertions and the build fails
    /// with [`IndexError::Cancelled`] (for a job nobody needs any more; hnsw_rs ignores it).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Build on a pool of its own whose threads run at the lowest OS priority
    /// ([`lower_thread_priority`]), so that a background build yields the cores to queries.
    pub background: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildOptions {
    /// The seed of [`new`](Self::new).
    pub const DEFAULT_SEED: u64 = 0x6275_6c6b_6865_6164;

    /// Returns the default options: [`Builder::Native`], every core, [`DEFAULT_SEED`](Self::DEFAULT_SEED),
    /// no cancellation.
    pub const fn new() -> Self {
        Self {
            builder: Builder::Native,
            threads: None,
            seed: Self::DEFAULT_SEED,
            cancel: None,
            background: false,
        }
    }

    /// Returns these options with `builder`.
    pub fn with_builder(self, builder: Builder) -> Self {
        Self { builder, ..self }
    }

    /// Returns these options with `threads` (`None`: every core).
    pub fn with_threads(self, threads: Option<NonZeroUsize>) -> Self {
        Self { threads, ..self }
    }

    /// Returns these options for a background build (see [`BuildOptions::background`]).
    pub fn in_background(self) -> Self {
        Self { background: true, ..self }
    }

    /// Returns these options with `seed`.
    pub fn with_seed(self, seed: u64) -> Self {
        Self { seed, ..self }
    }

    /// Returns these options cancelled by `flag` (see [`BuildOptions::cancel`]).
    pub fn with_cancel(self, flag: Arc<AtomicBool>) -> Self {
        Self { cancel: Some(flag), ..self }
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
    /// Returns the executor for `threads` (see [`BuildOptions::threads`]); a background build gets
    /// a pool of its own at the lowest priority, of `threads` or every core.
    fn new(threads: Option<NonZeroUsize>, background: bool) -> Result<Self, IndexError> {
        let threads = match (threads, background) {
            (None, false) => return Ok(Self::Global),
            (Some(threads), _) => threads.get(),
            (None, true) => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|index| format!("bulkhead-build-{index}"))
            .start_handler(move |_| {
                if background {
                    // Refused only where priorities cannot be changed: the build runs all the same.
                    let _lowered = lower_thread_priority();
                }
            })
            .build()
            .map(Self::Pool)
            .map_err(|_| IndexError::BuildFailed)
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
    /// Upper-level degree bound; level 0 stores `2·m` entries per node.
    pub(crate) m: usize,
    /// Level-0 adjacency, `n · 2m` entries: node `i`'s neighbours are
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
    /// `nodes.len() · m` entries: the neighbours of `nodes[j]` are `links[j·m .. (j+1)·m]`, padded
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

    /// Returns the number of level-0 entries per node.
    #[inline]
    pub(crate) fn stride0(&self) -> usize {
        2 * self.m
    }

    /// Returns node `id`'s level-0 entries (neighbours, then padding).
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

    /// Returns node `id`'s entries on upper level `level` (1-based), or an empty slice if the node is
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
    let executor = Executor::new(options.threads, options.background)?;
    // Neither builder should panic on validated input (finite rows, parameters in range): hnsw_rs
    // has no error values, so its malformed states end in `panic!`, and ours would panic only on a
    // bug. Catching the panic keeps it from unwinding through the caller; rayon carries a worker's
    // panic back to this thread. Everything the build touches is dropped inside the closure, so no
    // broken state is observed afterwards.
    panic::catch_unwind(AssertUnwindSafe(|| match options.builder {
        Builder::Native => crate::native::build(arena, metric, params, &options, &executor, progress, fault),
        #[cfg(feature = "hnsw-rs")]
        Builder::HnswRs => crate::hnsw_rs_build::build(arena, metric, params, &executor, progress),
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
        return build_graph(arena, metric, params, options.clone().with_builder(Builder::Native), progress);
    }
    let executor = Executor::new(options.threads, options.background)?;
    panic::catch_unwind(AssertUnwindSafe(|| {
        crate::native::extend(arena, metric, params, base, &options, &executor, progress)
    }))
    .map_err(|_| IndexError::BuildFailed)?
}

/// Lowers the calling thread to the lowest OS priority of its scheduling policy (on Linux, nice 19:
/// it runs when the cores are not wanted by normal threads). For background work: index builds and
/// the job workers that run them. `false` if the OS refused (the work then runs at normal
/// priority).
pub fn lower_thread_priority() -> bool {
    thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min).is_ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The calling thread's nice value, from `/proc/thread-self/stat` (its 19th field).
    fn nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
        after_name.split_whitespace().nth(16).expect("nice").parse().expect("a number")
    }

    #[test]
    fn a_background_build_runs_on_threads_of_the_lowest_priority() {
        let two = NonZeroUsize::new(2);
        let caller = nice();
        let background = Executor::new(two, true).expect("pool");
        let niceness: Vec<i32> = background.install(|| rayon::broadcast(|_| nice()));
        assert_eq!(niceness, [19, 19], "every thread of a background build's pool");
        let foreground = Executor::new(two, false).expect("pool");
        let niceness: Vec<i32> = foreground.install(|| rayon::broadcast(|_| nice()));
        assert_eq!(niceness, [caller, caller], "a build in the foreground keeps its caller's priority");
        assert_eq!(nice(), caller, "the caller is not touched");
    }
}
