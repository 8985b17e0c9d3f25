//! The server's background work over every tenant: stepping tenant-key rotations and pruning audit
//! trails to their retention. Each tenant is its own compartment here too: a tenant whose step fails
//! (a corrupt keyring, a damaged audit checkpoint) is logged, counted
//! (`bulkhead_background_failures_total`), recorded in its own audit trail when a run of failures
//! starts and ends, and retried later with a growing pause, while the pass goes on with every other
//! tenant. One failing tenant never stops another's rotation (which bounds nonce use) or pruning.

use crate::metrics::Metrics;
use bulkhead_query::{Database, StorageError, TenantUid};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records re-sealed per rotation step: one write batch and one hold of the tenant's write lock
/// (about 2 ms on the development machine, docs/OPERATIONS.md).
const ROTATION_STEP: usize = 256;
/// The pause between steps, which leaves the tenant's write lock to foreground writes most of the
/// time, and how often the task looks for rotations when none runs.
const ROTATION_PAUSE: Duration = Duration::from_millis(5);
const ROTATION_IDLE: Duration = Duration::from_millis(500);
/// How often the retention task prunes the audit trail.
const AUDIT_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The first retry of a tenant after a failure, and the longest pause between retries.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_RETRY: Duration = Duration::from_secs(3600);

/// Tenants whose last background step failed, and when each may be tried again.
#[derive(Default)]
pub(crate) struct Backoff {
    failing: HashMap<TenantUid, (u32, Instant)>,
}

impl Backoff {
    /// Whether `tenant` may be tried at `now`.
    pub(crate) fn due(&self, tenant: TenantUid, now: Instant) -> bool {
        self.failing.get(&tenant).is_none_or(|&(_, retry_at)| now >= retry_at)
    }

    /// Notes a failure; returns whether it starts a run of failures (the tenant was healthy).
    pub(crate) fn failed(&mut self, tenant: TenantUid, now: Instant) -> bool {
        let entry = self.failing.entry(tenant).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        let pause = FIRST_RETRY.saturating_mul(1u32 << entry.0.saturating_sub(1).min(16)).min(LONGEST_RETRY);
        entry.1 = now + pause;
        entry.0 == 1
    }

    /// Notes a success; returns how many failures in a row it ends (0 if the tenant was healthy).
    pub(crate) fn succeeded(&mut self, tenant: TenantUid) -> u32 {
        self.failing.remove(&tenant).map_or(0, |(failures, _)| failures)
    }
}

/// What one task does to one tenant, for the log, the metric and the audit event.
#[derive(Clone, Copy)]
pub(crate) enum Task {
    KeyRotation,
    AuditPrune,
}

impl Task {
    fn name(self) -> &'static str {
        match self {
            Task::KeyRotation => "key-rotation",
            Task::AuditPrune => "audit-prune",
        }
    }
}

/// Records one tenant's step outcome: a failure is logged and counted every time, and written to
/// the tenant's trail when it starts a run (so a stuck tenant cannot fill its trail); the end of a
/// run is logged and written too.
fn record(
    db: &Database,
    metrics: &Metrics,
    backoff: &mut Backoff,
    task: Task,
    tenant: TenantUid,
    outcome: &Result<(), StorageError>,
) {
    let op = db.operator();
    match outcome {
        Ok(()) => {
            let ended = backoff.succeeded(tenant);
            if ended > 0 {
                tracing::info!(
                    tenant = %tenant.short(),
                    task = task.name(),
                    failures = ended,
                    "background step succeeds again"
                );
                if let Err(e) = op.audit_background(tenant, task.name(), "ok") {
                    tracing::warn!(
                        tenant = %tenant.short(),
                        error = %e,
                        "could not record a background recovery in the audit trail"
                    );
                }
            }
        }
        Err(error) => {
            metrics.background_failure(task.name(), tenant.short());
            let first = backoff.failed(tenant, Instant::now());
            tracing::warn!(
                tenant = %tenant.short(),
                task = task.name(),
                error = %error,
                first,
                "a background step failed for one tenant; the others go on"
            );
            if first && let Err(e) = op.audit_background(tenant, task.name(), error.reason_code()) {
                tracing::warn!(
                    tenant = %tenant.short(),
                    error = %e,
                    "could not record a background failure in the audit trail"
                );
            }
        }
    }
}

/// One pass over every tenant with a rotation in progress: a step each (tenants in backoff
/// skipped). Returns whether any step did work, and the backoff state for the next pass.
fn rotation_pass(db: &Database, metrics: &Metrics, mut backoff: Backoff) -> (bool, Backoff) {
    let op = db.operator();
    let tenants = match op.pending_rotations() {
        Ok(tenants) => tenants,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the key rotations in progress; retrying");
            return (false, backoff);
        }
    };
    let now = Instant::now();
    let mut any = false;
    for tenant in tenants {
        if !backoff.due(tenant, now) {
            continue;
        }
        let outcome = op.rotation_step(tenant, ROTATION_STEP).map(|progress| any |= progress.is_some());
        record(db, metrics, &mut backoff, Task::KeyRotation, tenant, &outcome);
    }
    (any, backoff)
}

/// Runs one background pass on a thread of its own at the lowest OS priority, below the calls'
/// storage work on the blocking pool (so a rotation or a pruning yields the cores to requests), and
/// waits for it without holding the runtime. `Err` if the thread could not start or panicked.
async fn low_priority<T: Send + 'static>(pass: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bulkhead-background".to_owned())
        .spawn(move || {
            // Refused only where priorities cannot be changed: the pass runs all the same.
            let _lowered = bulkhead_query::lower_thread_priority();
            let _ = done.send(pass());
        })
        .map_err(|e| format!("cannot start a background thread: {e}"))?;
    result.await.map_err(|_| "the background pass panicked".to_owned())
}

/// Drives every tenant-key rotation in the background, one step at a time on a low-priority thread; a
/// rotation interrupted by a restart is picked up from its persisted cursor. Runs until aborted.
pub(crate) async fn drive_rotations(db: Arc<Database>, metrics: Arc<Metrics>) {
    let mut backoff = Backoff::default();
    loop {
        let (db, metrics) = (Arc::clone(&db), Arc::clone(&metrics));
        let pass = low_priority(move || rotation_pass(&db, &metrics, backoff)).await;
        let pause = match pass {
            Ok((any, kept)) => {
                backoff = kept;
                if any { ROTATION_PAUSE } else { ROTATION_IDLE }
            }
            Err(e) => {
                // A panic inside a pass loses its backoff state; the next pass starts afresh.
                tracing::error!(error = %e, "the key-rotation pass failed; retrying");
                backoff = Backoff::default();
                ROTATION_IDLE
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// One pruning pass over every audit chain (tenants in backoff skipped). Returns the events pruned.
fn prune_pass(db: &Database, metrics: &Metrics, keep: Duration, backoff: &mut Backoff) -> u64 {
    let op = db.operator();
    // Audit events are stamped on the database's clock; the retention cut is measured on it too.
    let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
    let before_ms = db.clock().now_ms().saturating_sub(keep_ms);
    let tenants = match op.audit_tenants() {
        Ok(tenants) => tenants,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the audit chains; pruning retries at the next pass");
            return 0;
        }
    };
    let started = Instant::now();
    let mut pruned = 0;
    for tenant in tenants {
        if !backoff.due(tenant, started) {
            continue;
        }
        let outcome = op.audit_prune(tenant, before_ms).map(|n| pruned += n);
        record(db, metrics, backoff, Task::AuditPrune, tenant, &outcome);
    }
    pruned
}

/// Prunes every audit chain to the retention period, at start and then hourly. Runs until aborted.
pub(crate) async fn prune_audit(db: Arc<Database>, metrics: Arc<Metrics>, keep: Duration) {
    let mut backoff = Backoff::default();
    loop {
        let (db, metrics) = (Arc::clone(&db), Arc::clone(&metrics));
        let pass = low_priority(move || {
            let pruned = prune_pass(&db, &metrics, keep, &mut backoff);
            (pruned, backoff)
        })
        .await;
        match pass {
            Ok((pruned, kept)) => {
                backoff = kept;
                if pruned > 0 {
                    tracing::info!(events = pruned, "audit events past their retention pruned");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the audit pruning pass failed; retrying in an hour");
                backoff = Backoff::default();
            }
        }
        tokio::time::sleep(AUDIT_PRUNE_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour_and_ends_on_success() {
        let mut backoff = Backoff::default();
        let tenant = TenantUid::from_hex(&"07".repeat(16)).expect("uid");
        let other = TenantUid::from_hex(&"08".repeat(16)).expect("uid");
        let t0 = Instant::now();
        assert!(backoff.due(tenant, t0));
        assert!(backoff.failed(tenant, t0), "the first failure starts a run");
        assert!(!backoff.due(tenant, t0) && backoff.due(tenant, t0 + FIRST_RETRY));
        assert!(backoff.due(other, t0), "another tenant is not held back");
        assert!(!backoff.failed(tenant, t0), "a second failure continues the run");
        assert!(!backoff.due(tenant, t0 + FIRST_RETRY) && backoff.due(tenant, t0 + 2 * FIRST_RETRY));
        for _ in 0..40 {
            backoff.failed(tenant, t0);
        }
        assert!(backoff.due(tenant, t0 + LONGEST_RETRY) && !backoff.due(tenant, t0 + LONGEST_RETRY / 2));
        assert_eq!(backoff.succeeded(tenant), 42);
        assert!(backoff.due(tenant, t0));
        assert_eq!(backoff.succeeded(tenant), 0);
    }
}
