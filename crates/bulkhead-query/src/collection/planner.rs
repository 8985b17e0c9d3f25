//! A collection's background jobs, planned and installed under its lock: which job is due
//! (`CollectionState::take_jobs`: a flush of the delta, a merge of segments, a purge of
//! tombstones), what it takes, how its result is installed, and the job itself (`build`), run on a
//! pool worker outside the lock.

use super::segment::Frozen;
use super::{
    CollectionState, EXTEND_MAX_FACTOR, IDLE_FLUSH_AFTER, IDLE_FLUSH_MIN, MAX_SEGMENTS, MERGE_RATIO,
};
use crate::format::encode_snapshot;
use crate::{QueryError, Result};
use bulkhead_distance::VectorArena;
use bulkhead_index::{BuildOptions, FrozenSegment, HnswParams, InternalId};
use bulkhead_storage::PointRef;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static NEXT_BUILD: AtomicU64 = AtomicU64::new(1);

/// A job in flight: what it takes, and which points changed since it took them.
pub(super) struct Ticket {
    pub(super) id: u64,
    /// Whether it takes the delta's points (a flush).
    pub(super) flush: bool,
    /// The generations of the segments its result replaces.
    pub(super) replaces: Vec<u64>,
    pub(super) dirty: HashSet<PointRef>,
    /// Set when nobody needs the job's result any more (the state is dropped: evicted, its
    /// collection dropped, the database closed): the build stops at its next chunk.
    pub(super) cancel: Arc<AtomicBool>,
    /// The memory the job holds while it runs (its input copies and the graph it builds), counted
    /// in the collection's [`CollectionState::memory_bytes`].
    pub(super) bytes: usize,
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

/// A graph row's bytes beyond its vector: a level-0 list of `2m` neighbour ids (m = 16), upper levels,
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

impl CollectionState {
    /// The background jobs the collection needs now and that are not running yet (see the module
    /// documentation): at most one flush of the delta and one merge or purge of segments. Each
    /// job's input is taken now; its ticket records the points written while it runs. Dot
    /// collections stay exact: the graph's dot distance assumes unit vectors.
    pub(crate) fn take_jobs(&mut self, threshold: usize) -> Result<Vec<BuildJob>> {
        let Some(metric) = crate::metric::kernel_metric(self.metric) else { return Ok(Vec::new()) };
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
    /// has come for [`IDLE_FLUSH_AFTER`] on the database's clock: it holds at least
    /// [`IDLE_FLUSH_MIN`] points (or the threshold, if lower), the collection has a graph metric
    /// and no flush runs.
    pub(crate) fn idle_flush_due(&self, threshold: usize) -> bool {
        crate::metric::kernel_metric(self.metric).is_some()
            && self.delta.len() >= IDLE_FLUSH_MIN.min(threshold.max(1))
            && !self.jobs.iter().any(|job| job.flush)
            && self.clock.now().saturating_duration_since(self.last_write) >= IDLE_FLUSH_AFTER
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
            VectorArena::with_capacity(self.delta.dim(), self.delta.len()).map_err(QueryError::Kernel)?;
        let mut refs = Vec::with_capacity(self.delta.len());
        for (point_ref, vector) in self.delta.live_points() {
            arena.push(vector).map_err(QueryError::Kernel)?;
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
                segment.delete(id).map_err(QueryError::Index)?;
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
    let options = BuildOptions::new().with_cancel(Arc::clone(cancel)).in_background();
    match work {
        Work::Build(points) => {
            let segment = FrozenSegment::build_with_options(
                points.arena,
                metric,
                HnswParams::default(),
                options,
                |_, _| {},
            )
            .map_err(QueryError::Index)?;
            Ok((segment, points.refs))
        }
        Work::Extend { base, points } => {
            let segment =
                base.segment.extend(points.arena.iter(), options, |_, _| {}).map_err(QueryError::Index)?;
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
                arena: VectorArena::with_capacity(dim, total).map_err(QueryError::Kernel)?,
            };
            for input in &inputs {
                for &id in &input.live {
                    let vector = input
                        .segment
                        .vector(id)
                        .ok_or(QueryError::Internal("live id out of range".into()))?;
                    points.arena.push(vector).map_err(QueryError::Kernel)?;
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
