//! A collection's search: the delta and every segment asked, their hits merged by distance, with
//! the allowed set applied before ranking and the request's budget checked between index parts.

use super::CollectionState;
use crate::Result;
use crate::metric::{ranking_distance, score};
use bulkhead_distance::Query;
use bulkhead_index::{Planner, SearchParams, SearchScratch};
use bulkhead_storage::PointRef;
use roaring::RoaringBitmap;
use std::cell::RefCell;

/// Candidates the graph walk keeps (its `ef`) at least; raised to `k` for larger `k`. At 64,
/// recall@10 on debian-minilm was 0.988 (docs/BENCHMARKS.md).
const MIN_EF: usize = 64;

thread_local! {
    /// Each search thread reuses one scratch (visited set and heaps) across queries.
    static SCRATCH: RefCell<SearchScratch> = RefCell::new(SearchScratch::new());
}

impl CollectionState {
    /// The `k` best points among `allowed` (every point if `None`), best first, with their client
    /// scores. `observe`, if given, is shown every point a distance is computed for (graph routing
    /// included), so that a test can check that no point outside the allowed set is ever scored.
    ///
    /// The delta is scanned exactly: point by point over the allowed set when that set is small (by
    /// the index planner's rule) and smaller than the delta, otherwise in one filtered pass. Each
    /// segment gets the allowed set as a filter over its ids (see [`Frozen::search`]), and its
    /// planner scans a small one exactly with the batch kernels or walks the graph with the filter
    /// applied as it goes. The best `k` of every part are merged; a global top-k is never trimmed
    /// afterwards.
    pub(crate) fn top_k<'o>(
        &self,
        query: &Query<'_>,
        k: usize,
        ef: Option<usize>,
        allowed: Option<&RoaringBitmap>,
        mut observe: Option<&mut (dyn FnMut(PointRef) + 'o)>,
        budget: &crate::Budget,
    ) -> Result<Vec<(PointRef, f32)>> {
        let ef = ef.unwrap_or(MIN_EF).max(k);
        let mut ranked = match allowed {
            // A small allowed set and a larger delta: look the allowed points up one by one.
            Some(set)
                if Planner::prefers_exact_filtered(set.len() as usize, self.len(), ef)
                    && (set.len() as usize) < self.delta.len() =>
            {
                let mut ranked = Vec::new();
                for slot in set {
                    let Some(point_ref) = self.attrs.point(slot) else { continue };
                    let Some(vector) = self.delta.vector(&point_ref) else { continue };
                    if let Some(observe) = observe.as_mut() {
                        observe(point_ref);
                    }
                    ranked.push((point_ref, ranking_distance(self.metric, query.values(), vector)?));
                }
                ranked
            }
            _ => self.delta.top_k(self.metric, query, k, allowed, observe.as_deref_mut())?,
        };
        if !self.segments.is_empty() {
            let params = SearchParams::new(k, ef);
            SCRATCH.with(|scratch| -> Result<()> {
                let mut scratch = scratch.borrow_mut();
                scratch.record_scored(observe.is_some());
                for frozen in &self.segments {
                    // A check point per segment: a request whose caller stopped waiting ends here.
                    budget.check()?;
                    let hits = frozen.search(query, &params, allowed, &mut scratch)?;
                    ranked.extend(hits.iter().map(|hit| (frozen.refs[hit.id.get() as usize], hit.distance)));
                    if let Some(observe) = observe.as_mut() {
                        scratch.scored().iter().for_each(|&id| observe(frozen.refs[id as usize]));
                    }
                }
                scratch.record_scored(false);
                Ok(())
            })?;
        }
        ranked.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(k);
        Ok(ranked
            .into_iter()
            .map(|(point_ref, distance)| (point_ref, score(self.metric, distance)))
            .collect())
    }
}
