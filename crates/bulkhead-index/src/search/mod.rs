//! Search over a [`FrozenSegment`]: the planner, the graph walk (greedy descent, then a beam
//! search at level 0 with in-traversal filtering), and exact scans.
//!
//! # The level-0 beam search
//!
//! Two binary heaps of packed `u64` keys (distance bits in the high half, id in the low half: for
//! the non-negative, non-NaN distances the kernels return, the bit patterns order like the floats,
//! so one integer comparison orders by distance, then id) hold the candidates (a min-heap) and the
//! best `ef` results (a max-heap). A node's unvisited neighbours are gathered first, then their
//! distances computed back to back, one [`Kernels::distance`] call per row (measured faster than
//! the prefetching batch call here; see `walk_distances`). Exact scans use the batch calls. The visited
//! set is an epoch-stamped `Vec<u16>` that is reset by bumping the epoch, so nothing is cleared or
//! allocated per query once a [`SearchScratch`] has warmed up.
//!
//! # Filters and tombstones
//!
//! Tombstoned nodes are traversed like any other (they keep the graph connected) but never enter
//! the results. Filtered-out nodes are not traversed and their distances are not computed;
//! instead, as in ACORN-1, the walk looks through them: the allowed, unvisited neighbours of a
//! filtered-out neighbour join the batch, up to `2m` nodes per expansion. Early termination stays
//! on, because the results heap holds only admissible nodes. When the allowed set is small, the
//! planner scans it exactly instead, and whenever a graph walk finds fewer than `k` results the
//! search falls back to the exact scan, so a caller gets `min(k, visible)` results.

mod plan;
mod scratch;
mod walk;

pub use plan::{Plan, Planner, Strategy};
pub use scratch::SearchScratch;
pub(crate) use scratch::{Visited, key_distance, key_id, pack};
use walk::{Admit, Allowed, Everything, NotDeleted};

use std::collections::BinaryHeap;

use bulkhead_distance::{DistanceError, Kernels, Query};

use crate::{Filter, FrozenSegment, IndexError, InternalId};

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The vector's id in its segment.
    pub id: InternalId,
    /// Its distance to the query (smaller is closer; see `bulkhead_distance::Metric`).
    pub distance: f32,
}

/// Per-query parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParams {
    /// How many results to return (fewer only if fewer vectors are visible).
    pub k: usize,
    /// Beam width at level 0; raised to `k` when smaller.
    pub ef: usize,
    /// Plan selection; [`Strategy::Auto`] unless a caller needs a specific plan.
    pub strategy: Strategy,
}

impl SearchParams {
    /// Returns parameters for `k` results with beam width `ef` and automatic planning.
    pub fn new(k: usize, ef: usize) -> Self {
        Self { k, ef, strategy: Strategy::Auto }
    }

    /// Returns these parameters with `strategy`.
    pub fn with_strategy(self, strategy: Strategy) -> Self {
        Self { strategy, ..self }
    }
}

impl FrozenSegment {
    /// Returns the `min(k, live vectors)` nearest live vectors to `query`, closest first.
    ///
    /// The slice borrows `scratch` and stays valid until its next use.
    ///
    /// # Errors
    ///
    /// [`IndexError::DimensionMismatch`] or [`IndexError::NonFiniteQuery`] for a bad query.
    pub fn search<'s>(
        &self,
        query: &[f32],
        params: &SearchParams,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [Hit], IndexError> {
        self.search_query(&self.query(query)?, params, scratch)
    }

    /// As [`search`](Self::search), for a query checked once ([`Query`]): only its dimension is
    /// compared with the segment's, so a caller searching several segments checks it once.
    ///
    /// # Errors
    ///
    /// [`IndexError::DimensionMismatch`] for a query of another dimension.
    pub fn search_query<'s>(
        &self,
        query: &Query<'_>,
        params: &SearchParams,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [Hit], IndexError> {
        self.check_dimension(query)?;
        scratch.begin();
        let k = params.k.min(self.live_len());
        if k == 0 {
            scratch.plan = Plan::Empty;
            return Ok(&scratch.hits);
        }
        let exact = match params.strategy {
            Strategy::Exact => true,
            Strategy::Graph => false,
            Strategy::Auto => self.len() <= Planner::EXACT_SEGMENT_MAX,
        };
        if exact {
            self.exact_all(query, k, &NotDeleted(&self.deleted), scratch)?;
            return Ok(&scratch.hits);
        }
        let ef = params.ef.max(k);
        if self.deleted.is_empty() {
            self.graph_search(query, k, ef, &Everything, scratch)?;
        } else {
            self.graph_search(query, k, ef, &NotDeleted(&self.deleted), scratch)?;
        }
        if scratch.hits.len() < k {
            self.exact_all(query, k, &NotDeleted(&self.deleted), scratch)?;
            scratch.plan = Plan::GraphThenExact;
        }
        Ok(&scratch.hits)
    }

    /// Returns the `min(k, visible)` nearest vectors that `filter` allows and that are not
    /// deleted, closest first.
    ///
    /// The filter is applied during candidate generation: small allowed sets are scanned exactly,
    /// larger ones are walked in the graph with filtered-out nodes looked through (see the module
    /// documentation). A global top-k is never trimmed afterwards.
    ///
    /// # Errors
    ///
    /// As [`search`](Self::search).
    pub fn search_filtered<'s, F: Filter + ?Sized>(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: &F,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [Hit], IndexError> {
        self.search_filtered_query(&self.query(query)?, params, filter, scratch)
    }

    /// As [`search_filtered`](Self::search_filtered), for a query checked once ([`Query`]).
    ///
    /// # Errors
    ///
    /// [`IndexError::DimensionMismatch`] for a query of another dimension.
    pub fn search_filtered_query<'s, F: Filter + ?Sized>(
        &self,
        query: &Query<'_>,
        params: &SearchParams,
        filter: &F,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [Hit], IndexError> {
        self.check_dimension(query)?;
        scratch.begin();
        let k = params.k.min(self.live_len());
        let estimate = filter.estimated_count();
        if k == 0 || estimate == Some(0) {
            scratch.plan = Plan::Empty;
            return Ok(&scratch.hits);
        }
        let admit = Allowed { filter, deleted: &self.deleted };
        let ef = params.ef.max(k);
        // Every exact path scans the allowed ids only: no distance is computed for an id the filter
        // refuses.
        match params.strategy {
            Strategy::Exact => {
                self.exact_allowed(query, k, filter, scratch)?;
                return Ok(&scratch.hits);
            }
            Strategy::Auto if self.len() <= Planner::EXACT_SEGMENT_MAX => {
                self.exact_allowed(query, k, filter, scratch)?;
                return Ok(&scratch.hits);
            }
            Strategy::Auto
                if estimate
                    .is_some_and(|allowed| Planner::prefers_exact_filtered(allowed, self.len(), ef)) =>
            {
                self.exact_allowed(query, k, filter, scratch)?;
                return Ok(&scratch.hits);
            }
            Strategy::Auto | Strategy::Graph => {}
        }
        self.graph_search(query, k, ef, &admit, scratch)?;
        if scratch.hits.len() < k {
            self.exact_allowed(query, k, filter, scratch)?;
            scratch.plan = Plan::GraphThenExact;
        }
        Ok(&scratch.hits)
    }

    /// `values` checked as a query of this segment: its dimension, finite elements, a finite norm.
    ///
    /// # Errors
    ///
    /// [`IndexError::DimensionMismatch`], [`IndexError::NonFiniteQuery`], or
    /// [`IndexError::Vector`] for a norm that overflows.
    pub fn query<'a>(&self, values: &'a [f32]) -> Result<Query<'a>, IndexError> {
        if values.len() != self.dim() {
            return Err(IndexError::DimensionMismatch { expected: self.dim(), actual: values.len() });
        }
        Query::new(values).map_err(|e| match e {
            DistanceError::NonFinite { index } => IndexError::NonFiniteQuery { index },
            other => IndexError::Vector(other),
        })
    }

    /// Rejects a checked query of another dimension than the segment's.
    fn check_dimension(&self, query: &Query<'_>) -> Result<(), IndexError> {
        if query.dim() != self.dim() {
            return Err(IndexError::DimensionMismatch { expected: self.dim(), actual: query.dim() });
        }
        Ok(())
    }

    /// Walks the graph: greedy descent through the upper levels, then the level-0 beam search,
    /// leaving the best `k` admissible results in `scratch.hits`.
    fn graph_search<A: Admit>(
        &self,
        query: &Query<'_>,
        k: usize,
        ef: usize,
        admit: &A,
        s: &mut SearchScratch,
    ) -> Result<(), IndexError> {
        s.plan = Plan::Graph;
        let kernels = Kernels::active();
        let entry = self.descend(kernels, query, admit, s)?;
        let Some((entry, entry_distance)) = entry else {
            // No admitted node near the entry point: the caller falls back to an exact scan.
            s.results.clear();
            s.hits.clear();
            return Ok(());
        };
        self.beam(kernels, query, entry, entry_distance, ef, admit, s)?;
        drain_sorted(&mut s.results, &mut s.hits, k);
        Ok(())
    }

    /// Scans every vector exactly, keeping the best `k` admissible ones in `scratch.hits`.
    fn exact_all<A: Admit>(
        &self,
        query: &Query<'_>,
        k: usize,
        admit: &A,
        s: &mut SearchScratch,
    ) -> Result<(), IndexError> {
        s.plan = Plan::ExactAll;
        let n = self.len();
        if s.scan_distances.len() < n {
            s.scan_distances.resize(n, 0.0);
        }
        s.distance_count += n;
        if let Some(log) = &mut s.scored {
            log.extend(0..n as u32);
        }
        Kernels::active().query_distances_all(self.metric, query, &self.arena, &mut s.scan_distances[..n])?;
        s.results.clear();
        for (id, &distance) in (0u32..).zip(&s.scan_distances[..n]) {
            if admit.traversable(id) && admit.live(id) {
                push_bounded(&mut s.results, pack(distance, id), k);
            }
        }
        drain_sorted(&mut s.results, &mut s.hits, k);
        Ok(())
    }

    /// Scans the allowed, live ids exactly, keeping the best `k` in `scratch.hits`.
    fn exact_allowed<F: Filter + ?Sized>(
        &self,
        query: &Query<'_>,
        k: usize,
        filter: &F,
        s: &mut SearchScratch,
    ) -> Result<(), IndexError> {
        s.plan = Plan::ExactAllowed;
        s.scan_ids.clear();
        let n = self.len();
        let deleted = &self.deleted;
        let ids = &mut s.scan_ids;
        filter.for_each_allowed(n, &mut |id| {
            // Keep only in-range, live ids in strictly increasing order, so a filter that breaks
            // its contract cannot produce duplicates or out-of-range reads.
            let raw = id.get();
            if (raw as usize) < n && ids.last().is_none_or(|&last| raw > last) && !deleted.contains(id) {
                ids.push(raw);
            }
        });
        self.scan_distances(query, &s.scan_ids, &mut s.scan_distances, &mut s.distance_count, &mut s.scored)?;
        s.results.clear();
        for (&id, &distance) in s.scan_ids.iter().zip(&s.scan_distances) {
            push_bounded(&mut s.results, pack(distance, id), k);
        }
        drain_sorted(&mut s.results, &mut s.hits, k);
        Ok(())
    }
}

/// Keeps the `k` smallest keys in the max-heap `heap`.
#[inline]
fn push_bounded(heap: &mut BinaryHeap<u64>, key: u64, k: usize) {
    if heap.len() < k {
        heap.push(key);
    } else if let Some(mut worst) = heap.peek_mut()
        && key < *worst
    {
        // Replacing the top and letting `PeekMut` sift it down on drop is one heap operation.
        *worst = key;
    }
}

/// Empties the max-heap `heap` into `hits`, closest first, keeping the best `k`.
fn drain_sorted(heap: &mut BinaryHeap<u64>, hits: &mut Vec<Hit>, k: usize) {
    hits.clear();
    while heap.len() > k {
        heap.pop();
    }
    while let Some(key) = heap.pop() {
        hits.push(Hit { id: InternalId::new(key_id(key)), distance: key_distance(key) });
    }
    hits.reverse();
}
