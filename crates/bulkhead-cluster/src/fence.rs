//! A node's fence: open only while the node's lease is surely alive on etcd's side.
//!
//! etcd starts a renewed lease's time-to-live when it *receives* the renewal, which is after the
//! node sent it. So a renewal sent at `t` and acknowledged with a time-to-live `ttl` keeps the lease
//! alive at least until `t + ttl` by etcd's clock. The fence stays open until `t + ttl - margin`:
//! the margin covers the two clocks running at slightly different rates and the calls already past
//! the fence when it closes. The deadline only moves forward, and a closed fence stays closed.
//!
//! Time is read from Linux's boot-time clock, which counts time while the machine is suspended
//! (`Instant`, the monotonic clock, does not): a node resumed from a long suspend finds its fence
//! closed, as etcd will have expired its lease. One limit, for the server that will check it: a
//! call that passed the fence is not stopped by it (the caller re-checks [`Fence::is_open`] right
//! before it commits).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared view of whether this node may serve: cheap to clone and to check on every call.
#[derive(Clone, Debug)]
pub struct Fence {
    inner: Arc<Inner>,
}

/// A reading of the boot-time clock: time since boot, suspends included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Moment(Duration);

/// Now, on the boot-time clock (elsewhere than Linux, the monotonic one).
pub(crate) fn now() -> Moment {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let clock = rustix::time::ClockId::Boottime;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let clock = rustix::time::ClockId::Monotonic;
    let t = rustix::time::clock_gettime(clock);
    let seconds = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
    Moment(Duration::new(seconds, nanos))
}

#[derive(Debug)]
struct Inner {
    /// Nanoseconds on the boot-time clock until which the lease is surely alive; 0 is not yet open.
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
            open_until: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            on_close: tokio::sync::Notify::new(),
        };
        Fence { inner: Arc::new(inner) }
    }

    /// Whether the node's lease is surely alive now.
    pub fn is_open(&self) -> bool {
        self.deadline().is_some_and(|until| now() < until)
    }

    /// Until when the fence is open, as an `Instant` read now (`None` if it never opened, or was
    /// closed). Suspends are counted, so this is the moment to check against now, not to keep.
    pub fn open_until(&self) -> Option<Instant> {
        let until = self.deadline()?;
        let (moment, instant) = (now(), Instant::now());
        Some(match until.0.checked_sub(moment.0) {
            Some(left) => instant + left,
            // Already past: as far back as `Instant` allows.
            None => instant.checked_sub(moment.0 - until.0).unwrap_or(instant),
        })
    }

    /// The deadline on the boot-time clock.
    fn deadline(&self) -> Option<Moment> {
        if self.inner.closed.load(Ordering::Acquire) {
            return None;
        }
        match self.inner.open_until.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(Moment(Duration::from_nanos(nanos))),
        }
    }

    /// Records a renewal sent at `sent` that etcd acknowledged with `ttl`: the fence is open until
    /// `sent + ttl - margin`, never earlier than it already was.
    pub(crate) fn renewed(&self, sent: Moment, ttl: Duration, margin: Duration) {
        let until = sent.0 + ttl.saturating_sub(margin);
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
        let sent = now();
        fence.renewed(sent, Duration::from_secs(9), Duration::from_secs(3));
        assert!(fence.is_open());
        assert_eq!(fence.deadline(), Some(Moment(sent.0 + Duration::from_secs(6))));
        let until = fence.open_until().expect("open");
        let left = until - Instant::now();
        assert!(left <= Duration::from_secs(6) && left > Duration::from_secs(5), "{left:?}");
    }

    #[test]
    fn an_older_renewal_does_not_move_the_deadline_back() {
        let fence = Fence::closed();
        let at = now();
        fence.renewed(at, Duration::from_secs(10), Duration::from_secs(1));
        let first = fence.deadline().expect("open");
        fence.renewed(at, Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(fence.deadline(), Some(first));
    }

    #[test]
    fn a_renewal_past_its_deadline_leaves_the_fence_closed_and_a_closed_fence_stays_closed() {
        let fence = Fence::closed();
        let long_ago = now();
        std::thread::sleep(Duration::from_millis(5));
        fence.renewed(long_ago, Duration::from_millis(3), Duration::from_millis(1));
        assert!(!fence.is_open(), "a deadline in the past is closed");
        fence.renewed(now(), Duration::from_secs(10), Duration::from_secs(1));
        assert!(fence.is_open());
        fence.close();
        assert!(!fence.is_open() && fence.open_until().is_none());
        // A renewal that was on its way when the fence closed does not reopen it.
        fence.renewed(now(), Duration::from_secs(10), Duration::from_secs(1));
        assert!(!fence.is_open() && fence.open_until().is_none());
    }
}
