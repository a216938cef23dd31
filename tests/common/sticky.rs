//! Revocation is sticky and revoke-all is one write, on every store (both
//! layers run this file, each on its `backend`): no
//! concurrent key write brings a revoked key back, a revoke-all ends every
//! session minted before it and none after it, and the session cap holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use auth_shared::config::TokenPolicy;
use auth_shared::domain::admin::{self, RotateError};
use auth_shared::domain::api_key::{ApiKey, KeyId, KeyRecord, KeyStatus};
use auth_shared::domain::audit::AuditEvent;
use auth_shared::domain::owner::Owner;
use auth_shared::domain::portal::PortalLink;
use auth_shared::domain::session_id::SessionId;
use auth_shared::domain::store::KeyPosition;
use auth_shared::domain::store::{KeyAndSession, SessionRecord, SessionTimes, Store, StoreError};
use auth_shared::domain::token::TokenError;
use auth_tests::ISSUER;
use serde_json::json;

use auth_tests::expect::assert_invalid_token;

fn key_id(api_key: &str) -> KeyId {
    ApiKey::parse(api_key).unwrap().id().clone()
}

async fn stores() -> Vec<(&'static str, crate::backend::Service)> {
    crate::backend::apps(TokenPolicy::with_issuer(ISSUER)).await
}

#[tokio::test]
async fn revoking_every_session_ends_each_live_token_and_a_login_in_the_same_millisecond_verifies()
{
    for (name, t) in stores().await {
        let key = t.create_key("read").await;
        let (a, b) = (t.token(&key, "a").await, t.token(&key, "b").await);
        let r = t
            .revoke(json!({"api_key": key, "all_sessions": true}))
            .await;
        assert_eq!(
            (r.status, r.body["sessions_revoked"].clone()),
            (200, json!(2)),
            "{name}: {:?}",
            r.body
        );
        for old in [&a, &b] {
            assert_invalid_token(&t.verify(old, None).await, TokenError::Revoked);
        }
        // The manual clock has not moved: these logins happen in the very
        // millisecond of the revoke, and must still get tokens that verify.
        let again = t.token(&key, "a").await;
        assert_ne!(
            again, a,
            "{name}: a revoked token is never handed out again"
        );
        let fresh = t.token(&key, "c").await;
        for new in [&again, &fresh] {
            let r = t.verify(new, None).await;
            assert_eq!(r.status, 200, "{name}: {:?}", r.body);
        }
        let r = t
            .revoke(json!({"api_key": key, "all_sessions": true}))
            .await;
        assert_eq!(
            r.body["sessions_revoked"],
            json!(2),
            "{name}: a second revoke-all ends only what was minted since"
        );
    }
}

/// A store that lets another writer revoke the key between a change's read
/// and its write, the worst moment for a read-modify-write.
struct RevokeBeforeFirstSave {
    inner: Arc<dyn Store>,
    armed: AtomicBool,
}

#[async_trait]
impl Store for RevokeBeforeFirstSave {
    async fn key_and_session(&self, k: &KeyId, s: &SessionId) -> Result<KeyAndSession, StoreError> {
        self.inner.key_and_session(k, s).await
    }
    async fn caller_key_and_session(
        &self,
        c: &KeyId,
        k: &KeyId,
        s: &SessionId,
    ) -> Result<(Option<KeyRecord>, KeyAndSession), StoreError> {
        self.inner.caller_key_and_session(c, k, s).await
    }
    async fn put_session(&self, s: &SessionRecord, r: Option<&str>) -> Result<bool, StoreError> {
        self.inner.put_session(s, r).await
    }
    async fn delete_session(
        &self,
        k: &KeyId,
        s: &SessionId,
        h: Option<&str>,
        e: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.inner.delete_session(k, s, h, e).await
    }
    async fn list_sessions(&self, k: &KeyId) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_sessions(k).await
    }
    async fn unexpired_sessions(
        &self,
        k: &KeyId,
        now: u64,
    ) -> Result<Vec<SessionTimes>, StoreError> {
        self.inner.unexpired_sessions(k, now).await
    }
    async fn key(&self, k: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.key(k).await
    }
    async fn create_key(&self, r: &KeyRecord, e: &AuditEvent) -> Result<bool, StoreError> {
        self.inner.create_key(r, e).await
    }
    async fn save_key(&self, r: &KeyRecord, e: &AuditEvent) -> Result<bool, StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            let revoked = admin::update(self.inner.as_ref(), &r.id, &auth_tests::stamp(), |k| {
                admin::revoke(k);
                Ok::<_, StoreError>(())
            })
            .await?;
            assert!(revoked.is_some_and(|u| u.changed()));
        }
        self.inner.save_key(r, e).await
    }
    async fn touch_key(&self, k: &KeyId, at: u64, stale: u64) -> Result<bool, StoreError> {
        self.inner.touch_key(k, at, stale).await
    }
    async fn keys_page(
        &self,
        owner: Option<&Owner>,
        after: Option<&KeyPosition>,
        limit: usize,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.keys_page(owner, after, limit).await
    }
    async fn events_page(
        &self,
        owner: Option<&Owner>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.events_page(owner, before, limit).await
    }
    async fn key_events(
        &self,
        k: &KeyId,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.key_events(k, before, limit).await
    }
    async fn create_portal_link(
        &self,
        link: &PortalLink,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.create_portal_link(link, event).await
    }
    async fn record_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.inner.record_event(event).await
    }
    async fn redeem_portal_link(
        &self,
        id: &str,
        now: u64,
        until: u64,
    ) -> Result<Option<PortalLink>, StoreError> {
        self.inner.redeem_portal_link(id, now, until).await
    }
    async fn portal_link(&self, id: &str) -> Result<Option<PortalLink>, StoreError> {
        self.inner.portal_link(id).await
    }
    async fn end_portal_session(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.end_portal_session(id).await
    }
}

#[tokio::test]
async fn a_rotation_racing_a_revoke_never_brings_the_key_back() {
    for (name, t) in stores().await {
        let leaked = t.create_key("read").await;
        let id = key_id(&leaked);
        let store = RevokeBeforeFirstSave {
            inner: t.app.store.clone(),
            armed: AtomicBool::new(true),
        };
        let fresh = ApiKey::regenerate(&id).unwrap();
        let now = t.clock.seconds();
        let rotated = admin::update(&store, &id, &auth_tests::stamp(), |r| {
            admin::rotate(r, &fresh, now, 3600)
        })
        .await;
        assert!(
            matches!(rotated, Err(RotateError::Revoked)),
            "{name}: the rotation read the key before the revoke and must lose: {rotated:?}"
        );
        let stored = t.store().key(&id).await.unwrap().unwrap();
        assert_eq!(stored.status, KeyStatus::Revoked, "{name}");
        let r = t.login(json!({"api_key": leaked})).await;
        assert_eq!(
            (r.status, r.error()),
            (401, "invalid_client"),
            "{name}: the leaked key stays out"
        );
    }
}

#[tokio::test]
async fn no_change_can_make_a_revoked_key_active_again() {
    for (name, t) in stores().await {
        let key = t.create_key("read").await;
        let r = t
            .revoke(json!({"api_key": key, "revoke_api_key": true}))
            .await;
        assert_eq!(r.status, 200, "{name}");
        let updated = admin::update(t.store(), &key_id(&key), &auth_tests::stamp(), |r| {
            r.status = KeyStatus::Active;
            r.sessions_revoked_before = 0;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap()
        .unwrap();
        assert!(!updated.changed(), "{name}: nothing to write");
        assert_eq!(updated.after.status, KeyStatus::Revoked, "{name}");
        let r = t.login(json!({"api_key": key})).await;
        assert_eq!(r.status, 401, "{name}");
    }
}

#[tokio::test]
async fn a_key_holds_at_most_max_sessions_per_key_live_sessions() {
    let policy = TokenPolicy {
        max_sessions_per_key: 3,
        ..TokenPolicy::with_issuer(ISSUER)
    };
    for (name, t) in crate::backend::apps(policy).await {
        let key = t.create_key("read").await;
        let first = t.token(&key, "s1").await;
        t.clock.advance(100);
        t.token(&key, "s2").await;
        t.token(&key, "s3").await;
        let r = t.login(json!({"api_key": key, "session_id": "s4"})).await;
        assert_eq!(
            (r.status, r.error(), r.header("retry-after")),
            (429, "too_many_sessions", Some("7100")),
            "{name}: one more waits for the oldest to expire: {:?}",
            r.body
        );
        let again = t.login(json!({"api_key": key, "session_id": "s1"})).await;
        assert_eq!(again.token(), first, "{name}: a live session is reused");

        t.revoke(json!({"api_key": key, "session_id": "s2"})).await;
        t.token(&key, "s4").await;

        t.clock.advance(7100);
        t.token(&key, "s5").await;
        let r = t.login(json!({"api_key": key, "session_id": "s6"})).await;
        assert_eq!(r.status, 429, "{name}: s3, s4 and s5 are live");

        t.revoke(json!({"api_key": key, "all_sessions": true}))
            .await;
        for s in ["s6", "s7", "s8"] {
            t.token(&key, s).await;
        }
    }
}
