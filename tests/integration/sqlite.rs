//! What only the embedded SQLite store does: reach its file by its
//! checkpoints, share one file between processes, sweep expired sessions,
//! bound its WAL, migrate old files, and keep a revoke made by one process
//! while another rotates.

use std::sync::Arc;

use auth_shared::domain::admin::{self, RotateError};
use auth_shared::domain::api_key::{ApiKey, KeyRecord, KeyStatus};
use auth_shared::domain::store::{SessionTimes, Store, StoreError};
use auth_shared::local::sqlite::SqliteStore;

use crate::store_contract::{at_version, base, key, session, sid};

#[tokio::test]
async fn sqlite_writes_reach_the_database_file_by_checkpoints_and_the_wal_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let store = SqliteStore::open(&path).unwrap();
    let k = key("k", 1);
    store.create_key(&k, &auth_tests::event(&k)).await.unwrap();
    let file_size = || std::fs::metadata(&path).unwrap().len();
    let before = file_size();
    // One commit each, each adding a few pages to the WAL: 8,000 of them
    // pass the checkpointer's step (1 MiB of pages) many times over, and the
    // size at which the writer checkpoints itself (16 MiB) at least once.
    let (mut peak, mut copied_early) = (0, false);
    for i in 0..8000 {
        let s = session(&k.id, &format!("s{i}"), "j", 10_000, None);
        assert!(store.put_session(&s, None).await.unwrap());
        let wal = wal_size(&path);
        // The checkpointer copies pages to the file while the WAL grows
        // (whose file keeps its largest size once the WAL starts over).
        copied_early |= wal < (12 << 20) && file_size() > before + 100_000;
        peak = peak.max(wal);
    }
    assert!(
        copied_early,
        "the database file was still {before} bytes with 12 MiB of WAL"
    );
    // With no reader in the way, the writer's own checkpoint copies the
    // rest, so the next commits write the WAL over from its start: some
    // 90 MiB of frames in a WAL that never nears the 32 MiB at which the
    // writer would truncate it.
    assert!(
        peak <= (16 << 20) + (256 << 10),
        "the WAL peaked at {peak} bytes"
    );
    assert_eq!(store.list_sessions(&k.id).await.unwrap().len(), 8000);
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
    assert!(admin.create_key(&k, &auth_tests::event(&k)).await.unwrap());
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
    assert!(
        admin
            .delete_session(
                &k.id,
                &sid("s"),
                None,
                &auth_tests::session_event(&k.id, "s")
            )
            .await
            .unwrap()
    );
}

/// Sessions another process opens count toward the cap from the next second
/// on, whatever this store last counted.
#[tokio::test]
async fn sqlite_counts_sessions_another_process_opened_toward_the_cap_a_second_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let (server, other) = (
        SqliteStore::open(&path).unwrap(),
        SqliteStore::open(&path).unwrap(),
    );
    let k = key("k", 1);
    let now = base() + 9_000;
    assert_eq!(server.session_room(&k.id, now, 0, 2).await.unwrap(), None);
    for s in ["s1", "s2"] {
        other
            .put_session(&session(&k.id, s, "j", 10_000, None), None)
            .await
            .unwrap();
    }
    let full = server
        .session_room(&k.id, now + 1, 0, 2)
        .await
        .unwrap()
        .expect("the other process's two sessions fill the cap");
    assert_eq!(full.count, 2);
}

/// Logins opening sessions while others ask the cap's question: however the
/// counts and the commits interleave, every session is in the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_keeps_the_cap_bound_whole_while_sessions_open_and_counts_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("auth.db")).unwrap());
    let k = key("k", 1);
    let now = base() + 9_000;
    const SESSIONS: u64 = 200;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..SESSIONS {
        let (store, id) = (Arc::clone(&store), k.id.clone());
        tasks.spawn(async move {
            // A cap of 1 is met by almost any bound, so these count again
            // and again, beside the writes.
            store.session_room(&id, now, 0, 1).await.unwrap();
            let s = format!("s{i}");
            assert!(
                store
                    .put_session(&session(&id, &s, "j", 10_000, None), None)
                    .await
                    .unwrap()
            );
            store.session_room(&id, now, 0, 1).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // One more, with no count after it: only the bound can know of it.
    assert!(
        store
            .put_session(&session(&k.id, "last", "j", 10_000, None), None)
            .await
            .unwrap()
    );
    let full = store
        .session_room(&k.id, now, 0, SESSIONS + 1)
        .await
        .unwrap()
        .expect("every session opened is in the bound");
    assert_eq!(full.count, SESSIONS + 1);
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

/// Session records live in a table of their own: every way a session goes
/// or changes (replaced by a refresh, revoked, swept, or a write that lost
/// its race) takes its old record with it, so the file holds exactly one
/// record per session and each session reads back its latest.
#[tokio::test]
async fn sqlite_keeps_exactly_one_record_per_session_whatever_ends_or_replaces_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let store = SqliteStore::open(&path).unwrap();
    let k = key("k", 1);
    // First: the writer sweeps right after its first commit, then at most
    // once a second.
    let swept = session(&k.id, "swept", "j1", -3600, None);
    assert!(store.put_session(&swept, None).await.unwrap());
    for (name, jti) in [("refreshed", "j1"), ("raced", "j1"), ("revoked", "j1")] {
        assert!(
            store
                .put_session(&session(&k.id, name, jti, 3600, None), None)
                .await
                .unwrap()
        );
    }
    let refreshed = session(&k.id, "refreshed", "j2", 3600, Some("j1"));
    assert!(store.put_session(&refreshed, Some("j1")).await.unwrap());
    let stale = session(&k.id, "refreshed", "j3", 3600, Some("j1"));
    assert!(!store.put_session(&stale, Some("j1")).await.unwrap());
    let loser = session(&k.id, "raced", "j2", 3600, None);
    assert!(!store.put_session(&loser, None).await.unwrap());
    assert!(
        store
            .delete_session(
                &k.id,
                &sid("revoked"),
                None,
                &auth_tests::session_event(&k.id, "revoked")
            )
            .await
            .unwrap()
    );
    let mut left = store.list_sessions(&k.id).await.unwrap();
    left.sort_by(|a, b| a.session_id().cmp(b.session_id()));
    let jtis: Vec<_> = left
        .iter()
        .map(|s| (s.session_id(), s.current.claims.jti.as_str()))
        .collect();
    assert_eq!(jtis, vec![("raced", "j1"), ("refreshed", "j2")]);
    assert_eq!(left[1], refreshed, "a refreshed session reads back whole");
    drop(store);
    let file = rusqlite::Connection::open(&path).unwrap();
    let count = |sql: &str| file.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT count(*) FROM session_records"), 2);
    assert_eq!(
        count("SELECT count(*) FROM sessions AS s JOIN session_records AS r ON r.id = s.record_id"),
        2
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
    store.create_key(&k, &auth_tests::event(&k)).await.unwrap();
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
        store
            .save_key(&revoked, &auth_tests::event(&revoked))
            .await
            .unwrap(),
        "a versionless key saves once"
    );
    assert!(
        !store
            .save_key(&revoked, &auth_tests::event(&revoked))
            .await
            .unwrap(),
        "and then is at version 1"
    );
    drop(store);
    assert!(
        SqliteStore::open(&path).is_ok(),
        "a migrated file opens again"
    );
}

/// Two stores on one file race as two processes do (`authctl serve` and
/// `authctl keys rotate`): a writer rotating the key again and again, and
/// one revoke arriving while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_sqlite_file_a_revoke_during_a_stream_of_rotations_is_never_undone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let (rotator, revoker) = (
        Arc::new(SqliteStore::open(&path).unwrap()),
        SqliteStore::open(&path).unwrap(),
    );
    let key = ApiKey::generate().unwrap();
    let scopes = auth_shared::domain::scope::Scopes::parse("read").unwrap();
    let record = KeyRecord::new(&key, "k", scopes, 1, None);
    assert!(
        rotator
            .create_key(&record, &auth_tests::event(&record))
            .await
            .unwrap()
    );
    let id = key.id().clone();
    let (started, mut rotating) = tokio::sync::mpsc::channel::<()>(1);
    let rotations = {
        let (store, id) = (rotator.clone(), id.clone());
        tokio::spawn(async move {
            let mut landed = 0u32;
            loop {
                let fresh = ApiKey::regenerate(&id).unwrap();
                let rotated = admin::update(store.as_ref(), &id, &auth_tests::stamp(), |r| {
                    admin::rotate(r, &fresh, 10, 3600)
                })
                .await;
                match rotated {
                    Ok(_) => landed += 1,
                    Err(RotateError::Revoked) => return landed,
                    Err(e) => panic!("rotation failed: {e}"),
                }
                started.try_send(()).ok();
            }
        })
    };
    rotating.recv().await.unwrap();
    // Against rotations back to back, the revoke can lose every one of its
    // compare-and-set attempts and answer "contended; retry", as a 503 with
    // Retry-After does: a caller asks again, and once acknowledged it holds.
    let mut contended = 0;
    let revoked = loop {
        let attempt = admin::update(&revoker, &id, &auth_tests::stamp(), |r| {
            admin::revoke(r);
            Ok::<_, StoreError>(())
        })
        .await;
        match attempt {
            Err(StoreError::Unavailable(_)) if contended < 100 => contended += 1,
            other => break other.unwrap().unwrap(),
        }
    };
    assert!(revoked.changed());
    let landed = rotations.await.unwrap();
    assert!(landed >= 1, "the rotations ran before the revoke");
    let stored = revoker.key(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, KeyStatus::Revoked);
    assert!(!stored.authenticates(&key, 10));
}
