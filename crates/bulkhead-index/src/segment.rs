//! [`FrozenSegment`]: the immutable, read-optimised index over one batch of vectors, plus its
//! tombstones.

use std::sync::Arc;

use bulkhead_distance::{Metric, VectorArena};

use crate::construct::{self, Graph};
use crate::{BuildOptions, HnswParams, IdSet, IndexError, InternalId};

/// An immutable HNSW segment over the vectors `0..len`: the vectors in an aligned
/// [`VectorArena`], the graph in flat arrays, and a tombstone set.
///
/// Built once ([`build`](Self::build)), extended into a new segment ([`extend`](Self::extend)) or
/// loaded ([`from_bytes`](Self::from_bytes)), then only searched; the one mutation is
/// [`delete`](Self::delete), which marks a tombstone. Deleted vectors stay in the graph as
/// waypoints and are never returned.
///
/// The vectors and the graph are shared (`Arc`), so a clone costs only its tombstone bitset: a
/// background merge takes a clone to read from while searches go on with the original.
#[derive(Debug, Clone)]
pub struct FrozenSegment {
    pub(crate) metric: Metric,
    pub(crate) params: HnswParams,
    pub(crate) arena: Arc<VectorArena>,
    pub(crate) graph: Arc<Graph>,
    pub(crate) deleted: IdSet,
}

impl FrozenSegment {
    /// Builds a segment over every row of `arena` (row `i` becomes internal id `i`).
    ///
    /// The arena already guarantees finite rows of one dimension; the graph is built by the default
    /// builder ([`Builder::Native`](crate::Builder::Native)) on all cores (rayon's global pool)
    /// and then frozen.
    ///
    /// # Errors
    ///
    /// [`IndexError::InvalidParams`] if `params` is out of range; [`IndexError::BuildFailed`] if
    /// the builder fails.
    pub fn build(arena: VectorArena, metric: Metric, params: HnswParams) -> Result<Self, IndexError> {
        Self::build_with_progress(arena, metric, params, |_, _| {})
    }

    /// As [`build`](Self::build), calling `progress(inserted, total)` on the calling thread after
    /// each chunk of insertions (about a hundred times for a large arena; the last call has
    /// `inserted == total`; no call for an empty arena). The graph is then extracted and frozen,
    /// which takes a small fraction of the build.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with_progress(
        arena: VectorArena,
        metric: Metric,
        params: HnswParams,
        progress: impl FnMut(usize, usize),
    ) -> Result<Self, IndexError> {
        Self::build_with_options(arena, metric, params, BuildOptions::new(), progress)
    }

    /// As [`build_with_progress`](Self::build_with_progress), with the builder, its threads and its
    /// seed chosen by `options`.
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and [`IndexError::BuildFailed`] if a thread pool of the
    /// requested size cannot be started.
    pub fn build_with_options(
        arena: VectorArena,
        metric: Metric,
        params: HnswParams,
        options: BuildOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self, IndexError> {
        let graph = construct::build_graph(&arena, metric, params, options, &mut progress)?;
        let deleted = IdSet::new(arena.len());
        Ok(Self { metric, params, arena: Arc::new(arena), graph: Arc::new(graph), deleted })
    }

    /// Returns a new segment holding this one's vectors (ids `0..len()`, tombstones kept) followed
    /// by `rows` (ids from `len()` on), whose graph is this one's extended by inserting the new
    /// rows: the cost of inserting `rows` only, not of a rebuild. This segment is not changed.
    ///
    /// The new rows are inserted by the native builder with `options`' threads and seed (whatever
    /// builder built this one), `progress(inserted, new rows)` after each chunk. Tombstoned
    /// vectors keep routing in the new graph; to drop them, build a new segment from the live rows.
    ///
    /// # Errors
    ///
    /// [`IndexError::Vector`] if a row has the wrong length, a non-finite element or an
    /// overflowing norm; [`IndexError::BuildFailed`] if the builder fails.
    pub fn extend<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a [f32]>,
        options: BuildOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self, IndexError> {
        let mut arena = VectorArena::with_capacity(self.dim(), self.len())?;
        for row in self.arena.iter() {
            arena.push(row)?;
        }
        for row in rows {
            arena.push(row)?;
        }
        let graph =
            construct::extend_graph(&arena, self.metric, self.params, &self.graph, options, &mut progress)?;
        let mut deleted = IdSet::new(arena.len());
        for id in self.deleted.iter() {
            deleted.insert(id)?;
        }
        Ok(Self {
            metric: self.metric,
            params: self.params,
            arena: Arc::new(arena),
            graph: Arc::new(graph),
            deleted,
        })
    }

    /// Builds a segment from `rows` of dimension `dim` (row `i` becomes internal id `i`).
    ///
    /// # Errors
    ///
    /// [`IndexError::Vector`] if a row has the wrong length, a non-finite element or an
    /// overflowing norm, or if `dim == 0`; otherwise as [`build`](Self::build).
    pub fn build_from_rows<'a>(
        dim: usize,
        rows: impl IntoIterator<Item = &'a [f32]>,
        metric: Metric,
        params: HnswParams,
    ) -> Result<Self, IndexError> {
        params.validate()?;
        let mut arena = VectorArena::new(dim)?;
        for row in rows {
            arena.push(row)?;
        }
        Self::build(arena, metric, params)
    }

    /// Returns the number of vectors, deleted ones included.
    #[inline]
    pub fn len(&self) -> usize {
        self.arena.len()
    }

    /// Returns whether the segment holds no vectors at all.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.arena.is_empty()
    }

    /// Returns the number of vectors not deleted.
    #[inline]
    pub fn live_len(&self) -> usize {
        self.len() - self.deleted.len()
    }

    /// Returns the vector dimension.
    #[inline]
    pub fn dim(&self) -> usize {
        self.arena.dim()
    }

    /// Returns the metric the graph was built for.
    #[inline]
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Returns the construction parameters.
    #[inline]
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Returns the highest graph level (0 if the graph has only the base level).
    #[inline]
    pub fn max_level(&self) -> usize {
        self.graph.max_level()
    }

    /// Returns the stored vectors.
    #[inline]
    pub fn vectors(&self) -> &VectorArena {
        &self.arena
    }

    /// Returns the vector `id`, or `None` if out of range (deleted vectors are still returned).
    pub fn vector(&self, id: InternalId) -> Option<&[f32]> {
        self.arena.get(id.get())
    }

    /// Returns the level-0 neighbours of `id`, closest first (empty if out of range).
    pub fn base_neighbours(&self, id: InternalId) -> impl Iterator<Item = InternalId> + '_ {
        let row: &[u32] =
            if (id.get() as usize) < self.len() { self.graph.neighbours0(id.get()) } else { &[] };
        row.iter()
            .take_while(|&&target| target != construct::NO_NEIGHBOUR)
            .map(|&target| InternalId::new(target))
    }

    /// Marks `id` deleted; returns whether it was live. Deleted vectors are never returned by any
    /// search but still route graph traversals.
    ///
    /// # Errors
    ///
    /// [`IndexError::IdOutOfRange`] if `id` is not below [`len`](Self::len).
    pub fn delete(&mut self, id: InternalId) -> Result<bool, IndexError> {
        self.deleted.insert(id)
    }

    /// Returns whether `id` is marked deleted.
    #[inline]
    pub fn is_deleted(&self, id: InternalId) -> bool {
        self.deleted.contains(id)
    }

    /// Returns the tombstone set.
    pub fn deleted(&self) -> &IdSet {
        &self.deleted
    }

    /// Returns the bytes the segment occupies in memory: the arena (padded rows and stored norms),
    /// the adjacency of every level and the tombstone bitset.
    pub fn memory_bytes(&self) -> usize {
        let arena = self.arena.len() * (self.arena.stride() + 1) * size_of::<f32>();
        arena + self.graph.heap_bytes() + self.deleted.heap_bytes() + size_of::<Self>()
    }

    /// Returns [`memory_bytes`](Self::memory_bytes) divided by the number of vectors (0 for an
    /// empty segment).
    pub fn bytes_per_vector(&self) -> f64 {
        if self.is_empty() { 0.0 } else { self.memory_bytes() as f64 / self.len() as f64 }
    }
}
