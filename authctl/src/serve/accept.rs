//! Pausing after a failed `accept`. When the process runs out of file
//! descriptors (EMFILE, ENFILE) every `accept` fails at once until one is
//! freed; retrying in a tight loop would spin a core and write a log line per
//! try. The pause doubles from 10 ms to 1 s and starts again at 10 ms once an
//! `accept` succeeds; the log gets at most one line a second with the number
//! of failures since the last one.

use std::time::{Duration, Instant};

const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// The shortest gap between two log lines about failed accepts.
const LOG_EVERY: Duration = MAX_PAUSE;

/// What to do after one failed accept.
#[derive(Debug, PartialEq, Eq)]
pub struct AfterFailure {
    /// How long to wait before the next accept.
    pub pause: Duration,
    /// `Some(n)`: log now, `n` failures since the last line (this one included).
    pub log: Option<u64>,
}

/// The accept loop's pause and log rate.
#[derive(Debug)]
pub struct Backoff {
    pause: Duration,
    unlogged: u64,
    // Kept across successes, so that accepts that fail and succeed by turns
    // still log at most once a second.
    logged_at: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            pause: FIRST_PAUSE,
            unlogged: 0,
            logged_at: None,
        }
    }
}

impl Backoff {
    /// An accept failed at `now`.
    pub fn failed(&mut self, now: Instant) -> AfterFailure {
        self.unlogged += 1;
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        let due = self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= LOG_EVERY);
        let log = due.then(|| {
            self.logged_at = Some(now);
            std::mem::take(&mut self.unlogged)
        });
        AfterFailure { pause, log }
    }

    /// An accept succeeded: the next failure pauses briefly again.
    pub fn succeeded(&mut self) {
        self.pause = FIRST_PAUSE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_pause_doubles_from_10_ms_to_1_s_and_resets_on_success() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        let pauses: Vec<u64> = (0..10)
            .map(|i| {
                let pause = backoff.failed(start + ms(i)).pause;
                u64::try_from(pause.as_millis()).unwrap()
            })
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(start + ms(20)).pause, ms(10));
    }

    #[test]
    fn failures_log_at_most_once_a_second_with_their_count() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        let mut now = start;
        let mut lines = Vec::new();
        let mut failures = 0;
        // Ten seconds of failures, with successes in between.
        while now < start + Duration::from_secs(10) {
            failures += 1;
            let after = backoff.failed(now);
            if let Some(count) = after.log {
                lines.push((now - start, count));
            }
            backoff.succeeded();
            now += after.pause;
        }
        assert_eq!(
            lines.first(),
            Some(&(Duration::ZERO, 1)),
            "the first failure is logged"
        );
        assert!(lines.len() <= 11, "{lines:?}");
        for pair in lines.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= LOG_EVERY, "{lines:?}");
        }
        let logged: u64 = lines.iter().map(|(_, n)| n).sum();
        assert_eq!(
            logged + backoff.unlogged,
            failures,
            "each failure counted once"
        );
    }
}
