//! A collection's entry in the database's map of search state: the state itself (loaded on first
//! use, dropped on eviction), when it was last used, the memory it held when last measured, its
//! data epoch (for cached results) and the turn its snapshot saves take.

use crate::collection::CollectionState;
use parking_lot::RwLock;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A collection's search state (`None` until its first search or write loads it, and again once
/// evicted), when it was last used, and the memory it held when last measured.
#[derive(Default)]
pub(crate) struct CollectionEntry {
    pub(crate) state: RwLock<Option<CollectionState>>,
    pub(crate) last_used: AtomicU64,
    pub(crate) memory: AtomicUsize,
    /// Moves on every write, delete or drop of the collection (under the state's write lock), so
    /// cached results computed before it no longer match. Survives eviction.
    pub(crate) epoch: AtomicU64,
    /// Held while a job saves its segment's snapshot and lists the saved segments.
    pub(crate) snapshots: parking_lot::Mutex<()>,
}

impl CollectionEntry {
    /// Records the memory `state` holds now (what the budget sums).
    pub(crate) fn measure(&self, state: &Option<CollectionState>) {
        self.memory.store(state.as_ref().map_or(0, CollectionState::memory_bytes), Ordering::Relaxed);
    }
}

/// A shared handle on an entry: the database's map and every job of the collection hold one.
pub(crate) type Entry = Arc<CollectionEntry>;
