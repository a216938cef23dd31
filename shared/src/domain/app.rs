//! The state a function builds once per cold start and lends to every request.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{AdminPolicy, TokenPolicy};
use crate::domain::audit::{Origin, Stamp};
use crate::domain::clock::{Clock, ClockError};
use crate::domain::keyring::{KeyRing, KeySource};
use crate::domain::store::Store;
use crate::domain::usage::UsageMarks;
use crate::domain::verify_cache::VerifyCache;

/// Everything the use cases need: token rules, the store, the signing keys and a clock.
#[derive(Clone)]
pub struct App {
    /// Token rules.
    pub policy: TokenPolicy,
    /// Management API, audit trail, portal and console rules.
    pub admin: AdminPolicy,
    /// Keys and sessions.
    pub store: Arc<dyn Store>,
    /// Signing keys.
    pub keys: Arc<KeyRing>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Which keys' last use this environment has written lately.
    pub usage: Arc<UsageMarks>,
    /// Key and session states verify may reuse (`VERIFY_CACHE_SECONDS`).
    pub verify_cache: Arc<VerifyCache>,
}

impl App {
    /// The one way an app is put together, whatever its backends: the
    /// Lambdas' AWS wiring, `authctl serve`, the benchmarks and the tests all
    /// come through here. Signing keys from `source` are cached for `key_cache`.
    pub fn new(
        policy: TokenPolicy,
        store: Arc<dyn Store>,
        source: Arc<dyn KeySource>,
        key_cache: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            verify_cache: Arc::new(VerifyCache::new(policy.verify_cache_seconds)),
            policy,
            admin: AdminPolicy::default(),
            store,
            keys: Arc::new(KeyRing::new(source, key_cache)),
            clock,
            usage: Arc::default(),
        }
    }

    /// The app with `admin` rules in place of the defaults.
    pub fn with_admin(self, admin: AdminPolicy) -> Self {
        Self { admin, ..self }
    }

    /// A change by `origin` at this instant, stamped for the audit trail.
    pub fn stamp(&self, origin: Origin) -> Result<Stamp, ClockError> {
        Ok(Stamp {
            origin,
            now_ms: self.clock.now_ms()?,
            retention_days: self.admin.audit_retention_days,
        })
    }

    /// Pays during init what the first request would otherwise pay: the
    /// signing keys (one Secrets Manager round trip) and the store's
    /// connection, both at once and bounded in time. A failure only logs: the
    /// first request then retries, and answers 503 if the backend is down.
    pub async fn warm_up(&self) {
        let keys = async { self.keys.keys().await.map(drop).map_err(|e| e.to_string()) };
        let store = async { self.store.warm_up().await.map_err(|e| e.to_string()) };
        match tokio::time::timeout(WARM_UP_LIMIT, async { tokio::join!(keys, store) }).await {
            Ok((Ok(()), Ok(()))) => {}
            Ok((keys, store)) => {
                tracing::warn!(keys = ?keys.err(), store = ?store.err(), "warm-up failed")
            }
            Err(_) => tracing::warn!("warm-up timed out"),
        }
    }
}

/// The longest a cold start waits for [`App::warm_up`].
const WARM_UP_LIMIT: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;
    use crate::domain::testing::{DownStore, Fixture, Outage};

    /// How long `app.warm_up()` took, in the test's virtual time; a failure,
    /// not a hang, when it would never return.
    async fn warm_up_time(app: &App) -> Duration {
        let start = Instant::now();
        tokio::time::timeout(WARM_UP_LIMIT * 10, app.warm_up())
            .await
            .expect("warm-up returns");
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn warm_up_gives_up_at_its_limit_when_the_store_never_answers() {
        let app = Fixture::new().on(DownStore(Outage::NeverAnswers));
        assert_eq!(warm_up_time(&app).await, WARM_UP_LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn warm_up_does_not_wait_on_a_store_that_refuses_or_a_healthy_one() {
        let fx = Fixture::new();
        assert_eq!(warm_up_time(&fx.app).await, Duration::ZERO);
        let down = fx.on(DownStore(Outage::Refuses));
        assert_eq!(warm_up_time(&down).await, Duration::ZERO);
    }
}
