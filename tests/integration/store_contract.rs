//! One contract for every `Store`: the embedded SQLite store and DynamoDB
//! (moto) must behave the same, because the logic relies on exactly this.

use std::sync::Arc;

use auth_shared::aws::dynamodb::{DynamoDbStore, create_table};
use auth_shared::domain::api_key::{ApiKey, KeyId, KeyRecord, KeyStatus};
use auth_shared::domain::scope::Scopes;
use auth_shared::domain::session_id::SessionId;
use auth_shared::domain::store::{SessionRecord, SessionTimes, Store, StoredToken};
use auth_shared::domain::token::Claims;
use auth_shared::local::sqlite::SqliteStore;
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

/// Session times in these tests count from the start of the run, so a
/// session is only past its TTL (and swept) where a test means it to be.
fn base() -> u64 {
    static BASE: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    });
    *BASE
}

/// A session of `key` whose token expires `exp` seconds after [`base`]
/// (before it, for a negative `exp`).
fn session(key: &KeyId, sid: &str, jti: &str, exp: i64, previous: Option<&str>) -> SessionRecord {
    let exp = base().checked_add_signed(exp).unwrap();
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
        minted_ms: (exp - 7200) * 1000,
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

/// `record` as the store holds it after `writes` writes.
fn at_version(record: &KeyRecord, version: u64) -> KeyRecord {
    KeyRecord {
        version,
        ..record.clone()
    }
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
        let stored = store.key(&first.id).await.unwrap().unwrap();
        assert_eq!(stored, at_version(&first, 1), "{name}");

        let mut revoked = stored.clone();
        revoked.status = KeyStatus::Revoked;
        revoked.sessions_revoked_before = 1_700_000_000_123;
        revoked.rotate(&ApiKey::regenerate(&first.id).unwrap(), 50, 60);
        assert!(store.save_key(&revoked).await.unwrap(), "{name}");
        assert_eq!(
            store.key(&first.id).await.unwrap(),
            Some(at_version(&revoked, 2)),
            "{name}"
        );
        assert!(
            !store.save_key(&key("ghost", 1)).await.unwrap(),
            "{name}: save needs an existing key"
        );

        let listed = store.list_keys().await.unwrap();
        assert_eq!(
            listed,
            vec![at_version(&revoked, 2), at_version(&second, 1)],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_key_write_from_a_stale_read_is_refused() {
    for (name, store, _dir) in stores().await {
        let k = key("k", 1);
        store.create_key(&k).await.unwrap();
        let read = store.key(&k.id).await.unwrap().unwrap();
        let mut revoke = read.clone();
        revoke.status = KeyStatus::Revoked;
        assert!(store.save_key(&revoke).await.unwrap(), "{name}");
        let mut rotate = read.clone();
        rotate.rotate(&ApiKey::regenerate(&k.id).unwrap(), 50, 60);
        assert!(
            !store.save_key(&rotate).await.unwrap(),
            "{name}: a write built on version 1 lands on version 2"
        );
        assert_eq!(
            store.key(&k.id).await.unwrap(),
            Some(at_version(&revoke, 2)),
            "{name}: the revoke stands"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_concurrent_writes_of_one_key_version_exactly_one_lands() {
    for (name, store, _dir) in stores().await {
        let k = key("k", 1);
        store.create_key(&k).await.unwrap();
        let read = store.key(&k.id).await.unwrap().unwrap();
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let (store, mut record) = (store.clone(), read.clone());
                record.name = format!("writer {i}");
                tokio::spawn(async move { store.save_key(&record).await.unwrap() })
            })
            .collect();
        let mut wins = 0;
        for w in writers {
            wins += usize::from(w.await.unwrap());
        }
        if name == "dynamodb" {
            // moto's conditional writes are not atomic under concurrency (a
            // check, then a write, without a lock): at least one lands there.
            assert!(wins >= 1, "{name}");
        } else {
            assert_eq!(wins, 1, "{name}");
        }
        assert_eq!(
            store.key(&k.id).await.unwrap().unwrap().version,
            2,
            "{name}"
        );
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
        assert_eq!(
            (record, stored),
            (Some(at_version(&k, 1)), Some(two)),
            "{name}"
        );
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
                Some(at_version(&caller, 1)),
                (Some(at_version(&owner, 1)), Some(held.clone()))
            ),
            "{name}: another key's token"
        );
        assert_eq!(
            read(&owner.id, &owner.id, "s").await,
            (
                Some(at_version(&owner, 1)),
                (Some(at_version(&owner, 1)), Some(held.clone()))
            ),
            "{name}: a key's own token"
        );
        let ghost = key("ghost", 3);
        assert_eq!(
            read(&ghost.id, &owner.id, "other").await,
            (None, (Some(at_version(&owner, 1)), None)),
            "{name}: an unknown caller and session"
        );
        assert_eq!(
            read(&caller.id, &ghost.id, "s").await,
            (Some(at_version(&caller, 1)), (None, None)),
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
async fn a_keys_sessions_are_listed_and_their_times_read_and_no_others() {
    for (name, store, _dir) in stores().await {
        let (a, b) = (key("a", 1), key("b", 2));
        for (s, exp) in [("s1", 10_000), ("s2", 10_500), ("s3", 9_000)] {
            store
                .put_session(&session(&a.id, s, "j", exp, None), None)
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
        let mut times = store
            .unexpired_sessions(&a.id, base() + 9_000)
            .await
            .unwrap();
        times.sort_by_key(|t| t.exp);
        let at = |exp: u64| SessionTimes {
            exp: base() + exp,
            minted_ms: (base() + exp - 7200) * 1000,
        };
        assert_eq!(
            times,
            vec![at(10_000), at(10_500)],
            "{name}: a session expiring at `now` is not counted"
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
        let old = session(&k.id, "s", "j", -10, None);
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
    assert_eq!(server.key(&k.id).await.unwrap(), Some(at_version(&k, 1)));
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
    assert!(admin.delete_session(&k.id, &sid("s"), None).await.unwrap());
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

#[tokio::test]
async fn sqlite_sweeps_sessions_past_their_ttl_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("auth.db")).unwrap();
    let k = key("k", 1);
    let gone = session(&k.id, "gone", "j", -3600, None);
    let expired = session(&k.id, "expired", "j", -10, None);
    let live = session(&k.id, "live", "j", 3600, None);
    for s in [&gone, &expired, &live] {
        assert!(store.put_session(s, None).await.unwrap());
    }
    let mut left: Vec<String> = store
        .list_sessions(&k.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.session_id().to_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec!["expired", "live"],
        "only a session past its TTL (expiry plus leeway) is swept"
    );
}

/// A WAL file's size, 0 when there is none.
fn wal_size(db: &std::path::Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_its_wal_bounded_while_readers_never_stop_and_truncates_it_on_close() {
    use auth_shared::local::sqlite::Options;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let limit = 1 << 20;
    let store = Arc::new(SqliteStore::open_with(&path, Options { wal_limit: limit }).unwrap());
    let k = key("k", 1);
    store.create_key(&k).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop, id) = (store.clone(), stop.clone(), k.id.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.key_and_session(&id, &sid("s0")).await.unwrap();
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    let mut peak = 0;
    for i in 0..3000 {
        let s = session(&k.id, &format!("s{i}"), "j", 3600, None);
        assert!(store.put_session(&s, None).await.unwrap());
        peak = peak.max(wal_size(&path));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0, "the readers ran throughout");
    }
    // One commit past the limit at most before the writer truncates it.
    assert!(
        peak <= limit + (256 << 10),
        "the WAL peaked at {peak} bytes for a limit of {limit}"
    );
    assert!(peak > limit / 2, "the test wrote enough to reach the limit");
    assert_eq!(store.list_sessions(&k.id).await.unwrap().len(), 3000);
    drop(Arc::into_inner(store).unwrap());
    assert_eq!(wal_size(&path), 0, "closing leaves no WAL behind");
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.list_sessions(&k.id).await.unwrap().len(), 3000);
}

#[tokio::test]
async fn sqlite_migrates_a_database_made_before_schema_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let k = key("k", 1);
    let s = session(&k.id, "s", "j1", 3600, None);
    {
        // The schema and rows as the first release wrote them.
        let old = rusqlite::Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE keys (id TEXT PRIMARY KEY, name TEXT NOT NULL, scopes TEXT NOT NULL,
                status TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER,
                secret_hash TEXT NOT NULL, prev_secret_hash TEXT, prev_secret_until INTEGER);
             CREATE TABLE sessions (key_id TEXT NOT NULL, session_id TEXT NOT NULL,
                jti TEXT NOT NULL, prev_jti TEXT, ttl INTEGER NOT NULL, record TEXT NOT NULL,
                PRIMARY KEY (key_id, session_id)) WITHOUT ROWID;",
        )
        .unwrap();
        old.execute(
            "INSERT INTO keys VALUES (?1, 'k', 'read write', 'active', 1, 101, ?2, NULL, NULL)",
            rusqlite::params![k.id.as_str(), k.secret_hash.0],
        )
        .unwrap();
        // Nested, and without a mint time: the session record's first form.
        let c = &s.current.claims;
        let record = serde_json::json!({
            "current": {
                "claims": {
                    "iss": c.iss, "aud": c.aud, "sub": c.sub, "sid": c.sid, "jti": c.jti,
                    "iat": c.iat, "nbf": null, "exp": c.exp, "scope": c.scope,
                },
                "kid": s.current.kid,
            },
            "previous": null,
            "ttl": s.ttl,
        });
        old.execute(
            "INSERT INTO sessions VALUES (?1, 's', 'j1', NULL, ?2, ?3)",
            rusqlite::params![k.id.as_str(), s.ttl as i64, record.to_string()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let (record, stored) = store.key_and_session(&k.id, &sid("s")).await.unwrap();
    assert_eq!(record, Some(k.clone()), "an old key reads at version 0");
    let stored = stored.unwrap();
    assert_eq!(
        stored.current.minted_ms, 0,
        "an old session has no mint time"
    );
    let mut expected = s.clone();
    expected.current.minted_ms = 0;
    assert_eq!(stored, expected, "an old session reads as it was written");
    assert_eq!(
        store.unexpired_sessions(&k.id, base()).await.unwrap(),
        vec![SessionTimes {
            exp: s.current.claims.exp,
            minted_ms: 0
        }],
        "the new columns are filled from the old rows"
    );
    let mut revoked = record.unwrap();
    revoked.status = KeyStatus::Revoked;
    assert!(
        store.save_key(&revoked).await.unwrap(),
        "a versionless key saves once"
    );
    assert!(
        !store.save_key(&revoked).await.unwrap(),
        "and then is at version 1"
    );
    drop(store);
    assert!(
        SqliteStore::open(&path).is_ok(),
        "a migrated file opens again"
    );
}
