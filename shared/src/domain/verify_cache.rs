//! `VERIFY_CACHE_SECONDS`: verify may reuse the key and session state this
//! environment read at most that long ago, instead of reading it again.
//!
//! Off by default (0): every verify reads the store, so a revocation holds
//! from the very next verify. Set (at most 10 s), it is the revocation delay:
//! a token revoked elsewhere keeps verifying here until the state this
//! environment holds for it is that old, and never longer, as the age counts
//! from before the read that fetched it.
//!
//! Only a yes is reused. A cached state that would refuse the token (a
//! session minted since, a scope the cached key lacks) is read again, so the
//! cache can delay a revocation but never refuse a token the store accepts.
//! Entries are bounded in number, so memory is too.

use quick_cache::sync::Cache;

use crate::domain::api_key::KeyId;
use crate::domain::session_id::SessionId;
use crate::domain::store::KeyAndSession;

/// The longest delay the setting allows, in seconds.
pub const MAX_SECONDS: u64 = 10;

/// Key and session states kept per environment: at most this many.
const CAPACITY: usize = 10_000;

/// Recently read key and session states, by key and session.
pub struct VerifyCache {
    max_age_ms: u64,
    entries: Option<Cache<(KeyId, SessionId), Entry>>,
}

#[derive(Clone)]
struct Entry {
    /// When the read that fetched it began, in ms.
    read_ms: u64,
    state: KeyAndSession,
}

impl VerifyCache {
    /// A cache reusing state for `seconds` (0: none, every verify reads the store).
    pub fn new(seconds: u64) -> Self {
        Self {
            max_age_ms: seconds.saturating_mul(1000),
            entries: (seconds > 0).then(|| Cache::new(CAPACITY)),
        }
    }

    /// The state of `key` and `session` read less than the cache's age before
    /// `now_ms`, if any.
    pub fn fresh(&self, key: &KeyId, session: &SessionId, now_ms: u64) -> Option<KeyAndSession> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(&(key.clone(), session.clone()))?;
        // A clock that stepped back makes the entry's age unknown: read again.
        let age = now_ms.checked_sub(entry.read_ms)?;
        (age < self.max_age_ms).then_some(entry.state)
    }

    /// Keeps `state`, read by a read that began at `read_ms`.
    pub fn keep(&self, key: &KeyId, session: &SessionId, state: &KeyAndSession, read_ms: u64) {
        if let Some(entries) = &self.entries {
            entries.insert(
                (key.clone(), session.clone()),
                Entry {
                    read_ms,
                    state: state.clone(),
                },
            );
        }
    }
}

impl Default for VerifyCache {
    fn default() -> Self {
        Self::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (KeyId, SessionId) {
        (
            KeyId::parse("0123456789abcdef").unwrap(),
            SessionId::parse("s1").unwrap(),
        )
    }

    #[test]
    fn off_keeps_nothing() {
        let cache = VerifyCache::new(0);
        let (key, session) = ids();
        cache.keep(&key, &session, &(None, None), 1_000);
        assert!(cache.fresh(&key, &session, 1_000).is_none());
    }

    #[test]
    fn a_state_is_reused_until_it_is_as_old_as_the_setting_and_never_after() {
        let cache = VerifyCache::new(2);
        let (key, session) = ids();
        cache.keep(&key, &session, &(None, None), 10_000);
        assert!(cache.fresh(&key, &session, 10_000).is_some());
        assert!(cache.fresh(&key, &session, 11_999).is_some());
        assert!(cache.fresh(&key, &session, 12_000).is_none());
        assert!(
            cache.fresh(&key, &session, 9_999).is_none(),
            "a clock that went back"
        );
        let other = SessionId::parse("s2").unwrap();
        assert!(cache.fresh(&key, &other, 10_000).is_none());
    }
}
