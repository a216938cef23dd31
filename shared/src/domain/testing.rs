//! Test doubles for the use cases: an in-memory [`Store`] that keeps the
//! port's contract, a store that is down, and an [`App`] on them with a
//! manual clock and fixed signing keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{AdminPolicy, TokenPolicy};
use crate::domain::api_key::{ApiKey, KeyId, KeyRecord};
use crate::domain::audit::{Actor, AuditEvent, Origin, Stamp};
use crate::domain::clock::{Clock, ManualClock};
use crate::domain::keyring::{KeySet, SigningKey, StaticKeySource};
use crate::domain::login::{Issued, LoginRequest, login};
use crate::domain::owner::Owner;
use crate::domain::portal::PortalLink;
use crate::domain::revoke::{RevokeRequest, Revoked, revoke};
use crate::domain::scope::Scopes;
use crate::domain::session_id::SessionId;
use crate::domain::store::{
    KeyAndSession, KeyPosition, SessionRecord, SessionTimes, Store, StoreError,
};
use crate::domain::verify::{Verified, verify};
use crate::domain::{App, Error, admin};
use crate::telemetry::Audit;

/// Where every test's clock starts, Unix seconds.
pub(crate) const NOW: u64 = 1_800_000_000;

#[derive(Default)]
struct Tables {
    keys: HashMap<KeyId, KeyRecord>,
    /// By (key id, session id).
    sessions: HashMap<(String, String), SessionRecord>,
    /// In the order written.
    events: Vec<AuditEvent>,
    /// By id.
    portal: HashMap<String, PortalLink>,
}

/// Keys and sessions in memory, with the conditional writes of the contract.
#[derive(Default)]
pub(crate) struct MemoryStore {
    tables: Mutex<Tables>,
    /// Session writes still to lose to a rival login that writes first.
    rivals: AtomicUsize,
}

impl MemoryStore {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap()
    }

    /// Makes the next `count` session writes lose: each time another login
    /// writes the same session first, with a token of its own.
    pub(crate) fn lose_session_writes_to_a_rival(&self, count: usize) {
        self.rivals.store(count, Ordering::SeqCst);
    }

    /// Session writes still to lose.
    pub(crate) fn rivals_left(&self) -> usize {
        self.rivals.load(Ordering::SeqCst)
    }

    fn rival_writes_first(&self) -> bool {
        self.rivals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

fn session_key(key: &str, session: &str) -> (String, String) {
    (key.to_owned(), session.to_owned())
}

#[async_trait]
impl Store for MemoryStore {
    async fn key_and_session(
        &self,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<KeyAndSession, StoreError> {
        let tables = self.tables();
        Ok((
            tables.keys.get(key).cloned(),
            tables
                .sessions
                .get(&session_key(key.as_str(), session.as_str()))
                .cloned(),
        ))
    }

    async fn caller_key_and_session(
        &self,
        caller: &KeyId,
        key: &KeyId,
        session: &SessionId,
    ) -> Result<(Option<KeyRecord>, KeyAndSession), StoreError> {
        let caller = self.tables().keys.get(caller).cloned();
        Ok((caller, self.key_and_session(key, session).await?))
    }

    async fn put_session(
        &self,
        session: &SessionRecord,
        replaces: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tables = self.tables();
        let id = session_key(session.key_id(), session.session_id());
        let stored = tables
            .sessions
            .get(&id)
            .map(|s| s.current.claims.jti.as_str());
        if stored != replaces {
            return Ok(false);
        }
        if self.rival_writes_first() {
            let mut rival = session.clone();
            rival.current.claims.jti.push_str("-rival");
            tables.sessions.insert(id, rival);
            return Ok(false);
        }
        tables.sessions.insert(id, session.clone());
        Ok(true)
    }

    async fn delete_session(
        &self,
        key: &KeyId,
        session: &SessionId,
        holding: Option<&str>,
        event: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tables = self.tables();
        let id = session_key(key.as_str(), session.as_str());
        let held = |s: &SessionRecord| {
            holding.is_none_or(|jti| {
                std::iter::once(&s.current)
                    .chain(s.previous.as_ref())
                    .any(|t| t.claims.jti == jti)
            })
        };
        if !tables.sessions.get(&id).is_some_and(held) {
            return Ok(false);
        }
        tables.events.push(event.clone());
        Ok(tables.sessions.remove(&id).is_some())
    }

    async fn list_sessions(&self, key: &KeyId) -> Result<Vec<SessionRecord>, StoreError> {
        let mut sessions: Vec<SessionRecord> = self
            .tables()
            .sessions
            .values()
            .filter(|s| s.key_id() == key.as_str())
            .cloned()
            .collect();
        sessions.sort_by(|a, b| a.session_id().cmp(b.session_id()));
        Ok(sessions)
    }

    async fn unexpired_sessions(
        &self,
        key: &KeyId,
        now: u64,
    ) -> Result<Vec<SessionTimes>, StoreError> {
        Ok(self
            .list_sessions(key)
            .await?
            .into_iter()
            .filter(|s| s.current.claims.exp > now)
            .map(|s| SessionTimes {
                exp: s.current.claims.exp,
                minted_ms: s.current.minted_ms,
            })
            .collect())
    }

    async fn key(&self, key: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.tables().keys.get(key).cloned())
    }

    async fn create_key(&self, record: &KeyRecord, event: &AuditEvent) -> Result<bool, StoreError> {
        let mut tables = self.tables();
        if tables.keys.contains_key(&record.id) {
            return Ok(false);
        }
        let mut stored = record.clone();
        stored.version = 1;
        tables.keys.insert(record.id.clone(), stored);
        tables.events.push(event.clone());
        Ok(true)
    }

    async fn save_key(&self, record: &KeyRecord, event: &AuditEvent) -> Result<bool, StoreError> {
        let mut tables = self.tables();
        match tables.keys.get_mut(&record.id) {
            Some(stored) if stored.version == record.version => {
                *stored = record.clone();
                stored.version = record.version + 1;
                tables.events.push(event.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn touch_key(&self, key: &KeyId, at: u64, stale_before: u64) -> Result<bool, StoreError> {
        let mut tables = self.tables();
        match tables.keys.get_mut(key) {
            Some(k) if k.last_used_at.is_none_or(|t| t < stale_before) => {
                k.last_used_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn keys_page(
        &self,
        owner: Option<&Owner>,
        after: Option<&KeyPosition>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys: Vec<KeyRecord> = self
            .tables()
            .keys
            .values()
            .filter(|k| owner.is_none_or(|o| k.owner.as_ref() == Some(o)))
            .filter(|k| after.is_none_or(|a| &KeyPosition::of(k) < a))
            .cloned()
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(KeyPosition::of(k)));
        keys.truncate(limit);
        Ok(keys)
    }

    async fn events_page(
        &self,
        owner: Option<&Owner>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut events: Vec<AuditEvent> = self
            .tables()
            .events
            .iter()
            .filter(|e| owner.is_none_or(|o| e.owner.as_ref() == Some(o)))
            .filter(|e| before.is_none_or(|b| e.id.as_str() < b))
            .cloned()
            .collect();
        events.sort_by(|a, b| b.id.cmp(&a.id));
        events.truncate(limit);
        Ok(events)
    }

    async fn key_events(
        &self,
        key: &KeyId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut events: Vec<AuditEvent> = self
            .tables()
            .events
            .iter()
            .filter(|e| e.key_id.as_ref() == Some(key) && before.is_none_or(|b| e.id.as_str() < b))
            .cloned()
            .collect();
        events.sort_by(|a, b| b.id.cmp(&a.id));
        events.truncate(limit);
        Ok(events)
    }

    async fn create_portal_link(
        &self,
        link: &PortalLink,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tables = self.tables();
        tables.portal.insert(link.id.clone(), link.clone());
        tables.events.push(event.clone());
        Ok(())
    }

    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut tables = self.tables();
        if !tables.events.iter().any(|e| e.id == event.id) {
            tables.events.push(event.clone());
        }
        Ok(())
    }

    async fn redeem_portal_link(
        &self,
        id: &str,
        now: u64,
        until: u64,
    ) -> Result<Option<PortalLink>, StoreError> {
        let mut tables = self.tables();
        Ok(tables
            .portal
            .get_mut(id)
            .filter(|l| l.session_until.is_none() && l.expires_at > now)
            .map(|l| {
                l.session_until = Some(until);
                l.clone()
            }))
    }

    async fn portal_link(&self, id: &str) -> Result<Option<PortalLink>, StoreError> {
        Ok(self.tables().portal.get(id).cloned())
    }

    async fn end_portal_session(&self, id: &str) -> Result<bool, StoreError> {
        let mut tables = self.tables();
        let redeemed = tables
            .portal
            .get(id)
            .is_some_and(|l| l.session_until.is_some());
        if redeemed {
            tables.portal.remove(id);
        }
        Ok(redeemed)
    }
}

/// How a [`DownStore`] fails.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outage {
    /// Every call fails at once, as after the SDK's retries.
    Refuses,
    /// No call ever returns.
    NeverAnswers,
    /// A bug: every call panics, naming the key it was given, if any.
    Panics,
}

/// A backend that is down: every call fails the same way.
pub(crate) struct DownStore(pub(crate) Outage);

impl DownStore {
    #[allow(clippy::panic)]
    async fn fail<T>(&self, key: Option<&KeyId>) -> Result<T, StoreError> {
        match self.0 {
            Outage::Refuses => Err(StoreError::Unavailable("connection refused".into())),
            Outage::NeverAnswers => std::future::pending().await,
            Outage::Panics => panic!("corrupt record for {key:?}"),
        }
    }
}

#[async_trait]
impl Store for DownStore {
    async fn key_and_session(
        &self,
        key: &KeyId,
        _: &SessionId,
    ) -> Result<KeyAndSession, StoreError> {
        self.fail(Some(key)).await
    }

    async fn caller_key_and_session(
        &self,
        _: &KeyId,
        _: &KeyId,
        _: &SessionId,
    ) -> Result<(Option<KeyRecord>, KeyAndSession), StoreError> {
        self.fail(None).await
    }

    async fn put_session(&self, _: &SessionRecord, _: Option<&str>) -> Result<bool, StoreError> {
        self.fail(None).await
    }

    async fn delete_session(
        &self,
        _: &KeyId,
        _: &SessionId,
        _: Option<&str>,
        _: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.fail(None).await
    }

    async fn list_sessions(&self, _: &KeyId) -> Result<Vec<SessionRecord>, StoreError> {
        self.fail(None).await
    }

    async fn unexpired_sessions(&self, _: &KeyId, _: u64) -> Result<Vec<SessionTimes>, StoreError> {
        self.fail(None).await
    }

    async fn key(&self, key: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.fail(Some(key)).await
    }

    async fn create_key(&self, _: &KeyRecord, _: &AuditEvent) -> Result<bool, StoreError> {
        self.fail(None).await
    }

    async fn save_key(&self, _: &KeyRecord, _: &AuditEvent) -> Result<bool, StoreError> {
        self.fail(None).await
    }

    async fn touch_key(&self, _: &KeyId, _: u64, _: u64) -> Result<bool, StoreError> {
        self.fail(None).await
    }

    async fn keys_page(
        &self,
        _: Option<&Owner>,
        _: Option<&KeyPosition>,
        _: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.fail(None).await
    }

    async fn events_page(
        &self,
        _: Option<&Owner>,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.fail(None).await
    }

    async fn key_events(
        &self,
        _: &KeyId,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.fail(None).await
    }

    async fn create_portal_link(&self, _: &PortalLink, _: &AuditEvent) -> Result<(), StoreError> {
        self.fail(None).await
    }

    async fn record_event(&self, _: &AuditEvent) -> Result<(), StoreError> {
        self.fail(None).await
    }

    async fn redeem_portal_link(
        &self,
        _: &str,
        _: u64,
        _: u64,
    ) -> Result<Option<PortalLink>, StoreError> {
        self.fail(None).await
    }

    async fn portal_link(&self, _: &str) -> Result<Option<PortalLink>, StoreError> {
        self.fail(None).await
    }

    async fn end_portal_session(&self, _: &str) -> Result<bool, StoreError> {
        self.fail(None).await
    }

    async fn warm_up(&self) -> Result<(), StoreError> {
        self.fail(None).await
    }
}

/// An app on a [`MemoryStore`], a [`ManualClock`] at [`NOW`] and one signing key.
pub(crate) struct Fixture {
    pub(crate) app: App,
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) clock: Arc<ManualClock>,
}

impl Fixture {
    /// With the default token rules.
    pub(crate) fn new() -> Self {
        Self::with_policy(TokenPolicy::with_issuer("https://auth.test"))
    }

    /// With these token rules.
    pub(crate) fn with_policy(policy: TokenPolicy) -> Self {
        let store = Arc::new(MemoryStore::default());
        let clock = Arc::new(ManualClock::new(NOW));
        let app = app_on(policy, store.clone(), clock.clone());
        Self { app, store, clock }
    }

    /// The same app (rules, signing keys, clock) on another store.
    pub(crate) fn on(&self, store: impl Store + 'static) -> App {
        app_on(self.app.policy.clone(), Arc::new(store), self.clock.clone())
            .with_admin(self.app.admin.clone())
    }

    /// A new active key holding `scopes`, stored.
    pub(crate) async fn key(&self, scopes: &str) -> ApiKey {
        let key = ApiKey::generate().unwrap();
        let record = KeyRecord::new(&key, "test", Scopes::parse(scopes).unwrap(), NOW, None);
        let event = AuditEvent::of_change(None, &record, &stamp_at(NOW * 1000)).unwrap();
        assert!(self.store.create_key(&record, &event).await.unwrap());
        key
    }

    /// Changes a stored key the way administration does.
    pub(crate) async fn change_key(&self, key: &ApiKey, mut change: impl FnMut(&mut KeyRecord)) {
        let now_ms = self.clock.now_ms().unwrap();
        let updated = admin::update(self.store.as_ref(), key.id(), &stamp_at(now_ms), |r| {
            change(r);
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        assert!(updated.is_some(), "no key {}", key.id());
    }

    /// The stored sessions of `key`, by session id.
    pub(crate) async fn sessions(&self, key: &ApiKey) -> Vec<SessionRecord> {
        self.store.list_sessions(key.id()).await.unwrap()
    }

    /// Logs `key` in to `session` (`None`: the default one) for `scope` (`None`: all).
    pub(crate) async fn login(
        &self,
        key: &ApiKey,
        session: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Issued, Error> {
        login(
            &self.app,
            login_request(key, session, scope),
            &mut Audit::default(),
        )
        .await
    }

    /// Runs a revoke.
    pub(crate) async fn revoke(&self, request: RevokeRequest) -> Result<Revoked, Error> {
        revoke(&self.app, request, &mut Audit::default()).await
    }

    /// Verifies `token`, requiring `required` when given.
    pub(crate) async fn verify(
        &self,
        token: &Issued,
        required: Option<&str>,
    ) -> Result<Verified, Error> {
        verify(
            &self.app,
            Some(bearer(token)),
            required,
            &mut Audit::default(),
        )
        .await
    }
}

fn app_on(policy: TokenPolicy, store: Arc<dyn Store>, clock: Arc<ManualClock>) -> App {
    let signing = SigningKey::new("v1", &SecretString::from("k".repeat(32))).unwrap();
    let keys = KeySet {
        current: Arc::new(signing),
        previous: None,
    };
    App::new(
        policy,
        store,
        Arc::new(StaticKeySource(keys)),
        Duration::from_secs(300),
        clock,
    )
}

/// Where the tests' own changes come from.
pub(crate) fn origin() -> Origin {
    Origin::of(Actor::cli("test@host"))
}

/// The tests' own change at `now_ms`, its event kept the default time.
pub(crate) fn stamp_at(now_ms: u64) -> Stamp {
    Stamp {
        origin: origin(),
        now_ms,
        retention_days: AdminPolicy::default().audit_retention_days,
    }
}

/// What a login of `key` to `session` for `scope` sends.
pub(crate) fn login_request(
    key: &ApiKey,
    session: Option<&str>,
    scope: Option<&str>,
) -> LoginRequest {
    LoginRequest {
        api_key: key.expose(),
        session_id: session.map(str::to_owned),
        scope: scope.map(str::to_owned),
    }
}

/// The token an issue handed out, as a bearer sends it.
pub(crate) fn bearer(issued: &Issued) -> &str {
    issued.access_token.expose_secret()
}

/// `issued` with one character of its signature changed: a forgery.
pub(crate) fn tampered(issued: &Issued) -> String {
    // The signature's first character, all of whose bits count.
    let (signed, signature) = bearer(issued).rsplit_once('.').unwrap();
    let mut rest = signature.chars();
    let first = if rest.next() == Some('A') { 'B' } else { 'A' };
    format!("{signed}.{first}{}", rest.as_str())
}

/// The error of a use case that had to fail (its success type need not be `Debug`).
pub(crate) fn failure<T>(result: Result<T, Error>) -> Error {
    match result {
        Ok(_) => panic!("expected a failure, got a success"),
        Err(e) => e,
    }
}

/// The value of a use case that had to succeed, with the error's chain otherwise.
pub(crate) fn success<T>(result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| panic!("expected a success, got {}", e.source_chain()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_a_recorded_event_once_and_a_down_one_fails() {
        let event = AuditEvent::of_signing_key_rotation(Some("k0"), "k1", &stamp_at(5_000));
        let store = MemoryStore::default();
        for _ in 0..2 {
            store.record_event(&event).await.unwrap();
        }
        assert!(matches!(
            DownStore(Outage::Refuses).record_event(&event).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(store.events_page(None, None, 10).await.unwrap(), [event]);
    }
}
