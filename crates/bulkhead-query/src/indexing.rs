//! A collection's background index jobs: which ones it needs now (`Database::maybe_build`), how
//! each is queued on the database's pool, and what a job does on its worker (`run_job`): build,
//! install, queue the jobs due next, save the segment's snapshot.

use crate::Result;
use crate::collection::{self, CollectionState};
use crate::database::Database;
use crate::entry::Entry;
use crate::jobs::{self, IndexJobCounts};
use bulkhead_storage::{CollectionInfo, IndexSnapshotSink, TenantHandle, TenantUid};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Queues a background index job on the database's pool (see [`run_job`]).
pub(crate) fn spawn_job(
    jobs: &jobs::Jobs,
    tenant: TenantUid,
    entry: Entry,
    sink: Arc<IndexSnapshotSink>,
    threshold: usize,
    job: collection::BuildJob,
) {
    let cancel = Arc::clone(&job.cancel);
    let pool = jobs.clone();
    jobs.submit(tenant, cancel, move || run_job(&pool, tenant, &entry, &sink, threshold, job));
}

/// A job on a pool worker: builds, installs the result if the job is still wanted, queues the jobs
/// that are due next, then saves the new segment and lists the saved segments in the collection's
/// head. Saves of one collection take turns (`CollectionEntry::snapshots`), so a head never drops a segment
/// whose chunks are still being written, and the last head written describes the latest state. A
/// cancelled job (its collection evicted or dropped meanwhile) ends quietly.
fn run_job(
    jobs: &jobs::Jobs,
    tenant: TenantUid,
    entry: &Entry,
    sink: &Arc<IndexSnapshotSink>,
    threshold: usize,
    job: collection::BuildJob,
) {
    if job.cancelled() {
        jobs.note_cancelled();
        return;
    }
    let cancel = Arc::clone(&job.cancel);
    let (id, built) = collection::build(job);
    let mut guard = entry.state.write();
    let Some(state) = guard.as_mut() else {
        jobs.note_cancelled();
        return;
    };
    let mut built = match built {
        Ok(built) => built,
        Err(_) if cancel.load(Ordering::Relaxed) => {
            jobs.note_cancelled();
            state.abandon(id);
            return;
        }
        Err(e) => {
            jobs.note_finished();
            tracing::warn!(error = %e, "a background index job failed; its points stay where they were");
            state.abandon(id);
            return;
        }
    };
    jobs.note_finished();
    let generation = built.generation;
    let snapshot = std::mem::take(&mut built.snapshot);
    match state.install(id, built) {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "a finished index job could not be installed");
            state.abandon(id);
            return;
        }
    }
    // Writes that arrived meanwhile may have filled the delta again, and a flush may call for a
    // merge.
    match state.take_jobs(threshold) {
        Ok(next) => {
            for job in next {
                spawn_job(jobs, tenant, Arc::clone(entry), Arc::clone(sink), threshold, job);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not take the collection's points for an index job"),
    }
    entry.measure(&guard);
    drop(guard);
    let _turn = entry.snapshots.lock();
    if let Some(saved) = collection::save_segment(sink, &snapshot) {
        drop(snapshot);
        let listed = entry.state.write().as_mut().and_then(|state| state.mark_saved(generation, saved));
        if let Some(listed) = listed {
            collection::list_segments(sink, &listed);
        }
    }
}

impl Database {
    /// Queues the background jobs (flush, merge, purge) the collection in `entry` needs now on the
    /// database's job pool (`jobs.rs`). Called with the entry's write lock held by the caller
    /// (`state`). Each job installs its segment, queues whatever jobs are due next, then saves the
    /// segment's snapshot outside the lock.
    pub(crate) fn maybe_build(
        &self,
        handle: &TenantHandle<'_>,
        collection: &CollectionInfo,
        entry: &Entry,
        state: &mut CollectionState,
    ) -> Result<()> {
        let threshold = self.graph_threshold.load(Ordering::Relaxed);
        let jobs = state.take_jobs(threshold)?;
        if jobs.is_empty() {
            return Ok(());
        }
        let sink = Arc::new(handle.index_snapshot_sink(collection)?);
        for job in jobs {
            spawn_job(
                self.jobs.jobs(),
                handle.tenant_uid(),
                Arc::clone(entry),
                Arc::clone(&sink),
                threshold,
                job,
            );
        }
        Ok(())
    }

    /// The background index job pool's counts: jobs queued and running now, finished and
    /// cancelled since the database opened.
    pub fn index_jobs(&self) -> IndexJobCounts {
        self.jobs.jobs().counts()
    }
}
