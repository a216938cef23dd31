//! One contract for every `Store`: the embedded SQLite store and DynamoDB
//! (moto) must behave the same, because the logic relies on exactly this.
//! Both layers run this file, each on the stores its `backend` module gives:
//! SQLite in the fast layer, DynamoDB in the AWS layer.

use auth_shared::domain::api_key::{ApiKey, KeyId, KeyRecord, KeyStatus};
use auth_shared::domain::audit::AuditEvent;
use auth_shared::domain::owner::{Meta, Owner};
use auth_shared::domain::scope::Scopes;
use auth_shared::domain::session_id::SessionId;
use auth_shared::domain::store::{
    KeyPosition, LiveSessions, SessionRecord, SessionTimes, StoredToken,
};
use auth_shared::domain::token::Claims;

pub(crate) fn key(name: &str, created_at: u64) -> KeyRecord {
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
pub(crate) fn base() -> u64 {
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
pub(crate) fn session(
    key: &KeyId,
    sid: &str,
    jti: &str,
    exp: i64,
    previous: Option<&str>,
) -> SessionRecord {
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

pub(crate) fn sid(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}

/// `record` as the store holds it after `writes` writes.
pub(crate) fn at_version(record: &KeyRecord, version: u64) -> KeyRecord {
    KeyRecord {
        version,
        ..record.clone()
    }
}

#[tokio::test]
async fn keys_are_created_once_read_back_saved_and_listed_newest_first() {
    for (name, store, _dir) in crate::backend::stores().await {
        let first = key("first", 10);
        let second = key("second", 20);
        assert!(
            store
                .create_key(&second, &auth_tests::event(&second))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            store
                .create_key(&first, &auth_tests::event(&first))
                .await
                .unwrap(),
            "{name}"
        );
        assert!(
            !store
                .create_key(&first, &auth_tests::event(&first))
                .await
                .unwrap(),
            "{name}: an id is created once"
        );
        let stored = store.key(&first.id).await.unwrap().unwrap();
        assert_eq!(stored, at_version(&first, 1), "{name}");

        let mut revoked = stored.clone();
        revoked.status = KeyStatus::Revoked;
        revoked.sessions_revoked_before = 1_700_000_000_123;
        revoked.rotate(&ApiKey::regenerate(&first.id).unwrap(), 50, 60);
        assert!(
            store
                .save_key(&revoked, &auth_tests::event(&revoked))
                .await
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            store.key(&first.id).await.unwrap(),
            Some(at_version(&revoked, 2)),
            "{name}"
        );
        assert!(
            !store
                .save_key(&key("ghost", 1), &auth_tests::event(&key("ghost", 1)))
                .await
                .unwrap(),
            "{name}: save needs an existing key"
        );

        let listed = store.keys_page(None, None, 10).await.unwrap();
        assert_eq!(
            listed,
            vec![at_version(&second, 1), at_version(&revoked, 2)],
            "{name}: newest first"
        );
    }
}

#[tokio::test]
async fn a_keys_owner_metadata_and_last_use_are_kept_exactly() {
    for (name, store, _dir) in crate::backend::stores().await {
        let mut record = key("owned", 10);
        record.owner = Some(Owner::parse("acme:42").unwrap());
        let meta = serde_json::json!({
            "plan": "pro", "n": 12345678901_u64, "ratio": 0.25, "on": true,
            "none": null, "list": [1, "two", {"three": 3}], "nested": {"a": {"b": "c"}},
        });
        record.meta = Some(Meta::new(meta).unwrap());
        record.last_used_at = Some(1_700_000_000);
        assert!(
            store
                .create_key(&record, &auth_tests::event(&record))
                .await
                .unwrap(),
            "{name}"
        );
        let stored = store.key(&record.id).await.unwrap().unwrap();
        assert_eq!(stored, at_version(&record, 1), "{name}");
        let mut cleared = stored.clone();
        cleared.meta = None;
        cleared.owner = None;
        assert!(
            store
                .save_key(&cleared, &auth_tests::event(&cleared))
                .await
                .unwrap(),
            "{name}"
        );
        assert_eq!(
            store.key(&record.id).await.unwrap(),
            Some(at_version(&cleared, 2)),
            "{name}: cleared fields stay cleared"
        );
    }
}

/// An event of `record`'s change at `time_ms`, by the tests.
fn event_at(record: &KeyRecord, time_ms: u64) -> AuditEvent {
    AuditEvent::of_change(None, record, &auth_tests::stamp_at(time_ms)).unwrap()
}

#[tokio::test]
async fn a_key_write_and_its_event_land_together_or_not_at_all() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 10);
        let created = event_at(&k, 1_000);
        assert!(store.create_key(&k, &created).await.unwrap(), "{name}");
        assert!(
            !store.create_key(&k, &event_at(&k, 2_000)).await.unwrap(),
            "{name}: a taken id"
        );
        let stale = k.clone();
        let mut renamed = at_version(&k, 1);
        renamed.name = "renamed".into();
        let saved = event_at(&renamed, 3_000);
        assert!(store.save_key(&renamed, &saved).await.unwrap(), "{name}");
        assert!(
            !store
                .save_key(&stale, &event_at(&stale, 4_000))
                .await
                .unwrap(),
            "{name}: a stale write"
        );
        let events = store.key_events(&k.id, None, 10).await.unwrap();
        assert_eq!(
            events,
            vec![saved, created],
            "{name}: the events of the writes that landed, newest first, and no others"
        );
    }
}

#[tokio::test]
async fn a_key_write_whose_event_cannot_be_stored_is_not_stored_either() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 10);
        let created = event_at(&k, 1_000);
        assert!(store.create_key(&k, &created).await.unwrap(), "{name}");
        // The failure injected between them: an event whose id is taken.
        let mut renamed = at_version(&k, 1);
        renamed.name = "renamed".into();
        let clash = AuditEvent {
            id: created.id.clone(),
            ..event_at(&renamed, 2_000)
        };
        let written = store.save_key(&renamed, &clash).await;
        assert!(!matches!(written, Ok(true)), "{name}: {written:?}");
        assert_eq!(
            store.key(&k.id).await.unwrap(),
            Some(at_version(&k, 1)),
            "{name}: the key is as it was"
        );
        let other = key("other", 10);
        let written = store.create_key(&other, &created).await;
        assert!(!matches!(written, Ok(true)), "{name}: {written:?}");
        assert_eq!(
            store.key(&other.id).await.unwrap(),
            None,
            "{name}: no key made"
        );
    }
}

#[tokio::test]
async fn a_keys_events_are_paged_newest_first_and_no_other_keys_are_among_them() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 10);
        let other = key("other", 10);
        assert!(
            store
                .create_key(&other, &event_at(&other, 500))
                .await
                .unwrap()
        );
        let mut written = vec![event_at(&k, 1_000)];
        assert!(store.create_key(&k, &written[0]).await.unwrap(), "{name}");
        let mut record = at_version(&k, 1);
        for i in 1..5_u64 {
            record.name = format!("n{i}");
            let event = event_at(&record, 1_000 + i);
            assert!(store.save_key(&record, &event).await.unwrap(), "{name}");
            record.version += 1;
            written.push(event);
        }
        written.reverse();
        let first = store.key_events(&k.id, None, 2).await.unwrap();
        assert_eq!(first, written[..2].to_vec(), "{name}");
        let second = store
            .key_events(&k.id, Some(&first[1].id), 2)
            .await
            .unwrap();
        assert_eq!(second, written[2..4].to_vec(), "{name}");
        let last = store
            .key_events(&k.id, Some(&second[1].id), 2)
            .await
            .unwrap();
        assert_eq!(last, written[4..].to_vec(), "{name}: the oldest, alone");
    }
}

#[tokio::test]
async fn keys_are_paged_newest_first_of_one_owner_or_of_all_with_no_gap_or_repeat() {
    for (name, store, _dir) in crate::backend::stores().await {
        let acme = Owner::parse("acme").unwrap();
        let mut written = Vec::new();
        // Three keys a second apart, then three in one second (ordered by id).
        for (i, created_at) in [10, 11, 12, 13, 13, 13].into_iter().enumerate() {
            let mut k = key(&format!("k{i}"), created_at);
            if i % 2 == 0 {
                k.owner = Some(acme.clone());
            }
            assert!(
                store.create_key(&k, &event_at(&k, 1_000)).await.unwrap(),
                "{name}"
            );
            written.push(at_version(&k, 1));
        }
        written.sort_by_key(|k| std::cmp::Reverse(KeyPosition::of(k)));
        for owner in [None, Some(&acme)] {
            let expected: Vec<KeyRecord> = written
                .iter()
                .filter(|k| owner.is_none() || k.owner.as_ref() == owner)
                .cloned()
                .collect();
            let mut pages = Vec::new();
            let mut after: Option<KeyPosition> = None;
            loop {
                let page = store.keys_page(owner, after.as_ref(), 2).await.unwrap();
                let Some(last) = page.last() else { break };
                after = Some(KeyPosition::of(last));
                pages.extend(page);
            }
            assert_eq!(pages, expected, "{name}, owner {owner:?}");
        }
        let none = Owner::parse("nobody").unwrap();
        assert!(
            store
                .keys_page(Some(&none), None, 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_keys_last_use_is_written_only_over_an_older_one_and_changes_nothing_else() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 10);
        assert!(store.create_key(&k, &event_at(&k, 1_000)).await.unwrap());
        assert!(
            store.touch_key(&k.id, 5_000, 5_000).await.unwrap(),
            "{name}: unset"
        );
        assert!(
            !store.touch_key(&k.id, 5_500, 5_000).await.unwrap(),
            "{name}: 5000 is not older than 5000"
        );
        assert!(
            store.touch_key(&k.id, 9_000, 5_001).await.unwrap(),
            "{name}"
        );
        let stored = store.key(&k.id).await.unwrap().unwrap();
        let expected = KeyRecord {
            last_used_at: Some(9_000),
            ..at_version(&k, 1)
        };
        assert_eq!(stored, expected, "{name}: the same key at the same version");
        assert!(
            !store
                .touch_key(&key("ghost", 1).id, 9_000, 10_000)
                .await
                .unwrap(),
            "{name}: no key, no write"
        );
        assert!(
            store
                .save_key(&stored, &event_at(&stored, 2_000))
                .await
                .unwrap(),
            "{name}: a key write after a touch still lands on its version"
        );
    }
}

#[tokio::test]
async fn events_are_paged_newest_first_of_one_owner_or_of_all_with_no_gap_or_repeat() {
    for (name, store, _dir) in crate::backend::stores().await {
        let acme = Owner::parse("acme").unwrap();
        let mut written = Vec::new();
        for i in 0..5_u64 {
            let mut k = key(&format!("k{i}"), 10 + i);
            if i % 2 == 0 {
                k.owner = Some(acme.clone());
            }
            let event = event_at(&k, 1_000 + i);
            assert!(store.create_key(&k, &event).await.unwrap(), "{name}");
            written.push(event);
        }
        written.reverse();
        for owner in [None, Some(&acme)] {
            let expected: Vec<AuditEvent> = written
                .iter()
                .filter(|e| owner.is_none() || e.owner.as_ref() == owner)
                .cloned()
                .collect();
            let mut pages = Vec::new();
            let mut before: Option<String> = None;
            loop {
                let page = store
                    .events_page(owner, before.as_deref(), 2)
                    .await
                    .unwrap();
                let Some(last) = page.last() else { break };
                before = Some(last.id.clone());
                pages.extend(page);
            }
            assert_eq!(pages, expected, "{name}, owner {owner:?}");
        }
        // Keys and events share the indexes: neither listing shows the other.
        assert_eq!(
            store.keys_page(Some(&acme), None, 10).await.unwrap().len(),
            3,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_session_delete_and_its_event_land_together_or_not_at_all() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 10);
        let created = event_at(&k, 1_000);
        assert!(store.create_key(&k, &created).await.unwrap());
        assert!(
            store
                .put_session(&session(&k.id, "s", "j1", 3600, None), None)
                .await
                .unwrap()
        );
        let wrong = auth_tests::session_event(&k.id, "s");
        assert!(
            !store
                .delete_session(&k.id, &sid("s"), Some("j0"), &wrong)
                .await
                .unwrap(),
            "{name}: not its token"
        );
        let ended = auth_tests::session_event(&k.id, "s");
        assert!(
            store
                .delete_session(&k.id, &sid("s"), Some("j1"), &ended)
                .await
                .unwrap()
        );
        let gone = auth_tests::session_event(&k.id, "s");
        assert!(
            !store
                .delete_session(&k.id, &sid("s"), None, &gone)
                .await
                .unwrap()
        );
        let events = store.key_events(&k.id, None, 10).await.unwrap();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert!(ids.contains(&ended.id.as_str()), "{name}: {ids:?}");
        assert!(
            !ids.contains(&wrong.id.as_str()) && !ids.contains(&gone.id.as_str()),
            "{name}: no event for a delete that did not happen: {ids:?}"
        );
        assert_eq!(events.len(), 2, "{name}");
    }
}

#[tokio::test]
async fn a_key_write_from_a_stale_read_is_refused() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 1);
        store.create_key(&k, &auth_tests::event(&k)).await.unwrap();
        let read = store.key(&k.id).await.unwrap().unwrap();
        let mut revoke = read.clone();
        revoke.status = KeyStatus::Revoked;
        assert!(
            store
                .save_key(&revoke, &auth_tests::event(&revoke))
                .await
                .unwrap(),
            "{name}"
        );
        let mut rotate = read.clone();
        rotate.rotate(&ApiKey::regenerate(&k.id).unwrap(), 50, 60);
        assert!(
            !store
                .save_key(&rotate, &auth_tests::event(&rotate))
                .await
                .unwrap(),
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
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 1);
        store.create_key(&k, &auth_tests::event(&k)).await.unwrap();
        let read = store.key(&k.id).await.unwrap().unwrap();
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let (store, mut record) = (store.clone(), read.clone());
                record.name = format!("writer {i}");
                tokio::spawn(async move {
                    store
                        .save_key(&record, &auth_tests::event(&record))
                        .await
                        .unwrap()
                })
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
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 1);
        store.create_key(&k, &auth_tests::event(&k)).await.unwrap();
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
    for (name, store, _dir) in crate::backend::stores().await {
        let (caller, owner) = (key("caller", 1), key("owner", 2));
        store
            .create_key(&caller, &auth_tests::event(&caller))
            .await
            .unwrap();
        store
            .create_key(&owner, &auth_tests::event(&owner))
            .await
            .unwrap();
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
    for (name, store, _dir) in crate::backend::stores().await {
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
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 1);
        store
            .put_session(&session(&k.id, "s", "j2", 10_000, Some("j1")), None)
            .await
            .unwrap();
        assert!(
            !store
                .delete_session(
                    &k.id,
                    &sid("s"),
                    Some("j0"),
                    &auth_tests::session_event(&k.id, "s")
                )
                .await
                .unwrap(),
            "{name}: not held"
        );
        assert!(
            store
                .delete_session(
                    &k.id,
                    &sid("s"),
                    Some("j1"),
                    &auth_tests::session_event(&k.id, "s")
                )
                .await
                .unwrap(),
            "{name}: the predecessor counts"
        );
        assert!(
            !store
                .delete_session(
                    &k.id,
                    &sid("s"),
                    None,
                    &auth_tests::session_event(&k.id, "s")
                )
                .await
                .unwrap(),
            "{name}: already gone"
        );
        store
            .put_session(&session(&k.id, "t", "j3", 10_000, None), None)
            .await
            .unwrap();
        assert!(
            store
                .delete_session(
                    &k.id,
                    &sid("t"),
                    None,
                    &auth_tests::session_event(&k.id, "t")
                )
                .await
                .unwrap(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_keys_sessions_are_listed_and_their_times_read_and_no_others() {
    for (name, store, _dir) in crate::backend::stores().await {
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
        // Counted: the same two, and with a revoke-all cut-off between their
        // mint times only the one minted after it.
        let now = base() + 9_000;
        assert_eq!(
            store.live_sessions(&a.id, now, 0).await.unwrap(),
            LiveSessions {
                count: 2,
                earliest_exp: Some(base() + 10_000)
            },
            "{name}"
        );
        let cut_off = at(10_000).minted_ms;
        assert_eq!(
            store.live_sessions(&a.id, now, cut_off).await.unwrap(),
            LiveSessions {
                count: 1,
                earliest_exp: Some(base() + 10_500)
            },
            "{name}: minted at the cut-off is revoked"
        );
        assert_eq!(
            store
                .live_sessions(&a.id, base() + 20_000, 0)
                .await
                .unwrap(),
            LiveSessions::default(),
            "{name}: none live later"
        );
        assert_eq!(
            store.list_sessions(&b.id).await.unwrap().len(),
            1,
            "{name}: another key's sessions stay"
        );
    }
}

/// The cap's question: room under it, or the count that reached it. Asked
/// again in the same second after each change, as logins ask it, so a store
/// answering from a bound must have kept that bound exact enough.
#[tokio::test]
async fn the_session_cap_sees_every_session_opened_and_every_one_ended() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 1);
        let now = base() + 9_000;
        let room = |cap| {
            let store = &store;
            let id = k.id.clone();
            async move { store.session_room(&id, now, 0, cap).await.unwrap() }
        };
        assert_eq!(room(1).await, None, "{name}: no sessions");
        for s in ["s1", "s2"] {
            store
                .put_session(&session(&k.id, s, "j", 10_000, None), None)
                .await
                .unwrap();
            // Asked between the writes, so a bound is there to be added to.
            assert_eq!(room(3).await, None, "{name}: room after {s}");
        }
        let full = |count| {
            Some(LiveSessions {
                count,
                earliest_exp: Some(base() + 10_000),
            })
        };
        assert_eq!(room(2).await, full(2), "{name}: at the cap");
        store
            .put_session(&session(&k.id, "s3", "j", 10_000, None), None)
            .await
            .unwrap();
        assert_eq!(room(3).await, full(3), "{name}: the third is seen");
        assert!(
            store
                .delete_session(
                    &k.id,
                    &sid("s3"),
                    None,
                    &auth_tests::session_event(&k.id, "s3")
                )
                .await
                .unwrap()
        );
        assert_eq!(room(3).await, None, "{name}: room again once one ends");
        // A session that expired frees its place too.
        assert_eq!(
            store
                .session_room(&k.id, base() + 10_000, 0, 1)
                .await
                .unwrap(),
            None,
            "{name}: all expired"
        );
        // A revoke-all cut-off after their mint frees every place.
        let cut_off = (base() + 10_000 - 7200) * 1000;
        assert_eq!(
            store.session_room(&k.id, now, cut_off, 1).await.unwrap(),
            None,
            "{name}: cut off"
        );
    }
}

#[tokio::test]
async fn expired_records_are_returned_as_data_for_the_logic_to_judge() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 1);
        store.create_key(&k, &auth_tests::event(&k)).await.unwrap();
        let old = session(&k.id, "s", "j", -10, None);
        store.put_session(&old, None).await.unwrap();
        let (record, stored) = store.key_and_session(&k.id, &sid("s")).await.unwrap();
        assert_eq!(record.unwrap().expires_at, Some(101), "{name}");
        assert_eq!(stored, Some(old), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_many_concurrent_refreshes_of_one_token_exactly_one_wins() {
    for (name, store, _dir) in crate::backend::stores().await {
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

#[tokio::test]
async fn a_recorded_event_is_stored_once_however_often_it_is_recorded() {
    for (name, store, _dir) in crate::backend::stores().await {
        let k = key("k", 10);
        let created = event_at(&k, 1_000);
        assert!(store.create_key(&k, &created).await.unwrap(), "{name}");
        let rotated =
            AuditEvent::of_signing_key_rotation(Some("k0"), "k1", &auth_tests::stamp_at(2_000_000));
        for _ in 0..3 {
            store.record_event(&rotated).await.unwrap();
        }
        assert_eq!(
            store.events_page(None, None, 10).await.unwrap(),
            [rotated.clone(), created],
            "{name}: once, newest first beside the key's event"
        );
        assert_eq!(
            store
                .events_page(None, Some(&rotated.id), 10)
                .await
                .unwrap()
                .len(),
            1,
            "{name}: paged past like any event"
        );
        let acme = Owner::parse("acme").unwrap();
        assert!(
            store
                .events_page(Some(&acme), None, 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}: an event of no owner is in no owner's listing"
        );
    }
}
