//! A search's reusable per-thread state (`SearchScratch`: the visited set, the heaps, the hits), and
//! the packed `u64` keys the heaps order (distance bits, then id).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Hit, Plan};

/// Reusable per-thread search state; keep one per worker thread and pass it to every search.
///
/// It grows to fit the largest segment and beam it has served and is never shrunk, so a warmed-up
/// scratch makes searches allocation-free.
#[derive(Debug, Default)]
pub struct SearchScratch {
    pub(super) visited: Visited,
    pub(super) candidates: BinaryHeap<Reverse<u64>>,
    pub(super) results: BinaryHeap<u64>,
    pub(super) batch: Vec<u32>,
    pub(super) batch_distances: Vec<f32>,
    pub(super) skipped: Vec<u32>,
    pub(super) scan_ids: Vec<u32>,
    pub(super) scan_distances: Vec<f32>,
    pub(super) hits: Vec<Hit>,
    pub(super) plan: Plan,
    pub(super) distance_count: usize,
    /// When on, every id a distance is computed for, in order (the scoring hook for tests).
    pub(super) scored: Option<Vec<u32>>,
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

    /// Forgets the previous search's hits, distance count and scoring log (kept on, if it was).
    pub(crate) fn begin(&mut self) {
        self.distance_count = 0;
        self.hits.clear();
        if let Some(log) = &mut self.scored {
            log.clear();
        }
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
        let entry = &mut self.marks[id as usize];
        let fresh = *entry != self.epoch;
        *entry = self.epoch;
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
