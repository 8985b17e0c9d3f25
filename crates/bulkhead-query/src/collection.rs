//! A collection's search state: an exact-scan delta that takes every write, and, once the collection
//! is large, an HNSW segment frozen in the background from a snapshot of it.
//!
//! Invariant: every live point is in exactly one of the two places. The segment *covers* the points it
//! was built from, minus those written or deleted since (those are tombstoned in the segment, and the
//! new version, if any, lives in the delta). A search asks both and merges by distance, so a write is
//! visible to the next search whether or not a build is running.
//!
//! Each installed segment is saved as a sealed snapshot (its point references, then the segment's
//! own serialised form). Loading a collection reads the snapshot and the records: a stored point
//! whose vector is bit-for-bit the one the segment holds for it is covered by the segment; any other
//! point goes to the delta, and segment entries without such a match are tombstoned. So a snapshot
//! saved before later writes, or not at all, or damaged (then ignored, with a log line) never
//! changes a result; it only saves the rebuild.

use crate::attrs::AttrIndex;
use crate::exact::{FlatIndex, MAP_ENTRY_BYTES, kernel_error, ranking_distance, score};
use crate::{QueryError, Result};
use bulkhead_distance::VectorArena;
use bulkhead_index::{FrozenSegment, HnswParams, IdSet, InternalId, Planner, SearchParams, SearchScratch};
use bulkhead_storage::{Acl, CollectionInfo, IndexSnapshotSink, MetaValue, Metric, PointRef, TenantHandle};
use roaring::RoaringBitmap;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

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
        Frozen { segment, generation, refs, slots, covered, ids_by_slot }
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

/// A build in flight: which snapshot it started from, and which points changed since.
struct BuildTicket {
    id: u64,
    dirty: HashSet<PointRef>,
}

/// The input of a background build, taken under the collection's lock.
pub(crate) struct BuildJob {
    pub(crate) id: u64,
    pub(crate) generation: u64,
    pub(crate) refs: Vec<PointRef>,
    pub(crate) arena: VectorArena,
    pub(crate) metric: bulkhead_distance::Metric,
}

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
    /// Points served by the frozen HNSW segment.
    pub graph_points: usize,
    /// Points served by the exact-scan delta.
    pub delta_points: usize,
    /// Whether a background build is running.
    pub building: bool,
    /// Whether the segment in use is saved as a snapshot (false when there is no segment).
    pub snapshot_saved: bool,
    /// Approximate bytes of memory the state holds.
    pub memory_bytes: usize,
}

pub(crate) struct CollectionState {
    metric: Metric,
    attrs: AttrIndex,
    delta: FlatIndex,
    frozen: Option<Frozen>,
    build: Option<BuildTicket>,
    /// The build id of the frozen segment (0 if it came from a snapshot), and whether it is saved.
    frozen_id: u64,
    saved: bool,
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
    /// Loads a collection: its snapshot, if one opens, and every stored vector (see the module
    /// documentation for how the two are reconciled).
    pub(crate) fn load(handle: &TenantHandle<'_>, collection: &CollectionInfo) -> Result<CollectionState> {
        let snapshot = match handle.load_index_snapshot(collection) {
            Ok(None) => None,
            Ok(Some(bytes)) => match decode_snapshot(&bytes, collection) {
                Ok(snapshot) => Some(snapshot),
                Err(reason) => {
                    tracing::warn!(%reason, "an index snapshot did not load; rebuilding it from the records");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "an index snapshot did not open; rebuilding it from the records");
                None
            }
        };
        let mut attrs = AttrIndex::default();
        handle.scan_payloads(collection, |point_ref, payload| {
            attrs.upsert(point_ref, &payload.acl, &payload.metadata);
        })?;
        let mut delta = FlatIndex::empty(collection.dimension)?;
        let mut failure = None;
        let mut frozen = snapshot.map(|(segment, refs, generation)| {
            let index: HashMap<PointRef, InternalId> =
                refs.iter().enumerate().map(|(i, r)| (*r, InternalId::new(i as u32))).collect();
            let slots = refs.iter().map(|r| attrs.slot(r).unwrap_or(u32::MAX)).collect();
            (Frozen::new(segment, generation, refs, slots, HashMap::with_capacity(index.len())), index)
        });
        handle.scan_vectors(collection, |point_ref, vector| {
            if let Some((frozen, index)) = frozen.as_mut()
                && let Some(&id) = index.get(&point_ref)
                && frozen.segment.vector(id).is_some_and(|held| same_bits(held, vector))
            {
                frozen.covered.insert(point_ref, id);
                return;
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
        let frozen = match frozen {
            Some((mut frozen, _)) => {
                for (i, point_ref) in frozen.refs.iter().enumerate() {
                    if !frozen.covered.contains_key(point_ref) {
                        frozen.segment.delete(InternalId::new(i as u32)).map_err(index_error)?;
                    }
                }
                Some(frozen)
            }
            None => None,
        };
        let saved = frozen.is_some();
        Ok(CollectionState {
            metric: collection.metric,
            attrs,
            delta,
            frozen,
            build: None,
            frozen_id: 0,
            saved,
        })
    }

    pub(crate) fn status(&self) -> GraphStatus {
        GraphStatus {
            loaded: true,
            graph_points: self.frozen.as_ref().map_or(0, |f| f.covered.len()),
            delta_points: self.delta.len(),
            building: self.build.is_some(),
            snapshot_saved: self.frozen.is_some() && self.saved,
            memory_bytes: self.memory_bytes(),
        }
    }

    pub(crate) fn building(&self) -> bool {
        self.build.is_some()
    }

    /// Approximate heap bytes held: the delta, and the segment with its point maps.
    pub(crate) fn memory_bytes(&self) -> usize {
        let frozen = self.frozen.as_ref().map_or(0, |f| {
            f.segment.memory_bytes()
                + f.refs.len() * size_of::<PointRef>()
                + (f.slots.len() + f.ids_by_slot.len()) * size_of::<u32>()
                + f.covered.len() * MAP_ENTRY_BYTES
        });
        self.delta.memory_bytes() + frozen + self.attrs.memory_bytes()
    }

    /// Records that the segment of build `job_id` was saved, if it is still the one in use.
    pub(crate) fn mark_saved(&mut self, job_id: u64) {
        if self.frozen.is_some() && self.frozen_id == job_id {
            self.saved = true;
        }
    }

    /// Takes a point out of the frozen segment (it was rewritten or deleted) and remembers it for
    /// the build in flight.
    fn uncover(&mut self, point_ref: &PointRef) -> Result<()> {
        if let Some(frozen) = self.frozen.as_mut()
            && let Some(id) = frozen.covered.remove(point_ref)
        {
            frozen.segment.delete(id).map_err(index_error)?;
        }
        if let Some(build) = self.build.as_mut() {
            build.dirty.insert(*point_ref);
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
        self.delta.len() + self.frozen.as_ref().map_or(0, |f| f.covered.len())
    }

    /// Where a point's current vector lives (`None` if nowhere).
    pub(crate) fn source(&self, point_ref: &PointRef) -> Option<IndexSource> {
        if self.delta.vector(point_ref).is_some() {
            return Some(IndexSource::Delta);
        }
        let frozen = self.frozen.as_ref()?;
        frozen
            .covered
            .contains_key(point_ref)
            .then_some(IndexSource::Segment { generation: frozen.generation })
    }

    /// The `k` best points among `allowed` (every point if `None`), best first, with their client
    /// scores. `observe`, if given, is shown every point a distance is computed for (graph routing
    /// included), so that a test can check that no point outside the allowed set is ever scored.
    ///
    /// The delta is scanned exactly: point by point over the allowed set when that set is small (by
    /// the index planner's rule) and smaller than the delta, otherwise in one filtered pass. The segment gets the allowed set as a
    /// filter over its ids (see [`Frozen::search`]), and its planner scans a small one exactly with
    /// the batch kernels or walks the graph with the filter applied as it goes. A global top-k is
    /// never trimmed afterwards.
    pub(crate) fn top_k<'o>(
        &self,
        query: &[f32],
        k: usize,
        ef: Option<usize>,
        allowed: Option<&RoaringBitmap>,
        mut observe: Option<&mut (dyn FnMut(PointRef) + 'o)>,
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
        if let Some(frozen) = &self.frozen {
            let params = SearchParams::new(k, ef);
            SCRATCH.with(|scratch| -> Result<()> {
                let mut scratch = scratch.borrow_mut();
                scratch.record_scored(observe.is_some());
                let hits = frozen.search(query, &params, allowed, &mut scratch)?;
                ranked.extend(hits.iter().map(|hit| (frozen.refs[hit.id.get() as usize], hit.distance)));
                if let Some(observe) = observe.as_mut() {
                    scratch.scored().iter().for_each(|&id| observe(frozen.refs[id as usize]));
                    scratch.record_scored(false);
                }
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

    /// If the delta has grown past `threshold` and no build runs, snapshots every live point (the
    /// segment's covered points and the delta) for a background build. Dot collections stay exact:
    /// the graph's dot distance assumes unit vectors.
    pub(crate) fn take_build_job(&mut self, threshold: usize) -> Result<Option<BuildJob>> {
        let Some(metric) = graph_metric(self.metric) else { return Ok(None) };
        if self.build.is_some() || self.delta.len() < threshold {
            return Ok(None);
        }
        let total = self.delta.len() + self.frozen.as_ref().map_or(0, |f| f.covered.len());
        let mut arena = VectorArena::with_capacity(self.delta.dim(), total).map_err(kernel_error)?;
        let mut refs = Vec::with_capacity(total);
        let push =
            |arena: &mut VectorArena, refs: &mut Vec<PointRef>, r: PointRef, v: &[f32]| -> Result<()> {
                arena.push(v).map_err(kernel_error)?;
                refs.push(r);
                Ok(())
            };
        if let Some(frozen) = &self.frozen {
            for (&point_ref, &id) in &frozen.covered {
                let vector = frozen
                    .segment
                    .vector(id)
                    .ok_or(QueryError::Internal("covered id out of range".into()))?;
                push(&mut arena, &mut refs, point_ref, vector)?;
            }
        }
        for (point_ref, vector) in self.delta.live_points() {
            push(&mut arena, &mut refs, point_ref, vector)?;
        }
        let id = NEXT_BUILD.fetch_add(1, Ordering::Relaxed);
        self.build = Some(BuildTicket { id, dirty: HashSet::new() });
        let generation = u64::from_le_bytes(bulkhead_crypto::random_bytes());
        Ok(Some(BuildJob { id, generation, refs, arena, metric }))
    }

    /// Installs a finished build if it is still the one in flight (returns whether it did): points
    /// that changed since the snapshot are tombstoned in the new segment, and the delta keeps only
    /// what it does not cover.
    pub(crate) fn install(
        &mut self,
        job_id: u64,
        refs: Vec<PointRef>,
        mut segment: FrozenSegment,
        generation: u64,
    ) -> Result<bool> {
        if self.build.as_ref().is_none_or(|b| b.id != job_id) {
            return Ok(false);
        }
        let dirty = self.build.take().map(|b| b.dirty).unwrap_or_default();
        let mut covered = HashMap::with_capacity(refs.len());
        for (i, point_ref) in refs.iter().enumerate() {
            let id = InternalId::new(i as u32);
            if dirty.contains(point_ref) {
                segment.delete(id).map_err(index_error)?;
            } else {
                covered.insert(*point_ref, id);
            }
        }
        for point_ref in covered.keys() {
            self.delta.remove(point_ref)?;
        }
        let slots = refs.iter().map(|r| self.attrs.slot(r).unwrap_or(u32::MAX)).collect();
        self.frozen = Some(Frozen::new(segment, generation, refs, slots, covered));
        self.frozen_id = job_id;
        self.saved = false;
        Ok(true)
    }

    /// Forgets a failed build so that a later write can start another.
    pub(crate) fn abandon(&mut self, job_id: u64) {
        if self.build.as_ref().is_some_and(|b| b.id == job_id) {
            self.build = None;
        }
    }
}

/// A finished build: the segment and its snapshot bytes, ready to install and save.
pub(crate) struct Built {
    pub(crate) generation: u64,
    pub(crate) refs: Vec<PointRef>,
    pub(crate) segment: FrozenSegment,
    pub(crate) snapshot: Vec<u8>,
}

/// Builds a segment from a job and serialises its snapshot (run on a background thread, outside
/// the collection's lock).
pub(crate) fn build(job: BuildJob) -> (u64, Result<Built>) {
    let id = job.id;
    let built = FrozenSegment::build(job.arena, job.metric, HnswParams::default()).map_err(index_error).map(
        |segment| {
            let snapshot = encode_snapshot(&job.refs, &segment, job.generation);
            Built { generation: job.generation, refs: job.refs, segment, snapshot }
        },
    );
    (id, built)
}

/// Saves a build's snapshot through `sink`; failures are logged, not fatal (the records remain the
/// source of truth). Returns whether it was saved.
pub(crate) fn save(sink: &IndexSnapshotSink, snapshot: &[u8]) -> bool {
    match sink.save(snapshot) {
        Ok(bulkhead_storage::SnapshotSaved::Saved) => true,
        Ok(bulkhead_storage::SnapshotSaved::Skipped) => false,
        Err(e) => {
            tracing::warn!(error = %e, "an index snapshot could not be saved; it will be rebuilt after a restart");
            false
        }
    }
}
