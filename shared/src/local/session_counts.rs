//! Upper bounds on how many live sessions each key holds, kept in memory by
//! the SQLite store so that the session cap counts a key's sessions about
//! once a second instead of on every login that opens one.
//!
//! Counting reads every session row of the key: with a few hundred sessions
//! a key, that was a third of the CPU of a login that opens a session. A
//! bound is a count taken at some second plus every session this process
//! has written for the key since: sessions that expire or are deleted only
//! lower the true count, so it stays an upper bound, and while it is below
//! the cap the login may go on. At the cap, in another second, or after a
//! revoke-all, the store counts again. Sessions another process opens on
//! the same file are seen from the next second on.

use std::collections::HashMap;
use std::sync::Mutex;

/// Keys tracked at most; past it the bounds start over (each key is then
/// counted afresh), so memory stays bounded whatever the number of keys.
const MAX_KEYS: usize = 1 << 16;

/// The bounds of every key that opened a session lately.
#[derive(Default)]
pub struct SessionCounts {
    keys: Mutex<Keys>,
}

#[derive(Default)]
struct Keys {
    /// Bumped each time the map starts over, so a count begun before that
    /// is not stored against openings it never saw.
    epoch: u64,
    map: HashMap<String, Entry>,
}

#[derive(Default)]
struct Entry {
    /// Session writes this process committed for the key since the entry
    /// was made; only grows.
    opened: u64,
    counted: Option<Counted>,
}

/// A count of the key's live sessions.
struct Counted {
    /// The second it counted at (the cap's `now`).
    at: u64,
    /// The revoke-all cut-off it counted with.
    cut_off_ms: u64,
    live: u64,
    /// [`Entry::opened`] when the count's read began.
    opened: u64,
}

/// Where a key's openings stood as a count began: see [`SessionCounts::counted`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    opened: u64,
}

impl SessionCounts {
    /// The bound on the live sessions of `key` at `now` under `cut_off_ms`,
    /// when one counted in that same second holds.
    pub fn bound(&self, key: &str, now: u64, cut_off_ms: u64) -> Option<u64> {
        let keys = crate::local::lock(&self.keys);
        let entry = keys.map.get(key)?;
        let counted = entry.counted.as_ref()?;
        if counted.at != now || counted.cut_off_ms != cut_off_ms {
            return None;
        }
        // Never short: a count stored against another entry's openings
        // (which the epoch rules out) gives no bound rather than a wrong one.
        let since = entry.opened.checked_sub(counted.opened)?;
        Some(counted.live.saturating_add(since))
    }

    /// To call before reading a count of `key`'s sessions: from here on,
    /// every session written for it is added to the count.
    pub fn before_count(&self, key: &str) -> Ticket {
        let mut keys = crate::local::lock(&self.keys);
        if keys.map.len() >= MAX_KEYS && !keys.map.contains_key(key) {
            keys.map.clear();
            keys.epoch += 1;
        }
        let epoch = keys.epoch;
        let opened = keys.map.entry(key.to_owned()).or_default().opened;
        Ticket { epoch, opened }
    }

    /// Keeps `live`, the count read after `ticket` was taken, as the bound of
    /// `key` for the second `now`.
    pub fn counted(&self, key: &str, ticket: Ticket, now: u64, cut_off_ms: u64, live: u64) {
        let mut keys = crate::local::lock(&self.keys);
        if keys.epoch != ticket.epoch {
            return;
        }
        if let Some(entry) = keys.map.get_mut(key) {
            entry.counted = Some(Counted {
                at: now,
                cut_off_ms,
                live,
                opened: ticket.opened,
            });
        }
    }

    /// To call once a session write of `key` has committed, before anyone
    /// is told it has.
    pub fn opened(&self, key: &str) {
        let mut keys = crate::local::lock(&self.keys);
        // A key without an entry has no count to add to: the next count
        // reads after this commit.
        if let Some(entry) = keys.map.get_mut(key) {
            entry.opened += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(counts: &SessionCounts, key: &str, now: u64, live: u64) {
        let ticket = counts.before_count(key);
        counts.counted(key, ticket, now, 0, live);
    }

    #[test]
    fn no_bound_until_counted_and_only_in_the_second_it_was_counted() {
        let counts = SessionCounts::default();
        assert_eq!(counts.bound("k", 100, 0), None);
        counted(&counts, "k", 100, 7);
        assert_eq!(counts.bound("k", 100, 0), Some(7));
        assert_eq!(counts.bound("k", 101, 0), None, "a second later");
        assert_eq!(counts.bound("k", 99, 0), None, "the clock went back");
        assert_eq!(counts.bound("k", 100, 5), None, "after a revoke-all");
        assert_eq!(counts.bound("other", 100, 0), None);
    }

    #[test]
    fn every_session_written_after_the_count_began_is_added() {
        let counts = SessionCounts::default();
        counted(&counts, "k", 100, 3);
        counts.opened("k");
        counts.opened("k");
        counts.opened("other");
        assert_eq!(counts.bound("k", 100, 0), Some(5));
        // A write that commits while a count reads may or may not be in that
        // count: it is added either way, so the bound is never short.
        let ticket = counts.before_count("k");
        counts.opened("k");
        counts.counted("k", ticket, 100, 0, 6);
        assert_eq!(counts.bound("k", 100, 0), Some(7));
    }

    #[test]
    fn a_count_begun_before_the_map_started_over_is_dropped() {
        let counts = SessionCounts::default();
        counted(&counts, "k", 100, 0);
        for _ in 0..5 {
            counts.opened("k");
        }
        let stale = counts.before_count("k");
        for i in 0..MAX_KEYS {
            counts.before_count(&format!("key-{i}"));
        }
        assert!(crate::local::lock(&counts.keys).map.len() <= MAX_KEYS);
        // "k" starts over: a count of it now, then one opening.
        let fresh = counts.before_count("k");
        counts.opened("k");
        counts.counted("k", stale, 100, 0, 5);
        assert_eq!(
            counts.bound("k", 100, 0),
            None,
            "the stale count is dropped"
        );
        counts.counted("k", fresh, 100, 0, 0);
        assert_eq!(counts.bound("k", 100, 0), Some(1));
    }
}
