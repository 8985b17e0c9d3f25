//! The clock a store reads: wall time for the timestamps it writes (audit events, creation and
//! change times) and for API key expiry, and monotonic time for the intervals it measures (the
//! refusal-event window here, a collection's idle flush in the query crate).
//!
//! [`Clock::System`], the default, reads `SystemTime` and `Instant`. [`Clock::Manual`] holds a
//! [`ManualClock`], which moves only when a test advances it, so that a test waits for time to
//! pass without sleeping. The clock is chosen when the store is opened ([`StoreOptions`]); nothing
//! reads a global clock, and nothing but a caller's explicit choice ever makes a manual one.
//!
//! [`StoreOptions`]: crate::StoreOptions

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a store reads the time.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system's clocks. What a server and an embedding application use.
    #[default]
    System,
    /// A clock that moves only when advanced. For tests.
    Manual(ManualClock),
}

impl Clock {
    /// Milliseconds since the Unix epoch (0 if the system clock is before it).
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => millis_since_epoch(SystemTime::now()),
            Clock::Manual(manual) => {
                let advanced = *manual.0.advanced.lock();
                manual.0.wall_ms.saturating_add(advanced.as_millis() as u64)
            }
        }
    }

    /// The current monotonic instant, for measuring intervals.
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(manual) => manual.0.instant + *manual.0.advanced.lock(),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Clock {
        Clock::Manual(manual)
    }
}

/// A clock for tests: it starts at the system's time when it is made and then stands still
/// until [`ManualClock::advance`] moves it. Clones share the same time, so a test keeps one
/// and gives the store another (`StoreOptions { clock: manual.clone().into(), .. }`).
///
/// Not for production: a store on a manual clock never lets an API key expire, never ends a
/// refusal window and never flushes an idle collection unless someone advances it.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<ManualState>);

#[derive(Debug)]
struct ManualState {
    /// The wall time when the clock was made, in milliseconds since the Unix epoch.
    wall_ms: u64,
    /// The monotonic instant when the clock was made.
    instant: Instant,
    /// How far the clock has been advanced since.
    advanced: Mutex<Duration>,
}

impl ManualClock {
    /// A clock standing at the system's current time.
    pub fn new() -> ManualClock {
        ManualClock(Arc::new(ManualState {
            wall_ms: millis_since_epoch(SystemTime::now()),
            instant: Instant::now(),
            advanced: Mutex::new(Duration::ZERO),
        }))
    }

    /// Moves the clock (and every clone of it) forward by `by`.
    ///
    /// # Panics
    ///
    /// If the clock would pass the latest instant the platform can represent (centuries ahead).
    pub fn advance(&self, by: Duration) {
        let mut advanced = self.0.advanced.lock();
        let next = advanced.checked_add(by).filter(|next| self.0.instant.checked_add(*next).is_some());
        *advanced = next.expect("a manual clock advanced past the latest representable instant");
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
