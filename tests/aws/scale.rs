//! The layout that lets one busy key scale: each session on its own
//! partition, listed through the `sessions_by_key` index, and
//! `KEY_REPLICAS` copies of each key item that reads spread over, every
//! one of them revoked with the primary.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use auth_shared::aws::dynamodb::DynamoDbStore;
use auth_shared::config::{DEFAULT_KEY_REPLICAS, MAX_KEY_REPLICAS};
use auth_shared::domain::api_key::KeyId;
use auth_shared::domain::session_id::SessionId;
use auth_shared::domain::store::Store;
use auth_tests::aws::{AwsTestApp, key_item_pk};
use auth_tests::expect::key_id;
use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::Method;
use serde_json::json;

use crate::admin::{ALL_ADMIN, call, key_path, made, root};
use crate::verify_cache::{PATHS, revoke};

/// A store on `t`'s table with the default `KEY_REPLICAS`.
fn store(t: &AwsTestApp) -> DynamoDbStore {
    DynamoDbStore::new(t.dynamodb(), &t.table)
}

/// Copy `copy` of the key item of `api_key` as stored, if it is.
async fn copy_item(
    t: &AwsTestApp,
    api_key: &str,
    copy: u8,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    t.dynamodb()
        .get_item()
        .table_name(&t.table)
        .key("pk", AttributeValue::S(key_item_pk(key_id(api_key), copy)))
        .key("sk", AttributeValue::S("KEY".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Verifies `token` through each copy in turn (and the slots above them,
/// which no write leaves filled): the statuses, by copy.
async fn verify_through_each_copy(t: &mut AwsTestApp, token: &str) -> BTreeMap<u8, u16> {
    let kept = t.app.store.clone();
    let mut statuses = BTreeMap::new();
    for copy in 0..MAX_KEY_REPLICAS {
        t.app.store = Arc::new(store(t).reading_copy(copy));
        statuses.insert(copy, t.verify(token, None).await.status);
    }
    t.app.store = kept;
    statuses
}

fn all(status: u16) -> BTreeMap<u8, u16> {
    (0..MAX_KEY_REPLICAS).map(|copy| (copy, status)).collect()
}

/// The key items each BatchGetItem asked for, by `pk`: recorded by an SDK
/// interceptor on the store's client, as the request left.
#[derive(Debug, Clone, Default)]
struct KeysRead(Arc<Mutex<BTreeMap<String, u32>>>);

impl Intercept for KeysRead {
    fn name(&self) -> &'static str {
        "KeysRead"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(input) = context.input().downcast_ref::<BatchGetItemInput>() else {
            return Ok(());
        };
        let mut read = self.0.lock().unwrap();
        for asked in input.request_items().into_iter().flat_map(|m| m.values()) {
            for key in asked.keys() {
                if key.get("sk") == Some(&AttributeValue::S("KEY".into()))
                    && let Some(AttributeValue::S(pk)) = key.get("pk")
                {
                    *read.entry(pk.clone()).or_default() += 1;
                }
            }
        }
        Ok(())
    }
}

/// 10,000 reads through the store's method that verify calls, the key and
/// the session in one BatchGetItem, 20 at a time: 10,000 full HTTP verifies
/// one after another take minutes on moto.
#[tokio::test]
async fn verifies_of_one_key_spread_over_all_its_copies_none_read_more_than_twice_its_share() {
    const VERIFIES: u32 = 10_000;
    const AT_ONCE: u32 = 20;
    let t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    t.token(&key, "a").await;
    let read = KeysRead::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&t.sdk)
        .interceptor(read.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let store = Arc::new(DynamoDbStore::new(client, &t.table));
    let (id, session) = (
        KeyId::parse(key_id(&key)).unwrap(),
        SessionId::parse("a").unwrap(),
    );

    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..AT_ONCE {
        let (store, id, session) = (store.clone(), id.clone(), session.clone());
        readers.spawn(async move {
            for _ in 0..VERIFIES / AT_ONCE {
                let (key, session) = store.key_and_session(&id, &session).await.unwrap();
                assert!(key.is_some() && session.is_some());
            }
        });
    }
    while let Some(done) = readers.join_next().await {
        done.unwrap();
    }

    let read = read.0.lock().unwrap().clone();
    let copies: BTreeSet<String> = (0..DEFAULT_KEY_REPLICAS)
        .map(|n| key_item_pk(key_id(&key), n))
        .collect();
    assert_eq!(
        read.keys().cloned().collect::<BTreeSet<_>>(),
        copies,
        "every copy is read, and nothing else: {read:?}"
    );
    assert_eq!(read.values().sum::<u32>(), VERIFIES, "one key read each");
    let share = VERIFIES / u32::from(DEFAULT_KEY_REPLICAS);
    for (pk, reads) in &read {
        assert!(
            *reads <= 2 * share,
            "{pk} read {reads} times of {VERIFIES}: {read:?}"
        );
    }
}

#[tokio::test]
async fn each_revocation_is_seen_by_the_next_verify_whichever_copy_it_reads() {
    let mut t = AwsTestApp::spawn().await;
    for path in PATHS {
        let key = t.create_key("read").await;
        let token = t.token(&key, "s").await;
        assert_eq!(
            verify_through_each_copy(&mut t, &token).await,
            all(200),
            "{path}: before"
        );
        revoke(&t, path, &key, &token).await;
        assert_eq!(
            verify_through_each_copy(&mut t, &token).await,
            all(401),
            "{path}: after"
        );
    }
}

#[tokio::test]
async fn a_key_revoked_with_fewer_copies_stays_revoked_on_every_copy_once_they_are_raised() {
    let mut t = AwsTestApp::spawn().await;
    let key = t.create_key("read").await;
    let token = t.token(&key, "a").await;
    for copy in 0..DEFAULT_KEY_REPLICAS {
        assert!(
            copy_item(&t, &key, copy).await.is_some(),
            "copy {copy} made"
        );
    }

    t.app.store = Arc::new(store(&t).with_key_replicas(2));
    let r = t
        .revoke(json!({"api_key": key, "revoke_api_key": true}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    for copy in 2..MAX_KEY_REPLICAS {
        assert!(
            copy_item(&t, &key, copy).await.is_none(),
            "copy {copy}, which the revoke did not keep, is gone rather than left unrevoked"
        );
    }

    assert_eq!(verify_through_each_copy(&mut t, &token).await, all(401));
    let r = t.login(json!({"api_key": key, "session_id": "b"})).await;
    assert_eq!(r.status, 401, "{r:?}");
}

#[tokio::test]
async fn a_key_written_with_one_copy_is_read_from_its_primary_by_readers_of_eight() {
    let mut t = AwsTestApp::spawn().await;
    let (client, table) = (t.calls.dynamodb(&t.sdk), t.table.clone());
    let counted = || DynamoDbStore::new(client.clone(), &table);
    t.app.store = Arc::new(counted().with_key_replicas(1));
    let key = t.create_key("read").await;
    let token = t.token(&key, "a").await;
    for copy in 1..MAX_KEY_REPLICAS {
        assert!(copy_item(&t, &key, copy).await.is_none(), "copy {copy}");
    }

    for (copy, calls) in [(0, 1), (1, 2), (5, 2), (DEFAULT_KEY_REPLICAS - 1, 2)] {
        t.app.store = Arc::new(counted().reading_copy(copy));
        let before = t.calls.count().dynamodb;
        let r = t.verify(&token, None).await;
        assert_eq!(r.status, 200, "copy {copy}: {r:?}");
        assert_eq!(
            t.calls.count().dynamodb - before,
            calls,
            "copy {copy}: an absent copy costs one read of the primary"
        );
    }
}

#[tokio::test]
async fn a_last_use_reaches_every_copy_that_exists_and_makes_none() {
    let mut t = AwsTestApp::spawn().await;
    t.app.store = Arc::new(store(&t).with_key_replicas(3));
    let key = t.create_key("read").await;
    let id = KeyId::parse(key_id(&key)).unwrap();
    let now = t.clock.seconds();

    let eight = store(&t);
    assert!(eight.touch_key(&id, now, now + 1).await.unwrap());
    for copy in 0..MAX_KEY_REPLICAS {
        let item = copy_item(&t, &key, copy).await;
        if copy < 3 {
            let used = item.and_then(|i| i.get("last_used_at").cloned());
            assert_eq!(
                used,
                Some(AttributeValue::N(now.to_string())),
                "copy {copy}"
            );
        } else {
            assert!(item.is_none(), "copy {copy} is not made by a last use");
        }
    }
    assert!(
        !eight.touch_key(&id, now + 1, now).await.unwrap(),
        "a fresher stored time is kept"
    );
}

#[tokio::test]
async fn listings_show_each_key_once_and_never_a_copy() {
    let t = AwsTestApp::spawn().await;
    let (root_key, admin) = root(&t, ALL_ADMIN, None).await;
    let mut acme = BTreeSet::new();
    for name in ["a", "b", "c"] {
        let (id, _) = made(
            &t,
            &admin,
            json!({"name": name, "scopes": "read", "owner": "acme"}),
        )
        .await;
        acme.insert(id);
    }
    let (unowned, _) = made(&t, &admin, json!({"name": "d", "scopes": "read"})).await;
    let mut every = acme.clone();
    every.extend([unowned, key_id(&root_key).to_owned()]);

    for (query, expected) in [("limit=100", &every), ("limit=100&owner=acme", &acme)] {
        let r = call(
            &t,
            &admin,
            Method::GET,
            &format!("/admin/v1/keys?{query}"),
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{query}: {r:?}");
        let listed: Vec<String> = r.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            listed.len(),
            expected.len(),
            "{query}: each key once: {listed:?}"
        );
        assert_eq!(
            &listed.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_keys_sessions_are_listed_through_the_index_page_after_page_and_no_others() {
    let mut t = AwsTestApp::spawn().await;
    let (_, token) = root(&t, ALL_ADMIN, None).await;
    let (id, key) = made(&t, &token, json!({"name": "busy", "scopes": "read"})).await;
    let sessions = ["a", "b", "c", "d", "e"];
    for session in sessions {
        t.token(&key, session).await;
    }
    let other = t.create_key("read").await;
    t.token(&other, "a").await;
    // Pages of two items: five sessions take three pages.
    t.app.store = Arc::new(DynamoDbStore::new(t.dynamodb(), &t.table).with_session_page(2));

    let id = KeyId::parse(&id).unwrap();
    let listed: BTreeSet<String> = t
        .store()
        .list_sessions(&id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.session_id().to_owned())
        .collect();
    assert_eq!(listed, BTreeSet::from(sessions.map(String::from)));
    let live = t.store().unexpired_sessions(&id, t.clock.seconds()).await;
    assert_eq!(live.unwrap().len(), sessions.len(), "their times too");

    let r = call(
        &t,
        &token,
        Method::GET,
        &key_path(id.as_str(), "/sessions?limit=10"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let shown: BTreeSet<&str> = r.body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, BTreeSet::from(sessions), "the admin listing: {r:?}");
}
