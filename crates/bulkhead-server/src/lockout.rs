//! Burst and probing lockout: per API key, its requests and its refusals (permission denied) over
//! a sliding five-minute window. A key whose requests in the window pass its tenant's
//! `burst_multiple` times the tenant's baseline, or whose refusals reach the tenant's
//! `max_denials`, is locked: storage records the lock and an audit event, and authentication then
//! refuses the key (`PERMISSION_DENIED`) until an operator runs `bulkhead admin unlock`. Both
//! thresholds come from the tenant's policy ([`TenantQuotas`]) or the server's defaults; 0 turns
//! either off.
//!
//! The tenant's baseline is its requests per window, averaged over about an hour (an exponential
//! moving average of its ten-second counts), and never taken below [`BASELINE_FLOOR`], so that a
//! quiet tenant's first busy minute is not a burst. Time is read on the database's clock, so tests
//! move it instead of sleeping.

use bulkhead_query::{TenantQuotas, TenantUid};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The sliding window.
pub(crate) const WINDOW: Duration = Duration::from_secs(300);
/// Its steps: counts are kept per step, and the window slides a step at a time.
const STEP: Duration = Duration::from_secs(10);
const STEPS: usize = (WINDOW.as_secs() / STEP.as_secs()) as usize;
/// The baseline's memory, in steps (an hour).
const BASELINE_STEPS: f64 = 360.0;
/// The least baseline, in requests per window (one a second).
pub(crate) const BASELINE_FLOOR: f64 = 300.0;
/// Keys tracked at once; beyond it, keys idle for a whole window are dropped.
const TRACKED_KEYS: usize = 100_000;

/// Counts per step over the window, the newest last.
#[derive(Debug, Clone)]
struct Ring {
    counts: [u32; STEPS],
    /// The step the newest count belongs to.
    step: u64,
}

impl Ring {
    fn new(step: u64) -> Ring {
        Ring { counts: [0; STEPS], step }
    }

    /// Slides the window to `step`, dropping the counts that left it.
    fn advance(&mut self, step: u64) {
        let moved = step.saturating_sub(self.step).min(STEPS as u64) as usize;
        self.counts.rotate_left(moved);
        self.counts[STEPS - moved..].fill(0);
        self.step = self.step.max(step);
    }

    /// Counts one at `step`; returns the window's total.
    fn add(&mut self, step: u64) -> u64 {
        self.advance(step);
        self.counts[STEPS - 1] = self.counts[STEPS - 1].saturating_add(1);
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// A tenant's requests per step, averaged over about an hour.
#[derive(Debug)]
struct Baseline {
    per_step: f64,
    /// Requests counted in the current step, not yet in the average.
    current: u32,
    step: u64,
}

impl Baseline {
    fn new(step: u64) -> Baseline {
        Baseline { per_step: 0.0, current: 0, step }
    }

    /// Counts one request at `step`.
    fn add(&mut self, step: u64) {
        if step > self.step {
            let keep = 1.0 - 1.0 / BASELINE_STEPS;
            self.per_step = self.per_step * keep + f64::from(self.current) / BASELINE_STEPS;
            // The steps without a request since count as zeros.
            let idle = i32::try_from(step - self.step - 1).unwrap_or(i32::MAX);
            self.per_step *= keep.powi(idle);
            self.current = 0;
            self.step = step;
        }
        self.current = self.current.saturating_add(1);
    }

    /// Requests per window, never below the floor.
    fn per_window(&self) -> f64 {
        (self.per_step * STEPS as f64).max(BASELINE_FLOOR)
    }
}

/// One key's counts over the window.
#[derive(Debug)]
struct KeyWindow {
    requests: Ring,
    denials: Ring,
}

/// The thresholds of one tenant: its policy's, or the server's defaults (0: off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    pub(crate) burst_multiple: u32,
    pub(crate) max_denials: u32,
}

impl Thresholds {
    pub(crate) fn of(quotas: &TenantQuotas, burst_multiple: u32, max_denials: u32) -> Thresholds {
        Thresholds {
            burst_multiple: quotas.burst_multiple.unwrap_or(burst_multiple),
            max_denials: quotas.max_denials.unwrap_or(max_denials),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    keys: HashMap<String, KeyWindow>,
    tenants: HashMap<TenantUid, Baseline>,
}

/// Every key's windows and every tenant's baseline (see the module documentation).
#[derive(Debug)]
pub(crate) struct Lockout {
    origin: Instant,
    state: Mutex<State>,
}

impl Lockout {
    /// A tracker whose steps count from `origin` (the database clock's now).
    pub(crate) fn new(origin: Instant) -> Lockout {
        Lockout { origin, state: Mutex::new(State::default()) }
    }

    fn step(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / STEP.as_secs()
    }

    fn window<'s>(state: &'s mut State, key: &str, step: u64) -> &'s mut KeyWindow {
        if state.keys.len() >= TRACKED_KEYS && !state.keys.contains_key(key) {
            let horizon = step.saturating_sub(STEPS as u64);
            state.keys.retain(|_, w| w.requests.step.max(w.denials.step) > horizon);
        }
        state
            .keys
            .entry(key.to_owned())
            .or_insert_with(|| KeyWindow { requests: Ring::new(step), denials: Ring::new(step) })
    }

    /// Counts an admitted request of `key`: `Some("burst")` when it takes the key's requests in the
    /// window past `burst_multiple` times its tenant's baseline (the key is then to be locked).
    pub(crate) fn request(
        &self,
        tenant: TenantUid,
        key: &str,
        now: Instant,
        thresholds: Thresholds,
    ) -> Option<&'static str> {
        let step = self.step(now);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let baseline = state.tenants.entry(tenant).or_insert_with(|| Baseline::new(step));
        // The limit is set by the baseline before this request counts in it.
        let limit = f64::from(thresholds.burst_multiple) * baseline.per_window();
        baseline.add(step);
        let in_window = Self::window(&mut state, key, step).requests.add(step);
        (thresholds.burst_multiple > 0 && in_window as f64 > limit).then_some("burst")
    }

    /// Counts a refusal (permission denied) of `key`: `Some("denials")` when the key's refusals in
    /// the window reach `max_denials`.
    pub(crate) fn denied(&self, key: &str, now: Instant, thresholds: Thresholds) -> Option<&'static str> {
        let step = self.step(now);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let in_window = Self::window(&mut state, key, step).denials.add(step);
        (thresholds.max_denials > 0 && in_window >= u64::from(thresholds.max_denials)).then_some("denials")
    }

    /// Forgets a key's counts (once it is locked, or unlocked: it starts afresh).
    pub(crate) fn forget(&self, key: &str) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).keys.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Thresholds = Thresholds { burst_multiple: 4, max_denials: 3 };

    #[test]
    fn a_run_of_denials_within_the_window_locks_and_old_ones_slide_out() {
        let start = Instant::now();
        let lockout = Lockout::new(start);
        assert_eq!(lockout.denied("k", start, ON), None);
        assert_eq!(lockout.denied("k", start + STEP, ON), None);
        // Five minutes on, the first has left the window: two in it, then three.
        assert_eq!(lockout.denied("k", start + WINDOW, ON), None);
        assert_eq!(lockout.denied("k", start + WINDOW, ON), Some("denials"));
        assert_eq!(lockout.denied("other", start + WINDOW, ON), None, "per key");
        let off = Thresholds { max_denials: 0, ..ON };
        assert!((0..100).all(|_| lockout.denied("x", start, off).is_none()), "0 is off");
    }

    #[test]
    fn a_burst_over_the_tenants_baseline_locks_and_steady_traffic_does_not() {
        let start = Instant::now();
        let lockout = Lockout::new(start);
        let tenant = TenantUid::from_hex(&"2".repeat(32)).expect("uid");
        // Two hours at 2 requests a second (600 a window): the baseline settles there.
        let mut now = start;
        for _ in 0..(2 * 360) {
            for _ in 0..20 {
                assert_eq!(lockout.request(tenant, "steady", now, ON), None, "steady traffic");
            }
            now += STEP;
        }
        // Another key of the tenant at ten times the tenant's rate: past four times the baseline
        // within the window.
        let mut locked = None;
        for i in 0..3_000 {
            if let Some(reason) = lockout.request(tenant, "burst", now + Duration::from_millis(i), ON) {
                locked = Some(i);
                assert_eq!(reason, "burst");
                break;
            }
        }
        let at = locked.expect("the burst is caught");
        // The baseline is near 20 a step (600 a window) but not quite there after two hours.
        assert!((1_200..2_400).contains(&at), "caught after {at} requests: over 4 x the baseline");
        // A quiet tenant's first requests are measured against the floor, not against zero.
        let quiet = TenantUid::from_hex(&"3".repeat(32)).expect("uid");
        let floor_limit = (BASELINE_FLOOR as u32) * ON.burst_multiple;
        assert!((0..floor_limit).all(|_| lockout.request(quiet, "new", start, ON).is_none()));
        assert_eq!(lockout.request(quiet, "new", start, ON), Some("burst"));
    }
}
