//! The monotonic clock token expiry is kept on.

use std::time::Instant;

/// Where a source reads the time: the system's monotonic clock, or in
/// tests that clock moved forward on demand.
#[derive(Clone, Debug, Default)]
pub(crate) enum Clock {
    #[default]
    System,
    #[cfg(feature = "test-clock")]
    Test(TestClock),
}

impl Clock {
    pub(crate) fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            #[cfg(feature = "test-clock")]
            Clock::Test(clock) => clock.now(),
        }
    }
}

#[cfg(feature = "test-clock")]
pub use test_clock::TestClock;

#[cfg(feature = "test-clock")]
mod test_clock {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    /// The system's monotonic clock plus whatever [`advance`](Self::advance)
    /// added: time still flows, so timeouts keep their meaning.
    #[derive(Clone, Debug, Default)]
    pub struct TestClock {
        ahead_ms: Arc<AtomicU64>,
    }

    impl TestClock {
        /// A clock showing the system's time.
        pub fn new() -> Self {
            Self::default()
        }

        /// Moves this clock (and every clone of it) forward by `by`.
        pub fn advance(&self, by: Duration) {
            let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
            self.ahead_ms.fetch_add(ms, Ordering::SeqCst);
        }

        pub(crate) fn now(&self) -> Instant {
            let now = Instant::now();
            let ahead = Duration::from_millis(self.ahead_ms.load(Ordering::SeqCst));
            now.checked_add(ahead).unwrap_or(now)
        }
    }
}
