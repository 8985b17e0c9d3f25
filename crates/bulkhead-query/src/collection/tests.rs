//! The job planner's rules as a table: for each state of a collection (its delta, its segments,
//! the jobs running), the job `take_jobs` yields, and what installing it leaves.

use super::planner::Work;
use super::*;
use bulkhead_storage::ManualClock;
use std::time::Duration;

const DIM: usize = 4;
/// A small graph threshold, so that the table's states take few points.
const T: usize = 8;

fn point_ref(i: u32) -> PointRef {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&i.to_be_bytes());
    PointRef::from_bytes(bytes)
}

fn vector(i: u32) -> Vec<f32> {
    (0..DIM as u32).map(|d| ((i * 7 + d * 3) % 11) as f32 + 1.0).collect()
}

fn empty(metric: Metric) -> CollectionState {
    on_clock(metric, &ManualClock::new())
}

/// An empty state whose idle flush reads `clock`.
fn on_clock(metric: Metric, clock: &ManualClock) -> CollectionState {
    let clock = Clock::from(clock.clone());
    CollectionState {
        metric,
        attrs: AttrIndex::default(),
        delta: FlatIndex::empty(DIM).expect("delta"),
        segments: Vec::new(),
        jobs: Vec::new(),
        last_write: clock.now(),
        clock,
    }
}

fn write(state: &mut CollectionState, ids: std::ops::Range<u32>) {
    for i in ids {
        state.upsert(point_ref(i), &vector(i), &Acl::TenantWide, &BTreeMap::new()).expect("upsert");
    }
}

/// What a job does, in the table's words.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A flush of the delta into a new segment.
    FlushNew,
    /// A flush that extends a small segment.
    FlushExtend,
    /// A merge that extends the largest segment with the others' live points.
    Merge,
    /// A fresh build from every segment's live points (which drops tombstones).
    Purge,
}

fn kind(job: &BuildJob) -> Kind {
    match &job.work {
        Work::Build(_) => Kind::FlushNew,
        Work::Extend { .. } => Kind::FlushExtend,
        Work::Merge { base: Some(_), .. } => Kind::Merge,
        Work::Merge { base: None, .. } => Kind::Purge,
    }
}

/// Takes the jobs due, runs each, installs it; returns their kinds.
fn step(state: &mut CollectionState) -> Vec<Kind> {
    let jobs = state.take_jobs(T).expect("take");
    let kinds: Vec<Kind> = jobs.iter().map(kind).collect();
    for job in jobs {
        let (id, built) = build(job);
        assert!(state.install(id, built.expect("build")).expect("install"));
    }
    kinds
}

fn sizes(state: &CollectionState) -> Vec<usize> {
    let mut sizes: Vec<usize> = state.segments.iter().map(|f| f.covered.len()).collect();
    sizes.sort_unstable();
    sizes
}

#[test]
fn each_state_yields_its_job() {
    // An empty collection, and a delta below the threshold that has just been written: nothing.
    let mut state = empty(Metric::L2);
    assert_eq!(step(&mut state), []);
    write(&mut state, 0..T as u32 - 1);
    assert_eq!(step(&mut state), []);
    // The threshold reached with no segment: a flush into a new segment; the delta empties.
    write(&mut state, T as u32 - 1..5 * T as u32);
    assert_eq!(step(&mut state), [Kind::FlushNew]);
    assert_eq!((sizes(&state), state.delta.len()), (vec![5 * T], 0));
    // The threshold again, the only segment too large to grow (over EXTEND_MAX_FACTOR thresholds):
    // a new segment; and the two now call for a merge (the small one holds more than an eighth).
    write(&mut state, 5 * T as u32..6 * T as u32);
    assert_eq!(step(&mut state), [Kind::FlushNew]);
    assert_eq!(sizes(&state), vec![T, 5 * T]);
    assert_eq!(step(&mut state), [Kind::Merge]);
    assert_eq!(sizes(&state), vec![6 * T]);
    // A small segment beside a large one grows by extension rather than by a new segment.
    let mut small = empty(Metric::L2);
    write(&mut small, 0..T as u32);
    assert_eq!(step(&mut small), [Kind::FlushNew]);
    write(&mut small, T as u32..2 * T as u32);
    assert_eq!(step(&mut small), [Kind::FlushExtend]);
    assert_eq!(sizes(&small), vec![2 * T]);
    // Deleting more than a fifth of a segment's points: a purge rebuilds it without them.
    for i in 0..3 * T as u32 {
        state.remove(&point_ref(i)).expect("remove");
    }
    assert_eq!(step(&mut state), [Kind::Purge]);
    assert_eq!(sizes(&state), vec![3 * T]);
    assert_eq!(state.segments[0].dead(), 0, "the purge dropped the tombstones");
    // A dot collection stays exact whatever its size.
    let mut dot = empty(Metric::Dot);
    write(&mut dot, 0..10 * T as u32);
    assert_eq!(step(&mut dot), []);
}

#[test]
fn a_running_flush_blocks_another_and_writes_meanwhile_stay_visible() {
    let mut state = empty(Metric::Cosine);
    write(&mut state, 0..2 * T as u32);
    let jobs = state.take_jobs(T).expect("take");
    assert_eq!(jobs.iter().map(kind).collect::<Vec<_>>(), [Kind::FlushNew]);
    // While it runs: no second flush, however large the delta; a point it took is rewritten.
    write(&mut state, 2 * T as u32..4 * T as u32);
    assert!(state.take_jobs(T).expect("take").is_empty());
    write(&mut state, 0..1);
    assert!(state.building());
    let job = jobs.into_iter().next().expect("job");
    let (id, built) = build(job);
    assert!(state.install(id, built.expect("build")).expect("install"));
    // The rewritten point is tombstoned in the segment and lives in the delta with the new writes.
    assert_eq!(sizes(&state), vec![2 * T - 1]);
    assert_eq!(state.delta.len(), 2 * T + 1);
    assert_eq!(state.len(), 4 * T);
    assert_eq!(state.source(&point_ref(0)), Some(IndexSource::Delta));
}

#[test]
fn an_idle_delta_is_flushed_and_an_abandoned_job_can_be_taken_again() {
    let clock = ManualClock::new();
    let mut state = on_clock(Metric::L2, &clock);
    // Below the threshold: not due until no write has come for IDLE_FLUSH_AFTER.
    write(&mut state, 0..T as u32 - 1);
    clock.advance(IDLE_FLUSH_AFTER);
    assert!(!state.idle_flush_due(usize::MAX), "under the floor");
    write(&mut state, T as u32 - 1..IDLE_FLUSH_MIN as u32);
    assert!(!state.idle_flush_due(usize::MAX), "just written");
    clock.advance(IDLE_FLUSH_AFTER - Duration::from_millis(1));
    assert!(!state.idle_flush_due(usize::MAX), "not idle for long enough");
    clock.advance(Duration::from_millis(1));
    assert!(state.idle_flush_due(usize::MAX));
    let jobs = state.take_jobs(usize::MAX).expect("take");
    assert_eq!(jobs.iter().map(kind).collect::<Vec<_>>(), [Kind::FlushNew]);
    // A failed job is abandoned; the flush is due again and taken again.
    state.abandon(jobs[0].id);
    assert!(!state.building());
    assert_eq!(
        state.take_jobs(usize::MAX).expect("take").iter().map(kind).collect::<Vec<_>>(),
        [Kind::FlushNew]
    );
}
