//! The graph walk itself: which nodes a walk may traverse and return (`Admit`: everything, all but
//! tombstones, or a filter and the tombstones), the greedy descent through the upper levels and the
//! level-0 beam search with its look-through of refused nodes.

use std::cmp::Reverse;

use bulkhead_distance::{Kernels, Query};

use super::scratch::{SearchScratch, key_distance, key_id, pack};
use crate::construct::NO_NEIGHBOUR;
use crate::{Filter, FrozenSegment, IdSet, IndexError, InternalId};

/// Which nodes a walk may traverse and which it may return.
pub(super) trait Admit {
    /// Whether filtered-out neighbours are looked through (ACORN-style two-hop expansion).
    const TWO_HOP: bool;
    /// Whether the walk may traverse `id` (the filter allows it).
    fn traversable(&self, id: u32) -> bool;
    /// Whether a traversable `id` may be returned (it is not deleted).
    fn live(&self, id: u32) -> bool;
}

/// No filter and no tombstones.
pub(super) struct Everything;

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
pub(super) struct NotDeleted<'a>(pub(super) &'a IdSet);

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
pub(super) struct Allowed<'a, F: ?Sized> {
    pub(super) filter: &'a F,
    pub(super) deleted: &'a IdSet,
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
    /// Scores the scratch's batch into its batch distances ([`walk_distances`](Self::walk_distances)).
    #[inline]
    fn score_batch(
        &self,
        kernels: &Kernels,
        query: &Query<'_>,
        s: &mut SearchScratch,
    ) -> Result<(), IndexError> {
        self.walk_distances(
            kernels,
            query,
            &s.batch,
            &mut s.batch_distances,
            &mut s.distance_count,
            &mut s.scored,
        )
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
    pub(super) fn walk_distances(
        &self,
        kernels: &Kernels,
        query: &Query<'_>,
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
            out.push(kernels.distance_to_row(self.metric, query, &self.arena, id)?);
        }
        Ok(())
    }

    /// Computes the distances from `query` to the ascending rows `ids` of an exact scan into
    /// `out[..ids.len()]` with one batch call.
    pub(super) fn scan_distances(
        &self,
        query: &Query<'_>,
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
        Kernels::active().query_distances(self.metric, query, &self.arena, ids, &mut out[..ids.len()])?;
        Ok(())
    }

    /// Greedy descent from the entry point through the upper levels; returns the closest node found
    /// and its distance. It computes distances only for nodes `admit` lets it traverse (all of them
    /// without a filter), looking through refused neighbours to theirs (as the beam does), and starts
    /// from the entry point only if it is admitted; if it is not, one level-0 step looks for an
    /// admitted start. `None` if no admitted node is reachable that way.
    pub(super) fn descend<A: Admit>(
        &self,
        kernels: &Kernels,
        query: &Query<'_>,
        admit: &A,
        s: &mut SearchScratch,
    ) -> Result<Option<(u32, f32)>, IndexError> {
        let mut current = self.graph.entry;
        let mut current_distance = f32::INFINITY;
        if admit.traversable(current) {
            s.batch.clear();
            s.batch.push(current);
            self.score_batch(kernels, query, s)?;
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
                self.score_batch(kernels, query, s)?;
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
    pub(super) fn beam<A: Admit>(
        &self,
        kernels: &Kernels,
        query: &Query<'_>,
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
            self.score_batch(kernels, query, s)?;
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
}
