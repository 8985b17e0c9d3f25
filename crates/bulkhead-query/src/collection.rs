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

use crate::attrs::AttrIndex;
use crate::exact::{FlatIndex, MAP_ENTRY_BYTES, kernel_error, ranking_distance, score};
use crate::{QueryError, Result};
use bulkhead_distance::VectorArena;
use bulkhead_index::{
    BuildOptions, FrozenSegment, HnswParams, IdSet, InternalId, Planner, SearchParams, SearchScratch,
};
use bulkhead_storage::{
    Acl, CollectionInfo, IndexSnapshotSink, MetaValue, Metric, PointRef, SavedSegment, TenantHandle,
};
use roaring::RoaringBitmap;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Candidates the graph walk keeps (its `ef`) at least; raised to `k` for larger `k`. At 64,
/// recall@10 on debian-minilm was 0.988 (docs/BENCHMARKS.md).
const MIN_EF: usize = 64;

thread_local! {
    /// Each search thread reuses one scratch (visited set and heaps) across queries.
    static SCRATCH: RefCell<SearchScratch> = RefCell::new(SearchScratch::new());
}

static NEXT_BUILD: AtomicU64 = AtomicU64::new(1);

fn index_error(e: bulkhead_index::IndexError) -> QueryError {
    QueryError::Internal(format!("index: {e}"))
}

/// A frozen segment and which points it still covers.
struct Frozen {
    segment: FrozenSegment,
    /// A random number naming this segment, reported with every hit it serves.
    generation: u64,
    /// The point of each internal id, and its attribute slot (`u32::MAX` for none).
    refs: Vec<PointRef>,
    slots: Vec<u32>,
    /// The internal id of each point the segment still covers.
    covered: HashMap<PointRef, InternalId>,
    /// The internal id of each attribute slot (`u32::MAX` for none), so that an allowed set of
    /// slots becomes a bitset of internal ids in time proportional to its size.
    ids_by_slot: Vec<u32>,
    /// Its snapshot in storage, once saved.
    saved: Option<SavedSegment>,
}

impl Frozen {
    /// A segment with the attribute slot of each of its ids (`u32::MAX` for none).
    fn new(
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
    fn dead(&self) -> usize {
        self.segment.len() - self.covered.len()
    }

    /// Whether so many of its entries are dead that it should be rebuilt from its live points.
    fn needs_purge(&self, threshold: usize) -> bool {
        let dead = self.dead();
        dead >= (threshold / 4).max(1) && dead as f64 > PURGE_FRACTION * self.segment.len() as f64
    }

    /// The segment's ids whose slots are in `allowed`, as a bitset over the segment. A slot the
    /// attribute index reused for a newer point may still name a tombstoned id here; the search
    /// never returns tombstoned ids.
    fn allowed_ids(&self, allowed: &RoaringBitmap) -> Result<IdSet> {
        let mut set = IdSet::new(self.segment.len());
        for slot in allowed.range(..self.ids_by_slot.len() as u32) {
            let id = self.ids_by_slot[slot as usize];
            if id != u32::MAX {
                set.insert(InternalId::new(id)).map_err(index_error)?;
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
    fn search<'s>(
        &self,
        query: &[f32],
        params: &SearchParams,
        allowed: Option<&RoaringBitmap>,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [bulkhead_index::Hit]> {
        match allowed {
            None => self.segment.search(query, params, scratch),
            Some(set) if set.len().saturating_mul(SPARSE_ALLOWED) <= self.ids_by_slot.len() as u64 => {
                self.segment.search_filtered(query, params, &self.allowed_ids(set)?, scratch)
            }
            Some(set) => self.segment.search_filtered(
                query,
                params,
                &SlotFilter { frozen: self, allowed: set },
                scratch,
            ),
        }
        .map_err(index_error)
    }
}

/// An allowed set is sparse when it holds at most one slot in this many (roaring's own switch
/// from sorted arrays to bitmaps, 4,096 of 65,536).
const SPARSE_ALLOWED: u64 = 16;

/// The segment's view of a dense allowed set of slots.
struct SlotFilter<'a> {
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

/// A job in flight: what it takes, and which points changed since it took them.
struct Ticket {
    id: u64,
    /// Whether it takes the delta's points (a flush).
    flush: bool,
    /// The generations of the segments its result replaces.
    replaces: Vec<u64>,
    dirty: HashSet<PointRef>,
    /// Set when nobody needs the job's result any more (the state is dropped: evicted, its
    /// collection dropped, the database closed): the build stops at its next chunk.
    cancel: Arc<AtomicBool>,
    /// The memory the job holds while it runs (its input copies and the graph it builds), counted
    /// in the collection's [`CollectionState::memory_bytes`].
    bytes: usize,
}

/// Points for a job, taken under the collection's lock: references and their vectors.
pub(crate) struct Points {
    refs: Vec<PointRef>,
    arena: VectorArena,
}

/// A segment a job reads (a cheap clone: vectors and graph are shared) with its live entries.
pub(crate) struct Input {
    segment: FrozenSegment,
    refs: Vec<PointRef>,
    live: Vec<InternalId>,
}

/// What a job builds.
pub(crate) enum Work {
    /// A new segment over these points.
    Build(Points),
    /// `base` (every entry, tombstones included) extended with these points.
    Extend { base: Input, points: Points },
    /// One segment in place of `inputs`: the input `base` names extended with the live points of
    /// the others, or, when `base` is `None`, a fresh build over every input's live points (which
    /// drops every tombstone).
    Merge { inputs: Vec<Input>, base: Option<usize> },
}

/// The input of a background job, taken under the collection's lock.
pub(crate) struct BuildJob {
    pub(crate) id: u64,
    pub(crate) generation: u64,
    pub(crate) metric: bulkhead_distance::Metric,
    pub(crate) work: Work,
    /// Set when the job's result is no longer wanted (see [`Ticket::cancel`]).
    pub(crate) cancel: Arc<AtomicBool>,
}

impl BuildJob {
    /// Whether the job was cancelled (its result would be thrown away).
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// A graph row's bytes beyond its vector: a level-0 list of `2m` slots (m = 16), upper levels,
/// the row's norm and alignment, and its point reference.
const GRAPH_ROW_BYTES: usize = 2 * 16 * 4 + 64 + 32;

impl Work {
    /// What the job holds while it runs: every row of the segment it produces (copied vectors and
    /// the new graph), which is at most its inputs plus its new points.
    fn memory_bytes(&self) -> usize {
        let row = |dim: usize| dim * 4 + GRAPH_ROW_BYTES;
        match self {
            Work::Build(points) => points.refs.len() * row(points.arena.dim()),
            Work::Extend { base, points } => (base.refs.len() + points.refs.len()) * row(points.arena.dim()),
            Work::Merge { inputs, .. } => {
                inputs.iter().map(|input| input.refs.len() * row(input.segment.dim())).sum()
            }
        }
    }
}

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
/// collection for this long (checked by searches and status reads)...
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
    /// When the last write or delete reached the state (or it was loaded).
    last_write: Instant,
}

/// The first bytes of a collection's index snapshot, and its version.
const SNAPSHOT_MAGIC: [u8; 8] = *b"BHCOLSN\0";
const SNAPSHOT_VERSION: u32 = 1;

/// Bytes before the point references: magic, version, `n`, generation.
const SNAPSHOT_HEADER: usize = 24;

/// A collection's index snapshot: the version, the number of points `n`, the segment's generation,
/// each point's 32-byte reference in internal-id order, then the segment's own serialised form.
pub(crate) fn encode_snapshot(refs: &[PointRef], segment: &FrozenSegment, generation: u64) -> Vec<u8> {
    let graph = segment.to_bytes();
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER + refs.len() * 32 + graph.len());
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&(refs.len() as u32).to_le_bytes());
    out.extend_from_slice(&generation.to_le_bytes());
    for point_ref in refs {
        out.extend_from_slice(&point_ref.to_bytes());
    }
    out.extend_from_slice(&graph);
    out
}

/// Reads a snapshot back, checking it against the collection it was loaded for.
fn decode_snapshot(
    bytes: &[u8],
    collection: &CollectionInfo,
) -> Result<(FrozenSegment, Vec<PointRef>, u64), String> {
    let header = bytes.get(..SNAPSHOT_HEADER).ok_or("shorter than its header")?;
    if header[..8] != SNAPSHOT_MAGIC {
        return Err("bad magic".into());
    }
    let word = |at: usize| u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    if word(8) != SNAPSHOT_VERSION {
        return Err(format!("unsupported snapshot version {}", word(8)));
    }
    let n = word(12) as usize;
    let generation = u64::from(word(16)) | (u64::from(word(20)) << 32);
    let refs_end = n.checked_mul(32).and_then(|b| b.checked_add(SNAPSHOT_HEADER)).ok_or("too many points")?;
    let ref_bytes = bytes.get(SNAPSHOT_HEADER..refs_end).ok_or("truncated point references")?;
    let segment = FrozenSegment::from_bytes(&bytes[refs_end..]).map_err(|e| e.to_string())?;
    let metric = graph_metric(collection.metric).ok_or("the collection's metric has no graph")?;
    if segment.len() != n || segment.dim() != collection.dimension || segment.metric() != metric {
        return Err("segment does not match the collection".into());
    }
    let refs: Vec<PointRef> =
        ref_bytes.chunks_exact(32).map(|c| PointRef::from_bytes(c.try_into().unwrap_or([0; 32]))).collect();
    Ok((segment, refs, generation))
}

/// The kernel metric a graph over a collection of `metric` uses; `None` for dot collections, which
/// stay exact (the graph's dot distance assumes unit vectors).
fn graph_metric(metric: Metric) -> Option<bulkhead_distance::Metric> {
    match metric {
        Metric::Cosine => Some(bulkhead_distance::Metric::Cosine),
        Metric::L2 => Some(bulkhead_distance::Metric::L2),
        Metric::Dot => None,
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl CollectionState {
    /// Loads a collection: the segments of its snapshot that open, and every stored vector (see
    /// the module documentation for how the two are reconciled).
    pub(crate) fn load(handle: &TenantHandle<'_>, collection: &CollectionInfo) -> Result<CollectionState> {
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
                    frozen.segment.delete(id).map_err(index_error)?;
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
            last_write: Instant::now(),
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
        self.last_write = Instant::now();
        for frozen in &mut self.segments {
            if let Some(id) = frozen.covered.remove(point_ref) {
                frozen.segment.delete(id).map_err(index_error)?;
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
        query: &[f32],
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
                    ranked.push((point_ref, ranking_distance(self.metric, query, vector)?));
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

    /// The background jobs the collection needs now and that are not running yet (see the module
    /// documentation): at most one flush of the delta and one merge or purge of segments. Each
    /// job's input is taken now; its ticket records the points written while it runs. Dot
    /// collections stay exact: the graph's dot distance assumes unit vectors.
    pub(crate) fn take_jobs(&mut self, threshold: usize) -> Result<Vec<BuildJob>> {
        let Some(metric) = graph_metric(self.metric) else { return Ok(Vec::new()) };
        let threshold = threshold.max(1);
        let busy: HashSet<u64> = self.jobs.iter().flat_map(|job| job.replaces.iter().copied()).collect();
        let mut jobs = Vec::new();
        if !self.jobs.iter().any(|job| job.flush)
            && (self.delta.len() >= threshold || self.idle_flush_due(threshold))
        {
            let points = self.delta_points()?;
            // The smallest free segment, if it is small and clean enough to grow.
            let small = self
                .segments
                .iter()
                .filter(|f| !busy.contains(&f.generation) && !f.needs_purge(threshold))
                .filter(|f| f.covered.len() <= EXTEND_MAX_FACTOR * threshold)
                .min_by_key(|f| f.covered.len());
            let (work, replaces) = match small {
                Some(frozen) => (Work::Extend { base: input(frozen), points }, vec![frozen.generation]),
                None => (Work::Build(points), Vec::new()),
            };
            jobs.push(self.ticket(metric, work, true, replaces));
        }
        let busy: HashSet<u64> = self.jobs.iter().flat_map(|job| job.replaces.iter().copied()).collect();
        if self.jobs.iter().all(|job| job.flush) {
            let free: Vec<&Frozen> = self.segments.iter().filter(|f| !busy.contains(&f.generation)).collect();
            let largest = free.iter().enumerate().max_by_key(|(_, f)| f.covered.len()).map(|(i, _)| i);
            if let Some(largest) = largest {
                let others: usize = free
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != largest)
                    .map(|(_, f)| f.covered.len())
                    .sum();
                let merge = free.len() > MAX_SEGMENTS
                    || (free.len() >= 2 && others.saturating_mul(MERGE_RATIO) >= free[largest].covered.len());
                let purge = free[largest].needs_purge(threshold);
                if merge || free.iter().any(|f| f.needs_purge(threshold)) {
                    let inputs: Vec<Input> = free.iter().map(|f| input(f)).collect();
                    let replaces = free.iter().map(|f| f.generation).collect();
                    let base = (!purge).then_some(largest);
                    jobs.push(self.ticket(metric, Work::Merge { inputs, base }, false, replaces));
                }
            }
        }
        Ok(jobs)
    }

    /// Whether the delta, below the threshold, should still go into a segment because no write
    /// has come for [`IDLE_FLUSH_AFTER`]: it holds at least [`IDLE_FLUSH_MIN`] points (or the
    /// threshold, if lower), the collection has a graph metric and no flush runs.
    pub(crate) fn idle_flush_due(&self, threshold: usize) -> bool {
        graph_metric(self.metric).is_some()
            && self.delta.len() >= IDLE_FLUSH_MIN.min(threshold.max(1))
            && !self.jobs.iter().any(|job| job.flush)
            && self.last_write.elapsed() >= IDLE_FLUSH_AFTER
    }

    /// Registers a job and returns it.
    fn ticket(
        &mut self,
        metric: bulkhead_distance::Metric,
        work: Work,
        flush: bool,
        replaces: Vec<u64>,
    ) -> BuildJob {
        let id = NEXT_BUILD.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(AtomicBool::new(false));
        let bytes = work.memory_bytes();
        self.jobs.push(Ticket {
            id,
            flush,
            replaces,
            dirty: HashSet::new(),
            cancel: Arc::clone(&cancel),
            bytes,
        });
        let generation = u64::from_le_bytes(bulkhead_crypto::random_bytes());
        BuildJob { id, generation, metric, work, cancel }
    }

    /// A copy of the delta's live points.
    fn delta_points(&self) -> Result<Points> {
        let mut arena =
            VectorArena::with_capacity(self.delta.dim(), self.delta.len()).map_err(kernel_error)?;
        let mut refs = Vec::with_capacity(self.delta.len());
        for (point_ref, vector) in self.delta.live_points() {
            arena.push(vector).map_err(kernel_error)?;
            refs.push(point_ref);
        }
        Ok(Points { refs, arena })
    }

    /// Installs a finished job if it is still in flight (returns whether it did): the segments it
    /// replaces go, its result comes in with the points that changed since it started tombstoned,
    /// and the delta keeps only what no segment covers.
    pub(crate) fn install(&mut self, job_id: u64, built: Built) -> Result<bool> {
        let Some(position) = self.jobs.iter().position(|job| job.id == job_id) else { return Ok(false) };
        let ticket = self.jobs.swap_remove(position);
        let Built { generation, refs, mut segment, .. } = built;
        let mut covered = HashMap::with_capacity(refs.len());
        for (i, point_ref) in refs.iter().enumerate() {
            let id = InternalId::new(i as u32);
            if segment.is_deleted(id) {
                continue;
            }
            if ticket.dirty.contains(point_ref) {
                segment.delete(id).map_err(index_error)?;
            } else {
                covered.insert(*point_ref, id);
            }
        }
        if ticket.flush {
            for point_ref in covered.keys() {
                self.delta.remove(point_ref)?;
            }
        }
        self.segments.retain(|f| !ticket.replaces.contains(&f.generation));
        let slots = refs.iter().map(|r| self.attrs.slot(r).unwrap_or(u32::MAX)).collect();
        if !covered.is_empty() {
            self.segments.push(Frozen::new(segment, generation, refs, slots, covered));
        }
        Ok(true)
    }

    /// Forgets a failed job so that a later write can start another.
    pub(crate) fn abandon(&mut self, job_id: u64) {
        self.jobs.retain(|job| job.id != job_id);
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

/// A job's view of a segment: a clone (shared vectors and graph) and its live entries now.
fn input(frozen: &Frozen) -> Input {
    let mut live: Vec<InternalId> = frozen.covered.values().copied().collect();
    live.sort_unstable_by_key(|id| id.get());
    Input { segment: frozen.segment.clone(), refs: frozen.refs.clone(), live }
}

/// A finished job: the segment and its snapshot bytes, ready to install and save.
pub(crate) struct Built {
    pub(crate) generation: u64,
    pub(crate) refs: Vec<PointRef>,
    pub(crate) segment: FrozenSegment,
    pub(crate) snapshot: Vec<u8>,
}

/// Runs a job and serialises its snapshot (on a background thread, outside the collection's lock).
pub(crate) fn build(job: BuildJob) -> (u64, Result<Built>) {
    let BuildJob { id, generation, metric, work, cancel } = job;
    let built = run(work, metric, &cancel).map(|(segment, refs)| {
        let snapshot = encode_snapshot(&refs, &segment, generation);
        Built { generation, refs, segment, snapshot }
    });
    (id, built)
}

/// The segment a job's work produces, with the point of each of its ids.
fn run(
    work: Work,
    metric: bulkhead_distance::Metric,
    cancel: &Arc<AtomicBool>,
) -> Result<(FrozenSegment, Vec<PointRef>)> {
    let options = BuildOptions::new().with_cancel(Arc::clone(cancel));
    match work {
        Work::Build(points) => {
            let segment = FrozenSegment::build_with_options(
                points.arena,
                metric,
                HnswParams::default(),
                options,
                |_, _| {},
            )
            .map_err(index_error)?;
            Ok((segment, points.refs))
        }
        Work::Extend { base, points } => {
            let segment =
                base.segment.extend(points.arena.iter(), options, |_, _| {}).map_err(index_error)?;
            let mut refs = base.refs;
            refs.extend(points.refs);
            Ok((segment, refs))
        }
        Work::Merge { mut inputs, base } => {
            let base = base.filter(|&i| i < inputs.len()).map(|i| inputs.swap_remove(i));
            let dim = base.as_ref().or(inputs.first()).map_or(0, |input| input.segment.dim());
            let total = inputs.iter().map(|input| input.live.len()).sum();
            let mut points = Points {
                refs: Vec::with_capacity(total),
                arena: VectorArena::with_capacity(dim, total).map_err(kernel_error)?,
            };
            for input in &inputs {
                for &id in &input.live {
                    let vector = input
                        .segment
                        .vector(id)
                        .ok_or(QueryError::Internal("live id out of range".into()))?;
                    points.arena.push(vector).map_err(kernel_error)?;
                    points.refs.push(input.refs[id.get() as usize]);
                }
            }
            match base {
                Some(base) => run(Work::Extend { base, points }, metric, cancel),
                None => run(Work::Build(points), metric, cancel),
            }
        }
    }
}

/// Saves a job's segment snapshot through `sink`, without listing it in the collection's head
/// yet; failures are logged, not fatal (the records remain the source of truth).
pub(crate) fn save_segment(sink: &IndexSnapshotSink, snapshot: &[u8]) -> Option<SavedSegment> {
    match sink.save_segment(snapshot) {
        Ok(saved) => saved,
        Err(e) => {
            tracing::warn!(error = %e, "an index snapshot could not be saved; it will be rebuilt after a restart");
            None
        }
    }
}

/// Makes `segments` the collection's listed snapshots; a failure is logged.
pub(crate) fn list_segments(sink: &IndexSnapshotSink, segments: &[SavedSegment]) {
    if let Err(e) = sink.set_segments(segments) {
        tracing::warn!(error = %e, "the index snapshot head could not be written; segments will be rebuilt after a restart");
    }
}
