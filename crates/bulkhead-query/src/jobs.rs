//! The pool that runs every collection's background index jobs (flushes, merges, purges): a fixed
//! number of worker threads owned by the [`Database`](crate::Database), instead of a thread per
//! job. Jobs wait in one queue per tenant, and the workers take the tenants in turn, so a tenant
//! with many collections to index cannot keep another's first job waiting behind all of its own.
//! Dropping the pool stops it: queued jobs are dropped unrun, running ones are cancelled (their
//! builds stop at the next chunk) and the workers are joined.

use bulkhead_storage::TenantUid;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Worker threads that run index jobs. Each build uses every core through rayon's pool; two
/// workers let one job's sequential parts (taking inputs, installing, saving the snapshot) overlap
/// another's build, without more builds competing for the cores than that.
pub const INDEX_JOB_WORKERS: usize = 2;

/// A job waiting for a worker: whom it belongs to, the flag that cancels it, and its work.
struct Queued {
    cancel: Arc<AtomicBool>,
    run: Box<dyn FnOnce() + Send>,
}

#[derive(Default)]
struct Queue {
    /// Each tenant's jobs, oldest first.
    jobs: HashMap<TenantUid, VecDeque<Queued>>,
    /// The tenants with queued jobs, in the order they are served next.
    turn: VecDeque<TenantUid>,
    /// The cancel flags of the jobs running now (set when the pool stops).
    running: Vec<Arc<AtomicBool>>,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    finished: AtomicU64,
    cancelled: AtomicU64,
}

/// What the pool is doing, and has done since the database opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexJobCounts {
    /// Jobs waiting for a worker.
    pub queued: usize,
    /// Jobs running now.
    pub running: usize,
    /// Jobs that ran to the end (installed, or failed and abandoned).
    pub finished: u64,
    /// Jobs cancelled because nobody needed their result any more (never started, or stopped
    /// during their build).
    pub cancelled: u64,
}

/// A handle that queues jobs on the pool (cheap to clone; jobs queue their follow-ups with it).
#[derive(Clone)]
pub(crate) struct Jobs(Arc<Shared>);

/// The pool: its queue and its workers, stopped and joined on drop.
pub(crate) struct JobPool {
    jobs: Jobs,
    workers: Vec<JoinHandle<()>>,
}

impl JobPool {
    /// Starts `workers` threads (at least one).
    pub(crate) fn new(workers: usize) -> JobPool {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            finished: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        });
        let workers = (0..workers.max(1))
            .filter_map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("bulkhead-index-job-{i}"))
                    .spawn(move || {
                        // Below the server's query threads: a build waits for idle cores.
                        if !bulkhead_index::lower_thread_priority() {
                            tracing::debug!("index job worker runs at normal priority");
                        }
                        work(&shared)
                    })
                    .inspect_err(|e| tracing::error!(error = %e, "could not start an index job worker"))
                    .ok()
            })
            .collect();
        JobPool { jobs: Jobs(shared), workers }
    }

    /// The handle that queues jobs.
    pub(crate) fn jobs(&self) -> &Jobs {
        &self.jobs
    }
}

impl Jobs {
    /// Queues `run` for `tenant`; it is dropped unrun if `cancel` is set before a worker takes it,
    /// or if the pool is stopping.
    pub(crate) fn submit(
        &self,
        tenant: TenantUid,
        cancel: Arc<AtomicBool>,
        run: impl FnOnce() + Send + 'static,
    ) {
        let mut guard = self.0.queue.lock();
        let queue = &mut *guard;
        if queue.stopping {
            return;
        }
        let waiting = queue.jobs.entry(tenant).or_default();
        if waiting.is_empty() {
            queue.turn.push_back(tenant);
        }
        waiting.push_back(Queued { cancel, run: Box::new(run) });
        drop(guard);
        self.0.ready.notify_one();
    }

    /// The pool's counts now.
    pub(crate) fn counts(&self) -> IndexJobCounts {
        let queue = self.0.queue.lock();
        IndexJobCounts {
            queued: queue.jobs.values().map(VecDeque::len).sum(),
            running: queue.running.len(),
            finished: self.0.finished.load(Ordering::Relaxed),
            cancelled: self.0.cancelled.load(Ordering::Relaxed),
        }
    }

    /// Counts a job that ran to its end.
    pub(crate) fn note_finished(&self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a job that was cancelled.
    pub(crate) fn note_cancelled(&self) {
        self.0.cancelled.fetch_add(1, Ordering::Relaxed);
    }
}

/// A worker: takes the next tenant's oldest job, runs it, and goes round again until the pool stops.
fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.queue.lock();
            loop {
                if queue.stopping {
                    return;
                }
                let mut skipped = 0;
                let found = next(&mut queue, &mut skipped);
                shared.cancelled.fetch_add(skipped, Ordering::Relaxed);
                if let Some(job) = found {
                    queue.running.push(Arc::clone(&job.cancel));
                    break job;
                }
                shared.ready.wait(&mut queue);
            }
        };
        let cancel = Arc::clone(&job.cancel);
        // A panic inside a job is caught (and logged) so the worker goes on with the next job.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.run)).is_err() {
            tracing::error!(
                "a background index job panicked; its collection keeps its points where they were"
            );
        }
        shared.queue.lock().running.retain(|flag| !Arc::ptr_eq(flag, &cancel));
    }
}

/// The next job to run: the oldest of the tenant whose turn it is (skipping cancelled ones, which
/// are counted in `cancelled`).
fn next(queue: &mut Queue, cancelled: &mut u64) -> Option<Queued> {
    while let Some(tenant) = queue.turn.pop_front() {
        let Some(waiting) = queue.jobs.get_mut(&tenant) else { continue };
        let mut found = None;
        while let Some(job) = waiting.pop_front() {
            if !job.cancel.load(Ordering::Relaxed) {
                found = Some(job);
                break;
            }
            *cancelled += 1;
        }
        if waiting.is_empty() {
            queue.jobs.remove(&tenant);
        } else {
            queue.turn.push_back(tenant);
        }
        if found.is_some() {
            return found;
        }
    }
    None
}

impl Drop for JobPool {
    fn drop(&mut self) {
        {
            let mut queue = self.jobs.0.queue.lock();
            queue.stopping = true;
            queue.jobs.clear();
            queue.turn.clear();
            for flag in &queue.running {
                flag.store(true, Ordering::Relaxed);
            }
        }
        self.jobs.0.ready.notify_all();
        for worker in self.workers.drain(..) {
            if worker.join().is_err() {
                tracing::error!("an index job worker panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    fn uid(byte: u8) -> TenantUid {
        TenantUid::from_hex(&format!("{byte:02x}").repeat(16)).expect("uid")
    }

    #[test]
    fn tenants_take_turns_and_cancelled_jobs_never_run() {
        let pool = JobPool::new(1);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<(u8, usize)>();
        // The worker is held by a first job while the queue fills.
        pool.jobs().submit(uid(9), Arc::new(AtomicBool::new(false)), move || {
            started_tx.send(()).expect("send");
            gate_rx.recv().ok();
        });
        started_rx.recv_timeout(Duration::from_secs(10)).expect("the first job started");
        let cancelled = Arc::new(AtomicBool::new(false));
        for i in 0..3 {
            let tx = done_tx.clone();
            pool.jobs()
                .submit(uid(1), Arc::new(AtomicBool::new(false)), move || tx.send((1, i)).expect("send"));
        }
        let tx = done_tx.clone();
        pool.jobs().submit(uid(2), Arc::clone(&cancelled), move || tx.send((2, 99)).expect("send"));
        let tx = done_tx.clone();
        pool.jobs().submit(uid(2), Arc::new(AtomicBool::new(false)), move || tx.send((2, 0)).expect("send"));
        cancelled.store(true, Ordering::Relaxed);
        assert_eq!(pool.jobs().counts().queued, 5);
        gate_tx.send(()).expect("open the gate");
        let order: Vec<(u8, usize)> =
            (0..4).map(|_| done_rx.recv_timeout(Duration::from_secs(10)).expect("a job ran")).collect();
        // Tenant 2's job runs second, not after all of tenant 1's; its cancelled job never runs.
        assert_eq!(order, [(1, 0), (2, 0), (1, 1), (1, 2)]);
        assert!(done_rx.recv_timeout(Duration::from_millis(100)).is_err());
        assert_eq!(pool.jobs().counts().cancelled, 1);
    }

    /// The calling thread's nice value, from `/proc/thread-self/stat` (its 19th field).
    #[cfg(target_os = "linux")]
    fn nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
        after_name.split_whitespace().nth(16).expect("nice").parse().expect("a number")
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn jobs_run_below_the_callers_priority() {
        let pool = JobPool::new(1);
        let (tx, rx) = mpsc::channel::<i32>();
        pool.jobs().submit(uid(1), Arc::new(AtomicBool::new(false)), move || tx.send(nice()).expect("send"));
        let job_nice = rx.recv_timeout(Duration::from_secs(10)).expect("the job ran");
        assert_eq!(job_nice, 19, "a job worker runs at the lowest priority");
        assert!(nice() < 19, "the test's own thread is not lowered");
    }

    #[test]
    fn dropping_the_pool_cancels_running_jobs_and_drops_queued_ones() {
        let pool = JobPool::new(1);
        let running = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let flag = Arc::clone(&running);
        pool.jobs().submit(uid(1), Arc::clone(&running), move || {
            started_tx.send(()).expect("send");
            // A build checks its flag between chunks; this one checks it in a loop.
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let ran = Arc::new(AtomicBool::new(false));
        let ran_in_job = Arc::clone(&ran);
        pool.jobs().submit(uid(1), Arc::new(AtomicBool::new(false)), move || {
            ran_in_job.store(true, Ordering::Relaxed)
        });
        started_rx.recv_timeout(Duration::from_secs(10)).expect("the first job started");
        drop(pool);
        assert!(running.load(Ordering::Relaxed), "the running job was cancelled");
        assert!(!ran.load(Ordering::Relaxed), "the queued job was dropped");
    }
}
