//! Key administration: a key is made by [`create`], and every change to a
//! stored key goes through [`update`].
//!
//! A change is computed from the key as read and written only if the key is
//! still at that version; a write that loses re-reads and computes again. So
//! two changes made at once (a rotation and a revoke, from two processes)
//! both land in turn, and none is lost. On top of that a revocation is
//! sticky: whatever a change asks, a revoked key stays revoked and a
//! revoke-all cutoff never moves back.

use crate::domain::api_key::{ApiKey, KeyId, KeyRecord, KeyStatus};
use crate::domain::audit::{AuditEvent, Stamp};
use crate::domain::owner::{Meta, Owner};
use crate::domain::scope::Scopes;
use crate::domain::store::{Store, StoreError};

/// What a new key is made of.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// A label for people.
    pub name: String,
    /// The scopes its tokens may carry.
    pub scopes: Scopes,
    /// The provider's customer it belongs to.
    pub owner: Option<Owner>,
    /// What verify hands back with its tokens.
    pub meta: Option<Meta>,
    /// Unix seconds after which it no longer works.
    pub expires_at: Option<u64>,
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// An empty or blank name.
    #[error("the name must not be empty")]
    EmptyName,
    /// An expiry that is not in the future.
    #[error("the expiry must be in the future")]
    Expired,
    /// The OS random source failed.
    #[error("no randomness: {0}")]
    Random(String),
    /// The id drawn is taken (one chance in 2^64); making it again draws another.
    #[error("key id collision; try again")]
    Collision,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes and stores a new active key at `now`; the key itself is returned
/// once, here, and never stored.
pub async fn create(
    store: &dyn Store,
    new: NewKey,
    stamp: &Stamp,
) -> Result<(ApiKey, KeyRecord), CreateError> {
    let now = stamp.now_ms / 1000;
    if new.name.trim().is_empty() {
        return Err(CreateError::EmptyName);
    }
    if new.expires_at.is_some_and(|at| at <= now) {
        return Err(CreateError::Expired);
    }
    let key = ApiKey::generate().map_err(|e| CreateError::Random(e.to_string()))?;
    let mut record = KeyRecord::new(&key, &new.name, new.scopes, now, new.expires_at);
    record.owner = new.owner;
    record.meta = new.meta;
    record.created_by = Some(stamp.origin.actor.clone());
    let event = AuditEvent::of_change(None, &record, stamp)
        .ok_or_else(|| StoreError::Internal("a new key records no event".into()))?;
    if !store.create_key(&record, &event).await? {
        return Err(CreateError::Collision);
    }
    // As stored: the write made it version 1.
    Ok((key, record.as_written().unwrap_or(record)))
}

/// Reads and conditional writes before a contended change gives up (503).
const ATTEMPTS: usize = 8;

/// A key change that was applied (or found already in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The key before the change, as last read.
    pub before: KeyRecord,
    /// The key as it is now stored.
    pub after: KeyRecord,
}

impl Updated {
    /// Whether the change changed anything: a repeated revoke does not.
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

/// Applies `change` to the key `id` until one conditional write of it lands.
/// `None` when there is no such key. `change` may refuse (its error is
/// returned) and runs again on each re-read, so it must decide from the
/// record it is given alone.
pub async fn update<E: From<StoreError>>(
    store: &dyn Store,
    id: &KeyId,
    stamp: &Stamp,
    change: impl FnMut(&mut KeyRecord) -> Result<(), E>,
) -> Result<Option<Updated>, E> {
    match store.key(id).await? {
        None => Ok(None),
        Some(record) => update_from(store, record, stamp, change).await.map(Some),
    }
}

/// [`update`] starting from a record the caller has just read.
pub async fn update_from<E: From<StoreError>>(
    store: &dyn Store,
    mut before: KeyRecord,
    stamp: &Stamp,
    mut change: impl FnMut(&mut KeyRecord) -> Result<(), E>,
) -> Result<Updated, E> {
    for _ in 0..ATTEMPTS {
        let mut after = before.clone();
        change(&mut after)?;
        sticky(&before, &mut after);
        // A change of nothing an event records is no change: no write, no event.
        let Some(event) = AuditEvent::of_change(Some(&before), &after, stamp) else {
            return Ok(Updated {
                after: before.clone(),
                before,
            });
        };
        if store.save_key(&after, &event).await? {
            after.version = after.version.saturating_add(1);
            return Ok(Updated { before, after });
        }
        before = store
            .key(&before.id)
            .await?
            .ok_or_else(|| StoreError::Internal("a key vanished while it was changed".into()))?;
    }
    Err(StoreError::Unavailable("key write contended; retry".into()).into())
}

/// What no change may undo, and what every write carries: the version read.
fn sticky(before: &KeyRecord, after: &mut KeyRecord) {
    if before.status == KeyStatus::Revoked {
        after.status = KeyStatus::Revoked;
    }
    after.sessions_revoked_before = after
        .sessions_revoked_before
        .max(before.sessions_revoked_before);
    after.id = before.id.clone();
    after.version = before.version;
}

/// Revokes a key for good. Its tokens fail verify from the next call on.
pub fn revoke(record: &mut KeyRecord) {
    record.status = KeyStatus::Revoked;
}

/// Ends every session minted up to `now_ms`: one write, whatever their number.
/// Logins mint after the cutoff even within its millisecond (see
/// [`crate::domain::login`]), so the cutoff moves at least one past the last one and
/// also ends those.
pub fn revoke_sessions(record: &mut KeyRecord, now_ms: u64) {
    record.sessions_revoked_before = now_ms.max(record.sessions_revoked_before.saturating_add(1));
}

/// Why a key cannot be rotated.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Revoked keys stay revoked; make a new key instead.
    #[error("the key is revoked")]
    Revoked,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Gives `record` the secret of `key`; the old secret works `grace` seconds more.
pub fn rotate(
    record: &mut KeyRecord,
    key: &ApiKey,
    now: u64,
    grace: u64,
) -> Result<(), RotateError> {
    if record.status == KeyStatus::Revoked {
        return Err(RotateError::Revoked);
    }
    record.rotate(key, now, grace);
    Ok(())
}

/// How many sessions of `updated`'s key were live before the change and are
/// revoked by it: those minted after the old cutoff and up to the new one,
/// or all live ones when the change revoked the key.
pub async fn sessions_ended(
    store: &dyn Store,
    updated: &Updated,
    now: u64,
) -> Result<u64, StoreError> {
    let (before, after) = (&updated.before, &updated.after);
    if !updated.changed() || before.status == KeyStatus::Revoked {
        return Ok(0);
    }
    let key_revoked = after.status == KeyStatus::Revoked;
    let ended = store
        .unexpired_sessions(&after.id, now)
        .await?
        .iter()
        .filter(|s| !before.revoked_session_minted_at(s.minted_ms))
        .filter(|s| key_revoked || after.revoked_session_minted_at(s.minted_ms))
        .count();
    Ok(ended as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{DownStore, Fixture, NOW, Outage, stamp_at, success};

    const NOW_MS: u64 = NOW * 1000;

    async fn stored(fx: &Fixture, key: &ApiKey) -> KeyRecord {
        fx.store.key(key.id()).await.unwrap().unwrap()
    }

    fn rename(name: &'static str) -> impl FnMut(&mut KeyRecord) -> Result<(), StoreError> {
        move |r| {
            r.name = name.to_owned();
            Ok(())
        }
    }

    fn new_key(name: &str, expires_at: Option<u64>) -> NewKey {
        NewKey {
            name: name.into(),
            scopes: Scopes::parse("read").unwrap(),
            owner: Some(Owner::parse("acme").unwrap()),
            meta: Some(Meta::new(serde_json::json!({"plan": "pro"})).unwrap()),
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_created_key_is_stored_with_its_owner_and_metadata_and_authenticates() {
        let fx = Fixture::new();
        let (key, record) = create(
            fx.store.as_ref(),
            new_key("a", Some(NOW + 60)),
            &stamp_at(NOW_MS),
        )
        .await
        .unwrap();
        assert_eq!(stored(&fx, &key).await, record, "returned as stored");
        assert_eq!(record.version, 1);
        assert_eq!(record.owner.as_ref().map(Owner::as_str), Some("acme"));
        assert_eq!(
            record.meta.as_ref().map(|m| m.to_json()).as_deref(),
            Some(r#"{"plan":"pro"}"#)
        );
        assert!(record.authenticates(&key, NOW));
        assert!(!record.authenticates(&key, NOW + 60), "until its expiry");
    }

    #[tokio::test]
    async fn a_key_with_a_blank_name_or_a_past_expiry_is_refused_and_nothing_is_stored() {
        let fx = Fixture::new();
        for (new, want) in [
            (new_key(" ", None), "the name must not be empty"),
            (new_key("a", Some(NOW)), "the expiry must be in the future"),
        ] {
            let e = create(fx.store.as_ref(), new, &stamp_at(NOW_MS))
                .await
                .unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        assert!(fx.store.keys_page(None, None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_change_is_stored_at_the_next_version() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let updated = update(
            fx.store.as_ref(),
            key.id(),
            &stamp_at(NOW_MS),
            rename("renamed"),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(updated.changed());
        assert_eq!((updated.before.version, updated.after.version), (1, 2));
        assert_eq!(stored(&fx, &key).await, updated.after);
        assert_eq!(updated.after.name, "renamed");
    }

    #[tokio::test]
    async fn a_change_computed_from_a_stale_read_is_computed_again_and_both_changes_land() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let stale = stored(&fx, &key).await;
        update(
            fx.store.as_ref(),
            key.id(),
            &stamp_at(NOW_MS),
            rename("renamed"),
        )
        .await
        .unwrap();
        let updated = update_from(fx.store.as_ref(), stale, &stamp_at(NOW_MS), |r| {
            r.expires_at = Some(NOW + 60);
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        let now_stored = stored(&fx, &key).await;
        assert_eq!(now_stored, updated.after);
        assert_eq!(now_stored.name, "renamed");
        assert_eq!(now_stored.expires_at, Some(NOW + 60));
        assert_eq!(now_stored.version, 3);
    }

    #[tokio::test]
    async fn a_revoked_key_stays_revoked_and_a_revoke_all_cutoff_never_moves_back() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        fx.change_key(&key, |r| {
            revoke(r);
            revoke_sessions(r, NOW * 1000);
        })
        .await;
        let updated = update(fx.store.as_ref(), key.id(), &stamp_at(NOW_MS), |r| {
            r.status = KeyStatus::Active;
            r.sessions_revoked_before = 0;
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap()
        .unwrap();
        assert!(!updated.changed());
        let now_stored = stored(&fx, &key).await;
        assert_eq!(now_stored.status, KeyStatus::Revoked);
        assert_eq!(now_stored.sessions_revoked_before, NOW * 1000);
    }

    #[test]
    fn a_revoke_all_cutoff_moves_past_the_last_one_even_within_its_millisecond() {
        let key = ApiKey::generate().unwrap();
        let mut record = KeyRecord::new(&key, "k", Default::default(), NOW, None);
        revoke_sessions(&mut record, 5000);
        assert_eq!(record.sessions_revoked_before, 5000);
        revoke_sessions(&mut record, 5000);
        assert_eq!(record.sessions_revoked_before, 5001);
        revoke_sessions(&mut record, 10);
        assert_eq!(record.sessions_revoked_before, 5002);
    }

    #[tokio::test]
    async fn an_unknown_key_is_none_and_nothing_is_written() {
        let fx = Fixture::new();
        let unknown = ApiKey::generate().unwrap();
        let updated = update(
            fx.store.as_ref(),
            unknown.id(),
            &stamp_at(NOW_MS),
            rename("x"),
        )
        .await;
        assert_eq!(updated.unwrap(), None);
        assert!(fx.store.keys_page(None, None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_revoked_key_cannot_be_rotated_and_keeps_its_secret() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        fx.change_key(&key, revoke).await;
        let before = stored(&fx, &key).await;
        let new = ApiKey::regenerate(key.id()).unwrap();
        let refused = update(fx.store.as_ref(), key.id(), &stamp_at(NOW_MS), |r| {
            rotate(r, &new, NOW, 60)
        })
        .await;
        assert!(matches!(refused, Err(RotateError::Revoked)), "{refused:?}");
        assert_eq!(stored(&fx, &key).await, before);
    }

    #[tokio::test]
    async fn sessions_ended_counts_the_live_sessions_a_change_revokes_and_a_repeat_ends_none() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        success(fx.login(&key, Some("expired"), None).await);
        fx.clock.advance(7200);
        success(fx.login(&key, Some("a"), None).await);
        success(fx.login(&key, Some("b"), None).await);
        let now = NOW + 7200;
        let revoke_key = |r: &mut KeyRecord| {
            revoke(r);
            Ok::<_, StoreError>(())
        };
        let store = fx.store.as_ref();
        let first = update(store, key.id(), &stamp_at(NOW_MS), revoke_key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sessions_ended(store, &first, now).await.unwrap(), 2);
        let repeat = update(store, key.id(), &stamp_at(NOW_MS), revoke_key)
            .await
            .unwrap()
            .unwrap();
        assert!(!repeat.changed());
        assert_eq!(sessions_ended(store, &repeat, now).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_key_change_on_a_store_that_is_down_is_unavailable() {
        let fx = Fixture::new();
        let key = fx.key("read").await;
        let record = stored(&fx, &key).await;
        let down = DownStore(Outage::Refuses);
        let e = update(&down, key.id(), &stamp_at(NOW_MS), rename("x"))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        let e = update_from(&down, record, &stamp_at(NOW_MS), rename("x"))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
    }
}
