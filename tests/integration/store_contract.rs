//! One contract for every `Store`: the embedded SQLite store and DynamoDB
//! (moto) must behave the same, because the logic relies on exactly this.

use std::sync::Arc;

use auth_shared::api_key::{ApiKey, KeyId, KeyRecord, KeyStatus};
use auth_shared::scope::Scopes;
use auth_shared::session_id::SessionId;
use auth_shared::store::dynamodb::{DynamoDbStore, create_table};
use auth_shared::store::sqlite::SqliteStore;
use auth_shared::store::{SessionRecord, Store, StoredToken};
use auth_shared::token::Claims;
use auth_tests::{moto, unique};

/// Both backends, fresh and empty; the temp dir lives as long as the SQLite store.
async fn stores() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("auth.db")).unwrap();
    let sdk = moto().await;
    let table = unique("contract");
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    create_table(&client, &table).await.unwrap();
    vec![
        ("sqlite", Arc::new(sqlite), Some(dir)),
        (
            "dynamodb",
            Arc::new(DynamoDbStore::new(client, table)),
            None,
        ),
    ]
}

fn key(name: &str, created_at: u64) -> KeyRecord {
    let key = ApiKey::generate().unwrap();
    KeyRecord::new(
        &key,
        name,
        Scopes::parse("read write").unwrap(),
        created_at,
        Some(created_at + 100),
    )
}

fn session(key: &KeyId, sid: &str, jti: &str, exp: u64, previous: Option<&str>) -> SessionRecord {
    let token = |jti: &str| StoredToken {
        claims: Claims {
            iss: "https://auth.test".into(),
            aud: None,
            sub: key.to_string(),
            sid: sid.into(),
            jti: jti.into(),
            iat: exp - 7200,
            nbf: None,
            exp,
            scope: "read".into(),
        },
        kid: "v1".into(),
    };
    SessionRecord {
        current: token(jti),
        previous: previous.map(token),
        ttl: exp + 30,
    }
}

fn sid(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}

#[tokio::test]
async fn keys_are_created_once_read_back_saved_and_listed_in_creation_order() {
    for (name, store, _dir) in stores().await {
        let first = key("first", 10);
        let second = key("second", 20);
        assert!(store.create_key(&second).await.unwrap(), "{name}");
        assert!(store.create_key(&first).await.unwrap(), "{name}");
        assert!(
            !store.create_key(&first).await.unwrap(),
            "{name}: an id is created once"
        );
        assert_eq!(
            store.key(&first.id).await.unwrap(),
            Some(first.clone()),
            "{name}"
        );

        let mut revoked = first.clone();
        revoked.status = KeyStatus::Revoked;
        revoked.rotate(&ApiKey::regenerate(&first.id).unwrap(), 50, 60);
        assert!(store.save_key(&revoked).await.unwrap(), "{name}");
        assert_eq!(
            store.key(&first.id).await.unwrap(),
            Some(revoked.clone()),
            "{name}"
        );
        assert!(
            !store.save_key(&key("ghost", 1)).await.unwrap(),
            "{name}: save needs an existing key"
        );

        let listed = store.list_keys().await.unwrap();
        assert_eq!(listed, vec![revoked, second], "{name}");
    }
}

#[tokio::test]
async fn a_session_write_is_a_compare_and_set_on_the_current_jti() {
    for (name, store, _dir) in stores().await {
        let k = key("k", 1);
        store.create_key(&k).await.unwrap();
        let one = session(&k.id, "s", "j1", 10_000, None);
        assert!(store.put_session(&one, None).await.unwrap(), "{name}");
        assert!(
            !store.put_session(&one, None).await.unwrap(),
            "{name}: the session exists now"
        );
        let two = session(&k.id, "s", "j2", 10_100, Some("j1"));
        assert!(
            !store.put_session(&two, Some("stale")).await.unwrap(),
            "{name}: a stale jti loses"
        );
        assert!(store.put_session(&two, Some("j1")).await.unwrap(), "{name}");
        let (record, stored) = store.key_and_session(&k.id, &sid("s")).await.unwrap();
        assert_eq!((record, stored), (Some(k.clone()), Some(two)), "{name}");
        let (_, none) = store.key_and_session(&k.id, &sid("other")).await.unwrap();
        assert_eq!(none, None, "{name}");
    }
}

#[tokio::test]
async fn a_callers_key_is_read_beside_another_keys_session() {
    for (name, store, _dir) in stores().await {
        let (caller, owner) = (key("caller", 1), key("owner", 2));
        store.create_key(&caller).await.unwrap();
        store.create_key(&owner).await.unwrap();
        let held = session(&owner.id, "s", "j1", 10_000, None);
        store.put_session(&held, None).await.unwrap();

        let read = |c: &KeyId, k: &KeyId, s: &str| {
            let (store, c, k, s) = (store.clone(), c.clone(), k.clone(), sid(s));
            async move { store.caller_key_and_session(&c, &k, &s).await.unwrap() }
        };
        assert_eq!(
            read(&caller.id, &owner.id, "s").await,
            (
                Some(caller.clone()),
                (Some(owner.clone()), Some(held.clone()))
            ),
            "{name}: another key's token"
        );
        assert_eq!(
            read(&owner.id, &owner.id, "s").await,
            (
                Some(owner.clone()),
                (Some(owner.clone()), Some(held.clone()))
            ),
            "{name}: a key's own token"
        );
        let ghost = key("ghost", 3);
        assert_eq!(
            read(&ghost.id, &owner.id, "other").await,
            (None, (Some(owner.clone()), None)),
            "{name}: an unknown caller and session"
        );
        assert_eq!(
            read(&caller.id, &ghost.id, "s").await,
            (Some(caller.clone()), (None, None)),
            "{name}: a token of an unknown key"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_concurrent_first_writes_exactly_one_wins() {
    for (name, store, _dir) in stores().await {
        let k = key("k", 1);
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                let record = session(&k.id, "race", &format!("j{i}"), 10_000, None);
                tokio::spawn(async move { store.put_session(&record, None).await.unwrap() })
            })
            .collect();
        let mut wins = 0;
        for w in writers {
            wins += usize::from(w.await.unwrap());
        }
        assert_eq!(wins, 1, "{name}");
    }
}

#[tokio::test]
async fn deleting_a_session_can_require_that_it_holds_a_token() {
    for (name, store, _dir) in stores().await {
        let k = key("k", 1);
        store
            .put_session(&session(&k.id, "s", "j2", 10_000, Some("j1")), None)
            .await
            .unwrap();
        assert!(
            !store
                .delete_session(&k.id, &sid("s"), Some("j0"))
                .await
                .unwrap(),
            "{name}: not held"
        );
        assert!(
            store
                .delete_session(&k.id, &sid("s"), Some("j1"))
                .await
                .unwrap(),
            "{name}: the predecessor counts"
        );
        assert!(
            !store.delete_session(&k.id, &sid("s"), None).await.unwrap(),
            "{name}: already gone"
        );
        store
            .put_session(&session(&k.id, "t", "j3", 10_000, None), None)
            .await
            .unwrap();
        assert!(
            store.delete_session(&k.id, &sid("t"), None).await.unwrap(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn all_sessions_of_a_key_are_listed_and_deleted_and_no_others() {
    for (name, store, _dir) in stores().await {
        let (a, b) = (key("a", 1), key("b", 2));
        for s in ["s1", "s2", "s3"] {
            store
                .put_session(&session(&a.id, s, "j", 10_000, None), None)
                .await
                .unwrap();
        }
        store
            .put_session(&session(&b.id, "s1", "j", 10_000, None), None)
            .await
            .unwrap();
        let listed: Vec<String> = store
            .list_sessions(&a.id)
            .await
            .unwrap()
            .iter()
            .map(|s| s.session_id().to_owned())
            .collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["s1", "s2", "s3"], "{name}");
        assert_eq!(store.delete_sessions(&a.id).await.unwrap(), 3, "{name}");
        assert!(
            store.list_sessions(&a.id).await.unwrap().is_empty(),
            "{name}"
        );
        assert_eq!(
            store.list_sessions(&b.id).await.unwrap().len(),
            1,
            "{name}: another key's sessions stay"
        );
    }
}

#[tokio::test]
async fn expired_records_are_returned_as_data_for_the_logic_to_judge() {
    for (name, store, _dir) in stores().await {
        let k = key("k", 1);
        store.create_key(&k).await.unwrap();
        let old = session(&k.id, "s", "j", 7201, None);
        store.put_session(&old, None).await.unwrap();
        let (record, stored) = store.key_and_session(&k.id, &sid("s")).await.unwrap();
        assert_eq!(record.unwrap().expires_at, Some(101), "{name}");
        assert_eq!(stored, Some(old), "{name}");
    }
}

#[tokio::test]
async fn sqlite_writes_reach_the_database_file_by_a_background_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let store = SqliteStore::open(&path).unwrap();
    let k = key("k", 1);
    store.create_key(&k).await.unwrap();
    let file_size = || std::fs::metadata(&path).unwrap().len();
    let before = file_size();
    for i in 0..500 {
        let s = session(&k.id, &format!("s{i}"), "j", 10_000, None);
        assert!(store.put_session(&s, None).await.unwrap());
    }
    // The writer never checkpoints; the store's own thread does, within a
    // second on an idle machine. Waiting up to 30 s keeps a busy one green.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while file_size() < before + 100_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file is still {} bytes",
            file_size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(store.list_sessions(&k.id).await.unwrap().len(), 500);
}

#[tokio::test]
async fn two_sqlite_stores_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let (server, admin) = (
        SqliteStore::open(&path).unwrap(),
        SqliteStore::open(&path).unwrap(),
    );
    let k = key("k", 1);
    assert!(admin.create_key(&k).await.unwrap());
    assert_eq!(server.key(&k.id).await.unwrap(), Some(k.clone()));
    server
        .put_session(&session(&k.id, "s", "j1", 10_000, None), None)
        .await
        .unwrap();
    assert!(
        !admin
            .put_session(&session(&k.id, "s", "j2", 10_000, None), None)
            .await
            .unwrap()
    );
    assert_eq!(admin.delete_sessions(&k.id).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_concurrent_refreshes_of_one_token_exactly_one_wins() {
    for (name, store, _dir) in stores().await {
        let k = key("k", 1);
        let first = session(&k.id, "s", "j0", 10_000, None);
        assert!(store.put_session(&first, None).await.unwrap(), "{name}");
        let writers: Vec<_> = (1..=16)
            .map(|i| {
                let store = store.clone();
                let record = session(&k.id, "s", &format!("j{i}"), 10_100, Some("j0"));
                tokio::spawn(async move {
                    let won = store.put_session(&record, Some("j0")).await.unwrap();
                    won.then_some(record)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for w in writers {
            winners.extend(w.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "{name}");
        let (_, stored) = store.key_and_session(&k.id, &sid("s")).await.unwrap();
        assert_eq!(
            stored.as_ref(),
            winners.first(),
            "{name}: the winner is stored"
        );
    }
}

/// Separate connections race as separate processes do: SQLite's own locking,
/// not the store's mutex, must let exactly one first write through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_stores_on_one_file_race_to_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let k = key("k", 1);
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = SqliteStore::open(&path).unwrap();
            let record = session(&k.id, "race", &format!("j{i}"), 10_000, None);
            tokio::spawn(async move { store.put_session(&record, None).await.unwrap() })
        })
        .collect();
    let mut wins = 0;
    for w in writers {
        wins += usize::from(w.await.unwrap());
    }
    assert_eq!(wins, 1);
}
