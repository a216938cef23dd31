//! When keys were last used: `last_used_at`, written by login and verify at
//! most once an hour per key in each environment, beside the request and
//! never in its way (a failed write is logged, the request goes on).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::domain::App;
use crate::domain::api_key::KeyId;

/// How fine `last_used_at` is: a key's use is written again only when the
/// stored time is older than this.
pub const RESOLUTION_SECONDS: u64 = 3600;

/// Keys an environment remembers at most before it forgets the oldest marks.
const MAX_MARKED: usize = 100_000;

/// When this environment last wrote each key's use, so that requests of one
/// key in one hour write it once, not once each.
#[derive(Debug, Default)]
pub struct UsageMarks(Mutex<HashMap<KeyId, u64>>);

impl UsageMarks {
    /// Whether this environment should write `key`'s use at `now`; if so,
    /// the hour is taken and later calls in it answer no.
    fn claim(&self, key: &KeyId, now: u64) -> bool {
        let mut marks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if marks
            .get(key)
            .is_some_and(|&at| now < at.saturating_add(RESOLUTION_SECONDS))
        {
            return false;
        }
        if marks.len() >= MAX_MARKED {
            marks.retain(|_, at| now < at.saturating_add(RESOLUTION_SECONDS));
        }
        marks.insert(key.clone(), now);
        true
    }
}

/// Records that `key`, last used at `last_used_at` as read, is used at
/// `now`, when that is an hour or more later.
pub async fn note(app: &App, key: &KeyId, last_used_at: Option<u64>, now: u64) {
    let fresh = last_used_at.is_some_and(|at| now < at.saturating_add(RESOLUTION_SECONDS));
    if fresh || !app.usage.claim(key, now) {
        return;
    }
    let stale_before = now.saturating_sub(RESOLUTION_SECONDS).saturating_add(1);
    if let Err(e) = app.store.touch_key(key, now, stale_before).await {
        tracing::warn!(key_id = %key, error = %e, "last use of the key not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::api_key::ApiKey;

    #[test]
    fn a_key_is_claimed_once_an_hour_in_one_environment() {
        let marks = UsageMarks::default();
        let key = ApiKey::generate().unwrap().id().clone();
        assert!(marks.claim(&key, 1_000));
        assert!(!marks.claim(&key, 1_000));
        assert!(!marks.claim(&key, 1_000 + RESOLUTION_SECONDS - 1));
        assert!(marks.claim(&key, 1_000 + RESOLUTION_SECONDS));
        let other = ApiKey::generate().unwrap().id().clone();
        assert!(marks.claim(&other, 1_000), "each key on its own");
    }
}
