//! A collection's search state: an exact-scan delta that takes every write, and, once the collection
//! is large, HNSW segments built in the background from it and merged in the background.
//!
//! Invariant: every live point is in exactly one place: the delta or one segment. A segment *covers*
//! the points it was built from, minus those written or deleted since (those are tombstoned in it,
//! and the new version, if any, lives in the delta). A search asks the delta and every segment and
//! merges by distance, so a write is visible to the next search whether or not a job is running.
//!
//! # Segments and their jobs
//!
//! Background jobs keep the delta small and the segments few (see [`CollectionState::take_jobs`]):
//!
//! - **Flush**: once the delta holds the graph threshold (or, after [`IDLE_FLUSH_AFTER`] without
//!   writes, at least [`IDLE_FLUSH_MIN`] points), its points go into a segment. If there is
//!   a small segment (at most [`EXTEND_MAX_FACTOR`] thresholds of points), that segment is extended
//!   with them (its graph copied and the new points inserted, so each point is inserted once);
//!   otherwise a new segment is built from the delta alone.
//! - **Merge**: when there are more than [`MAX_SEGMENTS`] segments, or the smaller ones hold at
//!   least one [`MERGE_RATIO`]th of the largest's points, the largest is extended with the live
//!   points of the others, which are then dropped. So a point is inserted into a graph about twice
//!   over its life, however large the collection grows, instead of once per rebuild.
//! - **Purge**: tombstones stay in a graph as waypoints. When more than [`PURGE_FRACTION`] of a
//!   segment's points are tombstones (and at least a quarter threshold of them), the merge or a
//!   job of its own builds the segment anew from its live points instead, which drops them.
//!
//! At most one flush and one merge (or purge) run at a time, on separate threads; a flush never
//! touches a segment a merge is reading. Points written or deleted while a job runs are tombstoned
//! in its result when it is installed.
//!
//! # Snapshots
//!
//! Each installed segment is saved as a sealed snapshot of its own (its point references, then the
//! segment's serialised form), and the collection's head in storage lists the saved segments in
//! use. Loading a collection reads the listed snapshots and the records: a stored point whose
//! vector is bit-for-bit the one a segment holds for it is covered by that segment (by the first
//! such segment, should two hold it); any other point goes to the delta, and segment entries
//! without such a match are tombstoned. So a snapshot saved before later writes, or not at all, or
//! damaged (then ignored, with a log line) never changes a result; it only saves a rebuild.

mod planner;
mod searcher;
mod segment;
mod snapshot;
#[cfg(test)]
mod tests;

pub(crate) use planner::{BuildJob, build};
pub(crate) use snapshot::{list_segments, save_segment};

use crate::attrs::AttrIndex;
use crate::exact::{FlatIndex, MAP_ENTRY_BYTES};
use crate::format::decode_snapshot;
use crate::{QueryError, Result};
use bulkhead_index::InternalId;
use bulkhead_storage::{Acl, Clock, CollectionInfo, MetaValue, Metric, PointRef, SavedSegment, TenantHandle};
use planner::Ticket;
use segment::Frozen;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A flush extends a segment of at most this many graph thresholds of live points instead of
/// building a new one.
pub(crate) const EXTEND_MAX_FACTOR: usize = 4;

/// A merge starts when there are more segments than this...
pub(crate) const MAX_SEGMENTS: usize = 3;

/// ...or when the segments other than the largest hold at least `1 / MERGE_RATIO` of its points.
pub(crate) const MERGE_RATIO: usize = 8;

/// A segment more than this fraction of whose entries are tombstones is rebuilt without them.
pub(crate) const PURGE_FRACTION: f64 = 0.2;

/// A delta smaller than the threshold is flushed all the same once no write has reached the
/// collection for this long on the database's clock (checked by searches and status reads)...
pub(crate) const IDLE_FLUSH_AFTER: Duration = Duration::from_secs(1);

/// ...if it holds at least this many points. Each costs about 85 ns of exact scan per 384-d
/// query (measured with the `segments` example: 556 delta points took a search from 289 to 336
/// µs), so the floor keeps under about 20 µs.
pub(crate) const IDLE_FLUSH_MIN: usize = 256;

/// Which part of a collection's index held a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexSource {
    /// The exact-scan delta of recent writes.
    Delta,
    /// The HNSW segment with this generation (a random number given at build time, kept in its
    /// snapshot).
    Segment {
        /// The segment's generation.
        generation: u64,
    },
}

/// What a collection's search state looks like, for operators and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphStatus {
    /// Whether the state is in memory (it loads on first use and may be evicted).
    pub loaded: bool,
    /// Points served by the HNSW segments.
    pub graph_points: usize,
    /// How many HNSW segments there are.
    pub segments: usize,
    /// Entries the segments hold for points rewritten or deleted since (they route searches and
    /// are never returned; a purge drops them).
    pub tombstones: usize,
    /// Points served by the exact-scan delta.
    pub delta_points: usize,
    /// Whether a background job (a flush into a segment, a merge or a purge) is running.
    pub building: bool,
    /// Whether every segment in use is saved as a snapshot (false when there is no segment).
    pub snapshot_saved: bool,
    /// Approximate bytes of memory the state holds.
    pub memory_bytes: usize,
}

pub(crate) struct CollectionState {
    metric: Metric,
    attrs: AttrIndex,
    delta: FlatIndex,
    segments: Vec<Frozen>,
    jobs: Vec<Ticket>,
    /// When the last write or delete reached the state (or it was loaded), on `clock`.
    last_write: Instant,
    /// The database's clock, which the idle flush reads.
    clock: Clock,
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl CollectionState {
    /// Loads a collection: the segments of its snapshot that open, and every stored vector (see
    /// the module documentation for how the two are reconciled). The idle flush reads `clock`.
    pub(crate) fn load(
        handle: &TenantHandle<'_>,
        collection: &CollectionInfo,
        clock: Clock,
    ) -> Result<CollectionState> {
        let mut snapshots = Vec::new();
        match handle.load_index_snapshots(collection) {
            Ok(listed) => {
                for (saved, bytes) in listed {
                    match bytes.map_err(|e| e.to_string()).and_then(|b| decode_snapshot(&b, collection)) {
                        Ok(snapshot) => snapshots.push((saved, snapshot)),
                        Err(reason) => tracing::warn!(
                            %reason,
                            "an index segment snapshot did not load; its points are rebuilt from the records"
                        ),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "an index snapshot did not open; rebuilding it from the records");
            }
        }
        let mut attrs = AttrIndex::default();
        handle.scan_payloads(collection, |point_ref, payload| {
            attrs.upsert(point_ref, &payload.acl, &payload.metadata);
        })?;
        let mut delta = FlatIndex::empty(collection.dimension)?;
        let mut failure = None;
        // Where each point a snapshot holds is: (segment, id). The first segment to hold a point
        // is asked; the others' entries for it stay uncovered and are tombstoned below.
        let mut index: HashMap<PointRef, (usize, InternalId)> = HashMap::new();
        let mut segments: Vec<Frozen> = Vec::with_capacity(snapshots.len());
        for (position, (saved, (segment, refs, generation))) in snapshots.into_iter().enumerate() {
            for (i, point_ref) in refs.iter().enumerate() {
                index.entry(*point_ref).or_insert((position, InternalId::new(i as u32)));
            }
            let slots = refs.iter().map(|r| attrs.slot(r).unwrap_or(u32::MAX)).collect();
            let mut frozen = Frozen::new(segment, generation, refs, slots, HashMap::new());
            frozen.saved = Some(saved);
            segments.push(frozen);
        }
        handle.scan_vectors(collection, |point_ref, vector| {
            if let Some(&(position, id)) = index.get(&point_ref) {
                let frozen = &mut segments[position];
                if frozen.segment.vector(id).is_some_and(|held| same_bits(held, vector)) {
                    frozen.covered.insert(point_ref, id);
                    return;
                }
            }
            // A vector whose payload is missing (never written that way) is visible to nobody.
            let slot = attrs.slot(&point_ref).unwrap_or_else(|| {
                attrs.upsert(point_ref, &Acl::Restricted { users: vec![], groups: vec![] }, &BTreeMap::new())
            });
            if failure.is_none()
                && let Err(e) = delta.upsert(point_ref, slot, vector)
            {
                failure = Some(e);
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        for frozen in &mut segments {
            for (i, point_ref) in frozen.refs.iter().enumerate() {
                let id = InternalId::new(i as u32);
                if frozen.covered.get(point_ref) != Some(&id) {
                    frozen.segment.delete(id).map_err(QueryError::Index)?;
                }
            }
        }
        // A segment that covers nothing any more (all of it rewritten since) is dropped.
        segments.retain(|frozen| !frozen.covered.is_empty());
        Ok(CollectionState {
            metric: collection.metric,
            attrs,
            delta,
            segments,
            jobs: Vec::new(),
            last_write: clock.now(),
            clock,
        })
    }

    pub(crate) fn status(&self) -> GraphStatus {
        GraphStatus {
            loaded: true,
            graph_points: self.segments.iter().map(|f| f.covered.len()).sum(),
            segments: self.segments.len(),
            tombstones: self.segments.iter().map(Frozen::dead).sum(),
            delta_points: self.delta.len(),
            building: self.building(),
            snapshot_saved: !self.segments.is_empty() && self.segments.iter().all(|f| f.saved.is_some()),
            memory_bytes: self.memory_bytes(),
        }
    }

    /// Whether a background job is running (such a collection is not evicted).
    pub(crate) fn building(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Approximate heap bytes held: the delta, the segments with their point maps, the attribute
    /// bitmaps, and what the running jobs hold (their inputs and the graphs they build).
    pub(crate) fn memory_bytes(&self) -> usize {
        let segments: usize = self
            .segments
            .iter()
            .map(|f| {
                f.segment.memory_bytes()
                    + f.refs.len() * size_of::<PointRef>()
                    + (f.slots.len() + f.ids_by_slot.len()) * size_of::<u32>()
                    + f.covered.len() * MAP_ENTRY_BYTES
            })
            .sum();
        let jobs: usize = self.jobs.iter().map(|job| job.bytes).sum();
        self.delta.memory_bytes() + segments + self.attrs.memory_bytes() + jobs
    }

    /// Records that the segment `generation` is saved as `saved`, and returns the snapshots of
    /// every segment now in use that is saved (what the collection's head should list), or `None`
    /// if that segment is no longer in use (merged away, or the state was reloaded).
    pub(crate) fn mark_saved(&mut self, generation: u64, saved: SavedSegment) -> Option<Vec<SavedSegment>> {
        let frozen = self.segments.iter_mut().find(|f| f.generation == generation)?;
        frozen.saved = Some(saved);
        Some(self.segments.iter().filter_map(|f| f.saved).collect())
    }

    /// Takes a point out of the segment that covers it (it was rewritten or deleted) and
    /// remembers it for the jobs in flight.
    fn uncover(&mut self, point_ref: &PointRef) -> Result<()> {
        self.last_write = self.clock.now();
        for frozen in &mut self.segments {
            if let Some(id) = frozen.covered.remove(point_ref) {
                frozen.segment.delete(id).map_err(QueryError::Index)?;
                break;
            }
        }
        for job in &mut self.jobs {
            job.dirty.insert(*point_ref);
        }
        Ok(())
    }

    pub(crate) fn upsert(
        &mut self,
        point_ref: PointRef,
        vector: &[f32],
        acl: &Acl,
        metadata: &BTreeMap<String, MetaValue>,
    ) -> Result<()> {
        self.uncover(&point_ref)?;
        let slot = self.attrs.upsert(point_ref, acl, metadata);
        self.delta.upsert(point_ref, slot, vector)
    }

    pub(crate) fn remove(&mut self, point_ref: &PointRef) -> Result<()> {
        self.uncover(point_ref)?;
        self.attrs.remove(point_ref);
        self.delta.remove(point_ref)
    }

    /// The attribute index (for allowed sets and match reasons).
    pub(crate) fn attrs(&self) -> &AttrIndex {
        &self.attrs
    }

    /// The number of live points.
    fn len(&self) -> usize {
        self.delta.len() + self.segments.iter().map(|f| f.covered.len()).sum::<usize>()
    }

    /// Where a point's current vector lives (`None` if nowhere).
    pub(crate) fn source(&self, point_ref: &PointRef) -> Option<IndexSource> {
        if self.delta.vector(point_ref).is_some() {
            return Some(IndexSource::Delta);
        }
        self.segments
            .iter()
            .find(|f| f.covered.contains_key(point_ref))
            .map(|f| IndexSource::Segment { generation: f.generation })
    }
}

impl Drop for CollectionState {
    /// A dropped state (evicted, its collection dropped, the database closing) wants no job result:
    /// its running jobs stop at their next chunk, its queued ones never start.
    fn drop(&mut self) {
        for job in &self.jobs {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }
}
