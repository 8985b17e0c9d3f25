//! A collection's frozen segment and what it still covers: the segment, its generation, the point
//! and attribute slot of each internal id, and how an allowed set of attribute slots becomes a
//! filter over the segment's ids.

use super::PURGE_FRACTION;
use crate::QueryError;
use crate::Result;
use bulkhead_distance::Query;
use bulkhead_index::{FrozenSegment, IdSet, InternalId, SearchParams, SearchScratch};
use bulkhead_storage::{PointRef, SavedSegment};
use roaring::RoaringBitmap;
use std::collections::HashMap;

/// A frozen segment and which points it still covers.
pub(super) struct Frozen {
    pub(super) segment: FrozenSegment,
    /// A random number naming this segment, reported with every hit it serves.
    pub(super) generation: u64,
    /// The point of each internal id, and its attribute slot (`u32::MAX` for none).
    pub(super) refs: Vec<PointRef>,
    pub(super) slots: Vec<u32>,
    /// The internal id of each point the segment still covers.
    pub(super) covered: HashMap<PointRef, InternalId>,
    /// The internal id of each attribute slot (`u32::MAX` for none), so that an allowed set of
    /// slots becomes a bitset of internal ids in time proportional to its size.
    pub(super) ids_by_slot: Vec<u32>,
    /// Its snapshot in storage, once saved.
    pub(super) saved: Option<SavedSegment>,
}

impl Frozen {
    /// A segment with the attribute slot of each of its ids (`u32::MAX` for none).
    pub(super) fn new(
        segment: FrozenSegment,
        generation: u64,
        refs: Vec<PointRef>,
        slots: Vec<u32>,
        covered: HashMap<PointRef, InternalId>,
    ) -> Frozen {
        let end = slots.iter().filter(|&&slot| slot != u32::MAX).max().map_or(0, |&slot| slot as usize + 1);
        let mut ids_by_slot = vec![u32::MAX; end];
        for (id, &slot) in (0u32..).zip(&slots) {
            if let Some(entry) = ids_by_slot.get_mut(slot as usize) {
                *entry = id;
            }
        }
        Frozen { segment, generation, refs, slots, covered, ids_by_slot, saved: None }
    }

    /// Tombstoned or superseded entries: points the segment holds but no longer covers.
    pub(super) fn dead(&self) -> usize {
        self.segment.len() - self.covered.len()
    }

    /// Whether so many of its entries are dead that it should be rebuilt from its live points.
    pub(super) fn needs_purge(&self, threshold: usize) -> bool {
        let dead = self.dead();
        dead >= (threshold / 4).max(1) && dead as f64 > PURGE_FRACTION * self.segment.len() as f64
    }

    /// The segment's ids whose slots are in `allowed`, as a bitset over the segment. A slot the
    /// attribute index reused for a newer point may still name a tombstoned id here; the search
    /// never returns tombstoned ids.
    pub(super) fn allowed_ids(&self, allowed: &RoaringBitmap) -> Result<IdSet> {
        let mut set = IdSet::new(self.segment.len());
        for slot in allowed.range(..self.ids_by_slot.len() as u32) {
            let id = self.ids_by_slot[slot as usize];
            if id != u32::MAX {
                set.insert(InternalId::new(id)).map_err(QueryError::Index)?;
            }
        }
        Ok(set)
    }

    /// Searches the segment for the best `k` among `allowed` slots (all if `None`).
    ///
    /// A sparse allowed set (at most one slot in [`SPARSE_ALLOWED`]) is turned into a bitset of
    /// the segment's ids, which costs time in proportion to its size and makes each test in the
    /// walk one bit. A dense one is tested in place: there the roaring bitmap keeps bitmap
    /// containers, whose lookups are cheap too, and converting tens of thousands of slots per
    /// query cost more than the walk saved (measured with the `acl_search` example: at 41% of
    /// debian-minilm visible, 827 µs a query against 640 µs).
    pub(super) fn search<'s>(
        &self,
        query: &Query<'_>,
        params: &SearchParams,
        allowed: Option<&RoaringBitmap>,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [bulkhead_index::Hit]> {
        match allowed {
            None => self.segment.search_query(query, params, scratch),
            Some(set) if set.len().saturating_mul(SPARSE_ALLOWED) <= self.ids_by_slot.len() as u64 => {
                self.segment.search_filtered_query(query, params, &self.allowed_ids(set)?, scratch)
            }
            Some(set) => self.segment.search_filtered_query(
                query,
                params,
                &SlotFilter { frozen: self, allowed: set },
                scratch,
            ),
        }
        .map_err(QueryError::Index)
    }
}

/// An allowed set is sparse when it holds at most one slot in this many (roaring's own switch
/// from sorted arrays to bitmaps, 4,096 of 65,536).
const SPARSE_ALLOWED: u64 = 16;

/// The segment's view of a dense allowed set of slots.
pub(super) struct SlotFilter<'a> {
    frozen: &'a Frozen,
    allowed: &'a RoaringBitmap,
}

impl bulkhead_index::Filter for SlotFilter<'_> {
    fn allows(&self, id: InternalId) -> bool {
        self.frozen.slots.get(id.get() as usize).is_some_and(|&slot| self.allowed.contains(slot))
    }

    fn estimated_count(&self) -> Option<usize> {
        Some((self.allowed.len() as usize).min(self.frozen.slots.len()))
    }

    fn for_each_allowed(&self, len: usize, visit: &mut dyn FnMut(InternalId)) {
        // Only an exact plan asks (a large `ef` can make the planner scan a dense set).
        if let Ok(set) = self.frozen.allowed_ids(self.allowed) {
            bulkhead_index::Filter::for_each_allowed(&set, len, visit);
        }
    }
}
