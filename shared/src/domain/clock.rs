//! Wall-clock time since the Unix epoch.
//!
//! Every time decision (token expiry, key expiry, refresh window, the
//! revoke-all cutoff) reads the clock through [`Clock`] so that tests can move
//! time instead of sleeping. A host clock outside any plausible range is an
//! error, answered 503: a clock read as 0 would mint tokens that are born
//! expired and compare revocation cutoffs against nonsense.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// Earliest plausible time (2020-01-01), in milliseconds.
const EARLIEST_MS: u64 = 1_577_836_800_000;
/// Latest plausible time (2200-01-01), in milliseconds.
const LATEST_MS: u64 = 7_258_118_400_000;

/// The host clock cannot be trusted.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the system clock is outside 2020..2200")]
pub struct ClockError;

/// A source of the current Unix time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> Result<u64, ClockError>;

    /// Whole seconds since the Unix epoch.
    fn now(&self) -> Result<u64, ClockError> {
        self.now_ms().map(|ms| ms / 1000)
    }
}

/// Checks that `ms` is a plausible time.
fn plausible(ms: u64) -> Result<u64, ClockError> {
    (EARLIEST_MS..LATEST_MS)
        .contains(&ms)
        .then_some(ms)
        .ok_or(ClockError)
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Result<u64, ClockError> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ClockError)?;
        plausible(u64::try_from(since.as_millis()).map_err(|_| ClockError)?)
    }
}

/// A clock that only moves when told to: for tests of expiry and refresh.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock standing at `now` (seconds).
    pub fn new(now: u64) -> Self {
        Self(AtomicU64::new(now.saturating_mul(1000)))
    }

    /// A clock standing at the current system time (or 2020 if that is unusable).
    pub fn starting_now() -> Self {
        Self(AtomicU64::new(SystemClock.now_ms().unwrap_or(EARLIEST_MS)))
    }

    /// The time it stands at, in seconds (tests use it to build expectations).
    pub fn seconds(&self) -> u64 {
        self.0.load(Ordering::SeqCst) / 1000
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.advance_ms(seconds.saturating_mul(1000));
    }

    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `now` (seconds).
    pub fn set(&self, now: u64) {
        self.0.store(now.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Result<u64, ClockError> {
        plausible(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_a_plausible_time() {
        let ms = SystemClock.now_ms().unwrap();
        assert_eq!(SystemClock.now().unwrap(), ms / 1000);
    }

    #[test]
    fn a_clock_at_the_epoch_or_far_in_the_future_is_an_error_not_time_zero() {
        assert_eq!(ManualClock::new(0).now(), Err(ClockError));
        assert_eq!(ManualClock::new(7_258_118_400).now(), Err(ClockError));
        assert_eq!(ManualClock::new(1_700_000_000).now(), Ok(1_700_000_000));
    }

    #[test]
    fn a_manual_clock_moves_in_seconds_and_milliseconds() {
        let clock = ManualClock::new(1_700_000_000);
        clock.advance_ms(1500);
        assert_eq!(clock.now_ms(), Ok(1_700_000_001_500));
        assert_eq!(clock.seconds(), 1_700_000_001);
    }
}
