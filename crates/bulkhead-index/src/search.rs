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

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use bulkhead_distance::Kernels;

use crate::construct::NO_NEIGHBOUR;
use crate::{Filter, FrozenSegment, IdSet, IndexError, InternalId};

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The vector's id in its segment.
    pub id: InternalId,
    /// Its distance to the query (smaller is closer; see `bulkhead_distance::Metric`).
    pub distance: f32,
}

/// How a search should find its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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
#[non_exhaustive]
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

/// The planner's thresholds, chosen by measurement on debian-minilm (384-d, M = 16): the segment
/// size with the `hnsw_recall` example of `bulkhead-benches`, the filtered ones with the filtered
/// sections of `bulkhead bench`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
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

/// Reusable per-thread search state; keep one per worker thread and pass it to every search.
///
/// It grows to fit the largest segment and beam it has served and is never shrunk, so a warmed-up
/// scratch makes searches allocation-free.
#[derive(Debug, Default)]
pub struct SearchScratch {
    visited: Visited,
    candidates: BinaryHeap<Reverse<u64>>,
    results: BinaryHeap<u64>,
    batch: Vec<u32>,
    batch_distances: Vec<f32>,
    skipped: Vec<u32>,
    scan_ids: Vec<u32>,
    scan_distances: Vec<f32>,
    hits: Vec<Hit>,
    plan: Plan,
    distance_count: usize,
    /// When on, every id a distance is computed for, in order (the scoring hook for tests).
    scored: Option<Vec<u32>>,
    /// `query·query` of the current search (for cosine in the graph walk), set once per search.
    query_norm: f32,
}

impl SearchScratch {
    /// Returns an empty scratch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the plan the last search ran.
    pub fn last_plan(&self) -> Plan {
        self.plan
    }

    /// Turns the scoring log on or off: while on, each search records every id it computes a
    /// distance for (routing steps included), readable with [`scored`](Self::scored). For tests that
    /// prove a filtered search never scores an id outside its allowed set.
    pub fn record_scored(&mut self, on: bool) {
        self.scored = on.then(Vec::new);
    }

    /// Returns the ids the last search computed distances for (empty unless
    /// [`record_scored`](Self::record_scored) is on).
    pub fn scored(&self) -> &[u32] {
        self.scored.as_deref().unwrap_or(&[])
    }

    /// Returns how many distances the last search computed.
    pub fn last_distance_count(&self) -> usize {
        self.distance_count
    }
}

/// An epoch-stamped visited set: `marks[id] == epoch` means visited in the current query.
#[derive(Debug, Default)]
pub(crate) struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a new query over ids `0..len`.
    #[inline]
    pub(crate) fn reset(&mut self, len: usize) {
        if self.marks.len() < len {
            self.marks.resize(len, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Every 65,535 queries the stamps wrap around, and old stamps could collide with new
            // epochs: clear them once.
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `id` visited; returns whether it was unvisited.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let slot = &mut self.marks[id as usize];
        let fresh = *slot != self.epoch;
        *slot = self.epoch;
        fresh
    }

    /// Returns whether `id` has been visited in this query.
    #[inline]
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.marks[id as usize] == self.epoch
    }
}

/// Packs a distance and an id into one key ordered by distance, then id.
#[inline]
pub(crate) fn pack(distance: f32, id: u32) -> u64 {
    // Adding `0.0` turns `-0.0` into `+0.0`; NaN (which the kernels never return for finite
    // input) sorts last, as does anything negative would-be, so a broken distance cannot become
    // the best result.
    let bits = if distance >= 0.0 { (distance + 0.0).to_bits() } else { f32::INFINITY.to_bits() };
    (u64::from(bits) << 32) | u64::from(id)
}

/// Returns the distance half of a packed key.
#[inline]
pub(crate) fn key_distance(key: u64) -> f32 {
    f32::from_bits((key >> 32) as u32)
}

/// Returns the id half of a packed key.
#[inline]
pub(crate) fn key_id(key: u64) -> u32 {
    key as u32
}

/// Which nodes a walk may traverse and which it may return.
trait Admit {
    /// Whether filtered-out neighbours are looked through (ACORN-style two-hop expansion).
    const TWO_HOP: bool;
    /// Whether the walk may traverse `id` (the filter allows it).
    fn traversable(&self, id: u32) -> bool;
    /// Whether a traversable `id` may be returned (it is not deleted).
    fn live(&self, id: u32) -> bool;
}

/// No filter and no tombstones.
struct Everything;

impl Admit for Everything {
    const TWO_HOP: bool = false;
    #[inline]
    fn traversable(&self, _: u32) -> bool {
        true
    }
    #[inline]
    fn live(&self, _: u32) -> bool {
        true
    }
}

/// No filter, some tombstones.
struct NotDeleted<'a>(&'a IdSet);

impl Admit for NotDeleted<'_> {
    const TWO_HOP: bool = false;
    #[inline]
    fn traversable(&self, _: u32) -> bool {
        true
    }
    #[inline]
    fn live(&self, id: u32) -> bool {
        !self.0.contains(InternalId::new(id))
    }
}

/// A filter and the tombstones.
struct Allowed<'a, F: ?Sized> {
    filter: &'a F,
    deleted: &'a IdSet,
}

impl<F: Filter + ?Sized> Admit for Allowed<'_, F> {
    const TWO_HOP: bool = true;
    #[inline]
    fn traversable(&self, id: u32) -> bool {
        self.filter.allows(InternalId::new(id))
    }
    #[inline]
    fn live(&self, id: u32) -> bool {
        !self.deleted.contains(InternalId::new(id))
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
        self.check_query(query)?;
        scratch.distance_count = 0;
        scratch.query_norm = Kernels::active().dot(query, query)?;
        scratch.hits.clear();
        if let Some(log) = &mut scratch.scored {
            log.clear();
        }
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
        self.check_query(query)?;
        scratch.distance_count = 0;
        scratch.query_norm = Kernels::active().dot(query, query)?;
        scratch.hits.clear();
        if let Some(log) = &mut scratch.scored {
            log.clear();
        }
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

    /// Rejects a query of the wrong dimension or with a non-finite element.
    fn check_query(&self, query: &[f32]) -> Result<(), IndexError> {
        if query.len() != self.dim() {
            return Err(IndexError::DimensionMismatch { expected: self.dim(), actual: query.len() });
        }
        match query.iter().position(|x| !x.is_finite()) {
            Some(index) => Err(IndexError::NonFiniteQuery { index }),
            None => Ok(()),
        }
    }

    /// Computes the distances from `query` to the scattered rows `ids` of a graph walk into
    /// `out[..ids.len()]`, one [`Kernels::distance_to_row`] call per row.
    ///
    /// Measured on debian-minilm (61,666 × 384, `distances/q` ≈ 450 at ef = 16), this is ~17%
    /// faster than one [`Kernels::distances`] batch per expansion: the batch prefetches every
    /// cache line of the row four ids ahead, and in a graph walk (up to 32 scattered 1.5 KB rows
    /// per batch, almost all from DRAM) those prefetches saturate the line-fill buffers
    /// (`prefetcht0` took 44% of the samples), and it re-validates the query on each call (5%).
    /// Row at a time, the hardware prefetcher streams each row after its first lines. Exact scans
    /// still use the batch calls, whose rows are sequential.
    #[inline]
    fn walk_distances(
        &self,
        kernels: &Kernels,
        // The query and its squared norm (set once per search in the scratch).
        (query, query_norm): (&[f32], f32),
        ids: &[u32],
        out: &mut Vec<f32>,
        count: &mut usize,
        scored: &mut Option<Vec<u32>>,
    ) -> Result<(), IndexError> {
        out.clear();
        *count += ids.len();
        if let Some(log) = scored {
            log.extend_from_slice(ids);
        }
        // Cosine takes the rows' stored squared norms: one dot product per row, not three sums.
        for &id in ids {
            if id as usize >= self.len() {
                return Err(IndexError::IdOutOfRange { id, len: self.len() });
            }
            out.push(kernels.distance_to_row(self.metric, query, query_norm, &self.arena, id)?);
        }
        Ok(())
    }

    /// Computes the distances from `query` to the ascending rows `ids` of an exact scan into
    /// `out[..ids.len()]` with one batch call.
    fn scan_distances(
        &self,
        query: &[f32],
        ids: &[u32],
        out: &mut Vec<f32>,
        count: &mut usize,
        scored: &mut Option<Vec<u32>>,
    ) -> Result<(), IndexError> {
        if out.len() < ids.len() {
            out.resize(ids.len(), 0.0);
        }
        *count += ids.len();
        if let Some(log) = scored {
            log.extend_from_slice(ids);
        }
        Kernels::active().distances(self.metric, query, &self.arena, ids, &mut out[..ids.len()])?;
        Ok(())
    }

    /// Walks the graph: greedy descent through the upper levels, then the level-0 beam search,
    /// leaving the best `k` admissible results in `scratch.hits`.
    fn graph_search<A: Admit>(
        &self,
        query: &[f32],
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

    /// Greedy descent from the entry point through the upper levels; returns the closest node found
    /// and its distance. It computes distances only for nodes `admit` lets it traverse (all of them
    /// without a filter), looking through refused neighbours to theirs (as the beam does), and starts
    /// from the entry point only if it is admitted; if it is not, one level-0 step looks for an
    /// admitted start. `None` if no admitted node is reachable that way.
    fn descend<A: Admit>(
        &self,
        kernels: &Kernels,
        query: &[f32],
        admit: &A,
        s: &mut SearchScratch,
    ) -> Result<Option<(u32, f32)>, IndexError> {
        let mut current = self.graph.entry;
        let mut current_distance = f32::INFINITY;
        if admit.traversable(current) {
            s.batch.clear();
            s.batch.push(current);
            self.walk_distances(
                kernels,
                (query, s.query_norm),
                &s.batch,
                &mut s.batch_distances,
                &mut s.distance_count,
                &mut s.scored,
            )?;
            current_distance = s.batch_distances[0];
        }
        for level in (0..=self.graph.max_level()).rev() {
            // Level 0 only needs one admitted starting node; the beam does the rest.
            if level == 0 && current_distance.is_finite() {
                break;
            }
            loop {
                let neighbours = |id: u32| -> &[u32] {
                    if level == 0 {
                        self.graph.neighbours0(id)
                    } else {
                        self.graph.neighbours_upper(level, id)
                    }
                };
                s.batch.clear();
                let mut looked_through = false;
                for &id in neighbours(current).iter().take_while(|&&id| id != NO_NEIGHBOUR) {
                    if admit.traversable(id) {
                        s.batch.push(id);
                    } else {
                        looked_through = true;
                        s.batch.extend(
                            neighbours(id)
                                .iter()
                                .take_while(|&&hop| hop != NO_NEIGHBOUR)
                                .filter(|&&hop| hop != current && admit.traversable(hop)),
                        );
                    }
                }
                // Two hops can reach a node twice; a plain neighbour list cannot.
                if looked_through {
                    s.batch.sort_unstable();
                    s.batch.dedup();
                }
                if s.batch.is_empty() {
                    break;
                }
                self.walk_distances(
                    kernels,
                    (query, s.query_norm),
                    &s.batch,
                    &mut s.batch_distances,
                    &mut s.distance_count,
                    &mut s.scored,
                )?;
                let mut moved = false;
                for (&id, &distance) in s.batch.iter().zip(&s.batch_distances) {
                    if distance < current_distance {
                        current = id;
                        current_distance = distance;
                        moved = true;
                    }
                }
                if !moved || level == 0 {
                    break;
                }
            }
        }
        Ok(current_distance.is_finite().then_some((current, current_distance)))
    }

    /// The level-0 beam search from `entry`, leaving up to `ef` admissible results in
    /// `s.results`.
    #[expect(
        clippy::too_many_arguments,
        reason = "a private hot loop; bundling the arguments would only add indirection"
    )]
    fn beam<A: Admit>(
        &self,
        kernels: &Kernels,
        query: &[f32],
        entry: u32,
        entry_distance: f32,
        ef: usize,
        admit: &A,
        s: &mut SearchScratch,
    ) -> Result<(), IndexError> {
        // Two-hop expansion fills a batch up to the level-0 degree. Measured on debian-minilm at
        // 10% and 50% selectivity, a cap of `m` instead cost more recall than it saved time.
        let cap = self.graph.stride0();
        s.visited.reset(self.len());
        s.candidates.clear();
        s.results.clear();
        s.visited.insert(entry);
        let entry_key = pack(entry_distance, entry);
        s.candidates.push(Reverse(entry_key));
        if admit.traversable(entry) && admit.live(entry) {
            s.results.push(entry_key);
        }
        while let Some(Reverse(current)) = s.candidates.pop() {
            if s.results.len() >= ef
                && s.results.peek().is_some_and(|&worst| key_distance(current) > key_distance(worst))
            {
                break;
            }
            s.batch.clear();
            s.skipped.clear();
            for &id in self.graph.neighbours0(key_id(current)) {
                if id == NO_NEIGHBOUR {
                    break;
                }
                if !s.visited.insert(id) {
                    continue;
                }
                if admit.traversable(id) {
                    s.batch.push(id);
                } else if A::TWO_HOP {
                    s.skipped.push(id);
                }
            }
            if A::TWO_HOP {
                'hops: for &hop in &s.skipped {
                    for &id in self.graph.neighbours0(hop) {
                        if s.batch.len() >= cap {
                            break 'hops;
                        }
                        if id == NO_NEIGHBOUR {
                            break;
                        }
                        if !s.visited.contains(id) && admit.traversable(id) {
                            s.visited.insert(id);
                            s.batch.push(id);
                        }
                    }
                }
            }
            if s.batch.is_empty() {
                continue;
            }
            self.walk_distances(
                kernels,
                (query, s.query_norm),
                &s.batch,
                &mut s.batch_distances,
                &mut s.distance_count,
                &mut s.scored,
            )?;
            for (&id, &distance) in s.batch.iter().zip(&s.batch_distances) {
                let key = pack(distance, id);
                let admits = s.results.len() < ef || s.results.peek().is_some_and(|&w| key < w);
                if admits {
                    s.candidates.push(Reverse(key));
                    if admit.live(id) {
                        s.results.push(key);
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Scans every vector exactly, keeping the best `k` admissible ones in `scratch.hits`.
    fn exact_all<A: Admit>(
        &self,
        query: &[f32],
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
        Kernels::active().distances_all(self.metric, query, &self.arena, &mut s.scan_distances[..n])?;
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
        query: &[f32],
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
