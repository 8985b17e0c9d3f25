//! A node's fence: open only while the node's lease is surely alive on etcd's side.
//!
//! etcd starts a renewed lease's time-to-live when it *receives* the renewal, which is after the
//! node sent it. So a renewal sent at `t` and acknowledged with a time-to-live `ttl` keeps the lease
//! alive at least until `t + ttl` by etcd's clock. The fence stays open until `t + ttl - margin`:
//! the margin covers the two clocks running at slightly different rates and the calls already past
//! the fence when it closes. The deadline only moves forward, and a closed fence stays closed.
//!
//! Two limits, for the server that will check it: a call that passed the fence is not stopped by
//! it (the caller re-checks [`Fence::is_open`] right before it commits), and `Instant` does not
//! count time while the machine is suspended, so a node resumed from a suspend longer than the
//! margin may find its fence open after etcd expired the lease until its next renewal fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared view of whether this node may serve: cheap to clone and to check on every call.
#[derive(Clone, Debug)]
pub struct Fence {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The fence's time origin.
    base: Instant,
    /// Nanoseconds after `base` until which the lease is surely alive; 0 is not yet open.
    open_until: AtomicU64,
    /// Set for good when the lease is revoked or expired, or the membership dropped: a renewal
    /// that was already on its way when the fence closed cannot reopen it.
    closed: AtomicBool,
    /// Wakes those waiting in [`Fence::closed_for_good`].
    on_close: tokio::sync::Notify,
}

impl Fence {
    pub(crate) fn closed() -> Fence {
        let inner = Inner {
            base: Instant::now(),
            open_until: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            on_close: tokio::sync::Notify::new(),
        };
        Fence { inner: Arc::new(inner) }
    }

    /// Whether the node's lease is surely alive now.
    pub fn is_open(&self) -> bool {
        self.open_until().is_some_and(|until| Instant::now() < until)
    }

    /// Until when the fence is open (`None` if it never opened, or was closed).
    pub fn open_until(&self) -> Option<Instant> {
        if self.inner.closed.load(Ordering::Acquire) {
            return None;
        }
        match self.inner.open_until.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.inner.base + Duration::from_nanos(nanos)),
        }
    }

    /// Records a renewal sent at `sent` that etcd acknowledged with `ttl`: the fence is open until
    /// `sent + ttl - margin`, never earlier than it already was.
    pub(crate) fn renewed(&self, sent: Instant, ttl: Duration, margin: Duration) {
        let until = (sent + ttl.saturating_sub(margin)).saturating_duration_since(self.inner.base);
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.inner.open_until.fetch_max(nanos, Ordering::AcqRel);
    }

    /// Closes the fence for good: the lease was revoked, or etcd said it had expired, or the
    /// membership was dropped. A node that rejoins does so with a new lease and a new fence.
    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.on_close.notify_waiters();
    }

    /// Whether the fence has closed for good (see [`Fence::closed_for_good`]).
    pub fn is_closed_for_good(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Resolves once the fence has closed for good: the lease was revoked, or etcd said it had
    /// expired, or the membership was dropped.
    pub async fn closed_for_good(&self) {
        loop {
            // Registered before the check, so that a close between the two is not missed.
            let closing = self.inner.on_close.notified();
            if self.is_closed_for_good() {
                return;
            }
            closing.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_opens_until_the_renewal_time_plus_ttl_less_the_margin() {
        let fence = Fence::closed();
        assert!(!fence.is_open() && fence.open_until().is_none());
        let sent = Instant::now();
        fence.renewed(sent, Duration::from_secs(9), Duration::from_secs(3));
        assert!(fence.is_open());
        let until = fence.open_until().expect("open");
        let expected = sent + Duration::from_secs(6);
        let skew = if until > expected { until - expected } else { expected - until };
        assert!(skew < Duration::from_micros(1), "{until:?} against {expected:?}");
    }

    #[test]
    fn an_older_renewal_does_not_move_the_deadline_back() {
        let fence = Fence::closed();
        let now = Instant::now();
        fence.renewed(now, Duration::from_secs(10), Duration::from_secs(1));
        let first = fence.open_until().expect("open");
        fence.renewed(now, Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(fence.open_until(), Some(first));
    }

    #[test]
    fn a_renewal_past_its_deadline_leaves_the_fence_closed_and_a_closed_fence_stays_closed() {
        let fence = Fence::closed();
        let long_ago = Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        fence.renewed(long_ago, Duration::from_millis(3), Duration::from_millis(1));
        assert!(!fence.is_open(), "a deadline in the past is closed");
        fence.renewed(Instant::now(), Duration::from_secs(10), Duration::from_secs(1));
        assert!(fence.is_open());
        fence.close();
        assert!(!fence.is_open() && fence.open_until().is_none());
        // A renewal that was on its way when the fence closed does not reopen it.
        fence.renewed(Instant::now(), Duration::from_secs(10), Duration::from_secs(1));
        assert!(!fence.is_open() && fence.open_until().is_none());
    }
}
