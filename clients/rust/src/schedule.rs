//! When to refresh: the margin and its jitter, the backoff after a failed
//! refresh, and what each login answer changes. Pure logic on instants.

use std::time::{Duration, Instant};

use crate::token::AccessToken;

/// The first wait after a failed refresh; it doubles per failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between failed refreshes.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// The shortest wait after a refresh that returned the token already held.
const SAME_TOKEN_WAIT: Duration = Duration::from_secs(1);

/// A login's answer.
pub(crate) struct Granted {
    pub(crate) token: AccessToken,
    pub(crate) expires_in: Duration,
}

/// The token held, and when to try replacing it.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) token: AccessToken,
    pub(crate) expires_at: Instant,
    pub(crate) refresh_at: Instant,
}

/// The token a source holds and its refresh plan.
#[derive(Debug)]
pub(crate) struct Schedule {
    refresh_window: Duration,
    held: Option<Held>,
    /// Failed refreshes in a row while a valid token was held.
    failures: u32,
}

impl Schedule {
    pub(crate) fn new(refresh_window: Duration) -> Self {
        Self {
            refresh_window,
            held: None,
            failures: 0,
        }
    }

    /// The held token, if it has not expired at `now`.
    pub(crate) fn valid(&self, now: Instant) -> Option<&Held> {
        self.held.as_ref().filter(|h| now < h.expires_at)
    }

    /// Takes in a login's answer to a request sent at `sent_at`, and returns
    /// the token to use. `jitter` is uniform in [0, 1): the share of 10 % of
    /// the margin that a new token's refresh is put off by.
    pub(crate) fn granted(
        &mut self,
        granted: Granted,
        sent_at: Instant,
        now: Instant,
        jitter: f64,
    ) -> AccessToken {
        self.failures = 0;
        let expires_at = sent_at + granted.expires_in;
        if let Some(held) = self.held.as_mut().filter(|h| h.token == granted.token) {
            // The server's window is smaller than ours: it keeps the token
            // for now. Asking again at a tenth of the time left keeps the
            // number of logins small while still refreshing before expiry.
            held.expires_at = expires_at;
            let left = expires_at.saturating_duration_since(now);
            held.refresh_at = now + SAME_TOKEN_WAIT.max(left / 10);
            return held.token.clone();
        }
        let lifetime = granted.token.lifetime().unwrap_or(granted.expires_in);
        let margin = margin(self.refresh_window, lifetime, jitter);
        let token = granted.token;
        self.held = Some(Held {
            token: token.clone(),
            expires_at,
            refresh_at: expires_at.checked_sub(margin).unwrap_or(sent_at),
        });
        token
    }

    /// A refresh or login failed at `now`: with a valid token, the next
    /// attempt waits (1 s doubling to 30 s); without, every call tries.
    pub(crate) fn failed(&mut self, now: Instant) {
        match self.held.as_mut().filter(|h| now < h.expires_at) {
            Some(held) => {
                self.failures = self.failures.saturating_add(1);
                held.refresh_at = now + backoff(self.failures);
            }
            None => {
                self.held = None;
                self.failures = 0;
            }
        }
    }

    /// Drops the held token if it is `token`.
    pub(crate) fn invalidate(&mut self, token: &AccessToken) {
        if self.held.as_ref().is_some_and(|h| h.token == *token) {
            self.held = None;
            self.failures = 0;
        }
    }

    /// Drops the held token, whatever it is, and returns it.
    pub(crate) fn take(&mut self) -> Option<AccessToken> {
        self.failures = 0;
        self.held.take().map(|h| h.token)
    }
}

/// How long before expiry to refresh: the refresh window, capped at half the
/// lifetime (a 300 s window would otherwise leave a 5 min token permanently
/// stale), less `jitter` × 10 % of it so that a fleet spreads its refreshes.
pub(crate) fn margin(refresh_window: Duration, lifetime: Duration, jitter: f64) -> Duration {
    let margin = refresh_window.min(lifetime / 2);
    margin.saturating_sub(margin.mul_f64(0.1 * jitter.clamp(0.0, 1.0)))
}

/// The wait after `failures` failed refreshes in a row (at least one).
pub(crate) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(5);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn granted(token: &str, expires_in: u64) -> Granted {
        Granted {
            token: AccessToken::new(token.into()),
            expires_in: S * u32::try_from(expires_in).unwrap(),
        }
    }

    #[test]
    fn the_margin_is_the_window_capped_at_half_the_lifetime() {
        assert_eq!(margin(300 * S, 7200 * S, 0.0), 300 * S);
        assert_eq!(margin(300 * S, 300 * S, 0.0), 150 * S);
        assert_eq!(margin(20 * S, 60 * S, 0.0), 20 * S);
        assert_eq!(margin(Duration::ZERO, 60 * S, 0.5), Duration::ZERO);
    }

    #[test]
    fn the_jitter_takes_at_most_a_tenth_off_the_margin() {
        assert_eq!(margin(300 * S, 7200 * S, 0.5), 285 * S);
        assert_eq!(margin(300 * S, 7200 * S, 1.0), 270 * S);
        assert_eq!(margin(300 * S, 7200 * S, 7.0), 270 * S);
        assert_eq!(margin(300 * S, 7200 * S, -1.0), 300 * S);
    }

    #[test]
    fn backoff_doubles_from_one_second_to_thirty() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), 30 * S);
    }

    #[test]
    fn a_new_token_is_refreshed_a_margin_before_expiry_counted_from_sending() {
        let sent = Instant::now();
        let mut schedule = Schedule::new(300 * S);
        let token = schedule.granted(granted("a", 7200), sent, sent + S, 0.0);
        assert_eq!(token.as_str(), "a");
        let held = schedule.valid(sent + S).unwrap();
        assert_eq!(held.expires_at, sent + 7200 * S);
        assert_eq!(held.refresh_at, sent + 6900 * S);
        assert!(schedule.valid(sent + 7200 * S).is_none());
    }

    #[test]
    fn the_token_already_held_is_asked_for_again_at_a_tenth_of_its_time_left() {
        let sent = Instant::now();
        let mut schedule = Schedule::new(300 * S);
        schedule.granted(granted("a", 7200), sent, sent, 0.0);
        let later = sent + 6900 * S;
        schedule.granted(granted("a", 300), later, later, 0.0);
        let held = schedule.valid(later).unwrap();
        assert_eq!(held.refresh_at, later + 30 * S);
        let last = sent + 7195 * S;
        schedule.granted(granted("a", 5), last, last, 0.0);
        assert_eq!(schedule.valid(last).unwrap().refresh_at, last + S);
    }

    #[test]
    fn a_failed_refresh_keeps_the_token_and_backs_off() {
        let sent = Instant::now();
        let mut schedule = Schedule::new(300 * S);
        schedule.granted(granted("a", 7200), sent, sent, 0.0);
        let t = sent + 6950 * S;
        schedule.failed(t);
        assert_eq!(schedule.valid(t).unwrap().refresh_at, t + S);
        schedule.failed(t + S);
        assert_eq!(schedule.valid(t).unwrap().refresh_at, t + 3 * S);
        schedule.granted(granted("b", 7200), t + 3 * S, t + 3 * S, 0.0);
        schedule.failed(t + 4 * S);
        assert_eq!(schedule.valid(t + 4 * S).unwrap().refresh_at, t + 5 * S);
    }

    #[test]
    fn a_failure_with_no_valid_token_left_holds_nothing() {
        let sent = Instant::now();
        let mut schedule = Schedule::new(300 * S);
        schedule.granted(granted("a", 60), sent, sent, 0.0);
        schedule.failed(sent + 61 * S);
        assert!(schedule.take().is_none());
    }

    #[test]
    fn invalidate_drops_only_the_token_it_names() {
        let sent = Instant::now();
        let mut schedule = Schedule::new(300 * S);
        schedule.granted(granted("a", 7200), sent, sent, 0.0);
        schedule.invalidate(&AccessToken::new("b".into()));
        assert!(schedule.valid(sent).is_some());
        schedule.invalidate(&AccessToken::new("a".into()));
        assert!(schedule.valid(sent).is_none());
    }
}
