//! Login on DynamoDB: fifty racing logins get one token through its
//! conditional writes, and the table holds nothing usable.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use auth_shared::domain::api_key::{ApiKey, KeyId, KeyRecord};
use auth_shared::domain::audit::AuditEvent;
use auth_shared::domain::owner::Owner;
use auth_shared::domain::portal::PortalLink;
use auth_shared::domain::session_id::SessionId;
use auth_shared::domain::store::KeyPosition;
use auth_shared::domain::store::{KeyAndSession, SessionRecord, SessionTimes, Store, StoreError};
use auth_tests::aws::AwsTestApp;
use auth_tests::expect::{claims_of, issued, key_secret};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

/// The default token lifetime and refresh window.
const TTL: u64 = 7200;
const WINDOW: u64 = 300;

/// A service and an API key holding `scopes`.
async fn keyed(scopes: &str) -> (AwsTestApp, String) {
    let t = AwsTestApp::spawn().await;
    let key = t.create_key(scopes).await;
    (t, key)
}

/// Asserts that `token` verifies.
async fn assert_active(t: &AwsTestApp, token: &str) {
    let r = t.verify(token, None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["active"], true);
}

/// The DynamoDB store, with the one guarantee moto lacks: moto evaluates a
/// put's `ConditionExpression` and then writes, without a lock
/// (`moto/dynamodb/models/table.py`, `put_item`), so two racing conditional
/// puts can both succeed, where DynamoDB makes each one atomic. Here one
/// `put_session` runs at a time; reads, and the race between logins, stay as
/// they are. Written out by hand because the tests crate has no `async-trait`.
struct AtomicPuts {
    inner: Arc<dyn Store>,
    put: tokio::sync::Mutex<()>,
    puts: AtomicU64,
}

type Fut<'t, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

#[rustfmt::skip]
impl Store for AtomicPuts {
    fn key_and_session<'a, 'b, 'c, 't>(&'a self, key: &'b KeyId, session: &'c SessionId)
        -> Fut<'t, KeyAndSession>
    where 'a: 't, 'b: 't, 'c: 't, Self: 't {
        self.inner.key_and_session(key, session)
    }

    fn caller_key_and_session<'a, 'b, 'c, 'd, 't>(&'a self, caller: &'b KeyId, key: &'c KeyId, session: &'d SessionId)
        -> Fut<'t, (Option<KeyRecord>, KeyAndSession)>
    where 'a: 't, 'b: 't, 'c: 't, 'd: 't, Self: 't {
        self.inner.caller_key_and_session(caller, key, session)
    }

    fn put_session<'a, 'b, 'c, 't>(&'a self, session: &'b SessionRecord, replaces: Option<&'c str>)
        -> Fut<'t, bool>
    where 'a: 't, 'b: 't, 'c: 't, Self: 't {
        Box::pin(async move {
            let _one_at_a_time = self.put.lock().await;
            self.puts.fetch_add(1, Ordering::SeqCst);
            self.inner.put_session(session, replaces).await
        })
    }

    fn delete_session<'a, 'b, 'c, 'd, 'e, 't>(&'a self, key: &'b KeyId, session: &'c SessionId, holding: Option<&'d str>, event: &'e AuditEvent)
        -> Fut<'t, bool>
    where 'a: 't, 'b: 't, 'c: 't, 'd: 't, 'e: 't, Self: 't {
        self.inner.delete_session(key, session, holding, event)
    }

    fn unexpired_sessions<'a, 'b, 't>(&'a self, key: &'b KeyId, now: u64) -> Fut<'t, Vec<SessionTimes>>
    where 'a: 't, 'b: 't, Self: 't {
        self.inner.unexpired_sessions(key, now)
    }

    fn list_sessions<'a, 'b, 't>(&'a self, key: &'b KeyId) -> Fut<'t, Vec<SessionRecord>>
    where 'a: 't, 'b: 't, Self: 't {
        self.inner.list_sessions(key)
    }

    fn key<'a, 'b, 't>(&'a self, key: &'b KeyId) -> Fut<'t, Option<KeyRecord>>
    where 'a: 't, 'b: 't, Self: 't {
        self.inner.key(key)
    }

    fn create_key<'a, 'b, 'c, 't>(&'a self, record: &'b KeyRecord, event: &'c AuditEvent) -> Fut<'t, bool>
    where 'a: 't, 'b: 't, 'c: 't, Self: 't {
        self.inner.create_key(record, event)
    }

    fn save_key<'a, 'b, 'c, 't>(&'a self, record: &'b KeyRecord, event: &'c AuditEvent) -> Fut<'t, bool>
    where 'a: 't, 'b: 't, 'c: 't, Self: 't {
        self.inner.save_key(record, event)
    }

    fn touch_key<'a, 'b, 't>(&'a self, key: &'b KeyId, at: u64, stale_before: u64) -> Fut<'t, bool>
    where 'a: 't, 'b: 't, Self: 't {
        self.inner.touch_key(key, at, stale_before)
    }

    fn keys_page<'a, 'b, 'c, 't>(&'a self, owner: Option<&'b Owner>, after: Option<&'c KeyPosition>, limit: usize)
        -> Fut<'t, Vec<KeyRecord>>
    where 'a: 't, 'b: 't, 'c: 't, Self: 't {
        self.inner.keys_page(owner, after, limit)
    }

    fn events_page<'a, 'b, 'c, 't>(&'a self, owner: Option<&'b Owner>, before: Option<&'c str>, limit: usize)
        -> Fut<'t, Vec<AuditEvent>>
    where 'a: 't, 'b: 't, 'c: 't, Self: 't {
        self.inner.events_page(owner, before, limit)
    }

    fn key_events<'a, 'b, 'c, 't>(&'a self, key: &'b KeyId, before: Option<&'c str>, limit: usize)
        -> Fut<'t, Vec<AuditEvent>>
    where 'a: 't, 'b: 't, 'c: 't, Self: 't {
        self.inner.key_events(key, before, limit)
    }

    fn create_portal_link<'a, 'b, 'c, 't>(&'a self, link: &'b PortalLink, event: &'c AuditEvent)
        -> Fut<'t, ()>
    where 'a: 't, 'b: 't, 'c: 't, Self: 't {
        self.inner.create_portal_link(link, event)
    }

    fn record_event<'a, 'b, 't>(&'a self, event: &'b AuditEvent) -> Fut<'t, ()>
    where 'a: 't, 'b: 't, Self: 't {
        self.inner.record_event(event)
    }

    fn redeem_portal_link<'a, 'b, 't>(&'a self, id: &'b str, now: u64, until: u64)
        -> Fut<'t, Option<PortalLink>>
    where 'a: 't, 'b: 't, Self: 't {
        self.inner.redeem_portal_link(id, now, until)
    }

    fn portal_link<'a, 'b, 't>(&'a self, id: &'b str) -> Fut<'t, Option<PortalLink>>
    where 'a: 't, 'b: 't, Self: 't {
        self.inner.portal_link(id)
    }

    fn end_portal_session<'a, 'b, 't>(&'a self, id: &'b str) -> Fut<'t, bool>
    where 'a: 't, 'b: 't, Self: 't {
        self.inner.end_portal_session(id)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_logins_in_a_fresh_session_all_get_one_and_the_same_token() {
    let (mut t, key) = keyed("read").await;
    let store = Arc::new(AtomicPuts {
        inner: t.app.store.clone(),
        put: tokio::sync::Mutex::new(()),
        puts: AtomicU64::new(0),
    });
    t.app.store = store.clone();
    let t = Arc::new(t);
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let (t, key) = (t.clone(), key.clone());
            tokio::spawn(async move {
                t.login(json!({"api_key": key, "session_id": "burst"}))
                    .await
            })
        })
        .collect();

    let mut tokens = HashSet::new();
    for login in logins {
        let r = login.await.unwrap();
        tokens.insert(issued(&r, TTL, "read", "burst"));
    }
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    for token in &tokens {
        assert_active(&t, token).await;
    }
    // Without a race this test would prove nothing: several logins must have tried to write.
    assert!(
        store.puts.load(Ordering::SeqCst) > 1,
        "the logins did not race"
    );
}

#[tokio::test]
async fn the_table_never_holds_the_api_key_its_secret_or_a_token_only_the_secrets_hash() {
    let (t, key) = keyed("read write").await;
    let first = t.token(&key, "default").await;
    t.clock.advance(TTL - WINDOW);
    // The default session now stores a current token and its predecessor.
    let successor = t.token(&key, "default").await;
    let other = t.token(&key, "worker-2").await;
    assert_ne!(first, successor);

    let items = t
        .dynamodb()
        .scan()
        .table_name(&t.table)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(
        items.len(),
        usize::from(auth_shared::config::DEFAULT_KEY_REPLICAS) + 3,
        "the key and its copies, its creation event and two sessions: {items:?}"
    );

    let mut secrets = vec![key.as_str(), key_secret(&key)];
    for token in [&first, &successor, &other] {
        // The signature alone is a token: header and claims are in the item.
        secrets.extend([token.as_str(), token.rsplit('.').next().unwrap()]);
    }
    let texts: Vec<String> = items.iter().map(|item| format!("{item:?}")).collect();
    // Debug shows every attribute, of any type, nested or not: the claims are there.
    let jti = claims_of(&successor)["jti"].as_str().unwrap().to_owned();
    assert!(texts.iter().any(|text| text.contains(&jti)), "{texts:?}");
    for text in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret), "{secret} is stored in {text}");
        }
    }

    let key_item = items
        .iter()
        .find(|i| i.get("sk") == Some(&AttributeValue::S("KEY".into())))
        .unwrap();
    let hash = key_item["secret_hash"].as_s().unwrap();
    assert_eq!(hash.len(), 64, "{hash}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    assert_eq!(hash, &ApiKey::parse(&key).unwrap().hash().0);
}
