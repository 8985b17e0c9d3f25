//! A collection's search state: an exact-scan delta that takes every write, and, once the collection
//! is large, an HNSW segment frozen in the background from a snapshot of it.
//!
//! Invariant: every live point is in exactly one of the two places. The segment *covers* the points it
//! was built from, minus those written or deleted since (those are tombstoned in the segment, and the
//! new version, if any, lives in the delta). A search asks both and merges by distance, so a write is
//! visible to the next search whether or not a build is running.

use crate::exact::{FlatIndex, kernel_error, score};
use crate::{QueryError, Result};
use bulkhead_distance::VectorArena;
use bulkhead_index::{FrozenSegment, HnswParams, InternalId, SearchParams, SearchScratch};
use bulkhead_storage::{CollectionInfo, Metric, PointRef, TenantHandle};
use std::cell::RefCell;
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
    /// The point of each internal id.
    refs: Vec<PointRef>,
    /// The internal id of each point the segment still covers.
    covered: HashMap<PointRef, InternalId>,
}

/// A build in flight: which snapshot it started from, and which points changed since.
struct BuildTicket {
    id: u64,
    dirty: HashSet<PointRef>,
}

/// The input of a background build, taken under the collection's lock.
pub(crate) struct BuildJob {
    pub(crate) id: u64,
    pub(crate) refs: Vec<PointRef>,
    pub(crate) arena: VectorArena,
    pub(crate) metric: bulkhead_distance::Metric,
}

/// What a collection's search state looks like, for operators and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphStatus {
    /// Points served by the frozen HNSW segment.
    pub graph_points: usize,
    /// Points served by the exact-scan delta.
    pub delta_points: usize,
    /// Whether a background build is running.
    pub building: bool,
}

pub(crate) struct CollectionState {
    metric: Metric,
    delta: FlatIndex,
    frozen: Option<Frozen>,
    build: Option<BuildTicket>,
}

impl CollectionState {
    pub(crate) fn load(handle: &TenantHandle<'_>, collection: &CollectionInfo) -> Result<CollectionState> {
        Ok(CollectionState {
            metric: collection.metric,
            delta: FlatIndex::load(handle, collection)?,
            frozen: None,
            build: None,
        })
    }

    pub(crate) fn status(&self) -> GraphStatus {
        GraphStatus {
            graph_points: self.frozen.as_ref().map_or(0, |f| f.covered.len()),
            delta_points: self.delta.len(),
            building: self.build.is_some(),
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

    pub(crate) fn upsert(&mut self, point_ref: PointRef, vector: &[f32]) -> Result<()> {
        self.uncover(&point_ref)?;
        self.delta.upsert(point_ref, vector)
    }

    pub(crate) fn remove(&mut self, point_ref: &PointRef) -> Result<()> {
        self.uncover(point_ref)?;
        self.delta.remove(point_ref)
    }

    /// The `k` best points, best first, with their client scores: the delta's exact top-k merged
    /// with the segment's graph top-k (the two never hold the same point).
    pub(crate) fn top_k(&self, query: &[f32], k: usize, ef: Option<usize>) -> Result<Vec<(PointRef, f32)>> {
        let mut ranked = self.delta.top_k(self.metric, query, k)?;
        if let Some(frozen) = &self.frozen {
            let params = SearchParams::new(k, ef.unwrap_or(MIN_EF).max(k));
            SCRATCH.with(|scratch| -> Result<()> {
                let mut scratch = scratch.borrow_mut();
                let hits = frozen.segment.search(query, &params, &mut scratch).map_err(index_error)?;
                ranked.extend(hits.iter().map(|hit| (frozen.refs[hit.id.get() as usize], hit.distance)));
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
        let metric = match self.metric {
            Metric::Cosine => bulkhead_distance::Metric::Cosine,
            Metric::L2 => bulkhead_distance::Metric::L2,
            Metric::Dot => return Ok(None),
        };
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
        Ok(Some(BuildJob { id, refs, arena, metric }))
    }

    /// Installs a finished build if it is still the one in flight: points that changed since the
    /// snapshot are tombstoned in the new segment, and the delta keeps only what it does not cover.
    pub(crate) fn install(
        &mut self,
        job_id: u64,
        refs: Vec<PointRef>,
        mut segment: FrozenSegment,
    ) -> Result<()> {
        if self.build.as_ref().is_none_or(|b| b.id != job_id) {
            return Ok(());
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
        self.frozen = Some(Frozen { segment, refs, covered });
        Ok(())
    }

    /// Forgets a failed build so that a later write can start another.
    pub(crate) fn abandon(&mut self, job_id: u64) {
        if self.build.as_ref().is_some_and(|b| b.id == job_id) {
            self.build = None;
        }
    }
}

/// Builds a segment from a job (run on a background thread).
pub(crate) fn build(job: BuildJob) -> (u64, Vec<PointRef>, Result<FrozenSegment>) {
    let segment = FrozenSegment::build(job.arena, job.metric, HnswParams::default()).map_err(index_error);
    (job.id, job.refs, segment)
}
